"""Bagged students: the cascade's teacher with B = 1, 3, 5 students against
full-sample selection, on the selection test bed's truths.

  python benchmarks/bagged_students.py [--quick] [--n 10000] [--seeds 1]
      [--cases sine3 friedman4 ...]

For each case and seed: test MSE (against the true function) of full
selection and of the KCas teacher with B students (n_s = ceil(100 n^1/4)
each), and their warm seconds. Prints per-case rows and the median and worst
ratio to full selection per B; writes results/bagged_students[_quick].json
and .png.
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
import numpy as np  # noqa: E402

import kcascade as kc  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402
import selection_bed as bed  # noqa: E402

CASES = ["subset3", "sine3", "near_linear3", "friedman4", "add4", "periodic2", "nominal3", "mixed4"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="n = 5000, three cases")
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--students", type=int, nargs="*", default=[1, 3, 5])
    ap.add_argument("--cases", nargs="*", default=CASES, choices=list(bed.CASES))
    args = ap.parse_args()
    if args.quick:
        args.n, args.cases = 5000, CASES[:3]
    rows = []
    for name in args.cases:
        model = bed.model_of(name)
        for seed in range(args.seeds):
            x, y, xt, ft = bed.data(name, "low", seed, args.n)
            key = jax.random.key(seed)
            model.fit(x, y, key=key)
            full, s_full = common.timed(model.fit, x, y, key=key)
            row = dict(case=name, n=args.n, seed=seed, full_mse=bed.mse_of(full, xt, ft), full_s=s_full)
            for b in args.students:
                kc.cascade(model, x, y, key=key, students=b)
                res, s = common.timed(kc.cascade, model, x, y, key=key, students=b)
                row[f"B{b}_ratio"] = bed.mse_of(res.teacher, xt, ft) / row["full_mse"]
                row[f"B{b}_s"] = s
            rows.append(row)
            common.print_table([row], list(row))
    summary = [dict(B=b, ratio_median=float(np.median([r[f"B{b}_ratio"] for r in rows])),
                    ratio_worst=float(max(r[f"B{b}_ratio"] for r in rows)),
                    seconds_median=float(np.median([r[f"B{b}_s"] for r in rows])),
                    full_seconds_median=float(np.median([r["full_s"] for r in rows])))
               for b in args.students]
    print(f"\nmachine: {common.machine()}")
    common.print_table(summary, list(summary[0]))
    path = common.save("bagged_students" + ("_quick" if args.quick else ""),
                       dict(machine=common.machine(), args=vars(args), rows=rows, summary=summary))
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for i, b in enumerate(args.students):
        ax.plot(np.arange(len(rows)) + 0.1 * i, [r[f"B{b}_ratio"] for r in rows], "o", label=f"B = {b}")
    ax.axhline(1.0, color="k", lw=0.8); ax.axhline(1.3, color="r", lw=0.8)
    ax.set_xticks(range(len(rows)), [r["case"] for r in rows], rotation=45, fontsize=7)
    ax.set(ylabel="KCas teacher MSE / full selection's", title=f"n = {args.n}"); ax.legend()
    fig.tight_layout()
    fig.savefig(path.replace(".json", ".png"), dpi=120)
    print(f"wrote {path} and .png")


if __name__ == "__main__":
    main()
