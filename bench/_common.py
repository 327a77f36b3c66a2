"""Shared helpers of the DuckDB load, Parquet export and end-to-end benchmarks (benchmark-only code).

Every timed command runs as its own child process: wall time is taken around ``Popen`` → ``os.wait4``
and the peak RSS is the ``ru_maxrss`` that ``wait4`` reports for that child (Linux: the largest
resident set of the child or of any descendant it waited for, in KiB), so each figure belongs to one
command and nothing leaks from one run into the next.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PY = str(REPO / ".venv" / "bin" / "python")
FINOPS = str(REPO / ".venv" / "bin" / "finops")
PAPERMILL = str(REPO / ".venv" / "bin" / "papermill")
DATA = HERE / ".data"
RESULTS = DATA / "results"


def run(cmd, env=None, cwd=None, check=True, timeout=None) -> dict:
    "Run `cmd` as a child process: {'secs', 'rss_mib', 'rc', 'out', 'err'}."
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        p = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=err)
        try:
            _, status, ru = os.wait4(p.pid, 0)
        except BaseException:
            p.kill()
            raise
        secs = time.perf_counter() - t
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        res = {"secs": secs, "rss_mib": ru.ru_maxrss / 1024, "rc": p.returncode,
               "out": out.read().decode(errors="replace"), "err": err.read().decode(errors="replace")}
    if check and res["rc"] != 0:
        raise SystemExit(f"command failed (exit {res['rc']}): {' '.join(map(str, cmd))}\n{res['out'][-3000:]}\n{res['err'][-3000:]}")
    return res


def py(code: str, *args, env=None, check=True) -> dict:
    "Run a Python snippet in a fresh interpreter of the project's venv."
    return run([PY, "-c", code, *map(str, args)], env=env, check=check)


def finops_env(bucket, staging, parquet, db, memory_limit=None, threads=None) -> dict:
    "Environment for the `finops` CLI: the process's environment without FINOPS_*, plus these settings."
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINOPS")}
    env.update({"FINOPS__AWS__BUCKET": f"file://{Path(bucket).resolve()}", "FINOPS__AWS__PREFIX": "cur",
                "FINOPS__AWS__EXPORT_NAME": "bench-cur", "FINOPS__AWS__CUR_VERSION": "v1",
                "FINOPS__STAGING_DIR": str(staging), "FINOPS__PARQUET_DIR": str(parquet),
                "FINOPS__DATABASE__DUCKDB__DATABASE_PATH": str(db)})
    if memory_limit:
        env["FINOPS__DATABASE__DUCKDB__MEMORY_LIMIT"] = memory_limit
    if threads:
        env["FINOPS__DATABASE__DUCKDB__THREADS"] = str(threads)
    env["TQDM_DISABLE"] = "1"
    return env


def config(bucket, staging, parquet, db, memory_limit=None, threads=None):
    "The same settings as a finops_nb `Config` (for use inside the benchmark process)."
    from finops_nb.config import load_config
    o = {"aws.bucket": f"file://{Path(bucket).resolve()}", "aws.prefix": "cur", "aws.export_name": "bench-cur", "aws.cur_version": "v1",
         "staging_dir": str(staging), "parquet_dir": str(parquet), "database.duckdb.database_path": str(db)}
    if memory_limit:
        o["database.duckdb.memory_limit"] = memory_limit
    if threads:
        o["database.duckdb.threads"] = threads
    return load_config(None, o, environ={})


def config_toml(path: Path, bucket, staging, parquet, db, memory_limit=None) -> Path:
    "Write the same settings as a config.toml (for papermill's `config_path`)."
    lines = ['staging_dir = "%s"' % staging, 'parquet_dir = "%s"' % parquet, "",
             "[database.duckdb]", 'database_path = "%s"' % db]
    if memory_limit:
        lines.append('memory_limit = "%s"' % memory_limit)
    lines += ["", "[aws]", 'bucket = "file://%s"' % Path(bucket).resolve(), 'prefix = "cur"', 'export_name = "bench-cur"', 'cur_version = "v1"']
    path.write_text("\n".join(lines) + "\n")
    return path


def load_expected(data: Path) -> dict:
    exp = json.loads((data / "expected.json").read_text())
    return exp


def export_id(bucket) -> str:
    "The export id finops_nb gives the benchmark's export (`[aws] bucket = file://<bucket>`, prefix cur, bench-cur, v1)."
    sys.path.insert(0, str(REPO))
    from finops_nb.aws.manifests import aws_export
    return aws_export(config(bucket, "/unused", "/unused", "/unused")).id


def staged_folder(staging: Path, bucket, period: str, delivery_id: str) -> Path:
    "Where finops_nb stages a delivery: {staging_dir}/{export_id}/{period}/{delivery_id}/."
    return Path(staging) / export_id(bucket) / period / delivery_id


def parquet_file(parquet: Path, bucket, period: str) -> Path:
    "Where finops_nb writes a period's Parquet file: {parquet_dir}/{export_id}/{period}_aws_billing.parquet."
    return Path(parquet) / export_id(bucket) / f"{period}_aws_billing.parquet"


def prepare_staging(data: Path, staging: Path) -> list:
    """Stage the month once with finops_nb's own extract from the local mirror (not timed); returns the
    staged csv.gz files. Re-running it downloads nothing when the staging is already there."""
    sys.path.insert(0, str(REPO))
    from finops_nb.pipeline import extract_billing
    exp = load_expected(data)
    cfg = config(data, staging, staging.parent / "unused-parquet", staging.parent / "unused.duckdb")
    res = extract_billing(cfg, progress=False)
    staged = [r for r in res if r.step == "extract"]
    if any(r.failed for r in res) or len(staged) != 1 or staged[0].delivery_id != exp["assembly_id"]:
        raise SystemExit(f"staging failed: {res}")
    folder = staged_folder(staging, data, staged[0].period, staged[0].delivery_id)
    files = [folder / Path(k).name for k in exp["data_keys"]]
    for k, f in zip(exp["data_keys"], files):
        if f.stat().st_size != exp["files"][k]["bytes"]:
            raise SystemExit(f"{f}: size differs from the generated source")
    return files


def drop_db(path: Path):
    "Remove a DuckDB database file and its companions (WAL, finops lock)."
    for p in (path, Path(str(path) + ".wal"), Path(str(path) + ".finops.lock")):
        p.unlink(missing_ok=True)


def fresh_dir(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def machine() -> str:
    try:
        cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
        mem = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal")) / 2**20
    except OSError:
        cpu, mem = "?", 0
    import duckdb
    return (f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, Python {platform.python_version()}, "
            f"duckdb {duckdb.__version__}, load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}")


def finops_version() -> str:
    try:
        c = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "finops_nb"],
                               capture_output=True, text=True).stdout.strip()
        return c + (" + uncommitted changes in finops_nb/" if dirty else "")
    except OSError:
        return "?"


def med(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def span(xs, fmt="{:.2f}"):
    return f"{fmt.format(min(xs))}–{fmt.format(max(xs))}"


def save(name: str, report: dict) -> Path:
    from datetime import datetime, timezone
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(report, indent=1, default=str) + "\n")
    return path
