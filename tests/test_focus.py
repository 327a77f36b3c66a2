"""The FOCUS 1.2 table end to end: real files on a file:// mirror, real DuckDB, the FinOps Foundation's validator, exact Decimal sums.

Every expected number is read back from the fixture's own files (cur_fixtures' read-back helpers, pyarrow, DuckDB over the
bucket's files) or from the real samples; the FOCUS 1.2 column list comes from the validator's own model of the spec."""
import json, re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

import cur_fixtures as cf
import finops_nb.aws.focus as aws_focus
from finops_nb import focus as F
from finops_nb.aws.manifests import aws_export
from finops_nb.config import load_config
from finops_nb.localdb import FocusTable, load_billing_local
from finops_nb.parquet import parquet_info, parquet_path
from finops_nb.pipeline import extract_billing, reconcile, run_pipeline
from helpers import cli, config, query, run, tree

COSTS = ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost")
D0 = Decimal(0)


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------
def shared(tmp, bucket, prefix, name, cur, **kw):
    "A config of one export; every config made with the same tmp shares staging, DuckDB and Parquet folders."
    over = {"aws.bucket": f"file://{tmp / bucket}", "aws.prefix": prefix, "aws.export_name": name, "aws.cur_version": cur,
            "staging_dir": str(tmp / "staging"), "parquet_dir": str(tmp / "parquet"),
            "database.duckdb.database_path": str(tmp / "finops.duckdb"), **kw}
    return load_config(None, over, environ={})


def focus_file(cfg, period):
    return parquet_path(cfg["parquet_dir"], aws_export(cfg), period, F.FOCUS)


def ts(text):
    "A CUR CSV timestamp (`2024-01-01T00:00:00.000Z` or `…:00Z`) as an aware datetime."
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def dec(row, col):
    return cf.to_decimal(row.get(col)) or D0


def cur2_effective(r):
    "The EffectiveCost of one CUR 2.0 row (amortized: covered usage at its effective cost, purchases 0)."
    lt = r["line_item_line_item_type"]
    if lt == "SavingsPlanCoveredUsage": return dec(r, "savings_plan_savings_plan_effective_cost")
    if lt == "DiscountedUsage": return dec(r, "reservation_effective_cost")
    if lt in ("SavingsPlanNegation", "SavingsPlanUpfrontFee", "SavingsPlanRecurringFee", "RIFee"): return D0
    if lt == "Fee" and r.get("reservation_reservation_a_r_n"): return D0
    return dec(r, "line_item_unblended_cost")


def cur2_unused(rows):
    "Counter of (line type, commitment id, usage start, unused amount) of every fee line with a nonzero unused part."
    out = Counter()
    for r in rows:
        lt = r["line_item_line_item_type"]
        if lt == "RIFee":
            amt = dec(r, "reservation_unused_amortized_upfront_fee_for_billing_period") + dec(r, "reservation_unused_recurring_fee")
            cid = r["reservation_reservation_a_r_n"]
        elif lt == "SavingsPlanRecurringFee":
            amt = dec(r, "savings_plan_total_commitment_to_date") - dec(r, "savings_plan_used_commitment")
            cid = r["savings_plan_savings_plan_a_r_n"]
        else:
            continue
        if amt != 0: out[(lt, cid, ts(r["line_item_usage_start_date"]), amt)] += 1
    return out


def v1_csv_rows(d):
    "Every data row of a legacy CUR CSV delivery, as {header: text}."
    out = []
    for key in d.data_keys:
        header, rows = cf.read_csv_gz(d.root / key)
        out += [dict(zip(header, r)) for r in rows]
    return out


def v1_csv_added(rows):
    "How many unused-commitment rows the fee lines of legacy CUR CSV rows give."
    g = lambda r, c: cf.to_decimal(r.get(c)) or D0  # noqa: E731
    n = 0
    for r in rows:
        lt = r.get("lineItem/LineItemType")
        if lt == "RIFee": n += (g(r, "reservation/UnusedAmortizedUpfrontFeeForBillingPeriod") + g(r, "reservation/UnusedRecurringFee")) != 0
        if lt == "SavingsPlanRecurringFee": n += (g(r, "savingsPlan/TotalCommitmentToDate") - g(r, "savingsPlan/UsedCommitment")) != 0
    return n


def focus_by_export(cfg):
    "{export id: (rows, {cost column: sum}, [delivery ids])} of the focus table."
    return {e: (n, dict(zip(COSTS, s)), ids) for e, n, *s, ids in query(
        cfg, f"SELECT x_ExportId, count(*), {', '.join(f'sum({c})' for c in COSTS)}, list(DISTINCT x_DeliveryId ORDER BY x_DeliveryId) "
             "FROM focus GROUP BY 1")}


def model_rules():
    "The validator's FOCUS 1.2 model rules (from the venv scripts/setup-focus-validator.sh built)."
    venv = F.validator_path().parent.parent
    path = next(venv.glob(f"lib/python3*/site-packages/focus_validator/rules/model-{F.VALIDATOR_VERSION}.json"))
    return json.loads(path.read_text())["ModelRules"]


