"""DeepLIFT (rescale rule) goldens for tests/explain from Captum's DeepLift.

Run from the repository root (needs captum: .venv/bin/pip install captum):

    ${PYTHON:-.venv/bin/python} tools/explain_deeplift_goldens.py

Captum's DeepLift (Shrikumar et al. 2017, rescale rule; multiply_by_inputs=True, eps=1e-10)
overrides the gradient of nn.ReLU / nn.MaxPool2d *modules* only, so the bundled models are
rebuilt here from the ONNX initializers (tools/mlaudit_torch.py) into twins whose every
nonlinearity is its own module (the shared `self.pool` and the functional torch.relu of the
training definitions would be treated as linear by Captum).

Captum is called one sample at a time (its MaxPool fallback takes `grad_input[0]`, the first row
of the batch, for every row, so batched calls mix rows). On the CNN Captum's hooks also hand a
ReLU followed by a MaxPool the ordinary gradient of its output rather than the pool's DeepLIFT
multipliers, so its convergence deltas are not 0 there: mlaudit reproduces this with
DeepLiftOptions::captum_compat (its default follows the chain rule of multipliers).

Writes to tests/fixtures/explain/:
- deeplift_fmnist.npy: first 4 images of datasets/demo/fmnist_x.npy, target = predicted
  class, zero baseline (Captum's default).
- deeplift_fmnist_ref.npy: the same images against a non-zero baseline (half the image plus half
  the mean of the first 16 demo images, written as deeplift_fmnist_baseline.npy), so the
  MaxPool rule's reference-dominated branch (max(out, out_ref) = out_ref) is exercised.
- deeplift_credit.npy: first 6 rows of datasets/demo/credit_x.npy, target 1, baseline = the
  mean of the 100 rows of credit_background.npy.
- deeplift.json: targets and Captum's convergence deltas (sum(attr) - (f(x) - f(baseline))).
Everything runs in float32 on the CPU with torch.set_num_threads(2).
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import mlaudit_torch  # noqa: E402

from captum.attr import DeepLift  # noqa: E402

OUT = os.path.join(ROOT, "tests", "fixtures", "explain")


class CnnModules(nn.Module):
    """FmnistCNN with one module per nonlinearity (Captum hooks modules, not functions)."""

    def __init__(self, src):
        super().__init__()
        self.conv1, self.conv2, self.fc1, self.fc2 = src.conv1, src.conv2, src.fc1, src.fc2
        self.relu1, self.relu2, self.relu3 = nn.ReLU(), nn.ReLU(), nn.ReLU()
        self.pool1, self.pool2 = nn.MaxPool2d(2), nn.MaxPool2d(2)
        self.flatten = nn.Flatten()

    def forward(self, x):
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        return self.fc2(self.relu3(self.fc1(self.flatten(x))))


class MlpModules(nn.Module):
    """CreditMLP with one nn.ReLU module per activation."""

    def __init__(self, src):
        super().__init__()
        self.register_buffer("mean", src.mean.clone())
        self.register_buffer("std", src.std.clone())
        self.fc1, self.fc2, self.fc3 = src.fc1, src.fc2, src.fc3
        self.relu1, self.relu2 = nn.ReLU(), nn.ReLU()

    def forward(self, x):
        x = (x - self.mean) / self.std
        return self.fc3(self.relu2(self.fc2(self.relu1(self.fc1(x)))))


def per_sample(model, x, baselines, targets):
    """Captum DeepLift one row at a time: (attributions, convergence deltas)."""
    attrs, deltas = [], []
    for i in range(x.shape[0]):
        t = targets if isinstance(targets, int) else targets[i:i + 1]
        a, d = DeepLift(model).attribute(x[i:i + 1], baselines=baselines[i:i + 1], target=t,
                                         return_convergence_delta=True)
        attrs.append(a.detach())
        deltas.append(float(d[0]))
    return torch.cat(attrs).numpy(), deltas


def save(name, arr):
    np.save(os.path.join(OUT, name), np.ascontiguousarray(arr))


def main():
    torch.set_num_threads(2)
    os.makedirs(OUT, exist_ok=True)
    meta = {"generator": "tools/explain_deeplift_goldens.py", "captum": __import__("captum").__version__,
            "torch": torch.__version__}

    base = mlaudit_torch.cnn_from_onnx(os.path.join(ROOT, "models", "fmnist_cnn.onnx"))
    cnn = CnnModules(base).eval()
    demo = np.load(os.path.join(ROOT, "datasets", "demo", "fmnist_x.npy")).astype(np.float32)
    x = torch.from_numpy(demo[:4])
    with torch.no_grad():
        assert torch.allclose(cnn(x), base(x))
        targets = cnn(x).argmax(dim=1)
    meta["fmnist_targets"] = targets.tolist()
    attr, delta = per_sample(cnn, x, torch.zeros_like(x), targets)
    save("deeplift_fmnist.npy", attr)
    meta["deeplift_fmnist_delta"] = delta

    # Non-zero baseline: half the input plus half the mean image of 16 demo images.
    ref = (0.5 * demo[:4] + 0.5 * demo[:16].mean(axis=0, keepdims=True)).astype(np.float32)
    save("deeplift_fmnist_baseline.npy", ref)
    attr, delta = per_sample(cnn, x, torch.from_numpy(ref), targets)
    save("deeplift_fmnist_ref.npy", attr)
    meta["deeplift_fmnist_ref_delta"] = delta

    mlp = MlpModules(mlaudit_torch.mlp_from_onnx(os.path.join(ROOT, "models", "credit_mlp.onnx"))).eval()
    cx = torch.from_numpy(np.load(os.path.join(ROOT, "datasets", "demo", "credit_x.npy"))[:6].astype(np.float32))
    bg = np.load(os.path.join(ROOT, "datasets", "demo", "credit_background.npy")).astype(np.float32)
    mean = torch.from_numpy(np.repeat(bg.mean(axis=0, keepdims=True), cx.shape[0], axis=0))
    attr, delta = per_sample(mlp, cx, mean, 1)
    save("deeplift_credit.npy", attr)
    meta["deeplift_credit_delta"] = delta

    with open(os.path.join(OUT, "deeplift.json"), "w") as fh:
        json.dump(meta, fh, indent=2)
        fh.write("\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
