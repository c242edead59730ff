"""Big data against mgcv's bam(discrete = TRUE): kcascade's cascade (default
settings) and bam with ti() terms (fREML), default bases and bases raised
until bam's test MSE matches or passes kcascade's, on the same rows in the
same run.

Cases: d = 3 with all interactions (order 3; the reference function
``kc.datasets.sine_interaction_truth``), and d = 6 with order 2 (the truth
``f6`` below: two two-way interactions, a quadratic and two linear effects,
one inert column); x ~ U[0, 1]^d, unit Gaussian noise; test MSE against the
noise-free truth on 20,000 fresh rows.

kcascade runs in a child process per case (cold: the first cascade in the
process, compilation included; warm: a second one, another key) and reports
its peak resident memory; bam runs in Rscript (``r/mgcv_bam.R``, nthreads =
2), timed inside R around ``bam()`` alone (reading the data excluded), its
peak memory the R process's own VmHWM (data, model matrices and all).

  python benchmarks/bam_scale.py [--quick] [--sizes 100000 1000000] [--cases d3 d6] [--rungs 4] [--tag 1e7]
                                 [--keys 6] [--students 5]

--keys: kcascade's test MSE over cascade keys 1..keys as well (the spread
that one run's draw of students and basis points leaves). --rungs: how many of the bam ladder's settings to try at most (default,
then raised bases), for sizes where each bam fit takes minutes; --tag: the
results go to bam_scale_<tag>.json / .png.
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

# per margin: main effects, two-way, three-way (0 = mgcv's default)
LADDER = {"d3": [(0, 0, 0), (12, 8, 6), (16, 10, 7), (20, 12, 8)],
          "d6": [(0, 0, 0), (12, 8, 0), (16, 10, 0), (20, 12, 0)]}
CASES = {"d3": (3, 3), "d6": (6, 2)}


def f6(x):
    return (10 * np.sin(np.pi * x[:, 0] * x[:, 1]) + 20 * (x[:, 2] - 0.5) ** 2 + 10 * x[:, 3] * x[:, 4]
            + 5 * x[:, 0] + 2 * x[:, 3])


def truth(case, x):
    if case == "d3":
        return 10 * np.sin(np.pi * x[:, 0] * x[:, 1]) + 20 * (x[:, 2] - 0.5) ** 2 + 5 * x[:, 0]
    return f6(x)


def data(case, n, seed):
    d = CASES[case][0]
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (n, d))
    return x, truth(case, x) + rng.normal(size=n)


def test_rows(case):
    x = np.random.default_rng(12345).uniform(0, 1, (20000, CASES[case][0]))
    return x, truth(case, x)


def child(case, n, keys=2, students=None):
    import jax
    jax.config.update("jax_enable_x64", True)
    import kcascade as kc
    import common
    x, y = data(case, n, seed=n % 991)
    xt, ft = test_rows(case)
    model = kc.SSANOVA(order=CASES[case][1])
    test_mse = lambda c: float(np.mean((np.asarray(c.teacher.predict(xt)) - ft) ** 2))
    cascade = lambda k: kc.cascade(model, x, y, key=jax.random.key(k), students=students)
    first, cold_s = common.timed(cascade, 1, label=f"kcascade {case} cold")
    c, warm_s = common.timed(cascade, 2, label=f"kcascade {case} warm")
    mse = test_mse(c)
    by_key = [test_mse(first), mse] + [test_mse(cascade(k)) for k in range(3, keys + 1)]
    print(json.dumps(dict(method="kcascade KCas", case=case, n=n, students=students, cold_s=cold_s, warm_s=warm_s,
                          student_s=c.timings["student"], teacher_s=c.timings["teacher"],
                          q=int(c.teacher.basis.shape[0]), mse=mse, mse_keys=by_key,
                          peak_rss_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20)))


def run_bam(case, n, ks, folder):
    import common
    d, order = CASES[case]
    x, y = data(case, n, seed=n % 991)
    xt, ft = test_rows(case)
    train, test, out = (os.path.join(folder, f) for f in ("train.bin", "test.bin", "pred.bin"))
    np.column_stack([x, y]).astype("<f8").tofile(train)
    xt.astype("<f8").tofile(test)
    res = common.run_r("mgcv_bam.R", train, n, d, test, xt.shape[0], out, order, *ks, 2, timeout=3600)
    pred = np.fromfile(out, "<f8")
    return dict(method="bam discrete " + ("default" if not any(ks) else "k=" + "/".join(str(k) for k in ks if k)),
                case=case, n=n, cold_s=float(res["seconds"]), warm_s=float(res["seconds"]),
                edf=float(res["edf"]), mse=float(np.mean((pred - ft) ** 2)),
                peak_rss_gb=float(res["peak_kb"]) / 2 ** 20)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="n = 2e4, d = 3 only")
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--cases", nargs="+", default=["d3", "d6"], choices=sorted(CASES))
    ap.add_argument("--rungs", type=int, default=len(LADDER["d3"]),
                    help="bam settings tried at most per case (default first)")
    ap.add_argument("--tag", default=None, help="results file suffix")
    ap.add_argument("--keys", type=int, default=2,
                    help="kcascade's test MSE also over cascade keys 1..keys (mse_keys; the timed runs are keys 1, 2)")
    ap.add_argument("--students", type=int, default=None, help="kcascade's students (default: the model's)")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child[0], int(args.child[1]), int(args.child[2]),
                     None if args.child[3] == "default" else int(args.child[3]))
    import jax
    import common
    if not common.have_r_package("mgcv"):
        sys.exit("mgcv (Rscript) is needed: apt-get install -y r-base-core r-cran-mgcv")
    sizes, cases = ([20_000], ["d3"]) if args.quick else (args.sizes, args.cases)
    rows = []
    for case in cases:
        for n in sizes:
            out = subprocess.run([sys.executable, __file__, "--child", case, str(n), str(args.keys),
                                  str(args.students or "default")], capture_output=True,
                                 text=True, check=True)
            ours = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append(ours)
            print(ours, flush=True)
            with tempfile.TemporaryDirectory() as folder:
                for ks in LADDER[case][:args.rungs]:
                    r = run_bam(case, n, ks, folder)
                    r["ratio_to_kcascade_warm"] = r["warm_s"] / ours["warm_s"]
                    r["mse_ratio_to_kcascade"] = r["mse"] / ours["mse"]
                    rows.append(r)
                    print(r, flush=True)
                    if ks != (0, 0, 0) and r["mse"] <= ours["mse"]:
                        break     # bases raised until bam's accuracy matches or passes kcascade's
    common.print_table(rows, ["case", "n", "method", "cold_s", "warm_s", "mse", "edf", "q", "peak_rss_gb",
                              "ratio_to_kcascade_warm", "mse_ratio_to_kcascade"])
    path = common.save("bam_scale_quick" if args.quick else "bam_scale" + (f"_{args.tag}" if args.tag else ""),
                       dict(machine=common.machine(), jax=jax.__version__, rows=rows))
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(cases), figsize=(5 * len(cases), 4), squeeze=False)
    for ax, case in zip(axes[0], cases):
        for r in (r for r in rows if r["case"] == case):
            ax.scatter(r["warm_s"], r["mse"], marker="o" if r["method"].startswith("kcascade") else "s")
            ax.annotate(f'{r["method"].replace("bam discrete ", "bam ")} n={r["n"]:.0e}', (r["warm_s"], r["mse"]),
                        fontsize=7)
        ax.set(xscale="log", yscale="log", xlabel="seconds (warm)", ylabel="test MSE", title=case)
    fig.tight_layout()
    fig.savefig(path.replace(".json", ".png"), dpi=120)
    print("wrote", path)


if __name__ == "__main__":
    main()
