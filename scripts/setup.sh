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
