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


def _load(name):
    path = os.path.join(RESULTS, name + ".json")
    return json.load(open(path)) if os.path.exists(path) else None


def bed_tables(after=("selection_bed_stallrisk_n1000", "selection_bed_stallrisk_n5000"),
               before="selection_bed_before_n1000", gml="selection_bed_gml_n1000"):
    """Per-size summary of the selection test bed: kcascade (after) against the
    better peer, gss, mgcv, kcascade before (same rows), GML; key stability."""
    rows, keys = [], []
    for name in after:
        payload = _load(name)
        if payload:
            rows += payload["rows"]
            keys += payload["keys"]
    ref = {}
    for tag, name in (("before", before), ("gml", gml)):
        payload = _load(name)
        for r in (payload or {}).get("rows", []):
            ref[(tag, r["case"], r["n"], r["noise"], r["seed"])] = r["kc_mse"]
    out = ["| n | fits | kc / better peer: median | worst (case) | kc / gss median | kc / mgcv median "
           "| after / before (L-BFGS) median, worst | GML / GCV median, worst | key max/min median, worst (case) |",
           "|---|---|---|---|---|---|---|---|---|"]
    for n in sorted({r["n"] for r in rows}):
        rs = [r for r in rows if r["n"] == n and "ratio" in r]
        ratio = [r["ratio"] for r in rs]
        worst = max(rs, key=lambda r: r["ratio"])
        g = [r["kc_mse"] / r["gss_mse"] for r in rs if "gss_mse" in r]
        m = [r["kc_mse"] / r["mgcv_mse"] for r in rs if "mgcv_mse" in r]

        def rel(tag):
            v = [r["kc_mse"] / ref[k] if tag == "before" else ref[k] / r["kc_mse"]
                 for r in rs for k in [(tag, r["case"], n, r["noise"], r["seed"])] if k in ref]
            return f"{np.median(v):.3f}, {max(v):.2f} ({len(v)})" if v else "-"

        kr = [k for k in keys if k["n"] == n]
        kw = max(kr, key=lambda k: k["key_ratio"]) if kr else None
        out.append(f"| {n} | {len(rs)} | {np.median(ratio):.3f} | {worst['ratio']:.2f} ({worst['case']}, "
                   f"{worst['noise']}) | {np.median(g):.3f} | {np.median(m):.3f} | {rel('before')} | {rel('gml')} | "
                   + (f"{np.median([k['key_ratio'] for k in kr]):.3f}, {kw['key_ratio']:.2f} ({kw['case']}) |"
                      if kr else "- |"))
    return "\n".join(out)


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
