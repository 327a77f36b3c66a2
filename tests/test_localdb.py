"DuckDB loading from staged real samples: exact sums, schema evolution, restatements, collisions, kills."
import json, os, shutil, signal, subprocess, sys, time
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq

import cur_fixtures as cf
from finops_nb.aws.manifests import aws_export
from finops_nb.aws.schema import CUR
from finops_nb.localdb import LOG, DuckDB, connect, load_billing_local, table_columns
from finops_nb.staging import MARKER
from helpers import config, query, run, staging_of

FINOPS = str(Path(sys.executable).with_name("finops"))
TABLE = CUR.table
assert TABLE == "aws_billing_data"


def columns_of(cfg):
    "{column: type} of the billing table (read-only, closed after)."
    con = connect(cfg, read_only=True)
    try:
        return table_columns(con, TABLE)
    finally:
        con.close()


def renamed_note(raw, col):
    return f"column {raw!r} loaded as {col} (its name collides with another column's)"


def csv_sums(root, keys, column):
    vals = []
    for k in keys:
        header, rows = cf.read_csv_gz(root / k)
        i = header.index(column)
        vals += [r[i] for r in rows]
    return cf.decimal_sum(vals)


def test_v1_csv_sample_exact_to_the_last_digit(tmp_path):
    d = cf.build_v1_csv(tmp_path / "bucket", files=3)
    cfg = config(tmp_path)
    (r,) = run(cfg)
    export = aws_export(cfg)
    assert (r.step, r.destination, r.export_id, r.period, r.delivery_id, r.action, r.files, r.rows) == (
        "load_local", "duckdb", export.id, "2023-11", d.assembly_id, "loaded", 3, 1281)
    assert r.totals["line_item_unblended_cost"] == d.unblended_cost_sum == Decimal("1.68230869740")
    assert r.totals["line_item_blended_cost"] == csv_sums(tmp_path / "bucket", d.data_keys, "lineItem/BlendedCost")
    n, s, types = query(cfg, f"SELECT count(*), sum(line_item_unblended_cost), typeof(sum(line_item_unblended_cost)) FROM {TABLE}")[0]
    assert (n, s) == (1281, d.unblended_cost_sum) and types.startswith("DECIMAL(38")
    cols = columns_of(cfg)
    assert list(cols)[:3] == ["export_id", "billing_period", "delivery_id"]  # the loader's own columns come first
    assert cols["identity_line_item_id"] == "VARCHAR" and cols["line_item_usage_start_date"] == "TIMESTAMP WITH TIME ZONE"
    assert query(cfg, f"SELECT DISTINCT export_id, billing_period, delivery_id FROM {TABLE}") == [(export.id, "2023-11", d.assembly_id)]
    assert not any("DOUBLE" in t or "FLOAT" in t for t in cols.values())
    # the sample's one `1.86E-8` (lineItem/UsageAmount) is there digit for digit
    assert query(cfg, f"SELECT count(*) FROM {TABLE} WHERE line_item_usage_amount = 0.0000000186")[0][0] == 1
    log = query(cfg, f"SELECT export_id, provider, kind, billing_period, delivery_id, table_name, files, rows FROM {LOG}")
    assert log == [(export.id, "aws", "cur1", "2023-11", d.assembly_id, TABLE, 3, 1281)]
    (totals, renamed), = query(cfg, f"SELECT totals, renamed_columns FROM {LOG}")
    totals = json.loads(totals)  # exact decimals, as text
    assert Decimal(totals["line_item_unblended_cost"]) == d.unblended_cost_sum
    assert {c: None if v is None else Decimal(v) for c, v in totals.items()} == r.totals
    assert json.loads(renamed) == []
    assert DuckDB(cfg).held(export) == {"2023-11": d.assembly_id}


def test_ten_decimal_values_survive(tmp_path):
    values = ["0.0000000186", "1.86E-8", "12345678901.0123456789", "-0.0000000001", ""]
    d = cf.build_v1_csv(tmp_path / "bucket", files=1, rows=len(values),
                        extra_columns={"lineItem/NetUnblendedCost": lambda i, row: values[i]})
    cfg = config(tmp_path)
    (r,) = run(cfg)
    assert r.totals["line_item_net_unblended_cost"] == sum(Decimal(v) for v in values if v)
    got = query(cfg, f"SELECT CAST(line_item_net_unblended_cost AS VARCHAR) FROM {TABLE} ORDER BY line_item_net_unblended_cost NULLS LAST")
    assert [Decimal(g) if g else None for (g,) in got] == [Decimal("-0.0000000001"), Decimal("1.86E-8"), Decimal("1.86E-8"),
                                                           Decimal("12345678901.0123456789"), None]


