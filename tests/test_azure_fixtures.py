"""Checks of the Azure export builders in tests/azure_fixtures.py (no servers needed)."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
import sys
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import azure_fixtures as af  # noqa: E402

GUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"

# Exact sums of each sample's cost column, computed once from the sample text.
SAMPLE_SUMS = {
    "ea-actual": ("Cost", Decimal("8.5450077867419368"), 11),
    "ea-amortized": ("Cost", Decimal("16.29693213663664462748541900"), 28),
    "ea-excel": ("CostInBillingCurrency", Decimal("1.26136926505726"), 27),
    "mca": ("costInBillingCurrency", Decimal("0.0000262412"), 4),
    "payg": ("PreTaxCost", Decimal("0.075"), 1),
    "german": ("PreTaxCost (PreTaxCost)", Decimal("0.075"), 1),
}


def sample_bytes(name: str) -> bytes:
    return (af.SAMPLES / af.SOURCES[name].path).read_bytes()


def manifest(root: Path, key: str) -> dict:
    return json.loads((root / key).read_text(encoding="utf-8"))


def key_tree(obj):
    """The nested key structure of a JSON object (lists: the union of their items')."""
    if isinstance(obj, dict):
        return {k: key_tree(v) for k, v in obj.items()}
    if isinstance(obj, list):
        merged: dict = {}
        for item in obj:
            t = key_tree(item)
            if isinstance(t, dict):
                merged.update(t)
        return [merged]
    return None


# ---------------------------------------------------------------------- samples
def test_every_real_sample_is_found_and_each_record_reserialises_to_itself():
    for s in af.SOURCES.values():
        if s.path is None:
            assert (af.SAMPLES / af.SCHEMA_DIR / s.schema).is_file()
            continue
        data = sample_bytes(s.name)
        table = af.read_table_bytes(data)
        assert table.to_bytes() == data, s.name
        for rec in [table.header, *table.records]:  # what makes field edits byte-safe
            assert af._serialise(rec.fields, rec.quoted) + rec.term == rec.raw, (s.name, rec.raw[:60])


def test_header_family_from_the_header_alone():
    for s in af.SOURCES.values():
        if s.path:
            assert af.header_family(af.read_table_bytes(sample_bytes(s.name)).columns) == s.family, s.name
    focus = [m["source"]["name"] for m in json.loads(
        (af.SAMPLES / af.SCHEMA_DIR / "focuscost_1.2.json").read_text())["translator"]["mappings"]]
    assert af.header_family(focus) == "focus"
    # actual and amortized: the same columns, so the header cannot tell them apart
    assert af.read_table_bytes(sample_bytes("ea-actual")).columns == af.read_table_bytes(
        sample_bytes("ea-amortized")).columns


def test_english_names_and_dates():
    assert af.english_name("\ufeffAbonnement-GUID (SubscriptionGuid)") == "SubscriptionGuid"
    assert af.english_name("ServiceName") == "ServiceName"
    assert af.parse_azure_date("09/01/2023") == date(2023, 9, 1)
    assert af.parse_azure_date("9/2/2023") == date(2023, 9, 2)
    assert af.parse_azure_date("3/1/21") == date(2021, 3, 1)
    assert af.parse_azure_date("2024-01-01T00:00Z") == date(2024, 1, 1)
    assert af.parse_azure_date("NULL") is None
    assert af.shift_date_text("09/30/2023", 5, keep_last_day=True) == "02/29/2024"  # inclusive end
    assert af.shift_date_text("2023-09-30T00:00:00Z", 1) == "2023-10-30T00:00:00Z"   # exclusive end
    assert af.shift_date_text("01/31/2023", 1) == "02/28/2023"
    assert af.shift_date_text("9/2/2023", 5) == "2/2/2024"      # Excel's padding kept
    assert af.shift_date_text("3/1/21", -3) == "12/1/20"
    assert af.shift_date_text("2024-09-04 00:00:00", 1) == "2024-10-04 00:00:00"


# ---------------------------------------------------------------------- manifest layout
def test_manifest_layout_create_new_report(tmp_path):
    d = af.build_azure_export(tmp_path)
    base = f"exports/demo-actual/20230901-20230930/202310050603/{d.run_id}"
    assert re.fullmatch(GUID, d.run_id)
    assert d.data_keys == (f"{base}/part_0_0001.csv",) and d.manifest_key == f"{base}/manifest.json"
    assert (d.period, d.date_range, d.dataset, d.rows) == ("2023-09", "20230901-20230930", "ActualCost", 11)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()) == sorted(d.keys)

    m = manifest(tmp_path, d.manifest_key)
    learn = json.loads((af.SAMPLES / "azure-docs-export-manifest/manifest.json").read_text())
    assert key_tree(m) == key_tree(learn)  # every field of Microsoft's example, no more
    assert m["manifestVersion"] == "2024-04-01"
    assert m["runInfo"]["runId"] == d.run_id
    assert m["runInfo"]["startDate"] == "2023-09-01T00:00:00" and m["runInfo"]["endDate"] == "2023-09-30T00:00:00Z"
    assert m["runInfo"]["submittedTime"] == "2023-10-05T06:03:11.6543210Z"
    assert m["exportConfig"]["type"] == "ActualCost" and m["exportConfig"]["dataVersion"] == "2021-10-01"
    assert m["exportConfig"]["resourceId"] == (
        "/providers/Microsoft.Billing/billingAccounts/8611537/providers/Microsoft.CostManagement/exports/demo-actual")
    assert m["deliveryConfig"]["dataOverwriteBehavior"] == "CreateNewReport"
    assert (m["deliveryConfig"]["fileFormat"], m["deliveryConfig"]["compressionMode"]) == ("Csv", "None")
    assert m["deliveryConfig"]["rootFolderPath"] == "exports"
    assert [b["blobName"] for b in m["blobs"]] == list(d.data_keys)
    for b in m["blobs"]:
        assert b["byteCount"] == (tmp_path / b["blobName"]).stat().st_size
    assert m["byteCount"] == sum(b["byteCount"] for b in m["blobs"]) and m["blobCount"] == 1
    assert m["dataRowCount"] == sum(b["dataRowCount"] for b in m["blobs"]) == 11
    # the run's time is the files' mtime (Last-Modified of a local mirror)
    assert (tmp_path / d.manifest_key).stat().st_mtime == d.submitted.timestamp()


