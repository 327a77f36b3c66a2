"""Remote loads of a generated month: `finops aws load-billing-remote --destination clickhouse` into ClickHouse's embedded
engine (chdb, through clickhouse-connect), and `--destination bigquery` into the local-bigquery emulator, each in a fresh
process from the same Parquet file.

    .venv/bin/python bench/bench_remote.py                                            # 1M rows, ClickHouse, 3 runs (~3 min)
    .venv/bin/python bench/bench_remote.py --rows 4000000 --destination clickhouse    # 4M rows (~4 min a run)
    .venv/bin/python bench/bench_remote.py --rows 1000000 --destination both          # and one load into the emulator

`--rows N` picks the month bench/.data/month-1m, month-4m, … (`--data` names another folder); a month not generated yet is
made first with `gen_month.py --rows N --files N/250000` (cached: gen_month.py does nothing when its stamp matches; 4M
rows take ~12 min). The Parquet file is the month exported by `finops aws export-parquet` (bench_export.py's
database; built once, not timed). ClickHouse: each run starts from an empty chdb folder ("loaded"), then a run with
`--overwrite` replaces the period in the loaded table ("replaced"); every run is checked in ClickHouse afterwards (rows
and the exact sums equal expected.json, no staging table left). The peak RSS is the `finops` process's (`ru_maxrss`
from `wait4`, the embedded engine's included); the script also samples that process's RSS every 0.25 s, to show
whether it climbs over the load or levels off (`rss_trace` in the JSON: RSS at each tenth of the run, and when the
peak was reached). `--batch-rows` sets `[database.clickhouse] batch_rows`; `--ch-settings` sets
`[database.clickhouse] settings` (session settings, e.g. `max_threads=1`), for probing where the memory goes.
`--probe` adds one more load in a process that notes, after every batch, its RSS (anonymous and file-backed),
pyarrow's allocation and the engine's own figures (jemalloc, tracked memory, caches, merges, parts): where the peak goes.
`--label` names the code measured in the results (e.g. a copy of finops_nb put first with PYTHONPATH, for a before/after).
BigQuery: the local-bigquery emulator (DuckDB inside, one process on this machine), so its time says nothing of Google's
service; it is shown beside ClickHouse because it runs the same code path and the same checks; the emulator's own peak
RSS (VmHWM of its process) is given beside the `finops` process's.
Before each timed command the script waits until the 1-minute load average is below `--max-load` (up to `--max-wait`
s, then runs anyway); the load average at the start and end of each command is in the output and the JSON.
Results: bench/.data/results/remote-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import (DATA, FINOPS, HERE, PY, export_id, finops_env, finops_version, fresh_dir, load_expected,  # noqa: E402
                     machine, med, parquet_file, py, run, save, span)
from bench_export import ensure_loaded  # noqa: E402

CHECK_CH = r"""
import sys, clickhouse_connect
c = clickhouse_connect.get_client(dsn=sys.argv[1])
n, u, b = c.query("SELECT count(), sum(line_item_unblended_cost), sum(line_item_blended_cost) FROM finops.aws_billing_data").result_rows[0]
left = c.query("SELECT count() FROM system.tables WHERE database = 'finops' AND name LIKE '%staging%'").result_rows[0][0]
parts = c.query("SELECT count() FROM system.parts WHERE database = 'finops' AND table = 'aws_billing_data' AND active").result_rows[0][0]
print(n, u, b, left, parts)
"""


def check_clickhouse(url: str, exp: dict) -> dict:
    out = py(CHECK_CH, url)["out"].split()
    n, u, b, left, parts = int(out[0]), Decimal(out[1]), Decimal(out[2]), int(out[3]), int(out[4])
    if n != exp["rows"] or u != Decimal(exp["sums"]["lineItem/UnblendedCost"]) or b != Decimal(exp["sums"]["lineItem/BlendedCost"]) or left:
        raise SystemExit(f"{url}: {n} rows, sums {u} {b}, {left} staging tables left")
    return {"rows": n, "unblended": f"{u.normalize():f}", "active_parts": parts}


def month_dir(rows: int) -> Path:
    "bench/.data/month-1m for 1,000,000 rows, month-4m for 4,000,000, month-250k for 250,000."
    return DATA / (f"month-{rows // 1_000_000}m" if rows % 1_000_000 == 0 else f"month-{rows // 1000}k")


def ensure_month(data: Path, rows: int) -> None:
    "Generate the month with gen_month.py unless it is there (gen_month.py itself skips a month whose stamp matches)."
    if (data / "expected.json").is_file() and load_expected(data)["rows"] == rows:
        return
    files = max(1, rows // 250_000)
    print(f"generating {rows:,} rows in {files} files into {data} (gen_month.py; ~3 min per million rows)", flush=True)
    subprocess.run([PY, str(HERE / "gen_month.py"), "--rows", str(rows), "--files", str(files), "--out", str(data)], check=True)


def wait_idle(max_load: float, max_wait: float) -> dict:
    "Wait until the 1-minute load average is below max_load (at most max_wait s); what was seen."
    t = time.time()
    while True:
        la = os.getloadavg()[0]
        if la < max_load or time.time() - t >= max_wait:
            busy = la >= max_load
            if busy and max_wait > 0:
                print(f"  (load average still {la:.2f} after {max_wait:.0f} s: running anyway)", flush=True)
            return {"load1_start": round(la, 2), "waited": round(time.time() - t, 1), "busy": busy}
        time.sleep(5)


def _rss_kib(pid: int, field: str = "VmRSS") -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            return next((int(line.split()[1]) for line in f if line.startswith(field + ":")), 0)
    except OSError:
        return 0


def traced(cmd, env, max_load: float, max_wait: float, check: bool = True) -> dict:
    """`_common.run` (wall time, ru_maxrss from wait4) plus the child's RSS sampled every 0.25 s and the load
    average before and after: {'secs', 'rss_mib', 'rc', 'out', 'err', 'seen', 'rss_trace'}."""
    seen = wait_idle(max_load, max_wait)
    samples = []
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        p = subprocess.Popen(cmd, env=env, stdout=out, stderr=err)
        done = threading.Event()

        def sample():
            while not done.wait(0.25):
                kib = _rss_kib(p.pid)
                if kib:
                    samples.append((time.perf_counter() - t, kib / 1024))

        th = threading.Thread(target=sample, daemon=True)
        th.start()
        try:
            _, status, ru = os.wait4(p.pid, 0)
        except BaseException:
            p.kill()
            raise
        finally:
            done.set()
        secs = time.perf_counter() - t
        th.join()
        rc = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        res = {"secs": secs, "rss_mib": ru.ru_maxrss / 1024, "rc": rc,
               "out": out.read().decode(errors="replace"), "err": err.read().decode(errors="replace")}
    seen["load1_end"] = round(os.getloadavg()[0], 2)
    res["seen"], res["rss_trace"] = seen, trace_summary(samples, secs)
    if check and rc != 0:
        raise SystemExit(f"command failed (exit {rc}): {' '.join(map(str, cmd))}\n{res['out'][-3000:]}\n{res['err'][-3000:]}")
    return res


def trace_summary(samples, secs) -> dict:
    "RSS (MiB) at each tenth of the run and the time the sampled peak was first reached."
    if not samples:
        return {}
    at = []
    for k in range(1, 11):
        tk = secs * k / 10
        at.append(round(max((m for s, m in samples if s <= tk), default=0)))  # the highest RSS seen up to that tenth
    peak = max(m for _, m in samples)
    first = next(s for s, m in samples if m >= 0.98 * peak)
    return {"max_by_tenth_mib": at, "peak_sampled_mib": round(peak), "peak_98pct_at_s": round(first, 1), "secs": round(secs, 1),
            "samples": [(round(s, 2), round(m)) for s, m in samples[:: max(1, len(samples) // 200)]]}


PROBE = r"""
import json, re, sys, time
import pyarrow as pa
import clickhouse_connect.driver._chdbclient as m
out, t0, orig, n = open(sys.argv[1], "w"), time.perf_counter(), m.ChdbClient.raw_insert, [0]

