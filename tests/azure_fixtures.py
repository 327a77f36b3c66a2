"""Azure Cost Management exports, laid out as Cost Management writes them to a blob container.

Every builder writes into a local directory that mirrors ONE container: the blob named ``K``
is the file ``<root>/K`` (the manifest's ``blobName`` values are container-relative, the same
keys). ``upload_tree`` copies such a tree into a real container (Azurite) unchanged, in
delivery order. The facts behind every layout and field are in ``docs/AZURE_FORMATS.md``.

The data are the real samples in ``../shared/samples`` (read-only; ``SOURCES.md`` there), or,
for FOCUS, rows generated from the column dictionary ``focuscost_1.2.json`` (1.0 and
1.2-preview too) with the values Azure writes. A real sample is COPIED BYTE FOR BYTE: its BOM,
CRLF or LF line ends (the MCA sample mixes both and Enterprise.csv has no final newline),
``MM/DD/YYYY`` or Excel's ``M/D/YYYY`` dates, E-notation, 28-decimal costs, brace-less ``Tags``
and its quoting stay as they are. Splitting into part files, picking rows, moving the dates
to another billing period or dropping a column touch only the records and fields concerned:
every other record keeps its exact bytes (each CSV record of the samples re-serialises to
itself, which ``tests/test_azure_fixtures.py`` checks). Parquet is necessarily written anew.

Layouts (container-relative keys; ``<dir>`` is the export's root folder path, may be nested)::

    layout="manifest"  (exports since 2024: manifest 2024-04-01, part files)
      CreateNewReport (overwrite=False): every run in its own folder, older runs stay
        <dir>/<export>/<YYYYMMDD-YYYYMMDD>/<YYYYMMDDHHMM>/<runId>/manifest.json
        <dir>/<export>/<YYYYMMDD-YYYYMMDD>/<YYYYMMDDHHMM>/<runId>/part_0_0001.csv | .csv.gz | .snappy.parquet
      OverwritePreviousReport (overwrite=True): the range folder holds only the latest run
        <dir>/<export>/<YYYYMMDD-YYYYMMDD>/<runId>/manifest.json
        <dir>/<export>/<YYYYMMDD-YYYYMMDD>/<runId>/part_0_0001.csv ...
    layout="legacy"    (no manifest; one CSV per run, several runs per range, none overwritten)
        <dir>/<export>/<YYYYMMDD-YYYYMMDD>/<prefix>_<runId>.csv
    layout="partitioned-2021"  (first partitioned exports: manifest 2021-01-01)
        <dir>/<export>/<YYYYMMDD-YYYYMMDD>/<YYYYMMDDHHMM>/<runId>/_manifest.json
        <dir>/<export>/<YYYYMMDD-YYYYMMDD>/<YYYYMMDDHHMM>/<runId>/000001.csv ...

The range folder is the whole billing month, first and last day (``20230901-20230930``), also
for a month-to-date run (``through=``); ``folder_range=`` sets another one (one-time exports).

Each builder returns a frozen dataclass with the keys written (and removed), the period, the
run id, the dataset, the row count and the exact ``decimal.Decimal`` sums of the cost
column(s), READ BACK from the written files (``totals``): ``CostInBillingCurrency`` /
``costInBillingCurrency`` / ``Cost`` / ``PreTaxCost`` (whichever the header has, localised or
not) and, for FOCUS, ``BilledCost`` and ``EffectiveCost`` (plus ``ListCost``/``ContractedCost``).
CSV sums are ``Decimal(text)`` (E-notation included); Parquet decimals are read as Decimal.

Builders: ``build_azure_export`` (any layout, dataset, format, source; ``through=`` for a
month-to-date run), ``restate`` (two runs of one range), ``build_new_column_midyear`` (an EA
export whose schema gains ``benefitId``/``benefitName`` part way through the year),
``build_two_scopes`` (a subscription and a billing-account export side by side, same export
name) and ``build_mixed_container`` (every layout and dataset in one container). Read back with
``read_rows``/``totals``; tell a file's column family with ``header_family``.

Only the standard library and pyarrow (Parquet) are used; ``azure-storage-blob`` only through
the client passed to ``upload_tree``.
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
from decimal import Decimal, localcontext
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

# --------------------------------------------------------------------------------------
# Where the real samples live (../shared beside the repo root, or $FINOPS_SAMPLES_DIR).
# --------------------------------------------------------------------------------------
REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLES = Path(os.environ.get("FINOPS_SAMPLES_DIR") or REPO_ROOT.parent / "shared" / "samples")
SCHEMA_DIR = "azure-finops-toolkit/schemas"

DATASETS = ("ActualCost", "AmortizedCost", "FocusCost")
LAYOUTS = ("manifest", "legacy", "partitioned-2021")
FORMATS = ("csv", "csv.gz", "parquet")

MANIFEST_VERSION = "2024-04-01"
MANIFEST_VERSION_2021 = "2021-01-01"
API_VERSION = "2023-07-01-preview"     # what the toolkit's managed exports use
COST_DATA_VERSION = "2021-10-01"        # the toolkit's default for ActualCost/AmortizedCost
CONTAINER_URI = ("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/finops-demo"
                 "/providers/Microsoft.Storage/storageAccounts/finopsdemo")
PARQUET_DECIMAL = (38, 28)              # keeps Azure's 28 decimal places exactly
BOM = b"\xef\xbb\xbf"


# ======================================================================================
# Sources
# ======================================================================================
@dataclass(frozen=True)
class Source:
    """A real sample (``path``) or a generated FOCUS dataset (``schema``)."""

    name: str
    path: str | None            # relative to SAMPLES; None for generated data
    period: str | None          # the billing period its rows are in (None: any / generated)
    family: str                 # see header_family
    dataset: str                # what it is an export of (ActualCost, AmortizedCost, FocusCost)
    scope: str                  # the Cost Management scope it plausibly came from
    schema: str | None = None   # FOCUS: the toolkit column dictionary it is generated from
    data_version: str | None = None
    note: str = ""


_EA_SCOPE = "/providers/Microsoft.Billing/billingAccounts/8611537"
_SOURCES: tuple[Source, ...] = (
    Source("ea-actual", "azure-finops-toolkit/EA_ActualCost_Small.csv", "2023-09", "ea-cost-details",
           "ActualCost", _EA_SCOPE, note="BOM, LF, MM/DD/YYYY, Tags without braces, 1 reservation purchase"),
    Source("ea-amortized", "azure-finops-toolkit/EA_AmortizedCost_Small.csv", "2023-09", "ea-cost-details",
           "AmortizedCost", _EA_SCOPE, note="BOM, LF, 28-decimal costs, reservation + savings plan usage"),
    Source("ea-norows", "azure-finops-toolkit/EA_NoRows.csv", None, "ea-cost-details", "ActualCost",
           _EA_SCOPE, note="header only"),
    Source("ea-excel", "focus-converters-azure-ea/sample-anonymous-ea-export-dataset.csv", "2023-09",
           "ea-export", "ActualCost", "/providers/Microsoft.Billing/billingAccounts/12345678",
           note="Excel-touched: CRLF, M/D/YYYY, E-notation, TRUE, CAD"),
    Source("mca", "koku-test-data/azure/camel_azure_version_2.csv", "2023-08", "mca", "ActualCost",
           "/providers/Microsoft.Billing/billingAccounts/3c100a8a-215e-5a7e-24b2-61aa86945012"
           "/billingProfiles/NF5V-BI6B-BG7-PGB", note="camelCase, CRLF with a final LF, MM/DD/YYYY"),
    Source("enterprise", "opencost-azure-headersets/Enterprise.csv", "2021-02", "ea-export", "ActualCost",
           "/providers/Microsoft.Billing/billingAccounts/12345678", note="CRLF, no final newline"),
    Source("enterprise-camel", "opencost-azure-headersets/EnterpriseCamel.csv", "2021-02", "mca-partner",
           "ActualCost", "/providers/Microsoft.Billing/billingAccounts/11111111-1111-1111-1111-123456789012",
           note="partner camelCase, 2-digit-year exchangeRateDate"),
    Source("payg", "opencost-azure-headersets/PayAsYouGo.csv", "2021-02", "payg-legacy", "ActualCost",
           "/subscriptions/11111111-12ab-34dc-56ef-123456abcdef", note="PreTaxCost, UsageDateTime ISO"),
    Source("payg-bom", "opencost-azure-headersets/BOM.csv", "2022-11", "payg-legacy", "ActualCost",
           "/subscriptions/11111111-12ab-34dc-56ef-123456abcdef", note="BOM, an empty row but the date"),
    Source("german", "opencost-azure-headersets/German.csv", "2021-02", "payg-legacy", "ActualCost",
           "/subscriptions/11111111-12ab-34dc-56ef-123456abcdef", note="localised 'Name (English)' headers"),
    Source("mixed-localised", "opencost-azure-headersets/YA.csv", "2021-02", "mixed", "ActualCost",
           "/subscriptions/11111111-12ab-34dc-56ef-123456abcdef", note="synthetic German + camelCase mix"),
    Source("focus-sample-azure", "focus-sample/focus_sample.csv", "2024-09", "focus", "FocusCost", _EA_SCOPE,
           data_version="1.0", note="the Microsoft rows of the FOCUS 1.0 sample: a DB dump (NULL, Id)"),
    Source("focus-1.2", None, None, "focus", "FocusCost", _EA_SCOPE, "focuscost_1.2.json", "1.2"),
    Source("focus-1.2-preview", None, None, "focus", "FocusCost", _EA_SCOPE, "focuscost_1.2-preview.json",
           "1.2-preview"),
    Source("focus-1.0", None, None, "focus", "FocusCost", _EA_SCOPE, "focuscost_1.0.json", "1.0"),
)
SOURCES: dict[str, Source] = {s.name: s for s in _SOURCES}
DEFAULT_SOURCE = {"ActualCost": "ea-actual", "AmortizedCost": "ea-amortized", "FocusCost": "focus-1.2"}
GENERATED_DEFAULT_PERIOD = "2023-09"    # the period of the EA samples the FOCUS rows are built from


# ======================================================================================
# Results
# ======================================================================================
@dataclass(frozen=True)
class Totals:
    """Row count and exact Decimal sums (empty values skipped) of some columns."""

    rows: int
    sums: Mapping[str, Decimal]

    def __getitem__(self, column: str) -> Decimal:
        return self.sums[column]


@dataclass(frozen=True)
class AzureDelivery:
    """One export run (one delivery) of one date range, as written under ``root``."""

    root: Path
    layout: str                      # manifest | legacy | partitioned-2021
    dataset: str                     # ActualCost | AmortizedCost | FocusCost
    data_version: str
    export: str
    directory: str                   # the export's root folder path
    scope: str                       # exportConfig.resourceId up to /providers/Microsoft.CostManagement
    period: str                      # YYYY-MM (the billing month; runInfo.startDate's month)
    date_range: str                  # the range folder, e.g. 20230901-20230930
    start_date: date                 # first day the run covers
    end_date: date                   # last day the run covers (inclusive)
    run_id: str
    submitted: datetime
    overwrite: bool
    fmt: str                         # csv | csv.gz | parquet
    source: str                      # name in SOURCES
    shifted: bool                    # dates moved from the sample's period to ``period``
    data_keys: tuple[str, ...]       # in manifest order
    manifest_key: str | None
    removed_keys: tuple[str, ...]    # earlier runs' blobs an overwrite deleted
    header: tuple[str, ...]          # the columns as written (BOM stripped)
    rows_per_file: tuple[int, ...]
    rows: int
    cost_columns: tuple[str, ...]    # the header names summed
    sums: Mapping[str, Decimal]      # exact, read back from the written files
    month_to_date: bool = False

    @property
    def keys(self) -> tuple[str, ...]:
        return self.data_keys + ((self.manifest_key,) if self.manifest_key else ())

    @property
    def row_count(self) -> int:
        return self.rows

    @property
    def cost_column(self) -> str:
        return self.cost_columns[0]

    @property
    def cost_sum(self) -> Decimal:
        """Sum of the main cost column (for FOCUS: BilledCost)."""
        return self.sums[self.cost_columns[0]]

    @property
    def billed_cost_sum(self) -> Decimal:
        return self.sums["BilledCost"]

    @property
    def effective_cost_sum(self) -> Decimal:
        return self.sums["EffectiveCost"]

    @property
    def export_id(self) -> str:
        """exportConfig.resourceId: the export's identity across runs."""
        return f"{self.scope}/providers/Microsoft.CostManagement/exports/{self.export}"

    def path(self, key: str) -> Path:
        return self.root / key

    def manifest(self) -> dict:
        if not self.manifest_key:
            raise ValueError(f"a {self.layout} delivery has no manifest")
        return json.loads((self.root / self.manifest_key).read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Restated:
    """Two runs of one range: ``second`` is the newer delivery and the current one."""

    first: AzureDelivery
    second: AzureDelivery

    @property
    def deliveries(self) -> tuple[AzureDelivery, AzureDelivery]:
        return (self.first, self.second)


@dataclass(frozen=True)
class ExportSeries:
    """Monthly deliveries of one export (e.g. a schema that changes part way through)."""

    deliveries: tuple[AzureDelivery, ...]
    change_period: str | None = None
    new_columns: tuple[str, ...] = ()

    @property
    def periods(self) -> tuple[str, ...]:
        return tuple(d.period for d in self.deliveries)

    def delivery(self, period: str) -> AzureDelivery:
        for d in self.deliveries:
            if d.period == period:
                return d
        raise KeyError(period)

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(k for d in self.deliveries for k in d.keys)


@dataclass(frozen=True)
class TwoScopes:
    """The same export name at a subscription scope and at the billing account scope."""

    subscription: AzureDelivery
    billing_account: AzureDelivery
    subscription_id: str

    @property
    def deliveries(self) -> tuple[AzureDelivery, AzureDelivery]:
        return (self.subscription, self.billing_account)


@dataclass(frozen=True)
class MixedContainer:
    """Every layout and dataset in one container (see build_mixed_container)."""

    root: Path
    deliveries: Mapping[str, AzureDelivery]
    restated: Restated

    @property
    def keys(self) -> tuple[str, ...]:
        out = [k for d in self.deliveries.values() for k in d.keys]
        out += [k for d in self.restated.deliveries for k in d.keys if k not in out]
        return tuple(out)


# ======================================================================================
# Small helpers
# ======================================================================================
_PERIOD_RE = re.compile(r"^(\d{4})-(\d{2})$")
_US_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4}|\d{2})(?!\d)(.*)$", re.S)
_ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(.*)$", re.S)
_LOCALISED = re.compile(r"^.*\(([A-Za-z][A-Za-z0-9_]*)\)\s*$")


