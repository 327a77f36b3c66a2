"""Realistic AWS billing exports, written in the real S3 key layouts, for tests.

Every builder writes into a local directory that mirrors a bucket: the object with key
``K`` is the file ``<root>/K``. ``upload_tree`` copies such a tree into a real (or moto)
bucket, keys unchanged. The data comes from the real samples in ``../shared/samples``
(read-only; see ``SOURCES.md`` there) or, for CUR 2.0 where no public real file exists,
is generated from the column dictionary ``../shared/docs/cur2_columns.csv``.

Each builder returns a small frozen dataclass describing what it wrote: period(s),
assembly/execution id(s), data keys, manifest keys, row counts and the exact
``decimal.Decimal`` sum of the unblended cost (``lineItem/UnblendedCost`` or
``line_item_unblended_cost``). Sums of text values are ``Decimal(text)``; sums of Parquet
doubles are ``Decimal(repr(value))`` per value (the shortest text that round-trips the
double, i.e. what AWS meant), never a float sum.

Layouts (bucket-relative keys; ``<prefix>`` may be empty or nested)::

    Legacy CUR v1, CSV, "create new report versions" (mode="version")
      <prefix>/<report>/<YYYYMMDD-YYYYMMDD>/<report>-Manifest.json          <- latest assembly
      <prefix>/<report>/<YYYYMMDD-YYYYMMDD>/<assemblyId>/<report>-Manifest.json
      <prefix>/<report>/<YYYYMMDD-YYYYMMDD>/<assemblyId>/<report>-00001.csv.gz ...
    Legacy CUR v1, CSV, "overwrite existing report" (mode="overwrite")
      <prefix>/<report>/<YYYYMMDD-YYYYMMDD>/<report>-Manifest.json
      <prefix>/<report>/<YYYYMMDD-YYYYMMDD>/<report>-00001.csv.gz ...
    Legacy CUR v1, Parquet with the Athena integration (see build_v1_parquet)
      <prefix>/<report>/<report>/year=2018/month=10/<report>-00001.snappy.parquet
      <prefix>/<report>/<YYYYMMDD-YYYYMMDD>/<report>-Manifest.json
      <prefix>/<report>/cost_and_usage_data_status/cost_and_usage_data_status.parquet
    CUR 2.0 and FOCUS 1.2 (AWS Data Exports: same layout, different columns)
      <prefix>/<export>/data/BILLING_PERIOD=YYYY-MM/[<YYYYMMDDTHHMMSSZ>-<executionId>/]<export>-00001.csv.gz
      <prefix>/<export>/metadata/BILLING_PERIOD=YYYY-MM/<export>-Manifest.json

Builders: ``build_v1_csv``, ``restate_v1``, ``build_v1_parquet``, ``build_v2`` (``charges="full"``
adds every special line item type: Savings Plans, RIs, discounts, refund, marketplace ...),
``build_focus`` (AWS's "FOCUS 1.2 with AWS columns") and ``build_mixed_bucket`` (one legacy
CUR, one CUR 2.0 and one FOCUS export under one prefix). Read a delivery back from its files
with ``read_rows``, ``totals``, ``line_type_counts``/``line_type_totals`` (CUR 2.0),
``focus_totals`` and ``v2_amortized_cost_sum``: exact Decimal sums, whatever the format.

A restated period (AWS re-delivers a month: a new complete snapshot, and the top-level
manifest names the newest assembly) is ``restate_v1(root)``, or by hand::

    first = build_v1_csv(root, assembly_id="a-1", rows=lambda r: r["lineItem/UsageStartDate"] < "2023-11-08")
    second = build_v1_csv(root, assembly_id="a-2", line_item_id_salt="2")   # all rows, new ids
    # <prefix>/<report>/20231101-20231201/demo-cur-Manifest.json now names "a-2";
    # the "a-1" folder is still there, as in a real bucket.

For CUR 2.0 call ``build_v2`` twice with different ``execution_id`` (and ``rows``/``seed``):
the second call overwrites the manifest, the first execution's subfolder stays.

Only the standard library and pyarrow are used (boto3 only through the client passed to
``upload_tree``).
"""

from __future__ import annotations

import base64
import calendar
import csv
import gzip
import hashlib
import io
import json
import os
import random
import re
import shutil
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

# --------------------------------------------------------------------------------------
# Where the real samples and column dictionaries live. In CI the repo is cloned somewhere
# else, but ../shared still sits beside the repo root: always resolve from the repo root.
# --------------------------------------------------------------------------------------
REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLES = Path(os.environ.get("FINOPS_SAMPLES_DIR") or REPO_ROOT.parent / "shared" / "samples")
DOCS = Path(os.environ.get("FINOPS_DOCS_DIR") or REPO_ROOT.parent / "shared" / "docs")

V1_CSV_SAMPLE = "focus-converters-cur-v1/sample-anonymous-aws-export-dataset.csv"
V1_PARQUET_SAMPLE_DIR = "workshop-cur-v1-parquet"
CUR1_COLUMNS_CSV = "cur1_columns.csv"
CUR2_COLUMNS_CSV = "cur2_columns.csv"

DEFAULT_BUCKET = "billing-bucket"
V1_COST_COLUMN = "lineItem/UnblendedCost"
V2_COST_COLUMN = "line_item_unblended_cost"
PARQUET_COST_COLUMN = "line_item_unblended_cost"

# Columns of the v1 CSV whose year-month follows the billing period. Reservation and
# Savings Plans start/end times are terms of a commitment, not of the period: left alone.
V1_PERIOD_DATE_COLUMNS = (
    "identity/TimeInterval",
    "bill/BillingPeriodStartDate",
    "bill/BillingPeriodEndDate",
    "lineItem/UsageStartDate",
    "lineItem/UsageEndDate",
)

_MONTHS = {m: i for i, m in enumerate(calendar.month_abbr) if m}
_PERIOD_RE = re.compile(r"^(\d{4})-(\d{2})$")
_DATE_IN_TS_RE = re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?=T)")


# ======================================================================================
# Results
# ======================================================================================
@dataclass(frozen=True)
class V1Delivery:
    """One legacy-CUR CSV delivery (one assembly) of one billing period."""

    root: Path
    bucket: str
    prefix: str
    report: str
    period: str  # "YYYY-MM"
    date_range: str  # "20231101-20231201" (or "20231101-20231130")
    assembly_id: str
    mode: str  # "version" | "overwrite"
    data_keys: tuple[str, ...]  # = the manifest's reportKeys, in order
    manifest_keys: tuple[str, ...]  # every manifest written by this call
    top_manifest_key: str  # <prefix>/<report>/<range>/<report>-Manifest.json
    assembly_manifest_key: str | None  # None in overwrite mode
    header: tuple[str, ...]  # the CSV header as written (after header_transform)
    rows_per_file: tuple[int, ...]
    row_count: int
    unblended_cost_sum: Decimal  # exact, from the written text values

    @property
    def periods(self) -> tuple[str, ...]:
        return (self.period,)

    @property
    def keys(self) -> tuple[str, ...]:
        return self.data_keys + self.manifest_keys

    def path(self, key: str) -> Path:
        return self.root / key


@dataclass(frozen=True)
class RestatedV1:
    """Two deliveries of one period; the top-level manifest names ``second``."""

    first: V1Delivery
    second: V1Delivery

    @property
    def top_manifest_key(self) -> str:
        return self.second.top_manifest_key


@dataclass(frozen=True)
class V1ParquetMonth:
    """One month of the workshop Parquet CUR (Athena-integration layout)."""

    period: str
    date_range: str
    assembly_id: str
    sample: str  # the sample file copied byte for byte
    data_keys: tuple[str, ...]
    manifest_key: str
    columns: tuple[str, ...]  # Parquet column names (they drift month to month)
    row_count: int
    unblended_cost_sum: Decimal  # sum of Decimal(repr(double)) per value


@dataclass(frozen=True)
class V1ParquetDelivery:
    root: Path
    bucket: str
    prefix: str
    report: str
    months: tuple[V1ParquetMonth, ...]
    status_key: str | None  # cost_and_usage_data_status parquet (READY/UPDATING)

    @property
    def periods(self) -> tuple[str, ...]:
        return tuple(m.period for m in self.months)

    @property
    def data_keys(self) -> tuple[str, ...]:
        return tuple(k for m in self.months for k in m.data_keys)

    @property
    def manifest_keys(self) -> tuple[str, ...]:
        return tuple(m.manifest_key for m in self.months)

    @property
    def row_count(self) -> int:
        return sum(m.row_count for m in self.months)

    @property
    def unblended_cost_sum(self) -> Decimal:
        return sum((m.unblended_cost_sum for m in self.months), Decimal(0))

    def month(self, period: str) -> V1ParquetMonth:
        for m in self.months:
            if m.period == period:
                return m
        raise KeyError(period)


@dataclass(frozen=True)
class V2Delivery:
    """One CUR 2.0 (Data Exports) execution of one billing period."""

    root: Path
    bucket: str
    prefix: str
    export: str
    period: str
    execution_id: str
    fmt: str  # "csv.gz" | "parquet"
    data_prefix: str  # folder of the data files (with the execution subfolder if any)
    data_keys: tuple[str, ...]
    data_uris: tuple[str, ...]  # = the manifest's dataFiles
    manifest_key: str
    columns: tuple[tuple[str, str], ...]  # (name, manifest type) in file order
    rows_per_file: tuple[int, ...]
    row_count: int
    unblended_cost_sum: Decimal  # exact, from the generated text values
    charges: str = "basic"  # "basic" | "full" (see build_v2)

    @property
    def periods(self) -> tuple[str, ...]:
        return (self.period,)

    @property
    def manifest_keys(self) -> tuple[str, ...]:
        return (self.manifest_key,)

    @property
    def keys(self) -> tuple[str, ...]:
        return self.data_keys + self.manifest_keys

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(n for n, _ in self.columns)


# ======================================================================================
# Small helpers (also handy in tests)
# ======================================================================================
def _join(*parts: str) -> str:
    """Join key parts with '/', dropping empty parts and stray slashes."""
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


def _parse_period(period: str) -> tuple[int, int]:
    m = _PERIOD_RE.match(period)
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise ValueError(f"period must be 'YYYY-MM', got {period!r}")
    return int(m.group(1)), int(m.group(2))


def period_bounds(period: str) -> tuple[date, date]:
    """First day of the period and first day of the next one."""
    y, m = _parse_period(period)
    start = date(y, m, 1)
    end = date(y + (m == 12), m % 12 + 1, 1)
    return start, end


def date_range_folder(period: str, style: str = "first-of-next") -> str:
    """``20231101-20231201`` ("first-of-next") or ``20231101-20231130`` ("last-day")."""
    start, end = period_bounds(period)
    if style == "last-day":
        end = end - timedelta(days=1)
    elif style != "first-of-next":
        raise ValueError(f"date_range_style must be 'first-of-next' or 'last-day', got {style!r}")
    return f"{start:%Y%m%d}-{end:%Y%m%d}"


def _v1_billing_period(period: str) -> dict[str, str]:
    start, end = period_bounds(period)
    return {"start": f"{start:%Y%m%d}T000000.000Z", "end": f"{end:%Y%m%d}T000000.000Z"}


def _write_bytes(root: Path, key: str, data: bytes) -> None:
    path = Path(root) / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _write_json(root: Path, key: str, obj: Any) -> None:
    _write_bytes(root, key, (json.dumps(obj, indent=2) + "\n").encode("utf-8"))


def _gzip(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0) as gz:
        gz.write(data)
    return buf.getvalue()


def _csv_bytes(header: Sequence[str], rows: Iterable[Sequence[str]]) -> bytes:
    buf = io.StringIO(newline="")
    w = csv.writer(buf, lineterminator="\n")  # AWS: LF, quotes only where needed
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue().encode("utf-8")


