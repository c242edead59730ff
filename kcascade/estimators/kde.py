"""Kernel density estimation with a product Gaussian kernel, one bandwidth per
dimension, and exact cross-validated bandwidths computed in blocks.

    f(x) = (1/n) sum_i prod_j phi((x_j - X_ij) / h_j) / h_j

Selectors: "lscv" (least-squares CV), "lcv" (likelihood CV), "scott"
(h_j = s_j n^{-1/(d+4)}) and "silverman" (h_j = s_j (4 / ((d+2) n))^{1/(d+4)}),
with s_j = min(sd_j, IQR_j / 1.349), each dimension's spread. LSCV and LCV
sum over all pairs of rows in (block x block) tiles inside a ``lax.scan``, so
no n x n matrix exists; a grid of common factors of the Silverman bandwidths
is evaluated in one ``vmap``, then L-BFGS refines all log bandwidths.
"""
from __future__ import annotations

import dataclasses
import math
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from kcascade import checks, compilation, frames, progress as progress_lines, protocol, scaling, select

_LOG_GRID = np.linspace(np.log(0.05), np.log(3.0), 25)
_SELECTORS = ("lscv", "lcv", "scott", "silverman")


class KDEHyper(NamedTuple):
    """Natural logs of the bandwidths, (d,)."""

    log_bandwidth: jax.Array

    def transferred(self, delta_log):
        """Every bandwidth multiplied by exp(delta_log)."""
        return KDEHyper(self.log_bandwidth + delta_log)


