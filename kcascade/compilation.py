"""Opt-in persistent XLA compilation cache.

A kcascade fit is compiled once per (model, shapes); in a fresh process that
costs seconds on a CPU. JAX can keep compiled programs on disk, so a later
process with the same shapes loads them instead of compiling again.
"""
from __future__ import annotations

import os

import jax


def enable_compilation_cache(path: str | None = None) -> str:
    """Keep compiled programs in ``path`` (default ``$KCASCADE_CACHE`` or
    ``~/.cache/kcascade/xla``) and reuse them across processes. Returns the path."""
    path = path or os.environ.get("KCASCADE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "kcascade", "xla")
    os.makedirs(path, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path
