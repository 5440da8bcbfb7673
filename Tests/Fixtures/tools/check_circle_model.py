#!/usr/bin/env python3
"""Kiln → PyTorch for a custom module: loads a Kiln model file into the seeds' CircleModelV2
(written as in the PyTorch course) with strict load_state_dict, runs it on the inputs of an
expectations file and prints its logits, comma-separated.

Usage: python3 check_circle_model.py MODEL.safetensors INPUTS.safetensors
"""
import sys

import torch
from torch import nn
from safetensors.torch import load_file


class CircleModelV2(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer_1 = nn.Linear(in_features=2, out_features=10)
        self.layer_2 = nn.Linear(in_features=10, out_features=10)
        self.layer_3 = nn.Linear(in_features=10, out_features=1)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.layer_3(self.relu(self.layer_2(self.relu(self.layer_1(x)))))


model = CircleModelV2()
model.load_state_dict(load_file(sys.argv[1]))  # strict: every key, shape and dtype must fit
model.eval()
with torch.inference_mode():
    logits = model(load_file(sys.argv[2])["input"]).squeeze(1)
print(",".join(repr(v) for v in logits.tolist()))
