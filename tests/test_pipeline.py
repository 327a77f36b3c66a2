"run-pipeline end to end: the CLI against the moto S3 server and the BigQuery emulator; dry runs; failures."
import hashlib, os, subprocess, sys, uuid
from pathlib import Path

import cur_fixtures as cf
from finops_nb.aws.manifests import aws_export
from finops_nb.config import load_config
from finops_nb.pipeline import reconcile
from helpers import query, staging_of

FINOPS = str(Path(sys.executable).with_name("finops"))
BUCKET = cf.DEFAULT_BUCKET


def tree(root):
    "Every file under root with its content hash (DuckDB files included)."
    return {p.relative_to(root).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(Path(root).rglob("*")) if p.is_file() and "src" not in p.relative_to(root).parts}


def env_for(tmp_path, s3_server, bq_server=None, dataset=None):
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("FINOPS")},
           "AWS_ENDPOINT_URL": s3_server.url, "FINOPS__AWS__BUCKET": BUCKET, "FINOPS__AWS__PREFIX": "cur",
           "FINOPS__AWS__EXPORT_NAME": "demo-cur", "FINOPS__STAGING_DIR": str(tmp_path / "staging"),
           "FINOPS__PARQUET_DIR": str(tmp_path / "parquet"),
           "FINOPS__DATABASE__DUCKDB__DATABASE_PATH": str(tmp_path / "finops.duckdb")}
    if bq_server:
        env.update(FINOPS__DATABASE__BIGQUERY__PROJECT_ID=bq_server.project, FINOPS__DATABASE__BIGQUERY__API_ENDPOINT=bq_server.url,
                   FINOPS__DATABASE__BIGQUERY__DATASET_ID=dataset)
    return env


