"""Checks of the fixture builders themselves: CUR 2.0 with every special charge, AWS's FOCUS
1.2 export, and a bucket holding legacy CUR, CUR 2.0 and FOCUS under one prefix.

Everything is read back from the written files (``cf.read_rows``/``cf.totals``), never taken
from generator state, and compared with ``==`` on Decimals.
"""

import hashlib
import json
import re
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path

import pytest

import cur_fixtures as cf

D = Decimal
TS_FOCUS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
YAML = cf.SAMPLES / "aws-cid-data-exports" / "data-exports-aggregation.yaml"


def _tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(Path(root).rglob("*")):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def _manifest(root, key):
    return json.loads((Path(root) / key).read_text(encoding="utf-8"))


def _dec(v):
    return cf.to_decimal(v) or D(0)


def _decimals_ok(text: str) -> bool:
    return text == "" or D(text).normalize().as_tuple().exponent >= -10


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    root = tmp_path_factory.mktemp("full")
    d = cf.build_v2(root, execution_id="full-1", charges="full")
    return d, cf.read_rows(d)


@pytest.fixture(scope="module")
def focus(tmp_path_factory):
    root = tmp_path_factory.mktemp("focus")
    d = cf.build_focus(root, execution_id="focus-1")
    return d, cf.read_rows(d)


# ---------------------------------------------------------------------- CUR 2.0, basic
def test_basic_output_is_byte_identical_to_before(tmp_path):
    # digest of build_v2(execution_id="e", files=2, rows=500) taken before charges= existed
    before = "286bdf11501ff6ba2ca93c249d101576194ad1ffcb261c48879337a77408d430"
    cf.build_v2(tmp_path / "a", execution_id="e", files=2, rows=500)
    cf.build_v2(tmp_path / "b", execution_id="e", files=2, rows=500, charges="basic")
    assert _tree_digest(tmp_path / "a") == _tree_digest(tmp_path / "b") == before
    with pytest.raises(ValueError):
        cf.build_v2(tmp_path / "c", charges="everything")


# ---------------------------------------------------------------------- CUR 2.0, full
def test_full_has_every_line_type_and_reads_back_exactly(full):
    d, rows = full
    counts = cf.line_type_counts(d)
    assert set(counts) == set(cf.V2_LINE_ITEM_TYPES_FULL)
    assert sum(counts.values()) == d.row_count == len(rows) > 500 and d.charges == "full"
    by = cf.line_type_totals(d)
    assert sum(t["line_item_unblended_cost"] for t in by.values()) == d.unblended_cost_sum
    assert cf.totals(d)["line_item_unblended_cost"] == d.unblended_cost_sum
    man = _manifest(d.root, d.manifest_key)
    assert [c["name"] for c in man["columns"]] == [n for n, _ in cf.cur2_columns()] == list(rows[0])
    doubles = [n for n, t in cf.cur2_columns() if t == "double"]
    for r in rows:
        assert all(_decimals_ok(r[c]) for c in doubles), r["line_item_line_item_type"]
        assert json.loads(r["product"])["product_name"]
        for m in ("resource_tags", "cost_category", "discount", "tags"):
            assert r[m] == "" or isinstance(json.loads(r[m]), dict)
        assert r["line_item_usage_start_date"].startswith("2024-01-")


