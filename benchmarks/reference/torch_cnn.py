#!/usr/bin/env python3
"""The reference runs for Kiln's `kiln train --model cnn`, in PyTorch on the CPU, same recipe:
Conv2d(1,32,3,p1) BN ReLU MaxPool2 Conv2d(32,64,3,p1) BN ReLU MaxPool2 Flatten Linear(3136,128)
ReLU Dropout(0.25) Linear(128,10), Adam lr 1e-3, batch 128, cross-entropy, Fashion-MNIST from
/usr/share/datasets/fashion-mnist.

  python3 benchmarks/reference/torch_cnn.py time [--epochs 3] [--threads N]
      steady-state epoch time (the first epoch is warm-up), samples/s, ms per step
  python3 benchmarks/reference/torch_cnn.py accuracy [--epochs 10] [--seeds 0-2] [--augment]
      test accuracy per seed (after each epoch)
  python3 benchmarks/reference/torch_cnn.py conv [--repeats 20]
      conv2d forward, input-gradient and weight-gradient times at the net's two layer shapes

Needs torch (pip install torch). Not part of the build or of CI.
"""
import argparse
import gzip
import time

import numpy as np
import torch
from torch import nn

ROOT = "/usr/share/datasets/fashion-mnist"


def idx(name):
    with gzip.open(f"{ROOT}/{name}.gz") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load(split, limit=None):
    prefix = "train" if split == "train" else "t10k"
    x = idx(f"{prefix}-images-idx3-ubyte").reshape(-1, 1, 28, 28)[:limit]
    y = idx(f"{prefix}-labels-idx1-ubyte")[:limit]
    return torch.tensor(x, dtype=torch.float32) / 255, torch.tensor(y, dtype=torch.int64)


def model():
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(3136, 128), nn.ReLU(), nn.Dropout(0.25), nn.Linear(128, 10))


def augment(x, generator):
    """Random crop of 28 from a 2-pixel zero pad and a horizontal flip, per image."""
    n = len(x)
    padded = nn.functional.pad(x, (2, 2, 2, 2))
    dy = torch.randint(0, 5, (n,), generator=generator)
    dx = torch.randint(0, 5, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    out = torch.stack([padded[i, :, dy[i]:dy[i] + 28, dx[i]:dx[i] + 28] for i in range(n)])
    out[flip] = out[flip].flip(-1)
    return out


def epoch(net, opt, x, y, generator, batch=128, with_augment=False):
    net.train()
    order = torch.randperm(len(x), generator=generator)
    total = torch.zeros(())
    for i in range(0, len(x), batch):
        index = order[i:i + batch]
        inputs = augment(x[index], generator) if with_augment else x[index]
        opt.zero_grad()
        loss = nn.functional.cross_entropy(net(inputs), y[index])
        loss.backward()
        opt.step()
        total += loss.detach()
    return float(total) / ((len(x) + batch - 1) // batch)


def accuracy(net, x, y):
    net.eval()
    with torch.no_grad():
        return float(torch.cat([net(x[i:i + 1000]).argmax(1) for i in range(0, len(x), 1000)]).eq(y).float().mean())


def conv_times(repeats):
    """Median times of the convolution products at the net's shapes, batch 128."""
    for name, (c, o, hw) in {"conv1 1->32 28x28": (1, 32, 28), "conv2 32->64 14x14": (32, 64, 14)}.items():
        x = torch.randn(128, c, hw, hw, requires_grad=c > 1)
        w = torch.randn(o, c, 3, 3, requires_grad=True)
        flops = 2 * 128 * o * c * 9 * hw * hw
        for label, run in [("forward", lambda: nn.functional.conv2d(x, w, padding=1)),
                           ("input grad", lambda: torch.nn.grad.conv2d_input(x.shape, w, g, padding=1)),
                           ("weight grad", lambda: torch.nn.grad.conv2d_weight(x, w.shape, g, padding=1))]:
            g = torch.randn(128, o, hw, hw)
            if label == "input grad" and c == 1:
                continue
            for _ in range(3):
                run()
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                run()
                times.append(time.perf_counter() - start)
            t = sorted(times)[len(times) // 2]
            print(f"{name} {label}: {t * 1e3:.3f} ms, {flops / t / 1e9:.1f} GFLOP/s")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["time", "accuracy", "conv"])
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--augment", action="store_true")
    a = parser.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if a.mode == "conv":
        conv_times(a.repeats)
        return
    x, y = load("train")
    tx, ty = load("test")
    if a.mode == "time":
        torch.manual_seed(0)
        net = model()
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        g = torch.Generator().manual_seed(0)
        times = []
        for _ in range(a.epochs or 3):
            start = time.perf_counter()
            epoch(net, opt, x, y, g, with_augment=a.augment)
            times.append(time.perf_counter() - start)
            print(f"epoch {len(times)}: {times[-1]:.2f} s", flush=True)
        steady = sorted(times[1:])[len(times[1:]) // 2] if len(times) > 1 else times[0]
        steps = (len(x) + 127) // 128
        print(f"epoch seconds {['%.3f' % t for t in times]}; steady median {steady:.3f} s, "
              f"{len(x) / steady:.0f} samples/s, {steady / steps * 1e3:.2f} ms/step")
    else:
        lo, _, hi = a.seeds.partition("-")
        for seed in range(int(lo), int(hi or lo) + 1):
            torch.manual_seed(seed)
            net = model()
            opt = torch.optim.Adam(net.parameters(), lr=1e-3)
            g = torch.Generator().manual_seed(seed)
            for e in range(a.epochs or 10):
                epoch(net, opt, x, y, g, with_augment=a.augment)
                print(f"seed {seed} epoch {e + 1}: test accuracy {accuracy(net, tx, ty) * 100:.2f}%", flush=True)


if __name__ == "__main__":
    main()
