#!/usr/bin/env python3
"""Applies a LoRA adapter Funetun exported to its frozen model with PEFT and
compares the result with the merged model Funetun exported.

Usage (crates/cli/tests/it/owner_data.rs runs it):

    ~/.cache/funetun/venv-torch/bin/python crates/ml/tests/hf/check_adapter.py BASE_DIR ADAPTER_DIR MERGED_DIR

BASE_DIR and MERGED_DIR are Hugging Face model directories, ADAPTER_DIR a
PEFT adapter directory. The base is loaded with
`AutoModelForCausalLM.from_pretrained` and wrapped by
`PeftModel.from_pretrained(base, ADAPTER_DIR)`; both models (float32, eager
attention, eval mode) score the same fixed token ids. Prints one JSON line:

    adapted_modules   how many modules PEFT put adapters on
    max_abs_diff      largest |logit difference| between PEFT and the merged model
    max_abs_logit     largest |logit| of the merged model (for a relative bound)
    base_diff         largest |logit difference| between the base and the merged
                      model (the adapters must change something)
"""

import json
import sys

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM


def load(directory):
    model = AutoModelForCausalLM.from_pretrained(
        directory, dtype=torch.float32, attn_implementation="eager"
    )
    return model.eval()


def main():
    base_dir, adapter_dir, merged_dir = sys.argv[1:4]
    base = load(base_dir)
    torch.manual_seed(0)
    vocab = base.config.vocab_size
    tokens = torch.randint(0, vocab, (2, 16))
    with torch.no_grad():
        base_logits = base(tokens).logits
    adapted = PeftModel.from_pretrained(base, adapter_dir).eval()
    modules = sum(1 for name, _ in adapted.named_modules() if name.endswith("lora_A"))
    merged = load(merged_dir)
    with torch.no_grad():
        peft_logits = adapted(tokens).logits
        merged_logits = merged(tokens).logits
    print(
        json.dumps(
            {
                "adapted_modules": modules,
                "max_abs_diff": (peft_logits - merged_logits).abs().max().item(),
                "max_abs_logit": merged_logits.abs().max().item(),
                "base_diff": (base_logits - merged_logits).abs().max().item(),
            }
        )
    )


if __name__ == "__main__":
    main()
