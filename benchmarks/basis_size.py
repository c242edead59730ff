"""Basis size on the selection test bed: kcascade's full selection with q =
m x gss's rule (10 n^(2/9)) for a few multiples m, against the better of
gss::ssanova and mgcv::gam (the bed's cached peer results, same rows).

For every bed truth, noise level and seed at one n: test MSE over the better
peer's with the seed's basis key; for the first seed also two more basis
keys (their max/min is the key spread). The question it answers: how much
of kcascade's (and gss's) gap to mgcv and of its key spread is the basis
size rather than the selection.

  python benchmarks/basis_size.py [--quick] [--n 1000] [--multiples 1 1.5 2]
      [--basis-draw uniform|spread] [--tag NAME]

Needs results/selection_bed_peers.json (``selection_bed.py`` fills it).
Writes results/basis_size[_quick][_TAG].json and .png.
"""
from __future__ import annotations

import argparse
import json
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


def summarise(rows, multiples):
    out = []
    for m in multiples:
        col = f"q{m:g}"
        ratio = np.array([r[col][0] / min(r["gss"], r["mgcv"]) for r in rows])
        spread = [(max(r[col]) / min(r[col]), r["case"]) for r in rows if len(r[col]) > 1]
        worst = int(np.argmax(ratio))
        out.append(dict(multiple=m, fits=len(rows), ratio_median=float(np.median(ratio)),
                        ratio_worst=float(ratio.max()),
                        worst_case=f"{rows[worst]['case']}/{rows[worst]['noise']}/s{rows[worst]['seed']}",
                        over_1_5=int((ratio > 1.5).sum()),
                        kc_over_gss_median=float(np.median([r[col][0] / r["gss"] for r in rows])),
                        kc_over_mgcv_median=float(np.median([r[col][0] / r["mgcv"] for r in rows])),
                        key_spread_median=float(np.median([s for s, _ in spread])) if spread else None,
                        key_spread_worst=float(max(spread)[0]) if spread else None,
                        key_spread_worst_case=max(spread)[1] if spread else None))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="three truths, low noise, one seed")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--multiples", type=float, nargs="*", default=[1.0, 1.5, 2.0])
    ap.add_argument("--basis-draw", default="spread", choices=["uniform", "spread"], help="SSANOVA(basis_draw=...)")
    ap.add_argument("--tag", default="")
    args = ap.parse_args()
    cache = json.load(open(os.path.join(common.RESULTS, "selection_bed_peers.json")))
    cases = ["sine3", "add4", "pure_inter2"] if args.quick else list(bed.CASES)
    noises, seeds = (["low"], [0]) if args.quick else (["low", "high"], [0, 1])
    rows = []
    for name in cases:
        for noise in noises:
            for seed in seeds:
                peer = {p: cache.get(f"{p}|{name}|{args.n}|{noise}|{seed}") for p in ("gss", "mgcv")}
                if not all(peer.values()):
                    print(f"{name}/{noise}/s{seed}: no cached peer results at n = {args.n}, skipped")
                    continue
                x, y, xt, ft = bed.data(name, noise, seed, args.n)
                row = dict(case=name, noise=noise, seed=seed, gss=peer["gss"]["mse"], mgcv=peer["mgcv"]["mse"])
                for m in args.multiples:
                    model = bed.model_of(name, n_basis=int(round(m * kc.default_n_basis(args.n))),
                                         basis_draw=args.basis_draw)
                    keys = [seed] + ([101, 102] if seed == 0 else [])
                    row[f"q{m:g}"] = [bed.mse_of(model.fit(x, y, key=jax.random.key(k)), xt, ft) for k in keys]
                rows.append(row)
                best = min(row["gss"], row["mgcv"])
                print(name, noise, seed, {c: [round(v / best, 3) for v in row[c]] for c in row if c.startswith("q")},
                      flush=True)
    summary = summarise(rows, args.multiples)
    common.print_table(summary, list(summary[0]))
    print(f"\nmachine: {common.machine()}")
    path = common.save("basis_size" + ("_quick" if args.quick else "") + (f"_{args.tag}" if args.tag else ""),
                       dict(machine=common.machine(), n=args.n, default_q=kc.default_n_basis(args.n),
                            basis_draw=args.basis_draw, rows=rows, summary=summary))
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for i, m in enumerate(args.multiples):
        ratio = [r[f"q{m:g}"][0] / min(r["gss"], r["mgcv"]) for r in rows]
        ax.boxplot(ratio, positions=[i], widths=0.5)
    ax.set_xticks(range(len(args.multiples)), [f"q x {m:g}" for m in args.multiples])
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set(ylabel="test MSE / better peer", title=f"basis size, n = {args.n}")
    fig.tight_layout()
    fig.savefig(path.replace(".json", ".png"), dpi=120)
    print(f"wrote {path} and .png")


if __name__ == "__main__":
    main()
