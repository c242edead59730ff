"""The selection loop shared by every estimator: a start (from a grid or a
given value), then rounds of L-BFGS on a score, kept only if it improved.

Estimators supply an *exact* score of a parameter vector and, for each round,
an objective to minimise from that round's start (the exact score itself, or
a smooth surrogate valid near the start, such as the SS-ANOVA score in a
frozen basis). The loop runs inside ``jit`` and ``vmap``.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax


def lbfgs(fun, x0, max_steps: int, rel_grad: float = 1e-9):
    """Minimise ``fun`` from ``x0`` with at most ``max_steps`` L-BFGS steps;
    stops early when |gradient| < rel_grad |value| or the value is not finite."""
    opt = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(fun)

    def step(carry):
        x, state = carry
        value, grad = value_and_grad(x, state=state)
        updates, state = opt.update(grad, state, x, value=value, grad=grad, value_fn=fun)
        return optax.apply_updates(x, updates), state

    def going(carry):
        _, state = carry
        count = optax.tree_utils.tree_get(state, "count")
        grad = optax.tree_utils.tree_get(state, "grad")
        value = optax.tree_utils.tree_get(state, "value")
        small = optax.tree_utils.tree_norm(grad) < rel_grad * jnp.abs(value)
        return (count == 0) | ((count < max_steps) & ~small & jnp.isfinite(value))

    x, _ = jax.lax.while_loop(going, step, (x0, opt.init(x0)))
    return x


def grid_best(scores, grid):
    """The grid point (a row of ``grid``) with the smallest finite score."""
    return grid[jnp.argmin(jnp.where(jnp.isfinite(scores), scores, jnp.inf))]


def minimize(exact: Callable, objective_at: Callable, start, *, rounds: int, max_steps: int,
             rel_grad: float = 1e-9):
    """Rounds of L-BFGS from ``start``; returns the end point where its exact
    score is finite and no larger than the start's, else ``start``.

    Args:
      exact: parameter vector -> the score being minimised.
      objective_at: round start p -> the function to minimise in that round.
      start: (P,) starting parameter vector.
      rounds, max_steps: rounds, and L-BFGS steps per round.
      rel_grad: stop a round when |gradient| < rel_grad |value|.
    """
    def one_round(_, p):
        return lbfgs(objective_at(p), p, max_steps, rel_grad)

    end = jax.lax.fori_loop(0, rounds, one_round, start) if rounds > 1 else one_round(0, start)
    s_end = exact(end)
    return jnp.where(jnp.isfinite(s_end) & (s_end <= exact(start)), end, start)


class NewtonResult(NamedTuple):
    """End point, its value, steps taken, and whether the convergence test fired."""

    x: jax.Array
    value: jax.Array
    steps: jax.Array
    converged: jax.Array


def newton(fun: Callable, x0, *, lower=None, upper=None, max_steps: int = 30, radius: float = 2.0,
           max_radius: float = 8.0, f_tol: float = 1e-8, g_tol: float = 1e-6) -> NewtonResult:
    """Minimise ``fun`` over a box by projected Newton steps in a trust region.

    Meant for the few (<= ~40) hyperparameters of a selection: the exact
    gradient and Hessian come from JAX. Each step
      1. fixes the coordinates at a bound whose gradient pushes outward (a
         smoothing parameter run to its limit stays there instead of wandering);
      2. takes the Newton step on the free ones with the Hessian made positive
         definite by its eigen-decomposition (|eigenvalue|, floored at 1e-7 of
         the largest, as mgcv does), shortened to the trust radius;
      3. projects onto the box and accepts the point only if the value drops;
         the radius doubles after a step that gains at least 3/4 of what the
         quadratic model promised (up to ``max_radius``) and is quartered after
         a rejected one.
    Stops when the value changed by less than f_tol (1 + |f|) on an accepted
    step and the free gradient's largest entry is below g_tol (1 + |f|), or
    after ``max_steps`` (counting rejected steps). Runs under jit and vmap.

    Args:
      fun: (P,) -> scalar, twice differentiable.
      x0: (P,) start, inside the box.
      lower, upper: (P,) bounds or None (unbounded).
    """
    x0 = jnp.asarray(x0)
    dtype = x0.dtype
    lo = jnp.full_like(x0, -jnp.inf) if lower is None else jnp.asarray(lower, dtype)
    hi = jnp.full_like(x0, jnp.inf) if upper is None else jnp.asarray(upper, dtype)
    x0 = jnp.clip(x0, lo, hi)
    value_grad = jax.value_and_grad(fun)
    hess = jax.hessian(fun)

    def free_mask(x, g):
        at_lo = (x <= lo) & (g > 0)
        at_hi = (x >= hi) & (g < 0)
        return ~(at_lo | at_hi)

    def step(state):
        x, f, g, r, k, _ = state
        free = free_mask(x, g)
        h = hess(x)
        mask2 = free[:, None] & free[None, :]
        h = jnp.where(mask2, h, jnp.eye(x.shape[0], dtype=dtype))
        gf = jnp.where(free, g, 0.0)
        evals, evecs = jnp.linalg.eigh(h)
        a = jnp.abs(evals)
        a = jnp.maximum(a, 1e-7 * jnp.max(a) + jnp.finfo(dtype).tiny)
        s = -evecs @ ((evecs.T @ gf) / a)
        norm = jnp.linalg.norm(s)
        s = s * jnp.minimum(1.0, r / jnp.maximum(norm, jnp.finfo(dtype).tiny))
        x_new = jnp.clip(x + s, lo, hi)
        s = x_new - x
        predicted = gf @ s + 0.5 * s @ (h @ s)     # < 0 for a descent step
        f_new, g_new = value_grad(x_new)
        ok = jnp.isfinite(f_new) & (f_new < f)
        gain = (f - f_new) / jnp.maximum(-predicted, jnp.finfo(dtype).tiny)
        r_new = jnp.where(ok, jnp.where(gain > 0.75, jnp.minimum(2.0 * r, max_radius), r), 0.25 * r)
        scale = 1.0 + jnp.abs(f_new)
        g_free = jnp.where(free_mask(x_new, g_new), g_new, 0.0)
        done = ok & (f - f_new < f_tol * scale) & (jnp.max(jnp.abs(g_free)) < g_tol * scale)
        # a radius shrunk to nothing cannot move the point any more
        done = done | (r_new < 1e-10)
        return (jnp.where(ok, x_new, x), jnp.where(ok, f_new, f), jnp.where(ok, g_new, g), r_new, k + 1, done)

    def going(state):
        *_, k, done = state
        return (k < max_steps) & ~done

    f0, g0 = value_grad(x0)
    init = (x0, f0, g0, jnp.asarray(radius, dtype), jnp.asarray(0), jnp.asarray(False))
    x, f, g, _, k, done = jax.lax.while_loop(going, step, init)
    scale = 1.0 + jnp.abs(f)
    converged = done | (jnp.max(jnp.abs(jnp.where(free_mask(x, g), g, 0.0))) < g_tol * scale)
    return NewtonResult(x, f, k, converged)
