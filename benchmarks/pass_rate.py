"""The teacher's pass against the machine's matmul rate.

A teacher fit at fixed hyperparameters (``SSANOVA.fit(..., hyper=...)``: the
domains, the basis draw, one narrow pass over all rows of width m + q, the
solve) timed warm, reps times; its rate counts only the Gram flops of the
pass, 2 n (m + q)^2, so everything else the fit does counts against it. The
matmul rate is a square float64 product of size 2048 measured in the same
process (best of 5). Cases: d = 3 with all interactions (order 3, K = 19
components) and d = 6 with order 2 (K = 51), x ~ U[0, 1]^d, q by gss's rule.

  python benchmarks/pass_rate.py [--quick] [--n 1000000] [--reps 6]
"""
from __future__ import annotations

import argparse
import os
import sys

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import kcascade as kc  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402

CASES = {"d3": (3, 3), "d6": (6, 2)}


def case_rates(case, n, reps):
    d, order = CASES[case]
    x = jax.random.uniform(jax.random.key(0), (n, d))
    y = jnp.sin(3 * x[:, 0]) + x[:, 1] + jax.random.normal(jax.random.key(1), (n,))
    model = kc.SSANOVA(order=order)
    k = model.structure(d).k
    hyper = kc.Hyper(jnp.asarray(-12.0), jnp.linspace(-1.0, 1.0, k))
    fit, compile_s = common.timed(model.fit, x, y, key=jax.random.key(2), hyper=hyper, label=f"{case} first fit")
    times = [common.timed(model.fit, x, y, key=jax.random.key(3 + r), hyper=hyper, label=f"{case} fit")[1]
             for r in range(reps)]
    width = fit.structure.m + fit.basis.shape[0]
    flops = 2.0 * n * width ** 2
    return dict(case=case, n=n, K=k, width=width, first_s=compile_s, best_s=min(times),
                median_s=float(np.median(times)), gflops_best=flops / min(times) / 1e9,
                gflops_median=flops / float(np.median(times)) / 1e9)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="n = 1e5, d = 3, 3 reps")
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--reps", type=int, default=6)
    args = ap.parse_args()
    n, reps, cases = (100_000, 3, ["d3"]) if args.quick else (args.n, args.reps, list(CASES))
    rows = [case_rates(case, n, reps) for case in cases]
    mm = common.matmul_rate()
    for r in rows:
        r["matmul_gflops"] = mm
        r["fraction_best"], r["fraction_median"] = r["gflops_best"] / mm, r["gflops_median"] / mm
    common.print_table(rows, ["case", "n", "K", "width", "first_s", "best_s", "median_s", "gflops_best",
                              "gflops_median", "matmul_gflops", "fraction_best", "fraction_median"])
    path = common.save("pass_rate_quick" if args.quick else "pass_rate",
                       dict(machine=common.machine(), jax=jax.__version__, rows=rows))
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.bar([r["case"] for r in rows], [r["fraction_median"] for r in rows], label="median")
    ax.scatter([r["case"] for r in rows], [r["fraction_best"] for r in rows], color="k", zorder=3, label="best")
    ax.axhline(0.3, ls="--", color="grey", label="target 30%")
    ax.set(ylabel="Gram flops rate / matmul rate", title=f"teacher fit, n = {n:.0e}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path.replace(".json", ".png"), dpi=120)
    print("wrote", path)


if __name__ == "__main__":
    main()