def read_csv_gz(path: str | os.PathLike) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of a gzip CSV, every value as the text it is in the file."""
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        return header, list(reader)


def decimal_sum(values: Iterable[str | None]) -> Decimal:
    """Exact sum of numeric texts; empty strings and None are skipped."""
    return sum((Decimal(v) for v in values if v not in (None, "")), Decimal(0))


def decimal_sum_doubles(values: Iterable[float | None]) -> Decimal:
    """Exact sum of doubles taken as the decimal each one stands for (``repr``)."""
    return sum((Decimal(repr(v)) for v in values if v is not None), Decimal(0))


def _split(n: int, parts: int) -> list[tuple[int, int]]:
    """Contiguous [start, stop) ranges splitting n items over `parts` (first ones larger)."""
    if parts < 1:
        raise ValueError("files must be >= 1")
    q, r = divmod(n, parts)
    out, start = [], 0
    for i in range(parts):
        stop = start + q + (i < r)
        out.append((start, stop))
        start = stop
    return out


def _report_id(bucket: str, prefix: str, report: str) -> str:
    return hashlib.sha256(f"{bucket}/{prefix}/{report}".encode()).hexdigest()


# ======================================================================================
# Column dictionaries
# ======================================================================================
def _read_dict_csv(name: str) -> list[dict[str, str]]:
    with open(DOCS / name, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def cur1_manifest_types() -> dict[str, str]:
    """``category/Name`` -> manifest type from cur1_columns.csv (only where it is known)."""
    return {r["cur1_csv_name"]: r["manifest_type"] for r in _read_dict_csv(CUR1_COLUMNS_CSV)
            if r.get("manifest_type")}


def cur2_columns() -> list[tuple[str, str]]:
    """(column_name, data_type) of cur2_columns.csv, in file order; data_type as written
    there (``string``, ``double``, ``timestamp``, ``map<string,string>``, ``map<string,double>``)."""
    return [(r["column_name"], r["data_type"]) for r in _read_dict_csv(CUR2_COLUMNS_CSV)]


def _manifest_type_v2(data_type: str) -> str:
    return "map" if data_type.startswith("map") else data_type


# ======================================================================================
# Legacy CUR v1, CSV
# ======================================================================================
def _load_v1_sample() -> tuple[list[str], list[list[str]]]:
    with open(SAMPLES / V1_CSV_SAMPLE, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader)
        return header, [row for row in reader]


def _select_rows(header: list[str], rows: list[list[str]], sel) -> list[list[str]]:
    if sel is None:
        return list(rows)
    if isinstance(sel, bool):
        raise TypeError("rows must be None, an int, a slice, a sequence of indices or a predicate")
    if isinstance(sel, int):
        return rows[:sel]
    if isinstance(sel, slice):
        return rows[sel]
    if callable(sel):
        return [r for r in rows if sel(dict(zip(header, r)))]
    return [rows[i] for i in sel]


def _month_shifter(src_period: str, dst_period: str) -> Callable[[str], str]:
    """Rewrite every YYYY-MM-DD (followed by T) so src month+k becomes dst month+k.

    Days past the end of a shorter target month are clamped to its last day (only matters
    for February; the sample's usage stops on Nov 15)."""
    sy, sm = _parse_period(src_period)
    dy, dm = _parse_period(dst_period)
    delta = (dy * 12 + dm) - (sy * 12 + sm)

    def repl(m: re.Match) -> str:
        y, mo, d = int(m.group(1)), int(m.group(2)), int(m.group(3))
        total = y * 12 + (mo - 1) + delta
        ny, nm = divmod(total, 12)
        nm += 1
        nd = min(d, calendar.monthrange(ny, nm)[1])
        return f"{ny:04d}-{nm:02d}-{nd:02d}"

    def shift(value: str) -> str:
        return _DATE_IN_TS_RE.sub(repl, value) if value else value

    return shift


def _reissue_id(old: str, salt: str) -> str:
    """A new line item id of the same length and alphabet: ids are not stable between
    deliveries of a period, and loaders must not try to merge on them."""
    if not old:
        return old
    digest = hashlib.sha256(f"{salt}\0{old}".encode()).digest() * 2
    return base64.b32encode(digest).decode().lower().rstrip("=")[: len(old)]


def _v1_columns_manifest(header: Sequence[str]) -> list[dict[str, str]]:
    types = cur1_manifest_types()
    lower = {k.lower(): v for k, v in types.items()}
    cols = []
    for col in header:
        category, _, name = col.partition("/") if "/" in col else ("", "", col)
        cols.append({"category": category, "name": name,
                     "type": types.get(col) or lower.get(col.lower()) or "String"})
    return cols


def build_v1_csv(
    root: str | os.PathLike,
    prefix: str = "cur",
    report: str = "demo-cur",
    period: str = "2023-11",
    assembly_id: str | None = None,
    mode: str = "version",
    files: int = 2,
    date_range_style: str = "first-of-next",
    rows: int | slice | Sequence[int] | Callable[[dict[str, str]], bool] | None = None,
    header_transform: Callable[[list[str]], Sequence[str]] | None = None,
    *,
    bucket: str = DEFAULT_BUCKET,
    extra_columns: Mapping[str, str | Callable[[int, dict[str, str]], str]] | None = None,
    line_item_id_salt: str | None = None,
    file_number_width: int = 5,
) -> V1Delivery:
    """Write one legacy CUR CSV delivery built from the real v1 sample (1281 rows, 94 cols).

    - ``mode="version"``: files and a manifest in ``<range>/<assemblyId>/``, plus the same
      manifest at the top of ``<range>/`` (overwritten: it always names the latest call).
      ``mode="overwrite"``: files and manifest directly in ``<range>/``, no assembly
      folder; the manifest still carries an ``assemblyId`` as AWS's does. Files of an
      earlier overwrite delivery that this one does not replace are left in place: the
      manifest's ``reportKeys`` are the truth.
    - ``assembly_id``: default a fresh UUID4 (old reports use UUIDs; newer "legacy exports"
      use ``20250307T053621Z``-style ids: pass one to test that).
    - ``period``: when it is not the sample's 2023-11, the year-month of
      ``V1_PERIOD_DATE_COLUMNS`` is moved (2023-11 -> period, 2023-12 -> period + 1),
      keeping day and time and the text format (``.000Z`` or ``Z``).
    - ``rows``: take a subset of the sample rows: int (the first n), slice, sequence of
      indices, or a predicate called with a dict of the *original* row (sample header,
      sample values).
    - ``header_transform(header) -> new header`` renames columns (same length), e.g. to
      inject hostile or colliding names. The cost sum always follows the original
      ``lineItem/UnblendedCost`` column. ``extra_columns`` appends columns:
      ``{"resourceTags/user:CostCenter": "cc-1"}`` or a callable ``(i, row_dict) -> str``.
    - ``line_item_id_salt``: re-issue ``identity/LineItemId`` values (as AWS does between
      deliveries) deterministically from the salt.
    - Files: ``<report>-00001.csv.gz`` ... (``file_number_width=0`` gives ``<report>-1.csv.gz``),
      rows split contiguously, each with the header, UTF-8, LF, minimal quoting, gzip
      with mtime 0 (deterministic bytes). Unmodified rows come out byte-identical to the
      sample: ``files=1`` with no transform reproduces the sample file exactly.
    """
    root = Path(root)
    if mode not in ("version", "overwrite"):
        raise ValueError(f"mode must be 'version' or 'overwrite', got {mode!r}")
    _parse_period(period)
    src_header, src_rows = _load_v1_sample()
    selected = _select_rows(src_header, src_rows, rows)

    idx = {c: i for i, c in enumerate(src_header)}
    src_period = src_rows[0][idx["bill/BillingPeriodStartDate"]][:7]
    cost_i = idx[V1_COST_COLUMN]
    cost_sum = decimal_sum(r[cost_i] for r in selected)

    out_rows = [list(r) for r in selected]
    if period != src_period:
        shift = _month_shifter(src_period, period)
        cols = [idx[c] for c in V1_PERIOD_DATE_COLUMNS if c in idx]
        for r in out_rows:
            for i in cols:
                r[i] = shift(r[i])
    if line_item_id_salt is not None:
        li = idx["identity/LineItemId"]
        for r in out_rows:
            r[li] = _reissue_id(r[li], line_item_id_salt)

    header = list(src_header)
    if header_transform is not None:
        header = list(header_transform(list(header)))
        if len(header) != len(src_header):
            raise ValueError("header_transform must return as many names as it was given "
                             "(use extra_columns to add columns)")
    if extra_columns:
        for name, value in extra_columns.items():
            header.append(name)
            for n, (r, orig) in enumerate(zip(out_rows, selected)):
                r.append(value(n, dict(zip(src_header, orig))) if callable(value) else value)

    assembly_id = assembly_id or str(uuid.uuid4())
    rng = date_range_folder(period, date_range_style)
    range_prefix = _join(prefix, report, rng)
    data_prefix = _join(range_prefix, assembly_id) if mode == "version" else range_prefix

    data_keys, counts = [], []
    for n, (a, b) in enumerate(_split(len(out_rows), files), start=1):
        num = f"{n:0{file_number_width}d}" if file_number_width else str(n)
        key = _join(data_prefix, f"{report}-{num}.csv.gz")
        _write_bytes(root, key, _gzip(_csv_bytes(header, out_rows[a:b])))
        data_keys.append(key)
        counts.append(b - a)

    payer = src_rows[0][idx["bill/PayerAccountId"]] if "bill/PayerAccountId" in idx else "123456789012"
    manifest = {
        "assemblyId": assembly_id,
        "account": payer,
        "columns": _v1_columns_manifest(header),
        "charset": "UTF-8",
        "compression": "GZIP",
        "contentType": "text/csv",
        "reportId": _report_id(bucket, prefix, report),
        "reportName": report,
        "billingPeriod": _v1_billing_period(period),
        "bucket": bucket,
        "reportKeys": data_keys,
        "additionalArtifactKeys": [],
    }
    top_key = _join(range_prefix, f"{report}-Manifest.json")
    manifest_keys = []
    assembly_manifest_key = None
    if mode == "version":
        assembly_manifest_key = _join(data_prefix, f"{report}-Manifest.json")
        _write_json(root, assembly_manifest_key, manifest)
        manifest_keys.append(assembly_manifest_key)
    _write_json(root, top_key, manifest)  # written last: it is what readers look for
    manifest_keys.append(top_key)

    return V1Delivery(
        root=root, bucket=bucket, prefix=prefix, report=report, period=period,
        date_range=rng, assembly_id=assembly_id, mode=mode,
        data_keys=tuple(data_keys), manifest_keys=tuple(manifest_keys),
        top_manifest_key=top_key, assembly_manifest_key=assembly_manifest_key,
        header=tuple(header), rows_per_file=tuple(counts), row_count=len(out_rows),
        unblended_cost_sum=cost_sum,
    )


def restate_v1(
    root: str | os.PathLike,
    prefix: str = "cur",
    report: str = "demo-cur",
    period: str = "2023-11",
    first_assembly_id: str | None = None,
    second_assembly_id: str | None = None,
    first_rows: Any = lambda r: r["lineItem/UsageStartDate"] < "2023-11-08",
    second_rows: Any = None,
    reissue_line_item_ids: bool = True,
    **kwargs: Any,
) -> RestatedV1:
    """Two deliveries of one period, the second a larger month-to-date snapshot.

    By default the first holds the rows whose usage starts before Nov 8 (of the sample;
    ``first_rows`` sees original values), the second all 1281 rows with re-issued line
    item ids. Both go through ``build_v1_csv`` (``kwargs`` are passed on, e.g.
    ``mode``, ``files``, ``bucket``); the top-level manifest ends up naming the second
    assembly. Default ids are deterministic UUIDs derived from report and period.
    """
    first_assembly_id = first_assembly_id or str(uuid.uuid5(uuid.NAMESPACE_URL, f"{report}/{period}/1"))
    second_assembly_id = second_assembly_id or str(uuid.uuid5(uuid.NAMESPACE_URL, f"{report}/{period}/2"))
    if first_assembly_id == second_assembly_id:
        raise ValueError("the two deliveries need different assembly ids")
    first = build_v1_csv(root, prefix, report, period, first_assembly_id, rows=first_rows, **kwargs)
    second = build_v1_csv(root, prefix, report, period, second_assembly_id, rows=second_rows,
                          line_item_id_salt=second_assembly_id if reissue_line_item_ids else None,
                          **kwargs)
    return RestatedV1(first, second)


# ======================================================================================
# Legacy CUR v1, Parquet (Athena integration)
# ======================================================================================
_PARQUET_CATEGORIES = (
    ("identity_", "identity"), ("bill_", "bill"), ("line_item_", "lineItem"),
    ("product_", "product"), ("pricing_", "pricing"), ("reservation_", "reservation"),
    ("savings_plan_", "savingsPlan"), ("resource_tags_", "resourceTags"),
    ("cost_category_", "costCategory"), ("split_line_item_", "splitLineItem"),
    ("discount_", "discount"),
)


def _parquet_manifest_type(t) -> str:
    import pyarrow as pa

    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "STRING"
    if pa.types.is_floating(t):
        return "DOUBLE"
    if pa.types.is_timestamp(t):
        return "TIMESTAMP"
    if pa.types.is_integer(t):
        return "BIGINT"
    return str(t).upper()


def _month_label_to_period(label: str) -> str:
    if _PERIOD_RE.match(label):
        return label
    m = re.match(r"^([A-Z][a-z]{2})(\d{4})$", label)
    if not m or m.group(1) not in _MONTHS:
        raise ValueError(f"month must look like 'Oct2018' or '2018-10', got {label!r}")
    return f"{m.group(2)}-{_MONTHS[m.group(1)]:02d}"


def _period_to_month_label(period: str) -> str:
    y, m = _parse_period(period)
    return f"{calendar.month_abbr[m]}{y}"


def build_v1_parquet(
    root: str | os.PathLike,
    prefix: str = "cur",
    report: str = "workshop",
    months: Sequence[str] = ("Oct2018", "Nov2018", "Dec2018"),
    *,
    bucket: str = DEFAULT_BUCKET,
    status: str | None = "READY",
    date_range_style: str = "first-of-next",
) -> V1ParquetDelivery:
    """Legacy CUR in the Parquet form of the Athena integration, from the workshop samples.

    Layout decided here (documented, realistic):

    - Data: ``<prefix>/<report>/<report>/year=YYYY/month=M/<report>-00001.snappy.parquet``
      (month not zero-padded, as AWS writes it), each file a byte-for-byte copy of the
      sample ``<Mon><YYYY>-WorkshopCUR-00001.snappy.parquet`` (renamed to AWS's naming).
    - Manifest: AWS still delivers ``<prefix>/<report>/<YYYYMMDD-YYYYMMDD>/<report>-Manifest.json``
      for a Parquet report. The Athena integration forces "overwrite" versioning, so
      there is no assembly folder and no copy under an assemblyId; ``reportKeys`` point
      at the ``year=/month=`` keys. ``compression`` and ``contentType`` are both
      ``"Parquet"``; ``columns`` are ``{category, name, type}`` with the snake_case
      Parquet names and upper-case physical types (``STRING``, ``DOUBLE``,
      ``TIMESTAMP``), modelled on a public Parquet-CUR manifest. ``assemblyId`` is a
      ``YYYYMMDDTHHMMSSZ`` stamp (03:00 on the 3rd of the following month).
    - Status: ``<prefix>/<report>/cost_and_usage_data_status/cost_and_usage_data_status.parquet``
      with one string column ``status`` = ``READY`` (or ``status=...``; ``None`` = none
      written). This file is generated, not a sample.

    Row counts come from the Parquet metadata; ``unblended_cost_sum`` is the sum of
    ``Decimal(repr(x))`` over the ``line_item_unblended_cost`` doubles (the samples store
    costs as doubles; a float sum would differ, e.g. Nov 2018: 3505.3269681268 exactly vs
    3505.3269681268002 as a float sum).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = Path(root)
    out: list[V1ParquetMonth] = []
    for label in months:
        period = _month_label_to_period(label)
        src = SAMPLES / V1_PARQUET_SAMPLE_DIR / f"{_period_to_month_label(period)}-WorkshopCUR-00001.snappy.parquet"
        if not src.exists():
            raise FileNotFoundError(f"no workshop sample for {label}: {src}")
        y, m = _parse_period(period)
        key = _join(prefix, report, report, f"year={y}", f"month={m}", f"{report}-00001.snappy.parquet")
        dst = root / key
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)

        pf = pq.ParquetFile(src)
        schema = pf.schema_arrow
        cost = pq.read_table(src, columns=[PARQUET_COST_COLUMN]).column(0).to_pylist()
        cost_sum = decimal_sum_doubles(cost)
        payer_col = pq.read_table(src, columns=["bill_payer_account_id"]).column(0)
        payer = payer_col[0].as_py() if len(payer_col) else "123456789012"

        columns = []
        for f in schema:
            category = next((c for p, c in _PARQUET_CATEGORIES if f.name.startswith(p)), "")
            columns.append({"category": category, "name": f.name, "type": _parquet_manifest_type(f.type)})
        _, end = period_bounds(period)
        assembly_id = f"{end + timedelta(days=2):%Y%m%d}T030000Z"
        rng = date_range_folder(period, date_range_style)
        manifest_key = _join(prefix, report, rng, f"{report}-Manifest.json")
        _write_json(root, manifest_key, {
            "assemblyId": assembly_id,
            "account": payer,
            "columns": columns,
            "charset": "UTF-8",
            "compression": "Parquet",
            "contentType": "Parquet",
            "reportId": _report_id(bucket, prefix, report),
            "reportName": report,
            "billingPeriod": _v1_billing_period(period),
            "bucket": bucket,
            "reportKeys": [key],
            "additionalArtifactKeys": [],
        })
        out.append(V1ParquetMonth(
            period=period, date_range=rng, assembly_id=assembly_id, sample=src.name,
            data_keys=(key,), manifest_key=manifest_key, columns=tuple(schema.names),
            row_count=pf.metadata.num_rows, unblended_cost_sum=cost_sum,
        ))

    status_key = None
    if status is not None:
        status_key = _join(prefix, report, "cost_and_usage_data_status", "cost_and_usage_data_status.parquet")
        (root / status_key).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"status": pa.array([status], pa.string())}), root / status_key,
                       compression="snappy")
    return V1ParquetDelivery(root=root, bucket=bucket, prefix=prefix, report=report,
                             months=tuple(out), status_key=status_key)


# ======================================================================================
# CUR 2.0 (generated)
# ======================================================================================
def java_double_text(value: Decimal | float | str) -> str:
    """A double as AWS's Java writers print it (``Double.toString``), as in the real v1
    sample: plain for 1e-3 <= |x| < 1e7 with at least one decimal (``1.0``,
    ``0.0051142167``), scientific otherwise (``1.86E-8``, ``0.0``)."""
    d = Decimal(repr(float(value)))
    if d == 0:
        return "0.0"
    sign, digits, exp = d.normalize().as_tuple()
    a = abs(d)
    if Decimal("0.001") <= a < Decimal("10000000"):
        s = format(a.normalize(), "f")
        if "." not in s:
            s += ".0"
    else:
        mant = f"{digits[0]}." + ("".join(map(str, digits[1:])) or "0")
        s = f"{mant}E{len(digits) - 1 + exp}"
    return ("-" if sign else "") + s


def _plain_text(value: Decimal) -> str:
    s = format(value.normalize(), "f")
    return s if "." in s else s + ".0"


_REGIONS = (
    # code, usage-type prefix, location, weight
    ("us-east-1", "", "US East (N. Virginia)", 6),
    ("eu-west-1", "EUW1-", "EU (Ireland)", 3),
    ("us-west-2", "USW2-", "US West (Oregon)", 2),
)

_ACCOUNTS = (
    ("111122223333", "acme-payer"),
    ("210987654321", "acme-prod"),
    ("345678901234", "acme-dev"),
    ("456789012345", "acme-data"),
)

_INSTANCES = (("m5.large", "0.096", "2", "8 GiB"), ("t3.micro", "0.0104", "2", "1 GiB"),
              ("c6g.xlarge", "0.136", "4", "8 GiB"), ("r6i.2xlarge", "0.504", "8", "64 GiB"))

# name, product_code, product_name, family, usage_type, operation, unit, rate, amount range, servicename
_SERVICES = (
    ("ec2", "AmazonEC2", "Amazon Elastic Compute Cloud", "Compute Instance", "BoxUsage:{itype}",
     "RunInstances", "Hrs", None, (1, 24), 30),
    ("ebs", "AmazonEC2", "Amazon Elastic Compute Cloud", "Storage", "EBS:VolumeUsage.gp3",
     "CreateVolume-Gp3", "GB-Mo", "0.08", (0.01, 40), 12),
    ("dto", "AmazonEC2", "Amazon Elastic Compute Cloud", "Data Transfer", "DataTransfer-Out-Bytes",
     "RunInstances", "GB", "0.09", (0.000001, 30), 8),
    ("s3", "AmazonS3", "Amazon Simple Storage Service", "Storage", "TimedStorage-ByteHrs",
     "StandardStorage", "GB-Mo", "0.023", (0.0001, 500), 12),
    ("s3req", "AmazonS3", "Amazon Simple Storage Service", "API Request", "Requests-Tier2",
     "GetObject", "Requests", "0.0000004", (1, 5000), 12),
    ("lambda", "AWSLambda", "AWS Lambda", "Serverless", "Lambda-GB-Second", "Invoke",
     "Lambda-GB-Second", "0.0000166667", (0.1, 20000), 8),
    ("lambdareq", "AWSLambda", "AWS Lambda", "Serverless", "Request", "Invoke", "Requests",
     "0.0000002", (1, 100000), 6),
    ("rds", "AmazonRDS", "Amazon Relational Database Service", "Database Instance",
     "InstanceUsage:db.t3.medium", "CreateDBInstance:0002", "Hrs", "0.068", (1, 24), 6),
    ("cw", "AmazonCloudWatch", "AmazonCloudWatch", "Metric", "CW:MetricMonitorUsage",
     "MetricStorage", "Metrics", "0.30", (0.01, 3), 6),
)

_TEAMS = ("platform", "data", "web", "ml")
_ENVS = ("prod", "dev", "staging")


def _rand_hex(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


def _rand_b32(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz234567") for _ in range(n))


def _q10(x: Decimal) -> Decimal:
    return x.quantize(Decimal("1E-10"), rounding=ROUND_HALF_EVEN)


def _ts(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _ts_interval(a: datetime, b: datetime) -> str:
    return f"{a:%Y-%m-%dT%H:%M:%SZ}/{b:%Y-%m-%dT%H:%M:%SZ}"


def _json_map(d: Mapping[str, Any] | None, rng: random.Random) -> str:
    """Map columns in CSV: JSON object text; empty ones are ``{}`` or an empty field."""
    if d:
        return json.dumps(d, separators=(",", ":"))
    return "{}" if rng.random() < 0.5 else ""


def _gen_v2_rows(period: str, n: int, seed: int, num: Callable[[Decimal], str],
                 charges: str = "basic") -> list[dict[str, str]]:
    rng = random.Random(f"cur2/{period}/{seed}")
    start, end = period_bounds(period)
    days = (end - start).days
    t0 = datetime(start.year, start.month, start.day, tzinfo=timezone.utc)
    t_end = datetime(end.year, end.month, end.day, tzinfo=timezone.utc)
    payer_id, payer_name = _ACCOUNTS[0]
    weights = [s[-1] for s in _SERVICES]
    region_w = [r[-1] for r in _REGIONS]
    out: list[dict[str, str]] = []
    for i in range(n):
        svc = rng.choices(_SERVICES, weights)[0]
        key, code, pname, family, utype, op, unit, rate_s, (lo, hi), _ = svc
        region, rprefix, location, _ = rng.choices(_REGIONS, region_w)[0]
        acct_id, acct_name = rng.choice(_ACCOUNTS)
        itype = None
        product: dict[str, str] = {"product_name": pname, "region": region, "servicename": pname}
        if key == "ec2":
            itype, rate_s, vcpu, mem = rng.choice(_INSTANCES)
            utype = utype.format(itype=itype)
            product.update({"vcpu": vcpu, "memory": mem, "operating_system": "Linux",
                            "tenancy": "Shared", "instance_type_family": itype.split(".")[0]})
        elif key in ("s3", "s3req"):
            product["storage_class"] = "General Purpose"
        rate = Decimal(rate_s)
        day = rng.randrange(days)
        us = t0 + timedelta(days=day)
        ue = us + timedelta(days=1)
        amount = _q10(Decimal(str(round(rng.uniform(lo, hi), rng.choice((0, 2, 6, 10))))))
        if amount == 0:
            amount = Decimal("1")
        if unit in ("Requests",):
            amount = Decimal(int(amount) or 1)
        cost = _q10(amount * rate)
        lit = rng.choices(
            ("Usage", "Tax", "Credit", "DiscountedUsage", "SavingsPlanCoveredUsage", "RIFee"),
            (80, 5, 3, 4, 6, 2))[0]
        if key != "ec2" and lit in ("DiscountedUsage", "SavingsPlanCoveredUsage", "RIFee"):
            lit = "Usage"
        if rng.random() < 0.04:  # tiny S3 request lines exist in every real bill
            cost = Decimal(rng.choice(("0.0000000186", "0.0000004", "0.0000012", "0.0000000023")))

        r: dict[str, str] = {}
        r["identity_line_item_id"] = _rand_b32(rng, 52)
        r["identity_time_interval"] = _ts_interval(us, ue)
        r["bill_bill_type"] = "Anniversary"
        r["bill_billing_entity"] = "AWS"
        r["bill_billing_period_start_date"] = _ts(t0)
        r["bill_billing_period_end_date"] = _ts(t_end)
        r["bill_invoice_id"] = ""  # blank until the month is final
        r["bill_invoicing_entity"] = "Amazon Web Services, Inc."
        r["bill_payer_account_id"] = payer_id
        r["bill_payer_account_name"] = payer_name
        r["line_item_usage_account_id"] = acct_id
        r["line_item_usage_account_name"] = acct_name
        r["line_item_line_item_type"] = lit
        r["line_item_product_code"] = code
        r["line_item_currency_code"] = "USD"
        r["line_item_legal_entity"] = "Amazon Web Services, Inc."
        r["line_item_usage_start_date"] = _ts(us)
        r["line_item_usage_end_date"] = _ts(ue)
        r["pricing_currency"] = "USD"

        if lit == "Tax":
            r["identity_time_interval"] = _ts_interval(t0, t_end)
            r["line_item_usage_start_date"] = _ts(t0)
            r["line_item_usage_end_date"] = _ts(t_end)
            r["line_item_usage_amount"] = num(Decimal(1))
            r["line_item_tax_type"] = "VAT" if region == "eu-west-1" else "Sales Tax"
            cost = _q10(cost * Decimal("0.2"))
            r["line_item_line_item_description"] = f"Tax for product code {code}"
            product = {"product_name": pname}
        elif lit == "Credit":
            cost = -abs(_q10(cost)) or Decimal("-0.01")
            r["line_item_usage_amount"] = num(Decimal(0))
            r["line_item_line_item_description"] = "AWS Activate Credits, Promotional Credit"
            product = {"product_name": pname}
        elif lit == "RIFee":
            r["line_item_usage_type"] = f"{rprefix}HeavyUsage:{itype}"
            r["line_item_operation"] = "RunInstances"
            r["line_item_usage_amount"] = num(Decimal(720))
            r["line_item_line_item_description"] = f"USD {rate} hourly fee per Linux/UNIX (Amazon VPC), {itype} instance"
            r["reservation_reservation_a_r_n"] = f"arn:aws:ec2:{region}:{acct_id}:reserved-instances/{uuid.UUID(int=rng.getrandbits(128), version=4)}"
            r["reservation_recurring_fee_for_usage"] = ""
            r["reservation_unused_quantity"] = num(Decimal(rng.randrange(0, 50)))
            r["reservation_unused_recurring_fee"] = num(_q10(rate * rng.randrange(0, 50)))
            r["reservation_number_of_reservations"] = "1"
            r["reservation_units_per_reservation"] = "720"
            r["reservation_total_reserved_units"] = "720"
            r["reservation_start_time"] = "2023-06-01T00:00:00.000Z"
            r["reservation_end_time"] = "2026-06-01T00:00:00.000Z"
            cost = _q10(rate * 720 * Decimal("0.6"))
        else:
            r["line_item_usage_type"] = f"{rprefix}{utype}"
            r["line_item_operation"] = op
            r["line_item_availability_zone"] = f"{region}{rng.choice('abc')}" if key in ("ec2", "ebs", "rds") else ""
            r["line_item_usage_amount"] = num(amount)
            r["line_item_unblended_rate"] = _plain_text(rate)
            r["line_item_blended_rate"] = _plain_text(rate)
            r["line_item_net_unblended_rate"] = ""
            r["line_item_line_item_description"] = (
                f"${_plain_text(rate)} per On Demand Linux {itype} Instance Hour" if itype
                else f"${_plain_text(rate)} per {unit} - {pname} ({location})")
            if key in ("ec2", "rds"):
                r["line_item_normalization_factor"] = num(Decimal(4))
                r["line_item_normalized_usage_amount"] = num(amount * 4)
            r["line_item_resource_id"] = {
                "ec2": f"i-0{_rand_hex(rng, 16)}", "ebs": f"vol-0{_rand_hex(rng, 16)}",
                "s3": f"acme-{rng.choice(_TEAMS)}-bucket", "s3req": f"acme-{rng.choice(_TEAMS)}-bucket",
                "lambda": f"arn:aws:lambda:{region}:{acct_id}:function:{rng.choice(_TEAMS)}-handler",
                "lambdareq": f"arn:aws:lambda:{region}:{acct_id}:function:{rng.choice(_TEAMS)}-handler",
                "rds": f"arn:aws:rds:{region}:{acct_id}:db:{rng.choice(_TEAMS)}-db",
            }.get(key, "")
            r["pricing_term"] = "OnDemand"
            r["pricing_unit"] = unit
            r["pricing_public_on_demand_rate"] = _plain_text(rate)
            r["pricing_public_on_demand_cost"] = num(_q10(amount * rate))
            r["pricing_rate_code"] = f"{_rand_b32(rng, 16).upper()}.JRTCKXETXF.6YS6EN2CT7"
            r["pricing_rate_id"] = str(rng.randrange(10**9, 10**10))
            r["product_from_location"] = location if key == "dto" else ""
            r["product_from_location_type"] = "AWS Region" if key == "dto" else ""
            r["product_from_region_code"] = region if key == "dto" else ""
            r["product_to_location"] = "External" if key == "dto" else ""
            r["product_to_location_type"] = "Other" if key == "dto" else ""
            r["product_location"] = "" if key == "dto" else location
            r["product_location_type"] = "" if key == "dto" else "AWS Region"
            r["product_region_code"] = region
            r["product_operation"] = op
            r["product_product_family"] = family
            r["product_servicecode"] = code
            r["product_sku"] = _rand_b32(rng, 16).upper()
            r["product_usagetype"] = r["line_item_usage_type"]
            r["product_pricing_unit"] = unit
            if itype:
                r["product_instance_type"] = itype
                r["product_instance_family"] = "General purpose"
                r["product_instancesku"] = ""
            if lit == "DiscountedUsage":
                eff = _q10(amount * rate * Decimal("0.6"))
                r["reservation_effective_cost"] = num(eff)
                r["reservation_net_effective_cost"] = ""
                r["reservation_amortized_upfront_cost_for_usage"] = num(Decimal(0))
                r["reservation_recurring_fee_for_usage"] = num(eff)
                r["reservation_reservation_a_r_n"] = f"arn:aws:ec2:{region}:{acct_id}:reserved-instances/{uuid.UUID(int=rng.getrandbits(128), version=4)}"
                r["reservation_subscription_id"] = str(rng.randrange(10**9, 10**10))
                r["pricing_term"] = "Reserved"
                r["pricing_lease_contract_length"] = "1yr"
                r["pricing_offering_class"] = "standard"
                r["pricing_purchase_option"] = "No Upfront"
                cost = Decimal(0)
            elif lit == "SavingsPlanCoveredUsage":
                eff = _q10(amount * rate * Decimal("0.72"))
                r["savings_plan_savings_plan_a_r_n"] = f"arn:aws:savingsplans::{payer_id}:savingsplan/{uuid.UUID(int=rng.getrandbits(128), version=4)}"
                r["savings_plan_savings_plan_rate"] = num(_q10(rate * Decimal("0.72")))
                r["savings_plan_savings_plan_effective_cost"] = num(eff)
                r["savings_plan_net_savings_plan_effective_cost"] = ""
                r["savings_plan_offering_type"] = "ComputeSavingsPlans"
                r["savings_plan_payment_option"] = "No Upfront"
                r["savings_plan_purchase_term"] = "1yr"
                r["savings_plan_region"] = location
                r["savings_plan_instance_type_family"] = ""
                r["savings_plan_start_time"] = "2023-09-01T00:00:00.000Z"
                r["savings_plan_end_time"] = "2024-08-31T23:59:59.000Z"
        r["line_item_unblended_cost"] = num(cost)
        r["line_item_blended_cost"] = num(cost)
        disc = _q10(-cost * Decimal("0.03")) if lit == "Usage" and cost > 0 and rng.random() < 0.25 else None
        # net columns are only filled where a discount applies (often empty in real exports)
        r["line_item_net_unblended_cost"] = num(cost + disc) if disc else ""
        # map columns
        r["product"] = _json_map(product, rng)
        tags: dict[str, str] = {}
        if lit not in ("Tax", "Credit") and rng.random() < 0.6:
            tags["user_team"] = rng.choice(_TEAMS)
            if rng.random() < 0.7:
                tags["user_environment"] = rng.choice(_ENVS)
            if rng.random() < 0.3:
                tags["user_name"] = f"{rng.choice(_TEAMS)}-{_rand_hex(rng, 4)}"
            if rng.random() < 0.2:
                tags["aws_created_by"] = f"IAMUser:AIDA{_rand_b32(rng, 17).upper()}:ci-bot"
        r["resource_tags"] = _json_map(tags, rng)
        r["tags"] = _json_map(tags, rng)
        r["cost_category"] = _json_map({"team": tags["user_team"]} if "user_team" in tags else None, rng)
        if disc:
            r["discount"] = _json_map({"edp_discount": float(disc)}, rng)
            r["discount_total_discount"] = num(disc)
            r["discount_bundled_discount"] = num(Decimal(0))
        else:
            r["discount"] = _json_map(None, rng)
        out.append(r)
    if charges == "full":  # the basic rows above are drawn exactly as before, then completed
        return _V2FullBill(period, seed, num).complete(out)
    return out


# --------------------------------------------------------------------------------------
# CUR 2.0, charges="full": every special line item type, consistent with each other
# --------------------------------------------------------------------------------------
V2_LINE_ITEM_TYPES_FULL = (
    "Usage", "DiscountedUsage", "SavingsPlanCoveredUsage", "SavingsPlanNegation",
    "SavingsPlanRecurringFee", "SavingsPlanUpfrontFee", "RIFee", "Fee", "Credit", "Refund",
    "Tax", "BundledDiscount", "EdpDiscount",
)
_TERM_HOURS = {"1yr": 8760, "3yr": 26280}
_TERM_DAYS = {"1yr": 365, "3yr": 3 * 365}
_REGION_SHORT = {"us-east-1": "USE1", "eu-west-1": "EUW1", "us-west-2": "USW2"}
_NORMALIZATION = {"micro": Decimal("0.5"), "large": Decimal(4), "xlarge": Decimal(8), "2xlarge": Decimal(16)}
# A fictitious third-party seller (names only look like a real listing)
_MARKETPLACE = ("Nimbus Logworks, Inc.", "Nimbus Log Analytics Pro (SaaS)")
_TS_FMT = "%Y-%m-%dT%H:%M:%S.000Z"


def _q(x: Decimal, places: int) -> Decimal:
    return x.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)


def _ceil(x: Decimal, places: int) -> Decimal:
    return x.quantize(Decimal(1).scaleb(-places), rounding=ROUND_CEILING)


def _rand_alnum(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(n))


def _nf(itype: str) -> Decimal:
    return _NORMALIZATION.get(itype.split(".")[1], Decimal(4))


class _V2FullBill:
    """Turns the basic CUR 2.0 rows into a complete, self-consistent bill (charges="full").

    Own random stream (``cur2-full/<period>/<seed>``), so the basic rows are unchanged in
    what they draw. Amounts that feed commitment arithmetic are rounded to 4 decimals and
    rates to 6, so every product is exact in 10 decimals and the checks below hold with
    ``==``, never "close enough":

    - Savings Plans: SP "A" (Compute, No Upfront, 1yr, bought before the period) and SP "B"
      (EC2 Instance m5 in us-east-1, All Upfront, 1yr, bought on day 10 of the period).
      Each SavingsPlanCoveredUsage row has ``line_item_unblended_cost`` = on-demand cost =
      ``pricing_public_on_demand_cost`` and ``savings_plan_savings_plan_effective_cost`` =
      usage x SP rate, and is paired with a SavingsPlanNegation row (same usage, resource,
      ARN; cost negated; effective cost empty). One SavingsPlanRecurringFee per SP per day:
      ``total_commitment_to_date`` = 24 x hourly commitment, ``used_commitment`` = the
      covered effective cost of that day; No Upfront: recurring part = cost = total;
      All Upfront: cost 0, amortized upfront part = total. SP B has one
      SavingsPlanUpfrontFee (bill type Purchase) of commitment x 8760.
    - Reserved Instances: one per basic RIFee row, plus one per (region, type) of
      DiscountedUsage rows without one, plus "P" (us-east-1 m5.large, Partial Upfront, bought
      at the start of the period, with a "Fee" row: its upfront). DiscountedUsage: cost 0,
      ``reservation_effective_cost`` = amortized upfront + recurring for the usage. One
      RIFee per RI: units = hours of the period x reservations, unused = units - used,
      cost = recurring x units.
    - EdpDiscount per basic discounted Usage row (cost = its ``discount_total_discount``),
      BundledDiscount for data transfer rows made free, a Refund, a marketplace row, a
      zero-cost row, a 0.0000000186 row; Tax and Credit are added if the basic rows lack one.
      Discount lines carry ``line_item_net_unblended_cost`` 0 (the discounted line's net
      cost already holds the discount).
    """

    def __init__(self, period: str, seed: int, num: Callable[[Decimal], str]):
        self.rng = random.Random(f"cur2-full/{period}/{seed}")
        self.num = num
        start, end = period_bounds(period)
        self.t0 = datetime(start.year, start.month, start.day, tzinfo=timezone.utc)
        self.t_end = datetime(end.year, end.month, end.day, tzinfo=timezone.utc)
        self.days = (end - start).days
        self.hours = self.days * 24
        self.new: list[dict[str, str]] = []
        payer = _ACCOUNTS[0][0]
        b_day = min(9, self.days - 1)
        sp_a_start = datetime(start.year - (start.month <= 4), (start.month - 5) % 12 + 1, 1, tzinfo=timezone.utc)
        self.sps = [
            dict(key="A", offering="ComputeSavingsPlans", label="Compute", payment="No Upfront",
                 term="1yr", factor=Decimal("0.72"), start=sp_a_start, first_day=0, region="",
                 family="", usage_type="ComputeSP:1yrNoUpfront"),
            dict(key="B", offering="EC2InstanceSavingsPlans", label="EC2 Instance", payment="All Upfront",
                 term="1yr", factor=Decimal("0.6"), start=self.t0 + timedelta(days=b_day), first_day=b_day,
                 region="us-east-1", family="m5", usage_type="EC2SP:m5.1yrAllUpfront"),
        ]
        for sp in self.sps:
            sp["arn"] = f"arn:aws:savingsplans::{payer}:savingsplan/{self._uuid()}"
            sp["end"] = sp["start"] + timedelta(days=_TERM_DAYS[sp["term"]], seconds=-1)
            sp["used"] = {}
            sp["rows"] = 0
        self.ris: list[dict[str, Any]] = []

    # ---------------------------------------------------------------- small helpers
    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _id(self) -> str:
        return _rand_b32(self.rng, 52)

    def _day(self, r: Mapping[str, str]) -> int:
        us = datetime.strptime(r["line_item_usage_start_date"], _TS_FMT).replace(tzinfo=timezone.utc)
        return (us - self.t0).days

    def _row(self, lit: str, acct: tuple[str, str], us: datetime, ue: datetime, code: str,
             pname: str, region: str | None = None, bill_type: str = "Anniversary") -> dict[str, str]:
        """A new line item with the bill/identity/line item basics of every row."""
        payer_id, payer_name = _ACCOUNTS[0]
        product = {"product_name": pname}
        if region:
            product.update({"region": region, "servicename": pname})
        return {
            "identity_line_item_id": self._id(),
            "identity_time_interval": _ts_interval(us, ue),
            "bill_bill_type": bill_type,
            "bill_billing_entity": "AWS",
            "bill_billing_period_start_date": _ts(self.t0),
            "bill_billing_period_end_date": _ts(self.t_end),
            "bill_invoice_id": "",
            "bill_invoicing_entity": "Amazon Web Services, Inc.",
            "bill_payer_account_id": payer_id,
            "bill_payer_account_name": payer_name,
            "line_item_usage_account_id": acct[0],
            "line_item_usage_account_name": acct[1],
            "line_item_line_item_type": lit,
            "line_item_product_code": code,
            "line_item_currency_code": "USD",
            "line_item_legal_entity": "Amazon Web Services, Inc.",
            "line_item_usage_start_date": _ts(us),
            "line_item_usage_end_date": _ts(ue),
            "pricing_currency": "USD",
            "product": json.dumps(product, separators=(",", ":")),
            "resource_tags": _json_map(None, self.rng),
            "tags": _json_map(None, self.rng),
            "cost_category": _json_map(None, self.rng),
            "discount": _json_map(None, self.rng),
        }

    def _usage(self, key: str, day: int, region: str | None = None, itype: str | None = None,
               acct: tuple[str, str] | None = None, amount: Decimal | None = None,
               rate: Decimal | None = None) -> dict[str, str]:
        """A complete Usage row of one of the basic services (EC2, EBS, data transfer ...)."""
        num = self.num
        svc = next(s for s in _SERVICES if s[0] == key)
        _, code, pname, family, utype, op, unit, rate_s, (lo, hi), _ = svc
        if region is None:
            region = self.rng.choice([r[0] for r in _REGIONS])
        _, rprefix, location, _ = next(r for r in _REGIONS if r[0] == region)
        acct = acct or self.rng.choice(_ACCOUNTS[1:])
        us = self.t0 + timedelta(days=day)
        ue = us + timedelta(days=1)
        r = self._row("Usage", acct, us, ue, code, pname, region)
        product = json.loads(r["product"])
        if key == "ec2":
            itype = itype or self.rng.choice(_INSTANCES)[0]
            _, rate_s, vcpu, mem = next(i for i in _INSTANCES if i[0] == itype)
            utype = utype.format(itype=itype)
            product.update({"vcpu": vcpu, "memory": mem, "operating_system": "Linux",
                            "tenancy": "Shared", "instance_type_family": itype.split(".")[0]})
            r.update({"product_instance_type": itype, "product_instance_family": "General purpose",
                      "product_instancesku": "", "line_item_normalization_factor": num(_nf(itype))})
        rate = Decimal(rate_s) if rate is None else rate
        if amount is None:
            amount = _q(Decimal(str(self.rng.uniform(lo, hi))), 4) or Decimal(1)
        r["product"] = json.dumps(product, separators=(",", ":"))
        cost = amount * rate
        r.update({
            "line_item_usage_type": f"{rprefix}{utype}",
            "line_item_operation": op,
            "line_item_availability_zone": f"{region}{self.rng.choice('abc')}" if key in ("ec2", "ebs", "rds") else "",
            "line_item_usage_amount": num(amount),
            "line_item_unblended_rate": _plain_text(rate),
            "line_item_blended_rate": _plain_text(rate),
            "line_item_unblended_cost": num(cost),
            "line_item_blended_cost": num(cost),
            "line_item_net_unblended_cost": "",
            "line_item_line_item_description": (
                f"${_plain_text(rate)} per On Demand Linux {itype} Instance Hour" if key == "ec2"
                else f"${_plain_text(rate)} per {unit} - {pname} ({location})"),
            "line_item_resource_id": {
                "ec2": f"i-0{_rand_hex(self.rng, 16)}", "ebs": f"vol-0{_rand_hex(self.rng, 16)}",
                "s3": f"acme-{self.rng.choice(_TEAMS)}-bucket"}.get(key, ""),
            "pricing_term": "OnDemand",
            "pricing_unit": unit,
            "pricing_public_on_demand_rate": _plain_text(rate),
            "pricing_public_on_demand_cost": num(cost),
            "pricing_rate_code": f"{_rand_b32(self.rng, 16).upper()}.JRTCKXETXF.6YS6EN2CT7",
            "pricing_rate_id": str(self.rng.randrange(10**9, 10**10)),
            "product_location": "" if key == "dto" else location,
            "product_location_type": "" if key == "dto" else "AWS Region",
            "product_from_location": location if key == "dto" else "",
            "product_from_location_type": "AWS Region" if key == "dto" else "",
            "product_region_code": region,
            "product_operation": op,
            "product_product_family": family,
            "product_servicecode": code,
            "product_sku": _rand_b32(self.rng, 16).upper(),
            "product_usagetype": f"{rprefix}{utype}",
            "product_pricing_unit": unit,
        })
        if key == "ec2":
            r["line_item_normalized_usage_amount"] = num(amount * _nf(itype))
        return r

    @staticmethod
    def _clear(r: dict[str, str], *prefixes: str) -> None:
        for k in list(r):
            if k.startswith(prefixes):
                r[k] = ""

    # ---------------------------------------------------------------- Savings Plans
    def _sp_for(self, r: Mapping[str, str]) -> dict[str, Any]:
        b = self.sps[1]
        if (self._day(r) >= b["first_day"] and r.get("product_region_code") == b["region"]
                and r.get("product_instance_type", "").split(".")[0] == b["family"]):
            return b
        return self.sps[0]

    def _cover(self, r: dict[str, str], sp: dict[str, Any]) -> None:
        """Make an EC2 row SavingsPlanCoveredUsage of `sp` and add its SavingsPlanNegation."""
        num = self.num
        p = Decimal(r["pricing_public_on_demand_rate"])
        amount = _q(Decimal(r["line_item_usage_amount"]), 4) or Decimal(1)
        cost = amount * p
        sp_rate = _q(p * sp["factor"], 6)
        eff = amount * sp_rate
        location = next(x[2] for x in _REGIONS if x[0] == r["product_region_code"])
        self._clear(r, "discount_", "reservation_", "savings_plan_")
        r["discount"] = "{}"
        r.update({
            "line_item_line_item_type": "SavingsPlanCoveredUsage",
            "line_item_usage_amount": num(amount),
            "line_item_unblended_rate": _plain_text(p),
            "line_item_blended_rate": _plain_text(p),
            "line_item_unblended_cost": num(cost),
            "line_item_blended_cost": num(cost),
            "line_item_net_unblended_cost": "",
            "pricing_term": "OnDemand",
            "pricing_public_on_demand_rate": _plain_text(p),
            "pricing_public_on_demand_cost": num(cost),
            "savings_plan_savings_plan_a_r_n": sp["arn"],
            "savings_plan_savings_plan_rate": num(sp_rate),
            "savings_plan_savings_plan_effective_cost": num(eff),
            "savings_plan_offering_type": sp["offering"],
            "savings_plan_payment_option": sp["payment"],
            "savings_plan_purchase_term": sp["term"],
            "savings_plan_region": location if sp["region"] else "",
            "savings_plan_instance_type_family": sp["family"],
            "savings_plan_start_time": _ts(sp["start"]),
            "savings_plan_end_time": _ts(sp["end"]),
        })
        if r.get("line_item_normalization_factor"):
            r["line_item_normalized_usage_amount"] = num(amount * Decimal(r["line_item_normalization_factor"]))
        day = self._day(r)
        sp["used"][day] = sp["used"].get(day, Decimal(0)) + eff
        sp["rows"] += 1
        neg = dict(r)
        neg.update({
            "identity_line_item_id": self._id(),
            "line_item_line_item_type": "SavingsPlanNegation",
            "line_item_unblended_rate": _plain_text(-p),
            "line_item_blended_rate": _plain_text(-p),
            "line_item_unblended_cost": num(-cost),
            "line_item_blended_cost": num(-cost),
            "line_item_line_item_description": (f"SavingsPlanNegation used by AccountId : "
                                                f"{r['line_item_usage_account_id']} and UsageSku : {r.get('product_sku', '')}"),
            "pricing_public_on_demand_cost": "",
            "savings_plan_savings_plan_effective_cost": "",
        })
        self.new.append(neg)

    def _sp_fees(self) -> None:
        num = self.num
        payer = _ACCOUNTS[0]
        for sp in self.sps:
            peak = max(sp["used"].values(), default=Decimal(0))
            sp["commitment"] = max(Decimal("0.050"), _ceil(peak / 24 * Decimal("1.25"), 3))
            c = sp["commitment"]
            no_upfront = sp["payment"] == "No Upfront"
            words = f"{sp['term'][0]} year {sp['payment']} {sp['label']} Savings Plan"
            for d in range(sp["first_day"], self.days):
                us = self.t0 + timedelta(days=d)
                total = c * 24
                used = sp["used"].get(d, Decimal(0))
                r = self._row("SavingsPlanRecurringFee", payer, us, us + timedelta(days=1),
                              "ComputeSavingsPlans", "Savings Plans for AWS Compute usage")
                r.update({
                    "line_item_usage_type": sp["usage_type"],
                    "line_item_resource_id": sp["arn"],
                    "line_item_usage_amount": num(Decimal(24)),
                    "line_item_unblended_rate": _plain_text(c if no_upfront else Decimal(0)),
                    "line_item_blended_rate": _plain_text(c if no_upfront else Decimal(0)),
                    "line_item_unblended_cost": num(total if no_upfront else Decimal(0)),
                    "line_item_blended_cost": num(total if no_upfront else Decimal(0)),
                    "line_item_line_item_description": f"{words} hourly commitment of {_plain_text(c)} USD",
                    "pricing_unit": "Hrs",
                    "savings_plan_savings_plan_a_r_n": sp["arn"],
                    "savings_plan_offering_type": sp["offering"],
                    "savings_plan_payment_option": sp["payment"],
                    "savings_plan_purchase_term": sp["term"],
                    "savings_plan_region": "US East (N. Virginia)" if sp["region"] else "",
                    "savings_plan_instance_type_family": sp["family"],
                    "savings_plan_start_time": _ts(sp["start"]),
                    "savings_plan_end_time": _ts(sp["end"]),
                    "savings_plan_total_commitment_to_date": num(total),
                    "savings_plan_used_commitment": num(used),
                    "savings_plan_recurring_commitment_for_billing_period": num(total if no_upfront else Decimal(0)),
                    "savings_plan_amortized_upfront_commitment_for_billing_period": num(Decimal(0) if no_upfront else total),
                })
                self.new.append(r)
            if not no_upfront and sp["start"] >= self.t0:
                upfront = c * _TERM_HOURS[sp["term"]]
                sp["upfront"] = upfront
                r = self._row("SavingsPlanUpfrontFee", payer, self.t0, self.t_end, "ComputeSavingsPlans",
                              "Savings Plans for AWS Compute usage", bill_type="Purchase")
                r.update({
                    "line_item_usage_type": sp["usage_type"],
                    "line_item_resource_id": sp["arn"],
                    "line_item_usage_amount": num(Decimal(1)),
                    "line_item_unblended_rate": _plain_text(upfront),
                    "line_item_blended_rate": _plain_text(upfront),
                    "line_item_unblended_cost": num(upfront),
                    "line_item_blended_cost": num(upfront),
                    "line_item_line_item_description": f"{words} upfront fee",
                    "savings_plan_savings_plan_a_r_n": sp["arn"],
                    "savings_plan_offering_type": sp["offering"],
                    "savings_plan_payment_option": sp["payment"],
                    "savings_plan_purchase_term": sp["term"],
                    "savings_plan_region": "US East (N. Virginia)" if sp["region"] else "",
                    "savings_plan_instance_type_family": sp["family"],
                    "savings_plan_start_time": _ts(sp["start"]),
                    "savings_plan_end_time": _ts(sp["end"]),
                })
                self.new.append(r)

    # ---------------------------------------------------------------- Reserved Instances
    def _new_ri(self, region: str, itype: str, acct_id: str, payment: str, term: str,
                in_period: bool, arn: str | None = None) -> dict[str, Any]:
        p = Decimal(next(i for i in _INSTANCES if i[0] == itype)[1])
        up, rec = {"No Upfront": (Decimal(0), _q(p * Decimal("0.62"), 6)),
                   "Partial Upfront": (_q(p * Decimal("0.29"), 6), _q(p * Decimal("0.29"), 6)),
                   "All Upfront": (_q(p * Decimal("0.57"), 6), Decimal(0))}[payment]
        start = self.t0 if in_period else datetime(self.t0.year - 1, self.t0.month, 1, tzinfo=timezone.utc)
        ri = dict(region=region, itype=itype, acct=acct_id, payment=payment, term=term, in_period=in_period,
                  upfront_hourly=up, recurring_hourly=rec, start=start,
                  end=start + timedelta(days=_TERM_DAYS[term]),
                  arn=arn or f"arn:aws:ec2:{region}:{acct_id}:reserved-instances/{self._uuid()}",
                  subscription=str(self.rng.randrange(10**9, 10**10)), plan=str(self.rng.randrange(1000, 9999)),
                  used=Decimal(0), rows=0, fee_row=None)
        self.ris.append(ri)
        return ri

    def _ri_for(self, r: Mapping[str, str]) -> dict[str, Any]:
        region, itype = r["product_region_code"], r["product_instance_type"]
        for ri in self.ris:
            if (ri["region"], ri["itype"]) == (region, itype):
                return ri
        return self._new_ri(region, itype, r["line_item_usage_account_id"],
                            self.rng.choice(("No Upfront", "Partial Upfront", "All Upfront")),
                            self.rng.choice(("1yr", "3yr")), in_period=False)

    def _discount_usage(self, r: dict[str, str], ri: dict[str, Any]) -> None:
        num = self.num
        p = Decimal(r["pricing_public_on_demand_rate"])
        amount = _q(Decimal(r["line_item_usage_amount"]), 4) or Decimal(1)
        amort, recur = amount * ri["upfront_hourly"], amount * ri["recurring_hourly"]
        self._clear(r, "discount_", "reservation_", "savings_plan_")
        r["discount"] = "{}"
        r.update({
            "line_item_line_item_type": "DiscountedUsage",
            "line_item_usage_amount": num(amount),
            "line_item_unblended_rate": "0.0",
            "line_item_blended_rate": "0.0",
            "line_item_unblended_cost": num(Decimal(0)),
            "line_item_blended_cost": num(Decimal(0)),
            "line_item_net_unblended_cost": "",
            "pricing_term": "Reserved",
            "pricing_lease_contract_length": ri["term"],
            "pricing_offering_class": "standard",
            "pricing_purchase_option": ri["payment"],
            "pricing_public_on_demand_rate": _plain_text(p),
            "pricing_public_on_demand_cost": num(amount * p),
            "reservation_reservation_a_r_n": ri["arn"],
            "reservation_subscription_id": ri["subscription"],
            "reservation_amortized_upfront_cost_for_usage": num(amort),
            "reservation_recurring_fee_for_usage": num(recur),
            "reservation_effective_cost": num(amort + recur),
        })
        if r.get("line_item_normalization_factor"):
            r["line_item_normalized_usage_amount"] = num(amount * Decimal(r["line_item_normalization_factor"]))
        ri["used"] += amount
        ri["rows"] += 1

    def _ri_fee(self, r: dict[str, str], ri: dict[str, Any]) -> None:
        """Fill `r` as the period's RIFee line of `ri` (sets the number of reservations)."""
        num = self.num
        hours = Decimal(self.hours)
        n = max(1, int(_ceil(ri["used"] / hours, 0))) + self.rng.choice((0, 0, 1))
        ri["n"] = n
        total = hours * n
        unused = total - ri["used"]
        nf = _nf(ri["itype"])
        up, rec = ri["upfront_hourly"], ri["recurring_hourly"]
        ri["upfront_total"] = up * _TERM_HOURS[ri["term"]] * n
        rprefix = next(x[1] for x in _REGIONS if x[0] == ri["region"])
        self._clear(r, "discount_", "reservation_", "savings_plan_", "pricing_", "line_item_net_")
        r["discount"] = "{}"
        r.update({
            "identity_time_interval": _ts_interval(self.t0, self.t_end),
            "line_item_line_item_type": "RIFee",
            "line_item_product_code": "AmazonEC2",
            "line_item_usage_start_date": _ts(self.t0),
            "line_item_usage_end_date": _ts(self.t_end),
            "line_item_usage_type": f"{rprefix}HeavyUsage:{ri['itype']}",
            "line_item_operation": "RunInstances",
            "line_item_availability_zone": "",
            "line_item_resource_id": "",
            "line_item_usage_amount": num(total),
            "line_item_normalization_factor": num(nf),
            "line_item_normalized_usage_amount": num(total * nf),
            "line_item_unblended_rate": _plain_text(rec),
            "line_item_blended_rate": _plain_text(rec),
            "line_item_unblended_cost": num(rec * total),
            "line_item_blended_cost": num(rec * total),
            "line_item_line_item_description": (f"USD {_plain_text(rec)} hourly fee per Linux/UNIX (Amazon VPC), "
                                                f"{ri['itype']} instance"),
            "pricing_currency": "USD",
            "pricing_term": "Reserved",
            "pricing_unit": "Hrs",
            "pricing_lease_contract_length": ri["term"],
            "pricing_offering_class": "standard",
            "pricing_purchase_option": ri["payment"],
            "product_instance_type": ri["itype"],
            "product_region_code": ri["region"],
            "reservation_reservation_a_r_n": ri["arn"],
            "reservation_subscription_id": ri["subscription"],
            "reservation_modification_status": "Original",
            "reservation_start_time": _ts(ri["start"]),
            "reservation_end_time": _ts(ri["end"]),
            "reservation_number_of_reservations": str(n),
            "reservation_units_per_reservation": str(self.hours),
            "reservation_total_reserved_units": str(self.hours * n),
            "reservation_normalized_units_per_reservation": _plain_text(hours * nf),
            "reservation_total_reserved_normalized_units": _plain_text(total * nf),
            "reservation_unused_quantity": num(unused),
            "reservation_unused_normalized_unit_quantity": num(unused * nf),
            "reservation_unused_recurring_fee": num(unused * rec),
            "reservation_amortized_upfront_fee_for_billing_period": num(total * up),
            "reservation_unused_amortized_upfront_fee_for_billing_period": num(unused * up),
            "reservation_upfront_value": num(ri["upfront_total"]),
        })

    def _ri_purchase(self, ri: dict[str, Any]) -> dict[str, str]:
        """The one-time "Fee" line of an RI bought in the period (its upfront payment)."""
        num = self.num
        acct = next(a for a in _ACCOUNTS if a[0] == ri["acct"])
        r = self._row("Fee", acct, self.t0, self.t_end, "AmazonEC2", "Amazon Elastic Compute Cloud",
                      ri["region"], bill_type="Purchase")
        each = ri["upfront_total"] / ri["n"]
        r.update({
            "line_item_usage_type": f"{_REGION_SHORT[ri['region']]}-HeavyUsage:{ri['itype']}",
            "line_item_operation": "RunInstances",
            "line_item_usage_amount": num(Decimal(ri["n"])),
            "line_item_unblended_rate": _plain_text(each),
            "line_item_blended_rate": _plain_text(each),
            "line_item_unblended_cost": num(ri["upfront_total"]),
            "line_item_blended_cost": num(ri["upfront_total"]),
            "line_item_line_item_description": (f"Sign up charge for subscription: {ri['subscription']}, "
                                                f"planId: {ri['plan']}"),
            "pricing_term": "Reserved",
            "pricing_lease_contract_length": ri["term"],
            "pricing_offering_class": "standard",
            "pricing_purchase_option": ri["payment"],
            "product_instance_type": ri["itype"],
            "product_region_code": ri["region"],
            "reservation_reservation_a_r_n": ri["arn"],
            "reservation_subscription_id": ri["subscription"],
            "reservation_number_of_reservations": str(ri["n"]),
            "reservation_start_time": _ts(ri["start"]),
            "reservation_end_time": _ts(ri["end"]),
            "reservation_upfront_value": num(ri["upfront_total"]),
        })
        return r

    # ---------------------------------------------------------------- discounts, refund, misc
    def _discount_line(self, parent: Mapping[str, str], lit: str, amount_text: str, description: str) -> dict[str, str]:
        r = dict(parent)
        self._clear(r, "discount_", "pricing_", "reservation_", "savings_plan_",
                    "line_item_normalized_", "line_item_normalization_")
        r.update({
            "identity_line_item_id": self._id(),
            "line_item_line_item_type": lit,
            "line_item_usage_amount": self.num(Decimal(0)),
            "line_item_unblended_rate": "",
            "line_item_blended_rate": "",
            "line_item_unblended_cost": amount_text,
            "line_item_blended_cost": amount_text,
            "line_item_net_unblended_cost": self.num(Decimal(0)),
            "line_item_line_item_description": description,
            "pricing_currency": "USD",
            "discount": "{}",
        })
        return r

    def complete(self, base: list[dict[str, str]]) -> list[dict[str, str]]:
        num, rng = self.num, self.rng
        payer = _ACCOUNTS[0]
        # 1. Savings Plans coverage (+ negations), topped up to two rows per plan
        for r in base:
            if r["line_item_line_item_type"] == "SavingsPlanCoveredUsage":
                self._cover(r, self._sp_for(r))
        for sp in self.sps:
            while sp["rows"] < 2:
                day = rng.randrange(sp["first_day"], self.days)
                r = self._usage("ec2", day, region=sp["region"] or None,
                                itype="m5.large" if sp["family"] else None, amount=Decimal(rng.randrange(4, 25)))
                self.new.append(r)
                self._cover(r, sp)
        self._sp_fees()
        # 2. Reserved Instances: P (bought now), the basic RIFee rows' RIs, then what usage needs
        ri_p = self._new_ri("us-east-1", "m5.large", _ACCOUNTS[1][0], "Partial Upfront", "1yr", in_period=True)
        fee_rows = []
        for r in base:
            if r["line_item_line_item_type"] == "RIFee":
                arn = r["reservation_reservation_a_r_n"]
                region, acct_id = arn.split(":")[3], arn.split(":")[4]
                itype = r["line_item_usage_type"].split("HeavyUsage:")[1]
                fee_rows.append((r, self._new_ri(region, itype, acct_id, "No Upfront", "3yr", False, arn=arn)))
        for r in base:
            if r["line_item_line_item_type"] == "DiscountedUsage":
                self._discount_usage(r, self._ri_for(r))
        while ri_p["rows"] < 2:
            r = self._usage("ec2", rng.randrange(self.days), region="us-east-1", itype="m5.large",
                            amount=Decimal(rng.randrange(6, 25)))
            self.new.append(r)
            self._discount_usage(r, ri_p)
        if not any(ri["payment"] == "No Upfront" and ri["rows"] for ri in self.ris):
            ri = self._new_ri("eu-west-1", "t3.micro", _ACCOUNTS[2][0], "No Upfront", "1yr", False)
            r = self._usage("ec2", rng.randrange(self.days), region="eu-west-1", itype="t3.micro",
                            acct=_ACCOUNTS[2], amount=Decimal(rng.randrange(6, 25)))
            self.new.append(r)
            self._discount_usage(r, ri)
        with_fee = {id(ri) for _, ri in fee_rows}
        for r, ri in fee_rows:
            self._ri_fee(r, ri)
        for ri in self.ris:
            if id(ri) not in with_fee:
                r = self._row("RIFee", next(a for a in _ACCOUNTS if a[0] == ri["acct"]), self.t0, self.t_end,
                              "AmazonEC2", "Amazon Elastic Compute Cloud", ri["region"])
                self._ri_fee(r, ri)
                self.new.append(r)
            if ri["in_period"] and ri["upfront_hourly"] > 0:
                self.new.append(self._ri_purchase(ri))
        # 3. Discounts: an EdpDiscount line per discounted Usage line; data transfer made free
        usage = [r for r in base if r["line_item_line_item_type"] == "Usage"]
        if not any(r.get("discount_total_discount") for r in usage):  # few rows: none drew one
            r = self._usage("s3", rng.randrange(self.days), amount=Decimal(rng.randrange(10, 500)))
            disc = -_q10(Decimal(r["line_item_unblended_cost"]) * Decimal("0.03"))
            r.update({"discount": json.dumps({"edp_discount": float(disc)}, separators=(",", ":")),
                      "discount_total_discount": num(disc), "discount_bundled_discount": num(Decimal(0)),
                      "line_item_net_unblended_cost": num(Decimal(r["line_item_unblended_cost"]) + disc)})
            self.new.append(r)
            usage.append(r)
        for r in usage:
            if r.get("discount_total_discount"):
                self.new.append(self._discount_line(r, "EdpDiscount", r["discount_total_discount"],
                                                    "Enterprise Program Discount"))
        free = [r for r in usage if "DataTransfer-Out" in r.get("line_item_usage_type", "")
                and not r.get("discount_total_discount") and Decimal(r["line_item_unblended_cost"]) > 0][:2]
        if not free:
            free = [self._usage("dto", rng.randrange(self.days))]
            self.new.extend(free)
        for r in free:
            b = -Decimal(r["line_item_unblended_cost"])
            r.update({"discount": json.dumps({"bundled_discount": float(b)}, separators=(",", ":")),
                      "discount_bundled_discount": num(b), "discount_total_discount": num(b),
                      "line_item_net_unblended_cost": num(Decimal(0))})
            self.new.append(self._discount_line(
                r, "BundledDiscount", num(b), "Bundled discount: data transfer out included with AWS Network Firewall"))
        # 4. A refund of a usage line of the period
        parent = next((r for r in usage if not r.get("discount_total_discount")
                       and r["line_item_product_code"] in ("AmazonEC2", "AmazonS3")
                       and Decimal(r["line_item_unblended_cost"]) > Decimal("0.01")), None)
        if parent is None:
            parent = self._usage("ec2", rng.randrange(self.days), amount=Decimal(rng.randrange(2, 25)))
            self.new.append(parent)
        refund = self._discount_line(parent, "Refund", num(-Decimal(parent["line_item_unblended_cost"])),
                                     f"Refund for usage charges, support case {rng.randrange(10**9, 10**10)}")
        refund.update({"bill_bill_type": "Refund", "line_item_net_unblended_cost": ""})
        self.new.append(refund)
        # 5. Tax and Credit (when the basic rows happen to have none)
        lits = {r["line_item_line_item_type"] for r in base}
        if "Tax" not in lits:
            r = self._row("Tax", payer, self.t0, self.t_end, "AmazonEC2", "Amazon Elastic Compute Cloud")
            r.update({"line_item_usage_amount": num(Decimal(1)), "line_item_tax_type": "Sales Tax",
                      "line_item_unblended_cost": num(Decimal("1.27")), "line_item_blended_cost": num(Decimal("1.27")),
                      "line_item_line_item_description": "Tax for product code AmazonEC2"})
            self.new.append(r)
        if "Credit" not in lits:
            r = self._usage("ec2", 0)
            r = self._discount_line(r, "Credit", num(Decimal("-2.5")), "AWS Activate Credits, Promotional Credit")
            r["line_item_net_unblended_cost"] = ""
            self.new.append(r)
        # 6. AWS Marketplace, a free line and a tiny one
        seller, product = _MARKETPLACE
        code = _rand_alnum(rng, 25)
        for _ in range(1 + (len(base) >= 200)):
            us = self.t0 + timedelta(days=rng.randrange(self.days))
            acct = rng.choice(_ACCOUNTS[1:])
            r = self._row("Usage", acct, us, us + timedelta(days=1), code, product, "us-east-1")
            rate, amount = Decimal("0.342"), Decimal(rng.randrange(1, 25))
            r.update({
                "bill_billing_entity": "AWS Marketplace",
                "line_item_legal_entity": seller,
                "line_item_usage_type": "USE1-MP:SoftwareUsageHours",
                "line_item_usage_amount": num(amount),
                "line_item_unblended_rate": _plain_text(rate),
                "line_item_blended_rate": _plain_text(rate),
                "line_item_unblended_cost": num(amount * rate),
                "line_item_blended_cost": num(amount * rate),
                "line_item_line_item_description": f"{product} - ${_plain_text(rate)} per hour of software usage",
                "pricing_term": "OnDemand", "pricing_unit": "Hrs",
                "pricing_public_on_demand_rate": _plain_text(rate),
                "pricing_public_on_demand_cost": num(amount * rate),
                "product_servicecode": code, "product_region_code": "us-east-1",
                "product_sku": _rand_b32(rng, 16).upper(),
            })
            self.new.append(r)
        r = self._usage("dto", rng.randrange(self.days), rate=Decimal(0))
        r.update({"line_item_usage_type": r["line_item_usage_type"].replace("-Out-", "-In-"),
                  "product_usagetype": r["product_usagetype"].replace("-Out-", "-In-"),
                  "product_to_location": r["product_from_location"], "product_to_location_type": "AWS Region",
                  "product_from_location": "External", "product_from_location_type": "Other",
                  "line_item_line_item_description": "$0.00 per GB - data transfer in from the Internet"})
        self.new.append(r)
        self.new.append(self._usage("ebs", rng.randrange(self.days), amount=Decimal("0.0000002325"),
                                    rate=Decimal("0.08")))  # 0.0000002325 GB-Mo x 0.08 = 0.0000000186
        out = base + self.new
        rng.shuffle(out)
        return out


def _v2_arrow_type(data_type: str):
    import pyarrow as pa

    return {
        "string": pa.string(),
        "double": pa.float64(),
        "timestamp": pa.timestamp("ms", tz="UTC"),
        "map<string,string>": pa.map_(pa.string(), pa.string()),
        "map<string,double>": pa.map_(pa.string(), pa.float64()),
    }[data_type.replace(" ", "")]


def _v2_arrow_value(text: str, data_type: str):
    dt = data_type.replace(" ", "")
    if dt == "string":
        return text
    if text == "":
        return None
    if dt == "double":
        return float(text)
    if dt == "timestamp":
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    if dt.startswith("map"):
        return list(json.loads(text).items())
    raise ValueError(data_type)


def build_v2(
    root: str | os.PathLike,
    prefix: str = "cur2",
    export: str = "demo-cur2",
    period: str = "2024-01",
    execution_id: str | None = None,
    files: int = 2,
    rows: int = 500,
    subfolder: bool = True,
    fmt: str = "csv.gz",
    seed: int = 0,
    *,
    bucket: str = DEFAULT_BUCKET,
    number_style: str = "java",
    delivered_at: datetime | None = None,
    charges: str = "basic",
) -> V2Delivery:
    """A generated CUR 2.0 export of one billing period, all columns of cur2_columns.csv.

    - Layout: ``<prefix>/<export>/data/BILLING_PERIOD=YYYY-MM/[<stamp>-<executionId>/]<export>-00001.csv.gz``
      (``subfolder=False``: no execution folder, as with "overwrite") and the manifest
      ``<prefix>/<export>/metadata/BILLING_PERIOD=YYYY-MM/<export>-Manifest.json``, written
      after the data (it is the "ready" marker). ``<stamp>`` is ``delivered_at`` as
      ``YYYYMMDDTHHMMSSZ`` (default: 06:00 UTC on the 2nd of the following month).
    - Manifest: ``executionId``, ``dataFiles`` (``s3://<bucket>/<key>``), ``columns``
      ``[{name, type}]`` with types ``string/double/timestamp/map``, ``billingPeriod``
      ``{start, end}`` as ``2024-01-01T00:00:00.000Z`` (ISO; the v1 compact form is
      ``20240101T000000.000Z``: parse both), plus ``exportArn`` (an extra key to ignore).
    - Data: ``rows`` deterministic rows from ``seed`` (same arguments, same bytes): EC2, EBS,
      data transfer, S3 storage and requests, Lambda, RDS, CloudWatch over 3 regions and 4
      accounts; Usage/Tax/Credit/DiscountedUsage/SavingsPlanCoveredUsage/RIFee lines;
      costs rounded to 10 decimals, some tiny (``0.0000000186``), negatives for credits;
      many empty numerics (split-cost columns are always empty).
    - ``fmt="csv.gz"``: doubles as text, ``number_style="java"`` (default) like AWS's
      writers and the real v1 sample (``1.86E-8``, ``0.0051142167``, ``1.0``) or
      ``"plain"`` (``0.0000000186``); maps as JSON object text, some ``{}`` and some
      empty; timestamps ``2024-01-01T00:00:00.000Z``.
      ``fmt="parquet"``: ``<export>-00001.snappy.parquet`` with string, float64,
      timestamp[ms, UTC], map<string,string> and map<string,double> (``discount``);
      empty doubles/timestamps/maps are null, empty strings stay "".
    - ``unblended_cost_sum`` is the Decimal sum of the generated texts; each has at most 15
      significant digits, so ``Decimal(repr(float(text)))`` is the same number and the
      sum holds for the Parquet form too.
    - ``charges="basic"`` (default) is the mix above, byte for byte what this builder always
      wrote. ``charges="full"`` draws the same ``rows`` basic rows, then completes them into a
      consistent bill with every line item type of ``V2_LINE_ITEM_TYPES_FULL`` (see
      ``_V2FullBill``): SavingsPlanCoveredUsage/SavingsPlanNegation pairs,
      SavingsPlanRecurringFee (one per plan per day), a SavingsPlanUpfrontFee, DiscountedUsage,
      RIFee, an RI upfront "Fee", Credit, Refund, Tax, BundledDiscount, EdpDiscount, an AWS
      Marketplace line, a zero-cost line and a 0.0000000186 line. ``row_count`` is then
      larger than ``rows`` (about +30% at rows=500); ``line_type_counts`` and
      ``line_type_totals`` read counts and exact sums back from the files.
    """
    if fmt not in ("csv.gz", "parquet"):
        raise ValueError(f"fmt must be 'csv.gz' or 'parquet', got {fmt!r}")
    if charges not in ("basic", "full"):
        raise ValueError(f"charges must be 'basic' or 'full', got {charges!r}")
    if number_style not in ("java", "plain"):
        raise ValueError(f"number_style must be 'java' or 'plain', got {number_style!r}")
    root = Path(root)
    start, end = period_bounds(period)
    execution_id = execution_id or str(uuid.uuid4())
    delivered_at = delivered_at or datetime(end.year, end.month, 2, 6, 0, 0, tzinfo=timezone.utc)

    cols = cur2_columns()
    names = [n for n, _ in cols]
    num = java_double_text if number_style == "java" else _plain_text
    gen = _gen_v2_rows(period, rows, seed, num, charges)
    unknown = {k for r in gen for k in r} - set(names)
    if unknown:  # a generator bug, not a data condition
        raise AssertionError(f"generated columns missing from cur2_columns.csv: {sorted(unknown)}")
    table = [[r.get(n, "") for n in names] for r in gen]
    cost_i = names.index(V2_COST_COLUMN)
    cost_sum = decimal_sum(row[cost_i] for row in table)

    part = f"BILLING_PERIOD={period}"
    data_prefix = _join(prefix, export, "data", part)
    if subfolder:
        data_prefix = _join(data_prefix, f"{delivered_at:%Y%m%dT%H%M%SZ}-{execution_id}")
    data_keys, counts = [], []
    for n, (a, b) in enumerate(_split(len(table), files), start=1):
        chunk = table[a:b]
        if fmt == "csv.gz":
            key = _join(data_prefix, f"{export}-{n:05d}.csv.gz")
            _write_bytes(root, key, _gzip(_csv_bytes(names, chunk)))
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            key = _join(data_prefix, f"{export}-{n:05d}.snappy.parquet")
            arrays = [pa.array([_v2_arrow_value(row[j], t) for row in chunk], _v2_arrow_type(t))
                      for j, (_, t) in enumerate(cols)]
            path = root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.Table.from_arrays(arrays, names=names), path, compression="snappy")
        data_keys.append(key)
        counts.append(b - a)

    manifest_key = _join(prefix, export, "metadata", part, f"{export}-Manifest.json")
    uris = [f"s3://{bucket}/{k}" for k in data_keys]
    columns = [(n, _manifest_type_v2(t)) for n, t in cols]
    _write_json(root, manifest_key, {
        "executionId": execution_id,
        "exportArn": f"arn:aws:bcm-data-exports:us-east-1:{_ACCOUNTS[0][0]}:export/{export}-"
                     f"{uuid.uuid5(uuid.NAMESPACE_URL, export)}",
        "billingPeriod": {"start": f"{start:%Y-%m-%d}T00:00:00.000Z", "end": f"{end:%Y-%m-%d}T00:00:00.000Z"},
        "columns": [{"name": n, "type": t} for n, t in columns],
        "dataFiles": uris,
    })
    return V2Delivery(
        root=root, bucket=bucket, prefix=prefix, export=export, period=period,
        execution_id=execution_id, fmt=fmt, data_prefix=data_prefix,
        data_keys=tuple(data_keys), data_uris=tuple(uris), manifest_key=manifest_key,
        columns=tuple(columns), rows_per_file=tuple(counts), row_count=len(table),
        unblended_cost_sum=cost_sum, charges=charges,
    )


