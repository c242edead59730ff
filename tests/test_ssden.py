"""Smoothing-spline density estimation (``kc.SSDensity``)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import kcascade as kc
import reference


def _beta_mix(rng, n):
    """Rows of a 2-d density on [0, 1]^2 with an interaction: x0 ~ Beta(2, 5)
    or Beta(6, 2) (equal odds), x1 | x0 ~ Beta(2 + 6 x0, 3)."""
    pick = rng.random(n) < 0.5
    x0 = np.where(pick, rng.beta(2, 5, n), rng.beta(6, 2, n))
    return np.column_stack([x0, rng.beta(2 + 6 * x0, 3)])


def _beta_mix_logpdf(x):
    from scipy.stats import beta
    return (np.log(0.5 * beta.pdf(x[:, 0], 2, 5) + 0.5 * beta.pdf(x[:, 0], 6, 2))
            + beta.logpdf(x[:, 1], 2 + 6 * x[:, 0], 3))


@pytest.fixture(scope="module")
def data2():
    rng = np.random.default_rng(0)
    return _beta_mix(rng, 600), _beta_mix(rng, 4000)


def _hyper(model, d):
    return kc.Hyper(jnp.asarray(-6.0), jnp.linspace(-0.3, 0.3, model.structure(d).k))


def _grid(fit, per):
    """Midpoints of a per^d grid on the fit's box, and the cell volume."""
    dom = np.asarray(fit.domains, float)
    d = dom.shape[0]
    mids = (np.arange(per) + 0.5) / per
    u = np.stack(np.meshgrid(*([mids] * d), indexing="ij"), -1).reshape(-1, d)
    return dom[:, 0] + u * (dom[:, 1] - dom[:, 0]), np.prod(dom[:, 1] - dom[:, 0]) / per ** d


@pytest.mark.parametrize("d", [1, 2])
def test_density_integrates_to_one_on_a_fine_grid(d, data2):
    x = data2[0][:, :d]
    model = kc.SSDensity(order=d)
    fit = model.fit(x, key=jax.random.key(0), hyper=_hyper(model, d))
    grid, cell = _grid(fit, 20000 if d == 1 else 400)
    total = float(np.sum(np.exp(np.asarray(fit.log_density(grid)))) * cell)
    # the Gauss-Legendre rule's error on the normalizing integral (measured
    # 2e-10 for d = 1 at 200 nodes, 3e-7 for d = 2 at 48^2; 12^2 nodes give
    # 9e-5); the midpoint grid's own error is O(cell^2)
    assert abs(total - 1.0) < 1e-6, total


def test_fixed_hyper_fit_is_stationary_against_an_independent_design(data2):
    """At the minimiser, mean data features = mean features under the fitted
    density + lambda P b: checked with the dense numpy design of
    ``reference`` and a fine midpoint grid (independent of kcascade's
    quadrature and kernels)."""
    x = data2[0]
    model = kc.SSDensity(order=2)
    hyper = _hyper(model, 2)
    fit = model.fit(x, key=jax.random.key(1), hyper=hyper)
    dom = np.asarray(fit.domains, float)
    z = np.asarray(fit.basis, float)
    theta = np.exp(np.asarray(hyper.log_theta) - float(hyper.log_lambda))

    def feats(rows):
        s, rb = reference.design(["cubic"] * 2, 2, (rows - dom[:, 0]) / (dom[:, 1] - dom[:, 0]), z, [None] * 2)
        return np.column_stack([s[:, 1:], sum(t * b for t, b in zip(theta, rb))])

    grid, cell = _grid(fit, 400)
    fg = feats(grid)
    dens = np.exp(np.asarray(fit.log_density(grid))) * cell
    b = np.asarray(fit.coef, float)
    _, qb = reference.design(["cubic"] * 2, 2, z, z, [None] * 2)
    q_theta = sum(t * blk for t, blk in zip(theta, qb))
    m = fg.shape[1] - len(z)
    pen_b = np.concatenate([np.zeros(m), q_theta @ b[m:]])
    resid = feats(x).mean(0) - (dens / dens.sum()) @ fg - pen_b
    assert np.max(np.abs(resid)) < 1e-5 * np.max(np.abs(fg)), np.max(np.abs(resid))


