#!/usr/bin/env python3
"""Model and data for bench/verify/residual: a small ResNet trained on Fashion-MNIST.

    ${PYTHON:-.venv/bin/python} tools/make_residual_bench.py OUTDIR [--epochs 2] [--n 20]

Trains, on the CPU with 2 threads and a fixed seed (deterministic algorithms on), a
"ResNet-2B"-like network on the 60,000 Fashion-MNIST training images (the Debian package
dataset-fashion-mnist, /usr/share/datasets/fashion-mnist/*.gz; MLAUDIT_FMNIST_DIR overrides):

    Conv3x3(1->8, stride 2, pad 1)+BN+ReLU                        28x28 -> 8x14x14
    BasicBlock(8->8), BasicBlock(8->8)                              identity shortcuts
    BasicBlock(8->16, stride 2, 1x1 Conv+BN projection shortcut)    -> 16x7x7
    Flatten, Linear(784->100)+ReLU, Linear(100->10)

(torchvision's BasicBlock: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))). Adam, lr 1e-3,
batch 128. BatchNorm (eval mode) is then folded into the convolutions in float32, as
tools/verify_residual_golden.py does, and it writes to OUTDIR:

    resnet_fmnist.onnx   torch.onnx.export defaults (one self-contained file), float32 weights
    resnet_fmnist.pt     the folded model's state_dict (ResNetFolded below), the weights the
                         peer (bench/verify/residual/peer_lirpa.py) bounds
    x.npy, y.npy         the first N test images (float32 [N,1,28,28] in [0,1]) and labels (int64)
    meta.json            test accuracy, training time, exporter, ONNX ops
"""
import argparse
import gzip
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import project_python  # noqa: E402

FMNIST_DIR = "/usr/share/datasets/fashion-mnist"


def read_idx(path):
    import numpy as np
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_fmnist(split):
    d = os.environ.get("MLAUDIT_FMNIST_DIR", FMNIST_DIR)
    prefix = "train" if split == "train" else "t10k"

    def find(kind):
        for name in (f"{prefix}-{kind}-idx{3 if kind == 'images' else 1}-ubyte.gz",
                     f"{prefix}-{kind}-idx{3 if kind == 'images' else 1}-ubyte"):
            if os.path.exists(os.path.join(d, name)):
                return os.path.join(d, name)
        raise SystemExit(f"make_residual_bench: Fashion-MNIST {split} {kind} not found in {d} "
                         "(apt-get install dataset-fashion-mnist, or set MLAUDIT_FMNIST_DIR)")
    x = read_idx(find("images")).astype("float32") / 255.0
    y = read_idx(find("labels")).astype("int64")
    return x[:, None, :, :], y


def model_classes():
    """The training model (with BatchNorm) and its folded twin (Conv with bias, no BN)."""
    import torch
    import torch.nn as nn

    class BasicBlock(nn.Module):
        def __init__(self, cin, cout, stride, bn):
            super().__init__()
            norm = (lambda c: nn.BatchNorm2d(c)) if bn else (lambda c: nn.Identity())
            self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=not bn)
            self.bn1 = norm(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=not bn)
            self.bn2 = norm(cout)
            self.downsample = None
            if stride != 1 or cin != cout:
                conv = nn.Conv2d(cin, cout, 1, stride=stride, bias=not bn)
                self.downsample = nn.Sequential(conv, nn.BatchNorm2d(cout)) if bn else conv

        def forward(self, x):
            identity = x if self.downsample is None else self.downsample(x)
            out = torch.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return torch.relu(out + identity)

    class ResNet(nn.Module):
        def __init__(self, bn=True):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 8, 3, stride=2, padding=1, bias=not bn)
            self.bn1 = nn.BatchNorm2d(8) if bn else nn.Identity()
            self.layer1 = BasicBlock(8, 8, 1, bn)
            self.layer2 = BasicBlock(8, 8, 1, bn)
            self.layer3 = BasicBlock(8, 16, 2, bn)
            self.fc1 = nn.Linear(16 * 7 * 7, 100)
            self.fc2 = nn.Linear(100, 10)

        def forward(self, x):
            x = torch.relu(self.bn1(self.conv1(x)))
            x = self.layer3(self.layer2(self.layer1(x)))
            x = torch.flatten(x, 1)
            return self.fc2(torch.relu(self.fc1(x)))

    return ResNet


def resnet_folded():
    """The folded architecture; load resnet_fmnist.pt into it (the peer does)."""
    return model_classes()(bn=False)


