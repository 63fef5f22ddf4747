#!/usr/bin/env python3
"""Golden bounds for the verifier's max-pool relaxation, from auto_LiRPA.

auto_LiRPA (Xu et al., NeurIPS 2020; the bound library of alpha-beta-CROWN) is
the independent implementation: its BoundMaxPool is the relaxation our
verify/src/bounds.cpp follows. The only PyPI release (0.3) pins torch < 1.13,
so this script runs it unpacked beside the venv's newer torch with three
compatibility patches (none touches a bound computation):

    .venv/bin/pip download --no-deps auto_LiRPA==0.3 appdirs -d /tmp/whl
    mkdir -p .lirpa && cd .lirpa && for w in /tmp/whl/*.whl; do unzip -q -o $w; done
    sed -i 's/from numpy.lib.arraysetops import isin/from numpy import isin/' auto_LiRPA/operators/base.py
    sed -i 's/^from torch.onnx.symbolic_helper import _set_opset_version/from torch.onnx._internal.torchscript_exporter._globals import GLOBALS as _G\\ndef _set_opset_version(v): _G.export_onnx_opset_version = v/' auto_LiRPA/parse_graph.py
    sed -i 's/attrs = {k: n\\[k\\] for k in n.attributeNames()}/attrs = {k: getattr(n, n.kindOf(k))(k) for k in n.attributeNames()}/' auto_LiRPA/parse_graph.py

then, from the repository root:

    PYTHONPATH=.lirpa ${PYTHON:-.venv/bin/python} tools/verify_maxpool_golden.py

It writes tests/fixtures/verify/fmnist_cnn_lirpa.json (the same bounds for
the bundled models/fmnist_cnn.onnx on the first two demo images, rebuilt in
PyTorch from the ONNX initializers, in auto_LiRPA's default patches mode; that
mode breaks ties between equal lower bounds inside a pooling window
differently from PyTorch's first-index rule, so the test compares CROWN there
with a stated tolerance) and tests/fixtures/verify/maxpool_cnn.onnx (a seeded random CNN,
conv-relu-maxpool-conv-relu-maxpool-gemm-relu-gemm on 1x10x10 inputs, float32
weights) and tests/fixtures/verify/maxpool_cnn_lirpa.json: for a few inputs
and L-inf radii (clipped to [0, 1]), auto_LiRPA's IBP and CROWN bounds of the
logits and CROWN lower bounds of the margins y_label - y_j, all in float64.
CROWN is run with every intermediate neuron bounded by back-substitution
(sparse_intermediate_bounds off), which is what crown_bounds(...,
refine_stable=true, intersect_ibp=false) computes.
"""
import json
import os

import numpy as np
import torch
import torch.nn as nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "verify")


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(4, 6, 3, padding=1)
        self.pool2 = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(6 * 2 * 2, 16)
        self.fc2 = nn.Linear(16, 5)

    def forward(self, x):
        x = self.pool1(torch.relu(self.conv1(x)))
        x = self.pool2(torch.relu(self.conv2(x)))
        return self.fc2(torch.relu(self.fc1(torch.flatten(x, 1))))


