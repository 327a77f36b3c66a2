"""Azure Cost Management exports end to end, on the real samples in ../shared/samples laid out as exports in a local mirror:
exact loads, both layouts, restatements, the wrong dataset refused, FOCUS validated, the commands."""

import csv
import json
import os
import shutil
from decimal import Decimal
from pathlib import Path

import pytest

from finops_nb.azure.exports import azure_export
from finops_nb.config import load_config
from finops_nb.focus import validate
from finops_nb.parquet import Parquet
from finops_nb.pipeline import config_exports, reconcile, run_pipeline

from cur_fixtures import SAMPLES
from helpers import cli, query

EA_ACTUAL = SAMPLES / "azure-finops-toolkit" / "EA_ActualCost_Small.csv"
EA_AMORTIZED = SAMPLES / "azure-finops-toolkit" / "EA_AmortizedCost_Small.csv"
EA_EMPTY = SAMPLES / "azure-finops-toolkit" / "EA_NoRows.csv"
EXCEL = SAMPLES / "focus-converters-azure-ea" / "sample-anonymous-ea-export-dataset.csv"
MCA = SAMPLES / "koku-test-data" / "azure" / "camel_azure_version_2.csv"
PAYG = SAMPLES / "opencost-azure-headersets" / "PayAsYouGo.csv"
GERMAN = SAMPLES / "opencost-azure-headersets" / "German.csv"


def source_sum(path, *names):
    "Rows and the exact sum of the first of `names` the file has, read with Python's csv from the file's own text."
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    header = {h.split("(")[-1].rstrip(")").strip(): h for h in reader.fieldnames}
    col = next(header[n] for n in names if n in header)
    return len(rows), sum((Decimal(r[col]) for r in rows if r[col].strip()), Decimal(0))


def manifest_run(root, export, rng, run_id, src, dataset, submitted, prefix="exports"):
    "One run of a current export: {prefix}/{export}/{range}/{run}/part_0_0001.csv (the sample's bytes) and its manifest.json."
    key = f"{prefix}/{export}/{rng}/{run_id}/part_0_0001.csv"
    p = root / key
    p.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, p)
    n, _ = source_sum(src, "CostInBillingCurrency", "Cost", "costInBillingCurrency", "PreTaxCost")
    (p.parent / "manifest.json").write_text(json.dumps({
        "manifestVersion": "2024-04-01", "byteCount": p.stat().st_size, "blobCount": 1, "dataRowCount": n,
        "exportConfig": {"exportName": export, "type": dataset, "timeFrame": "MonthToDate"},
        "deliveryConfig": {"fileFormat": "Csv", "compressionMode": "None", "dataOverwriteBehavior": "CreateNewReport"},
        "runInfo": {"runId": run_id, "submittedTime": submitted, "startDate": f"{rng[:4]}-{rng[4:6]}-01T00:00:00"},
        "blobs": [{"blobName": key, "byteCount": p.stat().st_size, "dataRowCount": n}]}))
    return key


def legacy_file(root, export, rng, name, src, mtime, prefix="legacy"):
    "A run of an export without manifests: {prefix}/{export}/{range}/{name} (the sample's bytes)."
    p = root / prefix / export / rng / name
    p.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, p)
    os.utime(p, (mtime, mtime))
    return p


def azure_config(tmp_path, export, prefix="exports", **kw):
    over = {"azure.account_url": f"file://{tmp_path / 'container'}", "azure.prefix": prefix, "azure.export_name": export,
            "staging_dir": str(tmp_path / "staging"), "parquet_dir": str(tmp_path / "parquet"),
            "database.duckdb.database_path": str(tmp_path / "finops.duckdb"), **kw}
    return load_config(None, over, environ={})


