"""``python -m kcascade``: a Knowledge Cascade on the built-in example, beside
full-sample selection, with a short table of what each cost and achieved.

``python -m kcascade fit data.csv (--y price [--x a b ...] [--order 2] |
--formula "price ~ a * b + cut") [--family binomial|poisson [--weights n]
[--offset log_t]] [--cascade] [--out prefix]``: an SS-ANOVA of one column of
a CSV file on the others (needs pandas: string columns become nominal
covariates); prints the fit's summary, writes ``<prefix>_predictions.csv``
(the rows' fitted values and Bayesian standard errors; for binomial and
Poisson fits the fitted p or mu, eta and eta's standard error) and
``<prefix>_effects.png`` (binomial / Poisson: on the link scale)."""
from __future__ import annotations

import argparse
import sys
import time

import jax

from kcascade.progress import say


def fit_main(argv):
    """``python -m kcascade fit ...``; see the module docstring."""
    ap = argparse.ArgumentParser(prog="python -m kcascade fit",
                                 description="Fit an SS-ANOVA to a CSV file and report it.")
    ap.add_argument("csv", help="a CSV file with a header row")
    ap.add_argument("--y", default=None, help="the response column (or give --formula)")
    ap.add_argument("--formula", default=None,
                    help="a formula, e.g. 'price ~ carat * depth + s(hour, periodic, 0, 24) + cut' "
                         "(kcascade.formula); replaces --y, --x and --order")
    ap.add_argument("--x", nargs="*", default=None, help="covariate columns (default: every other column)")
    ap.add_argument("--order", type=int, default=2, help="interaction order (default 2)")
    ap.add_argument("--family", default="gaussian", choices=["gaussian", "binomial", "poisson"],
                    help="the response's family (default gaussian; binomial: 0/1 or proportions with --weights)")
    ap.add_argument("--weights", default=None, help="a column of prior weights (binomial: the trials)")
    ap.add_argument("--offset", default=None, help="a column of offsets on the log scale (poisson only)")
    ap.add_argument("--cascade", action="store_true", help="Knowledge Cascade instead of full-sample selection")
    ap.add_argument("--out", default=None, help="prefix of the output files (default: the CSV's name)")
    ap.add_argument("--seed", type=int, default=0, help="the basis draw's seed")
    ap.add_argument("--float32", action="store_true", help="compute in float32 (default float64)")
    args = ap.parse_args(argv)
    try:
        import pandas as pd
    except ImportError:
        ap.error("reading a CSV file needs pandas: pip install 'kcascade[frames]'")
    if not args.float32:
        jax.config.update("jax_enable_x64", True)
    import matplotlib
    matplotlib.use("Agg")

    import kcascade as kc
    from kcascade.estimators.ssanova_glm import mean_of

    frame = pd.read_csv(args.csv)

    def no_columns(cols):
        return (f"no column {cols[0]!r}" if len(cols) == 1 else f"no columns {cols}") + \
            f" in {args.csv}; columns are {list(frame.columns)}"
    extra = {}
    for opt in ("weights", "offset"):
        col = getattr(args, opt)
        if col is None:
            continue
        if col not in frame.columns:
            ap.error(f"--{opt}: {no_columns([col])}")
        if args.cascade:
            ap.error(f"--{opt}: not available with --cascade (kc.cascade takes no {opt}); leave out one of them")
        extra[opt] = frame[col].to_numpy(dtype=float)
    if args.offset is not None and args.family != "poisson":
        ap.error(f"--offset: only with --family poisson, got --family {args.family}")
    used = {c for c in (args.weights, args.offset) if c is not None}
    if args.formula is not None:
        if args.y is not None or args.x:
            ap.error("--formula: give either --formula or --y/--x, not both")
        try:
            model, x, y_col = kc.SSANOVA.from_formula(args.formula, frame, family=args.family)
        except ValueError as err:
            ap.error(str(err))
        args.y, names, y = y_col.name, list(x.columns), y_col.to_numpy(dtype=float)
    else:
        if args.y is None:
            ap.error("--y: the response column is required (or give --formula)")
        if args.y not in frame.columns:
            ap.error(f"--y: {no_columns([args.y])}")
        names = args.x if args.x else [c for c in frame.columns if c != args.y and c not in used]
        missing = [c for c in names if c not in frame.columns]
        if missing:
            ap.error(f"--x: {no_columns(missing)}")
        x = frame[names]
        y = frame[args.y].to_numpy(dtype=float)
        model = kc.SSANOVA(order=min(args.order, len(names)), family=args.family)
    key = jax.random.key(args.seed)
    say(f"{len(frame)} rows, response {args.y!r}, covariates {names}; "
         f"{'cascade' if args.cascade else 'full-sample selection'}; the first fit of a shape compiles (~10 s)")
    t0 = time.perf_counter()
    if args.cascade:
        res = kc.cascade(model, x, y, key=key, progress=True)
        fit = res.teacher
        print(res.summary(x))
    else:
        try:
            fit = jax.block_until_ready(model.fit(x, y, key=key, progress=True, **extra))
        except ValueError as err:   # the model's checks of y, weights, offset
            ap.error(str(err))
        print(fit.summary(x, **extra))
    say(f"fitted in {time.perf_counter() - t0:.1f} s")
    prefix = args.out or args.csv.rsplit(".", 1)[0]
    if args.family == "gaussian":
        mean, se = fit.predict(x, se=True)
        columns = {args.y: y, "fitted": mean, "se": se}
    else:
        offset = {"offset": extra["offset"]} if "offset" in extra else {}
        eta, se = fit.predict(x, se=True, **offset)
        columns = {args.y: y, "fitted": mean_of(args.family, eta), "eta": eta, "se_eta": se}
    pd.DataFrame(columns).to_csv(f"{prefix}_predictions.csv", index=False)
    fig = kc.plot.effects(fit)
    fig.savefig(f"{prefix}_effects.png", dpi=100)
    say(f"wrote {prefix}_predictions.csv and {prefix}_effects.png")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "fit":
        return fit_main(argv[1:])
    ap = argparse.ArgumentParser(prog="python -m kcascade", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
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
