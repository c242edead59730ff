"""Rows streamed from disk: the cascade on a memory-mapped ``.npy`` source
against the same cascade on the rows in memory.

For each n (d = 3, all interactions, order 3, the reference function
``kc.datasets.sine_interaction_truth`` with unit noise) the rows are written
to ``.npy`` files one million rows at a time (never held whole), then one
child process per run fits:
- ``stream``: ``kc.cascade(model, kc.NpySource(...))``: the students' rows
  are read with ``take``, the teacher reads the file three times in chunks
  of 65,536 rows (cold: the first call in the process; warm: a second call,
  another key);
- ``memory``: the rows loaded, ``kc.cascade(model, x, y)`` (cold, warm),
  where it fits in memory (``--memory-max``).
Each child reports wall seconds, test MSE against the truth on 20,000 fresh
rows, and its peak resident memory (``ru_maxrss``: with the memory map, the
pages of the file it touched count while they stay resident).

  python benchmarks/stream.py [--quick] [--sizes 1000000 10000000] [--warm-max 2000000] [--tag 1e8]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))


def write_rows(folder, n, seed, block=1_000_000):
    """x (n, 3) and y (n,) as .npy files written block by block."""
    from numpy.lib.format import open_memmap
    import jax
    jax.config.update("jax_enable_x64", True)
    import kcascade as kc
    xs = open_memmap(os.path.join(folder, "x.npy"), mode="w+", dtype=np.float64, shape=(n, 3))
    ys = open_memmap(os.path.join(folder, "y.npy"), mode="w+", dtype=np.float64, shape=(n,))
    rng = np.random.default_rng(seed)
    for start in range(0, n, block):
        stop = min(n, start + block)
        x = rng.uniform(0, 1, (stop - start, 3))
        xs[start:stop] = x
        ys[start:stop] = np.asarray(kc.datasets.sine_interaction_truth(x)) + rng.normal(size=stop - start)
    xs.flush(), ys.flush()
    del xs, ys


def child(folder, mode, warm):
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import kcascade as kc
    import common
    model = kc.SSANOVA(order=3)
    if mode == "stream":
        data = (kc.NpySource(os.path.join(folder, "x.npy"), os.path.join(folder, "y.npy")), None)
    else:
        data = (np.load(os.path.join(folder, "x.npy")), np.load(os.path.join(folder, "y.npy")))
    n = int(data[0].n_rows if mode == "stream" else data[0].shape[0])
    c, cold_s = common.timed(kc.cascade, model, *data, key=jax.random.key(1), label=f"{mode} cascade cold")
    warm_s = None
    if warm:
        c, warm_s = common.timed(kc.cascade, model, *data, key=jax.random.key(2), label=f"{mode} cascade warm")
    xt, _, ft = kc.datasets.sine_interaction(jax.random.key(99), 20000)
    mse = float(jnp.mean((c.teacher.predict(xt) - ft) ** 2))
    print(json.dumps(dict(n=n, mode=mode, cold_s=cold_s, warm_s=warm_s, student_s=c.timings["student"],
                          teacher_s=c.timings["teacher"], q=int(c.teacher.basis.shape[0]), mse=mse,
                          peak_rss_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="n = 1e5 only")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--memory-max", type=int, default=2_000_000, help="largest n also fitted in memory")
    ap.add_argument("--warm-max", type=int, default=2_000_000, help="largest n timed warm as well")
    ap.add_argument("--tag", default="", help="suffix of the results' file names")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child[0], args.child[1], args.child[2] == "warm")
    import jax
    import common
    sizes = [100_000] if args.quick else args.sizes
    rows = []
    for n in sizes:
        with tempfile.TemporaryDirectory(dir=os.environ.get("KCASCADE_STREAM_DIR")) as folder:
            with common.stopwatch(f"writing {n} rows to disk"):
                write_rows(folder, n, seed=n % 997)
            for mode in ("stream", "memory"):
                if mode == "memory" and n > args.memory_max:
                    continue
                out = subprocess.run([sys.executable, __file__, "--child", folder, mode,
                                      "warm" if n <= args.warm_max else "cold"],
                                     capture_output=True, text=True, check=True)
                rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
                print(rows[-1], flush=True)
    common.print_table(rows, ["n", "mode", "cold_s", "warm_s", "student_s", "teacher_s", "q", "mse", "peak_rss_gb"])
    path = common.save(("stream_quick" if args.quick else "stream") + (f"_{args.tag}" if args.tag else ""),
                       dict(machine=common.machine(), jax=jax.__version__, rows=rows))
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
    for mode, mark in (("stream", "o-"), ("memory", "s--")):
        sel = [r for r in rows if r["mode"] == mode]
        if sel:
            ax[0].loglog([r["n"] for r in sel], [r["warm_s"] or r["cold_s"] for r in sel], mark, label=mode)
            ax[1].loglog([r["n"] for r in sel], [r["peak_rss_gb"] for r in sel], mark, label=mode)
    ax[0].set(xlabel="n", ylabel="cascade seconds (warm, else cold)")
    ax[1].set(xlabel="n", ylabel="peak memory GB")
    ax[0].legend()
    fig.tight_layout()
    fig.savefig(path.replace(".json", ".png"), dpi=120)
    print("wrote", path)


if __name__ == "__main__":
    main()
