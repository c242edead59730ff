"""Small flax MLPs with a width-transferable (muP) parametrization, a pure
training loop that ``vmap``s over hyperparameter candidates, function-
preserving widening (Net2WiderNet). The network regressor that plugs into
``kc.cascade`` is in ``nets.regressor``.

muP (Yang et al., Tensor Programs V, Adam column of their Table 3), relative
to a base width b at which it coincides with the standard parametrization:

    layer          init variance          Adam learning rate
    input kernel   1 / fan_in             lr
    hidden kernel  1 / fan_in             lr * b / width
    readout kernel b / fan_in^2           lr * b / width
    biases         0                      lr

so a learning rate tuned at width b keeps its meaning at any width. The
standard parametrization uses LeCun-normal kernels and ``lr`` everywhere.
Weight decay is decoupled (AdamW): each kernel shrinks by its own learning
rate x ``weight_decay`` per step; biases are not decayed.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from kcascade import checks, compilation

_ACTIVATIONS = {"relu": nn.relu, "gelu": nn.gelu, "tanh": jnp.tanh, "silu": nn.silu}
_PARAMETRIZATIONS = ("mup", "standard")


class MLP(nn.Module):
    """x (n, d_in) -> (n, out): ``depth`` hidden layers of ``width`` units.

    Layers are named ``hidden_0 .. hidden_{depth-1}`` and ``readout``.
    """

    width: int = 128
    depth: int = 2
    out: int = 1
    activation: str = "relu"
    parametrization: str = "mup"
    base_width: int = 32

    def _kernel_init(self, role):
        if self.parametrization == "standard" or role != "readout":
            return nn.initializers.lecun_normal()
        # variance base / fan_in^2: standard at width == base, O(1/width) outputs above it
        return nn.initializers.variance_scaling(float(self.base_width) / self.width, "fan_in", "normal")

    @nn.compact
    def __call__(self, x):
        act = _ACTIVATIONS[self.activation]
        for i in range(self.depth):
            x = act(nn.Dense(self.width, kernel_init=self._kernel_init("hidden"), name=f"hidden_{i}")(x))
        return nn.Dense(self.out, kernel_init=self._kernel_init("readout"), name="readout")(x)


def check_net(width, depth, out, activation, parametrization, base_width):
    for name, v, lo in (("width", width, 1), ("depth", depth, 1), ("out", out, 1), ("base_width", base_width, 1)):
        if not (isinstance(v, (int, np.integer)) and v >= lo):
            raise ValueError(f"{name}: expected an integer >= {lo}, got {v!r}")
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation: expected one of {tuple(_ACTIVATIONS)}, got {activation!r}")
    if parametrization not in _PARAMETRIZATIONS:
        raise ValueError(f"parametrization: expected one of {_PARAMETRIZATIONS}, got {parametrization!r}")


def make_mlp(width=128, depth=2, out=1, activation="relu", parametrization="mup", base_width=32) -> MLP:
    """An ``MLP`` after checking its configuration (clear errors, not flax's)."""
    check_net(width, depth, out, activation, parametrization, base_width)
    return MLP(width=width, depth=depth, out=out, activation=activation, parametrization=parametrization,
               base_width=base_width)


def init_params(net: MLP, key, d_in: int, dtype=jnp.float32):
    """The network's parameters for inputs of width ``d_in``."""
    return net.init(key, jnp.zeros((1, d_in), dtype))


def lr_multipliers(net: MLP, params):
    """A pytree like ``params`` of per-leaf learning-rate factors (all 1 in the
    standard parametrization; b / width on hidden-to-hidden and readout
    kernels under muP)."""
    ratio = 1.0 if net.parametrization == "standard" else net.base_width / net.width

    def factor(path, _):
        names = [getattr(p, "key", "") for p in path]
        if names[-1] != "kernel" or names[-2] == "hidden_0":
            return 1.0
        return ratio

    return jax.tree_util.tree_map_with_path(factor, params)


def _decay_mask(params):
    return jax.tree_util.tree_map_with_path(lambda path, _: getattr(path[-1], "key", "") == "kernel", params)


def optimizer(net: MLP, params, lr, weight_decay=0.0):
    """AdamW with the parametrization's per-layer learning rates. ``lr`` and
    ``weight_decay`` may be traced (so candidates can be ``vmap``ped)."""
    mult = lr_multipliers(net, params)
    scale_tree = optax.GradientTransformation(
        lambda _: optax.EmptyState(),
        lambda updates, state, params=None: (jax.tree.map(lambda u, m: u * m, updates, mult), state))
    return optax.chain(optax.scale_by_adam(), optax.add_decayed_weights(weight_decay, _decay_mask(params)),
                       scale_tree, optax.scale(-lr))


def _loss_fn(kind):
    if kind == "mse":
        return lambda pred, y: jnp.mean((pred[:, 0] - y) ** 2) if y.ndim == 1 else jnp.mean((pred - y) ** 2)
    if kind == "ce":
        return lambda logits, y: jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))
    raise ValueError(f"loss: expected 'mse' or 'ce', got {kind!r}")


