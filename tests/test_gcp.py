"""Google Cloud's billing export end to end, from a billing-export table in the local-bigquery emulator (the real koku rows
rebuilt into their nested form, and synthetic months with credits, tax, adjustments, late rows and a new label key):
exact loads, months that grow and are restated, the commands, the remotes."""

import json
import uuid
from decimal import Decimal
from pathlib import Path

import pytest

from finops_nb.config import load_config
from finops_nb.gcp.exports import gcp_export
from finops_nb.pipeline import reconcile, run_pipeline
from finops_nb.staging import Staging

import gcp_fixtures as gf
from helpers import cli, query, write_toml


def gcp_config(tmp_path, bq_server, dataset, table, **kw):
    "A config whose [gcp] export is `dataset.table` on the emulator, writing under tmp_path."
    over = {"gcp.project_id": bq_server.project, "gcp.dataset_id": dataset, "gcp.table_id": table,
            "gcp.api_endpoint": bq_server.url, "gcp.read_api_endpoint": bq_server.grpc_address, "gcp.timeout": 30,
            "staging_dir": str(tmp_path / "staging"), "parquet_dir": str(tmp_path / "parquet"),
            "database.duckdb.database_path": str(tmp_path / "finops.duckdb"), **kw}
    return load_config(None, over, environ={})


def finops(cfg, *args):
    "`finops --config <cfg as toml> args…`: (exit code, stdout, stderr)."
    r = cli("--config", write_toml(cfg, Path(cfg["staging_dir"]).parent / "config.toml"), *args)
    return r.returncode, r.stdout, r.stderr


def export_table(bq, bq_server, rows, detailed=False, dataset=None, account="000000-B0BBA4-940A77"):
    "A fresh dataset holding a billing-export table filled with `rows`: (dataset, table)."
    dataset = dataset or "billing_" + uuid.uuid4().hex[:8]
    bq.create_dataset(f"{bq_server.project}.{dataset}", exists_ok=True)
    table = gf.export_table_name(account, detailed)
    gf.create_export_table(bq, f"{bq_server.project}.{dataset}.{table}", detailed, exists_ok=True)
    if rows: gf.insert_rows(bq, f"{bq_server.project}.{dataset}.{table}", rows)
    return dataset, table


def sums(cfg, export_id):
    "{period: (rows, cost, cost_at_list)} of an export in DuckDB."
    return {p: (n, c, l) for p, n, c, l in query(cfg, "SELECT billing_period, count(*), sum(cost), sum(cost_at_list) FROM gcp_billing_data "
                                                  "WHERE export_id = ? GROUP BY 1 ORDER BY 1", [export_id])}


def credits_in(cfg, export_id, period):
    "The exact sum of every credit's amount in the DuckDB rows of a period, read from the JSON text."
    rows = query(cfg, "SELECT credits FROM gcp_billing_data WHERE export_id = ? AND billing_period = ?", [export_id, period])
    return sum((Decimal(str(c["amount"])) for (j,) in rows for c in json.loads(j, parse_float=Decimal)), Decimal(0))


@pytest.mark.parametrize("which,read_api", [("standard", "storage"), ("detailed", "rest")])
def test_real_rows_load_exactly_flattened_and_a_second_run_does_nothing(tmp_path, bq, bq_server, which, read_api):
    rows = gf.koku_rows(which)
    dataset, table = export_table(bq, bq_server, rows, detailed=which == "detailed")
    cfg = gcp_config(tmp_path, bq_server, dataset, table, **{"gcp.read_api": read_api})
    ex = gcp_export(cfg)
    assert ex.kind == which
    run = run_pipeline(cfg, progress=False)
    assert not run.failures, str(run)
    period = gf.invoice_month(rows[0]["invoice"]["month"])
    period = f"{period[:4]}-{period[4:]}"
    want = gf.expected(rows, period)
    got = sums(cfg, ex.id)
    assert got == {period: (want["rows"], want["cost"], want["cost_at_list"])}, (got, want)
    assert credits_in(cfg, ex.id, period) == want["credits"]
    # the staged pull says how it was read and what Python summed; the load agreed with it
    (d,) = Staging(cfg["staging_dir"]).deliveries(ex)
    assert d.meta["read_api"] == read_api and d.meta["pulled_rows"] == want["rows"]
    assert Decimal(d.meta["declared_totals"]["cost"]) == want["cost"]
    # one flattening rule: records field by field, repeated fields as JSON, quantities as the exported doubles
    cols = dict(query(cfg, "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'gcp_billing_data'"))
    assert cols["service_description"] == "VARCHAR" and cols["invoice_month"] == "VARCHAR" and cols["cost"] == "DECIMAL(38,28)"
    assert cols["credits"] == "JSON" and cols["labels"] == "JSON" and cols["usage_amount"] == "DOUBLE"
    assert cols["usage_start_time"] == "TIMESTAMP WITH TIME ZONE"
    if which == "detailed": assert "resource_name" in cols and "price_effective_price" in cols
    services = {r["service"]["description"] for r in rows}
    assert {s for (s,) in query(cfg, "SELECT DISTINCT service_description FROM gcp_billing_data")} == services
    amounts = sorted(gf.exact(r["usage"]["amount"]) for r in rows)
    assert sorted(Decimal(repr(a)) for (a,) in query(cfg, "SELECT usage_amount FROM gcp_billing_data")) == amounts
    # Parquet: one file per month, exact
    f = Path(cfg["parquet_dir"]) / ex.id / f"{period}_gcp_billing.parquet"
    n, c = query(cfg, f"SELECT count(*), sum(cost) FROM read_parquet('{f}')")[0]
    assert (n, c) == (want["rows"], want["cost"])
    assert reconcile(cfg).ok
    again = run_pipeline(cfg, progress=False)
    assert {r.action for r in again.results if r.step != "discover"} == {"up to date"}, str(again)