def spec_columns():
    "FOCUS 1.2's columns, as the validator's model of the spec names them."
    return {r["Reference"] for r in model_rules().values() if r.get("EntityType") == "Column"}


def sub_rules(rule):
    "The model rules a composite rule checks."
    out, todo = set(), [rule.get("ValidationCriteria", {}).get("Requirement", {})]
    while todo:
        r = todo.pop()
        if isinstance(r, dict):
            if r.get("CheckFunction") == "CheckModelRule": out.add(r.get("ModelRuleId"))
            todo += r.get("Items") or []
    return out


# ------------------------------------------------------------------------------------------------
# fixtures: one pipeline run per kind of export, shared by the mapping and validator tests
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cur2(tmp_path_factory):
    "CUR 2.0 with every special charge, through every step."
    tmp = tmp_path_factory.mktemp("cur2")
    d = cf.build_v2(tmp / "bucket", charges="full", execution_id="cur2-jan-1")
    cfg = config(tmp, export="demo-cur2", prefix="cur2", cur="v2")
    run_pipeline(cfg, progress=False)
    return d, cfg


TAGGED = lambda i, row: f"row-{i}" if i % 4 == 0 else ""  # noqa: E731  (the sample's line item ids repeat: the row's number names it)
TEAMS = lambda i, row: ("platform", "", " data ", "web", "")[i % 5]  # noqa: E731


@pytest.fixture(scope="module")
def v1csv(tmp_path_factory):
    "The real legacy CUR CSV sample, with two tag columns added (one names the row's line item id), through every step."
    tmp = tmp_path_factory.mktemp("v1csv")
    d = cf.build_v1_csv(tmp / "bucket", assembly_id="nov-1", files=2,
                        extra_columns={"resourceTags/user:LineItem": TAGGED, "resourceTags/user:Team": TEAMS})
    cfg = config(tmp)
    run_pipeline(cfg, progress=False)
    return d, cfg


@pytest.fixture(scope="module")
def v1parquet(tmp_path_factory):
    "The workshop's legacy CUR Parquet, its smallest month, loaded into DuckDB."
    tmp = tmp_path_factory.mktemp("v1pq")
    d = cf.build_v1_parquet(tmp / "bucket", months=("Dec2018",))
    cfg = config(tmp, export="workshop")
    run(cfg)
    return d, cfg


@pytest.fixture(scope="module")
def focus_exports(tmp_path_factory):
    "AWS's own FOCUS export, as csv.gz and as Parquet (two exports, one database), through every step."
    tmp = tmp_path_factory.mktemp("focus")
    out = {}
    for fmt, name, seed in (("csv.gz", "demo-focus", 0), ("parquet", "demo-focus-pq", 1)):
        d = cf.build_focus(tmp / "bucket", export=name, fmt=fmt, seed=seed, execution_id=f"focus-{seed}")
        cfg = shared(tmp, "bucket", "focus", name, "focus")
        run_pipeline(cfg, progress=False)
        out[fmt] = (d, cfg)
    return out


# ------------------------------------------------------------------------------------------------
# 1. CUR 2.0, every charge type
# ------------------------------------------------------------------------------------------------
SP, RI = "sp", "ri"
EXPECTED = {  # line item type: (ChargeCategory, ChargeFrequency, CommitmentDiscountStatus, commitment kind)
    "Usage": ("Usage", "Usage-Based", None, None),
    "Tax": ("Tax", "Recurring", None, None),
    "Credit": ("Credit", "One-Time", None, None),
    "BundledDiscount": ("Credit", "One-Time", None, None),
    "EdpDiscount": ("Credit", "One-Time", None, None),
    "Refund": ("Adjustment", "One-Time", None, None),
    "SavingsPlanCoveredUsage": ("Usage", "Usage-Based", "Used", SP),
    "SavingsPlanNegation": ("Usage", "Usage-Based", "Used", SP),
    "SavingsPlanRecurringFee": ("Purchase", "Recurring", None, SP),
    "SavingsPlanUpfrontFee": ("Purchase", "One-Time", None, SP),
    "DiscountedUsage": ("Usage", "Usage-Based", "Used", RI),
    "RIFee": ("Purchase", "Recurring", None, RI),
    "Fee": ("Purchase", "One-Time", None, RI),
}
COMMITMENT = {SP: ("Spend", "Savings Plan", "savings_plan_savings_plan_a_r_n"),
              RI: ("Usage", "Reserved Instance", "reservation_reservation_a_r_n"), None: (None, None, None)}
FEES = ("RIFee", "SavingsPlanRecurringFee")


