"The project's own promises: README = index notebook, example config = the key table, notebooks pass."
import json, re, subprocess, sys
from pathlib import Path

from finops_nb.config import KEYS, example_config, read_config_file

ROOT = Path(__file__).resolve().parents[1]


def _markdown(nb_path):
    nb = json.loads(nb_path.read_text())
    return "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")


def test_readme_is_index_notebook():
    assert _markdown(ROOT / "nbs" / "index.ipynb").strip() == (ROOT / "README.md").read_text().strip()


def test_readme_test_command_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- test-command -->\n```sh\n(.+)\n```\n<!-- /test-command -->", readme)
    assert block and "pytest" in block.group(1) and "nbdev-test" in block.group(1)
    assert "test-command" in (ROOT / ".ci" / "run").read_text()


def test_config_example_documents_every_key(tmp_path):
    text = (ROOT / "config.toml.example").read_text()
    assert text == example_config(), "regenerate config.toml.example from finops_nb.config.example_config()"
    assert set(read_config_file(ROOT / "config.toml.example")) == {k.name for k in KEYS}
    for k in KEYS:
        assert f"# {k.help}\n{k.leaf} = " in text, k.name


def test_pyproject_keeps_papermill_metadata():
    import tomllib
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    nb = cfg["tool"]["nbdev"]
    assert {"tags", "papermill"} <= set(nb["allowed_cell_metadata_keys"])
    assert "papermill" in nb["allowed_metadata_keys"]
    assert cfg["project"]["scripts"]["finops"] == "finops_nb.cli:main"
    assert not (ROOT / "settings.ini").exists()
