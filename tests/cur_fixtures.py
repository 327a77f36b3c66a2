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
    CUR 2.0 (AWS Data Exports)
      <prefix>/<export>/data/BILLING_PERIOD=YYYY-MM/[<YYYYMMDDTHHMMSSZ>-<executionId>/]<export>-00001.csv.gz
      <prefix>/<export>/metadata/BILLING_PERIOD=YYYY-MM/<export>-Manifest.json

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
from decimal import ROUND_HALF_EVEN, Decimal
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


def _gen_v2_rows(period: str, n: int, seed: int, num: Callable[[Decimal], str]) -> list[dict[str, str]]:
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
    """
    if fmt not in ("csv.gz", "parquet"):
        raise ValueError(f"fmt must be 'csv.gz' or 'parquet', got {fmt!r}")
    if number_style not in ("java", "plain"):
        raise ValueError(f"number_style must be 'java' or 'plain', got {number_style!r}")
    root = Path(root)
    start, end = period_bounds(period)
    execution_id = execution_id or str(uuid.uuid4())
    delivered_at = delivered_at or datetime(end.year, end.month, 2, 6, 0, 0, tzinfo=timezone.utc)

    cols = cur2_columns()
    names = [n for n, _ in cols]
    num = java_double_text if number_style == "java" else _plain_text
    gen = _gen_v2_rows(period, rows, seed, num)
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
        unblended_cost_sum=cost_sum,
    )


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
