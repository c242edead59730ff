"""ANOVA term structure: null-space columns and penalized components.

A model with interactions up to order k has one term per non-empty subset of
covariates of size <= k. Each covariate in a term contributes either one of
its null functions or its penalized kernel; the all-null products join the
null space (with the constant), every other product is one penalized
component with its own reproducing kernel (DESIGN.md §1).

Component names: the term's covariates joined by ``:`` (``x0:x1``); where a
term has several components, a suffix lists each covariate's piece,
``s`` for the smooth (penalized) kernel and ``p`` for a parametric null
function (``p1``, ``p2``... when a marginal has several), e.g.
``x0:x1[sp]`` = R_0(x0, z0) * k1(x1) k1(z1).
"""
from __future__ import annotations

import dataclasses
import functools
import itertools

import jax
import jax.numpy as jnp

from kcascade import kernels

PENALIZED = -1  # piece index meaning "the marginal's penalized kernel"


@dataclasses.dataclass(frozen=True)
class Structure:
    """The static term structure of one model.

    Attributes:
      marginals: one ``kernels.Marginal`` per covariate.
      null: one entry per null-space column; each a tuple of
        (covariate, null-function index); ``()`` is the constant.
      components: one entry per penalized component; each a tuple of
        (covariate, piece) with piece ``PENALIZED`` or a null-function index.
      names: the components' names, length K.
    """

    marginals: tuple
    null: tuple
    components: tuple
    names: tuple

    @property
    def m(self) -> int:
        return len(self.null)

    @property
    def k(self) -> int:
        return len(self.components)

    def masks(self, names):
        """(null (m,), component (K,)) 0/1 masks selecting ``names``: term
        names (``"x0:x1"``: all its components and null-space columns, not the
        constant) or component names as in ``names`` (``"x0:x1[ps]"``: that
        component alone)."""
        names = (names,) if isinstance(names, str) else tuple(names)
        terms = {nm.split("[")[0] for nm in self.names}
        for nm in names:
            if nm not in terms and nm not in self.names:
                raise ValueError(f"terms: unknown term {nm!r}; expected a term name from {sorted(terms)} "
                                 f"or a component name from {list(self.names)}")
        wanted = {_covariates(nm) for nm in names if nm in terms}
        null = [float(tuple(v for v, _ in col) in wanted) for col in self.null]
        comp = [float(tuple(v for v, _ in c) in wanted or nm in names)
                for c, nm in zip(self.components, self.names)]
        return null, comp


def _piece_label(marg, piece):
    if piece == PENALIZED:
        return "s"
    return "p" if marg.n_null == 1 else f"p{piece + 1}"


def closure(subsets) -> tuple:
    """The hierarchy closure of covariate subsets: with every subset, all its
    non-empty sub-subsets (a:b brings a and b), sorted by size, then by index."""
    out = set()
    for sub in subsets:
        sub = tuple(sorted(set(sub)))
        for size in range(1, len(sub) + 1):
            out.update(itertools.combinations(sub, size))
    return tuple(sorted(out, key=lambda t: (len(t), t)))


@functools.lru_cache(maxsize=256)
def build(marginals: tuple, order: int, subsets: tuple | None = None) -> Structure:
    """Enumerate the terms of all interactions up to ``order``, or of the
    given covariate ``subsets`` (hierarchy-closed, see ``closure``); cached:
    the marginals are frozen and hashable."""
    d = len(marginals)
    null = [()]
    components, names = [], []
    if subsets is None:
        subsets = tuple(sub for size in range(1, order + 1) for sub in itertools.combinations(range(d), size))
    else:
        subsets = closure(subsets)
    for subset in subsets:
        options = [list(range(marginals[v].n_null)) + [PENALIZED] for v in subset]
        pieces_all = list(itertools.product(*options))
        term_null = [p for p in pieces_all if PENALIZED not in p]
        term_pen = [p for p in pieces_all if PENALIZED in p]
        null.extend(tuple(zip(subset, p)) for p in term_null)
        base = ":".join(f"x{v}" for v in subset)
        for p in term_pen:
            components.append(tuple(zip(subset, p)))
            if len(term_pen) == 1:
                names.append(base)
            else:
                names.append(base + "[" + "".join(
                    _piece_label(marginals[v], pc) for v, pc in zip(subset, p)) + "]")
    return Structure(tuple(marginals), tuple(null), tuple(components), tuple(names))


