#!/usr/bin/env bash
# Creates (once) the Python environment of the API fuzz test
# (crates/orchestrator/tests/it/fuzz.rs): schemathesis from PyPI in
# $HOME/.cache/funetun/venv-fuzz. Idempotent: if that venv's schemathesis
# already runs, it does nothing. Prints one line saying what it did.
set -euo pipefail
VENV="$HOME/.cache/funetun/venv-fuzz"
ST="$VENV/bin/schemathesis"
if [ -x "$ST" ] && "$ST" --version >/dev/null 2>&1; then
  echo "venv-fuzz: already set up at $VENV ($("$ST" --version))"
  exit 0
fi
mkdir -p "$(dirname "$VENV")"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
LOG="$VENV/setup.log"
"$VENV/bin/python" -m pip install --upgrade pip schemathesis >"$LOG" 2>&1 \
  || { echo "venv-fuzz: pip install failed, see $LOG" >&2; exit 1; }
echo "venv-fuzz: installed $("$ST" --version) into $VENV"
