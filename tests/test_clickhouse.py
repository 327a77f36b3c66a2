"ClickHouse as a destination, on ClickHouse's embedded engine (chdb) through the official clickhouse-connect client."
import json, signal, socket, subprocess, time
from decimal import Decimal
from pathlib import Path

import pytest

import cur_fixtures as cf
from finops_nb.aws.manifests import aws_export
from finops_nb.clickhouse import ch_client
from finops_nb.config import load_config
from finops_nb.pipeline import reconcile, run_pipeline
from helpers import FINOPS, cli, query


def shared(tmp_path, bucket, prefix, name, cur, **kw):
    "A config of one export; every config of a test shares the staging folder, DuckDB, Parquet and ClickHouse."
    over = {"aws.bucket": f"file://{tmp_path / bucket}", "aws.prefix": prefix, "aws.export_name": name, "aws.cur_version": cur,
            "staging_dir": str(tmp_path / "staging"), "parquet_dir": str(tmp_path / "parquet"),
            "database.duckdb.database_path": str(tmp_path / "finops.duckdb"),
            "database.clickhouse.url": f"chdb://{tmp_path / 'clickhouse'}", **kw}
    return load_config(None, over, environ={})


def ch_rows(cfg, sql):
    "Rows of a query on the configured ClickHouse (a client opened and closed around it)."
    client = ch_client(cfg)
    try: return client.query(sql).result_rows
    finally: client.close()


def by_export(rows):
    return {(e, p): (d, int(n), Decimal(s) if s is not None else None) for e, p, d, n, s in rows}


CH_SUMS = ("SELECT export_id, billing_period, any(delivery_id), count(), sum(line_item_unblended_cost) "
           "FROM finops.aws_billing_data GROUP BY export_id, billing_period")
DUCK_SUMS = ("SELECT export_id, billing_period, any_value(delivery_id), count(*), sum(line_item_unblended_cost) "
             "FROM aws_billing_data GROUP BY 1, 2")


def test_two_exports_two_periods_exact_restated_new_column_idempotent(tmp_path):
    cf.build_v1_csv(tmp_path / "bucket", period="2023-11", assembly_id="nov-1", files=2)
    cf.build_v1_csv(tmp_path / "bucket", period="2023-12", assembly_id="dec-1", files=1, rows=300)
    cf.build_v2(tmp_path / "bucket", period="2023-11", execution_id="v2-nov-1", rows=250, files=1)
    v1, v2 = shared(tmp_path, "bucket", "cur", "demo-cur", "v1"), shared(tmp_path, "bucket", "cur2", "demo-cur2", "v2")
    for c in (v1, v2):
        run = run_pipeline(c, progress=False)
        assert {r.action for r in run.results if r.step == "load_remote"} == {"loaded"}, str(run)
    assert by_export(ch_rows(v1, CH_SUMS)) == by_export(query(v1, DUCK_SUMS)) and len(by_export(query(v1, DUCK_SUMS))) == 3
    client = ch_client(v1)
    try:
        ddl = client.command("SHOW CREATE TABLE finops.aws_billing_data")
        cols = dict(client.query("SELECT name, type FROM system.columns WHERE database = 'finops' AND table = 'aws_billing_data'").result_rows)
    finally: client.close()
    assert "MergeTree" in ddl and "PARTITION BY (export_id, billing_period)" in ddl, ddl
    assert cols["line_item_unblended_cost"] == "Nullable(Decimal(38, 18))" and cols["export_id"] == "String"
    assert cols["line_item_usage_start_date"] == "Nullable(DateTime64(6, 'UTC'))"
    assert reconcile(v1).ok and {r[2] for r in reconcile(v1).rows} == {"staging", "duckdb", "parquet", "clickhouse",
                                                                       "focus-source", "focus", "focus-parquet", "focus-clickhouse"}

    # AWS restates the legacy November with a new tag column: only that export's partition changes
    other = {k: v for k, v in by_export(ch_rows(v1, CH_SUMS)).items() if k[0] != aws_export(v1).id or k[1] != "2023-11"}
    restated = cf.build_v1_csv(tmp_path / "bucket", period="2023-11", assembly_id="nov-2", files=1, rows=200,
                               extra_columns={"resourceTags/user:team": lambda i, row: f"team-{i % 3}"})
    run = run_pipeline(v1, progress=False)
    assert [(r.period, r.action) for r in run.results if r.step == "load_remote"] == [("2023-11", "replaced"), ("2023-12", "up to date")]
    now = by_export(ch_rows(v1, CH_SUMS))
    assert now[(aws_export(v1).id, "2023-11")] == ("nov-2", 200, restated.unblended_cost_sum)
    assert {k: v for k, v in now.items() if k != (aws_export(v1).id, "2023-11")} == other
    assert ch_rows(v1, "SELECT count(DISTINCT resource_tags_user_team) FROM finops.aws_billing_data") == [(3,)]
    assert by_export(ch_rows(v1, CH_SUMS)) == by_export(query(v1, DUCK_SUMS))
    for c in (v1, v2):  # a second run does nothing
        assert {r.action for r in run_pipeline(c, progress=False).results} == {"up to date"}


