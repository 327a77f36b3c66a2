"finops_nb: AWS Cost and Usage Reports from S3 to DuckDB, monthly Parquet and BigQuery, exact to the last decimal."
__version__ = "0.1.0"

from .config import load_config
from .manifests import discover_manifests
from .extract import extract_billing
from .localdb import load_billing_local
from .parquet import export_parquet
from .bigquery import load_billing_remote
from .pipeline import Pipeline, reconcile, run_pipeline

__all__ = ["load_config", "discover_manifests", "extract_billing", "load_billing_local", "export_parquet",
           "load_billing_remote", "Pipeline", "reconcile", "run_pipeline"]
