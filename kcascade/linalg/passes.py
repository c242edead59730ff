"""Sufficient statistics of [Z, y] accumulated over row chunks, with row weights.

Rows carry observation weights w_i >= 0 (default 1): the statistics are those
of the weighted least squares sum_i w_i (y_i - z_i'b)^2, i.e. Z'WZ, Z'Wy,
y'Wy, and the row count n counts the rows of positive weight. Rows added to
fill the last chunk (or to divide evenly over devices) get weight 0.

Two forms, both one pass over the rows with memory O(chunk * width + width^2)
whatever the number of rows (the rows are visited in chunks inside a
``lax.scan``):

- ``accumulate``: the Gram statistics Z'Z, Z'y, y'y (one matrix product per
  chunk; the fast path, accurate in float64);
- ``factor``: the triangular factor R of [Z, y] (R'R = [Z, y]'[Z, y]), updated
  by a QR of [R; chunk] (TSQR). It never squares the condition number of Z,
  which is what keeps float32 fits accurate.
"""
from __future__ import annotations

import sys
import time
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

_HIGHEST = jax.lax.Precision.HIGHEST


class Stats(NamedTuple):
    """ztz: (p, p); zty: (p,); yty: scalar; n: scalar row count."""

    ztz: jax.Array
    zty: jax.Array
    yty: jax.Array
    n: jax.Array


class Factor(NamedTuple):
    """r: (p+1, p+1) upper triangular with R'R = [Z, y]'[Z, y]; n: scalar row count."""

    r: jax.Array
    n: jax.Array


