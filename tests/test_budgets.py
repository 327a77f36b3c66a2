"""Budgets on a real DuckDB `focus` table: month-to-date exact, every filter, currencies, the forecast's bounds and
accuracy, thresholds on the actual and on the forecast, config errors in one line, JSON-ready records and stable alert keys."""

import csv
import io
import json
import random
import re
from datetime import date, datetime, timedelta
from decimal import Context, Decimal, localcontext

import duckdb
import pytest

from finops_nb.budgets import alerts, budget_records, budget_status, budgets, budgets_csv, budgets_summary, budgets_text, plot_burndown
from finops_nb.config import load_config
from finops_nb.core import ConfigError, InputError
from finops_nb.focus import ensure_focus

TODAY = date(2025, 2, 19)  # the data holds Jan 1 .. Feb 19; Feb 18 and 19 are still growing; Azure is a day behind
WIDE = Context(prec=100)
COLS = ("ProviderName", "BillingAccountId", "BillingAccountName", "SubAccountId", "SubAccountName", "ServiceName", "RegionId", "Tags",
        "BillingCurrency", "BilledCost", "EffectiveCost", "ChargePeriodStart", "ChargePeriodEnd", "ChargeFrequency", "x_ExportId")
# provider, billing account id/name, sub account id/name, service, region, tags, currency, export, weekday cost, weekend cost
SERIES = [
    ("AWS", "111111111111", "acme", "111111111111", "prod", "Amazon EC2", "us-east-1", {"team": "payments", "env": "prod"}, "USD", "aws-1", 40, 22),
    ("AWS", "111111111111", "acme", "333333333333", "staging", "Amazon RDS", "eu-west-1", {"team": "payments", "env": "staging"}, "USD", "aws-1", 12, 12),
    ("AWS", "111111111111", "acme", "222222222222", "dev", "Amazon S3", "eu-west-1", {"team": "platform"}, "USD", "aws-1", 6, 6),
    ("Microsoft", "ea-1", "contoso", "sub-1", "payments-sub", "Virtual Machines", "westeurope", {"team": "payments"}, "EUR", "azure-1", 15, 9),
    ("Google Cloud", "0A1B2C", "billing", "proj-1", "proj-1", "Compute Engine", "us-central1", {"team": "payments"}, "USD", "gcp-1", 8, 8),
]


def _row(s, day, cost, billed=None, hours=(0, 24), freq="Usage-Based", end=None):
    start = datetime(day.year, day.month, day.day) + timedelta(hours=hours[0])
    return dict(zip(COLS, (s[0], s[1], s[2], s[3], s[4], s[5], s[6], json.dumps(s[7]) if s[7] else None, s[8],
                           cost if billed is None else billed, cost, start, end or start + timedelta(hours=hours[1] - hours[0]), freq, s[9])))


def generate():
    "Every row of Jan 1 .. Feb 28 (the truth), in two half-day rows per series and day; the monthly fee and a purchase."
    rnd, rows = random.Random(7), []
    d = date(2025, 1, 1)
    while d <= date(2025, 2, 28):
        for s in SERIES:
            base = s[10] if d.weekday() < 5 else s[11]
            for h in ((0, 12), (12, 24)):
                rows.append(_row(s, d, Decimal(str(round(base / 2 * rnd.uniform(0.95, 1.05), 6))), hours=h))
        if d.day == 1:  # AWS Support for the month, on its first day
            rows.append(_row(("AWS", "111111111111", "acme", "111111111111", "prod", "AWS Support", None, None, "USD", "aws-1"), d,
                             Decimal(100), freq="Recurring", end=datetime(2025, d.month + 1, 1)))
        if d == date(2025, 2, 10):  # a reservation bought: billed, but amortised over the usage it covers (EffectiveCost 0)
            rows.append(_row(SERIES[0], d, Decimal(0), billed=Decimal(500), freq="One-Time", hours=(9, 10)))
        d += timedelta(1)
    return rows


