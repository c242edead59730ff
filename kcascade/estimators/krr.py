"""Kernel ridge regression of growing capacity: exact, Nystrom and random
Fourier features, hyperparameters selected by GCV with the shared engine.

The estimate is f(x) = ybar + g(x), ybar the mean response, g the minimiser of

    (1/n) sum_i (y_i - ybar - g(x_i))^2 + lambda |g|_H^2

in the RKHS of a stationary kernel k((x - x') / ell) (``kcascade.stationary``;
one lengthscale per column, "ard", or one for all, "shared", in the units of
x), over
- basis="exact": all of H; g = K(., X) a with (K + n lambda I) a = y - ybar
  (a Cholesky of the n x n matrix: n up to about 2e4);
- basis="nystrom": the span of k(., c_j) at q centres c_j (rows drawn
  uniformly, or by approximate ridge leverage scores); with T the Cholesky
  factor of K_CC + jitter I, the features Z = K_XC T^-T whiten the penalty,
  so that g = Z gamma with (Z'Z + n lambda I) gamma = Z'(y - ybar);
- basis="rff": random Fourier features Z = sqrt(2 k(0) / q) cos(X / ell W' + b),
  W (q, d) from the kernel's spectral density, b uniform on [0, 2 pi); the
  same ridge system in gamma.
For the feature bases the system is formed from the Gram statistics Z'Z, Z'y
of one pass over row chunks (``linalg.passes``: n x q is never held; a
device mesh splits the rows), or solved by conjugate gradients preconditioned
with the Gram matrix of q rows (FALKON's preconditioner: the centres for
Nystrom), each iteration one pass (solver="cg"), which a smaller fit can
start (``start=``: the warm start of the capacity cascade).

Selection: GCV with alpha 1.4, V = n RSS / (n - 1.4 df)^2 with df = tr H + 1
(the mean). A grid (six lengthscale multiples of sd_j sqrt(d), all lambda
from one eigendecomposition per lengthscale), then projected Newton steps on
(log lambda, log ell) with the exact gradient and Hessian from JAX
(``select.newton``), inside bounds.
"""
from __future__ import annotations

import dataclasses
import math
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import cho_solve, solve_triangular

from kcascade import checks, compilation, devices, frames, progress as progress_lines, protocol, scaling, select, stationary
from kcascade.linalg import passes

BASES = ("exact", "nystrom", "rff")
_LAMBDA_GRID = np.exp(np.linspace(np.log(1e-8), np.log(1.0), 17))
_ELL_FACTORS = np.array([0.125, 0.25, 0.5, 1.0, 2.0, 4.0])
# lambda's floor: the systems' condition numbers grow like 1 / lambda (K's
# eigenvalues are at most n k(0)); on elecdemand (669 rows, Nystrom q = 150)
# GCV ran to 1e-12, the Gram matrix had condition 1e21 and held-out MSE was
# 2.4 against 0.8 for the exact fit (extrapolation to temperatures outside
# the training rows contributes: at the floor 1e-8 it was 0.41). Gaussian
# kernels often select lambda at the floor with long lengthscales (their flat
# limit, near-polynomial fits): there the lengthscales carry the smoothing.
_LOG_LAMBDA_BOUNDS = (math.log(1e-8), math.log(1e3))
_LOG_ELL_RANGE = math.log(1e3)        # lengthscales within 1e3 of the grid's base either way
_GCV_ALPHA = 1.4
# exact selection builds and factors the n x n matrix several times per step
EXACT_SELECT_MAX_ROWS = 5000
EXACT_MAX_ROWS = 30000


class KRRHyper(NamedTuple):
    """Natural logs: ``log_lambda`` (scalar) and ``log_lengthscale`` ((d,) for
    "ard", (1,) for "shared"), lengthscales in the units of x."""

    log_lambda: jax.Array
    log_lengthscale: jax.Array

    def transferred(self, delta_log):
        """lambda multiplied by exp(delta_log), kept at or above the selection's
        numerical floor (1e-8: a student whose GCV ran to the floor carries no
        information below it); the lengthscales copied."""
        return KRRHyper(jnp.maximum(self.log_lambda + delta_log, _LOG_LAMBDA_BOUNDS[0]), self.log_lengthscale)