@pytest.mark.parametrize("name", ["ea-actual", "ea-amortized", "ea-excel", "mca", "enterprise", "payg-bom", "german"])
def test_a_real_sample_is_copied_byte_for_byte(tmp_path, name):
    s = af.SOURCES[name]
    d = af.build_azure_export(tmp_path, source=name, dataset=s.dataset)
    assert (tmp_path / d.data_keys[0]).read_bytes() == sample_bytes(name)
    assert not d.shifted and d.period == s.period


def test_quirks_are_kept(tmp_path):
    ea = af.build_azure_export(tmp_path / "ea", dataset="AmortizedCost")
    ea_bytes = (tmp_path / "ea" / ea.data_keys[0]).read_bytes()
    assert ea_bytes.startswith(af.BOM) and b"\r\n" not in ea_bytes
    assert b",0.0000000072922557592391990000," in ea_bytes               # 28 decimal places
    assert b'"""CostCenter"": ""1234"",' in (af.SAMPLES / af.SOURCES["ea-actual"].path).read_bytes()
    rows = af.read_rows(ea)
    assert all(not r["Tags"].startswith("{") for r in rows if r["Tags"])  # Tags without braces
    assert all(re.fullmatch(r"\d{2}/\d{2}/\d{4}", r["Date"]) for r in rows)

    xl = af.build_azure_export(tmp_path / "xl", source="ea-excel", fmt="csv.gz", files=3)
    for key in xl.data_keys:
        text = gzip.decompress((tmp_path / "xl" / key).read_bytes())
        assert not text.startswith(af.BOM) and text.count(b"\n") == text.count(b"\r\n")
    rows = af.read_rows(xl)
    assert {r["Date"] for r in rows} == {"9/2/2023"} and "5.64902E-05" in {r["CostInBillingCurrency"] for r in rows}
    assert {r["IsAzureCreditEligible"] for r in rows} == {"TRUE"}

    mca = af.build_azure_export(tmp_path / "mca", source="mca")
    raw = (tmp_path / "mca" / mca.data_keys[0]).read_bytes()
    assert raw.endswith(b"0.000360\n") and raw.count(b"\r\n") == 4       # CRLF, final LF


