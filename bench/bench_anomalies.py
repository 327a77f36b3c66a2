"""Anomaly detection benchmark: generated daily cost series with known anomalies, scored by finops_nb.anomalies and by
two classic baselines (a weekday median/MAD and STL from statsmodels), and the library's `detect` end to end on a DuckDB
`focus` table. See bench/README.md, "Anomalies", for what counts as a true positive and for the results.

    .venv/bin/python bench/bench_anomalies.py                     # 3 seeds x 200 series, all methods, e2e (~3 min)
    .venv/bin/python bench/bench_anomalies.py --seeds 5 --no-stl  # more seeds, without the slow STL
    .venv/bin/python bench/bench_anomalies.py --sweep             # the detector at other thresholds
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from finops_nb.anomalies import Params, _flags, _Model, _nanmedian, _windows, score_series  # noqa: E402

DAYS = 182
KINDS = ("spike", "dip", "burst", "shift", "ramp", "death")
SHIFTS = ("shift", "ramp", "death")  # changes that stay: "alerts per level shift" counts the episodes after them


# ----------------------------------------------------------------------------------------------------------------------
# The generator
# ----------------------------------------------------------------------------------------------------------------------
@dataclass
class Event:
    kind: str            # spike (1-3 days up), dip (1-2 days down, to zero at most), burst (5-10 days up: an incident, fixed),
                         # shift (a permanent level change), ramp (a change reached over 7-21 days), death (to zero for good)
    start: int           # first day of the effect (index in the series)
    end: int             # last day of the effect
    size: float          # relative size: +0.5 is x1.5, -1 is to zero
    length: int = 0      # days of a ramp
    onset: int = -1      # first day the effect is above both thresholds (-1: never)
    grade: str = ""      # positive (above both thresholds x1.2 on some day), borderline (x1/1.2 to x1.2), small (below)


@dataclass
class Series:
    y: np.ndarray        # daily costs, rounded to cents, zero before the series starts
    weekday0: int        # weekday of day 0
    pattern: str         # flat, weekly, weekdays (nothing at weekends) or intermittent (cost on 30-60 % of the days)
    sigma: float         # the noise (lognormal, relative)
    growth: float        # the trend, per day
    events: list = field(default_factory=list)


def _effect(ev: Event, n: int) -> np.ndarray:
    "The multiplier of one event alone."
    t, m = np.arange(n), np.ones(n)
    if ev.kind in ("spike", "dip", "burst"): m[ev.start:ev.end + 1] = 1 + ev.size
    elif ev.kind == "shift": m[ev.start:] = 1 + ev.size
    elif ev.kind == "death": m[ev.start:] = 0.0
    elif ev.kind == "ramp": m = 1 + np.clip((t - ev.start + 1) / ev.length, 0, 1) * ev.size
    return m


def generate(seed: int, n_series=200, days=DAYS, rel=0.3, abs_=25.0, margin=1.2) -> list:
    """Daily cost series with ground truth: weekly patterns, noise, trend, spikes, dips, bursts, level shifts (30 % of them
    followed by another event 8 to 14 days later), slow ramps, new services (12 %: they start on a day between 30 and
    `days` - 40) and dying ones (6 %), zero days."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_series):
        wd0 = int(rng.integers(7))
        start = 0 if rng.random() > 0.12 else int(rng.integers(30, days - 40))
        n = days - start
        t = np.arange(n)
        wd = (wd0 + start + t) % 7
        level = float(np.exp(rng.uniform(np.log(10), np.log(5000))))
        week, u = np.ones(7), rng.random()
        pattern = "flat" if u < 0.35 else "weekly" if u < 0.75 else "weekdays" if u < 0.9 else "intermittent"
        if pattern == "weekly": week[5:] = rng.uniform(0.4, 0.9)
        if pattern == "weekdays": week[5:] = 0.0
        g = float(np.clip(rng.normal(0, 0.002), -0.005, 0.005))
        clean = level * week[wd] * np.exp(g * t)
        active = rng.random(n) < rng.uniform(0.3, 0.6) if pattern == "intermittent" else np.ones(n, bool)
        sigma = float(rng.uniform(0.01, 0.10))
        events, t_next = [], 28  # nothing in the first 4 weeks of a series
        for _e in range(int(rng.integers(0, 4)) if pattern != "intermittent" else int(rng.integers(0, 2))):
            if t_next >= n - 10: break
            s0 = int(rng.integers(t_next, min(n - 5, t_next + 60)))
            kind = rng.choice(["spike", "spike", "dip", "shift", "ramp", "burst"]) if pattern != "intermittent" else "spike"
            size = float(np.exp(rng.uniform(np.log(0.1), np.log(3.0))))
            if kind == "spike":
                e0 = min(n - 1, s0 + int(rng.integers(1, 4)) - 1); events.append(Event("spike", s0, e0, size)); t_next = e0 + 21
            elif kind == "dip":
                e0 = min(n - 1, s0 + int(rng.integers(1, 3)) - 1); events.append(Event("dip", s0, e0, -min(1.0, size))); t_next = e0 + 21
            elif kind == "burst":
                e0 = min(n - 1, s0 + int(rng.integers(5, 11)) - 1); events.append(Event("burst", s0, e0, size)); t_next = e0 + 28
            elif kind == "shift":
                sz = size if rng.random() < 0.6 else -min(0.8, size / (1 + size))
                events.append(Event("shift", s0, n - 1, sz)); t_next = s0 + (42 if rng.random() < 0.7 else int(rng.integers(8, 15)))
            else:
                L = int(rng.integers(7, 22)); events.append(Event("ramp", s0, n - 1, size, length=L)); t_next = s0 + L + 42
        if rng.random() < 0.06 and t_next < n - 5:
            events.append(Event("death", int(rng.integers(t_next, n - 3)), n - 1, -1.0))
        mult = np.prod([_effect(ev, n) for ev in events], axis=0) if events else np.ones(n)
        y = np.round(np.where(active, clean * mult * np.exp(rng.normal(0, sigma, n) - sigma ** 2 / 2), 0.0), 2)
        for ev in events:  # ground truth: the event's effect alone against the series without it, noise-free
            dev = clean * (_effect(ev, n) - 1)
            on = slice(ev.start, ev.end + 1)
            above = lambda k: ((np.abs(dev) >= k * abs_) & (np.abs(dev) >= k * rel * clean) & active)[on]
            ev.onset = int(ev.start + np.argmax(above(1))) if above(1).any() else -1
            ev.grade = "positive" if above(margin).any() else "borderline" if above(1 / margin).any() else "small"
            ev.start, ev.end, ev.onset = ev.start + start, ev.end + start, ev.onset + start if ev.onset >= 0 else -1
        out.append(Series(np.concatenate([np.zeros(start), y]), wd0, pattern, sigma, g, events))
    return out