@dataclasses.dataclass(frozen=True)
class KernelRidge(protocol.Estimator):
    """Frozen configuration of a kernel ridge regressor (see the module docstring).

    Args:
      kernel: "gaussian", "matern32", "matern52", "laplacian", or a
        ``kcascade.stationary`` kernel (sums, products, positive multiples).
      basis: "exact", "nystrom" or "rff".
      n_basis: q, the centres or features; None: the default ``capacity(n)``
        (n for exact, min(n, ceil(2 sqrt n)) for Nystrom, min(1e4, ceil(4 sqrt n))
        for RFF).
      lengthscale: "ard" (one per column) or "shared".
      centres: "uniform" or "leverage" (Nystrom: approximate ridge leverage
        scores from a uniform pilot at the fit's hyperparameters).
      solver: "direct" (Gram statistics, then a Cholesky) or "cg"
        (preconditioned conjugate gradients; feature bases).
      chunk: rows per chunk of the passes.
      cg_tol: CG stops when |residual| <= cg_tol |Z'y|.
      max_cg: most CG iterations.
      max_steps: most Newton steps of the selection.
    """

    kernel: object = "gaussian"
    basis: str = "exact"
    n_basis: int | None = None
    lengthscale: str = "ard"
    centres: str = "uniform"
    solver: str = "direct"
    chunk: int = 2048
    cg_tol: float = 1e-8
    max_cg: int = 300
    max_steps: int = 20

    randomized: ClassVar[bool] = True

    def __post_init__(self):
        kernel = stationary.named(self.kernel)
        if self.basis not in BASES:
            raise ValueError(f"basis: expected one of {BASES}, got {self.basis!r}")
        if self.basis == "rff" and not stationary.has_spectrum(kernel):
            kernel.frequencies(None, 1, 1, None)     # raises the ValueError naming the kernels that have one
        if self.n_basis is not None:
            if self.basis == "exact":
                raise ValueError(f"n_basis: basis='exact' uses every row as its basis; got n_basis={self.n_basis!r}")
            if not (isinstance(self.n_basis, (int, np.integer)) and self.n_basis >= 1):
                raise ValueError(f"n_basis: expected an integer >= 1 or None, got {self.n_basis!r}")
        if self.lengthscale not in ("ard", "shared"):
            raise ValueError(f"lengthscale: expected 'ard' or 'shared', got {self.lengthscale!r}")
        if self.centres not in ("uniform", "leverage"):
            raise ValueError(f"centres: expected 'uniform' or 'leverage', got {self.centres!r}")
        if self.centres == "leverage" and self.basis != "nystrom":
            raise ValueError(f"centres: 'leverage' chooses Nystrom centres; basis is {self.basis!r}")
        if self.solver not in ("direct", "cg"):
            raise ValueError(f"solver: expected 'direct' or 'cg', got {self.solver!r}")
        if self.solver == "cg" and self.basis == "exact":
            raise ValueError("solver: 'cg' solves the feature bases ('nystrom', 'rff'); basis='exact' is solved directly")
        for name, v in (("chunk", self.chunk), ("max_cg", self.max_cg), ("max_steps", self.max_steps)):
            if not (isinstance(v, (int, np.integer)) and v >= 1):
                raise ValueError(f"{name}: expected an integer >= 1, got {v!r}")
        if not (isinstance(self.cg_tol, float) and 0 < self.cg_tol < 1):
            raise ValueError(f"cg_tol: expected a float in (0, 1), got {self.cg_tol!r}")

    @property
    def capabilities(self) -> frozenset:
        caps = {"init", "progress"}
        if self.basis != "exact":
            caps.add("mesh")
            if self.solver == "cg":
                caps.add("warm_start")
        return frozenset(caps)

    # -- protocol ---------------------------------------------------------------
    def default_law(self, d: int) -> scaling.Law:
        """lambda ~ n^{-r/(2r+1)}: r the kernel's eigenvalue decay order in d
        dimensions ((2 nu + d) / d for a Matern nu, laplacian nu = 1/2), a truth
        of smoothness p = 2 in the smoothing-spline sense (``scaling.
        smoothing_spline``); for the Gaussian kernel (decay faster than any
        power) the limit -1/2."""
        r = stationary.named(self.kernel).decay(d)
        return scaling.power(-0.5) if r is None else scaling.smoothing_spline(r, 2.0)

    def scale_of(self, hyper: KRRHyper):
        """log lambda."""
        return hyper.log_lambda

    def min_rows(self, d: int) -> int:
        return 4

    def capacity(self, n: int) -> int:
        """q at n rows: n_basis, or the default rule of the basis (see Args)."""
        if self.basis == "exact":
            return int(n)
        if self.n_basis is not None:
            return int(self.n_basis)
        if self.basis == "nystrom":
            return int(min(n, math.ceil(2.0 * math.sqrt(n))))
        return int(min(10000, math.ceil(4.0 * math.sqrt(n))))

    def check_data(self, x, y=None):
        """``fit``'s checks; returns (x, y) as float arrays of one dtype."""
        x = checks.as_array(x)
        n, d = checks.float_matrix(x, "x")
        if y is None:
            raise ValueError("y: KernelRidge is a regression and needs responses y of shape (n,)")
        y = checks.as_array(y)
        checks.float_vector(y, "y", n, "n = x.shape[0]")
        if n < self.min_rows(d):
            raise ValueError(f"x: expected at least {self.min_rows(d)} rows, got n = {n}")
        if self.basis == "exact" and n > EXACT_MAX_ROWS:
            raise ValueError(f"x: basis='exact' factors an n x n matrix, up to {EXACT_MAX_ROWS} rows; got n = {n} "
                             "(use basis='nystrom' or 'rff')")
        if self.basis == "nystrom" and self.n_basis is not None and self.n_basis > n:
            # centres are rows; random features are not, and q > n is a valid
            # (over-parameterised) random-feature ridge regression
            raise ValueError(f"n_basis: expected at most n = {n} Nystrom centres (they are rows of x), got {self.n_basis}")
        dtype = jnp.result_type(x) if jnp.issubdtype(jnp.result_type(x), jnp.floating) else jnp.result_type(float)
        x, y = jnp.asarray(x, dtype), jnp.asarray(y, dtype)
        if checks.is_concrete(x, y):
            checks.finite(x, "x")
            checks.finite(y, "y")
            lo, hi, _ = checks.column_facts(x)
            flat = [j for j in range(d) if lo[j] == hi[j]]
            if flat:
                raise ValueError(f"x[:, {flat[0]}]: expected a non-constant column, every value is {lo[flat[0]]}")
        return x, y

    # -- fitting ----------------------------------------------------------------
    def fit(self, x, y, *, key, hyper: KRRHyper | None = None, init: KRRHyper | None = None, lam=None,
            lengthscale=None, start=None, mesh=None, progress: bool = False) -> "KRRFit":
        """Select lambda and the lengthscales by GCV (unless given), then solve.

        Args:
          x: (n, d) covariates; y: (n,) responses.
          key: a ``jax.random`` key (the Nystrom centres or the Fourier
            frequencies, the CG preconditioner's rows).
          hyper: fixed ``KRRHyper``; or ``lam`` (> 0) and ``lengthscale``
            (> 0, a scalar or (d,), in the units of x) given by hand.
          init: a start for the Newton steps instead of the grid.
          start: a fitted ``KRRFit`` (e.g. a student's) whose predictions start
            the CG iterations (solver="cg" only); of a tuple of fits (bagged
            students) the first.
          mesh: a ``jax.sharding.Mesh`` splitting the passes over the rows
            (feature bases).
          progress: progress lines on stderr.
        Returns:
          A ``KRRFit``.
        """
        x, columns = frames.split(x)
        self.for_columns(columns)
        key = checks.random_key(key)
        x, y = self.check_data(x, y)
        n, d = x.shape
        width = d if self.lengthscale == "ard" else 1
        if lam is not None or lengthscale is not None:
            if hyper is not None:
                raise ValueError("lam: give either hyper or lam and lengthscale, not both")
            hyper = _by_hand(lam, lengthscale, width, x.dtype)
        for name, h in (("hyper", hyper), ("init", init)):
            if h is not None and (not isinstance(h, KRRHyper) or np.shape(h.log_lengthscale) != (width,)
                                  or np.shape(h.log_lambda) != ()):
                raise ValueError(f"{name}: expected a KRRHyper with a scalar log_lambda and log_lengthscale of shape "
                                 f"({width},) (lengthscale={self.lengthscale!r}), got {h!r}")
        cast = lambda h: None if h is None else KRRHyper(jnp.asarray(h.log_lambda, x.dtype),
                                                          jnp.asarray(h.log_lengthscale, x.dtype))
        hyper, init = cast(hyper), cast(init)
        start = protocol.first_start(start)
        if start is not None:
            protocol.require(self, ["warm_start"])
            if not isinstance(start, KRRFit) or start.centres.shape[1] != d:
                raise ValueError(f"start: expected a KRRFit on {d} columns, got {type(start).__name__}")
        if hyper is None and self.basis == "exact" and n > EXACT_SELECT_MAX_ROWS:
            raise ValueError(f"x: selection with basis='exact' is limited to {EXACT_SELECT_MAX_ROWS} rows, got n = {n}; "
                             "use kc.cascade (a student selects), basis='nystrom', or give hyper")
        if mesh is not None:
            protocol.require(self, ["mesh"])
        mesh = devices.auto_mesh(mesh)
        x, y = devices.on_mesh(mesh, x, y)
        q = self.capacity(n)
        what = "fixed hyperparameters" if hyper is not None else "GCV selection"
        with progress_lines.phase(f"KernelRidge ({self.basis}, q = {q}) on {n} rows: {what}", on=bool(progress)):
            out = _fit_jit(self, x, y, key, hyper, init, start, mesh)
            out = jax.block_until_ready(out) if progress else out
        out = devices.local(out) if mesh is not None else out
        return protocol.with_columns(out, columns)

    def score_at(self, x, y, hyper: KRRHyper, *, key):
        """The GCV score at ``hyper`` (the basis drawn with ``key`` as in ``fit``)."""
        x, y = self.check_data(x, y)
        return _score_jit(self, x, y, checks.random_key(key), hyper)