@pytest.mark.parametrize("name", sorted(SAMPLE_SUMS))
@pytest.mark.parametrize("fmt", ["csv", "csv.gz", "parquet"])
def test_sums_read_back_exactly(tmp_path, name, fmt):
    col, total, rows = SAMPLE_SUMS[name]
    files = 2 if rows > 1 else 1
    d = af.build_azure_export(tmp_path, source=name, dataset=af.SOURCES[name].dataset, fmt=fmt, files=files)
    assert d.cost_column == col and d.cost_sum == total and d.rows == rows
    assert sum(d.rows_per_file) == rows and len(d.data_keys) == files
    assert af.totals(d)[col] == total


def test_parts_split_the_records_and_each_has_the_header(tmp_path):
    d = af.build_azure_export(tmp_path, dataset="AmortizedCost", files=3)
    sample = af.read_table_bytes(sample_bytes("ea-amortized"))
    assert [k.rsplit("/", 1)[1] for k in d.data_keys] == ["part_0_0001.csv", "part_1_0001.csv", "part_2_0001.csv"]
    assert d.rows_per_file == (10, 9, 9)
    body = b""
    for key in d.data_keys:
        t = af.read_table_bytes((tmp_path / key).read_bytes())
        assert t.bom == af.BOM and t.header.raw == sample.header.raw
        body += b"".join(r.raw for r in t.records)
    assert body == b"".join(r.raw for r in sample.records)
    assert [b["dataRowCount"] for b in d.manifest()["blobs"]] == [10, 9, 9]
    with pytest.raises(ValueError, match="never empty"):
        af.build_azure_export(tmp_path / "x", source="payg", files=2)


def test_gzip_and_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    gz = af.build_azure_export(tmp_path / "gz", fmt="csv.gz")
    assert gz.data_keys[0].endswith("/part_0_0001.csv.gz")
    assert gzip.decompress((tmp_path / "gz" / gz.data_keys[0]).read_bytes()) == sample_bytes("ea-actual")
    assert gz.manifest()["deliveryConfig"]["compressionMode"] == "Gzip"

    pqd = af.build_azure_export(tmp_path / "pq", dataset="AmortizedCost", fmt="parquet")
    assert pqd.data_keys[0].endswith("/part_0_0001.snappy.parquet")
    m = pqd.manifest()["deliveryConfig"]
    assert (m["fileFormat"], m["compressionMode"]) == ("Parquet", "Snappy")
    schema = pq.read_schema(tmp_path / "pq" / pqd.data_keys[0])
    assert schema.field("Cost").type == pa.decimal128(38, 28)
    assert schema.field("Date").type == pa.timestamp("us", tz="UTC")
    assert schema.field("IsAzureCreditEligible").type == pa.bool_()
    assert schema.field("Tags").type == pa.string()
    assert pqd.cost_sum == SAMPLE_SUMS["ea-amortized"][1]
    first = af.read_rows(pqd)[0]
    assert first["Date"] == datetime(2023, 9, 22, tzinfo=timezone.utc) and first["Cost"] == Decimal("0.493152")


# ---------------------------------------------------------------------- runs of one range
def test_overwrite_leaves_only_the_latest_run(tmp_path):
    r = af.restate(tmp_path, overwrite=True)
    assert r.first.run_id != r.second.run_id and r.first.date_range == r.second.date_range
    base = "exports/demo-actual/20230901-20230930"
    assert r.second.manifest_key == f"{base}/{r.second.run_id}/manifest.json"
    assert set(r.second.removed_keys) == set(r.first.keys)
    on_disk = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert on_disk == sorted(r.second.keys)
    assert r.second.manifest()["deliveryConfig"]["dataOverwriteBehavior"] == "OverwritePreviousReport"


def test_restated_create_new_report_keeps_both_runs(tmp_path):
    r = af.restate(tmp_path)
    first, second = r.first, r.second
    assert first.month_to_date and not second.month_to_date
    assert first.submitted < second.submitted
    for d in r.deliveries:
        assert all((tmp_path / k).is_file() for k in d.keys)
    m1, m2 = first.manifest(), second.manifest()
    assert (m1["runInfo"]["endDate"], m1["exportConfig"]["timeFrame"]) == ("2023-09-14T00:00:00Z", "MonthToDate")
    assert (m2["runInfo"]["endDate"], m2["exportConfig"]["timeFrame"]) == ("2023-09-30T00:00:00Z", "TheLastMonth")
    assert m1["runInfo"]["submittedTime"] < m2["runInfo"]["submittedTime"]
    # the month-to-date run has the rows up to the 14th only; the full run all of them
    assert first.rows == 10 and second.rows == 11
    assert all(af.parse_azure_date(r["Date"]) <= date(2023, 9, 14) for r in af.read_rows(first))
    assert second.cost_sum - first.cost_sum == Decimal("3.25")  # the reservation bought on the 21st
    assert af.delivery_order(tmp_path)[-1] == second.manifest_key


