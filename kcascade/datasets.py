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


def additive_interaction_truth(x):
    """f(x) = sin(3 x0) + x1 x2 + 0.5 cos(4 x3) + 0.3 x4^2 (columns past 4 are noise inputs)."""
    return (jnp.sin(3.0 * x[:, 0]) + x[:, 1] * x[:, 2] + 0.5 * jnp.cos(4.0 * x[:, 3])
            + 0.3 * x[:, 4] ** 2)


def additive_interaction(key, n: int, d: int = 6, noise: float = 0.3, dtype=None):
    """A regression problem for networks: x ~ U[-1, 1]^d (d >= 5),
    y = f(x) + N(0, noise^2). Returns (x (n, d), y (n,), f (n,))."""
    if d < 5:
        raise ValueError(f"d: expected >= 5 (the truth uses 5 inputs), got {d!r}")
    kx, ke = jax.random.split(key)
    dtype = dtype or jnp.result_type(float)
    x = jax.random.uniform(kx, (n, d), dtype, minval=-1.0, maxval=1.0)
    f = additive_interaction_truth(x)
    return x, f + noise * jax.random.normal(ke, (n,), dtype), f
