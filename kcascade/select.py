"""The selection loop shared by every estimator: a start (from a grid or a
given value), then rounds of L-BFGS on a score, kept only if it improved.

Estimators supply an *exact* score of a parameter vector and, for each round,
an objective to minimise from that round's start (the exact score itself, or
a smooth surrogate valid near the start, such as the SS-ANOVA score in a
frozen basis). The loop runs inside ``jit`` and ``vmap``.
"""
from __future__ import annotations

from typing import Callable

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
