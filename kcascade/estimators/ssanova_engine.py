"""How an SS-ANOVA fit runs: the problem of one data set (scaled rows, basis
points, the statistics strategy), the selection of (log lambda, log theta),
the refinement of a given value on all rows, and the final solve.

All functions here are traced under ``jit``; ``SSANOVA.fit`` and friends
check the input and call the compiled entry points at the bottom.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from kcascade import compilation, select
from kcascade.anova import Design, domains_of, draw_basis, scale_rows, terms
from kcascade.anova.design import BASIS_DRAWS, column_kinds, discretize
from kcascade.estimators.ssanova_fit import Hyper, SSANOVAFit
from kcascade.linalg import passes, scores, solve

_LOG_LAMBDA_OFFSETS = np.linspace(-6.0, 6.0, 241)   # the teacher's scale search
_LOG_RHO_GRID = np.linspace(-12.0, 4.0, 81) * np.log(10.0)
# log smoothing parameters stay within SP_BOX of the start's range (e^15 = 3e6)
SP_BOX = 15.0
# the stall test looks at the gain of the last STALL_STEPS Newton steps
STALL_STEPS = 3
# A component whose theta is below e^-20 (2e-9) of the largest contributes
# nothing float64 can resolve; bounding the spread keeps the problem scaled.
THETA_SPREAD = 20.0


def canonical_log_theta(v):
    """Centred log theta with the spread bounded below the largest by THETA_SPREAD."""
    lt = v - jnp.mean(v)
    return jnp.maximum(lt, jnp.max(lt) - THETA_SPREAD)


def _pack(hyper):
    return jnp.concatenate([jnp.reshape(hyper.log_lambda, (1,)), hyper.log_theta])


def _centred(p):
    """The Hyper of a parameter vector, log theta canonical and centred."""
    log_theta = canonical_log_theta(p[1:])
    shift = jnp.mean(log_theta)
    return Hyper(p[0] - shift, log_theta - shift)


def work_dtype(dtype):
    """The dtype of everything after the pass over the rows (selection, solve):
    float64 where x64 is enabled, whatever the data's float dtype. The pass
    (the cost that grows with n) stays in the data's dtype; its statistics,
    of size (m + Kq)^2, are upcast. Measured on the reference function at
    n = 1e5 (order 3, QR statistics): float32 selection arithmetic stopped at
    a point with test MSE 1.14x float64's; the same float32 statistics
    selected in float64 gave 1.003x."""
    if jnp.issubdtype(dtype, jnp.floating) and jnp.finfo(dtype).bits < 64 and jax.config.jax_enable_x64:
        return jnp.dtype(jnp.float64)
    return jnp.dtype(dtype)


class Problem:
    """Scaled rows, basis points and statistics of one fit."""

    def __init__(self, model, x, y, w, key, mesh=None, progress=False):
        self.model, self.y, self.w, self.mesh, self.progress = model, y, w, mesh, progress
        self.data_dtype, self.dtype = y.dtype, work_dtype(y.dtype)
        # set where the rows are summarised by cells (_to_cells) or the pass
        # was made elsewhere (of_statistics)
        self.given, self.totals, self.given_tss = None, None, None
        self.stats = model.statistics_for(y.dtype)
        self.score_fn = model.score_function()
        structure = model.structure(x.shape[1])
        domains = domains_of(structure.marginals, x, model.domains)
        u = scale_rows(structure.marginals, x, domains)
        q = model.n_basis_for(x.shape[0])
        spread = dict(kinds=column_kinds(structure.marginals), candidates=BASIS_DRAWS[model.basis_draw])
        if model.discretize is None:
            self.u, self.design = u, Design(structure, draw_basis(key, x, u, q, w, **spread), domains)
        else:
            self.u, rounded, grids = discretize(structure.marginals, u, model.discretize)
            self.design = Design(structure, draw_basis(key, x, rounded, q, w, **spread), domains, grids)
            sizes = cell_sizes(model, structure)
            if sizes is not None and mesh is None and 2 * math.prod(sizes) <= x.shape[0]:
                self._to_cells(sizes)
        self.m = structure.m

    def _to_cells(self, sizes):
        """The rounded rows summarised by the cells of the grid (every
        combination of the columns' values): each cell one row with weight
        W_c = sum of its rows' weights and response their weighted mean.
        Weighted least squares on the cells equals it on the rows up to the
        within-cell sum of squares, which is added back with the true row
        count (``_pass``): the statistics, hence the fit and its score, are
        those of the rounded rows. Taken when the grid has at most half as
        many cells as there are rows (static shapes: empty cells weigh 0)."""
        w = passes.weights_or_ones(self.w, self.y)
        strides = np.cumprod((1,) + tuple(sizes[:-1]))
        ids = sum(self.u[:, v].astype(jnp.int32) * int(strides[v]) for v in range(len(sizes)))
        cells = math.prod(sizes)
        weight = jax.ops.segment_sum(w, ids, cells)
        wy = jax.ops.segment_sum(w * self.y, ids, cells)
        mean = jnp.where(weight > 0, wy / jnp.where(weight > 0, weight, 1.0), 0.0)
        wyy = jnp.sum(w * self.y * self.y)
        self.totals = (wyy - jnp.sum(weight * mean * mean), passes.row_count(self.w, self.y))
        self.given_tss = _tss(self.y, self.w)
        grid = jnp.arange(cells)
        self.u = jnp.stack([((grid // int(strides[v])) % sizes[v]).astype(self.data_dtype) for v in range(len(sizes))],
                           axis=1)
        self.y, self.w = mean.astype(self.data_dtype), weight.astype(self.data_dtype)

    @classmethod
    def of_statistics(cls, model, design, statistics, dtype, tss):
        """A problem whose one pass over the rows was made elsewhere (a streamed
        source, ``ssanova_stream``): ``statistics`` is that pass's result
        (the full statistics without hyperparameters, the narrow ones with)."""
        prob = cls.__new__(cls)
        prob.model, prob.y, prob.w, prob.mesh, prob.progress = model, None, None, None, False
        prob.dtype, prob.data_dtype = dtype, dtype
        prob.stats, prob.score_fn = model.statistics_for(dtype), model.score_function()
        prob.design, prob.m, prob.u = design, design.structure.m, None
        prob.given, prob.totals, prob.given_tss = statistics, None, tss
        return prob

    def in_data_dtype(self, tree):
        """``tree``'s float leaves cast back from the work dtype to the data's
        (the fit, a score or hyperparameters a user gets back)."""
        if self.dtype == self.data_dtype:
            return tree
        return jax.tree.map(lambda a: a.astype(self.data_dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a,
                            tree)

    @property
    def tss(self):
        """The weighted total sum of squares of the response about its mean."""
        return self.given_tss if self.given_tss is not None else _tss(self.y, self.w)

    def regrouped(self, design) -> "Problem":
        """The same rows and statistics strategy on another design
        (``GroupedDesign``)."""
        prob = Problem.__new__(Problem)
        prob.__dict__.update(self.__dict__)
        prob.design = design
        return prob

    def _pass(self, feature_fn, label):
        if self.given is not None:
            return self.given
        # chunks sized for the widest features formed in a pass: all K blocks
        k, q = self.design.formed_blocks, self.design.basis.shape[0]
        chunk = self.model.chunk or self.stats.chunk(self.u.shape[0], self.m + k * q)
        st = self.stats.one_pass(feature_fn, self.u, self.y, self.w, chunk=chunk, mesh=self.mesh,
                                 progress=label if self.progress else None)
        if self.totals is not None:          # rows summarised by cells (_to_cells)
            st = self.stats.with_totals(st, *self.totals)
        return jax.tree.map(lambda a: a.astype(self.dtype), st)

    def narrow(self, hyper):
        """The problem at ``hyper``'s theta from one pass with theta built into
        the features (width m + q)."""
        theta = jnp.exp(hyper.log_theta)
        st = self._pass(lambda uc: self.design.narrow(uc, theta), f"pass over the rows ({self.stats.name})")
        return self.stats.narrow(st, self.m, self.design.penalty(theta))

    def full(self):
        """One pass of statistics of all K q penalized columns, laid out for
        the selection (``prepared``)."""
        st = self._pass(self.design.full, "selection statistics")
        return self.stats.prepared(st, self.m, self.design.structure.k)

    def at_theta(self, full, log_theta):
        """The problem at theta from the full statistics (no pass)."""
        theta = jnp.exp(log_theta)
        return self.stats.at_theta(full, self.m, theta, self.design.penalty(theta))

    def reduce(self, prob) -> solve.Reduced:
        # the rank cut follows the precision the statistics were formed in
        return solve.reduce(self.stats.eliminated(prob), self.stats.sv_cut(self.data_dtype))

    def score(self, red: solve.Reduced, log_lambda):
        """The model's score of a reduced problem at ``log_lambda``."""
        return self.score_fn(scores.fitness(red, solve.rho_of(red.n, red.scale, log_lambda)), red.n)

    def frozen_objective(self, problem_at, p_frozen, n):
        """The score as a smooth function of p = (log lambda, log theta) in the
        basis frozen at ``p_frozen``; ``problem_at(log_theta)`` builds the problem."""
        frozen = scores.freeze(self.reduce(problem_at(canonical_log_theta(p_frozen[1:]))))

        def objective(p):
            f = self.stats.frozen_fitness(problem_at(canonical_log_theta(p[1:])), frozen, p[0])
            return self.score_fn(f, n)

        return objective


class _GroupCount(NamedTuple):
    """The (m, k) a grouped design shows the statistics: k = G groups."""

    m: int
    k: int


class GroupedDesign:
    """A design whose K components are summed, at fixed thetas, into G groups
    (``groups``: a static tuple, the group of each component): group g's
    kernel is sum_{b in g} theta_b R_b. Its full statistics have width
    m + G q, and a selection on it chooses lambda and one multiplier per
    group (``_group_search``)."""

    def __init__(self, design: Design, theta, groups: tuple):
        self.inner, self.groups, self.theta = design, groups, theta
        n_groups = max(groups) + 1
        self.structure = _GroupCount(design.structure.m, n_groups)
        self.formed_blocks = design.structure.k     # a pass forms all K blocks, shows G
        self.basis, self.domains = design.basis, design.domains
        weights = jnp.asarray(np.eye(n_groups)[list(groups)], theta.dtype) * theta[:, None]   # (K, G)
        self.pen_blocks = jnp.einsum("kg,kab->gab", weights.astype(design.pen_blocks.dtype),
                                     design.pen_blocks, precision=jax.lax.Precision.HIGHEST)

    def penalty(self, theta):
        """(q, q) sum_g theta_g (group g's kernel at the basis)."""
        return jnp.einsum("g,gab->ab", theta, self.pen_blocks, precision=jax.lax.Precision.HIGHEST)

    def full(self, uc):
        """(c, m + G q) [S, group 1's kernel, ..., group G's], each group's
        blocks summed as they are formed (never stacked)."""
        d = self.inner
        s, r = terms.features(d.structure, uc, d.basis, d.domains, d.tables, theta=self.theta.astype(uc.dtype),
                              shift=d.shift_pen, groups=self.groups)
        return jnp.concatenate([s - d.shift_null, jnp.transpose(r, (1, 0, 2)).reshape(uc.shape[0], -1)], axis=1)


def order_groups(structure) -> tuple:
    """The group of each component for ``fit(..., scale_search="groups")``:
    0 for a main effect (a component of one covariate), 1 for an
    interaction."""
    return tuple(0 if len(c) == 1 else 1 for c in structure.components)


def cell_sizes(model, structure):
    """The number of values of each column of a discretized pass (M, or L
    levels of a nominal column whose domain the model gives), or None where a
    nominal column's levels are known only from the data."""
    sizes = []
    for v, marg in enumerate(structure.marginals):
        if marg.name != "nominal":
            sizes.append(int(model.discretize))
            continue
        given = None if model.domains is None else model.domains[v]
        if given is None:
            return None
        sizes.append(int(given))
    return tuple(sizes)


def _log_sp(hyper):
    """log smoothing parameters log(lambda / theta_b), (K,)."""
    return hyper.log_lambda - hyper.log_theta


def _hyper_of(s) -> Hyper:
    """The centred Hyper of log smoothing parameters ``s`` (K,)."""
    c = jnp.mean(s)
    return Hyper(c, c - s)


def _grid_lambda(prob: Problem, red):
    """The best log lambda on the grid over log rho, at fixed theta: O(q) per point."""
    grid = jnp.asarray(_LOG_RHO_GRID, red.gamma.dtype) + jnp.log(red.scale / red.n)
    values = jax.vmap(lambda ll: prob.score(red, ll))(grid)
    best = select.grid_best(values, grid)
    return best, jnp.min(jnp.where(jnp.isfinite(values), values, jnp.inf))


def _floored_log(v):
    """log v with v floored at 1e-12 of its largest entry (a component of size 0 stays finite)."""
    return jnp.log(jnp.maximum(v, 1e-12 * jnp.max(v) + jnp.finfo(v.dtype).tiny))


def _equal_traces(prob: Problem) -> jax.Array:
    """(K,) log theta (centred) giving every kernel R_b the same trace at the basis points."""
    return canonical_log_theta(-_floored_log(jnp.trace(prob.design.pen_blocks, axis1=1, axis2=2).astype(prob.dtype)))


def pilot_hyper(k: int, dtype) -> Hyper:
    """The marker for the pilot (NaN log lambda): given as ``hyper`` to a
    fit compiled with ``pilot=True``, the fit takes thetas of equal traces
    (``_equal_traces``) and lambda the best on the grid (``_grid_lambda``),
    from one narrow pass (width m + q): no full statistics, no search. The
    binomial / Poisson iteration's first smoothing parameters, in the same
    compiled program as its fits at fixed values."""
    return Hyper(jnp.full((), jnp.nan, dtype), jnp.zeros((k,), dtype))


def _start(prob: Problem, full) -> jax.Array:
    """A start that reflects the data (Gu & Wahba 1991, as in gss): lambda from
    a grid at thetas that give every kernel the same trace at the basis points,
    then each theta_b set to the size theta_b^2 c'R_b c of its fitted
    component, and lambda from the grid again; the better of the two points,
    as log smoothing parameters (K,)."""
    blocks = prob.design.pen_blocks                       # (K, q, q): R_b at the basis points
    lt0 = _equal_traces(prob)

    def one(lt, _):   # a loop of two, so that the diagonalisation is compiled once
        red = prob.reduce(prob.at_theta(full, lt))
        ll, v = _grid_lambda(prob, red)
        _, c = solve.coefficients(red, solve.rho_of(red.n, red.scale, ll))
        size = jnp.exp(2.0 * lt) * jnp.einsum("a,kab,b->k", c, blocks, c, precision=jax.lax.Precision.HIGHEST)
        return canonical_log_theta(_floored_log(size)).astype(lt.dtype), (ll - lt, v)

    _, (s, v) = jax.lax.scan(one, lt0.astype(prob.dtype), None, length=2)
    return jnp.where(v[1] <= v[0], s[1], s[0])


def newton_problem(prob: Problem, full):
    """(evaluate, local, derivatives) of the selection's Newton search
    (``select.newton``) on the log smoothing parameters s (K,):
    ``evaluate(s)`` is the exact score (a fresh diagonalisation) and aux =
    (the basis frozen there, the risk scale there: ``_risk_scale``);
    ``local(aux)`` is the score's second-order expansion in that basis, whose
    gradient and Hessian at s are the exact ones; ``derivatives(aux, s)``
    computes them by the chain rule through the
    explicit Jacobian of the problem at theta (``_chain_derivatives``), or is
    None where the statistics have none (QR: forward-mode AD of ``local``)."""
    def problem_at(s):
        hyper = _hyper_of(s)
        return hyper, prob.at_theta(full, hyper.log_theta)

    gcv = _risk_sized(prob)

    def evaluate(s):
        hyper, at = problem_at(s)
        red = prob.reduce(at)
        fit = scores.fitness(red, solve.rho_of(red.n, red.scale, hyper.log_lambda))
        value = prob.score_fn(fit, red.n)
        return value, (scores.freeze(red), _risk_scale(fit, value, red.n, gcv))

    def local(aux):
        frozen = aux[0]

        def score(s):
            hyper, at = problem_at(s)
            return prob.score_fn(prob.stats.near_frozen_fitness(at, frozen, hyper.log_lambda), full.n)
        return score

    if prob.stats.at_theta_with_jacobian is None:
        return evaluate, local, None
    return evaluate, local, lambda aux, s: _chain_derivatives(prob, full, aux[0], s)


def _chain_derivatives(prob: Problem, full, frozen, s):
    """Gradient and Hessian in s of ``newton_problem``'s ``local(frozen)``.

    The score is G(P(B(theta(s))), log lambda(s)): B the problem's blocks at
    theta, quadratic in theta (c) or linear (b, g2, the penalty) with an
    explicit Jacobian (``solve.blocks_with_jacobian``); P the parts in the
    frozen basis (C_hat, Q_hat, h_hat); G the second-order expansion of the
    score there. With T_l the derivative of (P, log lambda) along s_l and
    gbar G's gradient,
        grad_l = <T_l, gbar>,
        H = T' (Hessian of G) T + <gbar, second derivative of P o B o theta>,
    the first term by L forward passes through G's gradient (q x q products),
    the second from the curvature of the Schur complement in P and a (K, K)
    contraction of the statistics with the blocks' cotangent. Forward-over-
    reverse differentiation of the whole chain contracts the (K q)^2
    statistics and transforms every tangent to the frozen basis once per
    tangent (measured, K = 50, n = 1190, quiet 2-core CPU: 22 ms against 9 ms,
    min of 20 calls; each on the statistics layout of its time). Agrees with it
    to rounding (tests/test_select.py)."""
    k = s.shape[0]
    n = full.n
    pen_blocks = prob.design.pen_blocks.astype(prob.dtype)

    def params(s):
        hyper = _hyper_of(s)
        return jnp.exp(hyper.log_theta), hyper.log_lambda

    theta, log_lambda = params(s)
    dtheta, dll = jax.jacfwd(params)(s)              # (K, K): d theta_k / d s_l; (K,)
    blocks, jac = prob.stats.at_theta_with_jacobian(full, prob.m, theta, pen_blocks)
    tangents = jax.tree.map(lambda j: jnp.tensordot(dtheta, j, axes=(0, 0)), jac)   # leading axis: l
    (chat, qhat, hhat, r0), dparts, curvature, pullback = prob.stats.frozen_parts_tangents(blocks, tangents, frozen)

    def score(chat, qhat, hhat, ll):
        rho = solve.rho_of(n, frozen.scale, ll)
        return prob.score_fn(scores.fitness_near_frozen(chat, qhat, hhat, r0, frozen, prob.m, rho), n)

    grad_fn = jax.grad(score, argnums=(0, 1, 2, 3))
    point = (chat, qhat, hhat, log_lambda)
    cot = grad_fn(*point)
    moved = jax.vmap(lambda a, b, c, d: jax.jvp(grad_fn, point, (a, b, c, d))[1])(*dparts, dll)

    def pairs(a, b):   # (K, ...) x (K, ...) -> (K, K) inner products over the trailing axes
        return jnp.tensordot(a.reshape(k, -1), b.reshape(k, -1), axes=(1, 1), precision=jax.lax.Precision.HIGHEST)

    tang = (*dparts, dll)
    g = sum(jnp.tensordot(t.reshape(k, -1), c.reshape(-1), axes=1) for t, c in zip(tang, cot))
    h = sum(pairs(t, m) for t, m in zip(tang, moved)) + curvature(cot[0])

    # the blocks' own curvature in theta (and theta's in s), through their
    # cotangent: G's gradient carried back through the frozen parts
    cot_blocks, cot_ll = pullback(cot[:3]), cot[3]
    mat, v = prob.stats.second_order(full, prob.m, cot_blocks, k, pen_blocks)

    def along_cot(s):
        th, ll = params(s)
        return th @ mat @ th + v @ th + cot_ll * ll

    h = h + jax.hessian(along_cot)(s)
    return g, 0.5 * (h + h.T)


def _risk_sized(prob: Problem) -> bool:
    """Whether the model's score is of the size sigma^2 + risk (GCV, UBR), as
    opposed to a log scale (GML)."""
    return prob.model.score in ("gcv", "ubr")


def _risk_scale(fit: scores.Fitness, value, n, gcv: bool):
    """The size of the estimate's risk in the score's units: sigma^2 df / n
    (the variance part of the mean squared error), with sigma^2 taken as the
    GCV score ``value`` itself; for GML, whose differences are relative
    changes of the residual variance, df / n. Gains of the score far below it
    cannot move the estimate's accuracy; unlike a fraction of the score
    (~ sigma^2) it shrinks with n as the risk does."""
    rel = fit.trace / n
    return rel * value if gcv else rel


def no_init(k: int, dtype) -> Hyper:
    """The ``init`` that means "none" inside one compiled selection program:
    a selection from ``_start`` and one from a given start then share their
    compilation (a binomial / Poisson fit runs both; measured cold on the
    KCas reference example: a second selection program cost 2.5 s of
    compilation)."""
    return Hyper(jnp.full((), jnp.nan, dtype), jnp.full((k,), jnp.nan, dtype))


def _select(prob: Problem, full, init) -> Hyper:
    """Newton steps on the log smoothing parameters s_b = log(lambda/theta_b)
    (``select.newton``), from ``_start`` or from ``init``.

    Each step's gradient and Hessian are those of the score in the
    diagonalising basis frozen at the current point (exact there, and smooth);
    the step is accepted on the exact score. s lives in a box SP_BOX wide on
    either side of the start's range: a component whose s reaches the top is
    penalized to nothing (its theta below e^-SP_BOX of the others) and stays
    there while the gradient pushes it out.
    """
    evaluate, local, derivatives = newton_problem(prob, full)
    if init is None:
        s0 = _start(prob, full)
    else:   # a start of NaNs (``no_init``) asks for _start in the same program
        given = _log_sp(init).astype(prob.dtype)
        s0 = jnp.where(jnp.all(jnp.isfinite(given)), given, _start(prob, full))
    lower, upper = jnp.min(s0) - SP_BOX, jnp.max(s0) + SP_BOX
    gcv = _risk_sized(prob)
    res = select.newton(evaluate, s0, local=local, derivatives=derivatives, lower=jnp.full_like(s0, lower), upper=jnp.full_like(s0, upper),
                        max_steps=prob.model.max_steps, f_scale="relative" if gcv else None,
                        stall_tol=prob.model.stall_tol, stall_steps=STALL_STEPS,
                        stall_scale=lambda aux: aux[1])
    return _centred(_pack(_hyper_of(res.x)))   # _centred needs centred log theta: _hyper_of gives it


def _fit_impl(model, x, y, w, key, hyper, init, scale_search=False, mesh=None, progress=False, pilot=False):
    return fit_problem(Problem(model, x, y, w, key, mesh, progress), hyper, init, scale_search, pilot)


def fit_problem(prob: Problem, hyper, init, scale_search=False, pilot=False) -> SSANOVAFit:
    """Selection (``hyper`` None) or one solve at ``hyper``, then the fit (in
    the data's dtype). ``pilot``: the program also takes ``pilot_hyper``."""
    return prob.in_data_dtype(_fit_problem(prob, hyper, init, scale_search, pilot))


def _fit_problem(prob: Problem, hyper, init, scale_search=False, pilot=False) -> SSANOVAFit:
    if hyper is None:
        full = prob.full()
        hyper = _select(prob, full, init)
        red = prob.reduce(prob.at_theta(full, hyper.log_theta))
    elif pilot:
        piloting = jnp.isnan(hyper.log_lambda)
        lt = jnp.where(piloting, _equal_traces(prob), hyper.log_theta.astype(prob.dtype))
        red = prob.reduce(prob.narrow(Hyper(jnp.zeros((), prob.dtype), lt)))
        hyper = Hyper(jnp.where(piloting, _grid_lambda(prob, red)[0], hyper.log_lambda.astype(prob.dtype)), lt)
    else:
        if scale_search == "groups" and len(set(order_groups(prob.design.structure))) > 1:
            red, hyper = _group_search(prob, hyper)
            return _finish(prob, red, hyper)
        red = prob.reduce(prob.narrow(hyper))
        if scale_search:
            grid = hyper.log_lambda + jnp.asarray(_LOG_LAMBDA_OFFSETS, red.gamma.dtype)
            hyper = Hyper(select.grid_best(jax.vmap(lambda ll: prob.score(red, ll))(grid), grid), hyper.log_theta)
    return _finish(prob, red, hyper)


# the group search's grids: log multipliers of the interactions' thetas against
# the main effects' (e^-12 = 6e-6: interactions gone), coarse (step 1.5), then
# around the coarse grid's best (step 0.5); log lambda about the start's
# (step 0.1)
_LOG_GROUP_RATIOS = np.linspace(-12.0, 12.0, 17)
_LOG_GROUP_FINE = np.array([-1.0, -0.5, 0.5, 1.0])
_LOG_GROUP_LAMBDA_OFFSETS = np.linspace(-8.0, 8.0, 161)


def _group_search(prob: Problem, hyper):
    """The teacher's search from ``hyper``: its thetas kept within each of two
    groups of components (``order_groups``: main effects, interactions); the
    interactions' multiplier against the main effects' and lambda chosen by
    the model's score on grids (``_LOG_GROUP_RATIOS``, then
    ``_LOG_GROUP_FINE`` about the best; ``_LOG_GROUP_LAMBDA_OFFSETS``), from
    one pass of the grouped statistics (width m + 2q): one diagonalisation
    per ratio, O(q) per lambda. A grid, not Newton steps: the score along
    the ratio can have several minima (an interaction group that helps a
    little, or is best gone), and the grid's program compiles in a fraction
    of a Newton search's time (a cold cascade at n = 5000: 6.3 s with Newton
    steps, 5.0 s with a grid).
    Returns (the reduced problem, the Hyper of K thetas)."""
    groups = order_groups(prob.design.structure)
    gprob = prob.regrouped(GroupedDesign(prob.design, jnp.exp(hyper.log_theta.astype(prob.dtype)), groups))
    full = gprob.full()
    lls = hyper.log_lambda.astype(prob.dtype) + jnp.asarray(_LOG_GROUP_LAMBDA_OFFSETS, prob.dtype)

    def at_ratio(k):
        red = gprob.reduce(gprob.at_theta(full, jnp.stack([jnp.zeros_like(k), k])))
        values = jax.vmap(lambda ll: gprob.score(red, ll))(lls)
        return jnp.min(jnp.where(jnp.isfinite(values), values, jnp.inf)), select.grid_best(values, lls)

    def best_of(ratios):
        values, lambdas = jax.lax.map(at_ratio, ratios)
        i = jnp.argmin(values)
        return values[i], lambdas[i], ratios[i]

    coarse = best_of(jnp.asarray(_LOG_GROUP_RATIOS, prob.dtype))
    fine = best_of(coarse[2] + jnp.asarray(_LOG_GROUP_FINE, prob.dtype))
    _, ll, k = jax.tree.map(lambda a, b: jnp.where(fine[0] < coarse[0], a, b), fine, coarse)
    glt = jnp.stack([jnp.zeros_like(k), k])
    red = gprob.reduce(gprob.at_theta(full, glt))
    lt = hyper.log_theta.astype(prob.dtype) + glt[jnp.asarray(groups)]
    return red, Hyper(ll, lt)


def _score_impl(model, x, y, key, hyper):
    prob = Problem(model, x, y, None, key)
    return prob.in_data_dtype(prob.score(prob.reduce(prob.narrow(hyper)), hyper.log_lambda))


def _refine_impl(model, x, y, key, hyper, steps, mesh=None, progress=False):
    """Steps of the score from ``hyper``; each evaluation is one narrow pass."""
    prob = Problem(model, x, y, None, key, mesh, progress)
    n = passes.row_count(None, y).astype(prob.dtype)

    def problem_at(log_theta):
        return prob.narrow(Hyper(jnp.zeros((), prob.dtype), log_theta))

    def exact(p):
        return prob.score(prob.reduce(problem_at(canonical_log_theta(p[1:]))), p[0])

    p0 = _pack(hyper).astype(prob.dtype)
    frozen_at_start = prob.frozen_objective(problem_at, p0, n)
    out = _centred(select.minimize(exact, lambda p: frozen_at_start, p0, rounds=1, max_steps=steps))
    return prob.in_data_dtype(out)


def _finish(prob: Problem, red: solve.Reduced, hyper) -> SSANOVAFit:
    rho = solve.rho_of(red.n, red.scale, hyper.log_lambda)
    d, c = solve.coefficients(red, rho)
    fit = scores.fitness(red, rho)
    dtype = red.gamma.dtype
    return SSANOVAFit(
        model=prob.model,
        hyper=Hyper(jnp.asarray(hyper.log_lambda, dtype), jnp.asarray(hyper.log_theta, dtype)),
        domains=prob.design.domains, basis=prob.design.basis, coef_null=d, coef_basis=c,
        chol_a=red.chol_a, ainv_b=red.ainv_b, post_basis=red.basis, post_weights=solve.weights(red, rho),
        score=prob.score_fn(fit, red.n), df=fit.trace, rss=fit.rss, n=red.n, tss=prob.tss)


def _tss(y, w):
    """The weighted total sum of squares about the weighted mean."""
    w = jnp.ones_like(y) if w is None else w
    mean = jnp.sum(w * y) / jnp.sum(w)
    return jnp.sum(w * (y - mean) ** 2)


fit_jit = compilation.jit(_fit_impl, static_argnums=(0, 7, 8, 9, 10))
refine_jit = compilation.jit(_refine_impl, static_argnums=(0, 5, 6, 7))
score_jit = compilation.jit(_score_impl, static_argnums=0)
