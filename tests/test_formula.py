"""Formulas: the parser's terms, kinds and errors; explicit term sets equal to
the order-based structure; a formula fit through a DataFrame."""
import jax
import numpy as np
import pytest

import kcascade as kc
from kcascade import formula
from kcascade.anova import terms


def test_parse_terms_kinds_and_domains():
    f = formula.parse("price ~ carat * depth + s(hour, periodic, 0, 24) + cut + s(age, linear)")
    assert f.response == "price" and f.columns == ("carat", "depth", "hour", "cut", "age")
    assert f.kinds == (None, None, "periodic", None, "linear")
    assert f.domains == (None, None, (0.0, 24.0), None, None)
    assert f.subsets == ((0,), (1,), (2,), (3,), (4,), (0, 1))
    # ':' is one interaction, closed under the hierarchy; '*' is every subset
    assert formula.parse("y ~ a:b:c").subsets == formula.parse("y ~ a*b*c").subsets == (
        (0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2))
    assert formula.parse("y ~ a*b:c").subsets == ((0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2))
    assert formula.parse("y ~ a + b:c").subsets == ((0,), (1,), (2,), (1, 2))


@pytest.mark.parametrize("bad,match", [
    ("price ~ carat +", "an empty term"),
    ("price ~ s(hour, periodic)", "needs its period"),
    ("price ~ s(carat, spline)", "unknown kind 'spline'"),
    ("price carat", "one '~'"),
    ("price ~ price + carat", "the response 'price' appears"),
    ("price ~ s(a, linear) + s(a, cubic)", "two different kinds"),
    ("price ~ carat + 3x", "cannot read '3x'"),
])
def test_parse_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        formula.parse(bad)


def test_explicit_terms_equal_the_order_structure():
    margs = (kc.kernels.marginal("cubic"),) * 4
    pairs = ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))
    assert terms.build(margs, 2, pairs) == terms.build(margs, 2)
    assert kc.SSANOVA(terms=pairs).structure(4) == kc.SSANOVA(order=2).structure(4)
    with pytest.raises(ValueError, match="terms: covariate index 4 given, but x has d = 4"):
        kc.SSANOVA(terms=((0, 4),)).structure(4)
    with pytest.raises(ValueError, match="terms: expected non-empty tuples"):
        kc.SSANOVA(terms=((),))


def test_formula_fit():
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    n = 400
    df = pd.DataFrame({"carat": rng.uniform(size=n), "depth": rng.uniform(size=n),
                       "hour": rng.uniform(0, 24, n), "cut": rng.choice(["A", "B", "C"], n)})
    df["price"] = (np.sin(3 * df.carat) + df.depth + np.cos(2 * np.pi * df.hour / 24) + (df.cut == "B")
                   + 0.1 * rng.standard_normal(n))
    model, x, y = kc.SSANOVA.from_formula("price ~ carat * depth + s(hour, periodic, 0, 24) + cut", df)
    assert model.marginals == ("cubic", "cubic", "periodic", "nominal") and model.terms[-1] == (0, 1)
    fit = model.fit(x, y, key=jax.random.key(0))
    assert fit.terms == ("carat", "depth", "hour", "cut", "carat:depth[ps]", "carat:depth[sp]", "carat:depth[ss]")
    resid = np.asarray(y) - np.asarray(fit.predict(df))
    assert np.mean(resid ** 2) < 0.02   # noise variance 0.01
    with pytest.raises(ValueError, match="formula names columns \\['nope'\\]"):
        kc.SSANOVA.from_formula("price ~ carat + nope", df)
    with pytest.raises(ValueError, match="order: set by the formula"):
        kc.SSANOVA.from_formula("price ~ carat", df, order=2)
