"""Scores of the smoothing parameters, from the diagonalised problem
(``solve.Reduced``) or, smoothly in theta, in a frozen basis.

A score is a function ``score(fitness, n)`` of the ``Fitness`` summaries;
``SCORES`` maps the names an estimator is configured with to them.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.linalg import cho_solve, solve_triangular

from kcascade.linalg.solve import (_HI, Blocks, Eliminated, Reduced, _mm, _sym, eliminate_null, penalized, rel_tol,
                                   rho_of, weights)

class Fitness(NamedTuple):
    rss: jax.Array       # residual sum of squares
    trace: jax.Array     # tr A(lambda), effective degrees of freedom
    ypy: jax.Array       # n * (penalized objective at its minimum)
    logdet: jax.Array    # log det(I + (n lambda Q)^{-1} C_s) over penalized directions
    m_eff: jax.Array     # null-space size plus unpenalized kept directions


def fitness(red: Reduced, rho) -> Fitness:
    wts = weights(red, rho)
    left = rho * (1.0 - red.gamma) * wts  # = 1 - gamma / D, without the cancellation
    rss = red.r_out + jnp.sum(jnp.where(red.valid, red.z * red.z * left * left, 0.0))
    trace = red.m + jnp.sum(red.gamma * wts)
    ypy = red.r_out + jnp.sum(jnp.where(red.valid, red.z * red.z * left, 0.0))
    pen = penalized(red.valid, red.gamma)
    dd = red.gamma + rho * (1.0 - red.gamma)
    logdet = jnp.sum(jnp.where(pen, jnp.log(jnp.where(pen, dd / (rho * (1.0 - red.gamma)), 1.0)), 0.0))
    m_eff = red.m + jnp.sum(red.valid & ~pen)
    return Fitness(rss, trace, ypy, logdet, m_eff)


def gcv(f: Fitness, n, alpha):
    """(RSS/n) / (1 - alpha tr A / n)^2, kept finite past the pole."""
    denom = jnp.maximum(1.0 - alpha * f.trace / n, 1e-3)
    return (f.rss / n) / (denom * denom)


def gml(f: Fitness, n):
    """Wahba's (1985) generalized maximum likelihood score, on the log scale."""
    dof = n - f.m_eff
    return jnp.log(jnp.maximum(f.ypy, jnp.finfo(f.ypy.dtype).tiny) / dof) + f.logdet / dof


def ubr(f: Fitness, n, alpha):
    """Unbiased risk (Mallows' C_L; gss's method "u") with known dispersion 1:
    RSS/n + 2 alpha tr A / n. For the weighted pseudo-data of a binomial or
    Poisson fit (weights = the variance function), whose weighted residuals
    have variance 1 (Gu 1992, performance-oriented iteration)."""
    return f.rss / n + 2.0 * alpha * f.trace / n


def score_function(name: str, alpha: float = 1.4):
    """The score called ``name`` ("gcv" or "ubr" with inflation ``alpha``, or
    "gml") as a function (fitness, n) -> scalar."""
    if name == "gcv":
        return functools.partial(gcv, alpha=alpha)
    if name == "ubr":
        return functools.partial(ubr, alpha=alpha)
    if name == "gml":
        return gml
    raise ValueError(f"score: expected one of {SCORES}, got {name!r}")


SCORES = ("gcv", "gml", "ubr")


class Frozen(NamedTuple):
    """A fixed basis (from ``reduce`` at some theta) for gradient refinement."""

    basis: jax.Array
    valid: jax.Array
    scale: jax.Array
    m_eff_extra: jax.Array


def freeze(red: Reduced) -> Frozen:
    unpen = red.valid & ~penalized(red.valid, red.gamma)
    return Frozen(*jax.lax.stop_gradient((red.basis, red.valid, red.scale, jnp.sum(unpen))))


