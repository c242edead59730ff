"""Smoothing-spline density estimation: full selection and the cascade
against gss::ssden and this package's KDE, on the same rows.

Densities on the unit box (``CASES``): "beta2" (d = 2: a Beta mixture in x0,
x1 | x0 a Beta whose shape moves with x0; the density vanishes fast at
the edges: gss::ssden stops with "Newton iteration diverges" on it from
n = 2000), "beta3" (d = 3: beta2 and x2 | x0 ~ Beta(2, 2 + 4 x0)), and
"gauss2" / "gauss3": correlated Gaussians (sd 0.2, correlations 0.5 and
0.3) truncated to the box, positive on all of it. Model: all two-way interactions, domain [0, 1]^d
for every method (gss's ``domain``; kcascade's ``domains``).

  python benchmarks/density_cascade.py [--quick] [--cases gauss2 gauss3 beta2]
      [--sizes 2000 10000 30000] [--seeds 3] [--peer-max 10000] [--kde-max N]
      [--no-peers] [--report-only]

Held-out mean log-likelihood on 5000 fresh rows (higher is better; the
truth's own is printed beside it), and seconds (kcascade: a first call,
including compilation, then warm; gss: inside R). Writes
results/density_cascade[_quick].json and .png.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

import jax

jax.config.update("jax_enable_x64", True)
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

import kcascade as kc  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402


def _beta2(rng, n):
    pick = rng.random(n) < 0.5
    x0 = np.where(pick, rng.beta(2, 5, n), rng.beta(6, 2, n))
    return np.column_stack([x0, rng.beta(2 + 6 * x0, 3)])


def _beta2_logpdf(x):
    return (np.log(0.5 * stats.beta.pdf(x[:, 0], 2, 5) + 0.5 * stats.beta.pdf(x[:, 0], 6, 2))
            + stats.beta.logpdf(x[:, 1], 2 + 6 * x[:, 0], 3))


def _beta3(rng, n):
    x = _beta2(rng, n)
    return np.column_stack([x, rng.beta(2, 2 + 4 * x[:, 0])])


def _beta3_logpdf(x):
    return _beta2_logpdf(x[:, :2]) + stats.beta.logpdf(x[:, 2], 2, 2 + 4 * x[:, 0])


def _gauss(mean, corr):
    """A correlated Gaussian (sd 0.2) truncated to [0, 1]^d: (draw, logpdf)."""
    mean = np.asarray(mean)
    cov = 0.04 * np.asarray(corr)
    prec = np.linalg.inv(cov)
    d = len(mean)

    def quad(x):
        z = x - mean
        return np.einsum("ij,jk,ik->i", z, prec, z)

    per = 1000 if d == 2 else 160
    mids = (np.arange(per) + 0.5) / per
    grid = np.stack(np.meshgrid(*([mids] * d), indexing="ij"), -1).reshape(-1, d)
    log_norm = np.log(np.mean(np.exp(-0.5 * quad(grid))))     # box volume 1

    def draw(rng, n):
        out = np.zeros((0, d))
        while len(out) < n:
            u = rng.random((4 * n, d))
            out = np.concatenate([out, u[rng.random(4 * n) < np.exp(-0.5 * quad(u))]])
        return out[:n]

    return draw, lambda x: -0.5 * quad(x) - log_norm


_gauss2 = _gauss([0.4, 0.6], [[1, 0.5], [0.5, 1]])
_gauss3 = _gauss([0.4, 0.6, 0.5], [[1, 0.5, 0], [0.5, 1, 0.3], [0, 0.3, 1]])

CASES = {"beta2": (_beta2, _beta2_logpdf, 2), "beta3": (_beta3, _beta3_logpdf, 3),
         "gauss2": (*_gauss2, 2), "gauss3": (*_gauss3, 3)}


def run_gss(x, xt, d, seed, timeout):
    with tempfile.TemporaryDirectory() as wd:
        names = [f"x{j}" for j in range(d)]
        common.write_csv(f"{wd}/tr.csv", [x[:, j] for j in range(d)], names)
        common.write_csv(f"{wd}/te.csv", [xt[:, j] for j in range(d)], names)
        box = ",".join(["0,1"] * d)
        try:
            out = common.run_r("ssden_peer.R", f"{wd}/tr.csv", f"{wd}/te.csv", f"{wd}/p.csv", 2, box, seed + 1,
                               timeout=timeout)
        except Exception as exc:
            print(f"  gss failed or timed out: {str(exc)[:200]}")
            return None
        return np.loadtxt(f"{wd}/p.csv", skiprows=1), float(out["seconds"])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="gauss2, n = 2000, 1 seed")
    ap.add_argument("--cases", nargs="*", default=["gauss2", "gauss3", "beta2"], choices=list(CASES))
    ap.add_argument("--sizes", type=int, nargs="*", default=[2000, 10000, 30000])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--peer-max", type=int, default=10000)
    ap.add_argument("--peer-timeout", type=int, default=900)
    ap.add_argument("--kde-max", type=int, default=None,
                    help="the KDE (leave-one-out selection, O(n^2) per step) only up to this n (default: every n)")
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--report-only", action="store_true",
                    help="rebuild the summary and PNG from the rows of results/density_cascade.json")
    args = ap.parse_args()
    if args.report_only:
        import json
        saved = json.load(open(os.path.join(os.path.dirname(__file__), "results", "density_cascade.json")))
        rows = saved["rows"]
        args.cases = list(dict.fromkeys(r["case"] for r in rows))
        args.sizes = sorted({r["n"] for r in rows})
        return report(rows, argparse.Namespace(**{**saved["args"], "cases": args.cases, "sizes": args.sizes,
                                                  "partial_run": bool(saved.get("partial"))}), "density_cascade")
    if args.quick:
        args.cases, args.sizes, args.seeds = ["gauss2"], [2000], 1
    gss = not args.no_peers and common.have_r_package("gss")
    name_out = "density_cascade" + ("_quick" if args.quick else "")
    rows = []
    for name in args.cases:
        draw, logpdf, d = CASES[name]
        model = kc.SSDensity(order=2, domains=((0.0, 1.0),) * d)
        for n in args.sizes:
            for seed in range(args.seeds):
                rng = np.random.default_rng(1000 * seed + n)
                x, xt = draw(rng, n), draw(rng, 5000)
                row = dict(case=name, n=n, seed=seed, truth_ll=float(np.mean(logpdf(xt))))
                key = jax.random.key(seed)
                fits = {
                    "kc_full": lambda: model.fit(x, key=key),
                    "kcas": lambda: kc.cascade(model, x, key=key).teacher,
                    "kde_lcv": lambda: kc.KDE(selector="lcv").fit(x),
                }
                if args.kde_max is not None and n > args.kde_max:
                    del fits["kde_lcv"]
                for label, call in fits.items():
                    _, first = common.timed(call, label=f"{name} {label} on {n} rows, first")
                    fit, secs = common.timed(call, label=f"{name} {label} on {n} rows")
                    row[f"{label}_ll"] = float(np.mean(np.asarray(fit.log_density(xt))))
                    row[f"{label}_s"], row[f"{label}_first_s"] = secs, first
                if gss and n <= args.peer_max:
                    out = run_gss(x, xt, d, seed, args.peer_timeout)
                    if out is not None:
                        row["gss_ll"], row["gss_s"] = float(np.mean(out[0])), out[1]
                rows.append(row)
                common.print_table([row], list(row))
                common.save(name_out, dict(machine=common.machine(), args=vars(args), rows=rows, partial=True))
    report(rows, args, name_out)


def report(rows, args, name_out):
    """Summary table, JSON and PNG of ``rows`` (also from a partial run's JSON:
    ``--report-only``)."""
    methods = ["kc_full", "kcas", "kde_lcv", "gss"]
    summary = []
    for name in args.cases:
        for n in args.sizes:
            sel = [r for r in rows if r["case"] == name and r["n"] == n]
            for m in methods:
                have = [r for r in sel if f"{m}_ll" in r]
                if have:
                    summary.append(dict(case=name, n=n, method=m, fits=len(have),
                                        ll_median=float(np.median([r[f"{m}_ll"] for r in have])),
                                        gap_to_truth_worst=float(max(r["truth_ll"] - r[f"{m}_ll"] for r in have)),
                                        gap_to_full_worst=float(max(r["kc_full_ll"] - r[f"{m}_ll"] for r in have)),
                                        s_median=float(np.median([r[f"{m}_s"] for r in have]))))
    print(f"\nmachine: {common.machine()}")
    common.print_table(summary, list(summary[0]))
    path = common.save(name_out, dict(machine=common.machine(), args=vars(args), rows=rows, summary=summary))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for m in methods:
        for name in args.cases:
            pts = [s for s in summary if s["method"] == m and s["case"] == name]
            if pts:
                axes[0].plot([s["n"] for s in pts], [s["ll_median"] for s in pts], "o-", label=f"{m} {name}")
                axes[1].loglog([s["n"] for s in pts], [s["s_median"] for s in pts], "o-", label=f"{m} {name}")
    axes[0].set(xscale="log", xlabel="n", ylabel="held-out mean log-likelihood (median)")
    axes[1].set(xlabel="n", ylabel="seconds (kcascade warm; median)")
    axes[0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path.replace(".json", ".png"), dpi=90)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
