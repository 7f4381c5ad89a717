#!/usr/bin/env bash
# Creates (once) the Python environment used by the PyTorch reference and
# benchmark scripts:
#   benches/torch/train_bench.py
#   crates/ml/tests/reference/transformer_reference.py
#   crates/ml/tests/hf/make_models.py, check_export.py and check_adapter.py
#   (Hugging Face and PEFT interop)
# at $HOME/.cache/funetun/venv-torch, with torch, transformers, peft,
# safetensors and numpy from PyPI. Idempotent: if that venv's python already
# imports torch, transformers and peft, it does nothing. Prints one line saying what it did.
# Note: PyPI's default torch wheel is the CUDA build (about 5.6 GB with its
# nvidia-* dependencies); only its CPU paths are used here.
set -euo pipefail
VENV="$HOME/.cache/funetun/venv-torch"
PY="$VENV/bin/python"
if [ -x "$PY" ] && "$PY" -c 'import torch, transformers, peft' >/dev/null 2>&1; then
  echo "venv-torch: already set up at $VENV (torch $("$PY" -c 'import torch; print(torch.__version__)'), transformers $("$PY" -c 'import transformers; print(transformers.__version__)'))"
  exit 0
fi
mkdir -p "$(dirname "$VENV")"
if [ ! -x "$PY" ]; then
  python3 -m venv "$VENV"
fi
LOG="$VENV/setup.log"
{
  "$PY" -m pip install --upgrade pip
  "$PY" -m pip install torch transformers peft safetensors numpy
} >"$LOG" 2>&1 || { echo "venv-torch: pip install failed, see $LOG" >&2; exit 1; }
echo "venv-torch: installed torch $("$PY" -c 'import torch; print(torch.__version__)') and transformers $("$PY" -c 'import transformers; print(transformers.__version__)') into $VENV"
