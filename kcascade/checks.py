"""Input checks that raise ``ValueError`` naming the argument, the value seen
and what was expected. Value checks run only on concrete arrays: inside
``jit``/``vmap`` the shapes are still checked, the values cannot be."""
from __future__ import annotations

import numpy as np
import jax


def is_concrete(*arrays) -> bool:
    return not any(isinstance(a, jax.core.Tracer) for a in arrays)


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


def finite(a, name: str):
    arr = np.asarray(a)
    bad = ~np.isfinite(arr)
    if bad.any():
        where = np.argwhere(bad)[0]
        raise ValueError(
            f"{name}: expected finite values, found {int(bad.sum())} NaN/inf "
            f"(first at index {tuple(int(i) for i in where)}: {arr[tuple(where)]})")
