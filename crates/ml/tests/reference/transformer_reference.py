#!/usr/bin/env python3
"""PyTorch / Hugging Face reference values for Funetun's transformer engine.

Builds two tiny causal language models with Hugging Face `transformers`
(float32, CPU, eval mode, every dropout probability 0) -- a GPT-2 layout
(`GPT2LMHeadModel`) and a Llama layout (`LlamaForCausalLM`, eager attention) --
fills every parameter from a closed-form formula, runs one forward/backward
pass on a fixed batch, and writes what a Rust test needs to reproduce it:

    crates/ml/tests/reference/gpt_tiny.json
    crates/ml/tests/reference/llama_tiny.json

Run (from the repository root; benches/torch/setup.sh creates the venv):

    ~/.cache/funetun/venv-torch/bin/python crates/ml/tests/reference/transformer_reference.py

Models
    gpt:   vocab 11, n_positions 8, n_embd 16, n_layer 2, n_head 2, n_inner 32,
           activation "gelu_new" (tanh approximation), layer_norm_epsilon 1e-5,
           tied embeddings (lm_head.weight is transformer.wte.weight).
    llama: vocab 11, hidden 16, intermediate 32, 2 layers, 2 query heads,
           1 key/value head (grouped-query attention, head_dim 8),
           max_position_embeddings 8, rms_norm_eps 1e-5, rope_theta 10000,
           SiLU (SwiGLU MLP), no biases, untied lm_head.

Weight formula
    names = the model's parameter names sorted with Python's default string
    sort (for GPT: state_dict() keys minus the tied `lm_head.weight` and minus
    non-parameter buffers -- exactly the `named_parameters()` names; for Llama
    `lm_head.weight` is a separate parameter and is kept).  Note the plain
    string sort: with 10 or more layers "h.10" would sort before "h.2"; here
    there are only 2 layers.
    For the parameter at sorted index k, flattened in PyTorch's row-major
    order of its Hugging Face shape, element j is
        x = sin(0.7*j + 1.1*k + 0.3)                      (float64)
        norm gain  (name contains "ln_", "layernorm" or "model.norm" and
                    ends in ".weight")             -> 1 + 0.1*x
        bias       (name ends in ".bias")          -> 0.01*x
        otherwise                                  -> 0.05*x
    then cast to float32.

Hugging Face shapes the Rust side must transpose/interpret correctly
    GPT-2 uses `Conv1D`: weights are [in, out] and y = x @ W + b
    (c_attn.weight is [n_embd, 3*n_embd], columns q | k | v, each split into
    heads of head_dim consecutive columns).  wte is [vocab, n_embd], wpe is
    [n_positions, n_embd].  Llama uses nn.Linear: weights are [out, in] and
    y = x @ W^T (q_proj [n_head*hd, d], k_proj/v_proj [n_kv_head*hd, d]).

Batch and loss
    2 sequences of 8 tokens, ids[b][t] = (7*b + 3*t + 1) % 11,
    targets[b][t] = (5*b + 2*t + 4) % 11 (targets given explicitly, no shift),
    loss = F.cross_entropy(logits.view(-1, 11), targets.view(-1)), the mean
    over all 16 positions.

Output JSON keys
    config, names, shapes, input_ids, targets, loss, logits_sum,
    logits_first_row (logits[0][0], 11 values), grads {name: flat float32
    values in the same row-major order}, torch_version,
    transformers_version, plus a few descriptive strings.  Floats are float32
    values widened to Python floats, printed with repr (exact round trip).
    The GPT gradient of transformer.wte.weight includes both the embedding
    lookup and the tied lm_head contributions (autograd accumulates both uses
    of the shared Parameter); the script checks this, and every other value,
    against an independent float64 re-implementation before writing.
"""
import json
import math
import os
import sys

import torch
import torch.nn.functional as F
import transformers
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
VOCAB, SEQ, BATCH = 11, 8, 2


def param_value(name, k, n):
    j = torch.arange(n, dtype=torch.float64)
    x = torch.sin(0.7 * j + 1.1 * k + 0.3)
    if name.endswith(".weight") and ("ln_" in name or "layernorm" in name or "model.norm" in name):
        v = 1.0 + 0.1 * x
    elif name.endswith(".bias"):
        v = 0.01 * x
    else:
        v = 0.05 * x
    return v.to(torch.float32)


def sorted_param_names(model, drop):
    params = dict(model.named_parameters())
    names = sorted(k for k in model.state_dict().keys() if k in params and k not in drop)
    # named_parameters() de-duplicates the tied lm_head.weight, so the two
    # descriptions of the list agree.
    assert names == sorted(set(params) - set(drop)), (names, sorted(params))
    return names


def fill_weights(model, names):
    params = dict(model.named_parameters())
    with torch.no_grad():
        for k, name in enumerate(names):
            p = params[name]
            p.copy_(param_value(name, k, p.numel()).view(p.shape))


