"""Azure Cost Management exports end to end on the generated fixture exports (tests/azure_fixtures.py): every layout and
format, FOCUS exports, month-to-date restatements (DuckDB, focus, Parquet, BigQuery), a column added mid-year, two scopes
side by side, a mixed container, the six `finops azure …` commands, and an AWS and an Azure export in one config.
Every expectation is what the fixture read back from the files it wrote (rows, exact Decimal sums), never what we loaded."""

import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

import azure_fixtures as af
import cur_fixtures as cf
from finops_nb.azure.exports import AzureSource
from finops_nb.config import load_config
from finops_nb.core import ConfigError
from finops_nb.explore import focus_spend_by
from finops_nb.focus import validate
from finops_nb.localdb import DuckDB
from finops_nb.parquet import Parquet
from finops_nb.pipeline import config_exports, reconcile, run_pipeline
from finops_nb.staging import Staging
from helpers import cli, query, tree

# the fixture's header names of the summed columns -> the azure_billing_data columns they load into
COLUMN = {"Cost": "cost_in_billing_currency", "CostInBillingCurrency": "cost_in_billing_currency",
          "costInBillingCurrency": "cost_in_billing_currency", "PreTaxCost": "cost_in_billing_currency",
          "costInUsd": "cost_in_usd", "paygCostInBillingCurrency": "payg_cost_in_billing_currency"}
FOCUS_COSTS = ("BilledCost", "EffectiveCost", "ListCost", "ContractedCost")


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------
def azcfg(tmp_path, export, prefix="exports", container="container", **kw):
    "A Config of one Azure export in the local mirror tmp_path/container; every config of a test shares staging, DuckDB and Parquet."
    over = {"azure.account_url": f"file://{tmp_path / container}", "azure.prefix": prefix, "azure.export_name": export,
            "staging_dir": str(tmp_path / "staging"), "parquet_dir": str(tmp_path / "parquet"),
            "database.duckdb.database_path": str(tmp_path / "finops.duckdb"), **kw}
    return load_config(None, over, environ={})


def bq_settings(bq_server):
    "The [database.bigquery] settings of a fresh dataset on the emulator."
    return {"database.bigquery.project_id": bq_server.project, "database.bigquery.api_endpoint": bq_server.url,
            "database.bigquery.dataset_id": "ds_" + uuid.uuid4().hex[:10]}


def replay(src, dst, d):
    "Deliver run `d` (written by a builder under `src`) into the container `dst`: its blobs copied with their mtimes, the blobs its overwrite deleted removed."
    for k in d.keys:
        (dst / k).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / k, dst / k)
    for k in d.removed_keys:
        (dst / k).unlink(missing_ok=True)


def two_runs(root, **kw):
    """restate()'s two runs of one month, delivered one at a time: `(first, deliver_second)`. An overwrite deletes the first run, so
    replaying a finished restate() cannot deliver it first; the runs are checked against restate()'s own."""
    ref = af.restate(root.parent / f"{root.name}-restate", **kw)
    first = af.build_azure_export(root, period=ref.first.period, through=ref.first.end_date, **kw)

    def deliver_second():
        second = af.build_azure_export(root, period=ref.second.period, submitted=ref.second.submitted, **kw)
        assert (second.run_id, second.rows, second.sums, second.removed_keys) == \
            (ref.second.run_id, ref.second.rows, ref.second.sums, tuple(sorted(first.keys)) if kw.get("overwrite") else ())
        return second

    assert (first.run_id, first.rows, first.sums, first.month_to_date) == (ref.first.run_id, ref.first.rows, ref.first.sums, True)
    return first, deliver_second


def delivery_id(d):
    "The delivery id a run must be found as: its run id; an export without manifests is known by its file's name."
    return Path(d.data_keys[0]).name.removesuffix(".csv") if d.layout == "legacy" else d.run_id


def expected(d):
    "(delivery id, rows, {table column: exact sum}) of a run, from the fixture's read-back."
    return delivery_id(d), d.rows, {COLUMN[c]: d.sums[c] for c in d.cost_columns}


def loaded(cfg, export, d):
    "What DuckDB holds of `export` in `d`'s period, in the shape of `expected(d)`."
    cols = [COLUMN[c] for c in d.cost_columns]
    rows = query(cfg, f"SELECT string_agg(DISTINCT delivery_id, ','), count(*), {', '.join(f'sum({c})' for c in cols)} "
                      "FROM azure_billing_data WHERE export_id = ? AND billing_period = ?", [export.id, d.period])
    (ids, n, *sums), = rows
    return ids, n, dict(zip(cols, sums))


