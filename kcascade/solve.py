"""Fixed-hyperparameter solve and smoothing-parameter scores.

The penalized least squares of DESIGN.md §1,

    (Z'Z + n lambda P) b = Z'y,   Z = [S, R_theta],  P = blockdiag(0, Q_theta),

is solved from the sufficient statistics only. Write Z'Z = [[A, B], [B', C]].
The unpenalized coefficients are eliminated (Schur complement
C_s = C - B'A^{-1}B), and C_s and Q are diagonalised together: with
W = C_s + s Q (s balances the two scales) and W = U diag(w) U',
T = U diag(w^{-1/2}) on the directions where w is not negligible, and
T'C_sT = V diag(gamma) V', the basis K = T V gives K'C_sK = diag(gamma) and
s K'QK = diag(1 - gamma), gamma in [0, 1]. The system becomes diagonal,
D = gamma + rho (1 - gamma) with rho = n lambda / s, so every lambda on a grid
costs O(q) and small lambda stays stable (no inverse of an ill-conditioned
matrix is formed). Directions where both data and penalty vanish (duplicate
basis points, round-off) carry no function and are dropped.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.linalg import cho_solve

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
    h: jax.Array         # (q,) K' g_s
    r0: jax.Array        # residual sum of squares of the null-space fit
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


def blocks_from_full(ztz, zty, yty, n, m, pen_blocks, theta) -> Blocks:
    """Contract full statistics (width m + K q) to the problem at ``theta`` (K,)."""
    k, q, _ = pen_blocks.shape
    rr = ztz[m:, m:].reshape(k, q, k, q)
    c = jnp.einsum("i,iajb,j->ab", theta, rr, theta, precision=_HI)
    b = jnp.einsum("aib,i->ab", ztz[:m, m:].reshape(m, k, q), theta, precision=_HI)
    g2 = jnp.einsum("ib,i->b", zty[m:].reshape(k, q), theta, precision=_HI)
    pen = jnp.einsum("i,iab->ab", theta, pen_blocks, precision=_HI)
    return Blocks(ztz[:m, :m], b, _sym(c), zty[:m], g2, yty, n, _sym(pen))


def rel_tol(dtype) -> float:
    """Relative eigenvalue cut below which a direction is numerically void."""
    return float(jnp.finfo(dtype).eps) * 1e3


def _eliminate_null(bl: Blocks):
    """Schur complement of the unpenalized block: (chol A, A^{-1}B, A^{-1}g1,
    C_s = C - B'A^{-1}B, g_s = g2 - B'A^{-1}g1, r0 = y'y - g1'A^{-1}g1)."""
    chol_a = jnp.linalg.cholesky(bl.a)
    ainv_b = cho_solve((chol_a, True), bl.b)
    ainv_g1 = cho_solve((chol_a, True), bl.g1)
    cs = _sym(bl.c - _mm(bl.b.T, ainv_b))
    gs = bl.g2 - _mm(ainv_b.T, bl.g1)
    r0 = bl.yy - jnp.dot(bl.g1, ainv_g1)
    return chol_a, ainv_b, ainv_g1, cs, gs, r0


def reduce(bl: Blocks) -> Reduced:
    m = bl.a.shape[0]
    dtype = bl.c.dtype
    chol_a, ainv_b, ainv_g1, cs, gs, r0 = _eliminate_null(bl)
    tiny = jnp.finfo(dtype).tiny
    scale = jnp.maximum(jnp.trace(cs), tiny) / jnp.maximum(jnp.trace(bl.pen), tiny)
    w, u = jnp.linalg.eigh(cs + scale * bl.pen)
    keep = w > rel_tol(dtype) * jnp.max(w)
    t = u * jnp.where(keep, jax.lax.rsqrt(jnp.where(keep, w, 1.0)), 0.0)
    # Dropped directions get a sentinel eigenvalue -1 so that they separate
    # cleanly from the kept ones, whose gamma lies in [0, 1].
    g = _sym(_mm(_mm(t.T, cs), t)) - jnp.diag(jnp.where(keep, 0.0, 1.0).astype(dtype))
    gamma, v = jnp.linalg.eigh(g)
    valid = gamma > -0.5
    basis = _mm(t, v)
    gamma = jnp.where(valid, jnp.clip(gamma, 0.0, 1.0), 0.0)
    h = jnp.where(valid, _mm(basis.T, gs), 0.0)
    return Reduced(chol_a, ainv_b, ainv_g1, basis, gamma, valid, h, r0, scale, bl.n, m)


def rho_of(red: Reduced, log_lambda):
    return red.n * jnp.exp(log_lambda) / red.scale


def weights(red: Reduced, rho):
    """1/D on kept directions, 0 elsewhere; D = gamma + rho (1 - gamma)."""
    dd = red.gamma + rho * (1.0 - red.gamma)
    return jnp.where(red.valid, 1.0 / jnp.where(red.valid, dd, 1.0), 0.0)


def coefficients(red: Reduced, rho):
    """(d, c): null-space coefficients (m,) and basis coefficients (q,)."""
    a = red.h * weights(red, rho)
    c = _mm(red.basis, a)
    return red.ainv_g1 - _mm(red.ainv_b, c), c


class Fitness(NamedTuple):
    rss: jax.Array       # residual sum of squares
    trace: jax.Array     # tr A(lambda), effective degrees of freedom
    ypy: jax.Array       # n * (penalized objective at its minimum)
    logdet: jax.Array    # log det(I + (n lambda Q)^{-1} C_s) over penalized directions
    m_eff: jax.Array     # null-space size plus unpenalized kept directions


def fitness(red: Reduced, rho) -> Fitness:
    wts = weights(red, rho)
    a = red.h * wts
    rss = red.r0 - jnp.sum(2.0 * a * red.h - red.gamma * a * a)
    trace = red.m + jnp.sum(red.gamma * wts)
    ypy = red.r0 - jnp.sum(red.h * red.h * wts)
    tol = rel_tol(red.gamma.dtype)
    penalized = red.valid & (1.0 - red.gamma > tol)
    dd = red.gamma + rho * (1.0 - red.gamma)
    logdet = jnp.sum(jnp.where(penalized, jnp.log(jnp.where(penalized, dd / (rho * (1.0 - red.gamma)), 1.0)), 0.0))
    m_eff = red.m + jnp.sum(red.valid & ~penalized)
    return Fitness(rss, trace, ypy, logdet, m_eff)


def gcv(f: Fitness, n, alpha):
    """(RSS/n) / (1 - alpha tr A / n)^2, kept finite past the pole."""
    denom = jnp.maximum(1.0 - alpha * f.trace / n, 1e-3)
    return (f.rss / n) / (denom * denom)


def gml(f: Fitness, n):
    """Wahba's (1985) generalized maximum likelihood score, on the log scale."""
    dof = n - f.m_eff
    return jnp.log(jnp.maximum(f.ypy, jnp.finfo(f.ypy.dtype).tiny) / dof) + f.logdet / dof