def _by_hand(lam, lengthscale, width, dtype):
    if lam is None or lengthscale is None:
        raise ValueError("lam: give both lam and lengthscale (or hyper)")
    lam_a = np.asarray(lam, float)
    if lam_a.ndim != 0 or not np.isfinite(lam_a) or lam_a <= 0:
        raise ValueError(f"lam: expected a positive finite scalar, got {lam!r}")
    ell = np.asarray(lengthscale, float)
    ell = np.broadcast_to(ell, (width,)) if ell.ndim == 0 else ell
    if ell.shape != (width,) or not np.all(np.isfinite(ell)) or np.any(ell <= 0):
        raise ValueError(f"lengthscale: expected positive finite values, a scalar or shape ({width},), got {lengthscale!r}")
    return KRRHyper(jnp.asarray(np.log(lam_a), dtype), jnp.asarray(np.log(ell), dtype))


# -- the basis and its features ---------------------------------------------------

def _jitter(dtype):
    return 1e-9 if dtype == jnp.float64 else 1e-5


class _Basis(NamedTuple):
    """centres (q, d): Nystrom centres, the training rows (exact) or the RFF
    frequencies W; phase (q,): the RFF phases b (zeros otherwise)."""

    centres: jax.Array
    phase: jax.Array


def _draw(model, x, key, q):
    n, d = x.shape
    if model.basis == "exact":
        return _Basis(x, jnp.zeros((n,), x.dtype))
    if model.basis == "nystrom":
        idx = jax.random.permutation(key, n)[:q]
        return _Basis(x[idx], jnp.zeros((q,), x.dtype))
    k1, k2 = jax.random.split(key)
    w = stationary.named(model.kernel).frequencies(k1, q, d, x.dtype)
    return _Basis(w, jax.random.uniform(k2, (q,), x.dtype, 0.0, 2.0 * math.pi))