def held(rows, today=TODAY):
    "What the database holds on `today`: rows through it, the last two days at 70 % and 30 % of their cost (Azure a day behind)."
    out = []
    for r in rows:
        day = r["ChargePeriodStart"].date()
        last = today - timedelta(1) if r["ProviderName"] == "Microsoft" else today
        if day > last: continue
        share = {last - timedelta(1): Decimal("0.7"), last: Decimal("0.3")}.get(day, Decimal(1)) if r["ChargeFrequency"] == "Usage-Based" else 1
        out.append({**r, "EffectiveCost": r["EffectiveCost"] * share, "BilledCost": r["BilledCost"] * share})
    return out


TRUTH = generate()
ROWS = held(TRUTH)


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = tmp_path_factory.mktemp("budgets") / "finops.duckdb"
    con = duckdb.connect(str(path))
    ensure_focus(con)
    con.executemany(f"INSERT INTO focus ({', '.join(COLS)}) VALUES ({', '.join('?' for _ in COLS)})", [tuple(r[c] for c in COLS) for r in ROWS])
    con.close()
    return str(path)


def cfg_of(db, *tables):
    return load_config(None, {"database.duckdb.database_path": db, "budgets": json.dumps(list(tables))}, environ={})


def status(db, month=None, today=TODAY, **budget):
    (st,) = budget_status(cfg_of(db, {"name": "b", "amount": "1000", **budget}), today=today, month=month)
    return st


def total(pred, rows=ROWS, month="2025-02", cost="EffectiveCost"):
    "The exact sum of `cost` over the rows of `month` for which `pred` holds."
    with localcontext(WIDE):
        return sum((r[cost] for r in rows if f"{r['ChargePeriodStart']:%Y-%m}" == month and pred(r)), Decimal(0))


def tag(r, k): return json.loads(r["Tags"] or "{}").get(k)


def test_month_to_date_is_exact_and_other_currencies_are_left_out_and_said(db):
    st = status(db)
    assert st.actual == total(lambda r: r["BillingCurrency"] == "USD")
    assert st.rows == sum(1 for r in ROWS if r["BillingCurrency"] == "USD" and r["ChargePeriodStart"].month == 2)
    assert st.excluded == {"EUR": total(lambda r: r["BillingCurrency"] == "EUR")}
    assert any("rows billed in EUR" in n and "the budget is in USD" in n for n in st.notes), st.notes
    eur = status(db, currency="EUR")
    assert eur.actual == total(lambda r: r["BillingCurrency"] == "EUR") and set(eur.excluded) == {"USD"}
    assert eur.as_of == TODAY - timedelta(1) and eur.complete_through == TODAY - timedelta(3)  # Azure's export is a day behind


@pytest.mark.parametrize("flt, pred", [
    ({"provider": "aws"}, lambda r: r["ProviderName"] == "AWS"),
    ({"provider": ["gcp", "Google Cloud"]}, lambda r: r["ProviderName"] == "Google Cloud"),
    ({"billing_account": "111111111111"}, lambda r: r["BillingAccountId"] == "111111111111"),
    ({"billing_account": "Billing"}, lambda r: r["BillingAccountName"] == "billing"),
    ({"sub_account": ["prod", "222222222222"]}, lambda r: r["SubAccountName"] == "prod" or r["SubAccountId"] == "222222222222"),
    ({"service": "amazon ec2"}, lambda r: r["ServiceName"] == "Amazon EC2"),
    ({"service": ["Amazon EC2", "Amazon RDS"]}, lambda r: r["ServiceName"] in ("Amazon EC2", "Amazon RDS")),
    ({"region": "eu-west-1"}, lambda r: r["RegionId"] == "eu-west-1"),
    ({"tags": ["team=payments"]}, lambda r: tag(r, "team") == "payments"),
    ({"tags": ["team=payments", "env=prod"]}, lambda r: tag(r, "team") == "payments" and tag(r, "env") == "prod"),
    ({"tags": ["team=Payments"]}, lambda r: False),  # tags match exactly
    ({"export": "gcp-1", "region": "us-central1"}, lambda r: r["x_ExportId"] == "gcp-1"),
    ({"provider": "aws", "region": "eu-west-1", "tags": ["team=payments"]}, lambda r: r["ServiceName"] == "Amazon RDS"),
])
def test_filters_pick_exactly_the_rows_they_name(db, flt, pred):
    st = status(db, **flt)
    assert st.actual == total(lambda r: r["BillingCurrency"] == "USD" and pred(r)), flt
    assert st.p50 <= st.p90


