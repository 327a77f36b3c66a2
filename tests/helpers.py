"Small helpers shared by the pipeline tests: a config over a local mirror, a run up to DuckDB, queries, the export's folders."
from finops_nb.aws.manifests import aws_export
from finops_nb.config import load_config
from finops_nb.localdb import connect, load_billing_local
from finops_nb.pipeline import extract_billing


def config(tmp_path, export="demo-cur", prefix="cur", cur="v1", **kw):
    "A Config reading the export from the local mirror tmp_path/bucket, writing under tmp_path."
    over = {"aws.bucket": f"file://{tmp_path / 'bucket'}", "aws.prefix": prefix, "aws.export_name": export,
            "aws.cur_version": cur, "staging_dir": str(tmp_path / "staging"), "parquet_dir": str(tmp_path / "parquet"),
            "database.duckdb.database_path": str(tmp_path / "finops.duckdb"), **kw}
    return load_config(None, over, environ={})


def run(cfg):
    "Extract and load into DuckDB; fail the test on any error."
    staged = extract_billing(cfg, progress=False)
    assert all(not r.failed for r in staged), [(r.period, r.error) for r in staged]
    loaded = load_billing_local(cfg, progress=False)
    assert all(not r.failed for r in loaded), [r.error for r in loaded]
    return loaded


def query(cfg, sql, params=()):
    "Rows of a query on the configured DuckDB database (read-only)."
    con = connect(cfg, read_only=True)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


def staging_of(cfg):
    "The staging folder of the config's export: {staging_dir}/{export_id}/."
    from pathlib import Path
    return Path(cfg["staging_dir"]) / aws_export(cfg).id


def parquet_of(cfg, period=None):
    "The Parquet folder of the config's export, or the file of one period in it."
    from pathlib import Path
    folder = Path(cfg["parquet_dir"]) / aws_export(cfg).id
    return folder if period is None else folder / f"{period}_aws_billing.parquet"


def extract(cfg):
    "`extract_billing` split as the tests read it: (extraction results, {manifest key: problem text} of discovery)."
    res = extract_billing(cfg, progress=False)
    return ([r for r in res if r.step == "extract"],
            {r.period: str(r.error).removeprefix(f"{r.period}: ") for r in res if r.step == "discover"})


def staged(cfg):
    "{period: delivery id} that staging holds for the config's export."
    from finops_nb.staging import Staging
    return Staging(cfg["staging_dir"]).held(aws_export(cfg))


def tree(root, skip=(".finops.lock",)):
    "{relative path: (size, mtime_ns)} of every file under root, lock files left out (each run rewrites them)."
    from pathlib import Path
    root = Path(root)
    return {p.relative_to(root).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file() and p.name not in skip and not p.name.endswith(".finops.lock")} if root.exists() else {}


FINOPS = str(__import__("pathlib").Path(__import__("sys").executable).with_name("finops"))


def cli(*args, cwd=None, env=None, timeout=120):
    "The installed `finops` command run as a user runs it (a subprocess), with no FINOPS* variable of the test run's own."
    import os, subprocess
    e = {k: v for k, v in os.environ.items() if not k.startswith("FINOPS")}
    e.update(env or {})
    return subprocess.run([FINOPS, *map(str, args)], capture_output=True, text=True, cwd=cwd, env=e, timeout=timeout)


def write_toml(cfg, path):
    "Write the settings of `cfg` that differ from the defaults as a config.toml the `finops` command reads; its path."
    import json
    from finops_nb.config import KEY
    sections, tables = {}, []
    for k, v in cfg.values.items():
        if v is None or k not in KEY or KEY[k].default == v: continue
        if KEY[k].kind == "tables": tables += [(k, t) for t in v]; continue
        section, _, name = k.rpartition(".")
        val = str(v).lower() if isinstance(v, bool) else json.dumps(list(v) if isinstance(v, tuple) else v if isinstance(v, (int, str)) else str(v))
        sections.setdefault(section, []).append(f"{name} = {val}")
    text = "\n".join(sections.pop("", [])) + "\n" + "".join(f"[{s}]\n" + "\n".join(l) + "\n" for s, l in sections.items())
    def tv(v):  # a TOML value: inline tables and arrays too
        if isinstance(v, dict): return "{" + ", ".join(f"{n} = {tv(x)}" for n, x in v.items()) + "}"
        if isinstance(v, (list, tuple)): return "[" + ", ".join(tv(x) for x in v) + "]"
        return str(v).lower() if isinstance(v, bool) else json.dumps(v if isinstance(v, (int, float, str)) else str(v))
    for k, t in tables:  # [[budgets]]
        text += f"[[{k}]]\n" + "".join(f"{n} = {tv(v)}\n" for n, v in t.items())
    path.write_text(text)
    return path