def test_full_negations_cancel_covered_usage(full):
    d, rows = full
    key = ("line_item_usage_account_id", "line_item_resource_id", "line_item_usage_start_date",
           "line_item_usage_type", "line_item_usage_amount", "savings_plan_savings_plan_a_r_n")
    covered = [r for r in rows if r["line_item_line_item_type"] == "SavingsPlanCoveredUsage"]
    negation = [r for r in rows if r["line_item_line_item_type"] == "SavingsPlanNegation"]
    assert covered and Counter(tuple(r[k] for k in key) for r in covered) == \
        Counter(tuple(r[k] for k in key) for r in negation)
    pairs = {tuple(r[k] for k in key): D(r["line_item_unblended_cost"]) for r in covered}
    assert all(D(r["line_item_unblended_cost"]) == -pairs[tuple(r[k] for k in key)] for r in negation)
    by = cf.line_type_totals(d)
    assert by["SavingsPlanCoveredUsage"]["line_item_unblended_cost"] == \
        -by["SavingsPlanNegation"]["line_item_unblended_cost"] > 0
    assert all(r["savings_plan_savings_plan_effective_cost"] == "" for r in negation)
    for r in covered:  # covered usage is charged on demand, at its public price
        assert r["line_item_unblended_cost"] == r["pricing_public_on_demand_cost"]
        assert D(r["line_item_usage_amount"]) * D(r["savings_plan_savings_plan_rate"]) == \
            D(r["savings_plan_savings_plan_effective_cost"])
    assert len({r["savings_plan_savings_plan_a_r_n"] for r in covered}) == 2


def test_full_savings_plans_and_reservations_are_consistent(full):
    d, rows = full
    lit = lambda t: [r for r in rows if r["line_item_line_item_type"] == t]  # noqa: E731
    # Savings Plans: each day's fee knows what that day's covered usage used
    used = defaultdict(D)
    for r in lit("SavingsPlanCoveredUsage"):
        used[r["savings_plan_savings_plan_a_r_n"], r["line_item_usage_start_date"]] += \
            D(r["savings_plan_savings_plan_effective_cost"])
    fees = lit("SavingsPlanRecurringFee")
    seen = set()
    for r in fees:
        k = (r["savings_plan_savings_plan_a_r_n"], r["line_item_usage_start_date"])
        assert k not in seen
        seen.add(k)
        total, u = D(r["savings_plan_total_commitment_to_date"]), D(r["savings_plan_used_commitment"])
        assert u == used.get(k, D(0)) and total >= u
        if r["savings_plan_payment_option"] == "No Upfront":
            assert D(r["line_item_unblended_cost"]) == total == D(r["savings_plan_recurring_commitment_for_billing_period"])
        else:
            assert D(r["line_item_unblended_cost"]) == 0
            assert D(r["savings_plan_amortized_upfront_commitment_for_billing_period"]) == total
    assert set(used) <= seen
    [upfront] = lit("SavingsPlanUpfrontFee")
    b_fee = next(r for r in fees if r["savings_plan_savings_plan_a_r_n"] == upfront["savings_plan_savings_plan_a_r_n"])
    assert D(upfront["line_item_unblended_cost"]) == D(b_fee["savings_plan_total_commitment_to_date"]) / 24 * 8760
    assert upfront["bill_bill_type"] == "Purchase"
    assert upfront["line_item_usage_start_date"] == upfront["bill_billing_period_start_date"]
    # Reserved Instances: reserved hours = used + unused; DiscountedUsage costs nothing itself
    du_hours = defaultdict(D)
    for r in lit("DiscountedUsage"):
        assert D(r["line_item_unblended_cost"]) == 0 and D(r["pricing_public_on_demand_cost"]) > 0
        assert D(r["reservation_effective_cost"]) == \
            D(r["reservation_amortized_upfront_cost_for_usage"]) + D(r["reservation_recurring_fee_for_usage"])
        du_hours[r["reservation_reservation_a_r_n"]] += D(r["line_item_usage_amount"])
    ri_fees = {r["reservation_reservation_a_r_n"]: r for r in lit("RIFee")}
    assert len(ri_fees) == len(lit("RIFee")) and set(du_hours) <= set(ri_fees)
    for arn, r in ri_fees.items():
        assert D(r["reservation_total_reserved_units"]) == du_hours.get(arn, D(0)) + D(r["reservation_unused_quantity"])
        assert D(r["line_item_unblended_cost"]) == D(r["line_item_unblended_rate"]) * D(r["line_item_usage_amount"])
    [fee] = lit("Fee")
    assert re.fullmatch(r"(USE1|EUW1|USW2)-HeavyUsage:[a-z0-9]+\.[a-z0-9]+", fee["line_item_usage_type"])
    assert fee["line_item_line_item_description"].startswith("Sign up charge for subscription: ")
    assert fee["bill_bill_type"] == "Purchase"
    assert fee["line_item_unblended_cost"] == ri_fees[fee["reservation_reservation_a_r_n"]]["reservation_upfront_value"]
    # amortized (AWS dashboards' formula) = unblended - upfront payments + their amortized share
    t = cf.line_type_totals(d)
    expected = (d.unblended_cost_sum
                - t["SavingsPlanUpfrontFee"]["line_item_unblended_cost"] - t["Fee"]["line_item_unblended_cost"]
                + t["SavingsPlanRecurringFee"]["savings_plan_amortized_upfront_commitment_for_billing_period"]
                + t["RIFee"]["reservation_amortized_upfront_fee_for_billing_period"])
    assert cf.v2_amortized_cost_sum(d) == expected