def test_three_parquet_months_schema_drift(tmp_path):
    pqd = cf.build_v1_parquet(tmp_path / "bucket")
    cfg = config(tmp_path, export="workshop")
    loaded = run(cfg)
    assert [(r.period, r.rows) for r in loaded] == [(m.period, m.row_count) for m in sorted(pqd.months, key=lambda m: m.period)]
    for m, r in zip(sorted(pqd.months, key=lambda m: m.period), loaded):
        assert r.totals["line_item_unblended_cost"] == m.unblended_cost_sum
        blended = pq.read_table(tmp_path / "bucket" / m.data_keys[0], columns=["line_item_blended_cost"]).column(0).to_pylist()
        assert r.totals["line_item_blended_cost"] == cf.decimal_sum_doubles(blended)
    cols = columns_of(cfg)
    union = set().union(*(m.columns for m in pqd.months))
    assert union <= set(cols)  # the table grew to every month's columns
    nov_only = set(pqd.month("2018-11").columns) - set(pqd.month("2018-10").columns) - set(pqd.month("2018-12").columns)
    assert "resource_tags_user_tag21_nov" in nov_only
    by_period = dict(query(cfg, f"SELECT billing_period, count(resource_tags_user_tag21_nov) FROM {TABLE} GROUP BY 1"))
    assert by_period["2018-10"] == by_period["2018-12"] == 0 and by_period["2018-11"] > 0
    dec_missing = set(pqd.month("2018-11").columns) - set(pqd.month("2018-12").columns)
    for c in dec_missing:  # absent from December's files: NULL for its rows (the schema shrinks without loss)
        assert query(cfg, f'SELECT count("{c}") FROM {TABLE} WHERE billing_period = ?', ["2018-12"])[0][0] == 0


def test_cur2_csv_and_parquet_with_maps(tmp_path):
    a = cf.build_v2(tmp_path / "bucket", period="2024-01", rows=400, files=2)
    b = cf.build_v2(tmp_path / "bucket", period="2024-02", rows=300, files=1, fmt="parquet")
    cfg = config(tmp_path, export="demo-cur2", prefix="cur2", cur="v2")
    loaded = run(cfg)
    assert [(r.period, r.rows, r.totals["line_item_unblended_cost"]) for r in loaded] == [
        ("2024-01", 400, a.unblended_cost_sum), ("2024-02", 300, b.unblended_cost_sum)]
    cols = columns_of(cfg)
    assert {cols[c] for c in ("product", "resource_tags", "cost_category", "discount", "tags")} == {"JSON"}
    regions = query(cfg, f"SELECT billing_period, count(product->>'region') FROM {TABLE} GROUP BY 1 ORDER BY 1")
    assert all(n > 0 for _, n in regions), regions


def test_v1_and_v2_share_one_table(tmp_path):
    d1 = cf.build_v1_csv(tmp_path / "bucket", files=1)
    d2 = cf.build_v2(tmp_path / "bucket", period="2024-01", rows=50, files=1)
    cfg1 = config(tmp_path)
    run(cfg1)
    cfg2 = config(tmp_path, export="demo-cur2", prefix="cur2", cur="v2")
    run(cfg2)
    got = dict(query(cfg2, f"SELECT billing_period, count(identity_line_item_id) FROM {TABLE} GROUP BY 1"))
    assert got == {"2023-11": 1281, "2024-01": 50}
    e1, e2 = aws_export(cfg1), aws_export(cfg2)
    assert e1.id != e2.id
    assert sorted(query(cfg2, f"SELECT export_id, billing_period, count(*) FROM {TABLE} GROUP BY 1, 2")) == sorted(
        [(e1.id, "2023-11", 1281), (e2.id, "2024-01", 50)])
    assert sorted(query(cfg2, f"SELECT export_id, kind, billing_period FROM {LOG}")) == sorted(
        [(e1.id, "cur1", "2023-11"), (e2.id, "cur2", "2024-01")])
    assert (DuckDB(cfg1).held(e1), DuckDB(cfg2).held(e2)) == ({"2023-11": d1.assembly_id}, {"2024-01": d2.execution_id})