# ======================================================================================
# AWS Data Exports, FOCUS 1.2 with AWS columns (generated)
# ======================================================================================
# The 60 columns of "FOCUS 1.2 with AWS columns" (table FOCUS_1_2_AWS) in the order of AWS's
# own query (aws-cid-data-exports/data-exports-aggregation.yaml, Mappings.DataExports.FOCUS)
# with the Athena types of its FOCUSTable Glue table. tests/test_focus_fixtures.py checks this
# list against that file.
FOCUS_COLUMNS: tuple[tuple[str, str], ...] = (
    ("AvailabilityZone", "string"), ("BilledCost", "double"), ("BillingAccountId", "string"),
    ("BillingAccountName", "string"), ("BillingAccountType", "string"), ("BillingCurrency", "string"),
    ("BillingPeriodEnd", "timestamp"), ("BillingPeriodStart", "timestamp"),
    ("CapacityReservationId", "string"), ("CapacityReservationStatus", "string"),
    ("ChargeCategory", "string"), ("ChargeClass", "string"), ("ChargeDescription", "string"),
    ("ChargeFrequency", "string"), ("ChargePeriodEnd", "timestamp"), ("ChargePeriodStart", "timestamp"),
    ("CommitmentDiscountCategory", "string"), ("CommitmentDiscountId", "string"),
    ("CommitmentDiscountName", "string"), ("CommitmentDiscountQuantity", "double"),
    ("CommitmentDiscountType", "string"), ("CommitmentDiscountUnit", "string"),
    ("CommitmentDiscountStatus", "string"), ("ConsumedQuantity", "double"), ("ConsumedUnit", "string"),
    ("ContractedCost", "double"), ("ContractedUnitPrice", "double"), ("EffectiveCost", "double"),
    ("InvoiceId", "string"), ("InvoiceIssuerName", "string"), ("ListCost", "double"),
    ("ListUnitPrice", "double"), ("PricingCategory", "string"), ("PricingCurrency", "string"),
    ("PricingCurrencyContractedUnitPrice", "double"), ("PricingCurrencyEffectiveCost", "double"),
    ("PricingCurrencyListUnitPrice", "double"), ("PricingQuantity", "double"), ("PricingUnit", "string"),
    ("ProviderName", "string"), ("PublisherName", "string"), ("RegionId", "string"),
    ("RegionName", "string"), ("ResourceId", "string"), ("ResourceName", "string"),
    ("ResourceType", "string"), ("ServiceCategory", "string"), ("ServiceName", "string"),
    ("ServiceSubcategory", "string"), ("SkuId", "string"), ("SkuMeter", "string"),
    ("SkuPriceId", "string"), ("SkuPriceDetails", "map<string,string>"), ("SubAccountId", "string"),
    ("SubAccountName", "string"), ("SubAccountType", "string"), ("Tags", "map<string,string>"),
    ("x_Discounts", "map<string,double>"), ("x_Operation", "string"), ("x_ServiceCode", "string"),
)
FOCUS_COST_COLUMNS = ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost")
FOCUS_CHARGE_CATEGORIES = ("Usage", "Purchase", "Tax", "Credit", "Adjustment")

