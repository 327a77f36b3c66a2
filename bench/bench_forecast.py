"""Budgets benchmark: how close the month-end forecast of `finops_nb.budgets` is, on daily cost series with a known truth.

    .venv/bin/python bench/bench_forecast.py               # 100 series of each kind, ~3 min on 2 busy cores
    .venv/bin/python bench/bench_forecast.py --series 10   # a quick check that it runs (~15 s)

A generator writes six months (2025-01 .. 2025-06) of daily cost per series, nine kinds: `seasonal` (a level times
a weekly pattern, weekends lower, and noise), `trend` (that, growing or shrinking up to 0.8 %/day), `spikes` (a
day in 25 four to five times as dear), `level_shift` (one or two steps to 0.5-0.8x or 1.25-2x), `ramp` (a slow ramp
to 0.5-2.5x over 15-45 days), `new_service` and `dying_service` (a second service appearing, or stopping), `zero_days`
(weekdays only, and 1 day in 20 with no cost at all) and `mixed` (the sum of 3-6 services of the kinds above).
Every month from February on is forecast as of its day 7, 14 and 21 from the data up to that day: the 8 weeks
before the month (`HISTORY_DAYS`) and the month so far, whose last two days are still growing (the last holds
10-80 % of its cost, the one before 60-100 %), as a provider's export delivers them. The error is the forecast P50
against the month's true total (MAPE, %), and the P90 coverage is the share of months whose true total is at most
the forecast P90 (0.9 is right; more is a P90 wider than it needs to be). Each method is given the same days, and
each takes a growing day as at least what it holds:

- `finops_nb` : `finops_nb.budgets.project`, what `budget_status` runs (robust weekly Holt-Winters, P90 from its
  own error propagation);
- `run rate`  : the month's mean complete day times the days left (the usual "linear" projection; P90 from the
  daily standard deviation times sqrt(days left));
- `last 7`    : the mean of the last 7 complete days times the days left;
- `weekday`   : each day left at the mean of the last two of the same weekday;
- ablations of `finops_nb`: without the persistent-error term of its P90 (`bias_days=0`), and with the growing
  days taken as complete (no provisional days).

A last row forecasts the first month of `seasonal` series, with no history at all (a new account).
Then (unless `--no-check`) three series go through a real `focus` table, and `budget_status` must give the P50 and
P90 this script computes, to the cent; and `budget_status` is timed for five budgets over a `focus` table of `--rows`
generated rows (1M by default; 3 runs, in this process). Results: bench/.data/results/forecast-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import calendar
import json
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import finops_version, machine, save  # noqa: E402
from finops_nb.budgets import HISTORY_DAYS, Z90, project  # noqa: E402

YEAR, MONTHS, GROW, DAYS = 2025, 6, 2, (7, 14, 21)
START = date(YEAR, 1, 1)
KINDS = ("seasonal", "trend", "spikes", "level_shift", "ramp", "new_service", "dying_service", "zero_days", "mixed")
SPANS = []  # (first index, days) of each month
for _m in range(1, MONTHS + 1):
    SPANS.append((sum(d for _, d in SPANS), calendar.monthrange(YEAR, _m)[1]))
N = sum(d for _, d in SPANS)
WEEKDAY = np.array([(START + timedelta(i)).weekday() for i in range(N)])


# --- the generator -------------------------------------------------------------------------------------------

def component(kind: str, rng, level: float) -> np.ndarray:
    "One service's daily cost over the six months: `level` times a weekly pattern, shaped by `kind`, with noise."
    f = 1 + rng.normal(0, 0.04, 7)
    f[5:] *= rng.uniform(0.4, 0.9)  # weekends
    s, t = f[WEEKDAY], np.arange(N)
    noise = np.exp(rng.normal(0, rng.uniform(0.02, 0.08), N))
    x = level * s
    if kind == "trend": x = x * np.exp(rng.uniform(-0.004, 0.008) * t)
    elif kind == "spikes": x = x + level * (rng.random(N) < 0.04) * rng.uniform(1, 5, N)
    elif kind == "level_shift":
        for _ in range(rng.integers(1, 3)):
            x[rng.integers(20, N):] *= rng.choice([rng.uniform(0.5, 0.8), rng.uniform(1.25, 2.0)])
    elif kind == "ramp":
        d, length = rng.integers(0, N - 15), rng.integers(15, 46)
        x = x * np.interp(t, [d, d + length], [1, rng.uniform(0.5, 2.5)])
    elif kind == "new_service":
        d = rng.integers(20, N)
        x = x + level * rng.uniform(0.2, 1.0) * s * np.clip((t - d + 1) / rng.integers(1, 5), 0, 1)
    elif kind == "dying_service":
        x = x + level * rng.uniform(0.2, 1.0) * s * (t < rng.integers(20, N))
    elif kind == "zero_days": x = x * (WEEKDAY < 5) * (rng.random(N) > 0.05)
    return np.maximum(x * noise, 0)


def series(kind: str, rng) -> np.ndarray:
    "A series of `kind`: one component, or for `mixed` the sum of 3-6 of the others."
    level = float(np.exp(rng.uniform(np.log(20), np.log(5000))))
    if kind != "mixed": return component(kind, rng, level)
    return sum(component(KINDS[rng.integers(0, len(KINDS) - 1)], rng, level * rng.uniform(0.1, 1)) for _ in range(rng.integers(3, 7)))


# --- what each method is given, as budget_status gives it ----------------------------------------------------

def observed(y, i0, d, rng):
    "The days the data holds on day `d` of the month starting at index `i0`: history and month so far, the last two growing."
    obs = y[max(0, i0 - HISTORY_DAYS):i0 + d].copy()
    obs[-1] *= rng.uniform(0.1, 0.8)
    obs[-2] *= rng.uniform(0.6, 1.0)
    return obs


def trim(x):
    "A series starts at its first cost (as in budget_status)."
    nz = np.flatnonzero(x)
    return x[nz[0]:] if len(nz) else x[:0]


def finops(obs, d, nd, **kw):
    complete, growing = obs[:-GROW], obs[-GROW:]
    p = project(trim(complete), growing, nd - (d - GROW), **kw)
    known = complete[len(complete) - (d - GROW):].sum()
    return known + p.p50, known + p.p90


def finops_no_growing(obs, d, nd):
    p = project(trim(obs), (), nd - d)
    known = obs[len(obs) - d:].sum()
    return known + p.p50, known + p.p90


def _simple(obs, d, nd, per_day):
    "A baseline: `per_day(complete, month's complete days, days left)` → each day left; growing days at least what they hold."
    complete, growing = obs[:-GROW], obs[-GROW:]
    mtd = complete[len(complete) - (d - GROW):]
    left = nd - (d - GROW)
    pred = np.asarray(per_day(complete, mtd, left), float)
    pred[:GROW] = np.maximum(pred[:GROW], growing)
    return mtd.sum() + pred.sum(), pred


def run_rate(obs, d, nd):
    def per_day(c, mtd, left): return np.full(left, (mtd if len(mtd) else c[-7:]).mean())
    p50, pred = _simple(obs, d, nd, per_day)
    base = obs[:-GROW][len(obs) - GROW - (d - GROW):]
    sd = float(np.std(base if len(base) > 1 else obs[:-GROW][-7:]))
    return p50, p50 + Z90 * sd * np.sqrt(len(pred))


def last7(obs, d, nd):
    return _simple(obs, d, nd, lambda c, mtd, left: np.full(left, c[-7:].mean()))[0], None


def weekday(obs, d, nd):
    def per_day(c, mtd, left):
        n = len(c)
        same = ([c[i] for i in range(n + k - 7 * (1 + k // 7), -1, -7)][:2] for k in range(left))
        return [np.mean(v) if v else c.mean() for v in same]  # no same weekday yet (a first week): the mean day
    return _simple(obs, d, nd, per_day)[0], None


METHODS = {"finops_nb": finops, "run rate": run_rate, "last 7": last7, "weekday": weekday,
           "finops_nb, no persistent-error term": lambda o, d, nd: finops(o, d, nd, bias_days=0),
           "finops_nb, growing days taken as complete": finops_no_growing}


# --- the benchmark -------------------------------------------------------------------------------------------

def evaluate(per_kind: int, seed: int) -> dict:
    "{method: {kind: {day: (MAPE %, P90 coverage or None, forecasts)}}}, plus the no-history row under kind 'seasonal, first month'."
    out = {m: {} for m in METHODS}
    for kind in KINDS + ("seasonal, first month",):
        rng = np.random.default_rng([seed, len(kind), sum(map(ord, kind))])
        err = {m: {d: [] for d in DAYS} for m in METHODS}
        cov = {m: {d: [] for d in DAYS} for m in METHODS}
        for _ in range(per_kind):
            y = series("seasonal" if kind.startswith("seasonal") else kind, rng)
            spans = SPANS[:1] if kind == "seasonal, first month" else SPANS[1:]
            for i0, nd in spans:
                total = y[i0:i0 + nd].sum()
                if total <= 0: continue
                for d in DAYS:
                    obs = observed(y, i0, d, rng)
                    for m, f in METHODS.items():
                        p50, p90 = f(obs, d, nd)
                        err[m][d].append(abs(p50 - total) / total)
                        if p90 is not None: cov[m][d].append(total <= p90)
        for m in METHODS:
            out[m][kind] = {d: (100 * float(np.mean(err[m][d])), float(np.mean(cov[m][d])) if cov[m][d] else None, len(err[m][d])) for d in DAYS}
    return out


def check_budget_status(seed: int) -> list:
    "Three series through a real `focus` table: budget_status's P50 and P90 against this script's, to the cent."
    import duckdb
    from finops_nb.config import load_config
    from finops_nb.focus import ensure_focus
    from finops_nb.budgets import budget_status
    rng, out = np.random.default_rng(seed), []
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(None, {"database.duckdb.database_path": f"{tmp}/f.duckdb",
                                 "budgets": json.dumps([{"name": "all", "amount": 1000}])}, environ={})
        for kind, (i0, nd), d in (("seasonal", SPANS[2], 7), ("spikes", SPANS[3], 14), ("mixed", SPANS[4], 21)):
            obs = np.round(observed(series(kind, rng), i0, d, rng), 10)
            first = START + timedelta(max(0, i0 - HISTORY_DAYS))
            con = duckdb.connect(f"{tmp}/f.duckdb")
            con.execute("DROP TABLE IF EXISTS focus")
            ensure_focus(con)
            con.executemany("INSERT INTO focus (ProviderName, BillingCurrency, EffectiveCost, ChargePeriodStart, ChargePeriodEnd, "
                            "ChargeFrequency, x_ExportId) VALUES ('AWS', 'USD', ?, ?, ?, 'Usage-Based', 'e')",
                            [(Decimal(f"{v:.10f}"), datetime.combine(first + timedelta(i), datetime.min.time()),
                              datetime.combine(first + timedelta(i + 1), datetime.min.time())) for i, v in enumerate(obs)])
            today = START + timedelta(i0 + d - 1)
            (st,) = budget_status(cfg, con, today=today, provisional_days=GROW)
            con.close()
            p50, p90 = finops(obs, d, nd)
            mine = (Decimal(p50).quantize(Decimal("0.01")), Decimal(p90).quantize(Decimal("0.01")))
            out.append({"kind": kind, "as_of": str(today), "budget_status": [str(st.p50), str(st.p90)], "script": [str(x) for x in mine],
                        "same": abs(st.p50 - mine[0]) <= Decimal("0.01") and abs(st.p90 - mine[1]) <= Decimal("0.01")})
    return out


def time_budget_status(rows: int, repeats: int = 3) -> dict:
    "Seconds `budget_status` takes for five budgets over a `focus` table of `rows` rows (three months, 4 providers' worth of columns)."
    import duckdb
    from finops_nb.config import load_config
    from finops_nb.focus import ensure_focus
    from finops_nb.budgets import budget_status
    budgets = [{"name": "all", "amount": 1e6}, {"name": "aws", "amount": 1e5, "provider": "aws"},
               {"name": "ec2", "amount": 1e5, "service": ["Amazon EC2", "Amazon RDS"], "region": "us-east-1"},
               {"name": "team", "amount": 1e5, "tags": ["team=t3"]}, {"name": "acct", "amount": 1e4, "billing_account": "a7", "tags": ["env=dev"]}]
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/f.duckdb"
        con = duckdb.connect(path)
        ensure_focus(con)
        t = time.perf_counter()
        con.execute(f"""INSERT INTO focus (ProviderName, BillingAccountId, ServiceName, RegionId, Tags, BillingCurrency, EffectiveCost, BilledCost,
                ChargePeriodStart, ChargePeriodEnd, ChargeFrequency, x_ExportId)
            SELECT ['AWS', 'Microsoft', 'Google Cloud'][1 + i % 3], 'a' || (i % 10), ['Amazon EC2', 'Amazon RDS', 'Amazon S3', 'Compute'][1 + i % 4],
                   ['us-east-1', 'eu-west-1'][1 + i % 2], json_object('team', 't' || (i % 7), 'env', ['prod', 'dev'][1 + i % 2]), 'USD',
                   CAST(random() * 10 AS DECIMAL(38,28)), CAST(random() * 10 AS DECIMAL(38,28)),
                   TIMESTAMP '2025-01-01' + INTERVAL (i % 2160) HOUR, TIMESTAMP '2025-01-01' + INTERVAL (i % 2160 + 1) HOUR, 'Usage-Based', 'e' || (i % 3)
            FROM range({rows}) r(i)""")
        gen = time.perf_counter() - t
        con.close()
        cfg = load_config(None, {"database.duckdb.database_path": path, "budgets": json.dumps(budgets)}, environ={})
        secs = []
        for _ in range(repeats):
            t = time.perf_counter()
            sts = budget_status(cfg, today=date(2025, 3, 20))
            secs.append(time.perf_counter() - t)
        assert all(s.actual > 0 for s in sts), [(s.budget.name, s.actual) for s in sts]
    return {"rows": rows, "budgets": len(budgets), "generate_s": gen, "seconds": secs, "median_s": float(np.median(secs))}


def table(res: dict, methods, kinds) -> str:
    head = "| method | kind | " + " | ".join(f"MAPE day {d}" for d in DAYS) + " | " + " | ".join(f"P90 cov. day {d}" for d in DAYS) + " |"
    rows = [head, "|" + " --- |" * (2 + 2 * len(DAYS))]
    for m in methods:
        for k in kinds:
            v = res[m][k]
            rows.append(f"| {m} | {k} | " + " | ".join(f"{v[d][0]:.2f} %" for d in DAYS) + " | "
                        + " | ".join("–" if v[d][1] is None else f"{v[d][1]:.2f}" for d in DAYS) + " |")
    return "\n".join(rows)


def with_all(res: dict) -> dict:
    "Add kind 'all kinds' (the mean over the nine kinds, each weighing the same)."
    for m, by in res.items():
        ks = [by[k] for k in KINDS]
        by["all kinds"] = {d: (float(np.mean([k[d][0] for k in ks])),
                               None if ks[0][d][1] is None else float(np.mean([k[d][1] for k in ks])), sum(k[d][2] for k in ks)) for d in DAYS}
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--series", type=int, default=100, help="series per kind (default 100: 500 months each)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-check", action="store_true", help="skip the budget_status consistency check")
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows of the focus table budget_status is timed on (0: not timed)")
    a = ap.parse_args()
    t0 = time.time()
    res = with_all(evaluate(a.series, a.seed))
    secs = time.time() - t0
    check = [] if a.no_check else check_budget_status(a.seed)
    timing = time_budget_status(a.rows) if a.rows else None
    print(f"{machine()}; {finops_version()}; {a.series} series per kind, seed {a.seed}; {secs:.0f} s\n")
    print(table(res, list(METHODS)[:4], ("seasonal", "all kinds")), "\n")
    print(table(res, list(METHODS)[4:], ("seasonal", "all kinds")), "\n")
    print(table(res, ["finops_nb"], KINDS + ("seasonal, first month",)), "\n")
    d21 = res["finops_nb"]["seasonal"][21][0]
    print(f"target MAPE <= 5 % at day 21 on seasonal series: {d21:.2f} % ({'met' if d21 <= 5 else 'NOT met'})")
    for c in check: print(f"budget_status check {c['kind']} as of {c['as_of']}: {c['budget_status']} vs {c['script']}: {'same' if c['same'] else 'DIFFERENT'}")
    if timing: print(f"budget_status, {timing['budgets']} budgets over {timing['rows']:,} focus rows: median {timing['median_s']:.2f} s "
                     f"of {len(timing['seconds'])} ({', '.join(f'{x:.2f}' for x in timing['seconds'])})")
    path = save("forecast", {"machine": machine(), "version": finops_version(), "series_per_kind": a.series, "seed": a.seed, "seconds": secs,
                             "results": {m: {k: {str(d): v for d, v in by.items()} for k, by in r.items()} for m, r in res.items()},
                             "check": check, "timing": timing})
    print(f"results: {path}")


if __name__ == "__main__":
    main()