def test_restated_period_holds_only_the_new_delivery(tmp_path):
    r = cf.restate_v1(tmp_path / "b2", files=2)
    cfg = config(tmp_path)
    export = aws_export(cfg)
    first = cf.build_v1_csv(tmp_path / "bucket", assembly_id=r.first.assembly_id, rows=lambda row: row["lineItem/UsageStartDate"] < "2023-11-08")
    # load the first delivery (the export as it was before the restatement), then the second
    (res1,) = run(cfg)
    assert (res1.action, res1.delivery_id, res1.rows) == ("loaded", r.first.assembly_id, first.row_count)
    assert DuckDB(cfg).held(export) == {"2023-11": r.first.assembly_id}
    shutil.rmtree(tmp_path / "bucket")
    shutil.copytree(tmp_path / "b2", tmp_path / "bucket")  # the same export, now restated
    (res,) = run(cfg)
    assert (res.action, res.delivery_id, res.rows, res.totals["line_item_unblended_cost"]) == (
        "replaced", r.second.assembly_id, r.second.row_count, r.second.unblended_cost_sum)
    assert DuckDB(cfg).held(export) == {"2023-11": r.second.assembly_id}
    assert query(cfg, f"SELECT export_id, delivery_id, count(*) FROM {TABLE} GROUP BY 1, 2") == [
        (export.id, r.second.assembly_id, r.second.row_count)]
    assert first.row_count < r.second.row_count
    assert [x.action for x in load_billing_local(cfg, progress=False)] == ["up to date"]


def test_tag_collision_keeps_both_values_and_reports(tmp_path):
    cf.build_v1_csv(tmp_path / "bucket", files=1, rows=20,
                    extra_columns={"resourceTags/user:cost_center": "lower", "resourceTags/user:CostCenter": "Upper"})
    cfg = config(tmp_path)
    (r,) = run(cfg)
    assert r.notes == [renamed_note("resourceTags/user:cost_center", "resource_tags_user_cost_center_2")]
    got = query(cfg, f"SELECT DISTINCT resource_tags_user_cost_center, resource_tags_user_cost_center_2 FROM {TABLE}")
    assert got == [("Upper", "lower")]
    assert json.loads(query(cfg, f"SELECT renamed_columns FROM {LOG}")[0][0]) == [["resourceTags/user:cost_center", "resource_tags_user_cost_center_2"]]


def test_hostile_column_names_load_safely(tmp_path):
    hostile = ['lineItem/Evil"; DROP TABLE aws_billing_data; --', "resourceTags/user:with space", "resourceTags/user:ünïcødé",
               "bill/semi;colon", "execution_id", "resourceTags/user:'quote'", "delivery_id", "export_id"]
    d = cf.build_v1_csv(tmp_path / "bucket", files=1, rows=10, extra_columns={h: f"v{i}" for i, h in enumerate(hostile)})
    cfg = config(tmp_path)
    (r,) = run(cfg)
    assert r.rows == 10 and r.totals["line_item_unblended_cost"] == d.unblended_cost_sum
    cols = columns_of(cfg)
    assert cols["line_item_evil_d_r_o_p_t_a_b_l_e_aws_billing_data"] == "VARCHAR"
    # a CUR column named like the loader's own columns is renamed; "execution_id" is no longer one and keeps its name
    assert renamed_note("delivery_id", "delivery_id_2") in r.notes and renamed_note("export_id", "export_id_2") in r.notes
    assert not any("'execution_id'" in n for n in r.notes) and "execution_id_2" not in cols
    assert sorted(json.loads(query(cfg, f"SELECT renamed_columns FROM {LOG}")[0][0])) == [
        ["delivery_id", "delivery_id_2"], ["export_id", "export_id_2"]]
    assert query(cfg, f"SELECT DISTINCT export_id, delivery_id, execution_id, delivery_id_2, export_id_2 FROM {TABLE}") == [
        (aws_export(cfg).id, d.assembly_id, "v4", "v6", "v7")]
    assert query(cfg, f'SELECT DISTINCT "resource_tags_user_quote" FROM {TABLE}') == [("v5",)]