def parquet_file(cfg, export, period, name="azure_billing"):
    return Path(cfg["parquet_dir"]) / export.id / f"{period}_{name}.parquet"


def in_parquet(path, cols):
    "(delivery ids, rows, {column: sum}) of one of our Parquet files."
    (ids, n, *sums), = duckdb.connect().execute(
        f"SELECT string_agg(DISTINCT delivery_id, ','), count(*), {', '.join(f'sum({c})' for c in cols)} FROM read_parquet(?)",
        [str(path)]).fetchall()
    return ids, n, dict(zip(cols, sums))


def focus_of(cfg, export, period=None):
    "(delivery ids, rows, {FOCUS cost: sum}) of an export's rows of the focus table (one period, or all)."
    where, params = ("AND x_BillingPeriod = ?", [export.id, period]) if period else ("", [export.id])
    (ids, n, *sums), = query(cfg, f"SELECT string_agg(DISTINCT x_DeliveryId, ','), count(*), {', '.join(f'sum({c})' for c in FOCUS_COSTS)} "
                                  f"FROM focus WHERE x_ExportId = ? {where}", params)
    return ids, n, dict(zip(FOCUS_COSTS, sums))


def actions(run, step):
    return [(r.period, r.delivery_id, r.action) for r in run.results if r.step == step]


def prev_month(period):
    y, m = map(int, period.split("-"))
    return f"{y - (m == 1):04d}-{(m - 2) % 12 + 1:02d}"


def write_config(path, tmp_path, azure=None, aws=None, bigquery=None):
    "A config.toml as a user writes it: the folders under tmp_path, and the [azure] / [aws] / [database.bigquery] tables given."
    text = (f'staging_dir = "{tmp_path / "staging"}"\nparquet_dir = "{tmp_path / "parquet"}"\n'
            f'[database.duckdb]\ndatabase_path = "{tmp_path / "finops.duckdb"}"\n')
    for section, values in (("azure", azure), ("aws", aws), ("database.bigquery", bigquery)):
        if values:
            text += f"[{section}]\n" + "".join(f'{k} = "{v}"\n' for k, v in values.items())
    path.write_text(text)
    return path


# ------------------------------------------------------------------------------------------------
# 1. every layout and format: discovery, rows and exact sums
# ------------------------------------------------------------------------------------------------
LAYOUT_CASES = {
    "manifest-create-new-csv": dict(layout="manifest", fmt="csv"),
    "manifest-create-new-csv.gz-2-parts": dict(layout="manifest", fmt="csv.gz", files=2),
    "manifest-create-new-parquet-amortized": dict(layout="manifest", fmt="parquet", dataset="AmortizedCost", files=2),
    "manifest-overwrite-csv-amortized": dict(layout="manifest", fmt="csv", overwrite=True, dataset="AmortizedCost"),
    # MCA's camelCase export (costInUsd, paygCostInBillingCurrency summed too), its mixed CR LF / LF line ends gzipped
    "manifest-create-new-csv.gz-mca": dict(layout="manifest", fmt="csv.gz", source="mca"),
    "partitioned-2021": dict(layout="partitioned-2021", files=2, content_md5=True),
    # the file's name part is not the export's (tools differ)
    "legacy": dict(layout="legacy", file_prefix="cost-details"),
}