def test_month_to_date_folder_is_the_whole_month(tmp_path):
    d = af.build_azure_export(tmp_path, dataset="FocusCost", through="2023-09-10")
    assert d.date_range == "20230901-20230930" and d.end_date == date(2023, 9, 10)
    assert max(af.parse_azure_date(r["ChargePeriodStart"]) for r in af.read_rows(d)) <= date(2023, 9, 10)
    with pytest.raises(ValueError, match="outside"):
        af.build_azure_export(tmp_path / "x", through="2023-10-01")


def test_legacy_layout_several_runs_newest_current(tmp_path):
    r = af.restate(tmp_path, layout="legacy", export="costreport", directory="cost")
    for d in r.deliveries:
        assert d.manifest_key is None
        assert d.data_keys == (f"cost/costreport/20230901-20230930/costreport_{d.run_id}.csv",)
    assert not list(tmp_path.rglob("*.json"))
    newest = max(tmp_path.rglob("*.csv"), key=lambda p: p.stat().st_mtime)
    assert newest.relative_to(tmp_path).as_posix() == r.second.data_keys[0]
    assert newest.read_bytes() == sample_bytes("ea-actual")

    other = af.build_azure_export(tmp_path / "p", layout="legacy", file_prefix="CostExport")
    assert re.fullmatch(rf"exports/demo-actual/20230901-20230930/CostExport_{GUID}\.csv", other.data_keys[0])
    with pytest.raises(ValueError):
        af.build_azure_export(tmp_path / "x", layout="legacy", fmt="csv.gz")
    with pytest.raises(ValueError):
        af.build_azure_export(tmp_path / "x", layout="legacy", files=2)


def test_partitioned_2021_manifest(tmp_path):
    d = af.build_azure_export(tmp_path, layout="partitioned-2021", export="partitioned", directory="cost",
                              source="ea-excel", files=2, content_md5=True)
    base = f"cost/partitioned/20230901-20230930/202310050603/{d.run_id}"
    assert d.data_keys == (f"{base}/000001.csv", f"{base}/000002.csv")
    assert d.manifest_key == f"{base}/_manifest.json"
    m = d.manifest()
    koku = json.loads((af.SAMPLES / "koku-test-data/azure/manifest.json").read_text())
    assert set(m) == set(koku) and m["manifestVersion"] == "2021-01-01" and m["dataFormat"] == "csv"
    assert set(m["blobs"][0]) == set(koku["blobs"][0]) | {"contentMD5"}
    for b in m["blobs"]:
        data = (tmp_path / b["blobName"]).read_bytes()
        assert b["byteCount"] == len(data) and b["headerRowCount"] == 1
        assert b["contentMD5"] == base64.b64encode(hashlib.md5(data).digest()).decode()
    assert m["dataRowCount"] == 27 and d.cost_sum == SAMPLE_SUMS["ea-excel"][1]


# ---------------------------------------------------------------------- moved, trimmed, scoped
def test_period_shift_changes_only_dates(tmp_path):
    d = af.build_azure_export(tmp_path, period="2024-02")
    assert d.shifted and d.date_range == "20240201-20240229"
    new = af.read_table_bytes((tmp_path / d.data_keys[0]).read_bytes())
    old = af.read_table_bytes(sample_bytes("ea-actual"))
    dates = {i for i, h in enumerate(old.columns) if h in ("Date", "BillingPeriodStartDate", "BillingPeriodEndDate")}
    assert new.bom == old.bom and new.header.raw == old.header.raw
    for a, b in zip(old.records, new.records):
        assert [v for i, v in enumerate(a.fields) if i not in dates] == [v for i, v in enumerate(b.fields) if i not in dates]
        assert b.fields[2:4] == ["02/01/2024", "02/29/2024"]
        assert re.fullmatch(r"02/\d{2}/2024", b.fields[10])
        assert b.term == a.term
    assert d.cost_sum == SAMPLE_SUMS["ea-actual"][1]


