#!/usr/bin/env bash
# The test command: installs what is missing, then checks formatting, lints
# and runs every test in the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

# Real data sets beside the project, when present (see shared/data/README.md).
if [ -z "${FUNETUN_DATA_DIR:-}" ] && [ -d ../shared/data ]; then
  FUNETUN_DATA_DIR="$(cd ../shared/data && pwd)"
  export FUNETUN_DATA_DIR
fi

# Keep build outputs between runs, outside the checkout.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/funetun/target}"

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
