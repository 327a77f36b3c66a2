"Any number of exports sharing one staging folder, DuckDB database, Parquet folder and BigQuery table; the previous version's database migrated; null spellings; the run notebook's lock."
import json, os, subprocess, sys, uuid
from decimal import Decimal
from pathlib import Path

import duckdb
import papermill as pm
import pytest

import cur_fixtures as cf
from finops_nb.aws.manifests import aws_export
from finops_nb.bigquery import bq_client, table_id
from finops_nb.config import load_config
from finops_nb.pipeline import Pipeline, reconcile, run_pipeline
from helpers import cli, parquet_of, query, staged, staging_of, tree

ROOT = Path(__file__).resolve().parents[1]
FINOPS = str(Path(sys.executable).with_name("finops"))


def shared(tmp_path, bucket, prefix, name, cur, **kw):
    "A config of one export; every config of a test shares the staging folder, database, Parquet folder and BigQuery table."
    over = {"aws.bucket": f"file://{tmp_path / bucket}", "aws.prefix": prefix, "aws.export_name": name, "aws.cur_version": cur,
            "staging_dir": str(tmp_path / "staging"), "parquet_dir": str(tmp_path / "parquet"),
            "database.duckdb.database_path": str(tmp_path / "finops.duckdb"), **kw}
    return load_config(None, over, environ={})


def duck_by_export(cfg):
    "{(export id, period): (delivery id, rows, exact unblended sum)} in DuckDB."
    return {(e, p): (d, n, s) for e, p, d, n, s in query(
        cfg, "SELECT export_id, billing_period, any_value(delivery_id), count(*), sum(line_item_unblended_cost) "
             "FROM aws_billing_data GROUP BY 1, 2")}


def bq_by_export(cfg):
    rows = bq_client(cfg).query(f"SELECT export_id, billing_period, ANY_VALUE(delivery_id) AS d, COUNT(*) AS n, "
                                f"SUM(line_item_unblended_cost) AS s FROM `{table_id(cfg)}` GROUP BY 1, 2", job_retry=None).result(timeout=60)
    return {(r["export_id"], r["billing_period"]): (r["d"], r["n"], r["s"]) for r in rows}