def test_cur2_every_charge_type_maps_to_focus(cur2):
    d, cfg = cur2
    eid = aws_export(cfg).id
    rows = cf.read_rows(d)
    counts, sums = cf.line_type_counts(d), cf.line_type_totals(d)
    assert set(counts) == set(EXPECTED), "the fixture's line item types changed: extend EXPECTED"
    got = query(cfg, """SELECT x_SourceLineType, ChargeCategory, ChargeFrequency, CommitmentDiscountStatus, CommitmentDiscountCategory,
                               CommitmentDiscountType, count(*), sum(BilledCost), sum(EffectiveCost), count(*) FILTER (WHERE EffectiveCost <> 0),
                               list(DISTINCT CommitmentDiscountId)
                        FROM focus WHERE x_ExportId = ? AND NOT (x_SourceLineType IN ('RIFee', 'SavingsPlanRecurringFee') AND ChargeCategory = 'Usage')
                        GROUP BY ALL""", [eid])
    fields = "category frequency status commitment_category commitment_type rows billed effective nonzero_effective ids".split()
    by_type = {}
    for lt, *rest in got:
        assert lt not in by_type, f"{lt}: rows of one line item type in two FOCUS categories: {got}"
        by_type[lt] = dict(zip(fields, rest))
    assert set(by_type) == set(counts)
    for lt, (cat, freq, status, kind) in EXPECTED.items():
        g, src = by_type[lt], [r for r in rows if r["line_item_line_item_type"] == lt]
        ccat, ctype, id_col = COMMITMENT[kind]
        assert (g["category"], g["frequency"], g["commitment_category"], g["commitment_type"]) == (cat, freq, ccat, ctype), lt
        assert g["status"] == status, lt
        assert g["rows"] == counts[lt], lt
        assert g["billed"] == sums[lt]["line_item_unblended_cost"], lt
        assert g["effective"] == sum((cur2_effective(r) for r in src), D0), lt
        assert sorted(g["ids"], key=str) == (sorted({r[id_col] for r in src}) if id_col else [None]), lt
    # the line types whose effective cost is not their unblended cost, said from the files' own columns
    covered = sums["SavingsPlanCoveredUsage"]
    assert by_type["SavingsPlanCoveredUsage"]["effective"] == covered["savings_plan_savings_plan_effective_cost"] != covered["line_item_unblended_cost"]
    assert by_type["DiscountedUsage"]["effective"] == sums["DiscountedUsage"]["reservation_effective_cost"]
    for lt in ("RIFee", "SavingsPlanRecurringFee", "SavingsPlanUpfrontFee", "Fee", "SavingsPlanNegation"):  # purchases, negations: 0 on every row
        assert by_type[lt]["nonzero_effective"] == 0 and by_type[lt]["billed"] != 0, lt

    # one Unused usage row per fee line with a nonzero unused part, its EffectiveCost that amount
    want = cur2_unused(rows)
    assert {k[0] for k in want} == set(FEES) and all(k[3] > 0 for k in want)
    unused = query(cfg, """SELECT x_SourceLineType, ChargeCategory, ChargeFrequency, CommitmentDiscountStatus, CommitmentDiscountId,
                                  ChargePeriodStart, BilledCost, EffectiveCost, ListCost, ContractedCost
                           FROM focus WHERE x_ExportId = ? AND x_SourceLineType IN ('RIFee', 'SavingsPlanRecurringFee') AND ChargeCategory = 'Usage'""",
                   [eid])
    assert {(u[1], u[2], u[3]) for u in unused} == {("Usage", "Usage-Based", "Unused")}
    assert all(u[6] == u[8] == u[9] == 0 for u in unused)
    assert Counter((lt, cid, start, eff) for lt, _, _, _, cid, start, _, eff, _, _ in unused) == want

    # marketplace: the seller provides the service, AWS hosts it
    market = [r for r in rows if r["bill_billing_entity"] == "AWS Marketplace"]
    assert market and all(r["line_item_legal_entity"] != "Amazon Web Services, Inc." for r in market)
    providers = Counter()
    providers.update((r["line_item_legal_entity"], "AWS") for r in market)
    providers[("AWS", "AWS")] = len(rows) - len(market) + sum(want.values())
    got_prov = {(s, h): n for s, h, n in query(cfg, "SELECT ServiceProviderName, HostProviderName, count(*) FROM focus "
                                                    "WHERE x_ExportId = ? GROUP BY ALL", [eid])}
    assert got_prov == dict(providers)
    assert query(cfg, "SELECT x_ServiceCode, sum(BilledCost) FROM focus WHERE x_ExportId = ? AND ServiceProviderName <> 'AWS' GROUP BY 1",
                 [eid]) == [(market[0]["line_item_product_code"], sum((dec(r, "line_item_unblended_cost") for r in market), D0))]

    # totals and rows, against the files
    n, billed, effective = query(cfg, "SELECT count(*), sum(BilledCost), sum(EffectiveCost) FROM focus WHERE x_ExportId = ?", [eid])[0]
    assert billed == d.unblended_cost_sum == cf.totals(d)["line_item_unblended_cost"]
    assert effective == cf.v2_amortized_cost_sum(d) != billed
    assert n == d.row_count + sum(want.values())
    assert query(cfg, "SELECT rows, dropped, added FROM finops_focus_log WHERE export_id = ?", [eid]) == [(n, 0, sum(want.values()))]


def test_savings_plan_negation_rows_have_a_commitment_status(cur2):
    "FOCUS 1.2: CommitmentDiscountStatus MUST NOT be null when CommitmentDiscountId is not null and ChargeCategory is Usage."
    d, cfg = cur2
    assert query(cfg, "SELECT x_SourceLineType, count(*) FROM focus WHERE CommitmentDiscountId IS NOT NULL AND ChargeCategory = 'Usage' "
                      "AND CommitmentDiscountStatus IS NULL GROUP BY 1") == []


