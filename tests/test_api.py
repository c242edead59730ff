"""Each line of the README's API tour, run as written."""
import jax
import numpy as np

import kcascade as kc


def test_api_tour():
    x, y, _ = kc.datasets.sine_interaction(jax.random.key(1), 300)
    x_new = x[:10]
    key = jax.random.key(0)

    model = kc.SSANOVA(order=2)
    fit = model.fit(x, y, key=jax.random.key(0))
    assert isinstance(fit.hyper, kc.Hyper)
    assert fit.hyper.log_lambda.shape == () and fit.hyper.log_theta.shape == (len(fit.terms),)
    fit2 = model.fit(x, y, key=key, hyper=fit.hyper)
    mean = fit.predict(x_new)
    mean, se = fit.predict(x_new, se=True)
    assert mean.shape == se.shape == (10,) and np.all(np.asarray(se) > 0)
    assert fit.terms == ("x0", "x1", "x2", "x0:x1[ps]", "x0:x1[sp]", "x0:x1[ss]",
                         "x0:x2[ps]", "x0:x2[sp]", "x0:x2[ss]", "x1:x2[ps]", "x1:x2[sp]", "x1:x2[ss]")
    np.testing.assert_allclose(np.asarray(fit2.predict(x_new)), np.asarray(mean), rtol=1e-9)
    # the fit is a pytree
    leaves = jax.tree.leaves(fit)
    assert all(isinstance(leaf, jax.Array) for leaf in leaves)
    assert model == kc.SSANOVA(order=2) and hash(model) == hash(kc.SSANOVA(order=2))


def test_api_tour_kde():
    x, _, _ = kc.datasets.sine_interaction(jax.random.key(1), 300)
    x_new, key = x[:5], jax.random.key(0)
    kde = kc.KDE(selector="lscv")
    dfit = kde.fit(x)
    assert dfit.bandwidth.shape == (3,) and np.all(np.asarray(dfit.bandwidth) > 0)
    assert dfit.log_density(x_new).shape == (5,)
    assert dfit.sample(jax.random.key(1), 100).shape == (100, 3)
    fixed = kc.KDE().fit(x, bandwidth=[0.1, 0.2, 0.1])
    np.testing.assert_allclose(np.asarray(fixed.bandwidth), [0.1, 0.2, 0.1], rtol=1e-12)
    res = kc.cascade(kde, x, key=key)
    assert res.teacher.data.shape == x.shape
