"""Shared benchmark plumbing: timing, the gss runner, table/JSON/PNG output."""
from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import time

import jax
import numpy as np

RESULTS = os.path.join(os.path.dirname(__file__), "results")
R_DIR = os.path.join(os.path.dirname(__file__), "r")


def machine() -> str:
    dev = jax.devices()[0]
    cpu = platform.processor() or platform.machine()
    return f"{dev.platform}:{dev.device_kind} ({os.cpu_count()} cores, {cpu})"


def timed(fn, *args, **kwargs):
    """(result, seconds) with the result blocked on."""
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args, **kwargs))
    return out, time.perf_counter() - t0


def have_r_package(pkg: str) -> bool:
    if shutil.which("Rscript") is None:
        return False
    return subprocess.run(["Rscript", "-e", f"library({pkg})"], capture_output=True).returncode == 0


def write_csv(path, cols, names):
    np.savetxt(path, np.column_stack(cols), delimiter=",", comments="", header=",".join(names))


def run_r(script, *args, timeout=600):
    """Run an R script from benchmarks/r; returns its key=value output lines as a dict."""
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
