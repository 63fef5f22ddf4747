#!/usr/bin/env python3
"""Train and export mlaudit's bundled models and write the demo data.

Run from the repository root (CPU, 2 threads, about 3-5 minutes):

    ${PYTHON:-.venv/bin/python} tools/make_credit_data.py      # first: datasets/credit/*.csv
    ${PYTHON:-.venv/bin/python} tools/train_models.py [--cnn-epochs 8] [--only cnn|mlp]
    ${PYTHON:-.venv/bin/python} tools/train_models.py --verify-split    # no training (about 30 s)

Needs torch, numpy, onnx, onnxruntime (the repo-local .venv or $PYTHON) and the Debian package
`dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist/*.gz, IDX gzip).

Writes
    models/fmnist_cnn.onnx       input "input" float [N,1,28,28] in [0,1], output "logits" [N,10]
    models/credit_mlp.onnx       input "input" float [N,F] raw columns of datasets/credit/features.txt,
                                 output "logits" [N,2] (class 1 = approved); standardisation inside (Sub, Div)
    models/README.md             architectures, recipe, onnxruntime test accuracy, member/non-member split
    datasets/demo/fmnist_x.npy, fmnist_y.npy              first 200 Fashion-MNIST TEST images (held out)
    datasets/demo/fmnist_train_x.npy, fmnist_train_y.npy  first 200 Fashion-MNIST TRAIN images (members)
    datasets/demo/credit_x.npy, credit_y.npy              first 500 rows of credit_test.csv (held out)
    datasets/demo/credit_background.npy                   first 100 rows of credit_train.csv (members)
    datasets/demo/README.md

--verify-split trains nothing and changes no model: it rebuilds the member /
non-member arrays from the raw data with the recipe below, checks that they equal
the files in datasets/demo byte for byte, re-measures both models' accuracies on
their training (member) and test (non-member) splits with onnxruntime, checks them
against models/README.md, and writes the record to datasets/demo/split.json (the
split the privacy sections of examples/demo.yaml audit).

Both models are exported with the legacy TorchScript exporter (dynamo=False) at
opset 13 with a dynamic batch axis, checked with onnx.checker, and compared
against the torch module through onnxruntime; accuracies are measured by
onnxruntime on the held-out split.
"""
import argparse
import inspect
import json
import os
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mlaudit_torch import CreditMLP, FmnistCNN, read_idx_gz  # noqa: E402

FMNIST_DIR = "/usr/share/datasets/fashion-mnist"
SEED = 20240611
THREADS = 2


def export_onnx(model, example, path, n_out_desc):
    """torch.onnx.export at opset 13, TorchScript exporter, dynamic batch; checked with onnx.checker."""
    kwargs = dict(input_names=["input"], output_names=["logits"], opset_version=13,
                  dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}}, do_constant_folding=True)
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False
    tmp = path + ".tmp"
    torch.onnx.export(model, example, tmp, **kwargs)
    m = onnx.load(tmp)
    onnx.checker.check_model(m, full_check=True)
    m.doc_string = n_out_desc
    onnx.save(m, tmp)
    os.replace(tmp, path)
    return m


def ort_session(path):
    so = ort.SessionOptions()
    so.intra_op_num_threads = THREADS
    so.inter_op_num_threads = 1
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def ort_logits(sess, x, batch=1000):
    return np.concatenate([sess.run(["logits"], {"input": x[i:i + batch]})[0] for i in range(0, len(x), batch)])


