#!/usr/bin/env python3
"""Loads a model directory Funetun exported and prints what transformers makes of it.

Usage (crates/ml/tests/it/hf.rs runs it):

    ~/.cache/funetun/venv-torch/bin/python crates/ml/tests/hf/check_export.py DIR TOKENS_JSON [DIR TOKENS_JSON ...]

(several pairs share one start of Python and torch). Each DIR is loaded with `AutoModelForCausalLM.from_pretrained` (float32, eager
attention, eval mode). TOKENS_JSON holds {"tokens": [[ids...], ...]} and,
optionally, "text". Prints one JSON line per pair:

    architecture   the class transformers built (GPT2LMHeadModel, LlamaForCausalLM)
    loading_info   missing / unexpected / mismatched keys (all should be empty)
    logits         the logits of "tokens", flat (batch, seq, vocab)
    text_ids       when "text" is given and DIR has tokenizer.json: the ids
                   PreTrainedTokenizerFast(tokenizer_file=DIR/tokenizer.json)
                   gives it (no special tokens), and
    decoded        those ids decoded back to text
"""

import json
import os
import sys

import torch
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast


def check(directory, tokens_json):
    with open(tokens_json) as f:
        spec = json.load(f)
    model, info = AutoModelForCausalLM.from_pretrained(
        directory,
        dtype=torch.float32,
        attn_implementation="eager",
        output_loading_info=True,
    )
    model.eval()
    with torch.no_grad():
        logits = model(torch.tensor(spec["tokens"])).logits
    out = {
        "architecture": type(model).__name__,
        "loading_info": {k: sorted(str(x) for x in v) for k, v in info.items()},
        "logits": logits.reshape(-1).tolist(),
    }
    tokenizer_file = os.path.join(directory, "tokenizer.json")
    if "text" in spec and os.path.isfile(tokenizer_file):
        fast = PreTrainedTokenizerFast(tokenizer_file=tokenizer_file)
        ids = fast(spec["text"], add_special_tokens=False)["input_ids"]
        out["text_ids"] = ids
        out["decoded"] = fast.decode(ids)
    print(json.dumps(out))


def main():
    args = sys.argv[1:]
    if not args or len(args) % 2:
        sys.exit(__doc__)
    torch.set_num_threads(1)
    for directory, tokens_json in zip(args[::2], args[1::2]):
        check(directory, tokens_json)


if __name__ == "__main__":
    main()
