"""``python -m kcascade``: a Knowledge Cascade on the built-in example, beside
full-sample selection, with a short table of what each cost and achieved."""
from __future__ import annotations

import argparse
import time

import jax


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m kcascade", description=__doc__)
    ap.add_argument("--n", type=int, default=20000, help="training rows (default 20000)")
    ap.add_argument("--order", type=int, default=3, help="interaction order (default 3)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-full", action="store_true", help="skip full-sample selection")
    ap.add_argument("--float32", action="store_true", help="compute in float32 (default float64)")
    ap.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    ap.add_argument("--no-cache", action="store_true",
                    help="do not keep compiled programs in ~/.cache/kcascade (or $KCASCADE_CACHE)")
    args = ap.parse_args(argv)
    if not args.float32:
        jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    import kcascade as kc

    if not args.no_cache:
        kc.enable_compilation_cache()
    k_data, k_test, k_fit = jax.random.split(jax.random.key(args.seed), 3)
    x, y, _ = kc.datasets.sine_interaction(k_data, args.n)
    x_test, _, f_test = kc.datasets.sine_interaction(k_test, 10000)
    model = kc.SSANOVA(order=args.order)
    print("built-in example: y = 10 sin(pi x0 x1) + 20 (x2 - 0.5)^2 + 5 x0 + N(0, 1), x ~ U[0,1]^3")
    print(f"SS-ANOVA, order {args.order} ({len(model.structure(3).names)} smoothing parameters), GCV alpha 1.4, "
          f"{'float32' if args.float32 else 'float64'}, {jax.devices()[0].platform}\n")

    res = kc.cascade(model, x, y, key=k_fit, progress=not args.quiet)
    mse = float(jnp.mean((res.teacher.predict(x_test) - f_test) ** 2))
    t = res.timings
    print("Knowledge Cascade (student selects, law transfers, teacher fits once)")
    print(f"  n = {res.n}, student n_s = {res.n_student} (ceil(100 n^1/4)), law {res.law.name}")
    print(f"  lambda_s -> lambda_n: {float(jnp.exp(res.hyper_student.log_lambda)):.4g} -> "
          f"{float(jnp.exp(res.hyper_teacher.log_lambda)):.4g}")
    print(f"  test MSE vs truth: {mse:.5f}")
    print(f"  seconds (first run, compile included): student {t['student']:.2f}, transfer {t['transfer']:.4f}, "
          f"teacher {t['teacher']:.2f}, total {t['total']:.2f}")
    res = kc.cascade(model, x, y, key=k_fit, progress=not args.quiet)
    print(f"  seconds (warm):                        student {res.timings['student']:.2f}, "
          f"transfer {res.timings['transfer']:.4f}, teacher {res.timings['teacher']:.2f}, total {res.timings['total']:.2f}")
    if args.no_full:
        return
    print("\nFull-sample selection (every smoothing parameter chosen on all n rows)")
    t0 = time.perf_counter()
    fit = jax.block_until_ready(model.fit(x, y, key=k_fit, progress=not args.quiet))
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    fit = jax.block_until_ready(model.fit(x, y, key=k_fit, progress=not args.quiet))
    warm = time.perf_counter() - t0
    full_mse = float(jnp.mean((fit.predict(x_test) - f_test) ** 2))
    print(f"  n = {args.n}, lambda = {float(jnp.exp(fit.hyper.log_lambda)):.4g}")
    print(f"  test MSE vs truth: {full_mse:.5f}")
    print(f"  seconds: first run {first:.2f}, warm {warm:.2f}")
    change, speed = 100.0 * (mse / full_mse - 1.0), warm / res.timings["total"]
    pace = f"{speed:.1f}x faster than" if speed >= 1 else f"{1 / speed:.1f}x slower than"
    print(f"\nKnowledge Cascade: {pace} full selection (warm), "
          f"test MSE {abs(change):.1f}% {'above' if change > 0 else 'below'} full selection's.")
