"""Benchmark: `finops azure extract-billing` and `finops azure load-billing-local` of a 1M-row month from Azurite.

    .venv/bin/python bench/bench_azure.py [--rows 1000000] [--files 4] [--repeats 3] [--aws-load] [--profile] [--md5]

One run of this script:

1. generates once (cached: ``bench/.data/azure-month-<rows>/`` holds a stamp of the parameters and of this
   file's generator) one month, 2024-03, of an EA **actual cost** export as Cost Management writes it since
   2024: ``exports/bench-actual/20240301-20240331/202404050603/<runId>/part_{k}_0001.csv.gz`` (``--files``
   parts) and that run's ``manifest.json`` (2024-04-01: exportConfig, deliveryConfig, runInfo, blobs with
   byteCount and dataRowCount). The rows are DuckDB SQL over ``range(N)`` written with ``COPY ... (HEADER,
   COMPRESSION gzip)``: the EA export schema's 55 columns in its order (``CostInBillingCurrency``,
   ``BillingCurrencyCode``, ``PayGPrice``, ``benefitId``...), 12 meter templates (VMs, managed disks, bandwidth,
   blob storage, SQL Database, App Service, Log Analytics, AKS, Key Vault), 40 subscriptions, ``MM/DD/YYYY``
   dates, ``CostInBillingCurrency`` with 20 decimals (reservation usage 0, as an actual-cost export writes it;
   reservation purchases), quantities with 10 decimals, ``Tags`` without the outer braces (``"env":
   "prod","costCenter": "1017"``, one row in five without tags), ``AdditionalInfo`` JSON on VM rows. The exact
   expected total is the sum of the generated integers (units of 1e-20), computed apart from any CSV reader,
   and cross-checked against DuckDB's sum of the text read back from the written files as DECIMAL(38,20);
2. starts the project's Azurite (``tests/servers.py``: 127.0.0.1, a fresh folder) and uploads the parts as
   staged blocks of 8 MiB (no Content-MD5, as large export blobs have; ``--md5``: single PUTs, which Azurite, like
   Azure, gives a Content-MD5, so that finops verifies the MD5 of every download) and the manifest last;
3. ``--repeats`` times, each in a fresh folder and each command its own process (wall time and peak RSS of
   that process from ``wait4``: ``bench/_common.py``): ``finops azure extract-billing`` (checked: every staged
   file's MD5 equals the generated file's), then ``finops azure load-billing-local`` into a fresh database at
   finops' defaults (memory_limit 1GB; the load builds the period's FOCUS rows in the same transaction; checked:
   1,000,000 rows, the exact total, DECIMAL(38,28), one export/period/delivery); with ``--aws-load`` each round
   also times ``finops aws load-billing-local`` of the AWS month of ``bench_load.py`` (``bench/.data/month-1m``,
   staged in ``bench/.data/work/month-1m/staging``), for a same-day reference; then one re-run of each with
   nothing new. ``--profile`` adds one more ``load_billing_local`` in a child process with a clock on each SQL statement
   of the load and on the FOCUS build inside its transaction (patched in that process only).
Before each timed command it waits (up to ``--wait`` seconds in all) for the 1-minute load average to drop under
``--quiet`` and records the load at the start. Results: ``bench/.data/results/azure-<UTC time>.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "tests"))
from _common import DATA, FINOPS, PY, drop_db, fresh_dir, finops_env, finops_version, machine, med, run, save, span  # noqa: E402

PERIOD, EXPORT, PREFIX = "2024-03", "bench-actual", "exports"
RANGE = "20240301-20240331"
SUBMITTED = "2024-04-05T06:03:11.6543210Z"
RUN_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{PREFIX}/{EXPORT}/{RANGE}/{SUBMITTED}"))
RUN_DIR = f"{PREFIX}/{EXPORT}/{RANGE}/202404050603/{RUN_ID}"
CONTAINER = "bench"
STAMP = ".bench-stamp.json"
SCALE = 20  # CostInBillingCurrency: integers of 1e-20
GENERATOR_VERSION = 2

COLUMNS = [  # the EA export schema (2021-10-01), in its order (as the real EA export sample)
    "InvoiceSectionName", "AccountName", "AccountOwnerId", "SubscriptionId", "SubscriptionName", "ResourceGroup",
    "ResourceLocation", "Date", "ProductName", "MeterCategory", "MeterSubCategory", "MeterId", "MeterName", "MeterRegion",
    "UnitOfMeasure", "Quantity", "EffectivePrice", "CostInBillingCurrency", "CostCenter", "ConsumedService", "ResourceId",
    "Tags", "OfferId", "AdditionalInfo", "ServiceInfo1", "ServiceInfo2", "ResourceName", "ReservationId", "ReservationName",
    "UnitPrice", "ProductOrderId", "ProductOrderName", "Term", "PublisherType", "PublisherName", "ChargeType", "Frequency",
    "PricingModel", "AvailabilityZone", "BillingAccountId", "BillingAccountName", "BillingCurrencyCode",
    "BillingPeriodStartDate", "BillingPeriodEndDate", "BillingProfileId", "BillingProfileName", "InvoiceSectionId",
    "IsAzureCreditEligible", "PartNumber", "PayGPrice", "PlanName", "ServiceFamily", "CostAllocationRuleName",
    "benefitId", "benefitName"]

METERS = [  # ProductName, MeterCategory, MeterSubCategory, MeterName, UnitOfMeasure, ConsumedService, ServiceFamily, resource type, price
    ("Virtual Machines Dsv5 Series - D2s v5 - EU West", "Virtual Machines", "Dsv5 Series", "D2s v5", "1 Hour",
     "Microsoft.Compute", "Compute", "virtualMachines", "0.096"),
    ("Virtual Machines BS Series - B2s - EU West", "Virtual Machines", "BS Series", "B2s", "1 Hour",
     "Microsoft.Compute", "Compute", "virtualMachines", "0.0416"),
    ("Premium SSD Managed Disks - P10 LRS - EU West", "Storage", "Premium SSD Managed Disks", "P10 LRS Disk", "1/Month",
     "Microsoft.Compute", "Storage", "disks", "17.92"),
    ("Standard SSD Managed Disks - E10 LRS - EU West", "Storage", "Standard SSD Managed Disks", "E10 LRS Disk", "1/Month",
     "Microsoft.Compute", "Storage", "disks", "9.6"),
    ("Rtn Preference: MGN - Standard Data Transfer Out - Zone 1", "Bandwidth", "Rtn Preference: MGN", "Standard Data Transfer Out",
     "1 GB", "Microsoft.Network", "Networking", "networkInterfaces", "0.087"),
    ("General Block Blob v2 - Hot LRS Data Stored - EU West", "Storage", "General Block Blob v2", "Hot LRS Data Stored",
     "1 GB/Month", "Microsoft.Storage", "Storage", "storageAccounts", "0.0184"),
    ("General Block Blob v2 - Hot Write Operations - EU West", "Storage", "General Block Blob v2", "Hot Write Operations", "10K",
     "Microsoft.Storage", "Storage", "storageAccounts", "0.065"),
    ("SQL Database Single/Elastic Pool General Purpose - Compute Gen5 - EU West", "SQL Database",
     "Single/Elastic Pool General Purpose - Compute Gen5", "vCore", "1 Hour", "Microsoft.Sql", "Databases", "servers", "0.2525"),
    ("Azure App Service Premium v3 Plan - P1 v3 App - EU West", "Azure App Service", "Premium v3 Plan", "P1 v3 App", "1 Hour",
     "Microsoft.Web", "Compute", "serverFarms", "0.169"),
    ("Log Analytics - Pay-as-you-go Data Ingestion - EU West", "Log Analytics", "Pay-as-you-go", "Data Ingestion", "1 GB",
     "Microsoft.OperationalInsights", "Management and Governance", "workspaces", "2.76"),
    ("Azure Kubernetes Service - Standard Uptime SLA - EU West", "Azure Kubernetes Service", "Standard", "Uptime SLA", "1 Hour",
     "Microsoft.ContainerService", "Compute", "managedClusters", "0.1"),
    ("Key Vault - Standard Operations - EU West", "Key Vault", "Standard", "Operations", "10K", "Microsoft.KeyVault",
     "Security", "vaults", "0.03"),
]


def _sql_str(s):
    return "'" + s.replace("'", "''") + "'"


def _guid(expr):
    "SQL: a GUID-shaped text from md5(expr)."
    h = f"md5({expr})"
    return (f"substr({h}, 1, 8) || '-' || substr({h}, 9, 4) || '-4' || substr({h}, 14, 3) || '-8' || substr({h}, 18, 3) "
            f"|| '-' || substr({h}, 21, 12)")


def month_sql(lo: int, hi: int) -> str:
    """The SELECT of rows lo..hi-1: every column as text (NULL = an empty field), plus `_c` (the cost as an integer of 1e-20)."""
    meters = ", ".join("(" + ", ".join([str(k)] + [_sql_str(v) for v in m]) + ")" for k, m in enumerate(METERS))
    big = f"CAST('1{'0' * SCALE}' AS HUGEINT)"
    return f"""