def _join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


def _parse_period(period: str) -> tuple[int, int]:
    m = _PERIOD_RE.match(period or "")
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise ValueError(f"period must be 'YYYY-MM', got {period!r}")
    return int(m.group(1)), int(m.group(2))


def period_bounds(period: str) -> tuple[date, date]:
    """First and last day (inclusive) of a billing month."""
    y, m = _parse_period(period)
    return date(y, m, 1), date(y, m, calendar.monthrange(y, m)[1])


def date_range_folder(start: date, end: date) -> str:
    """``20230901-20230930``: first and last day, both inclusive."""
    return f"{start:%Y%m%d}-{end:%Y%m%d}"


def _month_delta(src: str, dst: str) -> int:
    (y1, m1), (y2, m2) = _parse_period(src), _parse_period(dst)
    return (y2 - y1) * 12 + (m2 - m1)


def _as_date(value: str | date | None) -> date | None:
    if value is None or isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, datetime):
        return value.date()
    return date.fromisoformat(value)


def _as_datetime(value: str | datetime | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    s = value.strip().replace("Z", "+00:00")
    s = re.sub(r"(\.\d{6})\d+", r"\1", s)  # Azure writes 7 fraction digits; Python takes 6
    dt = datetime.fromisoformat(s)
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def azure_time(dt: datetime) -> str:
    """``2025-03-21T21:04:06.5234447Z``: UTC with 7 fraction digits, as runInfo.submittedTime."""
    dt = dt.astimezone(timezone.utc)
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{dt.microsecond:06d}0Z"


def english_name(header: str) -> str:
    """A header's English column name: BOM and spaces stripped, ``Abonnement-GUID
    (SubscriptionGuid)`` → ``SubscriptionGuid`` (the localised portal form)."""
    h = header.replace("\ufeff", "").strip()
    m = _LOCALISED.match(h)
    return m.group(1) if m and " (" in h else h


def _key(header: str) -> str:
    return english_name(header).lower()


def _gzip(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0) as gz:
        gz.write(data)
    return buf.getvalue()


def _write(root: Path, key: str, data: bytes, mtime: datetime | None = None) -> None:
    path = Path(root) / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if mtime is not None:
        ts = mtime.timestamp()
        os.utime(path, (ts, ts))


def decimal_sum(values: Iterable[Any]) -> Decimal:
    """Exact sum of numeric texts or Decimals; empty strings, None and ``NULL`` skipped."""
    total = Decimal(0)
    with localcontext() as ctx:
        ctx.prec = 100  # the default 28 significant digits would round a sum of 28-decimal costs
        for v in values:
            d = to_decimal(v)
            if d is not None:
                total += d
    return total


def to_decimal(value: Any) -> Decimal | None:
    if value is None or value == "" or value == "NULL":
        return None
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(str(value).strip())


def _dec_text(d: Decimal) -> str:
    """Plain (no exponent) text of a Decimal, as Azure writes its costs."""
    s = format(d, "f")
    return "0" if s in ("-0", "") else s


# ======================================================================================
# CSV records, byte-exact
# ======================================================================================
@dataclass
class _Rec:
    raw: bytes              # the record's exact bytes, terminator included
    fields: list[str]
    term: bytes             # b"\r\n", b"\n" or b"" (last record without a newline)
    quoted: list[bool] | None = None   # which fields were written in quotes
    dirty: bool = False

    def encode(self, term_if_missing: bytes) -> bytes:
        if not self.dirty:
            return self.raw if self.term else self.raw + term_if_missing
        return _serialise(self.fields, self.quoted) + (self.term or term_if_missing)


def _serialise(fields: Sequence[str], quoted: Sequence[bool] | None = None) -> bytes:
    """One CSV record without terminator: minimal quoting, or each field quoted as it was
    (``quoted``) and wherever it has to be (a comma, quote or newline in it)."""
    if quoted is None:
        buf = io.StringIO(newline="")
        csv.writer(buf, lineterminator="").writerow(fields)
        return buf.getvalue().encode("utf-8")
    out = []
    for v, q in zip(fields, quoted):
        if q or any(c in v for c in ',"\r\n'):
            out.append('"' + v.replace('"', '""') + '"')
        else:
            out.append(v)
    return ",".join(out).encode("utf-8")


def _quoted_fields(text: str) -> list[bool]:
    """Which fields of one CSV record (no terminator) start with a quote."""
    flags, at_start, inside, i = [], True, False, 0
    while i < len(text):
        c = text[i]
        if at_start:
            flags.append(c == '"')
            at_start = False
            inside = c == '"'
        elif inside:
            if c == '"':
                if i + 1 < len(text) and text[i + 1] == '"':
                    i += 1
                else:
                    inside = False
        elif c == ",":
            at_start = True
        i += 1
    if at_start:
        flags.append(False)  # a trailing empty field (or an empty record)
    return flags


def split_records(body: bytes) -> list[bytes]:
    """The records of CSV bytes, each with its own terminator (a newline inside quotes is
    data). ``b"".join`` of the result is ``body``."""
    out, start, quoted = [], 0, False
    for i, c in enumerate(body):
        if c == 0x22:
            quoted = not quoted
        elif c == 0x0A and not quoted:
            out.append(body[start:i + 1])
            start = i + 1
    if start < len(body):
        out.append(body[start:])
    return out


def _parse_record(raw: bytes) -> _Rec:
    term = b"\r\n" if raw.endswith(b"\r\n") else b"\n" if raw.endswith(b"\n") else b""
    text = raw[: len(raw) - len(term)].decode("utf-8")
    fields = next(csv.reader(io.StringIO(text, newline="")), [])
    quoted = _quoted_fields(text)
    return _Rec(raw, fields, term, quoted if len(quoted) == len(fields) else None)


@dataclass
class _Table:
    """A CSV sample as header + records, every byte accounted for."""

    bom: bytes
    header: _Rec
    records: list[_Rec]

    @property
    def columns(self) -> list[str]:
        return self.header.fields

    @property
    def term(self) -> bytes:
        """The dominant line terminator (for records that had none)."""
        terms = [r.term for r in [self.header, *self.records] if r.term]
        return max(set(terms), key=terms.count) if terms else b"\n"

    def index(self, *english: str) -> int | None:
        wanted = {e.lower() for e in english}
        for i, h in enumerate(self.columns):
            if _key(h) in wanted:
                return i
        return None

    def to_bytes(self, records: Sequence[_Rec] | None = None) -> bytes:
        """The file with these records: every untouched record keeps its exact bytes; a
        record that had no final newline gets the file's own one when it is not last."""
        recs = self.records if records is None else records
        if not recs:
            return self.bom + self.header.encode(b"")
        term = self.term
        out = [self.bom, self.header.encode(term)]
        out += [r.encode(b"" if i == len(recs) - 1 else term) for i, r in enumerate(recs)]
        return b"".join(out)


def read_table_bytes(data: bytes) -> _Table:
    bom = BOM if data.startswith(BOM) else b""
    recs = [_parse_record(r) for r in split_records(data[len(bom):])]
    if not recs:
        raise ValueError("an empty file has no header")
    return _Table(bom, recs[0], recs[1:])


def _load_sample(source: Source) -> _Table:
    return read_table_bytes((SAMPLES / source.path).read_bytes())


# ======================================================================================
# Dates inside records
# ======================================================================================
DATE_COLUMNS = frozenset("""date usagedatetime usagedate billingperiodstartdate billingperiodenddate
serviceperiodstartdate serviceperiodenddate exchangeratedate chargeperiodstart chargeperiodend
billingperiodstart billingperiodend""".split())
ROW_DATE_COLUMNS = ("date", "usagedatetime", "usagedate", "chargeperiodstart")


def parse_azure_date(text: str) -> date | None:
    """A date as the exports write it: ISO (``2021-02-02``, ``2024-01-01T00:00Z``),
    ``MM/DD/YYYY``, Excel's ``M/D/YYYY`` or ``M/D/YY``; None if empty or ``NULL``."""
    t = (text or "").strip()
    if not t or t == "NULL":
        return None
    m = _US_DATE.match(t)
    if m:
        y = int(m.group(3))
        return date(y + 2000 if y < 100 else y, int(m.group(1)), int(m.group(2)))
    m = _ISO_DATE.match(t)
    if m:
        return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    raise ValueError(f"not a date: {text!r}")


def _add_months(d: date, months: int, keep_last_day: bool = False) -> date:
    y, m = divmod(d.year * 12 + d.month - 1 + months, 12)
    m += 1
    last = calendar.monthrange(y, m)[1]
    was_last = d.day == calendar.monthrange(d.year, d.month)[1]
    return date(y, m, last if keep_last_day and was_last else min(d.day, last))


INCLUSIVE_END_COLUMNS = frozenset(("billingperiodenddate", "serviceperiodenddate"))


def shift_date_text(text: str, months: int, keep_last_day: bool = False) -> str:
    """Move a date text by whole months, keeping its exact format (zero padding, 2- or
    4-digit year, any time part). A day the target month lacks becomes its last day; with
    ``keep_last_day`` (an inclusive period end) a month's last day stays the last day."""
    t = text
    m = _US_DATE.match(t)
    if m:
        mm, dd, yy, rest = m.groups()
        y = int(yy)
        d = _add_months(date(y + 2000 if y < 100 else y, int(mm), int(dd)), months, keep_last_day)
        pad = lambda v, w: f"{v:0{w}d}" if w == 2 else str(v)  # noqa: E731
        year = f"{d.year % 100:02d}" if len(yy) == 2 else f"{d.year:04d}"
        return f"{pad(d.month, len(mm))}/{pad(d.day, len(dd))}/{year}{rest}"
    m = _ISO_DATE.match(t)
    if m:
        yy, mm, dd, rest = m.groups()
        d = _add_months(date(int(yy), int(mm), int(dd)), months, keep_last_day)
        return f"{d:%Y-%m-%d}{rest}"
    return text


def _shift_table(table: _Table, months: int) -> None:
    if not months:
        return
    idx = [(i, _key(h) in INCLUSIVE_END_COLUMNS) for i, h in enumerate(table.columns) if _key(h) in DATE_COLUMNS]
    for r in table.records:
        for i, keep_last in idx:
            if i < len(r.fields) and r.fields[i] not in ("", "NULL"):
                new = shift_date_text(r.fields[i], months, keep_last)
                if new != r.fields[i]:
                    r.fields[i] = new
                    r.dirty = True


def _row_date(table: _Table, rec: _Rec) -> date | None:
    i = table.index(*ROW_DATE_COLUMNS)
    return parse_azure_date(rec.fields[i]) if i is not None and i < len(rec.fields) else None


def _drop_columns(table: _Table, names: Sequence[str]) -> None:
    drop = {i for i, h in enumerate(table.columns) if english_name(h) in set(names)}
    missing = set(names) - {english_name(table.columns[i]) for i in drop}
    if missing:
        raise ValueError(f"columns not in the sample: {sorted(missing)}")
    for r in [table.header, *table.records]:
        r.fields = [v for i, v in enumerate(r.fields) if i not in drop]
        if r.quoted is not None:
            r.quoted = [q for i, q in enumerate(r.quoted) if i not in drop]
        r.dirty = True


def _select(table: _Table, sel) -> list[_Rec]:
    recs = table.records
    if sel is None:
        return list(recs)
    if isinstance(sel, bool):
        raise TypeError("rows must be None, an int, a slice, a sequence of indices or a predicate")
    if isinstance(sel, int):
        return list(recs[:sel])
    if isinstance(sel, slice):
        return list(recs[sel])
    if callable(sel):
        cols = table.columns
        return [r for r in recs if sel(dict(zip(cols, r.fields)))]
    return [recs[i] for i in sel]


def _split(n: int, parts: int) -> list[tuple[int, int]]:
    if parts < 1:
        raise ValueError("files must be >= 1")
    q, r = divmod(n, parts)
    out, start = [], 0
    for i in range(parts):
        stop = start + q + (i < r)
        out.append((start, stop))
        start = stop
    return out


# ======================================================================================
# Column families (how to tell an export from its header alone)
# ======================================================================================
def header_family(header: Sequence[str]) -> str:
    """What kind of cost file a header is, from the column names alone:

    ``focus`` (BilledCost + EffectiveCost + ChargePeriodStart), ``mca-partner`` (camelCase with
    partnerName/customerTenantId), ``mca`` (camelCase ``costInBillingCurrency`` +
    ``billingProfileId``), ``ea-export`` (Pascal ``CostInBillingCurrency`` +
    ``BillingCurrencyCode``: EA export schema 2021-10-01 and later), ``ea-cost-details``
    (``Cost`` + ``BillingCurrency``: the EA cost details set of the toolkit's sample),
    ``payg-legacy`` (``PreTaxCost`` + ``UsageDateTime`` + ``SubscriptionGuid``, also localised),
    ``mixed`` (a mix of the above, e.g. opencost's YA.csv) or ``unknown``. Actual and amortized
    exports have the SAME columns: the header cannot tell them apart."""
    raw = {h.replace("\ufeff", "").strip() for h in header}
    eng = {english_name(h) for h in header}
    if {"BilledCost", "EffectiveCost", "ChargePeriodStart"} <= eng:
        return "focus"
    if {"PreTaxCost", "UsageDateTime"} <= eng and "SubscriptionGuid" in eng:
        return "payg-legacy"
    if "costInBillingCurrency" in raw:
        if "billingProfileId" in raw or "billingAccountName" in raw and "partnerName" not in raw:
            return "mca"
        if "partnerName" in raw or "customerTenantId" in raw:
            return "mca-partner"
        return "mixed"
    if "CostInBillingCurrency" in raw and "BillingCurrencyCode" in raw:
        return "ea-export"
    if "Cost" in raw and "BillingCurrency" in raw:
        return "ea-cost-details"
    return "unknown"


MAIN_COST_COLUMNS = ("CostInBillingCurrency", "costInBillingCurrency", "Cost", "PreTaxCost")
MONEY_COLUMNS = frozenset("""cost costinbillingcurrency costinpricingcurrency costinusd
paygcostinbillingcurrency paygcostinusd pretaxcost quantity usagequantity effectiveprice unitprice
paygprice resourcerate exchangeratepricingtobilling""".split())
FOCUS_SUM_COLUMNS = ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost")


def cost_columns(header: Sequence[str]) -> tuple[str, ...]:
    """The header names whose sums a delivery reports: FOCUS BilledCost, EffectiveCost,
    ListCost, ContractedCost; otherwise the one cost column (matched on its English name)
    followed by costInUsd / paygCostInBillingCurrency where present."""
    if header_family(header) == "focus" or {"BilledCost", "EffectiveCost"} <= {english_name(h) for h in header}:
        return tuple(c for c in FOCUS_SUM_COLUMNS if c in header)
    by_eng = {english_name(h): h for h in header}
    main = next((by_eng[c] for c in MAIN_COST_COLUMNS if c in by_eng), None)
    if main is None:
        raise ValueError(f"no cost column in {list(header)[:8]}...")
    extra = [by_eng[c] for c in ("costInUsd", "paygCostInBillingCurrency") if c in by_eng]
    return (main, *extra)


# ======================================================================================
# Parquet
# ======================================================================================
def _focus_types(schema: str) -> dict[str, str]:
    data = json.loads((SAMPLES / SCHEMA_DIR / schema).read_text(encoding="utf-8"))
    return {m["source"]["name"]: m["source"]["type"] for m in data["translator"]["mappings"]}


def _cost_details_type(header: str) -> str:
    k = _key(header)
    if k in MONEY_COLUMNS:
        return "Decimal"
    if k in DATE_COLUMNS:
        return "DateTimeOffset"
    if k == "isazurecrediteligible":
        return "Boolean"
    return "String"


def _arrow_value(text: str, kind: str):
    if text in ("", "NULL"):
        return None
    if kind == "Decimal":
        d = Decimal(text)
        with localcontext() as ctx:
            ctx.prec = PARQUET_DECIMAL[0] + 10
            q = d.quantize(Decimal(1).scaleb(-PARQUET_DECIMAL[1]))
        if q != d:
            raise ValueError(f"{text!r} has more than {PARQUET_DECIMAL[1]} decimal places")
        return q
    if kind == "DateTimeOffset":
        if _US_DATE.match(text.strip()):
            d = parse_azure_date(text)
            return datetime(d.year, d.month, d.day, tzinfo=timezone.utc)
        return _as_datetime(text)
    if kind == "Boolean":
        return text.strip().lower() == "true"
    return text


def _parquet_bytes(columns: Sequence[str], rows: Sequence[Sequence[str]], kinds: Mapping[str, str]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {"Decimal": pa.decimal128(*PARQUET_DECIMAL), "DateTimeOffset": pa.timestamp("us", tz="UTC"),
             "Boolean": pa.bool_(), "String": pa.string()}
    arrays = []
    for j, c in enumerate(columns):
        kind = kinds.get(c, "String")
        arrays.append(pa.array([_arrow_value(r[j] if j < len(r) else "", kind) for r in rows], types[kind]))
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_arrays(arrays, names=list(columns)), buf, compression="snappy")
    return buf.getvalue()


# ======================================================================================
# Reading a delivery back (what the files say, not what the builder meant)
# ======================================================================================
def read_file(path: str | os.PathLike) -> tuple[list[str], list[dict[str, Any]]]:
    """(header, rows) of one part file: CSV values as the text in the file (BOM stripped),
    Parquet values as pyarrow gives them (Decimal, datetime, bool, None)."""
    p = Path(path)
    if p.name.endswith(".parquet"):
        import pyarrow.parquet as pq

        t = pq.read_table(p)
        return list(t.column_names), t.to_pylist()
    data = p.read_bytes()
    if p.name.endswith(".gz"):
        data = gzip.decompress(data)
    text = data.decode("utf-8-sig")
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, [])
    return header, [dict(zip(header, r)) for r in reader]


