#!/usr/bin/env python3
"""`mlaudit run` on 10,000 Fashion-MNIST test images against the same job in PyTorch (issue #20).

    bench/engine/run_stream.py MLAUDIT [--threads 2] [--rounds 5] [--models issue20_cnn,lenet5,small_resnet]

For each model of tools/make_unseen_cnn.py (exported with torch.onnx defaults, never tuned for),
runs `mlaudit run --model M --data x.npy --out DIR` (batches of 256 rows, the default) as a
process, and in PyTorch the in-process loop a user writes: np.load, torch.from_numpy, model(x)
over batches of 256 under inference_mode, np.save of the stacked outputs. Both read the same
.npy and write the outputs; mlaudit's time includes its process start and model load, PyTorch's
excludes the interpreter and `import torch`. Prints median wall time of --rounds interleaved
runs, peak RSS of the mlaudit process (GNU time) and of a fresh Python process doing the loop,
and the ratio. A benchmark: prints figures, never fails.
"""
import argparse
import gzip
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tools"))

PEER = r'''
import sys, time, resource, numpy as np, torch
sys.path.insert(0, sys.argv[1]); import make_unseen_cnn as m
torch.set_num_threads(int(sys.argv[2]))
model = m.build(sys.argv[3])
t0 = time.perf_counter()
x = np.load(sys.argv[4])
outs = []
with torch.inference_mode():
    xt = torch.from_numpy(np.ascontiguousarray(x))
    for b in range(0, len(xt), 256):
        outs.append(model(xt[b:b + 256]))
np.save(sys.argv[5], torch.cat(outs).numpy())
print(time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
'''


def fmnist(path):
    src = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
    with gzip.open(src) as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28).astype(np.float32) / 255
    np.save(path, x)
    return x


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mlaudit")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--models", default="issue20_cnn,lenet5,small_resnet")
    a = ap.parse_args()
    import torch  # noqa: F401  (the exporter)
    import make_unseen_cnn as m
    tmp = tempfile.mkdtemp(prefix="mlaudit-run-stream-")
    x = fmnist(os.path.join(tmp, "x.npy"))
    print(f"# 10,000 Fashion-MNIST test images, {a.threads} threads, median of {a.rounds} interleaved rounds")
    print(f"{'model':<14} {'mlaudit_s':>10} {'rss_MB':>8} {'torch_s':>9} {'rss_MB':>8} {'torch/mlaudit':>14}")
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
    for name in a.models.split(","):
        model = m.build(name)
        shape = (1, 3, 32, 32) if name == "lenet5" else (1, 1, 28, 28)
        path = os.path.join(tmp, name + ".onnx")
        m.export(model, torch.zeros(shape), path)
        data = os.path.join(tmp, "x.npy")
        if name == "lenet5":  # 3 x 32 x 32: the grey image in every channel, padded
            xl = np.zeros((len(x), 3, 32, 32), np.float32)
            xl[:, :, 2:30, 2:30] = x
            data = os.path.join(tmp, "x_lenet.npy")
            np.save(data, xl)
        ours, ours_rss, theirs, theirs_rss = [], 0, [], 0
        peer = PEER
        for _ in range(a.rounds):
            t0 = time.perf_counter()
            r = subprocess.run(["/usr/bin/time", "-f", "%M", a.mlaudit, "-q", "--threads", str(a.threads), "run", "--model", path,
                                "--data", data, "--out", os.path.join(tmp, "out")], env=env, capture_output=True, text=True)
            ours.append(time.perf_counter() - t0)
            if r.returncode != 0:
                print(f"{name}: mlaudit failed: {r.stderr.strip()[-300:]}")
                break
            ours_rss = max(ours_rss, int(r.stderr.strip().splitlines()[-1]) / 1024)
            p = subprocess.run([sys.executable, "-c", peer, os.path.join(ROOT, "tools"), str(a.threads), name, data,
                                os.path.join(tmp, "torch_out.npy")], env=env, capture_output=True, text=True)
            if p.returncode != 0:
                print(f"{name}: torch failed: {p.stderr.strip()[-300:]}")
                break
            t, rss = p.stdout.split()
            theirs.append(float(t))
            theirs_rss = max(theirs_rss, int(rss) / 1024)
        if ours and theirs:
            o, t = float(np.median(ours)), float(np.median(theirs))
            print(f"{name:<14} {o:>10.3f} {ours_rss:>8.0f} {t:>9.3f} {theirs_rss:>8.0f} {t / o:>13.2f}x")
    print("(ratio > 1: mlaudit faster; mlaudit's time includes process start and model load)")


if __name__ == "__main__":
    main()
