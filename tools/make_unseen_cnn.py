#!/usr/bin/env python3
"""Small CNNs the engine's CPU tuning never looked at, for bench/engine only (issue #20).

    tools/make_unseen_cnn.py OUT_DIR [--bench BUILD/bench/engine/bench_engine] [--threads 2]
                             [--batches 1,256] [--only NAME,...]

Exports (torch.onnx.export with its defaults: the exporter the installed torch picks, falling back
to the TorchScript exporter when that one is unavailable; a dynamic batch axis) into OUT_DIR:

  issue20_cnn   the network of issue #20: Conv(1->8, 3x3, pad 1)-ReLU-MaxPool(2)-Conv(8->16, 3x3)-ReLU
                -ZeroPad2d(1)-AvgPool(2)-Flatten-Gemm(784->32)-ReLU-Gemm(32->10); input [N,1,28,28]
  lenet5        Conv(3->6, 5x5)-ReLU-MaxPool(2)-Conv(6->16, 5x5)-ReLU-MaxPool(2)-Gemm(400->120)-ReLU
                -Gemm(120->84)-ReLU-Gemm(84->10); input [N,3,32,32]
  small_resnet  Conv(1->16, 3x3)-BN-ReLU, two residual blocks of 16 channels (Conv-BN-ReLU-Conv-BN,
                Add, ReLU), Conv(16->32, 3x3, stride 2)-BN-ReLU, GlobalAveragePool, Gemm(32->10);
                input [N,1,28,28] (BatchNorm folded into the convolutions by the exporter)

Weights are random (seeded), BatchNorm statistics randomised, eval mode. Inputs are uniform [0,1).
With --bench, prints for each model and batch the fastest forward time (of repeated runs after
warm-up: the figure that other processes on a shared machine disturb least) of mlaudit (bench_engine),
onnxruntime and PyTorch, and forward + input gradient (d/dx sum CE(output, 0)) of mlaudit and
PyTorch, all at --threads threads. A benchmark: it prints figures and never fails.
"""
import argparse
import os
import re
import subprocess
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import project_python  # noqa: E402

project_python.use()

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench", "engine"))
from peer import time_ms  # noqa: E402

INPUT_SHAPES = {"issue20_cnn": (1, 28, 28), "lenet5": (3, 32, 32), "small_resnet": (1, 28, 28)}


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.c2, self.b2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)

    def forward(self, x):
        y = torch.relu(self.b1(self.c1(x)))
        return torch.relu(x + self.b2(self.c2(y)))


def build(name):
    torch.manual_seed({"issue20_cnn": 20, "lenet5": 5, "small_resnet": 18}[name])
    if name == "issue20_cnn":
        m = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3), nn.ReLU(),
                          nn.ZeroPad2d(1), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(784, 32), nn.ReLU(),
                          nn.Linear(32, 10))
    elif name == "lenet5":
        m = nn.Sequential(nn.Conv2d(3, 6, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                          nn.Linear(84, 10))
    else:
        m = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(), Block(16),
                          Block(16), nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(32),
                          nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))
    gen = torch.Generator().manual_seed(7)
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            with torch.no_grad():
                mod.running_mean.copy_(torch.randn(mod.num_features, generator=gen) * 0.1)
                mod.running_var.copy_(torch.rand(mod.num_features, generator=gen) + 0.5)
                mod.weight.copy_(torch.rand(mod.num_features, generator=gen) + 0.5)
                mod.bias.copy_(torch.randn(mod.num_features, generator=gen) * 0.1)
    return m.eval().requires_grad_(False)


def export(model, x, path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            batch = torch.export.Dim("batch", min=1, max=4096)
            torch.onnx.export(model, (x,), path, input_names=["input"], output_names=["output"],
                              dynamic_shapes=({0: batch},))
        except Exception as e:  # the default exporter is missing a dependency (onnxscript): TorchScript's
            print(f"# {os.path.basename(path)}: default exporter failed ({type(e).__name__}); using dynamo=False")
            torch.onnx.export(model, (x,), path, dynamo=False, input_names=["input"], output_names=["output"],
                              dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})


def median_ms(fn, batch):
    # the fastest run (other processes on the machine move it least), timed as bench/engine/peer.py times
    return time_ms(fn, batch, stat=min)


def bench(name, path, model, args):
    import onnxruntime as ort

    torch.set_num_threads(args.threads)
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = args.threads, 1
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    batches = [int(b) for b in args.batches.split(",")]
    ours = {}
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    run = subprocess.run([args.bench, path, str(args.threads)] + [str(b) for b in batches] + ["--max-seconds", "2"],
                         capture_output=True, text=True, env=env)
    for line in run.stdout.splitlines():
        m = re.match(r"peer=mlaudit mode=(\w+) batch=(\d+).* min=([\d.]+)", line)
        if m:
            ours[(m.group(1), int(m.group(2)))] = float(m.group(3))
    rng = np.random.default_rng(0)
    for b in batches:
        x = rng.random((b,) + INPUT_SHAPES[name], dtype=np.float32)
        xt = torch.from_numpy(x)
        labels = torch.zeros(b, dtype=torch.long)
        ort_ms = median_ms(lambda: sess.run(None, {sess.get_inputs()[0].name: x}), b)
        with torch.no_grad():
            torch_ms = median_ms(lambda: model(xt), b)

        def fwdgrad():
            xg = xt.clone().requires_grad_(True)
            torch.nn.functional.cross_entropy(model(xg), labels, reduction="sum").backward()

        torch_g = median_ms(fwdgrad, b)
        f, g = ours.get(("fwd", b), float("nan")), ours.get(("fwdgrad", b), float("nan"))
        print(f"{name:13s} batch={b:4d} fwd ms: mlaudit {f:8.3f} ort {ort_ms:8.3f} torch {torch_ms:8.3f} "
              f"(ort/mlaudit {ort_ms / f:5.2f}) | fwdgrad ms: mlaudit {g:8.3f} torch {torch_g:8.3f} "
              f"(torch/mlaudit {torch_g / g:5.2f})", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir")
    ap.add_argument("--bench", default="", help="bench_engine executable: also time mlaudit, onnxruntime, PyTorch")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", default="1,256")
    ap.add_argument("--only", default="")
    args = ap.parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    names = [n for n in INPUT_SHAPES if not args.only or n in args.only.split(",")]
    for name in names:
        model = build(name)
        path = os.path.join(args.out_dir, name + ".onnx")
        if not os.path.exists(path):
            export(model, torch.rand((2,) + INPUT_SHAPES[name]), path)
        print(f"# {path}")
        if args.bench:
            try:
                bench(name, path, model, args)
            except Exception as e:  # a benchmark never fails
                print(f"{name}: benchmark failed: {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
