"Parquet export from DuckDB: exact, idempotent, stale files re-exported, never a partial file under the final name."
import json, os, shutil, signal, subprocess, sys, time
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq

import cur_fixtures as cf
from finops_nb.aws.manifests import aws_export
from finops_nb.aws.schema import CUR
from finops_nb.parquet import Parquet, export_parquet, parquet_info, parquet_path
from helpers import config, parquet_of, query, run

FINOPS = str(Path(sys.executable).with_name("finops"))
TABLE = CUR.table


def cli_env(tmp_path, export="workshop"):
    "The environment a `finops` command needs to name the same export and folders as `config(tmp_path, export=…)`."
    return {**os.environ, "FINOPS__AWS__BUCKET": f"file://{tmp_path / 'bucket'}", "FINOPS__AWS__PREFIX": "cur",
            "FINOPS__AWS__EXPORT_NAME": export, "FINOPS__STAGING_DIR": str(tmp_path / "staging"),
            "FINOPS__PARQUET_DIR": str(tmp_path / "parquet"),
            "FINOPS__DATABASE__DUCKDB__DATABASE_PATH": str(tmp_path / "finops.duckdb")}


def pq_sum(path, column):
    "Exact sum of a decimal column read back by pyarrow (independent of DuckDB)."
    return sum((v for v in pq.read_table(path, columns=[column]).column(0).to_pylist() if v is not None), Decimal(0))


def test_export_is_exact_and_keeps_decimals(tmp_path):
    cf.build_v1_csv(tmp_path / "bucket", files=2)
    cf.build_v1_parquet(tmp_path / "bucket", report="demo-cur", prefix="cur", months=("Nov2018",))
    cfg = config(tmp_path, **{"database.duckdb.memory_limit": "1GB", "database.duckdb.threads": 2})
    loaded = run(cfg)
    export = aws_export(cfg)
    res = export_parquet(cfg, progress=False)
    assert [(r.step, r.destination, r.export_id, r.period, r.action) for r in res] == [
        ("export_parquet", "parquet", export.id, "2018-11", "exported"), ("export_parquet", "parquet", export.id, "2023-11", "exported")]
    assert [r.delivery_id for r in res] == [r.delivery_id for r in loaded]
    for r in res:
        path = parquet_path(tmp_path / "parquet", export, r.period)
        assert path == parquet_of(cfg, r.period) and r.path == str(path)
        assert path.name == f"{r.period}_aws_billing.parquet" and path.parent.name == export.id
        (n, u, b), = query(cfg, f"SELECT count(*), sum(line_item_unblended_cost), sum(line_item_blended_cost) FROM {TABLE} "
                                "WHERE export_id = ? AND billing_period = ?", [export.id, r.period])
        assert pq.read_metadata(path).num_rows == n == r.rows
        assert pq_sum(path, "line_item_unblended_cost") == u == r.totals["line_item_unblended_cost"]
        assert pq_sum(path, "line_item_blended_cost") == b
        assert str(pq.read_schema(path).field("line_item_unblended_cost").type) == "decimal128(38, 18)"
        assert pq.ParquetFile(path).metadata.row_group(0).column(0).compression == "SNAPPY"
        info = parquet_info(path)[str(path)]
        assert (info["export_id"], info["billing_period"], info["delivery_id"], int(info["rows"])) == (export.id, r.period, r.delivery_id, n)
        assert {c: None if v is None else Decimal(v) for c, v in json.loads(info["totals"]).items()} == r.totals
    assert pq_sum(parquet_path(tmp_path / "parquet", export, "2023-11"), "line_item_unblended_cost") == Decimal("1.68230869740")
    assert Parquet(cfg).held(export) == {r.period: r.delivery_id for r in res}


