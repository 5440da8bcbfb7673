#!/usr/bin/env python3
"""PyTorch → Kiln interop fixture: a trained nn.Sequential state_dict saved with
safetensors.torch.save_file, plus the inputs and PyTorch's eval-mode logits to compare with.

Run:  python3 Tests/Fixtures/tools/make_interop_fixture.py Tests/Fixtures/interop
Needs torch, safetensors and the Fashion-MNIST files (/usr/share/datasets/fashion-mnist).
"""
import sys

import torch
from safetensors.torch import save_file

from fashion import idx

folder = sys.argv[1] if len(sys.argv) > 1 else "."


torch.manual_seed(0)
x = torch.tensor(idx("train-images-idx3-ubyte")[:2000].reshape(-1, 784), dtype=torch.float32) / 255
y = torch.tensor(idx("train-labels-idx1-ubyte")[:2000], dtype=torch.int64)
model = torch.nn.Sequential(torch.nn.Linear(784, 32), torch.nn.BatchNorm1d(32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
for epoch in range(3):
    for i in range(0, 2000, 100):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x[i:i + 100]), y[i:i + 100]).backward()
        opt.step()
model.eval()
test = torch.tensor(idx("t10k-images-idx3-ubyte")[:64].reshape(-1, 784), dtype=torch.float32) / 255
with torch.no_grad():
    logits = model(test)
# The model file: exactly model.state_dict(), as a PyTorch user would save it.
save_file(model.state_dict(), f"{folder}/torch_mlp_bn.safetensors")
save_file({"input": test.contiguous(), "logits": logits.contiguous(),
           "classes": logits.argmax(dim=1).to(torch.int64)}, f"{folder}/torch_mlp_bn_expected.safetensors")
print("keys:", list(model.state_dict().keys()))
print("classes:", logits.argmax(dim=1)[:16].tolist())
