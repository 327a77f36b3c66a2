"""Probes behind "The gzip content check, and where it runs" in bench/README.md.

    .venv/bin/python bench/probe_gzip_check.py [--parts inflate,extract] [--scenarios moto,s3like] [--repeats 3]

inflate: seconds to inflate one generated 57 MB csv.gz file (CRC-32 checked) with ISA-L's decompressobj, by the
         size of the input piece and the bound on the output per call (median of 5 calls each), the same with zlib, and
         `finops_nb.storage.check_file` on 4 files in 4 threads.
extract: the 4 files of the month, downloaded from a local S3 server in this process, by variant (3 alternated
         runs each): the sequential boto3 loop (default TransferConfig), finops_nb's TransferConfig with 4 files at
         once and no content check (`nocheck`), the same with `check_file` after each download (`after`), and a
         streamed check where each range is fed to the inflater in file order as it is written (`streamed`:
         s3transfer writes ranges in any order into a file object whose `write` feeds `check_file`'s inflater as
         soon as the bytes before them are there; `streamed-single` does one GET per file). Wall time, CPU seconds
         of this process and of the server processes (/proc).
Results: bench/.data/results/gzipcheck-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE.parent))

import boto3  # noqa: E402
from boto3.s3.transfer import TransferConfig  # noqa: E402
from botocore.config import Config as BotoConfig  # noqa: E402
from isal import isal_zlib  # noqa: E402

import bench_extract as be  # noqa: E402
import servers  # noqa: E402
from _common import DATA, machine, save  # noqa: E402
from finops_nb import storage as fs  # noqa: E402

MONTH = DATA / "month-1m"


def month_files() -> list[Path]:
    files = sorted(MONTH.glob("cur/bench-cur/*/*/*.csv.gz"))
    if len(files) != 4:
        sys.exit(f"{MONTH}: run bench/gen_month.py first (found {len(files)} data files)")
    return files


# ---- inflate -------------------------------------------------------------------------------------------------
def inflate_part() -> dict:
    files = month_files()
    data = files[0].read_bytes()

    def inflate(piece, limit, lib=isal_zlib):
        t, gz = time.perf_counter(), lib.decompressobj(wbits=47)
        mv = memoryview(data)
        for i in range(0, len(mv), piece):
            b = mv[i:i + piece]
            while b:
                gz.decompress(b, limit)
                b = gz.unconsumed_tail
        assert gz.eof
        return time.perf_counter() - t

    out = {}
    for piece, limit in [(8 << 20, 64 << 20), (256 << 10, 16 << 20), (256 << 10, 1 << 20), (16 << 10, 64 << 10)]:
        secs = statistics.median(inflate(piece, limit) for _ in range(5))
        name = f"piece {piece >> 10} KiB, output <= {limit >> 10} KiB"
        out[name] = round(secs, 3)
        print(f"  inflate one file ({len(data) / 1e6:.1f} MB): {name:36s} {secs:.3f} s")

    secs = statistics.median(inflate(16 << 10, 64 << 10, zlib) for _ in range(5))
    out["zlib (not ISA-L), piece 16 KiB, output <= 64 KiB"] = round(secs, 3)
    print(f"  inflate one file with zlib instead of ISA-L: piece 16 KiB, output <= 64 KiB  {secs:.3f} s")

    def four():
        t = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            assert not any(pool.map(fs.check_file, files))
        return time.perf_counter() - t
    secs = statistics.median(four() for _ in range(3))
    out["check_file, 4 files in 4 threads"] = round(secs, 3)
    print(f"  finops_nb check_file, 4 files in 4 threads: {secs:.3f} s")
    return out


# ---- extract -------------------------------------------------------------------------------------------------
class StreamedCheck:
    """A file that s3transfer writes ranges into in any order (seek + write); the bytes reach the gzip inflater in
    file order, as soon as every byte before them has been written (later ranges are read back from the file)."""

    def __init__(self, path):
        self.f = open(path, "w+b")
        self.gz, self.pos, self.done, self.ahead, self.error = isal_zlib.decompressobj(wbits=47), 0, 0, {}, ""

    def seekable(self):
        return True

    def seek(self, offset, whence=0):
        self.pos = self.f.seek(offset, whence)
        return self.pos

    def tell(self):
        return self.pos

    def _feed(self, b):
        try:
            for i in range(0, len(b), fs._PIECE):
                self.gz = fs._inflate(self.gz, b[i:i + fs._PIECE])
        except isal_zlib.error as e:
            self.error = str(e)

    def write(self, b):
        off = self.pos
        self.f.write(b)
        self.pos = off + len(b)
        if off > self.done:
            self.ahead[off] = max(self.ahead.get(off, 0), off + len(b))
            return len(b)
        if off + len(b) > self.done:
            self._feed(memoryview(b)[self.done - off:])
            self.done = off + len(b)
        buf = None
        while True:
            for s in [s for s, e in self.ahead.items() if e <= self.done]:
                del self.ahead[s]
            ends = [e for s, e in self.ahead.items() if s <= self.done]
            if not ends:
                return len(b)
            end, buf = max(ends), buf or bytearray(1 << 20)
            self.f.flush()
            while self.done < end:
                n = os.preadv(self.f.fileno(), [memoryview(buf)[:min(end - self.done, len(buf))]], self.done)
                self._feed(memoryview(buf)[:n])
                self.done += n

    def close(self):
        self.f.close()
        return self.error or ("" if self.gz.eof else "truncated")


def cpu_of(pids) -> float:
    total = 0.0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def extract_part(scenario: str, repeats: int) -> dict:
    files = month_files()
    procs = []
    if scenario == "s3like":
        srv = be.start_s3like_server()
        proxy, url = be.start_proxy(int(srv.url.rstrip("/").rsplit(":", 1)[1]), 40.0, 15.0)
        pids, upload_url = [srv.pid, proxy.pid], srv.url
        procs.append(proxy)
    else:
        srv = servers.start_s3_server()
        pids, url, upload_url = [srv.pid], srv.url, srv.url
    try:
        bucket = "finops-gzip-probe"
        s3 = boto3.client("s3", endpoint_url=upload_url, **servers.aws_client_kwargs())
        s3.create_bucket(Bucket=bucket)
        for f in files:
            s3.upload_file(str(f), bucket, f.name, Config=TransferConfig(multipart_threshold=16 << 20,
                                                                         multipart_chunksize=16 << 20, max_concurrency=4))
        md5 = {f.name: hashlib.md5(f.read_bytes()).hexdigest() for f in files}

        def client():
            return boto3.client("s3", endpoint_url=url, **servers.aws_client_kwargs(),
                                config=BotoConfig(max_pool_connections=64))

        def loop(d):
            c = client()
            for f in files:
                c.download_file(bucket, f.name, str(d / f.name))

        def parallel(mode, transfer):
            def run(d):
                c = client()

                def one(f):
                    if mode.startswith("streamed"):
                        w = StreamedCheck(d / f.name)
                        c.download_fileobj(bucket, f.name, w, Config=transfer)
                        assert not w.close()
                    else:
                        c.download_file(bucket, f.name, str(d / f.name), Config=transfer)
                        if mode == "after":
                            assert not fs.check_file(d / f.name)
                with ThreadPoolExecutor(8) as pool:
                    list(pool.map(one, files))
            return run

        finops = TransferConfig(**fs.TRANSFER)  # finops_nb.storage.TRANSFER holds the TransferConfig's kwargs
        variants = {"loop": loop, "nocheck": parallel("nocheck", finops), "after": parallel("after", finops),
                    "streamed": parallel("streamed", finops),
                    "streamed-single": parallel("streamed", TransferConfig(multipart_threshold=1 << 40))}
        runs = {v: [] for v in variants}
        for _ in range(repeats):
            for name, fn in variants.items():
                d = Path(tempfile.mkdtemp(prefix="gzipcheck-"))
                c0, s0, t0 = os.times(), cpu_of(pids), time.perf_counter()
                fn(d)
                t1, c1, s1 = time.perf_counter(), os.times(), cpu_of(pids)
                for f in files:
                    assert hashlib.md5((d / f.name).read_bytes()).hexdigest() == md5[f.name], (name, f.name)
                    (d / f.name).unlink()
                d.rmdir()
                runs[name].append({"wall": t1 - t0, "client_cpu": (c1.user - c0.user) + (c1.system - c0.system),
                                   "server_cpu": s1 - s0})
        out = {}
        for name, rs in runs.items():
            med = {k: round(statistics.median(r[k] for r in rs), 2) for k in rs[0]}
            rng = (round(min(r["wall"] for r in rs), 2), round(max(r["wall"] for r in rs), 2))
            out[name] = {**med, "wall_range": rng}
            print(f"  {scenario:7s} {name:16s} wall {med['wall']:.2f} s ({rng[0]:.2f}-{rng[1]:.2f})  "
                  f"client CPU {med['client_cpu']:.2f} s  server CPU {med['server_cpu']:.2f} s  "
                  f"ratio to loop {med['wall'] / statistics.median(r['wall'] for r in runs['loop']):.2f}")
        return out
    finally:
        srv.stop()
        for p in procs:
            p.kill()
            p.wait(5)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parts", default="inflate,extract")
    ap.add_argument("--scenarios", default="moto,s3like")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    print(f"machine: {machine()}")
    report = {"machine": machine()}
    if "inflate" in a.parts:
        report["inflate"] = inflate_part()
    if "extract" in a.parts:
        report["extract"] = {s: extract_part(s, a.repeats) for s in a.scenarios.split(",")}
    print(f"results saved to {save('gzipcheck', report)}")


if __name__ == "__main__":
    main()
