"FOCUS rows in the remotes: the `focus` table (and AWS's own FOCUS export, `aws_focus_data`) in BigQuery (emulator) and ClickHouse (chdb)."
import json, re, uuid
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import cur_fixtures as cf
from finops_nb.aws.manifests import aws_export
from finops_nb.bigquery import bq_client, load_billing_remote, table_id
from finops_nb.clickhouse import ch_client
from finops_nb.config import load_config
from finops_nb.focus import TYPES
from finops_nb.pipeline import reconcile, run_pipeline
from helpers import cli, query

FOCUS_SQL = ("SELECT x_ExportId, x_BillingPeriod, {any}(x_DeliveryId), count(*), sum(BilledCost), sum(EffectiveCost) "
             "FROM {table} GROUP BY 1, 2 ORDER BY 1, 2")
RAW_SQL = ("SELECT export_id, billing_period, {any}(delivery_id), count(*), sum(BilledCost), sum(EffectiveCost) "
           "FROM {table} GROUP BY 1, 2 ORDER BY 1, 2")


def shared(tmp_path, prefix, name, cur, **kw):
    "A config of one export; the configs of a test share the bucket, staging, DuckDB, Parquet and the remotes."
    over = {"aws.bucket": f"file://{tmp_path / 'bucket'}", "aws.prefix": prefix, "aws.export_name": name, "aws.cur_version": cur,
            "staging_dir": str(tmp_path / "staging"), "parquet_dir": str(tmp_path / "parquet"),
            "database.duckdb.database_path": str(tmp_path / "finops.duckdb"), **kw}
    return load_config(None, over, environ={})


def norm(rows):
    "Rows of (export, period, delivery, n, BilledCost, EffectiveCost) with plain ints and Decimals, comparable across engines."
    return [(e, p, d, int(n), None if b is None else Decimal(b), None if f is None else Decimal(f)) for e, p, d, n, b, f in rows]


def duck(cfg, sql, table):
    return norm(query(cfg, sql.format(any="any_value", table=table)))


def by_step(run, step):
    return [(r.destination, r.export_id, r.period, r.action) for r in run.results if r.step == step]


def build_exports(tmp_path):
    "A CUR 2.0 export with every special charge (two periods) and an AWS FOCUS export (one period), in one bucket."
    v2 = [cf.build_v2(tmp_path / "bucket", period=p, execution_id=f"v2-{p}-1", rows=rows, files=1, charges="full")
          for p, rows in (("2024-01", 250), ("2024-02", 120))]
    fx = cf.build_focus(tmp_path / "bucket", period="2024-01", execution_id="fx-1", rows=150, files=1)
    return v2, fx


def check_exact(remote_rows, cfg, v2, fx, xv2, xfx):
    "The remote's focus table holds both exports' FOCUS rows, equal to DuckDB's to the last decimal."
    assert remote_rows == duck(cfg, FOCUS_SQL, "focus"), remote_rows
    assert [(e, p, d) for e, p, d, *_ in remote_rows] == sorted([(xfx, "2024-01", "fx-1"), (xv2, "2024-01", "v2-2024-01-1"),
                                                                 (xv2, "2024-02", "v2-2024-02-1")])
    # AWS's FOCUS export maps one row to one row: its totals are the files' own
    (_, _, _, n, billed, effective), = [r for r in remote_rows if r[0] == xfx]
    assert (n, billed, effective) == (fx.row_count, fx.billed_cost_sum, fx.effective_cost_sum)


# ====================================================================== BigQuery
@pytest.fixture
def bq_pair(bq_server, tmp_path):
    "(CUR 2.0 config, FOCUS-export config) loading into one fresh dataset of the emulator."
    bq = {"database.bigquery.project_id": bq_server.project, "database.bigquery.api_endpoint": bq_server.url,
          "database.bigquery.dataset_id": "ds_" + uuid.uuid4().hex[:10]}
    return shared(tmp_path, "cur2", "demo-cur2", "v2", **bq), shared(tmp_path, "focus", "demo-focus", "focus", **bq)


