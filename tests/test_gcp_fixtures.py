"""Checks of tests/gcp_fixtures.py: Google Cloud's billing export tables in the local-bigquery emulator."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
import uuid
from collections import Counter
from datetime import date, datetime, timedelta
from decimal import Context, Decimal, localcontext
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gcp_fixtures as gf  # noqa: E402

ACCOUNT = "01338E-BE3FD6-363B4C"
# Exact sums of the koku samples, added up by hand from the CSV text.
KOKU = {"standard": {"rows": 25, "cost": Decimal("0.000032"), "credits": Decimal("-0.000032"),
                     "month": "202011"},
        "detailed": {"rows": 9, "cost": Decimal("0.000012"), "credits": Decimal("0"),
                     "month": "202208"}}


def fields(schema, prefix=""):
    "{dotted path: (type, mode)} of a schema, nested fields included."
    out = {}
    for f in schema:
        out[prefix + f.name] = (f.field_type, f.mode)
        out.update(fields(f.fields, prefix + f.name + "."))
    return out


def plain(v):
    "A value read back from BigQuery in the row-dict form of gcp_fixtures."
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, dict) or hasattr(v, "items"):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [plain(x) for x in v]
    return v


def same_rows(a, b) -> bool:
    "The two lists hold the same rows, in any order."
    key = lambda r: json.dumps(r, sort_keys=True)  # noqa: E731
    return sorted(map(key, a)) == sorted(map(key, b))


def significant_digits(x: float) -> int:
    return len(repr(abs(x)).split("e")[0].replace(".", "").strip("0"))


def exact_sum(values) -> Decimal:
    with localcontext(Context(prec=100)):
        return sum((Decimal(repr(v)) for v in values if v is not None), Decimal(0))


def q(bq, bq_limits, sql: str) -> list:
    "The rows of a query (short retries, no job retry)."
    return list(bq_limits.query(bq, sql))


@pytest.fixture
def dataset(bq, bq_server, bq_limits):
    "A new dataset on the emulator (its id ``project.gcp_xxxxxxxx``)."
    ds = f"{bq_server.project}.gcp_{uuid.uuid4().hex[:10]}"
    bq.create_dataset(ds, **bq_limits.call)
    return ds


# ---- no server needed -------------------------------------------------------------------

def test_schemas_follow_the_documented_export():
    std, det = fields(gf.SCHEMA_STANDARD), fields(gf.SCHEMA_DETAILED)
    for path, kind in {"cost": "FLOAT", "cost_at_list": "FLOAT", "currency_conversion_rate": "FLOAT",
                       "usage.amount": "FLOAT", "usage.amount_in_pricing_units": "FLOAT",
                       "credits.amount": "FLOAT", "usage_start_time": "TIMESTAMP",
                       "usage_end_time": "TIMESTAMP", "export_time": "TIMESTAMP",
                       "invoice.month": "STRING", "tags.inherited": "BOOLEAN",
                       "project.ancestors.display_name": "STRING", "adjustment_info.mode": "STRING",
                       "transaction_type": "STRING", "seller_name": "STRING",
                       "invoice.publisher_type": "STRING"}.items():
        assert std[path][0] == det[path][0] == kind, path
    for path in ("labels", "system_labels", "project.labels", "project.ancestors", "tags", "credits"):
        assert std[path] == det[path] == ("RECORD", "REPEATED"), path
    assert set(std) < set(det)  # the detailed table has every standard field
    assert set(det) - set(std) >= {"resource.name", "resource.global_name", "price.effective_price",
                                   "price.tier_start_amount", "price.unit", "price.pricing_unit_quantity"}
    assert all(det[p][0] == "NUMERIC" for p in det if p.startswith("price.") and p != "price.unit")
    assert [f.name for f in gf.SCHEMA_STANDARD][:5] == ["billing_account_id", "service", "sku",
                                                        "usage_start_time", "usage_end_time"]
    assert gf.export_table_name(ACCOUNT) == "gcp_billing_export_v1_01338E_BE3FD6_363B4C"
    assert gf.export_table_name(ACCOUNT, True) == "gcp_billing_export_resource_v1_01338E_BE3FD6_363B4C"
    assert gf.arrow_schema(gf.SCHEMA_DETAILED).names == [f.name for f in gf.SCHEMA_DETAILED]


@pytest.mark.parametrize("which", ["standard", "detailed"])
def test_koku_rows_rebuild_the_real_rows(which):
    rows = gf.koku_rows(which)
    want = KOKU[which]
    assert len(rows) == want["rows"]
    assert all(list(r) == [f.name for f in gf.schema_of(which == "detailed")] for r in rows)
    with open(gf.KOKU_FILES[which], newline="") as fh:
        text = list(csv.DictReader(fh))
    for r, t in zip(rows, text):  # every double is the one the CSV text spells
        assert r["cost"] == float(t["cost"]) and repr(r["cost"]) == t["cost"]
        assert repr(r["usage"]["amount_in_pricing_units"]) == t["usage.amount_in_pricing_units"]
        assert r["export_time"] == datetime.fromisoformat(t["export_time"]).isoformat()
        assert r["invoice"]["month"] == want["month"]
    e = gf.expected(rows)
    assert (e["rows"], e["cost"], e["credits"]) == (want["rows"], want["cost"], want["credits"])
    assert e["cost_at_list"] is None  # the samples predate cost_at_list
    assert all(r["project"]["number"] is None and r["tags"] == [] and r["adjustment_info"] is None
               for r in rows)
    if which == "standard":
        r = rows[0]
        assert r["location"] == {"location": "global", "country": None, "region": None, "zone": None}
        assert r["credits"] == [{"name": "FreeTrial:Credit-000000-B0BBA4-940A77", "amount": -5e-06,
                                 "full_name": None, "id": "FreeTrial:Credit-000000-B0BBA4-940A77",
                                 "type": "PROMOTION"}]
        assert {l["value"] for r in rows for l in r["labels"]} >= {"bigquery_dataset", "bigquery_resource"}
    else:
        assert {r["resource"]["name"] for r in rows} == {"instance-1"}
        assert all(r["price"] is None for r in rows)


def test_month_rows_cover_a_realistic_month():
    rows = gf.month_rows("2024-03", seed=7, projects=3, extra_label="cost-center")
    start, end = gf.month_window("2024-03")
    assert (start.isoformat(), end.isoformat()) == ("2024-03-01T08:00:00+00:00", "2024-04-01T07:00:00+00:00")
    assert {r["invoice"]["month"] for r in rows} == {"202403"}
    assert set(Counter(r["cost_type"] for r in rows)) == set(gf.COST_TYPES)
    assert len({r["project"]["id"] for r in rows}) == 3
    assert len({r["service"]["description"] for r in rows if r["cost_type"] == "regular"}) >= 3
    assert all(start <= datetime.fromisoformat(r["usage_start_time"]) < end for r in rows)
    credit_types = Counter(c["type"] for r in rows for c in r["credits"])
    assert set(credit_types) == set(gf.CREDIT_TYPES)
    assert any(len(r["credits"]) == 2 for r in rows)
    assert all(c["amount"] < 0 for r in rows for c in r["credits"])
    costs = [r["cost"] for r in rows]
    assert 0.0 in costs and 5e-06 in costs and 0.123456789012 in costs
    assert max(map(significant_digits, costs)) >= 16  # full doubles, not rounded decimals
    late = [r for r in rows if gf.is_late(r)]
    assert {r["cost_type"] for r in late} >= {"tax", "adjustment", "regular"}
    assert any(datetime.fromisoformat(r["usage_start_time"]) < end - timedelta(days=3) for r in late)
    assert all(r["adjustment_info"] and r["adjustment_info"]["mode"] for r in rows
               if r["cost_type"] == "adjustment")
    assert any(l["key"] == "cost-center" for r in rows for l in r["labels"])
    assert {l["key"] for r in gf.month_rows("2024-03", seed=7) for l in r["labels"]} == {"app", "goog-k8s-cluster-name"}
    # deterministic, and the seed matters
    assert gf.month_rows("2024-03", seed=7, projects=3, extra_label="cost-center") == rows
    assert gf.month_rows("2024-03", seed=8) != gf.month_rows("2024-03", seed=7)
    e = gf.expected(rows, "2024-03")
    assert e["rows"] == len(rows) and e["late_rows"] == len(late)
    assert e["cost"] == sum(t["cost"] for t in e["cost_types"].values())
    assert e["net"] == e["cost"] + e["credits"] and e["cost_at_list"] is not None
    assert gf.expected(rows, "2024-04")["rows"] == 0
    # days= and export_day= (the table as it stood at the end of that day)
    two = [r for r in gf.month_rows("2024-03", days=2) if r["cost_type"] == "regular" and not gf.is_late(r)]
    assert two and all(start <= datetime.fromisoformat(r["usage_start_time"]) < start + timedelta(days=2)
                       for r in two)  # the first two days in Pacific time
    snap = gf.month_rows("2024-03", seed=7, projects=3, extra_label="cost-center", export_day=10)
    assert 0 < len(snap) < len(rows) and snap == rows[: len(snap)]  # rows are sorted by export_time
    closed = gf.month_rows("2024-03", seed=7, projects=3, extra_label="cost-center", export_day=date(2024, 4, 2))
    assert len(snap) < len(closed) < len(rows)


# ---- against the emulator ---------------------------------------------------------------

@pytest.mark.parametrize("which", ["standard", "detailed"])
def test_koku_rows_round_trip_through_the_emulator(bq, bq_limits, dataset, which):
    detailed = which == "detailed"
    table_id = f"{dataset}.{gf.export_table_name(ACCOUNT, detailed)}"
    table = gf.create_export_table(bq, table_id, detailed=detailed, **bq_limits.call)
    assert table.time_partitioning.type_ == "DAY" and table.time_partitioning.field == "export_time"
    rows = gf.koku_rows(which)
    assert gf.insert_rows(bq, table_id, rows) == len(rows)
    got = bq.get_table(table_id, **bq_limits.call)
    assert fields(got.schema) == fields(gf.schema_of(detailed))
    (r,) = q(bq, bq_limits, f"SELECT COUNT(*) AS n, SUM(CAST(cost AS BIGNUMERIC)) AS cost "
                               f"FROM `{table_id}`")
    want = KOKU[which]
    assert (r["n"], r["cost"]) == (want["rows"], want["cost"])  # <= 6 decimals: exact on the emulator too
    back = [plain(dict(x)) for x in bq.list_rows(table_id, **bq_limits.call)]
    assert same_rows(back, rows)  # every field, nested ones included, comes back as it went in
    by_service = {x["d"]: x["n"] for x in q(
        bq, bq_limits, f"SELECT service.description AS d, COUNT(*) AS n FROM `{table_id}` GROUP BY 1")}
    assert by_service == dict(Counter(x["service"]["description"] for x in rows))
    credits = q(bq, bq_limits, f"SELECT c.type AS t, c.amount AS a FROM `{table_id}`, UNNEST(credits) AS c")
    assert exact_sum(x["a"] for x in credits) == want["credits"]
    assert {x["t"] for x in credits} == ({"PROMOTION"} if which == "standard" else set())


def test_month_rows_agree_with_expected_in_the_emulator(bq, bq_limits, dataset):
    table_id = f"{dataset}.{gf.export_table_name(ACCOUNT)}"
    gf.create_export_table(bq, table_id, **bq_limits.call)
    march = gf.month_rows("2024-03", seed=1, projects=3, extra_label="team-2")
    first = gf.month_rows("2024-03", seed=1, projects=3, extra_label="team-2", export_day=15)
    assert first == march[: len(first)]
    rest = march[len(first):]
    koku = gf.koku_rows("standard")
    # a month-to-date table, then what was exported after the 15th, then another month
    for chunk in (first, rest, koku):
        gf.insert_rows(bq, table_id, chunk)
    rows = march + koku
    got = {x["month"]: x for x in q(
        bq, bq_limits, f"SELECT invoice.month AS month, COUNT(*) AS n, SUM(cost) AS cost FROM `{table_id}` GROUP BY 1")}
    for period in ("2024-03", "2020-11"):
        e = gf.expected(rows, period)
        g = got[gf.invoice_month(period)]
        assert g["n"] == e["rows"] and abs(Decimal(repr(g["cost"])) - e["cost"]) < Decimal("1e-9")
    # exact: the doubles read back, each as Decimal(repr(x))
    back = [plain(dict(x)) for x in q(
        bq, bq_limits, f"SELECT * FROM `{table_id}` WHERE invoice.month = '202403'")]
    assert same_rows(back, march)
    e = gf.expected(march)
    assert exact_sum(r["cost"] for r in back) == e["cost"]
    assert exact_sum(r["cost_at_list"] for r in back) == e["cost_at_list"]
    credits = q(bq, bq_limits, f"SELECT c.type AS t, c.amount AS a FROM `{table_id}`, UNNEST(credits) AS c "
                                  f"WHERE invoice.month = '202403'")
    assert exact_sum(x["a"] for x in credits) == e["credits"]
    assert {x["t"] for x in credits} == set(gf.CREDIT_TYPES)
    types = {x["t"]: x["n"] for x in q(
        bq, bq_limits, f"SELECT cost_type AS t, COUNT(*) AS n FROM `{table_id}` WHERE invoice.month = '202403' GROUP BY 1")}
    assert types == {t: v["rows"] for t, v in e["cost_types"].items()}
    _, end = gf.month_window("2024-03")
    (late,) = q(bq, bq_limits, f"SELECT COUNT(*) AS n FROM `{table_id}` WHERE invoice.month = '202403' "
                                  f"AND export_time >= TIMESTAMP('{end.isoformat()}')")
    assert late["n"] == e["late_rows"] > 0
    keys = {x["k"] for x in q(bq, bq_limits, f"SELECT DISTINCT l.key AS k FROM `{table_id}`, UNNEST(labels) AS l")}
    assert "team-2" in keys and "goog-resource-type" in keys


def test_detailed_month_rows_and_numeric_prices(bq, bq_limits, dataset):
    table_id = f"{dataset}.{gf.export_table_name(ACCOUNT, detailed=True)}"
    gf.create_export_table(bq, table_id, detailed=True, **bq_limits.call)
    rows = gf.month_rows("2024-02", seed=3, projects=2, days=3, detailed=True)
    gf.insert_rows(bq, table_id, rows)
    back = [plain(dict(x)) for x in bq.list_rows(table_id, **bq_limits.call)]
    assert same_rows(back, rows)
    got = q(bq, bq_limits, f"SELECT price.effective_price AS p, price.list_price AS l, resource.name AS r "
                              f"FROM `{table_id}` WHERE price.effective_price IS NOT NULL")
    assert got and all(isinstance(x["p"], Decimal) and x["p"] <= x["l"] for x in got)
    assert any(x["p"] < x["l"] for x in got)  # a contract price


def test_bench_parquet_month_loads_into_the_emulator(bq, bq_limits, dataset, tmp_path):
    from google.cloud import bigquery

    spec = importlib.util.spec_from_file_location(
        "gen_gcp_month", Path(__file__).resolve().parents[1] / "bench" / "gen_gcp_month.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    res = gen.write_month(tmp_path / "month.parquet", rows=3000, period="2024-03", seed=2, projects=3)
    saved = json.loads((tmp_path / "expected.json").read_text())
    assert saved["rows"] == 3000 and Decimal(saved["cost"]) == res["cost"]
    table_id = f"{dataset}.{gf.export_table_name(ACCOUNT)}"
    gf.create_export_table(bq, table_id, **bq_limits.call)
    opts = bigquery.ParquetOptions()
    opts.enable_list_inference = True
    config = bigquery.LoadJobConfig(source_format=bigquery.SourceFormat.PARQUET, schema=gf.SCHEMA_STANDARD,
                                    parquet_options=opts)
    with open(tmp_path / "month.parquet", "rb") as fh:
        bq.load_table_from_file(fh, table_id, job_config=config, **bq_limits.upload).result(**bq_limits.wait)
    (r,) = q(bq, bq_limits, f"SELECT invoice.month AS m, COUNT(*) AS n, SUM(cost) AS c FROM `{table_id}` GROUP BY 1")
    assert (r["m"], r["n"]) == ("202403", 3000)
    back = [plain(dict(x)) for x in bq.list_rows(table_id, **bq_limits.call)]
    assert gf.expected(back) == {k: v for k, v in res.items() if k in gf.expected(back)}
    assert set(Counter(x["cost_type"] for x in back)) == set(gf.COST_TYPES)
