#!/usr/bin/env bash
# The embedded demo: set up .venv, then run the whole pipeline (papermill run notebook) on the
# bundled sample exports — in demo/bucket a legacy CUR v1 report and a CUR 2.0 export, in
# demo/container an Azure EA actual and amortised cost export — into DuckDB, the FOCUS table
# and monthly Parquet files. No AWS or GCP account needed. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "demo: Python >= 3.11 needed (set PYTHON=...)" >&2; exit 1; }
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[notebook]" 2>&1 | { grep -v "^WARNING: Location .* is ignored" || true; }
mkdir -p runs/reports
stamp=$(date -u +%Y%m%dT%H%M%SZ)
reports=()
for export in cur-v1 cur-v2 azure-actual azure-amortized; do
  out="runs/reports/demo-${export}-${stamp}.ipynb"
  echo "demo: running the pipeline on demo/${export}.toml -> ${out}"
  .venv/bin/papermill --no-progress-bar runs/pipeline.ipynb "$out" -p config_path "demo/${export}.toml"
  reports+=("$out")
done
cat <<MSG

demo: done.
  source exports  demo/bucket/            (CUR v1: cur/demo-cur, CUR 2.0: cur2/demo-cur2; see demo/README.md)
                  demo/container/         (Azure EA actual and amortised cost: exports/ea-actual, exports/ea-amortized)
  staging         demo/.work/staging/{export_id}/{billing_period}/{delivery_id}/
  DuckDB          demo/.work/finops.duckdb  (aws_billing_data, azure_billing_data, and focus: every export side by side)
  Parquet         demo/.work/parquet/{export_id}/{billing_period}_aws_billing.parquet, _azure_billing.parquet, _focus.parquet
  export ids      $(.venv/bin/finops --config demo/cur-v1.toml config | sed -n 's/^export \([^:]*\):.*/\1/p') (CUR v1), $(.venv/bin/finops --config demo/cur-v2.toml config | sed -n 's/^export \([^:]*\):.*/\1/p') (CUR 2.0)
  export ids      $(.venv/bin/finops --config demo/azure-actual.toml config | sed -n 's/^export \([^:]*\):.*/\1/p') (Azure actual), $(.venv/bin/finops --config demo/azure-amortized.toml config | sed -n 's/^export \([^:]*\):.*/\1/p') (Azure amortised)
  audit reports   ${reports[0]}
                  ${reports[1]}
                  ${reports[2]}
                  ${reports[3]}
open them:        .venv/bin/jupyter lab ${reports[3]} runs/explore.ipynb
MSG