def _ell(hyper, d):
    return jnp.broadcast_to(jnp.exp(hyper.log_lengthscale), (d,))


class _Features(NamedTuple):
    """fn: rows (c, d) -> whitened features (c, q); to_coef: gamma -> the
    coefficients of k(., centre) (Nystrom) or of the features (RFF)."""

    fn: object
    to_coef: object


def _features(model, basis, hyper, d):
    kernel = stationary.named(model.kernel)
    ell = _ell(hyper, d)
    if model.basis == "rff":
        q = basis.centres.shape[0]
        amp = stationary.amplitude(kernel)
        fn = lambda xc: math.sqrt(2.0 * amp / q) * jnp.cos((xc / ell) @ basis.centres.T + basis.phase)
        return _Features(fn, lambda g: g)
    uc = basis.centres / ell
    kcc = kernel(uc, uc)
    t = jnp.linalg.cholesky(kcc + _jitter(kcc.dtype) * stationary.amplitude(kernel) * jnp.eye(uc.shape[0], dtype=kcc.dtype))
    fn = lambda xc: solve_triangular(t, kernel(xc / ell, uc).T, lower=True).T
    return _Features(fn, lambda g: solve_triangular(t.T, g, lower=False))


# -- GCV --------------------------------------------------------------------------

def _gcv(n, rss, trace_h):
    denom = n - _GCV_ALPHA * (trace_h + 1.0)
    return jnp.where(denom > 0, n * rss / jnp.maximum(denom, 1e-300) ** 2, jnp.inf)