def test_actual_and_amortized_ea_exports_load_exactly_and_map_to_focus(tmp_path):
    root = tmp_path / "container"
    manifest_run(root, "ea-actual", "20230901-20230930", "run-a1", EA_ACTUAL, "ActualCost", "2023-10-02T06:00:00Z")
    manifest_run(root, "ea-amortized", "20230901-20230930", "run-m1", EA_AMORTIZED, "AmortizedCost", "2023-10-02T06:00:00Z")
    actual, amortized = azure_config(tmp_path, "ea-actual"), azure_config(tmp_path, "ea-amortized")
    for cfg in (actual, amortized):
        run = run_pipeline(cfg, progress=False)
        assert not run.failures, str(run)
    (a,), (m,) = config_exports(actual), config_exports(amortized)
    assert (a.provider, a.kind, m.kind) == ("azure", "actual", "amortized")
    for export, src, name in ((a, EA_ACTUAL, "Cost"), (m, EA_AMORTIZED, "Cost")):
        n, total = source_sum(src, name)
        got = query(actual, "SELECT count(*), sum(cost_in_billing_currency), any_value(typeof(cost_in_billing_currency)) "
                            "FROM azure_billing_data WHERE export_id = ?", [export.id])[0]
        assert got == (n, total, "DECIMAL(38,28)"), (export.id, got, n, total)
    # 28 decimal places kept, not rounded to 18
    assert query(actual, "SELECT count(*) FROM azure_billing_data WHERE cost_in_billing_currency::VARCHAR LIKE '%.0000000072922557592391990000'")[0][0] >= 1
    # dates read from MM/DD/YYYY, tags without braces as JSON objects
    assert query(actual, "SELECT min(date)::DATE::VARCHAR, max(date)::DATE::VARCHAR FROM azure_billing_data WHERE export_id = ?", [a.id]) == \
        [("2023-09-04", "2023-09-21")]
    assert query(actual, "SELECT count(*) FROM azure_billing_data WHERE export_id = ? AND tags->>'env' = 'prod'", [a.id])[0][0] > 0
    # FOCUS: actual cost is BilledCost; a reservation purchase has EffectiveCost 0; amortised cost is EffectiveCost
    _, a_total = source_sum(EA_ACTUAL, "Cost")
    _, m_total = source_sum(EA_AMORTIZED, "Cost")
    billed, effective, purchases = query(actual, "SELECT sum(BilledCost), sum(EffectiveCost), sum(BilledCost) FILTER (WHERE ChargeCategory = 'Purchase') "
                                                 "FROM focus WHERE x_ExportId = ?", [a.id])[0]
    assert billed == a_total and effective == a_total - purchases and purchases > 0
    effective_m, used = query(actual, "SELECT sum(EffectiveCost), count(*) FILTER (WHERE CommitmentDiscountStatus = 'Used') FROM focus "
                                      "WHERE x_ExportId = ?", [m.id])[0]
    assert effective_m == m_total and used == 2  # the sample's Reservation and SavingsPlan rows
    for cfg in (actual, amortized):
        assert reconcile(cfg).ok
    # a second run does nothing anywhere
    again = run_pipeline(actual, progress=False)
    assert {r.action for r in again.results if r.step != "discover"} == {"up to date"}


def test_the_real_samples_pass_the_foundations_validator(tmp_path):
    root = tmp_path / "container"
    samples = {"ea-actual": (EA_ACTUAL, "20230901-20230930"), "excel": (EXCEL, "20230901-20230930"), "mca": (MCA, "20230801-20230831"),
               "payg": (PAYG, "20210201-20210228"), "german": (GERMAN, "20210201-20210228")}
    for name, (src, rng) in samples.items():
        legacy_file(root, name, rng, f"{name}_0001.csv", src, 1_700_000_000)
    files = []
    for name, (src, rng) in samples.items():
        cfg = azure_config(tmp_path, name, prefix="legacy", **{"azure.dataset": "ActualCost"})
        run = run_pipeline(cfg, progress=False)
        assert not run.failures, str(run)
        (export,) = config_exports(cfg)
        n, total = source_sum(src, "CostInBillingCurrency", "Cost", "costInBillingCurrency", "PreTaxCost")
        assert query(cfg, "SELECT count(*), sum(BilledCost) FROM focus WHERE x_ExportId = ?", [export.id]) == [(n, total)], name
        files += [d.files[0] for d in Parquet(cfg, focus=True).deliveries(export)]
    assert len(files) == len(samples)
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(2) as pool: results = list(pool.map(validate, files))  # two validator processes: one per core
    for f, v in zip(files, results):
        assert (v.checks, v.failures, v.errors) == (578, 0, 0), (f, v.problems)


