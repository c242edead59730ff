"""Speed of the SS-ANOVA selection: warm student selections (quiet, and with
CPU-bound processes running beside them), full selection at n = 2e4, and a
cold ``kc.cascade`` in a fresh process with and without the persistent
compilation cache; compile seconds per program.

  python benchmarks/selection_speed.py [--quick] [--busy 2] [--reps 3]

Run it on an otherwise quiet machine: it starts its own busy processes for
the contended figures. Writes results/selection_speed[_quick].json and .png.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time

import jax

jax.config.update("jax_enable_x64", True)
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402
import selection_bed as bed  # noqa: E402

STUDENT_CASES = ["sine3", "friedman4", "nominal3", "sine4_order3"]


def _spin(stop):
    x = 0.0
    while not stop.is_set():
        for i in range(100_000):
            x += i * 1e-9


def warm_seconds(model, x, y, reps):
    key = jax.random.key(0)
    with common.stopwatch(f"first fit on {x.shape[0]} rows") as watch:
        jax.block_until_ready(model.fit(x, y, key=key))
    first = watch.seconds
    times = []
    for r in range(reps):
        with common.stopwatch(f"warm fit {r + 1} of {reps}") as watch:
            jax.block_until_ready(model.fit(x, y, key=jax.random.key(r)))
        times.append(watch.seconds)
    return first - float(np.median(times)), float(np.median(times)), float(max(times))


COLD = """
import sys, time, jax
jax.config.update("jax_enable_x64", True)
import kcascade as kc
if sys.argv[1] != "-":
    kc.enable_compilation_cache(sys.argv[1])
x, y, _ = kc.datasets.sine_interaction(jax.random.key(0), 5000)
t0 = time.perf_counter()
res = kc.cascade(kc.SSANOVA(order=3), x, y, key=jax.random.key(1))
jax.block_until_ready(res.teacher.coef_basis)
print("seconds=%.4f" % (time.perf_counter() - t0))
"""


def cold_cascade(cache):
    with common.stopwatch("cold cascade in a fresh process"):
        out = subprocess.run([sys.executable, "-c", COLD, cache], capture_output=True, text=True, check=True)
    return float(dict(l.split("=") for l in out.stdout.split() if "=" in l)["seconds"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="two student cases, no n = 2e4")
    ap.add_argument("--busy", type=int, default=2, help="CPU-bound processes beside the contended runs")
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    rows = []
    cases = STUDENT_CASES[:2] if args.quick else STUDENT_CASES
    for name in cases:
        model = bed.model_of(name)
        x, y, _, _ = bed.data(name, "low", 0, 1190)
        compile_s, warm, worst = warm_seconds(model, x, y, args.reps)
        stop = mp.Event()
        procs = [mp.Process(target=_spin, args=(stop,)) for _ in range(args.busy)]
        for p in procs:
            p.start()
        time.sleep(0.5)
        try:
            _, busy, busy_worst = warm_seconds(model, x, y, args.reps)
        finally:
            stop.set()
            for p in procs:
                p.join()
        rows.append(dict(what="student selection", case=name, n=1190, k=model.structure(x.shape[1]).k,
                         compile_s=compile_s, warm_s=warm, warm_worst_s=worst, busy_s=busy, busy_worst_s=busy_worst))
        common.print_table([rows[-1]], list(rows[-1]))
    if not args.quick:
        for name in ["sine3", "friedman4"]:
            model = bed.model_of(name)
            x, y, _, _ = bed.data(name, "low", 0, 20000)
            compile_s, warm, worst = warm_seconds(model, x, y, args.reps)
            rows.append(dict(what="full selection", case=name, n=20000, k=model.structure(x.shape[1]).k,
                             compile_s=compile_s, warm_s=warm, warm_worst_s=worst))
            common.print_table([rows[-1]], list(rows[-1]))
    cold = dict(what="cold kc.cascade, fresh process", case="sine_interaction order 3", n=5000,
                no_cache_s=cold_cascade("-"))
    with tempfile.TemporaryDirectory() as cache:
        cold_cascade(cache)                                # fills the cache
        cold["cache_s"] = cold_cascade(cache)
    rows.append(cold)
    common.print_table([cold], list(cold))
    print(f"\nmachine: {common.machine()}")
    path = common.save("selection_speed" + ("_quick" if args.quick else ""), dict(machine=common.machine(),
                                                                                    busy=args.busy, rows=rows))
    st = [r for r in rows if r["what"] == "student selection"]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(np.arange(len(st)) - 0.2, [r["warm_s"] for r in st], 0.4, label="quiet")
    ax.bar(np.arange(len(st)) + 0.2, [r["busy_s"] for r in st], 0.4, label=f"{args.busy} busy processes beside")
    ax.set_xticks(range(len(st)), [f"{r['case']}\nK={r['k']}" for r in st])
    ax.axhline(0.5, color="k", lw=0.8); ax.axhline(1.5, color="r", lw=0.8)
    ax.set(ylabel="warm seconds", title="student selection, n_s = 1190"); ax.legend()
    fig.tight_layout()
    fig.savefig(path.replace(".json", ".png"), dpi=120)
    print(f"wrote {path} and .png")


if __name__ == "__main__":
    main()
