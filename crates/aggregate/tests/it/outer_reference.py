"""Reference values for tests/it/outer.rs, computed with PyTorch.

The outer optimizers treat the aggregated delta as the negative gradient, so
each is the matching torch.optim optimizer with `p.grad = -delta`. Run with
any PyTorch 2.x:

    python crates/aggregate/tests/it/outer_reference.py
"""

import numpy as np
import torch

THETA0 = [0.5, -1.0, 2.0, 0.0, 1e-3, -7.25]
DELTAS = [
    [0.1, -0.2, 0.05, 0.0, 1e-4, 3.0],
    [0.12, 0.3, -0.05, 1e-3, -2e-4, -1.0],
    [-0.4, -0.1, 0.0, 2e-3, 5e-5, 0.5],
]


def run(make):
    p = torch.nn.Parameter(torch.tensor(THETA0, dtype=torch.float32))
    opt = make([p])
    out = []
    for d in DELTAS:
        p.grad = -torch.tensor(d, dtype=torch.float32)
        opt.step()
        out.append([x for x in p.detach().numpy()])
    return out


def show(name, rows):
    print(f"const {name}: [[f32; {len(THETA0)}]; {len(rows)}] = [")
    for r in rows:
        # shortest decimal that reads back as the same f32
        print("    [" + ", ".join(np.format_float_positional(x, unique=True, trim="0") for x in r) + "],")
    print("];")


torch.set_num_threads(1)
show("NESTEROV", run(lambda ps: torch.optim.SGD(ps, lr=0.7, momentum=0.9, nesterov=True)))
show("ADAM", run(lambda ps: torch.optim.Adam(ps, lr=0.01, betas=(0.9, 0.99), eps=1e-8, foreach=False)))