def _exact_score(model, x, yc, hyper):
    # RSS = (n lambda)^2 |B y|^2 and tr H = n - n lambda tr B with B = (K + n lambda I)^-1:
    # formed by an explicit inverse, whose derivatives (-B dA B) are matrix
    # products; through a Cholesky factor the Hessian's forward passes ran
    # 2x slower (n = 800, d = 3)
    n = x.shape[0]
    u = x / _ell(hyper, x.shape[1])
    nl = n * jnp.exp(hyper.log_lambda)
    b = jnp.linalg.inv(stationary.named(model.kernel)(u, u) + nl * jnp.eye(n, dtype=x.dtype))
    b = 0.5 * (b + b.T)
    alpha = b @ yc
    return _gcv(n, nl * nl * jnp.sum(alpha * alpha), n - nl * jnp.trace(b))


def _feature_stats(model, x, yc, basis, hyper, mesh=None, progress=None):
    feats = _features(model, basis, hyper, x.shape[1])
    return passes.accumulate(feats.fn, x, yc, chunk=min(model.chunk, x.shape[0]), mesh=mesh, progress=progress), feats


def _feature_score(model, x, yc, basis, hyper):
    n = x.shape[0]
    st, _ = _feature_stats(model, x, yc, basis, hyper)
    q = st.ztz.shape[0]
    nl = n * jnp.exp(hyper.log_lambda)
    low = jnp.linalg.cholesky(st.ztz + nl * jnp.eye(q, dtype=x.dtype))
    g = cho_solve((low, True), st.zty)
    rss = jnp.maximum(st.yty - 2.0 * g @ st.zty + g @ (st.ztz @ g), 0.0)
    tr_inv = jnp.sum(solve_triangular(low, jnp.eye(q, dtype=x.dtype), lower=True) ** 2)
    return _gcv(n, rss, q - nl * tr_inv)


def _score(model, x, yc, basis, hyper):
    if model.basis == "exact":
        return _exact_score(model, x, yc, hyper)
    return _feature_score(model, x, yc, basis, hyper)


def _grid_scores(model, x, yc, basis, log_ell):
    """GCV over the lambda grid at one lengthscale: one eigendecomposition."""
    n = x.shape[0]
    hyper = KRRHyper(jnp.zeros((), x.dtype), log_ell)
    lam = jnp.asarray(_LAMBDA_GRID, x.dtype)
    if model.basis == "exact":
        u = x / _ell(hyper, x.shape[1])
        s, v = jnp.linalg.eigh(stationary.named(model.kernel)(u, u))
        s = jnp.maximum(s, 0.0)
        b2 = (v.T @ yc) ** 2
        nl = n * lam[:, None]
        rss = jnp.sum(b2 * (nl / (s + nl)) ** 2, axis=1)
        tr = jnp.sum(s / (s + nl), axis=1)
    else:
        st, _ = _feature_stats(model, x, yc, basis, hyper)
        s, v = jnp.linalg.eigh(st.ztz)
        s = jnp.maximum(s, 0.0)
        c2 = (v.T @ st.zty) ** 2
        nl = n * lam[:, None]
        rss = jnp.maximum(st.yty - jnp.sum(c2 * (2.0 / (s + nl) - s / (s + nl) ** 2), axis=1), 0.0)
        tr = jnp.sum(s / (s + nl), axis=1)
    return _gcv(n, rss, tr)


