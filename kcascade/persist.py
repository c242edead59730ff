"""Saving and loading fits without pickle.

One ``.npz`` file per fit (numpy's zip of arrays, readable without
kcascade): every array of the fit under its field path (``hyper.log_theta``,
``coef_basis``, ``params.params.hidden_0.kernel``, ``teacher.coef_basis``,
...), and one entry ``__kcascade__`` holding JSON: the format version, and
for each field how to rebuild it (an array, a named tuple, a dict of arrays,
a plain value, an estimator's or a network's configuration, DataFrame
columns). Covered: ``SSANOVAFit``, ``GSSANOVAFit`` (binomial, Poisson), ``KDEFit``, ``KRRFit``, ``nets.NetFit`` and
``CascadeFit`` (its student, teacher, stages, law and timings). Nothing in
the file is executed on loading: types are looked up in a fixed table
(``_types``), so a file cannot name arbitrary code.

A KDE fit is made of its training rows, so its file holds them (``data``),
as ``save``'s docstring and the fit's ``repr`` say.
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


def _types():
    """The classes a file may name: fits, estimators, named tuples, others."""
    from kcascade.cascade.pipeline import CascadeFit, Stage
    from kcascade.estimators import (KDE, SSANOVA, GSSANOVAFit, Hyper, KDEFit, KDEHyper, KernelRidge, KRRFit, KRRHyper,
                                     SSANOVAFit, SSDensity, SSDensityFit)
    from kcascade.frames import Columns
    from kcascade.nets.mlp import MLP
    from kcascade.nets.regressor import NetFit, NetHyper, NetRegressor
    from kcascade.scaling import Law
    fits = {c.__name__: c for c in (SSANOVAFit, GSSANOVAFit, SSDensityFit, KDEFit, KRRFit, NetFit, CascadeFit)}
    configs = {c.__name__: c for c in (SSANOVA, SSDensity, KDE, KernelRidge, NetRegressor, MLP, Law)}
    tuples = {c.__name__: c for c in (Hyper, KDEHyper, KRRHyper, NetHyper, Stage)}
    return fits, configs, tuples, Columns


def _jsonable(value):
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def _config(obj) -> dict:
    import flax.linen as nn
    skip = {"parent", "name"} if isinstance(obj, nn.Module) else set()   # flax module bookkeeping
    return {f.name: _jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)
            if f.init and f.name not in skip}


def _from_config(cls, config: dict):
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(config) - known)
    if unknown:
        raise ValueError(f"path: the file's {cls.__name__} has fields {unknown} this version does not know")

    def tup(v):
        return tuple(tup(a) for a in v) if isinstance(v, list) else v

    return cls(**{k: tup(v) for k, v in config.items()})


def _encode(value, prefix, arrays, kinds):
    """How to rebuild ``value`` (JSON), its arrays put in ``arrays`` under ``prefix``."""
    fits, configs, tuples, columns_cls = kinds
    if value is None:
        return {"kind": "none"}
    if isinstance(value, (bool, int, float, str)) or (isinstance(value, np.generic) and value.ndim == 0
                                                     and not isinstance(value, np.ndarray)):
        return {"kind": "json", "value": _jsonable(value)}
    if isinstance(value, (jax.Array, np.ndarray)):
        arrays[prefix] = np.asarray(value)
        return {"kind": "array"}
    name = type(value).__name__
    if isinstance(value, tuple) and name in tuples:
        return {"kind": "tuple", "type": name,
                "fields": {f: _encode(getattr(value, f), f"{prefix}.{f}", arrays, kinds) for f in value._fields}}
    if isinstance(value, columns_cls):
        return {"kind": "columns", "value": value.to_json()}
    if name in configs and isinstance(value, configs[name]):
        return {"kind": "config", "type": name, "value": _config(value)}
    if name in fits and isinstance(value, fits[name]):
        return {"kind": "fit", "type": name,
                "fields": {f.name: _encode(getattr(value, f.name), f"{prefix}.{f.name}".lstrip("."), arrays, kinds)
                           for f in dataclasses.fields(value)}}
    if isinstance(value, dict):
        return {"kind": "dict", "fields": {str(k): _encode(v, f"{prefix}.{k}", arrays, kinds)
                                           for k, v in value.items()}}
    if isinstance(value, (tuple, list)):
        return {"kind": "list", "items": [_encode(v, f"{prefix}.{i}", arrays, kinds) for i, v in enumerate(value)]}
    raise ValueError(f"fit: cannot save a field of type {name} (at {prefix or 'the top'})")


def _decode(spec, prefix, arrays, kinds):
    fits, configs, tuples, columns_cls = kinds
    kind = spec.get("kind")
    if kind == "none":
        return None
    if kind == "json":
        return spec["value"]
    if kind == "array":
        return jnp.asarray(arrays[prefix])
    if kind == "tuple":
        cls = _lookup(tuples, spec["type"])
        return cls(*(_decode(spec["fields"][f], f"{prefix}.{f}", arrays, kinds) for f in cls._fields))
    if kind == "columns":
        return columns_cls.from_json(spec["value"])
    if kind == "config":
        return _from_config(_lookup(configs, spec["type"]), spec["value"])
    if kind == "fit":
        cls = _lookup(fits, spec["type"])
        return cls(**{k: _decode(v, f"{prefix}.{k}".lstrip("."), arrays, kinds) for k, v in spec["fields"].items()})
    if kind == "dict":
        return {k: _decode(v, f"{prefix}.{k}", arrays, kinds) for k, v in spec["fields"].items()}
    if kind == "list":
        return tuple(_decode(v, f"{prefix}.{i}", arrays, kinds) for i, v in enumerate(spec["items"]))
    raise ValueError(f"path: unknown entry kind {kind!r} in the file")


def _lookup(table, name):
    if name not in table:
        raise ValueError(f"path: unknown type {name!r} in the file; expected one of {sorted(table)}")
    return table[name]


def save(fit, path) -> str:
    """Write ``fit`` (an SSANOVAFit, GSSANOVAFit, KDEFit, NetFit or CascadeFit, not a
    vmapped batch) to ``path`` (".npz" is appended when missing); returns
    the path written. A KDE fit's file holds its training rows."""
    kinds = _types()
    fits = kinds[0]
    name = type(fit).__name__
    if name not in fits or not isinstance(fit, fits[name]):
        raise ValueError(f"fit: expected one of {sorted(fits)}, got {name}")
    path = os.fspath(path)
    if not path.endswith(".npz"):
        path += ".npz"
    arrays = {}
    spec = _encode(fit, "", arrays, kinds)
    meta = dict(format=FORMAT, version=VERSION, fit=name, spec=spec, x64=bool(jax.config.jax_enable_x64))
    with open(path, "wb") as fh:
        np.savez(fh, **arrays, **{_META_KEY: np.asarray(json.dumps(meta))})
    return path


def load(path):
    """The fit saved at ``path`` by ``save`` (arrays as jax arrays of the dtypes
    saved: float64 needs ``jax_enable_x64``, as when it was saved)."""
    kinds = _types()
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
        arrays = {k: z[k] for k in z.files if k != _META_KEY}
    if not jax.config.jax_enable_x64 and any(a.dtype == np.float64 for a in arrays.values()):
        raise ValueError(f"path: {path!r} holds float64 arrays; enable them first with "
                         "jax.config.update('jax_enable_x64', True)")
    return _decode(meta["spec"], "", arrays, kinds)
