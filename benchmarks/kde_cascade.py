"""KDE bandwidth cascade against full-sample selection and the peers.

Data: a two-component Gaussian mixture in d dimensions with known density
(0.7 N(0, I) + 0.3 N(2, 0.25 I)). For each (d, n, replicate): held-out mean
log-likelihood on 2000 fresh points, its gap to the true density's (smaller
is better), and wall seconds, for
  kc_full     kcascade LSCV on all n rows (exact, O(n^2) per candidate)
  kc_kcas     kcascade cascade: LSCV on ceil(100 n^1/4) rows, law h ~ n^{-1/(d+4)}
  kc_full_lcv, kc_kcas_lcv  the same with likelihood CV (the criterion of cv_ml)
  sk_grid     scikit-learn KernelDensity + GridSearchCV (5-fold, 20 bandwidths,
              on standardized data: one bandwidth per dimension in sd units)
  sm_cvml     statsmodels KDEMultivariate bw="cv_ml"
  sm_cvml_eff the same with EstimatorSettings(efficient=True)
  scipy_scott scipy.stats.gaussian_kde (Scott's rule)
Each method runs only up to the n given in LIMITS (its cost grows as n^2 or
worse); the table says where each stops. kcascade seconds are warm (compiled)
with compile time reported apart; above COLD_ONLY rows a method is run once
and its (cold) seconds include compilation, a few seconds at most. Seconds
are fitting (bandwidth selection) only; evaluating the held-out points is
not timed, for any method.

  python benchmarks/kde_cascade.py [--quick] [--dims 1 2 4] [--sizes ...] [--reps 5]
"""
from __future__ import annotations

import argparse
import os
import sys

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import kcascade as kc  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402

LIMITS = dict(kc_full=30_000, kc_kcas=10 ** 6, kc_full_lcv=30_000, kc_kcas_lcv=10 ** 6, sk_grid=10_000,
              sm_cvml=1_000, sm_cvml_eff=100_000, scipy_scott=10 ** 6)
COLD_ONLY = 50_000
N_TEST = 2000


def mixture(key, n, d):
    k1, k2 = jax.random.split(key)
    comp = jax.random.bernoulli(k1, 0.3, (n, 1))
    z = jax.random.normal(k2, (n, d))
    return np.asarray(jnp.where(comp, 0.5 * z + 2.0, z))


def true_log_density(x):
    d = x.shape[1]
    a = np.log(0.7) - 0.5 * np.sum(x ** 2, 1) - 0.5 * d * np.log(2 * np.pi)
    b = np.log(0.3) - 0.5 * np.sum(((x - 2.0) / 0.5) ** 2, 1) - 0.5 * d * np.log(2 * np.pi * 0.25)
    return np.logaddexp(a, b)


def run_method(name, x, xt):
    """(held-out log densities, seconds, compile seconds or None)."""
    if name.startswith("kc_"):
        model = kc.KDE(selector="lcv" if name.endswith("_lcv") else "lscv")
        if name.startswith("kc_full"):
            def fn():
                return model.fit(x)
        else:
            def fn():
                return kc.cascade(model, x, key=jax.random.key(0)).teacher
        with common.stopwatch(f"{name} on {x.shape[0]} rows, first call") as watch:
            fit = jax.block_until_ready(fn())
        first = watch.seconds
        if x.shape[0] > COLD_ONLY and name.startswith("kc_full"):
            return np.asarray(fit.log_density(xt)), first, None
        fit, warm = common.timed(fn, label=f"{name} on {x.shape[0]} rows, warm")
        return np.asarray(fit.log_density(xt)), warm, first - warm
    with common.stopwatch(f"{name} on {x.shape[0]} rows") as watch:     # fitting only, as the peers' times
        if name == "sk_grid":
            from sklearn.model_selection import GridSearchCV
            from sklearn.neighbors import KernelDensity
            mu, sd = x.mean(0), x.std(0)
            n, d = x.shape
            grid = np.exp(np.linspace(np.log(0.05), np.log(2.0), 20)) * n ** (-1 / (d + 4)) * 3
            gs = GridSearchCV(KernelDensity(kernel="gaussian"), {"bandwidth": grid}, cv=5, n_jobs=1)
            gs.fit((x - mu) / sd)
        elif name.startswith("sm_cvml"):
            from statsmodels.nonparametric.kernel_density import EstimatorSettings, KDEMultivariate
            settings = EstimatorSettings(efficient=True) if name == "sm_cvml_eff" else None
            kde = KDEMultivariate(x, var_type="c" * x.shape[1], bw="cv_ml", defaults=settings)
        elif name == "scipy_scott":
            from scipy.stats import gaussian_kde
            kde = gaussian_kde(x.T)
    secs = watch.seconds
    if name == "sk_grid":
        ld = gs.best_estimator_.score_samples((xt - mu) / sd) - np.sum(np.log(sd))
    elif name.startswith("sm_cvml"):
        ld = np.log(np.maximum(kde.pdf(xt), 1e-300))
    else:
        ld = kde.logpdf(xt.T)
    return ld, secs, None


