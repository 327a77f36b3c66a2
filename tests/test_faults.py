"""The fault suite (issue 7): bad inputs and faults, each checked for a clear error and for no good row lost.

Every case starts from a *good* state already in every destination (staging, DuckDB, Parquet and,
where it matters, BigQuery), injects one fault, runs `finops` as a user does (a subprocess; or
papermill for the notebook), and compares the destinations before and after:

- DuckDB: per period rows, delivery ids, exact cost sums and export ids, and the whole load log;
- Parquet: per file (of every export's folder) its hash, row count and finops metadata;
- BigQuery: per period rows, delivery ids, exact sums and export ids, and the tables of the dataset;
- staging: the file tree with hashes (every export's folder). Staging is the download cache of the bucket's *current*
  delivery: a period keeps its previous staged delivery byte for byte, or holds a complete copy of
  the new delivery that is byte-identical to the bucket (never a mix, never a partial file under
  its final name).

Where the case says so, the fault is then removed and a re-run must complete with exact totals.
A case that fails here is a library bug (see docs/FAULTS.md): nothing is skipped or expected to fail.

Bases are built once per module and copied per test; BigQuery datasets are cloned per test from one
loaded base dataset (CREATE TABLE ... AS SELECT on the shared emulator, unique names).
"""
from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import random
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

import cur_fixtures as cf
import servers
from faults_helpers import (FINOPS, FaultProxy, Result, bq_state, clean_env, duck_state, finops, md5, parquet_state,
                            start_finops, tree, wait_for)
from finops_nb.aws.manifests import aws_export
from finops_nb.config import load_config
from finops_nb.localdb import load_billing_local
from finops_nb.parquet import export_parquet
from finops_nb.pipeline import extract_billing, reconcile
from finops_nb.staging import MARKER
from helpers import parquet_of, staged, staging_of

ROOT = Path(__file__).resolve().parents[1]
BUCKET = cf.DEFAULT_BUCKET
UNBLENDED = "line_item_unblended_cost"
V1_TOP_DEC = "cur/demo-cur/20231201-20240101/demo-cur-Manifest.json"
SECRET_FILE = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SECRET_ENV = "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY"
KEY_ID = "AKIAIOSFODNN7EXAMPLE"

# ======================================================================================
# Every case of the suite, by family (docs/FAULTS.md lists them with their results)
# ======================================================================================
DATA_CASES = ["corrupt_gzip_stream", "corrupt_gzip_crc", "truncated_gzip", "zero_byte_file", "header_only_file",
              "header_only_period", "wrong_field_count", "non_numeric_money", "one_mb_field", "non_utf8_bytes"]
MANIFEST_CASES = ["manifest_invalid_json", "manifest_missing_report_keys", "manifest_missing_data_files_v2",
                  "manifest_key_missing_in_s3", "manifest_key_dotdot", "manifest_key_absolute",
                  "manifest_period_disagrees", "manifest_duplicate_keys"]
COLUMN_CASES = ["hostile_column_names", "tag_collision", "type_change_between_months"]
S3_CASES = ["s3_slowdown_then_ok", "s3_500_window_then_ok", "s3_permanent_list_extract",
            "s3_permanent_download_extract", "s3_permanent_run_pipeline"]
KILL_CASES = ["kill_download", "kill_duckdb_load", "kill_parquet_write", "kill_bigquery_upload", "kill_bigquery_commit"]
BIGQUERY_CASES = ["bigquery_down_run_pipeline", "bigquery_down_load_remote"]
LOCK_CASES = ["lock_two_pipelines", "lock_duckdb_load"]
SECRET_CASES = ["secrets_cli_outputs", "secrets_papermill_report"]
CONFIG_KINDS = ["missing_file", "malformed_toml", "unknown_key", "cur_version_v3", "bad_date"]
CONFIG_CASES = [f"config_{k}_{via}" for via in ("cli", "papermill") for k in CONFIG_KINDS] + ["config_bad_date_papermill_parameter"]
CASES = (DATA_CASES + MANIFEST_CASES + COLUMN_CASES + S3_CASES + KILL_CASES + BIGQUERY_CASES + LOCK_CASES
         + SECRET_CASES + CONFIG_CASES)
assert len(CASES) == len(set(CASES)) == 48


# ======================================================================================
# Bases, built once per module
#
# An export's id names its source (the resolved folder of a local mirror, or the S3 bucket): a copy
# of a base whose bucket sits in another folder would be *another* export. So every world read
# from a local mirror has its bucket at one folder (`mirror`, restored from the base's copy before
# each test), and the worlds read from S3 start from bases built from the S3 server (bucket
# `billing-bucket`, the same whatever the world's folder).
# ======================================================================================
def _cfg(root, export="demo-cur", prefix="cur", cur="v1", source=None, **kw):
    "A Config writing under `root`, reading the export from `source` (default: the local mirror root/bucket)."
    over = {"aws.bucket": source or f"file://{root / 'bucket'}", "aws.prefix": prefix, "aws.export_name": export,
            "aws.cur_version": cur, "staging_dir": str(root / "staging"), "parquet_dir": str(root / "parquet"),
            "database.duckdb.database_path": str(root / "finops.duckdb"), **kw}
    return load_config(None, over, environ={})


def _stage_load_export(*cfgs):
    "Stage, load and export every period of each config's export (its Parquet and its FOCUS files); fail on any problem."
    for c in cfgs:
        res = extract_billing(c, progress=False)
        assert res and all(r.step == "extract" and not r.failed for r in res), [(r.step, r.period, r.error) for r in res]
    for c in cfgs:
        loaded = load_billing_local(c, progress=False)
        assert loaded and all(r.action == "loaded" and r.error is None for r in loaded), loaded
        exported = export_parquet(c, progress=False)
        assert [r.period for r in exported] == [r.period for r in loaded], exported
        assert all(r.action == "exported" and r.error is None for r in exported), exported
        focus = export_parquet(c, progress=False, focus=True)
        assert [(r.period, r.action, r.error) for r in focus] == [(r.period, "exported", None) for r in loaded], focus


def _reset(folder):
    if folder.exists():
        shutil.rmtree(folder)
    return folder


def _save_bucket(mirror, root):
    "Keep the mirror's bucket as the base's own copy (root/bucket), restored into the mirror for each world."
    shutil.copytree(mirror, root / "bucket")


def _build_demo_bucket(bucket):
    cf.build_v1_csv(bucket, assembly_id="nov-1", files=1, rows=60)
    cf.build_v1_csv(bucket, period="2023-12", assembly_id="dec-1", files=2, rows=40)
    cf.build_v2(bucket, period="2024-01", execution_id="jan-1", rows=30, files=1)


DEMO_EXPORTS = (("demo-cur", "cur", "v1"), ("demo-cur2", "cur2", "v2"))


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    "The one folder the bucket of every local-mirror world (and base) lives at."
    return tmp_path_factory.mktemp("mirror") / "bucket"


@pytest.fixture(scope="module")
def base(tmp_path_factory, mirror):
    """Good data everywhere: CUR v1 2023-11 (60 rows, 1 file) and 2023-12 (40 rows, 2 files), and a
    CUR 2.0 export's 2024-01 (30 rows), staged, loaded into DuckDB (with their FOCUS rows) and exported
    to Parquet (the FOCUS files too); read from the local mirror."""
    root = tmp_path_factory.mktemp("base")
    _build_demo_bucket(_reset(mirror))
    _stage_load_export(*(_cfg(root, *e, source=f"file://{mirror}") for e in DEMO_EXPORTS))
    _save_bucket(mirror, root)
    return root


@pytest.fixture(scope="module")
def s3_base(tmp_path_factory, s3_server):
    "The same good data, read from the S3 server (bucket billing-bucket): the base of every world read from S3."
    import boto3
    root = tmp_path_factory.mktemp("s3base")
    _build_demo_bucket(root / "bucket")
    s3_server.reset()
    client = boto3.client("s3", endpoint_url=s3_server.url, **servers.aws_client_kwargs())
    cf.upload_tree(client, BUCKET, root / "bucket")
    client.close()
    _stage_load_export(*(_cfg(root, *e, source=BUCKET, **{"aws.endpoint_url": s3_server.url}) for e in DEMO_EXPORTS))
    return root


@pytest.fixture(scope="module")
def bq_client(bq_server):
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery
    client = bigquery.Client(project=bq_server.project, credentials=AnonymousCredentials(),
                             client_options=ClientOptions(api_endpoint=bq_server.url))
    yield client
    client.close()


