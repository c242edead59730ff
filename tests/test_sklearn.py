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
