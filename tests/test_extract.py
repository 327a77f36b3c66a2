"Discovery and extraction against the real moto S3 server, with exports built from the real samples."
import gzip, json, os, signal, subprocess, sys, time
from pathlib import Path

import pytest

import cur_fixtures as cf
from finops_nb.aws.manifests import aws_export, discover_manifests
from finops_nb.config import load_config
from finops_nb.core import InputError
from finops_nb.pipeline import extract_billing
from finops_nb.staging import MARKER
from helpers import extract, staged, staging_of

BUCKET = cf.DEFAULT_BUCKET
FINOPS = str(Path(sys.executable).with_name("finops"))


def config(s3_server, tmp_path, **kw):
    over = {"aws.bucket": BUCKET, "aws.prefix": "cur", "aws.export_name": "demo-cur", "aws.cur_version": "v1",
            "aws.endpoint_url": s3_server.url, "staging_dir": str(tmp_path / "staging")}
    over.update(kw)
    return load_config(None, over, environ={k: v for k, v in os.environ.items() if not k.startswith("FINOPS")})


def staged_files(folder):
    return sorted(p.relative_to(folder).as_posix() for p in Path(folder).rglob("*") if p.is_file())


@pytest.fixture
def v1_export(s3, tmp_path):
    "CUR v1 CSV export: 2023-11 restated (two assemblies), 2023-12 once (AWS's older last-day range folder)."
    src = tmp_path / "bucket"
    restated = cf.restate_v1(src, files=2)
    dec = cf.build_v1_csv(src, period="2023-12", files=3, date_range_style="last-day")
    cf.upload_tree(s3, BUCKET, src)
    return restated, dec


def test_discover_v1_finds_current_manifests(s3_server, v1_export, tmp_path):
    restated, dec = v1_export
    found = discover_manifests(config(s3_server, tmp_path))
    assert found.problems == []
    assert [(m.period, m.execution_id) for m in found.manifests] == [
        ("2023-12", dec.assembly_id), ("2023-11", restated.second.assembly_id)]
    nov = found.manifests[1]
    assert nov.files == list(restated.second.data_keys) and nov.format == "csv.gz" and nov.cur_version == "v1"
    assert ("lineItem/UnblendedCost", "BigDecimal") in nov.columns
    assert nov.bytes == sum((tmp_path / "bucket" / k).stat().st_size for k in nov.files)
    assert nov.etag and nov.last_modified is not None


def test_extract_stages_exact_files_then_nothing(s3_server, v1_export, tmp_path):
    restated, dec = v1_export
    cfg = config(s3_server, tmp_path)
    res, problems = extract(cfg)
    assert problems == {}
    assert [(s.period, s.action, s.files) for s in res] == [("2023-11", "downloaded", 2), ("2023-12", "downloaded", 3)]
    assert [s.bytes for s in res] == [sum((tmp_path / "bucket" / k).stat().st_size for k in keys)
                                      for keys in (restated.second.data_keys, dec.data_keys)]
    assert all((s.delivery_id, s.export_id) == (i, aws_export(cfg).id)
               for s, i in zip(res, (restated.second.assembly_id, dec.assembly_id)))
    folder = staging_of(cfg) / "2023-11" / restated.second.assembly_id
    assert staged_files(folder) == sorted([MARKER, "demo-cur-Manifest.json", "demo-cur-00001.csv.gz", "demo-cur-00002.csv.gz"])
    for key in restated.second.data_keys:  # byte for byte what the bucket holds
        assert (folder / Path(key).name).read_bytes() == (tmp_path / "bucket" / key).read_bytes()
    assert staged(cfg) == {"2023-11": restated.second.assembly_id, "2023-12": dec.assembly_id}
    def snapshot():  # every staged delivery file and folder (the run lock at the root is rewritten by each run)
        return {p: p.stat().st_mtime_ns for p in (tmp_path / "staging").rglob("*") if p.name != ".finops.lock"}
    before = snapshot()
    again, problems = extract(cfg)
    assert problems == {}
    assert [(s.period, s.action, s.files, s.bytes) for s in again] == [("2023-11", "up to date", 2, 0), ("2023-12", "up to date", 3, 0)]
    assert snapshot() == before