# ------------------------------------------------------------------------------------------------
# 2. Legacy CUR v1: the real CSV sample and the workshop's Parquet month
# ------------------------------------------------------------------------------------------------
def check_columns_and_periods(cfg, eid):
    "Every column a FOCUS 1.2 one (or an x_ one, or 1.3's provider names); charges of usage inside their billing period."
    spec = spec_columns()
    have = [c for c, in query(cfg, "SELECT column_name FROM information_schema.columns WHERE table_name = 'focus'")]
    assert len(spec) >= 50 and spec <= set(have)
    assert [c for c in have if c not in spec and not c.startswith("x_") and c not in ("ServiceProviderName", "HostProviderName")] == []
    n, outside = query(cfg, "SELECT count(*), count(*) FILTER (WHERE NOT (ChargePeriodStart >= BillingPeriodStart AND ChargePeriodStart < "
                            "BillingPeriodEnd)) FROM focus WHERE x_ExportId = ? AND ChargeCategory = 'Usage'", [eid])[0]
    assert n > 0 and outside == 0


def test_v1_csv_sample_to_focus(v1csv):
    d, cfg = v1csv
    eid = aws_export(cfg).id
    src = v1_csv_rows(d)
    assert len(src) == d.row_count
    n, billed = query(cfg, "SELECT count(*), sum(BilledCost) FROM focus WHERE x_ExportId = ?", [eid])[0]
    assert n == d.row_count + v1_csv_added(src)
    assert billed == d.unblended_cost_sum == sum((cf.to_decimal(r["lineItem/UnblendedCost"]) for r in src), D0)
    assert query(cfg, "SELECT DISTINCT x_ExportId, x_BillingPeriod, x_DeliveryId FROM focus") == [(eid, "2023-11", "nov-1")]
    # Tags: the resource_tags_* columns as one JSON object, empty values left out
    tagged = {r["resourceTags/user:LineItem"]: r for r in src if r["resourceTags/user:LineItem"]}
    got = query(cfg, "SELECT Tags, BilledCost, ChargePeriodStart FROM focus WHERE x_ExportId = ? AND Tags->>'user_line_item' IS NOT NULL", [eid])
    assert len(got) == len(tagged) > 100
    for tags, billed, start in got:
        tags = json.loads(tags)
        r = tagged[tags["user_line_item"]]
        want = {"user_line_item": r["resourceTags/user:LineItem"]}
        if r["resourceTags/user:Team"].strip(): want["user_team"] = r["resourceTags/user:Team"].strip()
        assert tags == want
        assert billed == cf.to_decimal(r["lineItem/UnblendedCost"])
        assert start == ts(r["lineItem/UsageStartDate"])
    untagged = sum(1 for r in src if not r["resourceTags/user:LineItem"] and not r["resourceTags/user:Team"].strip())
    assert query(cfg, "SELECT count(*) FROM focus WHERE x_ExportId = ? AND Tags IS NULL", [eid]) == [(untagged,)]
    check_columns_and_periods(cfg, eid)
    # the FOCUS Parquet file has the same columns as the table
    cols = [c for c, *_ in duckdb.connect().execute(f"DESCRIBE SELECT * FROM read_parquet('{focus_file(cfg, '2023-11')}')").fetchall()]
    assert cols == [c for c, in query(cfg, "SELECT column_name FROM information_schema.columns WHERE table_name = 'focus' "
                                           "ORDER BY ordinal_position")]


