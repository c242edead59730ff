"""The design of one SS-ANOVA fit: covariate domains, the random basis points,
and the feature maps and penalty built from them.

- ``domains_of``: each marginal's domain rule applied to its column;
- ``draw_basis``: q rows drawn at random, independent of the row order;
- ``Design``: features of rows at the basis points, narrow (theta built in,
  width m + q) or full (one block per component, width m + K q), and the
  penalty Q_theta. Every non-constant column is shifted by its mean over the
  basis rows: an exact reparametrisation (the constant absorbs it) that keeps
  the Gram matrix well scaled, float32 included.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from kcascade.anova import terms


def default_n_basis(n: int) -> int:
    """q = max(30, ceil(10 n^{2/9})), capped at n (gss's rule)."""
    return min(n, max(30, math.ceil(10 * n ** (2 / 9))))


_HI = jax.lax.Precision.HIGHEST

# SSANOVA(basis_draw=...) -> candidates per basis point for draw_basis (1: a
# uniform draw; 3 chosen on the selection bed at n = 1000 against 2 and 6:
# key spread worst 1.61 / 1.82 / 1.64, fits over 1.5x the better peer 7 / 9 / 9)
BASIS_DRAWS = {"uniform": 1, "spread": 3}


def domains_of(marginals, x, given=None):
    """(d, 2) domains of the columns of ``x`` (n, d); ``given``: None or one
    entry per column (None for the marginal's default rule)."""
    given = given if given is not None else (None,) * x.shape[1]
    return jnp.stack([m.domain(x[:, v], g) for v, (m, g) in enumerate(zip(marginals, given))])


def scale_rows(marginals, x, domains):
    """(n, d) rows of ``x`` mapped by each marginal's scaling."""
    return jnp.stack([m.scale(x[:, v], domains[v]) for v, m in enumerate(marginals)], axis=1)


def column_kinds(marginals) -> tuple:
    """Per covariate, its distance for a spread basis draw: 0 interval, 1
    periodic, 2 nominal (``farthest_points``)."""
    return tuple({"periodic": 1, "nominal": 2}.get(m.name, 0) for m in marginals)


def farthest_points(u, cand, q: int, kinds):
    """Greedy farthest-point choice of q of the candidate rows ``cand``
    (indices into u (n, d)), starting from the first: each next point is the
    candidate farthest (squared distance summed over columns) from those
    chosen. ``kinds``: per column 0 (an interval: |a - b|), 1 (periodic on
    [0, 1): the shorter way round) or 2 (nominal: 0 or 1). O(q |cand| d)."""
    pts = u[cand]
    kind = jnp.asarray(kinds)

    def dist(a):
        d = jnp.abs(pts - a)
        d = jnp.where(kind == 1, jnp.minimum(d, 1.0 - d), jnp.where(kind == 2, (d > 0).astype(d.dtype), d))
        return jnp.sum(d * d, axis=1)

    def body(i, carry):
        chosen, nearest = carry
        j = jnp.argmax(nearest).astype(jnp.int32)
        return chosen.at[i].set(j), jnp.minimum(nearest, dist(pts[j]))

    chosen, _ = jax.lax.fori_loop(1, q, body, (jnp.zeros((q,), jnp.int32), dist(pts[0])))
    return cand[chosen]


def draw_basis(key, x, u, q: int, w=None, kinds=None, candidates: int = 1):
    """(q, d) rows of ``u`` drawn without replacement, among the rows of
    positive weight ``w`` (all rows when None).

    Each row gets a label that is a hash of its values in ``x`` and of
    ``key`` (``row_labels``), and the q rows of smallest label are drawn: a
    uniform draw for a random key, made in one O(n) pass (no sort of the
    rows), that does not depend on how the rows happen to be ordered (a row
    keeps its label wherever it stands) nor on how many zero-weight rows
    (padding) follow them. Identical rows share a label; which of them is
    drawn does not change the basis point.

    ``candidates`` c > 1 (``SSANOVA(basis_draw="spread")``): the c q rows of
    smallest label are drawn, and q of them kept by greedy farthest-point
    selection (``farthest_points`` with the columns' ``kinds``), so that the
    points follow the rows' density with fewer close pairs. A uniform draw
    when c q >= n."""
    labels = row_labels(key, x)
    valid = x.shape[0]
    if w is not None:
        labels = jnp.where(w > 0, labels, jnp.iinfo(labels.dtype).max)
        valid = jnp.sum(w > 0)
    if candidates > 1 and candidates * q < x.shape[0]:
        kinds = (0,) * u.shape[1] if kinds is None else kinds
        return u[farthest_points(u, smallest(labels, candidates * q, valid), q, kinds)]
    return u[smallest(labels, q, valid)]


def smallest(labels, q: int, valid):
    """Indices of the ``q`` smallest of ``labels`` (n,) (uniform integers from
    ``row_labels``, ``valid`` of them real, the rest at the dtype's maximum),
    in increasing order of label. Exactly ``lax.top_k``'s answer, found in
    O(n): the rows below a threshold expected to pass 2q + 32 of them are
    gathered (at most 4q + 64 kept) and only those are ranked; when the
    count falls outside [q, 4q + 64] (probability below 1e-9) the full
    ``top_k`` runs instead."""
    n, cap = labels.shape[0], 4 * q + 64
    if 2 * cap >= n:
        return jax.lax.top_k(-labels, q)[1]
    top = float(jnp.iinfo(labels.dtype).max)
    share = jnp.minimum((2 * q + 32) / jnp.maximum(valid, 1), 0.5)
    below = labels < (share * top).astype(labels.dtype)
    count = jnp.sum(below)

    def gathered():
        idx = jnp.nonzero(below, size=cap, fill_value=0)[0]
        cand = jnp.where(jnp.arange(cap) < count, labels[idx], jnp.iinfo(labels.dtype).max)
        return idx[jax.lax.top_k(-cand, q)[1]].astype(jnp.int32)

    return jax.lax.cond((count >= q) & (count <= cap), gathered, lambda: jax.lax.top_k(-labels, q)[1])


def row_labels(key, x):
    """(n,) non-negative integer labels, a hash of each row of ``x`` (n, d)
    seeded by ``key``: int64 (63 random bits) with x64 enabled, else int32
    (31 bits). Rows with equal values in every column (compared in float32)
    get equal labels.
    The mixing step is the splitmix64 finalizer (murmur3's fmix32 in 32 bits)."""
    wide = jax.config.jax_enable_x64
    utype, itype = (jnp.uint64, jnp.int64) if wide else (jnp.uint32, jnp.int32)
    # the values' float32 bits (-0.0 made 0.0): the same rows in float32 and
    # float64 get the same labels, hence the same basis points
    bits = jax.lax.bitcast_convert_type(x.astype(jnp.float32) + jnp.float32(0.0), jnp.uint32).astype(utype)
    h = jnp.broadcast_to(jax.random.bits(key, (), utype), x.shape[:1])
    for v in range(x.shape[1]):
        h = _mix(h ^ bits[:, v], wide)
    return (h >> 1).astype(itype)


def _mix(h, wide):
    if wide:
        h = (h ^ (h >> 30)) * jnp.uint64(0xBF58476D1CE4E5B9)
        h = (h ^ (h >> 27)) * jnp.uint64(0x94D049BB133111EB)
        return h ^ (h >> 31)
    h = (h ^ (h >> 16)) * jnp.uint32(0x85EBCA6B)
    h = (h ^ (h >> 13)) * jnp.uint32(0xC2B2AE35)
    return h ^ (h >> 16)


def discretize(marginals, u, levels: int):
    """Rows rounded for a discretized pass: each non-nominal column of the
    scaled rows ``u`` (n, d) to ``levels`` evenly spaced values over its
    range. Returns (indexed (n, d): the value's index in those columns (as a
    float) and the column itself for nominal ones, rounded (n, d): the
    rounded values, grids {column: (levels,) values})."""
    idx_cols, rounded, grids = [], [], {}
    for v, marg in enumerate(marginals):
        col = u[:, v]
        if marg.name == "nominal":
            idx_cols.append(col)
            rounded.append(col)
            continue
        lo, hi = jnp.min(col), jnp.max(col)
        step = jnp.where(hi > lo, (hi - lo) / (levels - 1), 1.0)
        idx = jnp.clip(jnp.round((col - lo) / step), 0, levels - 1)
        grids[v] = lo + jnp.arange(levels, dtype=u.dtype) * step
        idx_cols.append(idx)
        rounded.append(grids[v][idx.astype(jnp.int32)])
    return jnp.stack(idx_cols, axis=1), jnp.stack(rounded, axis=1), grids


class Design:
    """Features and penalty at fixed basis points (usable inside ``jit``).

    Args:
      structure: the ``terms.Structure``.
      basis: (q, d) scaled basis points.
      domains: (d, 2).
      grids: None, or {column: (M,) values} of a discretized pass
        (``discretize``): the rows given to ``shifted``, ``narrow`` and
        ``full`` then hold those columns as indices into the grids, and
        their kernel pieces come from tables evaluated once here.
    """

    def __init__(self, structure: terms.Structure, basis, domains, grids=None):
        self.structure, self.basis, self.domains = structure, basis, domains
        self.tables = None if grids is None else terms.tables(structure, grids, basis, domains)
        # computed here, in the caller's trace, not lazily inside a pass's scan
        s_b, r_b = terms.features(structure, basis, basis, domains)
        self.shift_null = jnp.mean(s_b, axis=0).at[0].set(0.0)   # (m,), 0 for the constant
        self.shift_pen = jnp.mean(r_b, axis=1)                     # (K, q)
        self.pen_blocks = 0.5 * (r_b + jnp.swapaxes(r_b, 1, 2))     # (K, q, q) kernels at the basis, symmetrised

    @property
    def formed_blocks(self) -> int:
        """Kernel blocks a pass forms per row (K): what sizes its chunks."""
        return self.structure.k

    def penalty(self, theta):
        """(q, q) Q_theta = sum_b theta_b R_b(basis, basis); theta: (K,)."""
        return jnp.einsum("i,iab->ab", theta, self.pen_blocks, precision=_HI)

    def shifted(self, uc):
        """(s (c, m), r (K, c, q)): shifted null columns and kernel blocks of the
        scaled rows ``uc`` (c, d)."""
        s, r = terms.features(self.structure, uc, self.basis, self.domains, self.tables)
        return s - self.shift_null, r - self.shift_pen[:, None, :]

    def narrow(self, uc, theta):
        """(c, m + q) [S, sum_b theta_b R_b] (shifted), the K blocks summed as
        they are formed (never stacked)."""
        s, r = terms.features(self.structure, uc, self.basis, self.domains, self.tables, theta=theta,
                              shift=self.shift_pen)
        return jnp.concatenate([s - self.shift_null, r], axis=1)

    def full(self, uc):
        """(c, m + K q) [S, R_1, ..., R_K]."""
        s, r = self.shifted(uc)
        return jnp.concatenate([s, jnp.transpose(r, (1, 0, 2)).reshape(uc.shape[0], -1)], axis=1)