class FmnistCNN(nn.Module):
    """models/fmnist_cnn.onnx: conv(16)-relu-maxpool-conv(32)-relu-maxpool-fc(64)-relu-fc(10)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc1 = nn.Linear(1568, 64)
        self.fc2 = nn.Linear(64, 10)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x):
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        return self.fc2(torch.relu(self.fc1(torch.flatten(x, 1))))


def bound_cases(model, xs, eps_list, classes, opts):
    from auto_LiRPA import BoundedModule, BoundedTensor, PerturbationLpNorm

    cases = []
    for x in xs:
        xt = torch.tensor(x[None])
        with torch.no_grad():
            y = model(xt)[0]
        label = int(torch.argmax(y))
        for eps in eps_list:
            bm = BoundedModule(model, torch.zeros_like(xt), bound_opts=opts)
            lo = torch.clamp(xt - eps, 0, 1)
            hi = torch.clamp(xt + eps, 0, 1)
            bx = BoundedTensor(xt, PerturbationLpNorm(norm=np.inf, eps=eps, x_L=lo, x_U=hi))
            ibp_l, ibp_u = bm.compute_bounds(x=(bx,), method="IBP")
            cr_l, cr_u = bm.compute_bounds(x=(bx,), method="CROWN")
            others = [j for j in range(classes) if j != label]
            C = torch.zeros(1, classes - 1, classes)
            for r, j in enumerate(others):
                C[0, r, label] = 1
                C[0, r, j] = -1
            m_l, _ = bm.compute_bounds(x=(bx,), C=C, method="CROWN", bound_upper=False)
            cases.append({
                "input": x.reshape(-1).tolist(), "label": label, "eps": eps,
                "box_lower": lo.reshape(-1).tolist(), "box_upper": hi.reshape(-1).tolist(),
                "output": y.tolist(),
                "ibp_lower": ibp_l[0].tolist(), "ibp_upper": ibp_u[0].tolist(),
                "crown_lower": cr_l[0].tolist(), "crown_upper": cr_u[0].tolist(),
                "margin_classes": others, "margin_crown_lower": m_l[0].tolist(),
            })
    return cases


def fmnist_cases():
    import onnx
    from onnx import numpy_helper

    m = onnx.load(os.path.join(ROOT, "models", "fmnist_cnn.onnx"))
    weights = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    model = FmnistCNN().double()
    params = dict(model.named_parameters())
    with torch.no_grad():
        for k, v in weights.items():
            params[k].copy_(torch.tensor(v, dtype=torch.float64))
    xs = np.load(os.path.join(ROOT, "datasets", "demo", "fmnist_x.npy"))[:2].astype(np.float64)
    # Default patches mode with every intermediate neuron bounded (no sparse
    # unstable-only selection): plain CROWN, as crown_bounds(refine_stable, !intersect_ibp).
    opts = {"sparse_intermediate_bounds": False, "sparse_conv_intermediate_bounds": False}
    cases = bound_cases(model, xs, (0.005, 0.01), 10, opts)
    with open(os.path.join(OUT, "fmnist_cnn_lirpa.json"), "w") as f:
        json.dump({"source": "auto_LiRPA 0.3 (float64), tools/verify_maxpool_golden.py",
                   "model": "models/fmnist_cnn.onnx", "data": "datasets/demo/fmnist_x.npy[:2]",
                   "cases": [{k: v for k, v in c.items() if k not in ("input", "box_lower", "box_upper")} for c in cases]},
                  f, indent=1)
    for c in cases:
        print("fmnist", c["eps"], "crown", np.round(c["crown_lower"], 3), "margins", np.round(c["margin_crown_lower"], 3))


def main():
    from auto_LiRPA import BoundedModule, BoundedTensor, PerturbationLpNorm

    torch.manual_seed(7)
    model = SmallCNN()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.5)  # larger weights: more unstable ReLUs and inexact max pools
    model.eval()
    onnx_path = os.path.join(OUT, "maxpool_cnn.onnx")
    torch.onnx.export(model, torch.zeros(1, 1, 10, 10), onnx_path, input_names=["input"], output_names=["logits"],
                      opset_version=13, dynamo=False)

    torch.set_default_dtype(torch.float64)
    model = model.double()
    rng = np.random.default_rng(11)
    xs = rng.uniform(0, 1, size=(3, 1, 10, 10))
    cases = []
    for idx, x in enumerate(xs):
        xt = torch.tensor(x[None])
        with torch.no_grad():
            y = model(xt)[0]
        label = int(torch.argmax(y))
        for eps in (0.01, 0.03):
            bm = BoundedModule(model, torch.zeros_like(xt),
                               bound_opts={"sparse_intermediate_bounds": False,
                                           "sparse_conv_intermediate_bounds": False,
                                           "conv_mode": "matrix"})
            lo = torch.clamp(xt - eps, 0, 1)
            hi = torch.clamp(xt + eps, 0, 1)
            ptb = PerturbationLpNorm(norm=np.inf, eps=eps, x_L=lo, x_U=hi)
            bx = BoundedTensor(xt, ptb)
            ibp_l, ibp_u = bm.compute_bounds(x=(bx,), method="IBP")
            cr_l, cr_u = bm.compute_bounds(x=(bx,), method="CROWN")
            C = torch.zeros(1, 4, 5)
            others = [j for j in range(5) if j != label]
            for r, j in enumerate(others):
                C[0, r, label] = 1
                C[0, r, j] = -1
            m_l, _ = bm.compute_bounds(x=(bx,), C=C, method="CROWN", bound_upper=False)
            cases.append({
                "input": x.reshape(-1).tolist(), "label": label, "eps": eps,
                "box_lower": lo.reshape(-1).tolist(), "box_upper": hi.reshape(-1).tolist(),
                "output": y.tolist(),
                "ibp_lower": ibp_l[0].tolist(), "ibp_upper": ibp_u[0].tolist(),
                "crown_lower": cr_l[0].tolist(), "crown_upper": cr_u[0].tolist(),
                "margin_classes": others, "margin_crown_lower": m_l[0].tolist(),
            })
    with open(os.path.join(OUT, "maxpool_cnn_lirpa.json"), "w") as f:
        json.dump({"source": "auto_LiRPA 0.3 (float64), tools/verify_maxpool_golden.py", "model": "maxpool_cnn.onnx",
                   "cases": cases}, f, indent=1)
    print("wrote", onnx_path, "and maxpool_cnn_lirpa.json with", len(cases), "cases")
    for c in cases:
        print(c["eps"], "ibp", np.round(c["ibp_lower"], 3), "crown", np.round(c["crown_lower"], 3),
              "margins", np.round(c["margin_crown_lower"], 3))


if __name__ == "__main__":
    main()
    fmnist_cases()