def score(f: Fitness, n, method: str, alpha):
    return gcv(f, n, alpha) if method == "gcv" else gml(f, n)


class Frozen(NamedTuple):
    """A fixed basis (from ``reduce`` at some theta) for gradient refinement."""

    basis: jax.Array
    valid: jax.Array
    scale: jax.Array
    m_eff_extra: jax.Array


def freeze(red: Reduced) -> Frozen:
    tol = rel_tol(red.gamma.dtype)
    unpen = red.valid & ~(1.0 - red.gamma > tol)
    return Frozen(*jax.lax.stop_gradient((red.basis, red.valid, red.scale, jnp.sum(unpen))))


def fitness_in_frozen(bl: Blocks, fr: Frozen, log_lambda) -> Fitness:
    """``fitness`` by Cholesky in a frozen basis: smooth in theta and lambda.

    In the frozen basis the system is close to diagonal near the theta it was
    frozen at, so the Cholesky factorisation is well conditioned; dropped
    directions get a unit diagonal and carry nothing.
    """
    m = bl.a.shape[0]
    dtype = bl.c.dtype
    chol_a, ainv_b, ainv_g1, cs, gs, r0 = _eliminate_null(bl)
    kb = fr.basis
    chat = _sym(_mm(_mm(kb.T, cs), kb))
    qhat = _sym(_mm(_mm(kb.T, bl.pen), kb)) * fr.scale
    hhat = _mm(kb.T, gs)
    rho = bl.n * jnp.exp(log_lambda) / fr.scale
    jitter = rel_tol(dtype)
    void = jnp.diag(jnp.where(fr.valid, 0.0, 1.0).astype(dtype))
    eye = jnp.eye(kb.shape[1], dtype=dtype)
    hmat = chat + rho * qhat + void + jitter * eye
    ch = jnp.linalg.cholesky(hmat)
    a = cho_solve((ch, True), hhat)
    rss = r0 - 2.0 * jnp.dot(a, hhat) + jnp.dot(a, _mm(chat, a))
    trace = m + jnp.trace(cho_solve((ch, True), chat))
    ypy = r0 - jnp.dot(a, hhat)
    cq = jnp.linalg.cholesky(rho * qhat + void + jitter * eye)
    logdet = 2.0 * (jnp.sum(jnp.log(jnp.diag(ch))) - jnp.sum(jnp.log(jnp.diag(cq))))
    return Fitness(rss, trace, ypy, logdet, m + fr.m_eff_extra)
