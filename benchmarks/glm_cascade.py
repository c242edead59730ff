"""Binomial and Poisson SS-ANOVA: full selection and the cascade against
gss::gssanova and mgcv::gam on the same rows.

Cases (``CASES``): "ref3", the KCas authors' reference example (x ~ N(0, I_3),
logit p = x0 + 0.5 x1 + 0.2 x1 x2, all interactions); "binom4" (binomial,
d = 4, two-way model); "pois3" and "pois4" (Poisson, d = 3 and 4, two-way
models); "rare3" (binomial, rare events: p about 1.3% on average) and
"sparse3" (Poisson counts of mean about 0.05), d = 3, two-way models. Methods: kcascade full selection (``kc_full``), the cascade with its
default students (``kcas``) and with the student's eta starting the teacher's
IRLS (``kcas_warm``), with ``--law`` also the cascade whose teacher keeps
the transferred values (``kcas_law``: no reselect pass, which the default runs
from n = 4e4), gss::gssanova (its defaults) and mgcv::gam (ti() terms,
REML) through Rscript (``benchmarks/r/glm_peer.R``) when it is present.

  python benchmarks/glm_cascade.py [--quick] [--cases ref3 ...] [--sizes 3000]
      [--seeds 10] [--peer-max 5000] [--no-peers] [--score gcv|ubr|gml]
      [--alpha A] [--no-cascade] [--law] [--tag NAME]

Accuracy: MSE of the fitted means (probabilities, or Poisson means) at the
training rows against the truth (the authors' measure), and the mean held-out
deviance per row on 2000 fresh rows. Seconds: kcascade's first call in the
process (``*_first_s``: includes compilation) and a second, warm call; the
peers' fit time inside R. Teacher iterations and seconds with and without the
warm start. Writes results/glm_cascade[_quick][_TAG].json and .png.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import kcascade as kc  # noqa: E402
from kcascade.estimators import ssanova_glm  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402


def _ref3(x):
    return x[:, 0] + 0.5 * x[:, 1] + 0.2 * x[:, 1] * x[:, 2]


def _binom4(x):
    return 1.5 * jnp.sin(2 * jnp.pi * x[:, 0]) + 3.0 * (x[:, 1] - 0.5) ** 2 + 8.0 * (x[:, 2] - 0.5) * (x[:, 3] - 0.5) - 0.5


def _pois3(x):
    return 1.0 + 0.8 * jnp.sin(2 * jnp.pi * x[:, 0]) + jnp.cos(jnp.pi * x[:, 1]) * x[:, 2]


def _pois4(x):
    return 0.5 + x[:, 0] - x[:, 1] ** 2 + 0.7 * jnp.sin(2 * jnp.pi * x[:, 2] * x[:, 3])


def _rare3(x):     # rare events: p about 0.013 on average (38 events in 3000 rows)
    return jnp.sin(2 * jnp.pi * x[:, 0]) + x[:, 1] - 5.0


def _sparse3(x):   # sparse counts: mu about 0.05 on average, most counts 0
    return jnp.sin(2 * jnp.pi * x[:, 0]) + x[:, 1] - 3.5


# name: (family, d, order, covariates "normal" or "uniform", true eta)
CASES = {
    "ref3": ("binomial", 3, 3, "normal", _ref3),
    "binom4": ("binomial", 4, 2, "uniform", _binom4),
    "pois3": ("poisson", 3, 2, "uniform", _pois3),
    "pois4": ("poisson", 4, 2, "uniform", _pois4),
    "rare3": ("binomial", 3, 2, "uniform", _rare3),
    "sparse3": ("poisson", 3, 2, "uniform", _sparse3),
}


def data(name, seed, n):
    family, d, _, dist, eta_fn = CASES[name]
    kx, ky = jax.random.split(jax.random.fold_in(jax.random.key(2026), seed))
    x = jax.random.normal(kx, (n, d)) if dist == "normal" else jax.random.uniform(kx, (n, d))
    eta = eta_fn(x)
    mu = ssanova_glm.mean_of(family, eta)
    y = (jax.random.bernoulli(ky, mu) if family == "binomial" else jax.random.poisson(ky, mu)).astype(jnp.float64)
    return x, y, mu


def run_peer(peer, family, order, x, y, xt, seed, timeout):
    """Peer's fitted means at the training rows and at xt, and its seconds in R."""
    d = x.shape[1]
    with tempfile.TemporaryDirectory() as wd:
        common.write_csv(f"{wd}/tr.csv", [np.asarray(x), np.asarray(y)], [f"x{j}" for j in range(d)] + ["y"])
        common.write_csv(f"{wd}/te.csv", [np.asarray(xt)], [f"x{j}" for j in range(d)])
        try:
            out = common.run_r("glm_peer.R", peer, family, f"{wd}/tr.csv", f"{wd}/te.csv", f"{wd}/p.csv", order,
                               seed + 1, timeout=timeout)
        except Exception as exc:
            print(f"  {peer} failed or timed out: {str(exc)[:200]}")
            return None
        pred = np.loadtxt(f"{wd}/p.csv", skiprows=1)
        return pred[:len(x)], pred[len(x):], float(out["seconds"])


