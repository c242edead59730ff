"""kc.cascade: student selection, transfer, one teacher fit."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import kcascade as kc

MODEL = kc.SSANOVA(order=2)


@pytest.fixture(scope="module")
def data():
    x, y, f = kc.datasets.sine_interaction(jax.random.key(7), 4000)
    xt, _, ft = kc.datasets.sine_interaction(jax.random.key(8), 2000)
    return tuple(map(np.asarray, (x, y, f, xt, ft)))


def test_cascade_pipeline(data):
    x, y, _, xt, ft = data
    res = kc.cascade(MODEL, x, y, key=jax.random.key(0), teacher_lambda="law")
    assert res.n == 4000 and res.n_student == kc.student_size(4000)
    assert res.student.n == res.n_student and res.teacher.n == 4000
    # the teacher sits exactly at the transferred hyperparameters
    expect = kc.transfer(res.hyper_student, kc.laws.smoothing_spline(), res.n_student, 4000)
    np.testing.assert_allclose(float(res.hyper_teacher.log_lambda), float(expect.log_lambda))
    np.testing.assert_allclose(np.asarray(res.teacher.hyper.log_theta), np.asarray(res.hyper_student.log_theta))
    assert set(res.timings) == {"student", "transfer", "groups", "reselect", "refine", "teacher", "total"}
    assert all(v >= 0 for v in res.timings.values())
    # more data at transferred smoothing beats the student alone
    mse = lambda fit: np.mean((np.asarray(fit.predict(xt)) - ft) ** 2)  # noqa: E731
    assert mse(res.teacher) < mse(res.student)
    # and lands near full-sample selection
    full = MODEL.fit(x, y, key=jax.random.key(0))
    assert mse(res.teacher) < 2.0 * mse(full)


def test_multistage_and_custom_law(data):
    x, y, *_ = data
    res = kc.cascade(MODEL, x, y, key=jax.random.key(1), stages=(200, 500), law=kc.laws.power(-0.5),
                     teacher_lambda="law")
    assert [s.n for s in res.stages] == [200, 500] and res.n_student == 500
    np.testing.assert_allclose(float(res.hyper_teacher.log_lambda),
                               float(res.hyper_student.log_lambda) - 0.5 * np.log(4000 / 500))


def test_refine_does_not_worsen_teacher_score(data):
    x, y, *_ = data
    key = jax.random.key(2)
    plain = kc.cascade(MODEL, x, y, key=key)
    refined = kc.cascade(MODEL, x, y, key=key, refine=2)
    _, _, k_teacher = jax.random.split(key, 3)
    before = float(MODEL.score_at(x, y, plain.hyper_teacher, key=k_teacher))
    after = float(MODEL.score_at(x, y, refined.hyper_teacher, key=k_teacher))
    assert after <= before * (1 + 1e-9)
    assert refined.timings["refine"] > 0


def test_cascade_errors(data):
    x, y, *_ = data
    key = jax.random.key(0)
    with pytest.raises(ValueError, match=r"stages: expected strictly increasing sizes, got \(500, 200\)"):
        kc.cascade(MODEL, x, y, key=key, stages=(500, 200))
    with pytest.raises(ValueError, match=r"n_student: expected integers in \[1, n = 4000\], got 5000"):
        kc.cascade(MODEL, x, y, key=key, n_student=5000)
    with pytest.raises(ValueError, match=r"refine: expected an integer >= 0, got -1"):
        kc.cascade(MODEL, x, y, key=key, refine=-1)
    with pytest.raises(ValueError, match=r"law: expected a kcascade.laws.Law, got str"):
        kc.cascade(MODEL, x, y, key=key, law="fast")
    with pytest.raises(ValueError, match=r"stages: give either n_student or stages"):
        kc.cascade(MODEL, x, y, key=key, n_student=300, stages=(300,))


def test_teacher_selects_lambda_along_transferred_theta(data):
    x, y, *_ = data
    key = jax.random.key(3)
    by_law = kc.cascade(MODEL, x, y, key=key, teacher_lambda="law")
    chosen = kc.cascade(MODEL, x, y, key=key, teacher_lambda="select")
    np.testing.assert_allclose(np.asarray(chosen.hyper_teacher.log_theta), np.asarray(by_law.hyper_teacher.log_theta))
    assert abs(float(chosen.hyper_teacher.log_lambda - by_law.hyper_teacher.log_lambda)) <= 6.0
    _, _, k_teacher = jax.random.split(key, 3)
    # the teacher's choice is the best of its grid, so no worse than the law's value
    assert float(MODEL.score_at(x, y, chosen.hyper_teacher, key=k_teacher)) <= \
        float(MODEL.score_at(x, y, by_law.hyper_teacher, key=k_teacher)) * (1 + 1e-12)
    with pytest.raises(ValueError, match=r"teacher_lambda: expected None, 'law', 'select', 'groups' or 'reselect', got 'grid'"):
        kc.cascade(MODEL, x, y, key=key, teacher_lambda="grid")
    with pytest.raises(ValueError, match=r"scale_search: needs hyper"):
        MODEL.fit(x, y, key=key, scale_search=True)


def test_group_search_keeps_ratios_within_groups_and_lowers_the_score(data):
    """``fit(hyper=h, scale_search="groups")``: the thetas move by one
    multiplier per group (main effects, interactions), the score is no
    larger than lambda's own search from the same h, and the fit is the
    fixed-hyperparameter fit at the hyper it reports (against a dense numpy
    solve of that fit's penalized least squares: tests/test_ssanova.py)."""
    from kcascade.estimators import ssanova_engine as engine
    x, y, *_ = data
    key = jax.random.key(4)
    d = x.shape[1]
    groups = np.asarray(engine.order_groups(MODEL.structure(d)))
    assert set(groups) == {0, 1}
    full = MODEL.fit(x, y, key=key)
    # a start with the interactions 20x too heavy against the main effects
    h = kc.Hyper(full.hyper.log_lambda, full.hyper.log_theta + np.where(groups == 1, 3.0, 0.0))
    lam = MODEL.fit(x, y, key=key, hyper=h, scale_search=True)
    grp = MODEL.fit(x, y, key=key, hyper=h, scale_search="groups")
    moved = np.asarray(grp.hyper.log_theta) - np.asarray(h.log_theta)
    for g in (0, 1):
        np.testing.assert_allclose(moved[groups == g], moved[groups == g][0], atol=1e-9)
    # the interactions come back down towards full selection's ratio
    assert moved[groups == 1][0] - moved[groups == 0][0] < -1.0
    assert float(grp.score) <= float(lam.score) * (1 + 1e-12)
    again = MODEL.fit(x, y, key=key, hyper=grp.hyper)
    np.testing.assert_allclose(np.asarray(again.predict(x[:200])), np.asarray(grp.predict(x[:200])),
                               rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(float(again.score), float(grp.score), rtol=1e-8)
    # an additive model has one group: as scale_search=True
    additive = kc.SSANOVA(order=1)
    ha = additive.fit(x, y, key=key).hyper
    np.testing.assert_allclose(float(additive.fit(x, y, key=key, hyper=ha, scale_search="groups").score),
                               float(additive.fit(x, y, key=key, hyper=ha, scale_search=True).score), rtol=1e-12)
    with pytest.raises(ValueError, match=r"scale_search: expected False, True or 'groups', got 'all'"):
        MODEL.fit(x, y, key=key, hyper=h, scale_search="all")


def test_group_search_with_weights_and_a_discretized_pass(data):
    """The grouped statistics go through the same pass as every other: with
    row weights and rounded rows summarised by cells (``discretize``), the
    fit from ``scale_search="groups"`` is again the fixed-hyperparameter fit
    at the hyper it reports."""
    x, y, *_ = data
    x, y = x[:1500], y[:1500]
    w = np.where(x[:, 0] > 0.5, 2.0, 1.0)
    model = kc.SSANOVA(order=2, discretize=8)   # 8^3 cells <= n / 2: the rows summarised by cells
    key = jax.random.key(6)
    h = model.fit(x[:500], y[:500], key=key).hyper
    grp = model.fit(x, y, key=key, hyper=h, scale_search="groups", weights=w)
    again = model.fit(x, y, key=key, hyper=grp.hyper, weights=w)
    np.testing.assert_allclose(np.asarray(again.predict(x[:100])), np.asarray(grp.predict(x[:100])),
                               rtol=1e-7, atol=1e-9)
    assert float(grp.score) <= float(model.fit(x, y, key=key, hyper=h, scale_search=True, weights=w).score) * (1 + 1e-12)


def test_default_cascade_runs_the_group_pass(data, monkeypatch):
    """The default teacher_lambda for a Gaussian SS-ANOVA is "groups": a group
    pass on ``group_rows`` rows, whose thetas (one multiplier per group on
    the students') the teacher keeps, re-picking lambda; only where those
    rows are at most half of n (here with the floor lowered so that 4000
    rows qualify), else as "select"."""
    from kcascade.cascade import pipeline
    from kcascade.estimators import ssanova_engine as engine
    x, y, *_ = data
    key = jax.random.key(3)
    plain = kc.cascade(MODEL, x, y, key=key)
    select = kc.cascade(MODEL, x, y, key=key, teacher_lambda="select")
    assert plain.timings["groups"] < 1e-3
    np.testing.assert_array_equal(np.asarray(plain.hyper_teacher.log_lambda), np.asarray(select.hyper_teacher.log_lambda))
    monkeypatch.setattr(pipeline, "GROUP_MIN_ROWS", 1000)
    assert pipeline.group_rows(4000, 632, 3) == 1896          # the students' rows together
    res = kc.cascade(MODEL, x, y, key=key)
    assert res.timings["groups"] > 0
    groups = np.asarray(engine.order_groups(MODEL.structure(x.shape[1])))
    moved = np.asarray(res.hyper_teacher.log_theta) - np.asarray(res.hyper_student.log_theta)
    for g in (0, 1):
        np.testing.assert_allclose(moved[groups == g], moved[groups == g][0], atol=1e-9)
    monkeypatch.undo()
    assert pipeline.group_rows(4000, 632, 3) == 4000          # below GROUP_MIN_ROWS: all rows
    assert pipeline.group_rows(50_000, 1496, 3) == 20_000     # GROUP_MIN_ROWS
    assert pipeline.group_rows(100_000, 1779, 3) == 25_000    # GROUP_ROWS of n
    assert pipeline.group_rows(100_000, 20_000, 3) == 60_000  # the students' rows together
    with pytest.raises(ValueError, match=r"teacher_lambda='groups': KDE does not support"):
        kc.cascade(kc.KDE(), x, key=key, teacher_lambda="groups")
    # an additive model has one group: no group pass, the students' thetas kept
    additive = kc.SSANOVA(order=1)
    assert additive.search_groups(3) == 1 and MODEL.search_groups(3) == 2
    res = kc.cascade(additive, x, y, key=key, n_student=300)
    assert res.timings["groups"] < 1e-3
    np.testing.assert_allclose(np.asarray(res.hyper_teacher.log_theta), np.asarray(res.hyper_student.log_theta))


@pytest.mark.slow
def test_bagged_students_combine_by_the_median_of_their_selections():
    """students=3: three disjoint subsamples of n_s rows, each selected as a
    lone student would be (same rows, same key), combined element-wise by the
    median; the teacher is fitted at the combined value transferred."""
    model = kc.SSANOVA(order=1)
    kx, ke, key = jax.random.split(jax.random.key(7), 3)
    x = jax.random.uniform(kx, (2000, 2))
    y = jnp.sin(5.0 * x[:, 0]) + x[:, 1] + 0.2 * jax.random.normal(ke, (2000,))
    res = kc.cascade(model, x, y, key=key, n_student=400, students=3, teacher_lambda="law")
    k_sub, k_student, _ = jax.random.split(key, 3)
    order = jax.random.permutation(k_sub, 2000)
    hypers = [model.fit(x[order[b * 400:(b + 1) * 400]], y[order[b * 400:(b + 1) * 400]],
                        key=jax.random.fold_in(jax.random.fold_in(k_student, 0), b)).hyper for b in range(3)]
    med_lambda = np.median([float(h.log_lambda) for h in hypers])
    med_theta = np.median(np.stack([np.asarray(h.log_theta) for h in hypers]), axis=0)
    np.testing.assert_allclose(float(res.stages[0].hyper.log_lambda), med_lambda, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(res.stages[0].hyper.log_theta), med_theta, rtol=1e-10, atol=1e-12)
    want = kc.transfer(res.stages[0].hyper, res.law, 400, 2000)
    np.testing.assert_allclose(float(res.hyper_teacher.log_lambda), float(want.log_lambda), rtol=1e-12)
    with pytest.raises(ValueError, match="students: expected an integer >= 1, got 0"):
        kc.cascade(model, x, y, key=key, students=0)


def test_precompile_compiles_the_teachers_program_so_that_the_fit_does_not(caplog):
    """``SSANOVA.precompile`` (what ``cascade`` runs in a thread beside its
    students) leaves the fixed-hyperparameter program compiled: the fit at
    those shapes then compiles no ``_fit_impl``. A model and row count that no
    other test compiles (n = 150, padded to 160; 11 basis points)."""
    import logging
    model = kc.SSANOVA(order=1, n_basis=11)
    x, y, _ = kc.datasets.sine_interaction(jax.random.key(3), 150)
    x, y = model.check_data(x, y)
    key = jax.random.key(4)
    hyper = kc.Hyper(jnp.asarray(-8.0, y.dtype), jnp.zeros(model.structure(x.shape[1]).k, y.dtype))
    fits = lambda: [r for r in caplog.records if "XLA compilation of jit(_fit_impl)" in r.getMessage()]  # noqa: E731
    with caplog.at_level(logging.WARNING), jax.log_compiles(True):
        model.precompile(x, y, key=key, scale_search=True)
        assert len(fits()) == 1
        fit = model.fit(x, y, key=key, hyper=hyper, scale_search=True)
        assert len(fits()) == 1
        # other options are another program: the fit without scale_search compiles
        model.fit(x, y, key=key, hyper=hyper)
        assert len(fits()) == 2
    assert np.isfinite(float(fit.score))
    # Poisson: the weighted Gaussian fit of each IRLS iteration at fixed values
    pois = kc.SSANOVA(order=1, n_basis=11, family="poisson")
    counts = jnp.round(jnp.exp(1.0 + 0.3 * y))
    with caplog.at_level(logging.WARNING), jax.log_compiles(True):
        pois.precompile(x, counts, key=key)
        assert len(fits()) == 3
        pois.fit(x, counts, key=key, hyper=kc.Hyper(jnp.asarray(-2.0, y.dtype), hyper.log_theta))
        assert len(fits()) == 3


def test_teacher_key_is_the_key_the_teacher_is_fitted_with(data):
    x, y, *_ = data
    key = jax.random.key(5)
    res = kc.cascade(MODEL, x, y, key=key, teacher_lambda="law")
    again = MODEL.for_teacher(3, x.shape[0]).fit(x, y, key=kc.teacher_key(key), hyper=res.teacher.hyper)
    np.testing.assert_array_equal(np.asarray(again.basis), np.asarray(res.teacher.basis))
    np.testing.assert_array_equal(np.asarray(again.coef_basis), np.asarray(res.teacher.coef_basis))
    with pytest.raises(ValueError, match="key"):
        kc.teacher_key(0)


def test_for_teacher_widens_only_the_rules_gaussian_basis(data):
    """The teacher gets TEACHER_BASIS times the rule's q (capped at n - m);
    students keep the rule, and an explicit n_basis or a GLM family is kept."""
    from kcascade.estimators.ssanova import TEACHER_BASIS
    x, y, *_ = data
    n, q = x.shape[0], MODEL.n_basis_for(x.shape[0])
    wide = MODEL.for_teacher(3, n)
    assert wide.n_basis == int(TEACHER_BASIS * q) > q
    assert wide.for_teacher(3, n) is wide
    assert kc.SSANOVA(order=2, n_basis=20).for_teacher(3, n).n_basis == 20
    assert kc.SSANOVA(order=2, family="poisson").for_teacher(3, n).n_basis is None
    m = MODEL.structure(3).m
    for small in (40, 60, 90):     # few rows: the teacher still fits (q_t <= n - m)
        q_s, q_t = MODEL.n_basis_for(small), MODEL.for_teacher(3, small).n_basis_for(small)
        assert q_s <= q_t <= max(q_s, small - m)
    assert kc.KDE().for_teacher(3, n) == kc.KDE()
    res = kc.cascade(MODEL, x, y, key=jax.random.key(1))
    assert res.teacher.basis.shape[0] == wide.n_basis
    assert res.stages[0].capacity == MODEL.n_basis_for(res.stages[0].n) == res.student.basis.shape[0]