def test_three_exports_share_every_destination(tmp_path, bq_server):
    "A legacy CUR and a CUR 2.0 export of one account, and a second payer's legacy CUR of the same name, all of 2023-11."
    bq = {"database.bigquery.project_id": bq_server.project, "database.bigquery.api_endpoint": bq_server.url,
          "database.bigquery.dataset_id": "ds_" + uuid.uuid4().hex[:10]}
    v1 = cf.build_v1_csv(tmp_path / "payer-a", period="2023-11", assembly_id="a-nov-1", files=2)
    v1dec = cf.build_v1_csv(tmp_path / "payer-a", period="2023-12", assembly_id="a-dec-1", files=1, rows=300)
    v2 = cf.build_v2(tmp_path / "payer-a", period="2023-11", execution_id="a2-nov-1", rows=400, files=1)
    other = cf.build_v1_csv(tmp_path / "payer-b", period="2023-11", assembly_id="b-nov-1", files=1, rows=500)
    cfgs = {"v1": shared(tmp_path, "payer-a", "cur", "demo-cur", "v1", **bq),
            "v2": shared(tmp_path, "payer-a", "cur2", "demo-cur2", "v2", **bq),
            "b": shared(tmp_path, "payer-b", "cur", "demo-cur", "v1", **bq)}
    ids = {k: aws_export(c).id for k, c in cfgs.items()}
    assert len(set(ids.values())) == 3 and ids["b"].startswith("aws-cur1-demo-cur-")
    for c in cfgs.values(): run_pipeline(c, progress=False)
    want = {(ids["v1"], "2023-11"): ("a-nov-1", v1.row_count, v1.unblended_cost_sum),
            (ids["v1"], "2023-12"): ("a-dec-1", v1dec.row_count, v1dec.unblended_cost_sum),
            (ids["v2"], "2023-11"): ("a2-nov-1", v2.row_count, v2.unblended_cost_sum),
            (ids["b"], "2023-11"): ("b-nov-1", other.row_count, other.unblended_cost_sum)}
    assert duck_by_export(cfgs["v1"]) == want
    assert bq_by_export(cfgs["v1"]) == want
    for k, c in cfgs.items():  # each export in its own folders, with the one-export names inside
        assert (staging_of(c) / "2023-11").is_dir() and parquet_of(c, "2023-11").is_file(), k
        assert reconcile(c).ok and {r[0] for r in reconcile(c).rows} == {ids[k]}

    # AWS restates payer A's legacy November: only that export's period changes, everywhere
    before = {k: (tree(staging_of(c)), tree(parquet_of(c))) for k, c in cfgs.items() if k != "v1"}
    restated = cf.build_v1_csv(tmp_path / "payer-a", period="2023-11", assembly_id="a-nov-2", files=1, rows=200)
    run = run_pipeline(cfgs["v1"], progress=False)
    assert [(r.step, r.period, r.action) for r in run.results if r.action != "up to date"] == [
        ("extract", "2023-11", "downloaded"), ("load_local", "2023-11", "replaced"),
        ("export_parquet", "2023-11", "re-exported (stale: was a-nov-1)"), ("load_remote", "2023-11", "replaced"),
        ("focus_parquet", "2023-11", "re-exported (stale: was a-nov-1)"), ("focus_remote", "2023-11", "replaced")]
    want[(ids["v1"], "2023-11")] = ("a-nov-2", restated.row_count, restated.unblended_cost_sum)
    assert duck_by_export(cfgs["v1"]) == want and bq_by_export(cfgs["v1"]) == want
    assert {k: (tree(staging_of(c)), tree(parquet_of(c))) for k, c in cfgs.items() if k != "v1"} == before
    # a second run of each export does nothing, and says so
    for k, c in cfgs.items():
        again = run_pipeline(c, progress=False)
        assert {r.action for r in again.results} == {"up to date"}, (k, [(r.step, r.period, r.action) for r in again.results])
    assert duck_by_export(cfgs["v1"]) == want


