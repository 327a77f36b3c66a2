"""The fault suite for Azure Cost Management exports (issue 13, "Deliver" 5): the cases of
docs/FAULTS.md that apply to Blob Storage, each run through the real pipeline against Azurite.

Every case starts from *good data already in every local destination*: a fresh container on the
session's Azurite server (tests/servers.py) holding an EA actual-cost export
(`exports/ea-actual/`, current manifests `2024-04-01`, 2023-09 and 2023-10 from the real EA
sample, 11 rows in 2 csv.gz parts each, built by tests/azure_fixtures.py and uploaded with
`upload_tree`), staged, loaded into DuckDB (with its FOCUS rows) and exported to Parquet. Then one
fault is injected, `finops azure ...` runs as a user runs it (a subprocess of the installed
command), and the destinations are compared before and after:

- DuckDB: per export and period the rows, delivery ids and the exact sum of
  `cost_in_billing_currency`; the whole load log; the FOCUS rows per export and period;
- Parquet: per file its MD5, row count and finops metadata;
- staging: the file tree with MD5s. A period keeps its previous staged delivery byte for byte, or
  holds a complete copy of the container's current run, byte-identical to the blobs (never a mix,
  never a partial file under its final name).

Most faults arrive as a re-delivery of 2023-10 (a newer run of the same range, as a month-to-date
export writes every day): the previous delivery of the period must survive a bad new one. Where
the case says so, the fault is then removed and a re-run must complete with exact totals (rows
and the sum of the cost column per destination, against the sums of the blobs' own text computed
by tests/azure_fixtures.py or by the generator below).

An export's id includes its account URL: a run through a fault proxy reads *another* export than
the same container read directly, so the worlds that need a proxy are built through it from the
start. A case that fails here is a library bug (docs/FAULTS.md, "Azure"): nothing is skipped.
"""
from __future__ import annotations

import base64
import calendar
import gzip
import json
import signal
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from urllib.parse import unquote

import duckdb
import pyarrow.parquet as pq
import pytest

import servers
from azure_fixtures import build_azure_export, delivery_order, upload_tree
from faults_helpers import (FINOPS, FaultProxy, Result, clean_env, finops, md5, parquet_state, start_finops, tree,
                            wait_for)
from finops_nb.azure.exports import azure_export
from finops_nb.config import load_config
from finops_nb.core import mask_secret
from finops_nb.localdb import load_billing_local
from finops_nb.parquet import export_parquet
from finops_nb.pipeline import extract_billing, reconcile
from finops_nb.staging import MARKER, Staging

EXPORT, PREFIX = "ea-actual", "exports"
COST = "cost_in_billing_currency"
BASE_PERIODS = ("2023-09", "2023-10")
BUSY = dict(status=503, code="ServerBusy", message="The server is busy.")

CASES = ["happy_path", "secrets_masked", "sas_in_account_url", "kill_download", "kill_load", "truncated_gzip",
         "truncated_csv_listed_size", "manifest_invalid_json", "manifest_invalid_json_only_run", "manifest_problems",
         "blob_names_unsafe", "listed_blob_missing", "storage_503_then_ok", "auth_refused", "unreachable_and_busy"]
assert len(CASES) == len(set(CASES)) == 15  # docs/FAULTS.md, "Azure", lists each with its test


# ======================================================================================
# EA actual-cost rows, generated (the kill cases need more rows than the real sample's 11)
# ======================================================================================
EA_HEADER = (
    "InvoiceSectionName,AccountName,AccountOwnerId,SubscriptionId,SubscriptionName,ResourceGroup,ResourceLocation,Date,"
    "ProductName,MeterCategory,MeterSubCategory,MeterId,MeterName,MeterRegion,UnitOfMeasure,Quantity,EffectivePrice,"
    "CostInBillingCurrency,CostCenter,ConsumedService,ResourceId,Tags,OfferId,AdditionalInfo,ServiceInfo1,ServiceInfo2,"
    "ResourceName,ReservationId,ReservationName,UnitPrice,ProductOrderId,ProductOrderName,Term,PublisherType,PublisherName,"
    "ChargeType,Frequency,PricingModel,AvailabilityZone,BillingAccountId,BillingAccountName,BillingCurrencyCode,"
    "BillingPeriodStartDate,BillingPeriodEndDate,BillingProfileId,BillingProfileName,InvoiceSectionId,IsAzureCreditEligible,"
    "PartNumber,PayGPrice,PlanName,ServiceFamily,CostAllocationRuleName,benefitId,benefitName")


def ea_rows(n, period, start=0, newline="\n"):
    """`n` rows of an EA actual-cost export (the EA export schema's 55 columns): `CostInBillingCurrency`
    with 20 decimals, `MM/DD/YYYY` dates, `Tags` without braces, `AdditionalInfo` JSON. Returns
    (CSV bytes with the header, the exact sum of CostInBillingCurrency from the generated integers)."""
    y, m = map(int, period.split("-"))
    last = calendar.monthrange(y, m)[1]
    tail = (',MS-AZR-0017P,"{""UsageType"": ""ComputeHR"", ""VCPUs"": 2}",,,vm,,,0.096,,,,Azure,,Usage,UsageBased,OnDemand,,'
            f"8611537,Contoso,USD,{m:02d}/01/{y},{m:02d}/{last:02d}/{y},8611537,Contoso,,True,AAA-00001,0.12,,Compute,,,{newline}")
    env = ("prod", "dev", "test")
    lines, total = [EA_HEADER + newline], 0
    for i in range(start, start + n):
        c = (i * 2862933555777941757 + 3037000493) % 10**22  # units of 1e-20
        total += c
        sub = f"00000000-0000-4000-8000-{i % 97:012d}"
        lines.append(f"Sales,acct-{i % 7},owner@example.com,{sub},sub-{i % 13},rg-{i % 29},westeurope,{m:02d}/{1 + i % last:02d}/{y},"
                     f"Virtual Machines D2 v3 - EU West,Virtual Machines,Dv3 Series,meter-{i % 41},D2 v3,EU West,1 Hour,{1 + i % 24},0.096,"
                     f"{c // 10**20}.{c % 10**20:020d},cc{i % 5},Microsoft.Compute,/subscriptions/{sub}/resourceGroups/rg-{i % 29}"
                     f'/providers/Microsoft.Compute/virtualMachines/vm-{i},"""env"": ""{env[i % 3]}"",""CostCenter"": ""{1000 + i % 50}""",'
                     + tail[1:])
    return "".join(lines).encode(), Decimal(total).scaleb(-20)


