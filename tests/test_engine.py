"""The SS-ANOVA engine against independent dense computations: the fixed-hyper
solve for each statistics strategy x dtype x eager/jit/vmap, row weights, the
GCV and GML scores, and the frozen-basis objective of the selection."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import kcascade as kc
import reference  # tests/reference.py
from kcascade.estimators import ssanova_engine

KINDS, ORDER, N = ("cubic",) * 3, 2, 200
# Relative to max |mean|. float64: round-off amplified by the conditioning of
# the penalized system (measured <= 1e-13). float32 with the QR pass: measured
# <= 8e-7 (7 x eps). float32 with the Gram pass, which squares the condition
# number: measured 2e-2 eager and 8e-2 under vmap -- the reason "auto" picks QR
# for float32; the bound only guards against worse.
TOL = {("float64", "gram"): 1e-10, ("float64", "qr"): 1e-10, ("float32", "qr"): 1e-5, ("float32", "gram"): 0.15}


@pytest.fixture(scope="module")
def case():
    xs, ys = [], []
    for seed in (0, 1):
        x, y, _ = kc.datasets.sine_interaction(jax.random.key(seed), N)
        xs.append(np.asarray(x))
        ys.append(np.asarray(y))
    model = kc.SSANOVA(order=ORDER)
    hyper = model.fit(xs[0], ys[0], key=jax.random.key(3)).hyper
    return np.stack(xs), np.stack(ys), hyper


def _scaled(fit, x):
    dom = np.asarray(fit.domains, float)
    return (x - dom[:, 0]) / (dom[:, 1] - dom[:, 0])


def _check_against_dense(fit, x, y, tol, weights=None):
    hyper = fit.hyper
    u, z = _scaled(fit, x), np.asarray(fit.basis, float)
    predict, trace, _ = reference.dense_fit(KINDS, ORDER, u, y, z, [None] * 3, float(hyper.log_lambda),
                                            np.asarray(hyper.log_theta, float), weights)
    x_new = x[:40].astype(np.asarray(fit.coef_basis).dtype)
    mean_ref, _ = predict(_scaled(fit, x_new.astype(float)))
    mean = np.asarray(fit.predict(x_new), float)
    scale = np.max(np.abs(mean_ref))
    np.testing.assert_allclose(mean, mean_ref, rtol=0, atol=tol * scale)
    np.testing.assert_allclose(float(fit.df), trace, rtol=tol)


@pytest.mark.parametrize("stats", ["gram", "qr"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("mode", ["eager", "jit", "vmap"])
def test_fixed_hyper_matches_dense_solve(case, stats, dtype, mode):
    xs, ys, hyper = case
    model = kc.SSANOVA(order=ORDER, statistics=stats)
    key = jax.random.key(5)
    h = jax.tree.map(lambda a: jnp.asarray(a, dtype), hyper)
    xd, yd = xs.astype(dtype), ys.astype(dtype)
    if mode == "eager":
        fits = [model.fit(xd[0], yd[0], key=key, hyper=h)]
    elif mode == "jit":   # fit traced inside a user's jit
        fits = [jax.jit(lambda a, b: model.fit(a, b, key=key, hyper=h))(xd[0], yd[0])]
    else:
        batched = jax.vmap(lambda a, b: model.fit(a, b, key=key, hyper=h))(xd, yd)
        fits = [jax.tree.map(lambda a: a[i], batched) for i in range(2)]
    for i, fit in enumerate(fits):
        assert fit.coef_basis.dtype == jnp.dtype(dtype)
        _check_against_dense(fit, xs[i], ys[i], TOL[(dtype, stats)])


def test_row_weights_match_dense_weighted_solve(case):
    xs, ys, hyper = case
    rng = np.random.default_rng(0)
    w = rng.uniform(0.2, 3.0, N)
    w[:15] = 0.0   # rows of weight 0 take no part (n counts the others)
    for stats in ("gram", "qr"):
        fit = kc.SSANOVA(order=ORDER, statistics=stats).fit(xs[0], ys[0], key=jax.random.key(5), hyper=hyper,
                                                            weights=w)
        assert float(fit.n) == N - 15
        _check_against_dense(fit, xs[0], ys[0], 1e-8, weights=w)
    # integer weights are repeated rows, at lambda scaled by n / sum(w) (the
    # penalty multiplies the mean over rows)
    counts = rng.integers(1, 3, N)
    weighted = kc.SSANOVA(order=ORDER).fit(xs[0], ys[0], key=jax.random.key(1), hyper=hyper,
                                           weights=counts.astype(float))
    rep = np.repeat(np.arange(N), counts)
    rep_pred, *_ = reference.dense_fit(KINDS, ORDER, _scaled(weighted, xs[0][rep]), ys[0][rep],
                                       np.asarray(weighted.basis), [None] * 3,
                                       float(hyper.log_lambda) + np.log(N / counts.sum()), np.asarray(hyper.log_theta))
    expect = rep_pred(_scaled(weighted, xs[0][:30]))[0]
    np.testing.assert_allclose(np.asarray(weighted.predict(xs[0][:30])), expect, rtol=0, atol=1e-9 * np.abs(expect).max())


@pytest.mark.parametrize("score", ["gcv", "gml", "ubr"])
def test_scores_match_dense_hat_matrix(case, score):
    xs, ys, hyper = case
    model = kc.SSANOVA(order=ORDER, score=score)
    key = jax.random.key(5)
    for shift in (-3.0, 0.0, 2.0):
        h = hyper._replace(log_lambda=hyper.log_lambda + shift)
        fit = model.fit(xs[0], ys[0], key=key, hyper=h)
        dense = reference.dense_scores(KINDS, ORDER, _scaled(fit, xs[0]), ys[0], np.asarray(fit.basis),
                                          [None] * 3, float(h.log_lambda), np.asarray(h.log_theta), model.alpha)
        expect = dict(zip(("gcv", "gml", "ubr"), dense))[score]
        np.testing.assert_allclose(float(fit.score), expect, rtol=1e-7)
        np.testing.assert_allclose(float(model.score_at(xs[0], ys[0], h, key=key)), expect, rtol=1e-7)


@pytest.mark.parametrize("stats", ["gram", "qr"])
def test_frozen_objective_equals_exact_score_at_the_frozen_point(case, stats):
    """The selection minimises a surrogate of the score in a basis frozen at the
    round's start; at that point it must equal the exact score, for both the
    full-statistics path (selection) and the narrow path (refine)."""
    xs, ys, hyper = case
    model = kc.SSANOVA(order=ORDER, statistics=stats)
    p = jnp.concatenate([jnp.reshape(hyper.log_lambda, (1,)), hyper.log_theta + 0.3 * jnp.sin(jnp.arange(12.0))])

    @jax.jit
    def both(x, y, p):
        prob = ssanova_engine.Problem(model, x, y, None, jax.random.key(5))
        full = prob.full()
        lt = ssanova_engine.canonical_log_theta(p[1:])
        out = []
        for problem_at in (lambda t: prob.at_theta(full, t), lambda t: prob.narrow(kc.Hyper(0.0, t))):
            exact = prob.score(prob.reduce(problem_at(lt)), p[0])
            out.append((exact, prob.frozen_objective(problem_at, p, jnp.asarray(float(N)))(p)))
        return out

    for exact, frozen in both(jnp.asarray(xs[0]), jnp.asarray(ys[0]), p):
        np.testing.assert_allclose(float(frozen), float(exact), rtol=1e-7)


def test_basis_draw_is_lax_top_k_and_uniform():
    """The basis draw (``anova.design``): the O(n) threshold-and-gather path
    returns exactly ``lax.top_k``'s q smallest labels (with and without
    weights, and in the fallback when the threshold passes too many rows),
    and the hash labels draw every row equally often."""
    from kcascade.anova.design import row_labels, smallest
    x = jax.random.uniform(jax.random.key(0), (20_000, 3))
    w = (jax.random.uniform(jax.random.key(1), (20_000,)) > 0.6).astype(x.dtype)
    top = lambda lab, q: np.asarray(jax.lax.top_k(-lab, q)[1])
    fast = jax.jit(smallest, static_argnums=1)
    for k in range(5):
        lab = row_labels(jax.random.key(10 + k), x)
        np.testing.assert_array_equal(np.asarray(fast(lab, 100, 20_000)), top(lab, 100))
        labw = jnp.where(w > 0, lab, jnp.iinfo(lab.dtype).max)
        np.testing.assert_array_equal(np.asarray(fast(labw, 100, jnp.sum(w > 0))), top(labw, 100))
    tied = jnp.zeros((20_000,), row_labels(jax.random.key(0), x[:2]).dtype)   # every row under the threshold
    np.testing.assert_array_equal(np.asarray(fast(tied, 100, 20_000)), top(tied, 100))
    # uniform: 20 of 200 rows, 400 keys; each row's count ~ Binomial(400, 0.1).
    # The chi-square statistic over the rows has mean ~199 and sd ~20; the
    # bounds are 5 sd either side.
    xs = jax.random.uniform(jax.random.key(2), (200, 2))
    counts = np.zeros(200)
    for k in range(400):
        counts[np.argsort(np.asarray(row_labels(jax.random.key(1000 + k), xs)))[:20]] += 1
    chi2 = float(np.sum((counts - 40) ** 2 / (40 * 0.9)))
    assert 99 < chi2 < 299, chi2


def _greedy_farthest(u, kinds, q):
    """numpy reference for the spread draw's greedy farthest-point choice."""
    d = np.abs(u[:, None, :] - u[None, :, :])
    kinds = np.asarray(kinds)
    d = np.where(kinds == 1, np.minimum(d, 1 - d), np.where(kinds == 2, (d > 0).astype(float), d))
    dist = np.sum(d ** 2, axis=2)
    chosen = [0]
    for _ in range(q - 1):
        chosen.append(int(np.argmax(dist[chosen].min(axis=0))))
    return chosen


