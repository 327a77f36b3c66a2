"""FOCUS rows of Google Cloud's billing export (finops_nb.gcp.focus) through focus.build, on DuckDB tables made here.

Two databases: one whose table has only the columns of koku's real export rows (an older export: no cost_at_list,
price_*, tags, transaction_type, adjustment_info_*), holding those rows; one with every column, holding hand-made rows
of each kind the mapping treats apart. Totals are worked by hand below; one focus-validator run checks both.
"""
import ast, csv, json
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

import finops_nb.focus as F
from finops_nb.delivery import Export
from finops_nb.gcp import focus as G
from finops_nb.gcp.schema import normalise
from finops_nb.schema import q

KOKU = Path(__file__).resolve().parents[2] / "shared" / "samples" / "koku-test-data" / "gcp"
STANDARD = KOKU / "202011_30c31bca571d9b7f3b2c8459dd8bc34a_2020-11-08_2020-11-11.csv"
DETAILED = KOKU / "2022-08-01_5.csv"
JSON_FIELDS = {"credits", "labels", "system_labels", "project_labels", "tags"}
EX_STD = Export("gcp", "standard", "bq://billing.export", "", "gcp_billing_export_v1_000000_B0BBA4_940A77")
EX_DET = Export("gcp", "detailed", "bq://billing.export", "", "gcp_billing_export_resource_v1_018984_D0AAA4_940B88")
EX_HAND = Export("gcp", "detailed", "bq://billing.export", "", "gcp_billing_export_resource_v1_0A0A0A_B1B1B1_C2C2C2")


def connect():
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con


def create(con, columns):
    con.execute(f"CREATE TABLE {G.TABLE} (export_id VARCHAR, billing_period VARCHAR, delivery_id VARCHAR, "
                + ", ".join(f"{q(c)} {G.source_type(c)}" for c in columns) + ")")


def insert(con, export, period, row: dict):
    "One export row: text for money (cast exactly by DuckDB), JSON as text."
    cols = ["export_id", "billing_period", "delivery_id", *row]
    con.execute(f"INSERT INTO {G.TABLE} ({', '.join(q(c) for c in cols)}) VALUES ({', '.join('?' for _ in cols)})",
                [export.id, period, "d1", *row.values()])


def koku_rows(path):
    "koku's CSV rows as the flattened table holds them: dotted headers normalised, Python-repr lists as JSON."
    out = []
    for r in csv.DictReader(path.open(newline="")):
        row = {}
        for k, v in r.items():
            c = normalise(k)
            if c == "partition_date": continue
            if c in JSON_FIELDS: v = json.dumps(ast.literal_eval(v)) if v else None
            row[c] = v if v != "" else None
        out.append(row)
    return out


@pytest.fixture(scope="module")
def koku():
    "The real koku rows in a table with only their columns (an export older than cost_at_list, price, tags)."
    std, det = koku_rows(STANDARD), koku_rows(DETAILED)
    con = connect()
    create(con, list(dict.fromkeys([*det[0], *std[0]])))
    for r in std: insert(con, EX_STD, "2020-11", r)
    for r in det: insert(con, EX_DET, "2022-08", r)
    return con, F.build(con, EX_STD, "2020-11", "d1"), F.build(con, EX_DET, "2022-08", "d1")


def cr(*credits):
    return json.dumps([{"name": n, "amount": a, "full_name": None, "id": n, **({"type": t} if t else {})} for n, a, t in credits])


