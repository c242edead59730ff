"""Saving and loading fits without pickle.

One ``.npz`` file per fit (numpy's zip of arrays, readable without
kcascade): every array of the fit under its field name (``hyper.log_theta``,
``coef_basis``, ...), and one entry ``__kcascade__`` holding JSON: the format
version, the fit's type, its model's configuration and, for a fit made on a
DataFrame, the column names and levels. Nothing in the file is executed on
loading: types are looked up in a fixed table (``_FITS``), so a file cannot
name arbitrary code.

A KDE fit is made of its training rows, so its file holds them (``data``);
the JSON's ``stores_data`` entry says so, as do ``save``'s docstring and the
fit's ``repr``.
"""
from __future__ import annotations

import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import numpy as np

FORMAT = "kcascade-fit"
VERSION = 1
_META_KEY = "__kcascade__"


def _registry():
    from kcascade.estimators import KDE, SSANOVA, Hyper, KDEFit, KDEHyper, SSANOVAFit
    fits = {"SSANOVAFit": (SSANOVAFit, SSANOVA), "KDEFit": (KDEFit, KDE)}
    tuples = {"Hyper": Hyper, "KDEHyper": KDEHyper}
    return fits, tuples


def _jsonable(value):
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _model_config(model) -> dict:
    return {f.name: _jsonable(getattr(model, f.name)) for f in dataclasses.fields(model)}


def _model_from(cls, config: dict):
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(config) - known)
    if unknown:
        raise ValueError(f"path: the file's {cls.__name__} has fields {unknown} this version does not know")

    def tup(v):
        return tuple(tup(a) for a in v) if isinstance(v, list) else v

    return cls(**{k: tup(v) for k, v in config.items()})


def save(fit, path) -> str:
    """Write ``fit`` (an SSANOVAFit or KDEFit, not a vmapped batch) to ``path``
    (".npz" is appended when missing); returns the path written."""
    fits, tuples = _registry()
    name = type(fit).__name__
    if name not in fits or not isinstance(fit, fits[name][0]):
        raise ValueError(f"fit: expected one of {sorted(fits)}, got {name}")
    path = os.fspath(path)
    if not path.endswith(".npz"):
        path += ".npz"
    arrays, fields = {}, {}
    for f in dataclasses.fields(fit):
        if f.name in ("model", "columns"):
            continue
        value = getattr(fit, f.name)
        if isinstance(value, tuple) and type(value).__name__ in tuples:
            fields[f.name] = type(value).__name__
            for sub in value._fields:
                arrays[f"{f.name}.{sub}"] = np.asarray(getattr(value, sub))
        else:
            fields[f.name] = "array"
            arrays[f.name] = np.asarray(value)
    columns = getattr(fit, "columns", None)
    meta = dict(format=FORMAT, version=VERSION, fit=name, model=_model_config(fit.model), fields=fields,
                columns=None if columns is None else columns.to_json(), stores_data=name == "KDEFit",
                x64=bool(jax.config.jax_enable_x64))
    with open(path, "wb") as fh:
        np.savez(fh, **arrays, **{_META_KEY: np.asarray(json.dumps(meta))})
    return path


def load(path):
    """The fit saved at ``path`` by ``fit.save`` (arrays as jax arrays of the
    dtypes saved: float64 needs ``jax_enable_x64``, as when it was saved)."""
    from kcascade.frames import Columns
    fits, tuples = _registry()
    path = os.fspath(path)
    with np.load(path, allow_pickle=False) as z:
        if _META_KEY not in z.files:
            raise ValueError(f"path: {path!r} is not a kcascade fit file (no {_META_KEY} entry)")
        meta = json.loads(str(z[_META_KEY]))
        if meta.get("format") != FORMAT or not isinstance(meta.get("version"), int):
            raise ValueError(f"path: {path!r} is not a kcascade fit file")
        if meta["version"] > VERSION:
            raise ValueError(f"path: {path!r} has format version {meta['version']}; this kcascade reads up to "
                             f"{VERSION}: upgrade kcascade")
        if meta["fit"] not in fits:
            raise ValueError(f"path: unknown fit type {meta['fit']!r}; expected one of {sorted(fits)}")
        fit_cls, model_cls = fits[meta["fit"]]
        arrays = {k: z[k] for k in z.files if k != _META_KEY}
    if meta.get("x64") and not jax.config.jax_enable_x64 and any(a.dtype == np.float64 for a in arrays.values()):
        raise ValueError(f"path: {path!r} holds float64 arrays; enable them first with "
                         "jax.config.update('jax_enable_x64', True)")
    values = {}
    for field, kind in meta["fields"].items():
        if kind == "array":
            values[field] = jnp.asarray(arrays[field])
        else:
            cls = tuples[kind]
            values[field] = cls(*(jnp.asarray(arrays[f"{field}.{sub}"]) for sub in cls._fields))
    values["model"] = _model_from(model_cls, meta["model"])
    if meta.get("columns") is not None:
        values["columns"] = Columns.from_json(meta["columns"])
    return fit_cls(**values)