def bq_rows(client, sql, table):
    return norm([tuple(r.values()) for r in client.query(sql.format(any="ANY_VALUE", table=f"`{table}`"), job_retry=None).result(timeout=60)])


def test_bigquery_focus_table_both_exports_exact_partitioned_restated_idempotent(bq_pair, tmp_path):
    c2, cx = bq_pair
    v2, fx = build_exports(tmp_path)
    xv2, xfx = aws_export(c2).id, aws_export(cx).id
    for c in (c2, cx):
        run = run_pipeline(c, progress=False)
        assert {a for *_, a in by_step(run, "focus_parquet")} == {"exported"}, str(run)
        assert {(d, a) for d, *_, a in by_step(run, "focus_remote")} == {("focus-bigquery", "loaded")}, str(run)
        assert {(d, a) for d, *_, a in by_step(run, "load_remote")} == {("bigquery", "loaded")}, str(run)
    client = bq_client(c2)
    focus_tid = table_id(c2, "focus")
    assert focus_tid == f"{c2['database.bigquery.project_id']}.{c2['database.bigquery.dataset_id']}.focus"
    check_exact(bq_rows(client, FOCUS_SQL, focus_tid), c2, v2, fx, xv2, xfx)
    t = client.get_table(focus_tid)
    assert t.time_partitioning is not None and t.time_partitioning.type_ == "MONTH" and t.time_partitioning.field == "BillingPeriodStart"
    types = {f.name: f.field_type for f in t.schema}
    assert types["BilledCost"] == types["EffectiveCost"] == "BIGNUMERIC" and types["BillingPeriodStart"] == "TIMESTAMP"
    assert types["Tags"] == types["SkuPriceDetails"] == types["x_Discounts"] == "STRING"  # JSON text, as the Parquet file stores it
    # AWS's FOCUS export also lands as it is, in its own table, equal to DuckDB's
    raw = bq_rows(client, RAW_SQL, table_id(c2, "aws_focus_data"))
    assert raw == duck(cx, RAW_SQL, "aws_focus_data") and [r[:4] for r in raw] == [(xfx, "2024-01", "fx-1", fx.row_count)]
    assert (raw[0][4], raw[0][5]) == (fx.billed_cost_sum, fx.effective_cost_sum)

    # AWS restates the CUR 2.0 January: only that export's period of the focus table changes
    before = {r[:2]: r for r in bq_rows(client, FOCUS_SQL, focus_tid)}
    cf.build_v2(tmp_path / "bucket", period="2024-01", execution_id="v2-2024-01-2", rows=90, files=1, charges="full", seed=7)
    run = run_pipeline(c2, progress=False)
    assert by_step(run, "focus_remote") == [("focus-bigquery", xv2, "2024-01", "replaced"), ("focus-bigquery", xv2, "2024-02", "up to date")]
    after = {r[:2]: r for r in bq_rows(client, FOCUS_SQL, focus_tid)}
    assert after[(xv2, "2024-01")][2] == "v2-2024-01-2" and after[(xv2, "2024-01")] != before[(xv2, "2024-01")]
    assert {k: v for k, v in after.items() if k != (xv2, "2024-01")} == {k: v for k, v in before.items() if k != (xv2, "2024-01")}
    assert list(after.values()) == duck(c2, FOCUS_SQL, "focus")

    for c in (c2, cx):  # nothing new: every step of a second run is up to date
        assert {r.action for r in run_pipeline(c, progress=False).results} == {"up to date"}
        rec = reconcile(c)
        assert rec.ok, str(rec)
        labels = {r[2] for r in rec.rows}
        assert labels == {"staging", "duckdb", "parquet", "bigquery", "focus-source", "focus", "focus-parquet", "focus-bigquery"}, labels
        assert {r[1] for r in rec.rows if r[2] == "focus-bigquery"} == ({"2024-01", "2024-02"} if c is c2 else {"2024-01"})


