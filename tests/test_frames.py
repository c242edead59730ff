"""Data as users hold it (DataFrames with names and categories) and the
one-screen summary: checked against the same fit on coded arrays and against
sums that must hold exactly."""
import dataclasses

import jax
import numpy as np
import pytest

import kcascade as kc

pd = pytest.importorskip("pandas")

LEVELS = ["low", "mid", "high"]
# the same configuration as test_ssanova's MIXED: the compiled fit is shared
MODEL = kc.SSANOVA(order=2, marginals=("cubic", "linear", "periodic", "nominal"),
                   domains=(None, None, (0.0, 24.0), 3))


def _frame(seed=0, n=400):
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 3, size=n)
    df = pd.DataFrame({"size": rng.uniform(size=n), "slope": rng.uniform(-1, 2, size=n),
                       "hour": rng.uniform(0, 24, size=n),
                       "grade": pd.Categorical(np.array(LEVELS)[codes], categories=LEVELS)})
    f = (np.sin(2 * np.pi * df["size"]) + 0.5 * df["slope"] ** 2 + np.cos(2 * np.pi * df["hour"] / 24)
         + (codes == 1))
    x = np.column_stack([df["size"], df["slope"], df["hour"], codes.astype(float)])
    return df, x, np.asarray(f + 0.3 * rng.normal(size=n))


@pytest.fixture(scope="module")
def fitted():
    df, x, y = _frame()
    key = jax.random.key(3)
    return df, x, y, MODEL.fit(df, pd.Series(y), key=key), MODEL.fit(x, y, key=key)


def test_frame_fit_is_the_array_fit_with_names(fitted):
    df, x, y, fit, plain = fitted
    assert fit.terms == tuple(nm.replace("x0", "size").replace("x1", "slope").replace("x2", "hour")
                              .replace("x3", "grade") for nm in plain.terms)
    np.testing.assert_array_equal(np.asarray(fit.predict(df)), np.asarray(plain.predict(x)))
    # columns matched by name, in any order, extra columns ignored
    shuffled = df[["grade", "hour", "size", "slope"]].assign(extra=1.0)
    np.testing.assert_array_equal(np.asarray(fit.predict(shuffled)), np.asarray(plain.predict(x)))
    # a term by its column names is the same as by position
    np.testing.assert_array_equal(np.asarray(fit.predict(df[:20], terms="size:grade")),
                                  np.asarray(plain.predict(x[:20], terms="x0:x3")))
    np.testing.assert_array_equal(np.asarray(fit.predict(df[:20], terms=[fit.terms[-1]])),
                                  np.asarray(plain.predict(x[:20], terms=[plain.terms[-1]])))


def test_frame_errors_name_the_column(fitted):
    df, _, _, fit, _ = fitted
    with pytest.raises(ValueError, match=r"x_new: missing columns \['hour'\]"):
        fit.predict(df.drop(columns="hour"))
    bad = df[:3].assign(grade=["low", "top", "mid"])
    with pytest.raises(ValueError, match=r"x_new\['grade'\]: levels not seen in fitting: \['top'\]"):
        fit.predict(bad)
    with pytest.raises(ValueError, match="terms: unknown term 'size:nope'"):
        fit.predict(df[:3], terms="size:nope")
    with pytest.raises(ValueError, match="marginals: column 'grade' is categorical"):
        kc.SSANOVA(marginals=("cubic",) * 4).fit(df, df["size"], key=jax.random.key(0))
    with pytest.raises(ValueError, match="column name 'a:b' cannot name a term"):
        kc.SSANOVA().fit(df.rename(columns={"size": "a:b"}), df["slope"], key=jax.random.key(0))
    with pytest.raises(ValueError, match="KDE takes numeric columns only"):
        kc.KDE().fit(df)


def test_strings_and_booleans_become_nominal():
    rng = np.random.default_rng(1)
    n = 300
    df = pd.DataFrame({"u": rng.uniform(size=n), "colour": rng.choice(["red", "blue"], n), "on": rng.random(n) > 0.5})
    arr, cols = kc.frames.split(df)
    assert cols.names == ("u", "colour", "on") and cols.levels == (None, ("blue", "red"), (False, True))
    np.testing.assert_array_equal(arr[:, 1], (df["colour"] == "red").astype(float))
    np.testing.assert_array_equal(arr[:, 2], df["on"].astype(float))
    model = kc.SSANOVA(order=1).for_columns(cols)
    assert model.marginals == ("cubic", "nominal", "nominal") and model.domains == (None, 2, 2)


