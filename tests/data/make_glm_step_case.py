"""Writes glm_step_case.npz and glm_step_start.npz for
tests/test_glm.py::test_step_halving_recovers_a_diverging_iteration.

The case was found in the KCas reference example (benchmarks/glm_cascade.py,
ref3, seed 3, n = 3000): the second of the cascade's three students (741 rows)
ran, without step control, from its first selection's eta (max |eta| 14) to
the bound +-30 and stayed there for 30 iterations (deviance 22140 against
867). This script takes those rows and that selection's fit: the start, its
smoothing parameters H and the basis key. Run from the repository root:
``python tests/data/make_glm_step_case.py`` (regenerates the case as the
current code selects it: the stored files are the case as found).
"""
import os
import sys

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "benchmarks"))

import glm_cascade  # noqa: E402
import kcascade as kc  # noqa: E402
from kcascade import protocol  # noqa: E402
from kcascade.cascade import pipeline  # noqa: E402
from kcascade.estimators import ssanova_glm  # noqa: E402


def main():
    model = kc.SSANOVA(order=3, family="binomial")
    x, y, _ = glm_cascade.data("ref3", 3, 3000)
    calls, fit_with = [], protocol.fit_with
    pipeline.protocol.fit_with = lambda m, xs, ys, **kw: calls.append((xs, ys, kw["key"])) or fit_with(m, xs, ys, **kw)
    kc.cascade(model, x, y, key=jax.random.key(3))
    pipeline.protocol.fit_with = fit_with
    xs, ys, key = calls[1]
    inners, moved = [], ssanova_glm._moved
    ssanova_glm._moved = lambda *a: inners.append(a[1]) or moved(*a)
    model.fit(xs, ys, key=key)
    ssanova_glm._moved = moved
    first_selection = inners[4]       # after at most 4 pilot iterations
    start = ssanova_glm.GSSANOVAFit(model=model, inner=first_selection, deviance=np.nan, null_deviance=np.nan,
                                    iterations=5, selections=1, converged=False)
    np.savez(os.path.join(HERE, "glm_step_case.npz"), x=np.asarray(xs), y=np.asarray(ys),
             key=np.asarray(jax.random.key_data(key)), log_lambda=np.asarray(first_selection.hyper.log_lambda),
             log_theta=np.asarray(first_selection.hyper.log_theta))
    start.save(os.path.join(HERE, "glm_step_start.npz"))


if __name__ == "__main__":
    main()
