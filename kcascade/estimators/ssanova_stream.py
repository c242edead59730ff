"""SS-ANOVA fits on rows streamed from a chunked source (``kcascade.sources``).

A streamed fit reads the source three times and never holds more than one
chunk of rows:

1. facts: the row count, each column's range (the domains, gss's rule as in
   memory), the checks of ``SSANOVA.check_data`` chunk by chunk, and the
   response's total sum of squares;
2. the basis points: q rows drawn uniformly without replacement with ``key``
   (``sources.draw_rows``) and read with ``source.take`` (row groups or a
   memory map: no pass where the format allows); with
   ``basis_draw="spread"`` 3q rows, of which q are kept by greedy farthest
   points as in memory;
3. the statistics: one compiled call per chunk (all chunks padded to one
   size with weight-0 rows, so one compilation) of the same pass as in
   memory, the chunks' Gram statistics summed (or their triangular factors
   merged by a QR) on the device.

Then selection (or one solve at ``hyper``) runs on those statistics exactly
as in memory (``ssanova_engine.fit_problem``): it needs no more passes. The
result equals the in-memory fit on the same rows with the same basis points
up to rounding (the tests check 1e-10 in float64). The in-memory fit draws its
basis points by a different rule (a hash of each row's values), so with the
same key the two fits differ by the choice of basis points, not in kind.

Gaussian family, no weights, no mesh, no discretization (each refused with
a ValueError).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from kcascade import checks, compilation, progress as progress_lines, sources
from kcascade.anova import Design, scale_rows
from kcascade.anova.design import BASIS_DRAWS, column_kinds, farthest_points
from kcascade.linalg import passes
from kcascade.estimators import ssanova_engine as engine


class Facts:
    """What pass 1 learns: n, per-column min / max / all-integer codes, and
    the response's total sum of squares about its mean."""

    def __init__(self, d):
        self.n, self.lo, self.hi = 0, np.full(d, np.inf), np.full(d, -np.inf)
        self.codes = np.ones(d, bool)
        self.shift, self.s1, self.s2 = None, 0.0, 0.0

    def add(self, x, y, first_row):
        checks.finite(x, "x", first_row)
        checks.finite(y, "y", first_row)
        lo, hi, codes = checks.column_facts(x)
        self.n += x.shape[0]
        self.lo, self.hi, self.codes = np.minimum(self.lo, lo), np.maximum(self.hi, hi), self.codes & codes
        y = np.asarray(y, np.float64)
        self.shift = float(y[0]) if self.shift is None else self.shift
        self.s1 += float(np.sum(y - self.shift))
        self.s2 += float(np.sum((y - self.shift) ** 2))

    @property
    def tss(self):
        return self.s2 - self.s1 * self.s1 / self.n


def _fixed_chunks(src, size):
    """The source's rows in blocks of exactly ``size`` rows (the last padded
    as ``passes.padded``: weight-0 copies of its first row): (x, y, w, first
    row index)."""
    xs, ys, held, start = [], [], 0, 0
    for xc, yc in src.chunks(size):
        xs.append(np.asarray(xc)), ys.append(np.asarray(yc))
        held += xc.shape[0]
        while held >= size:
            x, y = np.concatenate(xs), np.concatenate(ys)
            yield x[:size], y[:size], np.ones(size, y.dtype), start
            start += size
            xs, ys, held = [x[size:]], [y[size:]], held - size
    if held:
        x, y = np.concatenate(xs), np.concatenate(ys)
        yield (*passes.padded(x, y, np.ones(held, y.dtype), size, np), start)


def basis_rows(model, take, key, n: int, q: int, domains, dtype):
    """(q, d) scaled basis points of a streamed fit: q of the n rows drawn
    uniformly with ``key`` (``sources.draw_rows``) and read with ``take``
    (indices -> (x rows, y rows)); with ``basis_draw="spread"`` c q rows, of
    which q are kept by greedy farthest points (``design.farthest_points``)."""
    structure = model.structure(len(domains))
    c = BASIS_DRAWS[model.basis_draw]
    spread = c > 1 and c * q < n
    x_rows, _ = take(sources.draw_rows(key, n, c * q if spread else q))
    u = scale_rows(structure.marginals, jnp.asarray(x_rows, dtype), domains)
    return u[farthest_points(u, jnp.arange(c * q), q, column_kinds(structure.marginals))] if spread else u


