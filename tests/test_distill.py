"""Distillation: losses against numpy closed forms, pass rates, PACED weights,
schedule and weighting consistency of the training loop, regression teachers
from kcascade fits, bad input."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import kcascade as kc
from kcascade import distill, nets


def _np_softmax(z):
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("divergence", ["forward", "reverse"])
def test_kd_terms_match_numpy(divergence):
    rng = np.random.default_rng(0)
    s = rng.normal(size=(7, 5)) * 2
    members = rng.normal(size=(3, 7, 5)) * 3
    y = rng.integers(0, 5, 7)
    T, a = 3.0, 0.7
    pt = np.mean([_np_softmax(m / T) for m in members], axis=0)
    np.testing.assert_allclose(np.asarray(distill.ensemble_probs(members, T)), pt, rtol=1e-12)
    ps = _np_softmax(s / T)
    kl = (np.sum(pt * np.log(pt / ps), -1) if divergence == "forward" else np.sum(ps * np.log(ps / pt), -1))
    ce = -np.log(_np_softmax(s)[np.arange(7), y])
    want = (1 - a) * ce + a * T ** 2 * kl
    got = distill.kd_terms(jnp.asarray(s), jnp.asarray(y), jnp.asarray(pt), temperature=T, alpha=a,
                           divergence=divergence)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-10)
    w = rng.uniform(size=7)
    np.testing.assert_allclose(float(distill.kd_loss(s, y, pt, temperature=T, alpha=a, divergence=divergence,
                                                     weights=w)), np.sum(w * want) / np.sum(w), rtol=1e-10)


def test_pass_rate_and_paced_weights():
    labels = jnp.array([0, 1, 2, 3])
    sure = 50.0 * jax.nn.one_hot(labels, 4)
    np.testing.assert_allclose(np.asarray(distill.pass_rate(jax.random.key(0), sure, labels)), 1.0)
    wrong = 50.0 * jax.nn.one_hot((labels + 1) % 4, 4)
    np.testing.assert_allclose(np.asarray(distill.pass_rate(jax.random.key(0), wrong, labels)), 0.0)
    flat = jnp.zeros((4, 4))
    rate = np.asarray(distill.pass_rate(jax.random.key(1), flat, labels, samples=4000))
    np.testing.assert_allclose(rate, 0.25, atol=0.03)
    p = jnp.array([0.0, 0.25, 0.5, 1.0])
    np.testing.assert_allclose(np.asarray(distill.paced_weights(p, 2.0, 1.0)), [0, 0.25 ** 2 * 0.75, 0.125, 0])
    # all-zero weights fall back to the plain mean; weights carry no gradient
    terms = jnp.array([1.0, 3.0])
    assert float(distill.weighted_mean(terms, jnp.zeros(2))) == 2.0
    g = jax.grad(lambda w: distill.weighted_mean(terms, w))(jnp.array([1.0, 2.0]))
    np.testing.assert_array_equal(np.asarray(g), 0.0)


def _blobs(n=300, k=3, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, 4)) * 2
    y = rng.integers(0, k, n)
    x = centres[y] + rng.normal(size=(n, 4))
    return x.astype(np.float32), y


def _train(**kw):
    x, y = _blobs()
    net = nets.make_mlp(width=16, depth=1, out=3)
    p = nets.init_params(net, jax.random.key(0), 4)
    probs = distill.ensemble_probs(jnp.stack([net.apply(nets.init_params(net, jax.random.key(i), 4), x)
                                              for i in (7, 8)]), 2.0)
    return net, distill.train(net, p, x, y, key=jax.random.key(1), steps=30, lr=1e-2, batch=32,
                              teacher_probs=probs, temperature=2.0, **kw)


def test_schedule_and_paced_edge_cases_reduce_to_the_plain_losses():
    leaves = lambda r: jax.tree.leaves(r.params)  # noqa: E731
    _, fwd = _train(schedule="forward")
    _, rev = _train(schedule="reverse")
    _, fr_end = _train(schedule="forward_then_reverse", switch=1.0)
    _, fr_start = _train(schedule="forward_then_reverse", switch=0.0)
    _, fr_mid = _train(schedule="forward_then_reverse", switch=0.5)
    for a, b in zip(leaves(fwd), leaves(fr_end)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)
    for a, b in zip(leaves(rev), leaves(fr_start)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)
    assert any(not np.allclose(a, b) for a, b in zip(leaves(fr_mid), leaves(fwd)))
    # PACED with a = b = 0 weighs every example 1: the plain mean
    _, flat = _train(paced=(0.0, 0.0))
    for a, b in zip(leaves(fwd), leaves(flat)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)


def test_hard_label_training_learns_and_reports_accuracy():
    x, y = _blobs(400)
    xt, yt = _blobs(300, seed=0)
    net = nets.make_mlp(width=16, depth=1, out=3)
    p = nets.init_params(net, jax.random.key(0), 4)
    r = distill.train(net, p, x[:300], y[:300], key=jax.random.key(1), steps=200, lr=1e-2, batch=32,
                      eval_data=(x[300:], y[300:]), eval_every=50)
    assert r.curve.shape == (4,)
    acc = float(jnp.mean(jnp.argmax(net.apply(r.params, xt), -1) == yt))
    assert acc > 0.8 and float(r.curve[-1]) > 0.8


def test_distill_an_ssanova_fit_into_a_small_network():
    x, y, f = kc.datasets.sine_interaction(jax.random.key(0), 600)
    fit = kc.SSANOVA(n_basis=60).fit(x, y, key=jax.random.key(1))
    xu = jax.random.uniform(jax.random.key(2), (2000, 3))  # unlabeled inputs
    tv = distill.targets(fit, xu)
    np.testing.assert_allclose(np.asarray(tv), np.asarray(fit.predict(xu)))
    net = nets.make_mlp(width=32, depth=2)
    p = nets.init_params(net, jax.random.key(3), 3)
    xe = x[:300]
    r = distill.train_regression(net, p, xu, tv, key=jax.random.key(4), steps=600, lr=1e-2, batch=128,
                                 eval_data=(xe, fit.predict(xe)), eval_every=300)
    # the student gets close to the teacher it copies (much closer than the spread of f)
    assert float(r.curve[-1]) < 0.1 * float(jnp.var(f))
    assert float(r.curve[-1]) < float(r.curve[0])


def test_targets_dispatch_to_kde_and_callables():
    x = np.random.default_rng(0).normal(size=(200, 2))
    kde = kc.KDE(selector="scott").fit(x)
    np.testing.assert_allclose(np.asarray(distill.targets(kde, x[:5])), np.asarray(kde.log_density(x[:5])))
    np.testing.assert_allclose(np.asarray(distill.targets(lambda z: z[:, 0], x[:5])), x[:5, 0])
    with pytest.raises(ValueError, match="teacher"):
        distill.targets(3.0, x)


def test_bad_input():
    x, y = _blobs(50)
    net = nets.make_mlp(width=8, depth=1, out=3)
    p = nets.init_params(net, jax.random.key(0), 4)
    common = dict(key=jax.random.key(0), steps=2)
    with pytest.raises(ValueError, match=r"labels: expected values in \[0, 3\)"):
        distill.train(net, p, x, y + 1, **common)
    with pytest.raises(ValueError, match="labels: expected"):
        distill.train(net, p, x, y.astype(float), **common)
    with pytest.raises(ValueError, match=r"teacher_probs: expected shape \(50, 3\)"):
        distill.train(net, p, x, y, teacher_probs=jnp.ones((50, 4)) / 4, **common)
    with pytest.raises(ValueError, match="schedule"):
        distill.train(net, p, x, y, schedule="backward", **common)
    with pytest.raises(ValueError, match="temperature"):
        distill.train(net, p, x, y, temperature=0.0, **common)
    with pytest.raises(ValueError, match="paced"):
        distill.train(net, p, x, y, paced=(-1.0, 1.0), **common)
    with pytest.raises(ValueError, match="alpha"):
        distill.train(net, p, x, y, alpha=1.5, **common)
    with pytest.raises(ValueError, match="y: expected responses"):
        distill.train_regression(nets.make_mlp(width=8), nets.init_params(nets.make_mlp(width=8), jax.random.key(0), 4),
                                 x, np.zeros(50), alpha=0.5, **common)
    with pytest.raises(ValueError, match="samples"):
        distill.pass_rate(jax.random.key(0), jnp.zeros((2, 3)), jnp.array([0, 1]), samples=0)