def test_v1_parquet_month_to_focus(v1parquet):
    import pyarrow.parquet as pq
    d, cfg = v1parquet
    eid, m = aws_export(cfg).id, d.months[0]
    f = d.root / m.data_keys[0]
    lt_col, tag_cols = "line_item_line_item_type", [c for c in m.columns if c.startswith("resource_tags_")]
    need = [lt_col, "line_item_unblended_cost", "reservation_effective_cost", "reservation_unused_amortized_upfront_fee_for_billing_period",
            "reservation_unused_recurring_fee", "reservation_reservation_a_r_n"]
    src = pq.read_table(f, columns=need).to_pylist()
    g = lambda r, c: cf.to_decimal(r.get(c)) or D0  # noqa: E731
    added = sum(1 for r in src if r[lt_col] == "RIFee"
                and g(r, "reservation_unused_amortized_upfront_fee_for_billing_period") + g(r, "reservation_unused_recurring_fee") != 0)
    effective = sum((g(r, "reservation_effective_cost") if r[lt_col] == "DiscountedUsage" else
                     g(r, "reservation_unused_amortized_upfront_fee_for_billing_period") + g(r, "reservation_unused_recurring_fee")
                     if r[lt_col] == "RIFee" else D0 if r[lt_col] == "Fee" and r["reservation_reservation_a_r_n"] else
                     g(r, "line_item_unblended_cost") for r in src), D0)
    assert added > 0 and len(src) == m.row_count
    n, billed, eff = query(cfg, "SELECT count(*), sum(BilledCost), sum(EffectiveCost) FROM focus WHERE x_ExportId = ?", [eid])[0]
    assert n == m.row_count + added
    assert billed == m.unblended_cost_sum
    assert eff == effective != billed
    assert query(cfg, "SELECT DISTINCT x_ExportId, x_BillingPeriod, x_DeliveryId FROM focus") == [(eid, m.period, m.assembly_id)]
    # one row's Tags against its source row's tag columns (a row the usage keys name alone)
    key = ("line_item_resource_id", "line_item_usage_start_date", "line_item_usage_type", "line_item_operation")
    nonempty = " + ".join(f"(nullif(trim({c}), '') IS NOT NULL)::INT" for c in tag_cols)
    con = duckdb.connect()
    row = con.execute(f"SELECT {', '.join(key)}, {', '.join(tag_cols)} FROM read_parquet('{f}') "
                      f"QUALIFY count(*) OVER (PARTITION BY {', '.join(key)}) = 1 AND {nonempty} >= 3 ORDER BY identity_line_item_id LIMIT 1"
                      ).fetchall()[0]
    want = {c[len("resource_tags_"):]: v for c, v in zip(tag_cols, row[len(key):]) if v is not None and v.strip()}
    assert len(want) >= 3
    got = query(cfg, "SELECT Tags FROM focus WHERE x_ExportId = ? AND ResourceId = ? AND strftime(ChargePeriodStart, '%Y-%m-%d %H:%M:%S') = ? "
                     "AND x_UsageType = ? AND x_Operation = ?", [eid, row[0], row[1].strftime("%Y-%m-%d %H:%M:%S"), row[2], row[3]])
    assert [json.loads(t) for t, in got] == [want]
    # every tag column's filled rows are that many FOCUS rows carrying the key
    counts = con.execute(f"SELECT {', '.join(f'count(nullif(trim({c}), {chr(39) * 2}))' for c in tag_cols)} FROM read_parquet('{f}')").fetchall()[0]
    got = query(cfg, f"SELECT {', '.join(f'count(Tags->>{chr(39)}{c[14:]}{chr(39)})' for c in tag_cols)} FROM focus WHERE x_ExportId = ?", [eid])[0]
    assert got == counts and sum(counts) > 0
    check_columns_and_periods(cfg, eid)


# ------------------------------------------------------------------------------------------------
# 3. The FinOps Foundation's validator
# ------------------------------------------------------------------------------------------------
def test_validator_passes_every_source_and_catches_a_bad_value(cur2, v1csv, focus_exports, tmp_path):
    files = {"v1 csv": focus_file(v1csv[1], "2023-11"), "cur2 full": focus_file(cur2[1], cur2[0].period),
             "focus csv.gz": focus_file(focus_exports["csv.gz"][1], "2024-01"),
             "focus parquet": focus_file(focus_exports["parquet"][1], "2024-01")}
    assert all(p.is_file() for p in files.values()), files
    bad = tmp_path / "bogus_focus.parquet"
    duckdb.connect().execute(f"COPY (SELECT * REPLACE ('Bogus' AS ChargeCategory) FROM read_parquet('{files['cur2 full']}')) "
                             f"TO '{bad}' (FORMAT parquet)")
    with ThreadPoolExecutor(2) as pool:  # two cores: two validators at a time
        reports = dict(zip(list(files) + ["bogus"], pool.map(F.validate, list(files.values()) + [bad])))
    model = model_rules()
    for name, v in reports.items():
        if name == "bogus": continue
        assert (v.checks, v.failures, v.errors, v.problems) == (578, 0, 0, []), (name, v)
        assert v.ok and v.passed > 0
        for rule in v.known:  # each a known-wrong rule, or a composite failing through one
            assert rule in F.KNOWN_WRONG or sub_rules(model[rule]) & set(v.known), (name, rule)
    v = reports["bogus"]
    allowed = [k for k, r in model.items() if r["Reference"] == "ChargeCategory" and "allowed values" in r["ValidationCriteria"]["MustSatisfy"]]
    assert len(allowed) == 1
    assert v.failures > 0 and not v.ok
    assert allowed[0] in [r for r, _ in v.problems], v.problems


