"""Fixed-hyperparameter solve and smoothing-parameter scores.

The penalized least squares of DESIGN.md §1,

    (Z'Z + n lambda P) b = Z'y,   Z = [S, R_theta],  P = blockdiag(0, Q_theta),

is solved in square-root form. The unpenalized coefficients are eliminated,
leaving F (q, q) and f (q,) with F'F = C_s (the Schur complement of the
null-space block) and F'f = g_s, plus rho2, the residual sum of squares
outside the span of all columns. F comes either from the Gram statistics
(``eliminate_gram``: Cholesky and an eigen square root) or directly from a
streamed QR of [Z, y] (``eliminate_qr``), which never squares the condition
number: the float32 path.

C_s and Q are then diagonalised together without forming C_s: the SVD of
[F; sqrt(s) L'] (Q = L L', s balances the two scales) gives
W = C_s + s Q = V diag(sigma^2) V' and T = V diag(1/sigma) on the directions
where sigma is not negligible; the SVD of F T = P diag(sqrt(gamma)) V2' gives
the basis K = T V2 with K'C_sK = diag(gamma), s K'QK = diag(1 - gamma),
gamma in [0, 1]. The system becomes diagonal, D = gamma + rho (1 - gamma) with
rho = n lambda / s, so every lambda on a grid costs O(q). The residual sum of
squares is rho2 + |f - P z|^2 + sum z^2 (1 - gamma / D)^2 with z = P'f: a sum of
non-negative terms, no cancellation. Directions where both data and penalty
vanish (duplicate basis points, round-off) carry no function and are dropped.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.linalg import cho_solve, solve_triangular

_HI = jax.lax.Precision.HIGHEST


class Blocks(NamedTuple):
    """The penalized problem at fixed theta.

    a: (m, m); b: (m, q); c: (q, q) blocks of Z'Z; g1: (m,), g2: (q,) of Z'y;
    yy, n: scalars; pen: (q, q) penalty matrix Q_theta.
    """

    a: jax.Array
    b: jax.Array
    c: jax.Array
    g1: jax.Array
    g2: jax.Array
    yy: jax.Array
    n: jax.Array
    pen: jax.Array


class Reduced(NamedTuple):
    """The problem with the null space eliminated, in the diagonalising basis."""

    chol_a: jax.Array    # (m, m) Cholesky factor of A
    ainv_b: jax.Array    # (m, q) A^{-1} B
    ainv_g1: jax.Array   # (m,)
    basis: jax.Array     # (q, q) K; columns of dropped directions are zero
    gamma: jax.Array     # (q,) in [0, 1]; 0 where dropped
    valid: jax.Array     # (q,) bool, kept directions
    h: jax.Array         # (q,) K' g_s = sqrt(gamma) z
    z: jax.Array         # (q,) coordinates of f on the data side of each direction
    r_out: jax.Array     # residual sum of squares no coefficient can remove
    scale: jax.Array     # s: rho = n lambda / s
    n: jax.Array
    m: int


def _sym(x):
    return 0.5 * (x + x.T)


def _mm(a, b):
    return jnp.matmul(a, b, precision=_HI)


def blocks_from_stats(ztz, zty, yty, n, m, pen) -> Blocks:
    """Split narrow statistics (width m + q) into blocks."""
    return Blocks(ztz[:m, :m], ztz[:m, m:], ztz[m:, m:], zty[:m], zty[m:], yty, n, pen)


class FullGram(NamedTuple):
    """Full Gram statistics (width m + K q) laid out block-major for the
    contractions with theta of every selection step.

    a: (m, m); bt: (K, m, q), bt[i] the null-space columns against kernel
    block i; rt: (K, K, q, q), rt[i, j] block (i, j) of the kernel columns'
    Gram matrix; g1: (m,); zt: (K, q); yy, n: scalars.
    """

    a: jax.Array
    bt: jax.Array
    rt: jax.Array
    g1: jax.Array
    zt: jax.Array
    yy: jax.Array
    n: jax.Array


def full_gram(ztz, zty, yty, n, m, k) -> FullGram:
    """The full statistics of a pass, laid out block-major once.

    Every contraction with theta is then a matrix-vector product over
    contiguous rows. In the (m + K q)^2 layout of the pass each one needs the
    K q x K q matrix transposed; XLA moved that transposition into the
    selection's loop, copying the statistics at every evaluation (measured,
    K = 50, q = 50: a student's selection took 1.35 s against 0.42 s). The
    barrier keeps the copy here."""
    q = (ztz.shape[0] - m) // k
    out = FullGram(ztz[:m, :m], jnp.transpose(ztz[:m, m:].reshape(m, k, q), (1, 0, 2)),
                   jnp.transpose(ztz[m:, m:].reshape(k, q, k, q), (0, 2, 1, 3)), zty[:m], zty[m:].reshape(k, q),
                   yty, n)
    return jax.lax.optimization_barrier(out)


def _along(theta, stacked):
    """sum_i theta_i stacked[i]: one matrix-vector product."""
    k = theta.shape[0]
    return jnp.tensordot(theta, stacked.reshape(k, -1), axes=1, precision=_HI).reshape(stacked.shape[1:])


def blocks_from_full(full: FullGram, theta, pen) -> Blocks:
    """Contract the full statistics to the problem at ``theta`` (K,) with
    penalty ``pen`` (q, q) = Q_theta."""
    blocks, _ = _blocks_and_d(full, theta, pen)
    return blocks


def _blocks_and_d(full: FullGram, theta, pen):
    # dt[i] = sum_j theta_j R_ji = D_i' with D_i = sum_j theta_j R_ij
    dt = _along(theta, full.rt)
    c = _along(theta, dt)                      # sum_i theta_i D_i' = c'
    return Blocks(full.a, _along(theta, full.bt), _sym(c), full.g1, _along(theta, full.zt), full.yy, full.n,
                  _sym(pen)), dt


def blocks_with_jacobian(full: FullGram, theta, pen_blocks):
    """``blocks_from_full`` at ``theta`` together with its derivatives.

    The blocks are quadratic (c) or linear (b, g2, pen) in theta, so their
    Jacobian is explicit: with D_i = sum_j theta_j R_ij (a by-product of
    forming c), dc/dtheta_i = D_i + D_i'. Forward-mode differentiation
    instead contracts the full statistics once per tangent.

    ``pen_blocks``: (K, q, q), pen = sum_i theta_i pen_blocks[i]. Returns
    (blocks, jac): ``jac`` a Blocks whose leaves carry a leading axis of K,
    the derivative along each theta_i (zero for a, g1, yy, n).
    """
    k = theta.shape[0]
    pen_sym = 0.5 * (pen_blocks + jnp.swapaxes(pen_blocks, 1, 2))
    blocks, dt = _blocks_and_d(full, theta, _along(theta, pen_blocks))
    zeros = lambda a: jnp.zeros((k,) + jnp.shape(a), jnp.result_type(a))
    jac = Blocks(zeros(blocks.a), full.bt, dt + jnp.swapaxes(dt, 1, 2), zeros(blocks.g1), full.zt,
                 zeros(full.yy), zeros(full.n), pen_sym)
    return blocks, jac


def blocks_second_order(cot: Blocks, full: FullGram, pen_blocks):
    """(M (K, K), v (K,)) with <cot, blocks_from_full(theta)> = theta'M theta +
    v'theta + terms free of theta, for a cotangent ``cot`` whose c and pen
    entries are symmetric (a gradient through ``_sym``): the part of the
    blocks' second derivative a chain rule needs, one matrix-vector product
    with the full statistics."""
    k = full.rt.shape[0]
    mat = jnp.tensordot(full.rt.reshape(k * k, -1), cot.c.reshape(-1), axes=1, precision=_HI).reshape(k, k)
    flat = lambda a: a.reshape(k, -1)
    v = (jnp.tensordot(flat(full.bt), cot.b.reshape(-1), axes=1, precision=_HI)
         + jnp.tensordot(full.zt, cot.g2, axes=1, precision=_HI)
         + jnp.tensordot(flat(pen_blocks), cot.pen.reshape(-1), axes=1, precision=_HI))
    return _sym(mat), v


def rel_tol(dtype) -> float:
    """Relative eigenvalue cut below which a direction is numerically void."""
    return float(jnp.finfo(dtype).eps) * 1e3


def eliminate_null(bl: Blocks):
    """Schur complement of the unpenalized block: (chol A, A^{-1}B, A^{-1}g1,
    C_s = C - B'A^{-1}B, g_s = g2 - B'A^{-1}g1, r0 = y'y - g1'A^{-1}g1)."""
    chol_a = jnp.linalg.cholesky(bl.a)
    ainv_b = cho_solve((chol_a, True), bl.b)
    ainv_g1 = cho_solve((chol_a, True), bl.g1)
    cs = _sym(bl.c - _mm(bl.b.T, ainv_b))
    gs = bl.g2 - _mm(ainv_b.T, bl.g1)
    r0 = bl.yy - jnp.dot(bl.g1, ainv_g1)
    return chol_a, ainv_b, ainv_g1, cs, gs, r0


class Eliminated(NamedTuple):
    """The problem with the null space eliminated, in square-root form.

    chol_a: (m, m) lower, A = chol_a chol_a'; ainv_b: (m, q); ainv_g1: (m,);
    f22: (q, q) with f22'f22 = C_s; f2: (q,) with f22'f2 = g_s; rho2: the
    residual sum of squares outside the span of all columns; n; pen: (q, q).
    """

    chol_a: jax.Array
    ainv_b: jax.Array
    ainv_g1: jax.Array
    f22: jax.Array
    f2: jax.Array
    rho2: jax.Array
    n: jax.Array
    pen: jax.Array


def eliminate_gram(bl: Blocks) -> Eliminated:
    """Square-root form from Gram blocks (an eigen square root of C_s)."""
    chol_a, ainv_b, ainv_g1, cs, gs, r0 = eliminate_null(bl)
    e, v = jnp.linalg.eigh(cs)
    keep = e > rel_tol(cs.dtype) * jnp.max(e)
    root = jnp.sqrt(jnp.where(keep, e, 1.0))
    f22 = jnp.sqrt(jnp.maximum(e, 0.0))[:, None] * v.T
    f2 = jnp.where(keep, _mm(v.T, gs) / root, 0.0)
    rho2 = jnp.maximum(r0 - jnp.sum(f2 * f2), 0.0)
    return Eliminated(chol_a, ainv_b, ainv_g1, f22, f2, rho2, bl.n, bl.pen)


def eliminate_qr(r, n, m, pen) -> Eliminated:
    """Square-root form from the triangular factor ``r`` (m+q+1, m+q+1) of
    [S, R_theta, y]: no product of the data with itself is ever formed."""
    sign = jnp.where(jnp.diagonal(r)[:m] < 0, -1.0, 1.0).astype(r.dtype)
    r11, r12, r1 = sign[:, None] * r[:m, :m], sign[:, None] * r[:m, m:-1], sign * r[:m, -1]
    ainv_b = solve_triangular(r11, r12, lower=False)
    ainv_g1 = solve_triangular(r11, r1, lower=False)
    return Eliminated(r11.T, ainv_b, ainv_g1, r[m:-1, m:-1], r[m:-1, -1], r[-1, -1] ** 2, n, pen)


class FullQR(NamedTuple):
    """The triangular factor (P, P) of the full features [S, R_1..R_K, y],
    split for the contractions with theta: null (P, m), blocks (K, P, q)
    block-major, y (P, 1); n."""

    null: jax.Array
    blocks: jax.Array
    y: jax.Array
    n: jax.Array


def full_qr(r_full, n, m, k) -> FullQR:
    """``r_full`` laid out block-major once (see ``full_gram``)."""
    p = r_full.shape[0]
    q = (p - 1 - m) // k
    out = FullQR(r_full[:, :m], jnp.transpose(r_full[:, m:-1].reshape(p, k, q), (1, 0, 2)), r_full[:, -1:], n)
    return jax.lax.optimization_barrier(out)


def factor_at(full: FullQR, theta):
    """The triangular factor of [S, sum_i theta_i R_i, y] from the factor of
    the full features: one QR of a (P, m+q+1) matrix, no Gram matrix formed."""
    cols = jnp.concatenate([full.null, _along(theta, full.blocks), full.y], axis=1)
    return jnp.linalg.qr(cols, mode="reduced")[1]  # "reduced" has a derivative rule


def reduce(el: Eliminated, cut: float) -> Reduced:
    """Diagonalise the eliminated problem (see the module docstring).

    ``cut``: relative singular value of [F; sqrt(s) L'] below which a
    direction is dropped (``sv_cut``).
    """
    q = el.f22.shape[1]
    dtype = el.f22.dtype
    tiny = jnp.finfo(dtype).tiny
    scale = jnp.maximum(jnp.sum(el.f22 * el.f22), tiny) / jnp.maximum(jnp.trace(el.pen), tiny)
    # jaxlib's batched LAPACK kernels (vmap) wait on the intra-op thread pool;
    # two running at once deadlocked a 2-core CPU. The zero term makes this
    # eigh wait for F, so the decompositions of a fit run one after another.
    e, v = jnp.linalg.eigh(_sym(el.pen) + 0.0 * el.f22[:1, :1])
    lt = jnp.sqrt(jnp.maximum(e, 0.0))[:, None] * v.T
    u, sig, wt = _svd(jnp.concatenate([el.f22, jnp.sqrt(scale) * lt]))
    keep = sig > cut * sig[0]
    t = wt.T * jnp.where(keep, 1.0 / jnp.where(keep, sig, 1.0), 0.0)
    # Dropped directions get the sentinel singular value 2 so that they
    # separate cleanly from the kept ones, whose sqrt(gamma) lies in [0, 1].
    u_aug = jnp.concatenate([u[:q] * keep, 2.0 * jnp.diag((~keep).astype(dtype))])
    p, sv, wt2 = _svd(u_aug)
    valid = sv < 1.5
    gamma = jnp.where(valid, jnp.clip(sv * sv, 0.0, 1.0), 0.0)
    basis = _mm(t, wt2.T)
    seen = valid & (sv > jnp.finfo(dtype).eps)
    z = jnp.where(seen, _mm(p[:q].T, el.f2), 0.0)
    r_out = el.rho2 + jnp.sum((el.f2 - _mm(p[:q], z)) ** 2)
    h = jnp.sqrt(gamma) * z
    chol_a, ainv_b, ainv_g1 = el.chol_a, el.ainv_b, el.ainv_g1
    return Reduced(chol_a, ainv_b, ainv_g1, basis, gamma, valid, h, z, r_out, scale, el.n, chol_a.shape[0])


def _svd(a):
    # LAPACK's QR-iteration SVD (gesvd): the default divide-and-conquer one
    # (gesdd) intermittently hung XLA:CPU in vmapped fits on this machine.
    return jax.lax.linalg.svd(a, full_matrices=False, algorithm=jax.lax.linalg.SvdAlgorithm.QR)


def sv_cut(dtype, squared: bool) -> float:
    """Relative singular-value cut: sqrt(rel_tol) when the factor came from a
    Gram matrix (which resolved only squared singular values), rel_tol when
    it came from a QR of the data."""
    tol = rel_tol(dtype)
    return float(tol ** 0.5) if squared else tol


def rho_of(n, scale, log_lambda):
    """rho = n lambda / s: lambda on the scale of the diagonalised system."""
    return n * jnp.exp(log_lambda) / scale


def penalized(valid, gamma):
    """(q,) bool: kept directions that the penalty acts on (gamma < 1)."""
    return valid & (1.0 - gamma > rel_tol(gamma.dtype))


def weights(red: Reduced, rho):
    """1/D on kept directions, 0 elsewhere; D = gamma + rho (1 - gamma)."""
    dd = red.gamma + rho * (1.0 - red.gamma)
    return jnp.where(red.valid, 1.0 / jnp.where(red.valid, dd, 1.0), 0.0)


def coefficients(red: Reduced, rho):
    """(d, c): null-space coefficients (m,) and basis coefficients (q,)."""
    a = red.h * weights(red, rho)
    c = _mm(red.basis, a)
    return red.ainv_g1 - _mm(red.ainv_b, c), c