def test_cli_load_and_nothing_new(tmp_path):
    cf.build_v1_csv(tmp_path / "bucket", files=2)
    env = {**os.environ, "FINOPS__AWS__BUCKET": f"file://{tmp_path / 'bucket'}", "FINOPS__AWS__PREFIX": "cur",
           "FINOPS__AWS__EXPORT_NAME": "demo-cur"}
    for cmd in (["aws", "extract-billing"], ["aws", "load-billing-local"]):
        r = subprocess.run([FINOPS, *cmd], cwd=tmp_path, env=env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    assert "1281" in r.stdout and "1.6823086974" in r.stdout
    r = subprocess.run([FINOPS, "aws", "load-billing-local"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.returncode == 0 and "nothing to load" in r.stdout
    r = subprocess.run([FINOPS, "aws", "discover-manifests"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    title, head, _, row = r.stdout.splitlines()[:4]
    assert title.startswith(f"export {aws_export(config(tmp_path)).id}: ")
    assert head.split()[-4:] == ["staging", "duckdb", "parquet", "focus-parquet"]  # no remote configured
    assert row.endswith("up to date  up to date  new      new"), r.stdout  # loaded (its FOCUS rows too), nothing exported yet


def test_kill_mid_load_keeps_the_old_delivery(tmp_path):
    pqd = cf.build_v1_parquet(tmp_path / "bucket", months=("Oct2018",))
    cfg = config(tmp_path, export="workshop")
    (old,) = run(cfg)
    # restate October with a much larger delivery: November's rows, staged as a new execution of 2018-10
    marker_path = next((staging_of(cfg) / "2018-10").glob(f"*/{MARKER}"))
    marker = json.loads(marker_path.read_text())
    new = staging_of(cfg) / "2018-10" / "restated"
    new.mkdir()
    data = (cf.SAMPLES / "workshop-cur-v1-parquet" / "Nov2018-WorkshopCUR-00001.snappy.parquet").read_bytes()
    for i in range(4):
        (new / f"part-{i}.snappy.parquet").write_bytes(data)
    marker.update(delivery_id="restated", files=[{"key": f"restated/part-{i}.snappy.parquet", "path": f"part-{i}.snappy.parquet",
                                                  "size": len(data)} for i in range(4)],
                  staged_at="9999-01-01T00:00:00+00:00")
    (new / MARKER).write_text(json.dumps(marker))
    env = {**os.environ, "FINOPS__AWS__BUCKET": f"file://{tmp_path / 'bucket'}", "FINOPS__AWS__PREFIX": "cur",
           "FINOPS__AWS__EXPORT_NAME": "workshop",
           "FINOPS__STAGING_DIR": str(tmp_path / "staging"), "FINOPS__DATABASE__DUCKDB__DATABASE_PATH": str(tmp_path / "finops.duckdb")}
    db = tmp_path / "finops.duckdb"
    size0, t0 = db.stat().st_size, time.time()
    proc = subprocess.Popen([FINOPS, "aws", "load-billing-local"], env=env, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # the insert is under way once the database file grows (DuckDB writes large uncommitted inserts to it);
    # the commit comes only after the reconciliation has read the files again
    while proc.poll() is None and time.time() - t0 < 60 and db.stat().st_size == size0:
        time.sleep(0.001)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the load finished before the kill: nothing was tested"
    assert DuckDB(cfg).held(aws_export(cfg)) == {"2018-10": old.delivery_id}
    assert query(cfg, f"SELECT delivery_id, count(*), sum(line_item_unblended_cost) FROM {TABLE} GROUP BY 1") == [
        (old.delivery_id, old.rows, old.totals["line_item_unblended_cost"])]
    (again,) = load_billing_local(cfg, progress=False)
    assert (again.action, again.delivery_id, again.files, again.rows) == ("replaced", "restated", 4, 4 * 124340)
    assert DuckDB(cfg).held(aws_export(cfg)) == {"2018-10": "restated"}
    assert again.totals["line_item_unblended_cost"] == 4 * cf.decimal_sum_doubles(
        pq.read_table(new / "part-0.snappy.parquet", columns=["line_item_unblended_cost"]).column(0).to_pylist())


def test_memory_limit_and_threads_are_applied(tmp_path):
    cfg = config(tmp_path, **{"database.duckdb.memory_limit": "512MiB", "database.duckdb.threads": 1})
    con = connect(cfg)
    try:
        (limit, threads, tz), = con.execute("SELECT current_setting('memory_limit'), current_setting('threads'), "
                                            "current_setting('TimeZone')").fetchall()
    finally:
        con.close()
    assert (limit, threads, tz) == ("512.0 MiB", 1, "UTC")
