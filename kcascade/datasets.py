"""Built-in synthetic examples with known truth."""
from __future__ import annotations

import jax
import jax.numpy as jnp


def sine_interaction_truth(x):
    """f(x) = 10 sin(pi x0 x1) + 20 (x2 - 0.5)^2 + 5 x0, for x: (n, 3)."""
    return 10.0 * jnp.sin(jnp.pi * x[:, 0] * x[:, 1]) + 20.0 * (x[:, 2] - 0.5) ** 2 + 5.0 * x[:, 0]


def sine_interaction(key, n: int, noise: float = 1.0, dtype=None):
    """The reference test problem: x ~ U[0, 1]^3, y = f(x) + N(0, noise^2).

    Returns (x (n, 3), y (n,), f (n,)) with f the noise-free truth.
    """
    kx, ke = jax.random.split(key)
    dtype = dtype or jnp.result_type(float)
    x = jax.random.uniform(kx, (n, 3), dtype)
    f = sine_interaction_truth(x)
    return x, f + noise * jax.random.normal(ke, (n,), dtype), f
