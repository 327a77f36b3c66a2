"""Cost anomalies on a real DuckDB database whose `focus` table is built the way the pipeline builds it (`ensure_focus`,
then rows): detections on the right days with exact amounts, a level shift alerted once across runs, provisional days,
purchases/tax/credits/adjustments left out, tag series, JSON and CSV records, the `finops_anomalies` table and stable alert keys."""

import csv
import io
import json
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import duckdb
import pytest

from finops_nb.anomalies import (TABLE, alerts, anomalies, anomaly_figure, anomaly_records, anomaly_summary, detect,
                                 load_series, render, update_anomalies)
from finops_nb.config import load_config
from finops_nb.core import ConfigError, InputError
from finops_nb.focus import ensure_focus
from finops_nb.localdb import connect

COLS = ("x_ExportId", "x_BillingPeriod", "ProviderName", "BillingAccountId", "SubAccountId", "ServiceName", "ChargeCategory",
        "ChargePeriodStart", "ChargePeriodEnd", "EffectiveCost", "BilledCost", "BillingCurrency", "x_UsageType", "ResourceId",
        "SkuId", "Tags")
START = datetime(2024, 1, 1, tzinfo=timezone.utc)  # a Monday
SPIKE, SHIFT, DIP = 40, 50, 44                      # days of the injected anomalies


def day(d): return (START + timedelta(days=d)).date()


def row(d, service, cost, usage, *, category="Usage", hours=24, resource=None, tags=None, export="aws-test",
        provider="AWS", account="111122223333", sub="444455556666", currency="USD"):
    start = START + timedelta(days=d)
    return (export, f"{start:%Y-%m}", provider, account, sub, service, category, start, start + timedelta(hours=hours),
            Decimal(cost), Decimal(cost), currency, usage, resource, f"sku-{usage}", json.dumps(tags) if tags else None)


def wobble(d, scale):
    "A deterministic ±5 % wiggle, exact."
    return Decimal((d * 37) % 11 - 5) / 100 * scale


def usage(days):
    """The generated bill: EC2 with a weekly pattern and a data-transfer spike on day SPIKE (two usage rows a day,
    tagged team=web); S3 from 40 to 90 a day from day SHIFT on (tagged, AWS style, user_team=data); Lambda at cents a
    day (never material); team=ml spread over two services that each move too little to matter; an Azure VM that
    stops for two days from day DIP (another export, another provider)."""
    out = []
    for d in range(days):
        ec2 = Decimal(100 if d % 7 < 5 else 60) + wobble(d, 2)
        out += [row(d, "Amazon EC2", ec2 - 10, "BoxUsage:c5.large", resource="i-web", tags={"team": "web"}),
                row(d, "Amazon EC2", "10.0000000001", "EBS:VolumeUsage", resource="vol-web", tags={"team": "web"}),
                row(d, "Amazon S3", Decimal(90 if d >= SHIFT else 40) + wobble(d, 1), "TimedStorage-ByteHrs", resource="bucket-1",
                    tags={"user_team": "data"}),
                row(d, "AWS Lambda", Decimal("0.37") + wobble(d, Decimal("0.1")), "Request", resource="fn-1"),
                row(d, "Amazon SageMaker", Decimal(30) + wobble(d, 1) + (20 if d == 45 else 0), "ml.g5", resource="nb-1",
                    tags={"team": "ml"}, sub="777788889999"),
                row(d, "Amazon EC2", Decimal(30) + wobble(d, 1) + (20 if d == 45 else 0), "BoxUsage:g5.xlarge", resource="i-ml",
                    tags={"team": "ml"}, sub="777788889999")]
        if not DIP <= d < DIP + 2:
            out.append(row(d, "Virtual Machines", Decimal(200) + wobble(d, 3), "D4s v5", resource="/subscriptions/s/vm-1",
                           export="azure-test", provider="Microsoft", account="ea-1", sub="sub-1", currency="EUR"))
    out.append(row(SPIKE, "Amazon EC2", "250.123456789", "DataTransfer-Out-Bytes", resource="i-web", tags={"team": "web"}))
    return out


def not_usage():
    "What a day's cost leaves out, all on day 30 and in February: purchases, tax, credits, adjustments, a monthly fee."
    return [row(30, "Amazon EC2", 5000, "Reservation", category="Purchase"), row(30, "Amazon EC2", 800, "Tax", category="Tax"),
            row(30, "Amazon EC2", -3000, "Credit", category="Credit"), row(30, "Amazon EC2", 2000, "Refund", category="Adjustment"),
            row(31, "Amazon EC2", 400, "Support", hours=24 * 29)]