def _base_dataset(root, source, bq_server):
    "A base's three periods (of its two exports) and their FOCUS rows loaded into one new BigQuery dataset (cloned per test, never written to)."
    from finops_nb.bigquery import load_billing_remote
    ds = "faults_base_" + uuid.uuid4().hex[:8]
    bq = {"database.bigquery.project_id": bq_server.project, "database.bigquery.api_endpoint": bq_server.url,
          "database.bigquery.dataset_id": ds}
    for e, periods in zip(DEMO_EXPORTS, (["2023-11", "2023-12"], ["2024-01"])):
        cfg = _cfg(root, *e, source=source, **bq)
        for focus in (False, True):
            res = load_billing_remote(cfg, progress=False, focus=focus)
            assert [(r.export_id, r.period, r.action) for r in res] == [(aws_export(cfg).id, p, "loaded") for p in periods], res
    return ds


@pytest.fixture(scope="module")
def base_dataset(base, mirror, bq_server):
    return _base_dataset(base, f"file://{mirror}", bq_server)


@pytest.fixture(scope="module")
def s3_base_dataset(s3_base, bq_server):
    return _base_dataset(s3_base, BUCKET, bq_server)


def _restate_workshop(bucket, assembly_id, sample="Nov2018"):
    """Re-deliver the workshop report's 2018-10 as a new assembly whose file is a copy of a real
    workshop Parquet month (Nov2018: 124,340 rows, more than one DuckDB row group)."""
    mkey = "cur/workshop/20181001-20181101/workshop-Manifest.json"
    man = json.loads((bucket / mkey).read_text())
    key = f"cur/workshop/workshop/year=2018/month=10/{assembly_id}/workshop-00001.snappy.parquet"
    (bucket / key).parent.mkdir(parents=True, exist_ok=True)
    src = cf.SAMPLES / cf.V1_PARQUET_SAMPLE_DIR / f"{sample}-WorkshopCUR-00001.snappy.parquet"
    shutil.copy(src, bucket / key)
    man.update(assemblyId=assembly_id, reportKeys=[key])
    (bucket / mkey).write_text(json.dumps(man))
    values = pq.read_table(src, columns=[UNBLENDED]).column(0).to_pylist()
    return len(values), cf.decimal_sum_doubles(values)


@pytest.fixture(scope="module")
def wbase(tmp_path_factory, mirror):
    """The workshop report (real v1 Parquet CUR), 2018-10 everywhere; then re-delivered (staged, not
    yet loaded) as the assembly "restated" holding 124,340 rows."""
    root = tmp_path_factory.mktemp("wbase")
    cf.build_v1_parquet(_reset(mirror), months=("Oct2018",))
    cfg = _cfg(root, "workshop", source=f"file://{mirror}")
    _stage_load_export(cfg)
    old = duck_state(root / "finops.duckdb")
    new = _restate_workshop(mirror, "restated")
    res = extract_billing(cfg, progress=False)
    assert [(r.step, r.delivery_id, r.action, r.error) for r in res] == [("extract", "restated", "downloaded", None)], res
    _save_bucket(mirror, root)
    return root, old, new


@pytest.fixture(scope="module")
def wloaded(wbase, tmp_path_factory, mirror):
    "The workshop base with the restated 2018-10 loaded into DuckDB but not yet exported (the Parquet file is stale)."
    src, old, new = wbase
    root = tmp_path_factory.mktemp("wloaded")
    w = _world_from(src, root, mirror, export="workshop")
    (r,) = load_billing_local(w.cfg(), progress=False)
    assert (r.action, r.delivery_id, r.rows, r.error) == ("replaced", "restated", new[0], None), r
    _save_bucket(mirror, root)
    return root, new


def _world_from(src, dst, mirror=None, **kw):
    """A World at `dst` holding a copy of the base `src`: its staging, Parquet and DuckDB, and its bucket
    restored into `mirror` (a local-mirror world) or into dst/bucket (a world read from S3: kw s3=True)."""
    for name in ("staging", "parquet"):
        if (src / name).exists():
            shutil.copytree(src / name, dst / name)
    shutil.copy2(src / "finops.duckdb", dst / "finops.duckdb")
    shutil.copytree(src / "bucket", _reset(mirror) if mirror else dst / "bucket")
    return World(dst, mirror=mirror, **kw)


# ======================================================================================
# A world: a copy of a base, its settings, snapshots
# ======================================================================================
@dataclass
class World:
    root: Path
    export: str = "demo-cur"
    prefix: str = "cur"
    cur: str = "v1"
    project: str | None = None
    bq_url: str | None = None
    dataset: str | None = None
    client: object = None
    env_extra: dict = field(default_factory=dict)
    mirror: Path | None = None  # the local mirror the bucket is at (default root/bucket)
    s3: bool = False  # read the export from the S3 server's billing-bucket (the local bucket folder is what was uploaded)
    s3_url: str | None = None  # the S3 endpoint (a test may point a run at a proxy instead)

    @property
    def bucket(self):
        return self.mirror or self.root / "bucket"

    @property
    def source(self):
        "[aws] bucket of the world's export."
        return BUCKET if self.s3 else f"file://{self.bucket}"

    @property
    def staging(self):
        return self.root / "staging"

    @property
    def parquet(self):
        return self.root / "parquet"

    @property
    def db(self):
        return self.root / "finops.duckdb"

    @property
    def export_id(self):
        "The id of the world's export (the folder of its staged deliveries and Parquet files)."
        return aws_export(self.cfg()).id

    @property
    def export_staging(self):
        "{staging_dir}/{export_id}/ of the world's export."
        return staging_of(self.cfg())

    def pq(self, period=None):
        "The world's export's Parquet folder, or the file of one period in it."
        return parquet_of(self.cfg(), period)

    def pq_key(self, period):
        "The key of a period's file in a Parquet snapshot: `{export_id}/{period}_aws_billing.parquet`."
        return self.pq(period).relative_to(self.parquet).as_posix()

    def other(self, export, prefix, cur):
        "The same world seen through another export's settings."
        return replace(self, export=export, prefix=prefix, cur=cur, env_extra=dict(self.env_extra))

    def env(self, bq=True, **extra):
        e = clean_env(FINOPS__AWS__BUCKET=self.source, FINOPS__AWS__PREFIX=self.prefix,
                      FINOPS__AWS__EXPORT_NAME=self.export, FINOPS__AWS__CUR_VERSION=self.cur,
                      FINOPS__STAGING_DIR=self.staging, FINOPS__PARQUET_DIR=self.parquet,
                      FINOPS__DATABASE__DUCKDB__DATABASE_PATH=self.db)
        if self.s3:
            e["AWS_ENDPOINT_URL"] = self.s3_url
        if bq and self.dataset:
            e.update(FINOPS__DATABASE__BIGQUERY__PROJECT_ID=self.project, FINOPS__DATABASE__BIGQUERY__API_ENDPOINT=self.bq_url,
                     FINOPS__DATABASE__BIGQUERY__DATASET_ID=self.dataset, FINOPS__DATABASE__BIGQUERY__TIMEOUT="60")
        e.update({k: str(v) for k, v in {**self.env_extra, **extra}.items()})
        return e

    def cfg(self, **kw):
        over = {"aws.endpoint_url": self.s3_url} if self.s3 else {}
        if self.dataset:
            over.update({"database.bigquery.project_id": self.project, "database.bigquery.api_endpoint": self.bq_url,
                         "database.bigquery.dataset_id": self.dataset})
        return _cfg(self.root, self.export, self.prefix, self.cur, source=self.source, **{**over, **kw})

    def run(self, *args, bq=True, timeout=120, **extra):
        return finops(self.env(bq, **extra), *args, cwd=self.root, timeout=timeout)

    def snap(self):
        return {"staging": tree(self.staging), "duckdb": duck_state(self.db), "parquet": parquet_state(self.parquet),
                "bigquery": bq_state(self.client, self.project, self.dataset) if self.dataset else None}

    def clone_dataset(self, client, bq_server, source):
        "A private BigQuery dataset holding a copy of the base dataset's tables, billing and FOCUS (partitioned and clustered alike)."
        self.client, self.project, self.bq_url = client, bq_server.project, bq_server.url
        self.dataset = "faults_" + uuid.uuid4().hex[:10]
        client.create_dataset(f"{self.project}.{self.dataset}", timeout=30)
        client.query(f"CREATE TABLE `{self.project}.{self.dataset}.aws_billing_data` "
                     "PARTITION BY TIMESTAMP_TRUNC(bill_billing_period_start_date, MONTH) CLUSTER BY export_id, line_item_usage_start_date "
                     f"AS SELECT * FROM `{self.project}.{source}.aws_billing_data`", job_retry=None).result(timeout=60)
        client.query(f"CREATE TABLE `{self.project}.{self.dataset}.focus` "
                     "PARTITION BY TIMESTAMP_TRUNC(BillingPeriodStart, MONTH) CLUSTER BY x_ExportId, ChargePeriodStart "
                     f"AS SELECT * FROM `{self.project}.{source}.focus`", job_retry=None).result(timeout=60)
        return self


