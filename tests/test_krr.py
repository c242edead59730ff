"""KernelRidge against independent dense numpy computations."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import kcascade as kc
from kcascade import stationary

KEY = jax.random.key(0)


def _data(n, d=3, seed=0, noise=0.3):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, d))
    f = np.sin(3 * x[:, 0]) + x[:, 1] ** 2 - 0.5 * x[:, 0] * x[:, -1]
    return x, f + noise * rng.standard_normal(n), f


def _dense_kernel(name, u1, u2):
    diff = u1[:, None, :] - u2[None, :, :]
    r = np.sqrt((diff ** 2).sum(-1))
    if name == "gaussian":
        return np.exp(-0.5 * r ** 2)
    if name == "matern32":
        return (1 + np.sqrt(3) * r) * np.exp(-np.sqrt(3) * r)
    if name == "matern52":
        return (1 + np.sqrt(5) * r + 5 * r ** 2 / 3) * np.exp(-np.sqrt(5) * r)
    return np.exp(-np.abs(diff).sum(-1))


X, Y, F = _data(120)
XT, _, FT = _data(50, seed=1)
LAM, ELL = 1e-3, np.array([0.7, 0.9, 1.3])


def _exact_dense(name, lam=LAM, ell=ELL, x=X, y=Y, xt=XT):
    n = x.shape[0]
    k = _dense_kernel(name, x / ell, x / ell)
    a = np.linalg.solve(k + n * lam * np.eye(n), y - y.mean())
    return _dense_kernel(name, xt / ell, x / ell) @ a + y.mean()


@pytest.mark.parametrize("name", ["gaussian", "matern32", "matern52", "laplacian"])
def test_exact_matches_a_dense_solve(name):
    fit = kc.KernelRidge(kernel=name).fit(X, Y, key=KEY, lam=LAM, lengthscale=ELL)
    np.testing.assert_allclose(fit.predict(XT), _exact_dense(name), rtol=1e-9, atol=1e-9)


def test_composite_kernel_matches_dense():
    kern = 0.5 * stationary.Gaussian() + stationary.Matern52() * stationary.Laplacian()
    fit = kc.KernelRidge(kernel=kern).fit(X, Y, key=KEY, lam=LAM, lengthscale=ELL)
    u, ut = X / ELL, XT / ELL
    kd = lambda a, b: 0.5 * _dense_kernel("gaussian", a, b) + _dense_kernel("matern52", a, b) * _dense_kernel("laplacian", a, b)
    a = np.linalg.solve(kd(u, u) + len(X) * LAM * np.eye(len(X)), Y - Y.mean())
    np.testing.assert_allclose(fit.predict(XT), kd(ut, u) @ a + Y.mean(), rtol=1e-9, atol=1e-9)


def test_nystrom_with_every_row_as_centre_equals_exact():
    # jitter 1e-9 in the centres' Cholesky: agreement to ~1e-6 (measured 1e-7)
    fit = kc.KernelRidge(basis="nystrom", n_basis=len(X)).fit(X, Y, key=KEY, lam=LAM, lengthscale=ELL)
    np.testing.assert_allclose(fit.predict(XT), _exact_dense("gaussian"), atol=1e-5)


def test_nystrom_matches_its_dense_normal_equations():
    q = 30
    fit = kc.KernelRidge(basis="nystrom", n_basis=q).fit(X, Y, key=KEY, lam=LAM, lengthscale=ELL)
    c = np.asarray(fit.centres)
    knc = _dense_kernel("gaussian", X / ELL, c / ELL)
    kcc = _dense_kernel("gaussian", c / ELL, c / ELL)
    n = len(X)
    # the estimator's system, with its jitter (1e-9 k(0)) on the centres' matrix
    beta = np.linalg.solve(knc.T @ knc + n * LAM * (kcc + 1e-9 * np.eye(q)), knc.T @ (Y - Y.mean()))
    pred = _dense_kernel("gaussian", XT / ELL, c / ELL) @ beta + Y.mean()
    np.testing.assert_allclose(fit.predict(XT), pred, rtol=1e-7, atol=1e-7)


def test_rff_converges_to_exact_at_the_monte_carlo_rate():
    # RFF's kernel approximation error is O(q^-1/2): 16x the features should
    # cut the error in predictions about 4x; asked: at least 2x
    exact = _exact_dense("gaussian")
    errs = []
    for q in (100, 1600):
        fits = [kc.KernelRidge(basis="rff", n_basis=q).fit(X, Y, key=jax.random.key(s), lam=LAM, lengthscale=ELL)
                for s in range(3)]
        errs.append(np.mean([np.sqrt(np.mean((np.asarray(f.predict(XT)) - exact) ** 2)) for f in fits]))
    assert errs[1] < errs[0] / 2, errs


@pytest.mark.parametrize("basis", ["nystrom", "rff"])
def test_cg_matches_the_direct_solve(basis):
    direct = kc.KernelRidge(basis=basis, n_basis=40).fit(X, Y, key=KEY, lam=LAM, lengthscale=ELL)
    cg = kc.KernelRidge(basis=basis, n_basis=40, solver="cg", cg_tol=1e-12).fit(X, Y, key=KEY, lam=LAM, lengthscale=ELL)
    np.testing.assert_allclose(cg.predict(XT), direct.predict(XT), atol=1e-7)
    assert 0 < int(cg.cg_iterations) <= 40


def test_gcv_matches_a_dense_formula():
    n = len(X)
    k = _dense_kernel("gaussian", X / ELL, X / ELL)
    h = k @ np.linalg.inv(k + n * LAM * np.eye(n))
    yc = Y - Y.mean()
    rss = np.sum((yc - h @ yc) ** 2)
    want = n * rss / (n - 1.4 * (np.trace(h) + 1)) ** 2
    hyper = kc.KRRHyper(jnp.log(LAM), jnp.log(jnp.asarray(ELL)))
    got = kc.KernelRidge().score_at(X, Y, hyper, key=KEY)
    np.testing.assert_allclose(got, want, rtol=1e-8)


def test_selection_beats_every_grid_point_and_fits_well():
    model = kc.KernelRidge(basis="nystrom", n_basis=40)
    fit = model.fit(X, Y, key=KEY)
    best = float(model.score_at(X, Y, fit.hyper, key=KEY))
    for lam in (1e-6, 1e-4, 1e-2):
        for ell in (0.5, 1.0, 2.0):
            h = kc.KRRHyper(jnp.log(lam), jnp.log(jnp.full((3,), ell)))
            assert best <= float(model.score_at(X, Y, h, key=KEY)) + 1e-12
    mse = np.mean((np.asarray(fit.predict(XT)) - FT) ** 2)
    assert mse < 0.3 ** 2 / 2, mse     # under half the noise variance at n = 120


def test_vmap_and_jit_over_datasets():
    model = kc.KernelRidge(basis="nystrom", n_basis=20)
    ys = jnp.stack([jnp.asarray(Y), jnp.asarray(Y) * 2.0, jnp.asarray(Y) + 1.0])
    hyper = kc.KRRHyper(jnp.log(LAM), jnp.log(jnp.asarray(ELL)))
    batched = jax.jit(jax.vmap(lambda y: model.fit(jnp.asarray(X), y, key=KEY, hyper=hyper).predict(jnp.asarray(XT))))(ys)
    for b in range(3):
        one = model.fit(X, np.asarray(ys[b]), key=KEY, hyper=hyper).predict(XT)
        np.testing.assert_allclose(batched[b], one, atol=1e-10)


def test_predictions_far_outside_stay_finite():
    for basis in ("exact", "nystrom", "rff"):
        fit = kc.KernelRidge(basis=basis, **({} if basis == "exact" else {"n_basis": 20})).fit(
            X, Y, key=KEY, lam=LAM, lengthscale=ELL)
        out = np.asarray(fit.predict(np.full((2, 3), 1e6)))
        assert np.all(np.isfinite(out))


def test_warm_start_reaches_the_same_solution():
    x, y, _ = _data(600, seed=3)
    model = kc.KernelRidge(basis="nystrom", n_basis=60, solver="cg", cg_tol=1e-10)
    hyper = kc.KRRHyper(jnp.log(1e-4), jnp.log(jnp.asarray(ELL)))
    student = kc.KernelRidge(basis="nystrom", n_basis=20).fit(x[:150], y[:150], key=KEY, hyper=hyper)
    cold = model.fit(x, y, key=KEY, hyper=hyper)
    warm = model.fit(x, y, key=KEY, hyper=hyper, start=student)
    np.testing.assert_allclose(warm.predict(XT), cold.predict(XT), atol=1e-6)


@pytest.mark.parametrize("kwargs, match", [
    (dict(kernel="cosine"), "kernel: expected one of"),
    (dict(basis="falkon"), "basis: expected one of"),
    (dict(basis="exact", n_basis=10), "n_basis: basis='exact'"),
    (dict(basis="nystrom", n_basis=0), "n_basis: expected an integer >= 1"),
    (dict(lengthscale="each"), "lengthscale: expected 'ard' or 'shared'"),
    (dict(solver="cg"), "solver: 'cg' solves the feature bases"),
    (dict(centres="leverage"), "centres: 'leverage' chooses Nystrom centres"),
])
def test_bad_configuration(kwargs, match):
    with pytest.raises(ValueError, match=match):
        kc.KernelRidge(**kwargs)


def test_bad_data_and_hyperparameters():
    m = kc.KernelRidge(basis="nystrom", n_basis=20)
    with pytest.raises(ValueError, match="n_basis: expected at most n = 10 Nystrom centres"):
        m.fit(X[:10], Y[:10], key=KEY)
    with pytest.raises(ValueError, match="lam: expected a positive"):
        m.fit(X, Y, key=KEY, lam=0.0, lengthscale=1.0)
    with pytest.raises(ValueError, match="lengthscale: expected positive"):
        m.fit(X, Y, key=KEY, lam=1e-3, lengthscale=[1.0, -1.0, 1.0])
    with pytest.raises(ValueError, match="lam: give both"):
        m.fit(X, Y, key=KEY, lam=1e-3)
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="x: expected finite values"):
        m.fit(bad, Y, key=KEY)
    with pytest.raises(ValueError, match="y: expected length 120"):
        m.fit(X, Y[:-1], key=KEY)
    with pytest.raises(ValueError, match="key: expected a jax.random key"):
        m.fit(X, Y, key=0)
    with pytest.raises(ValueError, match="selection with basis='exact' is limited"):
        kc.KernelRidge().fit(np.random.default_rng(0).normal(size=(5001, 2)), np.zeros(5001), key=KEY)
    with pytest.raises(ValueError, match="warm_start"):
        m.fit(X, Y, key=KEY, lam=1e-3, lengthscale=1.0, start=m.fit(X, Y, key=KEY, lam=1e-3, lengthscale=1.0))
    with pytest.raises(ValueError, match="start: expected a fit or a non-empty sequence"):
        m.fit(X, Y, key=KEY, lam=1e-3, lengthscale=1.0, start=())
    with pytest.raises(ValueError, match="kernel: random Fourier features"):
        kc.KernelRidge(kernel=stationary.Gaussian() + stationary.Laplacian(), basis="rff")


def test_leverage_centres_are_distinct_rows_and_fit_as_well():
    x, y, f = _data(400, seed=5)
    xt, _, ft = _data(400, seed=6)
    hyper = kc.KRRHyper(jnp.log(1e-5), jnp.log(jnp.asarray(ELL)))
    lev = kc.KernelRidge(basis="nystrom", n_basis=30, centres="leverage").fit(x, y, key=KEY, hyper=hyper)
    uni = kc.KernelRidge(basis="nystrom", n_basis=30).fit(x, y, key=KEY, hyper=hyper)
    c = np.asarray(lev.centres)
    rows = {tuple(r) for r in x}
    assert len({tuple(r) for r in c}) == 30 and all(tuple(r) in rows for r in c)
    # leverage sampling is meant to need fewer centres for the same error;
    # asked here: no worse than uniform by more than 20% at q = 30
    m_lev, m_uni = (np.mean((np.asarray(fit.predict(xt)) - ft) ** 2) for fit in (lev, uni))
    assert m_lev <= 1.2 * m_uni, (m_lev, m_uni)


@pytest.mark.slow   # three fits of a ladder and a teacher (~11 s)
def test_capacity_ladder_cascade():
    x, y, f = _data(3000, seed=7)
    model = kc.KernelRidge(basis="nystrom", solver="cg")
    res = kc.cascade(model, x, y, key=KEY, stages=(200, 600), warm_start=True)
    assert [s.capacity for s in res.stages] == [model.capacity(200), model.capacity(600)] == [29, 49]
    assert res.teacher.centres.shape == (model.capacity(3000), 3) and int(res.teacher.cg_iterations) > 0
    law = model.default_law(3)
    np.testing.assert_allclose(res.teacher.hyper.log_lambda,
                               max(res.stages[-1].hyper.log_lambda + law.log_factor(600, 3000), np.log(1e-8)))
    np.testing.assert_allclose(res.teacher.hyper.log_lengthscale, res.stages[-1].hyper.log_lengthscale)
    xt, _, ft = _data(500, seed=8)
    assert np.mean((np.asarray(res.teacher.predict(xt)) - ft) ** 2) < 0.3 ** 2 / 4


def test_save_and_load_round_trip(tmp_path):
    for basis in ("exact", "rff"):
        fit = kc.KernelRidge(basis=basis, **({} if basis == "exact" else {"n_basis": 20})).fit(
            X, Y, key=KEY, lam=LAM, lengthscale=ELL)
        back = kc.load(fit.save(tmp_path / f"{basis}.npz"))
        np.testing.assert_array_equal(back.predict(XT), fit.predict(XT))


def test_default_law_follows_the_kernels_decay():
    assert kc.KernelRidge().default_law(3).exponent == -0.5
    # Matern 5/2 in d = 1: eigenvalues ~ i^-6, lambda ~ n^{-6/13}
    np.testing.assert_allclose(kc.KernelRidge(kernel="matern52").default_law(1).exponent, -6 / 13)


def test_a_one_device_mesh_gives_the_same_fit():
    from jax.sharding import Mesh
    mesh = Mesh(np.array(jax.devices()[:1]), ("rows",))
    for solver in ("direct", "cg"):
        model = kc.KernelRidge(basis="nystrom", n_basis=20, solver=solver, chunk=32)
        plain = model.fit(X, Y, key=KEY, lam=LAM, lengthscale=ELL)
        meshed = model.fit(X, Y, key=KEY, lam=LAM, lengthscale=ELL, mesh=mesh)
        np.testing.assert_allclose(meshed.predict(XT), plain.predict(XT), atol=1e-9)
    with pytest.raises(ValueError, match="mesh"):
        kc.KernelRidge().fit(X, Y, key=KEY, lam=LAM, lengthscale=ELL, mesh=mesh)
