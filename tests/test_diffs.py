"""Restatement diffs on real loads: the real legacy CUR sample delivered for 2023-11, then re-delivered with other days and
restated amounts; every expected delta is worked out here from the two deliveries' own CSV files, exactly."""
from datetime import date, timedelta
from decimal import Context, Decimal

import pytest

import cur_fixtures as cf
from finops_nb import diffs
from finops_nb.aws.manifests import aws_export
from finops_nb.config import load_config
from finops_nb.core import ConfigError, InputError
from finops_nb.localdb import build_focus, connect
from helpers import config, query, run

EXACT = Context(prec=100)
PERIOD = "2023-11"
FIRST = lambda r: r["lineItem/UsageStartDate"] < "2023-11-10"  # noqa: E731  (the sample's original rows: Nov 1 to 9)
SECOND = lambda r: r["lineItem/UsageStartDate"] >= "2023-11-03"  # noqa: E731  (Nov 3 to 14: two days gone, five new)
BUMP = {"AWS Glue": Decimal("0.0000000001"), "Amazon Simple Queue Service": Decimal("-0.000000000000000007")}  # restated amounts, per row


def deliver(root, assembly_id, rows, bump=None, **kw):
    "One legacy CUR delivery of 2023-11 from the real sample; `bump` adds an exact amount to the cost of each row of some services."
    d = cf.build_v1_csv(root, assembly_id=assembly_id, files=2, rows=rows, **kw)
    for key in d.data_keys if bump else ():
        header, rows_ = cf.read_csv_gz(root / key)
        cost, svc = header.index("lineItem/UnblendedCost"), header.index("product/ProductName")
        for r in rows_:
            if r[svc] in bump: r[cost] = format(EXACT.add(Decimal(r[cost]), bump[r[svc]]), "f")
        cf._write_bytes(root, key, cf._gzip(cf._csv_bytes(header, rows_)))
    return d


def source_rows(d):
    "Every row of a delivery's files as {header: text}."
    out = []
    for key in d.data_keys:
        header, rows = cf.read_csv_gz(d.root / key)
        out += [dict(zip(header, r)) for r in rows]
    return out


DIM = {"account": lambda r: r["bill/PayerAccountId"], "sub_account": lambda r: r["lineItem/UsageAccountId"],
       "service": lambda r: r["product/ProductName"] or r["lineItem/ProductCode"],
       "charge_category": lambda r: {"Usage": "Usage", "Tax": "Tax"}[r["lineItem/LineItemType"]],
       "day": lambda r: date.fromisoformat(r["lineItem/UsageStartDate"][:10])}


def groups(d, by):
    "{(dimension values…, currency): [rows, cost]} of a delivery, summed from its files' text (a legacy CUR Usage or Tax line's BilledCost "
    "and EffectiveCost are both its UnblendedCost)."
    out = {}
    for r in source_rows(d):
        g = out.setdefault(tuple(DIM[b](r) for b in by) + (r["lineItem/CurrencyCode"],), [0, Decimal(0)])
        g[0] += 1
        g[1] = EXACT.add(g[1], Decimal(r["lineItem/UnblendedCost"]))
    return out


def expected(old, new, by):
    "{group: (Δrows, Δcost)} of the groups that changed, from the files."
    a, b = groups(old, by), groups(new, by)
    out = {}
    for g in a.keys() | b.keys():
        n0, c0 = a.get(g, (0, Decimal(0)))
        n1, c1 = b.get(g, (0, Decimal(0)))
        if (n0, c0) != (n1, c1): out[g] = (n1 - n0, EXACT.subtract(c1, c0))
    return out


def got(d):
    "{group: (Δrows, ΔBilledCost)} of a diff, checking that EffectiveCost changed alike (it is BilledCost for these lines)."
    assert all(r["EffectiveCost_delta"] == r["BilledCost_delta"] for r in d)
    return {tuple(r[b] for b in d.by) + (r["currency"],): (r["rows_delta"], r["BilledCost_delta"]) for r in d}


def largest_first(d):
    size = [max(abs(r["BilledCost_delta"]), abs(r["EffectiveCost_delta"])) for r in d]
    return size == sorted(size, reverse=True)


@pytest.fixture(scope="module")
def restated(tmp_path_factory):
    "2023-11 loaded (days 1 to 9), then re-delivered (days 3 to 14, Glue and SQS amounts restated), through extract and load."
    tmp = tmp_path_factory.mktemp("restated")
    cfg = config(tmp)
    first = deliver(tmp / "bucket", "nov-1", FIRST)
    run(cfg)
    second = deliver(tmp / "bucket", "nov-2", SECOND, BUMP)
    (res,) = run(cfg)
    assert (res.action, res.delivery_id) == ("replaced", "nov-2")
    rows = source_rows(first) + source_rows(second)
    assert {r["lineItem/LineItemType"] for r in rows} == {"Usage", "Tax"}  # no commitment lines: EffectiveCost is BilledCost
    return cfg, first, second


