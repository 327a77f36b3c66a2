"""Checks of the billing-export builders in tests/cur_fixtures.py (no servers needed)."""

from __future__ import annotations

import csv
import filecmp
import gzip
import json
import os
import re
import sys
from decimal import Decimal
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cur_fixtures as cf  # noqa: E402

SAMPLE_CSV = cf.SAMPLES / cf.V1_CSV_SAMPLE
SAMPLE_ROWS = 1281
SAMPLE_COLS = 94
SAMPLE_SUM = Decimal("1.68230869740")  # exact sum of lineItem/UnblendedCost in the sample

V1_MANIFEST_KEYS = {"assemblyId", "account", "columns", "charset", "compression", "contentType",
                    "reportId", "reportName", "billingPeriod", "bucket", "reportKeys"}


def _manifest(root: Path, key: str) -> dict:
    return json.loads((root / key).read_text(encoding="utf-8"))


def _reread_v1(root: Path, keys, cost_col=cf.V1_COST_COLUMN):
    """(headers, total rows, exact cost sum) re-read from the written gzip CSVs."""
    headers, n, total = [], 0, Decimal(0)
    for key in keys:
        header, rows = cf.read_csv_gz(root / key)
        headers.append(header)
        n += len(rows)
        i = header.index(cost_col)
        total += cf.decimal_sum(r[i] for r in rows)
    return headers, n, total


def _sample_header() -> list[str]:
    with open(SAMPLE_CSV, newline="", encoding="utf-8") as f:
        return next(csv.reader(f))


# ---------------------------------------------------------------------- samples
def test_samples_are_found():
    if not os.environ.get("FINOPS_SAMPLES_DIR"):  # ../shared beside the repo root
        assert cf.SAMPLES == Path(__file__).resolve().parents[1].parent / "shared" / "samples"
    assert SAMPLE_CSV.is_file()
    assert (cf.DOCS / cf.CUR2_COLUMNS_CSV).is_file()


# ---------------------------------------------------------------------- v1 CSV
def test_v1_version_layout_and_manifests(tmp_path):
    d = cf.build_v1_csv(tmp_path, assembly_id="11111111-2222-3333-4444-555555555555", files=3)
    base = "cur/demo-cur/20231101-20231201"
    assert d.date_range == "20231101-20231201" and d.period == "2023-11"
    assert d.top_manifest_key == f"{base}/demo-cur-Manifest.json"
    assert d.assembly_manifest_key == f"{base}/{d.assembly_id}/demo-cur-Manifest.json"
    assert d.data_keys == tuple(f"{base}/{d.assembly_id}/demo-cur-0000{i}.csv.gz" for i in (1, 2, 3))
    for key in d.keys:
        assert (tmp_path / key).is_file(), key

    top = _manifest(tmp_path, d.top_manifest_key)
    inner = _manifest(tmp_path, d.assembly_manifest_key)
    assert top == inner
    assert V1_MANIFEST_KEYS <= set(top)
    assert top["assemblyId"] == d.assembly_id
    assert top["reportKeys"] == list(d.data_keys)
    assert top["billingPeriod"] == {"start": "20231101T000000.000Z", "end": "20231201T000000.000Z"}
    assert (top["charset"], top["compression"], top["contentType"]) == ("UTF-8", "GZIP", "text/csv")
    assert top["bucket"] == "billing-bucket" and top["reportName"] == "demo-cur"
    assert re.fullmatch(r"\d{12}", top["account"])
    cols = top["columns"]
    assert len(cols) == SAMPLE_COLS
    assert all(set(c) == {"category", "name", "type"} for c in cols)
    types = {f'{c["category"]}/{c["name"]}': c["type"] for c in cols}
    assert types["lineItem/UnblendedCost"] == "BigDecimal"
    assert types["lineItem/UsageStartDate"] == "DateTime"
    assert types["identity/TimeInterval"] == "Interval"
    assert types["lineItem/UnblendedRate"] == "String"
    assert types["pricing/RateCode"] == "String"  # unknown type in the dictionary: default


