"""Google Cloud's billing export to BigQuery, put into the ``local-bigquery`` emulator.

Cloud Billing writes two tables into a BigQuery dataset of the customer's choice:

    gcp_billing_export_v1_<ACCOUNT>            standard usage cost   (``SCHEMA_STANDARD``)
    gcp_billing_export_resource_v1_<ACCOUNT>   detailed usage cost   (``SCHEMA_DETAILED``)

where ``<ACCOUNT>`` is the billing account id with ``-`` written as ``_``
(``export_table_name("01338E-BE3FD6-363B4C")`` -> ``gcp_billing_export_v1_01338E_BE3FD6_363B4C``).

Schema sources (types and modes, field order as in a real table):
  - https://docs.cloud.google.com/billing/docs/how-to/export-data-bigquery-tables/standard-usage
  - https://docs.cloud.google.com/billing/docs/how-to/export-data-bigquery-tables/detailed-usage
  - the overview https://docs.cloud.google.com/billing/docs/how-to/export-data-bigquery-tables
    (the standard table has no resource-level fields; the detailed one "includes all of the
    data fields from the standard usage cost table, along with additional fields").
  The stored copies of those pages hold only their opening sections, not the field tables, so the
  exact types, modes and order were taken from the schema dumps of two REAL export tables that
  Recidiviz keeps beside their code (they point at the pages above):
  github.com/Recidiviz/pulse-data, ``recidiviz/source_tables/externally_managed/all_billing_data/
  gcp_billing_export_v1_01338E_BE3FD6_363B4C.yaml`` and ``..._resource_v1_...yaml``, commit
  13637ff2 and 2949bd45. They agree with koku/nise's older subset (project-koku/nise
  ``nise/upload.py``) and with a real detailed row that ecoinfo published (``price`` NUMERIC
  fields, ``tags`` BOOLEAN ``inherited``). ``price``, ``resource``, ``subscription``,
  ``consumption_model``, ``cost_at_effective_price_default`` and
  ``cost_at_list_consumption_model`` are only in the detailed table.

Row dicts (what every builder returns and ``insert_rows`` loads, one dict a row, keys in
schema order): FLOAT fields are Python floats (the exact doubles), NUMERIC fields decimal
strings (``"0.174592"``), TIMESTAMP fields ISO 8601 strings with an offset
(``"2020-11-10T05:49:32.199000+00:00"``), records are dicts, REPEATED fields lists (``[]``
when empty, never None), empty scalars None.

- ``create_export_table(client, table_ref, detailed=False)``: the table, DAY-partitioned on
  ``export_time``. (Real export tables are partitioned by ingestion time, ``_PARTITIONTIME``,
  which the emulator does not have; ``export_time`` is the column the export uses to say when
  a row was written, so the partition is the same day.)
- ``koku_rows("standard" | "detailed")``: the real rows of ``../shared/samples/koku-test-data/gcp``
  rebuilt into the nested form.
- ``month_rows(period, ...)``: synthetic rows of one invoice month, deterministic for a seed.
- ``insert_rows(client, table_ref, rows)``: one NDJSON load job, WRITE_APPEND.
- ``expected(rows, period=None)``: exact ``Decimal`` totals.
- ``arrow_schema(schema)``: the nested Arrow form of a BigQuery schema (for Parquet).

Only the standard library is needed for the rows; ``google-cloud-bigquery`` for the schema and
the loads; pyarrow only in ``arrow_schema``.
"""

from __future__ import annotations

import ast
import calendar
import csv
import io
import json
import random
from datetime import date, datetime, timedelta, timezone
from decimal import Context, Decimal, localcontext
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from google.cloud.bigquery import (LoadJobConfig, SchemaField, SourceFormat, Table,
                                   TimePartitioning, TimePartitioningType, WriteDisposition)

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples"
KOKU_GCP = SAMPLES / "koku-test-data" / "gcp"
KOKU_FILES = {
    "standard": KOKU_GCP / "202011_30c31bca571d9b7f3b2c8459dd8bc34a_2020-11-08_2020-11-11.csv",
    "detailed": KOKU_GCP / "2022-08-01_5.csv",
}
# koku adds this column when it downloads the export; it is not part of Google's table
KOKU_EXTRA_COLUMNS = ("partition_date",)

# ======================================================================================
# Schemas
# ======================================================================================


def _s(name: str, type_: str = "STRING", mode: str = "NULLABLE") -> SchemaField:
    return SchemaField(name, type_, mode=mode)


def _rec(name: str, *fields: SchemaField, mode: str = "NULLABLE") -> SchemaField:
    return SchemaField(name, "RECORD", mode=mode, fields=fields)


