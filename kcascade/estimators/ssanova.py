"""Smoothing-spline ANOVA regression (Gaussian response): the configuration.

Conventions (also in the README):

- Each continuous covariate is mapped to [0, 1] by a domain (lo, hi) kept in
  the fit; by default the data range widened by 5% on each side. Periodic
  covariates need their exact period as domain. Nominal covariates take
  integer codes 0..L-1; their domain is (0, L).
- The fit minimises (1/n) sum_i w_i (y_i - eta(x_i))^2 + lambda sum_b
  theta_b^{-1} ||P_b eta||^2 (w_i = 1 unless ``weights`` are given; n counts
  the rows of positive weight). ``Hyper`` holds natural logs; lambda and a
  common factor of the thetas are not separately identified, so a selected
  Hyper is reported with mean(log_theta) = 0.

The fit itself is orchestrated in ``ssanova_engine``; its result is
``ssanova_fit.SSANOVAFit``.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from kcascade import checks, devices, frames, kernels, progress as progress_lines, protocol, scaling, sources
from kcascade.anova import terms
from kcascade.anova.design import BASIS_DRAWS, default_n_basis
from kcascade.estimators import ssanova_engine as engine, ssanova_glm as glm, ssanova_stream
from kcascade.estimators.ssanova_fit import Hyper
from kcascade.compilation import row_bucket  # noqa: F401  (kcascade.sklearn imports it from here)
from kcascade.linalg import scores, statistics


# The basis size of a Gaussian cascade's teacher, in multiples of the rule's
# (``SSANOVA.for_teacher``). Measured with the students' hyperparameters
# transferred and the teacher's lambda selected (the default cascade), on
# the teacher's basis key, low noise, seed 0 (2026-11-28): on 7 of 8 bed
# truths at n = 1e4 the teacher's test MSE moves by under 2.5% between 1x,
# 1.5x and 2x the rule's q = 78, while on sine3 gss's rule leaves the basis
# too small: full selection's test MSE falls to 0.41x (1.5 q) and 0.31x
# (2 q) of its value at q, and the teacher's from 1.54x to 0.48x and 0.38x
# of it (1e5, q = 131: full selection 0.31x at 2 q, teacher 1.66x -> 0.51x).
# The teacher's fit took 0.015 -> 0.031 s at 1e4 and 0.10 -> 0.25 s at 1e5,
# against 0.59 and 5.8 s for full selection at q. Over the bed (8 truths,
# ``benchmarks/bagged_students.py``, README): the default cascade's test MSE
# over full selection's, median / worst, 1.020 / 2.356 -> 0.940 / 1.238 at
# 1e4 and 1.031 / 1.698 -> 0.962 / 1.243 at 1e5 (one seed; three seeds:
# 0.872 / 1.238 and 0.926 / 1.328).
TEACHER_BASIS = 2.0


@dataclasses.dataclass(frozen=True)
class SSANOVA(protocol.Estimator):
    """Frozen configuration of an SS-ANOVA regression.

    Args:
      order: highest interaction order (1 = additive): every subset of at
        most ``order`` covariates is a term.
      family: "gaussian" (default: penalized least squares), "binomial"
        (logit link) or "poisson" (log link): penalized likelihood by IRLS,
        each iteration a weighted Gaussian fit (``ssanova_glm``); the fit is
        then a ``GSSANOVAFit``.
      terms: None, or the terms to fit instead: a tuple of covariate index
        tuples (``((0, 1), (2,))`` = x0, x1, x2 and x0:x1), closed under
        the hierarchy (a:b brings a and b); ``order`` is then ignored. A
        formula builds it (``SSANOVA.from_formula``).
      marginals: one name for every covariate, or a tuple with one per
        covariate: "cubic" (default), "linear", "periodic", "nominal".
      domains: None, or a tuple with one entry per covariate: None (data range
        widened 5% each side), (lo, hi), or for a nominal covariate the number
        of levels L. Periodic covariates need (lo, hi) = their exact period.
      score: "gcv", "gml", or "ubr" (unbiased risk with known variance 1
        per unit weight); None (default): "gcv" for Gaussian models, "ubr"
        for binomial and Poisson ones, which apply it to each IRLS
        iteration's weighted pseudo-data (dispersion 1). Measured for the
        latter (``benchmarks/glm_cascade.py``, n = 3000, 6 truths x 5 seeds,
        full selection): UBR / GCV test MSE median 0.995, from 0.19 (rare
        events, where GCV's fit had 2.7x the better peer's MSE) to 1.24;
        against the better of gss and mgcv, worst 1.29 (UBR) and 2.71 (GCV).
      alpha: GCV inflation factor (1.4 as in gss; 1 is classical GCV).
      n_basis: number of random basis points q; default gss's rule
        ``default_n_basis`` at ``row_bucket(n)`` (n rounded up to one of 8
        sizes per doubling: rows are padded to it with weight 0 so that
        nearby n share one compiled program).
      basis_draw: how the q basis points are drawn from the rows: "spread"
        (default: 3q rows at random, of which q are kept by greedy
        farthest-point selection in the scaled covariates, periodic distance
        for periodic covariates and 0/1 for nominal ones; the points follow
        the rows' density with fewer close pairs) or "uniform" (q rows at
        random, as gss). Measured (README, "basis"): selection bed test MSE
        0.95x / 0.96x uniform's (geometric mean, n = 1000 / 5000), key
        spread worst 2.03 -> 1.61 / 1.90 -> 1.27; held-out MSE lower on all
        three real data sets with every key.
      chunk: rows per chunk when accumulating statistics; default automatic.
      max_steps: most Newton steps of the selection (each: the exact gradient
        and Hessian of the score, and a line search). The search stops
        earlier when the score settles, or when its last 3 steps together
        lowered it by less than ``stall_tol`` times the estimate's risk
        (sigma^2 df / n in the score's units: ``ssanova_engine._risk_scale``).
      stall_tol: that fraction (default 0.01: against 0 it left the bed's
        test MSE at median 1.000x, worst 1.064x over 52 fits at n = 1000 and
        1.003x worst over 12 at n = 5000, and float32 selection at n = 1e5
        at 0.99x float64's; 0.03 gave 1.09x there); 0 turns it off.
      statistics: how the one pass over the rows summarises them: "gram"
        (Z'Z, one matrix product per chunk: fast, accurate in float64), "qr"
        (a streamed QR factor of [Z, y]: about twice the work, never squares
        the conditioning, accurate in float32) or "auto" (default): "qr" for
        float32 data, "gram" for float64.
      discretize: None (default: exact rows) or M >= 2: in the pass over the
        rows each non-nominal covariate is rounded to M evenly spaced values
        over its range (bam(discrete=TRUE)'s idea): its kernel pieces are
        evaluated once per value and basis point, and the rows' features are
        gathered from those tables. The rounding moves a covariate by at most
        half a step, range / (2 (M - 1)); the basis points are rounded rows;
        predictions use the exact kernels at the new rows. Where the grid
        has at most n / 2 cells (M^d, times the levels of nominal columns,
        which must then be given in ``domains``), the pass runs over the
        cells instead of the rows (weights: the cells' row weights;
        responses: their means; the within-cell sum of squares and the row
        count added back): the same fit as the rounded rows at a cost set
        by the cells, not n (one device; not with ``mesh``). Measured cost of
        the rounding (benchmarks/bam_scale.py's d = 3 case, n = 1e6, test
        MSE of the default cascade): exact 1.52e-4, M = 100 1.79e-4,
        M = 64 2.73e-4, M = 40 7.4e-4; the teacher took 7.8, 5.2, 1.8 and
        1.1 s (before the narrow pass summed its blocks: 2.3 s exact since).
        Hence off by default.
    """

    order: int = 2
    family: str = "gaussian"
    marginals: tuple | str = "cubic"
    terms: tuple | None = None
    domains: tuple | None = None
    score: str | None = None
    alpha: float = 1.4
    n_basis: int | None = None
    basis_draw: str = "spread"
    chunk: int | None = None
    max_steps: int = 40
    stall_tol: float = 0.01
    statistics: str = "auto"
    discretize: int | None = None

    supervised: ClassVar[bool] = True
    randomized: ClassVar[bool] = True
    # capabilities: a property (the binomial and Poisson families differ)
    # three students: at n = 1e4 on 8 bed truths the teacher's test MSE over
    # full selection's went from median 1.08, worst 1.45 (one student) to
    # 1.005, 1.07 (benchmarks/bagged_students.py; five: 0.97, 1.08)
    default_students: ClassVar[int] = 3

    @property
    def capabilities(self) -> frozenset:
        """Gaussian: init, refine, scale_search, group_search, mesh, progress,
        source. Binomial and Poisson: init, warm_start (the student's eta
        starts the teacher's IRLS), reselect (``reselect``), mesh,
        progress."""
        if self.family == "gaussian":
            return frozenset({"init", "refine", "scale_search", "group_search", "mesh", "progress", "source"})
        return frozenset({"init", "warm_start", "reselect", "mesh", "progress"})

    def __post_init__(self):
        if self.discretize is not None and not (isinstance(self.discretize, (int, np.integer))
                                                and not isinstance(self.discretize, bool) and self.discretize >= 2):
            raise ValueError(f"discretize: expected None or an integer number of values >= 2, got {self.discretize!r}")
        if self.family not in glm.FAMILIES:
            raise ValueError(f"family: expected one of {glm.FAMILIES}, got {self.family!r}")
        if not isinstance(self.order, (int, np.integer)) or self.order < 1:
            raise ValueError(f"order: expected an integer >= 1, got {self.order!r}")
        if self.terms is not None:
            try:
                subsets = tuple(tuple(int(v) for v in t) for t in self.terms)
            except (TypeError, ValueError):
                raise ValueError(f"terms: expected a tuple of covariate index tuples, got {self.terms!r}") from None
            if not subsets or any(not t or min(t) < 0 or len(set(t)) != len(t) for t in subsets):
                raise ValueError(f"terms: expected non-empty tuples of distinct indices >= 0, got {self.terms!r}")
            object.__setattr__(self, "terms", terms.closure(subsets))
        if self.statistics not in ("auto", *statistics.STATISTICS):
            raise ValueError(f"statistics: expected 'auto', 'gram' or 'qr', got {self.statistics!r}")
        if self.score is None:
            object.__setattr__(self, "score", "gcv" if self.family == "gaussian" else "ubr")
        if self.score not in scores.SCORES:
            raise ValueError(f"score: expected 'gcv', 'gml' or 'ubr', got {self.score!r}")
        if not (isinstance(self.alpha, (int, float)) and self.alpha > 0 and math.isfinite(self.alpha)):
            raise ValueError(f"alpha: expected a finite number > 0, got {self.alpha!r}")
        if not (isinstance(self.stall_tol, (int, float)) and 0 <= self.stall_tol < math.inf):
            raise ValueError(f"stall_tol: expected a finite number >= 0, got {self.stall_tol!r}")
        if self.n_basis is not None and (not isinstance(self.n_basis, (int, np.integer)) or self.n_basis < 1):
            raise ValueError(f"n_basis: expected None or an integer >= 1, got {self.n_basis!r}")
        if self.basis_draw not in BASIS_DRAWS:
            raise ValueError(f"basis_draw: expected one of {tuple(BASIS_DRAWS)}, got {self.basis_draw!r}")
        names = (self.marginals,) if isinstance(self.marginals, str) else tuple(self.marginals)
        for nm in names:
            kernels.marginal(nm)
        if not isinstance(self.marginals, str):
            object.__setattr__(self, "marginals", tuple(self.marginals))
        if self.domains is not None:
            object.__setattr__(self, "domains", tuple(
                d if d is None or isinstance(d, (int, np.integer)) else tuple(float(v) for v in d)
                for d in self.domains))

    # -- structure -------------------------------------------------------------
    def marginals_for(self, d: int) -> tuple:
        """One ``kernels.Marginal`` per covariate."""
        return kernels.marginals_for(self.marginals, d)

    def structure(self, d: int) -> terms.Structure:
        """The term structure for d covariates."""
        if self.terms is not None:
            top = max(max(t) for t in self.terms)
            if top >= d:
                raise ValueError(f"terms: covariate index {top} given, but x has d = {d} columns")
            return terms.build(self.marginals_for(d), self.order, self.terms)
        if self.order > d:
            raise ValueError(f"order: expected 1 <= order <= d = {d} (columns of x), got {self.order}")
        return terms.build(self.marginals_for(d), self.order)

    def score_function(self):
        """The selection score as a function (fitness, n) -> scalar."""
        return scores.score_function(self.score, self.alpha)

    def statistics_for(self, dtype):
        """The statistics strategy (``linalg.statistics``) for data of ``dtype``."""
        return statistics.for_dtype(self.statistics, dtype)

    def n_basis_for(self, n: int) -> int:
        """q for n rows: ``n_basis``, or gss's rule at the row bucket of n
        (``row_bucket``), so that every n of a bucket shares one compiled fit."""
        return self.n_basis if self.n_basis is not None else min(n, default_n_basis(row_bucket(n)))

    # -- the estimator protocol ------------------------------------------------
    def default_law(self, d: int) -> scaling.Law:
        """The smoothing-spline law lambda ~ n^{-r/(pr+1)} with p = 2 and r the
        slowest eigenvalue decay among the marginals (4 for cubic and periodic
        splines, 2 for linear ones; nominal factors are finite-dimensional)."""
        return kernels.spline_law(self.marginals_for(d))

    def scale_of(self, hyper: Hyper):
        """The scale parameter a scaling law acts on: log lambda."""
        return hyper.log_lambda

    def capacity(self, n: int) -> int:
        """The basis size q at n rows."""
        return self.n_basis_for(n)

    def for_teacher(self, d: int, n: int) -> "SSANOVA":
        """A Gaussian cascade's teacher uses ``TEACHER_BASIS`` times the basis
        size of the rule (``n_basis_for(n)``), at most n minus the null
        space's size; a model with ``n_basis`` set, and binomial and Poisson
        models, keep their own. The teacher fits once at fixed
        hyperparameters, which costs about q^2 n, while full selection's
        statistics cost about (K q)^2 n for K components, so a wider basis
        costs the cascade little; where gss's rule leaves the basis too
        small for the truth, it is what the teacher gains most from. See
        ``TEACHER_BASIS`` for the measurements."""
        if self.n_basis is not None or self.family != "gaussian":
            return self
        q = self.n_basis_for(n)
        wide = max(q, min(int(TEACHER_BASIS * q), n - self.structure(d).m))
        return self if wide == q else dataclasses.replace(self, n_basis=wide)

    def search_groups(self, d: int) -> int:
        """2 where the model has both main effects and interactions (the groups
        of ``fit(..., scale_search="groups")``), else 1."""
        return len(set(engine.order_groups(self.structure(d))))

    def min_rows(self, d: int) -> int:
        """The fewest rows a fit accepts: basis size plus null-space size."""
        m, n = self.structure(d).m, 1
        while n < self.n_basis_for(n) + m:
            n += 1
        return n

    def check_data(self, x, y=None, weights=None, hyper=None):
        """Shape, dtype and value checks of ``fit``; returns (x, y) as arrays of
        one float dtype, or (x, y, weights) when ``weights`` are given."""
        x, y = checks.as_array(x), checks.as_array(y)
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
        if weights is not None:
            checks.float_vector(weights, "weights", n, "n = x.shape[0]")
            weights = jnp.asarray(weights, dtype)
        if checks.is_concrete(x, y):
            checks.finite(x, "x")
            checks.finite(y, "y")
            lo, hi, codes = checks.column_facts(x)
            for v, (marg, dom) in enumerate(zip(structure.marginals, given)):
                marg.check_column(v, dom, lo[v], hi[v], codes[v])
        if weights is not None and checks.is_concrete(weights):
            checks.finite(weights, "weights")
            low = float(jnp.min(weights))
            if low < 0:
                raise ValueError(f"weights: expected non-negative values, got a minimum of {low}")
            if low <= 0 and self.family != "gaussian":
                raise ValueError(f"weights: expected positive weights (trials or prior weights) for "
                                 f"family={self.family!r}, got a minimum of {low}")
            if not float(jnp.sum(weights > 0)) >= q + structure.m:
                raise ValueError(f"weights: expected at least {q + structure.m} rows of positive (non-zero) weight, "
                                 f"got {int(jnp.sum(weights > 0))}")
        if self.family != "gaussian":
            glm.check_response(self.family, y, jnp.ones_like(y) if weights is None else weights)
        return (x, y) if weights is None else (x, y, weights)

    @classmethod
    def from_formula(cls, formula: str, data, **options):
        """(model, x, y) from a gss/mgcv-style formula (``kcascade.formula``)
        on a pandas DataFrame: ``x`` the DataFrame of the formula's
        covariates in order, ``y`` the response column, and the model with
        those terms, marginals and domains (``options``: other SSANOVA
        fields, e.g. score). Then ``model.fit(x, y, key=key)``."""
        from kcascade import formula as formulas
        parsed = formulas.parse(formula)
        if not frames.is_frame(data):
            raise ValueError(f"data: expected a pandas DataFrame, got {type(data).__name__}")
        missing = [c for c in (parsed.response, *parsed.columns) if c not in data.columns]
        if missing:
            raise ValueError(f"data: formula names columns {missing} that are not in the data; "
                             f"columns are {list(data.columns)}")
        for key in ("terms", "marginals", "domains", "order"):
            if key in options:
                raise ValueError(f"{key}: set by the formula; leave it out")
        x = data[list(parsed.columns)]
        _, cols = frames.split(x.iloc[:1])
        marginals = tuple(kind or ("nominal" if cols.levels[v] is not None else "cubic")
                          for v, kind in enumerate(parsed.kinds))
        model = cls(order=1, marginals=marginals, domains=parsed.domains, terms=parsed.subsets, **options)
        return model, x, data[parsed.response]

    def for_columns(self, columns):
        """This model for a DataFrame's columns (``frames.Columns``): each
        categorical, string or boolean column becomes a nominal covariate
        with L = its number of levels. With one marginal name for all
        columns, those columns are switched to "nominal"; with a tuple, they
        must already say "nominal"."""
        if columns is None or not columns.nominal:
            return self
        d = len(columns.names)
        margs = [self.marginals] * d if isinstance(self.marginals, str) else list(self.marginals)
        doms = [None] * d if self.domains is None else list(self.domains)
        if len(margs) != d:
            raise ValueError(f"marginals: expected {d} entries (one per column of x), got {len(margs)}")
        if len(doms) != d:
            raise ValueError(f"domains: expected {d} entries (one per column of x), got {len(doms)}")
        for v in columns.nominal:
            nm, n_levels = columns.names[v], len(columns.levels[v])
            if not isinstance(self.marginals, str) and margs[v] != "nominal":
                raise ValueError(f"marginals: column {nm!r} is categorical ({n_levels} levels), but marginals[{v}] "
                                 f"is {margs[v]!r}; expected 'nominal'")
            if doms[v] is not None and doms[v] != n_levels:
                raise ValueError(f"domains: column {nm!r} has {n_levels} levels, but domains[{v}] is {doms[v]!r}")
            margs[v], doms[v] = "nominal", n_levels
        return dataclasses.replace(self, marginals=tuple(margs), domains=tuple(doms))

    # -- fitting ---------------------------------------------------------------
    def fit(self, x, y, *, key, hyper: Hyper | None = None, init: Hyper | None = None,
            scale_search: bool = False, weights=None, offset=None, start=None, mesh=None,
            progress: bool = False):
        """Fit; select lambda and all theta unless ``hyper`` is given.

        Args:
          x: (n, d) float covariates (integer codes for nominal columns), a
            chunked source of rows (``kc.NpySource``, ``kc.ParquetSource``,
            ``kc.ChunkSource``; then ``y=None``; Gaussian only; see
            ``ssanova_stream``: three reads, one chunk in memory), or a
            pandas DataFrame: its column names become the covariates' names
            (``fit.terms``, ``predict(terms=...)``, matched by name in
            ``predict``), and its categorical, string and boolean columns
            become nominal covariates with their levels kept
            (``for_columns``; ``fit.model`` is the model used).
          y: (n,) float responses (an array or a pandas Series); binomial:
            proportions in [0, 1] (0/1 for single trials); Poisson: counts.
          key: a ``jax.random`` key; draws the basis points.
          hyper: fixed smoothing parameters; then one solve, no search.
          init: a starting point for the selection instead of the lambda grid
            (e.g. values transferred from a smaller sample).
          scale_search: with ``hyper``, keep its thetas but choose lambda by
            the score on a grid of log lambda within +-6 of ``hyper.log_lambda``,
            from the same one-pass statistics (no extra pass over the rows).
            "groups": keep the thetas' ratios within the main effects and
            within the interactions, and choose lambda and the interactions'
            multiplier against the main effects' by the score on a grid (log
            ratio in [-12, 12], steps 1.5 then 0.5; log lambda within +-8 of
            ``hyper.log_lambda``, step 0.1), from one pass of statistics of
            width m + 2q instead of m + q (Gaussian rows in memory; a model
            without interactions: as True). ``fit.hyper`` holds the K thetas
            chosen.
          weights: None, or (n,) non-negative observation weights w_i of the
            weighted least squares; rows of weight 0 take no part. Binomial:
            the numbers of trials m_i (positive; m_i y_i whole numbers).
            Poisson: prior weights.
          offset: Poisson only: (n,) known log-scale offsets o_i
            (log mu_i = o_i + eta(x_i)), e.g. log exposure.
          start: binomial and Poisson only: a fit (``GSSANOVAFit``, e.g. a
            cascade's student) whose eta at x starts the IRLS iteration, or a
            sequence of fits (a cascade's B students): the median of their
            etas.
          mesh: a ``jax.sharding.Mesh``: the pass over the rows is split over
            all its devices (rows sharded over every mesh axis; each device
            accumulates its own rows; the statistics are reduced across
            devices). x and y may be global arrays spanning several processes
            (``jax.distributed``); the fit returned is then a local copy on
            every process. None: one device.
          progress: print a progress line to stderr during long passes.
        Returns:
          An ``SSANOVAFit`` (a pytree); for binomial and Poisson a
          ``GSSANOVAFit``.
        """
        checks.random_key(key)
        if hyper is not None and init is not None:
            raise ValueError("init: give either hyper (fixed) or init (a starting point), not both")
        mode = search_mode(scale_search)
        if mode and hyper is None:
            raise ValueError("scale_search: needs hyper (the thetas to keep and a starting lambda)")
        if sources.is_source(x):
            if mode == "groups":
                raise ValueError("scale_search: 'groups' is not available with a chunked source yet; give True")
            protocol.require(self, ["source"], {"source": "x"})
            if y is not None or weights is not None or offset is not None or start is not None or mesh is not None:
                raise ValueError("x: a chunked source holds the responses; give y=None (and no weights, offset, "
                                 "start or mesh, which a streamed fit does not take yet)")
            return ssanova_stream.fit_source(self, x, key=key, hyper=hyper, init=init, scale_search=scale_search,
                                             progress=progress)
        x, columns = frames.split(x)
        if columns is not None:
            fit = self.for_columns(columns).fit(x, y, key=key, hyper=hyper, init=init, scale_search=scale_search,
                                                weights=weights, offset=offset, start=start, mesh=mesh,
                                                progress=progress)
            if isinstance(fit, glm.GSSANOVAFit):
                return dataclasses.replace(fit, inner=protocol.with_columns(fit.inner, columns))
            return protocol.with_columns(fit, columns)
        glm_options = self._check_glm_options(scale_search, offset, start)
        mesh = devices.auto_mesh(mesh)
        data = devices.on_mesh(mesh, *self.check_data(x, y, weights, hyper if hyper is not None else init))
        x, y, w = data if weights is not None else (*data, None)
        if self.family != "gaussian":
            if offset is not None:
                checks.float_vector(checks.as_array(offset), "offset", x.shape[0], "n = x.shape[0]")
                offset = devices.on_mesh(mesh, jnp.asarray(offset, y.dtype))[0]
                if checks.is_concrete(offset):
                    checks.finite(offset, "offset")
            return glm.fit(self, x, y, key=key, hyper=hyper, init=init, weights=w, mesh=mesh,
                           progress=progress, **glm_options)
        return fit_rows(self, x, y, w, key, hyper, init, scale_search, mesh, progress)

    def precompile(self, x, y=None, *, key, scale_search: bool = False, mesh=None, progress: bool = False,
                   start=None, selection: bool = False, **options) -> None:
        """Compile the program that a fit at fixed hyperparameters runs for
        rows shaped as x (n, d) and y (n,) (padded to ``row_bucket(n)``, as
        ``fit`` pads them), without running it (``protocol.Estimator.precompile``):
        the Gaussian fit's, or for binomial and Poisson the weighted Gaussian
        fit that each IRLS iteration makes (``start`` changes only where the
        iteration begins); with ``selection=True`` (binomial and Poisson), the
        weighted selection from a start that ``reselect`` and full
        selection's selections run. Nothing for a mesh, a source, or other options.
        Measured in a fresh process (cascade while its students run): n =
        5000 Gaussian 4.6 -> 4.2 s, the binomial reference example (n =
        3000) 6.0-7.0 -> 5.6-6.9 s, interleaved pairs."""
        if (mesh is not None or options or sources.is_source(x)
                or getattr(x, "ndim", 0) != 2 or getattr(y, "ndim", 0) != 1):
            return None
        (n, d), b = x.shape, row_bucket(x.shape[0])
        like = jax.ShapeDtypeStruct
        gaussian = self.family == "gaussian"
        w = like((b,), y.dtype) if b != n or not gaussian else None
        hyper = Hyper(like((), y.dtype), like((self.structure(d).k,), y.dtype))
        model = self if gaussian else dataclasses.replace(self, family="gaussian")
        selection = bool(selection) and not gaussian
        engine.fit_jit.lower(model, like((b, d), x.dtype), like((b,), y.dtype), w, key,
                             None if selection else hyper, hyper if selection else None,
                             search_mode(scale_search), None, bool(progress), not gaussian and not selection).compile()
        return None

    def _gaussian_only(self, what: str):
        if self.family != "gaussian":
            raise ValueError(f"{what}: available for family='gaussian' only, got family={self.family!r}")

    def _check_glm_options(self, scale_search, offset, start) -> dict:
        """offset and start for binomial / Poisson fits; errors for options
        the family does not take."""
        if self.family == "gaussian":
            for name, value in (("offset", offset), ("start", start)):
                if value is not None:
                    raise ValueError(f"{name}: only for family='binomial' or 'poisson', got family='gaussian'")
            return {}
        if scale_search:
            raise ValueError(f"scale_search: not available for family={self.family!r} (Gaussian fits only)")
        if offset is not None and self.family != "poisson":
            raise ValueError(f"offset: only for family='poisson', got family={self.family!r}")
        if start is not None:
            start = protocol.starts_of(start)
            for s in start:
                if not isinstance(s, glm.GSSANOVAFit):
                    raise ValueError(f"start: expected a binomial or Poisson fit (GSSANOVAFit), got {type(s).__name__}")
                if s.model.family != self.family:
                    raise ValueError(f"start: a {s.model.family!r} fit cannot start a {self.family!r} fit")
        return dict(offset=offset, start=start)

    def refine(self, x, y, hyper: Hyper, *, key, steps: int, mesh=None, progress: bool = False) -> Hyper:
        """``steps`` L-BFGS steps of this model's score on (x, y), from ``hyper``.

        Each score evaluation is one pass over the rows (statistics of width
        m + q), so the cost is a few teacher fits per step. Returns the
        better of the start and the end point. mesh is refused for now
        (no "refine_on_mesh" capability). Gaussian family only.
        """
        self._gaussian_only("refine")
        checks.random_key(key)
        if not (isinstance(steps, (int, np.integer)) and steps >= 1):
            raise ValueError(f"steps: expected an integer >= 1, got {steps!r}")
        if mesh is not None:
            # reverse mode through the shard_map'ed pass fails in jax 0.10.2
            # (a cotangent's sharding names the Auto mesh inside the Manual region)
            raise ValueError("mesh: SSANOVA.refine does not run on a device mesh yet; refine on one device, "
                             "or use teacher_lambda='select' (a scale search from the teacher's single pass)")
        mesh = devices.auto_mesh(mesh)
        x, y = devices.on_mesh(mesh, *self.check_data(x, y, hyper=hyper))
        return devices.local(engine.refine_jit(self, x, y, key, hyper, int(steps), mesh, bool(progress)))

    def _check_working_start(self, start):
        """``start`` of ``reselect`` and ``score_at``: one fitted binomial or
        Poisson SS-ANOVA of this family (the fit whose working model they use)."""
        if not isinstance(start, glm.GSSANOVAFit):
            raise ValueError(f"start: expected a fitted binomial or Poisson SS-ANOVA (GSSANOVAFit), got "
                             f"{type(start).__name__}")
        self._check_glm_options(False, None, start)

    def reselect(self, x, y, *, start, init: Hyper, key) -> Hyper:
        """Binomial and Poisson: one selection of lambda and every theta on the
        rows (x, y) at the working model of the fit ``start``, from ``init``
        (the "reselect" capability: ``kc.cascade``'s pass before its
        teacher, ``teacher_lambda="reselect"``).

        The iteration's pseudo-data z = eta + (y - mu) / V(mu) and weights
        w = V(mu) at ``start``'s eta on these rows define a weighted Gaussian
        problem (as one IRLS iteration's, ``ssanova_glm``), and the selection
        engine searches it once from ``init``: no IRLS of its own, so the
        working model is the one of ``start`` (in a cascade, the teacher fitted
        on all rows at the transferred values, whose eta on a subsample is
        closer to the final one than any fit on that subsample alone).

        Args:
          x: (n_r, d) covariates (rows within ``start``'s domain, as ``fit``).
          y: (n_r,) responses (proportions, or counts); unit prior weights
            and no offset.
          start: a fitted ``GSSANOVAFit`` of this family.
          init: the ``Hyper`` the search starts from (for n_r rows).
          key: draws the basis points of the selection (the model's q at
            n_r rows).
        Returns:
          The selected ``Hyper`` (for n_r rows).
        """
        if self.family == "gaussian":
            raise ValueError("reselect: for family='binomial' or 'poisson'; a Gaussian model re-weighs its "
                             "thetas with fit(..., hyper=h, scale_search='groups')")
        checks.random_key(key)
        self._check_working_start(start)
        if init is None:
            raise ValueError("init: expected the Hyper the search starts from, got None")
        x, y = self.check_data(x, y, hyper=init)
        return glm.reselect(self, x, y, start=start, init=init, key=key)

    def score_at(self, x, y, hyper: Hyper, *, key, start=None):
        """The selection score (per ``score``) at ``hyper``, with the same basis
        points as ``fit`` draws from ``key``. Gaussian: the score of (x, y)
        (``start`` None). Binomial and Poisson: the score of the working model
        of the fit ``start`` on these rows (its pseudo-data and weights, as
        ``reselect`` searches it; unit prior weights, no offset): the value
        ``kc.cascade``'s reselect pass compares its candidates by."""
        checks.random_key(key)
        if self.family == "gaussian":
            if start is not None:
                raise ValueError("start: only for family='binomial' or 'poisson', got family='gaussian'")
            x, y = self.check_data(x, y, hyper=hyper)
            return engine.score_jit(self, x, y, key, hyper)
        self._check_working_start(start)
        x, y = self.check_data(x, y, hyper=hyper)
        return glm.working_score(self, x, y, hyper=hyper, start=start, key=key)


def _singular_message(model, x, w):
    """The error for a fit whose solve broke down: names the covariates whose
    linear null functions are collinear on the rows (e.g. identical columns)."""
    xn = np.asarray(x, np.float64)
    if w is not None:
        xn = xn[np.asarray(w) > 0]
    structure = model.structure(xn.shape[1])
    linear = [v for v, m in enumerate(structure.marginals) if m.n_null >= 1]
    cols = [np.ones(len(xn))]
    culprits = []
    for v in linear:
        c = xn[:, v] - xn[:, v].mean()
        trial = np.column_stack(cols + [c])
        if np.linalg.matrix_rank(trial, tol=1e-9 * max(1.0, np.abs(trial).max()) * len(xn)) < trial.shape[1]:
            culprits.append(v)
        else:
            cols.append(c)
    where = (f" the linear parts of columns {culprits} are linear combinations of the constant and the columns "
             f"before them (identical or collinear columns)" if culprits else
             " the null-space columns (constant, linear parts and their products) are collinear on these rows")
    return (f"x: the fit is singular (its score is not finite):{where}. Drop or combine those columns, or make "
            "them nominal.")


def search_mode(scale_search):
    """``fit``'s ``scale_search`` checked: False, True (lambda) or "groups"."""
    if scale_search is None or isinstance(scale_search, (bool, np.bool_)):
        return bool(scale_search)
    if scale_search == "groups":
        return "groups"
    raise ValueError(f"scale_search: expected False, True or 'groups', got {scale_search!r}")


def fit_rows(model, x, y, w, key, hyper=None, init=None, scale_search=False, mesh=None, progress=False,
             pilot=False):
    """The Gaussian ``model``'s fit on checked rows (x, y, w as ``fit`` makes
    them; w may be None): padded to a size bucket, one compiled program.
    ``init`` may be ``engine.no_init`` (the selection's own start, in the
    program that takes a start). ``pilot``: with ``hyper``, the program that
    also takes ``engine.pilot_hyper`` (``pilot_fit``)."""
    n = x.shape[0]
    what = ("one solve at the given smoothing parameters" if hyper is not None else
            f"selection of {model.structure(x.shape[1]).k} smoothing parameters")
    rows = f"{n} rows" + (f" (padded to {row_bucket(n)})" if mesh is None and row_bucket(n) != n else "")
    with progress_lines.phase(f"SS-ANOVA on {rows}: {what}", on=bool(progress)):
        fit = _run_padded(lambda x, y, w: engine.fit_jit(model, x, y, w, key, hyper, init, search_mode(scale_search), mesh,
                                                         bool(progress), bool(pilot)), x, y, w, mesh)
    if checks.is_concrete(fit.score) and not np.all(np.isfinite(np.asarray(fit.score))):
        raise ValueError(_singular_message(model, x, w))
    return fit


def pilot_fit(model, x, y, w, key, mesh=None):
    """The Gaussian ``model``'s fit at equal-trace thetas and the grid's best
    lambda (``engine.pilot_hyper``: one narrow pass, no search) on checked rows
    (x, y, w as ``fit`` makes them; w may be None), in the program of
    ``fit_rows(..., hyper=h, pilot=True)``."""
    marker = engine.pilot_hyper(model.structure(x.shape[1]).k, y.dtype)
    return fit_rows(model, x, y, w, key, hyper=marker, mesh=mesh, pilot=True)


def _run_padded(program, x, y, w, mesh):
    """``program(x, y, w)`` on the rows padded to a size bucket (one device;
    a mesh shards them as they are), waited for, as a local copy."""
    if mesh is None:
        x, y, w = _pad(x, y, w)
    return devices.local(jax.block_until_ready(program(x, y, w)))


def _pad(x, y, w):
    """Rows padded to ``row_bucket(n)`` with copies of the first row at
    weight 0 (they change neither the domains nor any statistic, and are never
    drawn as basis points); w then holds 1 (or the given weight) for the real
    rows. Unpadded when n is already a bucket size."""
    n = x.shape[0]
    b = row_bucket(n)
    if b == n:
        return x, y, w
    return _padded_to(x, y, w, b - n)


@functools.partial(jax.jit, static_argnums=3)
def _padded_to(x, y, w, extra):
    # one compiled program: eager, its operations compiled one by one in a
    # fresh process
    w = jnp.ones(y.shape, y.dtype) if w is None else w
    return (jnp.concatenate([x, jnp.broadcast_to(x[:1], (extra, x.shape[1]))]),
            jnp.concatenate([y, jnp.broadcast_to(y[:1], (extra,))]),
            jnp.concatenate([w, jnp.zeros((extra,), w.dtype)]))


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