def test_cli_destination_and_dry_run(tmp_path):
    cf.build_v1_csv(tmp_path / "bucket", period="2023-11", assembly_id="nov-1", files=1, rows=100)
    (tmp_path / "config.toml").write_text('staging_dir = "staging"\nparquet_dir = "parquet"\n[database.duckdb]\ndatabase_path = "f.duckdb"\n'
                                          '[database.clickhouse]\nurl = "chdb://ch"\n'
                                          '[aws]\nbucket = "file://bucket"\nprefix = "cur"\nexport_name = "demo-cur"\n')
    r = cli("config", cwd=tmp_path)
    assert f"chdb://{tmp_path.resolve()}/ch" in r.stdout, r.stdout
    for steps in ("extract,load_local,export_parquet",):
        assert cli("aws", "run-pipeline", "--steps", steps, cwd=tmp_path).returncode == 0
    r = cli("aws", "run-pipeline", "--dry-run", cwd=tmp_path)
    assert r.returncode == 0 and "load (new)" in r.stdout.splitlines()[-1], r.stdout
    r = cli("aws", "discover-manifests", cwd=tmp_path)
    assert "clickhouse" in r.stdout.splitlines()[1] and r.stdout.splitlines()[-1].endswith("new"), r.stdout
    r = cli("aws", "load-billing-remote", "--destination", "clickhouse", cwd=tmp_path)
    assert r.returncode == 0 and "clickhouse" in r.stdout and "loaded" in r.stdout, r
    r = cli("aws", "load-billing-remote", cwd=tmp_path)
    assert r.returncode == 0 and "nothing to load: every remote holds every exported period" in r.stdout, r
    r = cli("aws", "load-billing-remote", "--destination", "bigquery", cwd=tmp_path)
    assert r.returncode == 2 and "[database.bigquery] project_id is not set" in r.stderr, r


def test_a_file_that_lies_is_refused_and_the_old_delivery_kept(tmp_path):
    cf.build_v1_csv(tmp_path / "bucket", period="2023-11", assembly_id="nov-1", files=1, rows=100)
    cfg = shared(tmp_path, "bucket", "cur", "demo-cur", "v1")
    run_pipeline(cfg, progress=False)
    before = ch_rows(cfg, CH_SUMS)
    cf.build_v1_csv(tmp_path / "bucket", period="2023-11", assembly_id="nov-2", files=1, rows=80)
    run_pipeline(cfg, steps="extract,load_local,export_parquet", progress=False)
    # the exported file's metadata claims another total than its rows hold
    import pyarrow.parquet as pq
    path = next((tmp_path / "parquet").glob("*/2023-11_aws_billing.parquet"))
    t = pq.read_table(path)
    meta = dict(t.schema.metadata)
    totals = json.loads(meta[b"finops_totals"]); totals["line_item_unblended_cost"] = "1.0000000001"
    meta[b"finops_totals"] = json.dumps(totals).encode()
    pq.write_table(t.replace_schema_metadata(meta), path)
    with pytest.raises(Exception) as e:
        run_pipeline(cfg, steps="load_remote", progress=False)
    assert "ClickHouse staged 80 rows" in str(e.value) and "2023-11" in str(e.value)
    assert ch_rows(cfg, CH_SUMS) == before
    assert ch_rows(cfg, "SELECT count() FROM system.tables WHERE database = 'finops' AND name LIKE '%staging%'") == [(0,)]