HAND = [  # (description, cost_type, cost, credits, {other columns})
    ("usage with two credits", "regular", "1.00", cr(("FreeTrial", -0.3, "PROMOTION"), ("SUD", -0.2, "SUSTAINED_USAGE_DISCOUNT")), {}),
    ("spend-based commitment", "regular", "2.00",
     cr(("Spend-based CUD", -0.4, "COMMITTED_USAGE_DISCOUNT_DOLLAR_BASE"), ("Spending based discount", -0.12345678901234568, "DISCOUNT")), {}),
    ("marketplace", "regular", "5.5", "[]", {"transaction_type": "THIRD_PARTY_RESELLER", "seller_name": "Acme Inc."}),
    ("Spot Preemptible E2 Instance Core running in Americas", "regular", "0.03", None, {}),
    ("nothing used", "regular", "0", "[]", {"usage_amount_in_pricing_units": 0.0}),
    ("tax", "tax", "0.77", "[]", {"sku_id": None, "usage_amount_in_pricing_units": None, "usage_pricing_unit": None}),
    ("adjustment within the month", "adjustment", "-0.5", cr(("FreeTrial", 0.05, "PROMOTION")),
     {"adjustment_info_type": "USAGE_CORRECTION", "adjustment_info_mode": "PARTIAL_CORRECTION", "adjustment_info_id": "adj-1"}),
    ("rounding", "rounding_error", "-0.000003", "[]", {"sku_id": None}),
    ("credit of no type", "regular", "0.40", cr(("Old credit", -0.4, None)), {}),
    ("vm", "regular", "1.2", "[]", {"cost_at_list": "1.5", "price_tier_start_amount": "100", "price_effective_price": "0.011",
                                   "resource_global_name": "//compute.googleapis.com/projects/p/zones/us-central1-a/instances/123",
                                   "resource_name": "vm-1", "location_zone": "us-central1-a",
                                   "tags": '[{"key": "env", "value": "prod", "namespace": "123456", "inherited": true}]',
                                   "system_labels": '[{"key": "compute.googleapis.com/machine_spec", "value": "e2-small"}]'}),
    ("correction of December", "adjustment", "-0.07", "[]", {"usage_start_time": "2023-12-20 00:00:00+00", "usage_end_time": "2023-12-21 00:00:00+00",
                                                            "adjustment_info_type": "USAGE_CORRECTION", "adjustment_info_id": "adj-2"}),
]


@pytest.fixture(scope="module")
def hand():
    "Hand-made rows of every kind, in a table with every column."
    con = connect()
    create(con, G.COLUMNS)
    for desc, ct, cost, credits, more in HAND:
        row = {"billing_account_id": "0A0A0A-B1B1B1-C2C2C2", "service_id": "6F81-5844-456A",
               "service_description": "Invoice" if ct in ("tax", "rounding_error") else "Compute Engine", "sku_id": "SKU-" + desc[:8],
               "sku_description": desc, "usage_start_time": "2024-01-15 10:00:00+00", "usage_end_time": "2024-01-15 11:00:00+00",
               "project_id": "my-project", "project_name": "My project", "location_region": "us-central1", "currency": "USD",
               "cost_type": ct, "invoice_month": "202401", "cost": cost, "credits": credits, "usage_amount": 3600.0, "usage_unit": "seconds",
               "usage_amount_in_pricing_units": 1.0, "usage_pricing_unit": "hour", "labels": '[{"key": "team", "value": "data"}]',
               "project_labels": '[{"key": "team", "value": "platform"}]', "transaction_type": "GOOGLE", **more}
        insert(con, EX_HAND, "2024-01", row)
    return con, F.build(con, EX_HAND, "2024-01", "d1")


def test_mapping_for_both_kinds():
    for kind in ("standard", "detailed"):
        m = F.mapping(Export("gcp", kind, "bq://p.d", "", "t"))
        assert isinstance(m, G.BillingMapping) and m.source_table == "gcp_billing_data" and m.version == "2"


