"""DuckDB setting probes behind the load and export findings (one fresh process per probe, raw DuckDB only).

    .venv/bin/python bench/probe_duckdb.py               # ~3 min; --slow adds the ~3 min 1GB COPY case

load probes: `CREATE TABLE t AS SELECT * FROM read_csv(staged files)` with and without
`SET preserve_insertion_order = false` (finops_nb's connect() sets it), at DuckDB's default memory limit.
export probes: `COPY (SELECT * FROM aws_billing_data) TO x.parquet (FORMAT parquet, COMPRESSION snappy[, opts])`
from the database bench_export.py loads, with memory limits, threads, preserve_insertion_order and row-group
options. Needs `bench_load.py`/`bench_export.py` to have staged and loaded the month first.
Results: bench/.data/results/probe-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, drop_db, load_expected, machine, py, save  # noqa: E402

PROBE = r"""
import json, sys, time, duckdb
kind, db, mem, threads, pio, opts, target = sys.argv[1:8]
files = sys.argv[8:]
con = duckdb.connect(db, read_only=(kind == "copy"))
con.execute("SET enable_progress_bar = false")
if mem != "none": con.execute(f"SET memory_limit = '{mem}'")
if threads != "default": con.execute(f"SET threads = {threads}")
if pio == "false": con.execute("SET preserve_insertion_order = false")
t = time.perf_counter()
if kind == "ctas":
    con.execute("CREATE TABLE t AS SELECT * FROM read_csv([" + ", ".join("'" + f + "'" for f in files) + "])")
else:
    con.execute(f"COPY (SELECT * FROM aws_billing_data) TO '{target}' (FORMAT parquet, COMPRESSION snappy{opts})")
secs = time.perf_counter() - t
con.close()
print(json.dumps({"secs": secs}))
"""

# (kind, memory_limit, threads, preserve_insertion_order, extra COPY options)
LOAD = [("ctas", "none", "default", "true", ""), ("ctas", "none", "default", "false", "")]
EXPORT = [
    ("copy", "none", "default", "true", ""),
    ("copy", "none", "default", "false", ""),
    ("copy", "2GB", "default", "false", ""),
    ("copy", "1.5GB", "default", "false", ""),
    ("copy", "none", "1", "false", ""),
    ("copy", "1GB", "1", "false", ""),
    ("copy", "1GB", "default", "false", ", ROW_GROUP_SIZE 30000"),
    ("copy", "1GB", "default", "false", ", ROW_GROUP_SIZE 60000"),
    ("copy", "1GB", "default", "false", ", ROW_GROUP_SIZE_BYTES '128MB'"),
    ("copy", "none", "default", "false", ", ROW_GROUP_SIZE_BYTES '128MB'"),
]
SLOW = [("copy", "1GB", "default", "false", "")]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(DATA / "month-1m"))
    ap.add_argument("--work", default=str(DATA / "work"))
    ap.add_argument("--slow", action="store_true", help="also COPY at memory_limit 1GB with default row groups (~3 min)")
    a = ap.parse_args(argv)
    data = Path(a.data)
    exp = load_expected(data)
    work = Path(a.work) / data.name
    staged = next((work / "staging").glob(f"*/{exp['period']}/{exp['assembly_id']}/"), None)  # {export_id}/{period}/{delivery_id}
    db = work / "export" / "finops.duckdb"
    if staged is None or not db.is_file():
        raise SystemExit("run bench_load.py and bench_export.py first (they stage and load the month)")
    files = [staged / Path(k).name for k in exp["data_keys"]]
    probe_db, target = work / "probe.duckdb", work / "probe.parquet"
    print(f"machine: {machine()}")
    out = []
    for kind, mem, threads, pio, opts in LOAD + EXPORT + (SLOW if a.slow else []):
        drop_db(probe_db)
        target.unlink(missing_ok=True)
        r = py(PROBE, kind, probe_db if kind == "ctas" else db, mem, threads, pio, opts, target, *files)
        secs = json.loads(r["out"].strip().splitlines()[-1])["secs"]
        extra = ""
        if kind == "copy":
            import pyarrow.parquet as pq
            md = pq.read_metadata(target)
            extra = f"; {md.num_row_groups} row groups, {target.stat().st_size / 1e6:.0f} MB"
        row = {"kind": kind, "memory_limit": mem, "threads": threads, "preserve_insertion_order": pio, "options": opts,
               "secs": secs, "process_secs": r["secs"], "rss_mib": r["rss_mib"]}
        out.append(row)
        what = "CTAS read_csv" if kind == "ctas" else "COPY to Parquet"
        print(f"  {what:<16s} memory_limit {mem:>5s} threads {threads:>7s} preserve_insertion_order {pio:>5s} "
              f"{opts.lstrip(', ') or '(default row groups)':<30s}: {secs:6.2f} s, peak RSS {r['rss_mib']:5.0f} MiB{extra}",
              flush=True)
    drop_db(probe_db)
    target.unlink(missing_ok=True)
    path = save("probe", {"machine": machine(), "probes": out})
    print(f"\nresults saved to {path}")


if __name__ == "__main__":
    main()