def read_rows(delivery: AzureDelivery) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for key in delivery.data_keys:
        out.extend(read_file(Path(delivery.root) / key)[1])
    return out


def totals(delivery: AzureDelivery, columns: Sequence[str] | None = None, by: str | None = None):
    """Exact sums of ``columns`` (default: the delivery's cost columns) read back from its
    files; with ``by`` a ``{value: Totals}`` dict (sorted)."""
    cols = tuple(columns) if columns is not None else delivery.cost_columns
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in read_rows(delivery):
        groups.setdefault("" if by is None else str(r.get(by) or ""), []).append(r)

    def total(rows):
        return Totals(len(rows), {c: decimal_sum(r.get(c) for r in rows) for c in cols})

    if by is None:
        return total(groups.get("", []))
    return {k: total(groups[k]) for k in sorted(groups)}


def _read_back(root: Path, keys: Sequence[str], cols: Sequence[str]) -> tuple[tuple[int, ...], dict[str, Decimal]]:
    counts, sums = [], {c: Decimal(0) for c in cols}
    for k in keys:
        _, rows = read_file(root / k)
        counts.append(len(rows))
        for c in cols:
            sums[c] = decimal_sum((sums[c], decimal_sum(r.get(c) for r in rows)))
    return tuple(counts), sums


