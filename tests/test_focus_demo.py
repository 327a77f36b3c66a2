"""The demo exports (demo/bucket: the real legacy CUR sample, the workshop Parquet months, a CUR 2.0 export) as FOCUS:
the FinOps Foundation's validator passes every file, the totals equal the exports' own, and one question covers both exports."""

from decimal import Decimal
from pathlib import Path

import pytest

from finops_nb.config import load_config
from finops_nb.explore import focus_spend_by
from finops_nb.focus import KNOWN_WRONG, validate
from finops_nb.parquet import Parquet
from finops_nb.pipeline import config_exports, reconcile, run_pipeline

from helpers import query

DEMO = Path(__file__).resolve().parents[1] / "demo"


def demo_config(tmp_path, name):
    "A demo config (demo/cur-v1.toml or cur-v2.toml) reading demo/bucket and writing under tmp_path."
    return load_config(DEMO / f"{name}.toml", {"staging_dir": str(tmp_path / "staging"), "parquet_dir": str(tmp_path / "parquet"),
                                                "database.duckdb.database_path": str(tmp_path / "finops.duckdb")}, environ={})


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("focus-demo")
    cfgs = [demo_config(tmp, n) for n in ("cur-v1", "cur-v2")]
    for cfg in cfgs:
        run = run_pipeline(cfg, progress=False)
        assert not run.failures, str(run)
    return cfgs


def test_demo_focus_totals_equal_the_exports_own(demo_run):
    for cfg in demo_run:
        rec = reconcile(cfg, staged=False)
        assert rec.ok, str(rec)
        (export,) = config_exports(cfg)
        cur = dict(query(cfg, "SELECT billing_period, sum(line_item_unblended_cost) FROM aws_billing_data WHERE export_id = ? GROUP BY 1",
                         [export.id]))
        focus = dict(query(cfg, "SELECT x_BillingPeriod, sum(BilledCost) FROM focus WHERE x_ExportId = ? GROUP BY 1", [export.id]))
        assert focus == cur and len(cur) == (4 if export.kind == "cur1" else 2)
        labels = {d for _, _, d, _, _ in rec.rows}
        assert {"focus-source", "focus", "focus-parquet"} <= labels


def test_demo_focus_files_pass_the_foundations_validator(demo_run):
    files = [d.files[0] for cfg in demo_run for e in config_exports(cfg) for d in Parquet(cfg, focus=True).deliveries(e)]
    assert len(files) == 6
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(2) as pool: results = list(pool.map(validate, files))  # two validator processes: one per core
    for f, v in zip(files, results):
        assert (v.checks, v.failures, v.errors) == (578, 0, 0), (f, v.problems)
        assert v.passed + len(v.known) + v.skipped == v.checks
        # the known-wrong rules, and composites of their columns (or of the dataset) that fail only through them
        columns = tuple(k.split("-")[0] + "-" for k in KNOWN_WRONG) + ("CostAndUsage-D-",)
        assert set(v.known) & set(KNOWN_WRONG) and all(r in KNOWN_WRONG or r.startswith(columns) for r in v.known), v.known


def test_demo_focus_puts_both_exports_side_by_side(demo_run):
    v1, v2 = demo_run
    both = focus_spend_by(v1, "export", "BilledCost")
    ids = {e.id for cfg in demo_run for e in config_exports(cfg)}
    assert set(both.export) == ids
    for cfg in demo_run:
        (export,) = config_exports(cfg)
        own = query(cfg, "SELECT sum(line_item_unblended_cost) FROM aws_billing_data WHERE export_id = ?", [export.id])[0][0]
        assert both.set_index("export").loc[export.id, "BilledCost"] == own.normalize()
    amortised = focus_spend_by(v1, "provider")
    assert amortised.provider.tolist() == ["AWS"]
    assert sum(amortised.EffectiveCost) == sum(Decimal(r[0]) for r in query(v1, "SELECT sum(EffectiveCost) FROM focus"))
    assert focus_spend_by(v1, "export", exports="config").export.tolist() == [config_exports(v1)[0].id]
