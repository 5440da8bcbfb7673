#!/usr/bin/env python3
"""Kiln → PyTorch: loads a Kiln model file into the equivalent nn.Sequential with
safetensors.torch.load_file + load_state_dict (strict), runs it in eval mode on the inputs of an
expectations file and prints the predicted classes, comma-separated.

The architecture comes from the file's own metadata (`kiln_model`, the layer list Kiln writes), so
any model Kiln trained loads; a file without it is the MLP of HIDDEN (784-HIDDEN-10, BatchNorm1d
with `batchnorm`).

Usage: python3 check_kiln_model.py MODEL.safetensors INPUTS.safetensors [HIDDEN [batchnorm]]
"""
import json
import sys

import torch
from safetensors import safe_open
from safetensors.torch import load_file


def pair(v):
    return tuple(v) if isinstance(v, list) else v


def layer(spec):
    t = spec["type"]
    if t == "Linear":
        return torch.nn.Linear(spec["in"], spec["out"], bias=spec.get("bias", True))
    if t == "Conv2d":
        return torch.nn.Conv2d(spec["in"], spec["out"], pair(spec["kernel"]), stride=pair(spec.get("stride", 1)),
                               padding=pair(spec.get("padding", 0)), dilation=pair(spec.get("dilation", 1)),
                               bias=spec.get("bias", True))
    if t == "MaxPool2d":
        return torch.nn.MaxPool2d(pair(spec["kernel"]), stride=pair(spec.get("stride", spec["kernel"])),
                                  padding=pair(spec.get("padding", 0)))
    if t == "AvgPool2d":
        return torch.nn.AvgPool2d(pair(spec["kernel"]), stride=pair(spec.get("stride", spec["kernel"])),
                                  padding=pair(spec.get("padding", 0)))
    if t == "AdaptiveAvgPool2d":
        return torch.nn.AdaptiveAvgPool2d(spec.get("output_size", 1))
    if t in ("BatchNorm1d", "BatchNorm2d"):
        return getattr(torch.nn, t)(spec["features"], eps=spec.get("eps", 1e-5), momentum=spec.get("momentum", 0.1))
    if t == "Flatten":
        return torch.nn.Flatten(spec.get("start_dim", 1), spec.get("end_dim", -1))
    if t == "Unflatten":
        return torch.nn.Unflatten(spec.get("dim", 1), tuple(spec["shape"]))
    if t in ("Dropout", "Dropout2d"):
        return getattr(torch.nn, t)(spec.get("p", 0.5))
    if t == "LeakyReLU":
        return torch.nn.LeakyReLU(spec.get("slope", 0.01))
    if t in ("Softmax", "LogSoftmax"):
        return getattr(torch.nn, t)(dim=1)
    return getattr(torch.nn, t)()  # ReLU, GELU, Tanh, Sigmoid, Identity


model_path, inputs_path = sys.argv[1], sys.argv[2]
with safe_open(model_path, "pt") as f:
    metadata = f.metadata() or {}
if "kiln_model" in metadata:
    described = json.loads(metadata["kiln_model"])
    layers = [layer(s) for s in (described["layers"] if isinstance(described, dict) else described)]
else:
    hidden = int(sys.argv[3])
    batchnorm = len(sys.argv) > 4 and sys.argv[4] == "batchnorm"
    layers = [torch.nn.Linear(784, hidden)] + ([torch.nn.BatchNorm1d(hidden)] if batchnorm else []) + \
             [torch.nn.ReLU(), torch.nn.Linear(hidden, 10)]
model = torch.nn.Sequential(*layers)
model.load_state_dict(load_file(model_path))  # strict: every key, shape and dtype must fit
model.eval()
inputs = load_file(inputs_path)["input"]
with torch.no_grad():
    classes = model(inputs).argmax(dim=1)
print(",".join(str(c) for c in classes.tolist()))
