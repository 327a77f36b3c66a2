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

import json
from dataclasses import dataclass, field
from urllib.parse import urlparse

from faults_helpers import FaultProxy

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


class BQProxy(FaultProxy):
    "The fault proxy in front of the emulator's REST URL `upstream`, answering through `hooks` (see the module's doc)."

    def __init__(self, upstream: str):
        super().__init__(upstream)
        self.hooks: list = []

    def answer(self, method, path, body):
        try:
            parsed = json.loads(body) if body and body[:1] in b"{[" else {}
        except ValueError:
            parsed = {}
        req = Request(method, path, body, parsed if isinstance(parsed, dict) else {})
        for hook in list(self.hooks):
            got = hook(req)
            if got is not None:
                status, payload = got
                return status, "application/json; charset=UTF-8", json.dumps(payload).encode()
        return None
