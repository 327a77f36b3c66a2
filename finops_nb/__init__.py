"finops_nb: cloud bills (AWS CUR v1 and CUR 2.0) into DuckDB, monthly Parquet and BigQuery, exact to the last decimal."
__version__ = "0.1.0"

# The public API, imported when first used: `import finops_nb` (and `finops --version`) stays fast.
_API = {"load_config": "config", "discover_manifests": "aws.manifests", "extract_billing": "pipeline",
        "load_billing_local": "localdb", "export_parquet": "parquet", "load_billing_remote": "bigquery",
        "Pipeline": "pipeline", "reconcile": "pipeline", "run_pipeline": "pipeline"}
__all__ = list(_API)


def __getattr__(name):
    if name not in _API: raise AttributeError(f"module 'finops_nb' has no attribute {name!r}")
    import importlib
    return getattr(importlib.import_module(f"finops_nb.{_API[name]}"), name)


def __dir__(): return sorted(list(globals()) + __all__)