# ======================================================================================
# FOCUS rows generated from the toolkit's column dictionaries
# ======================================================================================
_REGIONS = {  # ResourceLocation (lowercased) -> (RegionId, RegionName)
    "eastus": ("eastus", "East US"), "eastus2": ("eastus2", "East US 2"), "centralus": ("centralus", "Central US"),
    "westus": ("westus", "West US"), "westus2": ("westus2", "West US 2"), "ukwest": ("ukwest", "UK West"),
    "uksouth": ("uksouth", "UK South"), "southcentralus": ("southcentralus", "South Central US"),
}
_SERVICES = {  # ConsumedService (lowercased) -> ServiceName, ServiceCategory, ServiceSubcategory, x_ServiceModel
    "microsoft.compute": ("Virtual Machines", "Compute", "Virtual Machines", "IaaS"),
    "microsoft.storage": ("Storage Accounts", "Storage", "Storage Platform", "IaaS"),
    "microsoft.sql": ("Azure SQL Database", "Databases", "Relational Databases", "PaaS"),
    "microsoft.machinelearningservices": ("Azure Machine Learning", "AI and Machine Learning",
                                          "Machine Learning", "PaaS"),
    "microsoft.operationalinsights": ("Log Analytics", "Management and Governance", "Observability", "SaaS"),
    "microsoft.keyvault": ("Key Vault", "Security", "Security Posture Management", "PaaS"),
    "microsoft.dbformysql": ("Azure Database for MySQL", "Databases", "Relational Databases", "PaaS"),
    "microsoft.network": ("Virtual Network", "Networking", "Network Infrastructure", "IaaS"),
    "microsoft.capacity": ("Azure Reservations", "Compute", "Virtual Machines", "IaaS"),
}
_UOM = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMB]?)\s*(.*)$")


def pricing_unit(unit_of_measure: str) -> tuple[Decimal, str]:
    """(x_PricingBlockSize, PricingUnit) of a UnitOfMeasure: ``10K`` → (10000, Units),
    ``1 Hour`` → (1, Hours), ``1 GB/Month`` → (1, GB/Month). A simplification of the toolkit's
    PricingUnits.csv, enough for the sample's units."""
    m = _UOM.match(unit_of_measure or "")
    if not m:
        return Decimal(1), unit_of_measure or "Units"
    n = Decimal(m.group(1)) * {"": 1, "K": 1000, "M": 1000000, "B": 1000000000}[m.group(2)]
    unit = m.group(3).strip() or "Units"
    unit = {"Hour": "Hours", "Day": "Days", "/Month": "Units/Month", "/Day": "Units/Day"}.get(unit, unit)
    return n, unit


