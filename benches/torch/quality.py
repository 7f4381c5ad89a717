#!/usr/bin/env python3
"""nanoGPT's CPU run of character-level tiny-shakespeare in PyTorch, evaluated
both the way nanoGPT reports it and the way `funetun train` does.

The model is train_bench.py's `gpt` layout (the one the Rust engine
implements: biases, LayerNorm with bias, tied embeddings, N(0, 0.02) init
with residual projections scaled by 1/sqrt(2 * layers)); the optimisation is
the `baby` recipe, nanoGPT's own: batch 12 windows of 64 characters drawn at
random positions of the training split, AdamW (betas 0.9/0.99, weight decay
0.1 on 2-D parameters) at 1e-3 with 100 warm-up steps and cosine decay to
1e-4 at step 2,000, gradients clipped at norm 1, 2,000 steps.

The corpus is split as the engine splits it: the first 90% of the characters
train, the rest validate; the vocabulary is the corpus's sorted characters.
Two validation figures are printed:
  val_loss_20_batches  nanoGPT's estimate_loss(): the mean of 20 batches of
                       12 random windows (15,360 characters), the kind of
                       number nanoGPT's README reports (1.8857);
  val_loss_full        the mean over every non-overlapping 64-character
                       window of the validation split, what `funetun train
                       --json` prints as val_loss.

Usage (benches/torch/setup.sh creates the venv):
  ~/.cache/funetun/venv-torch/bin/python benches/torch/quality.py \
      --data "$FUNETUN_DATA_DIR/tinyshakespeare/input.txt" --threads 2 --seed 0
"""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_bench import Model, adamw  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="tinyshakespeare/input.txt")
    p.add_argument("--iters", type=int, default=2000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)

    text = open(a.data, encoding="utf-8").read()
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    data = torch.tensor([index[c] for c in text], dtype=torch.long)
    n_train = int(len(data) * 0.9)
    train, val = data[:n_train], data[n_train:]

    cfg = argparse.Namespace(model="gpt", n_layer=4, n_head=4, n_kv_head=4, d_model=128,
                             d_ff=512, context=64, vocab=len(chars))
    batch, context = 12, cfg.context
    model = Model(cfg).train()
    params = list(model.parameters())
    opt = adamw(params)
    gen = torch.Generator().manual_seed(a.seed)

    def windows(split):
        at = torch.randint(len(split) - context - 1, (batch,), generator=gen)
        x = torch.stack([split[i:i + context] for i in at])
        y = torch.stack([split[i + 1:i + 1 + context] for i in at])
        return x, y

    def lr_at(it, warmup=100, total=2000, peak=1e-3, floor=1e-4):
        if it < warmup:
            return peak * (it + 1) / (warmup + 1)
        if it > total:
            return floor
        ratio = (it - warmup) / (total - warmup)
        return floor + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (peak - floor)

    start = time.perf_counter()
    for it in range(a.iters):
        for group in opt.param_groups:
            group["lr"] = lr_at(it)
        x, y = windows(train)
        loss = F.cross_entropy(model(x).view(-1, cfg.vocab), y.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
    seconds = time.perf_counter() - start

    model.eval()
    with torch.no_grad():
        sampled = [F.cross_entropy(model(x).view(-1, cfg.vocab), y.view(-1)).item()
                   for x, y in (windows(val) for _ in range(20))]
        starts = range(0, len(val) - context, context)  # a window needs its next character
        total, count = 0.0, 0
        all_starts = list(starts)
        for k in range(0, len(all_starts), 256):
            chunk = all_starts[k:k + 256]
            x = torch.stack([val[i:i + context] for i in chunk])
            y = torch.stack([val[i + 1:i + 1 + context] for i in chunk])
            total += F.cross_entropy(model(x).view(-1, cfg.vocab), y.view(-1),
                                     reduction="sum").item()
            count += y.numel()
    print(json.dumps({
        "impl": "pytorch", "seed": a.seed, "iters": a.iters, "threads": a.threads,
        "val_loss_20_batches": sum(sampled) / len(sampled),
        "val_loss_full": total / count, "val_windows": len(all_starts),
        "train_seconds": seconds, "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
