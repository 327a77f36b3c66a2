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


def _modules_after(code):
    "The top-level modules a fresh interpreter has imported after running `code`."
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    return set(out.stdout.split())


def test_commands_import_only_what_they_use(tmp_path):
    heavy = {"boto3", "botocore", "duckdb", "pyarrow", "pandas", "google", "numpy", "tqdm"}
    for argv in (["--version"], ["--help"], ["--config", str(tmp_path / "none.toml"), "config"]):
        mods = _modules_after(f"from finops_nb.cli import main\ntry: main({argv!r})\nexcept SystemExit: pass")
        assert not mods & heavy, (argv, mods & heavy)
    assert not _modules_after("import finops_nb") & heavy


def test_library_needs_no_notebook_stack(tmp_path):
    "The [project] dependencies are what the library and the CLI import; the notebook stack is the `notebook` extra."
    import tomllib
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {re.split(r"[<>=\[ ]", d)[0].replace("-", "_") for d in project["dependencies"]}
    notebook = {"jupyterlab", "ipywidgets", "matplotlib", "papermill", "ipykernel", "nbdev", "IPython"}
    code = ("import finops_nb.cli, finops_nb.pipeline, finops_nb.report, finops_nb.staging, finops_nb.localdb, "
            "finops_nb.parquet, finops_nb.bigquery, finops_nb.aws.manifests, finops_nb.aws.schema, finops_nb.explore")
    mods = _modules_after(code)
    assert not mods & notebook, mods & notebook
    third = {"boto3", "duckdb", "pyarrow", "pandas", "google", "tqdm", "isal", "fastcore"}
    for m in third & mods: assert m in declared or (m == "google" and "google_cloud_bigquery" in declared), m
    assert {n.replace("-", "_") for n in ("jupyterlab", "ipywidgets", "matplotlib", "papermill")} <= {
        re.split(r"[<>=\[ ]", d)[0] for d in project["optional-dependencies"]["notebook"]}
