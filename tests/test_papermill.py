"The run notebooks under papermill: parameters, the audit report, failures still reported, no secret in it."
import json
from pathlib import Path

import papermill as pm
import pytest

import cur_fixtures as cf
from finops_nb.aws.manifests import aws_export
from finops_nb.config import load_config

ROOT = Path(__file__).resolve().parents[1]
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
KEY_ID = "AKIAIOSFODNN7EXAMPLE"


@pytest.mark.parametrize("nb", sorted((ROOT / "runs").glob("*.ipynb")), ids=lambda p: p.name)
def test_run_notebooks_keep_one_parameters_cell(nb):
    cells = json.loads(nb.read_text())["cells"]
    tagged = [i for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
    code = [i for i, c in enumerate(cells) if c["cell_type"] == "code"]
    assert len(tagged) == 1 and tagged[0] == code[0], f"{nb.name}: the first code cell must be the one 'parameters' cell"


def write_config(tmp_path, bucket):
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'staging_dir = "staging"\nparquet_dir = "parquet"\n[database.duckdb]\ndatabase_path = "finops.duckdb"\n'
                   f'[aws]\nbucket = "{bucket}"\nprefix = "cur"\nexport_name = "demo-cur"\n'
                   f'aws_access_key_id = "{KEY_ID}"\naws_secret_access_key = "{SECRET}"\n')
    return cfg


def outputs_text(nb_path):
    nb = json.loads(Path(nb_path).read_text())
    out = []
    for c in nb["cells"]:
        for o in c.get("outputs", []):
            out += [o.get("text", "")] if "text" in o else []
            out += [json.dumps(o.get("data", {}), ensure_ascii=False), " ".join(o.get("traceback", [])), o.get("evalue", "")]
    return "".join(x if isinstance(x, str) else "".join(x) for x in out)


def test_report_holds_parameters_reconciliation_and_no_secret(tmp_path):
    cf.build_v1_csv(tmp_path / "bucket", files=2)
    cf.build_v1_csv(tmp_path / "bucket", period="2023-12", files=1, rows=100)
    cfg = write_config(tmp_path, "file://bucket")
    report = tmp_path / "report.ipynb"
    pm.execute_notebook(str(ROOT / "runs" / "pipeline.ipynb"), str(report), cwd=str(tmp_path), progress_bar=False,
                        parameters={"config_path": str(cfg), "start_date": "2023-11", "end_date": "2023-11"})
    raw = report.read_text()
    assert SECRET not in raw and KEY_ID not in raw
    nb = json.loads(raw)
    assert nb["metadata"]["papermill"]["parameters"]["start_date"] == "2023-11"
    text = outputs_text(report)
    assert "run id" in text and "duckdb" in text and "finops_nb" in text  # the header with the versions
    assert aws_export(load_config(str(cfg), environ={})).id in text  # the export the run is about
    assert "wJal…KEY" in text  # the settings table, masked
    assert "2023-11" in text and "1281 / 1.6823086974" in text and "yes" in text
    assert "2023-12" not in text.split("Reconciliation")[-1].split("match")[-1]  # outside the window: untouched
    assert "no failures" in text


def test_failing_stage_still_writes_the_report(tmp_path):
    cfg = write_config(tmp_path, "file://no-such-mirror")
    report = tmp_path / "failed.ipynb"
    with pytest.raises(pm.PapermillExecutionError) as e:
        pm.execute_notebook(str(ROOT / "runs" / "pipeline.ipynb"), str(report), cwd=str(tmp_path), progress_bar=False,
                            parameters={"config_path": str(cfg)})
    assert "no-such-mirror" in str(e.value)
    text = outputs_text(report)
    assert "PipelineError" in text and "no-such-mirror" in text and "does not exist" in text
    assert SECRET not in report.read_text() and KEY_ID not in report.read_text()


def test_config_error_is_visible_in_the_report(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[aws]\ncur_version = "v3"\n')
    report = tmp_path / "bad.ipynb"
    with pytest.raises(pm.PapermillExecutionError):
        pm.execute_notebook(str(ROOT / "runs" / "pipeline.ipynb"), str(report), cwd=str(tmp_path), progress_bar=False,
                            parameters={"config_path": str(bad)})
    text = outputs_text(report)
    assert "ConfigError" in text and "cur_version" in text and "'v3' is not allowed" in text
