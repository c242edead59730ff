"""The estimator protocol: kc.cascade, laws.empirical and distill.targets with
every estimator, every cascade option either working or refused up front,
and kc.cascade's input checks (the same as fit's)."""
import jax
import numpy as np
import pytest

import kcascade as kc
from kcascade import distill, nets, protocol

KEY = jax.random.key(0)
SS = kc.SSANOVA(order=1)
NET = nets.NetRegressor(width=8, select_width=8, epochs=1, lr_grid=(1e-2,), wd_grid=(1e-4,))
ESTIMATORS = {"SSANOVA": SS, "KDE": kc.KDE(), "NetRegressor": NET}
# cascade option -> (kwargs, capability it needs)
OPTIONS = {
    "stages": (dict(stages=(60, 120)), "init"),
    "refine": (dict(refine=1), "refine"),
    "teacher_lambda": (dict(teacher_lambda="select"), "scale_search"),
    "teacher_groups": (dict(teacher_lambda="groups"), "group_search"),
    "teacher_reselect": (dict(teacher_lambda="reselect"), "reselect"),
    "warm_start": (dict(warm_start=True), "warm_start"),
    "mesh": (dict(mesh="MESH"), "mesh"),
    "progress": (dict(progress=True), "progress"),
}


@pytest.fixture(scope="module")
def data():
    x, y, _ = kc.datasets.sine_interaction(jax.random.key(1), 400)
    return np.asarray(x), np.asarray(y)


def _args(name, data):
    x, y = data
    return (x,) if name == "KDE" else (x, y)


def test_declared_capabilities_are_known():
    assert len(UNSUPPORTED) == 14
    for model in ESTIMATORS.values():
        assert isinstance(model, protocol.Estimator)
        assert model.capabilities <= set(protocol.CAPABILITIES)
    assert ESTIMATORS["SSANOVA"].capabilities == {"init", "refine", "scale_search", "group_search", "mesh",
                                                  "progress", "source"}
    assert ESTIMATORS["KDE"].capabilities == {"init", "progress"}
    assert ESTIMATORS["NetRegressor"].capabilities == {"warm_start", "progress"}


UNSUPPORTED = [(name, option) for name, model in ESTIMATORS.items() for option, (_, cap) in OPTIONS.items()
               if cap not in model.capabilities]   # the supported ones: test_supported_options_work


@pytest.mark.parametrize("name,option", UNSUPPORTED)
def test_unsupported_options_are_refused_before_any_work(data, name, option):
    model = ESTIMATORS[name]
    kwargs, _ = OPTIONS[option]
    kwargs = {k: (jax.make_mesh((1,), ("data",)) if v == "MESH" else v) for k, v in kwargs.items()}
    with pytest.raises(ValueError, match=rf"{name} does not support"):
        kc.cascade(model, *_args(name, data), key=KEY, n_student=120, **kwargs) if option != "stages" else \
            kc.cascade(model, *_args(name, data), key=KEY, **kwargs)


def test_supported_options_work(data, capfd):
    x, y = data
    # SS-ANOVA: multi-stage, scale search, a mesh and progress in one cascade
    # (that a mesh gives the same numbers is test_scale's; refine's effect is
    # test_cascade's: here each option is accepted and does its part)
    res = kc.cascade(SS, x, y, key=KEY, stages=(60, 120), teacher_lambda="select",
                     mesh=jax.make_mesh((1,), ("data",)), progress=True)
    jax.effects_barrier()
    assert "[kcascade] pass over the rows" in capfd.readouterr().err
    assert [s.n for s in res.stages] == [60, 120] and res.stages[-1].capacity == SS.capacity(120)
    assert res.n == 400 and res.n_student == 120
    moved = kc.transfer(res.hyper_student, SS.default_law(3), 120, 400)
    assert float(res.hyper_teacher.log_lambda) != float(moved.log_lambda)   # the teacher searched
    refined = kc.cascade(SS, x, y, key=KEY, n_student=120, refine=1)
    assert refined.timings["refine"] > 0
    with pytest.raises(ValueError, match=r"refine with mesh: SSANOVA does not support"):
        kc.cascade(SS, x, y, key=KEY, refine=1, mesh=jax.make_mesh((1,), ("data",)))
    # KDE: multi-stage, the second stage starting from the first
    kres = kc.cascade(kc.KDE(), x, key=KEY, stages=(100, 200), progress=True)
    assert [s.n for s in kres.stages] == [100, 200] and kres.stages[0].capacity is None
    # network: the teacher grown from the student
    nres = kc.cascade(NET, x, y, key=KEY, n_student=100, warm_start=True, progress=True)
    assert nres.teacher.n == 400 and nres.n_student == 100
    err = capfd.readouterr().err
    assert "[kcascade] KDE on 400 rows: fixed bandwidths: done in" in err
    assert "[kcascade] network on 400 rows: training at fixed hyperparameters: done in" in err
    # one-screen reprs (the dataclass default printed every array: ~51,000 characters)
    for r in (res, kres, nres):
        assert len(repr(r)) < 500 and repr(r).startswith("CascadeFit(n=400, students=[") and "teacher=" in repr(r)
    assert repr(kres.teacher).startswith("KDEFit(n=400, d=3, bandwidth=float64[3])")
    assert "stores its 400 training rows" in repr(kres.teacher)