def _fmt_ts(d: date, version: str) -> str:
    # FOCUS 1.0 exports wrote "2024-01-01T00:00Z"; 1.0r2 and later add the seconds (Learn).
    return f"{d:%Y-%m-%d}T00:00Z" if version == "1.0" else f"{d:%Y-%m-%d}T00:00:00Z"


def _tags_json(ea_tags: str) -> str:
    t = (ea_tags or "").strip()
    if not t:
        return ""
    obj = json.loads(t if t.startswith("{") else "{" + t + "}")
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


class _FocusGen:
    """FOCUS rows for one period, built from the EA samples' real SKUs with the conversion
    Microsoft documents (docs-mslearn/focus/convert.md): on-demand usage, reservation and
    savings-plan usage (BilledCost 0, x_AmortizationClass "Amortized Charge"), unused
    reservation, a reservation purchase (EffectiveCost 0, "Principal"), a Marketplace purchase,
    spot usage, a refund and a rounding adjustment. Costs are exact Decimal products; the
    amortized ones carry 28 decimal places, as Cost Management writes them."""

    def __init__(self, period: str, version: str, seed: int, through: date | None):
        self.period, self.version = period, version
        self.start, self.last = period_bounds(period)
        self.end = min(through, self.last) if through else self.last
        self.rng = random.Random(f"{seed}/{period}")  # the same rows whatever the version
        self.skus = self._catalog()

    @staticmethod
    def _catalog() -> list[dict[str, str]]:
        rows = []
        for name in ("ea-amortized", "ea-actual"):
            t = _load_sample(SOURCES[name])
            rows += [dict(zip(t.columns, r.fields)) for r in t.records]
        seen, out = set(), []
        for r in rows:
            k = (r["MeterId"], r["ResourceId"], r["ChargeType"], r["PricingModel"])
            if k not in seen:
                seen.add(k)
                out.append({english_name(c): v for c, v in r.items()})
        return out

    def _days(self) -> list[date]:
        n = (self.end - self.start).days + 1
        return [self.start + timedelta(days=i) for i in range(max(n, 0))]

    def rows(self) -> list[dict[str, str]]:
        out: list[dict[str, str]] = []
        rng = self.rng
        usage = [s for s in self.skus if s["ChargeType"] == "Usage"]
        purchase = next(s for s in self.skus if s["ChargeType"] == "Purchase")
        reservation = next(s for s in usage if s["PricingModel"] == "Reservation")
        for day in self._days():
            for sku in usage:
                if rng.random() < 0.35:
                    out.append(self._usage(sku, day))
            if rng.random() < 0.3:
                out.append(self._unused(reservation, day))
        if self.start <= self.end:
            first = self.start
            out.append(self._purchase(purchase, first))
            out.append(self._marketplace(first))
            out.append(self._spot(next(s for s in usage if s["ConsumedService"].lower() == "microsoft.compute"
                                       and s["PricingModel"] == "OnDemand"), first))
            out.append(self._refund(purchase, self.end))
            out.append(self._rounding(self.end))
        out.sort(key=lambda r: (r["ChargePeriodStart"], r["ChargeCategory"], r["x_SkuMeterId"], r["ResourceId"]))
        return out

    # --- one row per kind ------------------------------------------------------------
    def _base(self, sku: dict[str, str], day: date) -> dict[str, str]:
        v = self.version
        block, unit = pricing_unit(sku.get("UnitOfMeasure", ""))
        loc = (sku.get("ResourceLocation") or "").lower()
        region = _REGIONS.get(loc, ("", ""))
        svc = _SERVICES.get((sku.get("ConsumedService") or "").lower(), ("", "Other", "Other", ""))
        rid = (sku.get("ResourceId") or "").lower()
        rg = sku.get("ResourceGroup", "")
        return {
            "BillingAccountId": f"/providers/Microsoft.Billing/billingAccounts/{sku['BillingAccountId']}",
            "BillingAccountName": sku["BillingAccountName"], "BillingAccountType": "Billing Account",
            "BillingCurrency": sku["BillingCurrency"],
            "BillingPeriodStart": _fmt_ts(self.start, v), "BillingPeriodEnd": _fmt_ts(self.last + timedelta(days=1), v),
            "ChargeDescription": sku.get("Product", ""), "ChargeFrequency": "Usage-Based",
            "ChargePeriodStart": _fmt_ts(day, v), "ChargePeriodEnd": _fmt_ts(day + timedelta(days=1), v),
            "ConsumedUnit": unit, "InvoiceIssuerName": "Microsoft", "PricingCurrency": sku["BillingCurrency"],
            "PricingUnit": unit, "ProviderName": "Microsoft", "PublisherName": "Microsoft",
            "RegionId": region[0], "RegionName": region[1], "ResourceId": rid,
            "ResourceName": (sku.get("ResourceName") or rid.rstrip("/").rsplit("/", 1)[-1]).lower(),
            "ResourceType": _resource_type(rid), "ServiceCategory": svc[1], "ServiceName": svc[0],
            "ServiceSubcategory": svc[2], "SkuId": "", "SkuMeter": sku.get("MeterName", ""),
            "SkuPriceId": "", "SubAccountId": f"/subscriptions/{sku['SubscriptionId']}" if sku.get("SubscriptionId") else "",
            "SubAccountName": sku.get("SubscriptionName", ""), "SubAccountType": "Subscription" if sku.get("SubscriptionId") else "",
            "Tags": _tags_json(sku.get("Tags", "")),
            "x_AccountName": sku.get("AccountName", ""), "x_AccountOwnerId": sku.get("AccountOwnerId", ""),
            "x_BillingAccountId": sku["BillingAccountId"], "x_BillingAccountName": sku["BillingAccountName"],
            "x_BillingExchangeRate": "1", "x_BillingExchangeRateDate": _fmt_ts(self.start, v),
            "x_BillingProfileId": sku["BillingProfileId"], "x_BillingProfileName": sku["BillingProfileName"],
            "x_CostCenter": sku.get("CostCenter", ""), "x_InvoiceSectionId": sku.get("InvoiceSectionId", ""),
            "x_InvoiceSectionName": sku.get("InvoiceSection", ""), "x_PricingBlockSize": _dec_text(block),
            "x_PricingCurrency": sku["BillingCurrency"], "x_PricingUnitDescription": sku.get("UnitOfMeasure", ""),
            "x_PublisherCategory": "Cloud Provider", "x_ResourceGroupName": rg.lower(),
            "x_ResourceType": _arm_type(rid), "x_ServiceModel": svc[3], "x_SkuDescription": sku.get("Product", ""),
            "x_SkuDetails": sku.get("AdditionalInfo", ""), "SkuPriceDetails": _price_details(sku.get("AdditionalInfo", "")),
            "x_SkuIsCreditEligible": "true" if sku.get("IsAzureCreditEligible", "").lower() == "true" else "false",
            "x_SkuMeterCategory": sku.get("MeterCategory", ""), "x_SkuMeterId": sku.get("MeterId", ""),
            "x_SkuMeterName": sku.get("MeterName", ""), "x_SkuMeterSubcategory": sku.get("MeterSubCategory", ""),
            "x_SkuOfferId": sku.get("OfferId", ""), "x_SkuOrderId": sku.get("ProductOrderId", ""),
            "x_SkuOrderName": sku.get("ProductOrderName", ""), "x_SkuPartNumber": sku.get("PartNumber", ""),
            "x_SkuPlanName": sku.get("PlanName", ""), "x_SkuRegion": sku.get("MeterRegion", ""),
            "x_SkuServiceFamily": sku.get("ServiceFamily", ""), "x_SkuTerm": sku.get("Term", ""),
            "AvailabilityZone": sku.get("AvailabilityZone", ""),
        }

    def _money(self, row: dict[str, str], qty: Decimal, list_price: Decimal, contracted: Decimal,
               effective: Decimal, billed: Decimal | None, eff_cost: Decimal | None) -> dict[str, str]:
        block = Decimal(row["x_PricingBlockSize"] or "1")
        with localcontext() as ctx:
            ctx.prec = 60
            cost = qty * effective if eff_cost is None else eff_cost
            row.update({
                "ConsumedQuantity": _dec_text(qty), "PricingQuantity": _dec_text(qty / block),
                "ListUnitPrice": _dec_text(list_price), "ContractedUnitPrice": _dec_text(contracted),
                "x_EffectiveUnitPrice": _dec_text(effective),
                "x_BilledUnitPrice": _dec_text(effective if billed is None or billed != 0 else Decimal(0)),
                "ListCost": _dec_text(qty * list_price), "ContractedCost": _dec_text(qty * contracted),
                "EffectiveCost": _dec_text(cost), "BilledCost": _dec_text(cost if billed is None else billed),
            })
        for c in ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost"):
            row[f"x_{c}InUsd"] = row[c] if row["BillingCurrency"] == "USD" else ""
        return row

    def _qty(self, sku: dict[str, str]) -> Decimal:
        base = Decimal(sku.get("Quantity") or "1")
        factor = Decimal(self.rng.randint(5, 400)) / Decimal(100)
        return (base * factor).quantize(Decimal("1e-8")).normalize()

    def _usage(self, sku: dict[str, str], day: date) -> dict[str, str]:
        row = self._base(sku, day)
        qty = self._qty(sku)
        eff = Decimal(sku.get("EffectivePrice") or "0")
        unit = Decimal(sku.get("UnitPrice") or "0")
        listp = Decimal(sku.get("PayGPrice") or "0") or unit
        model = sku.get("PricingModel", "OnDemand")
        row["ChargeCategory"], row["ChargeClass"] = "Usage", ""
        if model in ("Reservation", "SavingsPlan"):
            res = model == "Reservation"
            with localcontext() as ctx:
                ctx.prec = 40
                amortized = (qty * eff * Decimal(self.rng.randint(7000, 10000)) / Decimal(9973)).quantize(Decimal("1e-28"))
            row.update({"PricingCategory": "Committed", "x_PricingSubcategory": f"Committed {'Usage' if res else 'Spend'}",
                        "CommitmentDiscountCategory": "Usage" if res else "Spend",
                        "CommitmentDiscountId": sku.get("benefitId", "").lower(), "CommitmentDiscountName": sku.get("benefitName", ""),
                        "CommitmentDiscountStatus": "Used", "CommitmentDiscountType": "Reservation" if res else "Savings Plan",
                        "x_AmortizationClass": "Amortized Charge"})
            return self._money(row, qty, listp, unit, eff, Decimal(0), amortized)
        row.update({"PricingCategory": "Standard", "x_PricingSubcategory": "Standard", "x_AmortizationClass": ""})
        return self._money(row, qty, listp, unit, eff, None, None)

    def _unused(self, sku: dict[str, str], day: date) -> dict[str, str]:
        row = self._usage(sku, day)
        with localcontext() as ctx:
            ctx.prec = 40
            unused = (Decimal(self.rng.randint(1, 900)) / Decimal(7919)).quantize(Decimal("1e-28"))
        row.update({"CommitmentDiscountStatus": "Unused", "ResourceId": row["CommitmentDiscountId"],
                    "ResourceName": row["CommitmentDiscountName"].lower(), "ResourceType": "Reservation",
                    "x_ResourceType": "microsoft.capacity/reservationorders/reservations", "x_ResourceGroupName": "",
                    "EffectiveCost": _dec_text(unused), "BilledCost": "0", "ConsumedQuantity": "",
                    "x_EffectiveCostInUsd": _dec_text(unused), "x_BilledCostInUsd": "0", "Tags": ""})
        return row

    def _purchase(self, sku: dict[str, str], day: date) -> dict[str, str]:
        row = self._base(sku, day)
        cost = Decimal(sku.get("Cost") or "0")
        row.update({"ChargeCategory": "Purchase", "ChargeClass": "", "ChargeFrequency": "Recurring",
                    "PricingCategory": "Standard", "x_PricingSubcategory": "Standard",
                    "CommitmentDiscountCategory": "Usage", "CommitmentDiscountId": sku.get("benefitId", "").lower(),
                    "CommitmentDiscountName": sku.get("benefitName", ""), "CommitmentDiscountType": "Reservation",
                    "CommitmentDiscountStatus": "", "x_AmortizationClass": "Principal",
                    "ResourceName": sku.get("benefitName", "").lower(), "ResourceType": "Reservation",
                    "x_ResourceType": "microsoft.capacity/reservationorders/reservations",
                    "ServiceName": "Azure Reservations"})
        row = self._money(row, Decimal(1), cost, cost, cost, cost, Decimal(0))
        row["ConsumedQuantity"], row["ConsumedUnit"] = "", ""
        return row

    def _refund(self, sku: dict[str, str], day: date) -> dict[str, str]:
        row = self._purchase(sku, day)
        amount = -(Decimal(sku.get("Cost") or "0") * Decimal(self.rng.randint(1, 9)) / Decimal(30)).quantize(Decimal("1e-16"))
        row.update({"ChargeClass": "Correction", "ChargeFrequency": "One-Time", "BilledCost": _dec_text(amount),
                    "x_BilledCostInUsd": _dec_text(amount), "EffectiveCost": "0", "x_EffectiveCostInUsd": "0",
                    "ListCost": _dec_text(amount), "ContractedCost": _dec_text(amount),
                    "x_ListCostInUsd": _dec_text(amount), "x_ContractedCostInUsd": _dec_text(amount)})
        return row

    def _marketplace(self, day: date) -> dict[str, str]:
        sku = dict(self.skus[0])
        sku.update({"Product": "SendGrid - Pro 100K", "MeterName": "Pro 100K", "MeterCategory": "SaaS",
                    "MeterSubCategory": "SendGrid", "ConsumedService": "", "ResourceId": "", "ResourceName": "",
                    "UnitOfMeasure": "1/Month", "Tags": "", "AdditionalInfo": "", "PartNumber": "", "MeterId": "",
                    "PlanName": "pro-100k", "ResourceLocation": "", "ResourceGroup": "", "ProductOrderId": "",
                    "ProductOrderName": "", "Term": "1", "MeterRegion": "", "ServiceFamily": "",
                    "IsAzureCreditEligible": "False"})
        row = self._base(sku, day)
        row.update({"ChargeCategory": "Purchase", "ChargeClass": "", "ChargeFrequency": "Recurring",
                    "PricingCategory": "Standard", "x_PricingSubcategory": "Standard", "x_AmortizationClass": "",
                    "PublisherName": "Twilio SendGrid", "x_PublisherCategory": "Vendor", "ServiceName": "SendGrid",
                    "ServiceCategory": "Web", "ServiceSubcategory": "Other (Web)", "x_ServiceModel": "SaaS"})
        price = Decimal("89.95")
        return self._money(row, Decimal(1), price, price, price, None, None)

    def _spot(self, sku: dict[str, str], day: date) -> dict[str, str]:
        row = self._usage(sku, day)
        qty = Decimal(row["ConsumedQuantity"])
        price = (Decimal(sku.get("EffectivePrice") or "0.05") * Decimal("0.2")).quantize(Decimal("1e-6"))
        row.update({"PricingCategory": "Dynamic", "x_PricingSubcategory": "Spot",
                    "ChargeDescription": row["ChargeDescription"] + " Spot"})
        return self._money(row, qty, Decimal(sku.get("PayGPrice") or "0") or price, price, price, None, None)

    def _rounding(self, day: date) -> dict[str, str]:
        sku = dict(self.skus[0])
        sku.update({"Product": "Rounding Adjustment", "MeterName": "", "MeterCategory": "RoundingAdjustment",
                    "MeterSubCategory": "", "ConsumedService": "", "ResourceId": "", "ResourceName": "",
                    "UnitOfMeasure": "", "Tags": "", "AdditionalInfo": "", "PartNumber": "", "MeterId": "",
                    "ResourceLocation": "", "SubscriptionId": "", "SubscriptionName": "", "ResourceGroup": "",
                    "ProductOrderId": "", "ProductOrderName": "", "Term": "", "MeterRegion": "",
                    "ServiceFamily": "", "PlanName": "", "IsAzureCreditEligible": "False"})
        row = self._base(sku, day)
        amount = Decimal("-0.0000013721946104711262530000")
        row.update({"ChargeCategory": "Adjustment", "ChargeClass": "", "ChargeFrequency": "One-Time",
                    "PricingCategory": "", "x_PricingSubcategory": "", "x_AmortizationClass": "", "RegionName": "Global",
                    "ServiceName": "", "ServiceCategory": "Other", "ServiceSubcategory": "Other"})
        row = self._money(row, Decimal(0), Decimal(0), Decimal(0), Decimal(0), amount, amount)
        row.update({"ConsumedQuantity": "", "PricingQuantity": "", "ListCost": "0", "ContractedCost": "0"})
        return row


