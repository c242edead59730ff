"""The projected trust-region Newton minimiser against scipy on functions with
known minima: curved valleys, active bounds, a direction running to its bound."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import optimize

from kcascade import select


def rosenbrock(x):
    return (1.0 - x[0]) ** 2 + 100.0 * (x[1] - x[0] ** 2) ** 2


def quadratic(x):
    return (x[0] - 3.0) ** 2 + (x[1] + 1.0) ** 2 + 0.5 * x[0] * x[1] + 0.1 * x[2] ** 2


def runaway(x):   # x0 -> -inf lowers the value forever: it must stop at its bound
    return jnp.exp(x[0]) + (x[1] - 2.0) ** 2 + 0.3 * (x[1] - 2.0) * jnp.exp(x[0])


# tolerances tight enough to compare points with scipy's (the defaults stop
# where the value changes by 1e-7 of its size: enough for a selection score)
TIGHT = dict(f_tol=1e-14, g_tol=1e-9)

CASES = {
    "rosenbrock": (rosenbrock, [-1.2, 1.0], None, None),
    "quadratic, bound active": (quadratic, [0.0, 0.0, 1.0], None, [1.0, 5.0, 5.0]),
    "runaway to the bound": (runaway, [0.0, 0.0], [-20.0, -10.0], [10.0, 10.0]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_newton_matches_scipy(name):
    fun, x0, lo, hi = CASES[name]
    res = jax.jit(lambda s: select.newton(fun, s, lower=lo, upper=hi, max_steps=60, **TIGHT))(jnp.asarray(x0))
    bounds = None if lo is None and hi is None else list(zip(lo or [None] * len(x0), hi or [None] * len(x0)))
    ref = optimize.minimize(lambda v: float(fun(jnp.asarray(v))), np.asarray(x0), method="L-BFGS-B",
                            jac=lambda v: np.asarray(jax.grad(fun)(jnp.asarray(v))), bounds=bounds,
                            options=dict(ftol=1e-15, gtol=1e-12, maxiter=10_000))
    assert bool(res.converged) and int(res.steps) < 60
    if name == "runaway to the bound":
        # it stops where moving on gains less than the tolerances (g_tol 1e-6
        # relative): the value is within 1e-7 of the bound's, x0 is "off"
        assert float(res.value) <= ref.fun + 1e-7 and float(res.x[0]) < -15.0
        np.testing.assert_allclose(float(res.x[1]), ref.x[1], atol=1e-6)
        return
    # the same minimum value; the points agree to 1e-5 (scipy's own accuracy
    # on the Rosenbrock valley is the loosest of the two)
    assert float(res.value) <= ref.fun + 1e-10
    np.testing.assert_allclose(np.asarray(res.x), ref.x, atol=1e-5)


def test_newton_under_vmap_equals_single_runs():
    starts = jnp.asarray([[-1.2, 1.0], [2.0, 2.0], [0.0, -1.0]])
    batched = jax.vmap(lambda s: select.newton(rosenbrock, s, max_steps=60, **TIGHT))(starts)
    for i in range(3):
        alone = select.newton(rosenbrock, starts[i], max_steps=60, **TIGHT)
        np.testing.assert_allclose(np.asarray(batched.x[i]), np.asarray(alone.x), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(np.asarray(batched.x[i]), [1.0, 1.0], atol=1e-5)


def test_newton_stops_on_max_steps_and_says_so():
    res = select.newton(rosenbrock, jnp.asarray([-1.2, 1.0]), max_steps=3)
    assert int(res.steps) == 3 and not bool(res.converged)
    assert float(res.value) < float(rosenbrock(jnp.asarray([-1.2, 1.0])))   # accepted steps only lower it