def evaluate(net: MLP, params, x, y, loss: str = "mse"):
    """Mean loss ("mse": squared error; "ce": cross-entropy on integer labels)."""
    return _loss_fn(loss)(net.apply(params, x), y)


class Trained(NamedTuple):
    """``params`` after training; ``curve``: (steps // eval_every,) evaluation
    losses after every ``eval_every`` steps (empty when not asked for)."""

    params: Any
    curve: jax.Array


def train(net: MLP, params, x, y, *, key, lr, weight_decay=0.0, steps: int, batch: int = 128, loss: str = "mse",
          eval_data=None, eval_every: int = 0) -> Trained:
    """Minibatch AdamW for ``steps`` steps; pure, so it ``jit``s and ``vmap``s
    (over ``lr``, ``weight_decay``, ``key``, ``params``).

    Args:
      net, params: the network and its starting parameters.
      x: (n, d_in); y: (n,) targets ("mse") or integer labels ("ce").
      key: draws the minibatches (rows with replacement, ``batch`` per step).
      lr, weight_decay: scalars (traced allowed).
      eval_data: (x_eval, y_eval) scored every ``eval_every`` steps into ``curve``.
    """
    _loss_fn(loss)
    n, _ = checks.float_matrix(x, "x")
    if np.shape(y)[:1] != (n,):
        raise ValueError(f"y: expected {n} rows to match x, got shape {np.shape(y)}")
    if not (isinstance(steps, (int, np.integer)) and steps >= 1):
        raise ValueError(f"steps: expected an integer >= 1, got {steps!r}")
    eval_data = None if eval_data is None else (jnp.asarray(eval_data[0]), jnp.asarray(eval_data[1]))
    return _train_core(net, (int(steps), int(batch), loss, int(eval_every)), params, jnp.asarray(x), jnp.asarray(y),
                       key, lr, weight_decay, eval_data)


def _train_core_impl(net, cfg, params, x, y, key, lr, weight_decay, eval_data):
    steps, batch, loss, eval_every = cfg
    fn = _loss_fn(loss)

    def batch_loss(p, idx, k, t):
        del k, t
        return fn(net.apply(p, x[idx]), y[idx])

    evaluate_fn = None if eval_data is None else (lambda p: fn(net.apply(p, eval_data[0]), eval_data[1]))
    return run_steps(optimizer(net, params, lr, weight_decay), params, batch_loss, x.shape[0], key=key,
                     steps=steps, batch=batch, evaluate_fn=evaluate_fn, eval_every=eval_every)


_train_core = compilation.jit(_train_core_impl, static_argnums=(0, 1))