# FOCUS 1.2 ServiceSubcategory allowed values per ServiceCategory (FOCUS_Spec v1.2,
# specification/columns/servicesubcategory.md), "Other (<category>)" included.
FOCUS_SUBCATEGORIES: dict[str, tuple[str, ...]] = {
    "AI and Machine Learning": ("AI Platforms", "Bots", "Generative AI", "Machine Learning",
                                "Natural Language Processing"),
    "Analytics": ("Analytics Platforms", "Business Intelligence", "Data Processing", "Search",
                  "Streaming Analytics"),
    "Business Applications": ("Productivity and Collaboration",),
    "Compute": ("Containers", "End User Computing", "Quantum Compute", "Serverless Compute", "Virtual Machines"),
    "Databases": ("Caching", "Data Warehouses", "Ledger Databases", "NoSQL Databases", "Relational Databases",
                  "Time Series Databases"),
    "Developer Tools": ("Developer Platforms", "Continuous Integration and Deployment",
                        "Development Environments", "Source Code Management", "Quality Assurance"),
    "Identity": ("Identity and Access Management",),
    "Integration": ("API Management", "Messaging", "Workflow Orchestration"),
    "Internet of Things": ("IoT Analytics", "IoT Platforms"),
    "Management and Governance": ("Architecture", "Compliance", "Cost Management", "Data Governance",
                                  "Disaster Recovery", "Endpoint Management", "Observability", "Support"),
    "Media": ("Content Creation", "Gaming", "Media Streaming", "Mixed Reality"),
    "Migration": ("Data Migration", "Resource Migration"),
    "Mobile": (),
    "Multicloud": ("Multicloud Integration",),
    "Networking": ("Application Networking", "Content Delivery", "Network Connectivity",
                   "Network Infrastructure", "Network Routing", "Network Security"),
    "Security": ("Secret Management", "Security Posture Management", "Threat Detection and Response"),
    "Storage": ("Backup Storage", "Block Storage", "File Storage", "Object Storage", "Storage Platforms"),
    "Web": ("Application Platforms",),
    "Other": (),
}
FOCUS_SUBCATEGORIES = {k: v + (f"Other ({k})",) for k, v in FOCUS_SUBCATEGORIES.items()}

