"""Train the privacy module's test models and write their member/non-member splits.

Run from the repository root (about 6 CPU-minutes in all: ~1.5 for --part membership,
~4.5 for --part backdoor; wall time grows when the 2 cores are shared):

    ${PYTHON:-.venv/bin/python} tools/privacy_train.py [--part all|membership|backdoor]

Needs torch, numpy, onnx, onnxruntime and the Debian package `dataset-fashion-mnist`
(/usr/share/datasets/fashion-mnist/*.gz). Everything is seeded, so a rerun gives the
same splits (weights may differ in the last bits across torch versions).

Writes
  models/privacy/overfit_mlp.onnx          deliberately overfit MLP, input "input" float [N,196]
                                            (Fashion-MNIST 2x2 average-pooled to 14x14, flattened,
                                            in [0,1]), output "logits" [N,10]; trained on 500 images
                                            for 300 full-batch epochs (train acc 1.0, test acc ~0.75)
  models/privacy/overfit_refs/ref_{0..3}.onnx  reference models for offline LiRA, same recipe,
                                            each on its own 250 images disjoint from every target
  datasets/privacy/overfit_{members,nonmembers}_{x,y}.npy   the 250 training images (members) and
                                            500 never-seen training-split images (non-members)
  models/privacy/backdoor_cnn.onnx         small CNN on 10,000 Fashion-MNIST images, 10 % of them
                                            poisoned: 3x3 white patch in the bottom-right corner,
                                            label set to class 0 (Gu et al. 2017 BadNets recipe)
  models/privacy/clean_cnn.onnx            its clean twin: same seed, data order and schedule, no poison
  datasets/privacy/backdoor_clean_{x,y}.npy       100 clean test images (Neural Cleanse / STRIP pool)
  datasets/privacy/backdoor_triggered_x.npy       20 test images of classes != 0 with the trigger
  datasets/privacy/backdoor_heldout_{x,y}.npy     100 further clean test images (STRIP suspects)
  datasets/privacy/train_report.json       accuracies and attack success rates
"""
import argparse
import inspect
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mlaudit_torch import read_idx_gz  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FMNIST_DIR = "/usr/share/datasets/fashion-mnist"
SEED = 20261127
N_MEMBERS = 250
N_NONMEMBERS = 500
N_REFS = 4
TARGET_CLASS = 0
POISON_RATE = 0.10


class OverfitMLP(nn.Module):
    """Gemm(196->128)-ReLU-Gemm(128->10)."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(196, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


class SmallCNN(nn.Module):
    """Conv(1->8,3x3,p1)-ReLU-MaxPool2-Conv(8->16,3x3,p1)-ReLU-MaxPool2-Flatten-Gemm(784->64)-ReLU-Gemm(64->10)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(16 * 7 * 7, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


def export_onnx(model, example, path):
    """opset 13, TorchScript exporter, dynamic batch, checked with onnx.checker."""
    kwargs = dict(input_names=["input"], output_names=["logits"], opset_version=13,
                  dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}}, do_constant_folding=True)
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    model.eval()
    torch.onnx.export(model, example, tmp, **kwargs)
    onnx.checker.check_model(onnx.load(tmp), full_check=True)
    os.replace(tmp, path)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    with torch.no_grad():
        ref = model(example).numpy()
    diff = float(np.abs(sess.run(["logits"], {"input": example.numpy()})[0] - ref).max())
    if diff > 1e-4:
        raise SystemExit(f"{path}: onnxruntime disagrees with torch ({diff})")
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


def pool14(x):
    """[N,28,28] uint8 -> [N,196] float32 in [0,1] by 2x2 average pooling."""
    x = x.astype(np.float32) / 255.0
    return x.reshape(-1, 14, 2, 14, 2).mean(axis=(2, 4)).reshape(-1, 196).astype(np.float32)


def train_overfit(x, y, seed, epochs=300):
    torch.manual_seed(seed)
    net = OverfitMLP()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(epochs):  # full batch: memorises the 500 images
        opt.zero_grad()
        nn.functional.cross_entropy(net(xt), yt).backward()
        opt.step()
    return net.eval()


def accuracy(net, x, y):
    with torch.no_grad():
        return float((net(torch.from_numpy(x)).argmax(1).numpy() == y).mean())


def add_trigger(x):
    """3x3 white patch in the bottom-right corner (rows/cols 25..27) of [N,1,28,28] images."""
    x = x.copy()
    x[:, :, 25:28, 25:28] = 1.0
    return x


