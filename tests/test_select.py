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


def _evaluations(fun, x, direction, slope, boxed):
    calls = []

    def evaluate(p):
        jax.debug.callback(lambda: calls.append(1))
        return fun(p), ()

    x = jnp.asarray(x, jnp.float64)
    big = jnp.full_like(x, 1e3)
    p, _, _ = select._line_search(evaluate, x, fun(x), jnp.asarray(direction, jnp.float64), -big, big, (),
                                  jnp.asarray(slope), jnp.asarray(boxed))
    jax.effects_barrier()
    return len(calls), float(p[0])


def test_line_search_doubles_only_where_it_can_pay():
    # a quadratic with its minimum at t = 1: the Newton step is accepted after one evaluation
    quad = lambda p: jnp.sum((p - 1.0) ** 2)
    assert _evaluations(quad, [0.0], [1.0], 2.0, False) == (1, 1.0)
    # without the slope (or with the box cutting the step) t = 2 is tried as before
    assert _evaluations(quad, [0.0], [1.0], 2.0, True) == (2, 1.0)
    # a value decaying like e^-s (a smoothing parameter running off): doubling still goes to 16
    decay = lambda p: jnp.sum(jnp.exp(-p))
    assert _evaluations(decay, [0.0], [1.0], 1.0, False) == (5, 16.0)   # t = 1, 2, 4, 8, 16