def test_new_column_mid_year(tmp_path):
    s = af.build_new_column_midyear(tmp_path, months=range(5, 10), change_month=7)
    assert s.periods == ("2023-05", "2023-06", "2023-07", "2023-08", "2023-09")
    before, after = s.delivery("2023-06"), s.delivery("2023-07")
    assert len(before.header) == 53 and "benefitId" not in before.header
    assert after.header[-2:] == ("benefitId", "benefitName") and len(after.header) == 55
    assert before.export_id == after.export_id
    assert {d.cost_sum for d in s.deliveries} == {SAMPLE_SUMS["ea-actual"][1]}
    # the old-schema file is the same month's CSV without the two columns, nothing else touched
    full = af.build_azure_export(tmp_path / "ref", period="2023-06")
    old = af.read_table_bytes((tmp_path / before.data_keys[0]).read_bytes())
    ref = af.read_table_bytes((tmp_path / "ref" / full.data_keys[0]).read_bytes())
    assert all(a.fields == b.fields[:-2] and a.term == b.term for a, b in zip(old.records, ref.records))
    assert old.bom == af.BOM and len(old.records) == len(ref.records) == 11


def test_two_scopes_side_by_side(tmp_path):
    t = af.build_two_scopes(tmp_path)
    sub, ba = t.subscription, t.billing_account
    assert t.subscription_id == "1caaa5a3-2b66-438e-8ab4-bce37d518c5d"
    assert sub.export == ba.export == "demo-actual" and sub.export_id != ba.export_id
    assert sub.data_keys[0].startswith(f"subscriptions/{t.subscription_id}/demo-actual/20230901-20230930/")
    assert ba.data_keys[0].startswith("providers/Microsoft.Billing/billingAccounts/8611537/demo-actual/")
    assert sub.manifest()["exportConfig"]["resourceId"] == (
        f"/subscriptions/{t.subscription_id}/providers/Microsoft.CostManagement/exports/demo-actual")
    assert (sub.rows, ba.rows) == (5, 11)
    sub_recs = {r.raw for r in af.read_table_bytes((tmp_path / sub.data_keys[0]).read_bytes()).records}
    ba_recs = {r.raw for r in af.read_table_bytes((tmp_path / ba.data_keys[0]).read_bytes()).records}
    assert sub_recs < ba_recs and sub.cost_sum < ba.cost_sum


# ---------------------------------------------------------------------- FOCUS
@pytest.mark.parametrize("name,schema,cols,ts", [
    ("focus-1.0", "focuscost_1.0.json", 96, "2023-09-01T00:00Z"),
    ("focus-1.2-preview", "focuscost_1.2-preview.json", 105, "2023-09-01T00:00:00Z"),
    ("focus-1.2", "focuscost_1.2.json", 104, "2023-09-01T00:00:00Z"),
])
def test_focus_export_from_the_schema(tmp_path, name, schema, cols, ts):
    d = af.build_azure_export(tmp_path, dataset="FocusCost", export="focus", source=name)
    names = [m["source"]["name"] for m in json.loads(
        (af.SAMPLES / af.SCHEMA_DIR / schema).read_text())["translator"]["mappings"]]
    assert list(d.header) == names and len(names) == cols
    assert d.manifest()["exportConfig"]["type"] == "FocusCost"
    assert d.manifest()["exportConfig"]["dataVersion"] == af.SOURCES[name].data_version
    rows = af.read_rows(d)
    assert rows[0]["ChargePeriodStart"] == ts and rows[0]["BillingPeriodEnd"].startswith("2023-10-01T00:00")
    assert d.cost_columns == ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost")
    assert d.billed_cost_sum == af.decimal_sum(r["BilledCost"] for r in rows)


