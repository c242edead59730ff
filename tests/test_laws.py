"""Scaling laws, transfer and the student-size rule."""
import math

import jax
import numpy as np
import pytest
from scipy import stats as sps

import kcascade as kc
from kcascade import laws
from kcascade import scaling


def test_theoretical_exponents():
    assert laws.smoothing_spline().exponent == pytest.approx(-4 / 9)
    assert laws.smoothing_spline(r=4, p=1).exponent == pytest.approx(-4 / 5)
    assert laws.kde(1).exponent == pytest.approx(-1 / 5)
    assert laws.kde(3).exponent == pytest.approx(-1 / 7)
    assert laws.power(-0.3).exponent == -0.3


def test_transfer_moves_only_lambda():
    hyper = kc.Hyper(np.float64(-5.0), np.array([0.5, -0.5, 0.0]))
    out = kc.transfer(hyper, laws.smoothing_spline(), 1000, 64000)
    assert float(out.log_lambda) == pytest.approx(-5.0 - 4 / 9 * math.log(64))
    np.testing.assert_array_equal(out.log_theta, hyper.log_theta)
    back = kc.transfer(out, laws.smoothing_spline(), 64000, 1000)
    assert float(back.log_lambda) == pytest.approx(-5.0)


def test_student_size_rule():
    assert kc.student_size(10_000) == 1000
    assert kc.student_size(10 ** 6) == math.ceil(100 * 10 ** 1.5)
    assert kc.student_size(50) == 50           # capped at n
    with pytest.raises(ValueError, match="n: expected an integer row count >= 1, got 0"):
        kc.student_size(0)


def test_law_errors():
    with pytest.raises(ValueError, match=r"p: expected 1 <= p <= 2, got 3"):
        laws.smoothing_spline(p=3)
    with pytest.raises(ValueError, match=r"d: expected an integer >= 1, got 0"):
        laws.kde(0)
    with pytest.raises(ValueError, match=r"n_from: expected a row count >= 1"):
        laws.power(-1).log_factor(0, 10)
    with pytest.raises(ValueError, match=r"law: expected a kcascade.laws.Law, got float"):
        kc.transfer(kc.Hyper(0.0, np.zeros(1)), -0.5, 10, 100)


def test_fit_power_recovers_slope_and_interval():
    rng = np.random.default_rng(0)
    sizes = np.repeat([100, 200, 400, 800, 1600], 4)
    vals = 1.0 - 0.6 * np.log(sizes) + 0.05 * rng.normal(size=sizes.size)
    law = laws.fit_power(sizes, vals, reference=-4 / 9)
    lo, hi = law.interval
    assert lo < -0.6 < hi and hi - lo < 0.2
    # the interval matches the textbook OLS t interval
    res = sps.linregress(np.log(sizes), vals)
    half = sps.t.ppf(0.975, sizes.size - 2) * res.stderr
    assert law.exponent == pytest.approx(res.slope)
    assert lo == pytest.approx(res.slope - half, rel=1e-6) and hi == pytest.approx(res.slope + half, rel=1e-6)
    exact = laws.fit_power([10, 100, 1000], [0.0, -1.0, -2.0])
    assert exact.exponent == pytest.approx(-1 / math.log(10))


def test_t_quantile_matches_scipy():
    for dof in (1, 2, 5, 30):
        assert scaling._t975(dof) == pytest.approx(sps.t.ppf(0.975, dof), rel=1e-6)


def test_empirical_law_and_plot():
    import matplotlib

    matplotlib.use("Agg")
    x, y, _ = kc.datasets.sine_interaction(jax.random.key(3), 3000)
    model = kc.SSANOVA(order=1)
    key = jax.random.key(0)
    law = laws.empirical(model, x, y, key=key, sizes=(100, 200, 400), reps=2)
    assert law.sizes == (100, 100, 200, 200, 400, 400) and math.isfinite(law.exponent)
    assert law.reference == pytest.approx(-4 / 9)
    # the ladder holds the students' selected log lambda: rebuild the first one by hand
    k_sub, k_fit = jax.random.split(jax.random.fold_in(jax.random.fold_in(key, 0), 0))
    idx = jax.random.choice(k_sub, 3000, (100,), replace=False)
    first = model.fit(x[idx], y[idx], key=k_fit)
    assert law.values[0] == pytest.approx(float(first.hyper.log_lambda), rel=1e-12)
    # and the law is the least-squares line through the ladder
    refit = laws.fit_power(law.sizes, law.values)
    assert law.exponent == pytest.approx(refit.exponent) and law.interval == pytest.approx(refit.interval)
    ax = law.plot()
    assert len(ax.lines) == 3
    with pytest.raises(ValueError, match="sizes: expected strictly increasing"):
        laws.empirical(model, x, y, key=jax.random.key(0), sizes=(200, 100, 400))


def test_or_reference_keeps_only_a_significant_slope():
    from kcascade import laws

    clean = laws.fit_power([100, 200, 400, 800], [0.0, -0.5, -1.0, -1.5], reference=0.0)
    assert clean.or_reference() is clean
    noisy = laws.fit_power([100, 200, 400, 800], [0.0, 0.4, -0.3, 0.2], reference=0.0)
    assert noisy.or_reference().exponent == 0.0
    with pytest.raises(ValueError, match="or_reference"):
        laws.power(-0.5).or_reference()