# ----------------------------------------------------------------------------------------------------------------------
# The methods: each returns the episodes (first day, last day, direction) of one series
# ----------------------------------------------------------------------------------------------------------------------
def ours(y, weekday, p):
    return [(ep.days[0], ep.days[-1], ep.direction) for ep in score_series(y, weekday, p).episodes]


def ours_no_shift(y, weekday, p):
    "The same detector with no level-shift handling: a change becomes normal only as the 14-day median moves."
    return ours(y, weekday, replace(p, confirm=0))


def _episodes(F, y, e, gap):
    "Anomalous days of one direction at most `gap` normal days apart, as in the library (days with nothing expected and nothing spent do not count)."
    eps, cur, quiet = [], None, 0
    for t, f in enumerate(F):
        if f:
            if cur and cur[2] == f and quiet <= gap: cur[1] = t
            else: cur = [t, t, int(f)]; eps.append(cur)
            quiet = 0
        elif cur is not None and not (e[t] == 0 and y[t] == 0): quiet += 1
    return [tuple(c) for c in eps]


def _decide(y, weekday, E, p, scale_days=28):
    """Episodes from a baseline's forecast `E`, by the library's rule: both thresholds and z, the spread being the robust
    spread of the last `scale_days` forecast errors; intermittent stretches handled as the library does."""
    n = len(y)
    m = _Model(y, (weekday + np.arange(n)) % 7, p)
    ei, si, inter = m.expected(0, np.arange(n))
    E = np.where(inter, ei, E)
    err = y - E
    err[:p.min_history] = np.nan
    W = _windows(err, scale_days)
    S = 1.4826 * _nanmedian(np.abs(W - _nanmedian(W)[:, None]))
    S = np.where(inter, si, np.maximum(np.nan_to_num(S), 0.01 * np.abs(E)))
    z, F = _flags(y, E, S, inter, p)
    F[:p.min_history + 7] = 0  # a week of forecast errors before the first score
    return _episodes(F, y, E, p.gap)