def test_summary_adds_up(fitted):
    df, x, y, fit, _ = fitted
    s = fit.summary(df)
    text = str(s)
    assert len(text.splitlines()) <= 4 + len(s.terms) and "grade" in text and "R^2" in text
    # the terms' shares of tr A and the constant's add up to the fit's df
    total = sum(t["df"] for t in s.terms) + s.header["df_constant"]
    assert total == pytest.approx(float(fit.df), rel=1e-6)
    # a 3-level main effect has at most 2 degrees of freedom; importance sums to 1
    grade = next(t for t in s.terms if t["term"] == "grade")
    assert 0 < grade["df"] <= 2 + 1e-6
    assert sum(t["pi"] for t in s.terms) == pytest.approx(1.0, abs=1e-9)
    # R^2 against a numpy computation from the predictions
    resid = y - np.asarray(fit.predict(df))
    assert s.header["r2"] == pytest.approx(1 - resid @ resid / np.sum((y - y.mean()) ** 2), rel=1e-8)
    assert fit.summary().rows == "basis points" and fit.summary().terms[0]["df"] is None


def test_cascade_on_a_frame(fitted):
    df, _, y, fit, _ = fitted
    # the student on all 400 rows shares the fixture's compiled selection
    res = kc.cascade(MODEL, df, y, key=jax.random.key(0), n_student=400, students=1)
    assert res.teacher.terms == fit.terms and res.student.columns == fit.columns
    assert np.all(np.isfinite(np.asarray(res.teacher.predict(df[:5]))))
    text = str(res.summary())
    assert "students on 400 rows" in text and "teacher:" in text


def test_fit_keeps_columns_through_jit(fitted):
    df, _, _, fit, _ = fitted
    again = jax.jit(lambda f: f)(fit)
    assert again.columns == fit.columns and dataclasses.replace(again, columns=None).terms[0] == "x0"


def test_save_and_load_round_trip(fitted, tmp_path):
    df, x, y, fit, plain = fitted
    for f, rows in ((fit, df), (plain, x)):
        path = f.save(tmp_path / "fit")
        again = kc.load(path)
        assert again.model == f.model and again.columns == f.columns and again.terms == f.terms
        np.testing.assert_array_equal(np.asarray(again.predict(rows, se=True)[1]), np.asarray(f.predict(rows, se=True)[1]))
        np.testing.assert_array_equal(np.asarray(again.predict(rows)), np.asarray(f.predict(rows)))
    kde = kc.KDE().fit(x[:, :3], bandwidth=[0.1, 0.2, 1.0])
    again = kc.load(kde.save(tmp_path / "kde.npz"))
    np.testing.assert_array_equal(np.asarray(again.log_density(x[:7, :3])), np.asarray(kde.log_density(x[:7, :3])))
    assert again.data.shape == x[:, :3].shape
    # a cascade (student, teacher, stages, law, timings) and a network fit
    res = kc.cascade(MODEL, df, y, key=jax.random.key(0), n_student=400, students=1)
    back = kc.load(res.save(tmp_path / "cascade"))
    assert [(s.n, s.capacity) for s in back.stages] == [(s.n, s.capacity) for s in res.stages]
    np.testing.assert_array_equal(np.asarray(back.stages[0].hyper.log_theta), np.asarray(res.stages[0].hyper.log_theta))
    assert back.law == res.law and back.timings == res.timings
    np.testing.assert_array_equal(np.asarray(back.teacher.predict(df)), np.asarray(res.teacher.predict(df)))
    from kcascade import nets
    net = nets.NetRegressor(width=8, select_width=8, epochs=1, lr_grid=(1e-2,), wd_grid=(1e-4,)).fit(
        x[:, :3], y, key=jax.random.key(0))
    net_back = kc.load(net.save(tmp_path / "net"))
    assert net_back.net == net.net and net_back.model == net.model and net_back.n == net.n
    np.testing.assert_array_equal(np.asarray(net_back.predict(x[:9, :3])), np.asarray(net.predict(x[:9, :3])))
    np.savez(tmp_path / "other.npz", a=x)
    with pytest.raises(ValueError, match="is not a kcascade fit file"):
        kc.load(tmp_path / "other.npz")
    with pytest.raises(ValueError, match="fit: expected one of"):
        kc.persist.save(object(), tmp_path / "x")
