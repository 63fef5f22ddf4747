#!/usr/bin/env python3
"""Synthetic benchmark table for bench/fairness/run.sh (not committed):
N rows (default 1,000,000) as float64 .npy [N, 5] with columns y, yhat, score, sex, race.
Usage: python make_data.py OUT.npy [N]"""
import sys

import numpy as np

out = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
rng = np.random.default_rng(20240611)
sex = (rng.random(n) < 0.6).astype(np.float64)
race = rng.choice(5, size=n, p=[0.6, 0.15, 0.12, 0.08, 0.05]).astype(np.float64)
p = 0.3 + 0.15 * sex + 0.05 * race
y = (rng.random(n) < p).astype(np.float64)
score = np.clip(0.25 + 0.3 * y + 0.1 * sex + 0.03 * race + 0.5 * (rng.random(n) - 0.5), 0, 1).round(4)
yhat = (score >= 0.5).astype(np.float64)
np.save(out, np.column_stack([y, yhat, score, sex, race]))
