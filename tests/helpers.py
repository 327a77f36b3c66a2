"Small helpers shared by the pipeline tests: a config over a local mirror, a run up to DuckDB, queries."
from finops_nb.config import load_config
from finops_nb.extract import extract_billing
from finops_nb.localdb import connect, load_billing_local


def config(tmp_path, export="demo-cur", prefix="cur", cur="v1", **kw):
    "A Config reading the export from the local mirror tmp_path/bucket, writing under tmp_path."
    over = {"aws.bucket": f"file://{tmp_path / 'bucket'}", "aws.prefix": prefix, "aws.export_name": export,
            "aws.cur_version": cur, "staging_dir": str(tmp_path / "staging"), "parquet_dir": str(tmp_path / "parquet"),
            "database.duckdb.database_path": str(tmp_path / "finops.duckdb"), **kw}
    return load_config(None, over, environ={})


def run(cfg):
    "Extract and load into DuckDB; fail the test on any error."
    staged, found = extract_billing(cfg, progress=False)
    assert not found.problems and all(not s.error for s in staged), (found.problems, staged)
    loaded = load_billing_local(cfg, progress=False)
    assert all(not r.error for r in loaded), [r.error for r in loaded]
    return loaded


def query(cfg, sql, params=()):
    "Rows of a query on the configured DuckDB database (read-only)."
    con = connect(cfg, read_only=True)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()