def test_kill_mid_load_keeps_the_old_delivery(tmp_path):
    pq_months = cf.build_v1_parquet(tmp_path / "bucket", months=("Oct2018",))
    cfg = shared(tmp_path, "bucket", "cur", "workshop", "v1", **{"database.clickhouse.batch_rows": 2000})
    run_pipeline(cfg, progress=False)
    before = by_export(ch_rows(cfg, CH_SUMS))
    # re-deliver October (a restatement) and kill the ClickHouse load while it inserts into its staging table
    marker = next(Path(cfg["staging_dir"]).glob("*/2018-10/*/.finops-staged.json"))
    m = json.loads(marker.read_text())
    m["delivery_id"] = "restated"; m["staged_at"] = "9999"
    new = marker.parent.parent / "restated"; new.mkdir()
    for f in m["files"]: (new / f["path"]).write_bytes((marker.parent / f["path"]).read_bytes())
    (new / ".finops-staged.json").write_text(json.dumps(m))
    run_pipeline(cfg, steps="load_local,export_parquet", progress=False)
    args = [FINOPS, "aws", "load-billing-remote", "--destination", "clickhouse", "--bucket", cfg["aws.bucket"], "--prefix", "cur",
            "--export-name", "workshop", "--output-dir", cfg["parquet_dir"]]
    env = {"FINOPS__DATABASE__CLICKHOUSE__URL": cfg["database.clickhouse.url"], "FINOPS__DATABASE__CLICKHOUSE__BATCH_ROWS": "2000",
           "FINOPS__DATABASE__DUCKDB__DATABASE_PATH": cfg["database.duckdb.database_path"]}
    import os
    proc = subprocess.Popen(args, env={**{k: v for k, v in os.environ.items() if not k.startswith("FINOPS")}, **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    staging = tmp_path / "clickhouse" / "metadata" / "finops"
    deadline = time.time() + 60
    while time.time() < deadline and not list(staging.glob("*__staging_*.sql")) and proc.poll() is None:
        time.sleep(0.002)
    time.sleep(0.05)
    proc.send_signal(signal.SIGKILL); proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the load ended before it could be killed"
    assert by_export(ch_rows(cfg, CH_SUMS)) == before  # the old delivery, whole
    run = run_pipeline(cfg, steps="load_remote", progress=False)
    res = [r for r in run.results if r.step == "load_remote"]
    assert [(r.period, r.action) for r in res] == [("2018-10", "replaced")] and "dropped 1 staging tables" in res[0].notes[0], res
    assert by_export(ch_rows(cfg, CH_SUMS)) == by_export(query(cfg, DUCK_SUMS))
    assert ch_rows(cfg, "SELECT count() FROM system.tables WHERE database = 'finops' AND name LIKE '%staging%'") == [(0,)]
    assert pq_months.months[0].row_count == before[next(iter(before))][1]


def test_server_out_of_reach_is_transient(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]  # a port where nothing listens
    cf.build_v1_csv(tmp_path / "bucket", period="2023-11", assembly_id="nov-1", files=1, rows=20)
    cfg = shared(tmp_path, "bucket", "cur", "demo-cur", "v1", **{"database.clickhouse.url": f"http://127.0.0.1:{port}"})
    with pytest.raises(Exception) as e:
        run_pipeline(cfg, progress=False)
    assert getattr(e.value, "exit_code", None) == 75 and "cannot reach ClickHouse" in str(e.value), e.value
    assert query(cfg, "SELECT count(*) FROM aws_billing_data") == [(20,)]  # everything before the remote is done


# ====================================================================== maps and tags
def ch_types(cfg, table):
    return dict(ch_rows(cfg, f"SELECT name, type FROM system.columns WHERE database = 'finops' AND table = '{table}'"))


def by_key(rows):
    "(value, rows, cost) of a tag's values, NULL (no such tag) first: comparable across engines."
    return sorted(((v, int(n), None if s is None else Decimal(s)) for v, n, s in rows), key=lambda r: (r[0] is not None, r[0] or ""))


DOTTED = "app.kubernetes.io/name"  # a real tag key: a dot, a slash


def cur2_and_focus_export(tmp_path, **kw):
    "A CUR 2.0 export (every special charge) and AWS's FOCUS export in one bucket; their configs load ClickHouse."
    cf.build_v2(tmp_path / "bucket", period="2024-01", execution_id="v2-1", rows=250, files=1, charges="full")
    cf.build_focus(tmp_path / "bucket", period="2024-01", execution_id="fx-1", rows=150, files=1)
    return shared(tmp_path, "bucket", "cur2", "demo-cur2", "v2", **kw), shared(tmp_path, "bucket", "focus", "demo-focus", "focus", **kw)


def dotted_tags(cfg):
    "Give the FOCUS rows of DuckDB a tag key with a dot, as another provider's tags have (AWS's here are normalised)."
    import duckdb
    con = duckdb.connect(cfg["database.duckdb.database_path"])
    try: con.execute(f"""UPDATE focus SET Tags = json_merge_patch(Tags, '{{"{DOTTED}": "web"}}') WHERE Tags->>'team' = 'platform' """
                     f"""OR Tags->>'user_team' = 'platform'""")
    finally: con.close()


def test_maps_are_json_and_focus_tags_a_map_queried_by_key_as_in_duckdb(tmp_path):
    v2, fx = cur2_and_focus_export(tmp_path)
    for c in (v2, fx):
        run_pipeline(c, steps="extract,load_local", progress=False)
    dotted_tags(v2)
    for c in (v2, fx):
        run = run_pipeline(c, progress=False)
        assert {r.action for r in run.results if r.step in ("load_remote", "focus_remote")} == {"loaded"}, str(run)
    cur, focus, raw = ch_types(v2, "aws_billing_data"), ch_types(v2, "focus"), ch_types(fx, "aws_focus_data")
    assert {c: cur[c] for c in ("product", "resource_tags", "cost_category", "tags", "discount")} == dict.fromkeys(
        ("product", "resource_tags", "cost_category", "tags", "discount"), "Nullable(JSON)"), cur
    assert (focus["Tags"], focus["SkuPriceDetails"], focus["x_Discounts"]) == ("Map(String, Nullable(String))", "Nullable(JSON)", "Nullable(JSON)")
    assert (raw["Tags"], raw["SkuPriceDetails"]) == ("Map(String, Nullable(String))", "Nullable(JSON)"), raw
    assert reconcile(v2).ok and reconcile(fx).ok  # exact totals through the new types

    # cost by tag value, a key at a time: ClickHouse's Map and JSON subcolumns say what DuckDB's JSON says, to the last digit
    for key in ("user_team", "user_environment", DOTTED):
        ch = ch_rows(v2, f"SELECT Tags['{key}'], count(), sum(BilledCost) FROM finops.focus GROUP BY 1")
        duck = query(v2, f"""SELECT json_extract_string(Tags, '$."{key}"'), count(*), sum(BilledCost) FROM focus GROUP BY 1""")
        assert by_key(ch) == by_key(duck) and len(by_key(ch)) >= 2, (key, ch, duck)
    assert ch_rows(v2, f"SELECT countIf(mapContains(Tags, '{DOTTED}')), countIf(Tags['{DOTTED}'] = 'web') FROM finops.focus")[0][0] > 0
    ch = ch_rows(v2, "SELECT resource_tags.user_team::Nullable(String), count(), sum(line_item_unblended_cost) FROM finops.aws_billing_data GROUP BY 1")
    duck = query(v2, "SELECT resource_tags->>'user_team', count(*), sum(line_item_unblended_cost) FROM aws_billing_data GROUP BY 1")
    assert by_key(ch) == by_key(duck) and len(by_key(ch)) > 2, (ch, duck)
    ch = ch_rows(fx, "SELECT Tags['team'], count(), sum(BilledCost) FROM finops.aws_focus_data GROUP BY 1")
    duck = query(fx, "SELECT Tags->>'team', count(*), sum(BilledCost) FROM aws_focus_data GROUP BY 1")
    assert by_key(ch) == by_key(duck) and len(by_key(ch)) > 2, (ch, duck)
    # a tag with no such key reads NULL (not ''), a row with no tags an empty map; NULL and {} of a JSON column stay apart
    assert ch_rows(v2, "SELECT countIf(Tags['no_such_tag'] IS NULL) = count() FROM finops.focus") == [(1,)]
    assert (ch_rows(v2, "SELECT countIf(empty(Tags)) FROM finops.focus")
            == query(v2, "SELECT count(*) FILTER (Tags IS NULL OR Tags::VARCHAR = '{}') FROM focus"))
    assert (ch_rows(v2, "SELECT countIf(resource_tags IS NULL), countIf(toString(resource_tags) = '{}') FROM finops.aws_billing_data")
            == query(v2, "SELECT count(*) FILTER (resource_tags IS NULL), count(*) FILTER (resource_tags::VARCHAR = '{}') FROM aws_billing_data"))


def test_a_table_of_string_maps_keeps_its_types_and_loads(tmp_path, monkeypatch):
    import finops_nb.clickhouse as chm
    v2, fx = cur2_and_focus_export(tmp_path)
    with monkeypatch.context() as m:  # the tables as the previous version made them: every map and tag set a String of JSON text
        m.setattr(chm, "has_json", lambda client: False); m.setattr(chm, "_MAPS", ())
        for c in (v2, fx):
            run_pipeline(c, progress=False)
    old = {t: ch_types(c, t) for c, t in ((v2, "aws_billing_data"), (v2, "focus"), (fx, "aws_focus_data"))}
    assert old["aws_billing_data"]["resource_tags"] == old["focus"]["Tags"] == old["aws_focus_data"]["Tags"] == "Nullable(String)"
    assert old["focus"]["x_Discounts"] == "Nullable(String)"
    client = ch_client(v2)  # and a column the old table lacks: the next file adds it, with today's type
    try: client.command("ALTER TABLE finops.aws_billing_data DROP COLUMN cost_category")
    finally: client.close()
    del old["aws_billing_data"]["cost_category"]

    # AWS restates January: the JSON text goes into the String columns as it is, exact, swapped whole
    restated = cf.build_v2(tmp_path / "bucket", period="2024-01", execution_id="v2-2", rows=120, files=1, charges="full", seed=7)
    cf.build_focus(tmp_path / "bucket", period="2024-01", execution_id="fx-2", rows=90, files=1, seed=7)
    for c in (v2, fx):
        run = run_pipeline(c, progress=False)
        assert {r.action for r in run.results if r.step in ("load_remote", "focus_remote")} == {"replaced"}, str(run)
    now = {t: ch_types(c, t) for c, t in ((v2, "aws_billing_data"), (v2, "focus"), (fx, "aws_focus_data"))}
    assert now["aws_billing_data"].pop("cost_category") == "Nullable(JSON)"
    assert now == old  # no column changed its type
    assert reconcile(v2).ok and reconcile(fx).ok
    assert ch_rows(v2, "SELECT count(), sum(line_item_unblended_cost) FROM finops.aws_billing_data")[0] == (
        restated.row_count, restated.unblended_cost_sum)
    ch = ch_rows(v2, "SELECT JSONExtract(Tags, 'user_team', 'Nullable(String)'), count(), sum(BilledCost) FROM finops.focus GROUP BY 1")
    duck = query(v2, "SELECT Tags->>'user_team', count(*), sum(BilledCost) FROM focus GROUP BY 1")
    assert by_key(ch) == by_key(duck) and len(by_key(ch)) > 2, (ch, duck)
    ch = ch_rows(v2, "SELECT cost_category.team::Nullable(String), count() FROM finops.aws_billing_data GROUP BY 1")
    assert sorted(ch, key=str) == sorted(query(v2, "SELECT cost_category->>'team', count(*) FROM aws_billing_data GROUP BY 1"), key=str)
    for c in (v2, fx):
        assert {r.action for r in run_pipeline(c, progress=False).results} == {"up to date"}
