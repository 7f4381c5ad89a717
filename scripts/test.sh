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
# The example tasks the binary ships are what their source builds to.
bash scripts/build-tasks.sh --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked

# The orchestrator's tests again on PostgreSQL and an S3 bucket
# (crates/orchestrator/tests/it/common.rs gives each test a database and a
# bucket folder of its own), with the tests that need them (ignored above):
# their outages, S3 uploads, downloads and damage, and the demo on either
# pair. Throw-away PostgreSQL and Garage from scripts/services.sh, stopped
# and removed on exit.
services=$(mktemp -d)
trap 'bash scripts/services.sh down "$services"; rm -rf "$services"' EXIT
bash scripts/services.sh up "$services" postgres garage >/dev/null
value() { sed -n "s/^$1=//p" "$services/env"; }
FUNETUN_TEST_POSTGRES=$(value FUNETUN_DB)
FUNETUN_TEST_BLOBS=$(value FUNETUN_BLOBS)
[ -n "$FUNETUN_TEST_POSTGRES" ] && [ -n "$FUNETUN_TEST_BLOBS" ] || {
  echo "scripts/services.sh wrote no FUNETUN_DB or FUNETUN_BLOBS to $services/env" >&2
  exit 1
}
export FUNETUN_TEST_POSTGRES FUNETUN_TEST_BLOBS
for name in AWS_ENDPOINT_URL AWS_REGION AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY; do
  export "$name=$(value $name)"
done
# The test binaries the workspace run just built are run again directly (a
# `cargo test -p` would resolve features for one package and rebuild).
test_binary() {
  cargo test --workspace --locked --no-run --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") \
            and m["target"]["name"] == "it" and m["target"]["kind"] == ["test"] \
            and m["package_id"].split("#")[0].endswith("/" + sys.argv[1]):
        print(m["executable"])' "$1"
}
orchestrator_it=$(test_binary crates/orchestrator)
cli_it=$(test_binary crates/cli)
[ -x "$orchestrator_it" ] && [ -x "$cli_it" ] || { echo "test binaries not found" >&2; exit 1; }
(cd crates/orchestrator && "$orchestrator_it" --include-ignored)
(cd crates/cli && "$cli_it" postgres --ignored)
