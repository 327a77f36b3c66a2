"""Build the demo bucket `demo/bucket/` and `demo/README.md` from the real samples.

    .venv/bin/python scripts/build-demo-bucket.py

`demo/bucket/` is a local folder laid out like an S3 bucket (the object with key `K` is the
file `demo/bucket/K`) holding two billing exports in AWS's real layouts:

- legacy CUR v1, prefix `cur`, report `demo-cur`: the real CSV sample as 2023-11, delivered
  twice ("create new report versions": a first month-to-date assembly, then the restated
  full month; the top-level manifest names the second), and the three real workshop Parquet
  months 2018-10..2018-12 (Athena-integration layout) under the same report;
- CUR 2.0, prefix `cur2`, export `demo-cur2`: 2024-01 and 2024-02, generated from the
  CUR 2.0 column dictionary (no public real CUR 2.0 file exists).

The layouts come from `tests/cur_fixtures.py` (imported by path, not copied). Everything is
fixed (ids, seeds, gzip mtime), so a rebuild is byte-identical; `tests/test_demo_bucket.py`
checks that the committed bucket matches a fresh build.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "demo"
BUCKET_DIR = DEMO / "bucket"
README = DEMO / "README.md"
FIXTURES = REPO / "tests" / "cur_fixtures.py"

# The bucket name written into the manifests (v1 "bucket", v2 "s3://<bucket>/..." data files).
BUCKET_NAME = "finops-demo-bucket"

V1_PREFIX, V1_REPORT = "cur", "demo-cur"
V1_CSV_PERIOD = "2023-11"
V1_FIRST_ASSEMBLY = "6a1f0c4e-2b7d-4e39-8c15-0d9a3b5e7f21"   # Nov 1-7 only
V1_SECOND_ASSEMBLY = "b8e2d7f4-91a3-4c6e-a0f5-3e7c9d1b2a48"  # the restated full month
V1_PARQUET_MONTHS = ("Oct2018", "Nov2018", "Dec2018")

V2_PREFIX, V2_EXPORT = "cur2", "demo-cur2"
# (period, executionId, data files, rows, seed)
V2_PERIODS = (
    ("2024-01", "0d4b8e6a-7c21-4f93-b5e8-1a2c3d4e5f60", 2, 2000, 202401),
    ("2024-02", "9c7e5a3b-1d2f-4e68-8a0b-6f4e2d1c3b57", 1, 1000, 202402),
)

# Licence files of the samples used, copied to demo/bucket/LICENSES/<same path>
LICENSES = (
    "focus-converters-cur-v1/LICENSE",
    "workshop-cur-v1-parquet/LICENSE-Apache",
    "workshop-cur-v1-parquet/LICENSE-MITnoAttr",
)


class SamplesMissing(RuntimeError):
    "The real samples or the column dictionaries the demo is built from are not there."


def load_fixtures():
    """`tests/cur_fixtures.py` as a module (registered as `cur_fixtures`: its dataclasses need it)."""
    mod = sys.modules.get("cur_fixtures")
    if mod is not None and Path(getattr(mod, "__file__", "")).resolve() == FIXTURES:
        return mod
    spec = importlib.util.spec_from_file_location("cur_fixtures", FIXTURES)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["cur_fixtures"] = mod
    try:
        spec.loader.exec_module(mod)
    except BaseException:
        del sys.modules["cur_fixtures"]
        raise
    return mod


def check_inputs(cf) -> None:
    "Refuse, naming what is missing, when the real samples or the column dictionaries are absent."
    needed = [cf.SAMPLES / cf.V1_CSV_SAMPLE, cf.DOCS / cf.CUR1_COLUMNS_CSV, cf.DOCS / cf.CUR2_COLUMNS_CSV]
    needed += [cf.SAMPLES / cf.V1_PARQUET_SAMPLE_DIR / f"{m}-WorkshopCUR-00001.snappy.parquet"
               for m in V1_PARQUET_MONTHS]
    needed += [cf.SAMPLES / src for src in LICENSES]
    missing = [p for p in needed if not p.is_file()]
    if missing:
        raise SamplesMissing(
            "build-demo-bucket: the real samples are missing, nothing was written:\n"
            + "".join(f"  {p}\n" for p in missing)
            + f"Expected the shared samples at {cf.SAMPLES} and the column dictionaries at {cf.DOCS} "
              "(beside the repository: ../shared/samples, ../shared/docs), or set "
              "FINOPS_SAMPLES_DIR / FINOPS_DOCS_DIR.")


def build(root: str | os.PathLike) -> dict:
    """Write the demo bucket into `root` (which must be empty or absent); return what was written."""
    cf = load_fixtures()
    check_inputs(cf)
    root = Path(root)
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"{root} is not empty: build into an empty folder")
    root.mkdir(parents=True, exist_ok=True)

    restated = cf.restate_v1(root, V1_PREFIX, V1_REPORT, V1_CSV_PERIOD,
                             first_assembly_id=V1_FIRST_ASSEMBLY, second_assembly_id=V1_SECOND_ASSEMBLY,
                             mode="version", files=2, bucket=BUCKET_NAME)
    # status=None: the Athena-integration status file would be written by pyarrow, whose
    # version is stamped into the bytes; finops_nb does not read it.
    parquet = cf.build_v1_parquet(root, V1_PREFIX, V1_REPORT, V1_PARQUET_MONTHS, bucket=BUCKET_NAME, status=None)
    v2 = [cf.build_v2(root, V2_PREFIX, V2_EXPORT, period, execution_id, files=files, rows=rows,
                      subfolder=True, fmt="csv.gz", seed=seed, bucket=BUCKET_NAME)
          for period, execution_id, files, rows, seed in V2_PERIODS]

    for src in LICENSES:
        (root / "LICENSES" / src).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cf.SAMPLES / src, root / "LICENSES" / src)

    # The v1 CSV and Parquet deliveries share one report folder: their keys must not meet
    # (the first assembly's top-level manifest is meant to be replaced by the second's).
    first = restated.first
    v1_keys = [*first.data_keys, first.assembly_manifest_key, *restated.second.keys,
               *parquet.data_keys, *parquet.manifest_keys]
    if len(set(v1_keys)) != len(v1_keys):
        raise AssertionError("CUR v1 CSV and Parquet deliveries collide in the bucket")
    return {"root": root, "v1_csv": restated, "v1_parquet": parquet, "v2": v2}


def files_of(root: str | os.PathLike) -> dict[str, bytes]:
    "`{relative POSIX path: bytes}` of every file under `root`."
    root = Path(root)
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def readme(built: dict) -> str:
    "The text of demo/README.md for a build."
    root, first, second = built["root"], built["v1_csv"].first, built["v1_csv"].second
    parquet, v2 = built["v1_parquet"], built["v2"]
    total = sum(len(b) for b in files_of(root).values())
    fmt_sum = lambda d: f"{d.normalize():f}"  # exact Decimal, no exponent
    pq_rows = "\n".join(
        f"| {m.period} | `{m.assembly_id}` | `{m.data_keys[0]}` | {m.row_count:,} | {len(m.columns)} | "
        f"{fmt_sum(m.unblended_cost_sum)} | `{m.sample}` |" for m in parquet.months)
    v2_rows = "\n".join(
        f"| {d.period} | `{d.execution_id}` | {len(d.data_keys)} | {d.row_count:,} | {fmt_sum(d.unblended_cost_sum)} |"
        for d in v2)
    return f"""# Demo: an AWS billing bucket on disk