def finops(env, *args, cwd):
    return subprocess.run([FINOPS, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=600)


def cfg_from(env):
    return load_config(None, environ=env)


def test_cli_end_to_end_s3_to_bigquery_with_restatement(s3, s3_server, bq_server, tmp_path):
    src = tmp_path / "src"
    cf.build_v1_csv(src, assembly_id="nov-1", files=2, rows=600)
    cf.build_v1_csv(src, period="2023-12", assembly_id="dec-1", files=1, rows=300)
    cf.upload_tree(s3, BUCKET, src)
    env = env_for(tmp_path, s3_server, bq_server, "ds_" + uuid.uuid4().hex[:8])
    r = finops(env, "aws", "run-pipeline", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    export_id = aws_export(cfg_from(env)).id
    assert f"export {export_id}" in lines[0], r.stdout
    assert any(l.startswith("2023-12") and "dec-1" in l and "downloaded" in l and "loaded" in l and "exported" in l
               for l in lines), r.stdout
    rec = reconcile(cfg_from(env))
    assert rec.ok and {d for _, _, d, _, _ in rec.rows} == {"staging", "duckdb", "parquet", "bigquery",
                                                            "focus-source", "focus", "focus-parquet", "focus-bigquery"}
    assert {e for e, *_ in rec.rows} == {export_id} and {p for _, p, *_ in rec.rows} == {"2023-11", "2023-12"}
    # November is restated with the full month; December is unchanged
    restated = cf.build_v1_csv(src, assembly_id="nov-2", files=2)
    cf.upload_tree(s3, BUCKET, src)
    r = finops(env, "aws", "run-pipeline", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    nov = next(l for l in r.stdout.splitlines() if l.startswith("2023-11"))
    assert "nov-2" in nov and "replaced" in nov, r.stdout
    rec = reconcile(cfg_from(env))
    assert rec.ok, str(rec)
    head, wide = rec.table()
    assert head == ("export", "period", *(f"{d} rows / line_item_unblended_cost" for d in ("staging", "duckdb", "parquet", "bigquery")),
                    "match")
    assert [r[:2] for r in wide] == [(export_id, "2023-12"), (export_id, "2023-11")] and all(r[-1] == "yes" for r in wide)
    assert f"1281 / {restated.unblended_cost_sum.normalize():f}" in wide[1]
    got = {(p, d): (n, t["line_item_unblended_cost"]) for _, p, d, n, t in rec.rows if rec.dataset(d) == "billing"}
    for d in ("staging", "duckdb", "parquet", "bigquery"):
        assert got[("2023-11", d)] == (1281, restated.unblended_cost_sum)
    # the restated month's FOCUS rows followed it into every copy (rec.ok: equal to what the source says they must be)
    head, wide = rec.table(dataset="focus")
    assert head == ("export", "period", *(f"{d} rows / BilledCost" for d in ("focus-source", "focus", "focus-parquet", "focus-bigquery")),
                    "match")
    assert [r[:2] for r in wide] == [(export_id, "2023-12"), (export_id, "2023-11")] and all(r[-1] == "yes" for r in wide)
    assert {r[2] for r in rec.rows if r[1] == "2023-11" and r[2].startswith("focus") and r[3] > 0} == {
        "focus-source", "focus", "focus-parquet", "focus-bigquery"}
    # nothing new: every step says up to date
    r = finops(env, "aws", "run-pipeline", cwd=tmp_path)
    lines = [l for l in r.stdout.splitlines() if l.startswith("2023-")]
    assert r.returncode == 0 and len(lines) == 2 and all(l.count("up to date") == 6 for l in lines), r.stdout  # the six steps


def test_dry_run_writes_nothing(s3, s3_server, tmp_path):
    src = tmp_path / "src"
    cf.build_v1_csv(src, assembly_id="a1", files=1, rows=100)
    cf.upload_tree(s3, BUCKET, src)
    env = env_for(tmp_path, s3_server)
    assert tree(tmp_path) == {}
    r = finops(env, "aws", "run-pipeline", "--dry-run", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "DRY RUN" in r.stdout and "download (new)" in r.stdout and "load (new)" in r.stdout and "export (new)" in r.stdout
    assert f"export {aws_export(cfg_from(env)).id}" in r.stdout.splitlines()[0] and "a1" in r.stdout, r.stdout
    assert tree(tmp_path) == {} and not (tmp_path / "staging").exists()
    assert finops(env, "aws", "run-pipeline", cwd=tmp_path).returncode == 0
    cf.build_v1_csv(src, assembly_id="a2", files=1, rows=200)
    cf.upload_tree(s3, BUCKET, src)
    before = tree(tmp_path)
    assert "finops.duckdb" in before and any(k.endswith("_aws_billing.parquet") for k in before)
    r = finops(env, "aws", "run-pipeline", "--dry-run", cwd=tmp_path)
    assert r.returncode == 0 and "download (changed delivery)" in r.stdout, r.stdout
    assert tree(tmp_path) == before


def test_failing_period_is_named_and_others_are_kept(s3, s3_server, tmp_path):
    src = tmp_path / "src"
    cf.build_v1_csv(src, assembly_id="nov", files=1, rows=100)
    dec = cf.build_v1_csv(src, period="2023-12", assembly_id="dec", files=1, rows=50)
    cf.upload_tree(s3, BUCKET, src)
    env = env_for(tmp_path, s3_server)
    assert finops(env, "aws", "run-pipeline", cwd=tmp_path).returncode == 0
    before = query(cfg_from(env), "SELECT billing_period, delivery_id, count(*) FROM aws_billing_data GROUP BY 1, 2 ORDER BY 1")
    assert before == [("2023-11", "nov", 100), ("2023-12", "dec", 50)]
    # December is re-delivered with a value that is not a number in a money column
    cf.build_v1_csv(src, period="2023-12", assembly_id="dec-bad", files=1, rows=50,
                    extra_columns={"lineItem/NetUnblendedCost": lambda i, row: "n/a" if i == 7 else "1"})
    cf.upload_tree(s3, BUCKET, src)
    r = finops(env, "aws", "run-pipeline", cwd=tmp_path)
    assert r.returncode == 4, (r.stdout, r.stderr)
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("finops: error: 2023-12 load_local:") and "'n/a'" in err[0], r.stderr
    assert "FAILED 2023-12 load_local" in r.stdout
    assert query(cfg_from(env), "SELECT billing_period, delivery_id, count(*) FROM aws_billing_data GROUP BY 1, 2 ORDER BY 1") == before


def test_steps_flag_and_bad_step(s3, s3_server, tmp_path):
    src = tmp_path / "src"
    cf.build_v1_csv(src, assembly_id="a1", files=1, rows=10)
    cf.upload_tree(s3, BUCKET, src)
    env = env_for(tmp_path, s3_server)
    r = finops(env, "aws", "run-pipeline", "--steps", "extract", cwd=tmp_path)
    assert r.returncode == 0 and (tmp_path / "staging").is_dir() and not (tmp_path / "finops.duckdb").exists()
    assert staging_of(cfg_from(env)).is_dir() and (staging_of(cfg_from(env)) / "2023-11" / "a1").is_dir()
    r = finops(env, "aws", "run-pipeline", "--steps", "extract,tranform", cwd=tmp_path)
    assert r.returncode == 2 and "unknown step 'tranform'" in r.stderr
