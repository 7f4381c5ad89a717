#!/usr/bin/env bash
# Builds the example tasks (examples/tasks, Rust) to WebAssembly.
#   scripts/build-tasks.sh          copies the modules to crates/compute/tasks/,
#                                   which the binary ships (`funetun tasks example`)
#   scripts/build-tasks.sh --check  fails unless the shipped modules are the
#                                   bytes this source builds to (the test command)
# Paths are remapped, so the bytes do not depend on where the checkout or
# the cargo home lies.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown
fi

cargo_home=${CARGO_HOME:-$HOME/.cargo}
target=${FUNETUN_TASKS_TARGET:-$HOME/.cache/funetun/target-tasks}
# The last matching prefix wins: the checkout (`sweep` builds funetun-ml from
# crates/), then the more specific ones.
# SIMD128 is deterministic (fixed-width lanes, no fused multiply-add; the
# sandbox refuses relaxed SIMD), and `sweep`'s matrix products use it.
RUSTFLAGS="-Ctarget-feature=+simd128 --remap-path-prefix=$root=/funetun --remap-path-prefix=$cargo_home=/cargo --remap-path-prefix=$root/examples/tasks=/tasks" \
  cargo build --quiet --release --locked --target wasm32-unknown-unknown \
  --manifest-path examples/tasks/Cargo.toml --target-dir "$target"

status=0
for name in drill hostile pi rounding rounding_valid sweep; do
  built="$target/wasm32-unknown-unknown/release/$name.wasm"
  shipped="crates/compute/tasks/$name.wasm"
  if [ "${1:-}" = "--check" ]; then
    if ! cmp -s "$built" "$shipped"; then
      echo "$shipped is not what examples/tasks builds to: run scripts/build-tasks.sh and commit it" >&2
      status=1
    fi
  else
    cp "$built" "$shipped"
  fi
done
exit $status
