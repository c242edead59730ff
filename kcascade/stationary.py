"""Stationary kernels for ``kc.KernelRidge``: pointwise functions of the
lengthscale-scaled difference u = (x - x') / ell, that compose.

    Gaussian()      exp(-|u|^2 / 2)
    Matern32()      (1 + sqrt3 r) exp(-sqrt3 r),               r = |u|
    Matern52()      (1 + sqrt5 r + 5 r^2 / 3) exp(-sqrt5 r)
    Laplacian()     exp(-|u|_1)   (a product of 1-D exponential kernels)

``a + b``, ``a * b`` and ``c * a`` (c > 0) are kernels too; every kernel is a
frozen, hashable value (it is part of a compiled program's configuration).
``kernel(u1, u2)`` is the (m1, m2) matrix on rows already divided by the
lengthscales; it is built from one matrix product (squared distances) or,
for the L1 distance, one (m1, m2) term per dimension, so a pass over row
chunks does a few large operations.

Random Fourier features (Rahimi & Recht 2007) exist for the four base kernels
(and positive multiples): frequencies drawn from the kernel's spectral
density, a standard normal for the Gaussian, a multivariate Student t with
2 nu degrees of freedom for a Matern nu, independent Cauchy coordinates for
the Laplacian.
"""
from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp


class Kernel:
    """Base of the stationary kernels (see the module docstring)."""

    # eigenvalue decay order r (eigenvalues ~ i^-r in d dimensions) for the
    # scaling law; None: faster than any power (Gaussian)
    def decay(self, d: int):
        raise NotImplementedError

    def __call__(self, u1, u2):
        raise NotImplementedError

    def frequencies(self, key, q: int, d: int, dtype):
        raise ValueError(f"kernel: random Fourier features (basis='rff') exist for the base kernels "
                         f"(gaussian, matern32, matern52, laplacian) and their positive multiples; got {self!r}")

    def __add__(self, other):
        return Sum(self, _as_kernel(other))

    def __mul__(self, other):
        if isinstance(other, (int, float)) and not isinstance(other, bool):
            return Scaled(float(other), self)
        return Product(self, _as_kernel(other))

    __rmul__ = __mul__


def _as_kernel(k):
    if not isinstance(k, Kernel):
        raise ValueError(f"kernel: expected a kcascade.stationary kernel, got {type(k).__name__}")
    return k


def sq_dist(u1, u2):
    """(m1, m2) squared Euclidean distances, by one matrix product, floored at 0."""
    s = jnp.sum(u1 * u1, 1)[:, None] + jnp.sum(u2 * u2, 1)[None, :] - 2.0 * (u1 @ u2.T)
    return jnp.maximum(s, 0.0)


def _dist(u1, u2):
    # the floor keeps the derivative finite on the diagonal (r = 0)
    return jnp.sqrt(jnp.maximum(sq_dist(u1, u2), jnp.finfo(u1.dtype).tiny))


@dataclasses.dataclass(frozen=True)
class Gaussian(Kernel):
    def __call__(self, u1, u2):
        return jnp.exp(-0.5 * sq_dist(u1, u2))

    def decay(self, d):
        return None

    def frequencies(self, key, q, d, dtype):
        return jax.random.normal(key, (q, d), dtype)


@dataclasses.dataclass(frozen=True)
class _Matern(Kernel):
    nu = 1.5

    def decay(self, d):
        return (2.0 * self.nu + d) / d

    def frequencies(self, key, q, d, dtype):
        k1, k2 = jax.random.split(key)
        z = jax.random.normal(k1, (q, d), dtype)
        chi2 = 2.0 * jax.random.gamma(k2, self.nu, (q, 1), dtype)      # chi^2 with 2 nu dof
        return z * jnp.sqrt(2.0 * self.nu / chi2)


@dataclasses.dataclass(frozen=True)
class Matern32(_Matern):
    nu = 1.5

    def __call__(self, u1, u2):
        r = math.sqrt(3.0) * _dist(u1, u2)
        return (1.0 + r) * jnp.exp(-r)


@dataclasses.dataclass(frozen=True)
class Matern52(_Matern):
    nu = 2.5

    def __call__(self, u1, u2):
        r = math.sqrt(5.0) * _dist(u1, u2)
        return (1.0 + r + r * r / 3.0) * jnp.exp(-r)


@dataclasses.dataclass(frozen=True)
class Laplacian(Kernel):
    def __call__(self, u1, u2):
        # one (m1, m2) term per dimension (d is small)
        r = sum(jnp.abs(u1[:, None, j] - u2[None, :, j]) for j in range(u1.shape[1]))
        return jnp.exp(-r)

    def decay(self, d):
        return (1.0 + d) / d

    def frequencies(self, key, q, d, dtype):
        return jax.random.cauchy(key, (q, d), dtype)


@dataclasses.dataclass(frozen=True)
class Sum(Kernel):
    a: Kernel
    b: Kernel

    def __call__(self, u1, u2):
        return self.a(u1, u2) + self.b(u1, u2)

    def decay(self, d):
        ra, rb = self.a.decay(d), self.b.decay(d)
        return ra if rb is None else rb if ra is None else min(ra, rb)


@dataclasses.dataclass(frozen=True)
class Product(Kernel):
    a: Kernel
    b: Kernel

    def __call__(self, u1, u2):
        return self.a(u1, u2) * self.b(u1, u2)

    def decay(self, d):
        ra, rb = self.a.decay(d), self.b.decay(d)
        return ra if rb is None else rb if ra is None else max(ra, rb)


@dataclasses.dataclass(frozen=True)
class Scaled(Kernel):
    c: float
    k: Kernel

    def __post_init__(self):
        if not (math.isfinite(self.c) and self.c > 0):
            raise ValueError(f"kernel: a kernel's multiple must be positive and finite, got {self.c!r}")

    def __call__(self, u1, u2):
        return self.c * self.k(u1, u2)

    def decay(self, d):
        return self.k.decay(d)

    def frequencies(self, key, q, d, dtype):
        return self.k.frequencies(key, q, d, dtype)


NAMED = {"gaussian": Gaussian(), "matern32": Matern32(), "matern52": Matern52(), "laplacian": Laplacian()}


def named(kernel) -> Kernel:
    """A kernel from its name ("gaussian", "matern32", "matern52", "laplacian")
    or itself; a ValueError naming the choices otherwise."""
    if isinstance(kernel, Kernel):
        return kernel
    if isinstance(kernel, str) and kernel in NAMED:
        return NAMED[kernel]
    raise ValueError(f"kernel: expected one of {sorted(NAMED)} or a kcascade.stationary kernel, got {kernel!r}")


def has_spectrum(kernel: Kernel) -> bool:
    """Whether random Fourier features exist for ``kernel`` here (a base kernel
    or a positive multiple of one)."""
    if isinstance(kernel, Scaled):
        return has_spectrum(kernel.k)
    return isinstance(kernel, (Gaussian, _Matern, Laplacian))


def amplitude(kernel: Kernel) -> float:
    """k(x, x): the kernel's value at zero distance (its variance)."""
    with jax.ensure_compile_time_eval():     # a constant even inside a trace
        u = jnp.zeros((1, 1))
        return float(kernel(u, u)[0, 0])
