#!/usr/bin/env bash
# Builds the example tasks (examples/tasks, Rust) to WebAssembly.
#   scripts/build-tasks.sh          copies the modules to crates/compute/tasks/,
#                                   which the binary ships (`funetun tasks example`)
#   scripts/build-tasks.sh --check  fails unless the shipped modules are the
#                                   bytes this source builds to (the test command)
# The bytes do not depend on where the checkout or the cargo home lies
# (a copy at a fixed path, and paths remapped).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown
fi

cargo_home=${CARGO_HOME:-$HOME/.cargo}
target=${FUNETUN_TASKS_TARGET:-$HOME/.cache/funetun/target-tasks}
# The build runs on a copy at a fixed path. Cargo hashes a path dependency
# outside the building workspace (`sweep` builds crates/ml and crates/core)
# by its absolute path, and that hash orders the module's functions: built
# in place, the bytes would depend on where the checkout lies. (Paths in
# the module itself are remapped below.) Modification times are kept, so
# cargo's incremental build still sees what changed.
src=${FUNETUN_TASKS_SRC:-/tmp/funetun-tasks-src}
rm -rf "$src"
mkdir -p "$src/crates" "$src/examples"
cp -a Cargo.toml Cargo.lock "$src/"
cp -a crates/core crates/ml "$src/crates/"
cp -a examples/tasks "$src/examples/"
# SIMD128 is deterministic (fixed-width lanes, no fused multiply-add; the
# sandbox refuses relaxed SIMD), and `sweep`'s matrix products use it. The
# last matching prefix wins: the copy, then the more specific ones. Warnings
# are errors, so funetun-ml without its `host` feature stays clean.
RUSTFLAGS="-Dwarnings -Ctarget-feature=+simd128 --remap-path-prefix=$src=/funetun --remap-path-prefix=$cargo_home=/cargo --remap-path-prefix=$src/examples/tasks=/tasks" \
  cargo build --quiet --release --locked --target wasm32-unknown-unknown \
  --manifest-path "$src/examples/tasks/Cargo.toml" --target-dir "$target"

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
