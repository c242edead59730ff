"""Plots of fits (matplotlib): ANOVA effects with their bands, and a cascade.

``effects(fit)`` draws every main effect (a curve with a pointwise Bayesian
band, or points with bars for a nominal covariate) and every two-way
interaction (a heat map, or one curve per level when one covariate is
nominal), each on the fitted domain, labelled with the column names and "in
units of y" (a binomial or Poisson fit: on its link scale, logit p or log
mu). ``cascade(res)`` draws the student's and the teacher's
hyperparameters side by side, and the seconds of each phase.
"""
from __future__ import annotations

import math

import numpy as np

_Z = {0.9: 1.6449, 0.95: 1.9600, 0.99: 2.5758}


def _layout_of(fit):
    """(the Gaussian fit whose domains, columns and terms lay the panels out,
    the unit of the effects): a binomial / Poisson fit draws on its link scale."""
    inner = getattr(fit, "inner", None)
    if inner is not None and hasattr(inner, "structure"):
        return inner, {"binomial": "logit p", "poisson": "log mu"}.get(fit.model.family, "link scale")
    if not hasattr(fit, "structure"):
        raise ValueError(f"fit: effects draws SS-ANOVA fits, got {type(fit).__name__}")
    return fit, "units of y"


def _names(fit):
    d = fit.domains.shape[0]
    return tuple(fit.columns.names) if fit.columns is not None else tuple(f"x{v}" for v in range(d))


def _levels(fit, v):
    lv = None if fit.columns is None else fit.columns.levels[v]
    n_levels = int(round(float(fit.domains[v, 1])))
    return list(lv) if lv is not None else list(range(n_levels))


def _terms_of(fit, terms):
    from kcascade.estimators.ssanova_summary import term_names
    internal = term_names(fit.structure)
    names = _names(fit)
    display = [":".join(names[int(c[1:])] for c in t.split(":")) for t in internal]
    if terms is None:
        chosen = [(t, s) for t, s in zip(internal, display) if t.count(":") <= 1]
    else:
        wanted = [terms] if isinstance(terms, str) else list(terms)
        table = dict(zip(display, internal))
        table.update({t: t for t in internal})
        unknown = [t for t in wanted if t not in table]
        if unknown:
            raise ValueError(f"terms: unknown terms {unknown}; expected names from {display}")
        chosen = [(table[t], dict(zip(internal, display))[table[t]]) for t in wanted]
    if any(t.count(":") > 1 for t, _ in chosen):
        raise ValueError("terms: effects draws main effects and two-way interactions only")
    return chosen


def _rows(fit, columns_values):
    """(m, d) rows: the given columns set, the others at their domain's middle
    (a term's effect does not depend on the columns outside it)."""
    dom = np.asarray(fit.domains, np.float64)
    m = len(next(iter(columns_values.values())))
    rows = np.tile((dom[:, 0] + dom[:, 1]) / 2, (m, 1))
    for v, marg in enumerate(fit.structure.marginals):
        if marg.name == "nominal":
            rows[:, v] = 0.0
    for v, vals in columns_values.items():
        rows[:, v] = vals
    return rows


def _grid(fit, v, n):
    dom = np.asarray(fit.domains, np.float64)
    if fit.structure.marginals[v].name == "nominal":
        return np.arange(len(_levels(fit, v)), dtype=np.float64)
    return np.linspace(dom[v, 0], dom[v, 1], n)


