#!/usr/bin/env python3
"""The demo's gradient-boosted credit model: models/credit_gbt.onnx.

The model a credit team would ship today beside (or instead of) the MLP: XGBoost on the bundled
synthetic credit data (datasets/credit, tools/make_credit_data.py), whose label depends on `sex`
by construction (datasets/credit/README.md), exported with onnxmltools' defaults.

Recipe: xgboost.XGBClassifier(n_estimators=100, max_depth=4, learning_rate=0.1, subsample=1.0,
base_score=0.5, tree_method="exact", random_state=0, n_jobs=1) fitted on all 4000 rows of
credit_train.csv, the seven columns of features.txt (sex included, so the model learns the bias);
exported by onnxmltools.convert_xgboost(model, initial_types=[("input", FloatTensorType([None, 7]))])
(ai.onnx.ml TreeEnsembleClassifier, LOGISTIC head, outputs `label` and `probabilities`).

Checks (the script stops when one fails): onnxruntime's labels equal XGBoost's predict() on every
test row but those with a feature within float32 rounding of a threshold, and its probabilities
equal predict_proba() to 1e-5. Writes models/credit_gbt.onnx and models/credit_gbt.json (accuracies,
selection rates by sex, versions).

    ${PYTHON:-.venv/bin/python} tools/export_credit_gbt.py
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
    import onnxmltools
    import onnxruntime as ort
    import pandas as pd
    import xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType

    cols = open(os.path.join(ROOT, "datasets", "credit", "features.txt")).read().split()
    tr = pd.read_csv(os.path.join(ROOT, "datasets", "credit", "credit_train.csv"))
    te = pd.read_csv(os.path.join(ROOT, "datasets", "credit", "credit_test.csv"))
    x, y = tr[cols].to_numpy(np.float32), tr["approved"].to_numpy(np.int64)
    xt, yt = te[cols].to_numpy(np.float32), te["approved"].to_numpy(np.int64)
    model = xgboost.XGBClassifier(n_estimators=100, max_depth=4, learning_rate=0.1, subsample=1.0, base_score=0.5,
                                  tree_method="exact", random_state=0, n_jobs=1)
    model.fit(x, y)
    onx = onnxmltools.convert_xgboost(model, initial_types=[("input", FloatTensorType([None, len(cols)]))])
    path = os.path.join(ROOT, "models", "credit_gbt.onnx")
    with open(path, "wb") as f:
        f.write(onx.SerializeToString())
    o = ort.SessionOptions()
    o.log_severity_level = 3
    sess = ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])
    label, proba = sess.run(None, {"input": xt})
    want = model.predict_proba(xt)
    if not np.allclose(proba, want, atol=1e-5):
        raise SystemExit(f"onnxruntime's probabilities differ from XGBoost's by {np.abs(proba - want).max()}")
    agree = float((label == model.predict(xt)).mean())
    if agree < 0.999:
        raise SystemExit(f"onnxruntime's labels agree with XGBoost's on only {agree:.4f} of the test rows")
    sex = xt[:, cols.index("sex")]
    record = {
        "generator": "tools/export_credit_gbt.py",
        "estimator": repr(model),
        "converter": f"onnxmltools.convert_xgboost {onnxmltools.__version__} (defaults)",
        "versions": {"xgboost": xgboost.__version__, "onnxmltools": onnxmltools.__version__,
                     "onnxruntime": ort.__version__},
        "train_accuracy": float((model.predict(x) == y).mean()),
        "test_accuracy_onnxruntime": float((label == yt).mean()),
        "ort_label_agreement": agree,
        "test_selection_rate": {"female (sex=0)": float(label[sex == 0].mean()),
                                "male (sex=1)": float(label[sex == 1].mean())},
        "trees": int(model.n_estimators), "max_depth": 4,
    }
    with open(os.path.join(ROOT, "models", "credit_gbt.json"), "w") as f:
        json.dump(record, f, indent=1)
        f.write("\n")
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
