"""``SSANOVAFit.summary()``: the fit on one screen.

Per ANOVA term (a set of covariates: its penalized components and its
null-space columns) it reports

- the log theta of each component;
- the effective degrees of freedom df_t = sum_i w_i x_t(i)' V x(i), where
  x(i) is row i's feature vector, x_t(i) its part in term t and V the
  posterior covariance factor of the fit (V = (X'WX + n lambda P)^-1 up to
  sigma^2, the matrix of the Bayesian standard errors): the trace of the
  term's share of the hat matrix, so the terms' df and the constant's add up
  to the fit's df;
- importance pi_t = <f_t, f> / ||f||^2 over the rows, f_t the term's centred
  fitted values and f their sum (Gu 1992's cosine diagnostics, as gss's
  ``summary(..., diagnostics=TRUE)``): the terms' pi add up to 1, a term with
  pi near 0 can usually be dropped; and rms(f_t), its size in y's units.

df needs the training rows (``summary(x)``); without them importance is
taken over the basis points (q rows drawn from the data).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import solve_triangular

from kcascade import checks, compilation, frames
from kcascade.anova import scale_rows
from kcascade.linalg import passes

_HI = jax.lax.Precision.HIGHEST


def term_names(structure) -> tuple:
    """The ANOVA terms of a structure, in order (``x0``, ``x1``, ``x0:x1``, ...)."""
    out = []
    for nm in structure.names:
        base = nm.split("[")[0]
        if base not in out:
            out.append(base)
    return tuple(out)


def _term_rows_impl(fit, x_rows, null_masks, comp_masks):
    """Per term t and row i: the term's fitted value f_t(i) and x_t(i)' V x(i);
    the last row of the masks is the constant alone. Both (T + 1, rows)."""
    design = fit.design
    u = scale_rows(design.structure.marginals, x_rows, fit.domains)
    theta = jnp.exp(fit.hyper.log_theta)
    dt = x_rows.dtype

    def one_row(uc):
        s, r = design.shifted(uc[None])
        s, r = s[0], r[:, 0, :]                                        # (m,), (K, q)
        s_t = null_masks.astype(dt) * s                                # (T, m)
        r_t = jnp.einsum("tk,k,kq->tq", comp_masks.astype(dt), theta, r, precision=_HI)
        vals = jnp.matmul(s_t, fit.coef_null, precision=_HI) + jnp.matmul(r_t, fit.coef_basis, precision=_HI)
        r_all = jnp.einsum("k,kq->q", theta, r, precision=_HI)
        wn_all = solve_triangular(fit.chol_a, s, lower=True)
        v_all = jnp.matmul(r_all - jnp.matmul(s, fit.ainv_b, precision=_HI), fit.post_basis, precision=_HI)
        wn_t = solve_triangular(fit.chol_a, s_t.T, lower=True)         # (m, T)
        v_t = jnp.matmul(r_t - jnp.matmul(s_t, fit.ainv_b, precision=_HI), fit.post_basis, precision=_HI)
        lev = jnp.matmul(wn_all, wn_t, precision=_HI) + jnp.matmul(v_t * fit.post_weights, v_all, precision=_HI)
        return vals, lev

    batch = passes.default_chunk(u.shape[0], design.structure.k * fit.basis.shape[0])
    vals, lev = jax.lax.map(one_row, u, batch_size=batch)
    return vals.T, lev.T


_term_rows_jit = compilation.jit(_term_rows_impl)


@dataclasses.dataclass(frozen=True)
class Summary:
    """What ``fit.summary()`` reports; ``print(summary)`` shows it as text.

    Attributes:
      header: dict of n, q, d, the score's name and value, log lambda, df,
        sigma^2, R^2 (where the fit knows its total sum of squares); for a
        binomial or Poisson fit also family, deviance, null_deviance,
        deviance_explained, iterations, selections, converged.
      terms: one dict per ANOVA term: term, components (name -> log theta),
        df (None without the training rows), pi, rms.
      rows: where importance was measured ("training rows" or "basis points").
    """

    header: dict
    terms: tuple
    rows: str

    def __str__(self):
        h = self.header
        lines = [f"SS-ANOVA fit{' (' + h['family'] + ')' if 'family' in h else ''}: n = {h['n']:g}, d = {h['d']}, "
                 f"q = {h['q']} basis points, {h['components']} smoothing parameters"]
        if "family" in h:
            lines.append(f"  deviance = {h['deviance']:.6g} (null {h['null_deviance']:.6g}, explained "
                         f"{h['deviance_explained']:.4f}), log lambda = {h['log_lambda']:.4g}, df = {h['df']:.4g}, "
                         f"{h['iterations']} IRLS iterations ({h['selections']} with selection, score "
                         f"{h['score_name']}){'' if h['converged'] else ', NOT converged'}")
        else:
            lines.append(f"  score {h['score_name']} = {h['score']:.6g}, log lambda = {h['log_lambda']:.4g}, "
                         f"df = {h['df']:.4g}, sigma^2 = {h['sigma2']:.4g}"
                         + (f", R^2 = {h['r2']:.4f}" if h.get("r2") is not None else ""))
        width = max([len(t["term"]) for t in self.terms] + [8])
        lines.append(f"  {'term':<{width}}  {'df':>7}  {'pi':>7}  {'rms':>9}  log theta (components)")
        for t in self.terms:
            df = "-" if t["df"] is None else f"{t['df']:.3f}"
            comps = ", ".join(f"{nm}: {v:.3g}" for nm, v in t["components"].items()) or "(null space only)"
            lines.append(f"  {t['term']:<{width}}  {df:>7}  {t['pi']:>7.4f}  {t['rms']:>9.4g}  {comps}")
        lines.append(f"  df: share of tr A per term{' (constant: %.3f)' % h['df_constant'] if h.get('df_constant') is not None else ' (needs the training rows: summary(x))'}; "
                     f"pi = <f_t, f>/||f||^2 over the {self.rows} (sums to 1); rms in {'eta' if 'family' in h else 'y'}'s units")
        return "\n".join(lines)

    __repr__ = __str__


def summarize(fit, x=None, weights=None) -> Summary:
    """The ``Summary`` of an ``SSANOVAFit``; see the module docstring.

    Args:
      fit: an SSANOVAFit (not batched).
      x: None, or the (n, d) training rows (array or DataFrame as fitted):
        then df per term is computed, and importance over these rows.
      weights: the training weights, if the fit had them.
    """
    if np.ndim(fit.hyper.log_lambda) != 0:
        raise ValueError("fit: summary() takes one fit, not a batch from vmap; index it first")
    structure = fit.structure
    names = term_names(structure)
    null_masks, comp_masks = [], []
    for nm in names:
        nmask, cmask = structure.masks(nm)
        null_masks.append(nmask)
        comp_masks.append(cmask)
    const = [1.0] + [0.0] * (structure.m - 1)
    null_masks.append(const)
    comp_masks.append([0.0] * structure.k)
    dtype = fit.coef_basis.dtype
    if x is None:
        rows, where = _unscale(fit), "basis points"
        w = None
    else:
        rows = checks.query_rows(frames.encode(x, fit.columns, "x"), fit.domains.shape[0], dtype, "x")
        where = "training rows"
        w = None if weights is None else np.asarray(weights, np.float64)
        if w is not None and w.shape != (rows.shape[0],):
            raise ValueError(f"weights: expected shape ({rows.shape[0]},) to match x, got {w.shape}")
    vals, lev = _term_rows_jit(fit, rows, jnp.asarray(null_masks, dtype), jnp.asarray(comp_masks, dtype))
    vals, lev = np.asarray(vals, np.float64), np.asarray(lev, np.float64)
    wt = np.ones(vals.shape[1]) if w is None else w
    terms_vals = vals[:-1] - (vals[:-1] @ wt / wt.sum())[:, None]
    total = terms_vals.sum(axis=0)
    norm2 = float(total @ (wt * total))
    pi = (terms_vals @ (wt * total)) / norm2 if norm2 > 0 else np.zeros(len(names))
    rms = np.sqrt((terms_vals ** 2) @ wt / wt.sum())
    df = lev @ wt if x is not None else None
    log_theta = np.asarray(fit.hyper.log_theta, np.float64)
    display = (lambda s: s) if fit.columns is None else fit.columns.display
    out = []
    for i, nm in enumerate(names):
        comps = {display(c): float(log_theta[j]) for j, c in enumerate(structure.names) if c.split("[")[0] == nm}
        out.append(dict(term=display(nm), components=comps, df=None if df is None else float(df[i]),
                        pi=float(pi[i]), rms=float(rms[i])))
    tss = getattr(fit, "tss", None)
    header = dict(n=float(fit.n), d=int(fit.domains.shape[0]), q=int(fit.basis.shape[0]), components=structure.k,
                  score_name=fit.model.score.upper(), score=float(fit.score),
                  log_lambda=float(fit.hyper.log_lambda), df=float(fit.df), sigma2=float(fit.sigma2),
                  r2=None if tss is None or float(tss) <= 0 else 1.0 - float(fit.rss) / float(tss),
                  df_constant=None if df is None else float(df[-1]))
    return Summary(header, tuple(out), where)


def _unscale(fit):
    """The basis points in the units of x (the inverse of ``scale_rows``:
    nominal codes are kept, other columns map [0, 1] back to their domain)."""
    u = np.asarray(fit.basis, np.float64)
    dom = np.asarray(fit.domains, np.float64)
    x = np.array(u)
    for v, marg in enumerate(fit.structure.marginals):
        if marg.name != "nominal":
            x[:, v] = dom[v, 0] + u[:, v] * (dom[v, 1] - dom[v, 0])
    return jnp.asarray(x, fit.coef_basis.dtype)
