"""The insight commands as a user runs them (`finops` subprocesses) on a real database: a run that loads, then one that
re-delivers a closed month; the restatement told once to a local webhook, kept while the webhook is down (exit 75);
`finops diff`, `finops budgets`, `finops anomalies` in each format."""
import csv, io, json, threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import cur_fixtures as cf
from helpers import cli, config, query, write_toml


class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        status = self.server.answers.pop(0) if self.server.answers else 200
        if status == 200: self.server.got.append(json.loads(body))
        self.send_response(status); self.send_header("Content-Length", "2"); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *args): pass


@pytest.fixture
def hook():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    srv.got, srv.answers, srv.daemon_threads = [], [], True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown(); srv.server_close()


def finops(path, *args):
    r = cli("--config", path, *args)
    return r.returncode, r.stdout, r.stderr


def test_a_restated_closed_month_is_told_once_diffed_exactly_and_budgeted(tmp_path, hook):
    token = "T0/B0/s3cr3t-token"
    cfg = config(tmp_path, **{"alerts.webhook_url": f"http://127.0.0.1:{hook.server_address[1]}/hooks/{token}", "alerts.webhook_format": "json",
                              "alerts.restatement_threshold": "0.01", "alerts.timeout": 5,
                              "budgets": ({"name": "all of it", "amount": "1000", "currency": "USD",
                                           "thresholds": [{"percent": 1, "on": "actual"}]},)})
    path = write_toml(cfg, tmp_path / "config.toml")
    cf.build_v1_csv(tmp_path / "bucket", period="2023-10", assembly_id="oct-a", files=1, rows=300)
    code, out, err = finops(path, "aws", "run-pipeline")
    assert code == 0, out + err
    first = len(hook.got)  # a first load restates nothing (budget thresholds of this month: none, the data is of 2023)
    assert not any(a["kind"] == "restatement" for m in hook.got for a in m["alerts"])
    # AWS re-delivers October, long closed, with other rows: one alert, with the exact change
    cf.build_v1_csv(tmp_path / "bucket", period="2023-10", assembly_id="oct-b", files=1, rows=slice(50, 420))
    before = query(cfg, "SELECT sum(BilledCost) FROM focus WHERE x_BillingPeriod = '2023-10'")[0][0]
    hook.answers = [500]  # the webhook is down: the run loads, then exits 75 and keeps the alert
    code, out, err = finops(path, "aws", "run-pipeline")
    assert code == 75 and "webhook" in err.lower() and token not in out + err, out + err
    assert len(hook.got) == first
    after = query(cfg, "SELECT sum(BilledCost) FROM focus WHERE x_BillingPeriod = '2023-10'")[0][0]
    assert query(cfg, "SELECT DISTINCT x_DeliveryId FROM focus WHERE x_BillingPeriod = '2023-10'") == [("oct-b",)]
    code, out, err = finops(path, "alerts", "send")
    assert code == 0, out + err
    told = [a for m in hook.got[first:] for a in m["alerts"] if a["kind"] == "restatement"]
    assert len(told) == 1 and "2023-10" in told[0]["title"], told
    code, out, err = finops(path, "alerts", "send")  # nothing new
    assert code == 0 and sum(a["kind"] == "restatement" for m in hook.got for a in m["alerts"]) == 1
    # the diff: exact deltas, largest first, summing to the change of the month
    code, out, err = finops(path, "diff", "2023-10", "--format", "json")
    assert code == 0, err
    groups = json.loads(out)
    assert sum(Decimal(g["BilledCost_delta"]) for g in groups) == after - before != 0
    deltas = [abs(Decimal(g["EffectiveCost_delta"])) for g in groups]
    assert deltas == sorted(deltas, reverse=True)
    code, out, err = finops(path, "diff", "2023-10", "--by", "service,day", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and {"service", "day"} <= set(rows[0]) and sum(Decimal(r["BilledCost_delta"]) for r in rows) == after - before
    code, out, err = finops(path, "diff", "2023-13")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "2023-13" in err
    # the budget of October: month to date exact from the FOCUS rows
    code, out, err = finops(path, "budgets", "--month", "2023-10", "--format", "json")
    assert code == 0, err
    (b,) = json.loads(out)
    spent = query(cfg, "SELECT sum(EffectiveCost) FROM focus WHERE ChargePeriodStart >= TIMESTAMPTZ '2023-10-01 00:00:00+00' "
                       "AND ChargePeriodStart < TIMESTAMPTZ '2023-11-01 00:00:00+00' AND BillingCurrency = 'USD'")[0][0]
    assert Decimal(b["actual"]) == spent and "all of it" in json.dumps(b), b
    code, out, err = finops(path, "budgets", "--month", "2023-10")
    assert code == 0 and "all of it" in out
    # anomalies: the formats (a month of sample data has too little history for a baseline)
    code, out, err = finops(path, "anomalies", "--format", "json")
    assert code == 0 and isinstance(json.loads(out), list), err
    code, out, err = finops(path, "anomalies", "--format", "csv")
    assert code == 0 and {"date", "expected", "actual", "impact", "status"} <= set(out.splitlines()[0].split(",")), out