def batch():
    ids = torch.tensor([[(7 * b + 3 * t + 1) % VOCAB for t in range(SEQ)] for b in range(BATCH)])
    tgt = torch.tensor([[(5 * b + 2 * t + 4) % VOCAB for t in range(SEQ)] for b in range(BATCH)])
    return ids, tgt


def f32_list(t):
    return [float(v) for v in t.detach().to(torch.float32).reshape(-1).tolist()]


# ---------------------------------------------------------------------------
# Independent re-implementations (float64) used only as a self-check.  They
# spell out the conventions the Rust engine has to match.


def ref_gpt(w, ids, tgt, cfg):
    """w: float64 leaf tensors keyed by HF name. The embedding table is used
    twice through two separate leaves so their grads can be summed by hand."""
    d, nh = cfg["n_embd"], cfg["n_head"]
    hd = d // nh
    eps = cfg["layer_norm_epsilon"]
    wte_in = w["transformer.wte.weight"]
    wte_out = w["lm_head_copy"]
    B, T = ids.shape
    x = wte_in[ids] + w["transformer.wpe.weight"][:T]
    mask = torch.ones(T, T, dtype=torch.bool).tril()

    def ln(x, p):
        mu = x.mean(-1, keepdim=True)
        var = ((x - mu) ** 2).mean(-1, keepdim=True)  # biased variance
        return (x - mu) / torch.sqrt(var + eps) * w[p + ".weight"] + w[p + ".bias"]

    def gelu_new(x):
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))

    for l in range(cfg["n_layer"]):
        p = f"transformer.h.{l}."
        h = ln(x, p + "ln_1")
        qkv = h @ w[p + "attn.c_attn.weight"] + w[p + "attn.c_attn.bias"]  # Conv1D: [in, out]
        q, k, v = qkv.split(d, dim=-1)
        q, k, v = (t.view(B, T, nh, hd).transpose(1, 2) for t in (q, k, v))
        s = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
        s = s.masked_fill(~mask, float("-inf"))
        a = torch.softmax(s, -1) @ v
        a = a.transpose(1, 2).reshape(B, T, d)
        x = x + a @ w[p + "attn.c_proj.weight"] + w[p + "attn.c_proj.bias"]
        h = ln(x, p + "ln_2")
        h = gelu_new(h @ w[p + "mlp.c_fc.weight"] + w[p + "mlp.c_fc.bias"])
        x = x + h @ w[p + "mlp.c_proj.weight"] + w[p + "mlp.c_proj.bias"]
    x = ln(x, "transformer.ln_f")
    logits = x @ wte_out.T
    return logits, F.cross_entropy(logits.reshape(-1, VOCAB), tgt.reshape(-1))