# basic service key -> (ServiceCategory, ServiceSubcategory, ResourceType, FOCUS unit). FOCUS 1.2:
# a ServiceName MUST have one ServiceCategory (and SHOULD have one subcategory), so EBS volumes
# and data transfer, billed under "Amazon Elastic Compute Cloud", share EC2's.
_FOCUS_SERVICE = {
    "ec2": ("Compute", "Virtual Machines", "instance", "Hours"),
    "ebs": ("Compute", "Virtual Machines", "volume", "GB-Months"),
    "dto": ("Compute", "Virtual Machines", "", "GB"),
    "s3": ("Storage", "Object Storage", "bucket", "GB-Months"),
    "s3req": ("Storage", "Object Storage", "bucket", "Requests"),
    "lambda": ("Compute", "Serverless Compute", "function", "GB-Seconds"),
    "lambdareq": ("Compute", "Serverless Compute", "function", "Requests"),
    "rds": ("Databases", "Relational Databases", "db", "Hours"),
    "cw": ("Management and Governance", "Observability", "", "Metrics"),
}
_FOCUS_SP_SERVICE = ("Savings Plans for AWS Compute usage", "ComputeSavingsPlans")


@dataclass(frozen=True)
class FocusDelivery:
    """One execution of an AWS Data Exports FOCUS 1.2 export, one billing period."""

    root: Path
    bucket: str
    prefix: str
    export: str
    period: str
    execution_id: str
    fmt: str  # "csv.gz" | "parquet"
    data_prefix: str
    data_keys: tuple[str, ...]
    data_uris: tuple[str, ...]  # = the manifest's dataFiles
    manifest_key: str
    columns: tuple[tuple[str, str], ...]  # (name, manifest type) in file order
    rows_per_file: tuple[int, ...]
    row_count: int
    billed_cost_sum: Decimal  # exact sums of the generated texts
    effective_cost_sum: Decimal
    list_cost_sum: Decimal
    contracted_cost_sum: Decimal

    @property
    def periods(self) -> tuple[str, ...]:
        return (self.period,)

    @property
    def manifest_keys(self) -> tuple[str, ...]:
        return (self.manifest_key,)

    @property
    def keys(self) -> tuple[str, ...]:
        return self.data_keys + self.manifest_keys

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(n for n, _ in self.columns)


