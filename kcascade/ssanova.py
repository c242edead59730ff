"""Smoothing-spline ANOVA regression (Gaussian response).

Conventions (also in the README):

- Each continuous covariate is mapped to [0, 1] by a domain (lo, hi) kept in
  the fit; by default the data range widened by 5% on each side. Periodic
  covariates need their exact period as domain. Nominal covariates take
  integer codes 0..L-1; their domain is (0, L).
- The fit minimises (1/n) sum (y_i - eta(x_i))^2 + lambda sum_b theta_b^{-1}
  ||P_b eta||^2. ``Hyper`` holds natural logs; lambda and a common factor of
  the thetas are not separately identified, so a selected Hyper is reported
  with mean(log_theta) = 0.
"""
from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import solve_triangular

from kcascade import checks, kernels, optim, solve, stats, terms

_HI = jax.lax.Precision.HIGHEST


class Hyper(NamedTuple):
    """Smoothing parameters, natural logs: log_lambda scalar, log_theta (K,)."""

    log_lambda: jax.Array
    log_theta: jax.Array

    def transferred(self, delta_log):
        """The same hyperparameters with lambda multiplied by exp(delta_log)."""
        return self._replace(log_lambda=self.log_lambda + delta_log)


def default_n_basis(n: int) -> int:
    """q = max(30, ceil(10 n^{2/9})), capped at n (gss's rule)."""
    return min(n, max(30, math.ceil(10 * n ** (2 / 9))))


