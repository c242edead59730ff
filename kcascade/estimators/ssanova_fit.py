"""The result of an SS-ANOVA fit: its hyperparameters, coefficients and the
pieces of the posterior variance, and predictions from them."""
from __future__ import annotations

import dataclasses
import warnings
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import solve_triangular

from kcascade import checks, compilation, frames, protocol
from kcascade.anova import Design, Structure, scale_rows
from kcascade.linalg import passes

_HI = jax.lax.Precision.HIGHEST


class Hyper(NamedTuple):
    """Smoothing parameters, natural logs: log_lambda scalar, log_theta (K,)."""

    log_lambda: jax.Array
    log_theta: jax.Array

    def transferred(self, delta_log):
        """The same hyperparameters with lambda multiplied by exp(delta_log)."""
        return self._replace(log_lambda=self.log_lambda + delta_log)


@dataclasses.dataclass(frozen=True)
class SSANOVAFit(protocol.Fit):
    """A fitted SS-ANOVA model (a pytree: ``jit``/``vmap`` friendly).

    Attributes:
      model: the ``SSANOVA`` configuration.
      hyper: the smoothing parameters used.
      domains: (d, 2); basis: (q, d) scaled basis points.
      coef_null: (m,) null-space coefficients; coef_basis: (q,) basis coefficients.
      chol_a (m, m), ainv_b (m, q), post_basis (q, q), post_weights (q,): the
        factors of the posterior covariance (Bayesian standard errors).
      score: the selection score at ``hyper``; df: tr A(lambda); rss: the
        weighted residual sum of squares; n: rows of positive weight; tss:
        the weighted total sum of squares about the weighted mean of y
        (R^2 = 1 - rss / tss).
      columns: the ``frames.Columns`` (names, nominal levels) of a DataFrame
        it was fitted on, or None (columns ``x0``, ``x1``, ... by position).
    """

    model: Any
    hyper: Hyper
    domains: jax.Array
    basis: jax.Array
    coef_null: jax.Array
    coef_basis: jax.Array
    chol_a: jax.Array
    ainv_b: jax.Array
    post_basis: jax.Array
    post_weights: jax.Array
    score: jax.Array
    df: jax.Array
    rss: jax.Array
    n: jax.Array
    tss: jax.Array
    columns: frames.Columns | None = None

    def __repr__(self):
        return protocol.short_repr(self, n=self.n, d=self.domains.shape[-2], q=self.basis.shape[-2],
                                   components=self.hyper.log_theta.shape[-1], log_lambda=self.hyper.log_lambda,
                                   score=self.score, df=self.df) + f" of {self.model!r}"

    @property
    def structure(self) -> Structure:
        return self.model.structure(self.domains.shape[0])

    @property
    def design(self) -> Design:
        return Design(self.structure, self.basis, self.domains)

    @property
    def sigma2(self):
        """Residual variance estimate RSS / (n - df)."""
        return self.rss / jnp.maximum(self.n - self.df, 1.0)

    @property
    def terms(self) -> tuple:
        """Penalized component names, length K (the order of ``hyper.log_theta``):
        ``x0:x1[ps]``, or with a DataFrame's column names ``carat:depth[ps]``."""
        names = self.structure.names
        return names if self.columns is None else tuple(self.columns.display(nm) for nm in names)

    def predict(self, x_new, se: bool = False, terms=None):
        """Posterior mean at ``x_new`` (m, d); with ``se=True`` also the Bayesian
        standard errors (Wahba 1983), both (m,).

        ``x_new``: an array (columns by position), or a DataFrame: for a fit
        made on a DataFrame, its columns are matched by name (any order;
        extra ones ignored; a missing one is an error) and nominal levels
        coded as in fitting.

        ``terms``: None for the whole function, or names to evaluate only those
        parts, without the constant: a term name (``"x0"``, ``"x0:x1"``) takes
        all its penalized components and null-space columns; a component name
        from ``fit.terms`` (``"x0:x1[ps]"``) takes that component alone. Effects
        are centred on the basis points' mean.
        """
        x_new = checks.query_rows(frames.encode(x_new, self.columns), self.domains.shape[0], self.coef_basis.dtype)
        if checks.is_concrete(x_new, self.domains):
            _warn_outside(self.structure.marginals, np.asarray(x_new), np.asarray(self.domains),
                          None if self.columns is None else self.columns.names)
        if terms is None:
            null_mask, comp_mask = [1.0] * self.structure.m, [1.0] * self.structure.k
        else:
            null_mask, comp_mask = self.structure.masks(frames.internal_terms(terms, self.columns,
                                                                              self.structure.names))
        # rows padded to a size bucket (8 per doubling): nearby query sizes
        # (plot grids, IRLS passes, test sets) share one compiled program
        rows, padded = x_new.shape[0], compilation.row_bucket(x_new.shape[0])
        if padded != rows:
            x_new = jnp.concatenate([x_new, jnp.broadcast_to(x_new[:1], (padded - rows, x_new.shape[1]))])
        if not se:     # the mean alone: the features at theta, no posterior variances
            return _mean_jit(self, x_new, jnp.asarray(null_mask), jnp.asarray(comp_mask))[:rows]
        mean, sd = _predict_jit(self, x_new, jnp.asarray(null_mask), jnp.asarray(comp_mask))
        return mean[:rows], sd[:rows]

    def summary(self, x=None, weights=None):
        """The fit on one screen (``print(fit.summary())``): n, q, the score,
        lambda, df, sigma^2, R^2, and per ANOVA term its components' log
        theta, effective degrees of freedom (with the training rows ``x``)
        and importance pi (Gu's cosine diagnostics). Returns a
        ``ssanova_summary.Summary``; see that module for the definitions."""
        from kcascade.estimators import ssanova_summary
        return ssanova_summary.summarize(self, x, weights)

    def save(self, path) -> str:
        """Write this fit to ``path`` (.npz: arrays, and the configuration as
        JSON with a format version; no pickle); ``kc.load(path)`` reads it.
        Returns the path written."""
        from kcascade import persist
        return persist.save(self, path)

    def evaluate(self, x_new):
        """(m,) the fitted regression function at ``x_new`` (the protocol's name for ``predict``)."""
        return self.predict(x_new)


