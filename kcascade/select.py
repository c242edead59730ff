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
import numpy as np
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
    """End point ``x``, its ``value``, Newton ``steps`` taken, whether the
    convergence test holds at x (``converged``) and whether the stall test
    stopped the search (``stalled``)."""

    x: jax.Array
    value: jax.Array
    steps: jax.Array
    converged: jax.Array
    stalled: jax.Array


class _State(NamedTuple):
    """The Newton loop's carry: the point, its value and aux; steps taken;
    whether to stop; the values of the last accepted points (for the stall
    test); whether the stall test fired; the last accepted step's gain;
    whether the free gradient was small at x (as of the last derivatives)."""

    x: jax.Array
    f: jax.Array
    aux: object
    steps: jax.Array
    done: jax.Array
    hist: jax.Array
    stalled: jax.Array
    gain: jax.Array
    small: jax.Array


DOUBLE_SHARE = 0.6   # the line search tries t = 2 only if t = 1 lowered the value by more than this share of the slope


def _derivatives(fun, x):
    """(gradient, Hessian) of ``fun`` at ``x``: one reverse pass, linearised
    once, and the Hessian's columns as a batch of forward passes."""
    g, hvp = jax.linearize(jax.grad(fun), x)
    h = jax.vmap(hvp)(jnp.eye(x.shape[0], dtype=x.dtype))
    return g, 0.5 * (h + h.T)


def _line_search(evaluate, x, f, direction, lo, hi, aux_like, slope, boxed):
    """The best of the multiples t = 1, then 2, 4 ... 16 while they keep lowering the
    value (after a successful t = 1), or 1/2, 1/4 ... 1/64 until one lowers it
    (after a failed one), of ``direction`` from ``x``, projected onto the box.

    ``slope`` (-g'direction, the exact first-order decrease at t = 1) and
    ``boxed`` (whether the box cuts the step) skip the doubling where it
    cannot pay: the quadratic through f(0), the slope S and f(1) puts f(2)
    below f(1) only when the decrease at t = 1 exceeds 2 S / 3; a value
    decaying like e^-s (a smoothing parameter running to its bound, the case
    doubling is for) decreases by 0.632 S at a unit step. Doubling is tried
    when the decrease at t = 1 exceeds DOUBLE_SHARE = 0.6 of S, or the box
    cut the step.
    Returns (point, value, aux); the value is no lower than f when nothing
    lowered it. One loop, so ``evaluate`` is compiled once."""
    dtype = x.dtype

    def body(c):
        t, pb, vb, ab, up, first, _ = c
        p = jnp.clip(x + t * direction, lo, hi)
        v, aux = evaluate(p)
        v = jnp.where(jnp.isfinite(v), v, jnp.inf)
        up = jnp.where(first, v < f, up)
        better = first | (v < vb)
        pick = lambda new, old: jax.tree_util.tree_map(lambda a, b: jnp.where(better, a, b), new, old)
        # t = 1 lowered f by too little of the slope for t = 2 to do better
        settled = ~boxed & (v < f) & (f - v <= DOUBLE_SHARE * slope)
        # going up: stop at the first multiple that does not improve on the
        # last; going down: stop at the first that lowers f
        stop = jnp.where(first, settled, jnp.where(up, ~better, v < f))
        stop = stop | jnp.where(up, t >= 16.0, t <= 1.0 / 64.0)
        t = jnp.where(up, 2.0 * t, 0.5 * t)
        return t, pick(p, pb), jnp.where(better, v, vb), pick(aux, ab), up, jnp.asarray(False), stop

    init = (jnp.asarray(1.0, dtype), x, jnp.asarray(jnp.inf, dtype), aux_like, jnp.asarray(False),
            jnp.asarray(True), jnp.asarray(False))
    _, pb, vb, ab, _, _, _ = jax.lax.while_loop(lambda c: ~c[-1], body, init)
    return pb, vb, ab