def fitness_in_frozen(bl: Blocks, fr: Frozen, log_lambda) -> Fitness:
    """``fitness`` by Cholesky in a frozen basis: smooth in theta and lambda.

    In the frozen basis the system is close to diagonal near the theta it was
    frozen at, so the Cholesky factorisation is well conditioned; dropped
    directions get a unit diagonal and carry nothing.
    """
    m = bl.a.shape[0]
    dtype = bl.c.dtype
    _, _, _, cs, gs, r0 = eliminate_null(bl)
    kb = fr.basis
    chat = _sym(_mm(_mm(kb.T, cs), kb))
    qhat = _sym(_mm(_mm(kb.T, bl.pen), kb)) * fr.scale
    hhat = _mm(kb.T, gs)
    rho = rho_of(bl.n, fr.scale, log_lambda)
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


def fitness_in_frozen_root(el: Eliminated, fr: Frozen, log_lambda) -> Fitness:
    """``fitness_in_frozen`` from the square-root form: the penalized least
    squares in the frozen basis is solved by a QR of [F K; chol(rho Q_hat)'],
    and the residual sums are sums of squares of residual vectors, so float32
    keeps the small differences between nearby hyperparameters."""
    m = el.chol_a.shape[0]
    dtype = el.f22.dtype
    kb = fr.basis
    q = kb.shape[1]
    mk = _mm(el.f22, kb)
    qhat = _sym(_mm(_mm(kb.T, el.pen), kb)) * fr.scale
    rho = rho_of(el.n, fr.scale, log_lambda)
    void = jnp.diag(jnp.where(fr.valid, 0.0, 1.0).astype(dtype))
    cq = jnp.linalg.cholesky(rho * qhat + void + rel_tol(dtype) * jnp.eye(q, dtype=dtype))
    stacked = jnp.concatenate([mk, cq.T])
    qs, rs = jnp.linalg.qr(stacked, mode="reduced")
    rhs = jnp.concatenate([el.f2, jnp.zeros((q,), dtype)])
    a = solve_triangular(rs, _mm(qs.T, rhs), lower=False)
    rss = el.rho2 + jnp.sum((el.f2 - _mm(mk, a)) ** 2)
    ypy = el.rho2 + jnp.sum((rhs - _mm(stacked, a)) ** 2)
    trace = m + jnp.sum(solve_triangular(rs.T, mk.T, lower=True) ** 2)
    logdet = 2.0 * (jnp.sum(jnp.log(jnp.abs(jnp.diagonal(rs)))) - jnp.sum(jnp.log(jnp.diagonal(cq))))
    return Fitness(rss, trace, ypy, logdet, m + fr.m_eff_extra)


def fitness_near_frozen(chat, qhat, hhat, r0, fr: Frozen, m, rho) -> Fitness:
    """``Fitness`` from the problem in a frozen basis, by second-order
    expansions around the point the basis was frozen at, where the system
    H = C_hat + rho Q_hat is diagonal: H^{-1} by its Neumann series and
    log det H by its Taylor series, both to second order in the off-diagonal
    part. Exact in value, gradient and Hessian *at* that point (the terms left
    out are third order), and only matrix products: its Hessian, a batch of
    forward passes, is a few batched products (no triangular solves).

    chat: (q, q) K'C_sK; qhat: (q, q) s K'QK; hhat: (q,) K'g_s; r0: y'y
    outside the null space.
    """
    dtype = chat.dtype
    void = jnp.where(fr.valid, 0.0, 1.0).astype(dtype)
    jitter = rel_tol(dtype)

    def split(mat):
        d = jax.lax.stop_gradient(jnp.diagonal(mat)) + void + jitter
        e = mat - jnp.diag(jnp.diagonal(jax.lax.stop_gradient(mat)))
        return 1.0 / d, e, jnp.sum(jnp.log(d))

    def logdet(dinv, e, base):
        de = dinv[:, None] * e
        return base + jnp.trace(de) - 0.5 * jnp.sum(de * de.T)

    hmat = chat + rho * qhat
    dinv, e, base = split(hmat)
    de = dinv[:, None] * e                     # D^-1 E
    hinv = jnp.diag(dinv) - de * dinv[None, :] + _mm(de, de) * dinv[None, :]
    a = _mm(hinv, hhat)
    rss = r0 - 2.0 * jnp.dot(a, hhat) + jnp.dot(a, _mm(chat, a))
    trace = m + jnp.sum(hinv * chat.T)
    ypy = r0 - jnp.dot(a, hhat)
    qinv, qe, qbase = split(rho * qhat)
    ld = logdet(dinv, e, base) - logdet(qinv, qe, qbase)
    return Fitness(rss, trace, ypy, ld, m + fr.m_eff_extra)


