"""A network regressor for the cascade: (learning rate, weight decay) chosen
on a validation split by training every grid candidate at once; the teacher
can grow from the student's weights."""
from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from kcascade import checks, compilation, progress as progress_lines, protocol, scaling
from kcascade.nets.mlp import MLP, check_net, evaluate, init_params, make_mlp, train, widen


class NetHyper(NamedTuple):
    """Natural logs of the learning rate (at the base width) and of the weight decay."""

    log_lr: jax.Array
    log_weight_decay: jax.Array

    def transferred(self, delta_log):
        """The weight decay multiplied by exp(delta_log); the learning rate is
        copied (muP carries it across widths)."""
        return NetHyper(self.log_lr, self.log_weight_decay + delta_log)


_LR_GRID = tuple(np.geomspace(1e-3, 3e-1, 7))
_WD_GRID = tuple(np.geomspace(1e-4, 1e-1, 7))


@dataclasses.dataclass(frozen=True)
class NetRegressor(protocol.Estimator):
    """An MLP regressor whose (learning rate, weight decay) are chosen on a
    validation split by training every grid candidate at once (``vmap``).

    Args:
      width, depth, activation, parametrization, base_width: the network.
      select_width: width at which candidates are trained during selection
        (None: ``width``). Under muP a narrow student's learning rate holds at
        the full width.
      epochs: passes over the training rows (steps = ceil(epochs n / batch)),
        so training cost grows with n.
      batch: rows per step.
      lr_grid, wd_grid: candidate values (their product is searched).
      val_fraction: share of rows held out for selection.
      grow_noise: ``widen`` noise when the teacher starts from a narrower fit.
    """

    width: int = 256
    depth: int = 2
    activation: str = "relu"
    parametrization: str = "mup"
    base_width: int = 32
    select_width: int | None = None
    epochs: float = 40.0
    batch: int = 128
    lr_grid: tuple = _LR_GRID
    wd_grid: tuple = _WD_GRID
    val_fraction: float = 0.2
    grow_noise: float = 0.01

    supervised: ClassVar[bool] = True
    randomized: ClassVar[bool] = True
    capabilities: ClassVar[frozenset] = frozenset({"warm_start", "progress"})

    def __post_init__(self):
        check_net(self.width, self.depth, 1, self.activation, self.parametrization, self.base_width)
        if self.select_width is not None and not (isinstance(self.select_width, (int, np.integer))
                                                  and 1 <= self.select_width):
            raise ValueError(f"select_width: expected None or an integer >= 1, got {self.select_width!r}")
        if not self.epochs > 0:
            raise ValueError(f"epochs: expected > 0, got {self.epochs!r}")
        if not (isinstance(self.batch, (int, np.integer)) and self.batch >= 1):
            raise ValueError(f"batch: expected an integer >= 1, got {self.batch!r}")
        for name, grid in (("lr_grid", self.lr_grid), ("wd_grid", self.wd_grid)):
            if len(grid) == 0 or not all(math.isfinite(v) and v > 0 for v in grid):
                raise ValueError(f"{name}: expected a non-empty tuple of positive numbers, got {grid!r}")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction: expected in (0, 1), got {self.val_fraction!r}")

    def net(self, width=None) -> MLP:
        return make_mlp(width or self.width, self.depth, 1, self.activation, self.parametrization, self.base_width)

    def steps(self, n: int) -> int:
        return max(1, math.ceil(self.epochs * n / self.batch))

    def default_law(self, d: int) -> scaling.Law:
        """No theory fixes the weight decay's scaling with n for networks: the
        default copies it (exponent 0). Estimate one with ``laws.empirical``."""
        return scaling.Law(0.0, "copy (estimate with laws.empirical)")

    def scale_of(self, hyper: NetHyper):
        """The scale parameter a law acts on: log weight decay."""
        return hyper.log_weight_decay

    def min_rows(self, d: int) -> int:
        return 10

    def check_data(self, x, y=None):
        """``fit``'s checks; returns (x, y) as float arrays."""
        x, y = checks.as_array(x), checks.as_array(y)
        n, d = checks.float_matrix(x, "x")
        checks.float_vector(y, "y", n, "n = x.shape[0]")
        if n < self.min_rows(d):
            raise ValueError(f"x: expected at least {self.min_rows(d)} rows, got n = {n}")
        checks.finite(x, "x")
        checks.finite(y, "y")
        dtype = jnp.result_type(float)
        return jnp.asarray(x, dtype), jnp.asarray(y, dtype)

    def fit(self, x, y, *, key, hyper: NetHyper | None = None, start: "NetFit | None" = None,
            progress: bool = False) -> "NetFit":
        """Train (selecting the hyperparameters first unless ``hyper`` is given).

        Args:
          x: (n, d) covariates; y: (n,) responses; key: a ``jax.random`` key.
          hyper: fixed (log lr, log weight decay): no selection, all rows train.
          start: a fitted ``NetFit`` (e.g. the cascade's student), widened to
            ``width`` by ``widen`` and trained further instead of a fresh init
            (a tuple of fits, bagged students: the first).
          progress: print progress lines on stderr (start, every 5 s, done).
        Returns:
          A ``NetFit``; after selection ``grid_loss`` holds the validation loss of
          every (lr, weight decay) candidate, shape (len(lr_grid), len(wd_grid)).
        """
        checks.random_key(key)
        x, y = self.check_data(x, y)
        what = "training at fixed hyperparameters" if hyper is not None else \
            f"selection over {len(self.lr_grid) * len(self.wd_grid)} (lr, weight decay) candidates"
        with progress_lines.phase(f"network on {x.shape[0]} rows: {what}", on=bool(progress)):
            out = self._fit(x, y, key, hyper, start)
            return jax.block_until_ready(out) if progress else out

    def _fit(self, x, y, key, hyper, start):
        n, d = x.shape
        dtype = x.dtype
        mu, sd = jnp.mean(x, 0), jnp.std(x, 0)
        sd = jnp.where(sd > 0, sd, 1.0)
        xs = (x - mu) / sd
        k_init, k_split, k_train = jax.random.split(key, 3)
        if hyper is not None:
            width = self.width
            net = self.net(width)
            start = protocol.first_start(start)
            if start is not None:
                if not isinstance(start, NetFit):
                    raise ValueError(f"start: expected a NetFit, got {type(start).__name__}")
                net0, params = start.net, start.params
                if net0.width > width:
                    raise ValueError(f"start: expected width <= {width}, got {net0.width}")
                xs = (x - start.x_mean) / start.x_sd
                mu, sd = start.x_mean, start.x_sd
                net, params = widen(net0, params, width, key=k_init, noise=self.grow_noise)
            else:
                params = init_params(net, k_init, d, dtype)
            lr, wd = jnp.exp(hyper.log_lr), jnp.exp(hyper.log_weight_decay)
            params = train(net, params, xs, y, key=k_train, lr=lr, weight_decay=wd, steps=self.steps(n),
                           batch=self.batch).params
            return NetFit(self, net, params, NetHyper(jnp.log(lr), jnp.log(wd)), mu, sd, None, n)
        width = self.select_width or self.width
        net = self.net(width)
        n_val = max(1, int(round(self.val_fraction * n)))
        order = jax.random.permutation(k_split, n)
        tr, va = order[n_val:], order[:n_val]
        params0 = init_params(net, k_init, d, dtype)
        lrs, wds = np.meshgrid(np.asarray(self.lr_grid), np.asarray(self.wd_grid), indexing="ij")
        grid_loss, params = _select_jit(net, params0, xs[tr], y[tr], xs[va], y[va], k_train,
                                        jnp.asarray(lrs.ravel(), dtype), jnp.asarray(wds.ravel(), dtype),
                                        self.steps(n - n_val), self.batch)
        grid_loss = jnp.where(jnp.isfinite(grid_loss), grid_loss, jnp.inf)
        best = int(jnp.argmin(grid_loss))
        best_params = jax.tree.map(lambda a: a[best], params)
        hyper = NetHyper(jnp.log(jnp.asarray(lrs.ravel()[best], dtype)), jnp.log(jnp.asarray(wds.ravel()[best], dtype)))
        return NetFit(self, net, best_params, hyper, mu, sd, grid_loss.reshape(lrs.shape), n)