@dataclasses.dataclass(frozen=True)
class SSANOVA:
    """Frozen configuration of an SS-ANOVA regression.

    Args:
      order: highest interaction order (1 = additive).
      marginals: one name for every covariate, or a tuple with one per
        covariate: "cubic" (default), "linear", "periodic", "nominal".
      domains: None, or a tuple with one entry per covariate: None (data range
        widened 5% each side), (lo, hi), or for a nominal covariate the number
        of levels L. Periodic covariates need (lo, hi) = their exact period.
      score: "gcv" (default) or "gml".
      alpha: GCV inflation factor (1.4 as in gss; 1 is classical GCV).
      n_basis: number of random basis points q; default ``default_n_basis(n)``.
      chunk: rows per chunk when accumulating statistics; default automatic.
      max_steps: L-BFGS steps per refinement round.
      statistics: how the one pass over the rows summarises them: "gram"
        (Z'Z, one matrix product per chunk: fast, accurate in float64), "qr"
        (a streamed QR factor of [Z, y]: about twice the work, never squares
        the conditioning, accurate in float32) or "auto" (default): "qr" for
        float32 data, "gram" for float64.
    """

    order: int = 2
    marginals: tuple | str = "cubic"
    domains: tuple | None = None
    score: str = "gcv"
    alpha: float = 1.4
    n_basis: int | None = None
    chunk: int | None = None
    max_steps: int = 40
    statistics: str = "auto"

    def __post_init__(self):
        if not isinstance(self.order, (int, np.integer)) or self.order < 1:
            raise ValueError(f"order: expected an integer >= 1, got {self.order!r}")
        if self.statistics not in ("auto", "gram", "qr"):
            raise ValueError(f"statistics: expected 'auto', 'gram' or 'qr', got {self.statistics!r}")
        if self.score not in ("gcv", "gml"):
            raise ValueError(f"score: expected 'gcv' or 'gml', got {self.score!r}")
        if not (isinstance(self.alpha, (int, float)) and self.alpha > 0 and math.isfinite(self.alpha)):
            raise ValueError(f"alpha: expected a finite number > 0, got {self.alpha!r}")
        if self.n_basis is not None and (not isinstance(self.n_basis, (int, np.integer)) or self.n_basis < 1):
            raise ValueError(f"n_basis: expected None or an integer >= 1, got {self.n_basis!r}")
        names = (self.marginals,) if isinstance(self.marginals, str) else tuple(self.marginals)
        for nm in names:
            kernels.marginal(nm)
        if not isinstance(self.marginals, str):
            object.__setattr__(self, "marginals", tuple(self.marginals))
        if self.domains is not None:
            object.__setattr__(self, "domains", tuple(
                d if d is None or isinstance(d, (int, np.integer)) else tuple(float(v) for v in d)
                for d in self.domains))

    # -- structure ---------------------------------------------------------
    def marginals_for(self, d: int) -> tuple:
        if isinstance(self.marginals, str):
            return tuple(kernels.marginal(self.marginals) for _ in range(d))
        if len(self.marginals) != d:
            raise ValueError(f"marginals: expected {d} entries (one per column of x), got {len(self.marginals)}")
        return tuple(kernels.marginal(nm) for nm in self.marginals)

    def structure(self, d: int) -> terms.Structure:
        if self.order > d:
            raise ValueError(f"order: expected 1 <= order <= d = {d} (columns of x), got {self.order}")
        return terms.build(self.marginals_for(d), self.order)

    # -- fitting -------------------------------------------------------------
    def default_law(self, d: int):
        """The smoothing-spline law lambda ~ n^{-r/(pr+1)}: r = 4 for cubic
        (and periodic) splines, r = 2 for linear splines (the slowest
        eigenvalue decay among the marginals), p = 2."""
        from kcascade import laws

        r = 2.0 if "linear" in (self.marginals if isinstance(self.marginals, tuple) else (self.marginals,)) else 4.0
        return laws.smoothing_spline(r=r, p=2.0)

    @staticmethod
    def scale_of(hyper: Hyper):
        """The scale parameter a scaling law acts on: log lambda."""
        return hyper.log_lambda

    def min_rows(self, d: int) -> int:
        """The fewest rows a fit accepts: basis size plus null-space size."""
        m, n = self.structure(d).m, 1
        while n < self.n_basis_for(n) + m:
            n += 1
        return n

    def fit(self, x, y, *, key, hyper: Hyper | None = None, init: Hyper | None = None,
            lambda_search: bool = False, mesh=None, progress: bool = False) -> "SSANOVAFit":
        """Fit; select lambda and all theta unless ``hyper`` is given.

        Args:
          x: (n, d) float covariates (integer codes for nominal columns).
          y: (n,) float responses.
          key: a ``jax.random`` key; draws the basis points.
          hyper: fixed smoothing parameters; then one solve, no search.
          init: a starting point for the selection instead of the lambda grid
            (e.g. values transferred from a smaller sample).
          lambda_search: with ``hyper``, keep its thetas but choose lambda by
            the score on a grid of log lambda within +-6 of ``hyper.log_lambda``,
            from the same one-pass statistics (no extra pass over the rows).
          mesh: a ``jax.sharding.Mesh``: the pass over the rows is split over
            all its devices (rows sharded over every mesh axis; each device
            accumulates its own rows; the statistics are reduced across
            devices). x and y may be global arrays spanning several processes
            (``jax.distributed``); the fit returned is then a local copy on
            every process. None: one device.
          progress: print a progress line to stderr during long passes.
        Returns:
          An ``SSANOVAFit`` (a pytree).
        """
        if hyper is not None and init is not None:
            raise ValueError("init: give either hyper (fixed) or init (a starting point), not both")
        if lambda_search and hyper is None:
            raise ValueError("lambda_search: needs hyper (the thetas to keep and a starting lambda)")
        mesh = _auto_mesh(mesh)
        x, y = _on_mesh(mesh, *self._validate(x, y, hyper if hyper is not None else init))
        fit = _fit_jit(self, x, y, key, hyper, init, bool(lambda_search), mesh, bool(progress))
        return _local(fit)

    def refine(self, x, y, hyper: Hyper, *, key, steps: int, mesh=None, progress: bool = False) -> Hyper:
        """``steps`` L-BFGS steps of this model's score on (x, y), from ``hyper``.

        Each score evaluation is one pass over the rows (statistics of width
        m + q), so the cost is a few teacher fits per step. Returns the
        better of the start and the end point.
        """
        if not (isinstance(steps, (int, np.integer)) and steps >= 1):
            raise ValueError(f"steps: expected an integer >= 1, got {steps!r}")
        mesh = _auto_mesh(mesh)
        x, y = _on_mesh(mesh, *self._validate(x, y, hyper))
        return _local(_refine_jit(self, x, y, key, hyper, int(steps), mesh, bool(progress)))

    def score_at(self, x, y, hyper: Hyper, *, key):
        """The selection score (GCV or GML, per ``score``) at ``hyper``, with the
        same basis points as ``fit`` draws from ``key``."""
        x, y = self._validate(x, y, hyper)
        return _score_jit(self, x, y, key, hyper)

    def _validate(self, x, y, hyper):
        """Shape, dtype and value checks; returns x and y as arrays of one float dtype."""
        n, d = checks.float_matrix(x, "x")
        checks.float_vector(y, "y", n, "n = x.shape[0]")
        structure = self.structure(d)
        q = self.n_basis_for(n)
        if n < q + structure.m:
            raise ValueError(
                f"x: expected at least n_basis + null-space size = {q} + {structure.m} = "
                f"{q + structure.m} rows, got n = {n}")
        if hyper is not None:
            _check_hyper(hyper, structure.k)
        given = self.domains if self.domains is not None else (None,) * d
        if len(given) != d:
            raise ValueError(f"domains: expected {d} entries (one per column of x), got {len(given)}")
        ydt = jnp.result_type(y)
        dtype = ydt if jnp.issubdtype(ydt, jnp.floating) else jnp.result_type(float)
        x, y = jnp.asarray(x, dtype), jnp.asarray(y, dtype)
        if checks.is_concrete(x, y):
            checks.finite(x, "x")
            checks.finite(y, "y")
            lo, hi, codes = checks.column_facts(x)
            for v, (marg, dom) in enumerate(zip(structure.marginals, given)):
                _check_column(v, marg, dom, lo[v], hi[v], codes[v])
        return x, y

    def n_basis_for(self, n: int) -> int:
        return self.n_basis if self.n_basis is not None else default_n_basis(n)

    def domains_of(self, x, structure):
        """(d, 2) domains: given ones, else the data range widened 5% each side."""
        given = self.domains if self.domains is not None else (None,) * x.shape[1]
        rows = []
        for v, (marg, dom) in enumerate(zip(structure.marginals, given)):
            col = x[:, v]
            if marg.name == "nominal":
                levels = dom if dom is not None else jnp.max(col) + 1
                rows.append(jnp.stack([jnp.zeros((), x.dtype), jnp.asarray(levels, x.dtype)]))
            elif dom is not None:
                rows.append(jnp.asarray(dom, x.dtype))
            else:
                lo, hi = jnp.min(col), jnp.max(col)
                pad = 0.05 * (hi - lo)
                rows.append(jnp.stack([lo - pad, hi + pad]))
        return jnp.stack(rows)


