"""The fault suite for Google Cloud's billing export (docs/FAULTS.md, "Google Cloud"): the cases that apply to a
BigQuery source, each run through the real pipeline against the session's local-bigquery emulator, with real
servers only (no mocks): a dead loopback port, and a small HTTP proxy in the test process (tests/bq_proxy.py) in
front of the emulator's REST API that answers BigQuery's 403 or writes rows into the emulator before it lets a
request through.

Every case starts from good data already in the local destinations (a billing-export table of its own on the
emulator, `gcp_fixtures.month_rows` months, pulled, loaded into DuckDB and exported to Parquet by
`run_pipeline`), injects one fault, runs `finops gcp ...` as a user runs it (a subprocess), and compares staging
(file tree with MD5s), DuckDB (per period rows, delivery ids, exact sums; the load log) and Parquet (per file MD5,
rows, finops metadata) before and after. Where the case says so the fault is then removed and the next run must
load exactly (`gcp_fixtures.expected` of the table's rows). An export's id does not include the API endpoint, so
a run through the proxy reads the same export as a run straight to the emulator.
"""
from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

import gcp_fixtures as gf
import servers
from bq_proxy import BQProxy, access_denied, bq_error
from faults_helpers import parquet_state, tree, wait_for
from finops_nb.gcp.exports import gcp_export
from finops_nb.pipeline import run_pipeline
from finops_nb.staging import MARKER, Staging
from helpers import FINOPS
from test_gcp import export_table, finops, gcp_config, sums
from helpers import write_toml as toml

QUIET = {"focus.enabled": False}  # the FOCUS rows are not what these cases are about (and cost a step each run)


# ======================================================================================
# Snapshots
# ======================================================================================
def duck(cfg) -> dict:
    "DuckDB: per billing period (rows, delivery ids, exact sums of cost and cost_at_list as text); the whole load log."
    path = Path(cfg["database.duckdb.database_path"])
    if not path.is_file():
        return {}
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        out = {"periods": {}, "log": []}
        if "gcp_billing_data" in tables:
            out["periods"] = {p: (n, tuple(ids), c, l) for p, n, ids, c, l in con.execute(
                "SELECT billing_period, count(*), list(DISTINCT delivery_id ORDER BY delivery_id), CAST(sum(cost) AS VARCHAR), "
                "CAST(sum(cost_at_list) AS VARCHAR) FROM gcp_billing_data GROUP BY 1 ORDER BY 1").fetchall()}
        if "finops_load_log" in tables:
            cur = con.execute("SELECT * FROM finops_load_log ORDER BY loaded_at")
            names = [d[0] for d in cur.description]
            out["log"] = [{k: str(v) for k, v in zip(names, r)} for r in cur.fetchall()]
        return out
    finally:
        con.close()


def snap(cfg) -> dict:
    return {"staging": tree(cfg["staging_dir"]), "duckdb": duck(cfg), "parquet": parquet_state(cfg["parquet_dir"])}


def parts(cfg) -> list:
    "Temporary download files anywhere under staging (`.{file}.{pid}.{thread}.part`)."
    root = Path(cfg["staging_dir"])
    return sorted(p for p in root.rglob("*") if ".part" in p.name) if root.is_dir() else []


def markers(cfg, period) -> list:
    "The delivery ids of `period` that have a staging marker (a complete staged delivery)."
    folder = Path(cfg["staging_dir"]) / gcp_export(cfg).id / period
    return sorted(p.parent.name for p in folder.glob(f"*/{MARKER}")) if folder.is_dir() else []


def err_lines(err: str) -> list:
    return [l for l in err.splitlines() if l.strip()]


def want(rows, period) -> tuple:
    "(rows, cost, cost_at_list) of `period` in the rows, exact: what `sums` must read from DuckDB."
    e = gf.expected(rows, period)
    return e["rows"], e["cost"], e["cost_at_list"]


def loaded(cfg, **kw):
    "Pull and load with the library (the good data every case starts from); fails the test on any error."
    run = run_pipeline(cfg, progress=False, **kw)
    assert not run.failures, str(run)
    return run


def actions(run) -> dict:
    "{(period, step): action} of a run's pull and DuckDB load."
    return {(r.period, r.step): r.action for r in run.results if r.step in ("extract", "load_local")}


def split(rows, *fractions):
    "The rows (sorted by export_time) cut at the given fractions: snapshots of the table as it grew."
    cuts = [0, *(int(len(rows) * f) for f in fractions), len(rows)]
    out = [rows[a:b] for a, b in zip(cuts, cuts[1:])]
    assert all(out), [len(x) for x in out]
    return out


