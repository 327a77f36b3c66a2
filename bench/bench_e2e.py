"""End-to-end benchmark: `finops aws run-pipeline` (local `file://` mirror as the bucket → staging → DuckDB →
Parquet; no BigQuery) against the sum of the raw baselines, each a fresh process run one after another:
a sequential copy of the delivery's files, raw DuckDB CTAS (auto-detected types) from the copies into a
fresh database, raw COPY of that table to snappy Parquet.

    .venv/bin/python bench/bench_e2e.py                  # ~5 min

`--repeats` alternated pairs into fresh folders and databases, each finops run checked (rows and exact
sums equal expected.json in DuckDB and in the Parquet file). Then, on the last finops run's folders, CLI
re-runs with nothing new, and `papermill runs/pipeline.ipynb <out> -p config_path <cfg>` re-runs with
nothing new (the audit report), with papermill's per-cell durations and the cost of its reconciliation
cell; then `--breakdown` in-process runs of the pipeline with the seconds of each step (`Pipeline.seconds`).
(The breakdown's former `no-gzip-check` variant, the extraction's gzip CRC check patched off, is gone: since
commit 90e5d8f extraction checks no gzip content; the load's check is measured by bench/_profile_load.py.)
Results: bench/.data/results/e2e-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import (DATA, FINOPS, PAPERMILL, REPO, config_toml, export_id, finops_env, finops_version,  # noqa: E402
                     fresh_dir, load_expected, machine, med, py, run, save, span)
from bench_export import RAW_COPY  # noqa: E402
from bench_load import RAW_CTAS  # noqa: E402

RECONCILE = r"""
import sys, time
from finops_nb.config import load_config
from finops_nb.pipeline import reconcile
cfg = load_config(sys.argv[1])
t = time.perf_counter()
rec = reconcile(cfg, staged=sys.argv[2] == "1")
print(time.perf_counter() - t, len(rec.rows))
"""

BREAKDOWN = r"""
import json, sys, time
from finops_nb.config import load_config
from finops_nb.pipeline import Pipeline
cfg, variant = load_config(sys.argv[1]), sys.argv[2]
t = time.perf_counter()
run = Pipeline(cfg, progress=False).run().finish()
print(json.dumps({"total": time.perf_counter() - t, "steps": run.seconds}))
"""

COPY_FILES = r"""
import shutil, sys
dest, files = sys.argv[1], sys.argv[2:]
for f in files:
    shutil.copyfile(f, dest + "/" + f.rsplit("/", 1)[1])