def _base_log_ell(model, x):
    d = x.shape[1]
    sd = jnp.std(x, axis=0)
    base = sd * math.sqrt(d)
    if model.lengthscale == "shared":
        base = jnp.median(base, keepdims=True)
    return jnp.log(base)


def _select(model, x, yc, basis, init):
    base = _base_log_ell(model, x)
    if init is None:
        factors = jnp.log(jnp.asarray(_ELL_FACTORS, x.dtype))
        scores = jax.lax.map(lambda f: _grid_scores(model, x, yc, basis, base + f), factors)   # (6, 19)
        flat = jnp.argmin(jnp.where(jnp.isfinite(scores), scores, jnp.inf))
        i, j = flat // scores.shape[1], flat % scores.shape[1]
        start = jnp.concatenate([jnp.log(jnp.asarray(_LAMBDA_GRID, x.dtype))[j][None], base + factors[i]])
    else:
        start = jnp.concatenate([init.log_lambda[None], init.log_lengthscale])
    lower = jnp.concatenate([jnp.full((1,), _LOG_LAMBDA_BOUNDS[0], x.dtype), base - _LOG_ELL_RANGE])
    upper = jnp.concatenate([jnp.full((1,), _LOG_LAMBDA_BOUNDS[1], x.dtype), base + _LOG_ELL_RANGE])
    fun = lambda p: _score(model, x, yc, basis, KRRHyper(p[0], p[1:]))
    # GCV is flat near its minimum: a relative change of 1e-6 moves no prediction that matters
    res = select.newton(fun, start, lower=lower, upper=upper, max_steps=model.max_steps, f_scale="relative",
                        f_tol=1e-6, g_tol=1e-4)
    return KRRHyper(res.x[0], res.x[1:]), res


# -- solving ------------------------------------------------------------------------

