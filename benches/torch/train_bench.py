#!/usr/bin/env python3
"""PyTorch training throughput for comparison with Funetun's transformer engine.

A self-contained, nanoGPT-style implementation in plain PyTorch (no
`transformers`) of the two layouts the Rust engine implements:

  gpt    learned position embeddings, LayerNorm (eps 1e-5, with bias), GELU
         (tanh approximation), tied token embedding / lm_head, biases on every
         linear layer, causal attention via F.scaled_dot_product_attention.
  llama  RoPE (rotate-half convention: dim i pairs with i + head_dim/2,
         theta 10000), RMSNorm (eps 1e-5, gain only), SwiGLU MLP
         (down(silu(gate(x)) * up(x))), grouped-query attention (query head h
         uses key/value head h // (n_head / n_kv_head)), no biases, untied
         lm_head, causal attention via F.scaled_dot_product_attention.

One training step = forward on a random (batch, context) token batch,
mean cross-entropy against random targets, backward, grad-norm clipping at
1.0, AdamW(lr 1e-3, betas (0.9, 0.99), weight_decay 0.1 on 2-D parameters
only, 0 on the rest).  W warm-up steps run untimed, then N timed steps.
Prints one JSON line:
  {"impl":"pytorch","model":...,"threads":T,"tokens_per_sec":...,"step_ms":...,
   "params":...,"torch":version, ...}

Usage (benches/torch/setup.sh creates the venv):
  ~/.cache/funetun/venv-torch/bin/python benches/torch/train_bench.py \
      --model gpt --threads 1 --steps 100 --warmup 30 --json
One thread count per invocation; for a fair comparison also export
OMP_NUM_THREADS=T (torch.set_num_threads(T) is always called).
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class CausalSelfAttention(nn.Module):
    def __init__(self, a, bias, rope):
        super().__init__()
        assert a.d_model % a.n_head == 0 and a.n_head % a.n_kv_head == 0
        self.n_head, self.n_kv_head = a.n_head, a.n_kv_head
        self.head_dim = a.d_model // a.n_head
        kv = self.n_kv_head * self.head_dim
        # one fused projection: columns [q | k | v]
        self.qkv = nn.Linear(a.d_model, a.d_model + 2 * kv, bias=bias)
        self.proj = nn.Linear(a.d_model, a.d_model, bias=bias)
        self.rope = rope
        if rope:
            hd = self.head_dim
            inv_freq = 1.0 / (10000.0 ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
            ang = torch.arange(a.context, dtype=torch.float32)[:, None] * inv_freq[None, :]
            self.register_buffer("cos", torch.cat([ang.cos(), ang.cos()], -1), persistent=False)
            self.register_buffer("sin", torch.cat([ang.sin(), ang.sin()], -1), persistent=False)

    def apply_rope(self, x):
        T = x.shape[2]
        x1, x2 = x[..., : self.head_dim // 2], x[..., self.head_dim // 2 :]
        return x * self.cos[:T] + torch.cat([-x2, x1], -1) * self.sin[:T]

    def forward(self, x):
        B, T, C = x.shape
        kv = self.n_kv_head * self.head_dim
        q, k, v = self.qkv(x).split([C, kv, kv], dim=-1)
        q = q.view(B, T, self.n_head, self.head_dim).transpose(1, 2)
        k = k.view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)
        v = v.view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)
        if self.rope:
            q, k = self.apply_rope(q), self.apply_rope(k)
        if self.n_kv_head != self.n_head:
            rep = self.n_head // self.n_kv_head
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # scale 1/sqrt(head_dim)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class GptMlp(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.fc = nn.Linear(a.d_model, a.d_ff)
        self.proj = nn.Linear(a.d_ff, a.d_model)

    def forward(self, x):
        return self.proj(F.gelu(self.fc(x), approximate="tanh"))


class SwiGlu(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.gate = nn.Linear(a.d_model, a.d_ff, bias=False)
        self.up = nn.Linear(a.d_model, a.d_ff, bias=False)
        self.proj = nn.Linear(a.d_ff, a.d_model, bias=False)

    def forward(self, x):
        return self.proj(F.silu(self.gate(x)) * self.up(x))


class Block(nn.Module):
    def __init__(self, a):
        super().__init__()
        llama = a.model == "llama"
        norm = (lambda: RMSNorm(a.d_model, 1e-5)) if llama else (lambda: nn.LayerNorm(a.d_model, eps=1e-5))
        self.norm1, self.norm2 = norm(), norm()
        self.attn = CausalSelfAttention(a, bias=not llama, rope=llama)
        self.mlp = SwiGlu(a) if llama else GptMlp(a)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class Model(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.llama = a.model == "llama"
        self.wte = nn.Embedding(a.vocab, a.d_model)
        if not self.llama:
            self.wpe = nn.Embedding(a.context, a.d_model)
        self.blocks = nn.ModuleList(Block(a) for _ in range(a.n_layer))
        self.norm_f = RMSNorm(a.d_model, 1e-5) if self.llama else nn.LayerNorm(a.d_model, eps=1e-5)
        self.lm_head = nn.Linear(a.d_model, a.vocab, bias=False)
        if not self.llama:
            self.lm_head.weight = self.wte.weight  # tied
        self.apply(self._init)
        for name, p in self.named_parameters():
            if name.endswith("proj.weight"):  # residual-stream output projections
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * a.n_layer))

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, idx):
        x = self.wte(idx)
        if not self.llama:
            x = x + self.wpe(torch.arange(idx.shape[1], device=idx.device))
        for b in self.blocks:
            x = b(x)
        return self.lm_head(self.norm_f(x))


def adamw(params):
    """nanoGPT's AdamW: lr 1e-3, betas (0.9, 0.99), weight decay 0.1 on 2-D
    parameters only."""
    decay = [q for q in params if q.dim() >= 2]
    no_decay = [q for q in params if q.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                              {"params": no_decay, "weight_decay": 0.0}],
                             lr=1e-3, betas=(0.9, 0.99))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", choices=["gpt", "llama"], default="gpt")
    p.add_argument("--n-layer", type=int, default=4)
    p.add_argument("--n-head", type=int, default=4)
    p.add_argument("--n-kv-head", type=int, default=4)
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--d-ff", type=int, default=512)
    p.add_argument("--context", type=int, default=64)
    p.add_argument("--vocab", type=int, default=65)
    p.add_argument("--batch", type=int, default=12)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--warmup", type=int, default=30)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print only the JSON line")
    a = p.parse_args()
    if a.model == "gpt" and a.n_kv_head != a.n_head:
        p.error("the gpt layout has no grouped-query attention: --n-kv-head must equal --n-head")

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    model = Model(a).train()
    params = list(model.parameters())  # de-duplicated: the tied embedding counts once
    n_params = sum(q.numel() for q in params)
    opt = adamw(params)
    gen = torch.Generator().manual_seed(a.seed)

    def step():
        x = torch.randint(0, a.vocab, (a.batch, a.context), generator=gen)
        y = torch.randint(0, a.vocab, (a.batch, a.context), generator=gen)
        loss = F.cross_entropy(model(x).view(-1, a.vocab), y.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        return loss

    for _ in range(a.warmup):
        step()
    start = time.perf_counter()
    for _ in range(a.steps):
        loss = step()
    last_loss = loss.item()
    elapsed = time.perf_counter() - start

    out = {
        "impl": "pytorch",
        "model": a.model,
        "threads": a.threads,
        "tokens_per_sec": a.batch * a.context * a.steps / elapsed,
        "step_ms": 1000.0 * elapsed / a.steps,
        "params": n_params,
        "torch": torch.__version__,
        "n_layer": a.n_layer, "n_head": a.n_head, "n_kv_head": a.n_kv_head, "d_model": a.d_model,
        "d_ff": a.d_ff, "context": a.context, "vocab": a.vocab, "batch": a.batch,
        "steps": a.steps, "warmup": a.warmup, "last_loss": last_loss,
    }
    if not a.json:
        print(f"{a.model}: {n_params} params, {a.threads} thread(s): "
              f"{out['step_ms']:.2f} ms/step, {out['tokens_per_sec']:.0f} tokens/s")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
