"""Scaling laws as values: how a smoothing parameter moves with the sample size.

This module is at the bottom of the package: estimators name their default
law with it, and ``kcascade.cascade.laws`` (the user's ``kc.laws``) adds the
law estimated from a ladder of student fits.

A law carries the log of a *scale* parameter (lambda for a smoothing spline,
the bandwidths for a KDE) from n_from to n_to rows:

    log s(n_to) = log s(n_from) + exponent * log(n_to / n_from).

``transfer`` in ``kcascade.cascade.pipeline`` applies a law to a hyperparameter value;
the other parameters (the relative weights theta) are copied unchanged.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
from jax.scipy.special import betainc


@dataclasses.dataclass(frozen=True)
class Law:
    """A power law s ~ n^exponent for a scale parameter.

    Attributes:
      exponent: d log s / d log n.
      name: a short description.
      interval: (lo, hi) 95% interval of ``exponent`` when estimated, else None.
      sizes, values: the ladder (n_i, log s_i) an empirical law was fitted on.
      intercept: log s at n = 1 of the fitted line (empirical laws).
      reference: the theoretical exponent, shown beside an empirical fit.
    """

    exponent: float
    name: str
    interval: tuple | None = None
    sizes: tuple = ()
    values: tuple = ()
    intercept: float | None = None
    reference: float | None = None

    def __post_init__(self):
        if not math.isfinite(self.exponent):
            raise ValueError(f"exponent: expected a finite number, got {self.exponent!r}")

    def log_factor(self, n_from, n_to) -> float:
        """exponent * log(n_to / n_from)."""
        for nm, v in (("n_from", n_from), ("n_to", n_to)):
            if not v >= 1:
                raise ValueError(f"{nm}: expected a row count >= 1, got {v!r}")
        return self.exponent * (math.log(n_to) - math.log(n_from))

    def or_reference(self) -> "Law":
        """This law where its 95% interval excludes the reference exponent,
        else a law with the reference exponent: a noisy ladder whose slope
        is indistinguishable from theory should not extrapolate its noise."""
        if self.interval is None or self.reference is None:
            raise ValueError(f"or_reference: expected an empirical law with an interval and a reference, got {self.name}")
        lo, hi = self.interval
        if lo <= self.reference <= hi:
            return Law(float(self.reference), f"reference({self.reference:g}; {self.name} slope "
                                              f"{self.exponent:.3g} not significant)")
        return self

    def plot(self, ax=None):
        """log s* against log n: the ladder, the fitted line and the theoretical one."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(4.5, 3.5))
        if not self.sizes:
            raise ValueError("plot: this law has no ladder of selections (only empirical laws do)")
        logn = np.log(np.asarray(self.sizes, float))
        ax.plot(logn, self.values, "o", label="selected at student size")
        grid = np.linspace(logn.min(), logn.max(), 50)
        lab = f"fitted slope {self.exponent:.3f}"
        if self.interval:
            lab += f" [{self.interval[0]:.3f}, {self.interval[1]:.3f}]"
        ax.plot(grid, self.intercept + self.exponent * grid, "-", label=lab)
        if self.reference is not None:
            centre = np.mean(self.values) - self.reference * np.mean(logn)
            ax.plot(grid, centre + self.reference * grid, "--", label=f"theory slope {self.reference:.3f}")
        ax.set_xlabel("log n")
        ax.set_ylabel("log of selected scale")
        ax.legend(fontsize=8)
        return ax


def power(exponent: float) -> Law:
    """s ~ n^exponent."""
    return Law(float(exponent), f"power({exponent:g})")


def smoothing_spline(r: float = 4.0, p: float = 2.0) -> Law:
    """lambda ~ n^{-r/(p r + 1)}: r the kernel's eigenvalue decay order (4 for
    cubic splines), p in [1, 2] the smoothness of the truth (Gu 2013 ch. 9)."""
    if not r > 0:
        raise ValueError(f"r: expected > 0, got {r!r}")
    if not 1 <= p <= 2:
        raise ValueError(f"p: expected 1 <= p <= 2, got {p!r}")
    return Law(-r / (p * r + 1.0), f"smoothing_spline(r={r:g}, p={p:g})")


def kde(d: int) -> Law:
    """Bandwidth h ~ n^{-1/(d+4)}: second-order kernel in d dimensions."""
    if not (isinstance(d, (int, np.integer)) and d >= 1):
        raise ValueError(f"d: expected an integer >= 1, got {d!r}")
    return Law(-1.0 / (d + 4.0), f"kde(d={d})")


def fit_power(sizes, values, reference: float | None = None, name: str = "empirical") -> Law:
    """Least-squares line through (log n_i, values_i), with a 95% t interval for the slope."""
    logn = np.log(np.asarray(sizes, float))
    vals = np.asarray(values, float)
    if len(logn) < 3 or np.ptp(logn) == 0:
        raise ValueError(f"sizes: expected at least 3 observations at 2+ distinct sizes, got {list(sizes)}")
    design = np.column_stack([np.ones_like(logn), logn])
    coef, *_ = np.linalg.lstsq(design, vals, rcond=None)
    resid = vals - design @ coef
    dof = len(vals) - 2
    sigma2 = resid @ resid / dof if dof > 0 else 0.0
    se = math.sqrt(sigma2 / np.sum((logn - logn.mean()) ** 2))
    half = _t975(dof) * se
    return Law(float(coef[1]), name, (float(coef[1] - half), float(coef[1] + half)),
               tuple(int(s) for s in sizes), tuple(float(v) for v in vals), float(coef[0]), reference)


def _t975(dof: int) -> float:
    """0.975 quantile of Student's t with ``dof`` degrees of freedom (bisection on its CDF)."""
    def cdf(t):
        return 1.0 - 0.5 * float(betainc(dof / 2.0, 0.5, dof / (dof + t * t)))

    lo, hi = 0.0, 1000.0
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if cdf(mid) < 0.975 else (lo, mid)
    return 0.5 * (lo + hi)


def student_size(n: int) -> int:
    """The reference rule n_s = ceil(100 n^{1/4}), capped at n."""
    if not (isinstance(n, (int, np.integer)) and n >= 1):
        raise ValueError(f"n: expected an integer row count >= 1, got {n!r}")
    return int(min(n, math.ceil(100 * n ** 0.25)))