def test_restated_period_switches_and_cleans(s3, s3_server, tmp_path):
    src = tmp_path / "bucket"
    first = cf.build_v1_csv(src, assembly_id="20231105T010000Z", rows=300)
    cf.upload_tree(s3, BUCKET, src)
    cfg = config(s3_server, tmp_path)
    extract_billing(cfg, progress=False)
    assert staged(cfg) == {"2023-11": first.assembly_id}
    second = cf.build_v1_csv(src, assembly_id="20231202T030000Z")
    cf.upload_tree(s3, BUCKET, src)
    res, _ = extract(cfg)
    assert [(s.delivery_id, s.action) for s in res] == [(second.assembly_id, "downloaded")]
    assert sorted(p.name for p in (staging_of(cfg) / "2023-11").iterdir()) == [second.assembly_id]


def test_overwrite_mode_and_v2_and_parquet(s3, s3_server, tmp_path):
    src = tmp_path / "bucket"
    ow = cf.build_v1_csv(src, report="ow-cur", mode="overwrite", files=1)
    v2a = cf.build_v2(src, period="2024-01", rows=200)
    v2b = cf.build_v2(src, period="2024-02", rows=100, subfolder=False, fmt="parquet")
    pq = cf.build_v1_parquet(src, months=("Oct2018",))
    cf.upload_tree(s3, BUCKET, src)
    f = discover_manifests(config(s3_server, tmp_path, **{"aws.export_name": "ow-cur"}))
    assert [(m.period, m.execution_id, m.files) for m in f.manifests] == [("2023-11", ow.assembly_id, list(ow.data_keys))]
    cfg2 = config(s3_server, tmp_path, **{"aws.prefix": "cur2", "aws.export_name": "demo-cur2", "aws.cur_version": "v2"})
    f2 = discover_manifests(cfg2)
    assert [(m.period, m.execution_id, m.format, m.files) for m in f2.manifests] == [
        ("2024-02", v2b.execution_id, "parquet", list(v2b.data_keys)), ("2024-01", v2a.execution_id, "csv.gz", list(v2a.data_keys))]
    res, problems = extract(cfg2)
    assert problems == {}
    assert [(s.period, s.action) for s in res] == [("2024-01", "downloaded"), ("2024-02", "downloaded")]
    fp = discover_manifests(config(s3_server, tmp_path, **{"aws.export_name": "workshop"}))
    assert [(m.period, m.format, m.files) for m in fp.manifests] == [("2018-10", "parquet", list(pq.months[0].data_keys))]


def test_thousands_of_keys_are_paginated(s3, s3_server, tmp_path):
    src = tmp_path / "bucket"
    cf.build_v1_csv(src, period="2024-12", files=1)
    for i in range(1100):  # noise keys sorting before the manifest: more than one listing page
        (src / f"cur/demo-cur/20241201-20250101/aaa-noise/{i:05d}.txt").parent.mkdir(parents=True, exist_ok=True)
        (src / f"cur/demo-cur/20241201-20250101/aaa-noise/{i:05d}.txt").write_bytes(b"")
    cf.upload_tree(s3, BUCKET, src)
    found = discover_manifests(config(s3_server, tmp_path))
    assert [m.period for m in found.manifests] == ["2024-12"]


def test_traversal_and_bad_manifests_are_reported(s3, s3_server, v1_export, tmp_path):
    bad = {"assemblyId": "evil", "reportKeys": ["cur/demo-cur/../../../etc/passwd"],
           "billingPeriod": {"start": "20240101T000000.000Z"}}
    s3.put_object(Bucket=BUCKET, Key="cur/demo-cur/20240101-20240201/demo-cur-Manifest.json", Body=json.dumps(bad))
    s3.put_object(Bucket=BUCKET, Key="cur/demo-cur/20240201-20240301/demo-cur-Manifest.json", Body=b"{not json")
    cfg = config(s3_server, tmp_path)
    res, problems = extract(cfg)
    assert "refused data key 'cur/demo-cur/../../../etc/passwd'" in problems["cur/demo-cur/20240101-20240201/demo-cur-Manifest.json"]
    assert "not valid JSON" in problems["cur/demo-cur/20240201-20240301/demo-cur-Manifest.json"]
    assert sorted(s.period for s in res if s.action == "downloaded") == ["2023-11", "2023-12"]  # the others go on
    assert not list(staging_of(cfg).glob("2024-*")) and not list((tmp_path / "staging").glob("2024-*"))
    r = subprocess.run([FINOPS, "aws", "discover-manifests", "--bucket", BUCKET, "--prefix", "cur", "--export-name", "demo-cur"],
                       capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "AWS_ENDPOINT_URL": s3_server.url,
                                                            "FINOPS__STAGING_DIR": str(tmp_path / "staging")})
    assert r.returncode == 3 and "refused data key" in r.stderr and "Traceback" not in r.stderr
    assert "2023-11" in r.stdout and "up to date" in r.stdout


