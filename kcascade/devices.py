"""Placing rows on a device mesh and bringing multi-process results home."""
from __future__ import annotations

import jax

from kcascade import checks


def auto_mesh(mesh):
    """The mesh with every axis in Auto mode: a fit lets XLA place the few
    whole-data operations (ranges, the basis draw) and shards the pass itself
    explicitly (``shard_map``)."""
    if mesh is None:
        return None
    if not isinstance(mesh, jax.sharding.Mesh):
        raise ValueError(f"mesh: expected None or a jax.sharding.Mesh, got {type(mesh).__name__}")
    auto = (jax.sharding.AxisType.Auto,) * len(mesh.axis_names)
    return jax.sharding.Mesh(mesh.devices, mesh.axis_names, axis_types=auto)


def on_mesh(mesh, *arrays):
    """The arrays with rows sharded over the mesh when they divide evenly
    (global arrays always do); otherwise as given, to be padded and sharded
    inside the pass."""
    if mesh is None or arrays[0].shape[0] % mesh.size:
        return arrays
    rows = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(mesh.axis_names))
    return tuple(jax.device_put(a, rows) for a in arrays)


def local(tree):
    """A copy on this process of every leaf that spans several processes
    (results of a multi-process fit are replicated, so any local shard is whole)."""
    return jax.tree.map(lambda a: a.addressable_data(0) if checks.is_global(a) else a, tree)
