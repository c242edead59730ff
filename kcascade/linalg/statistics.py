"""How one pass over the rows summarises them: a strategy object with one
interface, so that the estimators never branch on it.

- ``Gram``: Z'WZ, Z'Wy, y'Wy (one matrix product per chunk: fast, accurate in
  float64);
- ``QR``: the streamed triangular factor of W^{1/2}[Z, y] (about twice the
  work, never squares the conditioning: accurate in float32).

Each strategy turns a pass into a *problem at theta* (``solve.Blocks`` for
Gram, ``solve.Eliminated`` for QR) and offers, for that problem, its square-
root form (``eliminated``) and the score summaries in a frozen basis
(``frozen_fitness``, smooth in theta and lambda; ``near_frozen_fitness``,
its second-order expansion at the point of freezing, for Newton steps).
"""
from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from kcascade.linalg import passes, scores, solve


@dataclasses.dataclass(frozen=True)
class Gram:
    """Gram statistics (the float64 default)."""

    name: str = dataclasses.field(init=False, default="gram")

    def chunk(self, n: int, width: int) -> int:
        return passes.default_chunk(n, width)

    def one_pass(self, feature_fn, u, y, w, **options):
        return passes.accumulate(feature_fn, u, y, w, **options)

    def with_totals(self, st: passes.Stats, within, n) -> passes.Stats:
        """The statistics of rows that were summarised by their groups' means:
        y'Wy plus the within-group sum of squares, and the true row count."""
        return passes.Stats(st.ztz, st.zty, st.yty + within, jnp.asarray(n, st.n.dtype))

    def merge(self, a: passes.Stats, b: passes.Stats) -> passes.Stats:
        """The statistics of two disjoint sets of rows together."""
        return passes.Stats(a.ztz + b.ztz, a.zty + b.zty, a.yty + b.yty, a.n + b.n)

    def narrow(self, st: passes.Stats, m: int, pen) -> solve.Blocks:
        return solve.blocks_from_stats(*st, m, pen)

    def prepared(self, st: passes.Stats, m: int, k: int) -> solve.FullGram:
        """The full statistics (K kernel blocks) laid out for the selection."""
        return solve.full_gram(*st, m, k)

    def at_theta(self, st: solve.FullGram, m: int, theta, pen) -> solve.Blocks:
        return solve.blocks_from_full(st, theta, pen)

    def eliminated(self, prob: solve.Blocks) -> solve.Eliminated:
        return solve.eliminate_gram(prob)

    def frozen_fitness(self, prob: solve.Blocks, frozen, log_lambda) -> scores.Fitness:
        return scores.fitness_in_frozen(prob, frozen, log_lambda)

    def near_frozen_fitness(self, prob: solve.Blocks, frozen, log_lambda) -> scores.Fitness:
        rho = solve.rho_of(prob.n, frozen.scale, log_lambda)
        return scores.fitness_near_frozen(*scores.frozen_parts(prob, frozen), frozen, prob.a.shape[0], rho)

    def at_theta_with_jacobian(self, st: solve.FullGram, m: int, theta, pen_blocks):
        """(``at_theta``'s blocks, their Jacobian in theta): see
        ``solve.blocks_with_jacobian``."""
        return solve.blocks_with_jacobian(st, theta, pen_blocks)

    def second_order(self, st: solve.FullGram, m: int, cot: solve.Blocks, k: int, pen_blocks):
        """See ``solve.blocks_second_order``."""
        return solve.blocks_second_order(cot, st, pen_blocks)

    def frozen_parts_tangents(self, prob: solve.Blocks, tangents: solve.Blocks, frozen):
        """See ``scores.frozen_parts_tangents``."""
        return scores.frozen_parts_tangents(prob, tangents, frozen)

    def sv_cut(self, dtype) -> float:
        return solve.sv_cut(dtype, squared=True)


@dataclasses.dataclass(frozen=True)
class QR:
    """Streamed QR statistics (the float32 default)."""

    name: str = dataclasses.field(init=False, default="qr")

    def chunk(self, n: int, width: int) -> int:
        # A QR update costs (chunk + width) width^2: chunks shorter than the
        # width would spend most of it on the carried factor.
        return min(n, max(passes.default_chunk(n, width), 2 * width))

    def one_pass(self, feature_fn, u, y, w, **options):
        return passes.factor(feature_fn, u, y, w, **options)

    def with_totals(self, f: passes.Factor, within, n) -> passes.Factor:
        """As ``Gram.with_totals``: the within-group sum of squares joins the
        residual corner of R (its last diagonal entry, squared, is the part
        of y'Wy no column of Z explains)."""
        corner = jnp.sqrt(f.r[-1, -1] ** 2 + jnp.maximum(within, 0.0))
        return passes.Factor(f.r.at[-1, -1].set(corner), jnp.asarray(n, f.n.dtype))

    def merge(self, a: passes.Factor, b: passes.Factor) -> passes.Factor:
        """The factor of two disjoint sets of rows together: R of [R_a; R_b]."""
        return passes.Factor(passes.qr_r(jnp.concatenate([a.r, b.r])), a.n + b.n)

    def narrow(self, f: passes.Factor, m: int, pen) -> solve.Eliminated:
        return solve.eliminate_qr(f.r, f.n, m, pen)

    def prepared(self, f: passes.Factor, m: int, k: int) -> solve.FullQR:
        """The full factor (K kernel blocks) laid out for the selection."""
        return solve.full_qr(f.r, f.n, m, k)

    def at_theta(self, f: solve.FullQR, m: int, theta, pen) -> solve.Eliminated:
        return solve.eliminate_qr(solve.factor_at(f, theta), f.n, m, pen)

    def eliminated(self, prob: solve.Eliminated) -> solve.Eliminated:
        return prob

    def frozen_fitness(self, prob: solve.Eliminated, frozen, log_lambda) -> scores.Fitness:
        return scores.fitness_in_frozen_root(prob, frozen, log_lambda)

    def near_frozen_fitness(self, prob: solve.Eliminated, frozen, log_lambda) -> scores.Fitness:
        rho = solve.rho_of(prob.n, frozen.scale, log_lambda)
        return scores.fitness_near_frozen(*scores.frozen_parts_root(prob, frozen), frozen, prob.chol_a.shape[0], rho)

    # The problem at theta is a QR of the mixed factor, not an explicit
    # polynomial in theta: its derivatives come from forward-mode AD.
    at_theta_with_jacobian = None

    def sv_cut(self, dtype) -> float:
        return solve.sv_cut(dtype, squared=False)


STATISTICS = {"gram": Gram(), "qr": QR()}


def for_dtype(name: str, dtype):
    """The strategy called ``name``; "auto": QR below 64-bit floats, else Gram."""
    if name == "auto":
        return STATISTICS["qr" if jnp.finfo(dtype).bits < 64 else "gram"]
    return STATISTICS[name]