WITH m(k, product, category, subcategory, meter, unit, service, family, rtype, price) AS (VALUES {meters}),
g AS (
  SELECT i, hash(i) AS h, hash(i * 7 + 3) AS h2, hash(i * 13 + 5) AS h3, i % 9973 = 11 AS purchase,
         {_guid("'sub-' || (i % 40)")} AS sub, 'rg-' || (i % 40) || '-' || (i % 7) AS rg,
         DATE '2024-03-01' + CAST(i % 31 AS INTEGER) AS day
  FROM range({lo}, {hi}) t(i)),
j AS (SELECT g.*, m.*, NOT purchase AND m.rtype = 'virtualMachines' AND i % 10 = 7 AS reserved
      FROM g JOIN m ON m.k = CAST(g.h % {len(METERS)} AS INTEGER)),
r AS (
  SELECT j.*, CASE WHEN reserved THEN CAST(0 AS HUGEINT)
                        WHEN purchase THEN (CAST(h % 10000000000000 AS HUGEINT) * 1000000000 + CAST(h2 % 1000000000 AS HUGEINT)) * 10
                        ELSE CAST(h % 10000000000000 AS HUGEINT) * 1000000000 + CAST(h2 % 1000000000 AS HUGEINT) END AS c,
         CAST(h3 % 1000000000000 AS HUGEINT) AS q,
         lower(rtype) || '-' || (i % 997) AS rname,
         {_guid("'ri-' || (i % 3)")} AS ri
  FROM j)