def _resource_type(rid: str) -> str:
    t = _arm_type(rid)
    return {"microsoft.compute/virtualmachinescalesets": "Virtual machine scale set",
            "microsoft.compute/virtualmachines": "Virtual machine", "microsoft.storage/storageaccounts": "Storage account",
            "microsoft.sql/servers/databases": "SQL database", "microsoft.keyvault/vaults": "Key vault",
            "microsoft.capacity/reservationorders/reservations": "Reservation"}.get(t, t.rsplit("/", 1)[-1] if t else "")


def _arm_type(rid: str) -> str:
    parts = [p for p in (rid or "").lower().split("/") if p]
    if "providers" not in parts:
        return ""
    i = len(parts) - 1 - parts[::-1].index("providers")
    ns, rest = parts[i + 1] if i + 1 < len(parts) else "", parts[i + 2:]
    return "/".join([ns] + rest[0::2]) if ns else ""


def _price_details(additional_info: str) -> str:
    # convert.md: SkuPriceDetails = AdditionalInfo with every property name prefixed "x_".
    if not additional_info:
        return ""
    try:
        obj = json.loads(additional_info)
    except ValueError:
        return ""
    return json.dumps({f"x_{k}": v for k, v in obj.items()}, separators=(",", ":"))


def focus_table(source: Source, period: str, seed: int = 0, through: date | None = None,
                bom: bool = True) -> _Table:
    """A generated FOCUS export (the schema's columns, in its order) as a _Table."""
    columns = list(_focus_types(source.schema))
    gen = _FocusGen(period, source.data_version or "1.2", seed, through)
    rows = gen.rows()
    header = _Rec(_serialise(columns) + b"\n", columns, b"\n")
    recs = []
    for r in rows:
        fields = [r.get(c, "") for c in columns]
        recs.append(_Rec(_serialise(fields) + b"\n", fields, b"\n"))
    return _Table(BOM if bom else b"", header, recs)


