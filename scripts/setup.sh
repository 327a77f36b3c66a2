#!/usr/bin/env bash
# Set up a development checkout: .venv with the project and its dev extra, and the cached
# BigQuery emulator environment the tests start. Safe to run again (fast when nothing changed).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "setup: Python >= 3.11 needed (set PYTHON=...)" >&2; exit 1; }
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev]" 2>&1 | { grep -v "^WARNING: Location .* is ignored" || true; }
bash scripts/setup-test-servers.sh >/dev/null
bash scripts/setup-focus-validator.sh >/dev/null
echo "setup: ready (.venv, test servers cached)"