def _key_value(name: str) -> SchemaField:
    return _rec(name, _s("key"), _s("value"), mode="REPEATED")


def _common_head() -> list[SchemaField]:
    return [
        _s("billing_account_id"),
        _rec("service", _s("id"), _s("description")),
        _rec("sku", _s("id"), _s("description")),
        _s("usage_start_time", "TIMESTAMP"),
        _s("usage_end_time", "TIMESTAMP"),
        _rec("project", _s("id"), _s("number"), _s("name"), _key_value("labels"),
             _s("ancestry_numbers"),
             _rec("ancestors", _s("resource_name"), _s("display_name"), mode="REPEATED")),
        _key_value("labels"),
        _key_value("system_labels"),
        _rec("location", _s("location"), _s("country"), _s("region"), _s("zone")),
    ]


def _tags() -> SchemaField:
    return _rec("tags", _s("key"), _s("value"), _s("inherited", "BOOLEAN"), _s("namespace"),
                mode="REPEATED")


def _common_tail() -> list[SchemaField]:
    return [
        _s("transaction_type"),
        _s("seller_name"),
        _s("export_time", "TIMESTAMP"),
        _s("cost", "FLOAT"),
        _s("currency"),
        _s("currency_conversion_rate", "FLOAT"),
        _rec("usage", _s("amount", "FLOAT"), _s("unit"), _s("amount_in_pricing_units", "FLOAT"),
             _s("pricing_unit")),
        _rec("credits", _s("name"), _s("amount", "FLOAT"), _s("full_name"), _s("id"), _s("type"),
             mode="REPEATED"),
        _rec("invoice", _s("month"), _s("publisher_type")),
        _s("cost_type"),
        _rec("adjustment_info", _s("id"), _s("description"), _s("mode"), _s("type")),
        _s("cost_at_list", "FLOAT"),
    ]


# gcp_billing_export_v1_<ACCOUNT>
SCHEMA_STANDARD: list[SchemaField] = [*_common_head(), _tags(), *_common_tail()]

# gcp_billing_export_resource_v1_<ACCOUNT>
SCHEMA_DETAILED: list[SchemaField] = [
    *_common_head(),
    _rec("resource", _s("name"), _s("global_name")),
    _tags(),
    _rec("price", _s("effective_price", "NUMERIC"), _s("tier_start_amount", "NUMERIC"), _s("unit"),
         _s("pricing_unit_quantity", "NUMERIC"), _s("list_price", "NUMERIC"),
         _s("effective_price_default", "NUMERIC"), _s("list_price_consumption_model", "NUMERIC")),
    _rec("subscription", _s("instance_id")),
    *_common_tail(),
    _rec("consumption_model", _s("id"), _s("description"), _s("applied_subscription_instance_id")),
    _s("cost_at_effective_price_default", "FLOAT"),
    _s("cost_at_list_consumption_model", "FLOAT"),
]


def schema_of(detailed: bool = False) -> list[SchemaField]:
    return SCHEMA_DETAILED if detailed else SCHEMA_STANDARD


def export_table_name(billing_account_id: str, detailed: bool = False) -> str:
    "The table name Cloud Billing gives the export of that billing account."
    prefix = "gcp_billing_export_resource_v1_" if detailed else "gcp_billing_export_v1_"
    return prefix + billing_account_id.replace("-", "_")


def arrow_schema(schema: Sequence[SchemaField] = SCHEMA_STANDARD):
    "The nested Arrow schema of a BigQuery schema (RECORD -> struct, REPEATED -> list)."
    import pyarrow as pa

    scalar = {"STRING": pa.string(), "FLOAT": pa.float64(), "FLOAT64": pa.float64(),
              "NUMERIC": pa.decimal128(38, 9), "BIGNUMERIC": pa.decimal256(76, 38),
              "BOOLEAN": pa.bool_(), "BOOL": pa.bool_(), "INTEGER": pa.int64(),
              "INT64": pa.int64(), "TIMESTAMP": pa.timestamp("us", tz="UTC"),
              "DATE": pa.date32()}

    def field(f: SchemaField):
        t = pa.struct([field(c) for c in f.fields]) if f.field_type in ("RECORD", "STRUCT") \
            else scalar[f.field_type]
        if f.mode == "REPEATED":
            t = pa.list_(pa.field("element", t))
        return pa.field(f.name, t, nullable=f.mode != "REQUIRED")

    return pa.schema([field(f) for f in schema])


# ======================================================================================
# Tables and loads
# ======================================================================================