def effects(fit, terms=None, *, truth=None, level: float = 0.95, n_grid: int = 100, ncols: int = 3):
    """One panel per term of an ``SSANOVAFit``: main effects and two-way
    interactions (centred, as ``fit.predict(..., terms=...)`` gives them).

    Args:
      fit: an SSANOVAFit, or a binomial / Poisson fit (GSSANOVAFit: the
        effects on the link scale, logit p or log mu, with bands from its
        standard errors at dispersion 1).
      terms: None (every main effect and two-way interaction) or names as in
        ``fit.summary()`` (``"x0"``, ``"carat:cut"``).
      truth: None, or a dict term name -> callable giving the true centred
        effect on the grid (one array for a main effect, two for a
        two-way one), drawn dashed.
      level: the band's pointwise coverage: 0.9, 0.95 or 0.99.
      n_grid: grid points per continuous covariate.
    Returns:
      The matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    if level not in _Z:
        raise ValueError(f"level: expected one of {sorted(_Z)}, got {level!r}")
    layout, units = _layout_of(fit)
    chosen = _terms_of(layout, terms)
    names = _names(layout)
    truth = truth or {}
    cols = min(ncols, len(chosen))
    rows = math.ceil(len(chosen) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    for ax, (term, label) in zip(axes.ravel(), chosen):
        vs = [int(c[1:]) for c in term.split(":")]
        nominal = [layout.structure.marginals[v].name == "nominal" for v in vs]
        if len(vs) == 1:
            v = vs[0]
            g = _grid(layout, v, n_grid)
            mean, se = (np.asarray(a) for a in fit.predict(_rows(layout, {v: g}), se=True, terms=label))
            if nominal[0]:
                ax.errorbar(g, mean, yerr=_Z[level] * se, fmt="o", capsize=4, label=f"fit, {level:.0%} band")
                ax.set_xticks(g, [str(a) for a in _levels(layout, v)])
            else:
                half = _Z[level] * se
                # the band's edges are drawn as lines too: at large n it is
                # thinner than the curve, and its width is given in the legend
                ax.fill_between(g, mean - half, mean + half, alpha=0.35, color="C0",
                                label=f"{level:.0%} band (half-width <= {np.max(half):.2g})")
                ax.plot(g, mean - half, "C0:", lw=0.8)
                ax.plot(g, mean + half, "C0:", lw=0.8)
                ax.plot(g, mean, "C0-", lw=1.2, label="fit")
            if label in truth:
                ax.plot(g, np.asarray(truth[label](g)), "k--", lw=1.2, label="truth")
            ax.set_xlabel(names[v])
            ax.set_ylabel(f"effect of {names[v]} ({units})")
            ax.legend(fontsize=7)
        elif any(nominal):
            vn, vc = (vs[0], vs[1]) if nominal[0] else (vs[1], vs[0])
            g = _grid(layout, vc, n_grid)
            for i, lv in enumerate(_levels(layout, vn)):
                mean, se = (np.asarray(a) for a in fit.predict(_rows(layout, {vc: g, vn: np.full_like(g, i)}),
                                                               se=True, terms=label))
                ax.fill_between(g, mean - _Z[level] * se, mean + _Z[level] * se, alpha=0.2, color=f"C{i}")
                ax.plot(g, mean, f"C{i}-", label=f"{names[vn]} = {lv}")
            ax.set_xlabel(names[vc])
            ax.set_ylabel(f"interaction {label} ({units})")
            ax.legend(fontsize=7)
        else:
            g0, g1 = _grid(layout, vs[0], min(n_grid, 60)), _grid(layout, vs[1], min(n_grid, 60))
            a, b = np.meshgrid(g0, g1, indexing="ij")
            mean = np.asarray(fit.predict(_rows(layout, {vs[0]: a.ravel(), vs[1]: b.ravel()}), terms=label))
            mesh = ax.pcolormesh(g0, g1, mean.reshape(a.shape).T, shading="auto", cmap="RdBu_r",
                                 vmin=-np.max(np.abs(mean)), vmax=np.max(np.abs(mean)))
            fig.colorbar(mesh, ax=ax, label=f"{label} ({units})")
            ax.set_xlabel(names[vs[0]])
            ax.set_ylabel(names[vs[1]])
        ax.set_title(label)
    for ax in axes.ravel()[len(chosen):]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def cascade(res):
    """Two panels for a ``CascadeFit`` of an SS-ANOVA: the student's and the
    teacher's log theta per component with log lambda (the one the law moved),
    and the seconds of each phase. Returns the matplotlib Figure."""
    import matplotlib.pyplot as plt

    student, teacher = res.hyper_student, res.hyper_teacher
    if not hasattr(student, "log_theta"):
        raise ValueError("res: cascade() draws SS-ANOVA cascades (hyperparameters with log_theta)")
    fig, (a0, a1) = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw=dict(width_ratios=[3, 1.3]))
    names = list(res.teacher.terms)
    idx = np.arange(len(names) + 1)
    s = np.concatenate([[float(student.log_lambda)], np.asarray(student.log_theta, float)])
    t = np.concatenate([[float(teacher.log_lambda)], np.asarray(teacher.log_theta, float)])
    a0.bar(idx - 0.2, s, 0.4, label=f"student ({res.n_student} rows)")
    a0.bar(idx + 0.2, t, 0.4, label=f"teacher ({res.n} rows)")
    a0.set_xticks(idx, ["log lambda"] + names, rotation=60, ha="right", fontsize=7)
    a0.set_ylabel("natural log")
    a0.set_title(f"hyperparameters: law {res.law.name}")
    a0.legend(fontsize=8)
    phases = [k for k in ("student", "transfer", "refine", "teacher") if k in res.timings]
    a1.bar(phases, [res.timings[k] for k in phases], color="C2")
    a1.set_ylabel("seconds")
    a1.set_title(f"total {res.timings.get('total', float('nan')):.2f} s")
    fig.tight_layout()
    return fig