def _check_column(v, marg, dom, lo, hi, codes):
    """Checks of column v from its minimum, maximum, and whether all its values
    are non-negative integers (``codes``)."""
    name = f"x[:, {v}]"
    if marg.name == "nominal":
        if not codes:
            raise ValueError(f"{name}: nominal covariate expects integer codes 0..L-1, got values in [{lo}, {hi}] "
                             "that are not all non-negative integers")
        if dom is not None:
            if not isinstance(dom, (int, np.integer)) or dom < 1:
                raise ValueError(f"domains[{v}]: nominal covariate expects the number of levels L (int >= 1), got {dom!r}")
            if hi >= dom:
                raise ValueError(f"{name}: code {int(hi)} is outside the {dom} levels given in domains[{v}]")
        return
    if dom is None:
        if marg.name == "periodic":
            raise ValueError(f"domains[{v}]: a periodic covariate needs its exact period (lo, hi), got None")
        if hi == lo:
            raise ValueError(f"{name}: expected a non-constant covariate, every value is {lo}")
        return
    if len(dom) != 2 or not dom[0] < dom[1]:
        raise ValueError(f"domains[{v}]: expected (lo, hi) with lo < hi, got {dom!r}")
    if lo < dom[0] or hi > dom[1]:
        raise ValueError(f"{name}: values span [{lo}, {hi}], outside domains[{v}] = {dom}")
    if hi == lo:
        raise ValueError(f"{name}: expected a non-constant covariate, every value is {lo}")


def _check_hyper(hyper, k):
    if not isinstance(hyper, Hyper):
        raise ValueError(f"hyper: expected a kcascade.Hyper, got {type(hyper).__name__}")
    if np.shape(hyper.log_lambda) != ():
        raise ValueError(f"hyper.log_lambda: expected a scalar, got shape {np.shape(hyper.log_lambda)}")
    if np.shape(hyper.log_theta) != (k,):
        raise ValueError(f"hyper.log_theta: expected shape ({k},) (one per penalized component), got {np.shape(hyper.log_theta)}")
    if checks.is_concrete(hyper.log_lambda, hyper.log_theta):
        checks.finite(hyper.log_lambda, "hyper.log_lambda")
        checks.finite(hyper.log_theta, "hyper.log_theta")