def test_v1_csv_contents_and_exact_sum(tmp_path):
    d = cf.build_v1_csv(tmp_path, assembly_id="a1", files=4)
    headers, n, total = _reread_v1(tmp_path, d.data_keys)
    assert all(h == _sample_header() for h in headers)
    assert n == d.row_count == sum(d.rows_per_file) == SAMPLE_ROWS
    assert len(d.rows_per_file) == 4 and all(c > 0 for c in d.rows_per_file)
    assert total == d.unblended_cost_sum == SAMPLE_SUM
    assert isinstance(d.unblended_cost_sum, Decimal)


def test_v1_single_file_is_the_sample_byte_for_byte(tmp_path):
    d = cf.build_v1_csv(tmp_path, assembly_id="a1", files=1)
    with gzip.open(tmp_path / d.data_keys[0], "rb") as f:
        assert f.read() == SAMPLE_CSV.read_bytes()
    # deterministic bytes (gzip mtime 0)
    d2 = cf.build_v1_csv(tmp_path / "again", assembly_id="a1", files=1)
    assert (tmp_path / d.data_keys[0]).read_bytes() == (tmp_path / "again" / d2.data_keys[0]).read_bytes()


def test_v1_overwrite_layout_has_no_assembly_folder(tmp_path):
    d = cf.build_v1_csv(tmp_path, mode="overwrite", report="ow", prefix="a/b", files=2)
    base = "a/b/ow/20231101-20231201"
    assert d.assembly_manifest_key is None
    assert d.manifest_keys == (f"{base}/ow-Manifest.json",)
    assert d.data_keys == (f"{base}/ow-00001.csv.gz", f"{base}/ow-00002.csv.gz")
    folder = tmp_path / base
    assert sorted(p.name for p in folder.iterdir()) == ["ow-00001.csv.gz", "ow-00002.csv.gz", "ow-Manifest.json"]
    assert not any(p.is_dir() for p in folder.iterdir())
    m = _manifest(tmp_path, d.top_manifest_key)
    assert m["reportKeys"] == list(d.data_keys) and m["assemblyId"] == d.assembly_id


def test_v1_empty_prefix_and_last_day_range_and_file_numbering(tmp_path):
    d = cf.build_v1_csv(tmp_path, prefix="", date_range_style="last-day", assembly_id="20250307T053621Z",
                        files=2, file_number_width=0)
    assert d.date_range == "20231101-20231130"
    assert d.data_keys == ("demo-cur/20231101-20231130/20250307T053621Z/demo-cur-1.csv.gz",
                           "demo-cur/20231101-20231130/20250307T053621Z/demo-cur-2.csv.gz")
    m = _manifest(tmp_path, d.top_manifest_key)
    assert m["billingPeriod"]["end"] == "20231201T000000.000Z"  # the period itself is unchanged


@pytest.mark.parametrize("period, nxt", [("2024-02", "2024-03"), ("2023-12", "2024-01")])
def test_v1_other_period_rewrites_dates(tmp_path, period, nxt):
    d = cf.build_v1_csv(tmp_path, period=period, assembly_id="a1", files=1)
    start, end = cf.period_bounds(period)
    assert d.date_range == f"{start:%Y%m%d}-{end:%Y%m%d}"
    header, rows = cf.read_csv_gz(tmp_path / d.data_keys[0])
    ix = {c: header.index(c) for c in cf.V1_PERIOD_DATE_COLUMNS}
    assert {r[ix["bill/BillingPeriodStartDate"]] for r in rows} == {f"{period}-01T00:00:00.000Z"}
    assert {r[ix["bill/BillingPeriodEndDate"]] for r in rows} == {f"{nxt}-01T00:00:00.000Z"}
    for r in rows:
        assert r[ix["lineItem/UsageStartDate"]].startswith(period)
        assert r[ix["lineItem/UsageEndDate"]][:7] in (period, nxt)
        a, b = r[ix["identity/TimeInterval"]].split("/")
        assert a.startswith(period) and b[:7] in (period, nxt) and a.endswith("Z") and b.endswith("Z")
        assert not any("2023-11" in r[i] for i in ix.values())
    _, n, total = _reread_v1(tmp_path, d.data_keys)
    assert n == SAMPLE_ROWS and total == SAMPLE_SUM == d.unblended_cost_sum
    assert _manifest(tmp_path, d.top_manifest_key)["billingPeriod"]["start"] == f"{start:%Y%m%d}T000000.000Z"