def test_a_month_that_grows_and_is_corrected_after_it_closes_is_replaced_whole(tmp_path, bq, bq_server):
    octo = gf.month_rows("2024-10", seed=1, projects=2, days=3)
    nov_full = gf.month_rows("2024-11", seed=2, projects=2, days=5, extra_label="cost-center")
    nov_early = gf.month_rows("2024-11", seed=2, projects=2, days=5, extra_label="cost-center", export_day=3)
    assert 0 < len(nov_early) < len(nov_full)
    dataset, table = export_table(bq, bq_server, octo + nov_early)
    cfg = gcp_config(tmp_path, bq_server, dataset, table)
    ex = gcp_export(cfg)
    first = run_pipeline(cfg, progress=False)
    assert not first.failures, str(first)
    held = Staging(cfg["staging_dir"]).held(ex)
    e, o = gf.expected(nov_early, "2024-11"), gf.expected(octo, "2024-10")
    assert sums(cfg, ex.id) == {"2024-10": (o["rows"], o["cost"], o["cost_at_list"]), "2024-11": (e["rows"], e["cost"], e["cost_at_list"])}
    # Google appends the rest of the month, late rows and corrections exported after it closed included
    later = [r for r in nov_full if r not in nov_early]
    assert any(gf.is_late(r) for r in later)
    gf.insert_rows(bq, f"{bq_server.project}.{dataset}.{table}", later)
    code, out, _ = finops(cfg, "gcp", "discover-exports")
    assert code == 0
    line = next(l for l in out.splitlines() if l.startswith("2024-11"))
    assert "changed delivery" in line and str(len(nov_full)) in line, out
    assert "up to date" in next(l for l in out.splitlines() if l.startswith("2024-10"))
    second = run_pipeline(cfg, progress=False)
    assert not second.failures, str(second)
    acts = {(r.period, r.step): r.action for r in second.results if r.step in ("extract", "load_local")}
    assert acts == {("2024-10", "extract"): "up to date", ("2024-10", "load_local"): "up to date",
                    ("2024-11", "extract"): "downloaded", ("2024-11", "load_local"): "replaced"}, acts
    f = gf.expected(nov_full, "2024-11")
    got = sums(cfg, ex.id)
    assert got["2024-11"] == (f["rows"], f["cost"], f["cost_at_list"]) and got["2024-10"][0] == o["rows"]
    assert credits_in(cfg, ex.id, "2024-11") == f["credits"]
    assert Staging(cfg["staging_dir"]).held(ex)["2024-11"] != held["2024-11"]
    # the new label key is queryable, and each cost type is there
    tagged = query(cfg, "SELECT count(*) FROM gcp_billing_data, unnest(CAST(labels AS JSON[])) AS t(l) "
                        "WHERE billing_period = '2024-11' AND json_extract_string(l, '$.key') = 'cost-center'")[0][0]
    assert tagged == sum(1 for r in nov_full for l in r["labels"] if l["key"] == "cost-center") > 0
    types = dict(query(cfg, "SELECT cost_type, count(*) FROM gcp_billing_data WHERE billing_period = '2024-11' GROUP BY 1"))
    assert types == {t: v["rows"] for t, v in f["cost_types"].items()}
    assert {"regular", "tax", "adjustment", "rounding_error"} <= set(types)
    # the staging folder holds only the new delivery of November
    assert [p.name for p in (Path(cfg["staging_dir"]) / ex.id / "2024-11").iterdir() if p.is_dir()] == [Staging(cfg["staging_dir"]).held(ex)["2024-11"]]