def test_full_discounts_refund_marketplace_and_tiny_rows(full):
    d, rows = full
    lit = lambda t: [r for r in rows if r["line_item_line_item_type"] == t]  # noqa: E731
    edp_parents = [r for r in lit("Usage") if "edp_discount" in (json.loads(r["discount"] or "{}"))]
    by = cf.line_type_totals(d)
    assert by["EdpDiscount"].rows == len(edp_parents) > 0
    assert by["EdpDiscount"]["line_item_unblended_cost"] == \
        sum((D(r["discount_total_discount"]) for r in edp_parents), D(0)) < 0
    for t in ("EdpDiscount", "BundledDiscount"):
        assert all(r["line_item_net_unblended_cost"] in ("0.0", "0") and D(r["line_item_unblended_cost"]) < 0
                   and r["line_item_product_code"] for r in lit(t))
    bundled = [r for r in lit("Usage") if r["discount_bundled_discount"] not in ("", "0.0")]
    assert len(bundled) == by["BundledDiscount"].rows
    assert all(D(r["line_item_net_unblended_cost"]) == 0 for r in bundled)
    [refund] = lit("Refund")
    assert D(refund["line_item_unblended_cost"]) < 0 and refund["bill_bill_type"] == "Refund"
    assert any(r["line_item_unblended_cost"] == refund["line_item_unblended_cost"].lstrip("-")
               and r["line_item_resource_id"] == refund["line_item_resource_id"] for r in lit("Usage"))
    marketplace = [r for r in rows if r["bill_billing_entity"] == "AWS Marketplace"]
    mp = marketplace[0]
    assert len({r["line_item_product_code"] for r in marketplace}) == 1
    assert re.fullmatch(r"[a-z0-9]{25}", mp["line_item_product_code"])
    assert mp["line_item_legal_entity"] not in ("", "Amazon Web Services, Inc.")
    assert json.loads(mp["product"])["product_name"] not in {s[2] for s in cf._SERVICES}
    costs = [D(r["line_item_unblended_cost"]) for r in lit("Usage")]
    assert D(0) in costs and D("0.0000000186") in costs
    assert by["Tax"].rows and by["Credit"]["line_item_unblended_cost"] < 0


def test_full_small_and_parquet_builds(tmp_path):
    tiny = cf.build_v2(tmp_path / "tiny", rows=3, files=1, charges="full", period="2024-02")
    assert set(cf.line_type_counts(tiny)) == set(cf.V2_LINE_ITEM_TYPES_FULL)
    a = cf.build_v2(tmp_path / "csv", execution_id="p", rows=120, charges="full", number_style="plain")
    b = cf.build_v2(tmp_path / "pq", execution_id="p", rows=120, charges="full", fmt="parquet")
    assert a.unblended_cost_sum == b.unblended_cost_sum
    assert cf.line_type_totals(a) == cf.line_type_totals(b)
    assert cf.v2_amortized_cost_sum(a) == cf.v2_amortized_cost_sum(b)