def test_v1_rows_subset_forms(tmp_path):
    header = _sample_header()
    ci = header.index(cf.V1_COST_COLUMN)
    with open(SAMPLE_CSV, newline="", encoding="utf-8") as f:
        src = list(csv.reader(f))[1:]
    d = cf.build_v1_csv(tmp_path / "n", rows=100, assembly_id="a")
    assert d.row_count == 100 and d.unblended_cost_sum == cf.decimal_sum(r[ci] for r in src[:100])
    d = cf.build_v1_csv(tmp_path / "s", rows=slice(10, 20), assembly_id="a", files=1)
    assert d.row_count == 10
    d = cf.build_v1_csv(tmp_path / "p", rows=lambda r: r["lineItem/LineItemType"] == "Tax", assembly_id="a")
    assert d.row_count == 12
    _, n, total = _reread_v1(tmp_path / "p", d.data_keys)
    assert n == 12 and total == d.unblended_cost_sum


def test_v1_header_transform_and_extra_columns(tmp_path):
    def hostile(h):
        h = list(h)
        h[h.index("product/overhead")] = "resourceTags/user:CostCenter"
        h[h.index("product/version")] = "resourceTags/user:cost_center"
        return h

    d = cf.build_v1_csv(tmp_path, assembly_id="a", header_transform=hostile,
                        extra_columns={"costCategory/Team": "platform",
                                       "resourceTags/user:Name": lambda i, row: f"n{i},\"x\""})
    headers, n, total = _reread_v1(tmp_path, d.data_keys)
    assert headers[0] == list(d.header)
    assert headers[0][-2:] == ["costCategory/Team", "resourceTags/user:Name"]
    assert "resourceTags/user:CostCenter" in headers[0] and "resourceTags/user:cost_center" in headers[0]
    assert n == SAMPLE_ROWS and total == SAMPLE_SUM == d.unblended_cost_sum
    _, rows = cf.read_csv_gz(tmp_path / d.data_keys[0])
    assert rows[3][-1] == 'n3,"x"'  # quoted and escaped correctly
    cols = _manifest(tmp_path, d.top_manifest_key)["columns"]
    assert len(cols) == SAMPLE_COLS + 2
    assert {"category": "resourceTags", "name": "user:cost_center", "type": "String"} in cols
    with pytest.raises(ValueError):
        cf.build_v1_csv(tmp_path / "bad", header_transform=lambda h: h[:-1])


def test_restated_period_top_manifest_names_second_assembly(tmp_path):
    r = cf.restate_v1(tmp_path, first_assembly_id="asm-1", second_assembly_id="asm-2", files=2)
    first, second = r.first, r.second
    assert first.top_manifest_key == second.top_manifest_key == r.top_manifest_key
    top = _manifest(tmp_path, r.top_manifest_key)
    assert top["assemblyId"] == "asm-2"
    assert top["reportKeys"] == list(second.data_keys)
    assert all("/asm-2/" in k for k in top["reportKeys"])
    # the first assembly is still in the bucket, with its own manifest
    assert _manifest(tmp_path, first.assembly_manifest_key)["assemblyId"] == "asm-1"
    assert all((tmp_path / k).is_file() for k in first.data_keys)
    assert 0 < first.row_count < second.row_count == SAMPLE_ROWS
    assert second.unblended_cost_sum == SAMPLE_SUM
    assert first.unblended_cost_sum == _reread_v1(tmp_path, first.data_keys)[2]
    # line item ids are re-issued between deliveries (same length, all different)
    ids = lambda d: {row[0] for k in d.data_keys for row in cf.read_csv_gz(tmp_path / k)[1]}  # noqa: E731
    a, b = ids(first), ids(second)
    assert not a & b and {len(x) for x in b} == {len(x) for x in a}


