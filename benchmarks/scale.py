"""Scale: the teacher's pass over n rows and a whole cascade, n = 1e5 .. 1e7.

For each n (d = 3, all interactions, the reference function) one child
process generates the data and runs a cascade twice (cold: compilation
included; warm: compiled, another key) and then a teacher fit at the
cascade's hyperparameters (warm). The child
reports wall seconds, rows per second and its own peak resident memory
(``ru_maxrss``: data, statistics and compiled code all included).

Also measured in the same run:
- the dense matmul rate of this machine (a square float64 product), and the
  rate of the Gram accumulation alone (``stats.accumulate`` over stored
  features of the teacher's width), as a fraction of it;
- float32 against float64 at n = 1e5: test MSE of full selection and of the
  cascade (the float32 path uses the streamed QR pass).

The separately timed teacher fit holds the basis size q fixed over n
(``--n-basis``, default 216 = gss's rule at n = 1e6), so that its time ratio
per 10x rows measures the cost in n alone (``--n-basis 0``: the default rule
q ~ n^{2/9}, under which a pass costs O(n q^2)). The cascade uses the same q,
or with ``--cascade-default-q`` the default rule for student and teacher
alike (as a user would run it).

  python benchmarks/scale.py [--quick] [--sizes 100000 1000000 10000000]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import kcascade as kc  # noqa: E402
from kcascade.linalg import passes as stats  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402


def child(n, n_basis, dtype_name, cascade_default_q):
    """One size in a fresh process; prints one JSON line."""
    dtype = jnp.float32 if dtype_name == "float32" else jnp.float64
    x, y, _ = kc.datasets.sine_interaction(jax.random.key(n % 1000), n, dtype=dtype)
    xt, _, ft = kc.datasets.sine_interaction(jax.random.key(99), 20000, dtype=dtype)
    model = kc.SSANOVA(order=3, n_basis=None if cascade_default_q else n_basis or None)
    _, cold_s = common.timed(kc.cascade, model, x, y, key=jax.random.key(1), progress=True)
    c, cascade_s = common.timed(kc.cascade, model, x, y, key=jax.random.key(2), progress=True)
    fixed_q = kc.SSANOVA(order=3, n_basis=n_basis or None)
    jax.block_until_ready(fixed_q.fit(x, y, key=jax.random.key(3), hyper=c.hyper_teacher, progress=True))
    teacher, teacher_s = common.timed(fixed_q.fit, x, y, key=jax.random.key(4), hyper=c.hyper_teacher,
                                      progress=True)
    mse = float(jnp.mean((c.teacher.predict(xt) - ft) ** 2))
    q = teacher.basis.shape[0]
    q_cascade = c.teacher.basis.shape[0]
    width = teacher.structure.m + q
    print(json.dumps(dict(
        n=n, q=q, q_cascade=q_cascade, q_student=c.student.basis.shape[0], width=width, dtype=dtype_name, cascade_cold_s=cold_s, cascade_s=cascade_s,
        student_s=c.timings["student"],
        teacher_in_cascade_s=c.timings["teacher"], teacher_s=teacher_s, rows_per_s=n / teacher_s,
        pass_gflops=2.0 * n * width ** 2 / teacher_s / 1e9, mse=mse,
        peak_rss_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20)))


def gram_rate(width, n_rows=200_000, reps=3):
    """GFLOP/s of ``stats.accumulate`` over stored features (n_rows, width): the
    Gram accumulation alone, at the chunk size the fit uses."""
    z = jax.random.normal(jax.random.key(1), (n_rows, width))
    y = jax.random.normal(jax.random.key(2), (n_rows,))
    chunk = stats.default_chunk(n_rows, width * 19)  # the fit's chunks hold K = 19 blocks
    acc = jax.jit(lambda a, b: stats.accumulate(lambda c: c, a, b, chunk=chunk))
    jax.block_until_ready(acc(z, y))
    best = min(common.timed(acc, z, y)[1] for _ in range(reps))
    return 2.0 * n_rows * width ** 2 / best / 1e9


def float32_check(n, reps):
    rows = []
    for rep in range(reps):
        x, y, _ = kc.datasets.sine_interaction(jax.random.key(3000 + rep), n)
        xt, _, ft = kc.datasets.sine_interaction(jax.random.key(4000 + rep), 20000)
        model, key = kc.SSANOVA(order=3), jax.random.key(rep)
        row = dict(n=n, rep=rep)
        for name, dt in (("float64", jnp.float64), ("float32", jnp.float32)):
            xs, ys = x.astype(dt), y.astype(dt)
            full, full_s = common.timed(model.fit, xs, ys, key=key)
            casc, casc_s = common.timed(kc.cascade, model, xs, ys, key=key)
            for label, fit in (("full", full), ("kcas", casc.teacher)):
                pred = np.asarray(fit.predict(xt.astype(dt)), np.float64)
                row[f"{label}_mse_{name}"] = float(np.mean((pred - np.asarray(ft)) ** 2))
            row[f"full_s_{name}"], row[f"kcas_s_{name}"] = full_s, casc_s
        row["full_ratio"] = row["full_mse_float32"] / row["full_mse_float64"]
        row["kcas_ratio"] = row["kcas_mse_float32"] / row["kcas_mse_float64"]
        rows.append(row)
        common.print_table([row], ["n", "rep", "full_ratio", "kcas_ratio", "full_s_float64", "full_s_float32"])
    return rows


def plot(rows, path):
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    ns = [r["n"] for r in rows]
    axes[0].loglog(ns, [r["cascade_cold_s"] for r in rows], "^-", label="cascade (cold)")
    axes[0].loglog(ns, [r["cascade_s"] for r in rows], "o-", label="cascade (warm)")
    axes[0].loglog(ns, [r["teacher_s"] for r in rows], "s-", label="teacher fit (warm)")
    ref = rows[0]["teacher_s"]
    axes[0].loglog(ns, [ref * n / ns[0] for n in ns], "k:", label="linear in n")
    axes[0].set_xlabel("rows n")
    axes[0].set_ylabel("wall seconds")
    axes[0].legend()
    axes[1].semilogx(ns, [r["peak_rss_gb"] for r in rows], "o-")
    axes[1].axhline(4.0, color="r", ls="--", label="4 GB target")
    axes[1].set_xlabel("rows n")
    axes[1].set_ylabel("peak resident memory (GB)")
    axes[1].legend()
    fig.suptitle(f"kcascade scale, {common.machine()}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="n = 1e4 and 1e5, no float32 check")
    ap.add_argument("--sizes", type=int, nargs="*", default=[100_000, 1_000_000, 10_000_000])
    ap.add_argument("--n-basis", type=int, default=216, help="fixed q (0: default rule)")
    ap.add_argument("--float32", action="store_true", help="run the sizes in float32")
    ap.add_argument("--f32-reps", type=int, default=1, help="replicates of the float32 check at 1e5 (0: skip)")
    ap.add_argument("--cascade-default-q", action="store_true",
                    help="the cascade uses the default basis rule (student and teacher); the fixed q "
                         "applies to the separately timed teacher fit only")
    ap.add_argument("--out", default="scale")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    dtype_name = "float32" if args.float32 else "float64"
    if args.child:
        return child(args.child, args.n_basis, dtype_name, args.cascade_default_q)
    sizes = [10_000, 100_000] if args.quick else args.sizes
    mm = common.matmul_rate()
    rows = []
    for n in sizes:
        cmd = [sys.executable, __file__, "--child", str(n), "--n-basis", str(args.n_basis)]
        cmd += ["--float32"] if args.float32 else []
        cmd += ["--cascade-default-q"] if args.cascade_default_q else []
        t0 = time.perf_counter()
        with common.stopwatch(f"child process at n = {n}"):
            out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            print(out.stderr[-3000:])
            raise SystemExit(f"child n = {n} failed")
        progress = [ln for ln in out.stderr.splitlines() if ln.startswith("[kcascade]")]
        print("\n".join(progress[-2:]))
        row = json.loads(out.stdout.strip().splitlines()[-1])
        row["process_s"] = time.perf_counter() - t0
        rows.append(row)
        common.print_table([row], ["n", "q", "q_cascade", "cascade_cold_s", "cascade_s", "teacher_s", "rows_per_s", "pass_gflops", "peak_rss_gb", "mse"])
    for a, b in zip(rows, rows[1:]):
        b["teacher_ratio_per_10x"] = (b["teacher_s"] / a["teacher_s"]) ** (1.0 / np.log10(b["n"] / a["n"]))
        b["cascade_ratio_per_10x"] = (b["cascade_s"] / a["cascade_s"]) ** (1.0 / np.log10(b["n"] / a["n"]))
    gram = gram_rate(rows[-1]["width"])
    print(f"\nmatmul {mm:.1f} GFLOP/s; Gram accumulation at width {rows[-1]['width']}: "
          f"{gram:.1f} GFLOP/s = {gram / mm:.0%} of matmul")
    common.print_table(rows, ["n", "q", "q_cascade", "cascade_cold_s", "cascade_s", "teacher_s", "teacher_ratio_per_10x",
                              "cascade_ratio_per_10x", "rows_per_s", "peak_rss_gb"])
    f32 = [] if args.quick or not args.f32_reps else float32_check(100_000, args.f32_reps)
    payload = dict(machine=common.machine(), matmul_gflops=mm, gram_gflops=gram, gram_fraction=gram / mm,
                   n_basis=args.n_basis, cascade_default_q=args.cascade_default_q, dtype=dtype_name, rows=rows,
        float32_check=f32)
    path = common.save(args.out, payload)
    plot(rows, path.replace(".json", ".png"))
    print("wrote", path)


if __name__ == "__main__":
    main()