def fold_bn(model):
    """The eval-mode BatchNorms folded into the convolutions before them, weights rounded to float32
    (tools/verify_residual_golden.py's fold_bn, on this architecture)."""
    import torch
    folded = resnet_folded()

    def fold(conv, bn, dst):
        k = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        dst.weight.copy_(conv.weight * k[:, None, None, None])
        dst.bias.copy_(bn.bias - k * bn.running_mean)

    with torch.no_grad():
        fold(model.conv1, model.bn1, folded.conv1)
        for name in ("layer1", "layer2", "layer3"):
            src, dst = getattr(model, name), getattr(folded, name)
            fold(src.conv1, src.bn1, dst.conv1)
            fold(src.conv2, src.bn2, dst.conv2)
            if src.downsample is not None:
                fold(src.downsample[0], src.downsample[1], dst.downsample)
        folded.fc1.load_state_dict(model.fc1.state_dict())
        folded.fc2.load_state_dict(model.fc2.state_dict())
    return folded.eval()


def accuracy(model, x, y, batch=1000):
    import torch
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            correct += int((model(torch.from_numpy(x[i:i + batch])).argmax(1).numpy() == y[i:i + batch]).sum())
    return correct / len(x)


def main():
    project_python.use()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--n", type=int, default=20, help="test images written to x.npy / y.npy")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import numpy as np
    import onnx
    import torch
    import torch.nn as nn

    torch.set_num_threads(2)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    os.makedirs(args.outdir, exist_ok=True)

    xtr, ytr = load_fmnist("train")
    xte, yte = load_fmnist("test")
    model = model_classes()(bn=True)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    lossf = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(args.seed)
    xt, yt = torch.from_numpy(xtr), torch.from_numpy(ytr)
    t0 = time.time()
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(xt), generator=gen)
        total = 0.0
        for i in range(0, len(xt), 128):
            idx = perm[i:i + 128]
            opt.zero_grad()
            loss = lossf(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        model.eval()
        print(f"epoch {epoch + 1}/{args.epochs}: train loss {total / len(xt):.4f}, "
              f"test accuracy {accuracy(model, xte, yte):.4f} ({time.time() - t0:.1f} s)", flush=True)
    train_s = time.time() - t0

    model.eval()
    folded = fold_bn(model)
    acc_bn, acc = accuracy(model, xte, yte), accuracy(folded, xte, yte)
    print(f"test accuracy (10,000 images): {acc:.4f} after folding BN ({acc_bn:.4f} before)")

    onnx_path = os.path.join(args.outdir, "resnet_fmnist.onnx")
    torch.onnx.export(folded, (torch.zeros(1, 1, 28, 28),), onnx_path, input_names=["input"], output_names=["logits"])
    m = onnx.load(onnx_path)  # one self-contained file (the exporter may write the weights beside it)
    onnx.save(m, onnx_path, save_as_external_data=False)
    if os.path.exists(onnx_path + ".data"):
        os.remove(onnx_path + ".data")
    ops = sorted({n.op_type for n in m.graph.node})
    torch.save(folded.state_dict(), os.path.join(args.outdir, "resnet_fmnist.pt"))

    x, y = xte[:args.n].astype(np.float32), yte[:args.n].astype(np.int64)
    np.save(os.path.join(args.outdir, "x.npy"), x)
    np.save(os.path.join(args.outdir, "y.npy"), y)

    # The ONNX file computes what the folded torch model does (onnxruntime, when installed).
    ort_diff = None
    try:
        import onnxruntime as ort
        sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
        ref = folded(torch.from_numpy(x)).detach().numpy()
        got = np.concatenate([sess.run(None, {sess.get_inputs()[0].name: x[i:i + 1]})[0] for i in range(len(x))])
        ort_diff = float(np.abs(got - ref).max())
    except ImportError:
        pass
    with torch.no_grad():
        pred = folded(torch.from_numpy(x)).argmax(1).numpy()
    meta = {"test_accuracy": acc, "test_accuracy_before_fold": acc_bn, "epochs": args.epochs, "seed": args.seed,
            "train_seconds": round(train_s, 1), "n": int(args.n), "correct_of_n": int((pred == y).sum()),
            "exporter": f"torch {torch.__version__} torch.onnx.export defaults, opset {m.opset_import[0].version}",
            "ops": ops, "onnxruntime_max_abs_diff": ort_diff}
    with open(os.path.join(args.outdir, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(f"wrote {onnx_path} (ops {', '.join(ops)}; onnxruntime vs torch max |diff| {ort_diff}), "
          f"resnet_fmnist.pt, x.npy, y.npy ({args.n} test images, {meta['correct_of_n']} classified correctly)")


if __name__ == "__main__":
    main()
