#!/usr/bin/env bash
# Installs safepoint with its test dependencies into ./.venv and runs the whole test suite.
# Usage: bash scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."

# strace injects disk-full and I/O errors into real saves (tests/test_faults.py).
if ! command -v strace >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get install -y -qq strace >/dev/null 2>&1 || (apt-get update -qq >/dev/null && apt-get install -y -qq strace >/dev/null)
  else
    echo "note: strace is not installed; the fault-injection tests will be skipped (install it: apt-get install strace)"
  fi
fi

# Debian's chromium is the browser of the dashboard's browser tests (tests/test_dashboard_browser.py, driven by
# playwright through its executable path: playwright never downloads a browser of its own here).
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get install -y -qq chromium >/dev/null 2>&1 || (apt-get update -qq >/dev/null && apt-get install -y -qq chromium >/dev/null)
  fi
  if ! command -v chromium >/dev/null 2>&1; then
    if [ "${CI:-}" = true ]; then
      echo "error: chromium is not installed and could not be (apt-get install chromium); CI needs it" >&2
      exit 1
    fi
    echo "note: chromium is not installed; the dashboard browser tests will be skipped (install it: apt-get install chromium)"
  fi
fi

python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip >/dev/null
python -m pip install -q -e '.[test]'
python -m ruff check .
# One pytest worker per core (pytest-xdist), a test file per worker at a time: the suite is mostly waiting on
# fsync, subprocesses and servers, and a file's tests share their module fixtures.
python -m pytest -q -p no:cacheprovider -n "${SAFEPOINT_TEST_WORKERS:-auto}" --dist loadfile "$@"
