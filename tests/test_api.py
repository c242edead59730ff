"""Each line of the README's API tour, run as written."""
import jax
import numpy as np
import pytest

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


@pytest.mark.slow   # tests/test_readme.py (slow) runs these README blocks as written
def test_api_tour_nets_and_distill():
    import jax.numpy as jnp

    from kcascade import distill, nets

    key = jax.random.key(0)
    x, y, _ = kc.datasets.additive_interaction(jax.random.key(1), 400)
    x_new = x[:5]
    net = nets.make_mlp(width=16, depth=2, out=1, activation="relu", parametrization="mup", base_width=8)
    params = nets.init_params(net, key, d_in=6)
    run = nets.train(net, params, x, y, key=key, lr=1e-2, weight_decay=1e-3, steps=40, batch=32, loss="mse",
                     eval_data=(x[:50], y[:50]), eval_every=10)
    assert run.curve.shape == (4,)
    runs = jax.vmap(lambda lr: nets.train(net, params, x, y, key=key, lr=lr, steps=20).params)(
        jnp.geomspace(1e-3, 1e-1, 3))
    assert runs["params"]["readout"]["kernel"].shape == (3, 16, 1)
    wide_net, wide_params = nets.widen(net, params, 24, key=key)
    np.testing.assert_allclose(np.asarray(wide_net.apply(wide_params, x)), np.asarray(net.apply(params, x)),
                               atol=1e-5)
    model = nets.NetRegressor(width=16, select_width=8, epochs=2, lr_grid=(1e-2, 3e-2), wd_grid=(1e-4, 1e-3))
    fit = model.fit(x, y, key=key)
    assert isinstance(fit.hyper, nets.NetHyper) and fit.grid_loss.shape == (2, 2)
    assert fit.predict(x_new).shape == (5,)
    res = kc.cascade(model, x, y, key=key, warm_start=True, n_student=200)
    assert res.teacher.net.width == 16

    labels = (np.asarray(x[:, 0]) > 0).astype(np.int32) + (np.asarray(x[:, 1]) > 0)
    teacher = nets.make_mlp(width=16, depth=1, out=3)
    member_logits = jnp.stack([teacher.apply(nets.init_params(teacher, jax.random.key(i), 6), x) for i in (1, 2)])
    probs = distill.ensemble_probs(member_logits, temperature=4.0)
    student = nets.make_mlp(width=8, depth=1, out=3)
    out = distill.train(student, nets.init_params(student, key, 6), x, labels, key=key, steps=20, lr=1e-2,
                        teacher_probs=probs, temperature=4.0, alpha=0.9, paced=(1.0, 1.0),
                        schedule="forward_then_reverse", switch=0.5)
    logits = student.apply(out.params, x)
    assert np.isfinite(float(distill.kd_loss(logits, labels, probs, temperature=4.0, alpha=0.9)))
    assert distill.pass_rate(key, logits, labels, samples=8).shape == (400,)