def _leverage_centres(model, x, yc, basis, hyper, key, q):
    """q centres drawn without replacement with probability proportional to
    approximate ridge leverage scores z_i'(Z'Z + n lambda I)^-1 z_i under the
    uniform pilot ``basis`` (Gumbel top-k)."""
    n = x.shape[0]
    st, feats = _feature_stats(model, x, yc, basis, hyper)
    low = jnp.linalg.cholesky(st.ztz + n * jnp.exp(hyper.log_lambda) * jnp.eye(q, dtype=x.dtype))
    chunk = min(model.chunk, n)
    pad = -(-n // chunk) * chunk - n
    xp = jnp.concatenate([x, jnp.broadcast_to(x[:1], (pad, x.shape[1]))]).reshape(-1, chunk, x.shape[1])
    lev = jax.lax.map(lambda xc: jnp.sum(solve_triangular(low, feats.fn(xc).T, lower=True) ** 2, axis=0), xp)
    lev = lev.reshape(-1)[:n]
    g = jax.random.gumbel(key, (n,), x.dtype)
    _, idx = jax.lax.top_k(jnp.log(jnp.maximum(lev, 1e-300)) + g, q)
    return _Basis(x[idx], basis.phase)


def _solve_direct(model, x, yc, basis, hyper, mesh):
    n = x.shape[0]
    if model.basis == "exact":
        u = x / _ell(hyper, x.shape[1])
        a = stationary.named(model.kernel)(u, u) + n * jnp.exp(hyper.log_lambda) * jnp.eye(n, dtype=x.dtype)
        return cho_solve((jnp.linalg.cholesky(a), True), yc), jnp.asarray(-1)
    st, feats = _feature_stats(model, x, yc, basis, hyper, mesh)
    q = st.ztz.shape[0]
    gamma = cho_solve((jnp.linalg.cholesky(st.ztz + n * jnp.exp(hyper.log_lambda) * jnp.eye(q, dtype=x.dtype)), True),
                      st.zty)
    return feats.to_coef(gamma), jnp.asarray(-1)


def _raw_features(model, basis, hyper, d):
    """(rows -> (c, q) features, penalty factor T): Nystrom K(x, C) with
    T T' = K_CC + jitter I (the penalty beta'K_CC beta); RFF the features with T = I."""
    kernel = stationary.named(model.kernel)
    ell = _ell(hyper, d)
    q = basis.centres.shape[0]
    if model.basis == "rff":
        amp = stationary.amplitude(kernel)
        fn = lambda xc: math.sqrt(2.0 * amp / q) * jnp.cos((xc / ell) @ basis.centres.T + basis.phase)
        return fn, None
    uc = basis.centres / ell
    kcc = kernel(uc, uc)
    t = jnp.linalg.cholesky(kcc + _jitter(kcc.dtype) * stationary.amplitude(kernel) * jnp.eye(q, dtype=kcc.dtype))
    return (lambda xc: kernel(xc / ell, uc)), t


def _solve_cg(model, x, yc, basis, hyper, key, start, y_mean, mesh):
    """Preconditioned CG (FALKON, Rudi et al. 2017) on the normal equations in
    the coefficients beta of the raw features Z (K(x, C), or the RFF):
    (Z'Z + n lambda P) beta = Z'yc, P = T T' the penalty (K_CC for Nystrom, I
    for RFF). Each iteration is one pass over the rows computing Z'(Z v)
    chunk by chunk (no q x q work per row). Preconditioner: the same matrix
    with Z'Z replaced by (n/m) Z_S'Z_S on m = q rows S (the centres for
    Nystrom, random rows for RFF), applied as T^-T (A A')^-1 T^-1 with A the
    Cholesky factor of (n/m) T^-1 Z_S'Z_S T^-T + n lambda I. Start: 0, or the
    same ridge problem's solution on S fitted to a smaller fit's predictions."""
    n, d = x.shape
    fn, t = _raw_features(model, basis, hyper, d)
    q = basis.centres.shape[0]
    lam = jnp.exp(hyper.log_lambda)
    nl = n * lam
    s_rows = basis.centres if model.basis == "nystrom" else x[jax.random.permutation(key, n)[:q]]
    zs = fn(s_rows)
    m = s_rows.shape[0]
    eye = jnp.eye(q, dtype=x.dtype)
    t_solve = (lambda v: v) if t is None else (lambda v: solve_triangular(t, v, lower=True))
    tt_solve = (lambda v: v) if t is None else (lambda v: solve_triangular(t.T, v, lower=False))
    pen = (lambda v: v) if t is None else (lambda v: t @ (t.T @ v))
    w = t_solve(zs.T)
    b_s = w @ w.T
    a_pre = jnp.linalg.cholesky((n / m) * b_s + nl * eye)
    precondition = lambda r: tt_solve(cho_solve((a_pre, True), t_solve(r)))
    chunk = min(model.chunk, n)
    apply = lambda v, u=None: passes.normal_apply(fn, x, v, u, chunk=chunk, mesh=mesh)
    if start is None:
        g0 = jnp.zeros((q,), x.dtype)
    else:
        target = start.predict(s_rows) - y_mean
        g0 = tt_solve(cho_solve((jnp.linalg.cholesky(b_s + m * lam * eye), True), t_solve(zs.T @ target)))
    b_norm = jnp.linalg.norm(apply(jnp.zeros((q,), x.dtype), yc))
    r0 = apply(-g0, yc) - nl * pen(g0)
    z0 = precondition(r0)

    def going(c):
        _, r, _, _, k = c
        return (k < model.max_cg) & (jnp.linalg.norm(r) > model.cg_tol * b_norm)

    def body(c):
        g, r, z, p, k = c
        ap = apply(p) + nl * pen(p)
        rz = r @ z
        a = rz / (p @ ap)
        g, r_new = g + a * p, r - a * ap
        z_new = precondition(r_new)
        p = z_new + (r_new @ z_new) / rz * p
        return g, r_new, z_new, p, k + 1

    g, _, _, _, k = jax.lax.while_loop(going, body, (g0, r0, z0, z0, jnp.asarray(0)))
    return g, k


def _fit_impl(model, x, y, key, hyper, init, start, mesh):
    n = x.shape[0]
    q = model.capacity(n)
    y_mean = jnp.mean(y)
    yc = y - y_mean
    k_basis, k_lev, k_cg = jax.random.split(key, 3)
    basis = _draw(model, x, k_basis, q)
    steps = jnp.asarray(0)
    if hyper is None:
        hyper, res = _select(model, x, yc, basis, init)
        steps = res.steps
    if model.centres == "leverage":
        basis = _leverage_centres(model, x, yc, basis, hyper, k_lev, q)
    if model.solver == "cg":
        coef, iters = _solve_cg(model, x, yc, basis, hyper, k_cg, start, y_mean, mesh)
    else:
        coef, iters = _solve_direct(model, x, yc, basis, hyper, mesh)
    return KRRFit(model=model, n=n, hyper=hyper, centres=basis.centres, phase=basis.phase, coef=coef,
                  y_mean=y_mean, cg_iterations=iters, newton_steps=steps)


_fit_jit = compilation.jit(_fit_impl, static_argnums=(0, 7))


def _score_impl(model, x, y, key, hyper):
    basis = _draw(model, x, jax.random.split(key, 3)[0], model.capacity(x.shape[0]))
    return _score(model, x, y - jnp.mean(y), basis, hyper)


_score_jit = compilation.jit(_score_impl, static_argnums=0)


@dataclasses.dataclass(frozen=True)
class KRRFit(protocol.Fit):
    """A fitted kernel ridge regression (a pytree).

    Attributes:
      model: the ``KernelRidge`` configuration; n: rows fitted on.
      hyper: ``KRRHyper`` (log lambda, log lengthscales).
      centres: (q, d) the training rows (exact), the Nystrom centres, or the
        RFF frequencies; phase: (q,) RFF phases (zeros otherwise).
      coef: (q,) coefficients of k(., centre_j) (exact, Nystrom) or of the
        features (RFF); y_mean: the mean response.
      cg_iterations: CG iterations of the solve (-1: direct);
      newton_steps: Newton steps of the selection (0 when hyper was given).
    """

    model: KernelRidge
    n: int
    hyper: KRRHyper
    centres: jax.Array
    phase: jax.Array
    coef: jax.Array
    y_mean: jax.Array
    cg_iterations: jax.Array
    newton_steps: jax.Array
    columns: object = None

    def __repr__(self):
        return protocol.short_repr(self, n=self.n, q=self.centres.shape[0], lam=jnp.exp(self.hyper.log_lambda),
                                   lengthscale=self.lengthscale) + f" of {self.model!r}"

    def save(self, path) -> str:
        """Write this fit to ``path`` (.npz + JSON, no pickle; the exact basis
        keeps its training rows as centres); ``kc.load(path)`` reads it.
        Returns the path written."""
        from kcascade import persist
        return persist.save(self, path)

    @property
    def lam(self):
        """lambda."""
        return jnp.exp(self.hyper.log_lambda)

    @property
    def lengthscale(self):
        """(d,) or (1,) lengthscales in the units of x."""
        return jnp.exp(self.hyper.log_lengthscale)

    def predict(self, x_new):
        """(m,) f at the rows of ``x_new`` (m, d), in row chunks."""
        x_new = checks.query_rows(frames.encode(x_new, self.columns), self.centres.shape[1], self.centres.dtype)
        return _predict_jit(self, x_new)

    def evaluate(self, x_new):
        """(m,) the fitted regression function (the protocol's name for ``predict``)."""
        return self.predict(x_new)


def _predict_impl(fit: KRRFit, x_new):
    model = fit.model
    d = x_new.shape[1]
    ell = _ell(fit.hyper, d)
    kernel = stationary.named(model.kernel)
    if model.basis == "rff":
        q = fit.centres.shape[0]
        amp = stationary.amplitude(kernel)
        fn = lambda xc: math.sqrt(2.0 * amp / q) * jnp.cos((xc / ell) @ fit.centres.T + fit.phase)
    else:
        uc = fit.centres / ell
        fn = lambda xc: kernel(xc / ell, uc)
    m = x_new.shape[0]
    chunk = max(1, min(m, (1 << 22) // max(fit.centres.shape[0], 1)))
    pad = -(-m // chunk) * chunk - m
    xp = jnp.concatenate([x_new, jnp.broadcast_to(x_new[:1], (pad, d))]).reshape(-1, chunk, d)
    out = jax.lax.map(lambda xc: fn(xc) @ fit.coef, xp).reshape(-1)[:m]
    return out + fit.y_mean


_predict_jit = compilation.jit(_predict_impl)

jax.tree_util.register_dataclass(KRRFit, data_fields=["hyper", "centres", "phase", "coef", "y_mean", "cg_iterations",
                                                      "newton_steps"], meta_fields=["model", "n", "columns"])