def test_koku_rows_exact(koku):
    "By hand: the standard file has 25 rows, 8 of them Security Command Center with cost 5e-06 (six) or 1e-06 (two), each"
    " with its free trial credit of minus its cost; the detailed file has 9 rows costing 2e-06 and 1e-05, no credits."
    con, std, det = koku
    assert (std["rows"], std["added"], std["totals"]["BilledCost"], std["totals"]["EffectiveCost"]) == (33, 8, 0, 0)
    assert std["source_totals"] == {"BilledCost": 0, "EffectiveCost": 0}
    assert (det["rows"], det["added"], det["totals"]["BilledCost"]) == (9, 0, Decimal("0.000012"))
    by = dict(con.execute("SELECT ChargeCategory, sum(BilledCost) FROM focus WHERE x_BillingPeriod = '2020-11' GROUP BY 1").fetchall())
    assert by == {"Usage": Decimal("0.000032"), "Credit": Decimal("-0.000032")}
    # quantities are the pricing units, exact to the double's shortest text; the unit price makes the cost
    q_, unit, price, cost = con.execute("SELECT PricingQuantity, PricingUnit, ContractedUnitPrice, ContractedCost FROM focus "
                                        "WHERE ServiceName = 'BigQuery' AND ChargeDescription = 'Active Storage' ORDER BY 1 LIMIT 1").fetchall()[0]
    assert (str(q_).rstrip("0"), unit, price, cost) == ("0.0002518027051789567", "GiB-Months", 0, 0)
    qty, price, cost = con.execute("SELECT ConsumedQuantity, ContractedUnitPrice, ContractedCost FROM focus WHERE ChargeDescription "
                                   "= 'Event Threat Detection Log Ingest Bytes' AND ChargeCategory = 'Usage' AND ContractedCost = 0.000001 LIMIT 1").fetchall()[0]
    assert str(qty).rstrip("0") == "0.000005657784640789032" and abs(price * qty - cost) < Decimal("1e-20")
    # the detailed rows have a region, and a resource; the standard ones neither
    assert con.execute("SELECT DISTINCT RegionId, RegionName, ResourceId, ResourceType FROM focus WHERE x_BillingPeriod = '2022-08'").fetchall() \
        == [("us-central1", "Iowa", "//example", "example")]
    assert con.execute("SELECT count(*) FROM focus WHERE x_BillingPeriod = '2020-11' AND (RegionId IS NOT NULL OR ResourceId IS NOT NULL)").fetchall() == [(0,)]


def test_hand_rows_exact(hand):
    "By hand: costs 1.00 + 2.00 + 5.5 + 0.03 + 0 + 0.77 − 0.5 − 0.000003 + 0.40 + 1.2 − 0.07 = 10.329997; credits −0.3 − 0.2 − 0.4"
    " − 0.12345678901234568 + 0.05 − 0.4 = −1.37345678901234568; 11 rows and 5 credits that are not the commitment's."
    con, r = hand
    assert (r["rows"], r["added"], r["dropped"]) == (16, 5, 0)
    assert r["totals"]["BilledCost"] == r["totals"]["EffectiveCost"] == r["source_totals"]["BilledCost"] == Decimal("8.95654021098765432")
    # list and contracted costs are before the commitment's credit (−0.4): the costs, plus the 5 credit rows' −0.97345678901234568
    assert r["totals"]["ContractedCost"] == Decimal("10.329997") - Decimal("0.97345678901234568") == Decimal("9.35654021098765432")
    assert r["totals"]["ListCost"] == Decimal("9.65654021098765432")  # the VM's list cost 1.5 instead of its 1.2
    credits = con.execute("SELECT x_SourceLineType, BilledCost, ChargeClass FROM focus WHERE ChargeCategory = 'Credit' ORDER BY BilledCost").fetchall()
    assert credits == [("credit", Decimal("-0.4"), None), ("PROMOTION", Decimal("-0.3"), None), ("SUSTAINED_USAGE_DISCOUNT", Decimal("-0.2"), None),
                       ("DISCOUNT", Decimal("-0.12345678901234568"), None), ("PROMOTION", Decimal("0.05"), None)]
    row = lambda desc, cols: con.execute(f"SELECT {cols} FROM focus WHERE ChargeDescription = ? AND ChargeCategory <> 'Credit'", [desc]).fetchall()
    assert row("spend-based commitment", "BilledCost, EffectiveCost, ContractedCost, PricingCategory") == [(Decimal("1.6"), Decimal("1.6"), 2, "Committed")]
    assert row("marketplace", "PublisherName, ServiceProviderName, HostProviderName") == [("Acme Inc.", "Acme Inc.", "Google Cloud")]
    assert row("Spot Preemptible E2 Instance Core running in Americas", "PricingCategory, x_Discounts") == [("Dynamic", None)]
    assert row("nothing used", "PricingQuantity, ListUnitPrice, ContractedUnitPrice") == [(0, 0, 0)]
    assert row("tax", "ChargeCategory, ChargeFrequency, SkuId, SkuPriceId, PricingQuantity, PricingCategory, ContractedUnitPrice") \
        == [("Tax", "Recurring", None, None, None, None, None)]
    assert row("adjustment within the month", "ChargeCategory, ChargeClass, ConsumedQuantity") == [("Adjustment", None, None)]
    assert con.execute("SELECT ChargeCategory, ChargeClass, ChargePeriodStart::VARCHAR FROM focus WHERE x_SourceLineType = 'adjustment' "
                       "AND BilledCost = -0.07").fetchall() == [("Adjustment", "Correction", "2023-12-20 00:00:00+00")]
    vm = con.execute("SELECT SkuPriceId, ResourceType, ResourceName, AvailabilityZone, ListUnitPrice, ContractedUnitPrice, Tags FROM focus "
                     "WHERE ChargeDescription = 'vm'").fetchall()[0]
    assert vm[:6] == ("SKU-vm/100", "compute.instances", "vm-1", "us-central1-a", Decimal("1.5"), Decimal("1.2"))
    assert json.loads(vm[6]) == {"compute.googleapis.com/machine_spec": "e2-small", "project-label/team": "platform", "123456/env": "prod", "team": "data"}
    assert con.execute("SELECT DISTINCT BillingPeriodStart::VARCHAR, BillingPeriodEnd::VARCHAR FROM focus").fetchall() \
        == [("2024-01-01 08:00:00+00", "2024-02-01 08:00:00+00")]  # midnight Pacific time