def run(dims, sizes, reps, methods):
    rows = []
    for d in dims:
        for n in sizes:
            for rep in range(reps):
                key = jax.random.key(10_000 * d + rep)
                x = mixture(jax.random.fold_in(key, n), n, d)
                xt = mixture(jax.random.fold_in(key, 1), N_TEST, d)
                truth = float(np.mean(true_log_density(xt)))
                for m in methods:
                    if n > LIMITS[m]:
                        continue
                    ld, secs, comp = run_method(m, x, xt)
                    ll = float(np.mean(ld))
                    row = dict(d=d, n=n, rep=rep, method=m, loglik=ll, gap=truth - ll, seconds=secs, compile_s=comp)
                    rows.append(row)
                    common.print_table([row], list(row))
    return rows


def summarise(rows):
    out = []
    keys = sorted({(r["d"], r["n"], r["method"]) for r in rows})
    for d, n, m in keys:
        sel = [r for r in rows if (r["d"], r["n"], r["method"]) == (d, n, m)]
        out.append(dict(d=d, n=n, method=m, reps=len(sel), gap=float(np.median([r["gap"] for r in sel])),
                        gap_sd=float(np.std([r["gap"] for r in sel])), seconds=float(np.median([r["seconds"] for r in sel]))))
    return out


def plot(summary, path):
    dims = sorted({s["d"] for s in summary})
    fig, axes = plt.subplots(2, len(dims), figsize=(4.5 * len(dims), 7), squeeze=False)
    for j, d in enumerate(dims):
        for m in sorted({s["method"] for s in summary}):
            sel = [s for s in summary if s["d"] == d and s["method"] == m]
            if not sel:
                continue
            ns = [s["n"] for s in sel]
            axes[0, j].loglog(ns, [max(s["gap"], 1e-5) for s in sel], "o-", label=m)
            axes[1, j].loglog(ns, [s["seconds"] for s in sel], "o-", label=m)
        axes[0, j].set_title(f"d = {d}")
        axes[0, j].set_ylabel("held-out log-lik gap to truth")
        axes[1, j].set_ylabel("wall seconds")
        axes[1, j].set_xlabel("n")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"KDE bandwidth: cascade vs full LSCV and peers, {common.machine()}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="d = 1, 2; n = 1e3, 1e4; 2 replicates")
    ap.add_argument("--dims", type=int, nargs="*", default=[1, 2, 4])
    ap.add_argument("--sizes", type=int, nargs="*", default=[1000, 10_000, 100_000, 1_000_000])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--methods", nargs="*", default=list(LIMITS))
    ap.add_argument("--no-limits", action="store_true", help="run every method at every size (full LSCV at 1e5: ~20+ min)")
    ap.add_argument("--out", default="kde_cascade")
    args = ap.parse_args()
    dims, sizes, reps = ([1, 2], [1000, 10_000], 2) if args.quick else (args.dims, args.sizes, args.reps)
    if args.no_limits:
        LIMITS.update({m: max(sizes) for m in args.methods})
    rows = run(dims, sizes, reps, args.methods)
    summary = summarise(rows)
    print()
    common.print_table(summary, ["d", "n", "method", "reps", "gap", "gap_sd", "seconds"])
    path = common.save(args.out, dict(machine=common.machine(), limits=LIMITS, rows=rows, summary=summary))
    plot(summary, path.replace(".json", ".png"))
    print("wrote", path)


if __name__ == "__main__":
    main()
