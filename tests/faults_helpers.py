"""Helpers of the fault suite (tests/test_faults.py): a fault-injecting HTTP proxy, before/after
snapshots of every destination, and the `finops` command run as a user runs it.

- ``FaultProxy(upstream)``: a threaded HTTP server on 127.0.0.1 that forwards every request to
  ``upstream`` (the moto S3 server or the BigQuery emulator) unless a ``Rule`` says otherwise:
  answer an S3-style error (``503 SlowDown``, ``500 InternalError``, ``403 ...``) for the first
  N matching requests or for a time window, hold a request without forwarding it, or send only
  the first bytes of a response body and stall. Every request is logged (``proxy.log``).
- ``Snapshot``: the state of staging (file tree with hashes, every export's folder), DuckDB (per
  billing period: rows, delivery ids, exact cost sums, export ids; the load log; the FOCUS rows per
  export and period), Parquet (per file of every export's folder, FOCUS files included: hash, row
  count, finops metadata) and BigQuery (per billing period: rows, delivery ids, exact sums, export
  ids; the FOCUS table per export and period; the dataset's tables).
"""
from __future__ import annotations

import hashlib
import http.client
import http.server
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

import duckdb
import pyarrow.parquet as pq

FINOPS = str(Path(sys.executable).with_name("finops"))
COSTS = ("line_item_unblended_cost", "line_item_net_unblended_cost", "line_item_blended_cost")
FOCUS_COSTS = ("BilledCost", "EffectiveCost")  # the FOCUS totals reconciled to the source
_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
        "transfer-encoding", "upgrade", "content-length"}


# ======================================================================================
# The fault-injecting proxy
# ======================================================================================
def s3_error_body(code: str, message: str = "injected fault", **extra) -> bytes:
    more = "".join(f"<{k}>{v}</{k}>" for k, v in extra.items())
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
            f"{more}<RequestId>FAULT0000000000</RequestId><HostId>fault</HostId></Error>").encode()


@dataclass
class Rule:
    """What to do with the requests ``match(method, path, body)`` accepts.

    action: ``"error"`` (answer ``status`` with an S3 error ``code``), ``"hold"`` (never forward;
    wait for ``proxy.release``, then drop the connection) or ``"stall"`` (forward, send the
    headers and the first ``after_bytes`` of the body, wait for ``proxy.release``, then the rest).
    ``times``: how many requests it applies to (None: all); ``seconds``: a time window counted
    from the first request it applies to (None: no window)."""
    action: str = "error"
    status: int = 503
    code: str = "SlowDown"
    message: str = "injected fault"
    extra: dict = field(default_factory=dict)
    match: Callable[[str, str, bytes], bool] = lambda method, path, body: True
    times: int | None = None
    seconds: float | None = None
    after_bytes: int = 0
    hits: int = 0
    first: float | None = None

    def applies(self, method, path, body) -> bool:
        if not self.match(method, path, body):
            return False
        now = time.monotonic()
        if self.times is not None and self.hits >= self.times:
            return False
        if self.seconds is not None and self.first is not None and now - self.first > self.seconds:
            return False
        if self.first is None:
            self.first = now
        self.hits += 1
        return True