def test_forecast_bounds_accuracy_and_growing_days(db):
    st = status(db, tags=["team=payments"], provider="aws")
    assert st.as_of == TODAY and st.complete_through == TODAY - timedelta(2) and st.method == "ets"
    assert st.actual <= st.p50 <= st.p90
    truth = total(lambda r: r["ProviderName"] == "AWS" and tag(r, "team") == "payments", rows=TRUTH)
    assert abs(st.p50 - truth) / truth < Decimal("0.03"), (st.p50, truth)  # 10 days left of a noisy weekly series
    whole = status(db, tags=["team=payments"], provider="aws", today=TODAY - timedelta(2))  # as if the growing days had not come yet
    assert abs(whole.p50 - st.p50) / truth < Decimal("0.03"), (whole.p50, st.p50)
    naive = budget_status(cfg_of(db, {"name": "b", "amount": 1, "provider": "aws", "tags": ["team=payments"]}), today=TODAY, provisional_days=0)[0]
    assert naive.complete_through == TODAY and naive.p50 < st.p50  # taken as complete, the growing days pull the forecast down


def test_rows_that_do_not_repeat_daily_count_as_they_are(db):
    fee = status(db, service="AWS Support")
    assert (fee.actual, fee.p50, fee.p90) == (100, 100, 100)
    eff, billed = status(db, service="Amazon EC2"), status(db, service="Amazon EC2", cost="billed")
    assert billed.actual - eff.actual == 500 and billed.p50 - eff.p50 == 500 and billed.p90 - eff.p90 == 500


def test_a_closed_month_is_its_actual(db):
    st = status(db, month="2025-01", provider="aws")
    assert st.method == "closed" and st.actual == total(lambda r: r["ProviderName"] == "AWS", month="2025-01")
    assert st.p50 == st.p90 == st.actual.quantize(Decimal("0.01"))
    assert st.as_of == date(2025, 1, 31) and not st.path


def test_thresholds_on_actual_and_forecast(db):
    pay = lambda r: r["ProviderName"] == "AWS" and tag(r, "team") == "payments"
    actual = total(pay)
    amount = (actual * Decimal("1.2")).quantize(Decimal("0.01"))  # 19 days of 28 spent: the forecast is well above the amount
    st = status(db, amount=str(amount), provider="aws", tags=["team=payments"],
                thresholds=[{"percent": 80}, {"percent": 100, "on": "actual"}, {"percent": 100, "on": "forecast"}, {"percent": 400, "on": "forecast"}])
    by = {t.threshold.label: t for t in st.thresholds}
    assert [(k, t.state) for k, t in by.items()] == [("80 % actual", "crossed"), ("100 % actual", "at risk"),
                                                     ("100 % forecast", "crossed"), ("400 % forecast", "ok")]
    limit, run, day = amount * Decimal("0.8"), Decimal(0), None
    for d in sorted({r["ChargePeriodStart"].date() for r in ROWS if r["ChargePeriodStart"].month == 2}):
        run += total(lambda r: pay(r) and r["ChargePeriodStart"].date() == d)
        if run >= limit: day = d; break
    assert by["80 % actual"].reached_on == day and by["80 % actual"].value == actual
    assert by["100 % actual"].reached_on is None and TODAY < by["100 % actual"].expected_on <= date(2025, 2, 28)
    assert by["100 % forecast"].value == st.p50 and by["100 % forecast"].limit == amount
    keys = [a["key"] for a in alerts(cfg_of(db, {"name": "pay", "amount": str(amount), "provider": "aws", "tags": ["team=payments"]}), today=TODAY)]
    assert keys == ["budget/pay/2025-02/actual/80", "budget/pay/2025-02/forecast/100"]


