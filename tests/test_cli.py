"""``python -m kcascade fit data.csv``: the summary, the predictions file
(checked against the fit made through the API) and the effects plot."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import kcascade as kc
from kcascade import cli

pd = pytest.importorskip("pandas")


@pytest.mark.slow   # ~20 s, mostly compiling the fit and the plot's predictions
def test_fit_a_csv(tmp_path, capsys):
    x, y, _ = kc.datasets.sine_interaction(jax.random.key(2), 300)
    xf = np.asarray(x)
    frame = pd.DataFrame({"a": xf[:, 0], "b": xf[:, 1], "kind": np.where(xf[:, 2] > 0.5, "p", "q"),
                          "target": np.asarray(y)})
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    cli.main(["fit", str(path), "--y", "target", "--order", "1", "--out", str(tmp_path / "run")])
    out = capsys.readouterr()
    assert "SS-ANOVA fit: n = 300" in out.out and "kind" in out.out and "[kcascade] wrote" in out.err
    pred = pd.read_csv(tmp_path / "run_predictions.csv")
    direct = kc.SSANOVA(order=1).fit(pd.read_csv(path)[["a", "b", "kind"]], frame["target"], key=jax.random.key(0))
    np.testing.assert_allclose(pred["fitted"], np.asarray(direct.predict(frame[["a", "b", "kind"]])), rtol=1e-9)
    assert (tmp_path / "run_effects.png").stat().st_size > 10_000
    with pytest.raises(SystemExit):
        cli.main(["fit", str(path), "--y", "nope"])
    cli.main(["fit", str(path), "--formula", "target ~ a * b + kind", "--out", str(tmp_path / "f")])
    assert "a:b" in capsys.readouterr().out and (tmp_path / "f_predictions.csv").exists()


@pytest.mark.slow
def test_effects_and_cascade_plots_are_labelled():
    import matplotlib
    matplotlib.use("Agg")
    x, y, _ = kc.datasets.sine_interaction(jax.random.key(2), 400)
    res = kc.cascade(kc.SSANOVA(order=2), x, y, key=jax.random.key(0), students=1)
    fig = kc.plot.effects(res.teacher, truth={"x2": lambda g: 20 * (g - 0.5) ** 2 - 20 / 12})
    axes = [a for a in fig.axes if a.get_visible() and a.get_title()]
    assert [a.get_title() for a in axes] == ["x0", "x1", "x2", "x0:x1", "x0:x2", "x1:x2"]
    assert all(a.get_xlabel() and a.get_ylabel() for a in axes)
    assert "units of y" in axes[0].get_ylabel() and len(axes[0].collections) >= 1   # the band
    assert any(line.get_label() == "truth" for line in axes[2].get_lines())
    with pytest.raises(ValueError, match="terms: unknown terms"):
        kc.plot.effects(res.teacher, terms="x9")
    fig2 = kc.plot.cascade(res)
    assert fig2.axes[1].get_ylabel() == "seconds"


def test_a_phase_is_never_silent_for_longer_than_a_tick(capsys, monkeypatch):
    import time

    from kcascade import progress
    monkeypatch.setattr(progress, "TICK", 0.05)
    with progress.phase("work"):
        time.sleep(0.23)
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "[kcascade] work ..." and err[-1].startswith("[kcascade] work: done in ")
    assert sum("still running" in line for line in err) >= 3
    with progress.phase("quiet", on=False):
        time.sleep(0.06)
    assert capsys.readouterr().err == ""


@pytest.mark.slow   # ~25 s: a Poisson fit's programs and the plot's predictions
def test_fit_a_csv_of_counts_with_an_offset(tmp_path, capsys):
    k1, k2, k3 = jax.random.split(jax.random.key(5), 3)
    x = np.asarray(jax.random.uniform(k1, (300, 2)))
    log_t = np.log(np.asarray(jax.random.uniform(k2, (300,), minval=0.5, maxval=2.0)))
    y = np.asarray(jax.random.poisson(k3, np.exp(1.0 + np.sin(2 * np.pi * x[:, 0]) + log_t))).astype(float)
    frame = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "log_t": log_t, "count": y})
    path = tmp_path / "counts.csv"
    frame.to_csv(path, index=False)
    cli.main(["fit", str(path), "--y", "count", "--family", "poisson", "--offset", "log_t", "--order", "1",
              "--out", str(tmp_path / "p")])
    out = capsys.readouterr()
    assert "poisson" in out.out and "log_t" not in out.out    # the offset column is not a covariate
    pred = pd.read_csv(tmp_path / "p_predictions.csv")
    direct = kc.SSANOVA(order=1, family="poisson").fit(frame[["a", "b"]], y, key=jax.random.key(0), offset=log_t)
    eta = np.asarray(direct.predict(frame[["a", "b"]], offset=log_t))
    np.testing.assert_allclose(pred["eta"], eta, rtol=1e-9)
    np.testing.assert_allclose(pred["fitted"], np.exp(eta), rtol=1e-9)
    assert list(pred.columns) == ["count", "fitted", "eta", "se_eta"] and (pred["se_eta"] > 0).all()
    assert (tmp_path / "p_effects.png").stat().st_size > 10_000
    for bad, word in ((["--family", "gaussian", "--offset", "log_t"], "--offset"),
                      (["--family", "poisson", "--weights", "nope"], "--weights"),
                      (["--family", "poisson", "--offset", "log_t", "--cascade"], "--offset")):
        with pytest.raises(SystemExit):
            cli.main(["fit", str(path), "--y", "count", *bad])
        assert word in capsys.readouterr().err
    frame.assign(count=-frame["count"]).to_csv(path, index=False)
    with pytest.raises(SystemExit):
        cli.main(["fit", str(path), "--y", "count", "--family", "poisson"])
    assert "y: expected non-negative values for family='poisson'" in capsys.readouterr().err


@pytest.mark.slow
def test_effects_of_a_poisson_fit_are_on_the_log_scale():
    import matplotlib
    matplotlib.use("Agg")
    k1, k2 = jax.random.split(jax.random.key(6))
    x = jax.random.uniform(k1, (300, 2))
    y = jax.random.poisson(k2, jnp.exp(0.5 + jnp.sin(2 * jnp.pi * x[:, 0]))).astype(x.dtype)
    fit = kc.SSANOVA(order=2, family="poisson").fit(x, y, key=jax.random.key(0))
    fig = kc.plot.effects(fit)
    axes = [a for a in fig.axes if a.get_visible() and a.get_title()]
    assert [a.get_title() for a in axes] == ["x0", "x1", "x0:x1"]
    assert axes[0].get_ylabel() == "effect of x0 (log mu)"
    line = next(ln for ln in axes[0].get_lines() if ln.get_label() == "fit")
    # the curve is the link-scale effect: the working Gaussian fit's term at the grid
    # (x1 at the middle of its domain; a main effect does not depend on it)
    g = line.get_xdata()
    dom = np.asarray(fit.inner.domains)
    rows = np.column_stack([g, np.full_like(g, dom[1].mean())])
    np.testing.assert_allclose(line.get_ydata(), np.asarray(fit.inner.predict(rows, terms="x0")), rtol=1e-10)
    with pytest.raises(ValueError, match="fit: effects draws SS-ANOVA fits"):
        kc.plot.effects(kc.KDE())