def build(path, rows, **settings):
    "A database at `path` with a `focus` table holding `rows` (added to what is there), and a config for it."
    con = duckdb.connect(str(path))
    ensure_focus(con)
    if rows: con.executemany(f"INSERT INTO focus ({', '.join(COLS)}) VALUES ({', '.join('?' for _ in COLS)})", rows)
    con.close()
    return load_config(None, {"database.duckdb.database_path": str(path), "anomalies.tag_keys": "team", **settings}, environ={})


def day_cost(rows, d, service, export="aws-test", sub="444455556666"):
    "The exact usage cost of one service of one sub-account on one day, from the generated rows."
    return sum((r[9] for r in rows if (r[0], r[4], r[5], r[6]) == (export, sub, service, "Usage") and r[7].date() == day(d)
                and r[8] - r[7] <= timedelta(days=1)), Decimal(0))


@pytest.fixture(scope="module")
def bill(tmp_path_factory):
    "70 days of the generated bill, and what is not usage; the day after its last day is the run's day."
    rows = usage(70) + not_usage()
    cfg = build(tmp_path_factory.mktemp("anomalies") / "finops.duckdb", rows)
    return cfg, rows, detect(cfg, today=day(70))


def by(found, service=None, tag=None):
    return [a for a in found if (a.series.service, a.series.tag_value) == (service, tag)]


def test_detections_are_on_their_days_with_exact_amounts(bill):
    cfg, rows, found = bill
    assert sorted((a.series.provider, a.series.service or f"tag {a.series.tag_value}", a.first, a.last, a.kind) for a in found) == [
        ("AWS", "Amazon EC2", day(SPIKE), day(SPIKE), "spike"),
        ("AWS", "Amazon S3", day(SHIFT), day(SHIFT + 3), "level shift"),
        ("AWS", "tag data", day(SHIFT), day(SHIFT + 3), "level shift"),
        ("AWS", "tag ml", day(45), day(45), "spike"),
        ("AWS", "tag web", day(SPIKE), day(SPIKE), "spike"),
        ("Microsoft", "Virtual Machines", day(DIP), day(DIP + 1), "drop")]
    (spike,) = by(found, "Amazon EC2")
    (d,) = spike.days
    normal = Decimal(100 if SPIKE % 7 < 5 else 60) + wobble(SPIKE, 2)  # SPIKE is a Saturday
    assert d.actual == day_cost(rows, SPIKE, "Amazon EC2") == normal + Decimal("250.1234567891")
    assert d.impact == d.actual - d.expected and d.expected == d.expected.quantize(Decimal("0.01"))
    assert abs(d.expected - normal) <= normal / 50  # the estimate: within 2 % of the day's normal cost
    assert spike.contributors["x_UsageType"] == [{"value": "DataTransfer-Out-Bytes", "actual": "250.123456789", "expected": "0.00",
                                                  "delta": "250.123456789"}]
    assert [c["value"] for c in spike.contributors["ResourceId"]] == ["i-web"]
    (dip,) = by(found, "Virtual Machines")
    assert [x.actual for x in dip.days] == [0, 0] and dip.direction == "down" and dip.series.currency == "EUR"
    assert dip.key.startswith("anomaly/azure-test/Microsoft/ea-1/sub-1/Virtual Machines/")
    (shift,) = by(found, "Amazon S3")
    assert [x.actual for x in shift.days] == [day_cost(rows, d, "Amazon S3") for d in range(SHIFT, SHIFT + 4)]
    assert [x.actual for x in by(found, tag="data")[0].days] == [x.actual for x in shift.days]
    assert shift.impact == sum(x.actual - x.expected for x in shift.days) and shift.status == "new normal"


def test_purchases_tax_credits_adjustments_and_monthly_fees_are_left_out(bill):
    cfg, rows, found = bill
    assert not [a for a in found if day(30) <= a.last and a.first <= day(31)]
    con = connect(cfg, read_only=True)
    try: series = {(s.sub_account, s.service): s for s in load_series(con) if s.export_id == "aws-test"}
    finally: con.close()
    ec2 = series["444455556666", "Amazon EC2"]
    assert ec2.values[30] == float(day_cost(rows, 30, "Amazon EC2")) == float(Decimal(100) + wobble(30, 2) + Decimal("0.0000000001"))
    assert ("444455556666", "AWS Support") not in series and "AWS Lambda" not in {a.series.service for a in found}