def test_a_budget_matching_nothing_says_so(db):
    st = status(db, service="Amazon Nothing")
    assert (st.actual, st.p50, st.p90, st.method, st.as_of) == (0, 0, 0, "none", None)
    assert [t.state for t in st.thresholds] == ["ok", "ok", "ok"]
    assert any("no FOCUS rows in USD match its filters" in n for n in st.notes), st.notes


def test_records_text_csv_summary_and_chart(db):
    cfg = cfg_of(db, {"name": "all", "amount": "5000.50"}, {"name": "pay", "amount": 900, "tags": ["team=payments"], "currency": "eur"})
    sts = budget_status(cfg, today=TODAY)
    recs = budget_records(cfg, statuses=sts)
    assert json.loads(json.dumps(recs)) == recs  # JSON-ready as they are: no default= needed
    r = recs[0]
    assert Decimal(r["actual"]) == sts[0].actual and r["amount"] == "5000.5" and r["as_of"] == "2025-02-19"
    assert re.fullmatch(r"\d+\.\d\d", r["forecast_p50"]) and Decimal(r["forecast_p50"]) <= Decimal(r["forecast_p90"])
    assert {k: Decimal(v) for k, v in r["excluded"].items()} == {"EUR": total(lambda x: x["BillingCurrency"] == "EUR")}
    assert [t["key"] for t in r["thresholds"]] == ["budget/all/2025-02/actual/80", "budget/all/2025-02/actual/100", "budget/all/2025-02/forecast/100"]
    assert recs[1]["filters"] == {"tags": ["team=payments"]} and recs[1]["currency"] == "EUR"
    rows = list(csv.reader(io.StringIO(budgets_csv(cfg, statuses=sts))))
    assert [x[0] for x in rows] == ["budget", "all", "pay"] and Decimal(rows[1][5]) == sts[0].actual
    text = budgets_text(cfg, statuses=sts)
    assert text.splitlines()[0].split()[:3] == ["budget", "month", "currency"] and "pay: 80 % actual (720.00 EUR)" in text
    assert budgets_summary(cfg, statuses=sts).count("\n") == 1 and "<table>" in budgets_summary(cfg, html_=True, statuses=sts)
    fig = plot_burndown(cfg, statuses=sts)
    assert len([a for a in fig.axes if a.get_visible()]) == 2
    none = load_config(None, {"database.duckdb.database_path": db}, environ={})
    assert plot_burndown(none) is None and budget_records(none) == [] and alerts(none) == [] and "no budgets" in budgets_text(none)


def test_alerts_keys_are_stable_and_the_month_before_is_watched_in_its_last_growing_days(db):
    cfg = cfg_of(db, {"name": "all", "amount": 100}, {"name": "pay", "amount": 300, "tags": ["team=payments"]})
    first, again = alerts(cfg, today=TODAY), alerts(cfg, today=TODAY)
    assert [a["key"] for a in first] == [a["key"] for a in again] and len({a["key"] for a in first}) == len(first) == 6
    for a in first:
        assert set(a) == {"key", "kind", "title", "text", "data"} and a["kind"] == "budget" and "\n" not in a["title"]
        assert re.fullmatch(r"budget/(all|pay)/2025-02/(actual|forecast)/\d+", a["key"]) and a["data"]["threshold"]["key"] == a["key"]
    assert json.loads(json.dumps(first)) == first
    early = [a["key"] for a in alerts(cfg, today=date(2025, 2, 2))]
    assert "budget/all/2025-01/actual/100" in early and "budget/all/2025-02/actual/100" in early
    con = duckdb.connect(db, read_only=True)  # a connection the caller holds
    try: assert [a["key"] for a in alerts(cfg, con, today=TODAY)] == [a["key"] for a in first]
    finally: con.close()