def status():
    d = {}
    for line in open("/proc/self/status"):
        if line.startswith(("VmRSS", "VmHWM", "RssAnon", "RssFile")):
            k, v = line.split(":"); d[k] = int(v.split()[0]) // 1024
    return d

def engine(c):
    q = lambda s: c.query(s).result_rows
    mt = dict(q("SELECT metric, value FROM system.metrics WHERE metric IN ('MemoryTracking', 'MarkCacheBytes', 'PrimaryIndexCacheBytes')"))
    mg = q("SELECT count(), sum(memory_usage), groupArray(merge_algorithm) FROM system.merges")[0]
    parts = q("SELECT count(), sum(rows) FROM system.parts WHERE active AND database = 'finops'")[0]
    g = re.search(r"Allocated: (\d+), active: \d+, metadata: \d+.*?resident: (\d+)", q("SELECT stats FROM system.jemalloc_stats")[0][0])
    return {"je_allocated": int(g[1]) // 2**20, "je_resident": int(g[2]) // 2**20, "tracked": mt["MemoryTracking"] // 2**20,
            "caches": (mt.get("MarkCacheBytes", 0) + mt.get("PrimaryIndexCacheBytes", 0)) // 2**20,
            "merges": mg[0], "merge_mib": (mg[1] or 0) // 2**20, "merge_alg": mg[2], "parts": parts[0], "part_rows": parts[1]}

def wrapped(self, *a, **kw):
    r = orig(self, *a, **kw)
    n[0] += 1
    rec = {"batch": n[0], "t": round(time.perf_counter() - t0, 2), "pyarrow": pa.total_allocated_bytes() // 2**20, **status()}
    try: rec.update(engine(self))
    except Exception as e: rec["err"] = str(e)[:300]
    out.write(json.dumps(rec) + "\n"); out.flush()
    return r

m.ChdbClient.raw_insert = wrapped
from finops_nb.cli import main
sys.argv = ["finops", "aws", "load-billing-remote", "--destination", "clickhouse"]
try: main()
finally: out.write(json.dumps({"end": True, "t": round(time.perf_counter() - t0, 2), **status()}) + "\n"); out.close()
"""


def probe(e: dict, folder: Path, max_load: float, max_wait: float) -> dict:
    """One more ClickHouse load (empty folder), in a process that after every batch notes its RSS (anonymous and
    file-backed), pyarrow's allocation, and the engine's own figures (jemalloc allocated/resident, tracked memory,
    caches, running merges, active parts): where the peak goes."""
    fresh_dir(folder)
    trace = folder.parent / "probe.jsonl"
    x = traced([PY, "-c", PROBE, str(trace)], e, max_load, max_wait)
    recs = [json.loads(line) for line in trace.read_text().splitlines()]
    b = [r for r in recs if "batch" in r and "err" not in r]
    if not b:
        raise SystemExit(f"probe: no batch records: {recs[:2]}")
    span_of = lambda k: [min(r[k] for r in b), max(r[k] for r in b)]  # noqa: E731
    return {"secs": x["secs"], "rss_mib": x["rss_mib"], "batches": len(b), "file_backed_mib": span_of("RssFile"),
            "anon_mib": span_of("RssAnon"), "pyarrow_mib": span_of("pyarrow"), "je_allocated_mib": span_of("je_allocated"),
            "je_resident_mib": span_of("je_resident"), "tracked_mib": span_of("tracked"), "caches_mib": span_of("caches"),
            "merge_mib": span_of("merge_mib"), "merge_algorithms": sorted({a for r in b for a in r["merge_alg"]}),
            "active_parts": span_of("parts"), "hwm_after_batch": [r["VmHWM"] for r in b], "records": recs}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="the month's rows: bench/.data/month-1m, month-4m, … (generated if missing)")
    ap.add_argument("--data", default=None, help="a generated month's folder (default: from --rows)")
    ap.add_argument("--work", default=str(DATA / "work"))
    ap.add_argument("--destination", choices=("clickhouse", "bigquery", "both"), default="clickhouse")
    ap.add_argument("--bigquery", action="store_true", help="same as --destination both")
    ap.add_argument("--repeats", type=int, default=3, help="ClickHouse runs (the emulator is loaded once; 0 with --probe: the probe alone)")
    ap.add_argument("--no-replace", action="store_true", help="skip the --overwrite run after each ClickHouse load")
    ap.add_argument("--batch-rows", type=int, default=65536)
    ap.add_argument("--ch-settings", default="", help="[database.clickhouse] settings, e.g. 'max_threads=1'")
    ap.add_argument("--max-load", type=float, default=0.7, help="wait for a 1-minute load average below this before each command")
    ap.add_argument("--max-wait", type=float, default=600, help="wait at most this long (s), then run anyway")
    ap.add_argument("--probe", action="store_true", help="one more ClickHouse load with an in-process memory probe (see probe())")
    ap.add_argument("--label", default="", help="what code this measures, saved with the results (default: the commit)")
    a = ap.parse_args(argv)
    dest = "both" if a.bigquery else a.destination
    data = Path(a.data) if a.data else month_dir(a.rows)
    if not a.data:
        ensure_month(data, a.rows)
    work = Path(a.work).resolve() / data.name  # absolute: the chdb:// URL is a path
    exp = load_expected(data)
    exp["export_id"] = export_id(data)
    print(f"machine: {machine()}\nfinops_nb: commit {finops_version()}{' (' + a.label + ')' if a.label else ''}\n"
          f"month: {data} ({exp['rows']:,} rows); destination {dest}; batch_rows {a.batch_rows}"
          f"{'; settings ' + a.ch_settings if a.ch_settings else ''}")
    report = {"machine": machine(), "finops_nb": finops_version(), "label": a.label, "pythonpath": os.environ.get("PYTHONPATH", ""),
              "command": " ".join(sys.argv), "rows": exp["rows"], "batch_rows": a.batch_rows, "ch_settings": a.ch_settings,
              "max_load": a.max_load, "load_average": os.getloadavg()}
    db, staging = ensure_loaded(data, work, exp)
    pq_dir = work / "remote" / "parquet"
    env = finops_env(data, staging, pq_dir, db, "1GB")
    if not parquet_file(pq_dir, data, exp["period"]).is_file():
        run([FINOPS, "aws", "export-parquet"], env=env)
    pq_path = parquet_file(pq_dir, data, exp["period"])
    size = pq_path.stat().st_size
    import pyarrow.parquet as pq
    md = pq.read_metadata(pq_path)
    report["parquet"] = {"path": str(pq_path), "bytes": size, "row_groups": md.num_row_groups, "rows_per_row_group": md.row_group(0).num_rows}
    report["parquet_bytes"] = size
    print(f"Parquet file: {size / 2**20:.0f} MiB, {md.num_row_groups} row groups of {md.row_group(0).num_rows:,} rows")
    if dest in ("clickhouse", "both"):
        ch = {"loaded": [], "loaded_rss": [], "replaced": [], "replaced_rss": [], "runs": []}
        for r in range(1, a.repeats + 1):
            folder = fresh_dir(work / "remote" / "clickhouse")
            url = f"chdb://{folder}"
            e = {**env, "FINOPS__DATABASE__CLICKHOUSE__URL": url, "FINOPS__DATABASE__CLICKHOUSE__BATCH_ROWS": str(a.batch_rows)}
            if a.ch_settings:
                e["FINOPS__DATABASE__CLICKHOUSE__SETTINGS"] = a.ch_settings
            x = traced([FINOPS, "aws", "load-billing-remote", "--destination", "clickhouse"], e, a.max_load, a.max_wait)
            if "loaded" not in x["out"]:
                raise SystemExit(x["out"])
            facts = check_clickhouse(url, exp)
            run_rec = {"loaded": {k: x[k] for k in ("secs", "rss_mib", "seen", "rss_trace")}, "facts": facts}
            ch["loaded"].append(x["secs"]), ch["loaded_rss"].append(x["rss_mib"])
            line = (f"  clickhouse run {r}: load {x['secs']:6.2f} s {x['rss_mib']:6.0f} MiB "
                    f"({exp['rows'] / x['secs']:,.0f} rows/s; load avg {x['seen']['load1_start']:.2f}→{x['seen']['load1_end']:.2f}; "
                    f"RSS by tenths {x['rss_trace'].get('max_by_tenth_mib')})")
            if not a.no_replace:
                y = traced([FINOPS, "aws", "load-billing-remote", "--destination", "clickhouse", "--overwrite"], e, a.max_load, a.max_wait)
                if "replaced" not in y["out"]:
                    raise SystemExit(y["out"])
                check_clickhouse(url, exp)
                run_rec["replaced"] = {k: y[k] for k in ("secs", "rss_mib", "seen", "rss_trace")}
                ch["replaced"].append(y["secs"]), ch["replaced_rss"].append(y["rss_mib"])
                line += (f"\n               replace {y['secs']:6.2f} s {y['rss_mib']:6.0f} MiB (load avg {y['seen']['load1_start']:.2f}"
                         f"→{y['seen']['load1_end']:.2f}; RSS by tenths {y['rss_trace'].get('max_by_tenth_mib')})")
            ch["runs"].append(run_rec)
            print(line + f"\n               rows {facts['rows']:,}, unblended {facts['unblended']} (= expected.json), "
                  f"{facts['active_parts']} active parts", flush=True)
        ch["median"] = {k: med(v) for k, v in ch.items() if isinstance(v, list) and v and not isinstance(v[0], dict)}
        report["clickhouse"] = ch
        if a.probe:
            folder = work / "remote" / "clickhouse"
            e = {**env, "FINOPS__DATABASE__CLICKHOUSE__URL": f"chdb://{folder}", "FINOPS__DATABASE__CLICKHOUSE__BATCH_ROWS": str(a.batch_rows)}
            if a.ch_settings:
                e["FINOPS__DATABASE__CLICKHOUSE__SETTINGS"] = a.ch_settings
            pr = report["clickhouse_probe"] = probe(e, folder, a.max_load, a.max_wait)
            check_clickhouse(f"chdb://{folder}", exp)
            print(f"  probe ({pr['batches']} batches, {pr['secs']:.1f} s, peak {pr['rss_mib']:.0f} MiB), between batches, MiB: "
                  f"file-backed {pr['file_backed_mib']}, anonymous {pr['anon_mib']}, of which pyarrow {pr['pyarrow_mib']}, "
                  f"ClickHouse jemalloc resident {pr['je_resident_mib']} (allocated {pr['je_allocated_mib']}, tracked {pr['tracked_mib']}), "
                  f"caches {pr['caches_mib']}, merges {pr['merge_mib']} {pr['merge_algorithms']}, active parts {pr['active_parts']}", flush=True)
    if dest in ("bigquery", "both"):
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
        import servers
        servers.apply_offline_env()
        server = servers.start_bigquery_server()
        try:
            e = {**env, "FINOPS__DATABASE__BIGQUERY__PROJECT_ID": server.project, "FINOPS__DATABASE__BIGQUERY__API_ENDPOINT": server.url,
                 "FINOPS__DATABASE__BIGQUERY__DATASET_ID": "bench_" + uuid.uuid4().hex[:8], "FINOPS__DATABASE__BIGQUERY__TIMEOUT": "3600"}
            off = servers.offline_env(e)  # dummy credentials, no cloud metadata probes (env was made before apply_offline_env)
            e = {k: v for k, v in off.items() if not k.startswith("FINOPS") or k in e}
            x = traced([FINOPS, "aws", "load-billing-remote", "--destination", "bigquery"], e, a.max_load, a.max_wait, check=False)
            emu = _rss_kib(server.process.pid, "VmHWM") / 1024
            report["bigquery_emulator"] = {"secs": x["secs"], "rss_mib": x["rss_mib"], "emulator_hwm_mib": emu, "rc": x["rc"],
                                           "seen": x["seen"], "rss_trace": x["rss_trace"], "out": x["out"][-2000:], "err": x["err"][-2000:]}
            print(f"  bigquery emulator: load {x['secs']:6.2f} s {x['rss_mib']:6.0f} MiB (finops process), emulator peak {emu:.0f} MiB, "
                  f"{exp['rows'] / x['secs']:,.0f} rows/s, load avg {x['seen']['load1_start']:.2f}→{x['seen']['load1_end']:.2f}, exit {x['rc']}"
                  f"\n    {x['out'].strip().splitlines()[-1] if x['out'].strip() else x['err'][-500:]}", flush=True)
        finally:
            server.stop()
    if report.get("clickhouse", {}).get("loaded"):
        ch, m = report["clickhouse"], report["clickhouse"]["median"]
        print(f"\n== summary (medians of {a.repeats}): ClickHouse (chdb) {exp['rows']:,} rows: load {m['loaded']:.2f} s ({span(ch['loaded'])}), "
              f"{m['loaded_rss']:.0f} MiB ({span(ch['loaded_rss'], '{:.0f}')}), {exp['rows'] / m['loaded']:,.0f} rows/s"
              + (f"; replace {m['replaced']:.2f} s ({span(ch['replaced'])}), {m['replaced_rss']:.0f} MiB" if ch["replaced"] else "")
              + f"; Parquet file {size / 2**20:.0f} MiB")
    print(f"results: {save('remote', report)}")


if __name__ == "__main__":
    main()
