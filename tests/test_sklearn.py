"""The scikit-learn layer: the library's own estimator checks (with the two
that fail on purpose named), Pipeline / cross_val_score / GridSearchCV, and
agreement with the JAX API it wraps."""
import jax
import numpy as np
import pytest

import kcascade as kc

sklearn = pytest.importorskip("sklearn")
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from kcascade.sklearn import SSANOVARegressor  # noqa: E402


def _data(n=200, seed=0):
    x, y, _ = kc.datasets.sine_interaction(jax.random.key(seed), n)
    return np.asarray(x), np.asarray(y)


def test_same_fit_as_the_jax_api():
    x, y = _data()
    reg = SSANOVARegressor(order=1, random_state=3).fit(x, y)
    seed = int(np.random.RandomState(3).randint(np.iinfo(np.int32).max))
    direct = kc.SSANOVA(order=1).fit(x, y, key=jax.random.key(seed))
    np.testing.assert_array_equal(reg.predict(x), np.asarray(direct.predict(x)))
    assert reg.n_features_in_ == 3 and reg.get_params()["order"] == 1
    assert reg.score(x, y) == pytest.approx(1 - np.sum((y - reg.predict(x)) ** 2) / np.sum((y - y.mean()) ** 2))


@pytest.mark.slow
def test_pipeline_cross_val_and_grid_search():
    x, y = _data()
    scores = cross_val_score(make_pipeline(StandardScaler(), SSANOVARegressor(order=1)), x, y, cv=3)
    assert scores.shape == (3,) and np.all(scores > 0.5)
    grid = GridSearchCV(SSANOVARegressor(order=1), {"alpha": [1.0, 1.4]}, cv=2).fit(x, y)
    assert grid.best_params_["alpha"] in (1.0, 1.4)
    with pytest.raises(ValueError, match="X has 2 features, but SSANOVARegressor is expecting 3"):
        grid.best_estimator_.predict(x[:, :2])


def test_frame_names_and_categories():
    pd = pytest.importorskip("pandas")
    x, y = _data()
    df = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "g": np.where(x[:, 2] > 0.5, "hi", "lo")})
    reg = SSANOVARegressor(order=1).fit(df, y)
    assert list(reg.feature_names_in_) == ["a", "b", "g"] and reg.fit_.terms == ("a", "b", "g")
    np.testing.assert_array_equal(reg.predict(df[["g", "b", "a"]]), reg.predict(df))


@pytest.mark.slow
def test_estimator_checks():
    from sklearn.utils.estimator_checks import check_estimator
    jax.config.update("jax_enable_x64", True)
    check_estimator(SSANOVARegressor(order=1), expected_failed_checks=SSANOVARegressor.EXPECTED_FAILED_CHECKS)


def _binary(n=300, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(n, 2))
    p = 1.0 / (1.0 + np.exp(-(2.0 * np.sin(2.0 * np.pi * x[:, 0]) + 2.0 * x[:, 1] - 1.0)))
    return x, (rng.uniform(size=n) < p).astype(float)


def _seed(random_state):
    return int(np.random.RandomState(random_state).randint(np.iinfo(np.int32).max))


def test_classifier_same_fit_as_the_jax_api():
    from kcascade.sklearn import SSANOVAClassifier
    x, y01 = _binary()
    labels = np.where(y01 > 0, "yes", "no")
    clf = SSANOVAClassifier(order=1, random_state=3).fit(x, labels)
    direct = kc.SSANOVA(order=1, family="binomial").fit(x, y01, key=jax.random.key(_seed(3)))
    eta = np.asarray(direct.evaluate(x))
    assert list(clf.classes_) == ["no", "yes"]
    np.testing.assert_array_equal(clf.decision_function(x), eta)
    proba = clf.predict_proba(x)
    np.testing.assert_allclose(proba[:, 1], 1.0 / (1.0 + np.exp(-eta)), rtol=1e-12)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(clf.predict(x), np.where(eta > 0, "yes", "no"))
    assert clf.score(x, labels) == pytest.approx(np.mean((eta > 0) == (y01 > 0)))
    # a row of weight k counts as k copies; weight 0 leaves it out
    w = np.ones(len(y01)); w[:10] = 0.0
    weighted = SSANOVAClassifier(order=1, random_state=3).fit(x, labels, sample_weight=w)
    subset = kc.SSANOVA(order=1, family="binomial").fit(x[10:], y01[10:], key=jax.random.key(_seed(3)))
    np.testing.assert_array_equal(weighted.decision_function(x), np.asarray(subset.evaluate(x)))


