"Spend analysis on DuckDB databases built by the real pipeline: exact sums, top-N, tags of both shapes, the chart, errors."
import io, json
from decimal import Decimal
from pathlib import Path

import duckdb
import nbformat
import papermill as pm
import pytest

import cur_fixtures as cf
from finops_nb.core import ConfigError, InputError
from finops_nb.explore import plot_spend, spend_by, spend_by_month_and_service, tag_keys
from helpers import config, run

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_SUM = Decimal("1.68230869740")
TEAMS = ("web", "data", "")  # the legacy tag of row i is TEAMS[i % 3]; "" is untagged


def csv_rows(root, keys):
    "Dicts of every row of the given gzip CSV data files."
    out = []
    for k in keys:
        header, rows = cf.read_csv_gz(root / k)
        out += [dict(zip(header, r)) for r in rows]
    return out


def sums(rows, key, cost):
    "{group: (exact Decimal sum, rows)} computed from the source text."
    out = {}
    for r in rows:
        g = key(r)
        s, n = out.get(g, (Decimal(0), 0))
        out[g] = (s + (Decimal(r[cost]) if r[cost] else 0), n + 1)
    return out


def table(df):
    return {r[0]: (r[1], r[2]) for r in df.itertuples(index=False, name=None)}


@pytest.fixture
def v1(tmp_path):
    "The real v1 sample delivered for two months, each row with a legacy tag column resourceTags/user:Team."
    root = tmp_path / "bucket"
    tag = {"resourceTags/user:Team": lambda i, row: TEAMS[i % 3]}
    ds = [cf.build_v1_csv(root, files=1, period=p, extra_columns=tag) for p in ("2023-11", "2023-12")]
    cfg = config(tmp_path)
    run(cfg)
    return cfg, ds, [r for d in ds for r in csv_rows(root, d.data_keys)]


def test_months_sum_exactly(v1):
    cfg, ds, _ = v1
    df = spend_by(cfg)
    assert list(df.columns) == ["month", "cost", "rows"]
    assert list(df.itertuples(index=False, name=None)) == [("2023-11", SAMPLE_SUM, 1281), ("2023-12", SAMPLE_SUM, 1281)]
    assert all(type(c) is Decimal for c in df.cost)
    assert sum(df.cost) == sum(d.unblended_cost_sum for d in ds) == 2 * SAMPLE_SUM
    assert str(df.cost[0]) == "1.6823086974"  # DuckDB's 18-place scale, trailing zeros dropped, nothing rounded
    assert list(spend_by(cfg, start_date="2023-12").month) == ["2023-12"]
    assert list(spend_by(cfg, end_date="2023-11").month) == ["2023-11"]


@pytest.mark.parametrize("by, column", [("service", "lineItem/ProductCode"), ("account", "lineItem/UsageAccountId"),
                                        ("region", "product/regionCode")])
def test_groups_match_the_source_files(v1, by, column):
    cfg, _, rows = v1
    if by == "region":  # product_region_code, else product_region, else (none)
        key = lambda r: r["product/regionCode"] or r["product/region"] or "(none)"
    else:
        key = lambda r: r[column] or "(none)"
    want = sums(rows, key, "lineItem/UnblendedCost")
    df = spend_by(cfg, by)
    assert table(df) == want
    costs = list(df.cost)
    assert costs == sorted(costs, reverse=True)


@pytest.mark.parametrize("by", ["service", "region", "tag:team"])
@pytest.mark.parametrize("top", [1, 2])
def test_top_n_folds_the_rest_into_other_exactly(v1, by, top):
    cfg, _, _ = v1
    full = spend_by(cfg, by)
    cut = spend_by(cfg, by, top=top)
    assert len(full) > top
    assert list(cut[by]) == list(full[by][:top]) + ["(other)"]
    assert list(cut.cost[:top]) == list(full.cost[:top])
    assert cut.cost.iloc[-1] == sum(full.cost[top:]) and cut.rows.iloc[-1] == sum(full.rows[top:])
    assert sum(cut.cost) == sum(full.cost) == 2 * SAMPLE_SUM and sum(cut.rows) == 2 * 1281


def test_legacy_tag_columns(v1):
    cfg, _, rows = v1
    assert tag_keys(cfg) == ["team"]
    want = sums(rows, lambda r: r["resourceTags/user:Team"] or "(untagged)", "lineItem/UnblendedCost")
    df = spend_by(cfg, "tag:team")
    assert list(df.columns) == ["tag:team", "cost", "rows"] and table(df) == want
    for spelling in ("tag:Team", "tag:user_team", "tag:user:Team"):
        assert table(spend_by(cfg, spelling)) == want


