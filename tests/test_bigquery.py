"BigQuery loading over HTTP with the official client, against the local-bigquery emulator."
import json, os, subprocess, sys, uuid
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import cur_fixtures as cf
from finops_nb.aws.manifests import aws_export
from finops_nb.aws.schema import CUR
from finops_nb.bigquery import BigQuery, bq_client, load_billing_remote, table_id
from finops_nb.parquet import export_parquet, parquet_info, parquet_path
from helpers import config, parquet_of, query, run

TABLE = CUR.table

FINOPS = str(Path(sys.executable).with_name("finops"))


@pytest.fixture
def bqcfg(bq_server, tmp_path):
    "A config whose BigQuery side is a fresh dataset on the emulator."
    def make(**kw):
        return config(tmp_path, **{"database.bigquery.project_id": bq_server.project,
                                   "database.bigquery.api_endpoint": bq_server.url,
                                   "database.bigquery.dataset_id": "ds_" + uuid.uuid4().hex[:10], **kw})
    return make


def bq_totals(client, cfg):
    "[(export id, period, delivery id, rows, exact unblended total)] of the BigQuery table."
    rows = client.query(f"SELECT export_id, billing_period, delivery_id, COUNT(*) AS n, SUM(line_item_unblended_cost) AS u "
                        f"FROM `{table_id(cfg)}` GROUP BY 1, 2, 3 ORDER BY 1, 2", job_retry=None).result(timeout=60)
    return [(r["export_id"], r["billing_period"], r["delivery_id"], r["n"], r["u"]) for r in rows]


def duck_totals(cfg):
    return query(cfg, f"SELECT export_id, billing_period, delivery_id, count(*), sum(line_item_unblended_cost) FROM {TABLE} "
                      "GROUP BY 1, 2, 3 ORDER BY 1, 2")


def test_two_periods_partitioned_clustered_exact(bqcfg):
    cf.build_v1_csv(Path(bqcfg()["staging_dir"]).parent / "bucket", files=2)
    cf.build_v1_csv(Path(bqcfg()["staging_dir"]).parent / "bucket", period="2023-12", files=1, rows=500)
    cfg = bqcfg()
    run(cfg)
    export_parquet(cfg, progress=False)
    res = load_billing_remote(cfg, progress=False)
    assert [(r.period, r.action, r.rows) for r in res] == [("2023-11", "loaded", 1281), ("2023-12", "loaded", 500)], res
    client = bq_client(cfg)
    t = client.get_table(table_id(cfg))
    assert t.time_partitioning.type_ == "MONTH" and t.time_partitioning.field == "bill_billing_period_start_date"
    assert t.clustering_fields == ["export_id", "line_item_usage_start_date"]
    types = {f.name: f.field_type for f in t.schema}
    assert types["line_item_unblended_cost"] == "BIGNUMERIC" and types["line_item_usage_start_date"] == "TIMESTAMP"
    assert bq_totals(client, cfg) == duck_totals(cfg)
    assert {r[0] for r in bq_totals(client, cfg)} == {aws_export(cfg).id}
    assert bq_totals(client, cfg)[0][4] == Decimal("1.68230869740")
    assert [r.action for r in load_billing_remote(cfg, progress=False)] == ["up to date", "up to date"]


def test_restated_period_replaced_and_new_column_added(bqcfg, tmp_path):
    cfg = bqcfg()
    cf.build_v1_csv(tmp_path / "bucket", assembly_id="first-delivery", files=1, rows=200)
    run(cfg)
    export_parquet(cfg, progress=False)
    load_billing_remote(cfg, progress=False)
    client = bq_client(cfg)
    assert BigQuery(cfg, client).held(aws_export(cfg)) == {"2023-11": "first-delivery"}
    # the restatement: all rows, and a column the table has never seen
    cf.build_v1_csv(tmp_path / "bucket", assembly_id="second-delivery", files=2,
                    extra_columns={"resourceTags/user:Team": lambda i, row: f"team-{i % 3}"})
    cf.build_v1_csv(tmp_path / "bucket", period="2024-01", assembly_id="jan", files=1, rows=50)
    run(cfg)
    export_parquet(cfg, progress=False)
    res = load_billing_remote(cfg, progress=False)
    assert [(r.period, r.action) for r in res] == [("2023-11", "replaced"), ("2024-01", "loaded")]
    assert bq_totals(client, cfg) == duck_totals(cfg)
    assert bq_totals(client, cfg)[0][:4] == (aws_export(cfg).id, "2023-11", "second-delivery", 1281)
    assert BigQuery(cfg, client).held(aws_export(cfg)) == {"2023-11": "second-delivery", "2024-01": "jan"}
    names = [f.name for f in client.get_table(table_id(cfg)).schema]
    assert "resource_tags_user_team" in names
    teams = list(client.query(f"SELECT COUNT(DISTINCT resource_tags_user_team) AS n FROM `{table_id(cfg)}`", job_retry=None).result())
    assert teams[0]["n"] == 3