def test_classifier_and_poisson_errors():
    from kcascade.sklearn import SSANOVAClassifier
    x, y01 = _binary(60)
    cases = [
        (r"Only binary classification is supported", lambda: SSANOVAClassifier(order=1).fit(x, np.arange(60) % 3)),
        (r"Unknown label type", lambda: SSANOVAClassifier(order=1).fit(x, y01 + 0.5 * x[:, 0])),
        (r"y: expected samples of two classes, got one class", lambda: SSANOVAClassifier(order=1).fit(x, 0 * y01)),
        (r"sample_weight: expected whole numbers", lambda: SSANOVAClassifier(order=1).fit(
            x, y01, sample_weight=np.full(60, 0.5))),
        (r"sample_weight: expected some positive weights", lambda: SSANOVAClassifier(order=1).fit(
            x, y01, sample_weight=np.zeros(60))),
        (r"family: expected 'gaussian' or 'poisson'", lambda: SSANOVARegressor(family="binomial").fit(x, y01)),
        (r"y: expected whole-number counts", lambda: SSANOVARegressor(order=1, family="poisson").fit(x, y01 + 0.5)),
    ]
    for pattern, call in cases:
        with pytest.raises(ValueError, match=pattern):
            call()


def test_poisson_regressor_predicts_the_mean_and_scores_d2():
    rng = np.random.default_rng(1)
    x = rng.uniform(size=(300, 2))
    y = rng.poisson(np.exp(1.0 + np.sin(2.0 * np.pi * x[:, 0]) + 0.5 * x[:, 1])).astype(float)
    reg = SSANOVARegressor(order=1, family="poisson", random_state=2).fit(x, y)
    direct = kc.SSANOVA(order=1, family="poisson").fit(x, y, key=jax.random.key(_seed(2)))
    mu = np.exp(np.asarray(direct.evaluate(x)))
    np.testing.assert_allclose(reg.predict(x), mu, rtol=1e-12)
    # D^2: 1 - Poisson deviance / the deviance of the mean, by hand
    def dev(mean):
        return 2.0 * np.sum(np.where(y > 0, y * np.log(np.where(y > 0, y, 1.0) / mean), 0.0) - (y - mean))
    assert reg.score(x, y) == pytest.approx(1.0 - dev(mu) / dev(np.full_like(y, y.mean())), rel=1e-10)


@pytest.mark.slow
def test_classifier_estimator_checks_and_cascade():
    from sklearn.utils.estimator_checks import check_estimator

    from kcascade.sklearn import SSANOVAClassifier
    jax.config.update("jax_enable_x64", True)
    # blobs that two classes separate perfectly: the fit warns and stays finite
    check_estimator(SSANOVAClassifier(order=1), expected_failed_checks=SSANOVAClassifier.EXPECTED_FAILED_CHECKS)
    # the cascade behind the classifier: measured training accuracy 0.779
    # against the Bayes rule's 0.778 on these rows, eta's MSE against the
    # truth 0.0019 (full selection 0.0078; eta's variance over the rows ~2.5)
    x, y01 = _binary(2000)
    eta = 2.0 * np.sin(2.0 * np.pi * x[:, 0]) + 2.0 * x[:, 1] - 1.0
    clf = SSANOVAClassifier(order=2, cascade=True).fit(x, y01)
    assert clf.cascade_ is not None and clf.cascade_.teacher.n == 2000
    assert clf.score(x, y01) >= np.mean((eta > 0) == (y01 > 0)) - 0.02
    assert np.mean((clf.decision_function(x) - eta) ** 2) < 0.02
