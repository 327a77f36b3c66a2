"""The committed demo container (demo/container/) is what scripts/build-demo-container.py builds, and finops_nb reads its exports."""

import importlib.util
from pathlib import Path

from finops_nb.azure.exports import discover, azure_export
from finops_nb.config import load_config
from finops_nb.storage import LocalStore

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "build-demo-container.py"


def _load():
    spec = importlib.util.spec_from_file_location("build_demo_container", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


demo = _load()


def test_committed_container_is_a_fresh_build(tmp_path):
    demo.build(tmp_path / "container")
    fresh, committed = demo.files_of(tmp_path / "container"), demo.files_of(demo.CONTAINER_DIR)
    assert sorted(fresh) == sorted(committed), "demo/container differs from a fresh build: rerun scripts/build-demo-container.py"
    assert [k for k in fresh if fresh[k] != committed[k]] == []


def test_demo_configs_name_the_two_exports():
    for name, dataset, _, run_id in demo.EXPORTS:
        cfg = load_config(REPO / "demo" / f"azure-{name.removeprefix('ea-')}.toml", environ={})
        export = azure_export(cfg)
        assert (export.kind, export.name) == ({"ActualCost": "actual", "AmortizedCost": "amortized"}[dataset], name)
        found = discover(LocalStore(demo.CONTAINER_DIR), export)
        assert [(m.period, m.run_id, m.dataset) for m in found.manifests] == [("2023-09", run_id, dataset)] and found.problems == []
