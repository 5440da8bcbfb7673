#!/usr/bin/env python3
"""A state dict of `kiln train --model cnn`'s architecture as PyTorch trains it (a few steps on
2,000 Fashion-MNIST images, seeded), for `kiln evaluate --architecture cnn`; and the first 64 test
images with PyTorch's eval-mode classes. Used by the CLI tests when torch is installed.

Usage: python3 make_torch_cnn.py MODEL.safetensors EXPECTED.safetensors
"""
import sys

import torch
from safetensors.torch import save_file

from fashion import idx
from torch import nn


torch.manual_seed(0)
torch.set_num_threads(2)
model = nn.Sequential(
    nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(), nn.Linear(3136, 128), nn.ReLU(), nn.Dropout(0.25), nn.Linear(128, 10))
x = torch.tensor(idx("train-images-idx3-ubyte")[:2000].reshape(-1, 1, 28, 28), dtype=torch.float32) / 255
y = torch.tensor(idx("train-labels-idx1-ubyte")[:2000], dtype=torch.int64)
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
for i in range(0, 2000, 128):
    opt.zero_grad()
    nn.functional.cross_entropy(model(x[i:i + 128]), y[i:i + 128]).backward()
    opt.step()
model.eval()
test = torch.tensor(idx("t10k-images-idx3-ubyte")[:64].reshape(-1, 1, 28, 28), dtype=torch.float32) / 255
with torch.no_grad():
    classes = model(test).argmax(dim=1)
save_file(model.state_dict(), sys.argv[1])
save_file({"input": test.contiguous(), "classes": classes.to(torch.int64)}, sys.argv[2])