def default_chunk(n: int, width: int, budget: int = 1 << 21) -> int:
    """Rows per chunk so that one chunk of features holds about ``budget`` numbers."""
    return int(max(64, min(n, budget // max(width, 1))))


def padded(x, y, w, multiple, xp=jnp):
    """Rows padded to a multiple of ``multiple`` with weight-0 copies of row 0
    (``xp``: the array module, ``jax.numpy`` or ``numpy`` for host chunks)."""
    n = x.shape[0]
    pad = -(-n // multiple) * multiple - n
    w = xp.concatenate([w, xp.zeros((pad,), y.dtype)])
    if pad:
        x = xp.concatenate([x, xp.broadcast_to(x[:1], (pad,) + x.shape[1:])])
        y = xp.concatenate([y, xp.zeros((pad,), y.dtype)])
    return x, y, w


def weights_or_ones(w, y):
    """(n,) the row weights ``w``, or ones."""
    return jnp.ones(y.shape, y.dtype) if w is None else jnp.asarray(w, y.dtype)


def row_count(w, y):
    """The number of rows of positive weight (a scalar of y's dtype)."""
    if w is None:
        return jnp.asarray(y.shape[0], y.dtype)
    return jnp.sum(w > 0).astype(y.dtype)


def _one_pass(scan_fn, combine, x, y, w, chunk, mesh, progress):
    """Run ``scan_fn(chunks, tick, vary)`` over the rows: on one device, or with the
    rows split over every axis of ``mesh`` (each device scans its own rows,
    ``combine(local, axes)`` merges the results across devices)."""
    devices = 1 if mesh is None else mesh.size
    xp, yp, wp = padded(x, y, weights_or_ones(w, y), chunk * devices)

    def local(xl, yl, wl):
        n_chunks = xl.shape[0] // chunk
        chunks = (xl.reshape((n_chunks, chunk) + x.shape[1:]), yl.reshape((n_chunks, chunk)),
                  wl.reshape((n_chunks, chunk)), jnp.arange(n_chunks))
        device = 0 if mesh is None else jax.lax.axis_index(mesh.axis_names)
        tick = _ticker(progress, n_chunks, chunk * devices, device)
        # Inside shard_map a scan's carry must be typed as varying across devices.
        vary = (lambda v: v) if mesh is None else (lambda v: jax.lax.pcast(v, mesh.axis_names, to="varying"))
        return scan_fn(chunks, tick, vary)

    if mesh is None:
        return local(xp, yp, wp)
    rows = P(mesh.axis_names)
    xp, yp, wp = (jax.lax.with_sharding_constraint(a, NamedSharding(mesh, rows)) for a in (xp, yp, wp))
    return jax.shard_map(lambda a, b, c: combine(local(a, b, c), mesh.axis_names), mesh=mesh,
                         in_specs=(rows, rows, rows), out_specs=P())(xp, yp, wp)


# Wide Gram products (the selection's full statistics, width m + K q) are
# formed as the upper triangle of PANELS x PANELS blocks, (P + 1) / 2P of the
# work (5/8 for 4 panels); below MIN_PANEL_WIDTH columns the products would
# be too narrow to run at the matmul rate.
PANELS, MIN_PANEL_WIDTH = 4, 1024


def gram_panels(width: int):
    """The (start, stop) column panels of a Gram product of ``width`` columns:
    one panel below MIN_PANEL_WIDTH, else PANELS of nearly equal width."""
    if width < MIN_PANEL_WIDTH:
        return ((0, width),)
    cuts = np.linspace(0, width, PANELS + 1).round().astype(int)
    return tuple((int(a), int(b)) for a, b in zip(cuts[:-1], cuts[1:]))


def accumulate(feature_fn: Callable, x, y, w=None, *, chunk: int, mesh: Mesh | None = None,
               progress: str | None = None) -> Stats:
    """Gram statistics in one pass over the rows of ``x`` (n, d), ``y`` (n,)
    and weights ``w`` (n,) or None.

    ``feature_fn`` maps a chunk of rows (c, d) to features (c, p). With
    ``mesh``, the rows are split over all its devices and the statistics
    summed across them. ``progress``: a label to report progress under, or
    None (silent).
    """
    width = jax.eval_shape(feature_fn, x[:chunk]).shape[1]
    panels = gram_panels(width)

    def scan_fn(chunks, tick, vary):
        @jax.checkpoint  # reverse mode keeps one carry per chunk, not the features
        def body(carry, batch):
            ztz, zty = carry
            xc, yc, wc, i = batch
            # Z' W Z from the features laid out (p, c): XLA:CPU's product of
            # two row-major (p, c) operands contracted over c runs near the
            # matmul rate, the same product of (c, p) operands at about half
            # (measured at p = 222: 186 against 104 GFLOP/s). The barrier
            # keeps XLA from folding the transpose back into the product;
            # the elementwise work that forms z writes it transposed.
            zt = jax.lax.optimization_barrier(feature_fn(xc).T)
            zwt = zt * wc[None, :]
            for lo, hi in panels:   # the upper block triangle: the rest is its mirror
                part = jax.lax.dot_general(zwt[lo:hi], zt[lo:], (((1,), (1,)), ((), ())), precision=_HIGHEST)
                ztz = jax.lax.dynamic_update_slice(ztz, ztz[lo:hi, lo:] + part, (lo, lo))
            zty = zty + jnp.matmul(zwt, yc, precision=_HIGHEST)
            tick(i)
            return (ztz, zty), None

        init = (vary(jnp.zeros((width, width), y.dtype)), vary(jnp.zeros((width,), y.dtype)))
        return jax.lax.scan(body, init, chunks)[0]

    ztz, zty = _one_pass(scan_fn, lambda part, axes: jax.lax.psum(part, axes), x, y, w, chunk, mesh, progress)
    if len(panels) > 1:   # the upper block triangle mirrored; the diagonal blocks averaged with their transposes
        index = np.arange(width)
        block = np.searchsorted(np.asarray([hi for _, hi in panels]), index, side="right")
        bi, bj = jnp.asarray(block[:, None]), jnp.asarray(block[None, :])
        ztz = jnp.where(bi < bj, ztz, jnp.where(bi > bj, ztz.T, 0.5 * (ztz + ztz.T)))
    else:
        ztz = 0.5 * (ztz + ztz.T)
    return Stats(ztz, zty, jnp.dot(y * weights_or_ones(w, y), y, precision=_HIGHEST),
                 row_count(w, y))


def factor(feature_fn: Callable, x, y, w=None, *, chunk: int, mesh: Mesh | None = None,
           progress: str | None = None) -> Factor:
    """The triangular factor of W^{1/2} [Z, y] in one pass over the rows (TSQR);
    with ``mesh``, one factor per device, then a QR of the stacked factors."""
    width = jax.eval_shape(feature_fn, x[:chunk]).shape[1] + 1

    def scan_fn(chunks, tick, vary):
        def body(r, batch):
            xc, yc, wc, i = batch
            block = jnp.concatenate([feature_fn(xc), yc[:, None]], axis=1) * jnp.sqrt(wc)[:, None]
            tick(i)
            return qr_r(jnp.concatenate([r, block])), None

        return jax.lax.scan(body, vary(jnp.zeros((width, width), y.dtype)), chunks)[0]

    def combine(r, axes):
        # Each device puts its factor in its own slot; the psum is a gather
        # whose result is known to be the same on every device.
        slots = jnp.zeros((mesh.size,) + r.shape, r.dtype).at[jax.lax.axis_index(axes)].set(r)
        return qr_r(jax.lax.psum(slots, axes).reshape(-1, r.shape[1]))

    r = _one_pass(scan_fn, combine, x, y, w, chunk, mesh, progress)
    return Factor(r, row_count(w, y))


def normal_apply(feature_fn: Callable, x, v, u=None, w=None, *, chunk: int, mesh: Mesh | None = None) -> jax.Array:
    """Z'W(Z v + u) in one pass over the rows (the products a conjugate-gradient
    solve of the normal equations needs: Z'WZ v, and Z'W(y - Z v) with
    u = y and -v), Z = ``feature_fn`` of the rows, never held whole; ``v``
    (p,), ``u`` (n,) or None (zeros); with ``mesh`` the rows are split over
    its devices."""
    y = jnp.zeros((x.shape[0],), v.dtype) if u is None else jnp.asarray(u, v.dtype)

    def scan_fn(chunks, tick, vary):
        def body(acc, batch):
            xc, uc, wc, i = batch
            z = feature_fn(xc)
            acc = acc + jnp.matmul(z.T, wc * (jnp.matmul(z, v, precision=_HIGHEST) + uc), precision=_HIGHEST)
            tick(i)
            return acc, None

        return jax.lax.scan(body, vary(jnp.zeros(v.shape, v.dtype)), chunks)[0]

    return _one_pass(scan_fn, lambda part, axes: jax.lax.psum(part, axes), x, y, w, chunk, mesh, None)


def qr_r(a):
    return jnp.linalg.qr(a, mode="r")


# -- progress ------------------------------------------------------------------

_PROGRESS_EVERY_S = 5.0
_progress_state: dict = {}


def _ticker(label, n_chunks, rows_per_chunk, device):
    """A function of the chunk index that reports progress from the host
    (``jax.debug.callback``), or does nothing when ``label`` is None."""
    if label is None:
        return lambda i: None

    def report(i, dev):
        if int(dev) != 0 or jax.process_index() != 0:
            return
        i, now = int(i), time.perf_counter()
        state = _progress_state.setdefault(label, {})
        if i == 0:
            state.update(start=now, last=now)
        done = i + 1
        if now - state.get("last", now) < _PROGRESS_EVERY_S and done < n_chunks:
            return
        state["last"] = now
        spent = now - state.get("start", now)
        rate = done * rows_per_chunk / max(spent, 1e-9)
        eta = (n_chunks - done) * spent / done
        print(f"[kcascade] {label}: {100.0 * done / n_chunks:5.1f}% of the rows "
              f"({done}/{n_chunks} chunks), {spent:6.1f} s, {rate:,.0f} rows/s, eta {eta:5.1f} s",
              file=sys.stderr, flush=True)

    return lambda i: jax.debug.callback(report, i, device)