def test_validator(koku, hand, tmp_path):
    "The FinOps Foundation's focus-validator on every FOCUS row above: nothing fails but the rules it cannot be right about."
    F.validator_path()  # setup.sh builds it; a missing validator fails here, never skips
    (kcon, *_), (hcon, _) = koku, hand
    json_cols = [c for c, t in F.TYPES.items() if t == "JSON"]
    text = "* REPLACE (" + ", ".join(f"CAST({q(c)} AS VARCHAR) AS {q(c)}" for c in json_cols) + ")"
    part = tmp_path / "koku.parquet"
    kcon.execute(f"COPY (SELECT {text} FROM focus) TO '{part}' (FORMAT parquet)")
    path = tmp_path / "gcp_focus.parquet"
    hcon.execute(f"COPY (SELECT {text} FROM focus UNION ALL BY NAME SELECT * FROM read_parquet('{part}')) TO '{path}' (FORMAT parquet)")
    v = F.validate(path)
    assert v.checks > 0 and v.ok, v.problems
    # a bill without capacity reservations, commitment ids or invoice ids fails these three (and the composites made of them) on every row
    assert set(v.known) & set(F.KNOWN_WRONG) == {"CapacityReservationStatus-C-004-C", "CommitmentDiscountStatus-C-004-C", "InvoiceId-C-005-C"}, v.known


def test_a_credit_too_small_to_keep_exactly_stops_the_build():
    "A credit amount DECIMAL(38,28) cannot hold is refused naming it, as a cost is, never rounded into the totals."
    con = connect()
    create(con, ["cost", "credits", "cost_type", "invoice_month", "service_description", "usage_start_time", "usage_end_time"])
    row = {"cost": "0.5", "credits": cr(("FreeTrial", -3.0455713555401775e-13, "PROMOTION")), "cost_type": "regular", "invoice_month": "202401",
           "service_description": "Compute Engine", "usage_start_time": "2024-01-02 00:00:00+00", "usage_end_time": "2024-01-02 01:00:00+00"}
    insert(con, EX_HAND, "2024-01", row)
    with pytest.raises(Exception, match=r"credits: amount -3.0455713555401775e-13 cannot be held exactly"):
        F.build(con, EX_HAND, "2024-01", "d1")
    row["credits"] = cr(("FreeTrial", -0.25, "PROMOTION"))  # one that fits builds, to the last digit
    con.execute(f"DELETE FROM {G.TABLE}")
    insert(con, EX_HAND, "2024-01", row)
    assert F.build(con, EX_HAND, "2024-01", "d1")["totals"]["BilledCost"] == Decimal("0.25")
