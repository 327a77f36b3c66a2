"""Child process of bench_load.py --profile: one finops_nb load with a clock on every SQL statement.

    python bench/_profile_load.py STAGING DB MEMORY_LIMIT|none VARIANT

VARIANT (each patched inside this process only; no finops_nb file is changed):
  as-is        finops_nb's load_billing_local unchanged, statements timed
  no-recheck   `source_totals` (the second read of the staged files) replaced by the table's own totals,
               i.e. what the load costs without the reconciliation's second read
  no-gzip-check  the gzip content check beside the insert (`_gzip_problem`) skipped, i.e. what that check costs
  one-pass     the suggested single-pass check: the INSERT's cost casts wrapped in
               CASE WHEN CAST(x AS DECIMAL(38,24)) = CAST(x AS DECIMAL(38,18)) ... ELSE error(...) END
               (a value that DECIMAL(38,18) cannot hold exactly fails the INSERT), the source row count taken
               from the INSERT's own result, and no second read
Prints one JSON object on stdout.
"""

import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import duckdb  # noqa: E402
import finops_nb.localdb as L  # noqa: E402
from finops_nb import schema as S  # noqa: E402
from _common import config  # noqa: E402

staging, db, mem, variant = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
mem = None if mem == "none" else mem
clocks = []


def hwm_mib() -> float:
    "Peak RSS of this process so far (VmHWM), MiB."
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmHWM")) / 1024


def kind(sql: str) -> str:
    s = " ".join(sql.split())[:60].upper()
    if s.startswith("INSERT INTO AWS_BILLING_DATA"):
        return "INSERT ... SELECT FROM read_csv (the load)"
    if s.startswith("SELECT COUNT(*), SUM(") and "READ_CSV" in " ".join(sql.split()).upper():
        return "source totals: SELECT count(*), sum(CAST(.. AS DECIMAL(38,24))) FROM read_csv (second read)"
    if s.startswith("SELECT COUNT(*), SUM(") and "AWS_BILLING_DATA" in sql.upper():
        return "table totals: SELECT count(*), sum(..) FROM aws_billing_data"
    if s.startswith("COMMIT"):
        return "COMMIT"
    if s.startswith(("CREATE TABLE AWS_BILLING_DATA", "ALTER TABLE")):
        return "CREATE/ALTER aws_billing_data"
    if s.startswith("DELETE"):
        return "DELETE period"
    return "other statements"


class Timed:
    "A DuckDB connection whose execute() and close() are timed."
    def __init__(self, con): self._con = con
    def __getattr__(self, n): return getattr(self._con, n)
    def execute(self, sql, *a, **kw):
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
            clocks.append(("close (checkpoint)", time.perf_counter() - t, hwm_mib()))


_connect = L.connect
L.connect = lambda cfg, read_only=False: (Timed(_connect(cfg, read_only)) if not read_only else _connect(cfg, read_only))

current = {}
_load_delivery = L.load_delivery


def load_delivery(con, delivery):
    current["period"] = delivery["period"]
    return _load_delivery(con, delivery)


L.load_delivery = load_delivery
# the reconciliation's read of the staged files (named `_source_totals` before commit bdeb27c)
SOURCE_TOTALS = "source_totals" if hasattr(L, "source_totals") else "_source_totals"


def table_totals(con, period):
    "The table's own rows and totals of `period` (`totals` since commit a388dc7, `_table_totals` before)."
    if hasattr(L, "totals"): return L.totals(con, L.TABLE, "WHERE billing_period = ?", [period])
    return L._table_totals(con, period)


if variant == "no-recheck":
    setattr(L, SOURCE_TOTALS, lambda con, srcs, p: table_totals(con, current["period"]))
elif variant == "no-gzip-check":
    L._gzip_problem = lambda files: ""
elif variant == "one-pass":
    inserted = {}
    _cast = L.cast_expr

    def cast_expr(src, src_type, dest_type):
        e = _cast(src, src_type, dest_type)
        if dest_type == S.DECIMAL and src_type.upper() == "VARCHAR":
            wide = _cast(src, src_type, S.CHECK_DECIMAL)
            return (f"CASE WHEN {wide} IS NOT DISTINCT FROM {e} THEN {e} ELSE error('value ' || {src} || "
                    f"' does not fit {S.DECIMAL} exactly') END")
        return e
    L.cast_expr = cast_expr

    class Counting(Timed):
        def execute(self, sql, *a, **kw):
            r = Timed.execute(self, sql, *a, **kw)
            if sql.lstrip().upper().startswith("INSERT INTO AWS_BILLING_DATA"):
                inserted["rows"] = inserted.get("rows", 0) + r.fetchall()[0][0]
            return r
    L.connect = lambda cfg, read_only=False: (Counting(_connect(cfg, read_only)) if not read_only else _connect(cfg, read_only))

    def source_totals(con, srcs, p):
        # one pass: the row count comes from the INSERT; each value was checked exact by the cast above, so the
        # files' exact totals equal the table's totals (the table side of the reconciliation is still computed)
        return inserted["rows"], table_totals(con, current["period"])[1]
    setattr(L, SOURCE_TOTALS, source_totals)

cfg = config("/nonexistent", staging, Path(db).parent / "pq", db, mem)
t = time.perf_counter()
res = L.load_billing_local(cfg, progress=False)
total = time.perf_counter() - t
by, peak = {}, {}
for k, s, h in clocks:
    by[k] = by.get(k, 0.0) + s
    peak[k] = max(peak.get(k, 0.0), h)
con = duckdb.connect(db, read_only=True)
n, unb, bl = con.execute("SELECT count(*), sum(line_item_unblended_cost), sum(line_item_blended_cost) FROM aws_billing_data").fetchall()[0]
con.close()
print(json.dumps({"variant": variant, "memory_limit": mem, "total": total, "steps": by, "peak_rss_mib_after": peak,
                  "actions": [r.action for r in res], "errors": [r.error for r in res if r.error],
                  "rows": n, "unblended": str(unb), "blended": str(bl)}))