@pytest.mark.parametrize("case", list(LAYOUT_CASES))
def test_every_layout_is_discovered_and_loaded_exactly(tmp_path, case):
    kw = dict(LAYOUT_CASES[case])
    layout = kw.pop("layout")
    root = tmp_path / "container"
    # the month before the restated one: one run; the restated month: a month-to-date run, then the full month
    source = af.SOURCES[kw.get("source") or af.DEFAULT_SOURCE[kw.get("dataset", "ActualCost")]]
    earlier = af.build_azure_export(root, layout=layout, export="cost", period=prev_month(source.period), **kw)
    r = af.restate(root, layout=layout, export="cost", **kw)
    runs = (earlier, r.second)
    assert r.first.run_id != r.second.run_id and r.first.month_to_date and not r.second.month_to_date
    if kw.get("overwrite"):
        assert r.second.removed_keys and not any((root / k).exists() for k in r.first.keys)
    else:
        assert all((root / k).exists() for k in r.first.keys)  # CreateNewReport and legacy keep the older run
    dataset = r.second.dataset
    extra = {} if layout == "manifest" else {"azure.dataset": dataset}
    if layout != "manifest":  # a layout that does not say its dataset needs the config to
        with pytest.raises(ConfigError, match=r"\[azure\] dataset is not set"):
            AzureSource(azcfg(tmp_path, "cost")).export
    cfg = azcfg(tmp_path, "cost", **extra)
    (export,) = config_exports(cfg)
    assert export.kind == {"ActualCost": "actual", "AmortizedCost": "amortized"}[dataset]
    found = AzureSource(cfg).discover()
    assert not found.problems
    assert {m.period: m.run_id for m in found.manifests} == {d.period: delivery_id(d) for d in runs}
    assert {m.period: m.format for m in found.manifests} == {d.period: d.fmt for d in runs}

    run = run_pipeline(cfg, progress=False)
    assert sorted(actions(run, "load_local")) == sorted((d.period, delivery_id(d), "loaded") for d in runs)
    for d in runs:
        want = expected(d)
        assert loaded(cfg, export, d) == want, (case, d.period)
        path = parquet_file(cfg, export, d.period)
        assert in_parquet(path, list(want[2])) == want, path
        # FOCUS: an actual export's BilledCost is its cost, an amortised one's EffectiveCost
        main = d.sums[d.cost_column]
        ids, n, sums = focus_of(cfg, export, d.period)
        assert (ids, n) == (delivery_id(d), d.rows)
        assert sums["BilledCost" if dataset == "ActualCost" else "EffectiveCost"] == main
    assert reconcile(cfg).ok
    if layout != "manifest" or case == "manifest-create-new-csv":  # the newest run found again: nothing to do
        again = run_pipeline(cfg, progress=False)
        assert {r.action for r in again.results if r.step != "discover"} == {"up to date"}


