"""Smoothing-spline density estimation on a box (``kc.SSDensity``; gss's
``ssden``).

Model: the density of x on the box D = prod_v [lo_v, hi_v] is
f(x) = e^{eta(u)} / int_{[0,1]^d} e^{eta} / vol(D), with u the covariates
mapped to [0, 1] by the domains and eta an SS-ANOVA function without its
constant (the same terms, marginals and random basis points as the regression
model): eta(u) = s(u)'d + sum_j c_j R_theta(u, z_j). The fit minimises, over
b = (d, c),

    A(b) = -(1/n) sum_i eta(u_i) + log int e^eta + (lambda / 2) c'Q_theta c

(Gu & Qiu 1993). A is convex; it is minimised by damped Newton steps, whose
gradient and Hessian need only the data's mean feature vector (one pass over
the rows) and the mean and covariance of the features under the fitted
density (by quadrature).

Quadrature: a tensor product of Gauss-Legendre rules on [0, 1]^d, ``nodes``
points per dimension (default 200, 48, 20, 12 for d = 1, 2, 3, 4). eta is a
piecewise polynomial with breaks at the basis points, so the rule is not exact;
its error on the normalizing integral is measured by ``tests/test_ssden.py``
against a fine midpoint grid (below 1e-6 relative in d = 1 and 2 at the
defaults, see the README).

At very small lambda eta can spike between the nodes, where a rule
underestimates the integral and the score below would reward it: the
selection only accepts values where a finer check rule (``nodes`` + max(4,
nodes/4) per dimension) gives the same log integral to 1e-3.

Selection of lambda and every theta (as s_b = log(lambda / theta_b), the
identified combinations) minimises the approximate cross-validated
Kullback-Leibler score of Gu & Wang (2003), with gss's inflation alpha = 1.4:

    V = -(1/n) sum_i eta(u_i) + log int e^eta + alpha tr(H^-1 S) / (n - 1)

with H the Hessian of A at its minimum and S the data covariance of the
feature vectors (the leave-one-out change of the mean log-likelihood,
linearised). Newton steps on s (``select.newton``); each score evaluation
solves the inner problem; derivatives come from two Newton steps of the
inner problem from its solution (exact at the solution: the implicit
derivative).

``log_density`` is in the units of x (per unit volume of the original box).
"""
from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from kcascade import checks, compilation, kernels, progress as progress_lines, protocol, scaling, select
from kcascade.anova import terms
from kcascade.anova.design import default_n_basis, draw_basis, scale_rows
from kcascade.estimators.ssanova_fit import Hyper

_HI = jax.lax.Precision.HIGHEST
DEFAULT_NODES = {1: 200, 2: 48, 3: 20, 4: 12}
MIN_STUDENT_NODES = 6   # the coarsest rule per dimension a cascade's student gets (``SSDensity.for_student``)
MAX_D = 4
SP_BOX = 15.0        # s stays within this of the start's range (as the regression engine)
INNER_STEPS = 60     # most damped Newton steps of the inner problem
QUAD_TOL = 1e-3      # largest disagreement of the check rule's log integral at a candidate the selection accepts
SCALE_OFFSETS = np.linspace(-3.0, 5.0, 17)   # fit(hyper=..., scale_search=True): log lambda offsets tried
BOUNDARY_STEPS = 3   # bisections towards the unresolved side when the best offset is the smallest resolved one