def newton(fun: Callable, x0, *, local: Callable | None = None, derivatives: Callable | None = None, lower=None,
           upper=None, max_steps: int = 30,
           max_move: float = 4.0, f_scale=None, f_tol: float = 1e-7, g_tol: float = 1e-5,
           stall_tol=0.0, stall_steps: int = 3, stall_scale=None) -> NewtonResult:
    """Minimise ``fun`` over a box by projected Newton steps with a line search.

    Meant for the few (<= ~50) hyperparameters of a selection: the exact
    gradient and Hessian come from JAX. Each step
      1. fixes the coordinates at a bound whose gradient pushes outward (a
         smoothing parameter run to its limit stays there instead of wandering);
      2. takes the Newton direction on the free ones with the Hessian made
         positive definite by its eigen-decomposition (|eigenvalue|, floored at
         1e-7 of the largest, as mgcv does), scaled so that no coordinate moves
         more than ``max_move``;
      3. searches along that direction, projected onto the box: the full
         step, then doubled (up to 16x) while that keeps lowering the value, or
         halved (down to 1/64) until one lowers it. Doubling lets a coordinate
         whose score decays exponentially (a smoothing parameter running to
         infinity, where a Newton step is one unit of log) reach its bound in
         a few steps. The doubling is skipped when the full step lowered the
         value by at most 0.6 of the exact slope (``_line_search``: then t = 2
         cannot do better on a quadratic): measured, the same selections on
         97 of the bed's 104 fits at n = 1000 (the others at 0.74x-1.02x the
         test MSE) and 4-10% less time per student selection.
    Stops when an accepted step changed the value by less than
    f_tol * f_scale and the free gradient's largest entry is below
    g_tol * f_scale, when the last ``stall_steps`` accepted steps together
    lowered the value by less than stall_tol * stall_scale (a stall: off by
    default), when no multiple lowers the value, or after ``max_steps``.
    Runs under jit and vmap.

    Args:
      fun: (P,) -> scalar, twice differentiable; or, with ``local``,
        (P,) -> (scalar, aux): the value and what ``local`` needs.
      x0: (P,) start; clipped into the box.
      local: None, or aux -> a smooth function of x that equals ``fun`` at the
        point aux came from (e.g. a score in a basis frozen there); its
        derivatives are used instead of ``fun``'s, and ``fun`` only decides
        the step.
      derivatives: None, or (aux, x) -> (gradient (P,), Hessian (P, P)) of
        ``local(aux)`` at x, for an estimator that computes them faster than
        forward-over-reverse differentiation of ``local`` (which this
        replaces; the values must agree).
      lower, upper: (P,) bounds or None (unbounded).
      f_scale: the value's typical size, for the tolerances: a number,
        "relative" (|fun(x0)|: for a score in the data's units, such as GCV)
        or None (1 + |fun(x0)|: for one on a log scale, such as GML).
      stall_tol, stall_steps, stall_scale: the stall test. A score with many
        nearly flat directions (e.g. 50 smoothing parameters, several of them
        drifting towards a bound) can keep falling by a little per step for
        dozens of steps; decreases far below what the estimate's accuracy
        depends on are not worth the steps. ``stall_scale`` (a number or a
        traced scalar, or a function of the start's aux) defaults to
        f_scale's scale; ``stall_tol`` may be traced too.
    Returns:
      NewtonResult: x (P,), value, steps (Newton steps taken), converged (the
      free gradient test holds at x), stalled (the stall test stopped it).
    """
    if not isinstance(stall_steps, (int, np.integer)) or stall_steps < 1:
        raise ValueError(f"stall_steps: expected an integer >= 1, got {stall_steps!r}")
    x0 = jnp.asarray(x0)
    dtype = x0.dtype
    tiny = jnp.finfo(dtype).tiny
    lo = jnp.full_like(x0, -jnp.inf) if lower is None else jnp.asarray(lower, dtype)
    hi = jnp.full_like(x0, jnp.inf) if upper is None else jnp.asarray(upper, dtype)
    x0 = jnp.clip(x0, lo, hi)
    if local is None:
        evaluate, local = (lambda x: (fun(x), x)), (lambda _: fun)
    else:
        evaluate = fun
    if derivatives is None:
        derivatives = lambda aux, x: _derivatives(local(aux), x)

    def free_mask(x, g):
        return ~(((x <= lo) & (g > 0)) | ((x >= hi) & (g < 0)))

    # Each iteration takes the derivatives at the current point, tests
    # convergence there, then steps: the derivatives and the line search's
    # evaluation appear once each in the compiled loop.
    def step(state: _State) -> _State:
        x, f, aux0, k, _, hist, stalled_before, gain, _ = state
        g, h_in = derivatives(aux0, x)
        finite = jnp.all(jnp.isfinite(g)) & jnp.all(jnp.isfinite(h_in))
        free = free_mask(x, g)
        gf = jnp.where(free, g, 0.0)
        small = jnp.max(jnp.abs(gf)) < g_tol * scale
        stop_here = (small & (gain < f_tol * scale)) | ~finite | stalled_before | (k >= max_steps)
        h = jnp.where(free[:, None] & free[None, :], h_in, jnp.eye(x.shape[0], dtype=dtype))
        h = jnp.where(finite, h, jnp.eye(x.shape[0], dtype=dtype))
        gf = jnp.where(finite, gf, 0.0)
        evals, evecs = jnp.linalg.eigh(h)
        a = jnp.abs(evals)
        a = jnp.maximum(a, 1e-7 * jnp.max(a) + tiny)
        direction = -evecs @ ((evecs.T @ gf) / a)
        direction = direction * jnp.minimum(1.0, max_move / jnp.maximum(jnp.max(jnp.abs(direction)), tiny))
        boxed = jnp.any((x + direction < lo) | (x + direction > hi))
        x_new, f_new, aux = _line_search(evaluate, x, f, direction, lo, hi, aux0, -(gf @ direction), boxed)
        ok = (f_new < f) & ~stop_here
        # hist holds the values of the last stall_steps accepted points (inf
        # before there were that many): its oldest minus f_new is what they
        # gained together. A stall stops at the next iteration, after the
        # derivatives there have said whether the gradient is small.
        hist_new = jnp.concatenate([hist[1:], f[None]])
        stalled = ok & (hist_new[0] - f_new < stall_gain)
        done = stop_here | ~ok
        keep = lambda new, old: jnp.where(ok, new, old)
        aux = jax.tree_util.tree_map(keep, aux, aux0)
        return _State(keep(x_new, x), keep(f_new, f), aux, k + (~stop_here).astype(k.dtype), done,
                      keep(hist_new, hist), stalled_before | stalled, keep(f - f_new, gain), small)

    f0, aux0 = evaluate(x0)
    if f_scale is None:
        scale = 1.0 + jnp.abs(f0)
    elif isinstance(f_scale, str) and f_scale == "relative":
        scale = jnp.abs(f0) + tiny
    else:
        scale = jnp.asarray(f_scale, dtype)
    if callable(stall_scale):
        stall_scale = stall_scale(aux0)
    stall_gain = jnp.asarray(stall_tol, dtype) * (scale if stall_scale is None else jnp.asarray(stall_scale, dtype))
    hist0 = jnp.full((stall_steps,), jnp.inf, dtype)
    init = _State(x0, f0, aux0, jnp.asarray(0), jnp.asarray(False), hist0, jnp.asarray(False),
                  jnp.asarray(jnp.inf, dtype), jnp.asarray(False))
    end = jax.lax.while_loop(lambda st: ~st.done, step, init)
    return NewtonResult(end.x, end.f, end.steps, end.small, end.stalled)