def test_cascade_checks_input_like_fit(data):
    x, y = data
    for model, args in ((SS, lambda a, b: (a, b)), (kc.KDE(), lambda a, b: (a,))):
        for bad_x, bad_y in ((x, y[:-1]), (x[:, 0], y), (x, np.append(y, 0.0))):
            if isinstance(model, kc.KDE) and bad_x is x:
                continue
            with pytest.raises(ValueError) as from_fit:
                model.fit(*args(bad_x, bad_y), **({"key": KEY} if model.randomized else {}))
            with pytest.raises(ValueError) as from_cascade:
                kc.cascade(model, *args(bad_x, bad_y), key=KEY)
            assert str(from_cascade.value) == str(from_fit.value)
    with pytest.raises(ValueError, match=r"y: expected length 400 to match n = x.shape\[0\], got 401"):
        kc.cascade(SS, x, np.append(y, 0.0), key=KEY)
    with pytest.raises(ValueError, match=r"y: KDE estimates a density and takes no responses"):
        kc.cascade(kc.KDE(), x, y, key=KEY)
    with pytest.raises(ValueError, match=r"model: expected a kcascade estimator"):
        kc.cascade("ssanova", x, y, key=KEY)


def test_cascade_takes_lists_and_dataframes_as_fit_does(data):
    pd = pytest.importorskip("pandas")
    x, y = data
    ref = kc.cascade(SS, x, y, key=KEY)
    from_lists = kc.cascade(SS, x.tolist(), y.tolist(), key=KEY)
    frame = pd.DataFrame(x, columns=["a", "b", "c"])
    from_frame = kc.cascade(SS, frame, pd.Series(y), key=KEY)
    for other in (from_lists, from_frame):
        np.testing.assert_allclose(np.asarray(other.teacher.predict(x[:10])), np.asarray(ref.teacher.predict(x[:10])),
                                   rtol=1e-12, atol=1e-12)


def test_empirical_law_and_targets_for_every_estimator(data):
    x, y = data
    law = kc.laws.empirical(kc.KDE(), x, key=KEY, sizes=(50, 100, 200), reps=1)
    assert law.reference == pytest.approx(-1 / 7) and len(law.sizes) == 3
    fit = kc.KDE().fit(x)
    np.testing.assert_allclose(np.asarray(distill.targets(fit, x[:5])), np.asarray(fit.log_density(x[:5])))
    sfit = SS.fit(x, y, key=KEY)
    np.testing.assert_allclose(np.asarray(distill.targets(sfit, x[:5])), np.asarray(sfit.predict(x[:5])))
    with pytest.raises(ValueError, match="teacher: expected a kcascade fit or a callable"):
        distill.targets(3.0, x)


def test_every_printed_term_name_predicts():
    from kcascade.anova import scale_rows

    x, y, _ = kc.datasets.sine_interaction(jax.random.key(2), 300)
    fit = kc.SSANOVA(order=2).fit(x, y, key=KEY)
    xq = x[:10]
    alone = {nm: np.asarray(fit.predict(xq, terms=nm)) for nm in fit.terms}
    comps = ["x0:x1[ps]", "x0:x1[sp]", "x0:x1[ss]"]
    np.testing.assert_allclose(np.asarray(fit.predict(xq, terms=comps)), sum(alone[c] for c in comps),
                               rtol=1e-10, atol=1e-10)
    # a term is its components plus its null-space column k1(x0) k1(x1)
    s, _ = fit.design.shifted(scale_rows(fit.structure.marginals, xq, fit.domains))
    j = fit.structure.null.index(((0, 0), (1, 0)))
    np.testing.assert_allclose(np.asarray(fit.predict(xq, terms="x0:x1")) - sum(alone[c] for c in comps),
                               np.asarray(s[:, j] * fit.coef_null[j]), rtol=1e-9, atol=1e-9)
    # all terms together: the whole function less the constant
    every = np.asarray(fit.predict(xq, terms=["x0", "x1", "x2", "x0:x1", "x0:x2", "x1:x2"]))
    np.testing.assert_allclose(every + float(fit.coef_null[0]), np.asarray(fit.predict(xq)), rtol=1e-9, atol=1e-9)
    with pytest.raises(ValueError, match=r"terms: unknown term 'x0:x9'"):
        fit.predict(xq, terms="x0:x9")


def test_default_law_follows_the_marginals_decay_order():
    assert kc.SSANOVA().default_law(3).exponent == pytest.approx(-4 / 9)
    assert kc.SSANOVA(marginals=("cubic", "linear")).default_law(2).exponent == pytest.approx(-2 / 5)
    assert kc.SSANOVA(marginals=("periodic", "nominal")).default_law(2).exponent == pytest.approx(-4 / 9)