# ======================================================================================
# 1. The emulator down
# ======================================================================================
def test_bigquery_unreachable_is_transient_and_changes_nothing(tmp_path, bq, bq_server):
    """emulator_down: `[gcp] api_endpoint` (and the Storage Read API address) point at loopback ports where nothing
    listens, `[gcp] timeout = 3`: `finops gcp run-pipeline` exits 75 within the timeout and a little, with one line
    naming the table; nothing is staged, loaded or exported. With the right endpoint the next run catches up the
    month added meanwhile exactly and leaves the first month as it was."""
    octo = gf.month_rows("2024-10", seed=11, projects=1, days=2)
    nov = gf.month_rows("2024-11", seed=12, projects=1, days=2)
    dataset, table = export_table(bq, bq_server, octo)
    tid = f"{bq_server.project}.{dataset}.{table}"
    cfg = gcp_config(tmp_path, bq_server, dataset, table, **QUIET)
    ex = gcp_export(cfg)
    loaded(cfg)
    assert sums(cfg, ex.id) == {"2024-10": want(octo, "2024-10")}
    gf.insert_rows(bq, tid, nov)  # Google writes the next month while BigQuery cannot be reached
    before = snap(cfg)
    dead = gcp_config(tmp_path, bq_server, dataset, table, **QUIET, **{
        "gcp.api_endpoint": f"http://127.0.0.1:{servers.free_port()}", "gcp.read_api_endpoint": f"127.0.0.1:{servers.free_port()}",
        "gcp.timeout": 3})
    t0 = time.monotonic()
    code, out, err = finops(dead, "gcp", "run-pipeline")
    seconds = time.monotonic() - t0
    assert code == 75, (code, out, err)
    (line,) = err_lines(err)
    assert tid in line and "cannot reach BigQuery" in line, line
    assert seconds < 30, f"{seconds:.1f}s: [gcp] timeout = 3 was not kept"
    assert snap(cfg) == before, "a run that could not reach BigQuery changed a destination"
    assert not parts(cfg)
    # BigQuery back: the next run pulls November, October is left as it was
    run = loaded(cfg)
    assert actions(run) == {("2024-10", "extract"): "up to date", ("2024-10", "load_local"): "up to date",
                            ("2024-11", "extract"): "downloaded", ("2024-11", "load_local"): "loaded"}, actions(run)
    assert sums(cfg, ex.id) == {"2024-10": want(octo, "2024-10"), "2024-11": want(nov, "2024-11")}
    after = snap(cfg)
    assert after["duckdb"]["periods"]["2024-10"] == before["duckdb"]["periods"]["2024-10"]
    assert after["duckdb"]["log"][:len(before["duckdb"]["log"])] == before["duckdb"]["log"]
    assert len(after["duckdb"]["log"]) == len(before["duckdb"]["log"]) + 1  # one load: November's
    for where in ("staging", "parquet"):
        old = {k: v for k, v in after[where].items() if "2024-10" in k}
        assert old and old == {k: v for k, v in before[where].items() if "2024-10" in k}, where
    assert set(markers(cfg, "2024-11")) == {Staging(cfg["staging_dir"]).held(ex)["2024-11"]}
    assert not parts(cfg)


