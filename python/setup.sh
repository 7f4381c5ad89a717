#!/usr/bin/env bash
# Creates (once) the Python environment of the Python client's tests
# (python/tests, run against a real orchestrator by crates/cli/tests/it/tasks.rs):
# the client's dependencies (eth-account, httpx), pytest and setuptools
# from PyPI in $HOME/.cache/funetun/venv-client. Idempotent: if that venv
# already imports them, it does nothing. Prints one line saying what it did.
set -euo pipefail
VENV="$HOME/.cache/funetun/venv-client"
PY="$VENV/bin/python"
if [ -x "$PY" ] && "$PY" -c 'import eth_account, httpx, pytest, setuptools' >/dev/null 2>&1; then
  echo "venv-client: already set up at $VENV"
  exit 0
fi
mkdir -p "$(dirname "$VENV")"
if [ ! -x "$PY" ]; then
  python3 -m venv "$VENV"
fi
LOG="$VENV/setup.log"
"$PY" -m pip install --upgrade pip 'eth-account>=0.13' 'httpx>=0.27' 'pytest>=8' 'setuptools>=68' wheel >"$LOG" 2>&1 \
  || { echo "venv-client: pip install failed, see $LOG" >&2; exit 1; }
echo "venv-client: installed the Python client's dependencies into $VENV"
