"""Networks: muP parametrization, the AdamW step against a hand computation,
Net2WiderNet function preservation, vmapped selection against single runs,
the network cascade, bad input."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import kcascade as kc
from kcascade import nets


def _data(n=240, seed=0):
    x, y, f = kc.datasets.additive_interaction(jax.random.key(seed), n)
    return np.asarray(x, np.float32), np.asarray(y, np.float32), np.asarray(f, np.float32)


def test_mup_multipliers_and_readout_scale():
    net = nets.make_mlp(width=512, depth=3, base_width=32)
    params = nets.init_params(net, jax.random.key(0), 5)
    mult = nets.lr_multipliers(net, params)["params"]
    assert mult["hidden_0"]["kernel"] == 1.0 and mult["hidden_0"]["bias"] == 1.0
    for name in ("hidden_1", "hidden_2", "readout"):
        assert mult[name]["kernel"] == pytest.approx(32 / 512)
        assert mult[name]["bias"] == 1.0
    # readout variance base / fan_in^2 (muP), hidden 1 / fan_in
    var_out = float(jnp.var(params["params"]["readout"]["kernel"]))
    var_hidden = float(jnp.var(params["params"]["hidden_1"]["kernel"]))
    assert var_out == pytest.approx(32 / 512 ** 2, rel=0.2)
    assert var_hidden == pytest.approx(1 / 512, rel=0.05)
    std = nets.make_mlp(width=512, depth=3, parametrization="standard")
    assert all(v == 1.0 for v in jax.tree.leaves(nets.lr_multipliers(std, params)))


def test_mup_keeps_one_step_output_change_width_independent():
    """The defining property: after one Adam step the output moves by O(1)
    under muP at any width; in the standard parametrization it grows with width."""
    x = jax.random.normal(jax.random.key(0), (256, 5))
    y = jnp.sin(x[:, 0])
    ratios = {}
    for par in ("mup", "standard"):
        moves = []
        for width in (64, 1024):
            net = nets.make_mlp(width=width, parametrization=par)
            p = nets.init_params(net, jax.random.key(1), 5)
            q = nets.train(net, p, x, y, key=jax.random.key(2), lr=0.01, steps=1, batch=256).params
            moves.append(float(jnp.sqrt(jnp.mean((net.apply(q, x) - net.apply(p, x)) ** 2))))
        ratios[par] = moves[1] / moves[0]
    assert 0.5 < ratios["mup"] < 2.0
    assert ratios["standard"] > 4.0


def test_one_adamw_step_matches_hand_computation():
    """One row (so the minibatch is known), one step: Adam's first update is
    g / (|g| + eps); decoupled decay on kernels; muP factors; -lr."""
    net = nets.make_mlp(width=64, depth=1, base_width=16)
    p = nets.init_params(net, jax.random.key(3), 3)
    x = np.array([[0.3, -1.2, 0.7]], np.float32)
    y = np.array([0.5], np.float32)
    lr, wd = 0.05, 0.1
    q = nets.train(net, p, x, y, key=jax.random.key(4), lr=lr, weight_decay=wd, steps=1, batch=8).params
    w1, b1 = (np.asarray(p["params"]["hidden_0"][k], np.float64) for k in ("kernel", "bias"))
    w2, b2 = (np.asarray(p["params"]["readout"][k], np.float64) for k in ("kernel", "bias"))
    pre = x.astype(np.float64) @ w1 + b1
    h = np.maximum(pre, 0)
    out = h @ w2 + b2
    r = 2 * (out[0, 0] - y[0])  # d loss / d out for the squared error of one row
    g_w2, g_b2 = h.T * r, np.array([r])
    g_h = (w2[:, 0] * r) * (pre[0] > 0)
    g_w1, g_b1 = x.T.astype(np.float64) * g_h[None, :], g_h

    def adam(g):
        return g / (np.abs(g) + 1e-8)

    expect = {
        ("hidden_0", "kernel"): w1 - lr * (adam(g_w1) + wd * w1),
        ("hidden_0", "bias"): b1 - lr * adam(g_b1),
        ("readout", "kernel"): w2 - lr * (16 / 64) * (adam(g_w2) + wd * w2),
        ("readout", "bias"): b2 - lr * adam(g_b2),
    }
    for (layer, leaf), want in expect.items():
        got = np.asarray(q["params"][layer][leaf], np.float64)
        np.testing.assert_allclose(got, want.reshape(got.shape), atol=2e-6, err_msg=f"{layer}/{leaf}")


@pytest.mark.parametrize("depth", [1, 3])
def test_widen_preserves_the_function(depth):
    net = nets.make_mlp(width=12, depth=depth, activation="tanh")
    p = nets.init_params(net, jax.random.key(0), 4)
    # a trained-looking net: random biases too
    p = jax.tree.map(lambda a: a + 0.1 * jax.random.normal(jax.random.key(9), a.shape), p)
    x = jax.random.normal(jax.random.key(1), (300, 4))
    wide, q = nets.widen(net, p, 45, key=jax.random.key(2))
    assert wide.width == 45
    assert q["params"]["hidden_0"]["kernel"].shape == (4, 45)
    base = np.asarray(net.apply(p, x))
    np.testing.assert_allclose(np.asarray(wide.apply(q, x)), base, atol=1e-5 * np.abs(base).max())
    _, q_noisy = nets.widen(net, p, 45, key=jax.random.key(2), noise=1e-3)
    moved = np.abs(np.asarray(wide.apply(q_noisy, x)) - base).max()
    assert 0 < moved < 0.05 * np.abs(base).max()


def test_vmapped_selection_matches_single_runs():
    x, y, _ = _data()
    model = nets.NetRegressor(width=16, epochs=3, batch=32, lr_grid=(1e-3, 1e-2), wd_grid=(1e-4, 1e-2))
    fit = model.fit(x, y, key=jax.random.key(5))
    assert fit.grid_loss.shape == (2, 2)
    i, j = np.unravel_index(int(np.argmin(fit.grid_loss)), (2, 2))
    assert float(jnp.exp(fit.hyper.log_lr)) == pytest.approx(model.lr_grid[i], rel=1e-5)
    assert float(jnp.exp(fit.hyper.log_weight_decay)) == pytest.approx(model.wd_grid[j], rel=1e-5)
    # rebuild candidate (1, 0) by hand: the same split, init and minibatch keys
    k_init, k_split, k_train = jax.random.split(jax.random.key(5), 3)
    xs = (x - x.mean(0)) / x.std(0)
    order = np.asarray(jax.random.permutation(k_split, len(x)))
    va, tr = order[:48], order[48:]
    net = model.net()
    p0 = nets.init_params(net, k_init, x.shape[1])
    q = nets.train(net, p0, xs[tr], y[tr], key=k_train, lr=1e-2, weight_decay=1e-4, steps=model.steps(len(tr)),
                   batch=32).params
    single = float(nets.evaluate(net, q, xs[va], y[va]))
    assert single == pytest.approx(float(fit.grid_loss[1, 0]), rel=1e-4)


def test_fit_learns_and_predicts():
    x, y, f = _data(600)
    model = nets.NetRegressor(width=32, epochs=20, batch=64, lr_grid=(3e-3, 3e-2), wd_grid=(1e-4,))
    fit = model.fit(x, y, key=jax.random.key(0))
    xt, _, ft = _data(500, seed=1)
    mse = float(jnp.mean((fit.predict(xt) - ft) ** 2))
    assert mse < 0.5 * float(np.var(ft))


def test_cascade_with_a_network_and_growth():
    x, y, _ = _data(800)
    model = nets.NetRegressor(width=32, select_width=8, epochs=4, batch=64, lr_grid=(3e-3, 3e-2),
                              wd_grid=(1e-4, 1e-2))
    res = kc.cascade(model, x, y, key=jax.random.key(1), n_student=200, law=kc.laws.power(-0.5), warm_start=True)
    assert res.student.net.width == 8 and res.teacher.net.width == 32
    assert float(res.hyper_teacher.log_lr) == pytest.approx(float(res.hyper_student.log_lr))
    shift = -0.5 * np.log(800 / 200)
    assert float(res.hyper_teacher.log_weight_decay - res.hyper_student.log_weight_decay) == pytest.approx(shift, rel=1e-5)
    assert np.all(np.isfinite(np.asarray(res.teacher.predict(x[:10]))))


def test_empirical_law_runs_on_a_network_ladder():
    x, y, _ = _data(800)
    model = nets.NetRegressor(width=8, epochs=2, batch=64, lr_grid=(1e-2,), wd_grid=(1e-4, 1e-3, 1e-2))
    law = kc.laws.empirical(model, x, y, key=jax.random.key(2), sizes=(100, 200, 400), reps=1)
    assert law.interval is not None and law.reference == 0.0 and len(law.sizes) == 3


def test_bad_input():
    x, y, _ = _data(100)
    model = nets.NetRegressor(width=8, epochs=1, lr_grid=(1e-2,), wd_grid=(1e-3,))
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="x: expected finite"):
        model.fit(bad, y, key=jax.random.key(0))
    with pytest.raises(ValueError, match="y: expected length 100"):
        model.fit(x, y[:50], key=jax.random.key(0))
    with pytest.raises(ValueError, match="at least 10 rows"):
        model.fit(x[:5], y[:5], key=jax.random.key(0))
    with pytest.raises(ValueError, match="width: expected an integer >= 1"):
        nets.NetRegressor(width=0)
    with pytest.raises(ValueError, match="activation"):
        nets.make_mlp(activation="softsign")
    with pytest.raises(ValueError, match="parametrization"):
        nets.make_mlp(parametrization="ntk")
    with pytest.raises(ValueError, match="lr_grid"):
        nets.NetRegressor(lr_grid=(0.1, -1.0))
    net = nets.make_mlp(width=8)
    p = nets.init_params(net, jax.random.key(0), 3)
    with pytest.raises(ValueError, match="width: expected an integer >= the current width 8"):
        nets.widen(net, p, 4, key=jax.random.key(0))
    with pytest.raises(ValueError, match="start: expected a NetFit"):
        model.fit(x, y, key=jax.random.key(0), hyper=nets.NetHyper(jnp.log(1e-2), jnp.log(1e-3)), start="net")
    with pytest.raises(ValueError, match="start: expected a fit or a non-empty sequence"):
        model.fit(x, y, key=jax.random.key(0), hyper=nets.NetHyper(jnp.log(1e-2), jnp.log(1e-3)), start=[])
    with pytest.raises(ValueError, match="warm_start"):
        kc.cascade(kc.KDE(), x, key=jax.random.key(0), warm_start=True)
    with pytest.raises(ValueError, match="steps"):
        nets.train(net, p, x[:, :3], y, key=jax.random.key(0), lr=1e-2, steps=0)
    with pytest.raises(ValueError, match="loss"):
        nets.train(net, p, x[:, :3], y, key=jax.random.key(0), lr=1e-2, steps=1, loss="hinge")


def test_regressor_is_hashable_config():
    model = nets.NetRegressor()
    assert dataclasses.replace(model, select_width=16).select_width == 16
    assert hash(model) == hash(nets.NetRegressor())
