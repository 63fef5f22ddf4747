#!/usr/bin/env python3
"""PyTorch peer timings for bench/robustness/run.sh (torchattacks + Cohen et al. smoothing).

Usage: ${PYTHON:-.venv/bin/python} bench/robustness/peer.py REPO_ROOT EPS N_SMOOTH N_SMOOTH_SAMPLES
Prints one JSON line: wall and CPU (time.process_time, all threads) seconds for PGD-50, APGD-CE-100 (torchattacks, batch = all 200
demo images <= 256) and randomized-smoothing CERTIFY with N samples per image
(Cohen et al. core.py logic: N0 = 100, batch 1000, statsmodels Clopper-Pearson).
"""
import json
import os
import sys
import time

import numpy as np
import torch

root, eps, n_smooth, n_images = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
sys.path.insert(0, os.path.join(root, "tools"))
torch.set_num_threads(2)
import torchattacks  # noqa: E402
from mlaudit_torch import cnn_from_onnx  # noqa: E402
from scipy.stats import norm  # noqa: E402
from statsmodels.stats.proportion import proportion_confint  # noqa: E402

model = cnn_from_onnx(os.path.join(root, "models", "fmnist_cnn.onnx")).eval()
x = torch.from_numpy(np.load(os.path.join(root, "datasets", "demo", "fmnist_x.npy")))
y = torch.from_numpy(np.load(os.path.join(root, "datasets", "demo", "fmnist_y.npy")))
out = {"threads": torch.get_num_threads(), "n_images": int(x.shape[0])}


def robust(adv):
    with torch.no_grad():
        return ((model(adv).argmax(1) == y) & (model(x).argmax(1) == y)).float().mean().item()


t0, cpu0 = time.perf_counter(), time.process_time()
adv = torchattacks.PGD(model, eps=eps, alpha=2.5 * eps / 50, steps=50, random_start=True)(x, y)
out["pgd50_seconds"] = time.perf_counter() - t0
out["pgd50_cpu_seconds"] = time.process_time() - cpu0
out["pgd50_robust_accuracy"] = robust(adv)
t0, cpu0 = time.perf_counter(), time.process_time()
adv = torchattacks.APGD(model, norm="Linf", eps=eps, steps=100, n_restarts=1, loss="ce", seed=0)(x, y)
out["apgd_ce100_seconds"] = time.perf_counter() - t0
out["apgd_ce100_cpu_seconds"] = time.process_time() - cpu0
out["apgd_ce100_robust_accuracy"] = robust(adv)


def sample_counts(xi, num, sigma, batch=1000):
    counts = np.zeros(10, dtype=np.int64)
    with torch.no_grad():
        while num > 0:
            b = min(batch, num)
            num -= b
            noisy = xi.repeat(b, 1, 1, 1) + torch.randn(b, *xi.shape[1:]) * sigma
            counts += np.bincount(model(noisy).argmax(1).numpy(), minlength=10)
    return counts


t0, cpu0 = time.perf_counter(), time.process_time()
for i in range(n_images):
    xi = x[i:i + 1]
    c0 = sample_counts(xi, 100, 0.25)
    ca = int(c0.argmax())
    c = sample_counts(xi, n_smooth, 0.25)
    pa = proportion_confint(int(c[ca]), n_smooth, alpha=2 * 0.001, method="beta")[0]
    _ = 0.25 * norm.ppf(pa) if pa >= 0.5 else -1
out["smooth_seconds_per_sample"] = (time.perf_counter() - t0) / n_images
out["smooth_cpu_seconds_per_sample"] = (time.process_time() - cpu0) / n_images
print(json.dumps(out))
