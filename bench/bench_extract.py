"""Benchmark: finops_nb's extraction against a plain sequential boto3 download loop, on local S3 servers.

    .venv/bin/python bench/gen_month.py --rows 1000000 --files 4 --out bench/.data/month-1m
    .venv/bin/python bench/bench_extract.py [--data bench/.data/month-1m] [--repeats 3]

One run of this script:

1. starts the project's moto S3 server on 127.0.0.1 (``tests/servers.py``) and uploads the
   generated month (the ``cur/`` tree of ``--data``) into bucket ``finops-bench`` with large
   multipart uploads (boto3 ``TransferConfig``, 16 MiB parts: multipart ``md5-N`` ETags, as big
   objects in S3 usually have), and into ``finops-bench-md5`` as single-part PUTs (plain-MD5
   ETags: finops_nb then verifies the MD5 of every download, so that scenario shows what the
   check costs). Upload times are printed and are not part of the benchmark;
2. for each scenario, alternates ``--repeats`` times, each in a fresh temporary folder:
   (a)  baseline: ``boto3 client.download_file(bucket, key, path)`` in a plain sequential loop,
        default ``TransferConfig``, over the 4 data files and the manifest (keys known up front);
   (a') the same loop with finops_nb's ``TransferConfig`` (``finops_nb.storage.TRANSFER``, its kwargs), which
        separates the effect of the transfer settings from that of fetching files at once;
   (b)  ``finops_nb.pipeline.extract_billing`` (config, listing, manifest, downloads, checks, marker:
        everything an ``extract-billing`` run does), staging to ``{staging}/{export_id}/{period}/{delivery_id}/``;
   (b') informational: the same with ``finops_nb.storage.TRANSFER`` replaced, in this process only,
        by ``--try-transfer`` (a candidate setting; finops_nb's files are not changed);
   then (c) ``extract_billing`` again on the last staging folder: nothing new, must download nothing;
3. checks that every staged file is byte-identical (size and MD5) to the sequential download and
   to the generated source, and prints medians, MB/s (10^6 bytes of data files and manifest per
   second), the ratio finops/baseline, peak RSS, a per-step breakdown of one extra finops_nb run,
   and markdown table rows. The results are also saved as JSON under ``<data>/../results/``.

Scenarios: ``moto`` (plain moto, multipart ETags: the headline row), ``moto-md5`` (plain moto,
single-part ETags) and ``s3like``: ``bench/s3like_server.py`` (moto whose ranged GETs cost what
the range costs, as in S3) behind ``bench/throttle_proxy.py`` (each connection paced to
``--throttle-mbps``, ``--latency-ms`` added per request), because plain moto makes every ranged GET
cost a full read of the object, which penalises boto3's default parallel ranged download.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

import servers  # noqa: E402  (tests/servers.py)
from servers import apply_offline_env, aws_client_kwargs, start_s3_server  # noqa: E402

apply_offline_env()  # dummy credentials, no metadata probes, before any client is made

import boto3  # noqa: E402
from boto3.s3.transfer import TransferConfig  # noqa: E402

import finops_nb.aws.manifests as fm  # noqa: E402
import finops_nb.staging as fst  # noqa: E402
import finops_nb.storage as fs  # noqa: E402
from finops_nb.aws.manifests import aws_export  # noqa: E402
from finops_nb.config import load_config  # noqa: E402
from finops_nb.pipeline import extract_billing  # noqa: E402

MiB = 1 << 20
BUCKET_MULTIPART = "finops-bench"
BUCKET_MD5 = "finops-bench-md5"
SCENARIOS = ("moto", "moto-md5", "s3like")


def md5_of(path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while b := f.read(8 * MiB):
            h.update(b)
    return h.hexdigest()


def rss_mib() -> float:
    "Peak RSS of this process so far (Linux: ru_maxrss is in KiB)."
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_rss_of(pid) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024)
    except OSError:
        pass
    return None


def machine() -> str:
    mem = cpu = ""
    try:
        kb = int(next(l for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal")).split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        pass
    try:
        cpu = " (" + next(l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                          if l.startswith("model name")) + ")"
    except (OSError, StopIteration):
        pass
    return f"{os.cpu_count()} cores{cpu}{mem}, Python {platform.python_version()}, boto3 {boto3.__version__}"


def finops_version() -> str:
    "The commit of the working tree, and whether finops_nb/ differs from it (others edit it meanwhile)."
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "finops_nb"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}{' + uncommitted changes in finops_nb/' if dirty else ''}"


def transfer_text(t) -> str:
    "A TransferConfig, or the kwargs of one (finops_nb.storage.TRANSFER), as text."
    t = TransferConfig(**t) if isinstance(t, dict) else t
    return (f"threshold {t.multipart_threshold // MiB} MiB, chunk {t.multipart_chunksize // MiB} MiB, "
            f"max_concurrency {t.max_concurrency}")


def start_s3like_server():
    "bench/s3like_server.py on a free loopback port, through the same launcher as the test servers."
    def make_cmd(port, workdir):
        return [sys.executable, str(HERE / "s3like_server.py"), "-H", servers.LOOPBACK, "-p", str(port)], {}
    return servers._launch(servers.S3Server, "S3like", make_cmd, "/", 20.0, servers.offline_env())


def start_proxy(upstream_port, mbps, latency_ms):
    "bench/throttle_proxy.py in front of a server; returns (process, url)."
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "throttle_proxy.py"), "--upstream", f"127.0.0.1:{upstream_port}",
         "--mbps", str(mbps), "--latency-ms", str(latency_ms)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True, start_new_session=True)
    line = proc.stdout.readline()
    if not line.startswith("listening on "):
        proc.kill()
        proc.wait(5)
        raise SystemExit(f"throttle proxy did not start: {line!r}")
    return proc, f"http://127.0.0.1:{int(line.split()[-1])}"


class Bench:
    def __init__(self, args):
        self.args = args
        self.data = Path(args.data).resolve()
        exp_path = self.data / "expected.json"
        if not exp_path.is_file():
            sys.exit(f"{exp_path} not found: run bench/gen_month.py first")
        self.expected = json.loads(exp_path.read_text())
        self.data_keys = self.expected["data_keys"]
        self.top_manifest = self.expected["manifest_keys"][0]
        self.all_keys = sorted(p.relative_to(self.data).as_posix() for p in (self.data / "cur").rglob("*") if p.is_file())
        self.fetch_keys = self.data_keys + [self.top_manifest]  # "the delivery": data files + manifest
        self.fetch_bytes = sum((self.data / k).stat().st_size for k in self.fetch_keys)
        self.data_bytes = sum((self.data / k).stat().st_size for k in self.data_keys)
        self.source_md5 = {k: v["md5"] for k, v in self.expected["files"].items()}
        self.source_md5[self.top_manifest] = md5_of(self.data / self.top_manifest)
        self.tmp_root = Path(tempfile.mkdtemp(prefix="finops-bench-extract-"))
        t, c, n = (int(x) for x in args.try_transfer.split(",")) if args.try_transfer else (0, 0, 0)
        self.try_transfer = dict(multipart_threshold=t * MiB, multipart_chunksize=c * MiB,
                                 max_concurrency=n) if args.try_transfer else None  # kwargs, as finops_nb.storage.TRANSFER

    # ---- setup ---------------------------------------------------------------------------------------
    def client(self, url):
        return boto3.client("s3", endpoint_url=url, **aws_client_kwargs())

    def upload(self, url, bucket, single_part):
        s3 = self.client(url)
        s3.create_bucket(Bucket=bucket)
        cfg = (TransferConfig(multipart_threshold=8 << 30, max_concurrency=4) if single_part else
               TransferConfig(multipart_threshold=16 * MiB, multipart_chunksize=16 * MiB, max_concurrency=4))
        t = time.perf_counter()
        for k in self.all_keys:
            s3.upload_file(str(self.data / k), bucket, k, Config=cfg)
        secs = time.perf_counter() - t
        etag = s3.head_object(Bucket=bucket, Key=self.data_keys[0])["ETag"].strip('"')
        return secs, etag

    # ---- the measured runs -----------------------------------------------------------------------------
    def run_sequential(self, url, bucket, config=None):
        dest = Path(tempfile.mkdtemp(prefix="seq-", dir=self.tmp_root))
        kw = {} if config is None else {"Config": TransferConfig(**config) if isinstance(config, dict) else config}
        t = time.perf_counter()
        s3 = self.client(url)
        for k in self.fetch_keys:
            path = dest / k
            path.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, k, str(path), **kw)
        secs = time.perf_counter() - t
        return secs, {k: dest / k for k in self.fetch_keys}, dest

    def run_finops(self, url, bucket, staging=None, transfer=None):
        staging = staging or Path(tempfile.mkdtemp(prefix="staging-", dir=self.tmp_root))
        saved = fs.TRANSFER
        if transfer is not None:
            fs.TRANSFER = transfer  # S3Store.download builds its TransferConfig from the module global at call time
        try:
            t = time.perf_counter()
            cfg = load_config(None, {
                "aws.bucket": bucket, "aws.prefix": "cur", "aws.export_name": "bench-cur", "aws.cur_version": "v1",
                "aws.endpoint_url": url, "staging_dir": str(staging),
                "aws.aws_access_key_id": "testing", "aws.aws_secret_access_key": "testing",
            }, environ={})
            res = extract_billing(cfg, progress=False)
            secs = time.perf_counter() - t
        finally:
            fs.TRANSFER = saved
        if any(r.failed for r in res):
            raise SystemExit(f"finops_nb reported problems: {[(r.step, r.period, str(r.error)) for r in res if r.failed]}")
        staged = [r for r in res if r.step == "extract"]
        if len(staged) != 1 or staged[0].delivery_id != self.expected["assembly_id"]:
            raise SystemExit(f"unexpected extraction result: {res}")
        s = staged[0]
        folder = staging / aws_export(cfg).id / s.period / s.delivery_id
        paths = {k: folder / Path(k).name for k in self.fetch_keys}
        return secs, s, paths, staging

    def verify(self, what, paths):
        "Size + MD5 of every fetched file against the generated source; returns {key: (size, md5)}."
        got = {}
        for k in self.fetch_keys:
            p = paths[k]
            size, md5 = p.stat().st_size, md5_of(p)
            src = (self.data / k).stat().st_size
            if size != src or md5 != self.source_md5[k]:
                raise SystemExit(f"{what}: {k} differs from the source ({size} bytes, md5 {md5}; "
                                 f"source {src} bytes, md5 {self.source_md5[k]})")
            got[k] = (size, md5)
        return got

    def breakdown(self, url, bucket):
        "One extra, untimed finops_nb run with clocks on discovery, each download and each MD5 check."
        clocks, lock = [], threading.Lock()
        orig_download, orig_md5, orig_discover = fs.S3Store.download, fst.check_file, fm.discover

        def timed(name, fn):
            def wrapper(*a, **kw):
                t = time.perf_counter()
                try:
                    return fn(*a, **kw)
                finally:
                    with lock:
                        clocks.append((name, a[1] if name == "download" else "", t, time.perf_counter()))
            return wrapper

        fs.S3Store.download = timed("download", orig_download)
        fst.check_file = timed("md5", orig_md5)
        fm.discover = timed("discover", orig_discover)
        t0 = time.perf_counter()
        try:
            secs, s, paths, staging = self.run_finops(url, bucket)
        finally:
            fs.S3Store.download, fst.check_file, fm.discover = orig_download, orig_md5, orig_discover
        self.verify("breakdown run", paths)
        shutil.rmtree(staging, ignore_errors=True)
        span = lambda name: [(round(a - t0, 2), round(b - t0, 2)) for n, _, a, b in clocks if n == name]
        dl = sorted(((Path(k).name, round(a - t0, 2), round(b - t0, 2)) for n, k, a, b in clocks if n == "download"))
        return {
            "total": round(secs, 2),
            "config+client+listing+manifest (until the first download starts)": min(a for _, a, _ in dl) if dl else None,
            "discover (listing + manifest read)": span("discover"),
            "downloads (file, start, end)": dl,
            "checks (start, end)": span("md5"),
            "check seconds, summed over threads": round(sum(b - a for n, _, a, b in clocks if n == "md5"), 2),
        }

    # ---- main --------------------------------------------------------------------------------------------
    def main(self):
        a = self.args
        print(f"machine: {machine()}")
        print(f"finops_nb: commit {finops_version()}")
        print(f"data: {self.data} ({self.expected['rows']:,} rows x {self.expected['columns']} columns, "
              f"{len(self.data_keys)} files, {self.data_bytes / 1e6:.1f} MB of csv.gz; "
              f"fetched per run with the manifest: {self.fetch_bytes / 1e6:.1f} MB)")
        print(f"finops_nb TransferConfig: {transfer_text(fs.TRANSFER)}; boto3 default: {transfer_text(TransferConfig())}"
              + (f"; --try-transfer: {transfer_text(self.try_transfer)}" if self.try_transfer else ""))
        chosen = [s.strip() for s in a.scenarios.split(",") if s.strip()]
        for s in chosen:
            if s not in SCENARIOS:
                raise SystemExit(f"unknown scenario {s!r}; use some of {', '.join(SCENARIOS)}")
        started, proxies = {}, []
        report = {"machine": machine(), "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  "data": str(self.data), "rows": self.expected["rows"], "columns": self.expected["columns"],
                  "files": len(self.data_keys), "data_bytes": self.data_bytes, "fetch_bytes": self.fetch_bytes,
                  "repeats": a.repeats, "finops_nb": finops_version(), "finops_transfer": transfer_text(fs.TRANSFER),
                  "try_transfer": transfer_text(self.try_transfer) if self.try_transfer else None,
                  "uploads": {}, "scenarios": {}}
        try:
            plan = []  # (name, label, url, bucket)
            for name in chosen:
                if name in ("moto", "moto-md5"):
                    srv = started.get("moto") or started.setdefault("moto", start_s3_server())
                    single = name == "moto-md5"
                    bucket = BUCKET_MD5 if single else BUCKET_MULTIPART
                    label = ("moto, single-part ETags (MD5 verified)" if single else "moto, multipart ETags")
                    url = srv.url
                else:
                    srv = started.get("s3like") or started.setdefault("s3like", start_s3like_server())
                    single, bucket = False, BUCKET_MULTIPART
                    proc, url = start_proxy(srv.port, a.throttle_mbps, a.latency_ms)
                    proxies.append(proc)
                    label = (f"S3-like: {a.throttle_mbps:g} MB/s per connection, {a.latency_ms:g} ms per request, "
                             f"multipart ETags")
                up_key = f"{srv.name} {bucket}"
                if up_key not in report["uploads"]:
                    secs, etag = self.upload(srv.url, bucket, single)
                    kind = "single-part PUTs" if single else "multipart, 16 MiB parts"
                    print(f"upload to {srv.name} s3://{bucket}: {secs:.1f} s ({kind}; not part of the benchmark), "
                          f"ETag of file 1: {etag}")
                    report["uploads"][up_key] = {"seconds": round(secs, 2), "etag_example": etag}
                plan.append((name, label, url, bucket))
            print(f"peak RSS after uploads: {rss_mib():.0f} MiB (this process)")

            for name, label, url, bucket in plan:
                print(f"\n== {label}: s3://{bucket} at {url}")
                times = {"a": [], "a'": [], "b": [], "b'": []}
                staging = None

                def show(tag, what, secs, extra=""):
                    print(f"  run {r}: ({tag}) {what:<46s} {secs:6.2f} s  {self.fetch_bytes / 1e6 / secs:6.1f} MB/s{extra}",
                          flush=True)

                for r in range(1, a.repeats + 1):
                    secs, paths, dest = self.run_sequential(url, bucket)
                    seq = self.verify("sequential download", paths)
                    shutil.rmtree(dest, ignore_errors=True)
                    times["a"].append(secs)
                    show("a", "sequential download_file loop", secs)
                    if a.control:
                        secs, paths, dest = self.run_sequential(url, bucket, fs.TRANSFER)
                        self.verify("sequential download, finops TransferConfig", paths)
                        shutil.rmtree(dest, ignore_errors=True)
                        times["a'"].append(secs)
                        show("a'", "same loop, finops_nb TransferConfig", secs)
                    if staging is not None:
                        shutil.rmtree(staging, ignore_errors=True)
                    secs, s, paths, staging = self.run_finops(url, bucket)
                    if self.verify("finops_nb staging", paths) != seq:
                        raise SystemExit("staged files differ from the sequential downloads")
                    if s.action != "downloaded" or s.files != len(self.data_keys) or s.bytes != self.data_bytes:
                        raise SystemExit(f"unexpected Result: {s}")
                    times["b"].append(secs)
                    show("b", "finops_nb extract_billing", secs, "  (staged = sequential: sizes + MD5s identical)")
                    if self.try_transfer:
                        secs, s2, paths, st2 = self.run_finops(url, bucket, transfer=self.try_transfer)
                        self.verify("finops_nb staging, --try-transfer", paths)
                        shutil.rmtree(st2, ignore_errors=True)
                        times["b'"].append(secs)
                        show("b'", "extract_billing with --try-transfer", secs)
                # the delivery's folder must be left as it is (the lock file at the root may be touched)
                period_dirs = list(staging.glob(f"*/{self.expected['period']}"))  # {staging}/{export_id}/{period}
                if len(period_dirs) != 1:
                    raise SystemExit(f"expected one staged period folder, found {period_dirs}")
                period_dir = period_dirs[0]
                before = {p: p.stat().st_mtime_ns for p in period_dir.rglob("*")}
                rerun, s, _, _ = self.run_finops(url, bucket, staging)
                if s.action != "up to date" or s.bytes != 0:
                    raise SystemExit(f"rerun downloaded something: {s}")
                if {p: p.stat().st_mtime_ns for p in period_dir.rglob("*")} != before:
                    raise SystemExit("rerun touched the staged delivery")
                print(f"  (c) rerun, nothing new: {rerun:.3f} s, action {s.action!r}, {s.bytes} bytes moved; "
                      f"staged delivery untouched")
                shutil.rmtree(staging, ignore_errors=True)
                med = {k: statistics.median(v) for k, v in times.items() if v}
                res = {"label": label, "bucket": bucket, "url": url,
                       "seconds": {k: [round(x, 3) for x in v] for k, v in times.items() if v},
                       "median": {k: round(v, 3) for k, v in med.items()},
                       "mbps": {k: round(self.fetch_bytes / 1e6 / v, 1) for k, v in med.items()},
                       "ratio": round(med["b"] / med["a"], 3),
                       "rerun_seconds": round(rerun, 3)}
                if a.breakdown:
                    res["breakdown"] = self.breakdown(url, bucket)
                report["scenarios"][name] = res
            report["peak_rss_mib"] = round(rss_mib())
            report["server_peak_rss_mib"] = {n: peak_rss_of(s.pid) for n, s in started.items()}
        finally:
            for p in proxies:
                p.terminate()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)
            for s in started.values():
                s.stop()
            shutil.rmtree(self.tmp_root, ignore_errors=True)

        self.print_report(report)
        out = self.data.parent / "results"
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"extract-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%SZ')}.json"
        path.write_text(json.dumps(report, indent=1) + "\n")
        print(f"\nresults saved to {path}")
        return 0

    def print_report(self, rep):
        print(f"\n== summary: medians of {rep['repeats']} alternated runs; MB = 10^6 bytes (data files + manifest, "
              f"{rep['fetch_bytes'] / 1e6:.1f} MB)")
        names = {"a": "(a) sequential loop", "a'": "(a') loop + finops TransferConfig", "b": "(b) finops_nb",
                 "b'": "(b') finops_nb + --try-transfer"}
        for r in rep["scenarios"].values():
            parts = [f"{names[k]} {v:.2f} s ({r['mbps'][k]:.0f} MB/s; runs {min(r['seconds'][k]):.2f}-{max(r['seconds'][k]):.2f})"
                     for k, v in r["median"].items()]
            print(f"- {r['label']}: " + "; ".join(parts) + f"; ratio b/a {r['ratio']:.2f}; rerun {r['rerun_seconds']:.2f} s")
            if r.get("breakdown"):
                print(f"  breakdown of one extra finops_nb run: {json.dumps(r['breakdown'])}")
        print(f"- peak RSS: this process {rep['peak_rss_mib']} MiB; servers {rep['server_peak_rss_mib']} MiB")
        print("\nmarkdown rows (benchmark | baseline | baseline time | finops time | ratio | target | met?):")
        bench = f"extract: {rep['rows'] / 1e6:g}M rows, {rep['files']} csv.gz files ({rep['data_bytes'] / 1e6:.0f} MB)"
        for r in rep["scenarios"].values():
            m, mb = r["median"], r["mbps"]
            print(f"| {bench}, {r['label']} | sequential boto3 `download_file` loop, default TransferConfig | "
                  f"{m['a']:.2f} s ({mb['a']:.0f} MB/s) | {m['b']:.2f} s ({mb['b']:.0f} MB/s) | {r['ratio']:.2f} | "
                  f"not slower than the loop (ratio <= 1.00) | {'yes' if m['b'] <= m['a'] else 'no'} |")
        for r in rep["scenarios"].values():
            print(f"| extract rerun, nothing new ({r['label']}) | - | - | {r['rerun_seconds']:.2f} s: 0 files, 0 bytes | - | "
                  f"downloads nothing | yes |")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(HERE / ".data" / "month-1m"), help="output folder of gen_month.py")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"comma-separated, of {', '.join(SCENARIOS)}")
    ap.add_argument("--throttle-mbps", type=float, default=40.0,
                    help="s3like scenario: per-connection rate, 10^6 bytes/s (default 40)")
    ap.add_argument("--latency-ms", type=float, default=15.0, help="s3like scenario: added per request (default 15)")
    ap.add_argument("--control", action=argparse.BooleanOptionalAction, default=True,
                    help="(a') also time the sequential loop with finops_nb's TransferConfig")
    ap.add_argument("--try-transfer", default="16,16,8", metavar="THRESHOLD_MIB,CHUNK_MIB,CONCURRENCY",
                    help="(b') also time finops_nb with this TransferConfig patched in (default 16,16,8: the "
                         "suggested setting; 8,8,10 is boto3's default; empty: skip)")
    ap.add_argument("--breakdown", action=argparse.BooleanOptionalAction, default=True,
                    help="one extra untimed finops_nb run with per-step clocks")
    args = ap.parse_args(argv)
    return Bench(args).main()


if __name__ == "__main__":
    sys.exit(main())