# ------------------------------------------------------------------------------------------------
# 4. AWS's own FOCUS export as input
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["csv.gz", "parquet"])
def test_aws_focus_export_loads_exact(focus_exports, fmt):
    d, cfg = focus_exports[fmt]
    eid = aws_export(cfg).id
    want = cf.focus_totals(d)
    assert want.rows == d.row_count and want["BilledCost"] == d.billed_cost_sum
    sums = ", ".join(f"sum({c})" for c in COSTS)
    for table, key in (("aws_focus_data", "export_id"), ("focus", "x_ExportId")):
        n, *got = query(cfg, f"SELECT count(*), {sums} FROM {table} WHERE {key} = ?", [eid])[0]
        assert n == d.row_count and dict(zip(COSTS, got)) == {c: want[c] for c in COSTS}, table
        types = dict(query(cfg, "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ? AND column_name IN "
                                "('BilledCost', 'EffectiveCost', 'ListCost', 'ContractedCost')", [table]))
        assert types == {c: F.TYPES[c] for c in COSTS}, table  # FOCUS's exact decimal in both tables, wide enough for AWS's 18 places
        assert re.fullmatch(r"DECIMAL\(38,(\d+)\)", F.TYPES["BilledCost"]) and int(F.TYPES["BilledCost"][11:-1]) >= 18
    by_cat = cf.focus_totals(d, by="ChargeCategory")
    got = {c: (n, b) for c, n, b in query(cfg, "SELECT ChargeCategory, count(*), sum(BilledCost) FROM focus WHERE x_ExportId = ? GROUP BY 1", [eid])}
    assert got == {c: (t.rows, t["BilledCost"]) for c, t in by_cat.items()}
    assert query(cfg, "SELECT DISTINCT x_DeliveryId FROM focus WHERE x_ExportId = ?", [eid]) == [(d.execution_id,)]
    assert reconcile(cfg).ok


# ------------------------------------------------------------------------------------------------
# 5. Three kinds of export under one prefix, one database
# ------------------------------------------------------------------------------------------------
def test_mixed_bucket_each_export_its_own_focus_rows(tmp_path):
    mb = cf.build_mixed_bucket(tmp_path / "bucket")
    cfgs = {"v1": shared(tmp_path, "bucket", "exports", "legacy-cur", "v1"),
            "v2": shared(tmp_path, "bucket", "exports", "cur2-full", "v2"),
            "focus": shared(tmp_path, "bucket", "exports", "focus-1-2", "focus")}
    ids = {k: aws_export(c).id for k, c in cfgs.items()}
    assert len(set(ids.values())) == 3
    loaded = []
    for k, c in cfgs.items():
        run_pipeline(c, progress=False)
        loaded.append(ids[k])
        assert sorted(e for e, in query(c, "SELECT DISTINCT export_id FROM finops_load_log")) == sorted(loaded), k
        assert sorted(focus_by_export(c)) == sorted(loaded), k
    v2_rows = cf.read_rows(mb.v2)
    ft = cf.focus_totals(mb.focus)
    want = {ids["v1"]: (mb.v1.row_count + v1_csv_added(v1_csv_rows(mb.v1)), mb.v1.unblended_cost_sum, [mb.v1.assembly_id]),
            ids["v2"]: (mb.v2.row_count + sum(cur2_unused(v2_rows).values()), mb.v2.unblended_cost_sum, [mb.v2.execution_id]),
            ids["focus"]: (mb.focus.row_count, ft["BilledCost"], [mb.focus.execution_id])}
    got = focus_by_export(cfgs["v1"])
    assert {e: (n, t["BilledCost"], i) for e, (n, t, i) in got.items()} == want
    assert got[ids["v2"]][1]["EffectiveCost"] == cf.v2_amortized_cost_sum(mb.v2)
    assert got[ids["focus"]][1] == {c: ft[c] for c in COSTS}
    assert all(reconcile(c).ok for c in cfgs.values())

    # a config naming an export by the wrong kind fails, saying which setting to use, and changes nothing
    before = (tree(tmp_path), focus_by_export(cfgs["v1"]), query(cfgs["v1"], "SELECT * FROM finops_load_log ORDER BY ALL"),
              query(cfgs["v1"], "SELECT export_id, billing_period, delivery_id, rows FROM finops_focus_log ORDER BY ALL"))
    flags = ["--bucket", f"file://{tmp_path / 'bucket'}", "--prefix", "exports", "--staging-dir", tmp_path / "staging",
             "--output-dir", tmp_path / "parquet", "--database-path", tmp_path / "finops.duckdb"]
    for name, cur, right in (("focus-1-2", "v2", "focus"), ("cur2-full", "focus", "v2")):
        r = cli("aws", "run-pipeline", *flags, "--export-name", name, "--cur-version", cur)
        assert r.returncode == 3, (name, r.stdout, r.stderr)
        assert f"export {name!r} is" in r.stderr and f'set [aws] cur_version = "{right}"' in r.stderr, r.stderr
    assert (tree(tmp_path), focus_by_export(cfgs["v1"]), query(cfgs["v1"], "SELECT * FROM finops_load_log ORDER BY ALL"),
            query(cfgs["v1"], "SELECT export_id, billing_period, delivery_id, rows FROM finops_focus_log ORDER BY ALL")) == before