# ---------------------------------------------------------------------- FOCUS
def _aws_focus_schema() -> tuple[list[str], dict[str, str]]:
    text = YAML.read_text(encoding="utf-8")
    query = re.search(r"SELECT (AvailabilityZone,.*?)\s+FROM FOCUS_1_2_AWS", text, re.S).group(1)
    table = text[text.index("  FOCUSTable:"):]
    table = table[:table.index("PartitionKeys:")]
    glue = dict(re.findall(r'\{"Name": "(\w+)", "Type": "([^"]+)" \}', table))
    return [c.strip() for c in query.split(",")], glue


def test_focus_layout_manifest_and_columns(tmp_path):
    d = cf.build_focus(tmp_path, execution_id="x-1", files=2)
    part = "focus/demo-focus/data/BILLING_PERIOD=2024-01"
    assert d.data_prefix == f"{part}/20240202T060000Z-x-1"
    assert d.data_keys == tuple(f"{d.data_prefix}/demo-focus-0000{i}.csv.gz" for i in (1, 2))
    assert d.manifest_key == "focus/demo-focus/metadata/BILLING_PERIOD=2024-01/demo-focus-Manifest.json"
    assert all((tmp_path / k).is_file() for k in d.keys)
    man = _manifest(tmp_path, d.manifest_key)
    assert man["executionId"] == "x-1" and man["dataFiles"] == [f"s3://billing-bucket/{k}" for k in d.data_keys]
    assert man["billingPeriod"] == {"start": "2024-01-01T00:00:00.000Z", "end": "2024-02-01T00:00:00.000Z"}
    names, glue = _aws_focus_schema()
    assert len(names) == 60 and [c["name"] for c in man["columns"]] == names == list(d.column_names)
    want = {n: ("map" if glue[n.lower()].startswith("map") else glue[n.lower()]) for n in names}
    assert {c["name"]: c["type"] for c in man["columns"]} == want
    assert [t for _, t in cf.FOCUS_COLUMNS] == [glue[n.lower()] for n in names]
    flat = cf.build_focus(tmp_path / "flat", subfolder=False, files=1, fmt="parquet", period="2024-02",
                          rows=20, invoice_id="2024020001")
    assert flat.data_keys == ("focus/demo-focus/data/BILLING_PERIOD=2024-02/demo-focus-00001.snappy.parquet",)
    assert {r["InvoiceId"] for r in cf.read_rows(flat)} == {"2024020001"}


def _group(rows, key, values):
    out = defaultdict(set)
    for r in rows:
        out[r[key]].add(tuple(r[v] for v in values))
    return out


