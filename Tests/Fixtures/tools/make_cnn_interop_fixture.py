#!/usr/bin/env python3
"""PyTorch → Kiln interop fixture for convolutional networks: a small trained CNN's state_dict
saved with safetensors.torch.save_file (exactly what a PyTorch user would save), its architecture
in Kiln's layer vocabulary (torch_cnn.json, for `kiln evaluate --architecture`), and the first 64
Fashion-MNIST test images with PyTorch's eval-mode logits and classes.

Run:  python3 Tests/Fixtures/tools/make_cnn_interop_fixture.py Tests/Fixtures/interop
Needs torch, safetensors and the Fashion-MNIST files (/usr/share/datasets/fashion-mnist).
"""
import json
import sys

import torch
from safetensors.torch import save_file

from fashion import idx

folder = sys.argv[1] if len(sys.argv) > 1 else "."


architecture = [
    {"type": "Conv2d", "in": 1, "out": 8, "kernel": 3, "padding": 1},
    {"type": "BatchNorm2d", "features": 8},
    {"type": "ReLU"},
    {"type": "MaxPool2d", "kernel": 2},
    {"type": "Conv2d", "in": 8, "out": 16, "kernel": 3, "padding": 1},
    {"type": "BatchNorm2d", "features": 16},
    {"type": "ReLU"},
    {"type": "MaxPool2d", "kernel": 2},
    {"type": "Flatten"},
    {"type": "Linear", "in": 784, "out": 10},
]
torch.manual_seed(0)
model = torch.nn.Sequential(
    torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
    torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.BatchNorm2d(16), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
    torch.nn.Flatten(), torch.nn.Linear(784, 10))
x = torch.tensor(idx("train-images-idx3-ubyte")[:2000].reshape(-1, 1, 28, 28), dtype=torch.float32) / 255
y = torch.tensor(idx("train-labels-idx1-ubyte")[:2000], dtype=torch.int64)
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
for epoch in range(2):
    for i in range(0, 2000, 100):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x[i:i + 100]), y[i:i + 100]).backward()
        opt.step()
model.eval()
test = torch.tensor(idx("t10k-images-idx3-ubyte")[:64].reshape(-1, 1, 28, 28), dtype=torch.float32) / 255
with torch.no_grad():
    logits = model(test)
save_file(model.state_dict(), f"{folder}/torch_cnn.safetensors")
save_file({"input": test.contiguous(), "logits": logits.contiguous(),
           "classes": logits.argmax(dim=1).to(torch.int64)}, f"{folder}/torch_cnn_expected.safetensors")
with open(f"{folder}/torch_cnn.json", "w") as f:
    json.dump(architecture, f, indent=1)
    f.write("\n")
print("keys:", list(model.state_dict().keys()))
print("classes:", logits.argmax(dim=1)[:16].tolist())