@pytest.mark.parametrize("layout,damage", [("manifest", "records-missing"), ("partitioned-2021", "same-size-other-bytes")])
def test_a_part_file_that_is_not_what_its_manifest_lists_is_refused(tmp_path, layout, damage):
    "The manifest lists each blob's byteCount and dataRowCount (a 2021 one its contentMD5 too): a file that differs is not the run."
    root = tmp_path / "container"
    d = af.build_azure_export(root, layout=layout, export="cost", content_md5=layout == "partitioned-2021")
    part = root / d.data_keys[0]
    data = part.read_bytes()
    if damage == "records-missing":  # still a valid CSV, two records short of what the manifest lists
        part.write_bytes(b"".join(af.split_records(data)[:-2]))
    else:  # one digit of a cost changed: the size the manifest lists, not its MD5
        i = data.index(b"0.21268368")
        part.write_bytes(data[:i] + b"9" + data[i + 1:])
        assert part.stat().st_size == d.manifest()["blobs"][0]["byteCount"]
    cfg = azcfg(tmp_path, "cost", **{"azure.dataset": "ActualCost"})
    with pytest.raises(Exception) as caught:
        run_pipeline(cfg, progress=False)
    assert d.data_keys[0].rsplit("/", 1)[-1] in str(caught.value), caught.value
    assert not (tmp_path / "finops.duckdb").exists() or \
        query(cfg, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'azure_billing_data'") == [(0,)]


# ------------------------------------------------------------------------------------------------
# 2. FOCUS exports
# ------------------------------------------------------------------------------------------------
FOCUS_CASES = {"focus-1.0-csv": ("focus-1.0", "csv"), "focus-1.2-parquet": ("focus-1.2", "parquet"),
               "focus-1.2-preview-csv.gz": ("focus-1.2-preview", "csv.gz"),
               "real-focus-sample-azure-rows": ("focus-sample-azure", "csv")}


@pytest.mark.parametrize("case", list(FOCUS_CASES))
def test_focus_exports_load_into_azure_focus_data_and_focus_exactly(tmp_path, case):
    source, fmt = FOCUS_CASES[case]
    d = af.build_azure_export(tmp_path / "container", dataset="FocusCost", export="focus", source=source, fmt=fmt)
    assert set(d.sums) == set(FOCUS_COSTS) and d.rows > 0
    cfg = azcfg(tmp_path, "focus")
    (export,) = config_exports(cfg)
    assert export.kind == "focus"
    run = run_pipeline(cfg, progress=False)
    assert actions(run, "load_local") == [(d.period, d.run_id, "loaded")]
    raw = query(cfg, f"SELECT string_agg(DISTINCT delivery_id, ','), count(*), {', '.join(f'sum({c})' for c in FOCUS_COSTS)} "
                     "FROM azure_focus_data WHERE export_id = ?", [export.id])
    assert raw == [(d.run_id, d.rows, *(d.sums[c] for c in FOCUS_COSTS))]
    assert focus_of(cfg, export) == (d.run_id, d.rows, dict(d.sums))
    assert query(cfg, "SELECT DISTINCT ProviderName, x_SourceLineType FROM focus WHERE x_ExportId = ?", [export.id]) == \
        [("Microsoft", "FOCUS")]
    # the real sample is a database dump: its NULLs are the text NULL, which must not pass into FOCUS as a value
    spelled = query(cfg, "SELECT count(*) FROM focus WHERE x_ExportId = ? AND 'NULL' IN (ChargeClass, CommitmentDiscountCategory, "
                         "CommitmentDiscountId, CommitmentDiscountName, CommitmentDiscountStatus, CommitmentDiscountType, PricingCategory, "
                         "SubAccountName)", [export.id])
    assert spelled == [(0,)]
    assert reconcile(cfg).ok


def test_a_focus_1_2_export_is_validated_as_it_is(tmp_path):
    "Microsoft's FOCUS export passes into `focus` as it is: the validator checks every rule (578, no error); its verdicts are the export's own."
    d = af.build_azure_export(tmp_path / "container", dataset="FocusCost", export="focus", fmt="parquet")
    assert d.data_version == "1.2"
    cfg = azcfg(tmp_path, "focus")
    run_pipeline(cfg, progress=False)
    (export,) = config_exports(cfg)
    (f,) = Parquet(cfg, focus=True).deliveries(export)
    assert (f.period, f.delivery_id, f.rows) == (d.period, d.run_id, d.rows)
    v = validate(f.files[0])
    assert (v.checks, v.errors) == (578, 0), v.problems
    # the generated export's own liberties (a unit without a quantity, a meter without a SKU…) are what fails, not the pass-through
    assert v.failures > 0 and all(r.split("-")[0] in {"ConsumedQuantity", "ConsumedUnit", "PricingUnit", "SkuMeter", "SkuPriceDetails", "RegionName",
                                                      "RegionId", "ServiceName", "EffectiveCost", "CostAndUsage", "ServiceCategory",
                                                      "ServiceSubcategory", "PricingQuantity", "SkuId", "SkuPriceId"} for r, _ in v.problems), v.problems


# ------------------------------------------------------------------------------------------------
# 3. month-to-date restatements
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("layout,overwrite", [("manifest", False), ("manifest", True), ("legacy", False)],
                         ids=["create-new-report", "overwrite-previous-report", "legacy"])
def test_a_restated_month_replaces_the_previous_run_whole(tmp_path, layout, overwrite):
    first, deliver_second = two_runs(tmp_path / "container", layout=layout, overwrite=overwrite, dataset="AmortizedCost", export="mtd")
    cfg = azcfg(tmp_path, "mtd", **({"azure.dataset": "AmortizedCost"} if layout == "legacy" else {}))
    (export,) = config_exports(cfg)
    run_pipeline(cfg, progress=False)
    assert loaded(cfg, export, first) == expected(first)
    parquet = parquet_file(cfg, export, first.period)
    before = tree(tmp_path / "parquet")
    r = af.Restated(first, deliver_second())
    assert r.first.rows < r.second.rows
    run = run_pipeline(cfg, progress=False)
    first, second = delivery_id(r.first), delivery_id(r.second)
    assert actions(run, "load_local") == [(r.second.period, second, "replaced")]
    assert actions(run, "export_parquet") == [(r.second.period, second, f"re-exported (stale: was {first})")]
    assert actions(run, "focus_parquet") == [(r.second.period, second, f"re-exported (stale: was {first})")]
    want = expected(r.second)
    assert loaded(cfg, export, r.second) == want  # no row of the first run is left
    assert in_parquet(parquet, list(want[2])) == want
    assert tree(tmp_path / "parquet")[str(parquet.relative_to(tmp_path / "parquet"))] != before[str(parquet.relative_to(tmp_path / "parquet"))]
    ids, n, sums = focus_of(cfg, export)
    assert (ids, n, sums["EffectiveCost"]) == (second, r.second.rows, r.second.cost_sum)
    assert Staging(cfg["staging_dir"]).held(export) == {r.second.period: second}
    assert [p.name for p in (Path(cfg["staging_dir"]) / export.id / r.second.period).iterdir()] == [second]
    assert reconcile(cfg).ok


def test_restatement_replaces_the_period_in_bigquery_too(tmp_path, bq_server, bq):
    # the EA actual sample: the emulator keeps 18 decimal places (its BIGNUMERIC is DECIMAL(38,18)), so not the amortised one
    built, root = tmp_path / "built", tmp_path / "container"
    earlier = af.build_azure_export(root, export="mtd", period="2023-08")
    r = af.restate(built, export="mtd")
    cfg = azcfg(tmp_path, "mtd", **bq_settings(bq_server))
    (export,) = config_exports(cfg)  # the dataset is read from the 2023-08 run's manifest
    ds = f"{cfg['database.bigquery.project_id']}.{cfg['database.bigquery.dataset_id']}"

    def bq_billing():
        rows = bq.query(f"SELECT billing_period, delivery_id, COUNT(*) AS n, SUM(cost_in_billing_currency) AS c "
                        f"FROM `{ds}.azure_billing_data` WHERE export_id = '{export.id}' GROUP BY 1, 2 ORDER BY 1", job_retry=None).result()
        return [(x["billing_period"], x["delivery_id"], x["n"], x["c"]) for x in rows]

    def bq_focus():
        rows = bq.query(f"SELECT x_BillingPeriod AS p, x_DeliveryId AS i, ProviderName AS pn, COUNT(*) AS n, SUM(BilledCost) AS b, "
                        f"SUM(EffectiveCost) AS e FROM `{ds}.focus` WHERE x_ExportId = '{export.id}' GROUP BY 1, 2, 3 ORDER BY 1",
                        job_retry=None).result()
        return [(x["p"], x["i"], x["pn"], x["n"], x["b"], x["e"]) for x in rows]

    def duck_billing():
        return query(cfg, "SELECT billing_period, delivery_id, count(*), sum(cost_in_billing_currency) FROM azure_billing_data "
                          "WHERE export_id = ? GROUP BY 1, 2 ORDER BY 1", [export.id])

    def duck_focus():
        return query(cfg, "SELECT x_BillingPeriod, x_DeliveryId, ProviderName, count(*), sum(BilledCost), sum(EffectiveCost) FROM focus "
                          "WHERE x_ExportId = ? GROUP BY 1, 2, 3 ORDER BY 1", [export.id])

    replay(built, root, r.first)
    run = run_pipeline(cfg, progress=False)
    assert sorted(actions(run, "load_remote")) == [("2023-08", earlier.run_id, "loaded"), ("2023-09", r.first.run_id, "loaded")]
    assert bq_billing() == duck_billing() == [("2023-08", earlier.run_id, earlier.rows, earlier.cost_sum),
                                              ("2023-09", r.first.run_id, r.first.rows, r.first.cost_sum)]
    replay(built, root, r.second)
    run = run_pipeline(cfg, progress=False)
    for step in ("load_remote", "focus_remote"):
        assert sorted(actions(run, step)) == [("2023-08", earlier.run_id, "up to date"), ("2023-09", r.second.run_id, "replaced")]
    assert bq_billing() == duck_billing() == [("2023-08", earlier.run_id, earlier.rows, earlier.cost_sum),
                                              ("2023-09", r.second.run_id, r.second.rows, r.second.cost_sum)]
    # the focus table holds the export's FOCUS rows: the actual cost is BilledCost, row for row
    assert bq_focus() == duck_focus()
    assert [(p, i, pn, n, b) for p, i, pn, n, b, _ in bq_focus()] == \
        [("2023-08", earlier.run_id, "Microsoft", earlier.rows, earlier.cost_sum),
         ("2023-09", r.second.run_id, "Microsoft", r.second.rows, r.second.cost_sum)]


# ------------------------------------------------------------------------------------------------
# 4. a column added part way through the year
# ------------------------------------------------------------------------------------------------
def test_a_column_added_mid_year_grows_the_table(tmp_path):
    s = af.build_new_column_midyear(tmp_path / "container", months=range(5, 10), change_month=7)
    cfg = azcfg(tmp_path, "demo-actual")
    (export,) = config_exports(cfg)
    cols = lambda: {c for c, in query(cfg, "SELECT column_name FROM information_schema.columns WHERE table_name = 'azure_billing_data'")}  # noqa: E731
    run_pipeline(cfg, end_date="2023-06", progress=False)
    assert not {"benefit_id", "benefit_name"} & cols()
    run = run_pipeline(cfg, progress=False)
    assert sorted(p for p, _, a in actions(run, "load_local") if a == "loaded") == ["2023-07", "2023-08", "2023-09"]
    assert {"benefit_id", "benefit_name"} <= cols()
    got = query(cfg, "SELECT billing_period, count(*), count(benefit_id), count(benefit_name), sum(cost_in_billing_currency) "
                     "FROM azure_billing_data WHERE export_id = ? GROUP BY 1 ORDER BY 1", [export.id])
    has = {p: sum(1 for row in af.read_rows(s.delivery(p)) if row.get("benefitId")) for p in s.periods}
    assert [has[p] > 0 for p in s.periods] == [p >= s.change_period for p in s.periods]
    assert got == [(d.period, d.rows, has[d.period], has[d.period], d.cost_sum) for d in s.deliveries]
    for d in s.deliveries:
        assert loaded(cfg, export, d) == expected(d)
        assert focus_of(cfg, export, d.period)[2]["BilledCost"] == d.cost_sum
    assert reconcile(cfg).ok


# ------------------------------------------------------------------------------------------------
# 5. a subscription and a billing account export of the same name
# ------------------------------------------------------------------------------------------------
def test_two_scopes_with_one_export_name_stay_two_exports(tmp_path):
    root = tmp_path / "container"
    ts = af.build_two_scopes(root, through="2023-09-14")
    sub, ba = ts.subscription, ts.billing_account
    assert sub.export == ba.export and sub.export_id != ba.export_id
    cs, cb = azcfg(tmp_path, sub.export, prefix=sub.directory), azcfg(tmp_path, ba.export, prefix=ba.directory)
    (es,), (eb,) = config_exports(cs), config_exports(cb)
    assert es.id != eb.id
    for cfg in (cs, cb):
        run_pipeline(cfg, progress=False)
    assert query(cs, "SELECT DISTINCT export_id FROM azure_billing_data ORDER BY 1") == sorted([(es.id,), (eb.id,)])
    for cfg, e, d in ((cs, es, sub), (cb, eb, ba)):
        assert loaded(cfg, e, d) == expected(d)
        assert focus_of(cfg, e)[:2] == (d.run_id, d.rows)
        assert reconcile(cfg).ok
    # the subscription's full month arrives: only its rows, staging and Parquet change
    kept = {k: tree(tmp_path / k / eb.id) for k in ("staging", "parquet")}
    kept_rows = (loaded(cb, eb, ba), focus_of(cb, eb))
    later = af.build_azure_export(root, export=sub.export, directory=sub.directory, scope=sub.scope,
                                  rows=lambda row: row["SubscriptionId"] == ts.subscription_id,
                                  submitted=sub.submitted.replace(month=10, day=5))
    assert later.run_id != sub.run_id and later.rows > sub.rows
    run = run_pipeline(cs, progress=False)
    assert actions(run, "load_local") == [(later.period, later.run_id, "replaced")]
    assert loaded(cs, es, later) == expected(later)
    assert {k: tree(tmp_path / k / eb.id) for k in ("staging", "parquet")} == kept
    assert (loaded(cb, eb, ba), focus_of(cb, eb)) == kept_rows
    assert reconcile(cs).ok and reconcile(cb).ok


# ------------------------------------------------------------------------------------------------
# 6. a container holding every kind
# ------------------------------------------------------------------------------------------------
def test_mixed_container_each_export_by_its_own_config(tmp_path):
    mc = af.build_mixed_container(tmp_path / "container")
    runs = {**mc.deliveries, "legacy-actual": mc.restated.second}
    problems = {}
    for name, d in runs.items():
        cfg = azcfg(tmp_path, name, **({} if d.layout == "manifest" else {"azure.dataset": d.dataset}))
        (export,) = config_exports(cfg)
        try:
            run_pipeline(cfg, progress=False)
        except Exception as e:  # every export is tried; the failures are reported together
            problems[name] = str(e)[:300]
            continue
        if d.dataset == "FocusCost":
            got = focus_of(cfg, export)
            want = (d.run_id, d.rows, dict(d.sums))
        elif d.rows == 0:  # a header-only run: held as the period's delivery, with no rows
            got = (DuckDB(cfg).held(export), loaded(cfg, export, d)[1])
            want = ({d.period: d.run_id}, 0)
        else:
            got, want = loaded(cfg, export, d), expected(d)
        if got != want:
            problems[name] = (got, want)
    assert runs["empty-month"].rows == 0
    # a config naming the wrong dataset for a manifest export: exit 3, the setting to write, nothing changed
    cfg_file = write_config(tmp_path / "config.toml", tmp_path, azure={
        "account_url": f"file://{tmp_path / 'container'}", "prefix": "exports", "export_name": "ea-actual", "dataset": "AmortizedCost"})
    before = tree(tmp_path)
    with ThreadPoolExecutor(2) as pool:
        done = list(pool.map(lambda c: (c, cli("--config", cfg_file, "azure", c)), ("discover-exports", "run-pipeline")))
    for command, r in done:
        assert r.returncode == 3, (command, r.stdout, r.stderr)
        assert 'set [azure] dataset = "ActualCost"' in r.stderr and r.stderr.count("\n") == 1, (command, r.stderr)
    assert tree(tmp_path) == before
    assert not problems, problems


# ------------------------------------------------------------------------------------------------
# 7. the six commands
# ------------------------------------------------------------------------------------------------
def test_the_six_azure_commands_on_one_export(tmp_path, bq_server, bq):
    root = tmp_path / "container"
    runs = {p: af.build_azure_export(root, export="monthly", period=p) for p in ("2023-09", "2023-10")}
    bqs = bq_settings(bq_server)
    cfg_file = write_config(tmp_path / "config.toml", tmp_path,
                            azure={"account_url": f"file://{root}", "prefix": "exports", "export_name": "monthly"},
                            bigquery={k.rpartition(".")[2]: v for k, v in bqs.items()})
    cfg = load_config(cfg_file, environ={})
    (export,) = config_exports(cfg)
    ds = f"{bqs['database.bigquery.project_id']}.{bqs['database.bigquery.dataset_id']}"
    az = lambda *a: cli("--config", cfg_file, "azure", *a)  # noqa: E731

    def ok(r):
        assert r.returncode == 0, (r.args, r.stdout, r.stderr)
        return r.stdout

    out = ok(az("discover-exports"))
    assert export.id in out and all(d.run_id in out for d in runs.values()) and "ActualCost" in out
    # a dry run prints the plan and writes nothing: no staging, database, Parquet or BigQuery dataset
    before = tree(tmp_path)
    out = ok(az("run-pipeline", "--dry-run"))
    plan = [l for l in out.splitlines() if any(d.run_id in l for d in runs.values())]
    assert "DRY RUN" in out and [l.split()[:2] for l in plan] == [["2023-10", runs["2023-10"].run_id], ["2023-09", runs["2023-09"].run_id]]
    assert all("download (new)" in l and "load (new)" in l for l in plan), out
    assert tree(tmp_path) == before
    assert ds.rpartition(".")[2] not in {x.dataset_id for x in bq.list_datasets()}
    # extract one month, load it, export it, load it into BigQuery
    out = ok(az("extract-billing", "--start-date", "2023-09", "--end-date", "2023-09"))
    assert "downloaded" in out and runs["2023-09"].run_id in out
    assert Staging(cfg["staging_dir"]).held(export) == {"2023-09": runs["2023-09"].run_id}
    out = ok(az("load-billing-local"))
    assert "loaded" in out and f"{runs['2023-09'].cost_sum:f}" in out
    assert loaded(cfg, export, runs["2023-09"]) == expected(runs["2023-09"])
    out = ok(az("export-parquet"))
    assert "exported" in out
    path = parquet_file(cfg, export, "2023-09")
    key = str(path.relative_to(tmp_path))
    first = tree(tmp_path)[key]
    out = ok(az("export-parquet"))
    assert "nothing to export" in out and tree(tmp_path)[key] == first
    out = ok(az("export-parquet", "--overwrite"))
    assert "overwritten" in out and tree(tmp_path)[key] != first
    assert in_parquet(path, ["cost_in_billing_currency"]) == expected(runs["2023-09"])
    out = ok(az("load-billing-remote"))
    assert "loaded" in out and export.id in out
    # the rest of the export in one run; the next run has nothing to do
    ok(az("run-pipeline"))
    out = ok(az("run-pipeline"))
    lines = [l for l in out.splitlines() if any(d.run_id in l for d in runs.values())]
    assert len(lines) == 2 and all("up to date" in l for l in lines), out
    assert not any(w in out for w in ("downloaded", "loaded", "exported", "replaced")), out
    rows = bq.query(f"SELECT billing_period, delivery_id, COUNT(*) AS n, SUM(cost_in_billing_currency) AS c FROM `{ds}.azure_billing_data` "
                    "GROUP BY 1, 2 ORDER BY 1", job_retry=None).result()
    assert [(x["billing_period"], x["delivery_id"], x["n"], x["c"]) for x in rows] == \
        [(p, d.run_id, d.rows, d.cost_sum) for p, d in sorted(runs.items())]
    rows = bq.query(f"SELECT x_BillingPeriod AS p, COUNT(*) AS n, SUM(BilledCost) AS b FROM `{ds}.focus` GROUP BY 1 ORDER BY 1",
                    job_retry=None).result()
    assert [(x["p"], x["n"], x["b"]) for x in rows] == [(p, d.rows, d.cost_sum) for p, d in sorted(runs.items())]
    # a container folder that does not exist: exit 3, one line naming the setting, for every command
    missing = write_config(tmp_path / "missing.toml", tmp_path,
                           azure={"account_url": f"file://{tmp_path / 'no-such-container'}", "prefix": "exports", "export_name": "monthly"},
                           bigquery={k.rpartition(".")[2]: v for k, v in bqs.items()})
    before = tree(tmp_path)
    commands = ("discover-exports", "extract-billing", "load-billing-local", "export-parquet", "load-billing-remote", "run-pipeline")
    with ThreadPoolExecutor(2) as pool:
        done = list(pool.map(lambda c: (c, cli("--config", missing, "azure", c)), commands))
    for command, r in done:
        assert r.returncode == 3 and r.stderr.count("\n") == 1 and "[azure] account_url" in r.stderr, (command, r.returncode, r.stderr)
        assert "no-such-container" in r.stderr and "Traceback" not in r.stderr, (command, r.stderr)
    assert tree(tmp_path) == before


# ------------------------------------------------------------------------------------------------
# 8. an AWS and an Azure export in one config
# ------------------------------------------------------------------------------------------------
def test_aws_and_azure_in_one_config(tmp_path):
    v1 = [cf.build_v1_csv(tmp_path / "bucket", files=1, rows=200)]
    az = [af.build_azure_export(tmp_path / "container", export="monthly")]
    cfg_file = write_config(tmp_path / "config.toml", tmp_path,
                            azure={"account_url": f"file://{tmp_path / 'container'}", "prefix": "exports", "export_name": "monthly"},
                            aws={"bucket": f"file://{tmp_path / 'bucket'}", "prefix": "cur", "export_name": "demo-cur", "cur_version": "v1"})
    cfg = load_config(cfg_file, environ={})
    ea, ez = config_exports(cfg)
    assert (ea.provider, ez.provider) == ("aws", "azure")
    folders = lambda: sorted(p.name for p in (tmp_path / "staging").iterdir() if p.is_dir())  # noqa: E731

    r = cli("--config", cfg_file, "aws", "run-pipeline")
    assert r.returncode == 0, r.stderr
    assert ea.id in r.stdout and ez.id not in r.stdout
    assert folders() == [ea.id] and sorted(p.name for p in (tmp_path / "parquet").iterdir()) == [ea.id]
    assert query(cfg, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'azure_billing_data'") == [(0,)]
    assert query(cfg, "SELECT DISTINCT x_ExportId FROM focus") == [(ea.id,)]
    aws_files = {k: tree(tmp_path / k / ea.id) for k in ("staging", "parquet")}

    r = cli("--config", cfg_file, "azure", "run-pipeline")
    assert r.returncode == 0, r.stderr
    assert ez.id in r.stdout and ea.id not in r.stdout
    assert folders() == sorted([ea.id, ez.id])
    assert {k: tree(tmp_path / k / ea.id) for k in ("staging", "parquet")} == aws_files
    assert loaded(cfg, ez, az[0]) == expected(az[0])

    # a new month of each; run_pipeline from Python runs both exports
    v1.append(cf.build_v1_csv(tmp_path / "bucket", period="2023-12", files=1, rows=100))
    az.append(af.build_azure_export(tmp_path / "container", export="monthly", period="2023-10"))
    run = run_pipeline(cfg, progress=False)
    assert sorted((r.export_id, r.period, r.action) for r in run.results if r.step == "load_local" and r.action != "up to date") == \
        sorted([(ea.id, "2023-12", "loaded"), (ez.id, "2023-10", "loaded")])
    assert query(cfg, "SELECT ProviderName, count(*) FROM focus GROUP BY 1 ORDER BY 1") == \
        [("AWS", sum(d.row_count for d in v1)), ("Microsoft", sum(d.rows for d in az))]
    billed = focus_spend_by(cfg, "provider", cost="BilledCost")
    got = {p: (c, n) for p, c, n in billed.itertuples(index=False)}
    assert got == {"AWS": (sum(d.unblended_cost_sum for d in v1), 300), "Microsoft": (sum(d.cost_sum for d in az), 22)}
    assert all(isinstance(c, Decimal) for c, _ in got.values())
    assert set(focus_spend_by(cfg)["provider"]) == {"AWS", "Microsoft"}
    assert reconcile(cfg).ok