@dataclasses.dataclass(frozen=True)
class KDE(protocol.Estimator):
    """Frozen configuration of a kernel density estimator (unsupervised: ``fit``
    takes no y; the selectors are exact and draw nothing, so it takes no key).

    Args:
      kernel: "gaussian" (product Gaussian).
      selector: "lscv" (default), "lcv", "scott" or "silverman".
      block: rows per tile of the pair sums and of ``log_density``.
      max_steps: L-BFGS steps refining the cross-validated log bandwidths.
    """

    kernel: str = "gaussian"
    selector: str = "lscv"
    block: int = 512
    max_steps: int = 15

    supervised: ClassVar[bool] = False
    randomized: ClassVar[bool] = False
    capabilities: ClassVar[frozenset] = frozenset({"init", "progress"})

    def __post_init__(self):
        if self.kernel != "gaussian":
            raise ValueError(f"kernel: expected 'gaussian', got {self.kernel!r}")
        if self.selector not in _SELECTORS:
            raise ValueError(f"selector: expected one of {_SELECTORS}, got {self.selector!r}")
        if not (isinstance(self.block, (int, np.integer)) and self.block >= 1):
            raise ValueError(f"block: expected an integer >= 1, got {self.block!r}")

    def default_law(self, d: int) -> scaling.Law:
        """The bandwidth law h ~ n^{-1/(d+4)} of a second-order kernel."""
        return scaling.kde(d)

    def scale_of(self, hyper: KDEHyper):
        """The scale parameter a law acts on: the mean log bandwidth."""
        return jnp.mean(hyper.log_bandwidth)

    def min_rows(self, d: int) -> int:
        return 2

    def check_data(self, x, y=None):
        """``fit``'s checks of ``x`` (n, d); returns (x as a float array, None)."""
        if y is not None:
            raise ValueError(f"y: KDE estimates a density and takes no responses, got {type(y).__name__} "
                             f"of shape {np.shape(y)}")
        x = checks.as_array(x)
        n, d = checks.float_matrix(x, "x")
        if n < self.min_rows(d):
            raise ValueError(f"x: expected at least {self.min_rows(d)} rows, got n = {n}")
        dtype = jnp.result_type(x) if jnp.issubdtype(jnp.result_type(x), jnp.floating) else jnp.result_type(float)
        x = jnp.asarray(x, dtype)
        if checks.is_concrete(x):
            checks.finite(x, "x")
            lo, hi, _ = checks.column_facts(x)
            flat = [j for j in range(d) if lo[j] == hi[j]]
            if flat:
                raise ValueError(f"x[:, {flat[0]}]: expected a non-constant column, every value is {lo[flat[0]]}")
        return x, None

    def fit(self, x, *, hyper: KDEHyper | None = None, init: KDEHyper | None = None,
            bandwidth=None, progress: bool = False) -> "KDEFit":
        """Select the bandwidths (unless given) and return the fit.

        Args:
          x: (n, d) float data, n >= 2.
          hyper: fixed log bandwidths (``KDEHyper``); or ``bandwidth``: (d,) or
            a scalar, positive, in the units of x.
          init: a starting point for the cross-validation refinement instead
            of the grid (e.g. transferred from a smaller sample).
          progress: print progress lines on stderr (start, every 5 s, done).
        Returns:
          A ``KDEFit`` (a pytree).
        """
        x, columns = frames.split(x)
        self.for_columns(columns)       # numeric columns only
        x, _ = self.check_data(x)
        d, dtype = x.shape[1], x.dtype
        if bandwidth is not None:
            if hyper is not None:
                raise ValueError("bandwidth: give either bandwidth or hyper, not both")
            h = np.broadcast_to(np.asarray(bandwidth, float), (d,)) if np.ndim(bandwidth) == 0 else np.asarray(bandwidth, float)
            if h.shape != (d,) or not np.all(np.isfinite(h)) or np.any(h <= 0):
                raise ValueError(f"bandwidth: expected a positive finite scalar or shape ({d},), got {bandwidth!r}")
            hyper = KDEHyper(jnp.log(jnp.asarray(h, dtype)))
        for name, h in (("hyper", hyper), ("init", init)):
            if h is not None and (not isinstance(h, KDEHyper) or np.shape(h.log_bandwidth) != (d,)):
                raise ValueError(f"{name}: expected a KDEHyper with log_bandwidth of shape ({d},), got {h!r}")
        if hyper is not None:
            hyper = KDEHyper(jnp.asarray(hyper.log_bandwidth, dtype))
        if init is not None:
            init = KDEHyper(jnp.asarray(init.log_bandwidth, dtype))
        what = "fixed bandwidths" if hyper is not None else f"{self.selector} bandwidth selection"
        with progress_lines.phase(f"KDE on {x.shape[0]} rows: {what}", on=bool(progress)):
            out = _fit_jit(self, x, hyper, init)
            return jax.block_until_ready(out) if progress else out

    def score_at(self, x, hyper: KDEHyper):
        """The selector's criterion at ``hyper`` (LSCV, or minus the mean LCV log likelihood)."""
        x = jnp.asarray(x)
        return _score_jit(self, x, jnp.asarray(hyper.log_bandwidth, x.dtype))


def spread(x):
    """(d,) min(sd, IQR / 1.349) per column (sd where the IQR is 0)."""
    sd = jnp.std(x, axis=0, ddof=1)
    iqr = jnp.percentile(x, 75, axis=0) - jnp.percentile(x, 25, axis=0)
    return jnp.where(iqr > 0, jnp.minimum(sd, iqr / 1.349), sd)


def rule_of_thumb(x, selector: str):
    """(d,) Scott or Silverman bandwidths."""
    n, d = x.shape
    factor = 1.0 if selector == "scott" else (4.0 / (d + 2.0)) ** (1.0 / (d + 4.0))
    return spread(x) * factor * n ** (-1.0 / (d + 4.0))


def _weights(x):
    return jnp.ones((x.shape[0],), x.dtype)


