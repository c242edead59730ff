"""Bad input gets a ValueError naming the argument, the value and the expectation."""
import jax
import numpy as np
import pytest

import kcascade as kc

KEY = jax.random.key(0)


def _xy(n=100, d=3):
    rng = np.random.default_rng(0)
    return rng.uniform(size=(n, d)), rng.normal(size=n)


def _raises(match, fn):
    with pytest.raises(ValueError, match=match):
        fn()


def test_nan_and_inf():
    x, y = _xy()
    x[3, 1] = np.nan
    _raises(r"x: expected finite values, found 1 NaN/inf \(first at index \(3, 1\)", lambda: kc.SSANOVA().fit(x, y, key=KEY))
    x, y = _xy()
    y[7] = np.inf
    _raises(r"y: expected finite values.*index \(7,\)", lambda: kc.SSANOVA().fit(x, y, key=KEY))


def test_shapes():
    x, y = _xy()
    _raises(r"x: expected a 2-D array of shape \(n, d\), got shape \(100,\)", lambda: kc.SSANOVA().fit(x[:, 0], y, key=KEY))
    _raises(r"y: expected length 100 to match n = x.shape\[0\], got 99", lambda: kc.SSANOVA().fit(x, y[:-1], key=KEY))
    _raises(r"y: expected a 1-D array", lambda: kc.SSANOVA().fit(x, y[:, None], key=KEY))
    fit = kc.SSANOVA(order=1).fit(x, y, key=KEY)
    _raises(r"x_new: expected 3 columns like the training x, got 2", lambda: fit.predict(x[:, :2]))
    _raises(r"x_new: expected finite", lambda: fit.predict(np.full((2, 3), np.nan)))


def test_dtype():
    x, y = _xy()
    _raises(r"y: expected a real numeric dtype, got complex128", lambda: kc.SSANOVA().fit(x, y.astype(complex), key=KEY))


def test_too_few_rows():
    x, y = _xy(n=35)
    _raises(r"x: expected at least n_basis \+ null-space size = 30 \+ 7 = 37 rows, got n = 33",
            lambda: kc.SSANOVA(order=2, n_basis=30).fit(x[:33], y[:33], key=KEY))


def test_order():
    x, y = _xy(d=2)
    _raises(r"order: expected 1 <= order <= d = 2 \(columns of x\), got 3", lambda: kc.SSANOVA(order=3).fit(x, y, key=KEY))
    _raises(r"order: expected an integer >= 1, got 0", lambda: kc.SSANOVA(order=0))


def test_unknown_marginal_and_settings():
    _raises(r"marginals: unknown marginal 'quintic'; expected one of", lambda: kc.SSANOVA(marginals="quintic"))
    _raises(r"score: expected 'gcv', 'gml' or 'ubr', got 'aic'", lambda: kc.SSANOVA(score="aic"))
    _raises(r"alpha: expected a finite number > 0, got -1", lambda: kc.SSANOVA(alpha=-1))
    x, y = _xy(d=2)
    _raises(r"marginals: expected 2 entries", lambda: kc.SSANOVA(order=1, marginals=("cubic",)).fit(x, y, key=KEY))


def test_constant_column():
    x, y = _xy()
    x[:, 2] = 0.5
    _raises(r"x\[:, 2\]: expected a non-constant covariate, every value is 0.5", lambda: kc.SSANOVA().fit(x, y, key=KEY))


def test_domains():
    x, y = _xy(d=2)
    _raises(r"domains\[0\]: a periodic covariate needs its exact period", lambda: kc.SSANOVA(order=1, marginals=("periodic", "cubic")).fit(x, y, key=KEY))
    _raises(r"x\[:, 1\]: values span .* outside domains\[1\]", lambda: kc.SSANOVA(order=1, domains=(None, (0.0, 0.5))).fit(x, y, key=KEY))
    _raises(r"domains\[0\]: expected \(lo, hi\) with lo < hi", lambda: kc.SSANOVA(order=1, domains=((1.0, 0.0), None)).fit(x, y, key=KEY))
    x[:, 1] = np.round(x[:, 1] * 2.5)
    _raises(r"x\[:, 1\]: code 2 is outside the 2 levels", lambda: kc.SSANOVA(order=1, marginals=("cubic", "nominal"), domains=(None, 2)).fit(x, y, key=KEY))
    x[0, 1] = 0.5
    _raises(r"x\[:, 1\]: nominal covariate expects integer codes", lambda: kc.SSANOVA(order=1, marginals=("cubic", "nominal")).fit(x, y, key=KEY))


def test_hyper_of_wrong_length():
    x, y = _xy()
    bad = kc.Hyper(np.float64(0.0), np.zeros(5))
    _raises(r"hyper.log_theta: expected shape \(12,\) \(one per penalized component\), got \(5,\)",
            lambda: kc.SSANOVA(order=2).fit(x, y, key=KEY, hyper=bad))
    _raises(r"hyper.log_lambda: expected finite", lambda: kc.SSANOVA(order=1).fit(x, y, key=KEY, hyper=kc.Hyper(np.float64(np.nan), np.zeros(3))))


def test_an_integer_seed_is_refused_with_how_to_make_a_key():
    from kcascade import nets

    x, y = _xy()
    msg = r"key: expected a jax.random key, e.g. jax.random.key\(0\); got int 0"
    model = kc.SSANOVA(order=1)
    _raises(msg, lambda: model.fit(x, y, key=0))
    _raises(msg, lambda: model.score_at(x, y, kc.Hyper(0.0, np.zeros(3)), key=0))
    _raises(msg, lambda: model.refine(x, y, kc.Hyper(0.0, np.zeros(3)), key=0, steps=1))
    _raises(msg, lambda: kc.cascade(model, x, y, key=0))
    _raises(msg, lambda: kc.laws.empirical(model, x, y, key=0))
    _raises(msg, lambda: nets.NetRegressor(width=4).fit(x, y, key=0))
    _raises(r"key: .* got ndarray of shape \(3,\)", lambda: model.fit(x, y, key=np.arange(3)))
    # both kinds of jax key are accepted: typed and raw uint32 pairs
    assert kc.SSANOVA(order=1).fit(x, y, key=jax.random.PRNGKey(0)).n == 100


def test_prediction_outside_the_fitted_domain_warns_once():
    import warnings

    rng = np.random.default_rng(1)
    x = np.column_stack([rng.uniform(size=120), rng.uniform(0, 24, size=120), rng.integers(0, 3, size=120)])
    y = np.sin(2 * np.pi * x[:, 0]) + (x[:, 2] == 1) + 0.1 * rng.normal(size=120)
    model = kc.SSANOVA(order=1, marginals=("cubic", "periodic", "nominal"), domains=(None, (0.0, 24.0), None))
    fit = model.fit(x, y, key=KEY, hyper=kc.Hyper(-8.0, np.zeros(3)))
    inside = x[:5]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit.predict(inside)
        fit.predict(inside + np.array([0.0, 48.0, 0.0]))   # periodic: wraps, no warning
    far = inside.copy()
    far[:2, 0] = 5.0
    with pytest.warns(UserWarning, match=r"x_new\[:, 0\]: 2 of 5 rows outside the fitted domain") as caught:
        fit.predict(far)
    assert len(caught) == 1
    bad = inside.copy()
    bad[0, 2] = 3.0
    _raises(r"x_new\[:, 2\]: nominal covariate expects codes 0..2 \(the levels it was fitted on\), got 3.0",
            lambda: fit.predict(bad))