def test_the_summary_holds_both_deliveries_exactly(restated):
    cfg, first, second = restated
    eid = aws_export(cfg).id
    con = connect(cfg, read_only=True)
    try: held = diffs.deliveries(con, eid, PERIOD)
    finally: con.close()
    assert [d for d, _ in held] == ["nov-1", "nov-2"] and held[0][1] < held[1][1]
    for d, delivery in ((first, "nov-1"), (second, "nov-2")):
        src = groups(d, ("account", "sub_account", "service", "charge_category", "day"))
        summary = query(cfg, f"SELECT BillingAccountId, SubAccountId, ServiceName, ChargeCategory, day, BillingCurrency, rows, BilledCost, "
                             f"EffectiveCost, invoiced_rows FROM {diffs.SUMMARY} WHERE export_id = ? AND delivery_id = ?", [eid, delivery])
        assert {tuple(g): [n, b] for *g, n, b, e, inv in summary} == src
        assert all(b == e and inv == 0 for *_, b, e, inv in summary)
    assert sum(n for n, _ in groups(second, ()).values()) == second.row_count
    # the summary is compact: far fewer groups than the rows they sum
    assert query(cfg, f"SELECT count(*) FROM {diffs.SUMMARY}")[0][0] < (first.row_count + second.row_count) / 4


def test_diff_is_the_exact_difference_of_the_two_deliveries(restated):
    cfg, first, second = restated
    d = diffs.diff(cfg, PERIOD)
    assert (d.export_id, d.from_id, d.to_id, d.by) == (aws_export(cfg).id, "nov-1", "nov-2", diffs.DEFAULT_BY)
    want = expected(first, second, diffs.DEFAULT_BY)
    assert got(d) == want and largest_first(d)
    assert any(n > 0 for n, _ in want.values()) and any(c < 0 for _, c in want.values())  # groups grew and shrank
    total = EXACT.subtract(sum((Decimal(r["lineItem/UnblendedCost"]) for r in source_rows(second)), Decimal(0)),
                           sum((Decimal(r["lineItem/UnblendedCost"]) for r in source_rows(first)), Decimal(0)))
    (usd,) = d.totals().values()
    assert usd == {"rows_delta": second.row_count - first.row_count, "BilledCost_delta": total, "EffectiveCost_delta": total}
    text = str(d)
    assert text.splitlines()[0].endswith(f"{len(d)} groups changed") and diffs.plain(total, sign=True) in text.splitlines()[-1]
    assert [r["BilledCost_delta"] for r in diffs.diff_records(d)] == [diffs.plain(r["BilledCost_delta"]) for r in d]


@pytest.mark.parametrize("by", [("day",), ("sub_account", "day"), ("service",), ("account", "service", "charge_category", "day"), ()])
def test_diff_by_other_dimensions(restated, by):
    cfg, first, second = restated
    d = diffs.diff(cfg, PERIOD, export_id=aws_export(cfg).id, by=",".join(by))
    assert d.by == by and got(d) == expected(first, second, by) and largest_first(d)
    if by == ("day",):  # Nov 1-2 gone, 10-14 new; Nov 3-9 changed by the restated Glue and SQS amounts alone, to the last digit
        bumped = {}
        for r in source_rows(second):
            day = DIM["day"](r)
            if r["product/ProductName"] in BUMP and day < date(2023, 11, 10):
                bumped[(day, "USD")] = (0, EXACT.add(bumped.get((day, "USD"), (0, Decimal(0)))[1], BUMP[r["product/ProductName"]]))
        mid = {g: v for g, v in got(d).items() if date(2023, 11, 3) <= g[0] < date(2023, 11, 10)}
        assert mid == bumped and len(mid) >= 5
        assert {g[0] for g in got(d)} - set(g[0] for g in mid) == {date(2023, 11, x) for x in (1, 2, 10, 11, 12, 13, 14)}


def test_diff_named_deliveries_and_mistakes(restated):
    cfg, first, second = restated
    back = diffs.diff(cfg, PERIOD, from_id="nov-2", to_id="nov-1", by=("service",))
    assert got(back) == {g: (-n, -c) for g, (n, c) in expected(first, second, ("service",)).items()}
    assert got(diffs.diff(cfg, PERIOD, from_id="nov-1", by=("service",))) == expected(first, second, ("service",))
    with pytest.raises(InputError, match=r"no delivery 'nov-9' recorded \(--to\); recorded, oldest first: nov-1, nov-2"):
        diffs.diff(cfg, PERIOD, to_id="nov-9")
    with pytest.raises(InputError, match="no delivery recorded before 'nov-1'"):
        diffs.diff(cfg, PERIOD, to_id="nov-1")
    with pytest.raises(InputError, match="2023-12: no export has two deliveries of it recorded"):
        diffs.diff(cfg, "2023-12")
    with pytest.raises(ConfigError, match="by: 'region' is not a dimension of a diff"):
        diffs.diff(cfg, PERIOD, by="service,region")
    with pytest.raises(ConfigError, match="period: '2023/11' is not a billing period"):
        diffs.diff(cfg, "2023/11")


