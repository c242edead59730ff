"""The data and model shared by the multi-process test and its workers."""
import jax
import jax.numpy as jnp

import kcascade as kc


def case():
    x, y, _ = kc.datasets.sine_interaction(jax.random.key(3), 1000)
    model = kc.SSANOVA(order=2, chunk=128)
    hyper = kc.Hyper(jnp.asarray(-9.0), jnp.linspace(-1.0, 1.0, 12))
    return x, y, hyper, model, jax.random.key(4), x[:50]
