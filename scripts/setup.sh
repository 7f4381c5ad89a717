#!/usr/bin/env bash
# Installs everything Funetun's build and tests need beyond the Rust toolchain.
# Idempotent: each step checks before it installs, so running it twice is cheap.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup] %s\n' "$*" >&2; }

# Rust components used by the test command.
if ! cargo fmt --version >/dev/null 2>&1; then
  log "installing rustfmt"
  rustup component add rustfmt
fi
if ! cargo clippy --version >/dev/null 2>&1; then
  log "installing clippy"
  rustup component add clippy
fi

# The WebAssembly target, for the example tasks (examples/tasks, built by
# scripts/build-tasks.sh; the test command checks the shipped modules).
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  log "installing the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

# The pinned Solidity compiler (solc-js) and anvil, for the contract artifact check and the
# contract tests that run against a real anvil (contracts/package-lock.json pins both).
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  log "node and npm are required for the contract tools (solc, anvil): install Node.js 20+"
  exit 1
fi
if [ ! -x contracts/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil ] \
  || [ ! -f contracts/node_modules/solc/package.json ] \
  || ! cmp -s contracts/package-lock.json contracts/node_modules/.funetun-installed 2>/dev/null; then
  log "installing solc and anvil into contracts/node_modules"
  (cd contracts && npm install --no-save --no-audit --no-fund --loglevel=error)
  cp contracts/package-lock.json contracts/node_modules/.funetun-installed
fi

# Headless Chromium and its WebDriver, for the dashboard's browser tests
# (crates/dashboard/tests/it). Debian packages; apt-get update only when the
# package lists do not know them yet; sudo only when not already root.
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
      SUDO="sudo"
    fi
    log "installing chromium and chromium-driver for the browser tests"
    if ! apt-cache show chromium chromium-driver >/dev/null 2>&1; then
      $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
    fi
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      chromium chromium-driver
  else
    log "chromium and chromedriver are missing and apt-get is not available:"
    log "install them so that /usr/bin/chromium and /usr/bin/chromedriver exist"
    log "(the browser tests fail under CI=true without them)"
  fi
fi

# PostgreSQL's server programs, for the orchestrator's second test pass and
# scripts/services.sh (which starts a throw-away cluster; no system service).
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
      SUDO="sudo"
    fi
    log "installing postgresql for the PostgreSQL tests"
    if ! apt-cache show postgresql >/dev/null 2>&1; then
      $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
    fi
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql
  else
    log "PostgreSQL is missing and apt-get is not available: install PostgreSQL 13 or newer"
    log "(the test command's PostgreSQL pass needs initdb and pg_ctl)"
  fi
fi

# PyTorch and transformers in $HOME/.cache/funetun/venv-torch, for the PyTorch reference
# scripts and the Hugging Face interoperability tests (crates/ml/tests/it/hf.rs, which fail
# under CI=true without it). One line of output; fast when the venv is already there.
bash benches/torch/setup.sh >&2

# schemathesis in $HOME/.cache/funetun/venv-fuzz, for the API fuzz test
# (crates/orchestrator/tests/it/fuzz.rs, which fails under CI=true without it).
bash tests/fuzz/setup.sh >&2

# eth-account, httpx and pytest in $HOME/.cache/funetun/venv-client, for the Python
# client's tests (python/tests, run by crates/cli/tests/it/tasks.rs, which fails under
# CI=true without it).
bash python/setup.sh >&2