def test_focus_rows_follow_the_toolkit_rules(tmp_path):
    d = af.build_azure_export(tmp_path, dataset="FocusCost")
    rows = af.read_rows(d)
    cats = {r["ChargeCategory"] for r in rows}
    assert cats == {"Usage", "Purchase", "Adjustment"}
    assert {r["PricingCategory"] for r in rows} == {"Standard", "Committed", "Dynamic", ""}
    dec = lambda r, c: Decimal(r[c])  # noqa: E731
    for r in rows:
        if r["x_AmortizationClass"] == "Amortized Charge":  # commitment usage: billed by the purchase
            assert dec(r, "BilledCost") == 0 and dec(r, "EffectiveCost") > 0 and r["CommitmentDiscountId"]
        if r["x_AmortizationClass"] == "Principal":         # the purchase itself: amortized elsewhere
            assert dec(r, "EffectiveCost") == 0 and r["ChargeCategory"] == "Purchase"
        if not r["x_AmortizationClass"]:
            assert r["BilledCost"] == r["EffectiveCost"]
        if r["CommitmentDiscountStatus"] == "Unused":
            assert r["ChargeCategory"] == "Usage"
        if r["ChargeClass"] == "Correction":
            assert dec(r, "BilledCost") < 0
        assert r["Tags"] == "" or isinstance(json.loads(r["Tags"]), dict)
    places = [len(r["EffectiveCost"].partition(".")[2]) for r in rows]
    assert max(places) == 28                                # costs carry up to 28 decimals
    assert d.effective_cost_sum == af.decimal_sum(r["EffectiveCost"] for r in rows)
    # deterministic, and the same rows whatever the FOCUS version
    again = af.build_azure_export(tmp_path / "again", dataset="FocusCost", source="focus-1.0")
    assert (again.rows, again.billed_cost_sum) == (d.rows, d.billed_cost_sum)


def test_focus_parquet_types_follow_the_schema(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    d = af.build_azure_export(tmp_path, dataset="FocusCost", fmt="parquet", overwrite=True)
    assert d.manifest_key == f"exports/demo-actual/20230901-20230930/{d.run_id}/manifest.json"
    schema = pq.read_schema(tmp_path / d.data_keys[0])
    assert schema.field("BilledCost").type == pa.decimal128(38, 28)
    assert schema.field("ChargePeriodStart").type == pa.timestamp("us", tz="UTC")
    assert schema.field("x_SkuIsCreditEligible").type == pa.bool_()
    csv_twin = af.build_azure_export(tmp_path / "csv", dataset="FocusCost")
    assert (d.billed_cost_sum, d.effective_cost_sum, d.rows) == (
        csv_twin.billed_cost_sum, csv_twin.effective_cost_sum, csv_twin.rows)


def test_the_real_focus_sample_azure_rows(tmp_path):
    d = af.build_azure_export(tmp_path, dataset="FocusCost", source="focus-sample-azure")
    rows = af.read_rows(d)
    assert d.rows == 51 and {r["ProviderName"] for r in rows} == {"Microsoft"}
    assert d.period == "2024-09" and "NULL" in {r["ChargeClass"] for r in rows}
    assert d.billed_cost_sum == Decimal("1.97651418586")


# ---------------------------------------------------------------------- container
def test_mixed_container_and_upload_order(tmp_path):
    m = af.build_mixed_container(tmp_path)
    keys = m.keys
    assert len(keys) == len(set(keys)) == 16
    on_disk = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert on_disk == sorted(keys)
    assert m.deliveries["empty-month"].rows == 0 and m.deliveries["empty-month"].manifest()["dataRowCount"] == 0

    class Container:  # records what upload_tree asks of a ContainerClient
        def __init__(self):
            self.uploaded, self.created = [], 0

        def create_container(self):
            self.created += 1

        def upload_blob(self, name, data, overwrite):
            assert overwrite and isinstance(data, bytes)
            self.uploaded.append(name)

    c = Container()
    order = af.upload_tree(c, tmp_path)
    assert c.uploaded == order and c.created == 1 and sorted(order) == sorted(keys)
    for d in m.deliveries.values():
        if d.manifest_key:
            assert all(order.index(k) < order.index(d.manifest_key) for k in d.data_keys)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="layout"):
        af.build_azure_export(tmp_path, layout="v3")
    with pytest.raises(ValueError, match="FocusCost"):
        af.build_azure_export(tmp_path, dataset="FocusCost", source="ea-actual")
    with pytest.raises(ValueError, match="overwrite"):
        af.build_azure_export(tmp_path, layout="legacy", overwrite=True)
    with pytest.raises(ValueError, match="YYYY-MM"):
        af.build_azure_export(tmp_path, period="2023-9")
