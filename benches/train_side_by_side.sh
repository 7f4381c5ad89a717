#!/usr/bin/env bash
# Training throughput, Funetun vs PyTorch, same model, batch 64 and threads,
# measured back to back on this machine. Usage:
#   PYTHON=/path/to/python-with-torch benches/train_side_by_side.sh [seconds]
# Prints one line per (model, threads) with both rates and the ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
SECONDS_EACH="${1:-3}"
if ! "$PYTHON" -c 'import torch' 2>/dev/null; then
  echo "PyTorch is not importable by $PYTHON; set PYTHON to an interpreter that has torch" >&2
  exit 1
fi
cargo build --release -q -p funetun-cli
BIN=target/release/funetun
printf '%-5s %-7s %14s %14s %8s\n' model threads funetun/s torch/s ratio
for model in mlp cnn; do
  for threads in 1 2; do
    ours=$("$BIN" bench train --model "$model" --threads "$threads" --seconds "$SECONDS_EACH" --no-baseline --json 2>/dev/null | tail -1)
    torch=$(RAYON_NUM_THREADS=$threads OMP_NUM_THREADS=$threads "$PYTHON" benches/train_torch.py "$model" "$threads" "$SECONDS_EACH" | tail -1)
    python3 - "$model" "$threads" "$ours" "$torch" <<'PY'
import json, sys
model, threads, ours, torch = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
a, b = ours["samples_per_sec"], torch["samples_per_sec"]
print(f"{model:<5} {threads:<7} {a:14.0f} {b:14.0f} {a / b:7.2f}x")
PY
  done
done
