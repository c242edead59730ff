"""Sufficient statistics Z'Z, Z'y, y'y accumulated over row chunks.

Memory is O(chunk * width + width^2) whatever the number of rows: the rows
are visited once, in chunks, inside a ``lax.scan``.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

_HIGHEST = jax.lax.Precision.HIGHEST


class Stats(NamedTuple):
    """ztz: (p, p); zty: (p,); yty: scalar; n: scalar row count."""

    ztz: jax.Array
    zty: jax.Array
    yty: jax.Array
    n: jax.Array


def default_chunk(n: int, width: int, budget: int = 1 << 21) -> int:
    """Rows per chunk so that one chunk of features holds about ``budget`` numbers."""
    return int(max(64, min(n, budget // max(width, 1))))


def accumulate(feature_fn: Callable, x, y, *, chunk: int) -> Stats:
    """One pass over the rows of ``x`` (n, d) and ``y`` (n,).

    ``feature_fn`` maps a chunk of rows (c, d) to features (c, p).
    """
    n = x.shape[0]
    n_chunks = -(-n // chunk)
    pad = n_chunks * chunk - n
    weight = jnp.concatenate([jnp.ones((n,), y.dtype), jnp.zeros((pad,), y.dtype)])
    xp = jnp.concatenate([x, jnp.broadcast_to(x[:1], (pad,) + x.shape[1:])]) if pad else x
    yp = jnp.concatenate([y, jnp.zeros((pad,), y.dtype)]) if pad else y
    xs = xp.reshape((n_chunks, chunk) + x.shape[1:])
    ys = yp.reshape((n_chunks, chunk))
    ws = weight.reshape((n_chunks, chunk))

    @jax.checkpoint  # reverse mode keeps one carry per chunk, not the features
    def body(carry, batch):
        ztz, zty = carry
        xc, yc, wc = batch
        z = feature_fn(xc) * wc[:, None]
        ztz = ztz + jnp.matmul(z.T, z, precision=_HIGHEST)
        zty = zty + jnp.matmul(z.T, yc, precision=_HIGHEST)
        return (ztz, zty), None

    width = jax.eval_shape(feature_fn, xs[0]).shape[1]
    init = (jnp.zeros((width, width), y.dtype), jnp.zeros((width,), y.dtype))
    (ztz, zty), _ = jax.lax.scan(body, init, (xs, ys, ws))
    return Stats(0.5 * (ztz + ztz.T), zty, jnp.dot(y, y, precision=_HIGHEST),
                 jnp.asarray(n, y.dtype))