def test_tag_series_see_what_no_service_series_does(bill):
    cfg, rows, found = bill
    (ml,) = by(found, tag="ml")
    assert ml.series.key == "AWS/111122223333/tag:team=ml" and ml.impact > 25
    assert not [a for a in found if a.series.sub_account == "777788889999"]  # +20 on each of its two services is too little
    assert {a.series.tag_value for a in found if a.series.tag_key} == {"web", "data", "ml"}  # user_team counts as team


def test_json_and_csv_records_carry_exact_decimal_text(bill):
    cfg, rows, found = bill
    recs = json.loads(render(found, "json"))
    assert recs == anomaly_records(found)
    r = next(r for r in recs if r["service"] == "Amazon EC2")
    want = ("key", "date", "provider", "export_id", "billing_account", "sub_account", "service", "expected", "actual", "impact", "score", "status")
    assert set(want) <= set(r)
    assert (r["date"], r["provider"], r["export_id"], r["billing_account"], r["sub_account"], r["status"]) == (
        str(day(SPIKE)), "AWS", "aws-test", "111122223333", "444455556666", "ended")
    (spike,) = by(found, "Amazon EC2")
    assert (Decimal(r["actual"]), Decimal(r["expected"]), Decimal(r["impact"])) == (spike.actual, spike.expected, spike.impact)
    assert r["actual"] == "310.1434567891" and r["expected"].count(".") == 1 and len(r["expected"].split(".")[1]) == 2
    assert isinstance(r["score"], float) and r["score"] > 4
    rows_csv = list(csv.DictReader(io.StringIO(render(found, "csv"))))
    assert [x["key"] for x in rows_csv] == [x["key"] for x in recs]
    c = next(x for x in rows_csv if x["service"] == "Amazon EC2")
    assert (c["expected"], c["actual"], c["impact"]) == (r["expected"], r["actual"], r["impact"])
    assert c["contributors"].startswith("x_UsageType DataTransfer-Out-Bytes +250.123456789")
    table = render(found).splitlines()
    assert table[0].split()[:3] == ["date", "days", "provider"] and len(table) == 2 + len(found)
    with pytest.raises(ConfigError, match="format: 'yaml' is not a format"): render(found, "yaml")


def test_a_level_shift_alerts_once_across_runs_and_the_table_keeps_its_identity(tmp_path):
    rows = usage(70)
    first = [r for r in rows if r[7].date() <= day(SHIFT + 1)]  # the first run sees two days of the shift
    cfg = build(tmp_path / "finops.duckdb", first)
    t1, t2 = datetime(2024, 2, 22, 6, tzinfo=timezone.utc), datetime(2024, 3, 11, 6, tzinfo=timezone.utc)
    run1 = update_anomalies(cfg, today=t1.date(), now=t1)
    alerts1 = {a["key"]: a for a in alerts(cfg, today=t1.date())}
    (s1,) = by(run1, "Amazon S3")
    assert (s1.first, s1.last, s1.status) == (day(SHIFT), day(SHIFT + 1), "provisional") and s1.key in alerts1
    build(tmp_path / "finops.duckdb", [r for r in rows if r[7].date() > day(SHIFT + 1)])
    run2 = update_anomalies(cfg, today=t2.date(), now=t2)
    (s2,) = by(run2, "Amazon S3")
    assert (s2.key, s2.first, s2.last, s2.status, s2.first_seen, s2.last_seen) == (s1.key, day(SHIFT), day(SHIFT + 3), "new normal", t1, t2)
    assert len([a for a in run2 if a.series.service == "Amazon S3"]) == 1  # 20 more days at the new level: no second alert
    alerts2 = {a["key"]: a for a in alerts(cfg, today=t2.date(), recent_days=30)}
    assert set(alerts1) <= set(alerts2)  # the same episodes, the same keys
    assert {k for k in alerts2 if "Amazon S3" in k} == {s1.key}
    con = connect(cfg, read_only=True)
    try:
        got = con.execute(f"SELECT day, expected, actual, impact, status, first_seen, last_seen FROM {TABLE} WHERE key = ? ORDER BY day",
                          [s1.key]).fetchall()
        statuses = dict(con.execute(f"SELECT status, count(DISTINCT key) FROM {TABLE} GROUP BY 1").fetchall())
    finally: con.close()
    assert [(g[0], g[1], g[2], g[3]) for g in got] == [(x.date, x.expected, x.actual, x.impact) for x in s2.days]
    assert {(g[4], g[5], g[6]) for g in got} == {("new normal", t1, t2)}
    assert "withdrawn" not in statuses and sum(statuses.values()) == len(run2)
    assert [a.key for a in anomalies(cfg, today=t2.date())] == [a.key for a in run2]  # the read-only listing: the table's keys