@pytest.mark.slow   # a selection (compiles the search: ~20 s)
def test_selection_beats_the_uniform_and_tracks_the_truth(data2):
    x, xt = data2
    fit = kc.SSDensity(order=2).fit(x, key=jax.random.key(2))
    held = float(np.mean(np.asarray(fit.log_density(xt))))
    truth = float(np.mean(_beta_mix_logpdf(xt)))
    # the uniform on the box scores -log(area) ~ -0.2; the truth ~ +0.6
    assert np.isfinite(held) and held > 0.3
    assert held > truth - 0.1, (held, truth)
    draws = np.asarray(fit.sample(jax.random.key(3), 2000))
    dom = np.asarray(fit.domains)
    assert draws.shape == (2000, 2) and np.all((draws >= dom[:, 0]) & (draws <= dom[:, 1]))
    # draws follow the fit: their mean matches the fitted density's (grid) to 4 standard errors
    grid, cell = _grid(fit, 200)
    w = np.exp(np.asarray(fit.log_density(grid))) * cell
    mean = (w / w.sum()) @ grid
    assert np.all(np.abs(draws.mean(0) - mean) < 4 * draws.std(0) / np.sqrt(2000) + 2e-3)


@pytest.mark.slow   # a selection (compiles the search: ~20 s)
def test_cascade_and_save(data2, tmp_path):
    x = np.concatenate([data2[0], data2[1][:1400]])
    model = kc.SSDensity(order=2)
    res = kc.cascade(model, x, key=jax.random.key(4), n_student=400, students=1)
    assert isinstance(res.teacher, kc.SSDensityFit) and int(res.teacher.n) == 2000
    # the student ran on the coarser rule of for_student, the teacher on the model's
    assert res.student.model.nodes_for(2) == model.for_student(2, 400, 2000).nodes_for(2) == 35
    assert res.teacher.model.nodes_for(2) == 48
    back = kc.load(res.teacher.save(tmp_path / "den"))
    np.testing.assert_array_equal(np.asarray(back.log_density(x[:20])), np.asarray(res.teacher.log_density(x[:20])))


def test_scale_search_takes_the_best_resolved_offset(data2):
    """``fit(hyper=h, scale_search=True)`` (the cascade's teacher) against the
    fits at h + each of ``SCALE_OFFSETS`` made one by one: the lowest score
    among the resolved ones, at its log lambda, thetas kept. From a start
    whose score still falls towards smaller lambda, so that the search moves
    (to the grid's end: offset -3)."""
    from kcascade.estimators import ssden
    x, key = data2[0][:, :1], jax.random.key(0)
    model = kc.SSDensity(order=1)
    h = _hyper(model, 1)
    h = kc.Hyper(h.log_lambda - 2.0, h.log_theta)
    fit = model.fit(x, key=key, hyper=h, scale_search=True)
    one_by_one = [model.fit(x, key=key, hyper=kc.Hyper(h.log_lambda + o, h.log_theta)) for o in ssden.SCALE_OFFSETS]
    scores = [float(f.score) if bool(f.resolved) else np.inf for f in one_by_one]
    best = int(np.argmin(scores))
    assert np.isfinite(scores[best]) and best != list(ssden.SCALE_OFFSETS).index(0.0)
    np.testing.assert_allclose(float(fit.hyper.log_lambda), float(one_by_one[best].hyper.log_lambda), atol=1e-12)
    np.testing.assert_allclose(np.asarray(fit.hyper.log_theta), np.asarray(h.log_theta) - float(np.mean(h.log_theta)),
                               atol=1e-12)
    # the inner solves start from different points (the search warm-starts them): 1e-6
    np.testing.assert_allclose(float(fit.score), scores[best], rtol=1e-6)