def test_spread_basis_draw_is_greedy_farthest_points():
    """``SSANOVA(basis_draw="spread")``: q of 3q uniformly drawn rows, chosen
    by greedy farthest-point selection with periodic and nominal distances;
    against a numpy greedy on the same candidates; periodic distance wraps."""
    from kcascade.anova.design import draw_basis, farthest_points, row_labels, smallest
    u = np.column_stack([np.asarray(jax.random.uniform(jax.random.key(0), (600,))),
                         np.asarray(jax.random.uniform(jax.random.key(1), (600,))),
                         np.asarray(jax.random.randint(jax.random.key(2), (600,), 0, 4)).astype(float)])
    kinds, q = (0, 1, 2), 20
    key = jax.random.key(3)
    cand = np.asarray(smallest(row_labels(key, jnp.asarray(u)), 3 * q, 600))
    expect = u[cand[_greedy_farthest(u[cand], kinds, q)]]
    got = np.asarray(draw_basis(key, jnp.asarray(u), jnp.asarray(u), q, kinds=kinds, candidates=3))
    np.testing.assert_array_equal(got, expect)
    # on a circle the two points nearest 0 and 1 are neighbours: never both picked first
    ring = jnp.asarray([[0.0], [0.02], [0.98], [0.5]])
    assert set(np.asarray(farthest_points(ring, jnp.arange(4), 2, (1,))).tolist()) == {0, 3}
    with pytest.raises(ValueError, match="basis_draw"):
        kc.SSANOVA(basis_draw="sobol")