# ======================================================================================
# The builder
# ======================================================================================
def _default_submitted(period: str, through: date | None) -> datetime:
    start, last = period_bounds(period)
    if through:
        d = through + timedelta(days=1)
        return datetime(d.year, d.month, d.day, 5, 17, 42, 123456, tzinfo=timezone.utc)
    d = last + timedelta(days=5)  # "Monthly export of last month's costs" runs on the 5th
    return datetime(d.year, d.month, d.day, 6, 3, 11, 654321, tzinfo=timezone.utc)


def _prepare(source: Source, period: str | None, rows, through: date | None, drop_columns: Sequence[str],
             seed: int, bom: bool) -> tuple[_Table, list[_Rec], str, bool]:
    if source.path is None:
        p = period or GENERATED_DEFAULT_PERIOD
        table = focus_table(source, p, seed, through, bom)
        return table, _select(table, rows), p, False
    table = _load_sample(source)
    if source.name == "focus-sample-azure":  # only the Microsoft rows of the multi-cloud sample
        i = table.index("ProviderName")
        table.records = [r for r in table.records if r.fields[i] == "Microsoft"]
    p = period or source.period or GENERATED_DEFAULT_PERIOD
    shifted = False
    if source.period and p != source.period:
        _shift_table(table, _month_delta(source.period, p))
        shifted = True
    if drop_columns:
        _drop_columns(table, drop_columns)
    recs = _select(table, rows)
    if through:
        recs = [r for r in recs if (d := _row_date(table, r)) is None or d <= through]
    return table, recs, p, shifted


def build_azure_export(
    root: str | os.PathLike,
    layout: str = "manifest",
    dataset: str = "ActualCost",
    export: str = "demo-actual",
    directory: str = "exports",
    period: str | None = None,
    run_id: str | None = None,
    fmt: str = "csv",
    source: str | None = None,
    files: int = 1,
    overwrite: bool = False,
    submitted: str | datetime | None = None,
    *,
    through: str | date | None = None,
    scope: str | None = None,
    rows=None,
    file_prefix: str | None = None,
    data_version: str | None = None,
    drop_columns: Sequence[str] = (),
    folder_range: str | None = None,
    content_md5: bool = False,
    execution_type: str = "Scheduled",
    seed: int = 0,
    bom: bool = True,
) -> AzureDelivery:
    """Write one export run under ``root`` (a container mirror) and describe it.

    root:      local folder standing for the container (blob ``K`` = file ``root/K``)
    layout:    "manifest" (2024-04-01 manifest), "legacy" (no manifest, one CSV) or
               "partitioned-2021" (``_manifest.json`` 2021-01-01, ``000001.csv`` parts)
    dataset:   exportConfig.type: "ActualCost", "AmortizedCost" or "FocusCost"
    export:    the export's name (exportConfig.exportName, the folder under ``directory``)
    directory: the export's root folder path (deliveryConfig.rootFolderPath), may be nested
    period:    billing month "YYYY-MM"; default the sample's own (2023-09 for the EA samples
               and generated FOCUS). Another month moves the sample's dates there, month by
               month, each date in its own format; nothing else changes.
    run_id:    runInfo.runId / the legacy file's GUID; default derived from the run
    fmt:       "csv", "csv.gz" (compressionMode Gzip) or "parquet" (Snappy); legacy: csv only
    source:    a name in SOURCES (default: ea-actual, ea-amortized or focus-1.2 by dataset)
    files:     part files to split the rows over (each with the header); legacy: 1
    overwrite: OverwritePreviousReport: the range folder's earlier runs are deleted and this
               run goes to <range>/<runId>/; default CreateNewReport (<range>/<time>/<runId>/)
    submitted: runInfo.submittedTime (also the files' mtime, the local Last-Modified);
               default the 5th of the next month, or the day after ``through``
    through:   last day of a month-to-date run: rows after it are left out, runInfo.endDate
               and timeFrame say so (the folder stays the month's range)
    scope:     the scope the export is defined at (default: the sample's billing account)
    rows:      None | int | slice | indices | predicate(dict) selecting sample rows
    file_prefix: the legacy file name's prefix (default the export name; tools differ)
    data_version: exportConfig.dataVersion (default 2021-10-01, or the FOCUS version)
    drop_columns: sample columns to leave out (an older schema, see build_new_column_midyear)
    folder_range: the range folder, for one-time exports of a custom range
    content_md5: partitioned-2021: add blobs[].contentMD5 (base64 MD5, as Learn shows)
    bom:       generated FOCUS CSV: start with a UTF-8 BOM like the EA samples
    """
    root = Path(root)
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")
    if layout != "manifest" and fmt != "csv":
        raise ValueError(f"{layout} exports are CSV only (fmt={fmt!r})")
    if layout == "legacy" and files != 1:
        raise ValueError("a legacy export run writes exactly one file")
    if layout != "manifest" and overwrite:
        raise ValueError(f"{layout} exports never overwrite: each run is a new file")
    src = SOURCES[source or DEFAULT_SOURCE[dataset]]
    if (dataset == "FocusCost") != (src.dataset == "FocusCost"):
        raise ValueError(f"source {src.name!r} holds {src.dataset} columns, not {dataset}")
    through_d = _as_date(through)

    table, recs, period, shifted = _prepare(src, period, rows, through_d, drop_columns, seed, bom)
    start, last = period_bounds(period)
    if through_d and not start <= through_d <= last:
        raise ValueError(f"through={through_d} is outside {period}")
    end = through_d or last
    date_range = folder_range or date_range_folder(start, last)
    when = _as_datetime(submitted) or _default_submitted(period, through_d)
    rid = run_id or str(uuid.uuid5(uuid.NAMESPACE_URL, f"{directory}/{export}/{date_range}/{azure_time(when)}"))
    scope = (scope or src.scope).rstrip("/")
    version = data_version or src.data_version or COST_DATA_VERSION
    header = tuple(h.replace("\ufeff", "") for h in table.columns)
    cols = cost_columns(header)

    base = _join(directory, export, date_range)
    removed: list[str] = []
    if layout == "manifest" and overwrite:
        folder = root / base
        if folder.exists():
            removed = sorted(p.relative_to(root).as_posix() for p in folder.rglob("*") if p.is_file())
            shutil.rmtree(folder)
        run_dir = _join(base, rid)
    elif layout == "legacy":
        run_dir = base
    else:
        run_dir = _join(base, f"{when:%Y%m%d%H%M}", rid)

    # --- data files ------------------------------------------------------------------
    data_keys: list[str] = []
    blobs: list[dict[str, Any]] = []
    if files > max(1, len(recs)):
        raise ValueError(f"files={files} but the run has only {len(recs)} row(s): a part file is never empty")
    chunks = [recs[a:b] for a, b in _split(len(recs), files)]
    for n, chunk in enumerate(chunks):
        if layout == "legacy":
            key = _join(run_dir, f"{file_prefix or export}_{rid}.csv")
        elif layout == "partitioned-2021":
            key = _join(run_dir, f"{n + 1:06d}.csv")
        else:
            ext = {"csv": "csv", "csv.gz": "csv.gz", "parquet": "snappy.parquet"}[fmt]
            key = _join(run_dir, f"part_{n}_0001.{ext}")
        if fmt == "parquet":
            kinds = (_focus_types(src.schema or "focuscost_1.0.json") if src.family == "focus"
                     else {c: _cost_details_type(c) for c in table.columns})
            data = _parquet_bytes(list(header), [r.fields for r in chunk], kinds)
        else:
            data = table.to_bytes(chunk)
            if fmt == "csv.gz":
                data = _gzip(data)
        _write(root, key, data, when)
        data_keys.append(key)
        blob = {"blobName": key, "byteCount": len(data), "dataRowCount": len(chunk)}
        if layout == "partitioned-2021":
            blob["headerRowCount"] = 1
            if content_md5:
                blob["contentMD5"] = base64.b64encode(hashlib.md5(data).digest()).decode()
        blobs.append(blob)

    # --- manifest --------------------------------------------------------------------
    manifest_key = None
    if layout == "manifest":
        manifest_key = _join(run_dir, "manifest.json")
        manifest = {
            "manifestVersion": MANIFEST_VERSION,
            "byteCount": sum(b["byteCount"] for b in blobs),
            "blobCount": len(blobs),
            "dataRowCount": sum(b["dataRowCount"] for b in blobs),
            "exportConfig": {
                "exportName": export,
                "resourceId": f"{scope}/providers/Microsoft.CostManagement/exports/{export}",
                "dataVersion": version,
                "apiVersion": API_VERSION,
                "type": dataset,
                "timeFrame": "MonthToDate" if through_d else ("Custom" if folder_range else "TheLastMonth"),
                "granularity": "Daily",
            },
            "deliveryConfig": {
                "partitionData": True,
                "dataOverwriteBehavior": "OverwritePreviousReport" if overwrite else "CreateNewReport",
                "fileFormat": "Parquet" if fmt == "parquet" else "Csv",
                "compressionMode": {"csv": "None", "csv.gz": "Gzip", "parquet": "Snappy"}[fmt],
                "containerUri": CONTAINER_URI,
                "rootFolderPath": directory,
            },
            "runInfo": {
                "executionType": execution_type,
                "submittedTime": azure_time(when),
                "runId": rid,
                # as Learn's sample: startDate without a zone, endDate with "Z"
                "startDate": f"{start:%Y-%m-%d}T00:00:00",
                "endDate": f"{end:%Y-%m-%d}T00:00:00Z",
            },
            "blobs": blobs,
        }
        _write(root, manifest_key, (json.dumps(manifest, indent=2) + "\n").encode("utf-8"), when)
    elif layout == "partitioned-2021":
        manifest_key = _join(run_dir, "_manifest.json")
        manifest = {
            "manifestVersion": MANIFEST_VERSION_2021,
            "dataFormat": "csv",
            "blobCount": len(blobs),
            "byteCount": sum(b["byteCount"] for b in blobs),
            "dataRowCount": sum(b["dataRowCount"] for b in blobs),
            "blobs": blobs,
        }
        _write(root, manifest_key, (json.dumps(manifest, indent=4) + "\n").encode("utf-8"), when)

    counts, sums = _read_back(root, data_keys, cols)
    return AzureDelivery(
        root=root, layout=layout, dataset=dataset, data_version=version, export=export, directory=directory,
        scope=scope, period=period, date_range=date_range, start_date=start, end_date=end, run_id=rid,
        submitted=when, overwrite=overwrite, fmt=fmt, source=src.name, shifted=shifted,
        data_keys=tuple(data_keys), manifest_key=manifest_key, removed_keys=tuple(removed), header=header,
        rows_per_file=counts, rows=sum(counts), cost_columns=cols, sums=sums, month_to_date=through_d is not None,
    )