def test_missing_key_fails_its_period_only(s3, s3_server, v1_export, tmp_path):
    restated, dec = v1_export
    cfg = config(s3_server, tmp_path)
    extract_billing(cfg, progress=False)
    s3.put_object(Bucket=BUCKET, Key=dec.top_manifest_key, Body=json.dumps({
        "assemblyId": "restated-dec", "billingPeriod": {"start": "20231201T000000.000Z"},
        "reportKeys": ["cur/demo-cur/20231201-20231231/restated-dec/demo-cur-00001.csv.gz"]}))
    res, _ = extract(cfg)
    dec_res = next(s for s in res if s.period == "2023-12")
    assert dec_res.action == "failed" and dec_res.failed and isinstance(dec_res.error, InputError)
    assert "s3://billing-bucket/cur/demo-cur/20231201-20231231/restated-dec/demo-cur-00001.csv.gz" in str(dec_res.error)
    assert staged(cfg)["2023-12"] == dec.assembly_id  # the staged delivery is intact
    assert len(staged_files(staging_of(cfg) / "2023-12" / dec.assembly_id)) == 3 + 2


def test_missing_bucket_is_one_clear_error(s3_server, tmp_path):
    r = subprocess.run([FINOPS, "aws", "extract-billing", "--bucket", "no-such-bucket", "--export-name", "x"],
                       capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "AWS_ENDPOINT_URL": s3_server.url})
    assert r.returncode == 3, r
    assert r.stderr.strip().splitlines() == ["finops: error: s3://no-such-bucket/x/: bucket does not exist"]


def test_local_mirror_source(tmp_path):
    src = tmp_path / "mirror"
    d = cf.build_v1_csv(src, files=2)
    cfg = load_config(None, {"aws.bucket": f"file://{src}", "aws.prefix": "cur", "aws.export_name": "demo-cur",
                             "staging_dir": str(tmp_path / "stg")}, environ={})
    res = extract_billing(cfg, progress=False)
    assert [(s.step, s.period, s.delivery_id, s.action, s.files) for s in res] == [("extract", "2023-11", d.assembly_id, "downloaded", 2)]
    assert staged_files(Path(cfg["staging_dir"]) / aws_export(cfg).id / "2023-11" / d.assembly_id) == sorted(
        [MARKER, "demo-cur-Manifest.json", "demo-cur-00001.csv.gz", "demo-cur-00002.csv.gz"])


def test_kill_mid_download_leaves_nothing_counted_done(s3, s3_server, tmp_path):
    key = "cur/demo-cur/20240101-20240201/big/demo-cur-00001.csv.gz"
    s3.create_bucket(Bucket=BUCKET)
    body = gzip.compress(os.urandom(48 << 20), compresslevel=1)  # 48 MB: slow enough to be killed mid-download
    s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    s3.put_object(Bucket=BUCKET, Key="cur/demo-cur/20240101-20240201/demo-cur-Manifest.json", Body=json.dumps(
        {"assemblyId": "big", "billingPeriod": {"start": "20240101T000000.000Z"}, "reportKeys": [key]}))
    env = {**os.environ, "AWS_ENDPOINT_URL": s3_server.url}
    args = [FINOPS, "aws", "extract-billing", "--bucket", BUCKET, "--prefix", "cur", "--export-name", "demo-cur",
            "--staging-dir", str(tmp_path / "stg")]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cfg = config(s3_server, tmp_path, staging_dir=str(tmp_path / "stg"))
    folder = staging_of(cfg) / "2024-01" / "big"
    deadline = time.time() + 30
    while time.time() < deadline and not any(p.name.endswith(".part") and p.stat().st_size > 0
                                             for p in (folder.glob(".*.part") if folder.exists() else [])):
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert any(p.name.endswith(".part") for p in folder.glob(".*")), "the kill came too late to test anything"
    assert not (folder / "demo-cur-00001.csv.gz").exists() and not (folder / MARKER).exists()
    assert staged(cfg) == {}
    r = subprocess.run(args, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (folder / "demo-cur-00001.csv.gz").read_bytes() == body
    assert staged(cfg) == {"2024-01": "big"}
    assert not list(folder.glob("*.part")) and not list(folder.glob(".*.part"))  # the killed run's leftovers are gone