def _warn_outside(marginals, x_new, domains, names=None):
    """One warning per call naming the columns where x_new leaves the fitted
    domain (there the fit extrapolates its null-space polynomial)."""
    parts = []
    for v, marg in enumerate(marginals):
        count = marg.outside(v, x_new[:, v], domains[v])
        if count:
            label = f"x_new[:, {v}]" if names is None else f"x_new[{names[v]!r}]"
            parts.append(f"{label}: {count} of {x_new.shape[0]} rows outside the fitted domain "
                         f"[{domains[v, 0]:.4g}, {domains[v, 1]:.4g}] (values in [{x_new[:, v].min():.4g}, "
                         f"{x_new[:, v].max():.4g}])")
    if parts:
        warnings.warn("; ".join(parts) + ". The fit extrapolates its polynomial pieces there and may be far off.",
                      UserWarning, stacklevel=3)


def _predict_impl(fit: SSANOVAFit, x_new, null_mask, comp_mask):
    design = fit.design
    u = scale_rows(design.structure.marginals, x_new, fit.domains)
    theta = jnp.exp(fit.hyper.log_theta) * comp_mask.astype(x_new.dtype)

    def one_chunk(uc):
        s, r = design.shifted(uc)
        s = s * null_mask.astype(x_new.dtype)
        r = jnp.einsum("i,icq->cq", theta, r, precision=_HI)
        mean = jnp.matmul(s, fit.coef_null, precision=_HI) + jnp.matmul(r, fit.coef_basis, precision=_HI)
        w_null = solve_triangular(fit.chol_a, s.T, lower=True)
        v = jnp.matmul(r - jnp.matmul(s, fit.ainv_b, precision=_HI), fit.post_basis, precision=_HI)
        var = jnp.sum(w_null * w_null, axis=0) + jnp.sum(v * v * fit.post_weights, axis=1)
        return mean, jnp.sqrt(jnp.maximum(fit.sigma2 * var, 0.0))

    batch = passes.default_chunk(u.shape[0], design.structure.k * fit.basis.shape[0])
    mean, sd = jax.lax.map(lambda row: one_chunk(row[None]), u, batch_size=batch)
    return mean[:, 0], sd[:, 0]


def _mean_impl(fit: SSANOVAFit, x_new, null_mask, comp_mask):
    """The posterior mean of ``_predict_impl`` alone, from the features at
    theta (m + q columns, the K blocks summed as they are formed)."""
    design = fit.design
    u = scale_rows(design.structure.marginals, x_new, fit.domains)
    theta = jnp.exp(fit.hyper.log_theta) * comp_mask.astype(x_new.dtype)
    coef = jnp.concatenate([fit.coef_null * null_mask.astype(x_new.dtype), fit.coef_basis])
    batch = passes.default_chunk(u.shape[0], design.structure.m + fit.basis.shape[0])
    return jax.lax.map(lambda row: jnp.matmul(design.narrow(row[None], theta), coef, precision=_HI)[0], u,
                       batch_size=batch)


jax.tree_util.register_dataclass(
    SSANOVAFit,
    data_fields=[f.name for f in dataclasses.fields(SSANOVAFit) if f.name not in ("model", "columns")],
    meta_fields=["model", "columns"],
)

_predict_jit = compilation.jit(_predict_impl)
_mean_jit = compilation.jit(_mean_impl)