SELECT
  'Engineering' AS InvoiceSectionName, 'acct-' || (i % 5) AS AccountName, 'owner' || (i % 5) || '@contoso.com' AS AccountOwnerId,
  sub AS SubscriptionId, 'Contoso Sub ' || (i % 40) AS SubscriptionName, rg AS ResourceGroup, 'westeurope' AS ResourceLocation,
  strftime(day, '%m/%d/%Y') AS Date,
  CASE WHEN purchase THEN 'Reserved VM Instance, Standard_D2s_v5, EU West, 1 Year' ELSE product END AS ProductName,
  CASE WHEN purchase THEN 'Virtual Machines' ELSE category END AS MeterCategory,
  CASE WHEN purchase THEN 'Reservation-Base VM' ELSE subcategory END AS MeterSubCategory,
  {_guid("CASE WHEN purchase THEN 'ri' ELSE meter END")} AS MeterId, CASE WHEN purchase THEN 'D2s v5' ELSE meter END AS MeterName,
  'EU West' AS MeterRegion, CASE WHEN purchase THEN '1 Hour' ELSE unit END AS UnitOfMeasure,
  CAST(q // 10000000000 AS VARCHAR) || '.' || lpad(CAST(q % 10000000000 AS VARCHAR), 10, '0') AS Quantity,
  CASE WHEN reserved THEN '0' ELSE price END AS EffectivePrice,
  CAST(c // {big} AS VARCHAR) || '.' || lpad(CAST(c % {big} AS VARCHAR), {SCALE}, '0') AS CostInBillingCurrency,
  'cc-' || (i % 6) AS CostCenter, CASE WHEN purchase THEN 'Microsoft.Capacity' ELSE service END AS ConsumedService,
  CASE WHEN purchase THEN '/providers/Microsoft.Capacity/reservationOrders/' || ri
       ELSE '/subscriptions/' || sub || '/resourceGroups/' || rg || '/providers/' || service || '/' || rtype || '/' || rname END AS ResourceId,
  CASE WHEN i % 5 = 0 THEN NULL
       ELSE '"env": "' || (['prod', 'dev', 'test'])[1 + i % 3] || '","costCenter": "' || (1000 + i % 40) || '","app": "app-' || (i % 17) || '"'
       END AS Tags,
  'MS-AZR-0017P' AS OfferId,
  CASE WHEN rtype = 'virtualMachines' THEN '{{"UsageType": "ComputeHR", "ImageType": "Canonical", "ServiceType": "Standard_' ||
       replace(meter, ' ', '_') || '", "VMName": "", "VCPUs": 2}}' END AS AdditionalInfo,
  NULL AS ServiceInfo1, NULL AS ServiceInfo2, CASE WHEN purchase THEN NULL ELSE rname END AS ResourceName,
  CASE WHEN reserved OR purchase THEN ri END AS ReservationId,
  CASE WHEN reserved OR purchase THEN 'VM_RI_' || (i % 3) END AS ReservationName,
  price AS UnitPrice, CASE WHEN reserved OR purchase THEN ri END AS ProductOrderId,
  CASE WHEN reserved OR purchase THEN 'Reserved VM Instance, Standard_D2s_v5, EU West, 1 Year' END AS ProductOrderName,
  CASE WHEN reserved OR purchase THEN '12' END AS Term, 'Azure' AS PublisherType, NULL AS PublisherName,
  CASE WHEN purchase THEN 'Purchase' ELSE 'Usage' END AS ChargeType,
  CASE WHEN purchase THEN 'Recurring' ELSE 'UsageBased' END AS Frequency,
  CASE WHEN reserved OR purchase THEN 'Reservation' ELSE 'OnDemand' END AS PricingModel,
  CASE WHEN rtype = 'virtualMachines' THEN CAST(1 + i % 3 AS VARCHAR) END AS AvailabilityZone,
  '12345678' AS BillingAccountId, 'Contoso Ltd' AS BillingAccountName, 'EUR' AS BillingCurrencyCode,
  '03/01/2024' AS BillingPeriodStartDate, '03/31/2024' AS BillingPeriodEndDate, '12345678' AS BillingProfileId,
  'Contoso Ltd' AS BillingProfileName, NULL AS InvoiceSectionId, 'True' AS IsAzureCreditEligible,
  'AAA-' || lpad(CAST(k AS VARCHAR), 5, '0') AS PartNumber, price AS PayGPrice, NULL AS PlanName, CASE WHEN purchase THEN 'Compute' ELSE family END AS ServiceFamily,
  NULL AS CostAllocationRuleName,
  CASE WHEN reserved OR purchase THEN '/providers/Microsoft.Capacity/reservationOrders/' || ri || '/reservations/' || ri END AS benefitId,
  CASE WHEN reserved OR purchase THEN 'VM_RI_' || (i % 3) END AS benefitName,
  c AS _c
FROM r ORDER BY i"""


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while b := f.read(16 << 20):
            h.update(b)
    return h.hexdigest()


def generate(out: Path, rows: int, files: int, force=False) -> dict:
    "Write the month under `out` (cached by a stamp); returns expected.json."
    import duckdb
    params = {"rows": rows, "files": files, "generator": GENERATOR_VERSION, "duckdb": duckdb.__version__,
              "sql": hashlib.md5(month_sql(0, 1).encode()).hexdigest()}
    stamp = out / STAMP
    if not force and stamp.is_file() and json.loads(stamp.read_text()) == params and (out / "expected.json").is_file():
        print(f"cached: {out}", file=sys.stderr)
        return json.loads((out / "expected.json").read_text())
    t0 = time.perf_counter()
    fresh_dir(out)
    (out / "container" / RUN_DIR).mkdir(parents=True)
    con = duckdb.connect()
    cols = ", ".join(COLUMNS)
    keys, blobs, total = [], [], 0
    step = -(-rows // files)
    for k in range(files):
        lo, hi = k * step, min(rows, (k + 1) * step)
        key = f"{RUN_DIR}/part_{k}_0001.csv.gz"
        path = out / "container" / key
        con.execute(f"CREATE OR REPLACE TEMP TABLE part AS {month_sql(lo, hi)}")
        part_total = con.execute("SELECT sum(_c) FROM part").fetchone()[0]
        con.execute(f"COPY (SELECT {cols} FROM part ORDER BY rowid) TO '{path}' (FORMAT csv, HEADER, COMPRESSION gzip)")
        total += int(part_total)
        keys.append(key)
        blobs.append({"blobName": key, "byteCount": path.stat().st_size, "dataRowCount": hi - lo})
    # the text read back from the written files, summed exactly, must be the generated integers' sum
    files_sql = ", ".join(f"'{out / 'container' / k}'" for k in keys)
    n, back = con.execute(f"SELECT count(*), sum(CAST(CostInBillingCurrency AS DECIMAL(38, {SCALE}))) FROM read_csv([{files_sql}], "
                          "header = true, all_varchar = true)").fetchone()
    expected_total = Decimal(total).scaleb(-SCALE)
    if n != rows or Decimal(back) != expected_total:
        raise SystemExit(f"generated month does not read back: {n} rows, {back} != {expected_total}")
    manifest = {
        "manifestVersion": "2024-04-01", "byteCount": sum(b["byteCount"] for b in blobs), "blobCount": len(blobs), "dataRowCount": rows,
        "exportConfig": {"exportName": EXPORT, "resourceId": f"/providers/Microsoft.Billing/billingAccounts/12345678/providers/"
                         f"Microsoft.CostManagement/exports/{EXPORT}", "dataVersion": "2021-10-01", "apiVersion": "2023-07-01-preview",
                         "type": "ActualCost", "timeFrame": "TheLastMonth", "granularity": "Daily"},
        "deliveryConfig": {"partitionData": True, "dataOverwriteBehavior": "CreateNewReport", "fileFormat": "Csv",
                           "compressionMode": "Gzip", "rootFolderPath": PREFIX},
        "runInfo": {"executionType": "Scheduled", "submittedTime": SUBMITTED, "runId": RUN_ID,
                    "startDate": "2024-03-01T00:00:00", "endDate": "2024-03-31T00:00:00Z"},
        "blobs": blobs}
    (out / "container" / RUN_DIR / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    exp = {"period": PERIOD, "run_id": RUN_ID, "rows": rows, "columns": len(COLUMNS), "total": str(expected_total),
           "data_keys": keys, "manifest_key": f"{RUN_DIR}/manifest.json",
           "files": {k: {"bytes": (out / "container" / k).stat().st_size, "md5": _md5(out / "container" / k)} for k in keys}}
    (out / "expected.json").write_text(json.dumps(exp, indent=1) + "\n")
    stamp.write_text(json.dumps(params))
    print(f"generated {rows:,} rows in {files} files, {sum(f['bytes'] for f in exp['files'].values()) / 1e6:.1f} MB, "
          f"in {time.perf_counter() - t0:.1f} s: {out}", file=sys.stderr)
    return exp


def upload(connection_string, data: Path, exp: dict, md5: bool) -> float:
    "Upload the month to container CONTAINER: blocks of 8 MiB (no Content-MD5), or with md5=True single PUTs; the manifest last."
    from azure.storage.blob import BlobBlock, ContainerClient
    client = ContainerClient.from_connection_string(connection_string, CONTAINER, max_single_put_size=256 << 20)
    client.create_container()
    t0 = time.perf_counter()
    for key in exp["data_keys"]:
        body = (data / "container" / key).read_bytes()
        if md5:
            client.upload_blob(key, body, overwrite=True)
            continue
        blob, ids = client.get_blob_client(key), []
        for i in range(0, len(body), 8 << 20):
            ids.append(f"{i:016d}")
            blob.stage_block(ids[-1], body[i:i + (8 << 20)])
        blob.commit_block_list([BlobBlock(block_id=b) for b in ids])
    client.upload_blob(exp["manifest_key"], (data / "container" / exp["manifest_key"]).read_bytes(), overwrite=True)
    secs = time.perf_counter() - t0
    props = client.get_blob_client(exp["data_keys"][0]).get_blob_properties()
    has_md5 = bool(props.content_settings.content_md5)
    client.close()
    if has_md5 != md5:
        raise SystemExit(f"uploaded blobs {'lack' if md5 else 'have'} a Content-MD5: the scenario is not what it says")
    return secs


class Quiet:
    "Wait for the 1-minute load average to drop under `threshold`, spending at most `budget` seconds in all."
    def __init__(self, threshold, budget):
        self.threshold, self.left = threshold, budget
    def __call__(self) -> float:
        while os.getloadavg()[0] >= self.threshold and self.left > 0:
            time.sleep(min(15, self.left))
            self.left -= 15
        return round(os.getloadavg()[0], 2)


def azure_env(server, work: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINOPS")}
    env.update({"FINOPS__AZURE__ACCOUNT_URL": server.url, "FINOPS__AZURE__CONTAINER": CONTAINER, "FINOPS__AZURE__PREFIX": PREFIX,
                "FINOPS__AZURE__EXPORT_NAME": EXPORT, "FINOPS__AZURE__ACCOUNT_KEY": server.account_key,
                "FINOPS__STAGING_DIR": str(work / "staging"), "FINOPS__PARQUET_DIR": str(work / "parquet"),
                "FINOPS__DATABASE__DUCKDB__DATABASE_PATH": str(work / "finops.duckdb"), "TQDM_DISABLE": "1"})
    return env


def check_staged(work: Path, exp: dict) -> str:
    "Every staged data file byte-identical to the generated one; returns the export id."
    exports = [p for p in (work / "staging").iterdir() if p.is_dir()]
    if len(exports) != 1:
        raise SystemExit(f"staging holds {exports}")
    folder = exports[0] / PERIOD / RUN_ID
    for key, f in exp["files"].items():
        p = folder / Path(key).name
        if p.stat().st_size != f["bytes"] or _md5(p) != f["md5"]:
            raise SystemExit(f"{p}: differs from the generated file")
    if not (folder / ".finops-staged.json").is_file():
        raise SystemExit(f"{folder}: no marker")
    return exports[0].name


def check_loaded(db: Path, exp: dict, export_id: str) -> dict:
    import duckdb
    con = duckdb.connect(str(db), read_only=True)
    try:
        n, total, typ = con.execute("SELECT count(*), sum(cost_in_billing_currency), any_value(typeof(cost_in_billing_currency)) "
                                    "FROM azure_billing_data").fetchone()
        ids = con.execute("SELECT DISTINCT export_id, billing_period, delivery_id FROM azure_billing_data").fetchall()
        focus = con.execute("SELECT count(*), sum(BilledCost) FROM focus").fetchone()
        ncols = len(con.execute("DESCRIBE azure_billing_data").fetchall())
    finally:
        con.close()
    want = Decimal(exp["total"])
    if (n, total, typ, ids) != (exp["rows"], want, "DECIMAL(38,28)", [(export_id, PERIOD, RUN_ID)]):
        raise SystemExit(f"load not exact: {n} rows, {total} (want {want}), {typ}, {ids}")
    if focus != (exp["rows"], want):
        raise SystemExit(f"FOCUS rows not exact: {focus}")
    return {"rows": n, "total": str(total), "type": typ, "columns": ncols, "focus_rows": focus[0]}


def aws_round(quiet) -> dict:
    "One `finops aws load-billing-local` of the AWS month (bench_load.py's), staged already, into a fresh database."
    month, staging = DATA / "month-1m", DATA / "work" / "month-1m" / "staging"
    work = fresh_dir(DATA / "work" / "azure-bench" / "aws-load")
    db = work / "finops.duckdb"
    drop_db(db)
    load = quiet()
    r = run([FINOPS, "aws", "load-billing-local"], env=finops_env(month, staging, work / "parquet", db))
    end = round(os.getloadavg()[0], 2)
    n = step("check-aws", db)["rows"]
    if n != 1_000_000:
        raise SystemExit(f"AWS reference load: {n} rows")
    return {"secs": r["secs"], "rss_mib": r["rss_mib"], "load": load, "load_end": end}


def aws_rows(db: Path) -> int:
    import duckdb
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute("SELECT count(*) FROM aws_billing_data").fetchone()[0]
    finally:
        con.close()


def profile(work: Path, server_url: str, account_key: str) -> dict:
    """One `load_billing_local` of the staged month in this process, into a fresh database, with a clock on every
    SQL statement of the load and on the FOCUS build inside its transaction (patched in this process only)."""
    import finops_nb.focus as F
    import finops_nb.localdb as L
    from finops_nb.config import load_config
    clocks = []

    def kind(sql):
        s = " ".join(sql.split()).upper()
        if s.startswith("INSERT INTO AZURE_BILLING_DATA"):
            return "INSERT ... SELECT FROM read_csv (the load)"
        if s.startswith("SELECT COUNT(*), SUM(") and "READ_CSV" in s:
            return "source totals (second read of the files)"
        if s.startswith("SELECT COUNT(*), SUM(") and "AZURE_BILLING_DATA" in s:
            return "table totals"
        return "COMMIT" if s.startswith("COMMIT") else "other statements"

    class Timed:
        def __init__(self, con): self._con = con
        def __getattr__(self, n): return getattr(self._con, n)
        def execute(self, sql, *a, **kw):
            t = time.perf_counter()
            try: return self._con.execute(sql, *a, **kw)
            finally: clocks.append((kind(sql), time.perf_counter() - t))
        def close(self):
            t = time.perf_counter()
            try: return self._con.close()
            finally: clocks.append(("close (checkpoint)", time.perf_counter() - t))

    _connect, _build, focus_secs = L.connect, F.build, []
    L.connect = lambda cfg, read_only=False: _connect(cfg, read_only) if read_only else Timed(_connect(cfg, read_only))

    def build(con, *a, **kw):
        t = time.perf_counter()
        try: return _build(con._con if isinstance(con, Timed) else con, *a, **kw)
        finally: focus_secs.append(time.perf_counter() - t)
    F.build = build
    db = work / "profile.duckdb"
    drop_db(db)
    cfg = load_config(None, {"azure.account_url": server_url, "azure.container": CONTAINER, "azure.prefix": PREFIX,
                             "azure.export_name": EXPORT, "azure.account_key": account_key, "azure.dataset": "ActualCost",
                             "staging_dir": str(work / "staging"), "parquet_dir": str(work / "parquet"),
                             "database.duckdb.database_path": str(db)}, environ={})
    t = time.perf_counter()
    res = L.load_billing_local(cfg, progress=False)
    total = time.perf_counter() - t
    by = {}
    for k, secs in clocks:
        by[k] = round(by.get(k, 0.0) + secs, 2)
    by["FOCUS rows built in the transaction (focus.build)"] = round(sum(focus_secs), 2)
    return {"total": round(total, 2), "steps": by, "actions": [r.action for r in res], "errors": [str(r.error) for r in res if r.error]}


def step(name, *args) -> dict:
    """Run one step of this script in its own process (the benchmark process stays small: a child's peak RSS, as `wait4`
    reports it, includes the parent's resident set at fork time); returns the JSON the step prints."""
    r = run([PY, __file__, "--step", name, *map(str, args)])
    return json.loads(r["out"].strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--md5", action="store_true", help="upload as single PUTs (blobs with a Content-MD5: finops verifies it)")
    ap.add_argument("--aws-load", action="store_true", help="also time `finops aws load-billing-local` of bench_load.py's month each round")
    ap.add_argument("--quiet", type=float, default=0.7, help="wait for the 1-minute load average to drop under this")
    ap.add_argument("--wait", type=float, default=600, help="seconds to wait for a quiet machine, in all")
    ap.add_argument("--force", action="store_true", help="regenerate the month")
    ap.add_argument("--profile", action="store_true", help="then one more load in a child process with a clock on each SQL statement")
    ap.add_argument("--step", help=argparse.SUPPRESS)
    args, rest = ap.parse_known_args()
    if args.step:
        out = {"generate": lambda: generate(Path(rest[0]), int(rest[1]), int(rest[2]), rest[3] == "1"),
               "upload": lambda: {"secs": upload(rest[0], Path(rest[1]), json.loads(Path(rest[1], "expected.json").read_text()), rest[2] == "1")},
               "check-staged": lambda: {"export_id": check_staged(Path(rest[0]), json.loads(Path(rest[1], "expected.json").read_text()))},
               "check-loaded": lambda: check_loaded(Path(rest[0]), json.loads(Path(rest[1], "expected.json").read_text()), rest[2]),
               "check-aws": lambda: {"rows": aws_rows(Path(rest[0]))},
               "profile": lambda: profile(Path(rest[0]), rest[1], rest[2])}[args.step]()
        print(json.dumps(out))
        return

    import servers
    servers.apply_offline_env()
    data = DATA / f"azure-month-{args.rows // 1000}k"
    exp = step("generate", data, args.rows, args.files, int(args.force))
    mb = sum(f["bytes"] for f in exp["files"].values()) / 1e6
    quiet = Quiet(args.quiet, args.wait)
    server = servers.start_azurite(timeout=60)
    report = {"machine": machine(), "commit": finops_version(), "args": vars(args), "data": str(data), "mb": mb,
              "rows": exp["rows"], "runs": [], "aws": []}
    try:
        report["upload_secs"] = step("upload", server.connection_string, data, int(args.md5))["secs"]
        print(f"uploaded {mb:.1f} MB to Azurite in {report['upload_secs']:.1f} s ({'single PUTs, Content-MD5' if args.md5 else '8 MiB blocks'})")
        for i in range(args.repeats):
            work = fresh_dir(DATA / "work" / "azure-bench" / f"run-{i}")
            env = azure_env(server, work)
            rec = {}
            rec["extract_load"] = quiet()
            ext = run([FINOPS, "azure", "extract-billing"], env=env)
            export_id = step("check-staged", work, data)["export_id"]
            rec["load_load"] = quiet()
            load = run([FINOPS, "azure", "load-billing-local"], env=env)
            rec["check"] = step("check-loaded", work / "finops.duckdb", data, export_id)
            rec.update(extract_secs=ext["secs"], extract_rss=ext["rss_mib"], load_secs=load["secs"], load_rss=load["rss_mib"],
                       load_end=round(os.getloadavg()[0], 2))
            if i == args.repeats - 1:  # nothing new: each command once more
                again = run([FINOPS, "azure", "extract-billing"], env=env)
                if "nothing to download" not in again["out"]:
                    raise SystemExit(f"extract re-run did something:\n{again['out']}")
                lagain = run([FINOPS, "azure", "load-billing-local"], env=env)
                if "nothing to load" not in lagain["out"]:
                    raise SystemExit(f"load re-run did something:\n{lagain['out']}")
                rec.update(extract_rerun=again["secs"], load_rerun=lagain["secs"])
            report["runs"].append(rec)
            last_work = work
            print(f"run {i + 1}: extract {ext['secs']:.2f} s {ext['rss_mib']:.0f} MiB (load {rec['extract_load']}), "
                  f"load {load['secs']:.2f} s {load['rss_mib']:.0f} MiB (load {rec['load_load']} -> {rec['load_end']}); {rec['check']}",
                  flush=True)
            if args.aws_load:
                report["aws"].append(aws_round(quiet))
                print(f"        aws load {report['aws'][-1]['secs']:.2f} s {report['aws'][-1]['rss_mib']:.0f} MiB "
                      f"(load {report['aws'][-1]['load']} -> {report['aws'][-1]['load_end']})", flush=True)
        if args.profile:
            quiet()
            report["profile"] = step("profile", last_work, server.url, server.account_key)
            print(f"profile: {report['profile']}", flush=True)
    finally:
        server.stop()
    import resource
    report["bench_process_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    runs = report["runs"]
    ext, load = [r["extract_secs"] for r in runs], [r["load_secs"] for r in runs]
    er, lr = [r["extract_rss"] for r in runs], [r["load_rss"] for r in runs]
    last = runs[-1]
    print(f"\n{machine()}\ncommit {report['commit']}; {exp['rows']:,} rows, {len(exp['data_keys'])} csv.gz, {mb:.1f} MB; "
          f"benchmark process peak RSS {report['bench_process_rss_mib']:.0f} MiB")
    print("| command | median (range) | MB/s | peak RSS | re-run, nothing new |\n| --- | --- | --- | --- | --- |")
    print(f"| `finops azure extract-billing` (Azurite → staging) | {med(ext):.2f} s ({span(ext)}) | {mb / med(ext):.0f} | "
          f"{med(er):.0f} MiB (max {max(er):.0f}) | {last['extract_rerun']:.2f} s |")
    print(f"| `finops azure load-billing-local` (staging → DuckDB, 1GB) | {med(load):.2f} s ({span(load)}) | {mb / med(load):.1f} | "
          f"{med(lr):.0f} MiB (max {max(lr):.0f}) | {last['load_rerun']:.2f} s |")
    if report["aws"]:
        a = [x["secs"] for x in report["aws"]]
        ar = [x["rss_mib"] for x in report["aws"]]
        print(f"| `finops aws load-billing-local`, bench_load.py's month, same rounds | {med(a):.2f} s ({span(a)}) | – | "
              f"{med(ar):.0f} MiB (max {max(ar):.0f}) | – |")
    print(f"saved {save('azure', report)}")


if __name__ == "__main__":
    main()