@dataclasses.dataclass(frozen=True)
class SSDensity(protocol.Estimator):
    """Frozen configuration of a smoothing-spline density estimate.

    Args:
      order: highest interaction order of log f (1: independent covariates,
        f a product of marginals).
      marginals: "cubic" (default), "linear" or "periodic", one name or a
        tuple with one per covariate (nominal covariates: not yet).
      domains: None, or one entry per covariate: None (the data range widened
        5% each side) or (lo, hi); every row must lie in it. Periodic
        covariates need (lo, hi) = their period.
      alpha: the cross-validation score's inflation (1.4 as gss).
      n_basis: basis points q (default gss's rule ``default_n_basis``).
      nodes: Gauss-Legendre points per dimension (default by d:
        ``DEFAULT_NODES``).
      max_steps: most Newton steps of the selection.
    """

    order: int = 2
    marginals: tuple | str = "cubic"
    domains: tuple | None = None
    alpha: float = 1.4
    n_basis: int | None = None
    nodes: int | None = None
    max_steps: int = 40

    supervised: ClassVar[bool] = False
    randomized: ClassVar[bool] = True
    capabilities: ClassVar[frozenset] = frozenset({"init", "progress", "scale_search"})

    def __post_init__(self):
        if not isinstance(self.order, (int, np.integer)) or self.order < 1:
            raise ValueError(f"order: expected an integer >= 1, got {self.order!r}")
        names = (self.marginals,) if isinstance(self.marginals, str) else tuple(self.marginals)
        for nm in names:
            if nm not in ("cubic", "linear", "periodic"):
                raise ValueError(f"marginals: SSDensity takes 'cubic', 'linear' or 'periodic', got {nm!r}")
        if not isinstance(self.marginals, str):
            object.__setattr__(self, "marginals", names)
        if self.domains is not None:
            object.__setattr__(self, "domains", tuple(None if d is None else tuple(float(v) for v in d)
                                                      for d in self.domains))
        if not (isinstance(self.alpha, (int, float)) and 0 < self.alpha < math.inf):
            raise ValueError(f"alpha: expected a finite number > 0, got {self.alpha!r}")
        for name in ("n_basis", "nodes"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, (int, np.integer)) or v < 2):
                raise ValueError(f"{name}: expected None or an integer >= 2, got {v!r}")
        if not isinstance(self.max_steps, (int, np.integer)) or self.max_steps < 0:
            raise ValueError(f"max_steps: expected an integer >= 0, got {self.max_steps!r}")

    # -- structure -------------------------------------------------------------
    def marginals_for(self, d: int) -> tuple:
        """One ``kernels.Marginal`` per covariate."""
        return kernels.marginals_for(self.marginals, d)

    def structure(self, d: int) -> terms.Structure:
        if self.order > d:
            raise ValueError(f"order: expected 1 <= order <= d = {d} (columns of x), got {self.order}")
        return terms.build(self.marginals_for(d), self.order)

    def nodes_for(self, d: int) -> int:
        return self.nodes if self.nodes is not None else DEFAULT_NODES[d]

    def for_student(self, d: int, n_student: int, n: int) -> "SSDensity":
        """A cascade's students use a coarser rule: nodes per dimension scaled
        by (n_student / n)^(1/5), at least ``MIN_STUDENT_NODES``. The scale
        on which a selected log density varies (a cubic spline's equivalent
        kernel width, lambda^(1/4), with lambda ~ n^(-4/5)) shrinks as
        n^(-1/5), so a student's selections are resolved by a rule that much
        coarser; the teacher keeps ``nodes_for(d)`` (its scale search
        re-checks its lambda on that rule). Measured on gauss3 (n = 1e4 and
        3e4, seed 1): students 3.1 -> 0.5-1.2 s and the teacher's held-out
        log-likelihood 0.9839 -> 0.9883-0.9900 and 0.9896 -> 1.0045 (full
        selection: 0.9950, 1.0021) with 14 or 10 nodes instead of 20."""
        per = max(MIN_STUDENT_NODES, math.ceil(self.nodes_for(d) * (n_student / n) ** 0.2))
        return self if per >= self.nodes_for(d) else dataclasses.replace(self, nodes=int(per))

    # -- the estimator protocol ------------------------------------------------
    def default_law(self, d: int) -> scaling.Law:
        """lambda ~ n^{-r/(pr+1)} (Gu 2013, ch. 9: the same rates as regression)."""
        return kernels.spline_law(self.marginals_for(d))

    def scale_of(self, hyper: Hyper):
        return hyper.log_lambda

    def capacity(self, n: int) -> int:
        return self.n_basis if self.n_basis is not None else default_n_basis(n)

    def min_rows(self, d: int) -> int:
        return max(30, self.n_basis or 0) + 1

    def check_data(self, x, y=None, hyper=None):
        """``fit``'s checks; returns (x, None) with x a float array."""
        if y is not None:
            raise ValueError("y: SSDensity is a density estimator and takes no responses; call fit(x, key=...)")
        x = checks.as_array(x)
        n, d = checks.float_matrix(x, "x")
        if not 1 <= d <= MAX_D:
            raise ValueError(f"x: SSDensity works for d = 1 to {MAX_D} columns (its integrals are tensor "
                             f"quadratures), got d = {d}")
        structure = self.structure(d)
        q = self.capacity(n)
        if n < max(q, self.min_rows(d)):
            raise ValueError(f"x: expected at least {max(q, self.min_rows(d))} rows, got n = {n}")
        given = self.domains if self.domains is not None else (None,) * d
        if len(given) != d:
            raise ValueError(f"domains: expected {d} entries (one per column of x), got {len(given)}")
        dtype = x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.result_type(float)
        x = jnp.asarray(x, dtype)
        if checks.is_concrete(x):
            checks.finite(x, "x")
            lo, hi, codes = checks.column_facts(x)
            for v, (marg, dom) in enumerate(zip(structure.marginals, given)):
                marg.check_column(v, dom, lo[v], hi[v], codes[v])
        if hyper is not None:
            if not isinstance(hyper, Hyper) or np.shape(hyper.log_theta) != (structure.k,):
                raise ValueError(f"hyper: expected a kc.Hyper with log_theta of shape ({structure.k},)")
        return x, None

    # -- fitting ---------------------------------------------------------------
    def fit(self, x, *, key, hyper: Hyper | None = None, init: Hyper | None = None,
            scale_search: bool = False, progress: bool = False) -> "SSDensityFit":
        """Fit; select lambda and all theta by cross-validation unless
        ``hyper`` is given.

        Args:
          x: (n, d) rows, 1 <= d <= 4, inside ``domains`` when given.
          key: a ``jax.random`` key (draws the basis points).
          hyper: fixed smoothing parameters (a ``kc.Hyper``).
          init: a start for the selection (e.g. values transferred from a
            smaller sample).
          scale_search: with ``hyper``, keep its thetas and choose log lambda
            among ``hyper.log_lambda`` + ``SCALE_OFFSETS`` (-3 to +5 in steps
            of 0.5) by the cross-validation score, over the values the
            quadrature resolves (what the selection accepts), refined by
            ``BOUNDARY_STEPS`` bisections where the best is the smallest
            resolved offset; the largest offset where none is resolved. One
            inner solve per value tried, no extra pass over the rows
            (``kc.cascade``'s teacher, by default).
          progress: progress lines on stderr.
        Returns:
          An ``SSDensityFit``.
        """
        checks.random_key(key)
        if hyper is not None and init is not None:
            raise ValueError("init: give either hyper (fixed) or init (a starting point), not both")
        if scale_search and hyper is None:
            raise ValueError("scale_search: needs hyper (the thetas to keep and a starting lambda)")
        x, _ = self.check_data(x, hyper=hyper if hyper is not None else init)
        n, d = x.shape
        what = "one solve at the given smoothing parameters" if hyper is not None else \
            f"selection of {self.structure(d).k} smoothing parameters"
        with progress_lines.phase(f"SS density on {n} rows: {what}", on=bool(progress)):
            fit = jax.block_until_ready(_fit_jit(self, x, key, hyper, init, bool(scale_search)))
        if checks.is_concrete(fit.resolved) and not bool(fit.resolved):
            warnings.warn(f"SSDensity: the quadrature does not resolve the fitted log density (a finer rule's log "
                          f"integral differs by more than {QUAD_TOL:g}); raise nodes= (now {self.nodes_for(d)} per "
                          "dimension) or use larger smoothing parameters", RuntimeWarning, stacklevel=2)
        return fit


