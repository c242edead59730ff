"""Shared benchmark plumbing: timing, the gss runner, table/JSON/PNG output.

Every timed call and every R run is a progress phase (``kcascade.progress``):
a line on stderr when it starts, one every 5 s while it runs, and one with its
seconds when it ends, so no benchmark is silent for long. The estimators'
own progress option stays off in timed calls, so that the programs timed are
the ones a library user runs.
"""
from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import subprocess
import time

import jax
import numpy as np

from kcascade import progress

RESULTS = os.path.join(os.path.dirname(__file__), "results")
R_DIR = os.path.join(os.path.dirname(__file__), "r")


def machine() -> str:
    dev = jax.devices()[0]
    cpu = platform.processor() or platform.machine()
    return f"{dev.platform}:{dev.device_kind} ({os.cpu_count()} cores, {cpu})"


class Watch:
    """Seconds of a ``stopwatch`` block, set when the block ends."""
    seconds: float = float("nan")


@contextlib.contextmanager
def stopwatch(label: str):
    """``with stopwatch("gss on 5000 rows") as w: ...``; then ``w.seconds``.
    The block is a progress phase (start, still-running and done lines)."""
    watch = Watch()
    with progress.phase(label):
        t0 = time.perf_counter()
        try:
            yield watch
        finally:
            watch.seconds = time.perf_counter() - t0


def _label_of(fn, args) -> str:
    """"SSANOVA.fit on 5000 rows": fn's name and the rows of its first array."""
    name = (getattr(fn, "__qualname__", None) or repr(fn)).replace(".<locals>", "")
    rows = next((a.shape[0] for a in args if getattr(a, "ndim", 0) >= 1), None)
    return name if rows is None else f"{name} on {rows} rows"


def timed(fn, *args, label: str | None = None, **kwargs):
    """(result, seconds) with the result blocked on; a progress phase named
    ``label`` (default: fn's name and the rows of its first array argument)."""
    with stopwatch(label or _label_of(fn, args)) as w:
        out = jax.block_until_ready(fn(*args, **kwargs))
    return out, w.seconds


def matmul_rate(size=2048, reps=5):
    """GFLOP/s of a square matrix product of the default float dtype on this
    device (best of ``reps``, compilation apart)."""
    import jax.numpy as jnp
    a = jax.random.normal(jax.random.key(0), (size, size))
    mm = jax.jit(lambda u, v: jnp.matmul(u, v, precision=jax.lax.Precision.HIGHEST))
    jax.block_until_ready(mm(a, a))
    best = min(timed(mm, a, a, label=f"matmul {size}")[1] for _ in range(reps))
    return 2.0 * size ** 3 / best / 1e9


def have_r_package(pkg: str) -> bool:
    if shutil.which("Rscript") is None:
        return False
    return subprocess.run(["Rscript", "-e", f"library({pkg})"], capture_output=True).returncode == 0


def write_csv(path, cols, names):
    np.savetxt(path, np.column_stack(cols), delimiter=",", comments="", header=",".join(names))


def run_r(script, *args, timeout=600):
    """Run an R script from benchmarks/r; returns its key=value output lines as a dict."""
    with progress.phase(f"Rscript {script}", hint=""):
        out = subprocess.run(["Rscript", os.path.join(R_DIR, script), *map(str, args)],
                             capture_output=True, text=True, timeout=timeout, check=True)
    return dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)


def print_table(rows, columns):
    widths = [max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in columns]
    print("  ".join(c.rjust(w) for c, w in zip(columns, widths)))
    for r in rows:
        print("  ".join(_fmt(r.get(c)).rjust(w) for c, w in zip(columns, widths)))


def _fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def save(name, payload):
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, name + ".json")
    with open(path, "w") as fh:
        json.dump(payload, fh, indent=1, default=float)
    return path
