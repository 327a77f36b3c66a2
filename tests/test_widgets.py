"PipelinePanel without a browser: set the widgets, click Run, check what the pipeline did and what the panel says."
from decimal import Decimal

import ipywidgets as W
import pytest

import cur_fixtures as cf
import finops_nb.widgets as fw
from finops_nb.aws.manifests import aws_export
from finops_nb.core import InputError
from finops_nb.pipeline import STEPS, Pipeline
from finops_nb.widgets import PipelinePanel
from helpers import config, parquet_of, query


def actions(run, step):
    "{period: action} of one step's results in a run."
    return {r.period: r.action for r in run.results if r.step == step}


def tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture
def mirror(tmp_path):
    "A local mirror with two legacy CUR months: the real sample (2023-11) and 100 of its rows (2023-12)."
    cf.build_v1_csv(tmp_path / "bucket", files=1)
    cf.build_v1_csv(tmp_path / "bucket", period="2023-12", files=1, rows=100)
    return config(tmp_path)


def test_form(mirror):
    panel = PipelinePanel(mirror)
    assert isinstance(panel.widget, W.VBox) and panel.result is None
    assert list(panel.steps) == list(STEPS)
    assert {s: b.value for s, b in panel.steps.items()} == {**{s: True for s in STEPS}, "load_remote": False,
                                                            "focus_remote": False}  # no remote configured
    assert (panel.start.value, panel.end.value, panel.dry_run.value, panel.status.value) == ("", "", False, "")
    assert "application/vnd.jupyter.widget-view+json" in panel._repr_mimebundle_()
    boxes = [w for box in panel.widget.children for w in getattr(box, "children", [box])]
    for w in (panel.start, panel.end, panel.dry_run, panel.button, panel.status, panel.output, *panel.steps.values()):
        assert w in boxes


def test_run_loads_one_month(mirror, tmp_path, monkeypatch):
    panel = PipelinePanel(mirror)
    seen = []

    class Spy(Pipeline):
        def run(self):
            seen.append((panel.button.disabled, panel.status.value, self.start, self.end, self.steps, self.dry_run, self.progress))
            return super().run()
    monkeypatch.setattr(fw, "Pipeline", Spy)
    panel.start.value = panel.end.value = "2023-11"
    panel.button.click()
    assert seen == [(True, "running…", "2023-11", "2023-11", ("extract", "load_local", "export_parquet", "focus_parquet"), False, True)]
    assert (panel.status.value, panel.button.disabled) == ("done: 1 period", False)
    assert isinstance(panel.result, Pipeline) and list(panel.result.periods) == ["2023-11"]
    assert actions(panel.result, "load_local") == {"2023-11": "loaded"} and not panel.result.failures
    assert {r.export_id for r in panel.result.results} == {aws_export(mirror).id}
    assert query(mirror, "SELECT billing_period, count(*), sum(line_item_unblended_cost) FROM aws_billing_data GROUP BY 1") == \
        [("2023-11", 1281, Decimal("1.68230869740"))]
    assert parquet_of(mirror, "2023-11").is_file()
    assert actions(panel.result, "focus_parquet") == {"2023-11": "exported"} and (parquet_of(mirror) / "2023-11_focus.parquet").is_file()
    assert "2023-11" in str(panel.result) and panel.result._repr_html_().startswith("<pre>")

    panel.start.value = panel.end.value = ""  # empty: the config's window, here all of it
    panel.steps["export_parquet"].value = False
    panel.button.click()
    assert panel.status.value == "done: 2 periods"
    assert panel.result.periods == ["2023-11", "2023-12"]
    assert actions(panel.result, "load_local") == {"2023-11": "up to date", "2023-12": "loaded"}
    assert actions(panel.result, "export_parquet") == {}
    assert panel.result.steps == ("extract", "load_local", "focus_parquet")  # the box left ticked still runs
    assert actions(panel.result, "focus_parquet") == {"2023-11": "up to date", "2023-12": "exported"}
    assert query(mirror, "SELECT billing_period, count(*) FROM aws_billing_data GROUP BY 1 ORDER BY 1") == \
        [("2023-11", 1281), ("2023-12", 100)]
    assert not parquet_of(mirror, "2023-12").exists() and parquet_of(mirror, "2023-11").is_file()
    assert (parquet_of(mirror) / "2023-12_focus.parquet").is_file()


def test_dry_run_writes_nothing(mirror, tmp_path):
    before = tree(tmp_path)
    panel = PipelinePanel(mirror)
    panel.dry_run.value = True
    panel.button.click()
    assert panel.status.value == "done: 2 periods (dry run: nothing written)"
    assert [r[1] for r in panel.result.plan_rows] == ["2023-12", "2023-11"] and panel.result.dry_run
    assert {r[0] for r in panel.result.plan_rows} == {aws_export(mirror).id}
    assert "DRY RUN" in str(panel.result)
    assert tree(tmp_path) == before


@pytest.mark.parametrize("start, end, steps, message", [
    ("2023-13", "", STEPS, "error: start: '2023-13' is not a billing period; use YYYY-MM, e.g. 2024-01"),
    ("", "nov", STEPS, "error: end: 'nov' is not a billing period; use YYYY-MM, e.g. 2024-01"),
    ("2023-12", "2023-11", STEPS, "error: start 2023-12 is after end 2023-11: the window is empty"),
    ("", "", (), "error: tick at least one step"),
])
def test_bad_input_runs_nothing(mirror, tmp_path, monkeypatch, start, end, steps, message):
    monkeypatch.setattr(fw, "Pipeline", lambda *a, **k: pytest.fail("the pipeline must not run"))
    before = tree(tmp_path)
    panel = PipelinePanel(mirror)
    panel.start.value, panel.end.value = start, end
    for s, box in panel.steps.items(): box.value = s in steps
    panel.button.click()
    assert (panel.status.value, panel.result, panel.button.disabled) == (message, None, False)
    assert tree(tmp_path) == before


def test_bad_input_keeps_the_last_result(mirror):
    panel = PipelinePanel(mirror)
    panel.start.value = panel.end.value = "2023-12"
    panel.button.click()
    first = panel.result
    panel.end.value = "2023-1"
    panel.button.click()
    assert panel.status.value.startswith("error: end: '2023-1'") and panel.result is first


def test_failures_are_in_the_status(tmp_path):
    d = cf.build_v1_csv(tmp_path / "bucket", files=1)
    (tmp_path / "bucket" / d.data_keys[0]).write_bytes(b"not gzip")  # a broken delivery
    panel = PipelinePanel(config(tmp_path))
    panel.button.click()
    assert panel.status.value.startswith("failed: 2023-11 "), panel.status.value
    assert panel.result.failures and panel.result.failures[0].period == "2023-11" and not panel.button.disabled

    missing = PipelinePanel(config(tmp_path / "elsewhere"))
    missing.button.click()
    assert missing.status.value.startswith("failed: * discover: "), missing.status.value
    (f,) = missing.result.failures
    assert (f.period, f.step) == ("*", "discover") and isinstance(f.error, InputError) and f.error.exit_code == 3
    assert "elsewhere" in str(f.error) and str(f.error) in missing.status.value
