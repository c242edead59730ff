"""Network hyperparameter transfer and growth initialization.

Data: ``kc.datasets.additive_interaction`` (d = 6, noise sd 0.3), n training
rows, 20000 test rows. The teacher is an MLP of ``--width`` units x 2 hidden
layers (muP), trained for a fixed number of epochs with AdamW; the
hyperparameters are (learning rate, weight decay) on a 7 x 7 grid.

  grid        the teacher's own grid search: every candidate trained at full
              width on 80% of the rows (all at once, vmap), the best one
              refitted on all rows.
  width       the grid searched at ``--student-width`` on the same rows (muP
              carries the learning rate), weight decay copied; teacher fitted once.
  kcas        kc.cascade: the grid at the student width on n/4 rows, the
              model's default law (weight decay copied, learning rate by muP).
  kcas_emp    the same with the weight decay carried to n rows by an empirical
              law fitted on a ladder (n/16, n/8, n/4; two subsamples each) with
              laws.empirical, used only where its 95% interval excludes 0
              (Law.or_reference).
Reported: test loss (mean squared error on noisy held-out responses), the
excess loss (to the noise-free truth), and the tuning compute of each, in
training FLOPs (6 x multiply-adds per row per step, counted) and in wall seconds
(same machine, same run; compile included, as every method compiles once).

Growth: the teacher at the kcas hyperparameters trained from (a) a fresh
initialization and (b) the cascade's student widened by nets.widen
(Net2WiderNet); steps until the test loss first reaches 1.05 x and 1.10 x the
fresh teacher's best test loss along its run (evaluated every 25 steps).

  python benchmarks/nets_transfer.py [--quick] [--n 8000] [--seeds 3]
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import kcascade as kc
from kcascade import nets

sys.path.insert(0, os.path.dirname(__file__))
import common


METHODS = ("grid", "width", "kcas", "kcas_emp")


def train_flops(model: nets.NetRegressor, width: int, n_rows: int, candidates: int, d: int) -> float:
    """Training FLOPs of ``candidates`` networks of ``width`` for model.steps(n_rows) steps."""
    net = model.net(width)
    return 6.0 * nets.flops_per_row(net, d) * min(model.batch, n_rows) * model.steps(n_rows) * candidates


def selection_flops(model, width, n, d):
    n_train = n - max(1, int(round(model.val_fraction * n)))
    return train_flops(model, width, n_train, len(model.lr_grid) * len(model.wd_grid), d)


def one_seed(seed, n, width, student_width, epochs, eval_every):
    key = jax.random.key(seed)
    x, y, _ = kc.datasets.additive_interaction(jax.random.fold_in(key, 1), n)
    xt, yt, ft = kc.datasets.additive_interaction(jax.random.fold_in(key, 2), 20_000)
    d = x.shape[1]
    model = nets.NetRegressor(width=width, epochs=epochs)
    narrow = dataclasses.replace(model, select_width=student_width)
    out = {}

    def score(fit):
        pred = fit.predict(xt)
        return float(jnp.mean((pred - yt) ** 2)), float(jnp.mean((pred - ft) ** 2))

    # grid search at full width, and at the student width (muP), on all rows; teacher refitted once
    for name, selector, w in (("grid", model, width), ("width", narrow, student_width)):
        with common.stopwatch(f"{name} selection at width {w}") as watch:
            sel = selector.fit(x, y, key=key)
        t_sel = watch.seconds
        teacher = model.fit(x, y, key=key, hyper=sel.hyper)
        out[name] = dict(hyper=sel.hyper, loss=score(teacher), tune_flops=selection_flops(selector, w, n, d),
                         tune_s=t_sel)
    # the cascade with the default law (copy), student on n/4 rows
    with common.stopwatch("cascade, copy law") as watch:
        res = kc.cascade(narrow, x, y, key=jax.random.fold_in(key, 4), n_student=n // 4)
    t_casc = watch.seconds - res.timings["teacher"]
    out["kcas"] = dict(hyper=res.hyper_teacher, loss=score(res.teacher),
                       tune_flops=selection_flops(narrow, student_width, n // 4, d), tune_s=t_casc)
    # the cascade with an empirical law on a ladder
    ladder = (n // 16, n // 8, n // 4)
    with common.stopwatch("cascade, empirical law") as watch:
        fitted = kc.laws.empirical(narrow, x, y, key=jax.random.fold_in(key, 3), sizes=ladder, reps=2)
        law = fitted.or_reference()
        res_emp = kc.cascade(narrow, x, y, key=jax.random.fold_in(key, 4), law=law, n_student=n // 4)
    t_casc = watch.seconds - res_emp.timings["teacher"]
    flops = sum(2 * selection_flops(narrow, student_width, s, d) for s in ladder)
    flops += selection_flops(narrow, student_width, n // 4, d)
    out["kcas_emp"] = dict(hyper=res_emp.hyper_teacher, loss=score(res_emp.teacher), tune_flops=flops, tune_s=t_casc,
                           law=(fitted.exponent, fitted.interval, law.exponent))
    # growth: fresh vs widened student, at the cascade's hyperparameters
    hyper = res.hyper_teacher
    lr, wd = float(jnp.exp(hyper.log_lr)), float(jnp.exp(hyper.log_weight_decay))
    student = res.student
    xs, xts = (x - student.x_mean) / student.x_sd, (xt - student.x_mean) / student.x_sd
    net = model.net()
    steps = model.steps(n)
    curves = {}
    for name in ("fresh", "grown"):
        if name == "fresh":
            params = nets.init_params(net, jax.random.fold_in(key, 5), d)
            net_n = net
        else:
            net_n, params = nets.widen(student.net, student.params, width, key=jax.random.fold_in(key, 5),
                                       noise=model.grow_noise)
        tr = jax.jit(lambda p, net_n=net_n: nets.train(net_n, p, xs, y, key=jax.random.fold_in(key, 6), lr=lr,
                                                       weight_decay=wd, steps=steps, batch=model.batch,
                                                       eval_data=(xts, yt), eval_every=eval_every))(params)
        start = float(jnp.mean((net_n.apply(params, xts)[:, 0] - yt) ** 2))
        curves[name] = [start] + [float(v) for v in tr.curve]
    best = min(curves["fresh"])
    reach = {f"{k}_{f:.2f}": next((i * eval_every for i, v in enumerate(c) if v <= f * best), None)
             for f in (1.05, 1.10) for k, c in curves.items()}
    out["growth"] = dict(curves=curves, best=best, steps_to_target=reach, eval_every=eval_every)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="n = 2000, width 128, 1 seed")
    ap.add_argument("--n", type=int, default=8000)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--student-width", type=int, default=32)
    ap.add_argument("--epochs", type=float, default=30.0)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", default="nets_transfer")
    args = ap.parse_args()
    if args.quick:
        args.n, args.width, args.seeds, args.out = 2000, 128, 1, args.out + "_quick"
    eval_every = 25
    rows, growth = [], []
    for seed in range(args.seeds):
        res = one_seed(seed, args.n, args.width, args.student_width, args.epochs, eval_every)
        for m in METHODS:
            r = res[m]
            rows.append(dict(seed=seed, method=m, lr=float(jnp.exp(r["hyper"].log_lr)),
                             wd=float(jnp.exp(r["hyper"].log_weight_decay)), test_loss=r["loss"][0],
                             excess=r["loss"][1], tune_gflop=r["tune_flops"] / 1e9, tune_s=r["tune_s"],
                             law=r.get("law")))
        g = res["growth"]
        growth.append(dict(seed=seed, fresh_best=g["best"], **g["steps_to_target"], curves=g["curves"]))
        common.print_table(rows[-len(METHODS):], ["seed", "method", "lr", "wd", "test_loss", "excess", "tune_gflop",
                                                  "tune_s"])
        common.print_table(growth[-1:], [k for k in growth[-1] if k != "curves"])
    summary = []
    for m in METHODS:
        sel = [r for r in rows if r["method"] == m]
        base = [r for r in rows if r["method"] == "grid"]
        summary.append(dict(
            method=m, test_loss=float(np.mean([r["test_loss"] for r in sel])),
            loss_ratio=float(np.mean([r["test_loss"] / b["test_loss"] for r, b in zip(sel, base)])),
            worst_ratio=float(np.max([r["test_loss"] / b["test_loss"] for r, b in zip(sel, base)])),
            excess_ratio=float(np.mean([r["excess"] / b["excess"] for r, b in zip(sel, base)])),
            flop_share=float(np.mean([r["tune_gflop"] / b["tune_gflop"] for r, b in zip(sel, base)])),
            wall_share=float(np.mean([r["tune_s"] / b["tune_s"] for r, b in zip(sel, base)]))))
    print()
    common.print_table(summary, list(summary[0]))
    path = common.save(args.out, dict(machine=common.machine(), args=vars(args), rows=rows, summary=summary,
                                      growth=growth))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for m, c in zip(METHODS, ("C0", "C1", "C2", "C3")):
        sel = [r for r in rows if r["method"] == m]
        axes[0].scatter([r["tune_gflop"] for r in sel], [r["test_loss"] for r in sel], color=c, label=m)
    axes[0].set_xscale("log")
    axes[0].set_xlabel("tuning GFLOP")
    axes[0].set_ylabel("teacher test loss (MSE)")
    axes[0].legend()
    for g in growth:
        steps = np.arange(len(g["curves"]["fresh"])) * eval_every
        axes[1].semilogy(steps, g["curves"]["fresh"], "C0", alpha=0.7, label="fresh init" if g["seed"] == 0 else None)
        axes[1].semilogy(steps, g["curves"]["grown"], "C3", alpha=0.7, label="grown (Net2Wider)" if g["seed"] == 0 else None)
        axes[1].axhline(1.05 * g["fresh_best"], color="grey", lw=0.5)
    axes[1].set_xlabel("teacher training step")
    axes[1].set_ylabel("test loss")
    axes[1].legend()
    fig.suptitle(f"MLP hyperparameter transfer and growth, n = {args.n}, width {args.width}; {common.machine()}")
    fig.tight_layout()
    fig.savefig(path.replace(".json", ".png"), dpi=110)
    print("wrote", path)


if __name__ == "__main__":
    main()
