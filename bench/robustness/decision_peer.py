#!/usr/bin/env python3
"""Peer runs for bench/robustness/decision.sh: ART's HopSkipJump (L2, Linf) and BoundaryAttack, and
Foolbox 3's BoundaryAttack, all with their defaults, on the credit rows xgb_binary classifies
correctly among the first N, through onnxruntime.

Usage: ${PYTHON:-.venv/bin/python} bench/robustness/decision_peer.py REPO_ROOT N OUT_DIR
Writes OUT_DIR/x.npy, OUT_DIR/y.npy (the attacked rows, for mlaudit) and prints one JSON line:
per attack the wall seconds, the median distance over the rows it broke, rows broken and mean
queries per row (model rows evaluated, counted in the predict function).
"""
import json
import os
import sys
import time

import numpy as np
import onnxruntime as ort

root, n, out_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
DOMAIN = (0.0, 250.0)
TREES = os.path.join(root, "tests", "fixtures", "trees")
so = ort.SessionOptions()
so.intra_op_num_threads = 2  # as mlaudit --threads 2
sess = ort.InferenceSession(os.path.join(TREES, "xgb_binary.onnx"), so, providers=["CPUExecutionProvider"])
queries = [0]


def predict(x):
    x = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
    queries[0] += len(x)
    return sess.run(["probabilities"], {"input": x})[0]


x = np.load(os.path.join(TREES, "credit_x.npy"))[:n].astype(np.float32)
y = np.load(os.path.join(TREES, "credit_y.npy"))[:n].astype(np.int64)
keep = np.argmax(predict(x), 1) == y
x, y = x[keep], y[keep]
np.save(os.path.join(out_dir, "x.npy"), x)
np.save(os.path.join(out_dir, "y.npy"), y)
out = {"rows": int(len(x))}


def summary(name, adv, seconds, norm):
    broken = np.argmax(predict(adv), 1) != y
    diff = (adv - x).reshape(len(x), -1).astype(np.float64)
    d = np.linalg.norm(diff, axis=1) if norm == "l2" else np.abs(diff).max(1)
    out[name] = {"seconds": seconds, "median": float(np.median(d[broken])) if broken.any() else None,
                 "broken": int(broken.sum()), "queries_per_row": queries[0] / len(x)}


from art.attacks.evasion import BoundaryAttack as ArtBoundary  # noqa: E402
from art.attacks.evasion import HopSkipJump  # noqa: E402
from art.estimators.classification import BlackBoxClassifier  # noqa: E402
import foolbox as fb  # noqa: E402

np.random.seed(0)
clf = BlackBoxClassifier(predict, input_shape=(x.shape[1],), nb_classes=2, clip_values=DOMAIN)
for norm in ("l2", "linf"):
    queries[0] = 0
    t0 = time.perf_counter()
    adv = HopSkipJump(clf, norm=2 if norm == "l2" else np.inf, verbose=False).generate(x)
    summary(f"art_hsja_{norm}", adv, time.perf_counter() - t0, norm)
queries[0] = 0
t0 = time.perf_counter()
fmodel = fb.models.NumPyModel(lambda z: np.log(np.maximum(predict(z), 1e-30)), bounds=DOMAIN)
adv = np.asarray(fb.attacks.BoundaryAttack().run(fmodel, x, fb.criteria.Misclassification(y)))
summary("foolbox_boundary_l2", adv, time.perf_counter() - t0, "l2")
queries[0] = 0
t0 = time.perf_counter()
adv = ArtBoundary(clf, targeted=False, verbose=False).generate(x)
summary("art_boundary_l2", adv, time.perf_counter() - t0, "l2")
print(json.dumps(out))
