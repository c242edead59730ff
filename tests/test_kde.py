"""KDE: blocked LSCV / LCV / log density against dense numpy formulas; the
selectors minimise their criterion; cascade; bad input."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import kcascade as kc


def _mixture(key, n, d):
    k1, k2 = jax.random.split(key)
    comp = jax.random.bernoulli(k1, 0.3, (n, 1))
    z = jax.random.normal(k2, (n, d))
    return np.asarray(jnp.where(comp, 0.5 * z + 2.0, z))


def _dense_terms(x, h):
    """Dense numpy: the n x n matrices of the Gaussian product kernel."""
    n, d = x.shape
    diff = (x[:, None, :] - x[None, :, :]) / h
    r = np.sum(diff ** 2, axis=-1)
    phi_h = np.exp(-0.5 * r) / ((2 * np.pi) ** (d / 2) * np.prod(h))
    phi_2h = np.exp(-0.25 * r) / ((4 * np.pi) ** (d / 2) * np.prod(h))
    return phi_h, phi_2h


@pytest.mark.parametrize("d", [1, 3])
def test_criteria_and_density_match_dense(d):
    x = _mixture(jax.random.key(d), 301, d)   # 301 rows: tiles of 64 with padding
    h = np.linspace(0.3, 0.6, d)
    phi_h, phi_2h = _dense_terms(x, h)
    n = x.shape[0]
    loo = (phi_h.sum(1) - np.diag(phi_h)) / (n - 1)
    lscv = phi_2h.sum() / n ** 2 - 2 * loo.mean()
    hyper = kc.KDEHyper(jnp.log(jnp.asarray(h)))
    np.testing.assert_allclose(float(kc.KDE(selector="lscv", block=64).score_at(x, hyper)), lscv, rtol=1e-10)
    np.testing.assert_allclose(float(kc.KDE(selector="lcv", block=64).score_at(x, hyper)), -np.mean(np.log(loo)), rtol=1e-10)
    fit = kc.KDE(block=64).fit(x, bandwidth=h)
    xq = _mixture(jax.random.key(9), 70, d)
    dense = np.log(np.mean(np.exp(-0.5 * np.sum(((xq[:, None] - x[None]) / h) ** 2, -1)), 1)) \
        - d / 2 * math.log(2 * math.pi) - np.log(h).sum()
    np.testing.assert_allclose(np.asarray(fit.log_density(xq)), dense, rtol=1e-10)
    # far from the data the density underflows, its log does not
    far = np.asarray(fit.log_density(np.full((1, d), 1e3)))
    assert np.isfinite(far).all() and far[0] < -1e5


@pytest.mark.parametrize("selector", ["lscv", "lcv"])
def test_selected_bandwidth_minimises_the_criterion(selector):
    x = _mixture(jax.random.key(2), 400, 2)
    model = kc.KDE(selector=selector, block=128)
    fit = model.fit(x)
    best = float(model.score_at(x, fit.hyper))
    rng = np.random.default_rng(0)
    for _ in range(20):
        other = kc.KDEHyper(fit.hyper.log_bandwidth + rng.normal(0, 0.2, 2))
        assert best <= float(model.score_at(x, other)) + 1e-12


def test_rules_of_thumb_and_sample():
    x = _mixture(jax.random.key(3), 1000, 2)
    sd = x.std(0, ddof=1)
    iqr = np.percentile(x, 75, 0) - np.percentile(x, 25, 0)
    s = np.minimum(sd, iqr / 1.349)
    scott = kc.KDE(selector="scott").fit(x)
    np.testing.assert_allclose(np.asarray(scott.bandwidth), s * 1000 ** (-1 / 6), rtol=1e-10)
    silver = kc.KDE(selector="silverman").fit(x)
    np.testing.assert_allclose(np.asarray(silver.bandwidth), s * (4 / (4 * 1000)) ** (1 / 6), rtol=1e-10)
    draws = scott.sample(jax.random.key(1), 20000)
    assert draws.shape == (20000, 2)
    np.testing.assert_allclose(np.asarray(draws).mean(0), x.mean(0), atol=0.05)


def test_cascade_transfers_bandwidth_by_the_kde_law():
    x = _mixture(jax.random.key(4), 20000, 2)
    model = kc.KDE(selector="lscv")
    res = kc.cascade(model, x, key=jax.random.key(0))
    assert res.n_student == kc.student_size(20000)
    shift = np.asarray(res.hyper_teacher.log_bandwidth - res.hyper_student.log_bandwidth)
    np.testing.assert_allclose(shift, -1 / 6 * np.log(20000 / res.n_student), rtol=1e-10)
    assert res.teacher.data.shape == (20000, 2)


def test_bad_input():
    x = _mixture(jax.random.key(5), 50, 2)
    with pytest.raises(ValueError, match="x: expected finite values"):
        kc.KDE().fit(np.where(np.arange(50)[:, None] == 3, np.nan, x))
    with pytest.raises(ValueError, match=r"x\[:, 1\]: expected a non-constant column"):
        kc.KDE().fit(np.column_stack([x[:, 0], np.ones(50)]))
    with pytest.raises(ValueError, match="at least 2 rows"):
        kc.KDE().fit(x[:1])
    with pytest.raises(ValueError, match="bandwidth: expected a positive"):
        kc.KDE().fit(x, bandwidth=[0.1, -0.2])
    with pytest.raises(ValueError, match="selector"):
        kc.KDE(selector="cv")


@pytest.mark.parametrize("selector", ["lscv", "lcv"])
def test_float32_rows_under_x64(selector):
    """float32 data with jax_enable_x64 on (as in this suite): the selection
    runs in float32 and lands where float64's does (to float32's resolution
    of a flat criterion: measured 6e-7 relative; 1e-4 only guards)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2))
    f32, f64 = kc.KDE(selector=selector).fit(x.astype(np.float32)), kc.KDE(selector=selector).fit(x)
    assert f32.bandwidth.dtype == np.float32 and f32.log_density(x[:3].astype(np.float32)).dtype == np.float32
    np.testing.assert_allclose(np.asarray(f32.bandwidth), np.asarray(f64.bandwidth), rtol=1e-4)
