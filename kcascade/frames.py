"""Data as users hold it: pandas DataFrames with named, possibly categorical
columns, turned into the float arrays the estimators work on, and back.

pandas is optional: it is imported only by the caller's own code, and a
DataFrame is recognised when pandas is already loaded.

- A DataFrame's column names become the covariates' names (term names such as
  ``carat:depth`` instead of ``x0:x1``).
- Categorical, string (object) and boolean columns become nominal covariates
  coded 0..L-1; their levels are kept (categoricals: their categories in
  order; others: the sorted distinct values), and new data is coded with the
  same levels. A level not seen in fitting is an error.
- Prediction on a DataFrame matches columns by name (any order; extra columns
  are ignored); a missing column is an error. A plain array is taken by
  position.
"""
from __future__ import annotations

import dataclasses
import sys

import numpy as np

_RESERVED = (":", "[", "]")


@dataclasses.dataclass(frozen=True)
class Columns:
    """Names and nominal levels of the covariates a model was fitted on.

    Attributes:
      names: one name per column (strings).
      levels: one entry per column: None for a numeric column, or the tuple
        of level values of a nominal one (code i stands for levels[i]).
    """

    names: tuple
    levels: tuple

    def __post_init__(self):
        if len(self.names) != len(self.levels):
            raise ValueError(f"levels: expected one entry per name ({len(self.names)}), got {len(self.levels)}")

    @property
    def nominal(self) -> tuple:
        """Indices of the nominal (categorical) columns."""
        return tuple(v for v, lv in enumerate(self.levels) if lv is not None)

    def display(self, internal: str) -> str:
        """A term or component name with ``x{v}`` replaced by column v's name
        (``x0:x1[ps]`` -> ``carat:depth[ps]``)."""
        base, bracket, suffix = internal.partition("[")
        return ":".join(self.names[int(v[1:])] for v in base.split(":")) + bracket + suffix

    def to_json(self) -> dict:
        return dict(names=list(self.names),
                    levels=[None if lv is None else [_json_value(v) for v in lv] for lv in self.levels])

    @classmethod
    def from_json(cls, obj) -> "Columns":
        return cls(tuple(obj["names"]), tuple(None if lv is None else tuple(lv) for lv in obj["levels"]))


def _json_value(v):
    return v.item() if isinstance(v, np.generic) else v


def _pandas():
    return sys.modules.get("pandas")


def is_frame(x) -> bool:
    pd = _pandas()
    return pd is not None and isinstance(x, pd.DataFrame)


def _nominal_kind(series) -> bool:
    pd = _pandas()
    dt = series.dtype
    return (isinstance(dt, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(dt)
            or pd.api.types.is_object_dtype(dt) or pd.api.types.is_string_dtype(dt))


def split(x, name: str = "x"):
    """(array, Columns or None): a DataFrame as a float64 (n, d) array with
    nominal columns coded 0..L-1, and its column facts; anything else as
    given, with None."""
    if not is_frame(x):
        return x, None
    pd = _pandas()
    names, levels, cols = [], [], []
    for label in x.columns:
        nm = str(label)
        if not nm or any(c in nm for c in _RESERVED):
            raise ValueError(f"{name}: column name {nm!r} cannot name a term (empty, or has one of "
                             f"{''.join(_RESERVED)}); rename it")
        if nm in names:
            raise ValueError(f"{name}: column name {nm!r} appears twice")
        s = x[label]
        if _nominal_kind(s):
            if s.isna().any():
                raise ValueError(f"{name}[{nm!r}]: expected no missing values, found {int(s.isna().sum())}")
            if isinstance(s.dtype, pd.CategoricalDtype):
                lv = tuple(s.cat.categories)
            else:
                lv = tuple(sorted(pd.unique(s), key=lambda v: (str(type(v)), v)))
            levels.append(lv)
            cols.append(_codes(s, lv, f"{name}[{nm!r}]"))
        else:
            if not pd.api.types.is_numeric_dtype(s.dtype):
                raise ValueError(f"{name}[{nm!r}]: expected a numeric, boolean, string or categorical column, "
                                 f"got dtype {s.dtype}")
            levels.append(None)
            cols.append(np.asarray(s, dtype=np.float64))
        names.append(nm)
    arr = np.stack(cols, axis=1) if cols else np.zeros((len(x), 0))
    return arr, Columns(tuple(names), tuple(levels))


def _codes(series, levels, what):
    pd = _pandas()
    codes = np.asarray(pd.Index(list(levels), dtype=object).get_indexer(np.asarray(series, dtype=object)), np.float64)
    if (codes < 0).any():
        unseen = sorted({str(v) for v in series[codes < 0]})[:5]
        raise ValueError(f"{what}: levels not seen in fitting: {unseen}; expected one of {list(levels)}")
    return codes


def encode(x_new, columns: Columns | None, name: str = "x_new"):
    """``x_new`` as the fitted model's float columns: a DataFrame matched by
    name (and its nominal columns coded with the fitted levels) when the fit
    has named columns; otherwise taken as given."""
    if columns is None or not is_frame(x_new):
        if is_frame(x_new):
            arr, cols = split(x_new, name)
            if cols.nominal:
                raise ValueError(f"{name}: categorical columns {[cols.names[v] for v in cols.nominal]} given, "
                                 "but the model was fitted on a numeric array; fit on a DataFrame to use them")
            return arr
        return x_new
    present = [str(c) for c in x_new.columns]
    missing = [nm for nm in columns.names if nm not in present]
    if missing:
        raise ValueError(f"{name}: missing columns {missing}; the fit was made on columns {list(columns.names)}")
    label = {str(c): c for c in x_new.columns}
    out = []
    for nm, lv in zip(columns.names, columns.levels):
        s = x_new[label[nm]]
        if lv is None:
            try:
                out.append(np.asarray(s, dtype=np.float64))
            except (TypeError, ValueError):
                raise ValueError(f"{name}[{nm!r}]: expected numbers as in fitting, got dtype {s.dtype}") from None
        else:
            out.append(_codes(s, lv, f"{name}[{nm!r}]"))
    return np.stack(out, axis=1)


def internal_terms(names, columns: Columns | None, structure_names):
    """Term/component names as the user writes them (column names) mapped to
    the structure's ``x{v}`` names; an unknown name is a ValueError listing
    the names there are."""
    if columns is None or names is None:
        return names
    single = isinstance(names, str)
    table = {}
    for nm in structure_names:
        table[columns.display(nm)] = nm
        base = nm.split("[")[0]
        table[columns.display(base)] = base
    given = (names,) if single else tuple(names)
    for nm in given:
        if nm not in table:
            terms = sorted({k.split("[")[0] for k in table})
            comps = [columns.display(n) for n in structure_names]
            raise ValueError(f"terms: unknown term {nm!r}; expected a term name from {terms} "
                             f"or a component name from {comps}")
    mapped = tuple(table[nm] for nm in given)
    return mapped[0] if single else mapped
