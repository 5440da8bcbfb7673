#!/usr/bin/env python3
"""The reference runs for Kiln's MLP, in PyTorch on the CPU (same recipe as `kiln train`):
784-256-128-10, ReLU, Adam lr 1e-3, batch 128, Fashion-MNIST from /usr/share/datasets/fashion-mnist.

  python3 benchmarks/reference/torch_mlp.py time [--batchnorm] [--epochs 3]
      steady-state epoch time (the first epoch is warm-up), samples/s, ms per step
  python3 benchmarks/reference/torch_mlp.py accuracy [--limit 5000] [--test-limit 1000] [--epochs 5] [--seeds 0-7]
      test accuracy per seed

Needs torch (pip install torch). Not part of the build or of CI.
"""
import argparse
import gzip
import time

import numpy as np
import torch

ROOT = "/usr/share/datasets/fashion-mnist"


def idx(name):
    with gzip.open(f"{ROOT}/{name}.gz") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load(split, limit=None):
    prefix = "train" if split == "train" else "t10k"
    x = idx(f"{prefix}-images-idx3-ubyte").reshape(-1, 784)[:limit]
    y = idx(f"{prefix}-labels-idx1-ubyte")[:limit]
    return torch.tensor(x, dtype=torch.float32) / 255, torch.tensor(y, dtype=torch.int64)


def model(batchnorm):
    layers = []
    width = 784
    for size in (256, 128):
        layers += [torch.nn.Linear(width, size)] + ([torch.nn.BatchNorm1d(size)] if batchnorm else []) + [torch.nn.ReLU()]
        width = size
    return torch.nn.Sequential(*layers, torch.nn.Linear(width, 10))


def epoch(net, opt, x, y, generator, batch=128):
    net.train()
    order = torch.randperm(len(x), generator=generator)
    total = torch.zeros(())
    for i in range(0, len(x), batch):
        index = order[i:i + batch]
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(x[index]), y[index])
        loss.backward()
        opt.step()
        total += loss.detach()
    return float(total) / ((len(x) + batch - 1) // batch)


def accuracy(net, x, y):
    net.eval()
    with torch.no_grad():
        return float((net(x).argmax(1) == y).float().mean())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["time", "accuracy"])
    parser.add_argument("--batchnorm", action="store_true")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--limit", type=int)
    parser.add_argument("--test-limit", type=int)
    parser.add_argument("--seeds", default="0")
    a = parser.parse_args()
    x, y = load("train", a.limit)
    tx, ty = load("test", a.test_limit)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if a.mode == "time":
        torch.manual_seed(0)
        net = model(a.batchnorm)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        g = torch.Generator().manual_seed(0)
        times = []
        for e in range(a.epochs or 4):
            start = time.perf_counter()
            epoch(net, opt, x, y, g)
            times.append(time.perf_counter() - start)
        steady = sorted(times[1:])[len(times[1:]) // 2]
        steps = (len(x) + 127) // 128
        print(f"epoch seconds {['%.3f' % t for t in times]}; steady median {steady:.3f} s, "
              f"{len(x) / steady:.0f} samples/s, {steady / steps * 1e3:.2f} ms/step")
    else:
        lo, _, hi = a.seeds.partition("-")
        for seed in range(int(lo), int(hi or lo) + 1):
            torch.manual_seed(seed)
            net = model(a.batchnorm)
            opt = torch.optim.Adam(net.parameters(), lr=1e-3)
            g = torch.Generator().manual_seed(seed)
            for _ in range(a.epochs or 10):
                epoch(net, opt, x, y, g)
            print(f"seed {seed}: test accuracy {accuracy(net, tx, ty) * 100:.2f}%")


if __name__ == "__main__":
    main()