def _decimals(x: Decimal) -> int:
    return max(0, -x.normalize().as_tuple().exponent)


def _sku(*parts: str) -> str:
    """A stable 16-character SKU id for a product (same product, same SKU, every period)."""
    return base64.b32encode(hashlib.sha256("/".join(parts).encode()).digest()).decode()[:16]


def _ts_focus(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


class _FocusGen:
    """Rows of a FOCUS 1.2 AWS export, one billing period, daily charge periods.

    Every cost obeys the FOCUS 1.2 rules exactly (Decimal arithmetic, <= 10 decimals):
    ListCost = ListUnitPrice x PricingQuantity and ContractedCost = ContractedUnitPrice x
    PricingQuantity wherever those are not null; Tax/Credit/Adjustment rows have List =
    Contracted = Effective = Billed and null prices; usage covered by a commitment has
    BilledCost 0, PricingCategory Committed, CommitmentDiscountStatus Used; each commitment
    has Purchase rows (EffectiveCost 0) and Unused rows, and for the recurring ones
    (SP "A", No Upfront RIs) the period's Usage EffectiveCost (Used + Unused) equals the
    Purchase BilledCost, as FOCUS requires per CommitmentDiscountId.
    """

    def __init__(self, period: str, seed: int, num: Callable[[Decimal], str]):
        self.rng = random.Random(f"focus/{period}/{seed}")
        self.num = num
        start, end = period_bounds(period)
        self.t0 = datetime(start.year, start.month, start.day, tzinfo=timezone.utc)
        self.t_end = datetime(end.year, end.month, end.day, tzinfo=timezone.utc)
        self.days = (end - start).days
        self.hours = self.days * 24
        self.rows: list[dict[str, str]] = []
        payer = _ACCOUNTS[0][0]
        b_day = min(9, self.days - 1)
        sp_a_start = datetime(start.year - (start.month <= 4), (start.month - 5) % 12 + 1, 1, tzinfo=timezone.utc)
        self.sps = [
            dict(key="A", payment="No Upfront", factor=Decimal("0.72"), first_day=0, start=sp_a_start,
                 region="", family="", meter="ComputeSP:1yrNoUpfront", label="Compute"),
            dict(key="B", payment="All Upfront", factor=Decimal("0.6"), first_day=b_day,
                 start=self.t0 + timedelta(days=b_day), region="us-east-1", family="m5",
                 meter="EC2SP:m5.1yrAllUpfront", label="EC2 Instance"),
        ]
        for sp in self.sps:
            sp["arn"] = f"arn:aws:savingsplans::{payer}:savingsplan/{self._uuid()}"
            sp["used"], sp["n"] = {}, 0
        self.ris: list[dict[str, Any]] = []
        self.tags_rng = random.Random(f"focus-tags/{period}/{seed}")

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    # ---------------------------------------------------------------- row skeletons
    def _base(self, category: str, acct: tuple[str, str], cs: datetime, ce: datetime,
              frequency: str, description: str) -> dict[str, str]:
        payer_id, payer_name = _ACCOUNTS[0]
        r = {n: "" for n, _ in FOCUS_COLUMNS}
        r.update({
            "BillingAccountId": payer_id, "BillingAccountName": payer_name,
            "BillingAccountType": "Billing Account", "BillingCurrency": "USD",
            "BillingPeriodStart": _ts_focus(self.t0), "BillingPeriodEnd": _ts_focus(self.t_end),
            "ChargeCategory": category, "ChargeFrequency": frequency, "ChargeDescription": description,
            "ChargePeriodStart": _ts_focus(cs), "ChargePeriodEnd": _ts_focus(ce),
            "InvoiceIssuerName": "Amazon Web Services, Inc.", "PricingCurrency": "USD",
            "ProviderName": "AWS", "PublisherName": "Amazon Web Services, Inc.",
            "SubAccountId": acct[0], "SubAccountName": acct[1], "SubAccountType": "Linked Account",
            "Tags": _json_map(None, self.tags_rng), "x_Discounts": _json_map(None, self.tags_rng),
        })
        return r

    def _service(self, r: dict[str, str], key: str, region: str, meter: str, operation: str,
                 itype: str | None = None, resource: bool = True) -> None:
        svc = next(s for s in _SERVICES if s[0] == key)
        cat, sub, rtype, _ = _FOCUS_SERVICE[key]
        location = next(x[2] for x in _REGIONS if x[0] == region)
        sku = _sku(key, region, meter)
        details: dict[str, str] | None = None
        if key == "ec2" and itype:
            _, _, vcpu, mem = next(i for i in _INSTANCES if i[0] == itype)
            details = {"CoreCount": vcpu, "InstanceType": itype, "MemorySize": mem.split()[0],
                       "OperatingSystem": "Linux", "x_Tenancy": "Shared"}
        elif key == "ebs":
            details = {"DiskType": "SSD", "x_VolumeType": "gp3"}
        elif key == "s3":
            details = {"StorageClass": "Standard"}
        r.update({
            "ServiceName": svc[2], "ServiceCategory": cat, "ServiceSubcategory": sub,
            "x_ServiceCode": svc[1], "x_Operation": operation, "SkuMeter": meter, "SkuId": sku,
            "SkuPriceId": f"{sku}.JRTCKXETXF.6YS6EN2CT7",
            "SkuPriceDetails": json.dumps(details, separators=(",", ":")) if details else "",
            "RegionId": region, "RegionName": location,
        })
        if resource:
            rng = self.rng
            acct = r["SubAccountId"]
            rid = {"ec2": f"i-0{_rand_hex(rng, 16)}", "ebs": f"vol-0{_rand_hex(rng, 16)}",
                   "s3": f"acme-{rng.choice(_TEAMS)}-bucket", "s3req": f"acme-{rng.choice(_TEAMS)}-bucket",
                   "lambda": f"arn:aws:lambda:{region}:{acct}:function:{rng.choice(_TEAMS)}-handler",
                   "lambdareq": f"arn:aws:lambda:{region}:{acct}:function:{rng.choice(_TEAMS)}-handler",
                   "rds": f"arn:aws:rds:{region}:{acct}:db:{rng.choice(_TEAMS)}-db"}.get(key, "")
            r["ResourceId"] = rid
            r["ResourceType"] = rtype if rid else ""
            if key in ("ec2", "ebs", "rds"):
                r["AvailabilityZone"] = f"{region}{rng.choice('abc')}"
            if rid and self.tags_rng.random() < 0.6:
                tags = {"team": self.tags_rng.choice(_TEAMS)}
                if self.tags_rng.random() < 0.7:
                    tags["environment"] = self.tags_rng.choice(_ENVS)
                r["Tags"] = json.dumps(tags, separators=(",", ":"))
                if key == "ec2" and self.tags_rng.random() < 0.5:
                    r["ResourceName"] = f"{tags['team']}-{_rand_hex(self.tags_rng, 4)}"

    def _price(self, r: dict[str, str], q: Decimal, list_p: Decimal, unit: str, *,
               contracted_p: Decimal | None = None, billed: Decimal | None = None,
               effective: Decimal | None = None, consumed: bool = True) -> None:
        num = self.num
        contracted_p = list_p if contracted_p is None else contracted_p
        contracted = q * contracted_p
        billed = contracted if billed is None else billed
        effective = billed if effective is None else effective
        r.update({
            "PricingQuantity": num(q), "PricingUnit": unit,
            "ListUnitPrice": num(list_p), "ContractedUnitPrice": num(contracted_p),
            "PricingCurrencyListUnitPrice": num(list_p), "PricingCurrencyContractedUnitPrice": num(contracted_p),
            "ListCost": num(q * list_p), "ContractedCost": num(contracted),
            "BilledCost": num(billed), "EffectiveCost": num(effective),
            "PricingCurrencyEffectiveCost": num(effective),
        })
        if consumed and r["ChargeCategory"] == "Usage":
            r["ConsumedQuantity"], r["ConsumedUnit"] = num(q), unit

    def _flat(self, r: dict[str, str], amount: Decimal) -> None:
        """Tax, Credit, Adjustment: no prices, every cost = the billed amount."""
        a = self.num(amount)
        r.update({"BilledCost": a, "EffectiveCost": a, "ListCost": a, "ContractedCost": a,
                  "PricingCurrencyEffectiveCost": a})

    def _commit(self, r: dict[str, str], cid: str, category: str, ctype: str, status: str,
                quantity: Decimal | None, unit: str) -> None:
        r.update({"CommitmentDiscountId": cid, "CommitmentDiscountCategory": category,
                  "CommitmentDiscountType": ctype, "CommitmentDiscountStatus": status,
                  "CommitmentDiscountQuantity": self.num(quantity) if quantity is not None else "",
                  "CommitmentDiscountUnit": unit if quantity is not None else ""})

    # ---------------------------------------------------------------- usage lines
    def _usage(self, key: str, day: int, region: str | None = None, itype: str | None = None,
               acct: tuple[str, str] | None = None, q: Decimal | None = None) -> tuple[dict[str, str], Decimal, Decimal]:
        """A Standard usage row of a basic service: (row, quantity, list unit price)."""
        rng = self.rng
        svc = next(s for s in _SERVICES if s[0] == key)
        _, _, pname, _, utype, op, unit, rate_s, (lo, hi), _ = svc
        region = region or rng.choices([x[0] for x in _REGIONS], [x[3] for x in _REGIONS])[0]
        _, rprefix, location, _ = next(x for x in _REGIONS if x[0] == region)
        acct = acct or rng.choice(_ACCOUNTS)
        if key == "ec2":
            itype = itype or rng.choice(_INSTANCES)[0]
            rate_s = next(i for i in _INSTANCES if i[0] == itype)[1]
            utype = utype.format(itype=itype)
        p = Decimal(rate_s)
        if q is None:
            places = 0 if unit == "Requests" else max(0, min(4, 10 - _decimals(p)))
            q = _q(Decimal(str(rng.uniform(lo, hi))), places) or Decimal(1)
        cs = self.t0 + timedelta(days=day)
        desc = (f"${_plain_text(p)} per On Demand Linux {itype} Instance Hour" if key == "ec2"
                else f"${_plain_text(p)} per {unit} - {pname} ({location})")
        r = self._base("Usage", acct, cs, cs + timedelta(days=1), "Usage-Based", desc)
        self._service(r, key, region, f"{rprefix}{utype}", op, itype)
        r["PricingCategory"] = "Standard"
        self._price(r, q, p, _FOCUS_SERVICE[key][3])
        return r, q, p

    def _sp_for(self, r: Mapping[str, str], day: int) -> dict[str, Any]:
        b = self.sps[1]
        itype = json.loads(r["SkuPriceDetails"] or "{}").get("InstanceType", "")
        if day >= b["first_day"] and r["RegionId"] == b["region"] and itype.startswith(b["family"] + "."):
            return b
        return self.sps[0]

    def _cover_sp(self, r: dict[str, str], q: Decimal, p: Decimal, sp: dict[str, Any], day: int) -> None:
        eff = q * _q(p * sp["factor"], 6)
        r["PricingCategory"] = "Committed"
        self._price(r, q, p, "Hours", billed=Decimal(0), effective=eff)
        self._commit(r, sp["arn"], "Spend", "Savings Plan", "Used", eff, "USD")
        sp["used"][day] = sp["used"].get(day, Decimal(0)) + eff
        sp["n"] += 1

    def _new_ri(self, region: str, itype: str, payment: str, in_period: bool) -> dict[str, Any]:
        p = Decimal(next(i for i in _INSTANCES if i[0] == itype)[1])
        up, rec = {"No Upfront": (Decimal(0), _q(p * Decimal("0.62"), 6)),
                   "All Upfront": (_q(p * Decimal("0.57"), 6), Decimal(0))}[payment]
        acct = self.rng.choice(_ACCOUNTS[1:])
        ri = dict(region=region, itype=itype, payment=payment, in_period=in_period, up=up, rec=rec,
                  arn=f"arn:aws:ec2:{region}:{acct[0]}:reserved-instances/{self._uuid()}",
                  acct=acct, used=Decimal(0), n_rows=0)
        self.ris.append(ri)
        return ri

    def _cover_ri(self, r: dict[str, str], q: Decimal, p: Decimal, ri: dict[str, Any]) -> None:
        r["PricingCategory"] = "Committed"
        self._price(r, q, p, "Hours", billed=Decimal(0), effective=q * (ri["up"] + ri["rec"]))
        self._commit(r, ri["arn"], "Usage", "Reserved Instance", "Used", q, "Hours")
        ri["used"] += q
        ri["n_rows"] += 1

    # ---------------------------------------------------------------- commitments
    def _commitment_rows(self) -> None:
        payer = _ACCOUNTS[0]
        for sp in self.sps:
            peak = max(sp["used"].values(), default=Decimal(0))
            c = max(Decimal("0.050"), _ceil(peak / 24 * Decimal("1.25"), 3))
            words = f"1 year {sp['payment']} {sp['label']} Savings Plan"
            for d in range(sp["first_day"], self.days):
                cs = self.t0 + timedelta(days=d)
                total, used = c * 24, sp["used"].get(d, Decimal(0))
                if sp["payment"] == "No Upfront":
                    r = self._base("Purchase", payer, cs, cs + timedelta(days=1), "Recurring",
                                   f"{words}: hourly commitment of {_plain_text(c)} USD")
                    self._sp_service(r, sp)
                    r["PricingCategory"] = "Standard"
                    self._price(r, Decimal(24), c, "Hours", effective=Decimal(0))
                    self._commit(r, sp["arn"], "Spend", "Savings Plan", "", total, "USD")
                    self.rows.append(r)
                if total > used:
                    r = self._base("Usage", payer, cs, cs + timedelta(days=1), "Usage-Based",
                                   f"{words}: unused commitment")
                    self._sp_service(r, sp)
                    r["PricingCategory"] = "Committed"
                    self._price(r, Decimal(0), c, "Hours", billed=Decimal(0), effective=total - used,
                                consumed=False)
                    self._commit(r, sp["arn"], "Spend", "Savings Plan", "Unused", total - used, "USD")
                    self.rows.append(r)
            if sp["payment"] == "All Upfront":
                cs = sp["start"]
                upfront = c * 8760
                r = self._base("Purchase", payer, cs, cs + timedelta(days=1), "One-Time", f"{words}: upfront fee")
                self._sp_service(r, sp)
                r["PricingCategory"] = "Standard"
                self._price(r, Decimal(1), upfront, "Units", effective=Decimal(0))
                self._commit(r, sp["arn"], "Spend", "Savings Plan", "", upfront, "USD")
                self.rows.append(r)
        hours = Decimal(self.hours)
        for ri in self.ris:
            n = max(1, int(_ceil(ri["used"] / hours, 0)))
            total = hours * n
            unused = total - ri["used"]
            rprefix = next(x[1] for x in _REGIONS if x[0] == ri["region"])
            meter = f"{rprefix}HeavyUsage:{ri['itype']}"
            if ri["rec"] > 0:
                r = self._base("Purchase", ri["acct"], self.t0, self.t_end, "Recurring",
                               f"USD {_plain_text(ri['rec'])} hourly fee per Linux/UNIX (Amazon VPC), {ri['itype']} instance")
                self._service(r, "ec2", ri["region"], meter, "RunInstances", ri["itype"], resource=False)
                r["PricingCategory"] = "Standard"
                self._price(r, total, ri["rec"], "Hours", effective=Decimal(0))
                self._commit(r, ri["arn"], "Usage", "Reserved Instance", "", total, "Hours")
                self.rows.append(r)
            if ri["in_period"] and ri["up"] > 0:
                r = self._base("Purchase", ri["acct"], self.t0, self.t0 + timedelta(days=1), "One-Time",
                               f"Sign up charge for subscription: {self.rng.randrange(10**9, 10**10)}, "
                               f"planId: {self.rng.randrange(1000, 9999)}")
                self._service(r, "ec2", ri["region"], f"{_REGION_SHORT[ri['region']]}-HeavyUsage:{ri['itype']}",
                              "RunInstances", ri["itype"], resource=False)
                r["PricingCategory"] = "Standard"
                self._price(r, Decimal(8760 * n), ri["up"], "Hours", effective=Decimal(0))
                self._commit(r, ri["arn"], "Usage", "Reserved Instance", "", Decimal(8760 * n), "Hours")
                self.rows.append(r)
            if unused > 0:
                r = self._base("Usage", ri["acct"], self.t0, self.t_end, "Usage-Based",
                               f"Unused Reserved Instance hours, {ri['itype']} in {ri['region']}")
                self._service(r, "ec2", ri["region"], meter, "RunInstances", ri["itype"], resource=False)
                r["PricingCategory"] = "Committed"
                self._price(r, Decimal(0), ri["up"] + ri["rec"], "Hours", billed=Decimal(0),
                            effective=unused * (ri["up"] + ri["rec"]), consumed=False)
                self._commit(r, ri["arn"], "Usage", "Reserved Instance", "Unused", unused, "Hours")
                self.rows.append(r)

    def _sp_service(self, r: dict[str, str], sp: dict[str, Any]) -> None:
        name, code = _FOCUS_SP_SERVICE
        sku = _sku("sp", sp["meter"])
        r.update({"ServiceName": name, "ServiceCategory": "Management and Governance",
                  "ServiceSubcategory": "Cost Management", "x_ServiceCode": code, "SkuMeter": sp["meter"],
                  "SkuId": sku, "SkuPriceId": f"{sku}.{sp['key']}SP1Y", "ResourceId": sp["arn"],
                  "ResourceType": "savingsplan", "RegionId": sp["region"],
                  "RegionName": "US East (N. Virginia)" if sp["region"] else ""})

    # ---------------------------------------------------------------- the whole period
    def generate(self, n: int) -> list[dict[str, str]]:
        rng = self.rng
        weights = [s[-1] for s in _SERVICES]
        ri_b = self._new_ri("us-east-1", "m5.large", "All Upfront", in_period=True)
        for _ in range(n):
            key = rng.choices(_SERVICES, weights)[0][0]
            day = rng.randrange(self.days)
            kind = rng.choices(("Usage", "Tax", "Credit", "SP", "RI", "Spot"), (80, 4, 3, 5, 4, 4))[0]
            if key != "ec2" and kind in ("SP", "RI", "Spot"):
                kind = "Usage"
            r, q, p = self._usage(key, day)
            if kind == "Usage" and q * p > 0 and rng.random() < 0.2:
                d = -_q10(q * p * Decimal("0.03"))
                if d:
                    r["x_Discounts"] = json.dumps({"edp_discount": float(d)}, separators=(",", ":"))
                    self._price(r, q, p, _FOCUS_SERVICE[key][3], billed=q * p + d)
            elif kind == "Spot":
                spot = _q(p * Decimal(rng.choice(("0.3", "0.35", "0.42"))), 4)
                itype = json.loads(r["SkuPriceDetails"])["InstanceType"]
                meter = r["SkuMeter"].replace("BoxUsage", "SpotUsage")
                r.update({"PricingCategory": "Dynamic", "SkuMeter": meter, "SkuId": _sku("ec2", r["RegionId"], meter),
                          "ChargeDescription": f"${_plain_text(spot)} per Linux {itype} Spot Instance-hour"})
                r["SkuPriceId"] = f"{r['SkuId']}.SPOT"
                self._price(r, q, spot, "Hours")
            elif kind == "SP":
                self._cover_sp(r, q, p, self._sp_for(r, day), day)
            elif kind == "RI":
                itype = json.loads(r["SkuPriceDetails"])["InstanceType"]
                ri = next((x for x in self.ris if (x["region"], x["itype"]) == (r["RegionId"], itype)), None)
                ri = ri or self._new_ri(r["RegionId"], itype, "No Upfront", in_period=False)
                self._cover_ri(r, q, p, ri)
            elif kind == "Tax":
                r = self._tax(r)
            elif kind == "Credit":
                r = self._credit(r)
            self.rows.append(r)
        # top-ups: every kind of line at least once, whatever `n`
        for sp in self.sps:
            while sp["n"] < 2:
                day = rng.randrange(sp["first_day"], self.days)
                r, q, p = self._usage("ec2", day, region=sp["region"] or None,
                                      itype="m5.large" if sp["family"] else None, q=Decimal(rng.randrange(4, 25)))
                self._cover_sp(r, q, p, sp, day)
                self.rows.append(r)
        while ri_b["n_rows"] < 2:
            r, q, p = self._usage("ec2", rng.randrange(self.days), "us-east-1", "m5.large",
                                  q=Decimal(rng.randrange(6, 25)))
            self._cover_ri(r, q, p, ri_b)
            self.rows.append(r)
        if not any(ri["payment"] == "No Upfront" and ri["n_rows"] for ri in self.ris):
            ri = self._new_ri("eu-west-1", "t3.micro", "No Upfront", in_period=False)
            r, q, p = self._usage("ec2", rng.randrange(self.days), "eu-west-1", "t3.micro",
                                  q=Decimal(rng.randrange(6, 25)))
            self._cover_ri(r, q, p, ri)
            self.rows.append(r)
        cats = {r["ChargeCategory"] for r in self.rows}
        if "Tax" not in cats:
            self.rows.append(self._tax(self._usage("ec2", 0)[0]))
        if "Credit" not in cats:
            self.rows.append(self._credit(self._usage("ec2", 0)[0]))
        if not any(r["PricingCategory"] == "Dynamic" for r in self.rows):
            r, q, p = self._usage("ec2", rng.randrange(self.days), q=Decimal(rng.randrange(1, 25)))
            spot = _q(p * Decimal("0.35"), 4)
            r.update({"PricingCategory": "Dynamic", "SkuMeter": r["SkuMeter"].replace("BoxUsage", "SpotUsage")})
            self._price(r, q, spot, "Hours")
            self.rows.append(r)
        self._specials()
        self._commitment_rows()
        rng.shuffle(self.rows)
        return self.rows

    def _tax(self, src: Mapping[str, str]) -> dict[str, str]:
        code = src["x_ServiceCode"]
        r = self._base("Tax", (src["SubAccountId"], src["SubAccountName"]), self.t0, self.t_end, "One-Time",
                       f"Tax for product code {code}")
        r.update({k: src[k] for k in ("ServiceName", "ServiceCategory", "ServiceSubcategory", "x_ServiceCode")})
        self._flat(r, _q(Decimal(str(self.rng.uniform(0.05, 40))), 2) or Decimal("0.01"))
        return r

    def _credit(self, src: Mapping[str, str]) -> dict[str, str]:
        cs = datetime.strptime(src["ChargePeriodStart"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        r = self._base("Credit", (src["SubAccountId"], src["SubAccountName"]), cs, cs + timedelta(days=1),
                       "One-Time", "AWS Activate Credits, Promotional Credit")
        r.update({k: src[k] for k in ("ServiceName", "ServiceCategory", "ServiceSubcategory", "x_ServiceCode",
                                       "RegionId", "RegionName", "SkuId", "SkuMeter")})
        r["PricingCategory"] = "Other"
        self._flat(r, -(_q(Decimal(str(self.rng.uniform(0.5, 25))), 4) or Decimal("0.5")))
        return r

    def _specials(self) -> None:
        rng = self.rng
        # AWS Marketplace: a third-party publisher, billed (and invoiced) through AWS
        seller, product = _MARKETPLACE
        code = _rand_alnum(rng, 25)
        day = rng.randrange(self.days)
        acct = rng.choice(_ACCOUNTS[1:])
        cs = self.t0 + timedelta(days=day)
        r = self._base("Usage", acct, cs, cs + timedelta(days=1), "Usage-Based",
                       f"{product} - $0.342 per hour of software usage")
        sku = _sku("mp", code)
        r.update({"PublisherName": seller, "ServiceName": product, "ServiceCategory": "Other",
                  "ServiceSubcategory": "Other (Other)", "x_ServiceCode": code, "x_Operation": "",
                  "SkuMeter": "USE1-MP:SoftwareUsageHours", "SkuId": sku, "SkuPriceId": f"{sku}.MP",
                  "RegionId": "us-east-1", "RegionName": "US East (N. Virginia)", "PricingCategory": "Standard"})
        self._price(r, Decimal(rng.randrange(1, 25)), Decimal("0.342"), "Hours")
        self.rows.append(r)
        # a free line (data transfer in) and a tiny one (0.0000002325 GB-Mo x 0.08 = 0.0000000186)
        r, q, p = self._usage("dto", rng.randrange(self.days))
        r["SkuMeter"] = r["SkuMeter"].replace("-Out-", "-In-")
        r["ChargeDescription"] = "$0.00 per GB - data transfer in from the Internet"
        self._price(r, q, Decimal(0), "GB")
        self.rows.append(r)
        r, q, p = self._usage("ebs", rng.randrange(self.days), q=Decimal("0.0000002325"))
        self.rows.append(r)
        # a correction of a previous billing period
        src = self._usage("ec2", 0)[0]
        r = self._base("Adjustment", (src["SubAccountId"], src["SubAccountName"]), self.t0,
                       self.t0 + timedelta(days=1), "One-Time",
                       f"Refund for overcharge in a previous billing period, support case {rng.randrange(10**9, 10**10)}")
        r.update({k: src[k] for k in ("ServiceName", "ServiceCategory", "ServiceSubcategory", "x_ServiceCode",
                                       "RegionId", "RegionName")})
        r["ChargeClass"] = "Correction"
        self._flat(r, -(_q(Decimal(str(rng.uniform(1, 30))), 4) or Decimal(1)))
        self.rows.append(r)
        # an On-Demand Capacity Reservation: a used hour block and the unused remainder
        acct = _ACCOUNTS[1]
        cr = f"arn:aws:ec2:us-east-1:{acct[0]}:capacity-reservation/cr-0{_rand_hex(rng, 16)}"
        day = rng.randrange(self.days)
        used = Decimal(rng.randrange(6, 20))
        r, q, p = self._usage("ec2", day, "us-east-1", "m5.large", acct, q=used)
        r.update({"CapacityReservationId": cr, "CapacityReservationStatus": "Used"})
        self.rows.append(r)
        r, q, p = self._usage("ec2", day, "us-east-1", "m5.large", acct, q=24 - used)
        meter = "UnusedBox:m5.large"
        r.update({"CapacityReservationId": cr, "CapacityReservationStatus": "Unused", "SkuMeter": meter,
                  "ResourceId": cr.split("/")[-1], "ResourceType": "capacity-reservation",
                  "SkuId": _sku("ec2", "us-east-1", meter),
                  "ChargeDescription": f"${_plain_text(p)} per Unused Reservation Linux m5.large Instance Hour"})
        r["SkuPriceId"] = f"{r['SkuId']}.JRTCKXETXF.6YS6EN2CT7"
        self.rows.append(r)


def _focus_arrow_type(t: str):
    import pyarrow as pa

    return {"string": pa.string(), "double": pa.float64(), "timestamp": pa.timestamp("ms", tz="UTC"),
            "map<string,string>": pa.map_(pa.string(), pa.string()),
            "map<string,double>": pa.map_(pa.string(), pa.float64())}[t]


def _focus_arrow_value(text: str, t: str):
    if text == "":
        return None  # FOCUS nulls are nulls in Parquet, strings included
    if t == "string":
        return text
    if t == "double":
        return float(text)
    if t == "timestamp":
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    return list(json.loads(text).items())


def build_focus(
    root: str | os.PathLike,
    prefix: str = "focus",
    export: str = "demo-focus",
    period: str = "2024-01",
    execution_id: str | None = None,
    files: int = 2,
    rows: int = 300,
    subfolder: bool = True,
    fmt: str = "csv.gz",
    seed: int = 0,
    *,
    bucket: str = DEFAULT_BUCKET,
    delivered_at: datetime | None = None,
    number_style: str = "java",
    invoice_id: str | None = None,
) -> FocusDelivery:
    """A generated AWS Data Exports "FOCUS 1.2 with AWS columns" export of one billing period.

    - Layout: identical to CUR 2.0 (an export of another table):
      ``<prefix>/<export>/data/BILLING_PERIOD=YYYY-MM/[<stamp>-<executionId>/]<export>-00001.csv.gz``
      (or ``.snappy.parquet``) and ``<prefix>/<export>/metadata/BILLING_PERIOD=YYYY-MM/<export>-Manifest.json``,
      written last, with ``executionId``, ``exportArn``, ``billingPeriod``, ``dataFiles`` and
      ``columns`` ``[{name, type}]``: the 60 ``FOCUS_COLUMNS`` in PascalCase as AWS writes
      them (``BilledCost``, ``x_Discounts`` ...), types ``string/double/timestamp/map``.
    - Rows: ``rows`` drawn lines (Usage, a few Tax/Credit, Savings Plan and RI covered usage,
      Spot) plus what a month always has: daily Savings Plan Purchase/Unused rows, RI
      Purchase (recurring and one-time) and Unused rows, an AWS Marketplace line
      (PublisherName = the seller), a free line, a 0.0000000186 line, an Adjustment with
      ChargeClass "Correction" and a capacity reservation used/unused pair. ``row_count``
      is therefore about ``rows + 70``. Values follow FOCUS 1.2 (see ``_FocusGen``):
      ChargeCategory Usage/Purchase/Tax/Credit/Adjustment, ChargeFrequency, PricingCategory
      Standard/Committed/Dynamic/Other (null for Tax/Adjustment), ServiceCategory with a
      ServiceSubcategory of that category, ProviderName "AWS", InvoiceIssuerName and
      PublisherName "Amazon Web Services, Inc.", BillingCurrency USD, ``x_Discounts``
      (``{"edp_discount": -0.0123}``) where BilledCost is below ContractedCost.
    - CSV: costs and quantities as Java double text (``number_style="plain"``: plain
      decimals), timestamps ``2024-01-01T00:00:00Z``, maps as JSON object text (``{}`` or
      empty when there is none), nulls as empty fields. Parquet: float64, timestamp[ms, UTC],
      real map columns, and nulls as nulls (strings too).
    - ``InvoiceId`` is null (the month is not invoiced yet, as ``bill_invoice_id`` in CUR 2.0);
      ``invoice_id="2024012345"`` puts that id on every row (a closed, invoiced month).
    - The four ``*_cost_sum`` are exact Decimal sums of the written texts; ``focus_totals``
      reads them (and more) back from the files.
    """
    if fmt not in ("csv.gz", "parquet"):
        raise ValueError(f"fmt must be 'csv.gz' or 'parquet', got {fmt!r}")
    if number_style not in ("java", "plain"):
        raise ValueError(f"number_style must be 'java' or 'plain', got {number_style!r}")
    root = Path(root)
    start, end = period_bounds(period)
    execution_id = execution_id or str(uuid.uuid4())
    delivered_at = delivered_at or datetime(end.year, end.month, 2, 6, 0, 0, tzinfo=timezone.utc)
    num = java_double_text if number_style == "java" else _plain_text
    names = [n for n, _ in FOCUS_COLUMNS]
    gen = _FocusGen(period, seed, num).generate(rows)
    if invoice_id:
        for r in gen:
            r["InvoiceId"] = invoice_id
    table = [[r[n] for n in names] for r in gen]
    sums = {c: decimal_sum(r[c] for r in gen) for c in FOCUS_COST_COLUMNS}

    part = f"BILLING_PERIOD={period}"
    data_prefix = _join(prefix, export, "data", part)
    if subfolder:
        data_prefix = _join(data_prefix, f"{delivered_at:%Y%m%dT%H%M%SZ}-{execution_id}")
    data_keys, counts = [], []
    for n, (a, b) in enumerate(_split(len(table), files), start=1):
        chunk = table[a:b]
        if fmt == "csv.gz":
            key = _join(data_prefix, f"{export}-{n:05d}.csv.gz")
            _write_bytes(root, key, _gzip(_csv_bytes(names, chunk)))
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            key = _join(data_prefix, f"{export}-{n:05d}.snappy.parquet")
            arrays = [pa.array([_focus_arrow_value(row[j], t) for row in chunk], _focus_arrow_type(t))
                      for j, (_, t) in enumerate(FOCUS_COLUMNS)]
            path = root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.Table.from_arrays(arrays, names=names), path, compression="snappy")
        data_keys.append(key)
        counts.append(b - a)

    manifest_key = _join(prefix, export, "metadata", part, f"{export}-Manifest.json")
    uris = [f"s3://{bucket}/{k}" for k in data_keys]
    columns = [(n, _manifest_type_v2(t)) for n, t in FOCUS_COLUMNS]
    _write_json(root, manifest_key, {
        "executionId": execution_id,
        "exportArn": f"arn:aws:bcm-data-exports:us-east-1:{_ACCOUNTS[0][0]}:export/{export}-"
                     f"{uuid.uuid5(uuid.NAMESPACE_URL, export)}",
        "billingPeriod": {"start": f"{start:%Y-%m-%d}T00:00:00.000Z", "end": f"{end:%Y-%m-%d}T00:00:00.000Z"},
        "columns": [{"name": n, "type": t} for n, t in columns],
        "dataFiles": uris,
    })
    return FocusDelivery(
        root=root, bucket=bucket, prefix=prefix, export=export, period=period,
        execution_id=execution_id, fmt=fmt, data_prefix=data_prefix,
        data_keys=tuple(data_keys), data_uris=tuple(uris), manifest_key=manifest_key,
        columns=tuple(columns), rows_per_file=tuple(counts), row_count=len(table),
        billed_cost_sum=sums["BilledCost"], effective_cost_sum=sums["EffectiveCost"],
        list_cost_sum=sums["ListCost"], contracted_cost_sum=sums["ContractedCost"],
    )


# ======================================================================================
# Reading a delivery back (what the files say, not what the generator meant)
# ======================================================================================
V2_SUM_COLUMNS = (
    "line_item_unblended_cost", "line_item_blended_cost", "line_item_net_unblended_cost",
    "line_item_usage_amount", "pricing_public_on_demand_cost",
    "savings_plan_savings_plan_effective_cost", "savings_plan_total_commitment_to_date",
    "savings_plan_used_commitment", "savings_plan_recurring_commitment_for_billing_period",
    "savings_plan_amortized_upfront_commitment_for_billing_period",
    "reservation_effective_cost", "reservation_amortized_upfront_cost_for_usage",
    "reservation_recurring_fee_for_usage", "reservation_unused_quantity",
    "reservation_unused_recurring_fee", "reservation_amortized_upfront_fee_for_billing_period",
    "reservation_unused_amortized_upfront_fee_for_billing_period", "reservation_upfront_value",
    "discount_total_discount", "discount_bundled_discount",
)
FOCUS_SUM_COLUMNS = FOCUS_COST_COLUMNS + (
    "PricingQuantity", "ConsumedQuantity", "CommitmentDiscountQuantity", "PricingCurrencyEffectiveCost",
)


@dataclass(frozen=True)
class Totals:
    """Row count and exact Decimal sums (empty/null values skipped) of some columns."""

    rows: int
    sums: Mapping[str, Decimal]

    def __getitem__(self, column: str) -> Decimal:
        return self.sums[column]


def read_rows(delivery: V2Delivery | FocusDelivery) -> list[dict[str, Any]]:
    """Every data row of a CUR 2.0 or FOCUS delivery, read from its files in manifest order.

    CSV values are the texts in the file; Parquet values are what pyarrow gives (float,
    datetime, maps as lists of (key, value), None for nulls)."""
    out: list[dict[str, Any]] = []
    for key in delivery.data_keys:
        path = Path(delivery.root) / key
        if key.endswith(".csv.gz"):
            header, rows = read_csv_gz(path)
            out.extend(dict(zip(header, r)) for r in rows)
        else:
            import pyarrow.parquet as pq

            out.extend(pq.read_table(path).to_pylist())
    return out


def to_decimal(value: Any) -> Decimal | None:
    """A file value as the exact decimal it stands for (doubles by ``repr``); None if empty."""
    if value is None or value == "":
        return None
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(str(value))


def totals(delivery: V2Delivery | FocusDelivery, by: str | None = None,
           columns: Sequence[str] | None = None) -> Totals | dict[str, Totals]:
    """Exact sums of ``columns`` read back from the delivery's files: one ``Totals``, or
    ``{value of column by: Totals}`` (sorted) with ``by``. Default columns:
    ``V2_SUM_COLUMNS`` for CUR 2.0, ``FOCUS_SUM_COLUMNS`` for FOCUS."""
    if columns is None:
        columns = FOCUS_SUM_COLUMNS if isinstance(delivery, FocusDelivery) else V2_SUM_COLUMNS
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in read_rows(delivery):
        groups.setdefault("" if by is None else (r.get(by) or ""), []).append(r)

    def total(rows: list[dict[str, Any]]) -> Totals:
        sums = {c: sum((d for d in (to_decimal(r.get(c)) for r in rows) if d is not None), Decimal(0))
                for c in columns}
        return Totals(rows=len(rows), sums=sums)

    if by is None:
        return total(groups.get("", []))
    return {k: total(groups[k]) for k in sorted(groups)}


def line_type_totals(delivery: V2Delivery, columns: Sequence[str] = V2_SUM_COLUMNS) -> dict[str, Totals]:
    """``{line_item_line_item_type: Totals}`` of a CUR 2.0 delivery, from its files."""
    return totals(delivery, by="line_item_line_item_type", columns=columns)  # type: ignore[return-value]


def line_type_counts(delivery: V2Delivery) -> dict[str, int]:
    """``{line_item_line_item_type: rows}`` of a CUR 2.0 delivery, from its files."""
    return {k: t.rows for k, t in line_type_totals(delivery, columns=()).items()}


def focus_totals(delivery: FocusDelivery, by: str | None = None,
                 columns: Sequence[str] = FOCUS_SUM_COLUMNS) -> Totals | dict[str, Totals]:
    """Exact sums of a FOCUS delivery from its files, e.g. ``focus_totals(d)["BilledCost"]``
    or ``focus_totals(d, by="ChargeCategory")["Purchase"].rows``."""
    return totals(delivery, by=by, columns=columns)


def v2_amortized_cost_sum(delivery: V2Delivery) -> Decimal:
    """The period's amortized cost from the files, with the formula of AWS's dashboards and
    the FOCUS converters: covered usage at its effective cost, unused commitment from the
    fees, negations and upfront fees at 0, everything else at the unblended cost."""
    d = lambda r, c: to_decimal(r.get(c)) or Decimal(0)  # noqa: E731
    total = Decimal(0)
    for r in read_rows(delivery):
        lit = r["line_item_line_item_type"]
        if lit == "SavingsPlanCoveredUsage":
            total += d(r, "savings_plan_savings_plan_effective_cost")
        elif lit == "SavingsPlanRecurringFee":
            total += d(r, "savings_plan_total_commitment_to_date") - d(r, "savings_plan_used_commitment")
        elif lit in ("SavingsPlanNegation", "SavingsPlanUpfrontFee"):
            pass
        elif lit == "DiscountedUsage":
            total += d(r, "reservation_effective_cost")
        elif lit == "RIFee":
            total += (d(r, "reservation_unused_amortized_upfront_fee_for_billing_period")
                      + d(r, "reservation_unused_recurring_fee"))
        elif lit == "Fee" and r.get("reservation_reservation_a_r_n"):
            pass
        else:
            total += d(r, "line_item_unblended_cost")
    return total


# ======================================================================================
# A bucket with all three kinds of export under one prefix
# ======================================================================================
@dataclass(frozen=True)
class MixedBucket:
    """A legacy CUR, a CUR 2.0 and a FOCUS export of one period under one prefix."""

    root: Path
    prefix: str
    v1: V1Delivery
    v2: V2Delivery
    focus: FocusDelivery

    @property
    def deliveries(self) -> tuple[V1Delivery, V2Delivery, FocusDelivery]:
        return (self.v1, self.v2, self.focus)

    @property
    def keys(self) -> tuple[str, ...]:
        return self.v1.keys + self.v2.keys + self.focus.keys


def build_mixed_bucket(
    root: str | os.PathLike,
    period: str = "2024-01",
    prefix: str = "exports",
    *,
    bucket: str = DEFAULT_BUCKET,
    v1_report: str = "legacy-cur",
    v2_export: str = "cur2-full",
    focus_export: str = "focus-1-2",
    seed: int = 0,
) -> MixedBucket:
    """Under ONE prefix, as when an account moves from legacy CUR to Data Exports:

        <prefix>/legacy-cur/<YYYYMMDD-YYYYMMDD>/...   build_v1_csv (the real sample, moved to `period`)
        <prefix>/cur2-full/{data,metadata}/...         build_v2(charges="full")
        <prefix>/focus-1-2/{data,metadata}/...         build_focus

    Deterministic: the assembly/execution ids derive from the names and the period."""
    ids = {n: str(uuid.uuid5(uuid.NAMESPACE_URL, f"{prefix}/{n}/{period}")) for n in (v1_report, v2_export, focus_export)}
    v1 = build_v1_csv(root, prefix=prefix, report=v1_report, period=period, assembly_id=ids[v1_report], bucket=bucket)
    v2 = build_v2(root, prefix=prefix, export=v2_export, period=period, execution_id=ids[v2_export],
                  seed=seed, bucket=bucket, charges="full")
    focus = build_focus(root, prefix=prefix, export=focus_export, period=period,
                        execution_id=ids[focus_export], seed=seed, bucket=bucket)
    return MixedBucket(root=Path(root), prefix=prefix, v1=v1, v2=v2, focus=focus)


# ======================================================================================
# Upload
# ======================================================================================
def upload_tree(s3_client, bucket: str, root: str | os.PathLike) -> list[str]:
    """Upload every file under ``root`` to ``bucket`` at its relative key (POSIX '/').

    Creates the bucket when it is missing. Manifests (``*Manifest.json``) go last, as
    AWS delivers them after the data. Returns the uploaded keys in upload order.
    """
    root = Path(root)
    try:
        s3_client.head_bucket(Bucket=bucket)
    except Exception as exc:  # botocore ClientError 404/NoSuchBucket (or a stub's error)
        code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
        if code not in ("", "404", "NoSuchBucket", "NotFound"):
            raise
        region = getattr(getattr(s3_client, "meta", None), "region_name", None)
        kwargs: dict[str, Any] = {"Bucket": bucket}
        if region and region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        s3_client.create_bucket(**kwargs)
    files = sorted((p for p in root.rglob("*") if p.is_file()),
                   key=lambda p: (p.name.endswith("Manifest.json"), p.relative_to(root).as_posix()))
    keys = []
    for p in files:
        key = p.relative_to(root).as_posix()
        with open(p, "rb") as f:
            s3_client.put_object(Bucket=bucket, Key=key, Body=f.read())
        keys.append(key)
    return keys