def test_provisional_days_mark_a_drop_that_waits_and_a_spike_that_does_not(tmp_path):
    rows = usage(60)  # to 2024-02-29
    last = [i for i, r in enumerate(rows) if r[5] == "Amazon EC2" and r[12] == "BoxUsage:c5.large" and r[7].date() == day(59)][0]
    rows[last] = rows[last][:9] + (Decimal(5), Decimal(5)) + rows[last][11:]  # the last day's EC2 data is not all in yet
    rows.append(row(59, "Virtual Machines", 700, "D4s v5", resource="/subscriptions/s/vm-1", export="azure-test", provider="Microsoft",
                    account="ea-1", sub="sub-1", currency="EUR"))  # and the Azure VM spikes on it
    cfg = build(tmp_path / "finops.duckdb", rows)
    found = detect(cfg, today=date(2024, 3, 1))  # February ended a day ago: its last days can still grow
    (drop,) = [a for a in by(found, "Amazon EC2") if a.first == day(59)]
    (spike,) = [a for a in by(found, "Virtual Machines") if a.first == day(59)]
    assert (drop.first, drop.direction, drop.status, drop.days[0].provisional) == (day(59), "down", "provisional", True)
    assert (spike.direction, spike.status) == ("up", "provisional")
    keys = {a["key"] for a in alerts(cfg, today=date(2024, 3, 1))}
    assert spike.key in keys and drop.key not in keys
    later = detect(cfg, today=date(2024, 3, 20))  # long after: final
    (drop,) = [a for a in by(later, "Amazon EC2") if a.first == day(59)]
    assert (drop.status, drop.provisional) == ("ongoing", False)
    assert drop.key in {a["key"] for a in alerts(cfg, today=date(2024, 3, 20))}


def test_an_episode_no_longer_found_is_withdrawn(tmp_path):
    cfg = build(tmp_path / "finops.duckdb", usage(70))
    run1 = update_anomalies(cfg, today=day(70))
    (spike,) = by(run1, "Amazon EC2")
    con = duckdb.connect(str(tmp_path / "finops.duckdb"))
    con.execute("DELETE FROM focus WHERE x_UsageType = 'DataTransfer-Out-Bytes'")  # a corrected delivery without the spike
    con.close()
    run2 = update_anomalies(cfg, today=day(70))
    assert spike.key not in {a.key for a in run2}
    con = connect(cfg, read_only=True)
    try: status = con.execute(f"SELECT DISTINCT status FROM {TABLE} WHERE key = ?", [spike.key]).fetchall()
    finally: con.close()
    assert status == [("withdrawn",)]
    assert spike.key not in {a["key"] for a in alerts(cfg, today=day(70), recent_days=60)}


def test_report_summary_and_figure(bill):
    cfg, rows, found = bill
    text = anomaly_summary(found)
    assert text.splitlines()[0].startswith("6 cost anomalies in the last 30 days of data: 5 up, 1 down")
    assert "AWS Amazon EC2 in 444455556666: spike +" in text
    fig = anomaly_figure(found, limit=3)
    assert len(fig.axes) == 3 and anomaly_figure([]) is None


def test_errors_say_what_is_wrong(tmp_path):
    cfg = load_config(None, {"database.duckdb.database_path": str(tmp_path / "none.duckdb")}, environ={})
    with pytest.raises(InputError, match=r"none\.duckdb: no DuckDB database yet"): anomalies(cfg)
    assert alerts(cfg) == [] and update_anomalies(cfg) == [] and not (tmp_path / "none.duckdb").exists()
    empty = build(tmp_path / "empty.duckdb", [])
    assert detect(empty) == [] and alerts(empty) == []
    with pytest.raises(ConfigError, match=r"since: '1/3/24' is not a date; use YYYY-MM-DD"): anomalies(empty, since="1/3/24")
    off = load_config(None, {"database.duckdb.database_path": str(tmp_path / "empty.duckdb"), "anomalies.enabled": "false"}, environ={})
    assert update_anomalies(off) == []
    con = connect(off, read_only=True)
    try: assert not con.execute(f"SELECT count(*) FROM information_schema.tables WHERE table_name = '{TABLE}'").fetchall()[0][0]
    finally: con.close()