def test_quirks_of_the_excel_touched_and_localised_exports(tmp_path):
    root = tmp_path / "container"
    legacy_file(root, "excel", "20230901-20230930", "excel_1.csv", EXCEL, 1_700_000_000)
    legacy_file(root, "german", "20210201-20210228", "german_1.csv", GERMAN, 1_700_000_000)
    excel = azure_config(tmp_path, "excel", prefix="legacy", **{"azure.dataset": "ActualCost"})
    german = azure_config(tmp_path, "german", prefix="legacy", **{"azure.dataset": "ActualCost"})
    for cfg in (excel, german):
        assert not run_pipeline(cfg, progress=False).failures
    (e,), (g,) = config_exports(excel), config_exports(german)
    # M/D/YYYY dates, E-notation costs read exactly (5.64902E-05 is 0.0000564902), CRLF line ends
    with open(EXCEL, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    enot = [r["CostInBillingCurrency"] for r in rows if "E" in r["CostInBillingCurrency"]]
    assert enot and query(excel, f"SELECT count(*) FROM azure_billing_data WHERE export_id = ? AND cost_in_billing_currency IN "
                                 f"({', '.join('?' for _ in enot)})", [e.id, *map(Decimal, enot)])[0][0] == len(enot)
    assert query(excel, "SELECT DISTINCT date::DATE::VARCHAR FROM azure_billing_data WHERE export_id = ?", [e.id]) == [("2023-09-02",)]
    # localised headers land on the English names
    cols = {c for c, in query(german, "SELECT column_name FROM information_schema.columns WHERE table_name = 'azure_billing_data'")}
    assert {"subscription_id", "meter_category", "cost_in_billing_currency", "unit_of_measure", "date"} <= cols
    assert query(german, "SELECT count(*) FROM azure_billing_data WHERE export_id = ? AND subscription_id IS NOT NULL", [g.id])[0][0] == 1


def test_restated_month_replaces_the_previous_run_whole(tmp_path):
    root = tmp_path / "container"
    manifest_run(root, "mtd", "20230901-20230930", "run-1", EA_AMORTIZED, "AmortizedCost", "2023-09-10T06:00:00Z")
    cfg = azure_config(tmp_path, "mtd")
    assert not run_pipeline(cfg, progress=False).failures
    (export,) = config_exports(cfg)
    assert query(cfg, "SELECT DISTINCT delivery_id FROM azure_billing_data WHERE export_id = ?", [export.id]) == [("run-1",)]
    manifest_run(root, "mtd", "20230901-20230930", "run-2", EA_ACTUAL, "AmortizedCost", "2023-09-11T06:00:00.1234567Z")
    run = run_pipeline(cfg, progress=False)
    assert [(r.step, r.action) for r in run.results if r.step in ("load_local", "focus_parquet")] == \
        [("load_local", "replaced"), ("focus_parquet", "re-exported (stale: was run-1)")]
    n, total = source_sum(EA_ACTUAL, "Cost")
    assert query(cfg, "SELECT delivery_id, count(*), sum(cost_in_billing_currency) FROM azure_billing_data WHERE export_id = ? GROUP BY 1",
                 [export.id]) == [("run-2", n, total)]
    assert query(cfg, "SELECT DISTINCT x_DeliveryId FROM focus WHERE x_ExportId = ?", [export.id]) == [("run-2",)]
    assert reconcile(cfg).ok


def test_wrong_dataset_and_missing_export_are_one_line_errors(tmp_path):
    root = tmp_path / "container"
    manifest_run(root, "ea-actual", "20230901-20230930", "run-a1", EA_ACTUAL, "ActualCost", "2023-10-02T06:00:00Z")
    legacy_file(root, "old", "20230901-20230930", "old_1.csv", EA_ACTUAL, 1_700_000_000, prefix="exports")
    cfg_path = tmp_path / "config.toml"
    cfg_path.write_text(f'staging_dir = "{tmp_path / "staging"}"\nparquet_dir = "{tmp_path / "parquet"}"\n'
                        f'[database.duckdb]\ndatabase_path = "{tmp_path / "finops.duckdb"}"\n'
                        f'[azure]\naccount_url = "file://{root}"\nprefix = "exports"\nexport_name = "ea-actual"\n')
    r = cli("--config", cfg_path, "azure", "discover-exports", "--dataset", "AmortizedCost")
    assert r.returncode == 3 and 'delivers ActualCost, not AmortizedCost: set [azure] dataset = "ActualCost"' in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1
    r = cli("--config", cfg_path, "azure", "discover-exports", "--export-name", "ea-actuals")
    assert r.returncode == 3 and "exports under the prefix: ea-actual, old" in r.stderr, r.stderr
    r = cli("--config", cfg_path, "azure", "discover-exports", "--export-name", "old")
    assert r.returncode == 2 and "[azure] dataset is not set and export 'old' has no manifest that says it" in r.stderr, r.stderr
    r = cli("--config", cfg_path, "azure", "discover-exports")
    assert r.returncode == 0 and "run-a1" in r.stdout and "ActualCost" in r.stdout, r.stdout + r.stderr
    assert azure_export(load_config(cfg_path, environ={})).kind == "actual"


def test_an_empty_export_loads_no_rows_and_needs_no_validation(tmp_path):
    root = tmp_path / "container"
    manifest_run(root, "empty", "20230901-20230930", "run-0", EA_EMPTY, "ActualCost", "2023-10-02T06:00:00Z")
    cfg = azure_config(tmp_path, "empty")
    run = run_pipeline(cfg, progress=False)
    assert not run.failures and [r.rows for r in run.results if r.step == "load_local"] == [0]
    (export,) = config_exports(cfg)
    (d,) = Parquet(cfg, focus=True).deliveries(export)
    v = validate(d.files[0])
    assert v.empty and v.ok
