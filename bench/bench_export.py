"""Parquet export benchmark: raw DuckDB `COPY (SELECT * FROM aws_billing_data) TO 'x.parquet' (FORMAT parquet,
COMPRESSION snappy)` against `finops aws export-parquet`, each in a fresh process, from the same database.

    .venv/bin/python bench/bench_export.py               # ~6 min (3 of them: the raw COPY at memory_limit 1GB)

The database is the 1M-row month loaded by `finops aws load-billing-local` (memory_limit 1GB; done once,
not timed, reused while it holds the staged delivery; a database of the layout before commit d1fe017 is loaded
afresh). For each `--memory-limits` setting (`none` = no setting: DuckDB's default, 80 % of RAM, for the raw
COPY, finops_nb's own default, 1GB, for finops), alternated pairs (3 by default, 1 at 1GB). Each
finops file is checked: rows and the exact sums equal expected.json, money is DECIMAL(38,18) in the
Parquet schema, the export id and delivery id are in the key-value metadata and no temporary file is left. Then CLI
re-runs with nothing new. Last, profiled exports (bench/_profile_export.py: seconds of each SQL statement
of `export_period`; variants patched in that process are listed in bench/_profile_export.py). The file is
{parquet_dir}/{export_id}/{period}_aws_billing.parquet.
Results: bench/.data/results/export-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import (DATA, FINOPS, HERE, PY, drop_db, export_id, finops_env, finops_version, fresh_dir,  # noqa: E402
                     load_expected, machine, med, parquet_file, prepare_staging, py, run, save, span)

RAW_COPY = r"""
import sys, duckdb
db, out, mem = sys.argv[1], sys.argv[2], sys.argv[3]
con = duckdb.connect(db, read_only=True)
con.execute("SET enable_progress_bar = false")
if mem != "none": con.execute(f"SET memory_limit = '{mem}'")
con.execute(f"COPY (SELECT * FROM aws_billing_data) TO '{out}' (FORMAT parquet, COMPRESSION snappy)")
con.close()
"""


def ensure_loaded(data: Path, work: Path, exp: dict) -> tuple:
    "A finops database holding the month (loaded once with the CLI, memory_limit 1GB); returns (db, staging)."
    import duckdb
    staging = work / "staging"
    prepare_staging(data, staging)
    db = work / "export" / "finops.duckdb"
    db.parent.mkdir(parents=True, exist_ok=True)
    if db.is_file():  # a database of the previous layout (no export_id) is loaded afresh, not migrated
        con = duckdb.connect(str(db), read_only=True)
        cols = {r[0] for r in con.execute("SELECT column_name FROM information_schema.columns "
                                          "WHERE table_name = 'aws_billing_data'").fetchall()}
        con.close()
        if "export_id" not in cols:
            drop_db(db)
    env = finops_env(data, staging, work / "export" / "parquet", db, "1GB")
    r = run([FINOPS, "aws", "load-billing-local"], env=env)
    con = duckdb.connect(str(db), read_only=True)
    n, u = con.execute("SELECT count(*), sum(line_item_unblended_cost) FROM aws_billing_data").fetchall()[0]
    con.close()
    if n != exp["rows"] or u != Decimal(exp["sums"]["lineItem/UnblendedCost"]):
        raise SystemExit(f"{db}: holds {n} rows, {u}")
    print(f"database: {db} ({db.stat().st_size / 1e6:.0f} MB; {'loaded now' if 'loaded' in r['out'] else 'already loaded'})")
    return db, staging


def check_parquet(path: Path, exp: dict, finops: bool) -> dict:
    import duckdb
    import pyarrow.parquet as pq
    con = duckdb.connect()
    rel = f"read_parquet('{path}')"
    n, u, b = con.execute(f"SELECT count(*), sum(line_item_unblended_cost), sum(line_item_blended_cost) FROM {rel}").fetchall()[0]
    con.close()
    md = pq.read_metadata(path)
    schema = md.schema.to_arrow_schema()
    kv = {k.decode(): v.decode() for k, v in (md.metadata or {}).items() if k.startswith(b"finops_")}
    problems = []
    if n != exp["rows"]:
        problems.append(f"rows {n}")
    if u != Decimal(exp["sums"]["lineItem/UnblendedCost"]) or b != Decimal(exp["sums"]["lineItem/BlendedCost"]):
        problems.append(f"sums {u} {b}")
    if str(schema.field("line_item_unblended_cost").type) != "decimal128(38, 18)":
        problems.append(f"line_item_unblended_cost is {schema.field('line_item_unblended_cost').type}")
    if finops and (kv.get("finops_delivery_id") != exp["assembly_id"] or kv.get("finops_export_id") != exp["export_id"]
                   or kv.get("finops_billing_period") != exp["period"]):
        problems.append(f"metadata {kv}")
    if finops and any(p.name.endswith(".tmp") for p in path.parent.iterdir()):
        problems.append("temporary file left")
    if problems:
        raise SystemExit(f"{path}: {'; '.join(problems)}")
    return {"rows": n, "unblended": f"{u.normalize():f}", "blended": f"{b.normalize():f}", "bytes": path.stat().st_size,
            "row_groups": md.num_row_groups, "columns": md.num_columns, "kv": kv}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(DATA / "month-1m"))
    ap.add_argument("--work", default=str(DATA / "work"))
    ap.add_argument("--reruns", type=int, default=3)
    ap.add_argument("--memory-limits", default="none:3,1GB:1",
                    help="LIMIT:REPEATS,... (none = no setting: DuckDB's default for the raw COPY, finops_nb's own default, "
                         "1GB since commit 8475e37, for finops; at 1GB the raw COPY takes ~3 min per run)")
    ap.add_argument("--profile", default="none:as-is,1GB:as-is",
                    help="LIMIT:VARIANT,... profiled exports (see bench/_profile_export.py; '' to skip; none = no setting, "
                         "i.e. finops_nb's default 1GB; default-rg takes ~3 min there)")
    a = ap.parse_args(argv)
    data = Path(a.data)
    work = Path(a.work) / data.name
    exp = load_expected(data)
    exp["export_id"] = export_id(data)
    print(f"machine: {machine()}\nfinops_nb: commit {finops_version()}")
    report = {"machine": machine(), "finops_nb": finops_version(), "rows": exp["rows"]}
    db, staging = ensure_loaded(data, work, exp)
    out_dir = work / "export"
    for spec in [x.strip() for x in a.memory_limits.split(",") if x.strip()]:
        mem, _, reps = spec.partition(":")
        repeats = int(reps or 3)
        res = {"raw": [], "finops": [], "raw_rss": [], "finops_rss": [], "rerun": [], "rerun_rss": []}
        env = finops_env(data, staging, out_dir / "parquet", db, None if mem == "none" else mem)
        for r in range(1, repeats + 1):
            raw_dir = fresh_dir(out_dir / "raw-parquet")
            x = py(RAW_COPY, db, raw_dir / "x.parquet", mem)
            raw_facts = check_parquet(raw_dir / "x.parquet", exp, False)
            fresh_dir(out_dir / "parquet")
            y = run([FINOPS, "aws", "export-parquet"], env=env)
            facts = check_parquet(parquet_file(out_dir / "parquet", data, exp["period"]), exp, True)
            res["raw"].append(x["secs"]), res["raw_rss"].append(x["rss_mib"])
            res["finops"].append(y["secs"]), res["finops_rss"].append(y["rss_mib"])
            print(f"  memory_limit {mem:>4s} run {r}: raw COPY {x['secs']:6.2f} s {x['rss_mib']:6.0f} MiB "
                  f"({raw_facts['bytes'] / 1e6:.0f} MB) | finops export {y['secs']:6.2f} s {y['rss_mib']:6.0f} MiB "
                  f"({facts['bytes'] / 1e6:.0f} MB, {facts['row_groups']} row groups) | ratio {y['secs'] / x['secs']:.2f} | "
                  f"rows {facts['rows']:,}, unblended {facts['unblended']} (= expected.json)", flush=True)
        for _ in range(a.reruns):
            z = run([FINOPS, "aws", "export-parquet"], env=env)
            if "nothing to export" not in z["out"]:
                raise SystemExit(f"re-run did something: {z['out']}")
            res["rerun"].append(z["secs"]), res["rerun_rss"].append(z["rss_mib"])
        if a.reruns:
            print(f"  memory_limit {mem:>4s} re-run, nothing new (CLI): {', '.join(f'{v:.2f}' for v in res['rerun'])} s", flush=True)
        res["raw_facts"], res["facts"] = raw_facts, facts
        res["median"] = {k: med(v) for k, v in res.items() if isinstance(v, list) and v}
        res["ratio"] = res["median"]["finops"] / res["median"]["raw"]
        report[mem] = res
    report["profile"] = {}
    for spec in [x.strip() for x in a.profile.split(",") if x.strip()]:
        mem, _, variant = spec.partition(":")
        pdir = fresh_dir(out_dir / "profile-parquet")
        p = run([PY, str(HERE / "_profile_export.py"), data, db, pdir, mem, variant or "as-is"])
        d = json.loads(p["out"].strip().splitlines()[-1])
        d["process_secs"], d["process_rss_mib"] = p["secs"], p["rss_mib"]
        if d["errors"] or d["actions"] != ["exported"]:
            raise SystemExit(f"profile {spec}: {d}")
        d["file"] = check_parquet(parquet_file(pdir, data, exp["period"]), exp, True)
        report["profile"][spec] = d
        print(f"  profile memory_limit {mem:>4s} {variant:<8s}: process {p['secs']:.2f} s {p['rss_mib']:.0f} MiB; export_parquet "
              f"{d['total']:.2f} s = " + " + ".join(f"{k.split(':')[0].split(' (')[0]} {v:.2f}" for k, v in d["steps"].items())
              + f"; {d['file']['row_groups']} row groups, {d['file']['bytes'] / 1e6:.0f} MB, rows and sums = expected.json",
              flush=True)
    report["machine_after"] = machine()
    print("\n== summary (medians; MiB = 2^20 bytes)")
    for mem, r in report.items():
        if not isinstance(r, dict) or "median" not in r or mem == "profile":
            continue
        m = r["median"]
        print(f"- memory_limit {mem}: raw COPY {m['raw']:.2f} s ({span(r['raw'])}), {m['raw_rss']:.0f} MiB | finops "
              f"{m['finops']:.2f} s ({span(r['finops'])}), {m['finops_rss']:.0f} MiB (max {max(r['finops_rss']):.0f}) | "
              f"ratio {r['ratio']:.2f} | re-run {m['rerun']:.2f} s | files: raw {r['raw_facts']['bytes'] / 1e6:.0f} MB, "
              f"finops {r['facts']['bytes'] / 1e6:.0f} MB")
    path = save("export", report)
    print(f"\nresults saved to {path}")


if __name__ == "__main__":
    main()
