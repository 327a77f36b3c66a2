#!/usr/bin/env bash
# Build (once, cached) the environments of the local test servers that do not live in the
# project's own venv: the BigQuery emulator and Azurite (Azure Blob Storage).
#
#   bash scripts/setup-test-servers.sh              # both
#   bash scripts/setup-test-servers.sh bigquery     # only the BigQuery emulator
#   bash scripts/setup-test-servers.sh azurite      # only Azurite
#
# Only the package registries are needed (PyPI, npm): no Docker, no extensions.duckdb.org, no
# other download. The S3 server (moto[server]) lives in the project's own test venv.
#
# Cache dir: ${FINOPS_TEST_SERVERS_DIR:-$HOME/.cache/finops_nb/test-servers}
#   venv-localbq/  Python 3.13 venv: local-bigquery 0.4.0 + duckdb 1.5.5 and its extensions
#   home-localbq/  private $HOME whose .duckdb/extensions holds icu, ducklake and spatial;
#                  start `local-bigquery` with HOME set to it
#   stamp          the BigQuery pins, written last; when it matches, the BigQuery part is done
#   azurite/       npm prefix: node_modules/.bin/azurite-blob of azurite 3.35.0
#   stamp-azurite  the Azurite pin, written last; when it matches, the Azurite part is done
#   setup.log, setup-azurite.log   the output of the last build of each part
# Each part has its own stamp: one is (re)built without touching the other.
#
# Why duckdb 1.5.5: local-bigquery 0.4.0 declares duckdb>=2.0.0, but duckdb 2.0.x cannot
# start it offline (duckdb.connect(config={"TimeZone": "UTC"}) needs the icu extension,
# which 2.x cannot autoload, and ATTACH 'ducklake:...' needs the ducklake extension, which
# PyPI only ships for duckdb <= 1.5.5). pip reports the declared conflict; it is expected.
#
# Why azurite 3.35.0: it is what `npm install azurite@3` resolves on Node 20 (3.36 needs
# Node >= 21, 3.37 Node >= 22). Start it with --disableTelemetry (else it sends usage data to
# an Application Insights endpoint on the internet) and --skipApiVersionCheck (else a current
# azure-storage-blob is refused, its API version being newer than Azurite's); tests/servers.py
# does.
#
# Python 3.13 (local-bigquery needs >= 3.13): $PY313, else ~/.pyenv/versions/3.13*/bin/python3.13
# (not the pyenv shim, which refuses to run), else python3.13 on /usr/bin or /usr/local/bin.
# Node >= 10 and npm (Azurite): $NODE / $NPM, else node and npm on the PATH.
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

AZ_DIR=$CACHE/azurite
AZ_STAMP=$CACHE/stamp-azurite
AZURITE_VERSION=3.35.0
AZ_WANT="format=1 azurite@$AZURITE_VERSION"

bigquery_built() {
  [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && [ -x "$VENV/bin/local-bigquery" ]
}
azurite_built() {
  [ -f "$AZ_STAMP" ] && [ "$(cat "$AZ_STAMP")" = "$AZ_WANT" ] && [ -x "$AZ_DIR/node_modules/.bin/azurite-blob" ]
}

PARTS=("$@")
[ ${#PARTS[@]} -gt 0 ] || PARTS=(bigquery azurite)
for part in "${PARTS[@]}"; do
  case $part in
    bigquery|azurite) ;;
    *) echo "error: unknown part '$part' (bigquery, azurite)" >&2; exit 2 ;;
  esac
done
all_built() {
  local part
  for part in "${PARTS[@]}"; do "${part}_built" || return 1; done
}

# Fast path: nothing to do.
if all_built; then
  echo "$CACHE"
  exit 0
fi

mkdir -p "$CACHE"
# Serialise concurrent builders (e.g. two test sessions started at once).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$CACHE/.lock"
  flock 9
  if all_built; then
    echo "$CACHE"
    exit 0
  fi
fi

run() {  # run a step quietly into $LOG; on failure show the end of its output
  if ! "$@" >>"$LOG" 2>&1; then
    echo "error: step failed: $*" >&2
    echo "---- last lines of $LOG ----" >&2
    tail -n 40 "$LOG" >&2
    exit 1
  fi
}

# ---- Azurite (npm) ------------------------------------------------------------------------
build_azurite() {
  local node=${NODE:-node} npm=${NPM:-npm} start=$SECONDS major
  if ! command -v "$node" >/dev/null 2>&1 || ! command -v "$npm" >/dev/null 2>&1; then
    echo "error: Azurite needs Node.js >= 10 and npm; none found (install them, e.g. 'apt-get install nodejs npm', or set NODE and NPM)" >&2
    exit 1
  fi
  major=$("$node" -p 'process.versions.node.split(".")[0]')
  if [ "$major" -lt 10 ]; then
    echo "error: Azurite $AZURITE_VERSION needs Node.js >= 10; $node is $("$node" --version)" >&2
    exit 1
  fi
  echo "installing Azurite $AZURITE_VERSION in $AZ_DIR with npm $("$npm" --version) (Node $("$node" --version))" >&2
  LOG=$CACHE/setup-azurite.log
  : >"$LOG"
  # A half-built install (no stamp, or a stamp for another version) is wiped and redone.
  rm -rf "$AZ_DIR" "$AZ_STAMP"
  mkdir -p "$AZ_DIR"
  printf '{\n  "name": "finops-nb-test-azurite",\n  "private": true,\n  "dependencies": {"azurite": "%s"}\n}\n' \
    "$AZURITE_VERSION" >"$AZ_DIR/package.json"
  run env npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false \
    "$npm" install --prefix "$AZ_DIR" --omit=dev --no-audit --no-fund
  local got
  got=$("$AZ_DIR/node_modules/.bin/azurite-blob" --version 2>>"$LOG" | tail -n 1)
  if [ "$got" != "$AZURITE_VERSION" ]; then
    echo "error: $AZ_DIR/node_modules/.bin/azurite-blob --version says '$got', not $AZURITE_VERSION" >&2
    exit 1
  fi
  echo "$AZ_WANT" >"$AZ_STAMP"
  echo "Azurite $AZURITE_VERSION ready in $((SECONDS - start)) s" >&2
}

wanted() { local p; for p in "${PARTS[@]}"; do [ "$p" = "$1" ] && return 0; done; return 1; }
if wanted azurite && ! azurite_built; then build_azurite; fi
if ! wanted bigquery || bigquery_built; then
  echo "$CACHE"
  exit 0
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

# ---- build the BigQuery emulator environment -----------------------------------------------
LOG=$CACHE/setup.log
: >"$LOG"

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