class _Problem:
    """The statistics of one fit: data means and covariances of the features,
    the features at the quadrature nodes, the penalty blocks."""

    def __init__(self, model, x, key):
        n, d = x.shape
        self.structure = model.structure(d)
        margs = self.structure.marginals
        given = model.domains if model.domains is not None else (None,) * d
        self.domains = jnp.stack([m.domain(x[:, v], g) for v, (m, g) in enumerate(zip(margs, given))])
        u = scale_rows(margs, x, self.domains)
        q = model.capacity(n)
        self.basis = draw_basis(key, x, u, q)
        self.n = n
        # data: mean and second moments of the features (constant column dropped)
        s, r = terms.features(self.structure, u, self.basis, self.domains)
        s = s[:, 1:]
        self.mean_s, self.mean_r = jnp.mean(s, 0), jnp.mean(r, 1)                  # (m',), (K, q)
        self.ss = jnp.einsum("ia,ib->ab", s, s, precision=_HI) / n                  # (m', m')
        self.sr = jnp.einsum("ia,kiq->kaq", s, r, precision=_HI) / n                # (K, m', q)
        self.rr = jnp.einsum("kip,liq->klpq", r, r, precision=_HI) / n              # (K, K, q, q)
        # quadrature on [0, 1]^d, and a finer check rule
        per = model.nodes_for(d)
        self.node_u, self.log_w = _rule(per, d, x.dtype)
        sn, rn = terms.features(self.structure, self.node_u, self.basis, self.domains)
        self.node_s, self.node_r = sn[:, 1:], rn                                      # (N, m'), (K, N, q)
        check_u, self.check_log_w = _rule(per + max(4, per // 4), d, x.dtype)
        sc, rc = terms.features(self.structure, check_u, self.basis, self.domains)
        self.check_s, self.check_r = sc[:, 1:], rc
        _, rb = terms.features(self.structure, self.basis, self.basis, self.domains)
        self.pen = 0.5 * (rb + jnp.swapaxes(rb, 1, 2))                                # (K, q, q)
        self.m = self.node_s.shape[1]

    def at(self, s):
        """(xi_bar (p,), G (N, p), P (p, p), S (p, p)) at s_b = log(lambda/theta_b),
        with lambda = 1 and theta_b = e^{-s_b} (only s is identified)."""
        theta = jnp.exp(-s)
        m = self.m
        xi = jnp.concatenate([self.mean_s, theta @ self.mean_r])
        g = jnp.concatenate([self.node_s, jnp.einsum("k,knq->nq", theta, self.node_r, precision=_HI)], axis=1)
        q_theta = jnp.einsum("k,kab->ab", theta, self.pen, precision=_HI)
        p = xi.shape[0]
        pen = jnp.zeros((p, p), s.dtype).at[m:, m:].set(q_theta)
        sr = jnp.einsum("k,kaq->aq", theta, self.sr)
        rr = jnp.einsum("k,l,klpq->pq", theta, theta, self.rr)
        second = jnp.block([[self.ss, sr], [sr.T, rr]])
        cov = second - jnp.outer(xi, xi)
        return xi, g, pen, 0.5 * (cov + cov.T)

    def objective(self, b, xi, g, pen):
        """(A(b), log int e^eta, the density's weights on the nodes)."""
        eta = jnp.matmul(g, b, precision=_HI)
        log_norm = jax.scipy.special.logsumexp(eta + self.log_w)
        return -xi @ b + log_norm + 0.5 * b @ pen @ b, log_norm, jnp.exp(eta + self.log_w - log_norm)

    def newton_step(self, b, xi, g, pen):
        """One undamped Newton step of A from b, and its parts."""
        _, _, pi = self.objective(b, xi, g, pen)
        mu = pi @ g
        hess = (g * pi[:, None]).T @ g - jnp.outer(mu, mu) + pen
        grad = -xi + mu + pen @ b
        return b - _psd_solve(hess, grad), grad, hess

    def solve(self, s, b0, parts=None):
        """The minimiser of A at s by damped Newton from b0. ``parts``:
        ``self.at(s)`` where the caller has it already."""
        xi, g, pen, _ = self.at(s) if parts is None else parts

        def going(c):
            k, _, _, done = c
            return (k < INNER_STEPS) & ~done

        def body(c):
            k, b, a, _ = c
            full, grad, _ = self.newton_step(b, xi, g, pen)
            step = full - b

            def halve(t):
                return self.objective(b + t * step, xi, g, pen)[0] > a + 1e-12 * jnp.abs(a)

            t = jax.lax.while_loop(lambda t: halve(t) & (t > 1e-10), lambda t: 0.5 * t, jnp.asarray(1.0, b.dtype))
            b_new = b + t * step
            a_new = self.objective(b_new, xi, g, pen)[0]
            decrement = -grad @ step
            return k + 1, b_new, a_new, (decrement < 1e-13 * (1 + jnp.abs(a_new))) | ~(a_new < a + 1e-15)

        a0 = self.objective(b0, xi, g, pen)[0]
        _, b, a, _ = jax.lax.while_loop(going, body, (jnp.asarray(0), b0, a0, jnp.asarray(False)))
        return b

    def resolved(self, s, b, parts=None):
        """Whether the quadrature resolves eta = G b at s: the finer check rule's
        log integral agrees to ``QUAD_TOL``. Where it does not (eta with spikes
        between the nodes, at very small lambda), the score is not trusted."""
        theta = jnp.exp(-s)
        g = jnp.concatenate([self.check_s, jnp.einsum("k,knq->nq", theta, self.check_r, precision=_HI)], axis=1)
        fine = jax.scipy.special.logsumexp(jnp.matmul(g, b, precision=_HI) + self.check_log_w)
        xi, g0, pen, _ = self.at(s) if parts is None else parts
        return jnp.abs(fine - self.objective(b, xi, g0, pen)[1]) < QUAD_TOL

    def score_at(self, s, b, alpha, parts=None):
        """V(s) with b taken as the inner minimiser."""
        xi, g, pen, cov = self.at(s) if parts is None else parts
        _, log_norm, pi = self.objective(b, xi, g, pen)
        mu = pi @ g
        hess = (g * pi[:, None]).T @ g - jnp.outer(mu, mu) + pen
        loo = jnp.trace(_psd_solve(hess, cov)) / (self.n - 1)
        return -xi @ b + log_norm + alpha * loo

    def trusted_score(self, s, b0, alpha):
        """(V(s) where the quadrature resolves the inner minimiser, else inf;
        that minimiser, from b0), with the parts at s formed once."""
        parts = self.at(s)
        b = self.solve(s, b0, parts)
        return jnp.where(self.resolved(s, b, parts), self.score_at(s, b, alpha, parts), jnp.inf), b

    def local(self, b_at, alpha):
        """s -> V(s, b(s)) with b(s) two Newton steps from b_at: equal to V at
        the point b_at solves, with the implicit derivatives there."""
        def score(s):
            xi, g, pen, _ = self.at(s)
            b = self.newton_step(b_at, xi, g, pen)[0]
            b = self.newton_step(b, xi, g, pen)[0]
            return self.score_at(s, b, alpha)
        return score


def _rule(per: int, d: int, dtype):
    """Tensor Gauss-Legendre rule on [0, 1]^d: (nodes (per^d, d), log weights)."""
    t, w = np.polynomial.legendre.leggauss(per)
    t, w = (t + 1) / 2, w / 2
    grid = np.stack(np.meshgrid(*([t] * d), indexing="ij"), -1).reshape(-1, d)
    wts = np.prod(np.stack(np.meshgrid(*([w] * d), indexing="ij"), -1).reshape(-1, d), axis=1)
    return jnp.asarray(grid, dtype), jnp.log(jnp.asarray(wts, dtype))


def _psd_solve(h, rhs):
    """h^-1 rhs for a symmetric positive definite h (Cholesky, with a ridge of
    1e-12 of the mean diagonal; differentiable, unlike an eigendecomposition
    with repeated eigenvalues)."""
    h = 0.5 * (h + h.T)
    ridge = 1e-12 * jnp.trace(h) / h.shape[0]
    factor = jax.scipy.linalg.cho_factor(h + ridge * jnp.eye(h.shape[0], dtype=h.dtype))
    return jax.scipy.linalg.cho_solve(factor, rhs)


def _hyper_of(s):
    ll = jnp.mean(s)
    return Hyper(ll, ll - s)


def _s_of(hyper):
    return hyper.log_lambda - hyper.log_theta


def _scale_search(prob, s, b0, alpha):
    """s + the offset of ``SCALE_OFFSETS`` whose inner minimiser has the
    lowest trusted score (``trusted_score``: inf where the quadrature does not
    resolve it); the largest offset where none is resolved. The offsets are
    visited from the largest down, each solve starting from the last one's
    minimiser. Where the best is the smallest resolved offset (the score
    still falling towards the unresolved side), ``BOUNDARY_STEPS`` bisections
    between it and the next offset move it to the lowest-scoring resolved
    value found there."""
    offsets = jnp.asarray(SCALE_OFFSETS[::-1], s.dtype)

    def visit(b, delta):
        value, b = prob.trusted_score(s + delta, b, alpha)
        return b, (value, b)

    _, (values, bs) = jax.lax.scan(visit, b0, offsets)
    resolved = jnp.isfinite(values)
    best = jnp.where(jnp.any(resolved), jnp.argmin(values), 0)
    # offsets descend: best + 1 is the next smaller lambda
    below = jnp.minimum(best + 1, offsets.shape[0] - 1)
    at_edge = jnp.any(resolved) & (best + 1 < offsets.shape[0]) & ~resolved[below]

    def bisect(_, carry):
        hi, lo, value, b = carry            # hi: resolved and best so far; lo: not resolved
        mid = 0.5 * (hi + lo)
        v, b_mid = prob.trusted_score(s + mid, b, alpha)
        better = jnp.isfinite(v) & (v < value)
        # not better (unresolved, or a higher score): the better side is hi's
        return (jnp.where(better, mid, hi), jnp.where(better, lo, mid),
                jnp.where(better, v, value), jnp.where(better, b_mid, b))

    start = (offsets[best], offsets[below], values[best], bs[best])
    return s + jax.lax.cond(at_edge, lambda: jax.lax.fori_loop(0, BOUNDARY_STEPS, bisect, start)[0],
                            lambda: offsets[best])


def _fit_impl(model, x, key, hyper, init, scale_search=False):
    prob = _Problem(model, x, key)
    k = prob.structure.k
    p = prob.m + prob.basis.shape[0]
    b0 = jnp.zeros((p,), x.dtype)
    if hyper is not None:
        s = _s_of(hyper).astype(x.dtype)
        if scale_search:
            s = _scale_search(prob, s, b0, model.alpha)
    else:
        if init is not None:
            s0 = _s_of(init).astype(x.dtype)
        else:
            # gss's start: thetas giving every kernel the same trace at the
            # basis, then log lambda on a grid
            log_theta = -jnp.log(jnp.trace(prob.pen, axis1=1, axis2=2) + jnp.finfo(x.dtype).tiny)
            grid = jnp.linspace(-14.0, 2.0, 17, dtype=x.dtype)

            def grid_score(ll):
                return prob.trusted_score(ll - log_theta, b0, model.alpha)[0]

            values = jax.lax.map(grid_score, grid)
            s0 = grid[jnp.argmin(jnp.where(jnp.isfinite(values), values, jnp.inf))] - log_theta

        res = select.newton(lambda s: prob.trusted_score(s, b0, model.alpha), s0, local=lambda b: prob.local(b, model.alpha),
                            lower=jnp.full((k,), jnp.min(s0) - SP_BOX), upper=jnp.full((k,), jnp.max(s0) + SP_BOX),
                            max_steps=model.max_steps, f_scale=1.0)
        s = res.x
    parts = prob.at(s)
    b = prob.solve(s, b0, parts)
    xi, g, pen, _ = parts
    _, log_norm, _ = prob.objective(b, xi, g, pen)
    score = prob.score_at(s, b, model.alpha, parts)
    log_volume = jnp.sum(jnp.log(prob.domains[:, 1] - prob.domains[:, 0]))
    return SSDensityFit(model=model, hyper=_hyper_of(s), domains=prob.domains, basis=prob.basis,
                        coef=b, log_norm=log_norm + log_volume, score=score, n=jnp.asarray(x.shape[0]),
                        resolved=prob.resolved(s, b, parts))


_fit_jit = compilation.jit(_fit_impl, static_argnums=(0, 5))


@dataclasses.dataclass(frozen=True)
class SSDensityFit(protocol.Fit):
    """A fitted smoothing-spline density (a pytree).

    Attributes:
      model: the ``SSDensity``; hyper: its smoothing parameters (mean log
        theta 0, as regression fits).
      domains (d, 2), basis (q, d): the box and the scaled basis points.
      coef: (m' + q,) coefficients of eta (null columns without the
        constant, then the basis).
      log_norm: log of the normalizing integral in the units of x
        (log int_{[0,1]^d} e^eta + log vol(box)).
      score: the cross-validation score V at hyper; n: rows fitted.
      resolved: whether a finer quadrature rule gives the same log integral
        to 1e-3 (``fit`` warns when not).
    """

    model: Any
    hyper: Hyper
    domains: jax.Array
    basis: jax.Array
    coef: jax.Array
    log_norm: jax.Array
    score: jax.Array
    n: jax.Array
    resolved: jax.Array

    def __repr__(self):
        return protocol.short_repr(self, n=self.n, d=self.domains.shape[-2], q=self.basis.shape[-2],
                                   log_lambda=self.hyper.log_lambda, score=self.score) + f" of {self.model!r}"

    @property
    def structure(self):
        return self.model.structure(self.domains.shape[0])

    def eta(self, x_new):
        """(m,) eta (the unnormalised log density) at rows ``x_new`` (m, d)."""
        x_new = checks.query_rows(x_new, self.domains.shape[0], self.coef.dtype)
        return _eta_jit(self, x_new)

    def log_density(self, x_new):
        """(m,) log f at ``x_new`` (m, d), per unit volume in the units of x;
        rows outside the box get -inf."""
        x_new = checks.query_rows(x_new, self.domains.shape[0], self.coef.dtype)
        inside = jnp.all((x_new >= self.domains[:, 0]) & (x_new <= self.domains[:, 1]), axis=1)
        periodic = jnp.asarray([m.name == "periodic" for m in self.structure.marginals])
        inside = inside | jnp.all(periodic)
        return jnp.where(inside, _eta_jit(self, x_new) - self.log_norm, -jnp.inf)

    def evaluate(self, x_new):
        """The protocol's name for ``log_density``."""
        return self.log_density(x_new)

    def sample(self, key, m: int):
        """(m, d) approximate draws: a cell of a uniform grid (2^(16/d) per
        dimension, cells of the box) chosen with probability proportional to
        f at its centre, then a uniform point in it."""
        checks.random_key(key)
        if not (isinstance(m, (int, np.integer)) and m >= 1):
            raise ValueError(f"m: expected an integer >= 1, got {m!r}")
        d = self.domains.shape[0]
        per = max(2, int(round(2 ** (16 / d))))
        edges = (np.arange(per) + 0.5) / per
        centres = np.stack(np.meshgrid(*([edges] * d), indexing="ij"), -1).reshape(-1, d)
        lo, width = np.asarray(self.domains[:, 0]), np.asarray(self.domains[:, 1] - self.domains[:, 0])
        x_c = jnp.asarray(lo + centres * width, self.coef.dtype)
        k1, k2 = jax.random.split(key)
        cell = jax.random.categorical(k1, self.log_density(x_c), shape=(m,))
        jitter = jax.random.uniform(k2, (m, d), self.coef.dtype, -0.5, 0.5) / per
        return x_c[cell] + jitter * jnp.asarray(width, self.coef.dtype)

    def save(self, path) -> str:
        """Write this fit to ``path`` (.npz, no pickle); ``kc.load(path)`` reads it."""
        from kcascade import persist
        return persist.save(self, path)


def _eta_impl(fit, x_new):
    structure = fit.structure
    u = scale_rows(structure.marginals, x_new, fit.domains)

    def one_chunk(uc):
        s, r = terms.features(structure, uc, fit.basis, fit.domains)
        theta = jnp.exp(fit.hyper.log_theta - fit.hyper.log_lambda)
        feats = jnp.concatenate([s[:, 1:], jnp.einsum("k,kcq->cq", theta, r, precision=_HI)], axis=1)
        return jnp.matmul(feats, fit.coef, precision=_HI)

    return jax.lax.map(lambda row: one_chunk(row[None])[0], u, batch_size=256)


jax.tree_util.register_dataclass(
    SSDensityFit, data_fields=["hyper", "domains", "basis", "coef", "log_norm", "score", "n", "resolved"], meta_fields=["model"])
_eta_jit = compilation.jit(_eta_impl)
