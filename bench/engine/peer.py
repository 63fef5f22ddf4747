#!/usr/bin/env python3
"""Peer timings for bench/engine: the bundled CNN in PyTorch (forward, forward + input gradient) and onnxruntime (forward).

Run from the repository root (CPU only):

    ${PYTHON:-.venv/bin/python} bench/engine/peer.py [THREADS] [--model models/fmnist_cnn.onnx]
                                               [--data datasets/demo/fmnist_x.npy] [--labels datasets/demo/fmnist_y.npy]

THREADS (default 2) is given to torch.set_num_threads and to onnxruntime's
intra_op_num_threads (inter_op 1), so the peers use the same thread count as mlaudit.

The PyTorch module is rebuilt from the ONNX file's initializers (tools/mlaudit_torch.py),
so all three run the same weights on the same inputs:
  batch 1:   data[0:1]
  batch 256: data[0:256], with rows repeated cyclically when the file has fewer rows
             (the 200 demo images give rows 0..199 then 0..55), labels likewise.
Modes:
  fwd      logits = model(x)                           (torch under torch.no_grad(); onnxruntime session.run)
  fwdgrad  g = d/dx sum_i CE(model(x)_i, y_i)          (torch autograd w.r.t. the input only: the
                                                        weights have requires_grad=False)
Each measurement: warm-up runs, then the median wall time of repeated runs (time.perf_counter).
Prints one line per measurement:
  peer=<torch|ort> mode=<fwd|fwdgrad> batch=<b> ms=<median>
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))


def cyclic_rows(a, n):
    idx = np.arange(n) % len(a)
    return np.ascontiguousarray(a[idx])


def time_ms(fn, batch, stat=statistics.median):
    """`stat` (median, or min for the fastest run) of repeated wall times of fn() in ms, after warm-up."""
    warmup, repeats = (20, 200) if batch == 1 else (3, 30)
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return stat(times)


def median_ms(fn, batch):
    return time_ms(fn, batch)


def main(argv=None):
    ap = argparse.ArgumentParser(description="PyTorch / onnxruntime timings of the bundled CNN.")
    ap.add_argument("threads", nargs="?", type=int, default=2)
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "fmnist_cnn.onnx"))
    ap.add_argument("--data", default=os.path.join(ROOT, "datasets", "demo", "fmnist_x.npy"))
    ap.add_argument("--labels", default=os.path.join(ROOT, "datasets", "demo", "fmnist_y.npy"))
    ap.add_argument("--batches", default="1,256")
    args = ap.parse_args(argv)

    import onnxruntime as ort
    import torch
    import torch.nn.functional as F
    from mlaudit_torch import cnn_from_onnx

    torch.set_num_threads(args.threads)
    net = cnn_from_onnx(args.model).eval()
    net.requires_grad_(False)
    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(args.model, so, providers=["CPUExecutionProvider"])
    x_all = np.load(args.data).astype(np.float32)
    y_all = np.load(args.labels).astype(np.int64)
    print(f"# threads={args.threads} model={os.path.relpath(args.model, ROOT)} torch={torch.__version__} ort={ort.__version__}")

    for b in [int(s) for s in args.batches.split(",")]:
        x_np, y_np = cyclic_rows(x_all, b), cyclic_rows(y_all, b)
        x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)

        def torch_fwd():
            with torch.no_grad():
                return net(x)

        def torch_fwdgrad():
            xg = x.detach().requires_grad_(True)
            loss = F.cross_entropy(net(xg), y, reduction="sum")
            return torch.autograd.grad(loss, xg)[0]

        def ort_fwd():
            return sess.run(["logits"], {"input": x_np})[0]

        # The peers must agree before they are timed.
        ref = torch_fwd().numpy()
        if not np.allclose(ort_fwd(), ref, rtol=1e-4, atol=1e-4):
            raise SystemExit("peer.py: onnxruntime and torch disagree on the logits")
        print(f"peer=torch mode=fwd batch={b} ms={median_ms(torch_fwd, b):.4f}")
        print(f"peer=torch mode=fwdgrad batch={b} ms={median_ms(torch_fwdgrad, b):.4f}")
        print(f"peer=ort mode=fwd batch={b} ms={median_ms(ort_fwd, b):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