def weekday_median(y, weekday, p, weeks=4):
    "Expected: the median of the same weekday over the last 4 weeks."
    E = np.zeros(len(y))
    for k in range(7):
        idx = np.arange(k, len(y), 7)
        E[idx] = np.nan_to_num(_nanmedian(_windows(y[idx], weeks)))
    return _decide(y, weekday, E, p)


def stl(y, weekday, p, window=56):
    "Expected: statsmodels' robust STL (period 7) of the last 8 weeks, its trend extrapolated a day plus last week's seasonal."
    from statsmodels.tsa.seasonal import STL
    E = np.zeros(len(y))
    for t in range(p.min_history, len(y)):
        h = y[max(0, t - window):t]
        if not np.any(h): continue
        res = STL(h, period=7, robust=True).fit()
        E[t] = max(0.0, res.trend[-1] + (res.trend[-1] - res.trend[-8]) / 7 + res.seasonal[-7])
    return _decide(y, weekday, E, p)


METHODS = {"finops_nb": ours, "finops_nb, no shift handling": ours_no_shift, "weekday median/MAD": weekday_median, "STL (statsmodels)": stl}


# ----------------------------------------------------------------------------------------------------------------------
# Scoring against the ground truth
# ----------------------------------------------------------------------------------------------------------------------
def evaluate(series, episodes, N=7, horizon=42) -> dict:
    """An episode is a true positive when it is the first episode of its series and direction to start between an
    injected positive event's first day and N days after its onset; a later one that matches the same event is a
    duplicate (false). One that matches a borderline event is ignored; every other episode is false."""
    out = dict(tp=0, fp=0, dup=0, ignored=0, positives=0, detected=0, delays=[], per_shift=[], per_burst=[],
               by_kind={k: [0, 0] for k in KINDS}, fp_by_pattern={})
    for s, eps in zip(series, episodes):
        matched = set()
        for a, b, d in sorted(eps):
            hit = next((j for j, ev in enumerate(s.events) if ev.start <= a <= (ev.onset if ev.onset >= 0 else ev.start) + N
                        and np.sign(ev.size) == d), None)
            ev = None if hit is None else s.events[hit]
            if ev is not None and ev.grade == "borderline": out["ignored"] += 1
            elif ev is None or ev.grade == "small":
                out["fp"] += 1; out["fp_by_pattern"][s.pattern] = out["fp_by_pattern"].get(s.pattern, 0) + 1
            elif hit in matched: out["dup"] += 1
            else:
                matched.add(hit); out["tp"] += 1
                out["delays"].append((ev.kind, int(a - ev.onset)))
        for j, ev in enumerate(s.events):
            if ev.grade != "positive": continue
            out["positives"] += 1; out["by_kind"][ev.kind][0] += 1
            if j in matched: out["detected"] += 1; out["by_kind"][ev.kind][1] += 1
            if ev.kind in SHIFTS + ("burst",):
                until = min([e.start for e in s.events if e.start > ev.start] + [ev.start + horizon])
                (out["per_shift"] if ev.kind in SHIFTS else out["per_burst"]).append(sum(ev.start <= a < until for a, _, _ in eps))
    return out