def test_failing_load_leaves_previous_rows(bqcfg, tmp_path):
    cfg = bqcfg()
    cf.build_v1_csv(tmp_path / "bucket", assembly_id="good", files=1, rows=100)
    run(cfg)
    export_parquet(cfg, progress=False)
    load_billing_remote(cfg, progress=False)
    client = bq_client(cfg)
    before = bq_totals(client, cfg)
    # a new delivery whose Parquet file lies about its total: the check before COMMIT must refuse it
    cf.build_v1_csv(tmp_path / "bucket", assembly_id="bad", files=1, rows=300)
    run(cfg)
    export_parquet(cfg, progress=False)
    path = parquet_path(cfg["parquet_dir"], aws_export(cfg), "2023-11")
    assert path == parquet_of(cfg, "2023-11")
    table = pq.read_table(path)
    totals = {**json.loads(table.schema.metadata[b"finops_totals"]), "line_item_unblended_cost": "999.5"}
    meta = {**table.schema.metadata, b"finops_totals": json.dumps(totals).encode()}
    pq.write_table(table.replace_schema_metadata(meta), path)
    assert json.loads(parquet_info(path)[str(path)]["totals"])["line_item_unblended_cost"] == "999.5"
    (r,) = load_billing_remote(cfg, progress=False)
    assert r.action == "failed" and r.failed and r.error is not None, r
    assert f"line_item_unblended_cost total of {aws_export(cfg).id} 2023-11 differs" in str(r.error), r
    assert bq_totals(client, cfg) == before
    tables = [t.table_id for t in client.list_tables(f"{cfg['database.bigquery.project_id']}.{cfg['database.bigquery.dataset_id']}")]
    assert tables == [cfg["database.bigquery.table_id"]]  # the staging table was dropped


def test_two_exports_share_the_table_each_replaced_alone(bqcfg, tmp_path):
    "Two exports in one table: restating one export's period leaves the other export's rows of that period alone."
    dataset = "ds_" + uuid.uuid4().hex[:10]
    a = bqcfg(**{"database.bigquery.dataset_id": dataset})
    b = bqcfg(**{"database.bigquery.dataset_id": dataset, "aws.export_name": "other-cur"})
    ea, eb = aws_export(a), aws_export(b)
    assert ea.id != eb.id
    cf.build_v1_csv(tmp_path / "bucket", assembly_id="a-1", files=1, rows=100)
    cf.build_v1_csv(tmp_path / "bucket", report="other-cur", assembly_id="b-1", files=1, rows=30)
    for cfg in (a, b):
        run(cfg)
        export_parquet(cfg, progress=False)
        assert [(r.export_id, r.period, r.action) for r in load_billing_remote(cfg, progress=False)] == \
            [(aws_export(cfg).id, "2023-11", "loaded")]
    client = bq_client(a)
    assert BigQuery(a, client).held(ea) == {"2023-11": "a-1"} and BigQuery(b, client).held(eb) == {"2023-11": "b-1"}
    both = bq_totals(client, a)
    assert [(e, p, d, n) for e, p, d, n, _ in both] == sorted([(ea.id, "2023-11", "a-1", 100), (eb.id, "2023-11", "b-1", 30)])
    assert both == duck_totals(a)  # one DuckDB database holds both exports too
    cf.build_v1_csv(tmp_path / "bucket", assembly_id="a-2", files=1, rows=200)
    run(a)
    export_parquet(a, progress=False)
    assert [(r.export_id, r.period, r.delivery_id, r.action, r.rows) for r in load_billing_remote(a, progress=False)] == \
        [(ea.id, "2023-11", "a-2", "replaced", 200)]
    after = {(e, d): n for e, _, d, n, _ in bq_totals(client, a)}
    assert after == {(ea.id, "a-2"): 200, (eb.id, "b-1"): 30}
    assert [r.action for r in load_billing_remote(b, progress=False)] == ["up to date"]


def test_cli_load_billing_remote(bqcfg, bq_server, tmp_path):
    cfg = bqcfg()
    cf.build_v1_csv(tmp_path / "bucket", files=1, rows=40)
    run(cfg)
    export_parquet(cfg, progress=False)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("FINOPS")},
           "FINOPS__AWS__BUCKET": cfg["aws.bucket"], "FINOPS__AWS__PREFIX": cfg["aws.prefix"],
           "FINOPS__AWS__EXPORT_NAME": cfg["aws.export_name"],
           "FINOPS__PARQUET_DIR": cfg["parquet_dir"], "FINOPS__DATABASE__BIGQUERY__PROJECT_ID": bq_server.project,
           "FINOPS__DATABASE__BIGQUERY__API_ENDPOINT": bq_server.url,
           "FINOPS__DATABASE__BIGQUERY__DATASET_ID": cfg["database.bigquery.dataset_id"]}
    r = subprocess.run([FINOPS, "aws", "load-billing-remote"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "loaded" in r.stdout and "40" in r.stdout and aws_export(cfg).id in r.stdout
    r = subprocess.run([FINOPS, "aws", "load-billing-remote"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "nothing to load" in r.stdout


def test_bad_credentials_file_is_one_clear_error(tmp_path):
    from finops_nb.core import ConfigError
    bad = tmp_path / "sa.json"
    bad.write_text("{not json")
    cfg = config(tmp_path, **{"database.bigquery.project_id": "p", "database.bigquery.credentials_path": str(bad)})
    with pytest.raises(ConfigError, match=r"credentials_path: .*sa.json: not a usable service-account file"):
        bq_client(cfg)


def test_google_errors_become_one_line(tmp_path):
    from google.api_core import exceptions as gx
    from finops_nb.bigquery import bq_error
    from finops_nb.core import ConfigError, InputError, TransientError
    cases = [(gx.Forbidden("Access Denied: Project p: User does not have bigquery.jobs.create permission"), ConfigError, "permission denied"),
             (gx.NotFound("Not found: Project nope"), ConfigError, "not found"),
             (gx.TooManyRequests("Quota exceeded: too many table update operations"), TransientError, "over quota"),
             (gx.BadRequest("Syntax error"), InputError, "Syntax error")]
    for exc, kind, text in cases:
        err = bq_error(exc, "p.d.t 2024-01")
        assert isinstance(err, kind) and text in str(err) and str(err).startswith("p.d.t 2024-01: ") and "\n" not in str(err)