def test_scale_search_bisects_towards_the_unresolved_side(data2):
    """With a coarse rule (8 nodes) the smallest lambdas are not resolved and
    the score still falls towards them: the search bisects between the
    smallest resolved offset and the next one, and ends resolved, inside
    that bracket, with a score no higher than the grid's best, which a fit
    made at its values directly reproduces."""
    from kcascade.estimators import ssden
    x, key = data2[0][:, :1], jax.random.key(0)
    model = kc.SSDensity(order=1, nodes=8)
    h = kc.Hyper(jnp.asarray(-8.0), jnp.zeros(model.structure(1).k))
    with pytest.warns(RuntimeWarning, match="does not resolve"):   # the unresolved offsets say so
        grid = [model.fit(x, key=key, hyper=kc.Hyper(h.log_lambda + o, h.log_theta)) for o in ssden.SCALE_OFFSETS]
    resolved = [bool(f.resolved) for f in grid]
    first = resolved.index(True)
    assert first > 0 and all(resolved[first:])       # the edge lies inside the grid
    fit = model.fit(x, key=key, hyper=h, scale_search=True)
    moved = float(fit.hyper.log_lambda) - float(h.log_lambda)
    assert ssden.SCALE_OFFSETS[first - 1] < moved < ssden.SCALE_OFFSETS[first]
    assert bool(fit.resolved) and float(fit.score) < min(float(f.score) for f in grid[first:])
    again = model.fit(x, key=key, hyper=fit.hyper)
    assert bool(again.resolved)
    np.testing.assert_allclose(float(again.score), float(fit.score), rtol=1e-6)


def test_students_get_a_rule_coarser_by_the_fifth_root_of_their_share():
    """``for_student``: nodes per dimension x (n_s / n)^(1/5), rounded up, at
    least ``MIN_STUDENT_NODES``, never finer than the model's own."""
    from kcascade.estimators import ssden
    m = kc.SSDensity(order=2)
    assert m.for_student(3, 1000, 10000).nodes == int(np.ceil(20 * 0.1 ** 0.2)) == 13
    assert m.for_student(2, 1316, 30000).nodes == int(np.ceil(48 * (1316 / 30000) ** 0.2)) == 26
    assert m.for_student(4, 10, 10 ** 6).nodes == ssden.MIN_STUDENT_NODES
    assert m.for_student(3, 5000, 5000) is m
    assert kc.SSDensity(nodes=30).for_student(2, 1000, 10000).nodes == 19     # a given rule is scaled too
    assert kc.SSANOVA().for_student(3, 1000, 10000) == kc.SSANOVA()           # the protocol's default


def test_bad_input_names_the_argument(data2):
    x = data2[0]
    key = jax.random.key(0)
    cases = [
        (r"x\[:, 0\]: values span .* outside domains\[0\]", lambda: kc.SSDensity(domains=((0.2, 1.0), None)).fit(x, key=key)),
        (r"domains\[1\]: expected \(lo, hi\) with lo < hi", lambda: kc.SSDensity(domains=(None, (1.0, 1.0))).fit(x, key=key)),
        (r"y: SSDensity is a density estimator", lambda: kc.SSDensity().check_data(x, x[:, 0])),
        (r"x: SSDensity works for d = 1 to 4", lambda: kc.SSDensity().fit(np.random.default_rng(0).random((100, 5)), key=key)),
        (r"marginals: SSDensity takes", lambda: kc.SSDensity(marginals="nominal")),
        (r"key: expected a jax.random key", lambda: kc.SSDensity().fit(x, key=0)),
        (r"scale_search: needs hyper", lambda: kc.SSDensity().fit(x, key=key, scale_search=True)),
    ]
    for pattern, call in cases:
        with pytest.raises(ValueError, match=pattern):
            call()