def test_wide_gram_from_upper_panels_equals_the_dense_product():
    """A wide pass forms Z'WZ as the upper triangle of 4 x 4 column panels
    (``passes.gram_panels``) and mirrors it: against numpy's dense product,
    with weights and a last chunk padded with zero-weight rows."""
    from kcascade.linalg import passes

    x = jax.random.normal(jax.random.key(0), (2500, 3))
    y = jax.random.normal(jax.random.key(1), (2500,))
    w = jax.random.uniform(jax.random.key(2), (2500,))
    proj = jax.random.normal(jax.random.key(3), (3, 1500))
    feat = lambda xc: jnp.sin(xc @ proj)
    assert len(passes.gram_panels(1500)) == passes.PANELS and passes.gram_panels(1000) == ((0, 1000),)
    st = jax.jit(lambda: passes.accumulate(feat, x, y, w, chunk=1024))()
    z, wn = np.asarray(feat(x)), np.asarray(w)
    ref = (z * wn[:, None]).T @ z
    # float64 rounding of sums of 2500 products: 1e-15 of the largest entry measured
    np.testing.assert_allclose(np.asarray(st.ztz), ref, rtol=0, atol=1e-12 * np.max(np.abs(ref)))
    np.testing.assert_allclose(np.asarray(st.zty), (z * wn[:, None]).T @ np.asarray(y), rtol=1e-12, atol=1e-9)
