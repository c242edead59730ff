"""SS-ANOVA regression vs gss::ssanova on the same data: accuracy and time.

The reference problem (kc.datasets.sine_interaction, d = 3, all interactions),
full-sample GCV selection by both. Reports test MSE against the true function,
kcascade's compile time separately from its warm (compiled) fit time, and
gss's wall time for the same fit.

  python benchmarks/ssanova_fit.py [--quick] [--sizes 1000 10000] [--reps 3]
"""
from __future__ import annotations

import argparse
import sys
import tempfile

import jax

jax.config.update("jax_enable_x64", True)
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import kcascade as kc  # noqa: E402

sys.path.insert(0, __import__("os").path.dirname(__file__))
import common  # noqa: E402


def run(sizes, reps, with_gss):
    rows = []
    model = kc.SSANOVA(order=3)
    for n in sizes:
        for rep in range(reps):
            x, y, _ = kc.datasets.sine_interaction(jax.random.key(1000 + rep), n)
            xt, _, ft = kc.datasets.sine_interaction(jax.random.key(2000 + rep), 5000)
            key = jax.random.key(rep)
            _, first = common.timed(model.fit, x, y, key=key)          # compile + run
            fit, warm = common.timed(model.fit, x, y, key=key)         # compiled
            mse = float(np.mean((np.asarray(fit.predict(xt)) - np.asarray(ft)) ** 2))
            row = dict(n=n, rep=rep, kc_mse=mse, kc_warm_s=warm, kc_compile_s=first - warm)
            if with_gss:
                with tempfile.TemporaryDirectory() as wd:
                    common.write_csv(f"{wd}/tr.csv", [np.asarray(x), np.asarray(y)], ["x0", "x1", "x2", "y"])
                    common.write_csv(f"{wd}/te.csv", [np.asarray(xt)], ["x0", "x1", "x2"])
                    out = common.run_r("ssanova_gss.R", f"{wd}/tr.csv", f"{wd}/te.csv", f"{wd}/p.csv", timeout=3600)
                    pred = np.loadtxt(f"{wd}/p.csv", skiprows=1)
                row.update(gss_mse=float(np.mean((pred - np.asarray(ft)) ** 2)), gss_s=float(out["seconds"]))
                row.update(mse_ratio=row["kc_mse"] / row["gss_mse"], speedup=row["gss_s"] / row["kc_warm_s"])
            rows.append(row)
            common.print_table([row], list(row))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="n = 1000 only, one replicate")
    ap.add_argument("--sizes", type=int, nargs="*", default=[1000, 10000])
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    sizes, reps = ([1000], 1) if args.quick else (args.sizes, args.reps)
    with_gss = common.have_r_package("gss")
    if not with_gss:
        print("gss not available (Rscript or the R package missing): kcascade only")
    rows = run(sizes, reps, with_gss)
    cols = ["n", "rep", "kc_mse", "gss_mse", "mse_ratio", "kc_compile_s", "kc_warm_s", "gss_s", "speedup"]
    print(f"\nmachine: {common.machine()}")
    common.print_table(rows, cols)
    path = common.save("ssanova_fit", dict(machine=common.machine(), rows=rows))
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
    for key, label in (("kc_warm_s", "kcascade (warm)"), ("gss_s", "gss::ssanova")):
        pts = [(r["n"], r[key]) for r in rows if key in r]
        if pts:
            ax[0].loglog(*zip(*pts), "o", label=label)
    for key, label in (("kc_mse", "kcascade"), ("gss_mse", "gss::ssanova")):
        pts = [(r["n"], r[key]) for r in rows if key in r]
        if pts:
            ax[1].loglog(*zip(*pts), "o", label=label)
    ax[0].set(xlabel="n", ylabel="fit seconds"); ax[1].set(xlabel="n", ylabel="test MSE")
    ax[0].legend(); ax[1].legend(); fig.tight_layout()
    fig.savefig(path.replace(".json", ".png"), dpi=120)
    print(f"wrote {path} and .png")


if __name__ == "__main__":
    main()