def test_focus_rows_follow_focus_1_2(focus):
    d, rows = focus
    assert len(rows) == d.row_count > 300
    cat = Counter(r["ChargeCategory"] for r in rows)
    assert set(cat) == set(cf.FOCUS_CHARGE_CATEGORIES)
    assert {r["ChargeClass"] for r in rows} == {"", "Correction"}
    assert {r["ChargeFrequency"] for r in rows} == {"One-Time", "Recurring", "Usage-Based"}
    assert {r["PricingCategory"] for r in rows} == {"", "Standard", "Committed", "Dynamic", "Other"}
    assert {r["CommitmentDiscountStatus"] for r in rows} == {"", "Used", "Unused"}
    assert {r["CapacityReservationStatus"] for r in rows} == {"", "Used", "Unused"}
    num_cols = [n for n, t in cf.FOCUS_COLUMNS if t == "double"]
    for r in rows:
        c, n = r["ChargeCategory"], lambda col: D(r[col])  # noqa: E731
        assert (r["ProviderName"], r["BillingCurrency"], r["InvoiceIssuerName"]) == \
            ("AWS", "USD", "Amazon Web Services, Inc.")
        assert r["ServiceSubcategory"] in cf.FOCUS_SUBCATEGORIES[r["ServiceCategory"]]
        assert (r["ResourceType"] != "") == (r["ResourceId"] != "") and (r["SkuMeter"] != "" or r["SkuId"] == "")
        assert r["InvoiceId"] == ""  # not invoiced yet (see invoice_id=)
        assert all(TS_FOCUS.match(r[k]) for k in ("BillingPeriodStart", "BillingPeriodEnd",
                                                   "ChargePeriodStart", "ChargePeriodEnd"))
        assert r["BillingPeriodStart"] == "2024-01-01T00:00:00Z" and r["ChargePeriodStart"] >= r["BillingPeriodStart"]
        assert all(_decimals_ok(r[k]) for k in num_cols)
        for k in ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost"):
            assert r[k] != ""
        for m in ("Tags", "SkuPriceDetails", "x_Discounts"):
            assert r[m] == "" or isinstance(json.loads(r[m]), dict)
        if c == "Purchase":
            assert r["ChargeFrequency"] != "Usage-Based" and n("EffectiveCost") == 0
        if c in ("Usage", "Purchase"):
            assert r["PricingCategory"] and r["PricingQuantity"] and r["ListUnitPrice"] and r["ContractedUnitPrice"]
        if c == "Tax":
            assert r["PricingCategory"] == r["PricingQuantity"] == r["ListUnitPrice"] == r["PricingUnit"] == ""
        if c in ("Tax", "Credit", "Adjustment"):
            assert n("BilledCost") == n("EffectiveCost") == n("ListCost") == n("ContractedCost")
        if r["ListUnitPrice"] and r["PricingQuantity"]:
            assert n("ListUnitPrice") * n("PricingQuantity") == n("ListCost")
            assert n("ContractedUnitPrice") * n("PricingQuantity") == n("ContractedCost")
        assert (r["CommitmentDiscountId"] == "") == (r["CommitmentDiscountCategory"] == "") == \
            (r["CommitmentDiscountType"] == "")
        if r["CommitmentDiscountId"]:
            assert (r["CommitmentDiscountStatus"] != "") == (c == "Usage")
            assert r["CommitmentDiscountQuantity"] and r["CommitmentDiscountUnit"]
            if c == "Usage":
                assert r["PricingCategory"] == "Committed" and n("BilledCost") == 0
        else:
            assert r["CommitmentDiscountStatus"] == r["CommitmentDiscountQuantity"] == ""
        if c != "Usage" or r["CommitmentDiscountStatus"] == "Unused":
            assert r["ConsumedQuantity"] == ""
        elif not r["ChargeClass"]:
            assert r["ConsumedQuantity"] and r["ConsumedUnit"]
        disc = json.loads(r["x_Discounts"] or "{}")
        if disc:
            assert n("BilledCost") == n("ContractedCost") + D(repr(disc["edp_discount"])) < n("ContractedCost")
    # one ServiceCategory and ServiceSubcategory per ServiceName
    assert all(len(v) == 1 for v in _group(rows, "ServiceName", ("ServiceCategory", "ServiceSubcategory")).values())
    # a commitment paid as it goes: its Usage (Used + Unused) EffectiveCost = its Purchase BilledCost
    per = defaultdict(lambda: defaultdict(D))
    for r in rows:
        if r["CommitmentDiscountId"]:
            k = (r["ChargeCategory"], r["ChargeFrequency"] if r["ChargeCategory"] == "Purchase" else "")
            per[r["CommitmentDiscountId"]][k] += D(r["EffectiveCost"] if k[0] == "Usage" else r["BilledCost"])
    recurring_only = [v for v in per.values() if ("Purchase", "Recurring") in v and ("Purchase", "One-Time") not in v]
    assert len(recurring_only) >= 2 and len(per) >= 4
    assert all(v[("Usage", "")] == v[("Purchase", "Recurring")] for v in recurring_only)
    # the special lines
    [mp] = [r for r in rows if r["PublisherName"] != "Amazon Web Services, Inc."]
    assert re.fullmatch(r"[a-z0-9]{25}", mp["x_ServiceCode"]) and D(mp["BilledCost"]) > 0
    billed = [D(r["BilledCost"]) for r in rows if r["ChargeCategory"] == "Usage" and r["PricingCategory"] == "Standard"]
    assert D(0) in billed and D("0.0000000186") in billed
    assert any(r["x_Discounts"] not in ("", "{}") for r in rows)
    t = cf.focus_totals(d)
    assert (t["BilledCost"], t["EffectiveCost"], t["ListCost"], t["ContractedCost"]) == \
        (d.billed_cost_sum, d.effective_cost_sum, d.list_cost_sum, d.contracted_cost_sum)
    assert t["EffectiveCost"] == t["PricingCurrencyEffectiveCost"]


