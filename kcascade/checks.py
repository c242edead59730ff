"""Input checks that raise ``ValueError`` naming the argument, the value seen
and what was expected. Value checks run only on concrete arrays: inside
``jit``/``vmap`` the shapes are still checked, the values cannot be."""
from __future__ import annotations

import numpy as np
import jax
import jax.numpy as jnp


def random_key(key, name: str = "key"):
    """``key`` if it is a ``jax.random`` key (typed, or a raw uint32 pair);
    otherwise a ValueError that says how to make one. Works on traced keys."""
    dtype = getattr(key, "dtype", None)
    if dtype is not None and (jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)
                              or (dtype == jnp.uint32 and key.shape[-1:] == (2,))):
        return key
    seen = f"{type(key).__name__} {key!r}" if np.ndim(key) == 0 else f"{type(key).__name__} of shape {np.shape(key)}"
    raise ValueError(f"{name}: expected a jax.random key, e.g. jax.random.key(0); got {seen}")


def is_concrete(*arrays) -> bool:
    return not any(isinstance(a, jax.core.Tracer) for a in arrays)


def as_array(a):
    """A jax or numpy array as given; anything else (lists, pandas objects) as a numpy array."""
    return a if isinstance(a, (jax.Array, np.ndarray)) else np.asarray(a)


def float_matrix(x, name: str):
    """Shape and dtype checks for a (n, d) float array; returns (n, d)."""
    shape = np.shape(x)
    if len(shape) != 2:
        raise ValueError(f"{name}: expected a 2-D array of shape (n, d), got shape {shape}")
    _float_dtype(x, name)
    return shape


def float_vector(y, name: str, length: int, length_name: str):
    shape = np.shape(y)
    if len(shape) != 1:
        raise ValueError(f"{name}: expected a 1-D array of shape ({length_name},), got shape {shape}")
    if shape[0] != length:
        raise ValueError(f"{name}: expected length {length} to match {length_name}, got {shape[0]}")
    _float_dtype(y, name)


def _float_dtype(a, name):
    dt = np.asarray(a).dtype if not isinstance(a, jax.Array) else a.dtype
    if not (np.issubdtype(dt, np.floating) or np.issubdtype(dt, np.integer)):
        raise ValueError(f"{name}: expected a real numeric dtype, got {dt}")


def is_global(a) -> bool:
    """True for an array that spans devices of other processes (``jax.distributed``)."""
    return isinstance(a, jax.Array) and is_concrete(a) and not a.is_fully_addressable


def _local(a):
    """The value of a replicated result of a computation on global arrays."""
    return np.asarray(a.addressable_data(0)) if is_global(a) else np.asarray(a)


@jax.jit
def _column_facts_jit(x):
    return jnp.min(x, axis=0), jnp.max(x, axis=0), jnp.all((x == jnp.round(x)) & (x >= 0), axis=0)


def column_facts(x):
    """Per column of ``x`` (n, d): (min, max, all non-negative integers), each (d,),
    computed where the rows live (also for global arrays)."""
    if is_global(x):
        return tuple(_local(v) for v in _column_facts_jit(x))
    xn = np.asarray(x)
    return xn.min(axis=0), xn.max(axis=0), np.all((xn == np.round(xn)) & (xn >= 0), axis=0)


def finite(a, name: str, first_row: int = 0):
    """ValueError naming ``name`` where ``a`` holds NaN or inf; the index
    reported counts rows from ``first_row`` (a chunk of a larger source)."""
    if is_global(a):
        bad = int(_local(jax.jit(lambda v: jnp.sum(~jnp.isfinite(v)))(a)))
        if bad:
            raise ValueError(f"{name}: expected finite values, found {bad} NaN/inf")
        return
    arr = np.asarray(a)
    bad = ~np.isfinite(arr)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        shown = where if not where else (where[0] + first_row,) + where[1:]
        raise ValueError(
            f"{name}: expected finite values, found {int(bad.sum())} NaN/inf "
            f"(first at index {shown}: {arr[where]})")


def query_rows(x_new, d: int, dtype, name: str = "x_new"):
    """``x_new`` (m, d) checked against the training width ``d`` and as an array of ``dtype``."""
    _, width = float_matrix(x_new, name)
    if width != d:
        raise ValueError(f"{name}: expected {d} columns like the training x, got {width}")
    x_new = jnp.asarray(x_new, dtype)
    if is_concrete(x_new):
        finite(x_new, name)
    return x_new