def create_export_table(client, table_ref, detailed: bool = False, exists_ok: bool = False,
                        **call) -> Table:
    """Create the standard (or detailed) export table at ``table_ref`` (``"project.dataset.table"``
    or a TableReference), DAY-partitioned on ``export_time``. ``call``: ``retry``/``timeout``."""
    table = Table(table_ref, schema=schema_of(detailed))
    table.time_partitioning = TimePartitioning(type_=TimePartitioningType.DAY, field="export_time")
    return client.create_table(table, exists_ok=exists_ok, **call)


def _json_default(v: Any) -> Any:
    if isinstance(v, (datetime, date)):
        return v.isoformat()
    if isinstance(v, Decimal):
        return str(v)
    raise TypeError(f"not JSON serialisable: {v!r}")


def ndjson(rows: Iterable[Mapping[str, Any]]) -> bytes:
    """Newline-delimited JSON of the rows (floats written as their shortest round-trip repr;
    datetimes and Decimals, should a row hold them, as ISO text and decimal text)."""
    return "".join(json.dumps(r, allow_nan=False, separators=(",", ":"), default=_json_default) + "\n"
                   for r in rows).encode()


def insert_rows(client, table_ref, rows: Sequence[Mapping[str, Any]], timeout: float = 120.0) -> int:
    """Append ``rows`` to the table with ONE NDJSON load job (WRITE_APPEND, the table's own
    schema). Returns the number of rows sent; raises if the job fails."""
    rows = list(rows)
    table = client.get_table(table_ref, timeout=timeout)
    config = LoadJobConfig(source_format=SourceFormat.NEWLINE_DELIMITED_JSON, schema=table.schema,
                           write_disposition=WriteDisposition.WRITE_APPEND)
    job = client.load_table_from_file(io.BytesIO(ndjson(rows)), table, job_config=config,
                                      num_retries=1, timeout=timeout)
    job.result(timeout=timeout)
    return len(rows)


# ======================================================================================
# The koku samples (real rows, flattened by koku's downloader)
# ======================================================================================


def _iso(text: str) -> str:
    return datetime.fromisoformat(text).isoformat()


def _scalar(field: SchemaField, value: Any) -> Any:
    "One value of a CSV cell (or of a repr'd sub-dict) in the row-dict form of its field."
    if value is None or value == "":
        return None
    kind = field.field_type
    if kind in ("FLOAT", "FLOAT64"):
        return float(value)  # the CSV text is Python's repr of the double: float() restores it
    if kind in ("NUMERIC", "BIGNUMERIC"):
        return str(Decimal(str(value)))
    if kind == "TIMESTAMP":
        return _iso(str(value))
    if kind in ("BOOLEAN", "BOOL"):
        return value if isinstance(value, bool) else str(value).lower() == "true"
    if kind in ("INTEGER", "INT64"):
        return int(value)
    return str(value)


def _nested(field: SchemaField, value: Any) -> Any:
    "A parsed value (from ``ast.literal_eval``) of a RECORD/REPEATED field in row-dict form."
    if field.mode == "REPEATED":
        return [_nested(SchemaField(field.name, field.field_type, fields=field.fields), v)
                for v in (value or [])]
    if field.field_type == "RECORD":
        if value is None:
            return None
        unknown = set(value) - {f.name for f in field.fields}
        if unknown:
            raise ValueError(f"{field.name}: fields not in the schema: {sorted(unknown)}")
        return {f.name: _nested(f, value.get(f.name)) for f in field.fields}
    return _scalar(field, value)


def _from_flat(fields: Sequence[SchemaField], flat: Mapping[str, str], prefix: str = "") -> dict:
    out = {}
    for f in fields:
        key = prefix + f.name
        if key in flat:  # a column of its own: a scalar, or a repeated field written as repr
            text = flat[key]
            if f.mode == "REPEATED" or f.field_type == "RECORD":
                out[f.name] = _nested(f, ast.literal_eval(text) if text not in ("", None) else None)
            else:
                out[f.name] = _scalar(f, text)
        elif f.mode == "REPEATED":
            out[f.name] = []
        elif f.field_type == "RECORD":
            has = any(k.startswith(key + ".") for k in flat)
            out[f.name] = _from_flat(f.fields, flat, key + ".") if has else None
        else:
            out[f.name] = None
    return out


def _schema_paths(fields: Sequence[SchemaField], prefix: str = "") -> set[str]:
    paths = set()
    for f in fields:
        paths.add(prefix + f.name)
        if f.field_type == "RECORD" and f.mode != "REPEATED":
            paths |= _schema_paths(f.fields, prefix + f.name + ".")
    return paths