<!-- Generated by scripts/build-demo-bucket.py: edit the script, not this file. -->

`bucket/` is a folder laid out exactly like an S3 bucket that receives AWS billing exports
(the object with key `K` is the file `bucket/K`). The demo configs point finops_nb at it
with `[aws] bucket = "file://bucket"`, so the whole pipeline runs without an AWS account
(from the repository root):

```sh
.venv/bin/finops --config demo/cur-v1.toml aws discover-manifests
.venv/bin/finops --config demo/cur-v1.toml aws extract-billing
.venv/bin/finops --config demo/cur-v1.toml aws load-billing-local
.venv/bin/finops --config demo/cur-v1.toml aws export-parquet
# same four with demo/cur-v2.toml
```

Both configs write to the same `demo/.work/` (staging, `finops.duckdb`, monthly Parquet;
git-ignored): two exports side by side in one database, each in its own folders named by its
export id (`.venv/bin/finops --config demo/cur-v1.toml config` shows it). Delete the folder
to start over. BigQuery is off (empty `project_id`).

## What is in the bucket ({_size(total)})

### Legacy CUR v1: prefix `{V1_PREFIX}`, report `{V1_REPORT}` (`cur-v1.toml`)

One report with four billing periods in two formats, as a report whose format was changed
over the years would leave them.

**2023-11, CSV, "create new report versions", restated.** The real CSV sample, delivered twice:

| Assembly | Folder | Files | Rows | Sum of `lineItem/UnblendedCost` |
|---|---|---|---|---|
| first (month to date: usage before Nov 8) | `{V1_PREFIX}/{V1_REPORT}/{first.date_range}/{first.assembly_id}/` | {len(first.data_keys)} | {first.row_count:,} | {fmt_sum(first.unblended_cost_sum)} |
| second (restated full month, new line item ids) | `{V1_PREFIX}/{V1_REPORT}/{second.date_range}/{second.assembly_id}/` | {len(second.data_keys)} | {second.row_count:,} | {fmt_sum(second.unblended_cost_sum)} |

