#!/usr/bin/env python3
"""Golden bounds for the verifier on residual networks, from auto_LiRPA.

The verifier folds a model into a chain of affine layers and ReLUs; a value read after a ReLU
layer (a skip connection) rides through that layer as extra rows (verify/src/network.cpp). That
is an exact rewriting of the network, so its IBP and CROWN bounds must equal those of an
implementation that propagates over the graph itself: auto_LiRPA (Xu et al., NeurIPS 2020; the
bound library of alpha-beta-CROWN), which back-substitutes through both branches of an Add.

Models (seeded, float32 weights, exported by PyTorch's default `torch.onnx.export` exporter as a
user would):
  resnet_small.onnx  torchvision-style ResNet on 1x8x8 images: Conv3x3(1->4)+BN+ReLU stem, a basic
                     block (identity shortcut), a downsampling block (stride 2, 1x1 Conv+BN
                     projection shortcut), global average pooling, Linear(8->3); BN in eval mode,
                     folded into the convolutions in float32 before the export (fold_bn)
  preact_mlp.onnx    pre-activation residual MLP on 6 features: h = Linear(6->8) (no ReLU), two
                     blocks h + Linear(ReLU(Linear(ReLU(h)))), ReLU, Linear(8->3): the first skip
                     reads an affine map of the model input, the second a sum that is not a ReLU output
  leaky_mlp.onnx     Linear(5->10), LeakyReLU(0.1), Linear(10->10), LeakyReLU(0.3), Linear(10->3)

For a few inputs and L-inf radii (boxes clipped to [0, 1]; for preact_mlp also boxes around points in
[-1, 1]^6 where inputs change sign, preact_mlp_signed_lirpa.json) it records auto_LiRPA's IBP and CROWN
bounds of the outputs and CROWN lower bounds of the margins y_label - y_j, in float64 (the models
rebuilt in float64 from the same weights), with every intermediate neuron bounded by
back-substitution (sparse_intermediate_bounds off, conv_mode matrix): what crown_bounds(...,
refine_stable=true, intersect_ibp=false) computes. auto_LiRPA 0.3 is set up as described in
tools/verify_maxpool_golden.py; then, from the repository root:

    PYTHONPATH=.lirpa ${PYTHON:-.venv/bin/python} tools/verify_residual_golden.py

It writes tests/fixtures/verify/{resnet_small,preact_mlp,leaky_mlp}.onnx and *_lirpa.json. The ONNX files are
re-exported on every run (same weights, same values; the exporter's node names may change).
"""
import json
import os

import numpy as np
import torch
import torch.nn as nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "verify")


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        identity = x
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return torch.relu(out + identity)


class ResNetSmall(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(4)
        self.layer1 = BasicBlock(4, 4, 1)
        self.layer2 = BasicBlock(4, 8, 2)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.layer2(self.layer1(x))
        x = x.mean((2, 3))  # global average pooling (ReduceMean, as AdaptiveAvgPool2d(1) + flatten)
        return self.fc(x)


class PreactMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(6, 8)
        self.blocks = nn.ModuleList([nn.Sequential(nn.ReLU(), nn.Linear(8, 12), nn.ReLU(), nn.Linear(12, 8))
                                     for _ in range(2)])
        self.out = nn.Linear(8, 3)

    def forward(self, x):
        h = self.inp(x)
        for b in self.blocks:
            h = h + b(h)
        return self.out(torch.relu(h))


def fold_bn(model):
    """Each Conv followed by a BatchNorm2d becomes one Conv with a bias, weights rounded to float32
    (what the exporter does anyway): the ONNX file and the float64 model auto_LiRPA bounds then hold
    the same weights, so the goldens compare arithmetic, not two roundings of the folding."""
    def fold(conv, bn):
        k = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        c = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                      padding=conv.padding, bias=True)
        with torch.no_grad():
            c.weight.copy_(conv.weight * k[:, None, None, None])
            c.bias.copy_(bn.bias - k * bn.running_mean)
        return c
    model.conv1, model.bn1 = fold(model.conv1, model.bn1), nn.Identity()
    for blk in (model.layer1, model.layer2):
        blk.conv1, blk.bn1 = fold(blk.conv1, blk.bn1), nn.Identity()
        blk.conv2, blk.bn2 = fold(blk.conv2, blk.bn2), nn.Identity()
        if blk.downsample is not None:
            blk.downsample = fold(blk.downsample[0], blk.downsample[1])
    return model


def randomise_bn(model, gen):
    """Eval-mode statistics that are not the identity (a trained network's BN)."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            with torch.no_grad():
                m.weight.copy_(torch.rand(c, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(c, generator=gen) * 0.2)
                m.running_mean.copy_(torch.randn(c, generator=gen) * 0.2)
                m.running_var.copy_(torch.rand(c, generator=gen) + 0.5)


class LeakyMLP(nn.Module):
    """LeakyReLU (the verifier folds it as a x + (1 - a) relu(x), x riding through the layer as a skip)."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(5, 10), nn.LeakyReLU(0.1), nn.Linear(10, 10), nn.LeakyReLU(0.3),
                                 nn.Linear(10, 3))

    def forward(self, x):
        return self.net(x)