def test_restated_overwrite_mode(tmp_path):
    r = cf.restate_v1(tmp_path, mode="overwrite", files=1)
    top = _manifest(tmp_path, r.top_manifest_key)
    assert top["assemblyId"] == r.second.assembly_id != r.first.assembly_id
    _, n, total = _reread_v1(tmp_path, top["reportKeys"])
    assert n == SAMPLE_ROWS and total == SAMPLE_SUM


# ---------------------------------------------------------------------- v1 Parquet
def test_v1_parquet_layout_manifests_and_sums(tmp_path):
    import pyarrow.parquet as pq

    d = cf.build_v1_parquet(tmp_path)
    assert d.periods == ("2018-10", "2018-11", "2018-12")
    assert d.month("2018-10").data_keys == ("cur/workshop/workshop/year=2018/month=10/workshop-00001.snappy.parquet",)
    assert d.status_key == "cur/workshop/cost_and_usage_data_status/cost_and_usage_data_status.parquet"
    assert pq.read_table(tmp_path / d.status_key).column("status").to_pylist() == ["READY"]
    expected_rows = {"2018-10": 119307, "2018-11": 124340, "2018-12": 91264}
    expected_cols = {"2018-10": 124, "2018-11": 126, "2018-12": 120}
    for m in d.months:
        (key,) = m.data_keys
        assert filecmp.cmp(tmp_path / key, cf.SAMPLES / cf.V1_PARQUET_SAMPLE_DIR / m.sample, shallow=False)
        man = _manifest(tmp_path, m.manifest_key)
        assert m.manifest_key == f"cur/workshop/{m.date_range}/workshop-Manifest.json"
        assert V1_MANIFEST_KEYS <= set(man)
        assert man["reportKeys"] == [key]
        assert (man["compression"], man["contentType"]) == ("Parquet", "Parquet")
        assert man["assemblyId"] == m.assembly_id
        assert man["billingPeriod"]["start"] == m.date_range[:8] + "T000000.000Z"
        assert [c["name"] for c in man["columns"]] == list(m.columns)
        assert len(m.columns) == expected_cols[m.period]
        cost = pq.read_table(tmp_path / key, columns=["line_item_unblended_cost"]).column(0).to_pylist()
        assert m.row_count == len(cost) == expected_rows[m.period]
        assert m.unblended_cost_sum == sum((Decimal(repr(x)) for x in cost), Decimal(0))
    assert d.month("2018-11").unblended_cost_sum == Decimal("3505.3269681268")
    assert d.row_count == sum(expected_rows.values())
    assert d.unblended_cost_sum == sum((m.unblended_cost_sum for m in d.months), Decimal(0))
    assert {c["type"] for c in _manifest(tmp_path, d.manifest_keys[0])["columns"]} == {"STRING", "DOUBLE", "TIMESTAMP"}
    assert "resource_tags_user_tag21_nov" in d.month("2018-11").columns


def test_v1_parquet_month_forms(tmp_path):
    d = cf.build_v1_parquet(tmp_path, prefix="", report="w", months=("2018-12",), status=None)
    assert d.data_keys == ("w/w/year=2018/month=12/w-00001.snappy.parquet",)
    assert d.manifest_keys == ("w/20181201-20190101/w-Manifest.json",)
    assert d.status_key is None


# ---------------------------------------------------------------------- CUR 2.0
def _cur2_dictionary() -> list[tuple[str, str]]:
    with open(cf.DOCS / cf.CUR2_COLUMNS_CSV, newline="", encoding="utf-8") as f:
        return [(r["column_name"], r["data_type"]) for r in csv.DictReader(f)]