_LOG_LAMBDA_OFFSETS = np.linspace(-6.0, 6.0, 241)


def _score_of(model, red, log_lambda):
    """The model's selection score of a reduced problem at ``log_lambda``."""
    return solve.score(solve.fitness(red, solve.rho_of(red, log_lambda)), red.n, model.score, model.alpha)


def _fit_impl(model, x, y, key, hyper, init, lambda_search=False, mesh=None, progress=False):
    prob = _Problem(model, x, y, key, mesh, progress)
    if hyper is None:
        full = prob.full_statistics()
        hyper = _select(full, prob, model, init)
        red = prob.reduce(prob.full_eliminated(full, hyper.log_theta))
    else:
        red = prob.reduce(prob.narrow_eliminated(hyper))
        if lambda_search:
            grid = hyper.log_lambda + jnp.asarray(_LOG_LAMBDA_OFFSETS, red.gamma.dtype)
            scores = jax.vmap(lambda ll: _score_of(model, red, ll))(grid)
            hyper = Hyper(grid[jnp.argmin(scores)], hyper.log_theta)
    return _finish(model, prob, red, hyper)


def _score_impl(model, x, y, key, hyper):
    prob = _Problem(model, x, y, key)
    return _score_of(model, prob.reduce(prob.narrow_eliminated(hyper)), hyper.log_lambda)


def _refine_impl(model, x, y, key, hyper, steps, mesh=None, progress=False):
    prob = _Problem(model, x, y, key, mesh, progress)
    n = prob.u.shape[0]

    def unpack(p):
        return Hyper(p[0], canonical_log_theta(p[1:]))

    p0 = jnp.concatenate([jnp.reshape(hyper.log_lambda, (1,)), hyper.log_theta]).astype(prob.y.dtype)
    red0 = prob.reduce(prob.narrow_eliminated(unpack(p0)))
    frozen = solve.freeze(red0)

    def objective(p):
        f = solve.fitness_in_frozen(prob.narrow_blocks(unpack(p)), frozen, p[0])
        return solve.score(f, n, model.score, model.alpha)

    def exact(p):
        return _score_of(model, prob.reduce(prob.narrow_eliminated(unpack(p))), p[0])

    p = optim.lbfgs(objective, p0, steps)
    score_end = exact(p)
    keep = jnp.isfinite(score_end) & (score_end <= exact(p0))
    h = unpack(jnp.where(keep, p, p0))
    shift = jnp.mean(h.log_theta)
    return Hyper(h.log_lambda - shift, h.log_theta - shift)


_fit_jit = jax.jit(_fit_impl, static_argnums=(0, 6, 7, 8))
_refine_jit = jax.jit(_refine_impl, static_argnums=(0, 5, 6, 7))


def _auto_mesh(mesh):
    """The mesh with every axis in Auto mode: the fit lets XLA place the few
    whole-data operations (ranges, the basis draw) and shards the pass itself
    explicitly (``shard_map``)."""
    if mesh is None:
        return None
    if not isinstance(mesh, jax.sharding.Mesh):
        raise ValueError(f"mesh: expected None or a jax.sharding.Mesh, got {type(mesh).__name__}")
    auto = (jax.sharding.AxisType.Auto,) * len(mesh.axis_names)
    return jax.sharding.Mesh(mesh.devices, mesh.axis_names, axis_types=auto)


def _on_mesh(mesh, x, y):
    """x, y with rows sharded over the mesh when they divide evenly (global
    arrays always do); otherwise as given, to be padded and sharded inside."""
    if mesh is None or x.shape[0] % mesh.size:
        return x, y
    rows = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(mesh.axis_names))
    return jax.device_put(x, rows), jax.device_put(y, rows)


def _local(tree):
    """A copy on this process of every leaf that spans several processes
    (results of a multi-process fit are replicated, so any local shard is whole)."""
    def one(a):
        if checks.is_global(a):
            return a.addressable_data(0)
        return a
    return jax.tree.map(one, tree)
_score_jit = jax.jit(_score_impl, static_argnums=0)