def test_restatements_report_and_alerts(restated):
    cfg, first, second = restated
    eid = aws_export(cfg).id
    (r,) = diffs.restatements(cfg)
    total = EXACT.subtract(sum((c for _, c in groups(second, ()).values()), Decimal(0)), sum((c for _, c in groups(first, ()).values()), Decimal(0)))
    assert (r.export_id, r.period, r.from_id, r.to_id, r.closed) == (eid, PERIOD, "nov-1", "nov-2", True)
    assert r.totals["USD"]["rows_from"] == first.row_count and r.totals["USD"]["rows_to"] == second.row_count
    assert r.totals["USD"]["BilledCost_delta"] == r.totals["USD"]["EffectiveCost_delta"] == total and r.largest() == abs(total)
    assert r.invoiced.startswith("its period ended") and r.replaced_at - diffs.period_end(PERIOD) > timedelta(days=10)
    assert diffs.restatements(cfg, invoice_days=10 ** 6)[0].invoiced == ""  # ended, but not long enough ago to count as invoiced
    assert diffs.restatements(cfg, since=r.replaced_at + timedelta(microseconds=1)) == []
    assert [x.key for x in diffs.restatements(cfg, since=r.replaced_at)] == [f"restatement/{eid}/{PERIOD}/nov-2"]
    text = diffs.restatements_text([r])
    assert "INVOICED" in text and f"rows {first.row_count} → {second.row_count}" in text and diffs.plain(total, sign=True) in text
    assert "<b>INVOICED</b>" in diffs.restatements_html([r])
    con = connect(cfg, read_only=True)
    try:
        low = load_config(None, {"alerts.restatement_threshold": str(abs(total))}, environ={})
        high = load_config(None, {"alerts.restatement_threshold": str(abs(total) + Decimal("0.000000001"))}, environ={})
        (a,) = diffs.alerts(low, con)
        assert diffs.alerts(high, con) == []
    finally: con.close()
    assert (a["key"], a["kind"]) == (f"restatement/{eid}/{PERIOD}/nov-2", "restatement")
    assert a["title"].startswith(f"{eid} {PERIOD} restated after it was invoiced: ") and a["data"]["totals"]["USD"]["BilledCost_delta"] == diffs.plain(total)


def test_a_database_loaded_before_summaries_still_yields_a_diff(tmp_path):
    # the first delivery carries its invoice id (the sample's empty bill/InvoiceId set aside, a filled one added)
    cfg = config(tmp_path)
    move = lambda h: [c + "Before" if c == "bill/InvoiceId" else c for c in h]  # noqa: E731
    first = deliver(tmp_path / "bucket", "nov-1", FIRST, header_transform=move, extra_columns={"bill/InvoiceId": "EUINGB23-000123"})
    run(cfg)
    con = connect(cfg)
    try: con.execute(f"DROP TABLE {diffs.SUMMARY}")  # as the previous version left it: FOCUS rows, no summaries
    finally: con.close()
    second = deliver(tmp_path / "bucket", "nov-2", SECOND, BUMP)
    run(cfg)
    d = diffs.diff(cfg, PERIOD, by=("service", "day"))
    assert (d.from_id, d.to_id) == ("nov-1", "nov-2") and got(d) == expected(first, second, ("service", "day"))
    built = dict(query(cfg, "SELECT delivery_id, max(built_at) FROM finops_focus_log GROUP BY 1"))
    summarised = query(cfg, f"SELECT delivery_id, max(built_at) FROM {diffs.SUMMARY} GROUP BY 1 ORDER BY 2")
    assert [i for i, _ in summarised] == ["nov-1", "nov-2"] and summarised[0][1] == built["nov-1"]  # the old side: when it was built
    (r,) = diffs.restatements(cfg, invoice_days=10 ** 6)
    assert r.invoiced == "its rows carry InvoiceId EUINGB23-000123"
    assert query(cfg, f"SELECT sum(invoiced_rows) FROM {diffs.SUMMARY} WHERE delivery_id = 'nov-1'") == [(first.row_count,)]
    # building the held delivery again (a new mapping version, or `finops focus build`) writes its summary again, no new restatement
    con = connect(cfg)
    try: build_focus(con, aws_export(cfg), [PERIOD])
    finally: con.close()
    assert [(x.from_id, x.to_id) for x in diffs.restatements(cfg)] == [("nov-1", "nov-2")]
    assert got(diffs.diff(cfg, PERIOD, by=("service", "day"))) == got(d)
