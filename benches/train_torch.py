#!/usr/bin/env python3
"""PyTorch side of the training-throughput comparison.

Same networks as Funetun's `mlp` and `cnn`, batch 64, forward + backward +
SGD step, on random inputs. Prints one JSON line per (model, threads).
Needs torch: PYTHON=/path/to/python-with-torch benches/train_side_by_side.sh
"""
import json
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 256)
        self.fc2 = nn.Linear(256, 10)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x)))


class Cnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 5)
        self.conv2 = nn.Conv2d(32, 64, 5)
        self.fc1 = nn.Linear(1024, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x.view(-1, 1, 28, 28))), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


def measure(model_name, threads, seconds, batch=64):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = Mlp() if model_name == "mlp" else Cnn()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.randn(batch, 784)
    y = torch.randint(0, 10, (batch,))

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    for _ in range(10):
        step()
    chunk = 50 if model_name == "mlp" else 5
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(chunk):
            step()
        steps += chunk
    return steps * batch / (time.perf_counter() - start)


if __name__ == "__main__":
    model_name, threads = sys.argv[1], int(sys.argv[2])
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 3.0
    rate = measure(model_name, threads, seconds)
    print(json.dumps({"model": model_name, "threads": threads, "samples_per_sec": rate,
                      "torch": torch.__version__}))