# ======================================================================================
# 2. Permission denied
# ======================================================================================
def test_permission_denied_is_a_config_error_and_writes_nothing(tmp_path, bq, bq_server):
    """permission_denied: a proxy in front of the emulator answers BigQuery's `403 accessDenied` JSON body to
    (a) every query job: `finops gcp run-pipeline` exits 2 with one line naming the table and "permission
    denied", nothing written; (b) only the pull's query (discovery and the dry-run estimate pass):
    `finops gcp extract-billing` exits 2 the same way, nothing staged."""
    rows = gf.month_rows("2024-10", seed=21, projects=1, days=2)
    dataset, table = export_table(bq, bq_server, rows)
    tid = f"{bq_server.project}.{dataset}.{table}"
    denied = access_denied(f"{bq_server.project}:{dataset}.{table}")
    with BQProxy(bq_server.url) as proxy:
        cfg = gcp_config(tmp_path, bq_server, dataset, table, **QUIET, **{"gcp.api_endpoint": proxy.url, "gcp.read_api": "rest"})
        written = lambda: sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")
                                 if p.is_file() and p.name != "config.toml" and not p.name.endswith(".finops.lock"))
        # (a) the table cannot be queried at all
        proxy.hooks = [lambda r: denied if r.is_query else None]
        code, out, err = finops(cfg, "gcp", "run-pipeline")
        assert code == 2, (code, out, err)
        (line,) = err_lines(err)
        assert "permission denied" in line and tid in line and "Access Denied" in line, line
        assert "answered 403" in proxy.outcomes()
        assert written() == [] and not Path(cfg["database.duckdb.database_path"]).exists()
        # (b) the watermarks can be read, the rows cannot
        proxy.log.clear()
        proxy.hooks = [lambda r: denied if r.is_query and not r.dry_run and r.sql.startswith("SELECT * FROM") else None]
        code, out, err = finops(cfg, "gcp", "extract-billing")
        assert code == 2, (code, out, err)
        (line,) = err_lines(err)
        assert "permission denied" in line and tid in line and "2024-10" in line, line
        assert proxy.outcomes().count("answered 403") == 1 and proxy.outcomes().count("200") >= 2  # discovery passed
        assert written() == [], written()
        assert markers(cfg, "2024-10") == [] and not parts(cfg)
        empty = [p for p in Path(cfg["staging_dir"]).rglob("*") if p.is_dir() and not any(p.iterdir())]
        assert empty == [], empty  # the refused pull left no empty delivery folder


# ======================================================================================
# 3. A month restated while it is pulled
# ======================================================================================
def test_month_restated_mid_pull_is_not_kept_and_the_next_run_pulls_it_whole(tmp_path, bq, bq_server):
    """restated_mid_pull: November is loaded, then grows (a new watermark). As `finops gcp run-pipeline`'s pull
    query of it reaches the proxy, the proxy appends more November rows to the table in the emulator, then lets
    the query through: the pull must be refused as transient (exit 75, "changed while it was pulled"), the staged
    November kept as it was (no marker of a new delivery, no `.part` file), DuckDB and Parquet unchanged. The next
    run (the proxy no longer interfering) pulls the new watermark and loads every row of November exactly."""
    octo = gf.month_rows("2024-10", seed=31, projects=1, days=2)
    nov = gf.month_rows("2024-11", seed=32, projects=1, days=3)
    nov_a, nov_b, nov_c = split(nov, 0.5, 0.75)
    dataset, table = export_table(bq, bq_server, octo + nov_a)
    tid = f"{bq_server.project}.{dataset}.{table}"
    cfg = gcp_config(tmp_path, bq_server, dataset, table, **QUIET)
    ex = gcp_export(cfg)
    loaded(cfg)
    gf.insert_rows(bq, tid, nov_b)  # November grows: the next run pulls it again
    before = snap(cfg)
    held = Staging(cfg["staging_dir"]).held(ex)
    assert markers(cfg, "2024-11") == [held["2024-11"]]
    fired = []

    def restate(r):
        if r.is_query and not r.dry_run and r.sql.startswith(f"SELECT * FROM `{tid}`") and not fired:
            fired.append(r.sql)
            gf.insert_rows(bq, tid, nov_c)  # Google writes more of November while the pull starts
        return None

    with BQProxy(bq_server.url) as proxy:
        proxy.hooks.append(restate)
        via = gcp_config(tmp_path, bq_server, dataset, table, **QUIET, **{"gcp.api_endpoint": proxy.url, "gcp.read_api": "rest"})
        assert gcp_export(via).id == ex.id
        code, out, err = finops(via, "gcp", "run-pipeline")
        assert fired and "invoice.month = @m " in fired[0], "the proxy never saw the pull's query"
        assert code == 75, (code, out, err)
        (line,) = err_lines(err)
        assert "invoice month 202411 changed while it was pulled" in line and tid in line, line
        assert f"{len(nov)} rows pulled of {len(nov_a) + len(nov_b)}" in line, line
        assert snap(cfg) == before, "a pull refused as changed left something behind"
        assert Staging(cfg["staging_dir"]).held(ex) == held and markers(cfg, "2024-11") == [held["2024-11"]]
        assert not parts(cfg)
        # the proxy no longer interferes (it fired once): the next run pulls the new watermark
        run = loaded(via)
        assert actions(run) == {("2024-10", "extract"): "up to date", ("2024-10", "load_local"): "up to date",
                                ("2024-11", "extract"): "downloaded", ("2024-11", "load_local"): "replaced"}, actions(run)
        assert len(fired) == 1
    assert sums(cfg, ex.id) == {"2024-10": want(octo, "2024-10"), "2024-11": want(nov, "2024-11")}
    now = Staging(cfg["staging_dir"]).held(ex)
    assert now["2024-10"] == held["2024-10"] and now["2024-11"] != held["2024-11"] and f"-{len(nov)}-" in now["2024-11"]
    assert markers(cfg, "2024-11") == [now["2024-11"]] and not parts(cfg)
    (d,) = [d for d in Staging(cfg["staging_dir"]).deliveries(ex) if d.period == "2024-11"]
    assert d.meta["pulled_rows"] == len(nov) and Decimal(d.meta["declared_totals"]["cost"]) == gf.expected(nov)["cost"]
    after = snap(cfg)
    assert after["duckdb"]["periods"]["2024-10"] == before["duckdb"]["periods"]["2024-10"]


