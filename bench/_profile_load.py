"""Child process of bench_load.py --profile: one finops_nb load with a clock on every SQL statement.

    python bench/_profile_load.py BUCKET STAGING DB MEMORY_LIMIT|none VARIANT

BUCKET is the month's mirror folder (gen_month.py's --out): the export id, and so the staging folder
{STAGING}/{export_id}/, follow from it. VARIANT (each patched inside this process only; no finops_nb file is changed):
  as-is          finops_nb's load_billing_local unchanged, statements timed
  no-recheck     `source_totals` (the second read of the staged files) replaced by the table's own totals,
                 i.e. what the load costs without the reconciliation's second read
  no-gzip-check  the gzip content check beside the insert (`_gzip_problem`) skipped, i.e. what that check costs
  one-pass       the suggested single-pass check: the INSERT's cost casts wrapped in
                 CASE WHEN CAST(x AS DECIMAL(38,24)) = CAST(x AS DECIMAL(38,18)) ... ELSE error(...) END
                 (a value that DECIMAL(38,18) cannot hold exactly fails the INSERT), the source row count taken
                 from the INSERT's own result, and no second read
  nullif-cast    text cast as before commit d1fe017: CAST(NULLIF(x, '') AS T) instead of
                 CAST(CASE WHEN x IN ('', 'None', 'null', 'NULL', 'NaN', 'nan') THEN NULL ELSE x END AS T),
                 in the INSERT and in the second read (`localdb.cast_expr`)
  no-null-count  the second read without the per-column null-spelling counters (`localdb.null_spelling` -> 0)
  old-nulls      nullif-cast and no-null-count together: the load's SQL as before d1fe017
  one-connection every delivery loaded on one DuckDB connection, closed once at the end, as before d1fe017
                 (since d1fe017 `DuckDB.apply` opens and closes a connection per delivery; matters for many small periods)
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

bucket, staging, db, mem, variant = sys.argv[1:6]
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
SPEC = S.table_spec("aws")


def load_delivery(con, delivery):
    current["delivery"] = delivery
    current["inserted"] = 0
    return _load_delivery(con, delivery)


L.load_delivery = load_delivery


def own_totals(con):
    "The table's own rows and totals of the delivery being loaded."
    d = current["delivery"]
    return L.table_totals(con, SPEC, SPEC.table, "WHERE export_id = ? AND billing_period = ?", [d.export.id, d.period])


_cast = _new_cast = L.cast_expr
if variant in ("nullif-cast", "old-nulls"):
    def old_cast(src, src_type, dest_type):
        if src_type.upper() == "VARCHAR" and dest_type != S.VARCHAR:
            return f"CAST(NULLIF({src}, '') AS {dest_type})"
        return _new_cast(src, src_type, dest_type)
    L.cast_expr = _cast = old_cast
if variant in ("no-null-count", "old-nulls"):
    L.null_spelling = lambda src, src_type: "0"  # source_totals leaves out the columns whose counter is "0"
if variant == "no-recheck":
    L.source_totals = lambda con, spec, srcs, p: (*own_totals(con), {})
elif variant == "no-gzip-check":
    L._gzip_problem = lambda files: ""
elif variant == "one-pass":
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
                current["inserted"] += r.fetchall()[0][0]
            return r
    L.connect = lambda cfg, read_only=False: (Counting(_connect(cfg, read_only)) if not read_only else _connect(cfg, read_only))

    def source_totals(con, spec, srcs, p):
        # one pass: the row count comes from the INSERT; each value was checked exact by the cast above, so the
        # files' exact totals equal the table's totals (the table side of the reconciliation is still computed);
        # the null-spelling counts of the second read are not made
        return current["inserted"], own_totals(con)[1], {}
    L.source_totals = source_totals

elif variant == "one-connection":
    shared = {}

    class Kept(Timed):
        def close(self): pass  # closed once, after the last delivery
    _timed_connect = L.connect

    def one_connection(cfg, read_only=False):
        if "con" not in shared:
            if read_only:
                return _timed_connect(cfg, read_only)
            shared["con"] = Kept(_timed_connect(cfg, False)._con)
        return shared["con"]
    L.connect = one_connection

cfg = config(bucket, staging, Path(db).parent / "pq", db, mem)
t = time.perf_counter()
res = L.load_billing_local(cfg, progress=False)
if variant == "one-connection" and "con" in shared:
    Timed.close(shared.pop("con"))
total = time.perf_counter() - t
by, peak = {}, {}
for k, s, h in clocks:
    by[k] = by.get(k, 0.0) + s
    peak[k] = max(peak.get(k, 0.0), h)
con = duckdb.connect(db, read_only=True)
n, unb, bl = con.execute("SELECT count(*), sum(line_item_unblended_cost), sum(line_item_blended_cost) FROM aws_billing_data").fetchall()[0]
con.close()
print(json.dumps({"variant": variant, "memory_limit": mem, "total": total, "steps": by, "peak_rss_mib_after": peak,
                  "actions": [r.action for r in res], "errors": [str(r.error) for r in res if r.error],
                  "notes": [n for r in res for n in r.notes],
                  "rows": n, "unblended": str(unb), "blended": str(bl)}))