def run_method(name, seeds, n_series, p, N):
    agg, secs, days = None, 0.0, 0
    for seed in seeds:
        ss = generate(seed, n_series, rel=float(p.relative), abs_=float(p.absolute))
        eps = []
        t0 = time.perf_counter()
        for s in ss:
            nz = np.flatnonzero(s.y)
            f = int(nz[0]) if len(nz) else len(s.y)
            eps.append([(a + f, b + f, d) for a, b, d in METHODS[name](s.y[f:], (s.weekday0 + f) % 7, p)])
            days += len(s.y) - f
        secs += time.perf_counter() - t0
        r = evaluate(ss, eps, N)
        if agg is None: agg = r
        else:
            for k, v in r.items():
                if isinstance(v, list): agg[k] += v
                elif k == "by_kind": [agg[k][x].__setitem__(i, agg[k][x][i] + v[x][i]) for x in v for i in (0, 1)]
                elif isinstance(v, dict): [agg[k].__setitem__(x, agg[k].get(x, 0) + c) for x, c in v.items()]
                else: agg[k] += v
    P = agg["tp"] / max(1, agg["tp"] + agg["fp"] + agg["dup"])
    R = agg["detected"] / max(1, agg["positives"])
    ds = [d for _, d in agg["delays"]]
    sh = [d for k, d in agg["delays"] if k in SHIFTS]
    return dict(method=name, seeds=len(seeds), series=n_series * len(seeds), precision=P, recall=R, f1=2 * P * R / max(1e-9, P + R),
                tp=agg["tp"], fp=agg["fp"], dup=agg["dup"], ignored=agg["ignored"], positives=agg["positives"],
                alerts_per_shift=float(np.mean(agg["per_shift"])), shifts_over_1=int(sum(k > 1 for k in agg["per_shift"])),
                n_shifts=len(agg["per_shift"]), alerts_per_burst=float(np.mean(agg["per_burst"])),
                delay_mean=float(np.mean(ds)), delay_p90=float(np.percentile(ds, 90)), delay_shift_mean=float(np.mean(sh)) if sh else 0.0,
                us_per_day=1e6 * secs / days, recall_by_kind={k: f"{b}/{a}" for k, (a, b) in agg["by_kind"].items()},
                fp_by_pattern=agg["fp_by_pattern"])


# ----------------------------------------------------------------------------------------------------------------------
# End to end: `detect` on a DuckDB focus table
# ----------------------------------------------------------------------------------------------------------------------
def e2e(n_series, days, seed=11) -> dict:
    "Time `detect` and `update_anomalies` on a focus table of `n_series` generated series x `days` days (two usage rows a day each)."
    import duckdb, pyarrow as pa
    from finops_nb.anomalies import detect, update_anomalies
    from finops_nb.config import load_config
    from finops_nb.focus import COLUMNS, X_COLUMNS, ensure_focus
    ss = generate(seed, n_series, days)
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    cols = {c: [] for c in ("x_ExportId", "ProviderName", "BillingAccountId", "SubAccountId", "ServiceName", "ChargeCategory",
                            "ChargePeriodStart", "ChargePeriodEnd", "EffectiveCost", "x_UsageType", "ResourceId", "SkuId")}
    for i, s in enumerate(ss):
        for d in np.flatnonzero(s.y):
            for part, share in (("a", 0.7), ("b", 0.3)):
                cost = Decimal(f"{s.y[d] * share:.10f}")
                for c, v in zip(cols, ("aws-bench", "AWS", "111122223333", f"acct-{i % 40}", f"service-{i}", "Usage",
                                       start + timedelta(days=int(d)), start + timedelta(days=int(d) + 1), cost, f"usage-{part}",
                                       f"res-{i}-{part}", f"sku-{part}")):
                    cols[c].append(v)
    tmp = Path(tempfile.mkdtemp(prefix="bench-anomalies-"))
    con = duckdb.connect(str(tmp / "finops.duckdb"))
    ensure_focus(con)
    types = dict(COLUMNS + X_COLUMNS)
    con.register("src", pa.table({c: pa.array(v, type=pa.decimal128(38, 28)) if c == "EffectiveCost" else v for c, v in cols.items()}))
    con.execute(f"INSERT INTO focus ({', '.join(cols)}) SELECT {', '.join(f'CAST({c} AS {types[c]})' for c in cols)} FROM src")
    rows = con.execute("SELECT count(*) FROM focus").fetchall()[0][0]
    con.close()
    cfg = load_config(None, {"database.duckdb.database_path": str(tmp / "finops.duckdb")}, environ={})
    today = (start + timedelta(days=days)).date()
    t0 = time.perf_counter(); found = detect(cfg, today=today); t_detect = time.perf_counter() - t0
    t0 = time.perf_counter(); update_anomalies(cfg, today=today); t_update = time.perf_counter() - t0
    return dict(series=n_series, days=days, rows=rows, anomalies=len(found), detect_s=t_detect, update_s=t_update)