# ======================================================================================
# 4. Bad data the export could hold
# ======================================================================================
TINY = 1.2345678901234567e-13  # 29 decimals: DECIMAL(38,28) cannot hold it (its shortest repr is ...566e-13: the same double)


def test_bad_values_are_refused_naming_them_and_good_months_load(tmp_path, bq, bq_server):
    """bad_data: (a) a restatement of November adds a row whose FLOAT64 cost is 1.2345678901234567e-13 (29
    decimals) while December arrives: the load refuses November naming the column and the value, DuckDB and
    Parquet keep November's previous delivery exactly, December loads exactly, October is untouched. (b) a row
    whose invoice.month is "2024-1" (not YYYYMM): one line naming the value and the table, nothing changed (exit 4:
    the staged November is refused again in the same run)."""
    octo = gf.month_rows("2024-10", seed=41, projects=1, days=2)
    nov = gf.month_rows("2024-11", seed=42, projects=1, days=2)
    dec = gf.month_rows("2024-12", seed=43, projects=1, days=2)
    dataset, table = export_table(bq, bq_server, octo + nov)
    tid = f"{bq_server.project}.{dataset}.{table}"
    cfg = gcp_config(tmp_path, bq_server, dataset, table, **QUIET)
    ex = gcp_export(cfg)
    loaded(cfg)
    before = snap(cfg)
    # (a) a cost no DECIMAL(38,28) holds, in a restatement of November
    bad = copy.deepcopy(next(r for r in nov if r["cost_type"] == "regular"))
    bad.update(cost=TINY, cost_at_list=TINY, credits=[], export_time=max(r["export_time"] for r in nov))
    gf.insert_rows(bq, tid, [bad] + dec)
    code, out, err = finops(cfg, "gcp", "run-pipeline")
    assert code == 4, (code, out, err)
    (line,) = err_lines(err)
    assert "2024-11" in line and "cost: value " + repr(TINY) in line and "DECIMAL(38,28)" in line and "2024-12" not in line, line
    got = snap(cfg)
    assert sums(cfg, ex.id) == {"2024-10": want(octo, "2024-10"), "2024-11": want(nov, "2024-11"), "2024-12": want(dec, "2024-12")}
    assert got["duckdb"]["periods"]["2024-11"] == before["duckdb"]["periods"]["2024-11"]  # the previous delivery kept
    assert got["duckdb"]["periods"]["2024-10"] == before["duckdb"]["periods"]["2024-10"]
    for month in ("2024-10", "2024-11"):
        assert {k: v for k, v in got["parquet"].items() if month in k} == {k: v for k, v in before["parquet"].items() if month in k}
    assert got["duckdb"]["log"][:len(before["duckdb"]["log"])] == before["duckdb"]["log"] and len(got["duckdb"]["log"]) == len(before["duckdb"]["log"]) + 1
    # (b) an invoice.month that is not YYYYMM
    odd = copy.deepcopy(dec[0])
    odd["invoice"]["month"] = "2024-1"
    gf.insert_rows(bq, tid, [odd])
    code, out, err = finops(cfg, "gcp", "run-pipeline")
    assert code == 4, (code, out, err)  # the month is told, and the staged November is refused again
    (line,) = err_lines(err)
    assert f"discover: bigquery://{tid} invoice.month '2024-1': not a YYYYMM month: its 1 rows are not pulled" in line, line
    assert line.count(f"invoice.month '2024-1'") == 1, line
    assert snap(cfg) == got
    # the other months are still pulled: a new January arrives beside the odd row
    jan = gf.month_rows("2025-01", seed=44, projects=1, days=2)
    gf.insert_rows(bq, tid, jan)
    code, out, err = finops(cfg, "gcp", "run-pipeline")
    assert code == 4 and "invoice.month '2024-1'" in err, (code, out, err)
    assert sums(cfg, ex.id)["2025-01"] == want(jan, "2025-01")


