"""The selection test bed: SS-ANOVA smoothing-parameter selection on many
truths, seeds and sizes, against gss::ssanova and mgcv::gam on the same rows.

Truths (``CASES``): d = 2..6, interaction models fitted to additive truths,
truths on a subset of the covariates, pure interactions, a near-linear truth,
periodic and nominal covariates; each at two noise levels (noise sd = 0.3 and
1.0 times the sd of the truth). Test MSE is against the true function on
2000 fresh points. Peers run through Rscript (benchmarks/r/bed_peer.R) and are
cached in results/selection_bed_peers.json, so a run of another kcascade
version (``--tag before`` with PYTHONPATH at its checkout) reuses them.

  python benchmarks/selection_bed.py [--quick] [--sizes 1000 5000] [--seeds 5]
      [--noise low high] [--cases add2 ...] [--no-peers] [--keys 5] [--tag after]
      [--score gcv|gml]

Prints per-case rows and a summary (median and worst over cases and seeds of
kcascade's test MSE over the better peer's; key stability max/min over 5
basis keys); writes results/selection_bed[_quick][_tag].json and .png.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

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

TAU = 2.0 * np.pi


def _c(x, j):
    return x[:, j]


# name: (types ("c" cubic, "p" periodic on [0, 1), "n<L>" nominal with L levels), order, truth)
CASES = {
    "add2": ("cc", 2, lambda x: jnp.sin(TAU * x[:, 0]) + 4.0 * (x[:, 1] - 0.5) ** 2),
    "pure_inter2": ("cc", 2, lambda x: 2.0 * jnp.sin(TAU * x[:, 0]) * jnp.sin(TAU * x[:, 1])),
    "subset3": ("ccc", 2, lambda x: 3.0 * x[:, 0] * x[:, 1] + jnp.sin(3.0 * x[:, 0])),
    "sine3": ("ccc", 3, lambda x: jnp.sin(TAU * (x[:, 0] + x[:, 1] * x[:, 2]))),
    "near_linear3": ("ccc", 2, lambda x: 1.0 + 2.0 * x[:, 0] - x[:, 1] + 0.5 * x[:, 2]
                     + 0.1 * jnp.sin(TAU * x[:, 0])),
    "friedman4": ("cccc", 2, lambda x: 2.0 * jnp.sin(np.pi * x[:, 0] * x[:, 1]) + 4.0 * (x[:, 2] - 0.5) ** 2
                  + 2.0 * x[:, 3]),
    "add4": ("cccc", 2, lambda x: jnp.exp(x[:, 0]) + jnp.sin(TAU * x[:, 1]) + jnp.abs(x[:, 2] - 0.5) * 2.0
             + 0.0 * x[:, 3]),
    "sine4_order3": ("cccc", 3, lambda x: jnp.sin(TAU * x[:, 0] * x[:, 1]) + x[:, 2] * x[:, 3]
                     + jnp.cos(np.pi * x[:, 1] * x[:, 2] * x[:, 3])),
    "sparse5": ("ccccc", 2, lambda x: jnp.sin(TAU * x[:, 0]) + 2.0 * x[:, 0] * x[:, 2]),
    "add6": ("cccccc", 1, lambda x: jnp.sin(TAU * x[:, 0]) + 2.0 * x[:, 1] ** 2 + jnp.exp(-4.0 * x[:, 2])),
    "periodic2": ("pc", 2, lambda x: jnp.sin(TAU * x[:, 0]) + jnp.cos(TAU * x[:, 0]) * x[:, 1]),
    "nominal3": ("ccn4", 2, lambda x: jnp.asarray([0.0, 1.0, -0.5, 0.5])[x[:, 2].astype(int)]
                 + (1.0 + 0.5 * x[:, 2]) * jnp.sin(np.pi * x[:, 0]) + x[:, 1] ** 2),
    "mixed4": ("pcn3c", 2, lambda x: jnp.cos(TAU * x[:, 0]) * (1.0 + x[:, 1])
               + jnp.asarray([0.0, 0.7, -0.7])[x[:, 2].astype(int)] + 0.5 * x[:, 3]),
}
NOISE = {"low": 0.3, "high": 1.0}


def parse_types(types):
    out, i = [], 0
    while i < len(types):
        if types[i] == "n":
            out.append(int(types[i + 1])); i += 2
        else:
            out.append(types[i]); i += 1
    return out


def model_of(name, score="gcv", **options):
    types, order, _ = CASES[name]
    return model_for(parse_types(types), order, score, **options)


def model_for(types, order, score="gcv", **options):
    """The SS-ANOVA for column types ("c", "p" on [0, 1), or L levels);
    ``options`` are further SSANOVA fields (e.g. stall_tol)."""
    marg, dom = [], []
    for t in types:
        if isinstance(t, int):
            marg.append("nominal"); dom.append(t)
        elif t == "p":
            marg.append("periodic"); dom.append((0.0, 1.0))
        else:
            marg.append("cubic"); dom.append(None)
    return kc.SSANOVA(order=order, marginals=tuple(marg), domains=tuple(dom), score=score, **options)


def draw(name, key, n):
    types, _, f = CASES[name]
    cols = []
    for t, k in zip(parse_types(types), jax.random.split(key, 8)):
        if isinstance(t, int):
            cols.append(jax.random.randint(k, (n,), 0, t).astype(jnp.float64))
        else:
            cols.append(jax.random.uniform(k, (n,), jnp.float64))
    x = jnp.stack(cols, axis=1)
    return x, f(x)


def data(name, noise, seed, n, n_test=2000):
    base = jax.random.fold_in(jax.random.key(2026), list(CASES).index(name))
    fsd = float(jnp.std(draw(name, jax.random.fold_in(base, 99), 100_000)[1]))
    k = jax.random.fold_in(jax.random.fold_in(base, seed), n)
    x, f = draw(name, jax.random.fold_in(k, 0), n)
    y = f + NOISE[noise] * fsd * jax.random.normal(jax.random.fold_in(k, 1), (n,))
    xt, ft = draw(name, jax.random.fold_in(base, 1000 + seed), n_test)
    return x, y, xt, ft


def run_peer(peer, types, order, x, y, xt, timeout=3600):
    """Fit R's ``peer`` ("gss" or "mgcv", ``r/bed_peer.R``) to (x, y) with
    covariate ``types`` (parsed) and model ``order``; returns (predictions at
    xt, seconds inside R), or (None, None) when R fails or times out (a peer
    that fails is reported, not fatal)."""
    letters = "".join("n" if isinstance(t, int) else t for t in types)
    d = x.shape[1]
    with tempfile.TemporaryDirectory() as wd:
        common.write_csv(f"{wd}/tr.csv", [np.asarray(x), np.asarray(y)], [f"x{j}" for j in range(d)] + ["y"])
        common.write_csv(f"{wd}/te.csv", [np.asarray(xt)], [f"x{j}" for j in range(d)])
        try:
            out = common.run_r("bed_peer.R", peer, f"{wd}/tr.csv", f"{wd}/te.csv", f"{wd}/p.csv", order, letters,
                               timeout=timeout)
        except Exception as exc:
            print(f"  {peer} failed or timed out: {str(exc)[:200]}")
            return None, None
        return np.loadtxt(f"{wd}/p.csv", skiprows=1), float(out["seconds"])


def peer_fit(peer, name, x, y, xt, ft):
    types, order, _ = CASES[name]
    pred, secs = run_peer(peer, parse_types(types), order, x, y, xt)
    if pred is None:
        return None
    return dict(mse=float(np.mean((pred - np.asarray(ft)) ** 2)), s=secs)


def mse_of(fit, xt, ft):
    return float(np.mean((np.asarray(fit.predict(xt)) - np.asarray(ft)) ** 2))


def run(args):
    peers_path = os.path.join(common.RESULTS, "selection_bed_peers.json")
    cache = json.load(open(peers_path)) if os.path.exists(peers_path) else {}
    rows, keyrows = [], []
    for n in args.sizes:
        for name in args.cases:
            model = model_of(name, args.score, **({} if args.stall_tol is None else dict(stall_tol=args.stall_tol)))
            for noise in args.noise:
                for seed in range(args.seeds):
                    x, y, xt, ft = data(name, noise, seed, n)
                    key = jax.random.key(seed)
                    fit, first = common.timed(model.fit, x, y, key=key)
                    row = dict(case=name, n=n, noise=noise, seed=seed, kc_mse=mse_of(fit, xt, ft), kc_s=first)
                    if seed == 0:   # the first fit of a shape compiles: time it again warm
                        _, warm = common.timed(model.fit, x, y, key=key)
                        row.update(kc_s=warm, kc_compile_s=first - warm)
                    for peer in args.peers:
                        ck = f"{peer}|{name}|{n}|{noise}|{seed}"
                        if ck not in cache:
                            cache[ck] = peer_fit(peer, name, x, y, xt, ft)
                            json.dump(cache, open(peers_path, "w"), indent=0)
                        if cache[ck] is not None:
                            row[f"{peer}_mse"], row[f"{peer}_s"] = cache[ck]["mse"], cache[ck]["s"]
                    best = [row[f"{p}_mse"] for p in ("gss", "mgcv") if f"{p}_mse" in row]
                    if best:
                        row["ratio"] = row["kc_mse"] / min(best)
                    rows.append(row)
                    common.print_table([row], list(row))
            if args.keys > 1:
                x, y, xt, ft = data(name, args.noise[0], 0, n)
                m = [mse_of(common.timed(model.fit, x, y, key=jax.random.key(100 + i))[0], xt, ft)
                     for i in range(args.keys)]
                keyrows.append(dict(case=name, n=n, key_min=min(m), key_max=max(m), key_ratio=max(m) / min(m)))
                common.print_table([keyrows[-1]], list(keyrows[-1]))
    return rows, keyrows


def summarise(rows, keyrows):
    out = []
    for n in sorted({r["n"] for r in rows}):
        rs = [r for r in rows if r["n"] == n]
        s = dict(n=n, fits=len(rs))
        for col in ("ratio",):
            v = [r[col] for r in rs if col in r]
            if v:
                worst = max(rs, key=lambda r: r.get(col, -1))
                s.update(ratio_median=float(np.median(v)), ratio_worst=float(max(v)),
                         worst_case=f"{worst['case']}/{worst['noise']}/s{worst['seed']}")
        for p in ("kc", "gss", "mgcv"):
            v = [r[f"{p}_mse"] for r in rs if f"{p}_mse" in r]
            t = [r[f"{p}_s"] for r in rs if f"{p}_s" in r]
            if v:
                s[f"{p}_s_median"], s[f"{p}_s_worst"] = float(np.median(t)), float(max(t))
        if all("gss_mse" in r and "mgcv_mse" in r for r in rs):
            s["kc_le_both_median"] = float(np.median([r["kc_mse"] / min(r["gss_mse"], r["mgcv_mse"]) for r in rs]))
            s["gss_over_mgcv_median"] = float(np.median([r["gss_mse"] / r["mgcv_mse"] for r in rs]))
        kr = [k["key_ratio"] for k in keyrows if k["n"] == n]
        if kr:
            s.update(key_ratio_median=float(np.median(kr)), key_ratio_worst=float(max(kr)))
        out.append(s)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="n = 1000, 2 seeds, low noise, 3 keys")
    ap.add_argument("--sizes", type=int, nargs="*", default=[1000, 5000, 20000])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--noise", nargs="*", default=list(NOISE), choices=list(NOISE))
    ap.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    ap.add_argument("--keys", type=int, default=5)
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--tag", default="")
    ap.add_argument("--score", default="gcv", choices=["gcv", "gml"], help="kcascade's selection score")
    ap.add_argument("--stall-tol", type=float, default=None,
                    help="SSANOVA(stall_tol=...): the Newton search's stall tolerance, a fraction "
                         "of the estimated risk (default: the library's; 0 turns the stall test off)")
    args = ap.parse_args()
    if args.quick:
        args.sizes, args.seeds, args.noise, args.keys = [1000], 2, ["low"], 3
    args.peers = [] if args.no_peers else [p for p, pkg in (("gss", "gss"), ("mgcv", "mgcv"))
                                            if common.have_r_package(pkg)]
    t0 = time.perf_counter()
    rows, keyrows = run(args)
    summary = summarise(rows, keyrows)
    print(f"\nmachine: {common.machine()}  ({time.perf_counter() - t0:.0f} s)")
    common.print_table(summary, list(summary[0]))
    name = "selection_bed" + ("_quick" if args.quick else "") + (f"_{args.tag}" if args.tag else "")
    path = common.save(name, dict(machine=common.machine(), args=vars(args), rows=rows, keys=keyrows,
                                  summary=summary))
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.8))
    for p, mk in (("gss", "o"), ("mgcv", "s")):
        pts = [(r[f"{p}_mse"], r["kc_mse"]) for r in rows if f"{p}_mse" in r]
        if pts:
            ax[0].loglog(*zip(*pts), mk, alpha=0.6, label=f"vs {p}")
    lim = [min(r["kc_mse"] for r in rows) / 2, max(r["kc_mse"] for r in rows) * 2]
    ax[0].loglog(lim, lim, "k-", lw=0.8)
    ax[0].set(xlabel="peer test MSE", ylabel="kcascade test MSE", title="each case, seed, n"); ax[0].legend()
    if keyrows:
        ax[1].bar(range(len(keyrows)), [k["key_ratio"] for k in keyrows])
        ax[1].set_xticks(range(len(keyrows)), [f"{k['case']}\n{k['n']}" for k in keyrows], rotation=90, fontsize=6)
        ax[1].axhline(1.2, color="r", lw=0.8)
        ax[1].set(ylabel="max/min test MSE over basis keys")
    fig.tight_layout()
    fig.savefig(path.replace(".json", ".png"), dpi=120)
    print(f"wrote {path} and .png")


if __name__ == "__main__":
    main()