def test_v2_csv_layout_manifest_and_columns(tmp_path):
    d = cf.build_v2(tmp_path, execution_id="exec-1", files=2, rows=500)
    part = "cur2/demo-cur2/data/BILLING_PERIOD=2024-01"
    assert d.data_prefix == f"{part}/20240202T060000Z-exec-1"
    assert d.data_keys == tuple(f"{d.data_prefix}/demo-cur2-0000{i}.csv.gz" for i in (1, 2))
    assert d.manifest_key == "cur2/demo-cur2/metadata/BILLING_PERIOD=2024-01/demo-cur2-Manifest.json"
    for k in d.keys:
        assert (tmp_path / k).is_file()
    man = _manifest(tmp_path, d.manifest_key)
    assert {"executionId", "dataFiles", "columns", "billingPeriod"} <= set(man)
    assert man["executionId"] == "exec-1"
    assert man["dataFiles"] == [f"s3://billing-bucket/{k}" for k in d.data_keys] == list(d.data_uris)
    assert man["billingPeriod"] == {"start": "2024-01-01T00:00:00.000Z", "end": "2024-02-01T00:00:00.000Z"}

    dictionary = _cur2_dictionary()
    names = [n for n, _ in dictionary]
    assert [c["name"] for c in man["columns"]] == names == list(d.column_names)
    assert len(names) == 128
    mtypes = {c["name"]: c["type"] for c in man["columns"]}
    assert set(mtypes.values()) == {"string", "double", "timestamp", "map"}
    assert sum(t == "map" for t in mtypes.values()) == 5
    assert sum(t == "double" for t in mtypes.values()) == 44
    assert sum(t == "timestamp" for t in mtypes.values()) == 4
    for n, t in dictionary:
        assert mtypes[n] == ("map" if t.startswith("map") else t)


def test_v2_csv_contents_and_exact_sum(tmp_path):
    d = cf.build_v2(tmp_path, execution_id="e", files=3, rows=500, seed=7)
    names = list(d.column_names)
    n, rows = 0, []
    for k in d.data_keys:
        header, chunk = cf.read_csv_gz(tmp_path / k)
        assert header == names
        n += len(chunk)
        rows += chunk
    assert n == d.row_count == sum(d.rows_per_file) == 500
    ci = names.index("line_item_unblended_cost")
    total = cf.decimal_sum(r[ci] for r in rows)
    assert total == d.unblended_cost_sum

    col = {c: [r[names.index(c)] for r in rows] for c in names}
    # maps: JSON object text, some "{}", some empty
    for m in ("product", "resource_tags", "cost_category", "discount", "tags"):
        for v in col[m]:
            assert v == "" or isinstance(json.loads(v), dict)
    for m in ("resource_tags", "cost_category", "discount", "tags"):
        assert "" in col[m] and "{}" in col[m] and any(len(v) > 2 for v in col[m])
    assert all(json.loads(v).get("product_name") for v in col["product"])
    # doubles: some empty, all parse exactly, up to 10 decimals, some tiny
    costs = [Decimal(v) for v in col["line_item_unblended_cost"]]
    assert all(c.normalize().as_tuple().exponent >= -10 for c in costs)  # <= 10 decimals
    assert any(Decimal(0) < c < Decimal("0.000001") for c in costs)
    assert any(c < 0 for c in costs)  # credits
    assert "" in col["line_item_net_unblended_cost"] and all(v == "" for v in col["split_line_item_split_cost"])
    assert any("E-" in v for v in col["line_item_unblended_cost"])  # Java-style text, like real AWS
    # timestamps inside the period
    assert set(col["bill_billing_period_start_date"]) == {"2024-01-01T00:00:00.000Z"}
    assert set(col["bill_billing_period_end_date"]) == {"2024-02-01T00:00:00.000Z"}
    assert all(v.startswith("2024-01-") for v in col["line_item_usage_start_date"])
    assert {"AmazonEC2", "AmazonS3"} <= set(col["line_item_product_code"])
    assert set(col["bill_invoice_id"]) == {""}
    assert all(re.fullmatch(r"[a-z2-7]{52}", v) for v in col["identity_line_item_id"])


def test_v2_is_deterministic_and_seed_sensitive(tmp_path):
    a = cf.build_v2(tmp_path / "a", execution_id="e", rows=50, files=1)
    b = cf.build_v2(tmp_path / "b", execution_id="e", rows=50, files=1)
    c = cf.build_v2(tmp_path / "c", execution_id="e", rows=50, files=1, seed=1)
    read = lambda d: (d.root / d.data_keys[0]).read_bytes()  # noqa: E731
    assert read(a) == read(b) != read(c)
    assert a.unblended_cost_sum == b.unblended_cost_sum


