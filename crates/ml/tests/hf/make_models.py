#!/usr/bin/env python3
"""Tiny Hugging Face models for Funetun's interoperability tests.

Usage (benches/torch/setup.sh creates the venv; crates/ml/tests/it/hf.rs runs it):

    ~/.cache/funetun/venv-torch/bin/python crates/ml/tests/hf/make_models.py OUT_DIR

Builds two seeded, random causal language models with real `transformers`
(float32, CPU, eval mode, eager attention) and saves them with
`save_pretrained(safe_serialization=True)`:

    OUT_DIR/gpt/        GPT2LMHeadModel: 2 layers, 2 heads, n_embd 32,
                        n_positions 32, vocab 96, gelu_new, layer_norm_epsilon 1e-5
    OUT_DIR/llama/      LlamaForCausalLM: 2 layers, 4 heads, 2 key/value heads,
                        hidden 32, intermediate 64, max_position_embeddings 32,
                        vocab 96, rms_norm_eps 1e-5, rope_theta 10000, untied head
    OUT_DIR/gpt-base/   the GPT-2 model's GPT2Model (names without `transformer.`)
    OUT_DIR/gpt-f16/    the GPT-2 model saved in float16
    OUT_DIR/llama-bf16/ the Llama model saved in bfloat16

Weights: transformers' own initialisation redrawn wider (so the logits are a
few units and a wrong detail shows): every matrix and embedding N(0, 0.3²),
norm gains 1 + N(0, 0.2²), biases N(0, 0.1²); torch seed 0 (gpt) and 1 (llama).

Each of gpt/ and llama/ also holds:

    tokenizer.json   a BPE tokenizer (Metaspace pre-tokenizer, [UNK]) trained
                     with the `tokenizers` package on TEXT to at most 96
                     tokens, saved by PreTrainedTokenizerFast.save_pretrained
    eval.txt         EVAL_TEXT, for the loss over non-overlapping windows
    logits.json      tokens: 2 sequences of 32 ids, ids[b][t] = (7b + 5t + 3) % 96
                     logits: the model's logits for them, flat (batch, seq, vocab)
                     text, text_ids: a sentence and the fast tokenizer's ids
                     (no special tokens)
                     eval_loss, eval_windows: mean next-token cross-entropy of
                     eval.txt's ids over its non-overlapping windows of 32
                     tokens, each predicting the token after it
                     torch_version, transformers_version
"""

import copy
import json
import os
import sys

import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

VOCAB = 96
CONTEXT = 32

TEXT = """First Citizen:
Before we proceed any further, hear me speak.

All:
Speak, speak.

First Citizen:
You are all resolved rather to die than to famish?

All:
Resolved. resolved.

First Citizen:
First, you know Caius Marcius is chief enemy to the people.
"""

EVAL_TEXT = """MENENIUS:
Either you must confess yourselves wondrous malicious,
or be accused of folly. I shall tell you a pretty tale:
it may be you have heard it; but, since it serves my purpose,
I will venture to stale 't a little more.

First Citizen:
Well, I'll hear it, sir: yet you must not think to
fob off our disgrace with a tale: but, an 't please you, deliver.
"""

SENTENCE = "Speak, citizen: we are resolved to hear the people."


def tokenizer():
    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB, special_tokens=["[UNK]"], show_progress=False
    )
    tok.train_from_iterator([TEXT], trainer)
    assert tok.get_vocab_size() <= VOCAB, tok.get_vocab_size()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]")


def redraw(model, seed):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            if p.dim() >= 2:
                p.copy_(0.3 * noise)
            elif name.endswith(".bias"):
                p.copy_(0.1 * noise)
            else:
                p.copy_(1.0 + 0.2 * noise)


def ids_of(fast, text):
    return fast(text, add_special_tokens=False)["input_ids"]


def write_model(model, fast, out):
    model.save_pretrained(out, safe_serialization=True)
    fast.save_pretrained(out)
    with open(os.path.join(out, "eval.txt"), "w", encoding="utf-8", newline="") as f:
        f.write(EVAL_TEXT)
    tokens = [[(7 * b + 5 * t + 3) % VOCAB for t in range(CONTEXT)] for b in range(2)]
    with torch.no_grad():
        logits = model(torch.tensor(tokens)).logits
        ids = ids_of(fast, EVAL_TEXT)
        windows = (len(ids) - 1) // CONTEXT
        assert windows >= 2, f"eval text is only {len(ids)} tokens"
        x = torch.tensor([ids[k * CONTEXT : (k + 1) * CONTEXT] for k in range(windows)])
        y = torch.tensor([ids[k * CONTEXT + 1 : (k + 1) * CONTEXT + 1] for k in range(windows)])
        out_logits = model(x).logits
        loss = torch.nn.functional.cross_entropy(
            out_logits.reshape(-1, out_logits.shape[-1]).double(), y.reshape(-1)
        )
    report = {
        "tokens": tokens,
        "logits": logits.reshape(-1).tolist(),
        "text": SENTENCE,
        "text_ids": ids_of(fast, SENTENCE),
        "eval_loss": loss.item(),
        "eval_windows": windows,
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
    }
    with open(os.path.join(out, "logits.json"), "w") as f:
        json.dump(report, f)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    torch.set_num_threads(1)
    transformers.utils.logging.disable_progress_bar()
    fast = tokenizer()

    torch.manual_seed(0)
    gpt = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=VOCAB,
            n_positions=CONTEXT,
            n_embd=32,
            n_layer=2,
            n_head=2,
            activation_function="gelu_new",
            layer_norm_epsilon=1e-5,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            bos_token_id=None,
            eos_token_id=None,
            attn_implementation="eager",
        )
    ).eval()
    redraw(gpt, 0)
    write_model(gpt, fast, os.path.join(out, "gpt"))
    gpt.transformer.save_pretrained(os.path.join(out, "gpt-base"), safe_serialization=True)
    copy.deepcopy(gpt).to(torch.float16).save_pretrained(
        os.path.join(out, "gpt-f16"), safe_serialization=True
    )

    torch.manual_seed(1)
    llama = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=VOCAB,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=CONTEXT,
            rms_norm_eps=1e-5,
            rope_theta=10000.0,
            tie_word_embeddings=False,
            bos_token_id=None,
            eos_token_id=None,
            attn_implementation="eager",
        )
    ).eval()
    redraw(llama, 1)
    write_model(llama, fast, os.path.join(out, "llama"))
    copy.deepcopy(llama).to(torch.bfloat16).save_pretrained(
        os.path.join(out, "llama-bf16"), safe_serialization=True
    )


if __name__ == "__main__":
    main()