def test_skip_overwrite_and_stale(tmp_path):
    r = cf.restate_v1(tmp_path / "b2", files=1)
    cf.build_v1_csv(tmp_path / "bucket", assembly_id=r.first.assembly_id, files=1, rows=100)
    cfg = config(tmp_path)
    run(cfg)
    assert [x.action for x in export_parquet(cfg, progress=False)] == ["exported"]
    export = aws_export(cfg)
    path = parquet_path(tmp_path / "parquet", export, "2023-11")
    assert path == parquet_of(cfg, "2023-11")
    assert Parquet(cfg).held(export) == {"2023-11": r.first.assembly_id}
    mtime = path.stat().st_mtime_ns
    assert [x.action for x in export_parquet(cfg, progress=False)] == ["up to date"]
    assert path.stat().st_mtime_ns == mtime
    assert [x.action for x in export_parquet(cfg, overwrite=True, progress=False)] == ["overwritten"]
    # a restated delivery reaches DuckDB: the file on disk is now stale, and is re-exported without --overwrite
    shutil.rmtree(tmp_path / "bucket")
    shutil.copytree(tmp_path / "b2", tmp_path / "bucket")
    run(cfg)
    env = cli_env(tmp_path, "demo-cur")
    out = subprocess.run([FINOPS, "aws", "export-parquet"], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert f"re-exported (stale: was {r.first.assembly_id})" in out.stdout
    assert Parquet(cfg).held(export) == {"2023-11": r.second.assembly_id}
    assert pq.read_metadata(path).num_rows == r.second.row_count
    out = subprocess.run([FINOPS, "aws", "export-parquet"], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0 and "nothing to export" in out.stdout


def test_foreign_file_is_skipped_unless_overwrite(tmp_path):
    cf.build_v1_csv(tmp_path / "bucket", files=1, rows=10)
    cfg = config(tmp_path)
    run(cfg)
    path = parquet_path(tmp_path / "parquet", aws_export(cfg), "2023-11")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not ours")
    (r,) = export_parquet(cfg, progress=False)
    assert r.action == "skipped" and any("use --overwrite" in n and str(path) in n for n in r.notes)
    assert not r.failed and path.read_bytes() == b"not ours"
    assert Parquet(cfg).held(aws_export(cfg)) == {}
    (r,) = export_parquet(cfg, overwrite=True, progress=False)
    assert r.action == "overwritten" and pq.read_metadata(path).num_rows == 10
    assert Parquet(cfg).held(aws_export(cfg)) == {"2023-11": r.delivery_id}


def test_kill_mid_export_leaves_no_partial_final_file(tmp_path):
    cf.build_v1_parquet(tmp_path / "bucket", months=("Oct2018", "Nov2018", "Dec2018"))
    cfg = config(tmp_path, export="workshop")
    run(cfg)
    env = cli_env(tmp_path, "workshop")
    proc = subprocess.Popen([FINOPS, "aws", "export-parquet"], env=env, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    folder = parquet_of(cfg)
    while proc.poll() is None and time.time() - t0 < 60 and not any(
            p.stat().st_size > 0 for p in (folder.glob(".*.tmp") if folder.exists() else [])):
        time.sleep(0.001)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the export finished before the kill: nothing was tested"
    for p in folder.glob("*_aws_billing.parquet"):  # whatever has a final name is complete and verified
        info = parquet_info(p)[str(p)]
        assert pq.read_metadata(p).num_rows == int(info["rows"])
    finals = {p.name[:7] for p in folder.glob("*_aws_billing.parquet")}
    assert finals != {"2018-10", "2018-11", "2018-12"}, "nothing was interrupted"
    res = export_parquet(cfg, progress=False)
    assert sorted(r.period for r in res if r.action == "exported") == sorted({"2018-10", "2018-11", "2018-12"} - finals)
    assert Parquet(cfg).held(aws_export(cfg)).keys() == {"2018-10", "2018-11", "2018-12"}
    assert not list(folder.glob(".*.tmp"))  # the killed run's temporary files are gone
