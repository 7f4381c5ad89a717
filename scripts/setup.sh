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