"""


def raw_pipeline(data: Path, exp: dict, work: Path, mem: str) -> dict:
    "The three raw steps, each a fresh process, one after another."
    fresh_dir(work)
    copies = fresh_dir(work / "copies")
    keys = exp["manifest_keys"][1:] + exp["data_keys"]  # the delivery's manifest and data files
    a = py(COPY_FILES, copies, *[data / k for k in keys])
    db = work / "raw.duckdb"
    files = [copies / Path(k).name for k in exp["data_keys"]]
    b = py(RAW_CTAS, db, mem, *files)
    if int(b["out"].split()[-1]) != exp["rows"]:
        raise SystemExit(f"raw CTAS: {b['out']}")
    c = py(RAW_COPY.replace("aws_billing_data", "t"), db, work / "x.parquet", mem)
    steps = {"copy": a["secs"], "ctas": b["secs"], "copy_parquet": c["secs"]}
    return {"secs": sum(steps.values()), "steps": steps, "rss_mib": max(x["rss_mib"] for x in (a, b, c))}


def check(work: Path, exp: dict):
    import duckdb
    want = (exp["rows"], Decimal(exp["sums"]["lineItem/UnblendedCost"]), Decimal(exp["sums"]["lineItem/BlendedCost"]))
    con = duckdb.connect(str(work / "finops.duckdb"), read_only=True)
    got_db = tuple(con.execute("SELECT count(*), sum(line_item_unblended_cost), sum(line_item_blended_cost) "
                               "FROM aws_billing_data WHERE export_id = ? AND billing_period = ? AND delivery_id = ?",
                               [exp["export_id"], exp["period"], exp["assembly_id"]]).fetchall()[0])
    others = con.execute("SELECT count(*) FROM aws_billing_data WHERE export_id <> ? OR billing_period <> ? "
                         "OR delivery_id <> ?", [exp["export_id"], exp["period"], exp["assembly_id"]]).fetchall()[0][0]
    con.close()
    if others:
        raise SystemExit(f"end to end result wrong: {others} rows of another export, period or delivery")
    pq = work / "parquet" / exp["export_id"] / f"{exp['period']}_aws_billing.parquet"
    got_pq = tuple(duckdb.connect().execute(f"SELECT count(*), sum(line_item_unblended_cost), sum(line_item_blended_cost) "
                                            f"FROM read_parquet('{pq}')").fetchall()[0])
    if got_db != want or got_pq != want:
        raise SystemExit(f"end to end result wrong: duckdb {got_db}, parquet {got_pq}, expected {want}")


def papermill(work: Path, cfg: Path, out: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINOPS")}
    env["PATH"] = str(REPO / ".venv" / "bin") + os.pathsep + env.get("PATH", "")
    r = run([PAPERMILL, "--no-progress-bar", str(REPO / "runs" / "pipeline.ipynb"), str(out), "-p", "config_path", str(cfg)],
            env=env, cwd=str(REPO))
    nb = json.loads(out.read_text())
    cells = []
    for c in nb["cells"]:
        if c["cell_type"] != "code":
            continue
        d = c.get("metadata", {}).get("papermill", {}).get("duration")
        head = next((l for l in "".join(c["source"]).splitlines() if l.strip() and not l.startswith("#")), "")
        cells.append((head[:70], d))
    text = json.dumps(nb)
    if "up to date" not in text or "no failures" not in text:
        raise SystemExit(f"{out}: the report does not show a clean re-run")
    return {"secs": r["secs"], "rss_mib": r["rss_mib"], "cells": cells, "cells_total": sum(d or 0 for _, d in cells)}


def breakdown(base: Path, data: Path, mem: str, exp: dict, report: dict, n: int):
    "Seconds of each pipeline step (Pipeline.seconds)."
    report["breakdown"] = {}
    work = base / "breakdown"
    for _ in range(n):
        for variant in ("as-is",):
            fresh_dir(work)
            cfg = config_toml(work / "config.toml", data, work / "staging", work / "parquet", work / "finops.duckdb",
                              None if mem == "none" else mem)
            r = py(BREAKDOWN, cfg, variant)
            check(work, exp)
            d = json.loads(r["out"].strip().splitlines()[-1])
            d["process_secs"], d["rss_mib"] = r["secs"], r["rss_mib"]
            report["breakdown"].setdefault(variant, []).append(d)
            print(f"  breakdown ({variant}): process {r['secs']:.2f} s; run_pipeline {d['total']:.2f} s = "
                  + " + ".join(f"{k} {v:.2f}" for k, v in d["steps"].items()), flush=True)
    shutil.rmtree(work, ignore_errors=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(DATA / "month-1m"))
    ap.add_argument("--work", default=str(DATA / "work"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--reruns", type=int, default=3)
    ap.add_argument("--papermill-runs", type=int, default=2)
    ap.add_argument("--breakdown", type=int, default=1, help="in-process step timings (0: none)")
    ap.add_argument("--only-breakdown", action="store_true", help="skip everything else")
    ap.add_argument("--memory-limit", default="none",
                    help="for both sides; none = no setting: DuckDB's default (80%% of RAM) for the raw steps, finops_nb's "
                         "own default (1GB since commit 8475e37) for finops")
    a = ap.parse_args(argv)
    data = Path(a.data)
    exp = load_expected(data)
    exp["export_id"] = export_id(data)
    base = Path(a.work) / data.name / "e2e"
    mem = a.memory_limit
    print(f"machine: {machine()}\nfinops_nb: commit {finops_version()}\nmemory_limit: {mem}")
    report = {"machine": machine(), "finops_nb": finops_version(), "repeats": a.repeats, "memory_limit": mem,
              "rows": exp["rows"], "raw": [], "finops": []}
    fin = base / "finops"
    if a.only_breakdown:
        breakdown(base, data, mem, exp, report, a.breakdown or 1)
        print(f"\nresults saved to {save('e2e-breakdown', report)}")
        return
    env = finops_env(data, fin / "staging", fin / "parquet", fin / "finops.duckdb", None if mem == "none" else mem)
    for r in range(1, a.repeats + 1):
        x = raw_pipeline(data, exp, base / "raw", mem)
        fresh_dir(fin)
        y = run([FINOPS, "aws", "run-pipeline"], env=env)
        check(fin, exp)
        report["raw"].append(x), report["finops"].append({"secs": y["secs"], "rss_mib": y["rss_mib"], "out": y["out"]})
        st = x["steps"]
        print(f"  run {r}: raw sum {x['secs']:6.2f} s (copy {st['copy']:.2f} + CTAS {st['ctas']:.2f} + COPY {st['copy_parquet']:.2f}; "
              f"max {x['rss_mib']:.0f} MiB) | finops run-pipeline {y['secs']:6.2f} s {y['rss_mib']:6.0f} MiB | ratio "
              f"{y['secs'] / x['secs']:.2f} | DuckDB and Parquet rows and sums = expected.json", flush=True)
    print("  last run-pipeline output:\n    " + "\n    ".join(y["out"].strip().splitlines()))
    shutil.rmtree(base / "raw", ignore_errors=True)  # ~1 GB of copies, database and Parquet
    report["rerun"] = []
    for _ in range(a.reruns):
        z = run([FINOPS, "aws", "run-pipeline"], env=env)
        if any(w in z["out"] for w in ("downloaded", "loaded", "exported")):
            raise SystemExit(f"re-run did something:\n{z['out']}")
        report["rerun"].append({"secs": z["secs"], "rss_mib": z["rss_mib"]})
    if a.reruns:
        print(f"  re-run, nothing new (CLI): {', '.join(format(v['secs'], '.2f') for v in report['rerun'])} s\n    "
              + "\n    ".join(z["out"].strip().splitlines()), flush=True)
    report["papermill"] = []
    cfg = config_toml(fin / "config.toml", data, fin / "staging", fin / "parquet", fin / "finops.duckdb",
                      None if mem == "none" else mem)
    for i in range(a.papermill_runs):
        p = papermill(fin, cfg, fin / f"report-{i + 1}.ipynb")
        report["papermill"].append(p)
        print(f"  papermill re-run {i + 1}, nothing new: {p['secs']:.2f} s, {p['rss_mib']:.0f} MiB (papermill process; "
              f"cells {p['cells_total']:.2f} s)", flush=True)
    if report["papermill"]:
        print("  per cell (papermill durations, last run):")
        for head, d in report["papermill"][-1]["cells"]:
            print(f"    {'' if d is None else f'{d:6.2f} s'}  {head}")

    # what the report's reconciliation cell costs, with and without summing the staged files again
    report["reconcile"] = {}
    for staged in ("1", "0", "1", "0"):
        r = py(RECONCILE, cfg, staged)
        secs, n = r["out"].split()[-2:]  # (DuckDB may print its progress bar before)
        report["reconcile"].setdefault("staged" if staged == "1" else "not staged", []).append(float(secs))
    print("  reconcile() in a fresh process: " + "; ".join(f"{k}: {', '.join(format(v, '.2f') for v in vs)} s"
                                                         for k, vs in report["reconcile"].items()), flush=True)

    breakdown(base, data, mem, exp, report, a.breakdown)

    mr, mf = med([x["secs"] for x in report["raw"]]), med([x["secs"] for x in report["finops"]])
    report["median"] = {"raw": mr, "finops": mf, "ratio": mf / mr,
                        "raw_steps": {k: med([x["steps"][k] for x in report["raw"]]) for k in report["raw"][0]["steps"]},
                        "rerun": med([x["secs"] for x in report["rerun"]]) if report["rerun"] else None,
                        "papermill": med([x["secs"] for x in report["papermill"]]) if report["papermill"] else None}
    report["machine_after"] = machine()
    m = report["median"]
    print(f"\n== summary (medians of {a.repeats})\n- raw sum {mr:.2f} s ({span([x['secs'] for x in report['raw']])}; "
          + ", ".join(f"{k} {v:.2f}" for k, v in m["raw_steps"].items())
          + f"), max RSS {max(x['rss_mib'] for x in report['raw']):.0f} MiB\n- finops run-pipeline {mf:.2f} s "
          f"({span([x['secs'] for x in report['finops']])}), peak RSS {med([x['rss_mib'] for x in report['finops']]):.0f} MiB "
          f"(max {max(x['rss_mib'] for x in report['finops']):.0f})\n- ratio {m['ratio']:.2f}"
          + (f"\n- re-run (CLI) {m['rerun']:.2f} s" if m["rerun"] is not None else "")
          + (f"\n- papermill re-run {m['papermill']:.2f} s: overhead {m['papermill'] - m['rerun']:.2f} s over the CLI re-run"
             if m["papermill"] is not None and m["rerun"] is not None else ""))
    path = save("e2e", report)
    print(f"\nresults saved to {path}")


if __name__ == "__main__":
    main()