# ====================================================================== ClickHouse
def ch(cfg, sql, table=None):
    client = ch_client(cfg)
    try: return client.query(sql if table is None else sql.format(any="any", table=table)).result_rows
    finally: client.close()


def test_clickhouse_focus_table_both_exports_exact_partitioned_restated_idempotent(tmp_path):
    url = {"database.clickhouse.url": f"chdb://{tmp_path / 'clickhouse'}"}
    c2, cx = shared(tmp_path, "cur2", "demo-cur2", "v2", **url), shared(tmp_path, "focus", "demo-focus", "focus", **url)
    v2, fx = build_exports(tmp_path)
    xv2, xfx = aws_export(c2).id, aws_export(cx).id
    for c in (c2, cx):
        run = run_pipeline(c, progress=False)
        assert {(d, a) for d, *_, a in by_step(run, "focus_remote")} == {("focus-clickhouse", "loaded")}, str(run)
        assert {(d, a) for d, *_, a in by_step(run, "load_remote")} == {("clickhouse", "loaded")}, str(run)
    rows = lambda: norm(ch(c2, FOCUS_SQL, "finops.focus"))
    check_exact(rows(), c2, v2, fx, xv2, xfx)
    ddl = ch(c2, "SHOW CREATE TABLE finops.focus")[0][0]
    cols = dict(ch(c2, "SELECT name, type FROM system.columns WHERE database = 'finops' AND table = 'focus'"))
    assert "MergeTree" in ddl and "PARTITION BY (x_ExportId, x_BillingPeriod)\n" in ddl, ddl  # ClickHouse prints it unquoted
    money = "Nullable(Decimal({}, {}))".format(*re.fullmatch(r"DECIMAL\((\d+),(\d+)\)", TYPES["BilledCost"]).groups())  # FOCUS's own
    assert cols["BilledCost"] == cols["EffectiveCost"] == cols["ListCost"] == money, cols
    assert cols["x_ExportId"] == cols["x_BillingPeriod"] == cols["x_DeliveryId"] == "String"
    assert cols["BillingPeriodStart"] == "Nullable(DateTime64(6, 'UTC'))"
    raw = norm(ch(cx, RAW_SQL, "finops.aws_focus_data"))
    assert raw == duck(cx, RAW_SQL, "aws_focus_data") and [r[:4] for r in raw] == [(xfx, "2024-01", "fx-1", fx.row_count)]

    before = {r[:2]: r for r in rows()}
    cf.build_v2(tmp_path / "bucket", period="2024-01", execution_id="v2-2024-01-2", rows=90, files=1, charges="full", seed=7)
    run = run_pipeline(c2, progress=False)
    assert by_step(run, "focus_remote") == [("focus-clickhouse", xv2, "2024-01", "replaced"), ("focus-clickhouse", xv2, "2024-02", "up to date")]
    after = {r[:2]: r for r in rows()}
    assert after[(xv2, "2024-01")][2] == "v2-2024-01-2" and after[(xv2, "2024-01")] != before[(xv2, "2024-01")]
    assert {k: v for k, v in after.items() if k != (xv2, "2024-01")} == {k: v for k, v in before.items() if k != (xv2, "2024-01")}
    assert list(after.values()) == duck(c2, FOCUS_SQL, "focus")
    assert ch(c2, "SELECT count() FROM system.tables WHERE database = 'finops' AND name LIKE '%staging%'") == [(0,)]

    for c in (c2, cx):
        assert {r.action for r in run_pipeline(c, progress=False).results} == {"up to date"}
        rec = reconcile(c)
        assert rec.ok, str(rec)
        assert {r[2] for r in rec.rows} == {"staging", "duckdb", "parquet", "clickhouse", "focus-source", "focus", "focus-parquet",
                                            "focus-clickhouse"}