# ------------------------------------------------------------------------------------------------
# 6. A restated month
# ------------------------------------------------------------------------------------------------
def test_restated_cur2_month_replaces_its_focus_rows_whole(tmp_path):
    first = cf.build_v2(tmp_path / "bucket", charges="full", execution_id="jan-1", rows=300)
    other = cf.build_focus(tmp_path / "bucket", export="demo-focus", execution_id="f-1", rows=100)
    cur2 = shared(tmp_path, "bucket", "cur2", "demo-cur2", "v2")
    foc = shared(tmp_path, "bucket", "focus", "demo-focus", "focus")
    run_pipeline(cur2, progress=False); run_pipeline(foc, progress=False)
    eid, oid = aws_export(cur2).id, aws_export(foc).id
    others = lambda: query(foc, "SELECT * FROM focus WHERE x_ExportId = ? ORDER BY ALL", [oid])  # noqa: E731
    other_before, other_file = others(), tree(Path(foc["parquet_dir"]) / oid)
    assert len(other_before) == other.row_count
    assert focus_by_export(cur2)[eid][2] == ["jan-1"]

    second = cf.build_v2(tmp_path / "bucket", charges="full", execution_id="jan-2", rows=350, seed=7)
    assert second.unblended_cost_sum != first.unblended_cost_sum
    res = run_pipeline(cur2, progress=False)
    acts = {(r.step, r.action) for r in res.results if r.action != "up to date"}
    assert acts == {("extract", "downloaded"), ("load_local", "replaced"), ("export_parquet", "re-exported (stale: was jan-1)"),
                    ("focus_parquet", "re-exported (stale: was jan-1)")}, acts
    n, tot, delivery_ids = focus_by_export(cur2)[eid]
    assert delivery_ids == ["jan-2"]  # the old rows are gone, none kept beside the new
    assert n == second.row_count + sum(cur2_unused(cf.read_rows(second)).values())
    assert tot["BilledCost"] == second.unblended_cost_sum and tot["EffectiveCost"] == cf.v2_amortized_cost_sum(second)
    assert query(cur2, "SELECT delivery_id, rows FROM finops_focus_log WHERE export_id = ? ORDER BY built_at", [eid])[-1] == ("jan-2", n)
    path = focus_file(cur2, "2024-01")
    info = parquet_info(path)[str(path)]
    assert info["delivery_id"] == "jan-2" and info["rows"] == str(n)
    fn, fbilled = duckdb.connect().execute(f"SELECT count(*), sum(BilledCost) FROM read_parquet('{path}')").fetchall()[0]
    assert (fn, fbilled) == (n, second.unblended_cost_sum)
    assert others() == other_before and tree(Path(foc["parquet_dir"]) / oid) == other_file
    for c in (cur2, foc):
        rec = reconcile(c)
        assert rec.ok, str(rec)
        assert {r[2] for r in rec.rows} >= {"focus-source", "focus", "focus-parquet"}


