#!/usr/bin/env bash
# Build (once, cached) the environment of the local BigQuery emulator used by the tests.
#
#   bash scripts/setup-test-servers.sh
#
# Only PyPI is needed: no Docker, no extensions.duckdb.org, no other download.
# The S3 server (moto[server]) lives in the project's own test venv and needs nothing here.
#
# Cache dir: ${FINOPS_TEST_SERVERS_DIR:-$HOME/.cache/finops_nb/test-servers}
#   venv-localbq/  Python 3.13 venv: local-bigquery 0.4.0 + duckdb 1.5.5 and its extensions
#   home-localbq/  private $HOME whose .duckdb/extensions holds icu, ducklake and spatial;
#                  start `local-bigquery` with HOME set to it
#   stamp          the pinned versions, written last; when it matches, nothing is done
#
# Why duckdb 1.5.5: local-bigquery 0.4.0 declares duckdb>=2.0.0, but duckdb 2.0.x cannot
# start it offline (duckdb.connect(config={"TimeZone": "UTC"}) needs the icu extension,
# which 2.x cannot autoload, and ATTACH 'ducklake:...' needs the ducklake extension, which
# PyPI only ships for duckdb <= 1.5.5). pip reports the declared conflict; it is expected.
#
# Python 3.13 (local-bigquery needs >= 3.13): $PY313, else ~/.pyenv/versions/3.13*/bin/python3.13
# (not the pyenv shim, which refuses to run), else python3.13 on /usr/bin or /usr/local/bin.
# The last line printed on stdout is the cache dir; progress goes to stderr.
set -euo pipefail

CACHE=${FINOPS_TEST_SERVERS_DIR:-$HOME/.cache/finops_nb/test-servers}
VENV=$CACHE/venv-localbq
FAKEHOME=$CACHE/home-localbq
STAMP=$CACHE/stamp
LOCALBQ_PIN="local-bigquery==0.4.0"
DUCKDB_PINS=(duckdb==1.5.5 duckdb-extensions==1.5.5 duckdb-extension-icu==1.5.5
             duckdb-extension-ducklake==1.5.5 duckdb-extension-spatial==1.5.5)
EXTENSIONS=(icu ducklake spatial)
WANT="format=1 python=3.13 $LOCALBQ_PIN ${DUCKDB_PINS[*]} extensions=${EXTENSIONS[*]}"

is_built() {
  [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && [ -x "$VENV/bin/local-bigquery" ]
}

# Fast path: nothing to do.
if is_built; then
  echo "$CACHE"
  exit 0
fi

mkdir -p "$CACHE"
# Serialise concurrent builders (e.g. two test sessions started at once).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$CACHE/.lock"
  flock 9
  if is_built; then
    echo "$CACHE"
    exit 0
  fi
fi

# ---- find Python 3.13 --------------------------------------------------------------------
is_py313() { [ -x "$1" ] && "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null; }
if [ -n "${PY313:-}" ]; then
  is_py313 "$PY313" || { echo "error: PY313=$PY313 is not a working Python 3.13 interpreter" >&2; exit 1; }
else
  for c in $(ls -d "$HOME"/.pyenv/versions/3.13*/bin/python3.13 2>/dev/null | sort -rV) \
           /usr/local/bin/python3.13 /usr/bin/python3.13; do
    if is_py313 "$c"; then PY313=$c; break; fi
  done
fi
if [ -z "${PY313:-}" ]; then
  cat >&2 <<MSG
error: no Python 3.13 interpreter found (the local BigQuery emulator needs Python >= 3.13).
Looked at: \$PY313, $HOME/.pyenv/versions/3.13*/bin/python3.13, /usr/local/bin/python3.13, /usr/bin/python3.13
Install one (e.g. 'pyenv install 3.13' or 'apt-get install python3.13 python3.13-venv') or set PY313=/path/to/python3.13.
MSG
  exit 1
fi

# ---- build --------------------------------------------------------------------------------
LOG=$CACHE/setup.log
: >"$LOG"
run() {  # run a step quietly; on failure show the end of its output
  if ! "$@" >>"$LOG" 2>&1; then
    echo "error: step failed: $*" >&2
    echo "---- last lines of $LOG ----" >&2
    tail -n 40 "$LOG" >&2
    exit 1
  fi
}

start=$SECONDS
# Keep the caller's Python settings (e.g. the test venv's) out of the 3.13 venv.
unset PYTHONPATH PYTHONHOME VIRTUAL_ENV
echo "building the BigQuery emulator environment in $CACHE with $PY313 ($("$PY313" --version 2>&1))" >&2
# A half-built cache (no stamp, or a stamp for other versions) is wiped and rebuilt.
rm -rf "$VENV" "$FAKEHOME" "$STAMP"
export PIP_DISABLE_PIP_VERSION_CHECK=1
run "$PY313" -m venv "$VENV"
run "$VENV/bin/python" -m pip install -q "$LOCALBQ_PIN"
# Pin duckdb down (see the header). pip warns about local-bigquery's duckdb>=2.0.0: expected.
run "$VENV/bin/python" -m pip install -q "${DUCKDB_PINS[@]}"

mkdir -p "$FAKEHOME"
# Copy the extensions into $HOME/.duckdb/extensions of the private HOME, then check that the
# calls local-bigquery makes at startup work without any download.
run env HOME="$FAKEHOME" "$VENV/bin/python" - "${EXTENSIONS[@]}" <<'PY'
import sys
import duckdb
from duckdb_extensions import import_extension

assert duckdb.__version__ == "1.5.5", duckdb.__version__
con = duckdb.connect()
for ext in sys.argv[1:]:
    import_extension(ext, con=con)
con.close()
con = duckdb.connect(config={"TimeZone": "UTC", "autoinstall_known_extensions": False})
for ext in sys.argv[1:]:
    con.execute(f"LOAD {ext}")
con.close()
print("duckdb extensions ready:", ", ".join(sys.argv[1:]))
PY
run "$VENV/bin/local-bigquery" --help

echo "$WANT" >"$STAMP"
echo "BigQuery emulator environment ready in $((SECONDS - start)) s" >&2
echo "$CACHE"
