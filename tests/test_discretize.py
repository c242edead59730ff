"""The discretized pass (``SSANOVA(discretize=M)``) against the exact one."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import kcascade as kc

KEY = jax.random.key(0)


def _hyper(model, d):
    k = model.structure(d).k
    return kc.Hyper(jnp.asarray(-9.0), jnp.linspace(-0.5, 0.5, k))


def test_equals_the_exact_fit_when_the_values_lie_on_the_grid():
    # 11 evenly spaced values per column, min and max included: rounding to
    # 11 (or 21) values over the range changes nothing
    rng = np.random.default_rng(0)
    x = rng.integers(0, 11, (400, 2)) / 10.0
    y = np.sin(3 * x[:, 0]) + x[:, 0] * x[:, 1] + 0.1 * rng.standard_normal(400)
    xt = rng.uniform(0, 1, (50, 2))
    exact = kc.SSANOVA(order=2)
    hyper = _hyper(exact, 2)
    ref = exact.fit(x, y, key=KEY, hyper=hyper).predict(xt)
    for levels in (11, 21):
        got = kc.SSANOVA(order=2, discretize=levels).fit(x, y, key=KEY, hyper=hyper).predict(xt)
        np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-9)


def test_rounding_error_shrinks_with_the_number_of_values():
    # rounding moves a covariate by at most range / (2 (M - 1)): the fit moves
    # in proportion (first order), so 16x more values should cut the change
    # about 16x; asked: at least 4x
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, (1500, 3))
    y = np.sin(4 * x[:, 0]) + x[:, 1] ** 2 + x[:, 0] * x[:, 2] + 0.1 * rng.standard_normal(1500)
    xt = rng.uniform(0, 1, (200, 3))
    exact = kc.SSANOVA(order=2)
    hyper = _hyper(exact, 3)
    ref = np.asarray(exact.fit(x, y, key=KEY, hyper=hyper).predict(xt))
    errs = [float(np.max(np.abs(np.asarray(kc.SSANOVA(order=2, discretize=m).fit(x, y, key=KEY, hyper=hyper)
                                           .predict(xt)) - ref))) for m in (16, 256)]
    assert errs[1] < errs[0] / 4, errs
    assert errs[1] < 1e-2, errs


@pytest.mark.slow   # two full selections (~10 s)
def test_selection_runs_on_the_discretized_pass():
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 1, (800, 2))
    f = lambda x: np.sin(3 * x[:, 0]) + x[:, 0] * x[:, 1]
    y = f(x) + 0.2 * rng.standard_normal(800)
    xt = rng.uniform(0, 1, (500, 2))
    exact = kc.SSANOVA(order=2).fit(x, y, key=KEY)
    disc = kc.SSANOVA(order=2, discretize=200).fit(x, y, key=KEY)
    m_exact, m_disc = (np.mean((np.asarray(fit.predict(xt)) - f(xt)) ** 2) for fit in (exact, disc))
    assert m_disc < 1.2 * m_exact, (m_disc, m_exact)


@pytest.mark.parametrize("bad", [1, 0, True, 2.5, "auto"])
def test_bad_discretize(bad):
    with pytest.raises(ValueError, match="discretize: expected None or an integer"):
        kc.SSANOVA(discretize=bad)


@pytest.mark.parametrize("statistics,tol", [("qr", 1e-10), ("gram", 1e-6)])
def test_rows_summarised_by_cells_give_the_rounded_rows_fit(statistics, tol, monkeypatch):
    """With at most n / 2 grid cells the pass runs over the cells (weights =
    the cells' row weights, responses their means, the within-cell sum of
    squares and the row count added back): the same statistics as the
    rounded rows one by one. Checked at fixed hyperparameters (fit and score)
    with a nominal column of given levels and row weights. Gram statistics
    square the conditioning, so their two summation orders agree to ~1e-8."""
    from kcascade.estimators import ssanova_engine as engine
    rng = np.random.default_rng(3)
    n = 3000
    x = np.column_stack([rng.uniform(0, 1, n), rng.uniform(0, 2, n), rng.integers(0, 3, n)])
    y = np.sin(4 * x[:, 0]) + 0.5 * x[:, 1] * (x[:, 2] == 1) + 0.2 * rng.standard_normal(n)
    w = rng.uniform(0.5, 2.0, n)
    model = kc.SSANOVA(order=2, discretize=9, marginals=("cubic", "cubic", "nominal"), domains=(None, None, 3),
                       statistics=statistics)
    xm, ym, wm = model.check_data(x, y, w)
    hyper = _hyper(model, 3)
    cells = engine.Problem(model, xm, ym, wm, KEY)
    assert cells.u.shape[0] == 9 * 9 * 3                 # summarised: 243 cells for 3000 rows
    monkeypatch.setattr(engine, "cell_sizes", lambda model, structure: None)
    rows = engine.Problem(model, xm, ym, wm, KEY)
    assert rows.u.shape[0] == n
    a, b = engine.fit_problem(cells, hyper, None), engine.fit_problem(rows, hyper, None)
    xt = np.column_stack([rng.uniform(0, 1, 40), rng.uniform(0, 2, 40), rng.integers(0, 3, 40)])
    pa, pb = np.asarray(a.predict(xt)), np.asarray(b.predict(xt))
    assert np.max(np.abs(pa - pb)) < tol * np.max(np.abs(pb))
    assert float(a.score) == pytest.approx(float(b.score), rel=tol)
    assert float(a.n) == float(b.n) == n and float(a.tss) == pytest.approx(float(b.tss), rel=1e-12)