@dataclass
class Run:
    "A run this suite wrote itself (generated rows): its keys, manifest and exact totals."
    period: str
    run_id: str
    data_keys: list
    manifest_key: str
    rows: int
    total: Decimal

    @property
    def keys(self):
        return [*self.data_keys, self.manifest_key]


# ======================================================================================
# A world: a fresh container with the base export, its destinations, settings, snapshots
# ======================================================================================
@dataclass
class World:
    root: Path
    server: object          # the AzuriteServer
    client: object          # ContainerClient of the world's own container
    url: str                # [azure] account_url: Azurite, or a fault proxy in front of it
    proxy: FaultProxy | None = None
    base: dict = field(default_factory=dict)   # period -> AzureDelivery of the base

    @property
    def tree(self):
        "The local mirror of the container: the blob K is the file tree/K (what was uploaded)."
        return self.root / "container"

    @property
    def staging(self):
        return self.root / "staging"

    @property
    def parquet(self):
        return self.root / "parquet"

    @property
    def db(self):
        return self.root / "finops.duckdb"

    def settings(self, **kw):
        s = {"azure.account_url": self.url, "azure.container": self.client.container_name, "azure.prefix": PREFIX,
             "azure.export_name": EXPORT, "azure.account_key": self.server.account_key,
             "staging_dir": str(self.staging), "parquet_dir": str(self.parquet), "database.duckdb.database_path": str(self.db)}
        s.update(kw)
        return {k: v for k, v in s.items() if v is not None}

    def cfg(self, **kw):
        return load_config(None, self.settings(**kw), environ={})

    def env(self, drop=(), **kw):
        "The environment of a `finops` run: the world's settings as FINOPS__* variables (kw: dotted keys overridden, None: left out)."
        e = clean_env(**{"FINOPS__" + k.upper().replace(".", "__"): v for k, v in self.settings(**kw).items()})
        for k in drop:
            e.pop(k, None)
        return e

    def run(self, *args, timeout=120, **kw) -> Result:
        return finops(self.env(**kw), *args, cwd=self.root, timeout=timeout)

    @property
    def export_id(self):
        return azure_export(self.cfg()).id

    def upload(self, keys):
        "Upload these keys of the mirror to the container, in delivery order (data first, each run's manifest last)."
        order = {k: i for i, k in enumerate(delivery_order(self.tree))}
        for k in sorted(keys, key=lambda k: (k.endswith("manifest.json"), order.get(k, 0))):
            self.client.upload_blob(k, (self.tree / k).read_bytes(), overwrite=True)

    def staged(self):
        "{period: delivery id} staging holds for the world's export."
        return Staging(self.staging).held(azure_export(self.cfg()))

    def snap(self):
        return {"staging": tree(self.staging), "duckdb": duck_state(self.db), "parquet": parquet_state(self.parquet)}

    def redeliver(self, period="2023-10", run_id=None, **kw):
        "A newer run of a base period (CreateNewReport: a new run folder beside the old), written to the mirror, not uploaded."
        old = self.base[period]
        return build_azure_export(self.tree, export=EXPORT, directory=PREFIX, period=period, fmt=kw.pop("fmt", "csv.gz"),
                                  files=kw.pop("files", 2), run_id=run_id or f"{period}-{kw.pop('tag', 'redelivery')}",
                                  submitted=kw.pop("submitted", old.submitted + timedelta(days=10)), **kw)

    def write_run(self, period, run_id, parts, fmt="csv.gz", edit=None, submitted=None):
        """A run of generated rows: `parts` = [(CSV bytes, total)], stored as `fmt` (csv or csv.gz), with its
        2024-04-01 manifest (`edit(manifest)` may change it); written to the mirror, not uploaded."""
        y, m = map(int, period.split("-"))
        rng = f"{y}{m:02d}01-{y}{m:02d}{calendar.monthrange(y, m)[1]:02d}"
        when = submitted or (self.base[period].submitted + timedelta(days=10) if period in self.base
                             else datetime(y + m // 12, m % 12 + 1, 5, 6, 0, tzinfo=timezone.utc))
        folder = f"{PREFIX}/{EXPORT}/{rng}/{when:%Y%m%d%H%M}/{run_id}"
        keys, blobs, rows, total = [], [], 0, Decimal(0)
        for i, (text, t) in enumerate(parts):
            data = gzip.compress(text, 1, mtime=0) if fmt == "csv.gz" else text
            key = f"{folder}/part_{i}_0001.{fmt}"
            (self.tree / key).parent.mkdir(parents=True, exist_ok=True)
            (self.tree / key).write_bytes(data)
            n = text.count(b"\n") - 1
            keys.append(key)
            blobs.append({"blobName": key, "byteCount": len(data), "dataRowCount": n})
            rows, total = rows + n, total + t
        man = {"manifestVersion": "2024-04-01", "byteCount": sum(b["byteCount"] for b in blobs), "blobCount": len(blobs),
               "dataRowCount": rows,
               "exportConfig": {"exportName": EXPORT, "type": "ActualCost", "dataVersion": "2021-10-01", "timeFrame": "MonthToDate",
                                "resourceId": f"/providers/Microsoft.Billing/billingAccounts/8611537/providers/Microsoft.CostManagement/exports/{EXPORT}"},
               "deliveryConfig": {"partitionData": True, "dataOverwriteBehavior": "CreateNewReport", "fileFormat": "Csv",
                                  "compressionMode": "Gzip" if fmt == "csv.gz" else "None", "rootFolderPath": PREFIX},
               "runInfo": {"executionType": "Scheduled", "submittedTime": when.strftime("%Y-%m-%dT%H:%M:%S.0000000Z"), "runId": run_id,
                           "startDate": f"{y}-{m:02d}-01T00:00:00", "endDate": f"{rng[9:13]}-{rng[13:15]}-{rng[15:17]}T00:00:00Z"},
               "blobs": blobs}
        if edit:
            edit(man)
        mkey = f"{folder}/manifest.json"
        (self.tree / mkey).write_text(man if isinstance(man, str) else json.dumps(man, indent=2))
        return Run(period, run_id, keys, mkey, rows, total)


def _stage_load_export(w):
    "The good state: every period staged, loaded (with its FOCUS rows) and exported to Parquet (billing and FOCUS), in process."
    cfg = w.cfg()
    res = extract_billing(cfg, progress=False)
    assert res and all(r.action == "downloaded" and not r.failed for r in res), [(r.period, r.action, r.error) for r in res]
    loaded = load_billing_local(cfg, progress=False)
    assert [(r.period, r.action, r.error) for r in loaded] == [(p, "loaded", None) for p in sorted(w.base)], loaded
    for focus in (False, True):
        out = export_parquet(cfg, progress=False, focus=focus)
        assert [(r.period, r.action, r.error) for r in out] == [(p, "exported", None) for p in sorted(w.base)], out


@pytest.fixture
def make_world(azurite_server, blob_container, tmp_path):
    """make_world(periods=BASE_PERIODS, proxy=False, load=True): the base export in the test's fresh
    container; with proxy=True every run (the base's too) goes through a FaultProxy in front of Azurite."""
    proxies = []

    def make(periods=BASE_PERIODS, proxy=False, load=True):
        url = azurite_server.url
        fp = None
        if proxy:
            fp = FaultProxy(azurite_server.url).__enter__()
            proxies.append(fp)
            url = f"{fp.url}/{azurite_server.account}"
        w = World(tmp_path, azurite_server, blob_container, url, fp)
        for p in periods:
            w.base[p] = build_azure_export(w.tree, export=EXPORT, directory=PREFIX, period=p, fmt="csv.gz", files=2)
        upload_tree(blob_container, w.tree)
        if load:
            _stage_load_export(w)
        return w

    yield make
    for fp in proxies:
        fp.__exit__(None, None, None)


# ======================================================================================
# Snapshots and assertions
# ======================================================================================
def duck_state(db_path) -> dict:
    """Per export and period of azure_billing_data: (rows, delivery ids, exact sum of the cost column as text);
    the whole load log; the FOCUS rows per export and period (rows, delivery ids, BilledCost, EffectiveCost)."""
    if not Path(db_path).is_file():
        return {}
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        out = {"periods": {}, "log": [], "focus": {}}
        if "azure_billing_data" in tables:
            out["periods"] = {f"{e} {p}": (n, tuple(ids), s) for e, p, n, ids, s in con.execute(
                f"SELECT export_id, billing_period, count(*), list(DISTINCT delivery_id ORDER BY delivery_id), CAST(sum({COST}) AS VARCHAR) "
                "FROM azure_billing_data GROUP BY 1, 2 ORDER BY 1, 2").fetchall()}
        if "finops_load_log" in tables:
            cur = con.execute("SELECT * FROM finops_load_log ORDER BY loaded_at")
            names = [d[0] for d in cur.description]
            out["log"] = [{k: str(v) for k, v in zip(names, r)} for r in cur.fetchall()]
        if "focus" in tables:
            out["focus"] = {f"{e} {p}": (n, tuple(ids), b, f) for e, p, n, ids, b, f in con.execute(
                "SELECT x_ExportId, x_BillingPeriod, count(*), list(DISTINCT x_DeliveryId ORDER BY x_DeliveryId), "
                "CAST(sum(BilledCost) AS VARCHAR), CAST(sum(EffectiveCost) AS VARCHAR) FROM focus GROUP BY 1, 2 ORDER BY 1, 2").fetchall()}
        return out
    finally:
        con.close()


def totals(w, period, dests=("staging", "duckdb", "parquet")):
    "{destination: (rows, exact cost total)} of one period of the world's export, from reconcile (staging summed from its files)."
    rec = reconcile(w.cfg(), start_date=period, end_date=period)
    got = {d: (n, t[COST]) for e, p, d, n, t in rec.rows if (e, p) == (w.export_id, period) and d in dests}
    return {d: got.get(d) for d in dests}


def exact(w, period, rows, total, dests=("staging", "duckdb", "parquet")):
    assert totals(w, period, dests) == {d: (rows, total) for d in dests}


def assert_clear_error(r, code, *must, lines=1):
    "Exit `code`, no traceback, `lines` `finops: error:` lines (and no other stderr line) holding every text of `must` (tuples: any of)."
    assert r.returncode == code, r
    assert "Traceback" not in r.stderr, r
    errors = [l for l in r.err_lines if l.startswith("finops: error:")]
    assert len(errors) == lines and len(r.err_lines) == lines, r
    text = " ".join(errors).lower()
    for m in must:
        alts = m if isinstance(m, tuple) else (m,)
        assert any(a.lower() in text for a in alts), f"the error does not name {alts!r}:\n{errors}"


def assert_staging_kept(w, before, after, allow_partial=False):
    """Each period staged before still has one complete delivery: the same byte for byte, or a complete
    copy of the container's current run (every file's MD5 equal to its blob's), never a mix. Staging
    keys are `{export_id}/{period}/{delivery_id}/{file}`."""
    marked = {tuple(k.split("/")[:2]) for k in before if k.endswith(MARKER)}
    assert marked, f"nothing was staged before: nothing to compare ({before})"
    for export, period in sorted(marked):
        (dlv,) = {k.split("/")[2] for k in before if k.startswith(f"{export}/{period}/") and k.endswith(MARKER)}
        prefix = f"{export}/{period}/{dlv}/"
        if prefix + MARKER in after:
            assert {k: v for k, v in after.items() if k.startswith(prefix)} == \
                   {k: v for k, v in before.items() if k.startswith(prefix)}, f"staged delivery {prefix} changed"
            continue
        markers = [k for k in after if k.startswith(f"{export}/{period}/") and k.endswith(MARKER)]
        assert len(markers) == 1, f"{export} {period}: no complete staged delivery left ({markers})"
        m = json.loads((w.staging / markers[0]).read_text())
        assert (m["export"]["id"], m["period"]) == (export, period) and markers[0].split("/")[2] == m["delivery_id"], m
        for f in m["files"]:
            assert after[f"{export}/{period}/{m['delivery_id']}/{f['path']}"] == md5(w.tree / f["key"]), f
    if not allow_partial:
        assert not [k for k in after if ".part" in k.rsplit("/", 1)[-1] or k.endswith(".tmp")], after


def assert_kept(before, after, staging="equal", w=None):
    "DuckDB and Parquet exactly as before; staging equal (or, with staging='kept', as assert_staging_kept)."
    assert before["duckdb"]["periods"] and before["duckdb"]["log"] and before["parquet"], "no good data before: nothing to compare"
    for dest in ("duckdb", "parquet"):
        assert after[dest] == before[dest], f"{dest} changed:\nbefore {before[dest]}\nafter  {after[dest]}"
    if staging == "equal":
        assert after["staging"] == before["staging"], "staging changed"
    else:
        assert_staging_kept(w, before["staging"], after["staging"])


def blob_get(*keys):
    "A proxy rule match: GETs of these blobs (their names, URL-decoded)."
    return lambda method, path, body: method == "GET" and unquote(path.split("?")[0]).split("/", 3)[-1] in keys


def _leaks(text, secrets):
    return [s for s in secrets if s in text]


def _files_holding(root, secrets, skip=()):
    "Files under `root` (but `skip`) whose bytes hold any of `secrets`."
    return [p for p in Path(root).rglob("*") if p.is_file() and p not in skip
            and _leaks(p.read_bytes().decode("latin-1"), secrets)]


# ======================================================================================
# The happy path, and secrets
# ======================================================================================
def test_happy_path_exact_and_idempotent(make_world):
    """happy_path: extract-billing, load-billing-local and export-parquet from Azurite: every blob staged
    byte for byte, rows and the cost total exact in staging, DuckDB (DECIMAL(38,28)) and Parquet
    (decimal128(38, 28)); a second run (run-pipeline of the same three steps) does nothing."""
    w = make_world(load=False)
    r = w.run("azure", "extract-billing")
    assert r.returncode == 0 and r.stdout.count("downloaded") == 2, r
    assert w.staged() == {p: d.run_id for p, d in w.base.items()}
    staged_files = {k.rsplit("/", 1)[-1]: v for k, v in tree(w.staging / w.export_id).items()}
    for d in w.base.values():
        folder = w.staging / w.export_id / d.period / d.run_id
        for key in d.data_keys:
            assert md5(folder / key.rsplit("/", 1)[-1]) == md5(w.tree / key), key
        assert (folder / "manifest.json").read_bytes() == (w.tree / d.manifest_key).read_bytes()
    assert staged_files and not [k for k in staged_files if ".part" in k]
    for args in (("azure", "load-billing-local"), ("azure", "export-parquet")):
        r = w.run(*args)
        assert r.returncode == 0 and r.stderr == "", r
    for p, d in w.base.items():
        exact(w, p, d.rows, d.sums["Cost"])
        f = w.parquet / w.export_id / f"{p}_azure_billing.parquet"
        meta = pq.read_metadata(f).metadata
        assert str(pq.read_schema(f).field(COST).type) == "decimal128(38, 28)"
        assert (meta[b"finops_delivery_id"], meta[b"finops_rows"]) == (d.run_id.encode(), str(d.rows).encode())
    con = duckdb.connect(str(w.db), read_only=True)
    assert con.execute(f"SELECT DISTINCT typeof({COST}) FROM azure_billing_data").fetchall() == [("DECIMAL(38,28)",)]
    con.close()
    assert reconcile(w.cfg(), staged=True).ok
    before = w.snap()
    again = w.run("azure", "run-pipeline", "--steps", "extract,load_local,export_parquet")
    assert again.returncode == 0, again
    for p in w.base:
        (line,) = [l for l in again.stdout.splitlines() if l.startswith(p)]
        assert line.count("up to date") == 3, line
    assert w.snap() == before


def test_config_and_outputs_mask_secrets(make_world):
    """secrets_masked: connection_string, account_key and sas_token in config.toml (and a connection
    string in the environment): `finops config` (also --debug) shows each masked, and no output
    line of config, discover-exports, run-pipeline, nor of a refused run with a --debug traceback,
    and no file finops writes holds any of them."""
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas
    w = make_world(load=False)
    srv = w.server
    sas = generate_container_sas(srv.account, w.client.container_name, account_key=srv.account_key,
                                 permission=ContainerSasPermissions(read=True, list=True),
                                 expiry=datetime.now(timezone.utc) + timedelta(hours=1))
    wrong = base64.b64encode(b"q" * 64).decode()
    conn = srv.connection_string
    cfg = w.root / "config.toml"
    cfg.write_text(f'staging_dir = "{w.staging}"\nparquet_dir = "{w.parquet}"\n[database.duckdb]\ndatabase_path = "{w.db}"\n'
                   f'[azure]\naccount_url = "{w.url}"\ncontainer = "{w.client.container_name}"\nprefix = "{PREFIX}"\n'
                   f'export_name = "{EXPORT}"\nconnection_string = "{conn}"\naccount_key = "{srv.account_key}"\nsas_token = "{sas}"\n')
    secrets = [srv.account_key, sas, sas.split("sig=")[1], conn, wrong]
    env = clean_env()
    outs = [finops(env, "--config", str(cfg), *args, cwd=w.root) for args in
            (("config",), ("--debug", "config"), ("azure", "discover-exports"), ("azure", "run-pipeline"))]
    bad = {**env, "FINOPS__AZURE__CONNECTION_STRING": conn.replace(srv.account_key, wrong)}
    outs += [finops(bad, "--config", str(cfg), *args, cwd=w.root) for args in (("config",), ("--debug", "azure", "extract-billing"))]
    shown = outs[0]
    assert shown.returncode == 0 and outs[3].returncode == 0, outs
    for key, value in (("connection_string", conn), ("account_key", srv.account_key), ("sas_token", sas)):
        (line,) = [l for l in shown.stdout.splitlines() if l.startswith(f"[azure] {key} ")]
        assert mask_secret(value) in line and "config.toml" in line, line
    (line,) = [l for l in outs[4].stdout.splitlines() if l.startswith("[azure] connection_string ")]
    assert "env FINOPS__AZURE__CONNECTION_STRING" in line, line
    assert outs[5].returncode == 2 and "Traceback" in outs[5].stderr and "access refused" in outs[5].stderr, outs[5]
    for r in outs:
        assert not _leaks(r.stdout + r.stderr, secrets), r
    assert w.staged() and not _files_holding(w.root, secrets, skip={cfg}) and not _files_holding(w.root, [wrong])


def test_sas_in_account_url_is_never_shown_nor_kept(make_world):
    """sas_in_account_url: `account_url` given as a SAS URL (`https://acct.blob.core.windows.net?sv=…&sig=…`,
    what the portal's "Generate SAS" hands out; `azure_container` reads the SAS from the query): the
    signature must be as secret as `[azure] sas_token`: masked by `finops config`, absent from every
    output and every file written, and not part of the export's identity (a rotated SAS is the same export)."""
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas
    w = make_world(load=False)
    srv, name = w.server, w.client.container_name

    def sas(hours):
        return generate_container_sas(srv.account, name, account_key=srv.account_key,
                                      permission=ContainerSasPermissions(read=True, list=True),
                                      expiry=datetime.now(timezone.utc) + timedelta(hours=hours))
    first, second = sas(1), sas(2)
    env = lambda token: w.env(**{"azure.account_url": f"{w.url}?{token}", "azure.account_key": None})
    outs = [finops(env(first), *args, cwd=w.root) for args in (("config",), ("azure", "discover-exports"), ("azure", "run-pipeline"))]
    outs.append(finops(env(second), "config", cwd=w.root))  # the SAS rotated
    assert all(r.returncode == 0 for r in outs), outs
    sigs = [t.split("sig=")[1] for t in (first, second)]
    problems = []
    leaked = [r for r in outs if _leaks(r.stdout + r.stderr, sigs)]
    if leaked:
        line = next(l for l in leaked[0].stdout.splitlines() if _leaks(l, sigs))
        problems.append(f"the SAS signature is printed by {[' '.join(r.args) for r in leaked]}, e.g. {line.strip()!r}")
    files = _files_holding(w.root, sigs)
    if files:
        problems.append(f"it is written to {sorted(p.relative_to(w.root).as_posix() for p in files)}")
    ids = sorted({l.split()[1].rstrip(":") for r in outs for l in r.stdout.splitlines() if l.startswith("export ")})
    if len(ids) != 1:
        problems.append(f"a rotated SAS token is another export: {ids}")
    assert not problems, "; ".join(problems)


# ======================================================================================
# SIGKILL during the download and during the DuckDB load, then a re-run
# ======================================================================================
def test_kill_during_download(make_world):
    """kill_download: `finops azure extract-billing` is SIGKILLed while the 9 MB blob of a re-delivery is
    half downloaded (the proxy lets the first 8 MiB range through and stalls the next one): no partial
    file counts as staged, nothing else changed; the re-run stages the blob byte for byte and leaves no
    temporary file."""
    w = make_world(proxy=True)
    text, total = ea_rows(15_000, "2023-10")
    run = w.write_run("2023-10", "2023-10-big", [(text, total)], fmt="csv")
    size = (w.tree / run.data_keys[0]).stat().st_size
    assert size > 8 << 20  # more than one 8 MiB range (storage.AZURE_TRANSFER)
    w.upload(run.keys)
    before = w.snap()
    gets = iter(range(1 << 20))  # the proxy evaluates matches under its lock
    w.proxy.add(action="stall", after_bytes=100_000,
                match=lambda m, p, b: blob_get(*run.data_keys)(m, p, b) and next(gets) >= 1)  # every range after the first
    proc = start_finops(w.env(), "azure", "extract-billing", cwd=w.root, log=w.root / "killed.log")
    folder = w.staging / w.export_id / "2023-10" / run.run_id
    partial = lambda: [p for p in folder.glob(".*") if p.is_file() and p.stat().st_size > 0] if folder.is_dir() else []
    wait_for(lambda: w.proxy.stalled.is_set() and partial(), 60, "a partly downloaded blob", proc)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    w.proxy.release.set()
    left = partial()
    after = w.snap()
    assert left and all(0 < p.stat().st_size < size for p in left), left
    assert not (folder / MARKER).exists() and not (folder / "part_0_0001.csv").exists()
    assert w.staged() == {p: d.run_id for p, d in w.base.items()}  # the partial file counts for nothing
    assert_staging_kept(w, before["staging"], after["staging"], allow_partial=True)
    assert after["duckdb"] == before["duckdb"] and after["parquet"] == before["parquet"]
    w.proxy.clear()
    w.proxy.release.clear()
    r = w.run("azure", "extract-billing")
    assert r.returncode == 0 and "downloaded" in r.stdout, r
    assert w.staged() == {"2023-09": w.base["2023-09"].run_id, "2023-10": run.run_id}
    assert md5(folder / "part_0_0001.csv") == md5(w.tree / run.data_keys[0])
    assert not [p for p in w.staging.rglob("*") if ".part" in p.name], "the killed run's partial file is still there"
    assert_staging_kept(w, before["staging"], w.snap()["staging"])


def test_kill_during_load(make_world):
    """kill_load: a re-delivery of 2023-10 (132,000 rows in 4 plain CSV parts, one of them with CR LF and LF
    line ends mixed, as the MCA sample has) is staged; `finops azure load-billing-local` is SIGKILLed once
    the DuckDB file grows (the insert is under way). DuckDB keeps the previous delivery exactly, staging
    is untouched; the re-run replaces the period exactly and leaves nothing of the killed load behind."""
    w = make_world()
    parts = [ea_rows(33_000, "2023-10", start=i * 33_000, newline="\r\n" if i == 2 else "\n") for i in range(4)]
    mixed, t = parts[2]
    parts[2] = (mixed.replace(b"\r\n", b"\n", 1000), t)  # the first 1,000 lines end in LF, the rest in CR LF
    run = w.write_run("2023-10", "2023-10-big", parts, fmt="csv")
    w.upload(run.keys)
    res = extract_billing(w.cfg(), progress=False)
    assert [(r.period, r.action) for r in res] == [("2023-09", "up to date"), ("2023-10", "downloaded")], res
    before = w.snap()
    size0 = w.db.stat().st_size
    proc = start_finops(w.env(), "azure", "load-billing-local", cwd=w.root, log=w.root / "killed.log")
    wait_for(lambda: w.db.stat().st_size != size0, 90, "the database file to grow (the insert under way)", proc, step=0.005)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    after = w.snap()
    assert after["duckdb"] == before["duckdb"], "DuckDB changed: the killed load was not rolled back"
    assert after["parquet"] == before["parquet"]
    killed = {k: v for k, v in after["staging"].items() if "/.finops-unzipped-" not in k}
    assert killed == before["staging"], "the staged delivery changed"
    r = w.run("azure", "load-billing-local")
    assert r.returncode == 0 and "replaced" in r.stdout, r
    now = duck_state(w.db)
    assert now["periods"][f"{w.export_id} 2023-10"] == (run.rows, (run.run_id,), f"{run.total:.28f}")
    assert now["periods"][f"{w.export_id} 2023-09"] == before["duckdb"]["periods"][f"{w.export_id} 2023-09"]
    log = now["log"]
    assert [l["delivery_id"] for l in log] == [l["delivery_id"] for l in before["duckdb"]["log"]] + [run.run_id]
    scratch = {p.relative_to(w.staging).as_posix(): sorted(f.name for f in p.iterdir()) for p in w.staging.rglob(".finops-unzipped-*")}
    assert not scratch, f"the killed load's scratch folder (and the copy in it) is still in the staging folder: {scratch}"


# ======================================================================================
# Damaged data files
# ======================================================================================
def test_truncated_gzip_part_refused_then_recovered(make_world):
    """truncated_gzip: a re-delivery of 2023-10 whose second csv.gz part is cut to 60 % of its bytes (the
    manifest lists the size the blob has): run-pipeline refuses the load with one line naming the period,
    the file and the truncation, exit 4; DuckDB and Parquet keep the previous delivery; a later good run
    then loads exactly."""
    w = make_world()
    d = w.redeliver(tag="cut")
    part = w.tree / d.data_keys[1]
    part.write_bytes(part.read_bytes()[: part.stat().st_size * 6 // 10])
    man = json.loads((w.tree / d.manifest_key).read_text())
    man["blobs"][1]["byteCount"] = part.stat().st_size
    (w.tree / d.manifest_key).write_text(json.dumps(man))
    w.upload(d.keys)
    before = w.snap()
    r = w.run("azure", "run-pipeline")
    assert_kept(before, w.snap(), staging="kept", w=w)
    assert_clear_error(r, 4, "2023-10", "part_1_0001.csv.gz", ("truncated", "ends early", "ended before", "end of"))
    good = w.redeliver(tag="fixed", submitted=d.submitted + timedelta(days=1))
    w.upload(good.keys)
    r = w.run("azure", "run-pipeline")
    assert r.returncode == 0, r
    exact(w, "2023-10", good.rows, good.sums["Cost"])


def test_truncated_csv_part_disagrees_with_its_manifest(make_world):
    """truncated_csv_listed_size: a re-delivery of 2023-10 in plain CSV whose second part holds only its
    first records (cut at a line end, so the CSV itself parses), while the manifest lists the part's
    full `byteCount` and `dataRowCount`: the run is not complete (docs/AZURE_FORMATS.md §1a: a loader
    must check every listed blob's byteCount), so it must be refused naming the blob, and the
    previous delivery kept; it must never be loaded as if it were the month."""
    w = make_world()
    d = w.redeliver(tag="short", fmt="csv")
    part = w.tree / d.data_keys[1]
    lines = part.read_bytes().splitlines(keepends=True)
    assert len(lines) >= 4
    part.write_bytes(b"".join(lines[:3]))  # the header and two records; the manifest still lists the whole part
    w.upload(d.keys)
    before = w.snap()
    r = w.run("azure", "run-pipeline")
    after = w.snap()
    loaded = {k: v for k, v in after["duckdb"]["periods"].items() if k.endswith("2023-10")}
    assert after["duckdb"] == before["duckdb"], (
        f"a run whose blob is shorter than its manifest says was loaded as the month: 2023-10 = {loaded} "
        f"(the manifest lists {d.rows} rows; exit {r.returncode})")
    assert_clear_error(r, 4, "part_1_0001.csv", ("byteCount", "bytes", "size", "rows"))


# ======================================================================================
# Manifests
# ======================================================================================
def _break_json(w, key):
    path = w.tree / key
    path.write_text(path.read_text()[:-40])


def test_invalid_manifest_json_named_and_other_periods_load(make_world):
    """manifest_invalid_json: a re-delivery of 2023-10 whose manifest.json is cut short (not JSON), and a
    good new period 2023-11. extract-billing names the manifest ("not valid JSON", one line, exit 3)
    and stages 2023-11; run-pipeline loads 2023-11 exactly and exits 4 naming the manifest; 2023-09
    and 2023-10 stay as they were everywhere."""
    w = make_world()
    bad = w.redeliver(tag="badjson")
    _break_json(w, bad.manifest_key)
    nov = w.write_run("2023-11", "2023-11-good", [ea_rows(40, "2023-11")])
    w.upload([*bad.keys, *nov.keys])
    before = w.snap()
    r = w.run("azure", "extract-billing")
    assert_clear_error(r, 3, bad.manifest_key, "not valid JSON")
    assert w.staged() == {"2023-09": w.base["2023-09"].run_id, "2023-10": w.base["2023-10"].run_id, "2023-11": nov.run_id}
    r = w.run("azure", "run-pipeline")
    assert_clear_error(r, 4, bad.manifest_key, "not valid JSON")
    after = w.snap()
    exact(w, "2023-11", nov.rows, nov.total)
    for p in BASE_PERIODS:
        key = f"{w.export_id} {p}"
        assert after["duckdb"]["periods"][key] == before["duckdb"]["periods"][key]
        assert after["parquet"][f"{w.export_id}/{p}_azure_billing.parquet"] == before["parquet"][f"{w.export_id}/{p}_azure_billing.parquet"]
    assert after["duckdb"]["log"][:-1] == before["duckdb"]["log"]


def test_invalid_manifest_of_a_new_period_named_and_other_periods_load(make_world):
    """manifest_invalid_json_only_run: the manifest of a *new* period (2023-11: its only run) is not JSON,
    and 2023-12 is good: discover-exports and extract-billing name the manifest (exit 3), 2023-12 is
    staged and loaded; nothing else changes."""
    w = make_world()
    bad = w.write_run("2023-11", "2023-11-badjson", [ea_rows(40, "2023-11")])
    _break_json(w, bad.manifest_key)
    dec = w.write_run("2023-12", "2023-12-good", [ea_rows(30, "2023-12")])
    w.upload([*bad.keys, *dec.keys])
    before = w.snap()
    r = w.run("azure", "discover-exports")
    assert r.returncode == 3 and bad.manifest_key in r.stderr and "not valid JSON" in r.stderr and "2023-12-good" in r.stdout, r
    r = w.run("azure", "extract-billing")
    assert_clear_error(r, 3, bad.manifest_key, "not valid JSON")
    assert w.staged().get("2023-12") == dec.run_id
    r = w.run("azure", "run-pipeline")
    assert_clear_error(r, 4, bad.manifest_key)
    exact(w, "2023-12", dec.rows, dec.total)
    assert {k: v for k, v in w.snap()["parquet"].items() if "2023-12" not in k} == before["parquet"]


MANIFEST_PROBLEMS = {  # period re-delivered: (how its manifest is broken, what the error must say)
    "2023-09": (lambda m: m.__setitem__("blobs", []), ("no data files",)),
    "2023-10": (lambda m: m["blobs"].append(dict(m["blobs"][0])), ("same file twice",)),
    "2023-11": (lambda m: m["runInfo"].__setitem__("startDate", "2024-02-01T00:00:00"), ("2024-02-01", "disagrees")),
    "2023-12": (lambda m: m.__setitem__("blobs", "part_0_0001.csv.gz"), ("no data files",)),
}


def test_manifest_problems_named_one_line_each(make_world):
    """manifest_problems: four periods re-delivered with a manifest that parses but cannot be used
    (`blobs` empty, a blob listed twice, `runInfo.startDate` in another month, `blobs` not a list) and a
    good new period 2024-01: extract-billing exits 3 with one line per manifest naming its key and the
    problem, stages 2024-01 and nothing of the bad runs; DuckDB and Parquet keep the four periods."""
    w = make_world(periods=tuple(MANIFEST_PROBLEMS))
    bad = {}
    for p, (edit, _) in MANIFEST_PROBLEMS.items():
        d = w.redeliver(p, tag="bad")
        m = json.loads((w.tree / d.manifest_key).read_text())
        edit(m)
        (w.tree / d.manifest_key).write_text(json.dumps(m))
        bad[p] = d
    jan = w.write_run("2024-01", "2024-01-good", [ea_rows(25, "2024-01")])
    w.upload([k for d in bad.values() for k in d.keys] + jan.keys)
    before = w.snap()
    r = w.run("azure", "extract-billing")
    assert r.returncode == 3, r
    errors = [l for l in r.err_lines if l.startswith("finops: error:")]
    assert len(errors) == len(r.err_lines) == len(bad), r
    for p, d in bad.items():
        (line,) = [l for l in errors if d.manifest_key in l]
        assert all(x.lower() in line.lower() for x in MANIFEST_PROBLEMS[p][1]), line
    assert w.staged() == {**{p: d.run_id for p, d in w.base.items()}, "2024-01": jan.run_id}
    r = w.run("azure", "run-pipeline")
    assert r.returncode == 4, r
    after = w.snap()
    exact(w, "2024-01", jan.rows, jan.total)
    assert {k: v for k, v in after["duckdb"]["periods"].items() if not k.endswith("2024-01")} == before["duckdb"]["periods"]
    assert {k: v for k, v in after["parquet"].items() if "2024-01" not in k} == before["parquet"]


UNSAFE = {  # period re-delivered: the blob name its manifest lists instead of its first part
    "2023-09": "exports/ea-actual/20230901-20230930/run/../../../../escaped.csv.gz",
    "2023-10": "/etc/passwd.csv.gz",
    "2023-11": "exports/other-export/20231101-20231130/202312050603/run-x/part_0_0001.csv.gz",
}


def test_unsafe_blob_names_refused(make_world):
    """blob_names_unsafe: manifests whose blobs[].blobName climbs out with `..`, is absolute, or names a
    blob of another export's folder (which exists): each manifest is refused naming the key and the
    name (exit 3 from extract-billing, 4 from run-pipeline); nothing of those runs is downloaded,
    nothing is written outside the staging folder, every period keeps its delivery."""
    w = make_world(periods=tuple(UNSAFE))
    other = w.tree / UNSAFE["2023-11"]
    other.parent.mkdir(parents=True)
    other.write_bytes(gzip.compress(ea_rows(5, "2023-11")[0]))
    keys = [UNSAFE["2023-11"]]
    bad = {}
    for p, name in UNSAFE.items():
        d = w.redeliver(p, tag="unsafe")
        m = json.loads((w.tree / d.manifest_key).read_text())
        m["blobs"][0]["blobName"] = name
        (w.tree / d.manifest_key).write_text(json.dumps(m))
        bad[p] = d
        keys += d.keys
    w.upload(keys)
    outside = lambda: sorted(p.relative_to(w.root).as_posix() for p in w.root.rglob("*") if p.is_file() and w.staging not in p.parents)
    files_before = outside()
    before = w.snap()
    r = w.run("azure", "extract-billing")
    assert r.returncode == 3, r
    errors = [l for l in r.err_lines if l.startswith("finops: error:")]
    assert len(errors) == len(r.err_lines) == len(bad), r
    for p, d in bad.items():
        (line,) = [l for l in errors if d.manifest_key in l]
        assert "refused" in line and repr(UNSAFE[p]) in line, line
    r = w.run("azure", "run-pipeline")
    assert r.returncode == 4 and all(d.manifest_key in r.stderr for d in bad.values()), r
    assert_kept(before, w.snap())
    assert outside() == files_before
    assert not [p for p in w.root.parent.rglob("*") if p.name in ("escaped.csv.gz", "passwd.csv.gz")]


def test_listed_blob_missing_named_then_recovered(make_world):
    """listed_blob_missing: a re-delivery of 2023-10 whose manifest lists a part that is not in the container:
    one line naming the blob's URL and "not found" (exit 4 from run-pipeline, 3 from extract-billing);
    nothing downloaded, nothing changed; once the blob is there the next run loads the delivery exactly."""
    w = make_world()
    d = w.redeliver(tag="late")
    w.upload([d.data_keys[0], d.manifest_key])  # part 1 has not arrived
    before = w.snap()
    url = f"{w.url}/{w.client.container_name}/{d.data_keys[1]}"
    r = w.run("azure", "run-pipeline")
    assert_clear_error(r, 4, "2023-10", url, "not found")
    r2 = w.run("azure", "extract-billing")
    assert_clear_error(r2, 3, "2023-10", url, "not found")
    assert_kept(before, w.snap())
    w.upload([d.data_keys[1]])
    r = w.run("azure", "run-pipeline")
    assert r.returncode == 0, r
    exact(w, "2023-10", d.rows, d.sums["Cost"])


# ======================================================================================
# Storage that answers 503, refuses access, or cannot be reached
# ======================================================================================
def test_storage_503_then_success(make_world):
    """storage_503_then_ok: through the fault proxy, the listing and the first GET of each part of a
    re-delivery of 2023-10 answer `503 ServerBusy` once: the SDK retries (the library's
    ExponentialRetry), run-pipeline exits 0 in < 30 s and the re-delivery is exact in staging, DuckDB and Parquet."""
    w = make_world(proxy=True)
    d = w.redeliver(tag="busy")
    w.upload(d.keys)
    w.proxy.log.clear()
    listing = w.proxy.add(match=lambda m, p, b: m == "GET" and "comp=list" in p, times=1, **BUSY)
    data = [w.proxy.add(match=blob_get(k), times=1, **BUSY) for k in d.data_keys]
    t0 = time.monotonic()
    r = w.run("azure", "run-pipeline")
    seconds = time.monotonic() - t0
    print(f"503 then success: run-pipeline exit {r.returncode} in {seconds:.1f} s")
    assert r.returncode == 0, r
    assert seconds < 30, seconds
    assert listing.hits == 1 and [x.hits for x in data] == [1, 1], w.proxy.log
    for k in d.data_keys:
        got = [o for m, p, o in w.proxy.log if blob_get(k)(m, p, b"")]
        assert got[0] == "503 ServerBusy" and got[1].startswith("20"), got
    exact(w, "2023-10", d.rows, d.sums["Cost"])


def test_auth_refused_names_the_setting(make_world):
    """auth_refused: a wrong account key (valid base64), a key that is not base64, a connection string with a
    wrong key and an expired SAS token: run-pipeline (extract-billing for one) exits 2 at once with one
    line naming the setting to check; nothing changes; no secret is printed."""
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas
    w = make_world()
    srv = w.server
    wrong = base64.b64encode(b"w" * 64).decode()
    expired = generate_container_sas(srv.account, w.client.container_name, account_key=srv.account_key,
                                     permission=ContainerSasPermissions(read=True, list=True),
                                     expiry=datetime.now(timezone.utc) - timedelta(hours=1))
    variants = [  # (settings, command, texts the error must hold)
        ({"azure.account_key": wrong}, "run-pipeline", ("access refused", "check [azure] account_key")),
        ({"azure.account_key": "not a key!"}, "extract-billing", ("could not be signed", "check [azure] account_key")),
        ({"azure.account_key": None, "azure.connection_string": srv.connection_string.replace(srv.account_key, wrong)},
         "run-pipeline", ("access refused", "check [azure] connection_string")),
        ({"azure.account_key": None, "azure.sas_token": expired}, "run-pipeline", ("access refused", "check [azure] sas_token")),
    ]
    before = w.snap()
    for settings, command, must in variants:
        r = w.run("azure", command, **settings)
        assert_clear_error(r, 2, f"{w.url}/{w.client.container_name}/{PREFIX}/{EXPORT}/", *must)
        assert r.seconds < 15, r
        assert not _leaks(r.stdout + r.stderr, [wrong, expired.split("sig=")[1], srv.account_key]), r
    assert_kept(before, w.snap())


@pytest.fixture(scope="module", autouse=True)
def transient_runs(azurite_server, tmp_path_factory):
    """The runs that only wait out the SDK's retries (~17 s, asleep), started before the module's first test
    and collected by the last: account_url on a loopback port where nothing listens (extract-billing and
    run-pipeline), and a proxy answering 503 ServerBusy to every request (run-pipeline); each reads the
    base export of its own container. {case: (account url, thread that fills `results`)}."""
    import threading
    from azure.storage.blob import ContainerClient
    root = tmp_path_factory.mktemp("transient")
    client = ContainerClient.from_connection_string(azurite_server.connection_string, f"transient-{time.time_ns() % 10**9}")
    for p in BASE_PERIODS:
        build_azure_export(root / "container", export=EXPORT, directory=PREFIX, period=p, fmt="csv.gz", files=2)
    upload_tree(client, root / "container")
    busy = FaultProxy(azurite_server.url).__enter__()
    busy.add(**BUSY)
    w = World(root, azurite_server, client, azurite_server.url)
    dead = f"http://127.0.0.1:{servers.free_port()}/{azurite_server.account}"
    runs = {"unreachable extract": (dead, "extract-billing"), "unreachable pipeline": (dead, "run-pipeline"),
            "busy pipeline": (f"{busy.url}/{azurite_server.account}", "run-pipeline")}
    results, procs, threads = {}, {}, {}

    def wait(case, t0, proc):
        out, err = proc.communicate(timeout=180)
        results[case] = Result([case], proc.returncode, out, err, time.monotonic() - t0)

    for case, (url, command) in runs.items():
        procs[case] = subprocess.Popen([FINOPS, "azure", command], env=w.env(**{"azure.account_url": url}), cwd=root, text=True,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        threads[case] = threading.Thread(target=wait, args=(case, time.monotonic(), procs[case]), daemon=True)
        threads[case].start()
    yield {"world": w, "runs": runs, "threads": threads, "results": results, "proxy": busy}
    for proc in procs.values():
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    busy.__exit__(None, None, None)
    try:
        client.delete_container()
    except Exception:
        pass
    client.close()


def test_unreachable_account_and_lasting_throttling_are_transient(transient_runs):
    """unreachable_and_busy: account_url on a loopback port where nothing listens (extract-billing and
    run-pipeline), and storage that answers 503 ServerBusy to every request (run-pipeline through the
    proxy), started together (fixture `transient_runs`): each exits 75 within 30 s with one line naming
    the export's folder URL ("cannot reach ... check [azure] account_url"; "ServerBusy ... try again
    later"); nothing is staged, loaded or exported."""
    w, runs, results = transient_runs["world"], transient_runs["runs"], transient_runs["results"]
    for t in transient_runs["threads"].values():
        t.join(120)
    assert set(results) == set(runs), results
    for case, r in results.items():
        url, _ = runs[case]
        print(f"{case}: exit {r.returncode} after {r.seconds:.1f} s")
        assert r.seconds < 30, r
        where = f"{url}/{w.client.container_name}/{PREFIX}/{EXPORT}/"
        if case.startswith("unreachable"):
            assert_clear_error(r, 75, where, "cannot reach Azure Storage", "check [azure] account_url")
        else:
            assert_clear_error(r, 75, where, "ServerBusy", "try again later")
    busy = transient_runs["proxy"]
    assert busy.log and set(busy.outcomes()) == {"503 ServerBusy"}, busy.log
    assert w.snap() == {"staging": {}, "duckdb": {}, "parquet": {}}