def build_v2(tmp_path, **kw):
    d = cf.build_v2(tmp_path / "bucket", files=1, rows=300, **kw)
    cfg = config(tmp_path, export="demo-cur2", prefix="cur2", cur="v2")
    run(cfg)
    return cfg, d, csv_rows(tmp_path / "bucket", d.data_keys)


def json_tag(r, key):
    return json.loads(r["resource_tags"] or "{}").get(key) or "(untagged)"


def test_cur2_json_tags(tmp_path):
    cfg, d, rows = build_v2(tmp_path)
    keys = {k for r in rows for k in json.loads(r["resource_tags"] or "{}")}
    assert tag_keys(cfg) == sorted(k.removeprefix("user_") for k in keys)
    assert {"team", "environment"} <= set(tag_keys(cfg))
    for key in ("team", "environment"):
        want = sums(rows, lambda r: json_tag(r, f"user_{key}"), "line_item_unblended_cost")
        assert table(spend_by(cfg, f"tag:{key}")) == want
        assert table(spend_by(cfg, f"tag:user_{key}")) == want
    assert sum(spend_by(cfg, "tag:team").cost) == d.unblended_cost_sum
    aws = spend_by(cfg, "tag:aws_created_by")
    assert table(aws) == sums(rows, lambda r: json_tag(r, "aws_created_by"), "line_item_unblended_cost")


def test_legacy_column_and_json_key_are_one_tag(tmp_path):
    "A database that holds a legacy month (tag column) and a CUR 2.0 month (JSON) reads the tag from both."
    root = tmp_path / "bucket"
    d1 = cf.build_v1_csv(root, files=1, extra_columns={"resourceTags/user:team": lambda i, row: TEAMS[i % 3]})
    v1cfg = config(tmp_path)
    run(v1cfg)
    v2cfg, d2, rows2 = build_v2(tmp_path)
    cfg = config(tmp_path, **{"aws.bucket": None})  # a config naming no export sees every export's rows
    rows1 = csv_rows(root, d1.data_keys)
    want1 = sums(rows1, lambda r: r["resourceTags/user:team"] or "(untagged)", "lineItem/UnblendedCost")
    want2 = sums(rows2, lambda r: json_tag(r, "user_team"), "line_item_unblended_cost")
    want = dict(want1)
    for g, (s, n) in want2.items():
        s0, n0 = want.get(g, (Decimal(0), 0))
        want[g] = (s0 + s, n0 + n)
    assert table(spend_by(cfg, "tag:team")) == want
    assert sum(spend_by(cfg).cost) == d1.unblended_cost_sum + d2.unblended_cost_sum
    assert "team" in tag_keys(cfg)
    # a config naming an export sees only that export's rows
    assert table(spend_by(v1cfg, "tag:team")) == want1 and table(spend_by(v2cfg, "tag:team")) == want2
    assert sum(spend_by(v1cfg).cost) == d1.unblended_cost_sum and sum(spend_by(v2cfg).cost) == d2.unblended_cost_sum
    assert table(spend_by(v1cfg)) == {"2023-11": (d1.unblended_cost_sum, 1281)}
    assert tag_keys(v1cfg) == ["team"]  # the CUR 2.0 export's JSON tag keys are not the legacy export's
    db = v1cfg["database.duckdb.database_path"]
    with pytest.raises(InputError, match=rf"^{db}: no tag 'environment' in aws_billing_data; tags there: team$"):
        spend_by(v1cfg, "tag:environment")
    keys2 = {k for r in rows2 for k in json.loads(r["resource_tags"] or "{}")}
    assert set(tag_keys(v2cfg)) == {k.removeprefix("user_") for k in keys2}


