"""Model formulas in the style of gss and mgcv, parsed by a small parser of
our own (the grammar below is all an SS-ANOVA needs, and a formula library
such as formulaic would build design matrices we do not use).

Grammar::

    formula := response "~" term ("+" term)*
    term    := group ("*" group)*         a*b = a + b + a:b (every subset)
    group   := factor (":" factor)*       a:b = the a-by-b interaction alone
    factor  := name | s(name [, kind [, lo, hi]])

``kind`` is the covariate's marginal: cubic (default for numbers), linear,
periodic (give its period as lo, hi: ``s(hour, periodic, 0, 24)``) or
nominal (default for categorical, string and boolean columns). ``lo, hi``
set the domain of any non-nominal covariate. Terms are closed under the
hierarchy: a:b brings a and b, as in gss. Names are column names (letters,
digits, ``_`` and ``.``).

Example: ``"price ~ carat * depth + s(hour, periodic, 0, 24) + cut"`` fits
carat, depth, carat:depth, hour (periodic) and cut (nominal).
"""
from __future__ import annotations

import dataclasses
import itertools
import re

_KINDS = ("cubic", "linear", "periodic", "nominal")
_NAME = r"[A-Za-z_.][A-Za-z0-9_.]*"
_FACTOR = re.compile(rf"^\s*(?:s\(\s*(?P<sname>{_NAME})\s*(?:,\s*(?P<kind>[a-z]+)\s*"
                     rf"(?:,\s*(?P<lo>[-+0-9.eE]+)\s*,\s*(?P<hi>[-+0-9.eE]+)\s*)?)?\)|(?P<name>{_NAME}))\s*$")


@dataclasses.dataclass(frozen=True)
class Formula:
    """A parsed formula: the ``response`` column; the covariate ``columns`` in
    order of first appearance, each one's ``kinds`` (None: from the column's
    type) and ``domains`` ((lo, hi) or None); ``subsets``: the terms as
    tuples of indices into ``columns`` (hierarchy-closed)."""

    response: str
    columns: tuple
    kinds: tuple
    domains: tuple
    subsets: tuple


def parse(text: str) -> Formula:
    """Parse a formula string (see the module docstring); ValueError naming
    the part that does not fit the grammar."""
    if not isinstance(text, str) or text.count("~") != 1:
        raise ValueError(f"formula: expected 'response ~ terms' with one '~', got {text!r}")
    lhs, rhs = (part.strip() for part in text.split("~"))
    if not re.fullmatch(_NAME, lhs):
        raise ValueError(f"formula: expected a column name left of '~', got {lhs!r}")
    columns, kinds, domains, subsets = [], [], [], []

    def factor(src):
        m = _FACTOR.match(src)
        if not m:
            raise ValueError(f"formula: cannot read {src.strip()!r}; expected a column name or "
                             f"s(name[, kind[, lo, hi]]) with kind one of {_KINDS}")
        name = m.group("sname") or m.group("name")
        kind = m.group("kind")
        if kind is not None and kind not in _KINDS:
            raise ValueError(f"formula: unknown kind {kind!r} in {src.strip()!r}; expected one of {_KINDS}")
        dom = None if m.group("lo") is None else (float(m.group("lo")), float(m.group("hi")))
        if kind == "periodic" and dom is None:
            raise ValueError(f"formula: {src.strip()!r}: a periodic covariate needs its period, "
                             f"s({name}, periodic, lo, hi)")
        if kind == "nominal" and dom is not None:
            raise ValueError(f"formula: {src.strip()!r}: a nominal covariate takes no domain")
        if name == lhs:
            raise ValueError(f"formula: the response {lhs!r} appears among the terms")
        if name in columns:
            i = columns.index(name)
            if (kind is not None and kinds[i] not in (None, kind)) or (dom is not None and domains[i] not in (None, dom)):
                raise ValueError(f"formula: {name!r} is given two different kinds or domains")
            kinds[i] = kinds[i] or kind
            domains[i] = domains[i] or dom
            return i
        columns.append(name)
        kinds.append(kind)
        domains.append(dom)
        return len(columns) - 1

    if not rhs:
        raise ValueError("formula: expected terms right of '~'")
    for term in _split(rhs, "+"):
        groups = [frozenset(factor(f) for f in _split(g, ":")) for g in _split(term, "*")]
        for size in range(1, len(groups) + 1):
            for combo in itertools.combinations(groups, size):
                subsets.append(tuple(sorted(frozenset().union(*combo))))
    from kcascade.anova.terms import closure
    return Formula(lhs, tuple(columns), tuple(kinds), tuple(domains), closure(subsets))


def _split(text, sep):
    """Split on ``sep`` outside parentheses; empty parts are an error."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += (ch == "(") - (ch == ")")
        if ch == sep and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    if any(not p.strip() for p in parts):
        raise ValueError(f"formula: an empty term around {sep!r} in {text.strip()!r}")
    return parts
