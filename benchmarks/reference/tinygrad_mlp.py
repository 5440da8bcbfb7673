#!/usr/bin/env python3
"""Reference timing of Kiln's MLP epoch in tinygrad on the OpenCL device (PoCL here); same workload as
`torch_mlp.py time`: 784-256-128-10, ReLU, Adam lr 1e-3, batch 128, 60,000 Fashion-MNIST training images
(/usr/share/datasets/fashion-mnist), shuffled every epoch, cross-entropy loss.

  POCL_AFFINITY=1 DEV=CL python3 benchmarks/reference/tinygrad_mlp.py [--epochs 3] [--feed device|host]

  --feed device (default): the images and labels are uploaded once; each step uploads only the 128 shuffled
                           indices and gathers the batch on the device (X[idx]) inside the TinyJit step.
  --feed host:             each step uploads the batch, gathered in numpy, to the device.
The first epoch is warm-up (tinygrad compiles and captures the jit); prints each epoch's seconds, the steady
median, samples/s, ms/step and kernels per step (GlobalCounters.kernel_count, host->device copies
included: device feed = 46 jitted kernels + 1 index copy, host feed = 42 kernels + 2 batch copies).
Needs tinygrad (pip install tinygrad; 0.14.0 tested). Not part of the build or of CI.
"""
import argparse
import gzip
import time

import numpy as np
from tinygrad import Device, GlobalCounters, Tensor, TinyJit, dtypes, nn
from tinygrad.helpers import Context

ROOT = "/usr/share/datasets/fashion-mnist"


def idx(name):
    with gzip.open(f"{ROOT}/{name}.gz") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


class MLP:
    def __init__(self):
        self.layers = [nn.Linear(784, 256), Tensor.relu, nn.Linear(256, 128), Tensor.relu, nn.Linear(128, 10)]

    def __call__(self, x): return x.sequential(self.layers)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--feed", choices=["device", "host"], default="device")
    a = parser.parse_args()
    x = idx("train-images-idx3-ubyte").reshape(-1, 784).astype(np.float32) / 255
    y = idx("train-labels-idx1-ubyte").astype(np.int32)
    X, Y = Tensor(x).realize(), Tensor(y).realize()
    Tensor.manual_seed(0)
    model = MLP()
    opt = nn.optim.Adam(nn.state.get_parameters(model), lr=1e-3)

    def step(*batch):
        with Context(TRAINING=1):
            opt.zero_grad()
            xb, yb = (X[batch[0]], Y[batch[0]]) if a.feed == "device" else batch
            loss = model(xb).sparse_categorical_crossentropy(yb).backward()
            return loss.realize(*opt.schedule_step())

    # one jit for the full batches of 128, one for the last batch of 96 (60,000 = 468 * 128 + 96)
    jits = {128: TinyJit(step), len(x) % 128: TinyJit(step)}
    rng = np.random.default_rng(0)
    times, kernels = [], []
    print(f"tinygrad on {Device.DEFAULT}, feed={a.feed}")
    for e in range(a.epochs):
        start = time.perf_counter()
        order = rng.permutation(len(x)).astype(np.int32)
        for i in range(0, len(x), 128):
            index = order[i:i + 128]
            batch = (Tensor(index),) if a.feed == "device" else (Tensor(x[index]), Tensor(y[index]))
            GlobalCounters.reset()
            loss = jits[len(index)](*batch)
            if i == 128: kernels.append(GlobalCounters.kernel_count)
        last = loss.item()  # waits for the device
        times.append(time.perf_counter() - start)
        print(f"epoch {e}: {times[-1]:.3f} s, last loss {last:.4f}, kernels in a step {kernels[-1]} (counting host->device copies)", flush=True)
    steady = sorted(times[1:])[len(times[1:]) // 2]
    steps = (len(x) + 127) // 128
    print(f"epoch seconds {['%.3f' % t for t in times]}; steady median {steady:.3f} s, "
          f"{len(x) / steady:.0f} samples/s, {steady / steps * 1e3:.2f} ms/step")


if __name__ == "__main__":
    main()
