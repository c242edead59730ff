"""Markdown tables for the README from benchmarks/results/*.json.

  python benchmarks/report.py [ssanova_cascade.json ...]
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np

RESULTS = os.path.join(os.path.dirname(__file__), "results")


def fmt(v, digits=3):
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    return f"{v:.{digits}g}"


def per_rep_ratio(rows, n, a, b):
    """Median over replicates of mse(a)/mse(b) on the same data."""
    by = {}
    for r in rows:
        if r.get("n") == n and "mse" in r and "data" not in r:
            by.setdefault(r["rep"], {})[r["method"]] = r["mse"]
    vals = [d[a] / d[b] for d in by.values() if a in d and b in d]
    return float(np.median(vals)) if vals else None


def cascade_tables(payload, cold=None):
    rows, table = payload["rows"], payload["summary"]
    cold_rows = (cold or {}).get("rows", [])
    out = [f"Machine: {payload['machine']}; {payload['reps']} replicates (medians).", ""]
    out.append("| n | full MSE | KCas MSE | KCas+refine3 MSE | gss MSE | mgcv MSE | KCas/full MSE (ratio of medians; median of per-rep ratios) | refine3/full |")
    out.append("|---|---|---|---|---|---|---|---|")
    for r in table:
        n = r["n"]
        out.append(f"| {n} | {fmt(r['full_mse'])} | {fmt(r['kcas_mse'])} | {fmt(r['kcas_refine3_mse'])} | {fmt(r['gss_mse'])} | "
                   f"{fmt(r['mgcv_mse'])} | {fmt(r['kcas/full mse'])}; {fmt(per_rep_ratio(rows, n, 'kcas', 'full'))} | "
                   f"{fmt(per_rep_ratio(rows, n, 'kcas_refine3', 'full'))} |")
    out += ["", "| n | full s | KCas s | KCas+refine3 s | teacher fit s | gss s | mgcv s | KCas / teacher | full / KCas | gss / KCas |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for r in table:
        out.append(f"| {r['n']} | {fmt(r['full_s'])} | {fmt(r['kcas_s'])} | {fmt(r['kcas_refine3_s'])} | {fmt(r['teacher_s'])} | "
                   f"{fmt(r['gss_s'])} | {fmt(r['mgcv_s'])} | {fmt(r['kcas/teacher time'])} | {fmt(r['full/kcas time'])} | "
                   f"{fmt(r['gss/kcas warm'])} |")
    if cold_rows:
        out += ["", "| n | method | cold s (empty cache) | cold s (compilation cache) |", "|---|---|---|---|"]
        for r in cold_rows:
            out.append(f"| {r['n']} | {r['method']} | {fmt(r['cold_s'])} | {fmt(r['cold_cached_s'])} |")
    skipped = [r for r in rows if "skipped" in r]
    if skipped:
        out += ["", "Skipped: " + "; ".join(f"{r['method']} at n={r['n']} ({r['skipped']})" for r in skipped)]
    dia = [r for r in rows if r.get("data") == "diamonds"]
    if dia:
        out += ["", "| diamonds (log price ~ carat, depth, table; 80/20) | held-out MSE | seconds |", "|---|---|---|"]
        for r in dia:
            out.append(f"| {r['method']} (n_train={r['n']}) | {fmt(r.get('mse'), 4)} | {fmt(r.get('warm_s', r.get('skipped')))} |")
    return "\n".join(out)


def combined_plot(names, path):
    """One PNG over all sizes of several runs of the cascade benchmark."""
    sys.path.insert(0, os.path.dirname(__file__))
    import ssanova_cascade

    table, machine = [], None
    for name in names:
        with open(os.path.join(RESULTS, name)) as fh:
            payload = json.load(fh)
        table += payload["summary"]
        machine = payload["machine"]
    ssanova_cascade.plot(sorted(table, key=lambda r: r["n"]), path, machine)


def main():
    names = [a for a in sys.argv[1:] if a.endswith(".json")] or ["ssanova_cascade.json"]
    if "--png" in sys.argv:
        combined_plot(names, os.path.join(RESULTS, "ssanova_cascade_all.png"))
    for name in names:
        with open(os.path.join(RESULTS, name)) as fh:
            payload = json.load(fh)
        cold_path = os.path.join(RESULTS, name.replace(".json", "_cold.json"))
        cold = json.load(open(cold_path)) if os.path.exists(cold_path) else None
        print(f"### {name}\n")
        print(cascade_tables(payload, cold))
        print()


if __name__ == "__main__":
    main()
