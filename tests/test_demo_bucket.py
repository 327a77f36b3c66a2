"""The committed demo bucket (demo/bucket/) is what scripts/build-demo-bucket.py builds, and finops_nb finds its exports."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path


from finops_nb.aws.manifests import aws_export, discover
from finops_nb.config import load_config
from finops_nb.delivery import Export
from finops_nb.storage import LocalStore

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "build-demo-bucket.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("build_demo_bucket", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


demo = _load_script()


def demo_export(prefix, name, cur_version):
    "The `Export` of one of the demo bucket's exports, as a config pointing at demo/bucket names it."
    cfg = load_config(None, {"aws.bucket": f"file://{demo.BUCKET_DIR}", "aws.prefix": prefix, "aws.export_name": name,
                             "aws.cur_version": cur_version}, environ={})
    export = aws_export(cfg)
    assert export == Export("aws", {"v1": "cur1", "v2": "cur2"}[cur_version], f"file://{demo.BUCKET_DIR.resolve()}",
                            prefix.strip("/"), name)
    return export


def test_committed_bucket_is_a_fresh_build(tmp_path):
    built = demo.build(tmp_path / "bucket")
    fresh, committed = demo.files_of(tmp_path / "bucket"), demo.files_of(demo.BUCKET_DIR)
    assert sorted(set(fresh) - set(committed)) == [], "missing from demo/bucket: rerun scripts/build-demo-bucket.py"
    assert sorted(set(committed) - set(fresh)) == [], "stray files in demo/bucket: rerun scripts/build-demo-bucket.py"
    assert [k for k in fresh if fresh[k] != committed[k]] == [], "demo/bucket differs from a fresh build"
    assert demo.README.read_text(encoding="utf-8") == demo.readme(built), "demo/README.md is stale"
    assert sum(map(len, committed.values())) < 8_000_000


def test_v1_report_has_restated_csv_month_and_parquet_months():
    export = demo_export(demo.V1_PREFIX, demo.V1_REPORT, "v1")
    found = discover(LocalStore(demo.BUCKET_DIR), export)
    assert found.export == export
    assert found.problems == []
    got = {m.period: (m.execution_id, m.format, len(m.files)) for m in found.manifests}
    assert got == {
        "2023-11": (demo.V1_SECOND_ASSEMBLY, "csv.gz", 2),
        "2018-12": ("20190103T030000Z", "parquet", 1),
        "2018-11": ("20181203T030000Z", "parquet", 1),
        "2018-10": ("20181103T030000Z", "parquet", 1),
    }
    nov = next(m for m in found.manifests if m.period == "2023-11")
    assert all(f"/{demo.V1_SECOND_ASSEMBLY}/" in f for f in nov.files)
    for m in found.manifests:  # every listed data file is in the bucket
        assert sorted(m.listed) == sorted(m.files)
    assert [(d.period, d.delivery_id, d.export.id) for d in found.deliveries] == [
        (m.period, m.execution_id, export.id) for m in found.manifests]
    # the superseded first assembly is still there, as in S3
    assert (demo.BUCKET_DIR / "cur/demo-cur/20231101-20231201" / demo.V1_FIRST_ASSEMBLY).is_dir()


def test_v2_export_has_two_periods():
    export = demo_export(demo.V2_PREFIX, demo.V2_EXPORT, "v2")
    found = discover(LocalStore(demo.BUCKET_DIR), export)
    assert found.export == export
    assert found.problems == []
    got = {m.period: (m.execution_id, m.format, len(m.files)) for m in found.manifests}
    assert got == {p: (e, "csv.gz", n) for p, e, n, _, _ in demo.V2_PERIODS}
    assert set(got) == {"2024-01", "2024-02"}
    for m in found.manifests:
        assert sorted(m.listed) == sorted(m.files)


def test_script_refuses_without_samples(tmp_path):
    env = {**os.environ, "FINOPS_SAMPLES_DIR": str(tmp_path / "no-samples")}
    r = subprocess.run([sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "samples are missing" in r.stderr and str(tmp_path / "no-samples") in r.stderr
