#!/usr/bin/env python3
"""Peer side of bench/fairness: Fairlearn MetricFrame with bootstrap (n_boot) on the same
table, for sex, race and their intersection, with the same metrics as `mlaudit fairness`
(confusion metrics; with --scores also AUC, Brier score, ECE) and the same disparities.
torch is not used; numpy/scikit-learn run on 2 threads (OMP/OPENBLAS env set by run.sh).
Prints two times: without bootstrap (T0, one MetricFrame per attribute set) and with
n_boot=N_BOOT (T0 + N_BOOT * per-resample cost), so run.sh can extrapolate to 1000.
Usage: python fairlearn_bench.py TABLE.npy N_BOOT [--scores]   -> prints "T0 T_NBOOT" in seconds"""
import sys
import time
import warnings

import numpy as np
import pandas as pd

warnings.filterwarnings("ignore")
from fairlearn.metrics import (MetricFrame, false_negative_rate, false_positive_rate, selection_rate,
                               true_negative_rate, true_positive_rate)
from sklearn.metrics import accuracy_score, balanced_accuracy_score, brier_score_loss, precision_score, roc_auc_score

t = np.load(sys.argv[1])
n_boot = int(sys.argv[2])
scores = "--scores" in sys.argv
y, yhat, s = t[:, 0].astype(int), t[:, 1].astype(int), t[:, 2]
df = pd.DataFrame({"sex": t[:, 3].astype(int), "race": t[:, 4].astype(int)})


def ece(yt, sc, bins=10):
    b = np.minimum((sc * bins).astype(int), bins - 1)
    cnt = np.bincount(b, minlength=bins)
    sy = np.bincount(b, weights=yt, minlength=bins)
    ss = np.bincount(b, weights=sc, minlength=bins)
    m = cnt > 0
    return float(np.sum(np.abs(sy[m] - ss[m])) / len(yt))


metrics = {
    "base_rate": lambda a, b: float(np.mean(a)), "selection_rate": selection_rate, "tpr": true_positive_rate,
    "fpr": false_positive_rate, "tnr": true_negative_rate, "fnr": false_negative_rate,
    "ppv": lambda a, b: precision_score(a, b, zero_division=0),
    "npv": lambda a, b: precision_score(a, b, pos_label=0, zero_division=0),
    "accuracy": accuracy_score, "balanced_accuracy": balanced_accuracy_score}


def run(nb):
    boot = dict(n_boot=nb, ci_quantiles=[0.025, 0.975], random_state=0) if nb else {}
    start = time.perf_counter()
    for sf in (df["sex"], df["race"], df[["sex", "race"]]):
        mf = MetricFrame(metrics=metrics, y_true=y, y_pred=yhat, sensitive_features=sf, **boot)
        mf.difference(), mf.ratio()
        if scores:
            MetricFrame(metrics={"auc": roc_auc_score, "brier_score": brier_score_loss, "ece": ece}, y_true=y,
                        y_pred=s, sensitive_features=sf, **boot)
    return time.perf_counter() - start


t0 = run(None)
print(f"{t0:.3f} {run(n_boot):.3f}")
