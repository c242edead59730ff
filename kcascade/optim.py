"""A bounded L-BFGS loop (optax) that runs inside ``jit`` and ``vmap``."""
from __future__ import annotations

import jax
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
        small = optax.tree_utils.tree_norm(grad) < rel_grad * jax.numpy.abs(value)
        return (count == 0) | ((count < max_steps) & ~small & jax.numpy.isfinite(value))

    x, _ = jax.lax.while_loop(going, step, (x0, opt.init(x0)))
    return x