class _Problem:
    """Scaled data, basis points and feature maps of one fit."""

    def __init__(self, model, x, y, key, mesh=None, progress=False):
        self.model, self.y, self.mesh, self.progress = model, y, mesh, progress
        self.qr = model.statistics == "qr" or (
            model.statistics == "auto" and jnp.finfo(y.dtype).bits < 64)
        self.structure = structure = model.structure(x.shape[1])
        self.domains = domains = model.domains_of(x, structure)
        self.u = scale_rows(structure, x, domains)
        q = model.n_basis_for(x.shape[0])
        # Draw from the rows in lexicographic order so that the fit does not
        # depend on how the rows happen to be ordered.
        ranked = jnp.lexsort(tuple(x[:, v] for v in reversed(range(x.shape[1]))))
        idx = ranked[jax.random.choice(key, x.shape[0], (q,), replace=False)]
        self.basis = self.u[idx]
        s_b, r_b = terms.features(structure, self.basis, self.basis, domains)
        # Shifting every non-constant column by its mean over the basis rows
        # is an exact reparametrisation (the constant absorbs it) that keeps
        # the Gram matrix well scaled, float32 included.
        self.shift_null = jnp.mean(s_b, axis=0).at[0].set(0.0)
        self.shift_pen = jnp.mean(r_b, axis=1)
        self.pen_blocks = 0.5 * (r_b + jnp.swapaxes(r_b, 1, 2))

    def chunk(self, k):
        if self.model.chunk is not None:
            return self.model.chunk
        width = self.structure.m + k * self.basis.shape[0]
        chunk = stats.default_chunk(self.u.shape[0], width)
        # A QR update costs (chunk + width) width^2: chunks shorter than the
        # width would spend most of it on the carried factor.
        return min(self.u.shape[0], max(chunk, 2 * width)) if self.qr else chunk

    def reduce(self, el: solve.Eliminated) -> solve.Reduced:
        return solve.reduce(el, solve.sv_cut(self.y.dtype, squared=not self.qr))

    def _shifted(self, uc):
        s, r = terms.features(self.structure, uc, self.basis, self.domains)
        return s - self.shift_null, r - self.shift_pen[:, None, :]

    def narrow_features(self, uc, theta):
        s, r = self._shifted(uc)
        return jnp.concatenate([s, jnp.einsum("i,icq->cq", theta, r, precision=_HI)], axis=1)

    def narrow_blocks(self, hyper) -> solve.Blocks:
        """One pass of statistics with theta built into the features (width m + q)."""
        theta = jnp.exp(hyper.log_theta)
        narrow = stats.accumulate(lambda uc: self.narrow_features(uc, theta), self.u, self.y,
                                  chunk=self.chunk(self.structure.k),  # features hold K blocks per chunk
                                  **self.pass_options("pass over the rows"))
        return solve.blocks_from_stats(*narrow, self.structure.m, self.pen_at(theta))

    def narrow_eliminated(self, hyper) -> solve.Eliminated:
        """The problem at ``hyper`` in square-root form, from one pass (QR or Gram)."""
        if not self.qr:
            return solve.eliminate_gram(self.narrow_blocks(hyper))
        theta = jnp.exp(hyper.log_theta)
        f = stats.factor(lambda uc: self.narrow_features(uc, theta), self.u, self.y,
                         chunk=self.chunk(self.structure.k), **self.pass_options("pass over the rows (QR)"))
        return solve.eliminate_qr(f.r, f.n, self.structure.m, self.pen_at(theta))

    def pen_at(self, theta):
        return jnp.einsum("i,iab->ab", theta, self.pen_blocks, precision=_HI)

    def full_statistics(self):
        """One pass of statistics of all K q penalized columns: Gram ``Stats``, or
        a ``Factor`` on the QR path."""
        pass_fn = stats.factor if self.qr else stats.accumulate
        return pass_fn(self.full_features, self.u, self.y, chunk=self.chunk(self.structure.k),
                       **self.pass_options("selection statistics"))

    def pass_options(self, label):
        return dict(mesh=self.mesh, progress=label if self.progress else None)

    def full_eliminated(self, full, log_theta) -> solve.Eliminated:
        """The problem at theta in square-root form from full statistics."""
        if not self.qr:
            return solve.eliminate_gram(
                solve.blocks_from_full(*full, self.structure.m, self.pen_blocks, jnp.exp(log_theta)))
        theta = jnp.exp(log_theta)
        r = solve.factor_at(full.r, self.structure.m, theta)
        return solve.eliminate_qr(r, full.n, self.structure.m, self.pen_at(theta))

    def full_features(self, uc):
        s, r = self._shifted(uc)
        return jnp.concatenate([s, jnp.transpose(r, (1, 0, 2)).reshape(uc.shape[0], -1)], axis=1)