class FaultProxy:
    "A threaded HTTP proxy on 127.0.0.1 in front of ``upstream``; see ``Rule``."

    def __init__(self, upstream: str):
        u = urlparse(upstream)
        self.upstream = (u.hostname, u.port)
        self.rules: list[Rule] = []
        self.log: list[tuple[str, str, str]] = []  # (method, path, what happened)
        self.stalled = threading.Event()  # set when a request is held or a body stalled
        self.release = threading.Event()  # set to let held/stalled requests go on
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):  # quiet
                pass

            def _body(self) -> bytes:
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def _handle(self):
                body = self._body()
                answer = proxy.answer(self.command, self.path, body)
                if answer is not None:  # a subclass's own answer (e.g. BigQuery's JSON error body), instead of forwarding
                    status, content_type, payload = answer
                    proxy.log.append((self.command, self.path, f"answered {status}"))
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                with proxy._lock:
                    rule = next((r for r in proxy.rules if r.applies(self.command, self.path, body)), None)
                if rule is not None and rule.action == "error":
                    proxy.log.append((self.command, self.path, f"{rule.status} {rule.code}"))
                    payload = s3_error_body(rule.code, rule.message, **rule.extra)
                    self.send_response(rule.status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(0 if self.command == "HEAD" else len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                    return
                if rule is not None and rule.action == "hold":
                    proxy.log.append((self.command, self.path, "held"))
                    proxy.stalled.set()
                    proxy.release.wait(60)
                    self.close_connection = True
                    return
                status, reason, headers, data = proxy._forward(self.command, self.path, self.headers, body)
                proxy.log.append((self.command, self.path, str(status)))
                self.send_response(status, reason)
                for k, v in headers:
                    if k.lower() not in _HOP:
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command == "HEAD":
                    return
                if rule is not None and rule.action == "stall":
                    proxy.log[-1] = (self.command, self.path, f"{status} stalled after {rule.after_bytes} bytes")
                    self.wfile.write(data[:rule.after_bytes])
                    self.wfile.flush()
                    proxy.stalled.set()
                    proxy.release.wait(60)
                    data = data[rule.after_bytes:]
                self.wfile.write(data)

            def _safe(self):
                try:
                    self._handle()
                except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
                    self.close_connection = True

            do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = do_PATCH = _safe

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _forward(self, method, path, headers, body):
        conn = http.client.HTTPConnection(*self.upstream, timeout=120)
        try:
            out = {k: v for k, v in headers.items() if k.lower() not in _HOP | {"host", "expect"}}
            out["Host"] = f"{self.upstream[0]}:{self.upstream[1]}"
            out["Content-Length"] = str(len(body))
            conn.request(method, path, body=body, headers=out)
            r = conn.getresponse()
            data = r.read()
            return r.status, r.reason, r.getheaders(), data
        finally:
            conn.close()

    def answer(self, method, path, body):
        "`(status, content type, body bytes)` to answer a request with instead of forwarding it, or None (the rules decide)."
        return None

    def add(self, **kw) -> Rule:
        rule = Rule(**kw)
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self):
        with self._lock:
            self.rules.clear()

    def outcomes(self) -> list[str]:
        return [o for _, _, o in self.log]

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


# ======================================================================================
# Snapshots of every destination
# ======================================================================================
def md5(path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def tree(root) -> dict:
    "{relative path: md5} of every file under root (lock files excluded: they hold a pid)."
    root = Path(root)
    if not root.is_dir():
        return {}
    return {p.relative_to(root).as_posix(): md5(p) for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.endswith(".finops.lock") and p.name != ".finops.lock"}


def duck_state(db_path) -> dict:
    """Per billing period: (rows, delivery ids, exact sums of the cost columns, export ids); the columns;
    and the whole load log, each entry a {column: text} dict in load order."""
    if not Path(db_path).is_file():
        return {}
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        out = {"periods": {}, "log": []}
        if "aws_billing_data" in tables:
            cols = {r[0] for r in con.execute("DESCRIBE aws_billing_data").fetchall()}
            sums = ", ".join(f"CAST(sum({c}) AS VARCHAR)" if c in cols else "NULL" for c in COSTS)
            for p, n, ids, *s in con.execute(
                    f"SELECT billing_period, count(*), list(DISTINCT delivery_id ORDER BY delivery_id), {sums}, "
                    "list(DISTINCT export_id ORDER BY export_id) FROM aws_billing_data GROUP BY 1 ORDER BY 1").fetchall():
                out["periods"][p] = (n, tuple(ids), tuple(s[:-1]), tuple(s[-1]))
            out["columns"] = sorted(cols)
        if "finops_load_log" in tables:
            cur = con.execute("SELECT * FROM finops_load_log ORDER BY loaded_at")
            names = [d[0] for d in cur.description]
            out["log"] = [{k: str(v) for k, v in zip(names, r)} for r in cur.fetchall()]
        if "focus" in tables:
            sums = ", ".join(f"CAST(sum({c}) AS VARCHAR)" for c in FOCUS_COSTS)
            out["focus"] = {f"{e} {p}": (n, tuple(ids), tuple(s)) for e, p, n, ids, *s in con.execute(
                f"SELECT x_ExportId, x_BillingPeriod, count(*), list(DISTINCT x_DeliveryId ORDER BY x_DeliveryId), {sums} "
                "FROM focus GROUP BY 1, 2 ORDER BY 1, 2").fetchall()}
        return out
    finally:
        con.close()


def parquet_state(folder) -> dict:
    "Per file under the Parquet root (key: its path relative to it, `{export_id}/{file}`): (md5, rows, finops key-value metadata)."
    folder = Path(folder)
    out = {}
    for p in sorted(folder.rglob("*")) if folder.is_dir() else []:
        if not p.is_file() or p.name.endswith(".finops.lock"):
            continue
        try:
            meta = pq.read_metadata(p)
            kv = {k.decode(): v.decode() for k, v in (meta.metadata or {}).items() if k.startswith(b"finops_")}
            out[p.relative_to(folder).as_posix()] = (md5(p), meta.num_rows, kv)
        except Exception:  # a stray (e.g. temporary) file: its hash is what counts
            out[p.relative_to(folder).as_posix()] = (md5(p), None, None)
    return out


def bq_state(client, project, dataset, table="aws_billing_data", focus="focus") -> dict:
    """Per billing period: (rows, delivery ids, exact sums as text, export ids); per export and period of the
    FOCUS table `focus`: (rows, delivery ids, exact BilledCost and EffectiveCost as text); and the tables of the dataset."""
    from google.api_core import exceptions as gx
    tid = f"{project}.{dataset}.{table}"
    out = {"periods": {}, "focus": {}, "tables": []}
    try:
        out["tables"] = sorted(t.table_id for t in client.list_tables(f"{project}.{dataset}", timeout=30))
    except gx.NotFound:
        return out
    if focus in out["tables"]:
        sums = ", ".join(f"CAST(SUM({c}) AS STRING) AS {c}" for c in FOCUS_COSTS)
        rows = client.query(f"SELECT x_ExportId AS e, x_BillingPeriod AS p, COUNT(*) AS n, "
                            f"ARRAY_AGG(DISTINCT x_DeliveryId ORDER BY x_DeliveryId) AS ids, {sums} "
                            f"FROM `{project}.{dataset}.{focus}` GROUP BY 1, 2 ORDER BY 1, 2", job_retry=None).result(timeout=60)
        out["focus"] = {f"{r['e']} {r['p']}": (r["n"], tuple(r["ids"]), tuple(r[c] for c in FOCUS_COSTS)) for r in rows}
    try:
        cols = {f.name for f in client.get_table(tid, timeout=30).schema}
    except gx.NotFound:
        return out
    sums = ", ".join(f"CAST(SUM({c}) AS STRING) AS {c}" if c in cols else f"CAST(NULL AS STRING) AS {c}" for c in COSTS)
    rows = client.query(f"SELECT billing_period, COUNT(*) AS n, ARRAY_AGG(DISTINCT delivery_id ORDER BY delivery_id) AS ids, "
                        f"{sums}, ARRAY_AGG(DISTINCT export_id ORDER BY export_id) AS exports "
                        f"FROM `{tid}` GROUP BY 1 ORDER BY 1", job_retry=None).result(timeout=60)
    for r in rows:
        out["periods"][r["billing_period"]] = (r["n"], tuple(r["ids"]), tuple(r[c] for c in COSTS), tuple(r["exports"]))
    return out


# ======================================================================================
# The command
# ======================================================================================
@dataclass
class Result:
    args: list
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def err_lines(self) -> list:
        return [l for l in self.stderr.splitlines() if l.strip()]

    def __repr__(self):
        return (f"finops {' '.join(self.args)} -> exit {self.returncode} in {self.seconds:.1f}s\n"
                f"--- stdout\n{self.stdout[-3000:]}\n--- stderr\n{self.stderr[-3000:]}")


def finops(env, *args, cwd, timeout=120) -> Result:
    t0 = time.time()
    r = subprocess.run([FINOPS, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    return Result(list(args), r.returncode, r.stdout, r.stderr, time.time() - t0)


def start_finops(env, *args, cwd, log=None) -> subprocess.Popen:
    out = open(log, "wb") if log else subprocess.DEVNULL
    return subprocess.Popen([FINOPS, *args], env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)


def wait_for(pred, timeout, what, proc=None, step=0.002):
    "Poll ``pred()`` until true; fail naming ``what`` after ``timeout`` s (or when ``proc`` ends)."
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the process ended (exit {proc.returncode}) before {what}")
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def clean_env(**extra) -> dict:
    "os.environ without any FINOPS setting, plus ``extra``."
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINOPS")}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def json_text(x) -> str:
    return json.dumps(x, indent=1, sort_keys=True, default=str)