def ref_llama(w, ids, tgt, cfg):
    d, nh, nkv = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = d // nh
    eps, theta = cfg["rms_norm_eps"], cfg["rope_theta"]
    B, T = ids.shape
    x = w["model.embed_tokens.weight"][ids]
    mask = torch.ones(T, T, dtype=torch.bool).tril()
    # RoPE, "rotate half" layout: dimension i (< hd/2) is paired with i + hd/2,
    # angle = pos * theta^(-2i/hd).
    inv_freq = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv_freq[None, :]
    cos = torch.cat([ang.cos(), ang.cos()], -1)
    sin = torch.cat([ang.sin(), ang.sin()], -1)

    def rope(t):
        t1, t2 = t[..., : hd // 2], t[..., hd // 2 :]
        return t * cos + torch.cat([-t2, t1], -1) * sin

    def rms(x, name):
        return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * w[name]

    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        h = rms(x, p + "input_layernorm.weight")
        q = (h @ w[p + "self_attn.q_proj.weight"].T).view(B, T, nh, hd).transpose(1, 2)
        k = (h @ w[p + "self_attn.k_proj.weight"].T).view(B, T, nkv, hd).transpose(1, 2)
        v = (h @ w[p + "self_attn.v_proj.weight"].T).view(B, T, nkv, hd).transpose(1, 2)
        q, k = rope(q), rope(k)
        # query head i uses key/value head i // (nh // nkv)
        k = k.repeat_interleave(nh // nkv, dim=1)
        v = v.repeat_interleave(nh // nkv, dim=1)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
        s = s.masked_fill(~mask, float("-inf"))
        a = (torch.softmax(s, -1) @ v).transpose(1, 2).reshape(B, T, d)
        x = x + a @ w[p + "self_attn.o_proj.weight"].T
        h = rms(x, p + "post_attention_layernorm.weight")
        g = h @ w[p + "mlp.gate_proj.weight"].T
        u = h @ w[p + "mlp.up_proj.weight"].T
        x = x + (F.silu(g) * u) @ w[p + "mlp.down_proj.weight"].T
    x = rms(x, "model.norm.weight")
    logits = x @ w["lm_head.weight"].T
    return logits, F.cross_entropy(logits.reshape(-1, VOCAB), tgt.reshape(-1))


def check_close(what, got, want, tol=2e-5):
    got, want = got.detach().to(torch.float64), want.detach().to(torch.float64)
    err = (got - want).abs().max().item()
    scale = max(1.0, want.abs().max().item())
    if err > tol * scale:
        sys.exit(f"self-check failed for {what}: max abs diff {err:g} (scale {scale:g})")
    return err


def self_check(kind, model, names, ids, tgt, logits, loss, cfg):
    params = dict(model.named_parameters())
    w = {n: params[n].detach().to(torch.float64).clone().requires_grad_(True) for n in names}
    if kind == "gpt":
        w["lm_head_copy"] = params["transformer.wte.weight"].detach().to(torch.float64).clone().requires_grad_(True)
        ref_logits, ref_loss = ref_gpt(w, ids, tgt, cfg)
    else:
        ref_logits, ref_loss = ref_llama(w, ids, tgt, cfg)
    ref_loss.backward()
    worst = check_close("logits", logits, ref_logits)
    worst = max(worst, check_close("loss", loss, ref_loss))
    for n in names:
        want = w[n].grad
        if kind == "gpt" and n == "transformer.wte.weight":
            # tied: the embedding-lookup grad plus the lm_head grad
            assert w["lm_head_copy"].grad.abs().max() > 0 and want.abs().max() > 0
            want = want + w["lm_head_copy"].grad
        worst = max(worst, check_close("grad " + n, params[n].grad, want))
    return worst


def run(kind):
    torch.manual_seed(0)
    if kind == "gpt":
        cfg = dict(vocab_size=VOCAB, n_positions=SEQ, n_embd=16, n_layer=2, n_head=2, n_inner=32,
                   layer_norm_epsilon=1e-5)
        hf = GPT2Config(**cfg, activation_function="gelu_new", tie_word_embeddings=True,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, summary_first_dropout=0.0,
                        scale_attn_weights=True, scale_attn_by_inverse_layer_idx=False,
                        reorder_and_upcast_attn=False,
                        bos_token_id=None, eos_token_id=None, pad_token_id=None)
        hf._attn_implementation = "eager"
        model = GPT2LMHeadModel(hf)
        assert model.lm_head.weight is model.transformer.wte.weight
        drop = {"lm_head.weight"}
        c_attn = model.transformer.h[0].attn.c_attn
        assert tuple(c_attn.weight.shape) == (16, 48)  # Conv1D is [in, out]
        extra = {"model": "gpt2", "activation": "gelu_new (tanh approximation)", "tie_word_embeddings": True}
    else:
        cfg = dict(vocab_size=VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                   num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=SEQ,
                   rms_norm_eps=1e-5)
        hf = LlamaConfig(**cfg, rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                         tie_word_embeddings=False, attention_bias=False, mlp_bias=False,
                         hidden_act="silu", attention_dropout=0.0, pretraining_tp=1)
        hf._attn_implementation = "eager"
        cfg["rope_theta"] = 10000.0
        cfg["head_dim"] = 8
        model = LlamaForCausalLM(hf)
        assert hf.rope_parameters["rope_theta"] == 10000.0 and hf.rope_parameters["rope_type"] == "default"
        assert hf.head_dim == 8
        drop = set()
        extra = {"model": "llama", "activation": "silu (SwiGLU: down(silu(gate(x)) * up(x)))",
                 "tie_word_embeddings": False}
    assert model.config._attn_implementation == "eager", model.config._attn_implementation
    model = model.to(torch.float32).eval()
    names = sorted_param_names(model, drop)
    fill_weights(model, names)

    ids, tgt = batch()
    model.zero_grad(set_to_none=True)
    logits = model(input_ids=ids).logits
    assert tuple(logits.shape) == (BATCH, SEQ, VOCAB) and logits.dtype == torch.float32
    loss = F.cross_entropy(logits.view(-1, VOCAB), tgt.view(-1))
    loss.backward()

    params = dict(model.named_parameters())
    worst = self_check(kind, model, names, ids, tgt, logits, loss, cfg)

    out = {
        **extra,
        "config": cfg,
        "weight_formula": "x = sin(0.7*j + 1.1*k + 0.3) in f64 (k = index in sorted names, j = row-major "
                          "element index); norm gain (ln_/layernorm/model.norm, .weight): 1 + 0.1*x; "
                          ".bias: 0.01*x; else 0.05*x; cast to f32",
        "names": names,
        "shapes": {n: list(params[n].shape) for n in names},
        "input_ids": ids.tolist(),
        "targets": tgt.tolist(),
        "loss": float(loss.item()),
        "logits_sum": float(logits.detach().sum().item()),
        "logits_first_row": f32_list(logits[0, 0]),
        "grads": {n: f32_list(params[n].grad) for n in names},
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
    }
    path = os.path.join(HERE, f"{kind}_tiny.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(f"{kind}: loss {out['loss']!r}, logits_sum {out['logits_sum']!r}, "
          f"self-check max diff {worst:.2e} -> {os.path.relpath(path)}")


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    for kind in ("gpt", "llama"):
        run(kind)


if __name__ == "__main__":
    main()