def scale_rows(structure, x, domains):
    cols = [m.scale(x[:, v], domains[v]) for v, m in enumerate(structure.marginals)]
    return jnp.stack(cols, axis=1)


# -- selection -----------------------------------------------------------------

_LOG_RHO_GRID = np.linspace(-12.0, 4.0, 81) * np.log(10.0)
_ROUNDS = 3
# A component whose theta is below e^-20 (2e-9) of the largest contributes
# nothing float64 can resolve; bounding the spread keeps the problem scaled.
THETA_SPREAD = 20.0


def canonical_log_theta(v):
    """Centred log theta with the spread bounded below the largest by THETA_SPREAD."""
    lt = v - jnp.mean(v)
    return jnp.maximum(lt, jnp.max(lt) - THETA_SPREAD)


def _select(full, prob, model, init=None) -> Hyper:
    """Grid over log lambda at theta = 1, then L-BFGS over (log lambda, log theta).

    log theta is optimised through ``canonical_log_theta`` (centred), which
    removes the direction in which lambda and a common factor of the thetas
    trade off and leaves no flat valley for the optimiser to wander in.
    """
    m, k = prob.structure.m, prob.structure.k
    n = full.n
    dtype = prob.y.dtype

    def blocks(log_theta):
        return solve.blocks_from_full(*full, m, prob.pen_blocks, jnp.exp(log_theta))

    def reduced(log_theta):
        return prob.reduce(prob.full_eliminated(full, log_theta))

    def exact_score(p):
        return _score_of(model, reduced(canonical_log_theta(p[1:])), p[0])

    if init is None:
        red0 = reduced(jnp.zeros((k,), dtype))
        grid = jnp.asarray(_LOG_RHO_GRID, dtype)
        scores = jax.vmap(lambda lr: solve.score(solve.fitness(red0, jnp.exp(lr)), n, model.score, model.alpha))(grid)
        p0 = jnp.zeros((k + 1,), dtype).at[0].set(grid[jnp.argmin(scores)] + jnp.log(red0.scale / n))
    else:
        p0 = jnp.concatenate([jnp.reshape(init.log_lambda, (1,)), init.log_theta]).astype(dtype)
    grid_score = exact_score(p0)

    def one_round(_, p):
        # Re-freeze the basis at the current point, so that the Cholesky of
        # each round works on a nearly diagonal system.
        frozen = solve.freeze(reduced(canonical_log_theta(p[1:])))

        def objective(pp):
            log_theta = canonical_log_theta(pp[1:])
            if prob.qr:
                f = solve.fitness_in_frozen_root(prob.full_eliminated(full, log_theta), frozen, pp[0])
            else:
                f = solve.fitness_in_frozen(blocks(log_theta), frozen, pp[0])
            return solve.score(f, n, model.score, model.alpha)

        return optim.lbfgs(objective, p, model.max_steps)

    p = jax.lax.fori_loop(0, _ROUNDS, one_round, p0)
    refined_score = exact_score(p)
    p = jnp.where(jnp.isfinite(refined_score) & (refined_score <= grid_score), p, p0)
    log_theta = canonical_log_theta(p[1:])
    shift = jnp.mean(log_theta)
    return Hyper(p[0] - shift, log_theta - shift)


# -- the fitted model --------------------------------------------------------------

def _finish(model, prob, red, hyper):
    rho = solve.rho_of(red, hyper.log_lambda)
    d, c = solve.coefficients(red, rho)
    fit = solve.fitness(red, rho)
    sigma2 = fit.rss / jnp.maximum(red.n - fit.trace, 1.0)
    return SSANOVAFit(
        model=model, structure=prob.structure,
        hyper=Hyper(jnp.asarray(hyper.log_lambda, red.gamma.dtype), jnp.asarray(hyper.log_theta, red.gamma.dtype)),
        domains=prob.domains, basis=prob.basis, shift_null=prob.shift_null, shift_pen=prob.shift_pen,
        coef_null=d, coef_basis=c, chol_a=red.chol_a, ainv_b=red.ainv_b, post_basis=red.basis,
        post_weights=solve.weights(red, rho), sigma2=sigma2,
        score=solve.score(fit, red.n, model.score, model.alpha), df=fit.trace, rss=fit.rss, n=red.n)