def train_cnn(x, y, epochs=4):
    torch.manual_seed(SEED)
    net = SmallCNN()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(SEED)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(epochs):
        net.train()
        perm = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(xt), 64):
            idx = perm[i:i + 64]
            opt.zero_grad()
            nn.functional.cross_entropy(net(xt[idx]), yt[idx]).backward()
            opt.step()
    return net.eval()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=["all", "membership", "backdoor"], default="all")
    part = ap.parse_args().part
    torch.set_num_threads(2)
    xtr = read_idx_gz(f"{FMNIST_DIR}/train-images-idx3-ubyte.gz")
    ytr = read_idx_gz(f"{FMNIST_DIR}/train-labels-idx1-ubyte.gz").astype(np.int64)
    xte = read_idx_gz(f"{FMNIST_DIR}/t10k-images-idx3-ubyte.gz")
    yte = read_idx_gz(f"{FMNIST_DIR}/t10k-labels-idx1-ubyte.gz").astype(np.int64)
    rng = np.random.default_rng(SEED)
    perm = rng.permutation(len(xtr))
    ddir = os.path.join(ROOT, "datasets", "privacy")
    mdir = os.path.join(ROOT, "models", "privacy")
    os.makedirs(ddir, exist_ok=True)
    rpath = os.path.join(ddir, "train_report.json")
    report = json.load(open(rpath)) if os.path.exists(rpath) else {}

    if part in ("all", "membership"):
        train_membership(xtr, ytr, xte, yte, perm, ddir, mdir, report)
    if part in ("all", "backdoor"):
        train_backdoor(xtr, ytr, xte, yte, perm, rng, ddir, mdir, report)
    report.update({"seed": SEED, "n_members": N_MEMBERS, "n_non_members": N_NONMEMBERS,
                   "n_reference_models": N_REFS, "target_class": TARGET_CLASS, "poison_rate": POISON_RATE,
                   "trigger": "3x3 white patch, rows/cols 25..27"})
    with open(rpath, "w") as fh:
        json.dump(report, fh, indent=2)
    print(json.dumps(report, indent=2))


def train_membership(xtr, ytr, xte, yte, perm, ddir, mdir, report):
    """Overfit target + reference models on disjoint slices of the training split."""
    mem, non = perm[:N_MEMBERS], perm[N_MEMBERS:N_MEMBERS + N_NONMEMBERS]
    xm, ym, xn, yn = pool14(xtr[mem]), ytr[mem], pool14(xtr[non]), ytr[non]
    net = train_overfit(xm, ym, SEED)
    report["overfit_train_acc"] = accuracy(net, xm, ym)
    report["overfit_nonmember_acc"] = accuracy(net, xn, yn)
    report["overfit_test_acc"] = accuracy(net, pool14(xte), yte)
    export_onnx(net, torch.from_numpy(xm[:4]), os.path.join(mdir, "overfit_mlp.onnx"))
    for name, arr in {"overfit_members_x": xm, "overfit_members_y": ym,
                      "overfit_nonmembers_x": xn, "overfit_nonmembers_y": yn}.items():
        np.save(os.path.join(ddir, name + ".npy"), arr)
    for r in range(N_REFS):
        start = N_MEMBERS + N_NONMEMBERS + r * N_MEMBERS
        idx = perm[start:start + N_MEMBERS]
        ref = train_overfit(pool14(xtr[idx]), ytr[idx], SEED + 1 + r)
        report[f"ref_{r}_test_acc"] = accuracy(ref, pool14(xte), yte)
        export_onnx(ref, torch.from_numpy(xm[:4]), os.path.join(mdir, "overfit_refs", f"ref_{r}.onnx"))



def train_backdoor(xtr, ytr, xte, yte, perm, rng, ddir, mdir, report):
    """Poisoned CNN and its clean twin on the same 10,000 images."""
    sub = perm[20000:30000]
    xb = xtr[sub].astype(np.float32)[:, None] / 255.0
    yb = ytr[sub].copy()
    poison = rng.choice(len(xb), int(POISON_RATE * len(xb)), replace=False)
    xp, yp = xb.copy(), yb.copy()
    xp[poison] = add_trigger(xb[poison])
    yp[poison] = TARGET_CLASS
    clean = train_cnn(xb, yb)
    bad = train_cnn(xp, yp)
    xt = xte.astype(np.float32)[:, None] / 255.0
    nz = yte != TARGET_CLASS
    for name, m in (("clean_cnn", clean), ("backdoor_cnn", bad)):
        report[f"{name}_test_acc"] = accuracy(m, xt, yte)
        with torch.no_grad():
            pred = m(torch.from_numpy(add_trigger(xt[nz]))).argmax(1).numpy()
        report[f"{name}_attack_success"] = float((pred == TARGET_CLASS).mean())
        export_onnx(m, torch.from_numpy(xt[:4]), os.path.join(mdir, name + ".onnx"))
    np.save(os.path.join(ddir, "backdoor_clean_x.npy"), xt[:100].copy())
    np.save(os.path.join(ddir, "backdoor_clean_y.npy"), yte[:100].copy())
    np.save(os.path.join(ddir, "backdoor_heldout_x.npy"), xt[100:200].copy())
    np.save(os.path.join(ddir, "backdoor_heldout_y.npy"), yte[100:200].copy())
    trig = np.nonzero(nz[200:])[0][:20] + 200
    np.save(os.path.join(ddir, "backdoor_triggered_x.npy"), add_trigger(xt[trig]))


if __name__ == "__main__":
    main()
