#!/usr/bin/env bash
# Build (once, cached) the environment of the FinOps Foundation's FOCUS validator, which the
# tests run on the FOCUS output to check its conformance.
#
#   bash scripts/setup-focus-validator.sh
#
# Only PyPI is needed. The validator runs offline (its FOCUS 1.2 rules ship in the package).
#
# Cache dir: ${FINOPS_TEST_SERVERS_DIR:-$HOME/.cache/finops_nb/test-servers}
#   venv-focus-validator/         Python 3.12 venv: focus-validator 2.2.1 and every dependency
#                                 pinned (the PINS below: a pip freeze of a working install)
#   venv-focus-validator/logging.yaml
#                                 logging config: warnings to stderr, no log file (the package's
#                                 own config writes a DEBUG log file into the cwd)
#   stamp-focus-validator         the pinned versions, written last; when it matches, nothing is done
#
# Why the pins: focus-validator 2.2.1 declares numpy<2, and pyarrow >= 18 needs numpy >= 2
# (ImportError at startup), so pyarrow stays at 17.0.0; the rest is pinned so that every
# build resolves the same set.
#
# Run it (offline) like this; the cwd MUST be the venv's site-packages, because the validator
# opens focus_validator/rules/currency_codes.csv relative to the cwd:
#   cd "$VENV/lib/python3.12/site-packages" && LOGGING_CONFIG="$VENV/logging.yaml" \
#     "$VENV/bin/focus-validator" --block-download --validate-version 1.2.0.1 \
#     --applicability-criteria ALL --data-file /abs/path/x.parquet \
#     --output-type unittest --output-destination /abs/path/report.xml
#
# Python 3.12 (focus-validator needs >= 3.12): $PY312, else ~/.pyenv/versions/3.12*/bin/python3.12
# (not the pyenv shim, which may refuse to run), else python3.12 on /usr/bin or /usr/local/bin.
# The last line printed on stdout is the venv's path; progress goes to stderr.
set -euo pipefail

CACHE=${FINOPS_TEST_SERVERS_DIR:-$HOME/.cache/finops_nb/test-servers}
VENV=$CACHE/venv-focus-validator
STAMP=$CACHE/stamp-focus-validator
VALIDATOR_PIN="focus-validator==2.2.1"
PINS=(numpy==1.26.4 pyarrow==17.0.0 polars==1.44.2 polars-runtime-32==1.44.2 duckdb==1.5.6
      pandas==2.3.3 pandasql==0.7.3 pandera==0.26.1 sqlglot==27.29.0 SQLAlchemy==2.1.9
      pydantic==2.14.4 pydantic_core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
      typing_extensions==4.16.0 typing-inspect==0.9.0 typeguard==4.6.1 mypy_extensions==1.2.0
      multimethod==2.0.2 ddt==1.7.2 graphviz==0.21 jsonschema==4.26.0
      jsonschema-specifications==2025.9.1 referencing==0.37.0 rpds-py==2026.9.1 attrs==26.1.0
      PyYAML==6.0.4 tabulate==0.10.0 packaging==26.4 python-dateutil==4.0.0 pytz==2025.2
      tzdata==2026.6 requests==2.34.2 urllib3==2.8.0 idna==3.20 charset-normalizer==3.5.3
      certifi==2026.10.19.post1)
WANT="format=1 python=3.12 $VALIDATOR_PIN ${PINS[*]}"

is_built() {
  [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && [ -x "$VENV/bin/focus-validator" ] \
    && [ -f "$VENV/logging.yaml" ]
}

# Fast path: nothing to do.
if is_built; then
  echo "$VENV"
  exit 0
fi

mkdir -p "$CACHE"
# Serialise concurrent builders (e.g. two test sessions started at once).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$CACHE/.lock-focus-validator"
  flock 9
  if is_built; then
    echo "$VENV"
    exit 0
  fi
fi

# ---- find Python 3.12 --------------------------------------------------------------------
is_py312() { [ -x "$1" ] && "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' 2>/dev/null; }
if [ -n "${PY312:-}" ]; then
  is_py312 "$PY312" || { echo "error: PY312=$PY312 is not a working Python 3.12 interpreter" >&2; exit 1; }
else
  for c in $(ls -d "$HOME"/.pyenv/versions/3.12*/bin/python3.12 2>/dev/null | sort -rV) \
           /usr/local/bin/python3.12 /usr/bin/python3.12; do
    if is_py312 "$c"; then PY312=$c; break; fi
  done
fi
if [ -z "${PY312:-}" ]; then
  cat >&2 <<MSG
error: no Python 3.12 interpreter found (the FOCUS validator needs Python >= 3.12).
Looked at: \$PY312, $HOME/.pyenv/versions/3.12*/bin/python3.12, /usr/local/bin/python3.12, /usr/bin/python3.12
Install one (e.g. 'pyenv install 3.12' or 'apt-get install python3.12 python3.12-venv') or set PY312=/path/to/python3.12.
MSG
  exit 1
fi

# ---- build --------------------------------------------------------------------------------
LOG=$CACHE/setup-focus-validator.log
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
# Keep the caller's Python settings (e.g. the test venv's) out of the 3.12 venv.
unset PYTHONPATH PYTHONHOME VIRTUAL_ENV
echo "building the FOCUS validator environment in $VENV with $PY312 ($("$PY312" --version 2>&1))" >&2
# A half-built venv (no stamp, or a stamp for other versions) is wiped and rebuilt.
rm -rf "$VENV" "$STAMP"
export PIP_DISABLE_PIP_VERSION_CHECK=1
run "$PY312" -m venv "$VENV"
run "$VENV/bin/python" -m pip install -q "$VALIDATOR_PIN" "${PINS[@]}"

cat >"$VENV/logging.yaml" <<'YAML'
# Used through LOGGING_CONFIG: warnings and errors to stderr, no log file in the cwd.
version: 1
disable_existing_loggers: false
formatters:
  brief:
    format: "focus-validator %(levelname)s %(name)s: %(message)s"
handlers:
  stderr:
    class: logging.StreamHandler
    stream: ext://sys.stderr
    formatter: brief
    level: WARNING
root:
  level: WARNING
  handlers: [stderr]
YAML

# Check that it starts and finds its local FOCUS 1.2 rules and currency list, offline.
SITE=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
run test -f "$SITE/focus_validator/rules/model-1.2.0.1.json"
run test -f "$SITE/focus_validator/rules/currency_codes.csv"
run "$VENV/bin/python" -c 'import numpy, pyarrow, polars, duckdb, focus_validator.main'
check_cli() (  # a subshell: the cd stays inside it
  cd "$SITE"
  LOGGING_CONFIG="$VENV/logging.yaml" "$VENV/bin/focus-validator" \
    --block-download --validate-version 1.2.0.1 --show-applicability-criteria
)
run check_cli

echo "$WANT" >"$STAMP"
echo "FOCUS validator environment ready in $((SECONDS - start)) s" >&2
echo "$VENV"