def test_newton_under_vmap_equals_single_runs():
    starts = jnp.asarray([[-1.2, 1.0], [2.0, 2.0], [0.0, -1.0]])
    batched = jax.vmap(lambda s: select.newton(rosenbrock, s, max_steps=60, **TIGHT))(starts)
    for i in range(3):
        alone = select.newton(rosenbrock, starts[i], max_steps=60, **TIGHT)
        np.testing.assert_allclose(np.asarray(batched.x[i]), np.asarray(alone.x), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(np.asarray(batched.x[i]), [1.0, 1.0], atol=1e-5)


def test_stall_test_stops_at_the_first_window_that_gained_too_little():
    # the stall test does not change the path: the values after k steps come
    # from runs cut at k steps with the test off, and the stalled run must stop
    # at the first k whose last 3 steps together gained less than tol (0.3:
    # along the curved valley the value falls from 24.2 to 0.3 by 3-step gains
    # of 20.9 down to 0.26, then converges quadratically in 5 more steps)
    start, tol = jnp.asarray([-1.2, 1.0]), 0.3
    run = jax.jit(lambda k, st: select.newton(rosenbrock, start, max_steps=k, f_scale=1.0, stall_tol=st, **TIGHT))
    stalled = run(60, tol)
    k = int(stalled.steps)
    assert bool(stalled.stalled) and 3 <= k < int(run(60, 0.0).steps)
    values = [float(run(j, 0.0).value) if j else float(rosenbrock(start)) for j in range(k + 1)]
    gains = [values[j - 3] - values[j] for j in range(3, k + 1)]
    assert gains[-1] < tol and all(g >= tol for g in gains[:-1]), gains
    assert float(stalled.value) == pytest.approx(values[-1], rel=1e-12)
    with pytest.raises(ValueError, match="stall_steps: expected an integer >= 1, got 0"):
        select.newton(rosenbrock, start, stall_steps=0)


def test_newton_stops_on_max_steps_and_says_so():
    res = select.newton(rosenbrock, jnp.asarray([-1.2, 1.0]), max_steps=3)
    assert int(res.steps) == 3 and not bool(res.converged)
    assert float(res.value) < float(rosenbrock(jnp.asarray([-1.2, 1.0])))   # accepted steps only lower it


# -- the SS-ANOVA selection's Newton derivatives against the exact score ------

def _ssanova_pieces(order=2, n=300, seed=0, d=3):
    from kcascade.estimators import ssanova_engine as engine

    kx, ke = jax.random.split(jax.random.key(seed))
    x = jax.random.uniform(kx, (n, d))
    y = jnp.sin(6.0 * x[:, 0]) + x[:, 1] * x[:, d - 1] + 0.3 * jax.random.normal(ke, (n,))
    model = __import__("kcascade").SSANOVA(order=order)
    x, y = model.check_data(x, y)
    prob = engine.Problem(model, x, y, None, jax.random.key(1))
    full = prob.full()
    evaluate, local, derivatives = engine.newton_problem(prob, full)
    return prob, full, evaluate, local, derivatives, engine._start(prob, full)


def test_newton_derivatives_match_finite_differences_of_the_exact_score():
    """The gradient and Hessian Newton uses (a second-order expansion in the
    basis frozen at the point) against central differences of the exact score
    (a fresh diagonalisation at every point)."""
    _, _, evaluate, local, derivatives, s0 = _ssanova_pieces(d=2)     # K = 5 components
    s0 = s0 + 0.3 * jax.random.normal(jax.random.key(5), s0.shape)    # not at a minimum
    exact = jax.jit(lambda s: evaluate(s)[0])
    value = lambda s: float(exact(jnp.asarray(s)))
    g, h = jax.jit(lambda s: select._derivatives(local(evaluate(s)[1]), s))(s0)
    # The chain rule the selection uses (Gram statistics) against forward-over-
    # reverse AD of the same function: two orders of the same floating-point
    # sums, measured 3e-9 (gradient) and 9e-11 (Hessian) of the largest entry
    # here, 1e-11 for d = 3; a wrong term would show at 1e-2 or more.
    g_chain, h_chain = jax.jit(lambda s: derivatives(evaluate(s)[1], s))(s0)
    np.testing.assert_allclose(np.asarray(g_chain), np.asarray(g), rtol=0, atol=1e-7 * np.max(np.abs(np.asarray(g))))
    np.testing.assert_allclose(np.asarray(h_chain), np.asarray(h), rtol=0, atol=1e-7 * np.max(np.abs(np.asarray(h))))
    k, s = s0.shape[0], np.asarray(s0)

    def differences(eps):
        e = np.eye(k) * eps
        g = np.array([(value(s + e[i]) - value(s - e[i])) / (2 * eps) for i in range(k)])
        h = np.zeros((k, k))
        for i in range(k):
            for j in range(i, k):
                h[i, j] = h[j, i] = (value(s + e[i] + e[j]) - value(s + e[i] - e[j]) - value(s - e[i] + e[j])
                                     + value(s - e[i] - e[j])) / (4 * eps * eps)
        return g, h

    # Central differences err by O(eps^2) and by the score's round-off
    # (about 3e-12 of its value, from the fresh eigendecomposition) over eps^2;
    # at eps = 1e-3 the two met at 1e-4 of the Hessian's largest entry, too
    # close to call. Richardson's combination of eps = 2e-2 and 1e-2 cancels
    # the eps^2 term and keeps the round-off at 1e-12 / 1e-4: measured errors
    # 2e-8 (gradient) and 1e-6 (Hessian) of the largest entry, 50x and 20x
    # inside the tolerances.
    (g1, h1), (g2, h2) = differences(2e-2), differences(1e-2)
    g_fd, h_fd = (4 * g2 - g1) / 3, (4 * h2 - h1) / 3
    np.testing.assert_allclose(np.asarray(g), g_fd, atol=1e-6 * np.max(np.abs(g_fd)))
    np.testing.assert_allclose(np.asarray(h), h_fd, atol=2e-5 * np.max(np.abs(h_fd)))
    assert float(jax.jit(lambda s: local(evaluate(s)[1])(s))(s0)) == pytest.approx(value(s), rel=1e-12)


@pytest.mark.slow
def test_selection_is_no_worse_than_its_start_and_stops():
    """Newton from the gss-style start lowers the exact score and converges
    within the default step budget (d = 3, all two-way interactions)."""
    prob, _, evaluate, local, derivatives, s0 = _ssanova_pieces()
    res = jax.jit(lambda s: select.newton(evaluate, s, local=local, derivatives=derivatives, lower=s - 15.0, upper=s + 15.0,
                                          max_steps=prob.model.max_steps, f_scale="relative"))(s0)
    assert float(res.value) < float(evaluate(s0)[0])
    assert bool(res.converged) and int(res.steps) < prob.model.max_steps