def deviance_per_row(family, y, mu):
    mu = np.clip(np.asarray(mu), 1e-12, 1 - 1e-12 if family == "binomial" else np.inf)
    return float(ssanova_glm.deviance(family, jnp.asarray(y), jnp.asarray(mu), 1.0)) / len(y)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="ref3 and pois3, n = 1000, 2 seeds")
    ap.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    ap.add_argument("--sizes", type=int, nargs="*", default=[3000])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--peer-max", type=int, default=5000, help="run the R peers up to this n")
    ap.add_argument("--peer-timeout", type=int, default=900)
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--score", default=None, choices=["gcv", "ubr", "gml"], help="kcascade's score (default: the model's)")
    ap.add_argument("--alpha", type=float, default=None, help="kcascade's GCV/UBR alpha (default: the model's)")
    ap.add_argument("--no-cascade", action="store_true", help="full selection only")
    ap.add_argument("--law", action="store_true",
                    help="also the cascade with teacher_lambda='law' (kcas_law: no reselect pass before the teacher)")
    ap.add_argument("--tag", default="")
    args = ap.parse_args()
    if args.quick:
        args.cases, args.sizes, args.seeds = ["ref3", "pois3"], [1000], 2
    peers = [] if args.no_peers else [p for p, pkg in (("gss", "gss"), ("mgcv", "mgcv")) if common.have_r_package(pkg)]
    name_out = "glm_cascade" + ("_quick" if args.quick else "") + (f"_{args.tag}" if args.tag else "")
    rows = []
    for name in args.cases:
        family, d, order, _, _ = CASES[name]
        model = kc.SSANOVA(order=order, family=family,
                           **{k: v for k, v in dict(score=args.score, alpha=args.alpha).items() if v is not None})
        for n in args.sizes:
            for seed in range(args.seeds):
                x, y, mu = data(name, seed, n)
                xt, yt, mut = data(name, 1000 + seed, 2000)
                row = dict(case=name, family=family, n=n, seed=seed)

                def record(label, fit, secs, first=None):
                    row[f"{label}_mse"] = float(np.mean((np.asarray(fit.predict(x, scale="response")) - np.asarray(mu)) ** 2))
                    row[f"{label}_dev"] = deviance_per_row(family, yt, fit.predict(xt, scale="response"))
                    row[f"{label}_s"] = secs
                    if first is not None:
                        row[f"{label}_first_s"] = first

                key = jax.random.key(seed)
                _, first = common.timed(model.fit, x, y, key=key, label=f"{name} full selection on {n} rows, first")
                full, secs = common.timed(model.fit, x, y, key=key, label=f"{name} full selection on {n} rows")
                record("kc_full", full, secs, first)
                row["kc_full_iterations"], row["kc_full_selections"] = full.iterations, full.selections
                variants = (("kcas", False, None), ("kcas_warm", True, None)) + (
                    (("kcas_law", False, "law"),) if args.law else ())
                for label, warm, teacher_lambda in () if args.no_cascade else variants:
                    _, first = common.timed(kc.cascade, model, x, y, key=key, warm_start=warm,
                                            teacher_lambda=teacher_lambda, label=f"{name} {label} on {n} rows, first")
                    res, secs = common.timed(kc.cascade, model, x, y, key=key, warm_start=warm,
                                             teacher_lambda=teacher_lambda, label=f"{name} {label} on {n} rows")
                    record(label, res.teacher, secs, first)
                    row[f"{label}_teacher_iterations"] = res.teacher.iterations
                    row[f"{label}_teacher_s"] = res.timings["teacher"]
                    row[f"{label}_student_s"] = res.timings["student"]
                    row[f"{label}_reselect_s"] = res.timings["reselect"]
                if n <= args.peer_max:
                    for peer in peers:
                        out = run_peer(peer, family, order, x, y, xt, seed, args.peer_timeout)
                        if out is not None:
                            tr, te, secs = out
                            row[f"{peer}_mse"] = float(np.mean((tr - np.asarray(mu)) ** 2))
                            row[f"{peer}_dev"] = deviance_per_row(family, yt, te)
                            row[f"{peer}_s"] = secs
                rows.append(row)
                common.print_table([row], [c for c in row if not c.endswith("_dev")])
                common.save(name_out, dict(machine=common.machine(), args=vars(args), rows=rows, partial=True))
    methods = ["kc_full", *([] if args.no_cascade else ["kcas", "kcas_warm", *(["kcas_law"] if args.law else [])]),
               *peers]
    summary = []
    for name in args.cases:
        for n in args.sizes:
            sel = [r for r in rows if r["case"] == name and r["n"] == n]
            for m in methods:
                have = [r for r in sel if f"{m}_mse" in r]
                if not have:
                    continue
                summary.append(dict(
                    case=name, n=n, method=m, fits=len(have),
                    mse_median=float(np.median([r[f"{m}_mse"] for r in have])),
                    mse_worst=float(max(r[f"{m}_mse"] for r in have)),
                    dev_median=float(np.median([r[f"{m}_dev"] for r in have])),
                    s_median=float(np.median([r[f"{m}_s"] for r in have])),
                    first_s_median=float(np.median([r[f"{m}_first_s"] for r in have])) if f"{m}_first_s" in have[0] else None,
                    ratio_to_full_median=float(np.median([r[f"{m}_mse"] / r["kc_full_mse"] for r in have])),
                    ratio_to_full_worst=float(max(r[f"{m}_mse"] / r["kc_full_mse"] for r in have))))
    teacher = [dict(case=r["case"], n=r["n"], seed=r["seed"], cold_start_iterations=r["kcas_teacher_iterations"],
                    warm_start_iterations=r["kcas_warm_teacher_iterations"], cold_start_s=r["kcas_teacher_s"],
                    warm_start_s=r["kcas_warm_teacher_s"]) for r in rows if "kcas_teacher_s" in r]
    print(f"\nmachine: {common.machine()}")
    common.print_table(summary, list(summary[0]))
    path = common.save(name_out, dict(machine=common.machine(), args=vars(args), rows=rows, summary=summary,
                                      teacher_start=teacher))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    labels = [f"{s['case']}\nn={s['n']}" for s in summary if s["method"] == "kc_full"]
    for i, m in enumerate(methods):
        pts = [s for s in summary if s["method"] == m]
        idx = [labels.index(f"{s['case']}\nn={s['n']}") for s in pts]
        axes[0].plot(np.array(idx) + 0.08 * i, [s["mse_median"] for s in pts], "o", label=m)
        axes[1].plot(np.array(idx) + 0.08 * i, [s["s_median"] for s in pts], "o", label=m)
    for ax, yl in zip(axes, ["MSE of fitted means (median over seeds)", "seconds (warm for kcascade, median)"]):
        ax.set_yscale("log"); ax.set_xticks(range(len(labels)), labels, fontsize=7); ax.set_ylabel(yl)
    axes[0].legend(fontsize=7)
    fig.suptitle("binomial / Poisson SS-ANOVA: kcascade vs gss::gssanova and mgcv::gam")
    fig.tight_layout()
    fig.savefig(path.replace(".json", ".png"), dpi=90)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