@dataclasses.dataclass(frozen=True)
class SSANOVAFit:
    """A fitted SS-ANOVA model (a pytree: ``jit``/``vmap`` friendly).

    Attributes:
      hyper: the smoothing parameters used.
      coef_null: (m,) null-space coefficients; coef_basis: (q,) basis coefficients.
      domains: (d, 2); basis: (q, d) scaled basis points.
      sigma2: residual variance estimate RSS / (n - df).
      score: the selection score at ``hyper``; df: tr A(lambda); rss; n.
    """

    model: SSANOVA
    structure: terms.Structure
    hyper: Hyper
    domains: jax.Array
    basis: jax.Array
    shift_null: jax.Array
    shift_pen: jax.Array
    coef_null: jax.Array
    coef_basis: jax.Array
    chol_a: jax.Array
    ainv_b: jax.Array
    post_basis: jax.Array
    post_weights: jax.Array
    sigma2: jax.Array
    score: jax.Array
    df: jax.Array
    rss: jax.Array
    n: jax.Array

    @property
    def terms(self) -> tuple:
        """Penalized component names, length K (the order of ``hyper.log_theta``)."""
        return self.structure.names

    def predict(self, x_new, se: bool = False, terms=None):
        """Posterior mean at ``x_new`` (m, d); with ``se=True`` also the Bayesian
        standard errors (Wahba 1983), both (m,).

        ``terms``: None for the whole function, or term names (``"x0"``,
        ``"x0:x1"``) to evaluate only those ANOVA terms: their penalized
        components and their null-space columns, without the constant. Term
        effects are centred on the basis points' mean.
        """
        x_new = checks.query_rows(x_new, self.domains.shape[0], self.coef_basis.dtype)
        null_mask, comp_mask = self._term_masks(terms)
        mean, sd = _predict_jit(self, x_new, null_mask, comp_mask)
        return (mean, sd) if se else mean

    def _term_masks(self, terms):
        st = self.structure
        if terms is None:
            return jnp.ones((st.m,)), jnp.ones((st.k,))
        names = (terms,) if isinstance(terms, str) else tuple(terms)
        bases = {nm.split("[")[0] for nm in st.names}
        for nm in names:
            if nm not in bases:
                raise ValueError(f"terms: unknown term {nm!r}; expected names from {sorted(bases)}")
        wanted = {tuple(int(v[1:]) for v in nm.split(":")) for nm in names}
        null_mask = [float(tuple(v for v, _ in col) in wanted) for col in st.null]
        comp_mask = [float(tuple(v for v, _ in comp) in wanted) for comp in st.components]
        return jnp.asarray(null_mask), jnp.asarray(comp_mask)


def _predict_impl(fit: SSANOVAFit, x_new, null_mask, comp_mask):
    u = scale_rows(fit.structure, x_new, fit.domains)
    theta = jnp.exp(fit.hyper.log_theta) * comp_mask.astype(x_new.dtype)

    def one_chunk(uc):
        s, r = terms.features(fit.structure, uc, fit.basis, fit.domains)
        s = (s - fit.shift_null) * null_mask.astype(x_new.dtype)
        r = jnp.einsum("i,icq->cq", theta, r - fit.shift_pen[:, None, :], precision=_HI)
        mean = jnp.matmul(s, fit.coef_null, precision=_HI) + jnp.matmul(r, fit.coef_basis, precision=_HI)
        w_null = solve_triangular(fit.chol_a, s.T, lower=True)
        v = jnp.matmul(r - jnp.matmul(s, fit.ainv_b, precision=_HI), fit.post_basis, precision=_HI)
        var = jnp.sum(w_null * w_null, axis=0) + jnp.sum(v * v * fit.post_weights, axis=1)
        return mean, jnp.sqrt(jnp.maximum(fit.sigma2 * var, 0.0))

    batch = stats.default_chunk(u.shape[0], fit.structure.k * fit.basis.shape[0])
    mean, sd = jax.lax.map(lambda row: one_chunk(row[None]), u, batch_size=batch)
    return mean[:, 0], sd[:, 0]


jax.tree_util.register_dataclass(
    SSANOVAFit,
    data_fields=[f.name for f in dataclasses.fields(SSANOVAFit) if f.name not in ("model", "structure")],
    meta_fields=["model", "structure"],
)

_predict_jit = jax.jit(_predict_impl)