def test_config_and_discover_show_the_export_id(tmp_path):
    cf.build_v1_csv(tmp_path / "bucket", files=1, rows=10)
    (tmp_path / "config.toml").write_text('[aws]\nbucket = "file://bucket"\nprefix = "cur"\nexport_name = "demo-cur"\n')
    eid = aws_export(load_config(tmp_path / "config.toml", environ={})).id
    r = cli("config", cwd=tmp_path)
    assert r.returncode == 0 and f"export {eid}: aws cur1 file://{tmp_path.resolve()}/bucket/cur/demo-cur/" in r.stdout, r.stdout
    r = cli("aws", "discover-manifests", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.startswith(f"export {eid}: "), r
    assert "2023-11" in r.stdout and "new" in r.stdout


def test_prefix_without_the_export_names_what_is_there(tmp_path):
    cf.build_v2(tmp_path / "bucket", prefix="cur2", export="demo-cur2", period="2024-01", rows=10, files=1)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINOPS")}
    args = [FINOPS, "aws", "run-pipeline", "--bucket", f"file://{tmp_path / 'bucket'}", "--prefix", "cur2",
            "--staging-dir", str(tmp_path / "staging"), "--output-dir", str(tmp_path / "parquet"),
            "--database-path", str(tmp_path / "f.duckdb")]
    r = subprocess.run(args + ["--export-name", "demo-cur2"], capture_output=True, text=True, env=env)  # cur_version v1 by default
    assert r.returncode == 3 and 'found cur_version = "v2", export_name = "demo-cur2" under the prefix' in r.stderr, r.stderr
    r = subprocess.run([FINOPS, "aws", "extract-billing"] + args[3:9] + ["--export-name", "demo-cur2"], capture_output=True, text=True, env=env)
    assert r.returncode == 3 and r.stderr.count("\n") == 1 and "cur_version" in r.stderr, r.stderr
    r = subprocess.run([FINOPS, "aws", "extract-billing", "--bucket", f"file://{tmp_path / 'nowhere'}", "--export-name", "x"],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 3 and "local folder" in r.stderr and "does not exist" in r.stderr, r.stderr
    assert not (tmp_path / "staging").exists() and not (tmp_path / "f.duckdb").exists()


def test_null_spellings_are_null_and_counted(tmp_path):
    spellings = ["None", "null", "NULL", "NaN"]  # four rows write "missing" in other tools' words
    col = "discount/TotalDiscount"  # a money column the sample does not have
    d = cf.build_v1_csv(tmp_path / "bucket", files=1, rows=10, extra_columns={col: lambda i, row: spellings[i] if i < 4 else "1.5"})
    cfg = shared(tmp_path, "bucket", "cur", "demo-cur", "v1")
    run = run_pipeline(cfg, progress=False)
    load = next(r for r in run.results if r.step == "load_local")
    assert "4 null spellings (None, null, NULL, NaN) stored as NULL in discount_total_discount" in load.notes, load.notes
    assert query(cfg, "SELECT count(*), count(discount_total_discount), sum(discount_total_discount) "
                      "FROM aws_billing_data") == [(10, 6, Decimal("9.0"))]
    assert [json.loads(n) for n, in query(cfg, "SELECT null_spellings FROM finops_load_log")] == [{"discount_total_discount": 4}]
    assert f"note: 2023-11: 4 null spellings" in str(run)
    # anything else that is not a number still fails, naming the column, the value and the file
    cf.build_v1_csv(tmp_path / "bucket", files=1, rows=10, assembly_id="bad-one",
                          extra_columns={col: lambda i, row: "n/a" if i == 3 else "1"})
    with pytest.raises(Exception) as e:
        run_pipeline(cfg, progress=False)
    assert f"'{col}'" in str(e.value) and "'n/a'" in str(e.value) and ".csv.gz" in str(e.value)
    assert query(cfg, "SELECT DISTINCT delivery_id FROM aws_billing_data") == [(d.assembly_id,)]  # nothing lost


def previous_database(cfg):
    "Turn the database this version wrote into what the previous version wrote: no export ids, its names, its load log."
    con = duckdb.connect(cfg["database.duckdb.database_path"])
    con.execute("ALTER TABLE aws_billing_data DROP COLUMN export_id")
    con.execute("ALTER TABLE aws_billing_data RENAME COLUMN delivery_id TO execution_id")
    con.execute("""CREATE TABLE old_log AS SELECT billing_period, delivery_id AS execution_id,
                   CASE kind WHEN 'cur1' THEN 'v1' ELSE 'v2' END AS cur_version, files, rows,
                   CAST(totals->>'line_item_unblended_cost' AS DECIMAL(38,18)) AS line_item_unblended_cost,
                   CAST(totals->>'line_item_net_unblended_cost' AS DECIMAL(38,18)) AS line_item_net_unblended_cost,
                   CAST(totals->>'line_item_blended_cost' AS DECIMAL(38,18)) AS line_item_blended_cost,
                   renamed_columns, loaded_at, seconds FROM finops_load_log""")
    con.execute("DROP TABLE finops_load_log")
    con.execute("ALTER TABLE old_log RENAME TO finops_load_log")
    con.close()


def previous_folders(cfg):
    "Move the export's staging and Parquet folders where the previous version kept them, with its markers."
    eid = aws_export(cfg).id
    for f in parquet_of(cfg).glob("*.parquet"): f.rename(Path(cfg["parquet_dir"]) / f.name)
    root = Path(cfg["staging_dir"])
    for marker in (root / eid).glob("*/*/.finops-staged.json"):  # the old marker, at the old place
        m = json.loads(marker.read_text())
        old = {"period": m["period"], "execution_id": m["delivery_id"], "cur_version": m["meta"]["cur_version"],
               "format": m["format"], "manifest_key": m["meta"]["manifest_key"], "manifest": m["meta"]["manifest"],
               "source": m["source"], "columns": m["columns"], "files": m["files"], "staged_at": m["staged_at"]}
        marker.write_text(json.dumps(old))
        (root / m["period"]).mkdir(parents=True, exist_ok=True)
        marker.parent.rename(root / m["period"] / marker.parent.name)
    for p in (root / eid).iterdir():
        if p.is_dir(): p.rmdir()


def test_previous_version_database_is_migrated_in_place(tmp_path):
    a = cf.build_v1_csv(tmp_path / "bucket", period="2023-10", assembly_id="oct-1", files=1, rows=100)
    cf.build_v1_csv(tmp_path / "bucket", period="2023-11", assembly_id="nov-1", files=1, rows=200)
    cfg = shared(tmp_path, "bucket", "cur", "demo-cur", "v1")
    run_pipeline(cfg, progress=False)
    previous_database(cfg); previous_folders(cfg)
    # October is no longer in the bucket (AWS keeps what it keeps): only the database still holds it
    (tmp_path / "bucket" / a.top_manifest_key).unlink()
    eid = aws_export(cfg).id
    run = run_pipeline(cfg, progress=False)
    assert f"migrated {tmp_path / 'finops.duckdb'}: 300 rows written before export ids are now export {eid}'s" in str(run), str(run)
    assert f"moved 2023-10, 2023-11 staged by the previous version into {staging_of(cfg)}" in str(run)
    assert staged(cfg) == {"2023-10": "oct-1", "2023-11": "nov-1"}  # the old staging folders moved into the export's
    assert [(r.step, r.period, r.action) for r in run.results if r.step in ("extract", "load_local")] == [
        ("extract", "2023-11", "up to date"), ("load_local", "2023-10", "up to date"), ("load_local", "2023-11", "up to date")]
    assert query(cfg, "SELECT export_id, billing_period, delivery_id, count(*) FROM aws_billing_data GROUP BY ALL ORDER BY 2") == [
        (eid, "2023-10", "oct-1", 100), (eid, "2023-11", "nov-1", 200)]
    assert reconcile(cfg).ok
    assert {r.action for r in run_pipeline(cfg, progress=False).results} == {"up to date"}


def test_previous_version_database_of_mixed_exports_is_refused(tmp_path):
    cf.build_v1_csv(tmp_path / "bucket", period="2023-11", assembly_id="nov-1", files=1, rows=50)
    cf.build_v2(tmp_path / "bucket", period="2024-01", execution_id="jan-1", rows=30, files=1)
    v1, v2 = shared(tmp_path, "bucket", "cur", "demo-cur", "v1"), shared(tmp_path, "bucket", "cur2", "demo-cur2", "v2")
    run_pipeline(v1, progress=False); run_pipeline(v2, progress=False)
    previous_database(v1); previous_folders(v1); previous_folders(v2)
    db = tmp_path / "finops.duckdb"
    before = query(v1, "SELECT billing_period, execution_id, count(*) FROM aws_billing_data GROUP BY ALL ORDER BY 1")
    cf.build_v1_csv(tmp_path / "bucket", period="2023-11", assembly_id="nov-2", files=1, rows=40)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINOPS")}
    flags = ["--bucket", v1["aws.bucket"], "--prefix", "cur", "--export-name", "demo-cur", "--staging-dir", v1["staging_dir"],
             "--database-path", str(db)]
    r = subprocess.run([FINOPS, "aws", "run-pipeline", *flags, "--output-dir", v1["parquet_dir"]], capture_output=True, text=True, env=env)
    assert r.returncode == 3, r  # the whole load step failed, with an input error
    assert f"written by finops_nb before export ids, with rows of CUR v1 and v2 that cannot be told apart; move it aside (e.g. mv {db} {db}.old)" in r.stderr
    r = subprocess.run([FINOPS, "aws", "load-billing-local", *flags], capture_output=True, text=True, env=env)
    assert r.returncode == 3 and r.stderr.count("\n") == 1 and "cannot be told apart" in r.stderr, r
    assert query(v1, "SELECT billing_period, execution_id, count(*) FROM aws_billing_data GROUP BY ALL ORDER BY 1") == before


def test_run_notebook_extracts_under_the_lock(tmp_path):
    "The papermill run notebook's extract takes the export's staging lock: while another process holds it, nothing is staged."
    cf.build_v1_csv(tmp_path / "bucket", files=1, rows=20)
    cfg = tmp_path / "config.toml"
    cfg.write_text('staging_dir = "staging"\nparquet_dir = "parquet"\n[database.duckdb]\ndatabase_path = "finops.duckdb"\n'
                   '[aws]\nbucket = "file://bucket"\nprefix = "cur"\nexport_name = "demo-cur"\n')
    lock = staging_of(load_config(cfg, environ={})) / ".finops.lock"
    holder = subprocess.Popen([sys.executable, "-c", f"from finops_nb.core import exclusive; import sys, time\n"
                               f"with exclusive({str(lock)!r}, 'x'):\n    print('held', flush=True); time.sleep(120)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        report = tmp_path / "report.ipynb"
        with pytest.raises(pm.PapermillExecutionError) as e:
            pm.execute_notebook(str(ROOT / "runs" / "pipeline.ipynb"), str(report), cwd=str(tmp_path), progress_bar=False,
                                parameters={"config_path": str(cfg), "chart": False})
        assert "in use by another finops run" in str(e.value) and f"pid {holder.pid}" in str(e.value)
        assert not list((lock.parent).glob("*/*"))  # nothing staged
    finally:
        holder.kill(); holder.wait()
    run = Pipeline(load_config(cfg, environ={}), progress=False).run()  # the lock released: the next run catches up
    assert not run.failures and staged(load_config(cfg, environ={})) != {}


def test_previous_version_bigquery_table_is_migrated(tmp_path, bq_server):
    bq = {"database.bigquery.project_id": bq_server.project, "database.bigquery.api_endpoint": bq_server.url,
          "database.bigquery.dataset_id": "ds_" + uuid.uuid4().hex[:10]}
    d = cf.build_v1_csv(tmp_path / "bucket", period="2023-11", assembly_id="nov-1", files=1, rows=120)
    cfg = shared(tmp_path, "bucket", "cur", "demo-cur", "v1", **bq)
    run_pipeline(cfg, progress=False)
    client, tid = bq_client(cfg), table_id(cfg)
    # the table as the previous version left it: rows with an execution_id and no export_id or delivery_id
    client.query(f"CREATE TABLE `{tid}_old` PARTITION BY DATE_TRUNC(bill_billing_period_start_date, MONTH) AS "
                 f"SELECT * EXCEPT (export_id, delivery_id), delivery_id AS execution_id FROM `{tid}`", job_retry=None).result(timeout=60)
    client.delete_table(tid)
    client.query(f"CREATE TABLE `{tid}` PARTITION BY DATE_TRUNC(bill_billing_period_start_date, MONTH) AS SELECT * FROM `{tid}_old`",
                 job_retry=None).result(timeout=60)
    client.delete_table(f"{tid}_old")
    assert "export_id" not in {f.name for f in client.get_table(tid).schema}
    dec = cf.build_v1_csv(tmp_path / "bucket", period="2023-12", assembly_id="dec-1", files=1, rows=80)
    run = run_pipeline(cfg, progress=False)
    eid = aws_export(cfg).id
    assert f"migrated {tid}: the rows written before export ids are now export {eid}'s" in str(run), str(run)
    assert [(r.period, r.action) for r in run.results if r.step == "load_remote"] == [("2023-11", "up to date"), ("2023-12", "loaded")]
    assert bq_by_export(cfg) == {(eid, "2023-11"): ("nov-1", 120, d.unblended_cost_sum), (eid, "2023-12"): ("dec-1", 80, dec.unblended_cost_sum)}
    assert reconcile(cfg).ok
