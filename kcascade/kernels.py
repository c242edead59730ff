"""Marginal reproducing kernels on one covariate (Gu 2013, ch. 2).

Each marginal is written for single points; matrices come from ``jax.vmap``.
A marginal maps a raw covariate value to its scaled value with the domain
stored in the fit, and then supplies

- ``null(u)``: the non-constant null-space functions at one scaled point,
  shape ``(n_null,)`` (the constant is shared by all covariates and lives in
  the term structure);
- ``kernel(u, v, domain)``: the penalized reproducing kernel at two scaled
  points, a scalar;
- ``decay_order``: the order r of the eigenvalue decay of the kernel
  (lambda_nu ~ nu^-r; None for a finite-dimensional space), which sets the
  smoothing-spline law;
- ``domain(col, given)``: the (2,) domain of a column of raw values, and
  ``check_column``: the checks of a column against its domain, and
  ``outside``: how many new values lie outside it (prediction warns).

The scaled Bernoulli polynomials ``k1, k2, k4`` are those of DESIGN.md §1.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np


def k1(u):
    return u - 0.5


def k2(u):
    a = k1(u)
    return (a * a - 1.0 / 12.0) / 2.0


def k4(u):
    a = k1(u)
    a2 = a * a
    return (a2 * a2 - a2 / 2.0 + 7.0 / 240.0) / 24.0


@dataclasses.dataclass(frozen=True)
class Marginal:
    """Base for the marginal kernels; concrete classes below are final."""

    name: str = dataclasses.field(init=False, default="")
    n_null: int = dataclasses.field(init=False, default=0)
    decay_order: float | None = dataclasses.field(init=False, default=4.0)
    needs_domain: bool = dataclasses.field(init=False, default=False)

    def scale(self, x, domain):
        """Raw value(s) -> [0, 1]; ``domain``: (2,) array (lo, hi)."""
        return (x - domain[0]) / (domain[1] - domain[0])

    def domain(self, col, given):
        """(2,) domain of the raw column ``col`` (n,): ``given`` (lo, hi), or
        the data range widened by 5% on each side (gss's rule)."""
        if given is not None:
            return jnp.asarray(given, col.dtype)
        lo, hi = jnp.min(col), jnp.max(col)
        pad = 0.05 * (hi - lo)
        return jnp.stack([lo - pad, hi + pad])

    def check_column(self, v, given, lo, hi, codes):
        """ValueError unless column v, with minimum ``lo``, maximum ``hi`` and
        ``codes`` (all values non-negative integers), fits ``given``."""
        name = f"x[:, {v}]"
        if given is None:
            if self.needs_domain:
                raise ValueError(f"domains[{v}]: a {self.name} covariate needs its exact period (lo, hi), got None")
        else:
            if np.ndim(given) != 1 or len(given) != 2 or not given[0] < given[1]:
                raise ValueError(f"domains[{v}]: expected (lo, hi) with lo < hi, got {given!r}")
            if lo < given[0] or hi > given[1]:
                raise ValueError(f"{name}: values span [{lo}, {hi}], outside domains[{v}] = {given}")
        if hi == lo:
            raise ValueError(f"{name}: expected a non-constant covariate, every value is {lo}")

    def outside(self, v, col, domain) -> int:
        """How many raw values of column v (numpy, at prediction) fall outside
        ``domain``, where the fit extrapolates."""
        lo, hi = float(domain[0]), float(domain[1])
        slack = 1e-9 * (hi - lo)
        return int(np.sum((col < lo - slack) | (col > hi + slack)))

    def null(self, u):
        return jnp.zeros((0,), dtype=jnp.result_type(u))

    def kernel(self, u, v, domain):
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class Cubic(Marginal):
    """Cubic smoothing spline: null space {k1}, R = k2(u) k2(v) - k4(|u - v|)."""

    name: str = dataclasses.field(init=False, default="cubic")
    n_null: int = dataclasses.field(init=False, default=1)

    def null(self, u):
        return jnp.reshape(k1(u), (1,))

    def kernel(self, u, v, domain):
        return k2(u) * k2(v) - k4(jnp.abs(u - v))


@dataclasses.dataclass(frozen=True)
class Linear(Marginal):
    """Linear smoothing spline: no null space, R = k1(u) k1(v) + k2(|u - v|)."""

    name: str = dataclasses.field(init=False, default="linear")
    decay_order: float | None = dataclasses.field(init=False, default=2.0)

    def kernel(self, u, v, domain):
        return k1(u) * k1(v) + k2(jnp.abs(u - v))


@dataclasses.dataclass(frozen=True)
class Periodic(Marginal):
    """Periodic cubic spline on a period [lo, hi): R = -k4(|u - v|)."""

    name: str = dataclasses.field(init=False, default="periodic")
    needs_domain: bool = dataclasses.field(init=False, default=True)

    def scale(self, x, domain):
        return jnp.mod((x - domain[0]) / (domain[1] - domain[0]), 1.0)

    def outside(self, v, col, domain) -> int:
        return 0   # wraps around the period

    def kernel(self, u, v, domain):
        return -k4(jnp.abs(u - v))


@dataclasses.dataclass(frozen=True)
class Nominal(Marginal):
    """Nominal factor with L levels coded 0..L-1: R = 1[u = v] - 1/L.

    Its domain is (0, L); the scaled value is the integer code itself.
    """

    name: str = dataclasses.field(init=False, default="nominal")
    decay_order: float | None = dataclasses.field(init=False, default=None)

    def scale(self, x, domain):
        return x

    def domain(self, col, given):
        levels = given if given is not None else jnp.max(col) + 1
        return jnp.stack([jnp.zeros((), col.dtype), jnp.asarray(levels, col.dtype)])

    def check_column(self, v, given, lo, hi, codes):
        name = f"x[:, {v}]"
        if not codes:
            raise ValueError(f"{name}: nominal covariate expects integer codes 0..L-1, got values in [{lo}, {hi}] "
                             "that are not all non-negative integers")
        if given is not None:
            if not isinstance(given, (int, np.integer)) or given < 1:
                raise ValueError(f"domains[{v}]: nominal covariate expects the number of levels L (int >= 1), got {given!r}")
            if hi >= given:
                raise ValueError(f"{name}: code {int(hi)} is outside the {given} levels given in domains[{v}]")

    def outside(self, v, col, domain) -> int:
        levels = int(domain[1])
        bad = (col != np.round(col)) | (col < 0) | (col >= levels)
        if np.any(bad):
            raise ValueError(f"x_new[:, {v}]: nominal covariate expects codes 0..{levels - 1} (the levels it was "
                             f"fitted on), got {float(col[bad][0])}")
        return 0

    def kernel(self, u, v, domain):
        n_levels = domain[1] - domain[0]
        return jnp.where(u == v, 1.0, 0.0).astype(jnp.result_type(u)) - 1.0 / n_levels


MARGINALS = {"cubic": Cubic, "linear": Linear, "periodic": Periodic, "nominal": Nominal}


def marginal(name: str) -> Marginal:
    """The marginal kernel called ``name`` (one of ``MARGINALS``)."""
    try:
        return MARGINALS[name]()
    except KeyError:
        raise ValueError(
            f"marginals: unknown marginal {name!r}; expected one of {sorted(MARGINALS)}"
        ) from None


def gram(m: Marginal, u, v, domain):
    """Kernel matrix ``(len(u), len(v))`` built from the pointwise rule."""
    return jax.vmap(jax.vmap(m.kernel, (None, 0, None)), (0, None, None))(u, v, domain)


def marginals_for(spec, d: int) -> tuple:
    """One ``Marginal`` per covariate from ``spec``: one name for all d, or a
    sequence of d names."""
    if isinstance(spec, str):
        return (marginal(spec),) * d
    if len(spec) != d:
        raise ValueError(f"marginals: expected {d} entries (one per column of x), got {len(spec)}")
    return tuple(marginal(nm) for nm in spec)


def spline_law(marginals):
    """The smoothing-spline law lambda ~ n^{-r/(pr+1)} with p = 2 and r the
    slowest eigenvalue decay among ``marginals`` (4 for cubic and periodic
    splines, 2 for linear ones; nominal factors are finite-dimensional)."""
    from kcascade import scaling
    orders = [m.decay_order for m in marginals if m.decay_order is not None]
    return scaling.smoothing_spline(r=min(orders, default=4.0), p=2.0)