def test_v2_plain_numbers_and_no_subfolder(tmp_path):
    d = cf.build_v2(tmp_path, subfolder=False, number_style="plain", rows=200, files=1, period="2024-02")
    assert d.data_keys == ("cur2/demo-cur2/data/BILLING_PERIOD=2024-02/demo-cur2-00001.csv.gz",)
    header, rows = cf.read_csv_gz(tmp_path / d.data_keys[0])
    ci = header.index("line_item_unblended_cost")
    assert not any("E" in r[ci] for r in rows)
    assert cf.decimal_sum(r[ci] for r in rows) == d.unblended_cost_sum
    assert _manifest(tmp_path, d.manifest_key)["billingPeriod"]["end"] == "2024-03-01T00:00:00.000Z"


def test_v2_parquet_types_and_sum(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    d = cf.build_v2(tmp_path, fmt="parquet", execution_id="p", rows=300, files=2)
    assert all(k.endswith(".snappy.parquet") for k in d.data_keys)
    csv_twin = cf.build_v2(tmp_path / "csv", execution_id="p", rows=300, files=2)
    assert csv_twin.unblended_cost_sum == d.unblended_cost_sum
    tables = [pq.read_table(tmp_path / k) for k in d.data_keys]
    assert sum(t.num_rows for t in tables) == 300 == d.row_count
    schema = tables[0].schema
    assert schema.names == [n for n, _ in _cur2_dictionary()]
    assert schema.field("product").type == pa.map_(pa.string(), pa.string())
    assert schema.field("resource_tags").type == pa.map_(pa.string(), pa.string())
    assert schema.field("discount").type == pa.map_(pa.string(), pa.float64())
    assert schema.field("line_item_unblended_cost").type == pa.float64()
    assert schema.field("line_item_unblended_rate").type == pa.string()
    assert pa.types.is_timestamp(schema.field("line_item_usage_start_date").type)
    cost = [v for t in tables for v in t.column("line_item_unblended_cost").to_pylist()]
    assert cf.decimal_sum_doubles(cost) == d.unblended_cost_sum
    man = _manifest(tmp_path, d.manifest_key)
    assert man["dataFiles"] == list(d.data_uris)


def test_v2_restated_execution_overwrites_manifest(tmp_path):
    a = cf.build_v2(tmp_path, execution_id="x1", rows=100, seed=1)
    b = cf.build_v2(tmp_path, execution_id="x2", rows=150, seed=2)
    assert a.manifest_key == b.manifest_key
    man = _manifest(tmp_path, b.manifest_key)
    assert man["executionId"] == "x2" and man["dataFiles"] == list(b.data_uris)
    assert all((tmp_path / k).is_file() for k in a.data_keys)  # old execution stays


# ---------------------------------------------------------------------- helpers / upload
def test_java_double_text():
    j = cf.java_double_text
    assert [j("0"), j("1"), j("0.0051142167"), j("0.0000000186"), j("1.81E-8"), j("-2.5"), j("12345678")] == \
        ["0.0", "1.0", "0.0051142167", "1.86E-8", "1.81E-8", "-2.5", "1.2345678E7"]

def test_upload_tree(s3, tmp_path):
    "Against the real moto server: every file at its relative key, manifests last, bytes intact."
    v1 = cf.build_v1_csv(tmp_path, assembly_id="a", files=2)
    v2 = cf.build_v2(tmp_path, execution_id="e", rows=20, files=1)
    keys = cf.upload_tree(s3, "billing-bucket", tmp_path)
    listed = {o["Key"] for p in s3.get_paginator("list_objects_v2").paginate(Bucket="billing-bucket")
              for o in p.get("Contents", [])}
    assert set(keys) == set(v1.keys) | set(v2.keys) == listed
    assert all(k.endswith("Manifest.json") for k in keys[-3:])  # manifests last
    assert not any(k.endswith("Manifest.json") for k in keys[:-3])
    body = s3.get_object(Bucket="billing-bucket", Key=v1.data_keys[0])["Body"].read()
    assert body == (tmp_path / v1.data_keys[0]).read_bytes()
    cf.upload_tree(s3, "billing-bucket", tmp_path)  # the bucket exists now: uploading again works