def test_focus_csv_and_parquet_read_back_with_pyarrow(tmp_path):
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    c = cf.build_focus(tmp_path / "csv", execution_id="e", rows=150, files=2, number_style="plain")
    p = cf.build_focus(tmp_path / "pq", execution_id="e", rows=150, files=2, fmt="parquet")
    names = list(c.column_names)
    for k in c.data_keys:
        t = pacsv.read_csv(c.root / k)  # pyarrow opens the .gz by its extension
        assert t.column_names == names
        assert pa.types.is_floating(t.schema.field("BilledCost").type)
    for k in p.data_keys:
        t = pq.read_table(p.root / k)
        assert t.column_names == names
        f = t.schema.field
        assert f("BilledCost").type == pa.float64() and f("ChargeCategory").type == pa.string()
        assert f("Tags").type == f("SkuPriceDetails").type == pa.map_(pa.string(), pa.string())
        assert f("x_Discounts").type == pa.map_(pa.string(), pa.float64())
        assert f("ChargePeriodStart").type == pa.timestamp("ms", tz="UTC")
        assert t.column("ChargeClass").null_count > 0  # FOCUS nulls are nulls in Parquet
    assert sum(pq.read_metadata(p.root / k).num_rows for k in p.data_keys) == p.row_count == c.row_count
    assert cf.focus_totals(c) == cf.focus_totals(p)
    assert cf.focus_totals(c, by="ChargeCategory") == cf.focus_totals(p, by="ChargeCategory")
    assert (p.billed_cost_sum, p.effective_cost_sum) == (c.billed_cost_sum, c.effective_cost_sum)


# ---------------------------------------------------------------------- one prefix, three kinds
def test_mixed_bucket_under_one_prefix(tmp_path):
    m = cf.build_mixed_bucket(tmp_path, period="2024-03", prefix="exports")
    assert (m.v1.period, m.v2.period, m.focus.period) == ("2024-03",) * 3
    assert len({m.v1.report, m.v2.export, m.focus.export}) == 3
    written = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert written == set(m.keys) and all(k.startswith("exports/") for k in written)
    v1 = _manifest(tmp_path, m.v1.top_manifest_key)
    v2 = _manifest(tmp_path, m.v2.manifest_key)
    fo = _manifest(tmp_path, m.focus.manifest_key)
    assert v1["reportName"] == m.v1.report and v1["billingPeriod"]["start"] == "20240301T000000.000Z"
    assert "line_item_unblended_cost" in {c["name"] for c in v2["columns"]}
    assert "BilledCost" in {c["name"] for c in fo["columns"]} and "BilledCost" not in {c["name"] for c in v2["columns"]}
    assert m.v2.charges == "full" and set(cf.line_type_counts(m.v2)) == set(cf.V2_LINE_ITEM_TYPES_FULL)
    cf.build_mixed_bucket(tmp_path / "again", period="2024-03", prefix="exports")  # deterministic
    assert _tree_digest(tmp_path / "again" / "exports") == _tree_digest(tmp_path / "exports")