# ======================================================================================
# Scenarios
# ======================================================================================
def restate(root: str | os.PathLike, *, through: str | date | None = "auto", overwrite: bool = False,
            layout: str = "manifest", first_run_id: str | None = None, second_run_id: str | None = None,
            submitted: str | datetime | None = None, **kw) -> Restated:
    """Two runs of the same range: a month-to-date run (``through``; "auto" = the 14th, None =
    a first full-month run) then the full month, delivered later with a new run id.
    CreateNewReport keeps both run folders (the newer manifest is current); ``overwrite=True``
    leaves only the second; ``layout="legacy"`` leaves two CSVs in the range folder, the newer
    (by Last-Modified, i.e. file mtime here) current. ``submitted`` is the second run's time;
    ``kw`` goes to both build_azure_export calls."""
    src = SOURCES[kw.get("source") or DEFAULT_SOURCE[kw.get("dataset", "ActualCost")]]
    period = kw.pop("period", None) or src.period or GENERATED_DEFAULT_PERIOD
    start, _ = period_bounds(period)
    t = start + timedelta(days=13) if through == "auto" else _as_date(through)
    first = build_azure_export(root, layout=layout, overwrite=overwrite, period=period, through=t,
                               run_id=first_run_id, **kw)
    later = _as_datetime(submitted) or max(first.submitted + timedelta(days=1), _default_submitted(period, None))
    second = build_azure_export(root, layout=layout, overwrite=overwrite, period=period, run_id=second_run_id,
                                submitted=later, **kw)
    return Restated(first, second)


NEW_BENEFIT_COLUMNS = ("benefitId", "benefitName")


def build_new_column_midyear(root: str | os.PathLike, year: int = 2023, change_month: int = 7,
                             new_columns: Sequence[str] = NEW_BENEFIT_COLUMNS, months: Sequence[int] = range(1, 13),
                             source: str = "ea-actual", dataset: str = "ActualCost", **kw) -> ExportSeries:
    """One export, one delivery a month: before ``change_month`` the files lack
    ``new_columns`` (EA's ``benefitId``/``benefitName``, absent from the 2021-01-01 cost details
    schema and present from 2021-10-01), from it on they have them. The sample's rows are moved
    into each month; the cost totals are the same every month."""
    out = []
    for m in months:
        period = f"{year:04d}-{m:02d}"
        drop = tuple(new_columns) if m < change_month else ()
        out.append(build_azure_export(root, period=period, source=source, dataset=dataset, drop_columns=drop, **kw))
    return ExportSeries(tuple(out), f"{year:04d}-{change_month:02d}", tuple(new_columns))


def build_two_scopes(root: str | os.PathLike, *, export: str = "demo-actual", subscription_id: str | None = None,
                     source: str = "ea-actual", dataset: str = "ActualCost", layout: str = "manifest", **kw) -> TwoScopes:
    """The same export name defined at a subscription and at the billing account, each under
    its own root folder path (the scope's resource ID without the leading "/", as the toolkit
    sets it): ``subscriptions/<id>/<export>/...`` and
    ``providers/Microsoft.Billing/billingAccounts/<id>/<export>/...``. The subscription's rows
    are the billing account's rows of that subscription, so the two overlap: a loader must
    keep them as two exports (keyed by exportConfig.resourceId), never merge them by name."""
    src = SOURCES[source]
    table = _load_sample(src)
    i = table.index("SubscriptionId", "SubscriptionGuid")
    if subscription_id is None:
        ids = [r.fields[i] for r in table.records]
        subscription_id = max(sorted(set(ids)), key=ids.count)
    sub_scope = f"/subscriptions/{subscription_id}"
    col = table.columns[i]
    sub = build_azure_export(root, layout=layout, dataset=dataset, export=export, directory=sub_scope.strip("/"),
                             source=source, scope=sub_scope, rows=lambda r: r[col] == subscription_id, **kw)
    ba = build_azure_export(root, layout=layout, dataset=dataset, export=export, directory=src.scope.strip("/"),
                            source=source, scope=src.scope, **kw)
    return TwoScopes(sub, ba, subscription_id)


def build_mixed_container(root: str | os.PathLike, directory: str = "exports") -> MixedContainer:
    """Every kind in one container, under one root folder:

        <dir>/ea-actual/...       manifest, ActualCost, csv
        <dir>/ea-amortized/...    manifest, AmortizedCost, csv.gz, 2 part files
        <dir>/focus-cost/...      manifest, FocusCost 1.2, parquet, overwrite
        <dir>/mca-actual/...      manifest, ActualCost from the MCA sample (2023-08)
        <dir>/legacy-actual/...   legacy CSV, two runs of 2023-09 (restated)
        <dir>/partitioned/...     partitioned-2021, the Excel-touched EA sample
        <dir>/empty-month/...     manifest, header only (dataRowCount 0)"""
    r = Path(root)
    d = {
        "ea-actual": build_azure_export(r, directory=directory, export="ea-actual"),
        "ea-amortized": build_azure_export(r, directory=directory, export="ea-amortized", dataset="AmortizedCost",
                                           fmt="csv.gz", files=2),
        "focus-cost": build_azure_export(r, directory=directory, export="focus-cost", dataset="FocusCost",
                                         fmt="parquet", overwrite=True),
        "mca-actual": build_azure_export(r, directory=directory, export="mca-actual", source="mca"),
        "partitioned": build_azure_export(r, layout="partitioned-2021", directory=directory, export="partitioned",
                                          source="ea-excel", files=2),
        "empty-month": build_azure_export(r, directory=directory, export="empty-month", source="ea-norows",
                                          period="2023-10"),
    }
    restated = restate(r, layout="legacy", directory=directory, export="legacy-actual")
    return MixedContainer(r, d, restated)


# ======================================================================================
# Upload to a real container (Azurite)
# ======================================================================================
def delivery_order(root: str | os.PathLike) -> list[str]:
    """Every key under ``root`` in the order Cost Management would have written them: by the
    file's mtime (the run's submittedTime), data before the run's manifest."""
    root = Path(root)
    files = [p for p in root.rglob("*") if p.is_file()]
    is_manifest = lambda p: p.name in ("manifest.json", "_manifest.json")  # noqa: E731
    files.sort(key=lambda p: (p.stat().st_mtime, is_manifest(p), p.relative_to(root).as_posix()))
    return [p.relative_to(root).as_posix() for p in files]


def upload_tree(container_client, root: str | os.PathLike) -> list[str]:
    """Upload every file under ``root`` to the container at its relative key, in delivery
    order (manifests after their data). Creates the container when missing. Returns the keys."""
    root = Path(root)
    try:
        container_client.create_container()
    except Exception as exc:  # azure.core.exceptions.ResourceExistsError
        if type(exc).__name__ != "ResourceExistsError":
            raise
    keys = delivery_order(root)
    for key in keys:
        with open(root / key, "rb") as f:
            container_client.upload_blob(name=key, data=f.read(), overwrite=True)
    return keys
