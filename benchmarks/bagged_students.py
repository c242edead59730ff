"""Bagged students: the cascade's teacher with B = 1, 3, 5 students against
full-sample selection, on the selection test bed's truths.

  python benchmarks/bagged_students.py [--quick] [--n 10000] [--seeds 1]
      [--cases sine3 friedman4 ...] [--extras] [--select] [--tag NAME]
      [--reuse JSON] [--no-same-model] [--no-same-basis] [--no-full-warmup]

For each case and seed: test MSE (against the true function) of full
selection and of the KCas teacher with B students (n_s = ceil(100 n^1/4)
each), and their warm seconds; ``*_ratio`` is the teacher's MSE over full
selection's with the same key (different basis points: the teacher draws
its own), ``*_ratio_same_basis`` over full selection's with the
teacher's key (``kc.teacher_key``: the teacher's own basis points when both
have the same q; since the teacher got twice the rule's q
(``model.for_teacher``) only the key is shared), ``*_ratio_same_model``
over full selection with the teacher's own model on its basis points, the
cascade's loss at equal capacity and basis (``--no-same-model`` skips it); the seconds of one teacher fit at fixed
hyperparameters (``teacher_s``, the teacher's model), so that ``B{b}_cost`` = cascade seconds /
teacher seconds. ``--extras``: also the default cascade (B = 3) with
``teacher_lambda="select"`` (``sel_*``: lambda alone re-picked by the
teacher, no group pass; ``--select`` adds only this one) and with ``refine=3`` (``ref3_*``).
``--reuse JSON`` takes full selection's figures from an earlier run.
Prints per-case rows and the median and worst ratio to full selection per
method; writes results/bagged_students[_quick][_TAG].json and .png.
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

CASES = ["subset3", "sine3", "near_linear3", "friedman4", "add4", "periodic2", "nominal3", "mixed4"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="n = 5000, three cases")
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--students", type=int, nargs="*", default=[1, 3, 5])
    ap.add_argument("--cases", nargs="*", default=CASES, choices=list(bed.CASES))
    ap.add_argument("--extras", action="store_true", help="teacher_lambda='select' and refine=3 at B = 3")
    ap.add_argument("--tag", default="", help="suffix of the result files")
    ap.add_argument("--no-same-model", dest="same_model", action="store_false",
                    help="skip full selection with the teacher's wider model (for_teacher)")
    ap.add_argument("--select", action="store_true",
                    help="also the default cascade (B = 3) with teacher_lambda='select' (sel_*; part of --extras)")
    ap.add_argument("--reuse", default=None, metavar="JSON",
                    help="take full selection's figures (full_*, and full_wide_* where there) for each (case, n, "
                         "seed) from an earlier run's JSON instead of fitting again: full selection is "
                         "deterministic given the key, and at 1e6 it is most of the run's time")
    ap.add_argument("--no-same-basis", dest="same_basis", action="store_false",
                    help="skip full selection on the teacher's key (the *_same_basis columns): one full "
                         "selection fewer per data set")
    ap.add_argument("--no-full-warmup", dest="full_warmup", action="store_false",
                    help="time full selection's first call (its compilation, a few seconds, is then inside "
                         "full_s: for n = 1e6, where one fit takes minutes)")
    ap.add_argument("--basis-draw", default="spread", choices=["uniform", "spread"], help="SSANOVA(basis_draw=...)")
    args = ap.parse_args()
    if args.quick:
        args.n, args.cases = 5000, CASES[:3]
    name_out = "bagged_students" + ("_quick" if args.quick else "") + (f"_{args.tag}" if args.tag else "")
    rows = []
    earlier = {} if args.reuse is None else {(r["case"], r["n"], r["seed"]): r
                                             for r in json.load(open(args.reuse))["rows"]}
    for name in args.cases:
        model = bed.model_of(name, basis_draw=args.basis_draw)
        for seed in range(args.seeds):
            x, y, xt, ft = bed.data(name, "low", seed, args.n)
            key = jax.random.key(seed)
            tk = kc.teacher_key(key)
            wide = model.for_teacher(x.shape[1], args.n)
            before = earlier.get((name, args.n, seed))
            if before is not None:
                row = dict(case=name, n=args.n, seed=seed, full_from=args.reuse,
                           **{k: v for k, v in before.items() if k.startswith("full_")})
                row["teacher_q"] = wide.n_basis_for(args.n)
                if args.same_model and "full_wide_mse" not in row:
                    raise SystemExit(f"--reuse {args.reuse}: no full_wide_mse for {name} seed {seed}; "
                                     "add --no-same-model")
            else:
                if args.full_warmup:
                    common.timed(model.fit, x, y, key=key)      # warm-up: compiles
                full, s_full = common.timed(model.fit, x, y, key=key)
                row = dict(case=name, n=args.n, seed=seed, full_mse=bed.mse_of(full, xt, ft), full_s=s_full)
                # full selection on the teacher's own basis points (the key the
                # cascade fits its teacher with): the ratio to it leaves out the
                # basis draw's own spread, which the first ratio includes
                if args.same_basis:
                    row["full_tk_mse"] = bed.mse_of(model.fit(x, y, key=tk), xt, ft)
                # full selection with the teacher's own model (its wider basis,
                # ``model.for_teacher``) on its basis points: the ratio to it is
                # the cascade's loss at equal capacity
                row["teacher_q"] = wide.n_basis_for(args.n)
            if args.same_model and before is None:
                wide.fit(x, y, key=tk)     # warm-up: compiles
                fit_w, row["full_wide_s"] = common.timed(wide.fit, x, y, key=tk)
                row["full_wide_mse"] = bed.mse_of(fit_w, xt, ft)
            methods = {f"B{b}": dict(students=b) for b in args.students}
            if args.extras or args.select:
                methods.update(sel=dict(students=3, teacher_lambda="select"))
            if args.extras:
                methods.update(ref3=dict(students=3, refine=3))
            for label, options in methods.items():
                common.timed(kc.cascade, model, x, y, key=key, **options)      # warm-up
                res, s = common.timed(kc.cascade, model, x, y, key=key, **options)
                mse = bed.mse_of(res.teacher, xt, ft)
                row[f"{label}_ratio"] = mse / row["full_mse"]
                if "full_tk_mse" in row:
                    row[f"{label}_ratio_same_basis"] = mse / row["full_tk_mse"]
                if args.same_model:
                    row[f"{label}_ratio_same_model"] = mse / row["full_wide_mse"]
                row[f"{label}_s"] = s
            common.timed(wide.fit, x, y, key=key, hyper=res.hyper_teacher)     # warm-up
            _, row["teacher_s"] = common.timed(wide.fit, x, y, key=key, hyper=res.hyper_teacher)
            for label in methods:
                row[f"{label}_cost"] = row[f"{label}_s"] / row["teacher_s"]
            rows.append(row)
            common.print_table([row], list(row))
            common.save(name_out, dict(machine=common.machine(), args=vars(args), rows=rows, partial=True))
    labels = ([f"B{b}" for b in args.students] + (["sel"] if args.extras or args.select else [])
              + (["ref3"] if args.extras else []))
    summary = [dict(method=m, ratio_median=float(np.median([r[f"{m}_ratio"] for r in rows])),
                    ratio_worst=float(max(r[f"{m}_ratio"] for r in rows)),
                    **(dict(same_basis_median=float(np.median([r[f"{m}_ratio_same_basis"] for r in rows])),
                            same_basis_worst=float(max(r[f"{m}_ratio_same_basis"] for r in rows)))
                       if all(f"{m}_ratio_same_basis" in r for r in rows) else {}),
                    **(dict(same_model_median=float(np.median([r[f"{m}_ratio_same_model"] for r in rows])),
                            same_model_worst=float(max(r[f"{m}_ratio_same_model"] for r in rows)))
                       if args.same_model else {}),
                    seconds_median=float(np.median([r[f"{m}_s"] for r in rows])),
                    cost_median=float(np.median([r[f"{m}_cost"] for r in rows])),
                    cost_worst=float(max(r[f"{m}_cost"] for r in rows)),
                    full_seconds_median=float(np.median([r["full_s"] for r in rows])))
               for m in labels]
    print(f"\nmachine: {common.machine()}")
    common.print_table(summary, list(summary[0]))
    path = common.save(name_out,
                       dict(machine=common.machine(), args=vars(args), rows=rows, summary=summary))
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for i, m in enumerate(labels):
        ax.plot(np.arange(len(rows)) + 0.1 * i, [r[f"{m}_ratio"] for r in rows], "o", label=m)
    ax.axhline(1.0, color="k", lw=0.8); ax.axhline(1.3, color="r", lw=0.8)
    ax.set_xticks(range(len(rows)), [r["case"] for r in rows], rotation=45, fontsize=7)
    ax.set(ylabel="KCas teacher MSE / full selection's", title=f"n = {args.n}"); ax.legend()
    fig.tight_layout()
    fig.savefig(path.replace(".json", ".png"), dpi=120)
    print(f"wrote {path} and .png")


if __name__ == "__main__":
    main()
