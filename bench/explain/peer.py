"""Peer timings for bench/explain/run.sh: Captum IG on the bundled CNN, shap.KernelExplainer on the credit MLP.

Usage: /work/venv/bin/python bench/explain/peer.py ig ROWS STEPS | kernelshap ROWS SAMPLES
Prints one line: "<seconds per sample>". Same work as the mlaudit run (same rows, target =
predicted class for IG; logit of output 1 with the 100 background rows for KernelSHAP), 2 threads.
"""
import os
import sys
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import mlaudit_torch  # noqa: E402


def bench_ig(rows, steps):
    from captum.attr import IntegratedGradients
    cnn = mlaudit_torch.cnn_from_onnx(os.path.join(ROOT, "models", "fmnist_cnn.onnx"))
    x = torch.from_numpy(np.load(os.path.join(ROOT, "datasets", "demo", "fmnist_x.npy"))[:rows].astype(np.float32))
    with torch.no_grad():
        targets = cnn(x).argmax(dim=1)
    ig = IntegratedGradients(cnn)
    ig.attribute(x[:1], target=targets[:1], n_steps=steps)  # warm-up
    t0 = time.perf_counter()
    for i in range(rows):  # one sample at a time, all its steps in one batch (Captum's default)
        ig.attribute(x[i:i + 1], target=targets[i:i + 1], n_steps=steps, method="gausslegendre")
    return (time.perf_counter() - t0) / rows


def bench_kernelshap(rows, samples):
    import shap
    mlp = mlaudit_torch.mlp_from_onnx(os.path.join(ROOT, "models", "credit_mlp.onnx"))
    cx = np.load(os.path.join(ROOT, "datasets", "demo", "credit_x.npy"))[:rows].astype(np.float32)
    bg = np.load(os.path.join(ROOT, "datasets", "demo", "credit_background.npy")).astype(np.float32)

    def f(a):
        with torch.no_grad():
            return mlp(torch.from_numpy(np.asarray(a, dtype=np.float32)))[:, 1].numpy().astype(np.float64)

    ex = shap.KernelExplainer(f, bg)
    t0 = time.perf_counter()
    ex.shap_values(cx, nsamples=samples, l1_reg=False, silent=True)
    return (time.perf_counter() - t0) / rows


if __name__ == "__main__":
    torch.set_num_threads(2)
    kind, rows, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    print(f"{bench_ig(rows, n) if kind == 'ig' else bench_kernelshap(rows, n):.6f}")