def _covariates(term_name):
    return tuple(int(v[1:]) for v in term_name.split(":"))


def tables(structure: Structure, grids, basis, domains) -> dict:
    """{column: (kernel (M, q) at the grid values and the basis points, null
    columns (M, n_null) or None)} for the discretized columns in ``grids``."""
    out = {}
    for v, grid in grids.items():
        marg = structure.marginals[v]
        out[v] = (kernels.gram(marg, grid, basis[:, v], domains[v]), _vnull(marg, grid) if marg.n_null else None)
    return out


def features(structure: Structure, u, basis, domains, tables=None, theta=None, shift=None, groups=None):
    """Null-space columns and per-component kernel blocks at scaled points.

    Args:
      u: (c, d) scaled rows (the columns in ``tables`` as grid indices).
      basis: (q, d) scaled basis points.
      domains: (d, 2) covariate domains.
      tables: None, or ``tables(...)`` of a discretized pass: those columns'
        pieces are gathered from the tables.
      theta: None, or (K,) weights: then r is the weighted sum
        sum_b theta_b (R_b - shift_b) (c, q), formed block by block so that the
        K blocks are never held at once (one fused loop: the narrow pass).
      shift: with theta, (K, q) values subtracted from each block first.
      groups: None, or with theta a static tuple, the group (0 .. G-1) of
        each component: then r is (G, c, q), one weighted sum per group.
    Returns:
      s: (c, m) null-space columns (column 0 is the constant).
      r: (K, c, q) kernel blocks R_beta(u_i, basis_j), or with ``theta``
        their weighted sum (c, q).
    """
    c = u.shape[0]
    pen, null_u, null_b = {}, {}, {}
    for v, marg in enumerate(structure.marginals):
        if tables is not None and v in tables:
            idx = u[:, v].astype(jnp.int32)
            pen[v] = jnp.take(tables[v][0], idx, axis=0)
            if marg.n_null:
                null_u[v] = jnp.take(tables[v][1], idx, axis=0)
        else:
            pen[v] = kernels.gram(marg, u[:, v], basis[:, v], domains[v])
            if marg.n_null:
                null_u[v] = _vnull(marg, u[:, v])
        if marg.n_null:
            null_b[v] = _vnull(marg, basis[:, v])
    ones = jnp.ones((c,), u.dtype)
    s_cols = []
    for col in structure.null:
        val = ones
        for v, j in col:
            val = val * null_u[v][:, j]
        s_cols.append(val)
    def factor(v, piece):
        return pen[v] if piece == PENALIZED else null_u[v][:, piece, None] * null_b[v][None, :, piece]

    s = jnp.stack(s_cols, axis=1)
    if theta is None:
        blocks = []
        for comp in structure.components:
            block = factor(*comp[0])
            for f in comp[1:]:
                block = block * factor(*f)
            blocks.append(block)
        return s, jnp.stack(blocks, axis=0)
    items = list(enumerate(structure.components))
    if groups is None:
        total = _nested_sum(items, 0, factor, theta)
        return s, total - jnp.einsum("k,kq->q", theta, shift)[None, :]
    sums = []
    for g in range(max(groups) + 1):
        mine = [(b, comp) for b, comp in items if groups[b] == g]
        weights = jnp.where(jnp.asarray(groups) == g, theta, 0.0)
        sums.append(_nested_sum(mine, 0, factor, theta) - jnp.einsum("k,kq->q", weights, shift)[None, :])
    return s, jnp.stack(sums, axis=0)


def _nested_sum(items, depth, factor, theta):
    """sum_b theta_b prod_{f in comp_b[depth:]} factor(*f) over ``items``
    [(b, comp_b)] that share their first ``depth`` factors, nested by
    shared leading factors (Horner's rule on the components' prefix tree):
    one multiply and one add per tree node, instead of a product of up to
    ``order`` factors, a weight and a shift per component."""
    acc, groups = None, {}
    for b, comp in items:
        if len(comp) == depth:
            acc = theta[b] if acc is None else acc + theta[b]
        else:
            groups.setdefault(comp[depth], []).append((b, comp))
    for f, sub in groups.items():
        term = factor(*f) * _nested_sum(sub, depth + 1, factor, theta)
        acc = term if acc is None else acc + term
    return acc


def _vnull(marg, col):
    return jax.vmap(marg.null)(col)