@pytest.mark.parametrize("toml, msg", [
    ('name = "platform"', 'b.toml: [[budgets]] #2 "platform": amount: missing; give the monthly amount, e.g. amount = 1000'),
    ('name = "platform"\namount = -5', '[[budgets]] #2 "platform": amount: -5 is not allowed; use a number above 0'),
    ('name = "platform"\namount = "lots"', "amount: 'lots' is not allowed"),
    ('amount = 5', "[[budgets]] #2: name: missing"),
    ('name = "a/b"\namount = 5', "name: 'a/b' is not allowed; use a non-empty text without /"),
    ('name = "platform"\namount = 5\nservce = "EC2"', '"platform": unknown key servce (did you mean service?); a budget takes name, amount'),
    ('name = "platform"\namount = 5\ntag = ["a=b"]', "unknown key tag (did you mean tags?)"),
    ('name = "platform"\namount = 5\ncurrency = "dollars"', "currency: 'dollars' is not allowed; use a three-letter code"),
    ('name = "platform"\namount = 5\ncost = "amortized"', "cost: 'amortized' is not allowed; use \"effective\" (EffectiveCost) or \"billed\""),
    ('name = "platform"\namount = 5\nservice = 3', "service: 3 is not allowed; use a text or a list of texts"),
    ('name = "platform"\namount = 5\nregion = []', "region: [] is not allowed"),
    ('name = "platform"\namount = 5\ntags = ["team"]', "tags: ['team'] is not allowed; use a list of key=value texts"),
    ('name = "platform"\namount = 5\nthresholds = 80', "thresholds: use a list of tables"),
    ('name = "platform"\namount = 5\nthresholds = [{percent = 0}]', "thresholds[1]: percent: 0 is not allowed; use a number above 0"),
    ('name = "platform"\namount = 5\nthresholds = [{on = "actual"}]', "thresholds[1]: percent: missing"),
    ('name = "platform"\namount = 5\nthresholds = [{percent = 80, on = "forcast"}]', "thresholds[1]: on: 'forcast' is not allowed; use \"actual\" or \"forecast\""),
    ('name = "platform"\namount = 5\nthresholds = [{percent = 80, when = "actual"}]', "thresholds[1]: unknown key when"),
    ('name = "platform"\namount = 5\nthresholds = [{percent = 80}, {percent = 80.0}]', "thresholds[2]: 80 % actual is given twice"),
    ('name = "ok"\namount = 5', '[[budgets]] #2 "ok": name: already used by #1; give each budget its own name'),
])
def test_config_errors_are_one_line_naming_the_table_and_key(tmp_path, toml, msg):
    path = tmp_path / "b.toml"
    path.write_text(f'[[budgets]]\nname = "ok"\namount = 10\n\n[[budgets]]\n{toml}\n')
    cfg = load_config(path, environ={})
    with pytest.raises(ConfigError) as e: budgets(cfg)
    assert msg in str(e.value) and "\n" not in str(e.value) and str(e.value).startswith(f"{path}: [[budgets]] #2"), str(e.value)
    with pytest.raises(ConfigError): budget_status(cfg, today=TODAY)  # checked before any database is opened


def test_a_good_table_in_toml(tmp_path):
    path = tmp_path / "b.toml"
    path.write_text('[[budgets]]\nname = "p"\namount = 1000.10\ncurrency = "eur"\nprovider = ["aws", "azure"]\ncost = "billed"\n'
                    'thresholds = [{percent = 87.5, on = "forecast"}]\n')
    (b,) = budgets(load_config(path, environ={}))
    assert (b.amount, b.currency, b.column, b.filters, [t.label for t in b.thresholds]) == (
        Decimal("1000.1"), "EUR", "BilledCost", (("provider", ("aws", "azure")),), ["87.5 % forecast"])


def test_no_database_is_one_line_and_alerts_are_none(tmp_path):
    cfg = cfg_of(str(tmp_path / "none.duckdb"), {"name": "b", "amount": 1})
    with pytest.raises(InputError, match="none.duckdb: no DuckDB database yet"): budget_status(cfg, today=TODAY)
    assert alerts(cfg, today=TODAY) == []
    with pytest.raises(ConfigError, match="month: '2025-13' is not a billing period"): budget_status(cfg, today=TODAY, month="2025-13")
