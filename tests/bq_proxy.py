"""A small HTTP proxy in front of the BigQuery emulator's REST API, for the Google Cloud fault tests
(tests/test_gcp_faults.py): a thread of the test process on 127.0.0.1 that forwards every request to
the emulator unless one of its hooks answers it instead (with BigQuery's JSON error body), or does
something first (e.g. writes rows into the emulator) and then lets it through.

    with BQProxy(bq_server.url) as proxy:
        proxy.hooks.append(lambda req: deny(req) if req.is_query and not req.dry_run else None)
        ... [gcp] api_endpoint = proxy.url, read_api = "rest" ...

A hook is called with a ``Request`` (method, path, raw body, parsed JSON body) and returns None (go on:
the next hook, then the emulator) or ``(status, body dict)`` to answer with. Every request is logged
(``proxy.log``: (method, path, what happened)).
"""
from __future__ import annotations

import http.client
import http.server
import json
import threading
from dataclasses import dataclass, field
from urllib.parse import urlparse

_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
        "transfer-encoding", "upgrade", "content-length"}

ACCESS_DENIED = ("Access Denied: Table {table}: User does not have permission to query table {table}, "
                 "or perhaps it does not exist.")


def bq_error(status: int, reason: str, message: str, grpc_status: str) -> tuple[int, dict]:
    "An answer with the JSON error body BigQuery's REST API sends (`error.code/message/errors[]/status`)."
    return status, {"error": {"code": status, "message": message,
                              "errors": [{"message": message, "domain": "global", "reason": reason}],
                              "status": grpc_status}}


def access_denied(table: str) -> tuple[int, dict]:
    "BigQuery's 403 to a query of a table the caller may not read (`table` as `project:dataset.table`)."
    return bq_error(403, "accessDenied", ACCESS_DENIED.format(table=table), "PERMISSION_DENIED")


@dataclass
class Request:
    method: str
    path: str
    body: bytes
    json: dict = field(default_factory=dict)

    @property
    def is_query(self) -> bool:
        "A query job being created (jobs.insert with a query configuration) or a jobs.query call."
        if self.method != "POST":
            return False
        p = urlparse(self.path).path.rstrip("/")
        if p.endswith("/queries"):
            return True
        return p.endswith("/jobs") and "query" in (self.json.get("configuration") or {})

    @property
    def sql(self) -> str:
        q = (self.json.get("configuration") or {}).get("query") or {}
        return q.get("query") or self.json.get("query") or ""

    @property
    def dry_run(self) -> bool:
        return bool((self.json.get("configuration") or {}).get("dryRun") or self.json.get("dryRun"))


class BQProxy:
    "A threaded HTTP proxy on 127.0.0.1 in front of the emulator's REST URL `upstream`; see the module's doc."

    def __init__(self, upstream: str):
        u = urlparse(upstream)
        self.upstream = (u.hostname, u.port)
        self.hooks: list = []
        self.log: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):  # quiet
                pass

            def _handle(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                try:
                    parsed = json.loads(body) if body and body[:1] in b"{[" else {}
                except ValueError:
                    parsed = {}
                req = Request(self.command, self.path, body, parsed if isinstance(parsed, dict) else {})
                answer = None
                for hook in list(proxy.hooks):
                    answer = hook(req)
                    if answer is not None:
                        break
                if answer is not None:
                    status, payload = answer
                    data = json.dumps(payload).encode()
                    proxy.log.append((self.command, self.path, f"answered {status}"))
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json; charset=UTF-8")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                status, reason, headers, data = proxy._forward(self.command, self.path, self.headers, body)
                proxy.log.append((self.command, self.path, str(status)))
                self.send_response(status, reason)
                for k, v in headers:
                    if k.lower() not in _HOP:
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
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
            return r.status, r.reason, r.getheaders(), r.read()
        finally:
            conn.close()

    def outcomes(self) -> list[str]:
        return [o for _, _, o in self.log]

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