# ----------------------------------------------------------------------------------------------------------------------
def table(rows) -> str:
    head = ("method", "precision", "recall", "F1", "alerts per level shift (max >1)", "alerts per burst", "delay mean / p90 (days)", "µs per series-day")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append(f"| {r['method']} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} | {r['alerts_per_shift']:.2f} ({r['shifts_over_1']} of {r['n_shifts']}) "
                     f"| {r['alerts_per_burst']:.2f} | {r['delay_mean']:.2f} / {r['delay_p90']:.0f} | {r['us_per_day']:.0f} |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1, each a fresh set of series")
    ap.add_argument("--series", type=int, default=200, help="series per seed")
    ap.add_argument("--stl-series", type=int, default=60, help="series per seed for STL (it takes ~4 ms a day)")
    ap.add_argument("--no-stl", action="store_true", help="leave STL out")
    ap.add_argument("--within", type=int, default=7, help="N: an anomaly is found when an episode starts by N days after its onset")
    ap.add_argument("--sweep", action="store_true", help="the detector alone, at relative thresholds 0.2/0.3/0.5 and absolute 10/25/100")
    ap.add_argument("--e2e", default="1000x365", help="series x days of the end-to-end run of detect on DuckDB ('' to skip)")
    a = ap.parse_args(argv)
    seeds, results = range(a.seeds), []
    if a.sweep:
        for rel in ("0.2", "0.3", "0.5"):
            for ab in ("10", "25", "100"):
                r = run_method("finops_nb", seeds, a.series, Params(relative=Decimal(rel), absolute=Decimal(ab)), a.within)
                r["method"] = f"finops_nb, relative {rel}, absolute {ab}"
                results.append(r); print(table([r]).splitlines()[-1], flush=True)
    else:
        for name in METHODS:
            if name.startswith("STL") and a.no_stl: continue
            try:
                r = run_method(name, seeds, a.stl_series if name.startswith("STL") else a.series, Params(), a.within)
            except ImportError:
                print(f"{name}: statsmodels is not installed (.venv/bin/pip install statsmodels); left out", flush=True); continue
            results.append(r)
            print(table([r]).splitlines()[-1], "recall by kind", r["recall_by_kind"], "false by pattern", r["fp_by_pattern"], flush=True)
    print("\n" + table(results))
    e = None
    if a.e2e and not a.sweep:
        n, d = map(int, a.e2e.split("x"))
        e = e2e(n, d)
        print(f"\nend to end: {e['series']} series x {e['days']} days ({e['rows']:,} focus rows): detect {e['detect_s']:.1f} s, "
              f"update_anomalies {e['update_s']:.1f} s, {e['anomalies']} anomalies")
    out = HERE / ".data" / "results" / f"anomalies-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(a), "results": results, "e2e": e}, indent=2, default=str))
    print(f"\nsaved {out.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