# ------------------------------------------------------------------------------------------------
# 7. FOCUS turned on after the fact, then built, exported and validated by the CLI
# ------------------------------------------------------------------------------------------------
def toml_config(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(f'staging_dir = "{tmp_path / "staging"}"\nparquet_dir = "{tmp_path / "parquet"}"\n'
                    f'[database.duckdb]\ndatabase_path = "{tmp_path / "finops.duckdb"}"\n'
                    f'[aws]\nbucket = "file://{tmp_path / "bucket"}"\nprefix = "cur2"\nexport_name = "demo-cur2"\ncur_version = "v2"\n')
    return path


def focus_tables(cfg):
    return query(cfg, "SELECT table_name FROM information_schema.tables WHERE table_name IN ('focus', 'finops_focus_log') ORDER BY 1")


def test_focus_backfilled_then_built_exported_validated_by_the_cli(tmp_path):
    jan = cf.build_v2(tmp_path / "bucket", period="2024-01", execution_id="jan-1", rows=200)
    off = config(tmp_path, export="demo-cur2", prefix="cur2", cur="v2", **{"focus.enabled": False})
    res = run_pipeline(off, progress=False)
    assert {r.step for r in res.results} == {"extract", "load_local", "export_parquet"}
    assert focus_tables(off) == [] and not list((tmp_path / "parquet").rglob("*_focus.parquet"))

    # FOCUS on; the next load (a new month) first builds the rows of the month already loaded
    feb = cf.build_v2(tmp_path / "bucket", period="2024-02", execution_id="feb-1", rows=150, seed=3)
    cfg_path = toml_config(tmp_path)
    on = load_config(cfg_path, environ={})
    eid = aws_export(on).id
    assert eid == aws_export(off).id and on["focus.enabled"] is True
    res = run_pipeline(on, steps="extract,load_local", progress=False)
    loads = [r for r in res.results if r.step == "load_local"]
    assert [(r.period, r.action) for r in loads] == [("2024-01", "up to date"), ("2024-02", "loaded")]
    notes = [n for r in loads for n in r.notes]
    assert "FOCUS rows built for 1 period(s) already loaded (2024-01)" in notes, notes
    held = FocusTable(on).totals(aws_export(on))
    want = {d.period: (d.row_count + sum(cur2_unused(cf.read_rows(d)).values()), d.unblended_cost_sum, cf.v2_amortized_cost_sum(d))
            for d in (jan, feb)}
    assert {p: (n, t["BilledCost"], t["EffectiveCost"]) for p, (n, t) in held.items()} == want
    assert {p: (n, t) for p, (n, t) in FocusTable(on).source_totals(aws_export(on)).items()} == \
        {p: (n, {"BilledCost": b, "EffectiveCost": e}) for p, (n, b, e) in want.items()}
    assert query(on, "SELECT x_BillingPeriod, x_DeliveryId FROM focus GROUP BY ALL ORDER BY 1") == [("2024-01", "jan-1"), ("2024-02", "feb-1")]

    # `finops focus build --all` builds every period again: a new log entry each, the same rows and totals
    builds = query(on, "SELECT count(*) FROM finops_focus_log")[0][0]
    r = cli("--config", cfg_path, "focus", "build", "--all")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"export {eid}: FOCUS rows built for 2 period(s) already loaded (2024-01, 2024-02)", r.stdout
    assert query(on, "SELECT count(*) FROM finops_focus_log")[0][0] == builds + 2
    assert FocusTable(on).totals(aws_export(on)) == held
    r = cli("--config", cfg_path, "focus", "build")  # nothing stale now
    assert r.returncode == 0 and r.stdout.strip() == f"export {eid}: every loaded period has its FOCUS rows", r.stdout

    # export the FOCUS files, then validate one month through the CLI
    r = cli("--config", cfg_path, "focus", "export-parquet")
    assert r.returncode == 0, r.stderr
    assert all(focus_file(on, p).is_file() for p in ("2024-01", "2024-02")), r.stdout
    assert r.stdout.count("exported") == 2, r.stdout
    r = cli("--config", cfg_path, "focus", "validate", "--start-date", "2024-02", "--end-date", "2024-02", timeout=300)
    assert r.returncode == 0, (r.stdout, r.stderr)
    lines = r.stdout.splitlines()
    head = lines[0].split()
    rows = [l.split() for l in lines[2:] if l.startswith(str(tmp_path))]
    assert [row[0] for row in rows] == [str(focus_file(on, "2024-02"))], r.stdout
    got = dict(zip(head, rows[0]))
    assert (got["checks"], got["failures"], got["errors"]) == ("578", "0", "0"), r.stdout
    assert "finops:" not in r.stderr, r.stderr
    assert reconcile(on).ok


def test_focus_turned_on_is_backfilled_without_a_new_delivery(tmp_path):
    cf.build_v2(tmp_path / "bucket", execution_id="jan-1", rows=100)
    run_pipeline(config(tmp_path, export="demo-cur2", prefix="cur2", cur="v2", **{"focus.enabled": False}), progress=False)
    on = config(tmp_path, export="demo-cur2", prefix="cur2", cur="v2")
    run_pipeline(on, progress=False)
    assert focus_tables(on) == [("finops_focus_log",), ("focus",)]
    assert focus_file(on, "2024-01").is_file()
    assert reconcile(on).ok
    con = duckdb.connect(on["database.duckdb.database_path"])
    try: con.execute("DELETE FROM focus")
    finally: con.close()
    assert not reconcile(on).ok  # a period whose FOCUS rows are missing does not reconcile


# ------------------------------------------------------------------------------------------------
# 8. A mapping that does not reconcile refuses the load
# ------------------------------------------------------------------------------------------------
def test_mapping_that_does_not_reconcile_refuses_the_load(tmp_path, monkeypatch):
    first = cf.build_v1_csv(tmp_path / "bucket", assembly_id="nov-1", files=1)
    cfg = config(tmp_path)
    run(cfg)
    eid = aws_export(cfg).id
    state = lambda: (query(cfg, "SELECT delivery_id, count(*), sum(line_item_unblended_cost) FROM aws_billing_data GROUP BY 1"),  # noqa: E731
                     query(cfg, "SELECT * FROM focus ORDER BY ALL"),
                     query(cfg, "SELECT billing_period, delivery_id FROM finops_load_log ORDER BY loaded_at"))
    before = state()
    assert before[0] == [("nov-1", first.row_count, first.unblended_cost_sum)] and len(before[1]) == first.row_count

    second = cf.build_v1_csv(tmp_path / "bucket", assembly_id="nov-2", files=1, rows=700, line_item_id_salt="2")
    assert second.unblended_cost_sum != 0
    monkeypatch.setitem(aws_focus.CUR_MAPPING, "BilledCost", "coalesce({line_item_unblended_cost}, 0) * 2")
    assert all(not r.failed for r in extract_billing(cfg, progress=False))
    loaded = load_billing_local(cfg, progress=False)
    assert [(r.period, r.action) for r in loaded] == [("2023-11", "failed")]
    msg = str(loaded[0].error)
    assert "FOCUS rows do not reconcile" in msg and "nov-2" in msg, msg
    source, focus = (Decimal(x) for x in re.search(r"BilledCost: source (\S+) FOCUS (\S+)", msg).groups())
    assert source == second.unblended_cost_sum and focus == 2 * source
    assert state() == before  # the CUR rows, the FOCUS rows and the load log of nov-1, all kept

    monkeypatch.undo()  # the mapping right again: the same delivery loads
    loaded = load_billing_local(cfg, progress=False)
    assert [(r.period, r.action) for r in loaded] == [("2023-11", "replaced")], [r.error for r in loaded]
    n, tot, ids = focus_by_export(cfg)[eid]
    assert (n, tot["BilledCost"], ids) == (second.row_count + v1_csv_added(v1_csv_rows(second)), second.unblended_cost_sum, ["nov-2"])