# ======================================================================================
# 5. Killed while pulling
# ======================================================================================
def test_kill_mid_pull_then_the_next_run_stages_the_month_whole(tmp_path, bq, bq_server):
    """kill_pull: a month of 2,000 generated rows (bench/gen_gcp_month.py's `write_month`, loaded as Parquet);
    `finops gcp extract-billing` (default read API: the Storage Read API) is SIGKILLed once the pulled rows are
    in its `.part` file and it waits for the watermark check (the proxy holds that query). The partial pull
    counts for nothing (no marker, no final-named file); the next run stages the month whole, removes the
    `.part` file and loads it exactly."""
    bench = str(Path(__file__).resolve().parents[1] / "bench")
    if bench not in sys.path:
        sys.path.insert(0, bench)
    import gen_gcp_month
    from google.cloud import bigquery

    info = gen_gcp_month.write_month(tmp_path / "gen" / "month.parquet", rows=2000, period="2024-03", projects=1)
    dataset, table = export_table(bq, bq_server, [])
    tid = f"{bq_server.project}.{dataset}.{table}"
    opts = bigquery.ParquetOptions()
    opts.enable_list_inference = True
    with open(tmp_path / "gen" / "month.parquet", "rb") as fh:
        bq.load_table_from_file(fh, tid, job_config=bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.PARQUET, schema=gf.SCHEMA_STANDARD, parquet_options=opts)).result(timeout=120)
    pulled, held, release = threading.Event(), threading.Event(), threading.Event()

    def hold_check(r):
        if r.is_query and not r.dry_run and r.sql.startswith(f"SELECT * FROM `{tid}`"):
            pulled.set()
        elif r.is_query and pulled.is_set() and "AS late FROM" in r.sql:  # the watermark read after the pull
            held.set()
            release.wait(60)
            return bq_error(503, "backendError", "held by the test", "UNAVAILABLE")
        return None

    cfg = gcp_config(tmp_path, bq_server, dataset, table, **QUIET)
    ex = gcp_export(cfg)
    folder = Path(cfg["staging_dir"]) / ex.id / "2024-03"
    with BQProxy(bq_server.url) as proxy:
        proxy.hooks.append(hold_check)
        via = gcp_config(tmp_path, bq_server, dataset, table, **QUIET, **{"gcp.api_endpoint": proxy.url})
        conf = toml(via, tmp_path / "killed.toml")
        env = {k: v for k, v in os.environ.items() if not k.startswith("FINOPS")}
        with open(tmp_path / "killed.log", "wb") as log:
            proc = subprocess.Popen([FINOPS, "--config", str(conf), "gcp", "extract-billing"], env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for(held.is_set, 60, "the watermark check after the pull", proc, step=0.01)
            left = parts(cfg)
            assert left and all(p.parent.parent == folder and p.stat().st_size > 0 for p in left), left
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(30) == -signal.SIGKILL
        finally:
            release.set()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert pq.read_metadata(left[0]).num_rows == info["rows"]  # what it had pulled, not checked yet
    assert markers(cfg, "2024-03") == [] and Staging(cfg["staging_dir"]).held(ex) == {}
    assert not [p for p in folder.rglob("2024-03.parquet")], "a pull that was never checked has its final name"
    assert not Path(cfg["database.duckdb.database_path"]).exists()
    # the next run, straight to the emulator
    run = loaded(cfg)
    assert actions(run) == {("2024-03", "extract"): "downloaded", ("2024-03", "load_local"): "loaded"}, actions(run)
    assert not parts(cfg), "the killed run's .part file is still there"
    (d,) = Staging(cfg["staging_dir"]).deliveries(ex)
    assert markers(cfg, "2024-03") == [d.delivery_id] and f"-{info['rows']}-" in d.delivery_id
    assert d.meta["pulled_rows"] == info["rows"] and d.meta["read_api"] == "storage"
    assert pq.read_metadata(d.files[0]).num_rows == info["rows"]
    exp = (info["rows"], Decimal(info["cost"]), Decimal(info["cost_at_list"]))
    assert sums(cfg, ex.id) == {"2024-03": exp}
