#!/usr/bin/env python3
"""The README's UCI Adult model: a scikit-learn gradient-boosted tree classifier exported with skl2onnx's
defaults, as a team that ships a scikit-learn model would export it.

Data: ../shared/datasets/adult/ (UCI Adult, CC BY 4.0; see ../shared/datasets/SOURCES.md), read in place.
Rows holding '?' are dropped (AIF360's rule, and `mlaudit fairness --dataset adult`'s default), so the
model is evaluated on the same 15,060 rows of adult.test the README's fairness walkthrough reads.

Model: sklearn.ensemble.GradientBoostingClassifier(n_estimators=200, max_depth=3, learning_rate=0.1,
random_state=0) on the five numeric columns of adult.data, named as in adult.names and as
`mlaudit fairness --dataset adult` names them (features.txt):

    age, education-num, capital-gain, capital-loss, hours-per-week

The model never sees `sex` or `race` (fairness through unawareness); the fairness walkthrough measures
what that leaves. Exported with `skl2onnx.to_onnx(model, X[:1])`: float32 input `X` [N, 5], outputs
`label` (int64) and `probabilities` (a ZipMap, as skl2onnx writes it by default; mlaudit audits the
probability tensor in front of it, docs/models.md).

Writes models/adult/:
  adult_gbt.onnx   the model
  features.txt     its input columns, one per line (`--features @models/adult/features.txt`)
  metrics.json     accuracies (sklearn and onnxruntime), agreement, sizes, versions
With --split-dir DIR also a numeric test split for `mlaudit init` / `mlaudit audit` on your own files
(never committed: the data stays in ../shared/datasets):
  DIR/adult_test.csv   adult.test rows kept: the five features, sex, race, income (1 = >50K)
  DIR/adult_test_x.npy float32 [N, 5] features;  DIR/adult_test_y.npy int64 [N] income

Python: $PYTHON or the repo-local .venv (tools/project_python.py); needs scikit-learn, skl2onnx, onnx,
onnxruntime, pandas.
    ${PYTHON:-.venv/bin/python} tools/export_adult_model.py [--shared ../shared/datasets] [--split-dir DIR]
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import project_python  # noqa: E402

project_python.use()

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import pandas as pd  # noqa: E402
import skl2onnx  # noqa: E402
import sklearn  # noqa: E402
from skl2onnx import to_onnx  # noqa: E402
from sklearn.ensemble import GradientBoostingClassifier  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "models", "adult")
# Column names of adult.names, as mlaudit's Adult reader (fairness/src/datasets.cpp) names them.
COLUMNS = ["age", "workclass", "fnlwgt", "education", "education-num", "marital-status", "occupation",
           "relationship", "race", "sex", "capital-gain", "capital-loss", "hours-per-week", "native-country",
           "income"]
FEATURES = ["age", "education-num", "capital-gain", "capital-loss", "hours-per-week"]


def read_adult(path, skiprows):
    """One Adult file with '?' rows dropped; income 1 for '>50K' (adult.test writes '>50K.')."""
    df = pd.read_csv(path, header=None, names=COLUMNS, skipinitialspace=True, na_values="?", skiprows=skiprows)
    df = df.dropna().reset_index(drop=True)
    df["income"] = df["income"].str.rstrip(".").eq(">50K").astype(np.int64)
    return df


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", default=os.path.join(ROOT, "..", "shared", "datasets"),
                    help="public datasets folder (default ../shared/datasets)")
    ap.add_argument("--split-dir", help="also write the numeric test split (CSV and .npy) here")
    args = ap.parse_args()
    adult = os.path.join(args.shared, "adult")
    train = read_adult(os.path.join(adult, "adult.data"), 0)
    test = read_adult(os.path.join(adult, "adult.test"), 1)  # line 1: '|1x3 Cross validator'
    x_train = train[FEATURES].to_numpy(np.float32)
    y_train = train["income"].to_numpy()
    x_test = test[FEATURES].to_numpy(np.float32)
    y_test = test["income"].to_numpy()

    model = GradientBoostingClassifier(n_estimators=200, max_depth=3, learning_rate=0.1, random_state=0)
    model.fit(x_train, y_train)
    onx = to_onnx(model, x_train[:1])  # skl2onnx defaults: input X, outputs output_label and ZipMap output_probability
    onnx.checker.check_model(onx)
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, "adult_gbt.onnx")
    with open(path, "wb") as f:
        f.write(onx.SerializeToString())
    with open(os.path.join(OUT, "features.txt"), "w") as f:
        f.write("\n".join(FEATURES) + "\n")

    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    label_ort = sess.run(["output_label"], {"X": x_test})[0]
    acc_ort = float((label_ort == y_test).mean())
    acc_sk = float((model.predict(x_test) == y_test).mean())
    agree = float((label_ort == model.predict(x_test)).mean())
    majority = float(max(y_test.mean(), 1 - y_test.mean()))
    by_sex = {s: float((label_ort[test["sex"].to_numpy() == s] == 1).mean()) for s in ["Female", "Male"]}
    metrics = {
        "model": "models/adult/adult_gbt.onnx",
        "bytes": os.path.getsize(path),
        "train_rows": int(len(y_train)),
        "test_rows": int(len(y_test)),
        "test_accuracy_onnxruntime": round(acc_ort, 4),
        "test_accuracy_sklearn": round(acc_sk, 4),
        "onnxruntime_sklearn_label_agreement": round(agree, 6),
        "test_majority_class_rate": round(majority, 4),
        "test_selection_rate_by_sex": {k: round(v, 4) for k, v in by_sex.items()},
        "opset": {d.domain or "ai.onnx": d.version for d in onx.opset_import},
        "versions": {"scikit-learn": sklearn.__version__, "skl2onnx": skl2onnx.__version__,
                     "onnx": onnx.__version__, "onnxruntime": ort.__version__},
    }
    with open(os.path.join(OUT, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"wrote {path} ({metrics['bytes']} bytes): test accuracy (onnxruntime, {len(y_test)} rows of adult.test) "
          f"{acc_ort:.4f}, sklearn {acc_sk:.4f}, labels agree on {agree:.4%}; majority class {majority:.4f}; "
          f"predicted >50K rate female {by_sex['Female']:.4f}, male {by_sex['Male']:.4f}")

    if args.split_dir:
        os.makedirs(args.split_dir, exist_ok=True)
        test[FEATURES + ["sex", "race", "income"]].to_csv(os.path.join(args.split_dir, "adult_test.csv"), index=False)
        np.save(os.path.join(args.split_dir, "adult_test_x.npy"), np.ascontiguousarray(x_test))
        np.save(os.path.join(args.split_dir, "adult_test_y.npy"), y_test.astype(np.int64))
        print(f"wrote {args.split_dir}/adult_test.csv, adult_test_x.npy, adult_test_y.npy ({len(y_test)} rows)")


if __name__ == "__main__":
    main()
