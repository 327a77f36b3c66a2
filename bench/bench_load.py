"""DuckDB load benchmark: raw DuckDB `CREATE TABLE t AS SELECT * FROM read_csv(files)` against
`finops aws load-billing-local`, each in a fresh process and into a fresh database file.

    .venv/bin/python bench/bench_load.py                 # 1M rows (+ 4M if generated), ~7 min

The month is staged once with finops_nb's own extract from the local mirror written by gen_month.py
(`file://` bucket; not timed) in {work}/{month}/staging/{export_id}/{period}/{delivery_id}/. Then, for each
`--memory-limits` setting (`none` = no setting: DuckDB's default, 80 % of RAM, for the raw CTAS, and finops_nb's
own default, 1GB, for finops), `--repeats` alternated pairs: raw CTAS (auto-detected types), then the finops CLI.
Each finops load is checked: rows, the exact sums of `line_item_unblended_cost` / `line_item_blended_cost`
equal `expected.json` to the last digit, money stored as DECIMAL(38,18), and the loader columns export_id,
billing_period, delivery_id name the export, the period and the delivery. Then three CLI re-runs with
nothing new. `--profile` adds one untimed-by-the-table finops_nb load per variant with a clock on each
SQL statement (bench/_profile_load.py): how much of the load is the INSERT and how much the
reconciliation's second read of the staged files, and the effect of changes patched in that
process only (the variants are listed there). With `--big DIR` (default bench/.data/month-4m when it exists) one pair per memory
setting on the 4M-row month shows whether peak memory stays flat.
Results: bench/.data/results/load-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import (DATA, FINOPS, HERE, PY, drop_db, export_id, finops_env, finops_version,  # noqa: E402
                     load_expected, machine, med, prepare_staging, py, run, save, span)

RAW_CTAS = r"""
import sys, duckdb
db, mem, files = sys.argv[1], sys.argv[2], sys.argv[3:]
con = duckdb.connect(db)
con.execute("SET enable_progress_bar = false")
if mem != "none": con.execute(f"SET memory_limit = '{mem}'")
con.execute("CREATE TABLE t AS SELECT * FROM read_csv([" + ", ".join("'" + f + "'" for f in files) + "])")
print(con.execute("SELECT count(*) FROM t").fetchall()[0][0])
con.close()
"""


def check_finops_db(db: Path, exp: dict) -> dict:
    "Rows, exact sums and types in the finops database, asserted against expected.json."
    import duckdb
    con = duckdb.connect(str(db), read_only=True)
    try:
        n, unb, bl = con.execute("SELECT count(*), sum(line_item_unblended_cost), sum(line_item_blended_cost) "
                                 "FROM aws_billing_data").fetchall()[0]
        types = dict(con.execute("SELECT column_name, data_type FROM information_schema.columns "
                                 "WHERE table_name = 'aws_billing_data'").fetchall())
        ids = con.execute("SELECT DISTINCT export_id, billing_period, delivery_id FROM aws_billing_data").fetchall()
        log = con.execute("SELECT export_id, billing_period, delivery_id, rows FROM finops_load_log").fetchall()
    finally:
        con.close()
    want_u, want_b = Decimal(exp["sums"]["lineItem/UnblendedCost"]), Decimal(exp["sums"]["lineItem/BlendedCost"])
    problems = []
    if n != exp["rows"]:
        problems.append(f"rows {n} != {exp['rows']}")
    if unb != want_u:
        problems.append(f"unblended {unb} != {want_u}")
    if bl != want_b:
        problems.append(f"blended {bl} != {want_b}")
    for c in ("line_item_unblended_cost", "line_item_blended_cost", "line_item_usage_amount"):
        if types.get(c) != "DECIMAL(38,18)":
            problems.append(f"{c} is {types.get(c)}")
    if types.get("line_item_usage_start_date") != "TIMESTAMP WITH TIME ZONE":
        problems.append(f"line_item_usage_start_date is {types.get('line_item_usage_start_date')}")
    if ids != [(exp["export_id"], exp["period"], exp["assembly_id"])]:
        problems.append(f"loader columns (export_id, billing_period, delivery_id) are {ids}")
    if problems:
        raise SystemExit(f"{db}: finops load is wrong: {'; '.join(problems)}")
    kinds = {}
    for t in types.values():
        kinds[t] = kinds.get(t, 0) + 1
    return {"rows": n, "unblended": f"{unb.normalize():f}", "blended": f"{bl.normalize():f}", "types": kinds, "log": log}


def raw_db_facts(db: Path, exp: dict) -> dict:
    "What auto-detection gave the raw table (types; the cost sum it can compute)."
    import duckdb
    con = duckdb.connect(str(db), read_only=True)
    try:
        types = dict(con.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 't'").fetchall())
        s = con.execute('SELECT sum("lineItem/UnblendedCost") FROM t').fetchall()[0][0]
    finally:
        con.close()
    kinds = {}
    for t in types.values():
        kinds[t] = kinds.get(t, 0) + 1
    return {"types": kinds, "unblended_type": types.get("lineItem/UnblendedCost"),
            "unblended_sum": repr(s), "exact": exp["sums"]["lineItem/UnblendedCost"]}


def bench_month(label, data: Path, work: Path, limits, repeats, reruns, exp) -> dict:
    staging = work / "staging"
    files = prepare_staging(data, staging)
    work = work / "load"
    work.mkdir(parents=True, exist_ok=True)
    print(f"\n== {label}: {exp['rows']:,} rows, {len(files)} staged files, {sum(f.stat().st_size for f in files) / 1e6:.1f} MB "
          f"in {files[0].parent}", flush=True)
    raw_db, fin_db = work / "raw.duckdb", work / "finops.duckdb"
    out = {}
    for mem in limits:
        res = {"raw": [], "finops": [], "raw_rss": [], "finops_rss": [], "rerun": [], "rerun_rss": []}
        for r in range(1, repeats + 1):
            drop_db(raw_db)
            a = py(RAW_CTAS, raw_db, mem, *files)
            if int(a["out"].split()[-1]) != exp["rows"]:
                raise SystemExit(f"raw CTAS loaded {a['out']!r} rows")
            if r == 1 and "raw_facts" not in out:
                out["raw_facts"] = raw_db_facts(raw_db, exp)
            drop_db(raw_db)
            drop_db(fin_db)
            env = finops_env(data, staging, work / "parquet", fin_db, None if mem == "none" else mem)
            b = run([FINOPS, "aws", "load-billing-local"], env=env)
            facts = check_finops_db(fin_db, exp)
            res["raw"].append(a["secs"]), res["raw_rss"].append(a["rss_mib"])
            res["finops"].append(b["secs"]), res["finops_rss"].append(b["rss_mib"])
            print(f"  memory_limit {mem:>4s} run {r}: raw CTAS {a['secs']:6.2f} s {a['rss_mib']:6.0f} MiB | finops load "
                  f"{b['secs']:6.2f} s {b['rss_mib']:6.0f} MiB | ratio {b['secs'] / a['secs']:.2f} | rows {facts['rows']:,}, "
                  f"unblended {facts['unblended']}, blended {facts['blended']} (= expected.json)", flush=True)
        for _ in range(reruns):
            c = run([FINOPS, "aws", "load-billing-local"], env=env)
            if "nothing to load" not in c["out"]:
                raise SystemExit(f"re-run did something: {c['out']}")
            res["rerun"].append(c["secs"]), res["rerun_rss"].append(c["rss_mib"])
        if reruns:
            print(f"  memory_limit {mem:>4s} re-run, nothing new (CLI): {', '.join(f'{x:.2f}' for x in res['rerun'])} s; "
                  f"says: {c['out'].strip().splitlines()[-1]!r}", flush=True)
        res["facts"] = facts
        res["median"] = {k: med(v) for k, v in res.items() if isinstance(v, list) and v}
        res["ratio"] = res["median"]["finops"] / res["median"]["raw"]
        out[mem] = res
        drop_db(fin_db)
    return out


def profile(data: Path, work: Path, limits, variants, repeats) -> dict:
    staging = work / "staging"
    work = work / "load"
    out = {}
    for mem in limits:
        for r in range(repeats):
            for v in variants:
                db = work / "profile.duckdb"
                drop_db(db)
                res = run([PY, str(HERE / "_profile_load.py"), data, staging, db, mem, v])
                d = json.loads(res["out"].strip().splitlines()[-1])
                d["process_secs"], d["process_rss_mib"] = res["secs"], res["rss_mib"]
                if d["errors"] or d["actions"] != ["loaded"]:
                    raise SystemExit(f"profile {v}: {d}")
                out.setdefault(f"{mem} {v}", []).append(d)
                steps = d["steps"]
                ins = next(s for k, s in steps.items() if k.startswith("INSERT"))
                rec = next((s for k, s in steps.items() if k.startswith("source totals")), 0.0)
                print(f"  profile memory_limit {mem:>4s} {v:<13s}: process {res['secs']:6.2f} s {res['rss_mib']:6.0f} MiB; "
                      f"load_billing_local {d['total']:6.2f} s = INSERT {ins:.2f} s + second read {rec:.2f} s + rest "
                      f"{d['total'] - ins - rec:.2f} s; rows {d['rows']:,}, unblended {d['unblended']}", flush=True)
                drop_db(db)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(DATA / "month-1m"))
    ap.add_argument("--big", default=str(DATA / "month-4m"), help="a bigger month for the memory check ('' to skip)")
    ap.add_argument("--work", default=str(DATA / "work"),
                    help="<work>/<month>/staging (kept and shared by the benchmarks) and <work>/<month>/load/*.duckdb")
    ap.add_argument("--repeats", type=int, default=3, help="alternated pairs per memory setting (0: only the profile)")
    ap.add_argument("--reruns", type=int, default=3)
    ap.add_argument("--memory-limits", default="1GB,none",
                    help="comma-separated; none = no setting: DuckDB's default (80%% of RAM) for the raw CTAS, finops_nb's "
                         "own default (1GB since commit 8475e37) for finops")
    ap.add_argument("--big-memory-limits", default="1GB,none")
    ap.add_argument("--profile", default="as-is,no-recheck,one-pass",
                    # also: no-gzip-check, nullif-cast, no-null-count, old-nulls (the cost of the null spellings)
                    help="variants for the per-statement profile ('' to skip); see bench/_profile_load.py")
    ap.add_argument("--profile-memory-limits", default="1GB")
    ap.add_argument("--profile-repeats", type=int, default=2)
    a = ap.parse_args(argv)
    limits = [x.strip() for x in a.memory_limits.split(",") if x.strip()]
    data, work = Path(a.data), Path(a.work)
    print(f"machine: {machine()}\nfinops_nb: commit {finops_version()}")
    report = {"machine": machine(), "finops_nb": finops_version(), "repeats": a.repeats}
    exp = load_expected(data)
    exp["export_id"] = export_id(data)
    work.mkdir(parents=True, exist_ok=True)
    if a.repeats:
        report["1m"] = bench_month(f"{data.name}", data, work / data.name, limits, a.repeats, a.reruns, exp)
    else:
        prepare_staging(data, work / data.name / "staging")
    if a.profile:
        print(f"\n== per-statement profile of finops_nb's load ({exp['rows']:,} rows)", flush=True)
        report["profile"] = profile(data, work / data.name, [x for x in a.profile_memory_limits.split(",") if x],
                                    [x for x in a.profile.split(",") if x], a.profile_repeats)
    big = Path(a.big) if a.big else None
    if big and (big / "expected.json").is_file():
        bexp = load_expected(big)
        bexp["export_id"] = export_id(big)
        report["big"] = bench_month(big.name, big, work / big.name,
                                    [x.strip() for x in a.big_memory_limits.split(",") if x.strip()], 1, 1, bexp)
        report["big_rows"] = bexp["rows"]
    elif big:
        print(f"\n(no {big}: generate it with gen_month.py --rows 4000000 --files 16 --out {big} for the memory check)")
    report["machine_after"] = machine()

    print("\n== summary (medians; MiB = 2^20 bytes)")
    for key, title in (("1m", f"{exp['rows']:,} rows"), ("big", f"{report.get('big_rows', 0):,} rows")):
        for mem, r in report.get(key, {}).items():
            if mem == "raw_facts":
                continue
            m = r["median"]
            print(f"- {title}, memory_limit {mem}: raw {m['raw']:.2f} s ({span(r['raw'])}), {m['raw_rss']:.0f} MiB | "
                  f"finops {m['finops']:.2f} s ({span(r['finops'])}), {m['finops_rss']:.0f} MiB (max {max(r['finops_rss']):.0f}) | "
                  f"ratio {r['ratio']:.2f}" + (f" | re-run {m['rerun']:.2f} s ({span(r['rerun'])})" if r["rerun"] else ""))
    if "1m" in report:
        print(f"- raw CTAS auto-detected types: {report['1m']['raw_facts']}")
    for k, runs in report.get("profile", {}).items():
        ins = [next(s for n, s in d["steps"].items() if n.startswith("INSERT")) for d in runs]
        rec = [next((s for n, s in d["steps"].items() if n.startswith("source totals")), 0.0) for d in runs]
        print(f"- profile memory_limit {k}: load_billing_local {med([d['total'] for d in runs]):.2f} s "
              f"({span([d['total'] for d in runs])}), INSERT {med(ins):.2f} s, second read {med(rec):.2f} s, "
              f"peak RSS {max(d['process_rss_mib'] for d in runs):.0f} MiB")
    path = save("load", report)
    print(f"\nresults saved to {path}")


if __name__ == "__main__":
    main()