def koku_rows(which: str = "standard") -> list[dict]:
    """The real rows of koku's GCP sample ``which`` ("standard": 25 rows of 2020-11, "detailed":
    9 rows of 2022-08), rebuilt as nested row dicts of ``SCHEMA_STANDARD``/``SCHEMA_DETAILED``.

    The CSV has dotted column names for record fields, Python reprs for the repeated ones
    (``labels``, ``project.labels``, ``system_labels``, ``credits``: parsed with
    ``ast.literal_eval``), empty text for null, ``2020-11-09 23:00:00+00:00`` timestamps, and
    koku's own ``partition_date`` (dropped). Fields the sample lacks (``project.number``,
    ``tags``, ``adjustment_info``, ``cost_at_list``, ...) are None / ``[]``."""
    schema = {"standard": SCHEMA_STANDARD, "detailed": SCHEMA_DETAILED}[which]
    with open(KOKU_FILES[which], newline="", encoding="utf-8") as fh:
        records = list(csv.DictReader(fh))
    known = _schema_paths(schema)
    rows = []
    for rec in records:
        flat = {k: v for k, v in rec.items() if k not in KOKU_EXTRA_COLUMNS}
        unknown = set(flat) - known
        if unknown:
            raise ValueError(f"{KOKU_FILES[which].name}: columns not in the schema: {sorted(unknown)}")
        rows.append(_from_flat(schema, flat))
    return rows


# ======================================================================================
# Synthetic months
# ======================================================================================

# (service id, service, sku id, sku, usage unit, pricing unit, usage units per pricing unit,
#  list price per pricing unit, kind). Service ids and the Logging/BigQuery/egress SKU ids are
# the real ones of the koku samples; the other SKU ids are made up in the same form.
SKUS = (
    ("6F81-5844-456A", "Compute Engine", "CF4E-A0C7-E3BF", "N2 Instance Core running in Americas",
     "seconds", "hour", 3600, "0.031611", "vm"),
    ("6F81-5844-456A", "Compute Engine", "F449-33EC-A5EF", "N2 Instance Ram running in Americas",
     "byte-seconds", "gibibyte hour", 3600 * 2**30, "0.004237", "vm"),
    ("6F81-5844-456A", "Compute Engine", "DFA5-B5C6-36D6", "Network Internet Egress from Americas to EMEA",
     "bytes", "gibibyte", 2**30, "0.12", "net"),
    ("6F81-5844-456A", "Compute Engine", "D973-5D65-BAB2", "Storage PD Capacity",
     "byte-seconds", "gibibyte month", 2**30 * 86400 * 30.4375, "0.04", "disk"),
    ("95FF-2EF5-5EA1", "Cloud Storage", "E5F0-6A5D-7BAD", "Standard Storage US Multi-region",
     "byte-seconds", "gibibyte month", 2**30 * 86400 * 30.4375, "0.026", "bucket"),
    ("24E6-581D-38E5", "BigQuery", "1DF5-1F98-1DD1", "Analysis",
     "bytes", "tebibyte", 2**40, "6.25", "bq"),
    ("24E6-581D-38E5", "BigQuery", "947D-3B46-7781", "Active Storage",
     "byte-seconds", "gibibyte month", 2**30 * 86400 * 30.4375, "0.02", "bq"),
    ("5490-F7B7-8DF6", "Cloud Logging", "143F-A1B0-E0BE", "Log Volume",
     "bytes", "gibibyte", 2**30, "0.5", "log"),
)
CREDIT_TYPES = ("PROMOTION", "SUSTAINED_USAGE_DISCOUNT", "COMMITTED_USAGE_DISCOUNT", "FREE_TIER",
                "DISCOUNT")
COST_TYPES = ("regular", "tax", "adjustment", "rounding_error")
_TEAMS = ("payments", "search", "data", "platform", "web")
_ENVS = ("prod", "staging", "dev")


def invoice_month(period: Any) -> str:
    """``YYYYMM`` of a period given as ``"2024-03"``, ``"202403"``, a date or (year, month)."""
    if isinstance(period, (date, datetime)):
        return f"{period.year:04d}{period.month:02d}"
    if isinstance(period, tuple):
        return f"{period[0]:04d}{period[1]:02d}"
    text = str(period).replace("-", "")
    if len(text) != 6 or not text.isdigit():
        raise ValueError(f"not a billing period: {period!r}")
    return text