The top-level manifest `{second.top_manifest_key}` names the second assembly: that is the
current delivery. The first assembly's folder stays in the bucket, as it does in S3.

**2018-10, 2018-11, 2018-12, Parquet (Athena integration, overwrite).** The three real
workshop files, copied byte for byte and renamed to AWS's naming; one manifest per month in
its own date-range folder (`{V1_PREFIX}/{V1_REPORT}/YYYYMMDD-YYYYMMDD/{V1_REPORT}-Manifest.json`),
data under `{V1_PREFIX}/{V1_REPORT}/{V1_REPORT}/year=YYYY/month=M/`. Column sets drift from month
to month (as they do in real exports). The `cost_and_usage_data_status` file of the Athena
integration is not included.

| Period | assemblyId | Data file | Rows | Columns | Sum of `line_item_unblended_cost` | Sample |
|---|---|---|---|---|---|---|
{pq_rows}

### CUR 2.0 (Data Exports): prefix `{V2_PREFIX}`, export `{V2_EXPORT}` (`cur-v2.toml`)

Generated rows (no public real CUR 2.0 file exists) with every column of the CUR 2.0 column
dictionary, gzip CSV, one execution folder per delivery:
`{V2_PREFIX}/{V2_EXPORT}/data/BILLING_PERIOD=YYYY-MM/<YYYYMMDDTHHMMSSZ>-<executionId>/{V2_EXPORT}-0000N.csv.gz`,
manifests at `{V2_PREFIX}/{V2_EXPORT}/metadata/BILLING_PERIOD=YYYY-MM/{V2_EXPORT}-Manifest.json`.

| Period | executionId | Files | Rows | Sum of `line_item_unblended_cost` |
|---|---|---|---|---|
{v2_rows}

Manifests name the bucket `{BUCKET_NAME}`; finops_nb takes keys relative to the bucket, so
the name does not matter for a local folder.

## Where the data comes from, and its licences

| Files in `bucket/` | Source (public repository, path) | Licence (copy in `bucket/LICENSES/`) |
|---|---|---|
| `{V1_PREFIX}/{V1_REPORT}/{first.date_range}/**.csv.gz` | finopsfoundation/focus_converters, `focus_converter_base/tests/provider_config_tests/aws/sample-anonymous-aws-export-dataset.csv` (real, anonymised legacy CUR, 1281 rows, 94 columns, billing period 2023-11) | MIT, `LICENSES/focus-converters-cur-v1/LICENSE` |
| `{V1_PREFIX}/{V1_REPORT}/{V1_REPORT}/year=2018/**.snappy.parquet` | awslabs/aws-well-architected-labs, `static/Cost/200_4_Cost_and_Usage_Analysis/Code/` (`Oct2018`/`Nov2018`/`Dec2018-WorkshopCUR-00001.snappy.parquet`, real legacy CUR in the Athena Parquet form) | Apache-2.0 / MIT-0, `LICENSES/workshop-cur-v1-parquet/LICENSE-Apache`, `LICENSES/workshop-cur-v1-parquet/LICENSE-MITnoAttr` |
| `{V2_PREFIX}/**` | generated by `tests/cur_fixtures.py` from the CUR 2.0 column dictionary (fixed seeds) | the project's licence (Apache-2.0) |
| every `*-Manifest.json` | written by `tests/cur_fixtures.py` in AWS's manifest format | the project's licence (Apache-2.0) |

The v1 CSV rows are the sample's rows, unchanged except that the second assembly re-issues
`identity/LineItemId` (AWS does not keep line item ids between deliveries); the files are
split in two and gzipped.

## How it was built

```sh
.venv/bin/python scripts/build-demo-bucket.py
```

The script reuses the layouts of `tests/cur_fixtures.py` and reads the real samples from
`../shared/samples` (beside the repository; see `SOURCES.md` there). Assembly and execution
ids, seeds and gzip headers are fixed, so a rebuild is byte-identical:
`tests/test_demo_bucket.py` rebuilds it and fails if the committed bucket differs.
"""


def main() -> int:
    try:
        check_inputs(load_fixtures())
    except SamplesMissing as e:
        print(e, file=sys.stderr)
        return 2
    DEMO.mkdir(exist_ok=True)
    # Build beside the old bucket, then swap: a failed build leaves the old one intact, and
    # files of an older layout do not linger.
    tmp = Path(tempfile.mkdtemp(prefix=".bucket-", dir=DEMO))
    try:
        built = build(tmp)
        text = readme(built)
        if BUCKET_DIR.exists():
            shutil.rmtree(BUCKET_DIR)
        tmp.rename(BUCKET_DIR)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    README.write_text(text, encoding="utf-8")
    files = files_of(BUCKET_DIR)
    print(f"wrote {BUCKET_DIR.relative_to(REPO)}/: {len(files)} files, {_size(sum(map(len, files.values())))}")
    print(f"wrote {README.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