@pytest.fixture
def world(base, mirror, tmp_path):
    "A copy of the base, read from the local mirror."
    return _world_from(base, tmp_path, mirror)


@pytest.fixture
def bq_world(world, bq_client, bq_server, base_dataset):
    return world.clone_dataset(bq_client, bq_server, base_dataset)


@pytest.fixture
def s3_base_world(s3_base, s3_server, tmp_path):
    "A copy of the S3 base, read from the S3 server (upload the world's bucket folder to it after changing it)."
    return _world_from(s3_base, tmp_path, s3=True, s3_url=s3_server.url)


@pytest.fixture
def bq_s3_world(s3_base_world, bq_client, bq_server, s3_base_dataset):
    return s3_base_world.clone_dataset(bq_client, bq_server, s3_base_dataset)


# ======================================================================================
# Assertions
# ======================================================================================
def assert_clear_error(r, code, *must, one_line=True):
    "Exit `code`, no traceback, one `finops: error:` line (unless told) holding every text of `must` (case-insensitive)."
    assert r.returncode == code, r
    assert "Traceback" not in r.stderr, r
    errors = [l for l in r.err_lines if l.startswith("finops: error:")]
    assert errors, r
    if one_line:
        assert len(errors) == 1 and len(r.err_lines) == 1, r
    text = " ".join(errors).lower()
    for m in must:
        alts = m if isinstance(m, tuple) else (m,)
        assert any(a.lower() in text for a in alts), f"the error does not name {alts!r}:\n{errors}"


def assert_staging_kept(w, before, after, allow_partial=False):
    """Each period of each export staged before still has a complete delivery: the same one byte for
    byte, or a complete copy of the bucket's current delivery (never a mix, never a partial file).
    Staging keys are `{export_id}/{period}/{delivery_id}/{file}`."""
    assert any(k.endswith(MARKER) for k in before), f"nothing was staged before: nothing to compare ({before})"
    assert not [k for k in before if k.endswith(MARKER) and k.count("/") != 3], before  # the layout this reads
    for export, period in sorted({tuple(k.split("/")[:2]) for k in before if k.endswith(MARKER)}):
        (dlv,) = {k.split("/")[2] for k in before if k.startswith(f"{export}/{period}/") and k.endswith(MARKER)}
        prefix = f"{export}/{period}/{dlv}/"
        if prefix + MARKER in after:
            assert {k: v for k, v in after.items() if k.startswith(prefix)} == \
                   {k: v for k, v in before.items() if k.startswith(prefix)}, f"staged delivery {prefix} changed"
        else:
            markers = [k for k in after if k.startswith(f"{export}/{period}/") and k.endswith(MARKER)]
            assert len(markers) == 1, f"{export} {period}: no complete staged delivery left ({markers})"
            m = json.loads((w.staging / markers[0]).read_text())
            assert (m["export"]["id"], m["period"]) == (export, period) and markers[0].split("/")[2] == m["delivery_id"], m
            assert m["files"], m
            for f in m["files"]:
                assert after[f"{export}/{period}/{m['delivery_id']}/{f['path']}"] == md5(w.bucket / f["key"]), f
    if not allow_partial:
        assert not [k for k in after if k.endswith(".part") or ".part." in k or k.endswith(".tmp")], after


def assert_kept(w, before, after, staging="kept"):
    "DuckDB, Parquet and BigQuery exactly as before; staging as `assert_staging_kept` (or 'equal')."
    assert before["duckdb"]["periods"] and before["duckdb"]["log"] and before["parquet"], "no good data before: nothing to compare"
    assert before["bigquery"] is None or before["bigquery"]["periods"], "no good data in BigQuery before: nothing to compare"
    for dest in ("duckdb", "parquet", "bigquery"):
        assert after[dest] == before[dest], f"{dest} changed:\n{changes(before[dest], after[dest])}"
    if staging == "equal":
        assert after["staging"] == before["staging"], "staging changed"
    else:
        assert_staging_kept(w, before["staging"], after["staging"])


def changes(before, after) -> str:
    "What differs between two snapshots of one destination (periods, files, log entries)."
    if not isinstance(before, dict) or not isinstance(after, dict):
        return f"before {before}\nafter {after}"
    out = []
    for k in sorted(set(before) | set(after), key=lambda k: (k != "periods", k)):
        if before.get(k) != after.get(k):
            if isinstance(before.get(k), dict) and isinstance(after.get(k), dict):
                out.append(f"[{k}]\n" + changes(before[k], after[k]))
            else:
                out.append(f"{k}: before {json.dumps(before.get(k), default=str)[:1500]}\n"
                           f"{k}: after  {json.dumps(after.get(k), default=str)[:1500]}")
    return "\n".join(out)


def totals(w, period, dests=("staging", "duckdb", "parquet", "bigquery")):
    "{destination: (rows, exact unblended total)} of one period of the world's export, from reconcile (staging read from the files)."
    rec = reconcile(w.cfg(), start_date=period, end_date=period)
    assert len({(e, p, d) for e, p, d, _, _ in rec.rows}) == len(rec.rows), rec.rows
    got = {d: (n, t[UNBLENDED]) for e, p, d, n, t in rec.rows if (e, p) == (w.export_id, period) and d in dests}
    return {d: got.get(d) for d in dests}


def csv_sum(path, column=cf.V1_COST_COLUMN):
    header, rows = cf.read_csv_gz(path)
    return len(rows), cf.decimal_sum(r[header.index(column)] for r in rows)


# ======================================================================================
# Bad data files: a re-delivery of 2023-12 with one bad file (AWS writes it; it is in the bucket
# before extraction, so the size in the listing is the bad file's own)
# ======================================================================================
def _rewrite_csv(path, fn, level=9):
    "Rewrite a staged-to-be csv.gz: fn(header, rows) edits the rows in place."
    header, rows = cf.read_csv_gz(path)
    fn(header, rows)
    buf = io.StringIO(newline="")
    csv.writer(buf, lineterminator="\n").writerows([header, *rows])
    path.write_bytes(gzip.compress(buf.getvalue().encode(), compresslevel=level, mtime=0))


def _gz_text(path, fn):
    text = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(fn(text), mtime=0))