def month_window(period: Any) -> tuple[datetime, datetime]:
    """[start, end) in UTC of an invoice month. Google's invoice months follow US Pacific time,
    so March 2024 is 2024-03-01T08:00Z to 2024-04-01T07:00Z. (US rules since 2007: midnight of
    the 1st is PDT for April to November, PST for December to March.)"""
    ym = invoice_month(period)
    y, m = int(ym[:4]), int(ym[4:])

    def start(y, m):
        return datetime(y, m, 1, 7 if 4 <= m <= 11 else 8, tzinfo=timezone.utc)

    return start(y, m), start(y + (m == 12), m % 12 + 1)


def _ts(t: datetime) -> str:
    return t.astimezone(timezone.utc).isoformat()


def _project(rng: random.Random, i: int, org: str, folder: str) -> dict:
    team, env = _TEAMS[i % len(_TEAMS)], _ENVS[i % len(_ENVS)]
    pid = f"{team}-{env}-{rng.randrange(100000, 999999)}"
    number = str(rng.randrange(10**11, 10**12))
    name = f"{team.title()} {env}"
    return {
        "id": pid, "number": number, "name": name,
        "labels": [{"key": "team", "value": team}, {"key": "env", "value": env}][: 1 + (i % 2)],
        "ancestry_numbers": f"/{org}/{folder}/",
        "ancestors": [{"resource_name": f"projects/{number}", "display_name": name},
                      {"resource_name": f"folders/{folder}", "display_name": "Engineering"},
                      {"resource_name": f"organizations/{org}", "display_name": "example.com"}],
    }


def _location(kind: str) -> dict:
    if kind in ("vm", "disk", "net"):
        return {"location": "us-central1", "country": "US", "region": "us-central1",
                "zone": "us-central1-a" if kind != "net" else None}
    if kind in ("bucket", "bq"):
        return {"location": "us", "country": "US", "region": None, "zone": None}
    return {"location": "global", "country": None, "region": None, "zone": None}


def _credit(kind: str, amount: float, account: str, project: dict) -> dict:
    if kind == "PROMOTION":
        cid = f"FreeTrial:Credit-{account}"
        return {"name": cid, "amount": amount, "full_name": None, "id": cid, "type": kind}
    if kind == "SUSTAINED_USAGE_DISCOUNT":
        return {"name": "Sustained Usage Discount", "amount": amount,
                "full_name": "Sustained Usage Discount", "id": None, "type": kind}
    if kind == "COMMITTED_USAGE_DISCOUNT":
        cid = f"projects/{project['number']}/regions/us-central1/commitments/cud-n2-1y"
        return {"name": "Committed use discount: N2 Cores", "amount": amount,
                "full_name": "Committed use discount: N2 Cores", "id": cid, "type": kind}
    if kind == "FREE_TIER":
        return {"name": "Free Tier", "amount": amount, "full_name": "Free Tier", "id": None,
                "type": kind}
    return {"name": "Spending based discount (contractual)", "amount": amount, "full_name": None,
            "id": f"discount-{account}", "type": kind}


