#!/usr/bin/env python3
"""Kiln → PyTorch: loads a Kiln model file into the equivalent nn.Sequential with
safetensors.torch.load_file + load_state_dict (strict), runs it in eval mode on the inputs of an
expectations file and prints the predicted classes, comma-separated.

Usage: python3 check_kiln_model.py MODEL.safetensors INPUTS.safetensors HIDDEN [batchnorm]
"""
import sys

import torch
from safetensors.torch import load_file

model_path, inputs_path, hidden = sys.argv[1], sys.argv[2], int(sys.argv[3])
batchnorm = len(sys.argv) > 4 and sys.argv[4] == "batchnorm"
layers = [torch.nn.Linear(784, hidden)] + ([torch.nn.BatchNorm1d(hidden)] if batchnorm else []) + \
         [torch.nn.ReLU(), torch.nn.Linear(hidden, 10)]
model = torch.nn.Sequential(*layers)
model.load_state_dict(load_file(model_path))  # strict: every key, shape and dtype must fit
model.eval()
with torch.no_grad():
    classes = model(load_file(inputs_path)["input"]).argmax(dim=1)
print(",".join(str(c) for c in classes.tolist()))