def _tiles(x, w, block):
    n = x.shape[0]
    b = min(block, n)
    pad = -(-n // b) * b - n
    xp = jnp.concatenate([x, jnp.broadcast_to(x[:1], (pad, x.shape[1]))])
    wp = jnp.concatenate([w, jnp.zeros((pad,), w.dtype)])
    return xp.reshape(-1, b, x.shape[1]), wp.reshape(-1, b)


def _sq_dist(xi, xk, log_h):
    """(b, b) sum_j ((xi_j - xk_j) / h_j)^2."""
    inv = jnp.exp(-log_h)
    # one (b, b) term per dimension: a trailing axis of length d (often 1-4)
    # makes a poor layout for XLA:CPU
    return sum(((xi[:, None, j] - xk[None, :, j]) * inv[j]) ** 2 for j in range(xi.shape[1]))


def _lscv(x, w, log_h, block):
    """Least-squares CV: int f^2 - (2/n) sum_i f_{-i}(X_i), by pair sums in tiles."""
    xs, ws = _tiles(x, w, block)
    n, d = jnp.sum(w), x.shape[1]

    def row_block(acc, a):
        xi, wi = a

        @jax.checkpoint
        def col_block(acc2, c):
            xk, wk = c
            r = _sq_dist(xi, xk, log_h)
            ww = wi[:, None] * wk[None, :]
            e = jnp.exp(-0.25 * r)  # phi at sqrt(2) h; its square is phi at h
            return acc2 + jnp.stack([jnp.sum(ww * e), jnp.sum(ww * e * e)]), None

        return jax.lax.scan(col_block, acc, (xs, ws))[0], None

    s = jax.lax.scan(row_block, jnp.zeros((2,), x.dtype), (xs, ws))[0]
    norm = jnp.exp(-jnp.sum(log_h)) * (2.0 * math.pi) ** (-0.5 * d)
    integral = s[0] * norm * 2.0 ** (-0.5 * d) / (n * n)
    loo = (s[1] - n) * norm / (n * (n - 1.0))
    return integral - 2.0 * loo


def _neg_lcv(x, w, log_h, block):
    """Minus the mean leave-one-out log density, logsumexp over tiles."""
    xs, ws = _tiles(x, w, block)
    n, d = jnp.sum(w), x.shape[1]
    b = xs.shape[1]

    def row_block(acc, a):
        xi, wi, bi = a

        @jax.checkpoint
        def col_block(carry, c):
            xk, wk, bk = c
            r = -0.5 * _sq_dist(xi, xk, log_h)
            same = (bi == bk) & jnp.eye(b, dtype=bool)
            r = jnp.where(same | (wk[None, :] == 0), -jnp.inf, r)
            m = jnp.maximum(carry[0], jnp.max(r, axis=1))
            total = carry[1] * jnp.exp(carry[0] - m) + jnp.sum(jnp.exp(r - m[:, None]), axis=1)
            return (m, total), None

        init = (jnp.full((b,), -jnp.inf, x.dtype), jnp.zeros((b,), x.dtype))
        m, total = jax.lax.scan(col_block, init, (xs, ws, jnp.arange(xs.shape[0])))[0]
        return acc + jnp.sum(wi * (m + jnp.log(total))), None

    s = jax.lax.scan(row_block, jnp.zeros((), x.dtype), (xs, ws, jnp.arange(xs.shape[0])))[0]
    const = jnp.log(n - 1.0) + 0.5 * d * math.log(2.0 * math.pi) + jnp.sum(log_h)
    return -(s / n - const)


def _criterion(model, x, w, log_h):
    fn = _lscv if model.selector == "lscv" else _neg_lcv
    # computed in the data's dtype: float32 rows stay float32 under x64, where
    # the optimiser's steps may come back as float64
    return fn(x, w, jnp.asarray(log_h, x.dtype), model.block)


def _fit_impl(model, x, hyper, init):
    w = _weights(x)
    if hyper is not None:
        log_h = hyper.log_bandwidth
    elif model.selector in ("scott", "silverman"):
        log_h = jnp.log(rule_of_thumb(x, model.selector))
    else:
        def criterion(lh):
            return _criterion(model, x, w, lh)

        if init is None:
            base = jnp.log(rule_of_thumb(x, "silverman"))
            grid = base[None, :] + jnp.asarray(_LOG_GRID, x.dtype)[:, None]
            start = select.grid_best(jax.vmap(criterion)(grid), grid)
        else:
            start = init.log_bandwidth
        # The criterion is flat near its minimum in units that matter for the
        # estimate: a relative gradient of 1e-5 is far below what moves the
        # held-out likelihood.
        log_h = select.minimize(criterion, lambda _: criterion, jnp.asarray(start, x.dtype), rounds=1,
                                max_steps=model.max_steps, rel_grad=1e-5)
    return KDEFit(model=model, data=x, hyper=KDEHyper(jnp.asarray(log_h, x.dtype)))


_fit_jit = compilation.jit(_fit_impl, static_argnums=0)
_score_jit = compilation.jit(lambda model, x, log_h: _criterion(model, x, _weights(x), log_h), static_argnums=0)


@dataclasses.dataclass(frozen=True)
class KDEFit(protocol.Fit):
    """A fitted KDE (a pytree). ``data``: (n, d), the training rows, which the
    estimate is made of (a KDE fit stores its data); ``hyper``: log bandwidths."""

    model: KDE
    data: jax.Array
    hyper: KDEHyper

    @property
    def n(self) -> int:
        return self.data.shape[0]

    def __repr__(self):
        return protocol.short_repr(self, n=self.n, d=self.data.shape[-1], bandwidth=self.bandwidth) + \
            f" of {self.model!r} (stores its {self.n} training rows)"

    def save(self, path) -> str:
        """Write this fit to ``path`` (.npz: arrays, and the configuration as
        JSON with a format version; no pickle); ``kc.load(path)`` reads it. The file holds the training rows
        (a KDE fit is made of them).
        Returns the path written."""
        from kcascade import persist
        return persist.save(self, path)

    def evaluate(self, x_new):
        """(m,) the log density at ``x_new`` (the protocol's name for ``log_density``)."""
        return self.log_density(x_new)

    @property
    def bandwidth(self):
        """(d,) bandwidths, in the units of x."""
        return jnp.exp(self.hyper.log_bandwidth)

    def log_density(self, x_new):
        """(m,) log f at the rows of ``x_new`` (m, d); tiles of data x queries,
        log-sum-exp throughout."""
        return _log_density_jit(self, checks.query_rows(frames.encode(x_new, None), self.data.shape[1],
                                                        self.data.dtype))

    def sample(self, key, m: int):
        """(m, d) draws from the estimate: a random row plus N(0, diag h^2)."""
        if not (isinstance(m, (int, np.integer)) and m >= 1):
            raise ValueError(f"m: expected an integer >= 1, got {m!r}")
        k_row, k_noise = jax.random.split(key)
        idx = jax.random.randint(k_row, (m,), 0, self.data.shape[0])
        noise = jax.random.normal(k_noise, (m, self.data.shape[1]), self.data.dtype)
        return self.data[idx] + noise * self.bandwidth


def _log_density_impl(fit: KDEFit, x_new):
    xs, ws = _tiles(fit.data, _weights(fit.data), fit.model.block)
    log_h = fit.hyper.log_bandwidth
    n, d = fit.data.shape

    def one_query_block(q):
        def col_block(carry, c):
            xk, wk = c
            r = jnp.where(wk[None, :] > 0, -0.5 * _sq_dist(q, xk, log_h), -jnp.inf)
            m = jnp.maximum(carry[0], jnp.max(r, axis=1))
            return (m, carry[1] * jnp.exp(carry[0] - m) + jnp.sum(jnp.exp(r - m[:, None]), axis=1)), None

        init = (jnp.full((q.shape[0],), -jnp.inf, q.dtype), jnp.zeros((q.shape[0],), q.dtype))
        m, total = jax.lax.scan(col_block, init, (xs, ws))[0]
        return m + jnp.log(total)

    qs, _ = _tiles(x_new, _weights(x_new), fit.model.block)
    out = jax.lax.map(one_query_block, qs).reshape(-1)[: x_new.shape[0]]
    return out - jnp.log(n) - 0.5 * d * math.log(2.0 * math.pi) - jnp.sum(log_h)


_log_density_jit = compilation.jit(_log_density_impl)

jax.tree_util.register_dataclass(KDEFit, data_fields=["data", "hyper"], meta_fields=["model"])
