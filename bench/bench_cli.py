"""CLI latency benchmark: how long the `finops` command takes when it has (almost) nothing to do.

    .venv/bin/python bench/bench_cli.py                  # ~1 min with the default 7 repeats

Measures the wall time of whole `finops` processes (interpreter start and imports included; each run a
fresh child process, timed around Popen -> wait4 by `_common.run`, with its peak RSS):

- `finops --version`;
- `finops --config CFG config`;
- `finops --config CFG aws run-pipeline` with nothing new to do, on a 1-period and a 12-period export,
  after a first full run (also timed, reported for information) that stages, loads and exports everything.

Plus, for reference, the venv interpreter's own start-up (`python -c pass`), the floor under every figure.

Only the `finops` command line is used (no finops_nb import), so the benchmark keeps working whatever the
package's internal modules are called. The exports are small legacy CUR v1 exports in a local mirror folder
(`[aws] bucket = "file:///..."`), written under bench/.data/cli/ from the demo's current 2023-11 CSV delivery
(`demo/bucket/cur/demo-cur/20231101-20231201/`: the assembly its top-level manifest names, 2 csv.gz files,
1,281 rows, 94 columns) copied to 2023-01..2023-12: per month a new assemblyId (UUID5), the manifest's
billingPeriod and reportKeys, the keys' date-range and assembly folders, and the CSV's period dates
(identity/TimeInterval, bill/BillingPeriodStartDate/EndDate, lineItem/UsageStartDate/EndDate, as
tests/cur_fixtures.py shifts them) rewritten. The 1-period export is the first month only. Generation is
cached (`.bench-stamp.json`: generator version and the source files' MD5s); `--force` regenerates.

Each repeat runs every measured command once, in turn (so load on this shared machine hits all of them
alike), after `--warmup` unrecorded rounds. Every no-op run-pipeline is checked to have done nothing (its
output must not mention a download, load or export, and the staging, database and Parquet files must be
unchanged). Results: bench/.data/results/cli-<UTC time>.json (or `--json OUT`).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import sys
import uuid
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, FINOPS, PY, REPO, RESULTS, finops_version, fresh_dir, machine, med, run  # noqa: E402

GENERATOR_VERSION = 1
SRC = REPO / "demo" / "bucket" / "cur" / "demo-cur" / "20231101-20231201"
SRC_REPORT = "demo-cur"
PREFIX, REPORT, BUCKET_NAME = "cur", "bench-cur", "finops-bench"
MONTHS = [f"2023-{m:02d}" for m in range(1, 13)]
EXPORTS = {"1 period": MONTHS[:1], "12 periods": MONTHS}
# CSV columns whose year-month follows the billing period (same list as tests/cur_fixtures.py)
PERIOD_DATE_COLUMNS = ("identity/TimeInterval", "bill/BillingPeriodStartDate", "bill/BillingPeriodEndDate",
                       "lineItem/UsageStartDate", "lineItem/UsageEndDate")
DATE_IN_TS = re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?=T)")
# words in run-pipeline's output that mean it did something (checked absent on the no-op runs)
DID_SOMETHING = re.compile(r"\b(downloaded|loaded|exported|failed|replaced)\b", re.I)

TARGETS = {"version": 0.15, "run-pipeline no-op, 12 periods": 0.5}
CEILING = 0.98  # "not slower than 0.98 s on any export"


# ---------------------------------------------------------------------------------------------------
# data: a CUR v1 export of N consecutive months, copied from the demo's 2023-11 delivery
# ---------------------------------------------------------------------------------------------------
def _bounds(period: str) -> tuple[str, str]:
    y, m = map(int, period.split("-"))
    ny, nm = (y + 1, 1) if m == 12 else (y, m + 1)
    return f"{y:04d}{m:02d}01", f"{ny:04d}{nm:02d}01"


def _shifter(src_period: str, dst_period: str):
    "Move every YYYY-MM-DD(T) of a text by whole months: src month + k becomes dst month + k (day clamped)."
    import calendar
    (sy, sm), (dy, dm) = (map(int, p.split("-")) for p in (src_period, dst_period))
    delta = (dy * 12 + dm) - (sy * 12 + sm)

    def repl(mt):
        y, mo, d = (int(g) for g in mt.groups())
        ny, nm = divmod(y * 12 + mo - 1 + delta, 12)
        return f"{ny:04d}-{nm + 1:02d}-{min(d, calendar.monthrange(ny, nm + 1)[1]):02d}"
    return lambda v: DATE_IN_TS.sub(repl, v) if v else v


def _gzip(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0) as gz:  # deterministic bytes
        gz.write(data)
    return buf.getvalue()


def _write(root: Path, key: str, data: bytes):
    p = root / key
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)


def source_delivery() -> tuple[dict, dict[str, bytes]]:
    "The demo's current 2023-11 delivery: (top-level manifest, {file name: csv.gz bytes})."
    manifest = json.loads((SRC / f"{SRC_REPORT}-Manifest.json").read_text())
    root = SRC.parents[2]  # the demo bucket: keys are bucket-relative
    files = {k.rsplit("/", 1)[1]: (root / k).read_bytes() for k in manifest["reportKeys"]}
    return manifest, files


def stamp_of() -> dict:
    manifest, files = source_delivery()
    return {"generator": GENERATOR_VERSION, "source_assembly": manifest["assemblyId"],
            "source_md5": {n: hashlib.md5(b).hexdigest() for n, b in sorted(files.items())}}


def build_export(out: Path, months: list[str], force=False) -> dict:
    "Write the export (cached by a stamp); return {'months', 'rows_per_month', 'files', 'bytes'}."
    stamp = {**stamp_of(), "months": months}
    sf = out / ".bench-stamp.json"
    if not force and sf.is_file() and json.loads(sf.read_text()).get("stamp") == stamp:
        return json.loads(sf.read_text())["info"]
    fresh_dir(out)
    manifest, files = source_delivery()
    src_period = "{}-{}".format(manifest["billingPeriod"]["start"][:4], manifest["billingPeriod"]["start"][4:6])
    texts = {n: gzip.decompress(b).decode("utf-8") for n, b in files.items()}
    nbytes, rows = 0, 0
    for period in months:
        start, end = _bounds(period)
        rng = f"{start}-{end}"
        assembly = str(uuid.uuid5(uuid.NAMESPACE_URL, f"finops-bench/{REPORT}/{period}"))
        shift = _shifter(src_period, period)
        keys, rows = [], 0
        for n, (name, text) in enumerate(sorted(texts.items()), start=1):
            reader = csv.reader(io.StringIO(text, newline=""))
            header = next(reader)
            cols = [header.index(c) for c in PERIOD_DATE_COLUMNS if c in header]
            buf = io.StringIO(newline="")
            w = csv.writer(buf, lineterminator="\n")  # AWS: LF, quotes only where needed
            w.writerow(header)
            for r in reader:
                for i in cols:
                    r[i] = shift(r[i])
                w.writerow(r)
                rows += 1
            key = f"{PREFIX}/{REPORT}/{rng}/{assembly}/{REPORT}-{n:05d}.csv.gz"
            data = _gzip(buf.getvalue().encode("utf-8"))
            _write(out, key, data)
            keys.append(key)
            nbytes += len(data)
        m = {**manifest, "assemblyId": assembly, "reportName": REPORT, "bucket": BUCKET_NAME,
             "billingPeriod": {"start": f"{start}T000000.000Z", "end": f"{end}T000000.000Z"}, "reportKeys": keys}
        text = (json.dumps(m, indent=2) + "\n").encode()
        _write(out, f"{PREFIX}/{REPORT}/{rng}/{assembly}/{REPORT}-Manifest.json", text)
        _write(out, f"{PREFIX}/{REPORT}/{rng}/{REPORT}-Manifest.json", text)  # written last, as AWS does
    info = {"months": months, "rows_per_month": rows, "data_files": 2 * len(months), "csv_gz_bytes": nbytes}
    sf.write_text(json.dumps({"stamp": stamp, "info": info}, indent=1) + "\n")
    return info


def config_toml(path: Path, bucket: Path, work: Path) -> Path:
    path.write_text("\n".join([
        f'staging_dir = "{work / "staging"}"', f'parquet_dir = "{work / "parquet"}"', "",
        "[database.duckdb]", f'database_path = "{work / "finops.duckdb"}"', "",
        "[database.bigquery]", 'project_id = ""', "",
        "[aws]", f'bucket = "file://{bucket}"', f'prefix = "{PREFIX}"', f'export_name = "{REPORT}"',
        'cur_version = "v1"', ""]))
    return path


def snapshot(work: Path) -> dict:
    """{relative path: (size, mtime_ns)} of every file the pipeline writes (staging, Parquet, database);
    not its lock files (`*.lock`: rewritten by every run, by design)."""
    return {p.relative_to(work).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(work.rglob("*")) if p.is_file() and p.name != "config.toml" and not p.name.endswith(".lock")}


# ---------------------------------------------------------------------------------------------------
# benchmark
# ---------------------------------------------------------------------------------------------------
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=7, help="recorded runs of each command (default 7)")
    ap.add_argument("--warmup", type=int, default=1, help="unrecorded rounds first (default 1)")
    ap.add_argument("--finops", default=FINOPS, help="the finops executable (default .venv/bin/finops)")
    ap.add_argument("--json", metavar="OUT", default=None,
                    help="results file (default bench/.data/results/cli-<UTC time>.json; a bare name goes there too)")
    ap.add_argument("--data", default=str(DATA / "cli"), help="where the exports and work folders go")
    ap.add_argument("--force", action="store_true", help="regenerate the exports")
    a = ap.parse_args(argv)
    finops = str(Path(a.finops).resolve()) if os.sep in a.finops else (shutil.which(a.finops) or a.finops)
    python = str(Path(finops).with_name("python"))
    if not Path(python).exists():
        python = PY
    base = Path(a.data).resolve()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINOPS")}
    env["TQDM_DISABLE"] = "1"

    started = datetime.now(timezone.utc)
    commit = finops_version()
    version = run([finops, "--version"], env=env)["out"].strip()
    print(f"machine: {machine()}\nfinops_nb: commit {commit} ({version}); {finops}\n"
          f"started {started:%Y-%m-%d %H:%M} UTC, {a.repeats} repeats after {a.warmup} warm-up round(s)")
    report = {"bench": "cli", "commit": commit, "finops_version": version, "finops": finops,
              "started_utc": started.isoformat(timespec="seconds"), "machine": machine(),
              "repeats": a.repeats, "warmup": a.warmup, "exports": {}, "first_run": {}, "runs": {}}

    # the exports, their work folders, and a first full run of each (not part of the medians)
    cmds = {"python -c pass (interpreter start, reference)": [python, "-c", "pass"],
            "finops --version": [finops, "--version"]}
    noop = {}  # name -> (export label, work folder, snapshot after the first run)
    for label, months in EXPORTS.items():
        slug = "export-" + label.split()[0]
        info = build_export(base / slug, months, a.force)
        work = fresh_dir(base / "work" / slug)
        cfg = config_toml(work / "config.toml", base / slug, work)
        report["exports"][label] = {**info, "bucket": str(base / slug), "config": str(cfg)}
        if label == "1 period":
            cmds["finops --config CFG config"] = [finops, "--config", str(cfg), "config"]
        r = run([finops, "--config", str(cfg), "aws", "run-pipeline"], env=env, timeout=600)
        parquets = sorted((work / "parquet").rglob("*.parquet"))  # {parquet_dir}/{export_id}/ (flat before d1fe017)
        if len(parquets) != len(months):
            raise SystemExit(f"{label}: first run wrote {len(parquets)} Parquet files, expected {len(months)}:\n{r['out']}")
        report["first_run"][label] = {"secs": r["secs"], "rss_mib": r["rss_mib"], "out": r["out"]}
        print(f"  {label}: {len(months)} × {info['rows_per_month']:,} rows, {info['data_files']} csv.gz "
              f"({info['csv_gz_bytes'] / 1e3:.0f} kB); first full run-pipeline {r['secs']:.2f} s, "
              f"{r['rss_mib']:.0f} MiB, {len(parquets)} Parquet files", flush=True)
        name = f"finops --config CFG aws run-pipeline, nothing new, {label}"
        cmds[name] = [finops, "--config", str(cfg), "aws", "run-pipeline"]
        noop[name] = (label, work, snapshot(work))
    names = list(cmds)
    last_out = {}

    for rnd in range(a.warmup + a.repeats):
        for name in names:
            r = run(cmds[name], env=env, timeout=600)
            if name in noop:
                label, work, snap = noop[name]
                if DID_SOMETHING.search(r["out"]) or snapshot(work) != snap:
                    raise SystemExit(f"{label}: the re-run did something:\n{r['out']}\n{r['err']}")
                last_out[name] = r["out"]
            if rnd >= a.warmup:
                report["runs"].setdefault(name, []).append({"secs": r["secs"], "rss_mib": r["rss_mib"]})
        if rnd >= a.warmup:
            print(f"  run {rnd - a.warmup + 1}: " + " | ".join(f"{report['runs'][n][-1]['secs']:.3f}" for n in names), flush=True)

    def target(name):
        if "--version" in name:
            return TARGETS["version"]
        if "12 periods" in name:
            return TARGETS["run-pipeline no-op, 12 periods"]
        return CEILING if "run-pipeline" in name else None

    summary = {}
    for name in names:
        s = [x["secs"] for x in report["runs"][name]]
        t = target(name)
        summary[name] = {"median": med(s), "min": min(s), "max": max(s),
                         "rss_mib": med([x["rss_mib"] for x in report["runs"][name]]),
                         "target": t, "met": None if t is None else med(s) <= t,
                         "under_ceiling": None if "run-pipeline" not in name else max(s) <= CEILING}
    report["summary"] = summary
    report["noop_output"] = last_out
    report["machine_after"] = machine()

    rows = [("command", "median", "min", "max", "peak RSS", "target", "met?")]
    for name, s in summary.items():
        t = s["target"]
        tgt = "–" if t is None else f"≤ {t:.2f} s" + (f" (and ≤ {CEILING} s)" if "12 periods" in name else "")
        rows.append((name, f"{s['median']:.3f} s", f"{s['min']:.3f}", f"{s['max']:.3f}", f"{s['rss_mib']:.0f} MiB",
                     tgt, "–" if s["met"] is None else ("yes" if s["met"] else "NO")))
    w = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print(f"\n== CLI latency, wall time of the whole process (medians of {a.repeats}; commit {commit}; "
          f"{started:%Y-%m-%d %H:%M} UTC)")
    for j, r in enumerate(rows):
        print("  " + "  ".join(c.ljust(w[i]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(r)))
        if j == 0:
            print("  " + "  ".join("-" * x for x in w))
    print("\nlast no-op run-pipeline output:")
    for name, out in last_out.items():
        print(f"  [{name.rsplit(', ', 1)[1]}]\n    " + "\n    ".join(out.strip().splitlines()))

    if a.json:
        out = Path(a.json)
        out = out if out.is_absolute() or os.sep in a.json else RESULTS / out
    else:
        out = RESULTS / f"cli-{started:%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, default=str) + "\n")
    print(f"\nresults saved to {out}")


if __name__ == "__main__":
    main()