def train_cnn(epochs, out_models, out_demo):
    xtr = read_idx_gz(f"{FMNIST_DIR}/train-images-idx3-ubyte.gz").astype(np.float32)[:, None] / 255.0
    ytr = read_idx_gz(f"{FMNIST_DIR}/train-labels-idx1-ubyte.gz").astype(np.int64)
    xte = read_idx_gz(f"{FMNIST_DIR}/t10k-images-idx3-ubyte.gz").astype(np.float32)[:, None] / 255.0
    yte = read_idx_gz(f"{FMNIST_DIR}/t10k-labels-idx1-ubyte.gz").astype(np.int64)
    print(f"fashion-mnist: train {xtr.shape} test {xte.shape}")

    torch.manual_seed(SEED)
    net = FmnistCNN()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * ((len(xtr) + 127) // 128))
    gen = torch.Generator().manual_seed(SEED)
    xt, yt = torch.from_numpy(xtr), torch.from_numpy(ytr)
    loss_fn = nn.CrossEntropyLoss()
    for ep in range(epochs):
        t0 = time.time()
        net.train()
        perm = torch.randperm(len(xt), generator=gen)
        total = 0.0
        for i in range(0, len(xt), 128):
            idx = perm[i:i + 128]
            opt.zero_grad()
            loss = loss_fn(net(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        net.eval()
        with torch.no_grad():
            acc = (net(torch.from_numpy(xte)).argmax(1).numpy() == yte).mean()
        print(f"cnn epoch {ep + 1}/{epochs}: train loss {total / len(xt):.4f}, test acc {acc:.4f} ({time.time() - t0:.0f} s)")

    path = os.path.join(out_models, "fmnist_cnn.onnx")
    export_onnx(net, torch.zeros(1, 1, 28, 28), path, "mlaudit fmnist_cnn: Fashion-MNIST CNN, logits of 10 classes")
    sess = ort_session(path)
    logits = ort_logits(sess, xte)
    with torch.no_grad():
        ref = net(torch.from_numpy(xte[:256])).numpy()
    diff = float(np.abs(logits[:256] - ref).max())
    acc = float((logits.argmax(1) == yte).mean())
    print(f"wrote {path}: onnxruntime test accuracy {acc:.4f}, max |ort - torch| {diff:.2e}")
    if diff > 1e-3:
        raise SystemExit(f"{path}: onnxruntime disagrees with torch ({diff})")

    demo = {
        "fmnist_x.npy": xte[:200].copy(), "fmnist_y.npy": yte[:200].copy(),
        "fmnist_train_x.npy": xtr[:200].copy(), "fmnist_train_y.npy": ytr[:200].copy(),
    }
    for name, arr in demo.items():
        np.save(os.path.join(out_demo, name), arr)
        print(f"wrote {os.path.join(out_demo, name)} {arr.dtype} {list(arr.shape)}")
    acc200 = float((logits[:200].argmax(1) == yte[:200]).mean())
    return {"acc": acc, "acc_demo": acc200, "ort_vs_torch": diff, "epochs": epochs,
            "n_train": len(xtr), "n_test": len(xte)}


def read_credit(path):
    with open(path) as fh:
        header = fh.readline().strip().split(",")
    data = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64)
    return header, data


def train_mlp(out_models, out_demo, credit_dir):
    features = [l.strip() for l in open(os.path.join(credit_dir, "features.txt")) if l.strip()]
    header, tr = read_credit(os.path.join(credit_dir, "credit_train.csv"))
    header_te, te = read_credit(os.path.join(credit_dir, "credit_test.csv"))
    assert header == header_te
    cols = [header.index(f) for f in features]
    label = header.index("approved")
    xtr, ytr = tr[:, cols].astype(np.float32), tr[:, label].astype(np.int64)
    xte, yte = te[:, cols].astype(np.float32), te[:, label].astype(np.int64)
    mean = xtr.mean(0)
    std = xtr.std(0)
    std[std < 1e-6] = 1.0

    torch.manual_seed(SEED)
    net = CreditMLP(len(features), mean, std)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(SEED)
    xt, yt = torch.from_numpy(xtr), torch.from_numpy(ytr)
    loss_fn = nn.CrossEntropyLoss()
    epochs = 20
    for ep in range(epochs):
        net.train()
        perm = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(xt), 64):
            idx = perm[i:i + 64]
            opt.zero_grad()
            loss_fn(net(xt[idx]), yt[idx]).backward()
            opt.step()
        if (ep + 1) % 5 == 0:
            net.eval()
            with torch.no_grad():
                acc = (net(torch.from_numpy(xte)).argmax(1).numpy() == yte).mean()
                tra = (net(xt).argmax(1).numpy() == ytr).mean()
            print(f"mlp epoch {ep + 1}/{epochs}: train acc {tra:.4f}, test acc {acc:.4f}")

    net.eval()
    path = os.path.join(out_models, "credit_mlp.onnx")
    export_onnx(net, torch.zeros(1, len(features)), path,
                "mlaudit credit_mlp: raw features in datasets/credit/features.txt order; logits [N,2], class 1 = approved")
    m = onnx.load(path)
    ops = [n.op_type for n in m.graph.node]
    if "Sub" not in ops or "Div" not in ops:
        raise SystemExit(f"{path}: standardisation (Sub, Div) missing from the graph: {ops}")
    sess = ort_session(path)
    logits = ort_logits(sess, xte)
    with torch.no_grad():
        ref = net(torch.from_numpy(xte)).numpy()
    diff = float(np.abs(logits - ref).max())
    pred = logits.argmax(1)
    acc = float((pred == yte).mean())
    sex = xte[:, features.index("sex")]
    rate_f, rate_m = float(pred[sex == 0].mean()), float(pred[sex == 1].mean())
    print(f"wrote {path}: onnxruntime test accuracy {acc:.4f}, max |ort - torch| {diff:.2e}; "
          f"predicted approval female {rate_f:.3f} male {rate_m:.3f}")
    if diff > 1e-3:
        raise SystemExit(f"{path}: onnxruntime disagrees with torch ({diff})")

    demo = {
        "credit_x.npy": xte[:500].copy(), "credit_y.npy": yte[:500].copy(),
        "credit_background.npy": xtr[:100].copy(),
    }
    for name, arr in demo.items():
        np.save(os.path.join(out_demo, name), arr)
        print(f"wrote {os.path.join(out_demo, name)} {arr.dtype} {list(arr.shape)}")
    train_acc = float((ort_logits(sess, xtr).argmax(1) == ytr).mean())
    return {"acc": acc, "train_acc": train_acc, "ort_vs_torch": diff, "epochs": epochs, "features": features,
            "n_train": len(xtr), "n_test": len(xte), "rate_f": rate_f, "rate_m": rate_m,
            "ops": sorted(set(ops))}


def write_models_readme(path, cnn, mlp):
    def fmt_acc(r):
        return "not trained in this run" if r is None else f"{r['acc'] * 100:.2f}%"

    cnn_ops = mlp_ops = ""
    if cnn is not None:
        cnn_ops = ", ".join(sorted({n.op_type for n in onnx.load(os.path.join(os.path.dirname(path), "fmnist_cnn.onnx")).graph.node}))
    if mlp is not None:
        mlp_ops = ", ".join(mlp["ops"])
    text = f"""# Bundled models

Both are made by `tools/train_models.py` (seed {SEED}, PyTorch on CPU with
{THREADS} threads; run `tools/make_credit_data.py` first), exported with
`torch.onnx.export(..., opset_version=13, dynamo=False)` with a dynamic batch axis
`N`, checked by `onnx.checker` and compared against the torch module through
onnxruntime (max |difference| below). Accuracies are measured by **onnxruntime on
the held-out test split**.

## fmnist_cnn.onnx

- Input `input` float32 `[N,1,28,28]`, pixel/255 in [0,1]. Output `logits` float32 `[N,10]`
  (Fashion-MNIST classes 0 T-shirt/top, 1 Trouser, 2 Pullover, 3 Dress, 4 Coat, 5 Sandal,
  6 Shirt, 7 Sneaker, 8 Bag, 9 Ankle boot).
- Architecture: Conv(1->16, 3x3, pad 1) - ReLU - MaxPool 2x2 - Conv(16->32, 3x3, pad 1) - ReLU -
  MaxPool 2x2 - Flatten - Gemm(1568->64) - ReLU - Gemm(64->10). ONNX ops: {cnn_ops}.
- Data: Debian package `dataset-fashion-mnist` (`/usr/share/datasets/fashion-mnist/*.gz`).
- Training: Adam lr 1e-3, cosine decay to 0, batch 128, {cnn['epochs'] if cnn else '?'} epochs,
  cross-entropy, no augmentation.
- **Test accuracy (onnxruntime, all {cnn['n_test'] if cnn else 10000} test images): {fmt_acc(cnn)}**{'' if cnn is None else f"; on the 200 demo images `datasets/demo/fmnist_x.npy`: {cnn['acc_demo'] * 100:.1f}%; max |ort - torch| {cnn['ort_vs_torch']:.1e}"}.
- Member / non-member split (for privacy audits): trained on ALL 60000 images of
  `train-images-idx3-ubyte.gz` (indices 0..59999); the 10000 images of
  `t10k-images-idx3-ubyte.gz` were never used for training or model selection.
  `datasets/demo/fmnist_train_x.npy`/`fmnist_train_y.npy` are training images 0..199
  (members); `datasets/demo/fmnist_x.npy`/`fmnist_y.npy` are test images 0..199 (non-members).

## credit_mlp.onnx

- Input `input` float32 `[N,{len(mlp['features']) if mlp else 'F'}]`: RAW columns in the order of
  `datasets/credit/features.txt` ({", ".join(mlp['features']) if mlp else ''}).
  Output `logits` float32 `[N,2]`, class 1 = approved.
- Architecture: (x - mean) / std with the training-set mean and (population) std stored in
  the graph (Sub, Div nodes) - Gemm(F->32) - ReLU - Gemm(32->16) - ReLU - Gemm(16->2).
  ONNX ops: {mlp_ops}.
- `sex` is a model feature: the model learns the label bias documented in
  `datasets/credit/README.md`{'' if mlp is None else f" (predicted approval rate on the test split: female {mlp['rate_f']:.3f}, male {mlp['rate_m']:.3f})"}.
- Training: Adam lr 3e-3, weight decay 1e-4, batch 64, {mlp['epochs'] if mlp else '?'} epochs, cross-entropy.
- **Test accuracy (onnxruntime, {mlp['n_test'] if mlp else 2000} rows of `credit_test.csv`): {fmt_acc(mlp)}**{'' if mlp is None else f"; training accuracy {mlp['train_acc'] * 100:.2f}%; max |ort - torch| {mlp['ort_vs_torch']:.1e}. The label noise caps accuracy near 86% (see the dataset README)"}.
- Member / non-member split: trained on all {mlp['n_train'] if mlp else 4000} rows of `datasets/credit/credit_train.csv`
  (members); `credit_test.csv` is held out (non-members). `datasets/demo/credit_background.npy`
  is training rows 0..99; `datasets/demo/credit_x.npy`/`credit_y.npy` are test rows 0..499.
"""
    with open(path, "w") as fh:
        fh.write(text)
    print(f"wrote {path}")


def write_demo_readme(path):
    text = """# Demo data

Written by `tools/train_models.py` (see `models/README.md` for the models).

| file | dtype, shape | content |
|---|---|---|
| `fmnist_x.npy` | float32 [200,1,28,28] | Fashion-MNIST test images 0..199, pixel/255 (held out: non-members) |
| `fmnist_y.npy` | int64 [200] | their labels |
| `fmnist_train_x.npy` | float32 [200,1,28,28] | Fashion-MNIST training images 0..199 (used in training: members) |
| `fmnist_train_y.npy` | int64 [200] | their labels |
| `credit_x.npy` | float32 [500,F] | rows 0..499 of `datasets/credit/credit_test.csv`, columns of `features.txt` (held out) |
| `credit_y.npy` | int64 [500] | their `approved` labels |
| `credit_background.npy` | float32 [100,F] | rows 0..99 of `credit_train.csv` (members), e.g. a SHAP background |
"""
    with open(path, "w") as fh:
        fh.write(text)
    print(f"wrote {path}")


def sha256(path):
    import hashlib
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def verify_split(root):
    """Check the recorded member / non-member split of both bundled models without training."""
    demo = os.path.join(root, "datasets", "demo")
    readme = open(os.path.join(root, "models", "README.md")).read()

    def readme_percent(pattern):
        import re
        m = re.search(pattern, readme)
        if not m:
            raise SystemExit(f"models/README.md: '{pattern}' not found")
        return float(m.group(1)) / 100.0

    def same(name, expected):
        got = np.load(os.path.join(demo, name))
        if got.dtype != expected.dtype or not np.array_equal(got, expected):
            raise SystemExit(f"datasets/demo/{name} is not the recorded split ({got.dtype} {got.shape})")

    def accuracy(sess, x, y):
        return float((ort_logits(sess, x).argmax(1) == y).mean())

    xtr = read_idx_gz(f"{FMNIST_DIR}/train-images-idx3-ubyte.gz").astype(np.float32)[:, None] / 255.0
    ytr = read_idx_gz(f"{FMNIST_DIR}/train-labels-idx1-ubyte.gz").astype(np.int64)
    xte = read_idx_gz(f"{FMNIST_DIR}/t10k-images-idx3-ubyte.gz").astype(np.float32)[:, None] / 255.0
    yte = read_idx_gz(f"{FMNIST_DIR}/t10k-labels-idx1-ubyte.gz").astype(np.int64)
    same("fmnist_train_x.npy", xtr[:200])
    same("fmnist_train_y.npy", ytr[:200])
    same("fmnist_x.npy", xte[:200])
    same("fmnist_y.npy", yte[:200])
    cnn = ort_session(os.path.join(root, "models", "fmnist_cnn.onnx"))
    cnn_rec = {
        "model": "models/fmnist_cnn.onnx",
        "trained_on": "all 60000 images of train-images-idx3-ubyte.gz (train_cnn: every epoch is a permutation of all of them)",
        "held_out": "all 10000 images of t10k-images-idx3-ubyte.gz (never used for training or model selection)",
        "members": {"file": "datasets/demo/fmnist_train_x.npy", "labels": "datasets/demo/fmnist_train_y.npy",
                    "indices": "train-images 0..199", "sha256": sha256(os.path.join(demo, "fmnist_train_x.npy"))},
        "non_members": {"file": "datasets/demo/fmnist_x.npy", "labels": "datasets/demo/fmnist_y.npy",
                        "indices": "t10k-images 0..199", "sha256": sha256(os.path.join(demo, "fmnist_x.npy"))},
        "accuracy_train_all": accuracy(cnn, xtr, ytr),
        "accuracy_members": accuracy(cnn, xtr[:200], ytr[:200]),
        "accuracy_test_all": accuracy(cnn, xte, yte),
        "accuracy_non_members": accuracy(cnn, xte[:200], yte[:200]),
    }
    cnn_rec["readme_test_accuracy"] = readme_percent(r"all 10000 test images\): ([0-9.]+)%")

    credit_dir = os.path.join(root, "datasets", "credit")
    features = [l.strip() for l in open(os.path.join(credit_dir, "features.txt")) if l.strip()]
    header, tr = read_credit(os.path.join(credit_dir, "credit_train.csv"))
    _, te = read_credit(os.path.join(credit_dir, "credit_test.csv"))
    cols = [header.index(f) for f in features]
    label = header.index("approved")
    xctr, yctr = tr[:, cols].astype(np.float32), tr[:, label].astype(np.int64)
    xcte, ycte = te[:, cols].astype(np.float32), te[:, label].astype(np.int64)
    same("credit_background.npy", xctr[:100])
    same("credit_x.npy", xcte[:500])
    same("credit_y.npy", ycte[:500])
    mlp = ort_session(os.path.join(root, "models", "credit_mlp.onnx"))
    mlp_rec = {
        "model": "models/credit_mlp.onnx",
        "trained_on": f"all {len(xctr)} rows of datasets/credit/credit_train.csv",
        "held_out": f"all {len(xcte)} rows of datasets/credit/credit_test.csv",
        "members": {"file": "datasets/credit/credit_train.csv", "label": "approved",
                    "sha256": sha256(os.path.join(credit_dir, "credit_train.csv"))},
        "non_members": {"file": "datasets/credit/credit_test.csv", "label": "approved",
                        "sha256": sha256(os.path.join(credit_dir, "credit_test.csv"))},
        "accuracy_members": accuracy(mlp, xctr, yctr),
        "accuracy_non_members": accuracy(mlp, xcte, ycte),
        "readme_train_accuracy": readme_percent(r"training accuracy ([0-9.]+)%"),
        "readme_test_accuracy": readme_percent(r"rows of `credit_test.csv`\): ([0-9.]+)%"),
    }
    # The README prints percentages with two decimals: agreement to half a unit of the last digit.
    checks = [("fmnist_cnn test", cnn_rec["accuracy_test_all"], cnn_rec["readme_test_accuracy"]),
              ("credit_mlp train", mlp_rec["accuracy_members"], mlp_rec["readme_train_accuracy"]),
              ("credit_mlp test", mlp_rec["accuracy_non_members"], mlp_rec["readme_test_accuracy"])]
    for what, got, want in checks:
        print(f"{what} accuracy: measured {got * 100:.2f}%, models/README.md {want * 100:.2f}%")
        if abs(got - want) > 5e-5:
            raise SystemExit(f"{what}: the model does not reproduce the recorded accuracy")
    record = {"note": "member / non-member split of the bundled models, checked by tools/train_models.py --verify-split "
                      "(no retraining); accuracies measured with onnxruntime",
              "seed": SEED, "fmnist_cnn": cnn_rec, "credit_mlp": mlp_rec}
    out = os.path.join(demo, "split.json")
    with open(out + ".tmp", "w") as fh:
        json.dump(record, fh, indent=2)
        fh.write("\n")
    os.replace(out + ".tmp", out)
    print(f"split verified; wrote {out}")


def main(argv=None):
    ap = argparse.ArgumentParser(description="Train and export the bundled models.")
    ap.add_argument("--cnn-epochs", type=int, default=8)
    ap.add_argument("--only", choices=["cnn", "mlp"], default=None)
    ap.add_argument("--root", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap.add_argument("--verify-split", action="store_true",
                    help="check the recorded member/non-member split and write datasets/demo/split.json (no training)")
    args = ap.parse_args(argv)
    torch.set_num_threads(THREADS)
    if args.verify_split:
        verify_split(args.root)
        return 0
    out_models = os.path.join(args.root, "models")
    out_demo = os.path.join(args.root, "datasets", "demo")
    os.makedirs(out_models, exist_ok=True)
    os.makedirs(out_demo, exist_ok=True)
    mlp = cnn = None
    if args.only in (None, "mlp"):
        mlp = train_mlp(out_models, out_demo, os.path.join(args.root, "datasets", "credit"))
    if args.only in (None, "cnn"):
        cnn = train_cnn(args.cnn_epochs, out_models, out_demo)
    if args.only is None:
        write_models_readme(os.path.join(out_models, "README.md"), cnn, mlp)
        write_demo_readme(os.path.join(out_demo, "README.md"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