def _chunk_impl(model, x, y, w, u_basis, domains, theta):
    """The statistics of one chunk: the full features (selection) or the
    narrow ones at ``theta``."""
    structure = model.structure(x.shape[1])
    design = Design(structure, u_basis, domains)
    u = scale_rows(structure.marginals, x, domains)
    feature_fn = design.full if theta is None else (lambda uc: design.narrow(uc, theta))
    stats = model.statistics_for(y.dtype)
    inner = model.chunk or stats.chunk(x.shape[0], structure.m + structure.k * u_basis.shape[0])
    return stats.one_pass(feature_fn, u, y, w, chunk=min(inner, x.shape[0]))


def _merge_impl(model, a, b):
    return model.statistics_for(a[0].dtype).merge(a, b)


def _from_statistics_impl(model, u_basis, domains, statistics, tss, hyper, init, scale_search):
    design = Design(model.structure(u_basis.shape[1]), u_basis, domains)
    prob = engine.Problem.of_statistics(model, design, statistics, u_basis.dtype, tss)
    return engine.fit_problem(prob, hyper, init, scale_search)


_chunk_jit = compilation.jit(_chunk_impl, static_argnums=0)
_merge_jit = compilation.jit(_merge_impl, static_argnums=0)
_from_statistics_jit = compilation.jit(_from_statistics_impl, static_argnums=(0, 7))


def fit_source(model, src, *, key, hyper=None, init=None, scale_search=False, progress=False):
    """``SSANOVA.fit`` on a ``sources.Source`` (see the module docstring).

    Args:
      model: a Gaussian ``SSANOVA``.
      src: the source of (x (c, d), y (c,)) chunks.
      key: draws the q basis rows.
      hyper, init, scale_search: as in ``SSANOVA.fit``.
      progress: a line per pass on stderr.
    Returns:
      An ``SSANOVAFit``.
    """
    from kcascade.estimators.ssanova import _check_hyper
    if model.family != "gaussian":
        raise ValueError(f"x: a chunked source is fitted with family='gaussian' only, got family={model.family!r}")
    if model.discretize is not None:
        raise ValueError("discretize: not available with a chunked source yet; use discretize=None")
    chunk = src.chunk_rows
    d = src.n_columns
    structure = model.structure(d)
    given = model.domains if model.domains is not None else (None,) * d
    if len(given) != d:
        raise ValueError(f"domains: expected {d} entries (one per column of x), got {len(given)}")
    for h in (hyper, init):
        if h is not None:
            _check_hyper(h, structure.k)
    dtype = jnp.result_type(float)
    with progress_lines.phase(f"streamed SS-ANOVA: pass 1 of 2 over {src.n_rows} rows (ranges, checks)",
                              on=bool(progress)):
        facts = Facts(d)
        for x, y, w, start in _fixed_chunks(src, chunk):
            c = int(np.sum(w))
            facts.add(x[:c], y[:c], start)
    n, q = facts.n, model.n_basis_for(facts.n)
    if n < q + structure.m:
        raise ValueError(f"x: expected at least n_basis + null-space size = {q} + {structure.m} = "
                         f"{q + structure.m} rows, got n = {n}")
    for v, (marg, dom) in enumerate(zip(structure.marginals, given)):
        marg.check_column(v, dom, facts.lo[v], facts.hi[v], bool(facts.codes[v]))
    domains = jnp.stack([marg.domain(jnp.asarray([facts.lo[v], facts.hi[v]], dtype), g)
                         for v, (marg, g) in enumerate(zip(structure.marginals, given))])
    u_basis = basis_rows(model, src.take, key, n, q, domains, dtype)
    theta = None if hyper is None else jnp.exp(jnp.asarray(hyper.log_theta, dtype))
    cast = lambda h: None if h is None else type(h)(jnp.asarray(h.log_lambda, dtype), jnp.asarray(h.log_theta, dtype))
    what = "selection statistics" if hyper is None else "statistics at the given hyperparameters"
    with progress_lines.phase(f"streamed SS-ANOVA: pass 2 of 2 ({what}, q = {q})", on=bool(progress)):
        total = None
        for x, y, w, _ in _fixed_chunks(src, chunk):
            part = _chunk_jit(model, jnp.asarray(x, dtype), jnp.asarray(y, dtype), jnp.asarray(w, dtype),
                              u_basis, domains, theta)
            total = part if total is None else _merge_jit(model, total, part)
        fit = _from_statistics_jit(model, u_basis, domains, total, jnp.asarray(facts.tss, dtype), cast(hyper),
                                   cast(init), bool(scale_search))
        return jax.block_until_ready(fit)

