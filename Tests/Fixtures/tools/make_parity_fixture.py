#!/usr/bin/env python3
"""Writes PyTorch parity fixtures in the format of Tests/Fixtures/parity/README.md.

Each fixture is one short training run of an nn.Sequential on one random batch, recorded with
PyTorch (float32, CPU). Run:  python3 Tests/Fixtures/tools/make_parity_fixture.py OUT_DIR
Needs torch and safetensors (pip install torch safetensors); not part of the build or of CI.
"""
import json
import sys

import torch
from safetensors.torch import save_file

CASES = {
    "mlp_gelu_leaky_nobias_ce_smoothing_sgd_nesterov": dict(
        layers=[{"type": "Linear", "in": 9, "out": 14}, {"type": "GELU"},
                {"type": "Linear", "in": 14, "out": 11, "bias": False}, {"type": "LeakyReLU", "slope": 0.2},
                {"type": "Linear", "in": 11, "out": 6}],
        loss={"type": "CrossEntropy", "label_smoothing": 0.1},
        optimizer={"type": "SGD", "lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3},
        batch=13),
    "mlp_bn_tanh_ce_adamw": dict(
        layers=[{"type": "Linear", "in": 10, "out": 17}, {"type": "BatchNorm1d", "features": 17, "eps": 1e-3, "momentum": 0.3},
                {"type": "Tanh"}, {"type": "Linear", "in": 17, "out": 4}],
        loss={"type": "CrossEntropy"},
        optimizer={"type": "AdamW", "lr": 3e-3, "betas": [0.8, 0.99], "eps": 1e-6, "weight_decay": 0.05},
        batch=21),
    "mlp_sigmoid_mse_sgd_dampening": dict(
        layers=[{"type": "Linear", "in": 5, "out": 8}, {"type": "Sigmoid"}, {"type": "Linear", "in": 8, "out": 3}],
        loss={"type": "MSE"},
        optimizer={"type": "SGD", "lr": 0.2, "momentum": 0.5, "dampening": 0.3},
        batch=7),
    "mlp_relu_bn_ce_rmsprop_adam_l2": dict(
        layers=[{"type": "Linear", "in": 12, "out": 16}, {"type": "ReLU"}, {"type": "BatchNorm1d", "features": 16},
                {"type": "Linear", "in": 16, "out": 5}],
        loss={"type": "CrossEntropy", "label_smoothing": 0.05},
        optimizer={"type": "Adam", "lr": 1e-2, "weight_decay": 1e-2},
        batch=31),
    "mlp_rmsprop_alpha": dict(
        layers=[{"type": "Linear", "in": 6, "out": 9}, {"type": "LeakyReLU", "slope": 0.05}, {"type": "Linear", "in": 9, "out": 4}],
        loss={"type": "CrossEntropy"},
        optimizer={"type": "RMSprop", "lr": 5e-3, "alpha": 0.9, "eps": 1e-6},
        batch=11),
    # Convolutional: input_shape [C, H, W]; strides, paddings, kernels 1/3/5, both poolings.
    "cnn_stride2_pad2_k5_nobias_tanh_avgpool_pad_nesterov": dict(
        input_shape=[2, 11, 9],
        layers=[{"type": "Conv2d", "in": 2, "out": 5, "kernel": 5, "stride": 2, "padding": 2, "bias": False},
                {"type": "Tanh"}, {"type": "AvgPool2d", "kernel": 3, "stride": 2, "padding": 1}, {"type": "Flatten"},
                {"type": "Linear", "in": 45, "out": 4}],
        loss={"type": "CrossEntropy"},
        optimizer={"type": "SGD", "lr": 0.05, "momentum": 0.9, "nesterov": True},
        batch=7),
    "cnn_two_convs_bn2d_maxpool3_gelu_adamw": dict(
        input_shape=[3, 13, 13],
        layers=[{"type": "Conv2d", "in": 3, "out": 8, "kernel": 3, "padding": 1, "bias": False}, {"type": "BatchNorm2d", "features": 8},
                {"type": "GELU"}, {"type": "MaxPool2d", "kernel": 3, "stride": 2, "padding": 1},
                {"type": "Conv2d", "in": 8, "out": 6, "kernel": 3, "bias": False}, {"type": "BatchNorm2d", "features": 6, "eps": 1e-3, "momentum": 0.2},
                {"type": "ReLU"}, {"type": "Flatten"}, {"type": "Linear", "in": 150, "out": 5}],
        loss={"type": "CrossEntropy", "label_smoothing": 0.1},
        optimizer={"type": "AdamW", "lr": 5e-3},
        batch=6),
    "cnn_k1_stride3_leaky_mse_rmsprop": dict(
        input_shape=[4, 10, 10],
        layers=[{"type": "Conv2d", "in": 4, "out": 3, "kernel": 1}, {"type": "LeakyReLU", "slope": 0.1},
                {"type": "Conv2d", "in": 3, "out": 2, "kernel": 3, "stride": 3}, {"type": "Sigmoid"},
                {"type": "Flatten"}, {"type": "Linear", "in": 18, "out": 3}],
        loss={"type": "MSE"},
        optimizer={"type": "RMSprop", "lr": 1e-2},
        batch=5),
    # A convolution's bias before batch norm has a gradient of exactly 0 in exact arithmetic, which
    # Adam turns into steps of ±lr from rounding noise: no fixture can pin those, so these have none.
    "cnn_mnist_like_relu_maxpool_adam": dict(
        input_shape=[1, 28, 28],
        layers=[{"type": "Conv2d", "in": 1, "out": 4, "kernel": 3, "padding": 1, "bias": False}, {"type": "BatchNorm2d", "features": 4},
                {"type": "ReLU"}, {"type": "MaxPool2d", "kernel": 2},
                {"type": "Conv2d", "in": 4, "out": 8, "kernel": 3, "padding": 1, "bias": False}, {"type": "BatchNorm2d", "features": 8},
                {"type": "ReLU"}, {"type": "MaxPool2d", "kernel": 2}, {"type": "Flatten"},
                {"type": "Linear", "in": 392, "out": 16}, {"type": "ReLU"}, {"type": "Linear", "in": 16, "out": 10}],
        loss={"type": "CrossEntropy"},
        optimizer={"type": "Adam", "lr": 1e-3},
        batch=9),
}


def build(layers):
    modules = []
    for spec in layers:
        t = spec["type"]
        if t == "Conv2d":
            modules.append(torch.nn.Conv2d(spec["in"], spec["out"], spec["kernel"], stride=spec.get("stride", 1),
                                           padding=spec.get("padding", 0), bias=spec.get("bias", True)))
        elif t == "MaxPool2d":
            modules.append(torch.nn.MaxPool2d(spec["kernel"], stride=spec.get("stride"), padding=spec.get("padding", 0)))
        elif t == "AvgPool2d":
            modules.append(torch.nn.AvgPool2d(spec["kernel"], stride=spec.get("stride"), padding=spec.get("padding", 0)))
        elif t == "BatchNorm2d":
            modules.append(torch.nn.BatchNorm2d(spec["features"], eps=spec.get("eps", 1e-5), momentum=spec.get("momentum", 0.1)))
        elif t == "Flatten":
            modules.append(torch.nn.Flatten())
        elif t == "Linear":
            modules.append(torch.nn.Linear(spec["in"], spec["out"], bias=spec.get("bias", True)))
        elif t == "BatchNorm1d":
            modules.append(torch.nn.BatchNorm1d(spec["features"], eps=spec.get("eps", 1e-5), momentum=spec.get("momentum", 0.1)))
        elif t == "ReLU":
            modules.append(torch.nn.ReLU())
        elif t == "LeakyReLU":
            modules.append(torch.nn.LeakyReLU(spec.get("slope", 0.01)))
        elif t == "Sigmoid":
            modules.append(torch.nn.Sigmoid())
        elif t == "Tanh":
            modules.append(torch.nn.Tanh())
        elif t == "GELU":
            modules.append(torch.nn.GELU())
    return torch.nn.Sequential(*modules)


def optimizer_for(spec, params):
    kw = {k: v for k, v in spec.items() if k not in ("type",)}
    if "betas" in kw:
        kw["betas"] = tuple(kw["betas"])
    return {"SGD": torch.optim.SGD, "Adam": torch.optim.Adam, "AdamW": torch.optim.AdamW,
            "RMSprop": torch.optim.RMSprop}[spec["type"]](params, **kw)


def make(name, case, folder, steps=3):
    torch.manual_seed(abs(hash(name)) % 1000)
    model = build(case["layers"])
    out_features = [l for l in case["layers"] if l["type"] == "Linear"][-1]["out"]
    shape = case.get("input_shape", [case["layers"][0]["in"]])
    x = torch.randn(case["batch"], *shape)
    if case["loss"]["type"] == "MSE":
        target = torch.randn(case["batch"], out_features)
        loss_fn = torch.nn.MSELoss()
    else:
        target = torch.randint(0, out_features, (case["batch"],))
        loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=case["loss"].get("label_smoothing", 0.0))
    tensors = {"input": x, "target": target}
    for k, v in model.state_dict().items():
        if k.endswith("num_batches_tracked"):
            continue
        tensors[("buffer." if "running" in k else "param.") + k] = v.clone()
    opt = optimizer_for(case["optimizer"], model.parameters())
    model.train()
    for step in range(steps):
        logits = model(x)
        loss = loss_fn(logits, target)
        if step == 0:
            tensors["out.logits"] = logits.detach().clone()
            tensors["out.loss"] = loss.detach().reshape(1).clone()
        else:
            tensors[f"step{step}.loss"] = loss.detach().reshape(1).clone()
        opt.zero_grad()
        loss.backward()
        if step == 0:
            for k, p in model.named_parameters():
                tensors["grad." + k] = p.grad.detach().clone()
        opt.step()
        for k, v in model.state_dict().items():
            if k.endswith("num_batches_tracked"):
                continue
            tensors[f"step{step + 1}." + ("buffer." if "running" in k else "param.") + k] = v.detach().clone()
    model.eval()
    with torch.no_grad():
        tensors["eval.logits"] = model(x).clone()
    spec = {"layers": case["layers"], "loss": case["loss"], "optimizer": case["optimizer"], "steps": steps,
            **({"input_shape": case["input_shape"]} if "input_shape" in case else {}),
            "tolerance": {"forward": {"rtol": 1e-4, "atol": 1e-5}, "grad": {"rtol": 1e-3, "atol": 1e-5},
                          "step": {"rtol": 1e-3, "atol": 1e-4}}}
    save_file({k: v.contiguous() for k, v in tensors.items()}, f"{folder}/{name}.safetensors",
              metadata={"spec": json.dumps(spec)})


if __name__ == "__main__":
    folder = sys.argv[1] if len(sys.argv) > 1 else "."
    for name, case in CASES.items():
        make(name, case, folder)
        print("wrote", name)