# ====================================================================== CLI
def test_cli_focus_export_then_load_billing_remote_bigquery(bq_server, tmp_path):
    cfg = shared(tmp_path, "cur2", "demo-cur2", "v2", **{"database.bigquery.project_id": bq_server.project,
                                                         "database.bigquery.api_endpoint": bq_server.url,
                                                         "database.bigquery.dataset_id": "ds_" + uuid.uuid4().hex[:10]})
    cf.build_v2(tmp_path / "bucket", period="2024-01", execution_id="v2-1", rows=120, files=1, charges="full")
    run_pipeline(cfg, steps="extract,load_local", progress=False)
    env = {"FINOPS__AWS__BUCKET": cfg["aws.bucket"], "FINOPS__AWS__PREFIX": "cur2", "FINOPS__AWS__EXPORT_NAME": "demo-cur2",
           "FINOPS__AWS__CUR_VERSION": "v2", "FINOPS__PARQUET_DIR": cfg["parquet_dir"],
           "FINOPS__DATABASE__DUCKDB__DATABASE_PATH": cfg["database.duckdb.database_path"],
           "FINOPS__DATABASE__BIGQUERY__PROJECT_ID": bq_server.project, "FINOPS__DATABASE__BIGQUERY__API_ENDPOINT": bq_server.url,
           "FINOPS__DATABASE__BIGQUERY__DATASET_ID": cfg["database.bigquery.dataset_id"]}
    x = aws_export(cfg).id
    ((_, _, _, n, billed, _),) = duck(cfg, FOCUS_SQL, "focus")
    r = cli("focus", "load-billing-remote", "--destination", "bigquery", cwd=tmp_path, env=env, timeout=300)
    assert r.returncode == 0 and "no FOCUS file in" in r.stdout and "finops focus export-parquet" in r.stdout, r
    r = cli("focus", "export-parquet", cwd=tmp_path, env=env)
    assert r.returncode == 0, r
    assert (Path(cfg["parquet_dir"]) / x / "2024-01_focus.parquet").is_file()
    r = cli("focus", "load-billing-remote", "--destination", "bigquery", cwd=tmp_path, env=env, timeout=300)
    assert r.returncode == 0, r
    (line,) = [l for l in r.stdout.splitlines() if x in l]
    assert line.split()[:6] == ["focus-bigquery", x, "2024-01", "v2-1", "loaded", str(n)], r.stdout
    assert f"{billed.normalize():f}" in line.split(), r.stdout  # the BilledCost total, exact
    client = bq_client(cfg)
    assert bq_rows(client, FOCUS_SQL, table_id(cfg, "focus")) == duck(cfg, FOCUS_SQL, "focus")
    assert [t.table_id for t in client.list_tables(f"{bq_server.project}.{cfg['database.bigquery.dataset_id']}")] == ["focus"]
    r = cli("focus", "load-billing-remote", "--destination", "bigquery", cwd=tmp_path, env=env, timeout=300)
    assert r.returncode == 0 and "nothing to load: every remote holds every exported FOCUS period" in r.stdout, r
    assert "up to date" in [l for l in r.stdout.splitlines() if x in l][0], r.stdout
    # the file's JSON columns are text; a file whose metadata lies about its BilledCost is refused by the ASSERTs, the rows kept
    path = Path(cfg["parquet_dir"]) / x / "2024-01_focus.parquet"
    t = pq.read_table(path)
    assert all(t.schema.field(c).type == pa.string() for c in ("Tags", "SkuPriceDetails", "x_Discounts"))
    before = bq_rows(client, FOCUS_SQL, table_id(cfg, "focus"))
    totals = {**json.loads(t.schema.metadata[b"finops_totals"]), "BilledCost": "999.5"}
    pq.write_table(t.replace_schema_metadata({**t.schema.metadata, b"finops_totals": json.dumps(totals).encode()}), path)
    (res,) = load_billing_remote(cfg, destination="bigquery", focus=True, overwrite=True, progress=False)
    assert res.failed and f"BilledCost total of {x} 2024-01 differs from its Parquet file" in str(res.error), res
    assert bq_rows(client, FOCUS_SQL, table_id(cfg, "focus")) == before
    assert [t.table_id for t in client.list_tables(f"{bq_server.project}.{cfg['database.bigquery.dataset_id']}")] == ["focus"]