def _select_impl(net, params0, x, y, x_val, y_val, key, lrs, wds, steps, batch):
    def one(lr, wd):
        p = train(net, params0, x, y, key=key, lr=lr, weight_decay=wd, steps=steps, batch=batch).params
        return evaluate(net, p, x_val, y_val), p

    return jax.vmap(one)(lrs, wds)


_select_jit = compilation.jit(_select_impl, static_argnums=(0, 9, 10))


@dataclasses.dataclass(frozen=True)
class NetFit(protocol.Fit):
    """A trained network regressor. ``predict(x_new)`` -> (m,); ``n``: training rows."""

    model: NetRegressor
    net: MLP
    params: Any
    hyper: NetHyper
    x_mean: jax.Array
    x_sd: jax.Array
    grid_loss: jax.Array | None
    n: int

    def __repr__(self):
        return protocol.short_repr(self, n=self.n, d=self.x_mean.shape[-1], width=self.net.width,
                                   log_lr=self.hyper.log_lr, log_weight_decay=self.hyper.log_weight_decay)

    def predict(self, x_new):
        x_new = checks.query_rows(x_new, self.x_mean.shape[0], self.x_mean.dtype)
        return self.net.apply(self.params, (x_new - self.x_mean) / self.x_sd)[:, 0]

    def save(self, path) -> str:
        """Write this fit to ``path`` (.npz + JSON, no pickle); ``kc.load`` reads it."""
        from kcascade import persist
        return persist.save(self, path)

    def evaluate(self, x_new):
        """(m,) the network's predictions (the protocol's name for ``predict``)."""
        return self.predict(x_new)


jax.tree_util.register_dataclass(NetFit, data_fields=["params", "hyper", "x_mean", "x_sd", "grid_loss"],
                                 meta_fields=["model", "net", "n"])
