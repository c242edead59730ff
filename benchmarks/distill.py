"""Forward distillation on scikit-learn's bundled digits (8 x 8 images, 10 classes).

Split (fixed permutation): ``--n-train`` rows to train on, the rest held out.
Teacher: an ensemble of 5 MLPs (256 x 2 hidden units), each trained on the
training rows from its own seed. Student: an MLP with one hidden layer of
``--student-width`` units, trained the same number of steps from the same
initialization and minibatch stream (per seed) by
  hard        cross-entropy on the labels
  kd          Hinton KD from the ensemble (T = 4, alpha = 0.9)
  kd_paced    kd with PACED weights w(p) = p (1 - p), p from 8 draws
  kd_fr       kd, forward KL for the first half of the steps, reverse KL after
  kd_paced_fr both
Held-out accuracy over ``--seeds`` seeds: mean, sd, and the paired difference
to "hard" (mean and sd over seeds). Student seconds are warm wall times on the
named machine.

  python benchmarks/distill.py [--quick] [--seeds 5]
"""
from __future__ import annotations

import argparse
import os
import sys

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from kcascade import distill, nets

sys.path.insert(0, os.path.dirname(__file__))
import common

METHODS = {
    "hard": {},
    "kd": {"kd": True},
    "kd_paced": {"kd": True, "paced": (1.0, 1.0)},
    "kd_fr": {"kd": True, "schedule": "forward_then_reverse"},
    "kd_paced_fr": {"kd": True, "paced": (1.0, 1.0), "schedule": "forward_then_reverse"},
}


def digits(n_train):
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    perm = np.random.default_rng(0).permutation(len(x))
    x = (x / 16.0).astype(np.float32)
    tr, te = perm[:n_train], perm[n_train:]
    return x[tr], y[tr], x[te], y[te]


def accuracy(net, params, x, y):
    return float(jnp.mean(jnp.argmax(net.apply(params, x), -1) == y))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="2 seeds, 3 teachers, shorter training")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--n-train", type=int, default=500)
    ap.add_argument("--student-width", type=int, default=8)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--temperature", type=float, default=4.0)
    ap.add_argument("--alpha", type=float, default=0.9)
    ap.add_argument("--out", default="distill")
    args = ap.parse_args()
    members_n, teacher_steps = 5, 600
    if args.quick:
        args.seeds, args.steps, args.out, members_n, teacher_steps = 2, 600, args.out + "_quick", 3, 300
    x, y, xt, yt = digits(args.n_train)
    x, xt, y, yt = jnp.asarray(x), jnp.asarray(xt), jnp.asarray(y), jnp.asarray(yt)
    tnet = nets.make_mlp(width=256, depth=2, out=10)
    members = []
    with common.stopwatch(f"{members_n} ensemble members") as watch:
        for m in range(members_n):
            p = nets.init_params(tnet, jax.random.key(100 + m), x.shape[1])
            members.append(nets.train(tnet, p, x, y, key=jax.random.key(200 + m), lr=3e-3, weight_decay=1e-2,
                                      steps=teacher_steps, batch=64, loss="ce").params)
    t_teacher = watch.seconds
    member_acc = [accuracy(tnet, p, xt, yt) for p in members]
    ens_test = distill.ensemble_probs(jnp.stack([tnet.apply(p, xt) for p in members]))
    ens_acc = float(jnp.mean(jnp.argmax(ens_test, -1) == yt))
    probs = distill.ensemble_probs(jnp.stack([tnet.apply(p, x) for p in members]), args.temperature)
    print(f"teacher: members {np.round(member_acc, 4)}, ensemble {ens_acc:.4f}, {t_teacher:.1f} s")

    snet = nets.make_mlp(width=args.student_width, depth=1, out=10, parametrization="standard")
    rows = []
    for name, spec in METHODS.items():
        def run(p, k, spec=spec):
            return distill.train(snet, p, x, y, key=k, steps=args.steps, lr=1e-2, batch=64,
                                 teacher_probs=probs if spec.get("kd") else None, temperature=args.temperature,
                                 alpha=args.alpha, paced=spec.get("paced"), schedule=spec.get("schedule", "forward"))

        fn = jax.jit(run)
        for s in range(args.seeds):
            p0, k = nets.init_params(snet, jax.random.key(s), x.shape[1]), jax.random.key(50 + s)
            if s == 0:
                jax.block_until_ready(fn(p0, k))
            trained, secs = common.timed(fn, p0, k, label=f"{name} seed {s}")
            rows.append(dict(method=name, seed=s, accuracy=accuracy(snet, trained.params, xt, yt), seconds=secs))
            common.print_table(rows[-1:], list(rows[-1]))
    hard = {r["seed"]: r["accuracy"] for r in rows if r["method"] == "hard"}
    summary = []
    for name in METHODS:
        sel = [r for r in rows if r["method"] == name]
        acc = np.array([r["accuracy"] for r in sel])
        diff = np.array([r["accuracy"] - hard[r["seed"]] for r in sel])
        summary.append(dict(method=name, mean=float(acc.mean()), sd=float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
                            diff_vs_hard=float(diff.mean()),
                            diff_sd=float(diff.std(ddof=1)) if len(diff) > 1 else 0.0,
                            seconds=float(np.median([r["seconds"] for r in sel]))))
    print()
    common.print_table(summary, list(summary[0]))
    path = common.save(args.out, dict(machine=common.machine(), args=vars(args), teacher_members=member_acc,
                                      teacher_ensemble=ens_acc, teacher_seconds=t_teacher, rows=rows,
                                      summary=summary))
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, name in enumerate(METHODS):
        acc = [r["accuracy"] for r in rows if r["method"] == name]
        ax.scatter(np.full(len(acc), i) + np.linspace(-0.1, 0.1, len(acc)), acc, s=15)
        ax.errorbar(i + 0.25, np.mean(acc), yerr=np.std(acc), fmt="o", color="k")
    ax.axhline(ens_acc, color="grey", ls="--", label=f"teacher ensemble {ens_acc:.3f}")
    ax.set_xticks(range(len(METHODS)), list(METHODS))
    ax.set_ylabel("held-out accuracy")
    ax.set_title(f"digits, {args.n_train} training rows, student width {args.student_width}; {common.machine()}",
                 fontsize=8)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path.replace(".json", ".png"), dpi=110)
    print("wrote", path)


if __name__ == "__main__":
    main()
