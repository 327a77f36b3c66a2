"""Child process of bench_export.py: one finops_nb export with a clock on every SQL statement.

    python bench/_profile_export.py BUCKET DB PARQUET_DIR MEMORY_LIMIT|none VARIANT

BUCKET is the month's mirror folder (gen_month.py's --out): the export id, and so the file
{PARQUET_DIR}/{export_id}/{period}_aws_billing.parquet, follow from it.

VARIANT (patched inside this process only; no finops_nb file is changed):
  as-is      finops_nb's export_parquet unchanged, statements timed
  rg-bytes   the COPY gets `ROW_GROUP_SIZE_BYTES '128MB'` (DuckDB closes a row group at ~128 MB instead of at
             122,880 rows); since commit 02f12c2 finops_nb's COPY has it already, so this variant is then as-is
  default-rg the COPY without `ROW_GROUP_SIZE_BYTES` (DuckDB's default row groups, as before 02f12c2)

Prints one JSON object on stdout: seconds per statement kind and the peak RSS (VmHWM) after each.
"""

import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import finops_nb.localdb as L  # noqa: E402
import finops_nb.parquet as P  # noqa: E402
from _common import config  # noqa: E402

bucket, db, folder, mem, variant = sys.argv[1:6]
mem = None if mem == "none" else mem
clocks = []


def hwm_mib() -> float:
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmHWM")) / 1024


def kind(sql: str) -> str:
    s = " ".join(sql.split()).upper()
    if s.startswith("COPY"):
        return "COPY (SELECT * FROM aws_billing_data WHERE export_id = .. AND billing_period = ..) TO tmp (parquet, snappy, KV_METADATA)"
    if s.startswith("DESCRIBE"):
        return "DESCRIBE (columns)"
    if "PARQUET_KV_METADATA" in s:
        return "parquet_kv_metadata (which files are there)"
    if "READ_PARQUET" in s:
        return "read-back: count(*), sum(..) FROM read_parquet(tmp)"
    if "AWS_BILLING_DATA" in s and "COUNT(*)" in s:
        return "table totals: count(*), sum(..) FROM aws_billing_data WHERE export_id = .. AND billing_period = .."
    return "other statements"


class Timed:
    def __init__(self, con): self._con = con
    def __getattr__(self, n): return getattr(self._con, n)
    def execute(self, sql, *a, **kw):
        if variant == "rg-bytes" and sql.lstrip().upper().startswith("COPY") and "ROW_GROUP_SIZE_BYTES" not in sql:
            head, sep, tail = sql.rpartition("COMPRESSION snappy")
            assert sep, sql[-300:]
            sql = f"{head}COMPRESSION snappy, ROW_GROUP_SIZE_BYTES '128MB'{tail}"
        if variant == "default-rg" and sql.lstrip().upper().startswith("COPY"):
            assert ", ROW_GROUP_SIZE_BYTES '128MB'" in sql, sql[-300:]
            sql = sql.replace(", ROW_GROUP_SIZE_BYTES '128MB'", "")
        t = time.perf_counter()
        try:
            return self._con.execute(sql, *a, **kw)
        finally:
            clocks.append((kind(sql), time.perf_counter() - t, hwm_mib()))
    def close(self):
        t = time.perf_counter()
        try:
            return self._con.close()
        finally:
            clocks.append(("close", time.perf_counter() - t, hwm_mib()))


_connect = L.connect
P.connect = lambda cfg, read_only=False: Timed(_connect(cfg, read_only))

cfg = config(bucket, Path(folder).parent / "unused-staging", folder, db, mem)
t = time.perf_counter()
res = P.export_parquet(cfg, progress=False)
total = time.perf_counter() - t
by, peak = {}, {}
for k, s, h in clocks:
    by[k] = by.get(k, 0.0) + s
    peak[k] = max(peak.get(k, 0.0), h)
print(json.dumps({"variant": variant, "memory_limit": mem, "total": total, "steps": by, "peak_rss_mib_after": peak,
                  "actions": [r.action for r in res], "errors": [str(r.error) for r in res if r.error],
                  "rows": [r.rows for r in res]}))
