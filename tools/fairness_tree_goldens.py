#!/usr/bin/env python3
"""Goldens for `mlaudit fairness --model` on a tree ensemble (models/credit_gbt.onnx, XGBoost via
onnxmltools) over datasets/credit/credit_test.csv: decisions and scores from onnxruntime, metrics
from Fairlearn, the counterfactual flip test recomputed with numpy.

Decisions: onnxruntime's `probabilities` output, argmax (class 1 = approved), as mlaudit decides.
Scores: P(approved); `--threshold 0.7` decisions are score >= 0.7 (mlaudit's higher-is-favorable rule).
Metrics (Fairlearn 0.15 MetricFrame / demographic_parity_difference / _ratio /
equalized_odds_difference, sensitive feature `sex`): per-group selection rate and TPR, the three
disparities; for the thresholded decisions the same. Flip test: `sex` set to 1 - sex (the only other
group), flip rate = share of rows whose decision changes, and the first 20 flipped rows.

Writes tests/fixtures/fairness/credit_gbt.json.

    ${PYTHON:-.venv/bin/python} tools/fairness_tree_goldens.py      # needs onnxruntime, pandas, fairlearn
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import project_python  # noqa: E402

project_python.use()

import numpy as np  # noqa: E402

ROOT = project_python.ROOT


def main():
    import fairlearn
    import onnxruntime as ort
    import pandas as pd
    from fairlearn.metrics import (MetricFrame, demographic_parity_difference, demographic_parity_ratio,
                                   equalized_odds_difference, selection_rate, true_positive_rate)

    feats = open(os.path.join(ROOT, "datasets", "credit", "features.txt")).read().split()
    df = pd.read_csv(os.path.join(ROOT, "datasets", "credit", "credit_test.csv"))
    X = np.ascontiguousarray(df[feats].to_numpy(np.float32))
    y = df["approved"].to_numpy(int)
    o = ort.SessionOptions()
    o.log_severity_level = 3
    sess = ort.InferenceSession(os.path.join(ROOT, "models", "credit_gbt.onnx"), o, providers=["CPUExecutionProvider"])

    def run(x):
        p = sess.run(["probabilities"], {"input": x})[0].astype(np.float64)
        return p.argmax(1), p[:, 1]

    col = feats.index("sex")
    sex = X[:, col]
    d, s = run(X)
    Xc = X.copy()
    Xc[:, col] = 1.0 - Xc[:, col]
    dc, sc = run(Xc)

    def block(dec):
        mf = MetricFrame(metrics={"selection_rate": selection_rate, "tpr": true_positive_rate}, y_true=y, y_pred=dec,
                         sensitive_features=sex)
        return {"selection_rate_by_sex": {str(int(k)): float(v) for k, v in mf.by_group["selection_rate"].items()},
                "tpr_by_sex": {str(int(k)): float(v) for k, v in mf.by_group["tpr"].items()},
                "demographic_parity_difference": float(demographic_parity_difference(y, dec, sensitive_features=sex)),
                "demographic_parity_ratio": float(demographic_parity_ratio(y, dec, sensitive_features=sex)),
                "equalized_odds_difference": float(equalized_odds_difference(y, dec, sensitive_features=sex))}

    flipped = np.nonzero(d != dc)[0]
    res = {"generator": "tools/fairness_tree_goldens.py", "fairlearn": fairlearn.__version__,
           "onnxruntime": ort.__version__, "rows": int(len(X)),
           "argmax": block(d),
           "threshold_0.7": block((s >= 0.7).astype(int)),
           "flip_rate": float(np.mean(d != dc)), "mean_score_change": float(np.mean(sc - s)),
           "first_flipped": [int(i) for i in flipped[:20]]}
    out = os.path.join(ROOT, "tests", "fixtures", "fairness", "credit_gbt.json")
    with open(out, "w") as f:
        json.dump(res, f, indent=1, sort_keys=True)
        f.write("\n")
    print(json.dumps(res, indent=1)[:800])


if __name__ == "__main__":
    main()