def patch_lirpa():
    """auto_LiRPA 0.3 overrides nn.Module._named_members without the remove_duplicate argument newer
    torch passes (parameters() on a BoundedModule then fails); accept and drop it. No bound changes."""
    from auto_LiRPA import bound_general

    orig = bound_general.BoundedModule._named_members
    if getattr(orig, "_mlaudit_patched", False):
        return

    def named_members(self, get_members_fn, prefix="", recurse=True, remove_duplicate=True):
        return orig(self, get_members_fn, prefix=prefix, recurse=recurse)

    named_members._mlaudit_patched = True
    bound_general.BoundedModule._named_members = named_members


def bound_cases(model, xs, eps_list, classes, clip=(0.0, 1.0)):
    from auto_LiRPA import BoundedModule, BoundedTensor, PerturbationLpNorm

    patch_lirpa()

    opts = {"sparse_intermediate_bounds": False, "sparse_conv_intermediate_bounds": False, "conv_mode": "matrix"}
    cases = []
    for x in xs:
        xt = torch.tensor(x[None])
        with torch.no_grad():
            y = model(xt)[0]
        label = int(torch.argmax(y))
        for eps in eps_list:
            bm = BoundedModule(model, torch.zeros_like(xt), bound_opts=opts)
            lo, hi = torch.clamp(xt - eps, *clip), torch.clamp(xt + eps, *clip)
            bx = BoundedTensor(xt, PerturbationLpNorm(norm=np.inf, eps=eps, x_L=lo, x_U=hi))
            ibp_l, ibp_u = bm.compute_bounds(x=(bx,), method="IBP")
            cr_l, cr_u = bm.compute_bounds(x=(bx,), method="CROWN")
            others = [j for j in range(classes) if j != label]
            C = torch.zeros(1, classes - 1, classes)
            for r, j in enumerate(others):
                C[0, r, label], C[0, r, j] = 1, -1
            m_l, _ = bm.compute_bounds(x=(bx,), C=C, method="CROWN", bound_upper=False)
            cases.append({"input": x.reshape(-1).tolist(), "label": label, "eps": eps,
                          "box_lower": lo.reshape(-1).tolist(), "box_upper": hi.reshape(-1).tolist(),
                          "output": y.tolist(), "ibp_lower": ibp_l[0].tolist(), "ibp_upper": ibp_u[0].tolist(),
                          "crown_lower": cr_l[0].tolist(), "crown_upper": cr_u[0].tolist(),
                          "margin_classes": others, "margin_crown_lower": m_l[0].tolist()})
    return cases


def make(name, model, example, xs, eps_list, classes, signed=None):
    model.eval()
    path = os.path.join(OUT, name + ".onnx")
    torch.onnx.export(model, (example,), path, input_names=["input"], output_names=["logits"])
    import onnx
    m = onnx.load(path)  # one self-contained file (the exporter may write the weights beside it)
    onnx.save(m, path, save_as_external_data=False)
    if os.path.exists(path + ".data"):
        os.remove(path + ".data")
    ops = sorted({n.op_type for n in m.graph.node})
    model64 = model.double()
    cases = bound_cases(model64, xs, eps_list, classes)
    with open(os.path.join(OUT, name + "_lirpa.json"), "w") as f:
        json.dump({"source": "auto_LiRPA 0.3 (float64), tools/verify_residual_golden.py", "model": name + ".onnx",
                   "exporter": f"torch {torch.__version__} torch.onnx.export defaults, opset "
                               f"{m.opset_import[0].version}", "ops": ops, "cases": cases}, f, indent=1)
    if signed is not None:
        # Boxes where the inputs change sign (standardised tabular features): the skip's copies of
        # the input are exact only after the verifier shifts them by the box's lower bound.
        xs2, eps2 = signed
        cases2 = bound_cases(model64, xs2, eps2, classes, clip=(-10.0, 10.0))
        with open(os.path.join(OUT, name + "_signed_lirpa.json"), "w") as f:
            json.dump({"source": "auto_LiRPA 0.3 (float64), tools/verify_residual_golden.py", "model": name + ".onnx",
                       "cases": cases2}, f, indent=1)
        for c in cases2:
            print(" signed eps", c["eps"], "crown", np.round(c["crown_lower"], 3))
    print(name, "ops", ops)
    for c in cases:
        print(" eps", c["eps"], "ibp", np.round(c["ibp_lower"], 3), "crown", np.round(c["crown_lower"], 3),
              "margins", np.round(c["margin_crown_lower"], 3))


def main():
    gen = torch.Generator().manual_seed(21)
    torch.manual_seed(21)
    resnet = ResNetSmall()
    randomise_bn(resnet, gen)
    resnet = fold_bn(resnet.eval())
    rng = np.random.default_rng(21)
    make("resnet_small", resnet, torch.zeros(1, 1, 8, 8), rng.uniform(0, 1, size=(2, 1, 8, 8)), (0.01, 0.03), 3)
    torch.manual_seed(22)
    mlp = PreactMLP()
    make("preact_mlp", mlp, torch.zeros(1, 6), rng.uniform(0.1, 0.9, size=(3, 6)), (0.02, 0.08), 3,
         signed=(rng.uniform(-1, 1, size=(2, 6)), (0.1, 0.4)))
    torch.manual_seed(23)
    make("leaky_mlp", LeakyMLP(), torch.zeros(1, 5), rng.uniform(0.2, 0.8, size=(3, 5)), (0.05, 0.2), 3)


if __name__ == "__main__":
    main()