def test_commands_discover_dry_run_and_config_errors(tmp_path, bq, bq_server):
    rows = gf.month_rows("2024-11", seed=3, projects=1, days=2)
    dataset, table = export_table(bq, bq_server, rows)
    cfg = gcp_config(tmp_path, bq_server, dataset, table)
    code, out, err = finops(cfg, "gcp", "discover-exports")
    assert code == 0, err
    assert "watermark" in out and "bytes to scan" in out and f" {len(rows)} " in out and "new" in out
    code, out, err = finops(cfg, "gcp", "run-pipeline", "--dry-run")
    assert code == 0, err
    assert "DRY RUN" in out and "download (new)" in out and "would process" in out
    assert not Path(cfg["staging_dir"]).exists() and not Path(cfg["database.duckdb.database_path"]).exists()
    code, out, err = finops(cfg, "gcp", "run-pipeline", "--table-id", "gcp billing")
    assert code == 2 and "[gcp] table_id: 'gcp billing' is not a BigQuery table id" in err and len(err.strip().splitlines()) == 1
    code, out, err = finops(cfg, "gcp", "extract-billing", "--table-id", "gcp_billing_export_v1_NOPE")
    assert code in (2, 3) and "gcp_billing_export_v1_NOPE" in err and "not found" in err and len(err.strip().splitlines()) == 1
    code, out, err = finops(cfg, "gcp", "extract-billing")
    assert code == 0 and "downloaded" in out, err
    code, out, err = finops(cfg, "gcp", "load-billing-local")
    assert code == 0 and "loaded" in out, err
    code, out, err = finops(cfg, "config")
    assert f"export {gcp_export(cfg).id}: gcp standard bigquery://{bq_server.project}/{dataset}/{table}/" in out


def test_remotes_take_the_focus_rows_beside_an_aws_export_in_one_database(tmp_path, bq, bq_server):
    import cur_fixtures as cf
    from finops_nb.aws.manifests import aws_export
    from finops_nb.bigquery import table_id
    from finops_nb.clickhouse import ch_client
    # the real rows (at most 6 decimals): the emulator's BIGNUMERIC keeps 18 decimals, real BigQuery's 38 (docs/GCP_FORMATS.md)
    rows = gf.koku_rows("standard")
    dataset, table = export_table(bq, bq_server, rows)
    remotes = {"database.bigquery.project_id": bq_server.project, "database.bigquery.api_endpoint": bq_server.url,
               "database.bigquery.dataset_id": "ds_" + uuid.uuid4().hex[:10], "database.clickhouse.url": f"chdb://{tmp_path / 'clickhouse'}"}
    g = gcp_config(tmp_path, bq_server, dataset, table, **remotes)
    cf.build_v2(tmp_path / "bucket", period="2020-11", execution_id="v2-1", rows=120, files=1, charges="full")
    a = load_config(None, {**g.values, "gcp.project_id": None, "aws.bucket": f"file://{tmp_path / 'bucket'}", "aws.prefix": "cur2",
                           "aws.export_name": "demo-cur2", "aws.cur_version": "v2"}, environ={})
    xg, xa = gcp_export(g).id, aws_export(a).id
    for cfg in (g, a):
        run = run_pipeline(cfg, progress=False)
        assert not run.failures, str(run)
    steps = {(r.step, r.destination, r.export_id): r.action for r in run_pipeline(g, progress=False).results}
    assert ("load_remote", "bigquery", xg) not in steps  # the raw export is not copied back into BigQuery
    assert steps[("load_remote", "clickhouse", xg)] == steps[("focus_remote", "focus-bigquery", xg)] == "up to date"
    ds = f"{bq_server.project}.{remotes['database.bigquery.dataset_id']}"
    assert {t.table_id for t in bq.list_tables(ds)} == {"focus", "aws_billing_data"}
    want = {(e, n, b, f) for e, n, b, f in query(g, "SELECT x_ExportId, count(*), sum(BilledCost), sum(EffectiveCost) FROM focus GROUP BY 1")}
    assert {e for e, *_ in want} == {xg, xa}
    got = {(r[0], r[1], Decimal(r[2]), Decimal(r[3])) for r in bq.query(
        f"SELECT x_ExportId, COUNT(*), SUM(BilledCost), SUM(EffectiveCost) FROM `{table_id(g, 'focus')}` GROUP BY 1", job_retry=None).result()}
    assert got == want
    e = gf.expected(rows, "2020-11")
    (n, billed), = [(n, b) for x, n, b, _ in want if x == xg]
    assert billed == e["cost"] + e["credits"]  # every credit is in the FOCUS rows, exactly
    client = ch_client(g)
    try:
        assert client.query("SELECT count(), sum(cost) FROM finops.gcp_billing_data").result_rows == [(e["rows"], e["cost"])]
        assert {(x, int(c)) for x, c in client.query("SELECT x_ExportId, count() FROM finops.focus GROUP BY 1").result_rows} == {(x, n) for x, n, _, _ in want}
    finally: client.close()
    assert reconcile(g).ok and reconcile(a).ok
    kinds = dict(query(g, "SELECT json_type(x_Discounts), count(*) FROM focus WHERE ProviderName = 'Google Cloud' AND x_Discounts IS NOT NULL GROUP BY 1"))
    assert set(kinds) == {"OBJECT"} and kinds["OBJECT"] > 0, kinds  # credit type -> amount, as AWS's
    providers = {p for (p,) in query(g, "SELECT DISTINCT ProviderName FROM focus")}
    assert providers == {"AWS", "Google Cloud"}, providers