def run_steps(opt, params, batch_loss, n: int, *, key, steps: int, batch: int, evaluate_fn=None,
              eval_every: int = 0) -> Trained:
    """The loop under ``train`` and ``distill.train``: ``steps`` optimizer
    steps on ``batch_loss(params, idx, key, step)`` with ``idx`` (batch,) rows
    drawn with replacement from ``n``; ``evaluate_fn(params)`` every
    ``eval_every`` steps fills the curve."""
    if not (isinstance(steps, (int, np.integer)) and steps >= 1):
        raise ValueError(f"steps: expected an integer >= 1, got {steps!r}")
    b = min(batch, n)

    def step(carry, a):
        p, state = carry
        k, t = a
        k_idx, k_loss = jax.random.split(k)
        idx = jax.random.randint(k_idx, (b,), 0, n)
        grads = jax.grad(batch_loss)(p, idx, k_loss, t)
        updates, state = opt.update(grads, state, p)
        return (optax.apply_updates(p, updates), state), None

    xs = (jax.random.split(key, steps), jnp.arange(steps))
    carry = (params, opt.init(params))
    if evaluate_fn is None or eval_every <= 0:
        carry, _ = jax.lax.scan(step, carry, xs)
        return Trained(carry[0], jnp.zeros((0,)))
    chunks = steps // eval_every

    def chunk(carry, a):
        carry, _ = jax.lax.scan(step, carry, a)
        return carry, evaluate_fn(carry[0])

    xs = jax.tree.map(lambda a: a[: chunks * eval_every].reshape((chunks, eval_every) + a.shape[1:]), xs)
    carry, curve = jax.lax.scan(chunk, carry, xs)
    return Trained(carry[0], curve)


def flops_per_row(net: MLP, d_in: int) -> int:
    """Multiply-adds of one forward pass per row (x 3 for a training step)."""
    dims = [d_in] + [net.width] * net.depth + [net.out]
    return int(sum(a * b for a, b in zip(dims, dims[1:])))


# ---------------------------------------------------------------------------
# Net2WiderNet


def widen(net: MLP, params, width: int, *, key, noise: float = 0.0):
    """Function-preserving widening of every hidden layer to ``width`` units
    (Net2WiderNet, Chen, Goodfellow and Shlens 2016).

    New unit j copies old unit g(j) (g(j) = j for the old units, uniform draws
    for the new ones); each copy's outgoing weights are divided by the number
    of copies of its unit, so the output is unchanged. ``noise`` > 0 adds
    N(0, (noise * sd of the layer's incoming weights)^2) to the incoming
    weights of the new units only, to break the copies' symmetry (the output
    then moves by O(noise)).

    Returns:
      (wider MLP, its params).
    """
    if not (isinstance(width, (int, np.integer)) and width >= net.width):
        raise ValueError(f"width: expected an integer >= the current width {net.width}, got {width!r}")
    if noise < 0:
        raise ValueError(f"noise: expected >= 0, got {noise!r}")
    old = net.width
    p = params["params"]
    keys = jax.random.split(key, 2 * net.depth)
    new, g_prev, c_prev = {}, None, None
    for i in range(net.depth):
        g = jnp.concatenate([jnp.arange(old), jax.random.randint(keys[2 * i], (width - old,), 0, old)])
        count = jnp.zeros((old,), p[f"hidden_{i}"]["kernel"].dtype).at[g].add(1.0)
        kernel = p[f"hidden_{i}"]["kernel"]
        if g_prev is not None:
            kernel = kernel[g_prev] / c_prev[g_prev][:, None]
        kernel = kernel[:, g]
        if noise > 0 and width > old:
            sd = jnp.std(p[f"hidden_{i}"]["kernel"])
            eps = noise * sd * jax.random.normal(keys[2 * i + 1], (kernel.shape[0], width - old), kernel.dtype)
            kernel = kernel.at[:, old:].add(eps)
        new[f"hidden_{i}"] = {"kernel": kernel, "bias": p[f"hidden_{i}"]["bias"][g]}
        g_prev, c_prev = g, count
    new["readout"] = {"kernel": p["readout"]["kernel"][g_prev] / c_prev[g_prev][:, None], "bias": p["readout"]["bias"]}
    return net.clone(width=width), {"params": new}
