"""Compilation: the compiler options kcascade's programs are built with, and
the opt-in persistent XLA compilation cache.

A kcascade fit is compiled once per (model, shapes); in a fresh process that
costs seconds on a CPU. JAX can keep compiled programs on disk, so a later
process with the same shapes loads them instead of compiling again.
"""
from __future__ import annotations

import functools
import os

import jax

# XLA:CPU's MLIR fusion emitters (jaxlib 0.10's default) spend most of a
# kcascade program's compile time generating code for hundreds of small fused
# kernels (O(q) and O(q^2) work; the heavy work is in library matrix products
# and LAPACK, untouched by this). The older loop emitters compile the
# SS-ANOVA selection program in 4.6 s instead of 6.4 s and the fixed-
# hyperparameter fit in 1.4 s instead of 3.0 s (n = 5000, d = 3, order 3,
# 2-core CPU), with the same results and run time.
#
# LLVM at optimisation level 1 instead of XLA's default: the selection
# program compiles in 2.6 s instead of 3.2 s (sine3 student) and 2.6 instead
# of 3.3 s (full selection at n = 2e4), with the same warm run time (0.13 /
# 0.14 s and 1.02 / 1.00 s) and the same teacher pass at n = 1e6 (0.985 /
# 0.978 s); level 0 compiles in 1.2 s but runs 1.5-1.8x slower.
CPU_COMPILER_OPTIONS = {"xla_cpu_use_fusion_emitters": False, "xla_backend_optimization_level": 1}


def jit(fun, **kwargs):
    """``jax.jit(fun, **kwargs)``, compiled with ``CPU_COMPILER_OPTIONS`` when
    the default backend is the CPU (the backend's own defaults elsewhere).
    Called inside another trace (``jit``, ``vmap``, ``grad``) it is the plain
    ``jax.jit``, part of the caller's program and compiled with its options.
    ``.lower(*args)`` lowers the top-level program (arrays may be
    ``jax.ShapeDtypeStruct``); ``.lower(*args).compile()`` compiles it without
    running it, and a later call with matching arguments reuses it."""
    plain = jax.jit(fun, **kwargs)
    cpu = jax.jit(fun, compiler_options=CPU_COMPILER_OPTIONS, **kwargs)

    @functools.wraps(fun)
    def call(*args, **kw):
        # options may only be given to a top-level jit: inside a trace the
        # plain one is inlined into the caller's program
        traced = any(isinstance(a, jax.core.Tracer) for a in jax.tree_util.tree_leaves((args, kw)))
        top = not traced and jax.default_backend() == "cpu"
        return (cpu if top else plain)(*args, **kw)

    def lower(*args, **kw):
        # ahead-of-time lowering of the top-level program: ``lower(...).compile()``
        # fills the same cache that a later call of ``call`` looks in
        return (cpu if jax.default_backend() == "cpu" else plain).lower(*args, **kw)

    call.lower = lower
    return call


def row_bucket(n: int) -> int:
    """The padded row count a fit of n rows compiles for: n rounded up to four
    significant binary digits (8 sizes per doubling, at most 1/8 of padding),
    so that a new n reuses a compiled fit. Rows below 64 are not padded."""
    if n < 64:
        return int(n)
    e = int(n).bit_length() - 4
    return -(-int(n) // (1 << e)) << e


def enable_compilation_cache(path: str | None = None) -> str:
    """Keep compiled programs in ``path`` (default ``$KCASCADE_CACHE`` or
    ``~/.cache/kcascade/xla``) and reuse them across processes. Returns the path."""
    path = path or os.environ.get("KCASCADE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "kcascade", "xla")
    os.makedirs(path, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path