def test_month_by_service_and_chart(v1):
    cfg, _, _ = v1
    wide = spend_by_month_and_service(cfg, top=3)
    services = list(spend_by(cfg, "service", top=3).service)
    assert list(wide.columns) == services and services[-1] == "(other)"
    assert list(wide.index) == ["2023-11", "2023-12"] and wide.index.name == "month"
    for month, total in table(spend_by(cfg)).items():
        assert sum(wide.loc[month]) == total[0]
    assert all(type(v) is Decimal for v in wide.to_numpy().ravel())

    fig = plot_spend(cfg, top=3)
    (ax,) = fig.axes
    assert len(ax.patches) == 2 * 4  # one bar per month and service
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("billing period", "line_item_unblended_cost")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["2023-11", "2023-12"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == services
    heights = [p.get_height() for p in ax.patches[:2]]  # the largest service, both months
    assert heights == [float(v) for v in wide[services[0]]]
    buf = io.BytesIO()
    fig.savefig(buf, format="png")  # draws headless, no pyplot
    assert buf.getvalue().startswith(b"\x89PNG")


def test_errors_name_the_database(v1, tmp_path):
    cfg, _, _ = v1
    db = cfg["database.duckdb.database_path"]
    with pytest.raises(InputError, match=rf"^{db}: no tag 'owner' in aws_billing_data; tags there: team$"):
        spend_by(cfg, "tag:owner")
    with pytest.raises(InputError, match=r"no cost column 'line_item_net_unblended_cost'.*line_item_unblended_cost"):
        spend_by(cfg, cost="line_item_net_unblended_cost")
    with pytest.raises(InputError, match="'line_item_product_code' is VARCHAR, not a cost column"):
        spend_by(cfg, cost="line_item_product_code")
    with pytest.raises(ConfigError, match="'colour' is not a dimension"):
        spend_by(cfg, "colour")
    with pytest.raises(ConfigError, match="top: 0 is not a positive"):
        spend_by(cfg, "service", top=0)
    with pytest.raises(ConfigError, match="start_date: '2023-13' is not a billing period"):
        spend_by(cfg, start_date="2023-13")
    with pytest.raises(ConfigError, match="end_date: 'nov' is not a billing period"):
        spend_by(cfg, end_date="nov")

    empty = config(tmp_path / "empty")
    path = empty["database.duckdb.database_path"]
    with pytest.raises(InputError, match=rf"^{path}: no DuckDB database yet; run the pipeline first"):
        spend_by(empty)
    Path(path).parent.mkdir(parents=True)
    duckdb.connect(path).close()  # a database file without the table
    for f in (spend_by, tag_keys, plot_spend):
        with pytest.raises(InputError, match=rf"^{path}: no billing data in aws_billing_data yet"):
            f(empty)


def test_v2_has_no_legacy_region_fallback_needed(tmp_path):
    cfg, _, rows = build_v2(tmp_path)
    assert table(spend_by(cfg, "region")) == sums(rows, lambda r: r["product_region_code"] or "(none)", "line_item_unblended_cost")


# ---------------------------------------------------------------------------------------------
# runs/explore.ipynb under papermill
# ---------------------------------------------------------------------------------------------
EXPLORE = ROOT / "runs" / "explore.ipynb"


def test_explore_notebook_parameters_parse_cleanly():
    from papermill.translators import PythonTranslator
    nb = nbformat.read(EXPLORE, as_version=4)
    (cell,) = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert [p.name for p in PythonTranslator.inspect(cell)] == ["config_path", "start_date", "end_date", "top"]


def write_config(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(f'staging_dir = "staging"\nparquet_dir = "parquet"\n[database.duckdb]\ndatabase_path = "finops.duckdb"\n'
                    f'[aws]\nbucket = "file://bucket"\nprefix = "cur"\nexport_name = "demo-cur"\n')
    return path


def test_explore_notebook_runs(v1, tmp_path):
    out = tmp_path / "explore.ipynb"
    pm.execute_notebook(str(EXPLORE), str(out), cwd=str(tmp_path), progress_bar=False,
                        parameters={"config_path": str(write_config(tmp_path)), "top": 3})
    outs = [o for c in nbformat.read(out, as_version=4).cells for o in c.get("outputs", [])]
    text = "\n".join(o.get("data", {}).get("text/plain", "") for o in outs)
    assert "2023-11" in text and "1.6823086974" in text
    assert "tag:team" in text and "(untagged)" in text and "(other)" in text
    images = {c.source.strip(): sum("image/png" in o.get("data", {}) for o in c.get("outputs", []))
              for c in nbformat.read(out, as_version=4).cells if c.cell_type == "code"}
    assert {k: n for k, n in images.items() if n} == {"plot_focus(cfg, \"service\", top=top, **window)": 1,  # across providers (FOCUS)
                                                     "plot_spend(cfg, top=top, **window)": 1}, images  # the config's export
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outs)


def test_explore_notebook_without_data_fails_on_one_line(tmp_path):
    out = tmp_path / "explore.ipynb"
    with pytest.raises(pm.PapermillExecutionError) as e:
        pm.execute_notebook(str(EXPLORE), str(out), cwd=str(tmp_path), progress_bar=False,
                            parameters={"config_path": str(write_config(tmp_path))})
    assert e.value.ename == "InputError" and "no DuckDB database yet" in e.value.evalue
    (err,) = [o for c in nbformat.read(out, as_version=4).cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert len(err.traceback) == 1 and "finops.duckdb: no DuckDB database yet" in err.traceback[0]