def inject_corrupt_stream(p):
    b = bytearray(p.read_bytes())
    for i in range(len(b) // 2, len(b) // 2 + 32):
        b[i] ^= 0x5A
    p.write_bytes(bytes(b))


def inject_crc(p):
    """A gzip whose deflate stream is valid but whose bytes no longer match its CRC-32: one digit of
    a cost changed after compression (stored blocks keep the text readable, so the change is exact)."""
    _rewrite_csv(p, lambda h, rows: rows[0].__setitem__(h.index(cf.V1_COST_COLUMN), "1.2345678901"), level=0)
    b = p.read_bytes()
    assert b.count(b"1.2345678901") == 1
    p.write_bytes(b.replace(b"1.2345678901", b"9.2345678901"))


def inject_wrong_fields(p):
    _gz_text(p, lambda t: b"\n".join(l + b",surplus" if i == 151 else l for i, l in enumerate(t.split(b"\n"))))


def inject_non_numeric(p):
    _rewrite_csv(p, lambda h, rows: rows[3].__setitem__(h.index(cf.V1_COST_COLUMN), "n/a"))


def inject_non_utf8(p):
    def f(t):
        lines = t.split(b"\n")
        assert b"Amazon" in lines[380]
        lines[380] = lines[380].replace(b"Amazon", b"Am\xff\xfeazon", 1)
        return b"\n".join(lines)
    _gz_text(p, f)


BIG = "".join(random.Random(7).choices("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 ,\"'\n",
                                       k=1 << 20))  # 1 MiB, with commas, quotes and newlines that CSV must quote


@dataclass
class DataCase:
    inject: object = None  # function(path of data file 2)
    rows: int = 40  # rows of the re-delivery (2 files)
    expect: tuple = ()  # texts the error must hold (tuples: any of); () = the delivery must load


DATA = {
    "corrupt_gzip_stream": DataCase(inject_corrupt_stream, expect=("demo-cur-00002.csv.gz", ("gzip", "corrupt", "compress", "deflate"))),
    "corrupt_gzip_crc": DataCase(inject_crc, expect=("demo-cur-00002.csv.gz", ("crc", "checksum", "corrupt"))),
    "truncated_gzip": DataCase(lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size * 6 // 10]),
                               expect=("demo-cur-00002.csv.gz", ("gzip", "truncated", "end of"))),
    "zero_byte_file": DataCase(lambda p: p.write_bytes(b""), expect=("demo-cur-00002.csv.gz", "empty")),
    "header_only_file": DataCase(lambda p: _gz_text(p, lambda t: t.split(b"\n", 1)[0] + b"\n")),
    "wrong_field_count": DataCase(inject_wrong_fields, rows=800,
                                  expect=("demo-cur-00002.csv.gz", ("columns", "fields"))),
    "non_numeric_money": DataCase(inject_non_numeric, expect=("demo-cur-00002.csv.gz", "lineItem/UnblendedCost", "'n/a'")),
    "non_utf8_bytes": DataCase(inject_non_utf8, rows=800, expect=("demo-cur-00002.csv.gz", ("utf-8", "utf8", "unicode"))),
}


@pytest.mark.parametrize("case", [c for c in DATA_CASES if c in DATA])
def test_bad_data_file(case, bq_world):
    w, spec = bq_world, DATA[case]
    d = cf.build_v1_csv(w.bucket, period="2023-12", assembly_id=f"dec-{case.replace('_', '-')}", files=2, rows=spec.rows)
    bad = w.bucket / d.data_keys[1]
    spec.inject(bad)
    before = w.snap()
    r = w.run("aws", "run-pipeline")
    after = w.snap()
    if spec.expect:  # nothing lost first, then the error
        assert_kept(w, before, after)
        assert_clear_error(r, 4, "2023-12", *spec.expect)
        return
    # header_only_file: a delivery whose second file holds only the header loads the first file's rows, exactly
    assert r.returncode == 0, r
    rows, total = csv_sum(w.bucket / d.data_keys[0])
    assert totals(w, "2023-12") == {dest: (rows, total) for dest in ("staging", "duckdb", "parquet", "bigquery")}
    for k in ("duckdb", "bigquery"):
        assert after[k]["periods"]["2023-11"] == before[k]["periods"]["2023-11"]
        assert after[k]["periods"]["2023-12"][1] == (d.assembly_id,)
    assert after["parquet"][w.pq_key("2023-11")] == before["parquet"][w.pq_key("2023-11")]


def test_header_only_period_loads_as_zero_rows(bq_world):
    "header_only_period: a new period whose only file holds just the header: loaded as a period of 0 rows, on record."
    w = bq_world
    d = cf.build_v1_csv(w.bucket, period="2024-02", assembly_id="feb-empty", files=1, rows=0)
    before = w.snap()
    r = w.run("aws", "run-pipeline")
    assert r.returncode == 0, r
    after = w.snap()
    assert after["duckdb"]["periods"] == before["duckdb"]["periods"]  # no row, and nothing else touched
    (log,) = [l for l in after["duckdb"]["log"] if l["billing_period"] == "2024-02"]
    assert (log["export_id"], log["delivery_id"], log["rows"]) == (w.export_id, d.assembly_id, "0"), log
    assert after["duckdb"]["log"][:-1] == before["duckdb"]["log"]  # one new entry, the rest untouched
    rows, kv = after["parquet"][w.pq_key("2024-02")][1:]
    assert rows == 0 and json.loads(kv.pop("finops_totals")) == {c: None for c in (UNBLENDED, "line_item_net_unblended_cost",
                                                                                     "line_item_blended_cost")}, kv
    assert kv == {"finops_export_id": w.export_id, "finops_billing_period": "2024-02", "finops_delivery_id": d.assembly_id,
                  "finops_rows": "0"}
    focus_key = f"{w.export_id}/2024-02_focus.parquet"  # its FOCUS rows: none, on record too
    rows, kv = after["parquet"][focus_key][1:]
    assert rows == 0 and json.loads(kv.pop("finops_totals")) == {c: None for c in ("BilledCost", "EffectiveCost", "ListCost",
                                                                                     "ContractedCost")}, kv
    assert kv == {"finops_export_id": w.export_id, "finops_billing_period": "2024-02", "finops_delivery_id": d.assembly_id,
                  "finops_rows": "0"}
    assert {k: v for k, v in after["parquet"].items() if k not in (w.pq_key("2024-02"), focus_key)} == before["parquet"]
    assert after["duckdb"]["focus"] == before["duckdb"]["focus"]
    assert after["bigquery"]["periods"] == before["bigquery"]["periods"] and after["bigquery"]["focus"] == before["bigquery"]["focus"]
    again = w.run("aws", "run-pipeline")  # on record: the next run has nothing to do, in any destination
    (line,) = [l for l in again.stdout.splitlines() if l.startswith("2024-02")]
    assert again.returncode == 0 and line.count("up to date") == 6, again  # every step, the FOCUS ones too


def test_one_mb_field_loads_exactly(bq_world):
    "one_mb_field: a 1 MiB tag value (with commas and quotes) lands byte for byte in DuckDB, Parquet and BigQuery."
    w = bq_world
    d = cf.build_v1_csv(w.bucket, period="2023-12", assembly_id="dec-big-field", files=2, rows=40,
                        extra_columns={"resourceTags/user:Blob": lambda i, row: BIG if i == 25 else f"small-{i}"})
    before = w.snap()
    r = w.run("aws", "run-pipeline")
    assert r.returncode == 0, r
    want = (len(BIG), hashlib.md5(BIG.encode()).hexdigest())
    con = duckdb.connect(str(w.db), read_only=True)
    assert con.execute("SELECT length(resource_tags_user_blob), md5(resource_tags_user_blob) FROM aws_billing_data "
                       "WHERE length(resource_tags_user_blob) > 100").fetchall() == [want]
    con.close()
    vals = pq.read_table(w.pq("2023-12"), columns=["resource_tags_user_blob"]).column(0).to_pylist()
    assert [(len(v), hashlib.md5(v.encode()).hexdigest()) for v in vals if len(v) > 100] == [want]
    got = list(w.client.query(f"SELECT LENGTH(resource_tags_user_blob) AS n, TO_HEX(MD5(resource_tags_user_blob)) AS h "
                              f"FROM `{w.project}.{w.dataset}.aws_billing_data` WHERE LENGTH(resource_tags_user_blob) > 100",
                              job_retry=None).result(timeout=60))
    assert [(g["n"], g["h"]) for g in got] == [want]
    assert totals(w, "2023-12") == {dest: (40, d.unblended_cost_sum) for dest in ("staging", "duckdb", "parquet", "bigquery")}
    assert w.snap()["duckdb"]["periods"]["2023-11"] == before["duckdb"]["periods"]["2023-11"]


# ======================================================================================
# Manifests
# ======================================================================================
def _v1_manifest(fn):
    def inject(w):
        d = cf.build_v1_csv(w.bucket, period="2023-12", assembly_id="dec-2", files=2, rows=40)
        path = w.bucket / V1_TOP_DEC
        m = json.loads(path.read_text())
        out = fn(m, d)
        path.write_text(out if isinstance(out, str) else json.dumps(m))
        return V1_TOP_DEC
    return inject


def _v2_missing_data_files(w):
    d = cf.build_v2(w.bucket, period="2024-01", execution_id="jan-2", rows=30, files=1)
    m = json.loads((w.bucket / d.manifest_key).read_text())
    del m["dataFiles"]
    (w.bucket / d.manifest_key).write_text(json.dumps(m))
    w.export, w.prefix, w.cur = "demo-cur2", "cur2", "v2"
    return d.manifest_key


MANIFESTS = {
    "manifest_invalid_json": (_v1_manifest(lambda m, d: json.dumps(m)[:-40]), ("not valid json",)),
    "manifest_missing_report_keys": (_v1_manifest(lambda m, d: m.pop("reportKeys")), ("reportKeys",)),
    "manifest_missing_data_files_v2": (_v2_missing_data_files, ("dataFiles",)),
    "manifest_key_missing_in_s3": (_v1_manifest(lambda m, d: m["reportKeys"].append(d.data_keys[1].replace("00002", "00003"))),
                                   ("dec-2/demo-cur-00003.csv.gz", "not found")),
    "manifest_key_dotdot": (_v1_manifest(lambda m, d: m["reportKeys"].__setitem__(
        1, "cur/demo-cur/20231201-20240101/dec-2/../../20231101-20231201/nov-1/demo-cur-00001.csv.gz")), ("refused", "..")),
    "manifest_key_absolute": (_v1_manifest(lambda m, d: m["reportKeys"].__setitem__(1, "/etc/passwd")), ("refused", "/etc/passwd")),
    "manifest_period_disagrees": (_v1_manifest(lambda m, d: m.__setitem__("billingPeriod", {
        "start": "20240101T000000.000Z", "end": "20240201T000000.000Z"})), ("2024-01", "disagrees")),
    "manifest_duplicate_keys": (_v1_manifest(lambda m, d: m["reportKeys"].append(d.data_keys[0])), ("same file twice",)),
}


@pytest.mark.parametrize("case", MANIFEST_CASES)
def test_bad_manifest(case, request):
    on_s3 = case == "manifest_key_missing_in_s3"  # this one on the S3 server: HEAD of the listed key answers 404
    w = request.getfixturevalue("bq_s3_world" if on_s3 else "bq_world")
    inject, expect = MANIFESTS[case]
    key = inject(w)
    if on_s3:
        cf.upload_tree(request.getfixturevalue("s3"), BUCKET, w.bucket)
        expect = (f"s3://{BUCKET}/cur/demo-cur/20231201-20240101/dec-2/demo-cur-00003.csv.gz", "not found")
    before = w.snap()
    r = w.run("aws", "run-pipeline")
    where = "2023-12" if case == "manifest_key_missing_in_s3" else key
    assert_kept(w, before, w.snap(), staging="equal")
    assert_clear_error(r, 4, where, *expect)


# ======================================================================================
# Column names and types
# ======================================================================================
HOSTILE = ['lineItem/Evil"; DROP TABLE aws_billing_data; --', "resourceTags/user:with space", "resourceTags/user:semi;colon",
           "resourceTags/user:ünïcødé", "resourceTags/user:日本語", "resourceTags/user:'quote'", "resourceTags/user:back`tick",
           "delivery_id", 'costCategory/Team "A"', "export_id", "billing_period"]  # the three reserved names: the loader's own columns


def _columns_holding(w, period, values):
    "{value: [columns whose distinct non-null values in `period` are exactly {value}]} in DuckDB, Parquet and BigQuery."
    out = {}
    con = duckdb.connect(str(w.db), read_only=True)
    cols = [r[0] for r in con.execute("DESCRIBE aws_billing_data").fetchall()]
    pqt = pq.read_table(w.pq(period))
    bq_cols = [f.name for f in w.client.get_table(f"{w.project}.{w.dataset}.aws_billing_data").schema]
    for v in values:
        duck = [c for c in cols if con.execute(f'SELECT list(DISTINCT "{c}"::VARCHAR) FROM aws_billing_data '
                                               f"WHERE export_id = ? AND billing_period = ? AND \"{c}\" IS NOT NULL", [w.export_id, period]).fetchall()[0][0] == [v]]
        par = [c for c in pqt.column_names if str(pqt.column(c).type) == "string" and set(pqt.column(c).drop_null().to_pylist()) == {v}]
        out[v] = (duck, par)
    con.close()
    for v, (duck, par) in out.items():
        assert duck and duck == par, (v, duck, par)
        assert set(duck) <= set(bq_cols), (v, duck)
    cols = sorted({c for duck, _ in out.values() for c in duck})
    (row,) = w.client.query(f"SELECT {', '.join(f'ARRAY_AGG(DISTINCT {c} IGNORE NULLS) AS {c}' for c in cols)} "
                            f"FROM `{w.project}.{w.dataset}.aws_billing_data` WHERE export_id = '{w.export_id}' AND billing_period = '{period}'",
                            job_retry=None).result(timeout=60)
    for v, (duck, _) in out.items():
        assert all(list(row[c]) == [v] for c in duck), (v, dict(row))
    return {v: duck for v, (duck, _) in out.items()}


def test_hostile_column_names(bq_world):
    "hostile_column_names: quotes, semicolons, spaces, unicode, backticks, a reserved name: every value kept, in every destination."
    w = bq_world
    d = cf.build_v1_csv(w.bucket, period="2023-12", assembly_id="dec-hostile", files=2, rows=40,
                        extra_columns={h: f"value-{i}" for i, h in enumerate(HOSTILE)})
    before = w.snap()
    r = w.run("aws", "run-pipeline")
    assert r.returncode == 0, r
    held = _columns_holding(w, "2023-12", [f"value-{i}" for i in range(len(HOSTILE))])
    assert len({c for cols in held.values() for c in cols}) == len(HOSTILE)  # one column per source column
    assert totals(w, "2023-12") == {dest: (40, d.unblended_cost_sum) for dest in ("staging", "duckdb", "parquet", "bigquery")}
    after = w.snap()
    assert after["duckdb"]["periods"]["2023-11"] == before["duckdb"]["periods"]["2023-11"]
    assert after["bigquery"]["periods"]["2023-11"] == before["bigquery"]["periods"]["2023-11"]
    assert after["parquet"][w.pq_key("2023-11")] == before["parquet"][w.pq_key("2023-11")]


def test_tag_collision(bq_world):
    """tag_collision: user:CostCenter and user:cost_center normalise to one name: both values kept in
    every destination, and the run tells the user which column was renamed."""
    w = bq_world
    d = cf.build_v1_csv(w.bucket, period="2023-12", assembly_id="dec-collide", files=2, rows=40,
                        extra_columns={"resourceTags/user:CostCenter": "Upper", "resourceTags/user:cost_center": "lower"})
    r = w.run("aws", "run-pipeline")
    assert r.returncode == 0, r
    held = _columns_holding(w, "2023-12", ["Upper", "lower"])
    assert held["Upper"] != held["lower"]
    assert totals(w, "2023-12") == {dest: (40, d.unblended_cost_sum) for dest in ("staging", "duckdb", "parquet", "bigquery")}
    out = r.stdout + r.stderr
    assert "resourceTags/user:cost_center" in out and held["lower"][0] in out, \
        f"run-pipeline does not report the renamed column:\n{r}"


def _declare(w, d, name, typ):
    "Set the manifest type of column `name` in every manifest of delivery `d`."
    for k in d.manifest_keys:
        m = json.loads((w.bucket / k).read_text())
        for c in m["columns"]:
            if f"{c['category']}/{c['name']}" == name:
                c["type"] = typ
        (w.bucket / k).write_text(json.dumps(m))


def test_type_change_between_months(bq_world):
    """type_change_between_months: a column new to the dictionary, declared OptionalBigDecimal with
    numbers in 2024-02, holds text in 2024-03: widened with every value kept, or refused clearly
    (column, value, period named) with everything already loaded intact."""
    w = bq_world
    col = "lineItem/FancyAmount"
    feb = cf.build_v1_csv(w.bucket, period="2024-02", assembly_id="feb-1", files=1, rows=20,
                          extra_columns={col: lambda i, row: f"{i}.0000000001"})
    _declare(w, feb, col, "OptionalBigDecimal")
    r = w.run("aws", "run-pipeline")
    assert r.returncode == 0, r
    before = w.snap()
    mar = cf.build_v1_csv(w.bucket, period="2024-03", assembly_id="mar-1", files=1, rows=20,
                          extra_columns={col: lambda i, row: f"tier-{i}"})
    _declare(w, mar, col, "String")
    r = w.run("aws", "run-pipeline")
    after = w.snap()
    if r.returncode == 0:  # widened: every value of both months is there, as text
        con = duckdb.connect(str(w.db), read_only=True)
        got = dict(con.execute("SELECT billing_period, list(line_item_fancy_amount::VARCHAR ORDER BY line_item_fancy_amount::VARCHAR) "
                               "FROM aws_billing_data WHERE billing_period >= '2024-02' GROUP BY 1").fetchall())
        con.close()
        assert [Decimal(x) for x in got["2024-02"]] == sorted(Decimal(f"{i}.0000000001") for i in range(20))
        assert sorted(got["2024-03"]) == sorted(f"tier-{i}" for i in range(20))
    else:
        assert_kept(w, before, after)
        assert_clear_error(r, 4, "2024-03", col, "'tier-0'")


# ======================================================================================
# S3 server errors and throttling: a fault-injecting proxy between finops and the moto server
# ======================================================================================
@pytest.fixture
def s3_world(s3_base_world, s3, s3_server):
    "The S3 base's bucket on the moto server, with a good re-delivery of 2023-12 (dec-2, 40 rows in 2 files)."
    world = s3_base_world
    d = cf.build_v1_csv(world.bucket, period="2023-12", assembly_id="dec-2", files=2, rows=40)
    cf.upload_tree(s3, BUCKET, world.bucket)
    with FaultProxy(s3_server.url) as proxy:
        world.env_extra["AWS_ENDPOINT_URL"] = proxy.url
        yield world, proxy, d


def _data_get(d):
    keys = set(d.data_keys)
    return lambda method, path, body: method == "GET" and path.split("?")[0].lstrip("/").partition("/")[2] in keys


S3_FAULTS = {
    "s3_slowdown_then_ok": dict(status=503, code="SlowDown", times=2),
    "s3_500_window_then_ok": dict(status=500, code="InternalError", seconds=1.5),
}


@pytest.mark.parametrize("case", list(S3_FAULTS))
def test_s3_errors_are_retried_then_succeed(case, s3_world):
    w, proxy, d = s3_world
    rule = proxy.add(**S3_FAULTS[case], **({"match": _data_get(d)} if "window" in case else {}))
    t0 = time.time()
    r = w.run("aws", "run-pipeline", bq=False)
    assert r.returncode == 0, r
    assert time.time() - t0 < 30
    faults = [o for o in proxy.outcomes() if o.startswith(("500", "503"))]
    assert len(faults) == rule.hits >= 2 and proxy.outcomes()[-1].startswith("200"), proxy.log
    assert totals(w, "2023-12", ("staging", "duckdb", "parquet")) == {
        dest: (40, d.unblended_cost_sum) for dest in ("staging", "duckdb", "parquet")}


S3_PERMANENT = ["s3_permanent_list_extract", "s3_permanent_download_extract", "s3_permanent_run_pipeline"]


@pytest.fixture(scope="module")
def s3_permanent(s3_base, s3_server, tmp_path_factory):
    """The three permanent-failure runs, started together (each spends ~7 s in botocore's retries):
    {case: (world, re-delivery, snapshot before, result, seconds, snapshot after)}. Every request
    answers 500 InternalError (listing included), or only the GETs of the re-delivery's data files."""
    import boto3
    s3_server.reset()
    client = boto3.client("s3", endpoint_url=s3_server.url, **servers.aws_client_kwargs())
    worlds = {}
    for case in S3_PERMANENT:
        w = _world_from(s3_base, tmp_path_factory.mktemp(case), s3=True, s3_url=s3_server.url)
        d = cf.build_v1_csv(w.bucket, period="2023-12", assembly_id="dec-2", files=2, rows=40)
        worlds[case] = (w, d)
    cf.upload_tree(client, BUCKET, worlds[S3_PERMANENT[0]][0].bucket)  # the same bytes in every world
    client.close()
    out = {}
    with FaultProxy(s3_server.url) as down, FaultProxy(s3_server.url) as data_down:
        down.add(status=500, code="InternalError")
        data_down.add(status=500, code="InternalError", match=_data_get(worlds["s3_permanent_download_extract"][1]))
        procs = {}
        for case, (w, d) in worlds.items():
            proxy = data_down if "download" in case else down
            env = w.env(bq=False, AWS_ENDPOINT_URL=proxy.url)
            before = w.snap()
            cmd = ("aws", "run-pipeline" if "pipeline" in case else "extract-billing")
            procs[case] = (before, time.time(), subprocess.Popen([FINOPS, *cmd], env=env, cwd=w.root, text=True,
                                                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE), cmd)
        for case, (before, t0, proc, cmd) in procs.items():
            stdout, stderr = proc.communicate(timeout=120)
            w, d = worlds[case]
            out[case] = (w, d, before, Result(list(cmd), proc.returncode, stdout, stderr, time.time() - t0), w.snap())
    return out


@pytest.mark.parametrize("case", S3_PERMANENT)
def test_s3_permanent_failure_is_transient_and_loses_nothing(case, s3_permanent):
    w, d, before, r, after = s3_permanent[case]
    assert r.seconds < 30, r
    assert_kept(w, before, after, staging="equal")
    where = f"s3://{BUCKET}/{d.data_keys[0]}" if "download" in case else f"s3://{BUCKET}/cur/demo-cur/"
    assert_clear_error(r, 75, where, "try again later", one_line="download" not in case)


# ======================================================================================
# SIGKILL during each stage, then a re-run that completes with exact totals
# ======================================================================================
def _noise(i, row):
    "600 incompressible characters per row: the data file is ~700 kB, so a download can be caught half way."
    rng = random.Random(i)
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/") for _ in range(600))


def test_kill_during_download(s3, s3_server, bq_s3_world):
    "kill_download: SIGKILL while a data file is half downloaded (the proxy stalls its body); staged deliveries intact."
    w = bq_s3_world
    d = cf.build_v1_csv(w.bucket, period="2023-12", assembly_id="dec-big", files=1, extra_columns={"resourceTags/user:Noise": _noise})
    size = (w.bucket / d.data_keys[0]).stat().st_size
    assert size > 600_000
    cf.upload_tree(s3, BUCKET, w.bucket)
    before = w.snap()
    with FaultProxy(s3_server.url) as proxy:
        proxy.add(action="stall", after_bytes=300_000, match=_data_get(d), times=1)
        env = w.env(AWS_ENDPOINT_URL=proxy.url)
        proc = start_finops(env, "aws", "run-pipeline", cwd=w.root)
        folder = w.export_staging / "2023-12" / d.assembly_id
        partial = lambda: [p for p in folder.glob(".*") if p.is_file() and p.stat().st_size > 0] if folder.is_dir() else []
        wait_for(lambda: proxy.stalled.is_set() and partial(), 30, "a partly downloaded file", proc)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL
        proxy.release.set()
        after = w.snap()
        assert partial(), "the kill came too late: no partial file"
        assert not (folder / MARKER).exists() and not (folder / Path(d.data_keys[0]).name).exists()
        assert staged(w.cfg()) == {"2023-11": "nov-1", "2023-12": "dec-1"}
        assert staged(w.other("demo-cur2", "cur2", "v2").cfg()) == {"2024-01": "jan-1"}
        assert_staging_kept(w, before["staging"], after["staging"], allow_partial=True)
        for k in ("duckdb", "parquet", "bigquery"):
            assert after[k] == before[k], k
        proxy.clear()
        r = finops(env, "aws", "run-pipeline", cwd=w.root)
    assert r.returncode == 0, r
    assert totals(w, "2023-12") == {dest: (1281, d.unblended_cost_sum) for dest in ("staging", "duckdb", "parquet", "bigquery")}
    assert not [p for p in w.staging.rglob("*") if ".part" in p.name], "the killed run's partial file is still there"


def test_kill_during_duckdb_load(wbase, mirror, tmp_path):
    "kill_duckdb_load: SIGKILL inside the load transaction of a 124,340-row re-delivery; the old delivery stays."
    src, old, (rows, total) = wbase
    w = _world_from(src, tmp_path, mirror, export="workshop")
    before = w.snap()
    assert before["duckdb"] == old
    size0 = w.db.stat().st_size
    proc = start_finops(w.env(), "aws", "run-pipeline", cwd=w.root)
    wait_for(lambda: w.db.stat().st_size != size0, 60, "the database file to grow (the insert under way)", proc)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    after = w.snap()
    assert after["duckdb"] == before["duckdb"] and after["parquet"] == before["parquet"]
    assert_staging_kept(w, before["staging"], after["staging"])
    r = w.run("aws", "run-pipeline")
    assert r.returncode == 0, r
    assert totals(w, "2018-10", ("staging", "duckdb", "parquet")) == {d: (rows, total) for d in ("staging", "duckdb", "parquet")}


def test_kill_during_parquet_write(wloaded, mirror, tmp_path):
    "kill_parquet_write: SIGKILL while the re-delivered period is written; the previous file stays, byte for byte."
    src, (rows, total) = wloaded
    w = _world_from(src, tmp_path, mirror, export="workshop")
    before = w.snap()
    proc = start_finops(w.env(), "aws", "run-pipeline", cwd=w.root)
    tmp = lambda: [p for p in w.pq().glob(".*.tmp") if p.stat().st_size > 0]
    wait_for(tmp, 60, "a temporary Parquet file being written", proc, step=0.001)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    after = w.snap()
    assert {k: v for k, v in after["parquet"].items() if not k.endswith(".tmp")} == before["parquet"]
    assert after["duckdb"] == before["duckdb"] and after["staging"] == before["staging"]
    r = w.run("aws", "run-pipeline")
    assert r.returncode == 0 and "re-exported (stale" in r.stdout, r
    assert totals(w, "2018-10", ("staging", "duckdb", "parquet")) == {d: (rows, total) for d in ("staging", "duckdb", "parquet")}
    assert w.pq().is_dir() and not list(w.parquet.rglob(".*.tmp")), "the killed run's temporary file is still there"


@pytest.mark.parametrize("case", ["kill_bigquery_upload", "kill_bigquery_commit"])
def test_kill_during_bigquery_load(case, bq_world, bq_server):
    """SIGKILL while the Parquet file is being uploaded (the proxy holds the upload), or while the
    replacing transaction is on its way (the proxy holds it): the table keeps exactly its previous rows."""
    w = bq_world
    d = cf.build_v1_csv(w.bucket, period="2023-12", assembly_id="dec-2", files=2)
    before = w.snap()
    if case == "kill_bigquery_upload":
        held = lambda method, path, body: "/upload/" in path
    else:
        held = lambda method, path, body: b"BEGIN TRANSACTION" in body
    with FaultProxy(bq_server.url) as proxy:
        proxy.add(action="hold", match=held)
        env = w.env(FINOPS__DATABASE__BIGQUERY__API_ENDPOINT=proxy.url)
        proc = start_finops(env, "aws", "run-pipeline", cwd=w.root)
        wait_for(proxy.stalled.is_set, 60, "the BigQuery request to be held", proc, step=0.01)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL
    after = w.snap()
    assert after["bigquery"]["periods"] == before["bigquery"]["periods"]
    assert after["duckdb"]["periods"]["2023-12"][1] == ("dec-2",)  # the stages before BigQuery had finished
    leftovers = [t for t in after["bigquery"]["tables"] if t not in ("aws_billing_data", "focus")]
    r = w.run("aws", "run-pipeline")
    assert r.returncode == 0, r
    assert totals(w, "2023-12") == {dest: (1281, d.unblended_cost_sum) for dest in ("staging", "duckdb", "parquet", "bigquery")}
    final = w.snap()["bigquery"]
    assert final["periods"]["2023-11"] == before["bigquery"]["periods"]["2023-11"]
    assert final["tables"] == ["aws_billing_data", "focus"]  # the re-run dropped what the killed run left: no staging table remains
    assert case != "kill_bigquery_commit" or leftovers, "the kill before COMMIT should have left a staging table to clean"


# ======================================================================================
# BigQuery down
# ======================================================================================
@pytest.mark.parametrize("case", BIGQUERY_CASES)
def test_bigquery_down(case, bq_world):
    w = bq_world
    closed = servers.free_port()
    if case == "bigquery_down_run_pipeline":
        d = cf.build_v1_csv(w.bucket, period="2023-12", assembly_id="dec-2", files=2, rows=40)
    before = w.snap()
    t0 = time.time()
    args = ("aws", "run-pipeline") if case == "bigquery_down_run_pipeline" else ("aws", "load-billing-remote")
    r = w.run(*args, FINOPS__DATABASE__BIGQUERY__API_ENDPOINT=f"http://127.0.0.1:{closed}", FINOPS__DATABASE__BIGQUERY__TIMEOUT="5")
    assert time.time() - t0 < 30, r
    after = w.snap()
    assert after["bigquery"] == before["bigquery"]
    if case == "bigquery_down_load_remote":
        assert_kept(w, before, after, staging="equal")
    else:
        # the stages before BigQuery did their work, the old periods are intact; BigQuery back up: the next run catches up
        assert totals(w, "2023-12", ("staging", "duckdb", "parquet")) == {x: (40, d.unblended_cost_sum) for x in ("staging", "duckdb", "parquet")}
        assert after["duckdb"]["periods"]["2023-11"] == before["duckdb"]["periods"]["2023-11"]
        again = w.run("aws", "run-pipeline")
        assert again.returncode == 0, again
        assert totals(w, "2023-12") == {x: (40, d.unblended_cost_sum) for x in ("staging", "duckdb", "parquet", "bigquery")}
    assert_clear_error(r, 75, "bigquery", ("try again later", "cannot reach", "unavailable"))


# ======================================================================================
# Two runs at once
# ======================================================================================
def test_two_pipelines_at_once(s3, s3_server, s3_base_world):
    """lock_two_pipelines: while one run-pipeline holds the staging folder (its download stalled), a
    second run-pipeline and an extract-billing refuse at once, naming the lock (exit 75); the first
    then finishes alone and the load log holds exactly one load of the new delivery."""
    w = s3_base_world
    d = cf.build_v1_csv(w.bucket, period="2023-12", assembly_id="dec-big", files=1, extra_columns={"resourceTags/user:Noise": _noise})
    cf.upload_tree(s3, BUCKET, w.bucket)
    with FaultProxy(s3_server.url) as proxy:
        proxy.add(action="stall", after_bytes=300_000, match=_data_get(d), times=1)
        env = w.env(AWS_ENDPOINT_URL=proxy.url)
        first = start_finops(env, "aws", "run-pipeline", cwd=w.root, log=w.root / "first.log")
        wait_for(proxy.stalled.is_set, 30, "the first run to be downloading", first)
        mid = w.snap()
        for args in (("aws", "run-pipeline"), ("aws", "extract-billing")):
            r = finops(env, *args, cwd=w.root)
            assert_clear_error(r, 75, "in use by another finops run", f"pid {first.pid}", str(w.export_staging / ".finops.lock"))
        assert w.snap()["duckdb"] == mid["duckdb"] and w.snap()["parquet"] == mid["parquet"]
        proxy.release.set()
        assert first.wait(60) == 0, (w.root / "first.log").read_text()
    assert totals(w, "2023-12", ("staging", "duckdb", "parquet")) == {x: (1281, d.unblended_cost_sum) for x in ("staging", "duckdb", "parquet")}
    log = [l for l in w.snap()["duckdb"]["log"] if l["billing_period"] == "2023-12"]
    assert [(l["export_id"], l["delivery_id"]) for l in log] == [(w.export_id, "dec-1"), (w.export_id, "dec-big")]


def _main_in_process(args, capsys):
    "`finops ARGS` as `finops_nb.cli.main` in this (test) process: it starts in milliseconds, not the ~0.6 s of a new one."
    from finops_nb.cli import main
    capsys.readouterr()
    t0 = time.time()
    code = main(list(args))
    out = capsys.readouterr()
    return Result(list(args), code, out.out, out.err, time.time() - t0)


def test_second_writer_refused_during_duckdb_load(wbase, mirror, tmp_path, monkeypatch, capsys):
    """lock_duckdb_load: while a load-billing-local process is inside its transaction, a second
    load-billing-local and an export-parquet (run from this test's process) refuse at once (exit 75,
    the database named); the first finishes alone."""
    src, old, (rows, total) = wbase
    w = _world_from(src, tmp_path, mirror, export="workshop")
    for k, v in w.env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.chdir(w.root)
    size0 = w.db.stat().st_size
    first = start_finops(w.env(), "aws", "load-billing-local", cwd=w.root, log=w.root / "first.log")
    wait_for(lambda: w.db.stat().st_size != size0, 60, "the first load to be under way", first)
    second = [_main_in_process(args, capsys) for args in (("aws", "load-billing-local"), ("aws", "export-parquet"))]
    assert first.poll() is None, "the first load ended before the second runs were tried: nothing was tested"
    assert first.wait(60) == 0, (w.root / "first.log").read_text()
    for r in second:
        assert_clear_error(r, 75, ("in use by another", "is in use"), ("finops.duckdb",))
    after = w.snap()
    assert after["duckdb"]["periods"]["2018-10"][:2] == (rows, ("restated",))
    assert [l["delivery_id"] for l in after["duckdb"]["log"]] == [old["log"][0]["delivery_id"], "restated"]


# ======================================================================================
# Secrets
# ======================================================================================
def _secret_config(w):
    cfg = w.root / "config.toml"
    cfg.write_text(f'[aws]\nbucket = "file://{w.bucket}"\nprefix = "cur"\nexport_name = "demo-cur"\n'
                   f'aws_access_key_id = "{KEY_ID}"\naws_secret_access_key = "{SECRET_FILE}"\n')
    return cfg


def _leaks(text):
    return [s for s in (SECRET_FILE, SECRET_ENV, KEY_ID) if s in text]


def test_secrets_never_in_cli_outputs(s3, s3_server, s3_base_world):
    """secrets_cli_outputs: keys in config.toml and the secret in FINOPS__AWS__AWS_SECRET_ACCESS_KEY:
    no output line of any command (successful, failing, --debug tracebacks, S3 errors that echo
    the key id as AWS does) and no file finops writes holds them."""
    w = s3_base_world
    cfg = _secret_config(w)
    cf.build_v1_csv(w.bucket, period="2023-12", assembly_id="dec-2", files=2, rows=40)
    cf.upload_tree(s3, BUCKET, w.bucket)
    outputs = []
    with FaultProxy(s3_server.url) as proxy:
        env = {**w.env(), "FINOPS__AWS__AWS_SECRET_ACCESS_KEY": SECRET_ENV}
        del env["FINOPS__AWS__BUCKET"], env["AWS_ENDPOINT_URL"]  # config.toml's bucket: the local folder
        s3env = {**env, "FINOPS__AWS__BUCKET": BUCKET, "AWS_ENDPOINT_URL": proxy.url}
        runs = [(env, ("config",)), (env, ("--debug", "config")), (env, ("aws", "discover-manifests")),
                (s3env, ("aws", "run-pipeline")), (s3env, ("--debug", "aws", "run-pipeline"))]
        for e, args in runs:
            outputs.append(finops(e, "--config", str(cfg), *args, cwd=w.root))
        proxy.add(status=403, code="InvalidAccessKeyId", message="The AWS Access Key Id you provided does not exist in our records.",
                  extra={"AWSAccessKeyId": KEY_ID})
        for args in (("aws", "extract-billing"), ("--debug", "aws", "extract-billing"), ("aws", "run-pipeline")):
            outputs.append(finops(s3env, "--config", str(cfg), *args, cwd=w.root))
    shown = outputs[0]
    assert shown.returncode == 0 and "je7M…KEY" in shown.stdout and "env FINOPS__AWS__AWS_SECRET_ACCESS_KEY" in shown.stdout, shown
    assert outputs[3].returncode == 0, outputs[3]
    assert outputs[5].returncode != 0 and "access denied" in outputs[5].stderr, outputs[5]
    assert "Traceback" in outputs[6].stderr, outputs[6]  # --debug: the exception's full text was printed, and checked
    for r in outputs:
        assert not _leaks(r.stdout + r.stderr), r
    for p in w.root.rglob("*"):
        if p.is_file() and p != cfg:
            assert not _leaks(p.read_bytes().decode("latin-1")), p


def _papermill(tmp_path, name, **params):
    import papermill as pm
    report = tmp_path / f"{name}.ipynb"
    try:
        pm.execute_notebook(str(ROOT / "runs" / "pipeline.ipynb"), str(report), cwd=str(tmp_path), progress_bar=False,
                            parameters={"chart": False, **params})
        error = None
    except pm.PapermillExecutionError as e:
        error = e
    return report, error


def _report_text(report):
    nb = json.loads(report.read_text())
    out = []
    for c in nb["cells"]:
        for o in c.get("outputs", []):
            t = o.get("text", "")
            out.append("".join(t) if isinstance(t, list) else t)
            out += [json.dumps(o.get("data", {}), ensure_ascii=False), " ".join(o.get("traceback", [])), o.get("evalue", "")]
    return "\n".join(out)


def test_secrets_never_in_papermill_report(world, monkeypatch):
    "secrets_papermill_report: a successful and a failing papermill run: neither report holds a key."
    w = world
    cfg = _secret_config(w)
    monkeypatch.setenv("FINOPS__AWS__AWS_SECRET_ACCESS_KEY", SECRET_ENV)
    for k, v in w.env().items():
        if k.startswith("FINOPS__") and k != "FINOPS__AWS__BUCKET":
            monkeypatch.setenv(k, v)
    ok, err = _papermill(w.root, "ok", config_path=str(cfg))
    assert err is None, err
    assert "je7M…KEY" in _report_text(ok)  # the environment's secret reached the run, masked
    bad_cfg = w.root / "bad.toml"
    bad_cfg.write_text(cfg.read_text().replace(f"file://{w.bucket}", f"file://{w.root / 'no-such-mirror'}"))
    failed, err = _papermill(w.root, "failed", config_path=str(bad_cfg))
    assert err is not None and "no-such-mirror" in _report_text(failed)
    for report in (ok, failed):
        assert not _leaks(report.read_text()), report


# ======================================================================================
# Configuration errors, from the CLI and from papermill
# ======================================================================================
CONFIG_FILES = {  # kind: (config.toml text or None for a missing file, texts the error must hold)
    "missing_file": (None, ("config file not found",)),
    "malformed_toml": ('[aws\nbucket = "x"\n', ("not valid TOML",)),
    "unknown_key": ('[aws]\nbuket = "x"\n', ("unknown key [aws] buket", "did you mean [aws] bucket?")),
    "cur_version_v3": ('[aws]\ncur_version = "v3"\n', ("[aws] cur_version", "'v3' is not allowed", '"v1", "v2"')),
    "bad_date": ('start_date = "2024/01"\n', ("start_date", "'2024/01'", "YYYY-MM")),
}


def _config_file(w, kind):
    text, expect = CONFIG_FILES[kind]
    path = w.root / f"{kind}.toml"
    if text is not None:
        path.write_text(text)
    return path, expect


@pytest.mark.parametrize("kind", CONFIG_KINDS)
def test_config_error_cli(kind, world):
    w = world
    path, expect = _config_file(w, kind)
    before = w.snap()
    env = w.env()
    del env["FINOPS__AWS__CUR_VERSION"]  # the environment would take precedence over the file's value
    r = finops(env, "--config", str(path), "aws", "run-pipeline", cwd=w.root)
    assert_clear_error(r, 2, str(path), *expect)
    if kind == "bad_date":  # the same value as a flag and from the environment
        assert_clear_error(w.run("aws", "run-pipeline", "--start-date", "2024-13"), 2, "--start-date", "'2024-13'", "YYYY-MM")
        assert_clear_error(w.run("aws", "run-pipeline", FINOPS__END_DATE="Nov-2023"), 2, "FINOPS__END_DATE", "YYYY-MM")
    assert_kept(w, before, w.snap(), staging="equal")


@pytest.mark.parametrize("kind", CONFIG_KINDS)
def test_config_error_papermill(kind, world):
    w = world
    path, expect = _config_file(w, kind)
    before = w.snap()
    report, err = _papermill(w.root, kind, config_path=str(path))
    assert err is not None and err.ename == "ConfigError", err
    text = _report_text(report)
    assert "ConfigError" in text and str(path) in text and all(e in text for e in expect), text[-2000:]
    assert_kept(w, before, w.snap(), staging="equal")


def test_bad_date_papermill_parameter(world, monkeypatch):
    "config_bad_date_papermill_parameter: `-p start_date 2024/01` is refused like the same value in config.toml."
    w = world
    for k, v in w.env(bq=False).items():
        if k.startswith("FINOPS__"):
            monkeypatch.setenv(k, v)
    before = w.snap()
    report, err = _papermill(w.root, "bad-param", start_date="2024/01")
    text = _report_text(report)
    ran = [l for l in text.replace("\\n", "\n").splitlines() if "window 2024/01" in l or l.startswith("finished")]
    assert err is not None and err.ename == "ConfigError", f"the run went on with start_date='2024/01': {ran}"
    assert "start_date" in text and "YYYY-MM" in text
    assert_kept(w, before, w.snap(), staging="equal")
