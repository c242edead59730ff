"""The empirical-law diagnostic (``kc.laws.empirical``) on the selection test
bed's smooth truths: the fitted exponent of log lambda* against log n, with
its 95% interval, beside the theory's -4/9.

  python benchmarks/law_diagnostic.py [--quick] [--n 20000] [--reps 3]

Writes results/law_diagnostic[_quick].json and .png.
"""
from __future__ import annotations

import argparse
import os
import sys

import jax

jax.config.update("jax_enable_x64", True)
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import kcascade as kc  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402
import selection_bed as bed  # noqa: E402

CASES = ["add2", "subset3", "near_linear3", "friedman4", "periodic2", "nominal3"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="two cases, n = 5000")
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    cases = CASES[:2] if args.quick else CASES
    n = 5000 if args.quick else args.n
    rows = []
    for name in cases:
        x, y, _, _ = bed.data(name, "low", 0, n)
        with common.stopwatch(f"empirical law on {name}, n = {n}"):
            emp = kc.laws.empirical(bed.model_of(name), x, y, key=jax.random.key(3), reps=args.reps)
        inside = emp.interval[0] <= emp.reference <= emp.interval[1]
        rows.append(dict(case=name, n=n, exponent=float(emp.exponent), lo=float(emp.interval[0]),
                         hi=float(emp.interval[1]), theory=float(emp.reference), theory_inside=bool(inside)))
        common.print_table([rows[-1]], list(rows[-1]))
    print(f"\nmachine: {common.machine()}")
    path = common.save("law_diagnostic" + ("_quick" if args.quick else ""), dict(machine=common.machine(), rows=rows))
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for i, r in enumerate(rows):
        ax.errorbar(i, r["exponent"], yerr=[[r["exponent"] - r["lo"]], [r["hi"] - r["exponent"]]], fmt="o")
    ax.axhline(rows[0]["theory"], color="k", lw=0.8, label="theory -4/9")
    ax.set_xticks(range(len(rows)), [r["case"] for r in rows], rotation=30, fontsize=8)
    ax.set(ylabel="fitted exponent of lambda*", title=f"empirical law, n = {n}"); ax.legend()
    fig.tight_layout()
    fig.savefig(path.replace(".json", ".png"), dpi=120)
    print(f"wrote {path} and .png")


if __name__ == "__main__":
    main()