def frozen_parts(bl: Blocks, fr: Frozen):
    """(C_hat, Q_hat, h_hat, r0) of Gram blocks in the frozen basis."""
    _, _, _, cs, gs, r0 = eliminate_null(bl)
    kb = fr.basis
    return _sym(_mm(_mm(kb.T, cs), kb)), _sym(_mm(_mm(kb.T, bl.pen), kb)) * fr.scale, _mm(kb.T, gs), r0


def frozen_parts_root(el: Eliminated, fr: Frozen):
    """(C_hat, Q_hat, h_hat, r0) of a square-root problem in the frozen basis."""
    mk = _mm(el.f22, fr.basis)
    qhat = _sym(_mm(_mm(fr.basis.T, el.pen), fr.basis)) * fr.scale
    return _mm(mk.T, mk), qhat, _mm(mk.T, el.f2), el.rho2 + jnp.sum(el.f2 * el.f2)


def frozen_parts_tangents(bl: Blocks, tangents: Blocks, fr: Frozen):
    """``frozen_parts`` of Gram blocks and its derivatives along L tangents.

    ``tangents``: a Blocks whose b, c, g2 and pen carry a leading axis of L
    (a, g1, yy and n are taken as fixed). The tangents are carried into the
    frozen basis by a few large products instead of L small ones.

    Returns ((C_hat, Q_hat, h_hat, r0), (dC_hat (L, q, q), dQ_hat, dh_hat
    (L, q)), curvature, pullback): ``curvature(cbar)`` is the (L, L) second
    derivative of <cbar, C_hat> along the tangent pairs, which the Schur
    complement C - B'A^{-1}B makes nonzero (C_hat is quadratic in B);
    ``pullback((cbar, qbar, hbar))`` carries a cotangent of (C_hat, Q_hat,
    h_hat) back to the blocks (a Blocks)."""
    (chat, qhat, hhat), pullback = jax.vjp(lambda b: frozen_parts(b, fr)[:3], bl)
    chol_a, ainv_b, ainv_g1, _, _, r0 = eliminate_null(bl)
    kb = fr.basis
    tb = tangents.b                                            # (L, m, q)
    cross = jnp.einsum("lab,ac->lbc", tb, ainv_b, precision=_HI)
    dcs = tangents.c - cross - jnp.swapaxes(cross, 1, 2)
    in_basis = lambda x: jnp.einsum("ai,lab,bj->lij", kb, x, kb, precision=_HI)
    dchat = in_basis(dcs)
    dqhat = in_basis(0.5 * (tangents.pen + jnp.swapaxes(tangents.pen, 1, 2))) * fr.scale
    dgs = tangents.g2 - jnp.einsum("lab,a->lb", tb, ainv_g1, precision=_HI)
    dhhat = jnp.einsum("ai,la->li", kb, dgs, precision=_HI)
    # A^{-1} dB_l for all l as one product with the (m, m) inverse: LAPACK's
    # triangular solve of an m x m factor against L q columns took 2 ms a
    # step at m = 15, L q = 2500 (K = 50 student, quiet 2-core CPU), the
    # product 0.1 ms
    ainv = cho_solve((chol_a, True), jnp.eye(tb.shape[1], dtype=tb.dtype))
    ainv_tb = jnp.einsum("ab,lbq->alq", ainv, tb, precision=_HI)   # (m, L, q)

    def curvature(cbar):
        # d2 C_s [k, l] = -(dB_k' A^{-1} dB_l + dB_l' A^{-1} dB_k); <cbar_s, .> with cbar_s = K cbar K'
        cbar_s = _mm(_mm(kb, _sym(cbar)), kb.T)
        t = jnp.einsum("ab,kca,clb->kl", cbar_s, tb, ainv_tb, precision=_HI)
        return -(t + t.T)

    return (chat, qhat, hhat, r0), (dchat, dqhat, dhhat), curvature, lambda cot: pullback(cot)[0]
