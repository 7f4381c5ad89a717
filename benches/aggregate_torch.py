#!/usr/bin/env python3
"""Side by side: Funetun's aggregation rules against PyTorch (and NumPy).

Measures, on the same machine and thread count, n inputs of length d:

- PyTorch: torch.mean(dim=0), torch.median(dim=0) (which returns the lower of
  the two middle values), a sort-based trimmed mean, and x.sum() as a
  read-once baseline; NumPy: a sort-based trimmed mean;
- Funetun: `funetun bench aggregate` for mean, median and trimmed-mean:Q,
  each with its own read-once baseline measured in the same run.

Every timing is the best of --repeat runs after a warm-up; the spread (max)
is printed too. The last stdout line is one JSON object with every number
and the ratios.

    cargo build --release -p funetun-cli
    python benches/aggregate_torch.py --n 16 --d 10000000 --threads 2
"""

import argparse
import json
import os
import subprocess
import sys
import time


def best_of(fn, repeat):
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times), max(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--d", type=int, default=10_000_000)
    ap.add_argument("--q", type=int, default=2, help="values trimmed at each end")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--funetun", default=None, help="path of the funetun binary (default: target/release/funetun)")
    args = ap.parse_args()

    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    n, d, q = args.n, args.d, args.q
    gb = n * d * 4 / 1e9
    g = torch.Generator().manual_seed(0)
    x = torch.rand((n, d), generator=g, dtype=torch.float32) - 0.5
    xn = x.numpy()

    def trimmed_torch():
        s, _ = torch.sort(x, dim=0)
        return s[q : n - q].mean(dim=0)

    def trimmed_numpy():
        s = np.sort(xn, axis=0)
        return s[q : n - q].mean(axis=0)

    torch_times = {
        "read_once": best_of(lambda: x.sum(), args.repeat),
        "mean": best_of(lambda: torch.mean(x, dim=0), args.repeat),
        "median": best_of(lambda: torch.median(x, dim=0), args.repeat),
        "trimmed_mean": best_of(trimmed_torch, args.repeat),
    }
    numpy_trimmed = best_of(trimmed_numpy, max(1, args.repeat // 2))
    del x, xn

    exe = args.funetun or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target", "release", "funetun")
    ours = {}
    for key, rule in [("mean", "mean"), ("median", "median"), ("trimmed_mean", f"trimmed-mean:{q}")]:
        out = subprocess.run(
            [exe, "bench", "aggregate", "--rule", rule, "--n", str(n), "--d", str(d),
             "--threads", str(args.threads), "--repeat", str(args.repeat)],
            check=True, capture_output=True, text=True,
        ).stdout.strip().splitlines()[-1]
        ours[key] = json.loads(out)

    print(f"n = {n}, d = {d}, {gb:.2f} GB of f32 inputs, {args.threads} threads, best of {args.repeat} (max)")
    tr, trm = torch_times["read_once"]
    print(f"{'':14} {'torch s':>16} {'funetun s':>16} {'speedup':>8} {'funetun/read-once':>18}")
    print(f"{'read once':14} {tr:8.4f} ({trm:.4f})")
    report = {"n": n, "d": d, "q": q, "threads": args.threads, "torch_read_once_seconds": tr,
              "numpy_trimmed_mean_seconds": numpy_trimmed[0]}
    for key in ["mean", "median", "trimmed_mean"]:
        t, tm = torch_times[key]
        o = ours[key]
        speedup = t / o["seconds"]
        print(f"{key:14} {t:8.4f} ({tm:.4f}) {o['seconds']:8.4f} ({o['seconds_max']:.4f}) {speedup:7.1f}x "
              f"{o['ratio_to_read_once']:8.2f} (read once {o['read_once_seconds']:.4f} s, {o['read_once_gb_per_sec']:.1f} GB/s)")
        report[key] = {
            "torch_seconds": t, "torch_seconds_max": tm,
            "funetun_seconds": o["seconds"], "funetun_seconds_max": o["seconds_max"],
            "funetun_read_once_seconds": o["read_once_seconds"],
            "speedup_vs_torch": speedup, "ratio_to_read_once": o["ratio_to_read_once"],
        }
    print(f"{'numpy trimmed':14} {numpy_trimmed[0]:8.4f} ({numpy_trimmed[1]:.4f})")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