def test_rows_past_late_days_are_told_and_a_month_grown_since_discovery_is_not_pulled(tmp_path, bq, bq_server):
    from finops_nb.pipeline import Pipeline
    rows = gf.month_rows("2024-11", seed=7, projects=1, days=2)
    dataset, table = export_table(bq, bq_server, rows)
    tid = f"{bq_server.project}.{dataset}.{table}"
    cfg = gcp_config(tmp_path, bq_server, dataset, table, **{"gcp.late_days": 10, "start_date": "2024-10"})
    ex = gcp_export(cfg)
    # a correction of November exported 20 days after it ended, past late_days (the fixture's late rows are 1 to 4 days late): discovery and the pull leave it alike, and say so
    late = dict(rows[0], export_time="2024-12-20T10:00:00+00:00", cost=1.25, credits=[])
    gf.insert_rows(bq, tid, [late])
    p = Pipeline(cfg, progress=False).run()
    problems = [str(r.error) for r in p.failures if r.step == "discover"]
    assert len(problems) == 1 and "1 rows were exported more than [gcp] late_days (10)" in problems[0], problems
    want = gf.expected(rows, "2024-11")
    assert sums(cfg, ex.id) == {"2024-11": (want["rows"], want["cost"], want["cost_at_list"])}  # loaded, the late row apart
    # December appears after discovery and grows before it is pulled: not staged, transient, pulled by the next run
    dec = gf.month_rows("2024-12", seed=8, projects=1, days=2)
    gf.insert_rows(bq, tid, dec[:10])
    p = Pipeline(cfg, progress=False)
    p.discover()
    gf.insert_rows(bq, tid, dec[10:])
    p.extract()
    (failed,) = [r for r in p.results if r.step == "extract" and r.failed]
    assert failed.period == "2024-12" and failed.transient and "changed since it was discovered" in str(failed.error)
    assert "2024-12" not in Staging(cfg["staging_dir"]).held(ex)
    again = Pipeline(cfg, progress=False).run()
    d = gf.expected(dec, "2024-12")
    assert sums(cfg, ex.id)["2024-12"] == (d["rows"], d["cost"], d["cost_at_list"]), str(again)


def test_a_staged_pull_whose_files_disagree_with_what_was_summed_is_refused(tmp_path, bq, bq_server):
    import json as js
    from finops_nb.localdb import load_billing_local
    from finops_nb.staging import MARKER
    rows = gf.month_rows("2024-11", seed=9, projects=1, days=1)
    dataset, table = export_table(bq, bq_server, rows)
    cfg = gcp_config(tmp_path, bq_server, dataset, table, **{"focus.enabled": False})
    ex = gcp_export(cfg)
    from finops_nb.pipeline import extract_billing
    assert not [r for r in extract_billing(cfg, progress=False) if r.failed]
    (marker,) = (Path(cfg["staging_dir"]) / ex.id / "2024-11").glob(f"*/{MARKER}")
    m = js.loads(marker.read_text())
    m["meta"]["declared_totals"]["cost"] = str(Decimal(m["meta"]["declared_totals"]["cost"]) + Decimal("0.000001"))
    marker.write_text(js.dumps(m))
    (r,) = load_billing_local(cfg, progress=False)
    assert r.failed and "totals differ from the ones computed when they were pulled" in str(r.error), str(r.error)
    held = query(cfg, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'gcp_billing_data'")[0][0]
    assert held == 0 or sums(cfg, ex.id) == {}  # nothing of the refused delivery was kept


def test_a_secret_in_a_bad_setting_is_masked(tmp_path):
    from finops_nb.core import ConfigError
    with pytest.raises(ConfigError) as e:
        load_config(None, {"alerts.webhook_url": "hooks.slack.com/services/T0/B0/s3cr3tTOKEN"}, environ={})
    msg = str(e.value)
    assert "s3cr3tTOKEN" not in msg and ("[alerts] webhook_url" in msg or "alerts.webhook_url" in msg), msg
