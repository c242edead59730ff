"""Command line: the built-in example, fitted and summarised."""
from __future__ import annotations

import argparse
import time

import jax


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m kcascade", description=__doc__)
    ap.add_argument("--n", type=int, default=5000, help="training rows (default 5000)")
    ap.add_argument("--order", type=int, default=3, help="interaction order (default 3)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--float32", action="store_true", help="compute in float32 (default float64)")
    args = ap.parse_args(argv)
    if not args.float32:
        jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    import kcascade as kc

    k_data, k_test, k_fit = jax.random.split(jax.random.key(args.seed), 3)
    x, y, _ = kc.datasets.sine_interaction(k_data, args.n)
    x_test, _, f_test = kc.datasets.sine_interaction(k_test, 10000)
    model = kc.SSANOVA(order=args.order)
    print(f"built-in example: y = 10 sin(pi x0 x1) + 20 (x2 - 0.5)^2 + 5 x0 + N(0, 1), "
          f"x ~ U[0,1]^3, n = {args.n}; SS-ANOVA order {args.order}, GCV (alpha 1.4)")
    t0 = time.perf_counter()
    fit = jax.block_until_ready(model.fit(x, y, key=k_fit))
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    fit = jax.block_until_ready(model.fit(x, y, key=k_fit))
    warm = time.perf_counter() - t0
    mse = float(jnp.mean((fit.predict(x_test) - f_test) ** 2))
    rows = [("n", args.n), ("basis points q", fit.basis.shape[0]), ("components K", len(fit.terms)),
            ("log lambda", f"{float(fit.hyper.log_lambda):.3f}"), ("effective df", f"{float(fit.df):.1f}"),
            ("GCV score", f"{float(fit.score):.4f}"), ("sigma^2 estimate", f"{float(fit.sigma2):.4f}"),
            ("test MSE vs truth", f"{mse:.5f}"), ("fit seconds (first, incl. compile)", f"{first:.2f}"),
            ("fit seconds (warm)", f"{warm:.2f}")]
    width = max(len(r[0]) for r in rows)
    for name, val in rows:
        print(f"  {name:<{width}}  {val}")
    top = sorted(zip(fit.terms, fit.hyper.log_theta.tolist()), key=lambda t: -t[1])[:5]
    print("  largest log theta: " + ", ".join(f"{t}={v:.2f}" for t, v in top))