def month_rows(period: Any, seed: int = 0, projects: int = 3, days: Any = None,
               extra_label: str | None = None, export_day: Any = None,
               detailed: bool = False) -> list[dict]:
    """Synthetic, realistic rows of ONE invoice month (``invoice.month`` = ``YYYYMM``) of the
    standard export (``detailed=True``: of the detailed export, with ``resource`` and ``price``),
    deterministic for (period, seed, projects, days, extra_label, detailed).

    - ``projects`` projects (labels, ancestry, ancestors) of one billing account; per project
      and day, hourly usage rows of several services/SKUs (``SKUS``), with labels, system
      labels on VMs, tags on some rows. Usage times are hours of the invoice month in US Pacific
      time (``month_window``): the first hours UTC of the next month still belong to it.
    - costs: ``amount_in_pricing_units * price`` in float (17 significant digits), some rounded
      to 6 decimals as real rows are, a few fixed ones (``0.123456789012``, ``5e-06``), and rows
      of cost ``0.0``; ``cost_at_list`` >= ``cost`` where a contract price applies.
    - credits of every type of ``CREDIT_TYPES`` (negative amounts), some rows with two.
    - a ``tax`` row per project, one ``adjustment`` row (with ``adjustment_info``) and one
      ``rounding_error`` row; these have ``cost_at_list`` None.
    - late rows: exported (``export_time``) one to four days after the month's end: usage of
      the last hours, late corrections of earlier days, the tax and the adjustment rows.
      ``is_late(row, period)`` tells them.
    - ``days``: None (every day), an int n (the first n days) or day numbers to cover.
    - ``extra_label``: a label key added to about a third of the usage rows (a new key does not
      change the schema: ``labels`` is a repeated key/value record).
    - ``export_day``: keep only the rows exported by the end of that day (an int: day of the
      invoice month; or a date / "YYYY-MM-DD", which may be after the month), i.e. the table as
      it stood then. The rows kept are the same dicts as without the filter, so two snapshots
      differ exactly by the rows exported in between.

    Rows are sorted by ``export_time``."""
    ym = invoice_month(period)
    y, m = int(ym[:4]), int(ym[4:])
    start, end = month_window(ym)
    ndays = calendar.monthrange(y, m)[1]
    if days is None:
        day_numbers = list(range(1, ndays + 1))
    elif isinstance(days, int):
        day_numbers = list(range(1, min(days, ndays) + 1))
    else:
        day_numbers = sorted(set(int(d) for d in days))
    rng = random.Random(f"gcp-month/{ym}/{seed}")
    account = "-".join(f"{rng.randrange(16**6):06X}" for _ in range(3))
    org, folder = str(rng.randrange(10**11, 10**12)), str(rng.randrange(10**11, 10**12))
    projs = [_project(rng, i, org, folder) for i in range(projects)]
    # each project uses a subset of the SKUs (always some VM SKUs and the log volume)
    proj_skus = [sorted({0, 1, 7} | set(rng.sample(range(len(SKUS)), 3))) for _ in projs]
    prices = [Decimal(s[7]) for s in SKUS]
    contract = {5: Decimal("0.85"), 4: Decimal("0.9")}  # sku index -> effective/list price
    rows: list[dict] = []
    usage_seq = 0

    def row(project, sku_i, t0, t1, exported, cost, cost_at_list, amount, credits,
            cost_type="regular", labels=None, system_labels=None, tags=None, adjustment=None,
            resource_no=0):
        sid, sdesc, kid, kdesc, unit, punit, per, _, kind = SKUS[sku_i] if sku_i is not None \
            else (None, None, None, None, None, None, 1, None, "global")
        r = {
            "billing_account_id": account,
            "service": {"id": sid, "description": sdesc},
            "sku": {"id": kid, "description": kdesc},
            "usage_start_time": _ts(t0),
            "usage_end_time": _ts(t1),
            "project": project,
            "labels": labels or [],
            "system_labels": system_labels or [],
            "location": _location(kind),
        }
        if detailed:
            if sku_i is not None and cost_type == "regular":
                p_list = prices[sku_i]
                p_eff = p_list * contract.get(sku_i, Decimal(1))
                r["resource"] = {
                    "name": f"{kind}-{resource_no}",
                    "global_name": f"//compute.googleapis.com/projects/{project['number']}"
                                   f"/zones/us-central1-a/instances/{1000 + resource_no}"
                    if kind in ("vm", "disk") else None}
                r["tags"] = tags or []
                r["price"] = {"effective_price": str(p_eff), "tier_start_amount": "0", "unit": punit,
                              "pricing_unit_quantity": "1", "list_price": str(p_list),
                              "effective_price_default": str(p_eff),
                              "list_price_consumption_model": str(p_list)}
            else:
                r["resource"] = None
                r["tags"] = tags or []
                r["price"] = None
            r["subscription"] = None
        else:
            r["tags"] = tags or []
        r.update({
            "transaction_type": "GOOGLE",
            "seller_name": None,
            "export_time": _ts(exported),
            "cost": cost,
            "currency": "USD",
            "currency_conversion_rate": 1.0,
            "usage": {"amount": amount, "unit": unit,
                      "amount_in_pricing_units": (amount / per) if amount is not None else None,
                      "pricing_unit": punit} if sku_i is not None else
                     {"amount": None, "unit": None, "amount_in_pricing_units": None,
                      "pricing_unit": None},
            "credits": credits,
            "invoice": {"month": ym, "publisher_type": None},
            "cost_type": cost_type,
            "adjustment_info": adjustment,
            "cost_at_list": cost_at_list,
        })
        if detailed:
            r["consumption_model"] = None
            r["cost_at_effective_price_default"] = cost if cost_type == "regular" else None
            r["cost_at_list_consumption_model"] = cost_at_list
        return r

    def usage(project_i, sku_i, t0, exported, special=None):
        nonlocal usage_seq
        usage_seq += 1
        project = projs[project_i]
        _, _, _, kdesc, unit, punit, per, _, kind = SKUS[sku_i]
        if kind == "vm":
            amount = float(3600 * rng.choice((1, 2, 4, 8)))
            if sku_i == 1:
                amount *= 4 * 2**30
        elif kind in ("disk", "bucket") or kdesc == "Active Storage":
            amount = float(rng.randrange(1, 500) * 2**30 * 3600)
        else:
            amount = float(rng.randrange(1, 80_000_000))
        in_pricing = amount / per
        price = prices[sku_i]
        cost_at_list = in_pricing * float(price)  # float: 17 significant digits
        cost = cost_at_list * float(contract[sku_i]) if sku_i in contract else cost_at_list
        roll = rng.random()
        if special is not None:
            cost = special
            cost_at_list = special
        elif kind == "log" and roll < 0.35:  # under the free allotment
            cost = cost_at_list = 0.0
        elif roll < 0.3:  # real rows carry at most 6 decimals
            cost = round(cost, 6)
            cost_at_list = round(cost_at_list, 6) if sku_i not in contract else cost_at_list
        credits = []
        c = rng.random()
        if cost:
            if kind == "vm" and c < 0.5:
                credits.append(_credit("SUSTAINED_USAGE_DISCOUNT", -cost * 0.2, account, project))
                if c < 0.2:  # two credits on one row
                    credits.append(_credit("COMMITTED_USAGE_DISCOUNT", -cost * 0.37, account, project))
            elif kind in ("log", "bq") and c < 0.4:
                credits.append(_credit("FREE_TIER", -min(cost, 0.05), account, project))
                if c < 0.1 and cost > 0.05:
                    credits.append(_credit("PROMOTION", -(cost - 0.05), account, project))
            elif c < 0.15:
                credits.append(_credit("PROMOTION", -cost, account, project))
            elif c < 0.25 and round(cost * 0.03, 6) > 0:
                credits.append(_credit("DISCOUNT", -round(cost * 0.03, 6), account, project))
        labels = [{"key": "app", "value": f"{project['id'].split('-')[0]}-api"}] \
            if rng.random() < 0.6 else []
        if rng.random() < 0.2:
            labels.append({"key": "goog-k8s-cluster-name", "value": "main"})
        if extra_label and usage_seq % 3 == 0:
            labels.append({"key": extra_label, "value": f"{extra_label}-{usage_seq % 4}"})
        system_labels = [
            {"key": "compute.googleapis.com/machine_spec", "value": "n2-standard-4"},
            {"key": "compute.googleapis.com/cores", "value": "4"},
            {"key": "compute.googleapis.com/memory", "value": "16384"},
        ] if kind == "vm" else []
        tags = [{"key": "environment", "value": _ENVS[project_i % len(_ENVS)], "inherited": True,
                 "namespace": org}] if rng.random() < 0.25 else []
        return row(project, sku_i, t0, t0 + timedelta(hours=1), exported, cost, cost_at_list,
                   amount, credits, labels=labels, system_labels=system_labels, tags=tags,
                   resource_no=project_i * 10 + sku_i)

    def export_after(t1, lo_h=2.0, hi_h=30.0):
        return t1 + timedelta(seconds=rng.uniform(lo_h * 3600, hi_h * 3600))

    # regular usage, hourly rows on a few hours of each day
    for d in day_numbers:
        day0 = start + timedelta(days=d - 1)
        for pi in range(len(projs)):
            for si in proj_skus[pi]:
                for h in sorted(rng.sample(range(24), rng.randint(1, 3))):
                    t0 = day0 + timedelta(hours=h)
                    if t0 >= end:
                        continue
                    rows.append(usage(pi, si, t0, export_after(t0 + timedelta(hours=1))))
    # a few fixed values that stress exact sums
    first = start + timedelta(days=day_numbers[0] - 1, hours=3)
    for v in (0.123456789012, 5e-06, 0.1, 0.2, 1e-12):
        rows.append(usage(0, 7, first, export_after(first + timedelta(hours=1)), special=v))
    # late rows: the month's last hours, and late-arriving corrections of earlier days
    last = end - timedelta(hours=1)
    for pi in range(len(projs)):
        rows.append(usage(pi, 0, last, end + timedelta(days=1, hours=rng.uniform(0, 20))))
        t0 = start + timedelta(days=day_numbers[len(day_numbers) // 2] - 1, hours=11)
        rows.append(usage(pi, 2, t0, end + timedelta(days=rng.randint(2, 4), hours=5)))
    # one tax row per project, exported after the month closed
    with localcontext(Context(prec=100)):
        for pi, project in enumerate(projs):
            base = sum((Decimal(repr(r["cost"])) + sum((Decimal(repr(c["amount"])) for c in r["credits"]),
                                                     Decimal(0)))
                       for r in rows if r["project"] is project)
            tax = float(round(base * Decimal("0.0825"), 6))
            rows.append(row(project, None, start, end, end + timedelta(days=2, hours=3 + pi),
                            tax, None, None, [], cost_type="tax"))
            rows[-1]["service"] = {"id": None, "description": "Tax"}
            rows[-1]["sku"] = {"id": None, "description": "Sales tax: US"}
    # an adjustment (a late usage correction) and a rounding error
    adj = row(projs[0], 0, start, end, end + timedelta(days=3, hours=9), -1.2345678901234567,
              None, None, [], cost_type="adjustment",
              adjustment={"id": f"adj-{rng.randrange(16**8):08x}",
                          "description": "Usage correction for N2 cores",
                          "mode": "PARTIAL_CORRECTION", "type": "USAGE_CORRECTION"})
    rounding = row(projs[-1], None, start, end, end - timedelta(hours=2), -0.000003, None, None, [],
                   cost_type="rounding_error")
    rounding["service"] = {"id": None, "description": "Invoice"}
    rounding["sku"] = {"id": None, "description": "Rounding error"}
    rows += [adj, rounding]
    rows.sort(key=lambda r: (r["export_time"], r["usage_start_time"], r["project"]["id"],
                             r["sku"]["id"] or ""))
    # every row holds its own copies (no shared dicts between rows)
    rows = [json.loads(json.dumps(r)) for r in rows]
    if export_day is not None:
        cutoff = _export_cutoff(export_day, y, m)
        rows = [r for r in rows if datetime.fromisoformat(r["export_time"]) < cutoff]
    return rows


def _export_cutoff(export_day: Any, y: int, m: int) -> datetime:
    "The first instant after the day ``export_day`` (UTC)."
    if isinstance(export_day, int):
        d = date(y, m, export_day)
    elif isinstance(export_day, datetime):
        d = export_day.date()
    elif isinstance(export_day, date):
        d = export_day
    else:
        d = date.fromisoformat(str(export_day))
    return datetime(d.year, d.month, d.day, tzinfo=timezone.utc) + timedelta(days=1)


def is_late(row: Mapping[str, Any], period: Any = None) -> bool:
    "True when the row was exported after the end of its invoice month (``month_window``)."
    _, end = month_window(period or row["invoice"]["month"])
    t = row["export_time"]
    return (t if isinstance(t, datetime) else datetime.fromisoformat(t)) >= end


# ======================================================================================
# Exact totals
# ======================================================================================


def exact(x: Any) -> Decimal | None:
    """A value as Decimal: a double as ``Decimal(repr(x))`` (the shortest decimal that
    round-trips it), a Decimal as is, text parsed; None stays None."""
    if x is None:
        return None
    if isinstance(x, float):
        return Decimal(repr(x))
    if isinstance(x, Decimal):
        return x
    return Decimal(str(x))


def _sum(values: Iterable[Any]) -> Decimal | None:
    "Exact sum of the non-null values; None when all are null."
    total, seen = Decimal(0), False
    with localcontext(Context(prec=100)):
        for v in values:
            if v is not None:
                total += exact(v)
                seen = True
    return total if seen else None


def expected(rows: Iterable[Mapping[str, Any]], period: Any = None) -> dict:
    """Exact figures of the rows (of invoice month ``period`` only, if given)::

        {"rows": n, "cost": Decimal, "cost_at_list": Decimal | None, "credits": Decimal,
         "usage_amount": Decimal | None, "net": cost + credits,
         "cost_types": {cost_type: {"rows": n, "cost": Decimal}}, "late_rows": n}

    Each double counts as ``Decimal(repr(x))``; sums are exact (``decimal.Context(prec=100)``).
    ``late_rows``: rows exported after the end of their invoice month."""
    ym = invoice_month(period) if period is not None else None
    rows = [r for r in rows if ym is None or (r.get("invoice") or {}).get("month") == ym]
    with localcontext(Context(prec=100)):
        cost = _sum(r.get("cost") for r in rows) or Decimal(0)
        credits = _sum(c.get("amount") for r in rows for c in (r.get("credits") or [])) or Decimal(0)
        by_type: dict[str, dict] = {}
        for r in rows:
            t = by_type.setdefault(r.get("cost_type"), {"rows": 0, "cost": Decimal(0)})
            t["rows"] += 1
            t["cost"] += exact(r.get("cost")) or 0
        return {
            "rows": len(rows),
            "cost": cost,
            "cost_at_list": _sum(r.get("cost_at_list") for r in rows),
            "credits": credits,
            "usage_amount": _sum((r.get("usage") or {}).get("amount") for r in rows),
            "net": cost + credits,
            "cost_types": dict(sorted(by_type.items(), key=lambda kv: str(kv[0]))),
            "late_rows": sum(1 for r in rows if r.get("export_time") and r.get("invoice")
                             and r["invoice"].get("month") and is_late(r)),
        }
