"""Scaling laws (``kc.laws``): the theoretical laws of ``kcascade.scaling``
and the law estimated from selections at a ladder of student sizes."""
from __future__ import annotations

import jax
import numpy as np

from kcascade import checks, progress as progress_lines, protocol
from kcascade.scaling import Law, fit_power, kde, power, smoothing_spline, student_size

__all__ = ["Law", "empirical", "fit_power", "kde", "power", "smoothing_spline", "student_size"]


def empirical(model, x, y=None, *, key, sizes=None, reps: int = 2, reference=None,
              progress: bool = False) -> Law:
    """Estimate the scale exponent from selections at a ladder of student sizes.

    Each size gets ``reps`` independent subsamples; the selected scale
    (``model.scale_of(fit.hyper)``, log lambda for SS-ANOVA, the mean log
    bandwidth for a KDE) is regressed on log n.

    Args:
      model: an estimator; x: (n, d); y: (n,), or None for density estimators.
      key: a ``jax.random`` key.
      sizes: increasing subsample sizes; default student_size(n) x (1/8, 1/4,
        1/2, 1), kept at or above the fewest rows the model accepts.
      reps: subsamples per size.
      reference: theoretical exponent shown by ``plot``; default the model's own.
      progress: a progress line on stderr for every selection of the ladder.
    Returns:
      A ``Law`` with the fitted exponent, its 95% interval and the ladder.
    """
    protocol.require(model, ())
    checks.random_key(key)
    x, y = model.check_data(x, y)
    n, d = x.shape
    if sizes is None:
        top, floor = student_size(n), model.min_rows(d)
        sizes = sorted({min(n, max(floor, int(top * f))) for f in (0.125, 0.25, 0.5, 1.0)})
    sizes = tuple(int(s) for s in sizes)
    if any(not 1 <= s <= n for s in sizes) or any(b <= a for a, b in zip(sizes, sizes[1:])):
        raise ValueError(f"sizes: expected strictly increasing sizes in [1, n = {n}], got {sizes}")
    if not (isinstance(reps, (int, np.integer)) and reps >= 1):
        raise ValueError(f"reps: expected an integer >= 1, got {reps!r}")
    if reference is None:
        reference = model.default_law(d).exponent
    ns, vals = [], []
    for i, size in enumerate(sizes):
        for r in range(reps):
            k_sub, k_fit = jax.random.split(jax.random.fold_in(jax.random.fold_in(key, i), r))
            idx = jax.random.choice(k_sub, n, (size,), replace=False)
            with progress_lines.phase(f"ladder: selection {r + 1} of {reps} on {size} rows", on=bool(progress)):
                fit = protocol.fit_with(model, x[idx], None if y is None else y[idx], key=k_fit)
                fit = jax.block_until_ready(fit) if progress else fit
            ns.append(size)
            vals.append(float(model.scale_of(fit.hyper)))
    return fit_power(ns, vals, reference=reference, name=f"empirical({type(model).__name__})")
