#!/usr/bin/env python3
"""Tree-ensemble models as users export them, for the tree capabilities (TreeSHAP, tree
verification, decision-based attacks, fairness proofs) and their goldens.

Each model is trained here, deterministically (fixed seeds, one thread), and exported with the
converter's defaults: skl2onnx.to_onnx for scikit-learn, onnxmltools.convert_xgboost /
convert_lightgbm for XGBoost / LightGBM. `build_models()` returns the native estimators with
their data so golden scripts (tools/trees_*_goldens.py) compute references from the same
models without pickles.

Data:
  credit   the bundled synthetic credit data (datasets/credit, made by tools/make_credit_data.py):
           7 features (features.txt; `sex` is column 6), label `approved`; train 4000 rows.
  three    3-class synthetic data, sklearn.datasets.make_classification(n_samples=1500,
           n_features=6, n_informative=4, n_classes=3, random_state=3).
  income   regression target: credit `income` from the other 6 credit columns.

Models (tests/fixtures/trees/<name>.onnx):
  xgb_binary      XGBClassifier(n_estimators=40, max_depth=4, learning_rate=0.3), credit
  xgb_multi       XGBClassifier(n_estimators=15, max_depth=3), three (3 classes x 15 trees)
  lgbm_binary     LGBMClassifier(n_estimators=40, num_leaves=15), credit
  sk_gbt_binary   GradientBoostingClassifier(n_estimators=40, max_depth=3), credit
  sk_rf_binary    RandomForestClassifier(n_estimators=15, max_depth=5), credit
  sk_dt_multi     DecisionTreeClassifier(max_depth=5), three
  sk_gbt_reg      GradientBoostingRegressor(n_estimators=30, max_depth=3), income
  xgb_reg         XGBRegressor(n_estimators=30, max_depth=3), income
  lgbm_reg        LGBMRegressor(n_estimators=30, num_leaves=8), income
  small_xgb       XGBClassifier(n_estimators=3, max_depth=2), credit columns 0..3 only: small
                  enough for exhaustive leaf-region enumeration in the verifier's tests
  sk_pipe_gbt     Pipeline([StandardScaler(), GradientBoostingClassifier(n_estimators=20, max_depth=3)]),
                  credit: skl2onnx writes a Scaler in front of the trees, which the exact tree
                  methods fold into the thresholds
  sk_pipe_rf_reg  Pipeline([MinMaxScaler(), RandomForestRegressor(n_estimators=8, max_depth=4)]), income
Data files: credit_x.npy (float32 [200, 7], the first 200 test rows), credit_y.npy (int64),
  credit_train_x.npy (float32 [4000, 7]; Fortran order, as np.save writes DataFrame.to_numpy()'s
  F-contiguous result: the readers' Fortran-order test reads it), three_x.npy / three_y.npy (first 200 rows of the
  3-class set's held-out part), income_x.npy (float32 [200, 6]), small_x.npy (float32 [100, 4]).
manifest.json: per model, the file, the library and converter versions, the estimator repr, the
  data set, classes/outputs, and the check that onnxruntime's labels equal the library's
  predict() on the data rows.

    ${PYTHON:-.venv/bin/python} tools/export_tree_models.py [--out tests/fixtures/trees]

Reruns reproduce the models' trees, but onnxmltools' files are not byte-identical from run to run;
the goldens made from these files (tools/trees_*_goldens.py) read the committed files, so rerun
them after regenerating (or add only new models, as the pipelines were added).
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import project_python  # noqa: E402

project_python.use()

import numpy as np  # noqa: E402

ROOT = project_python.ROOT


def credit():
    import pandas as pd

    tr = pd.read_csv(os.path.join(ROOT, "datasets", "credit", "credit_train.csv"))
    te = pd.read_csv(os.path.join(ROOT, "datasets", "credit", "credit_test.csv"))
    cols = [c for c in tr.columns if c != "approved"]
    return (tr[cols].to_numpy(np.float32), tr["approved"].to_numpy(np.int64), te[cols].to_numpy(np.float32),
            te["approved"].to_numpy(np.int64), cols)


def three():
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=1500, n_features=6, n_informative=4, n_redundant=1, n_classes=3,
                               random_state=3)
    X = X.astype(np.float32)
    return X[:1200], y[:1200].astype(np.int64), X[1200:], y[1200:].astype(np.int64)


def build_models():
    """name -> dict(est, lib, X_train, y_train, X_test, y_test, task, notes)."""
    import lightgbm
    import xgboost
    from sklearn.ensemble import (GradientBoostingClassifier, GradientBoostingRegressor, RandomForestClassifier,
                                  RandomForestRegressor)
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import MinMaxScaler, StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    xc, yc, xct, yct, _ = credit()
    x3, y3, x3t, y3t = three()
    # income (column 1) from the other six credit columns
    keep = [0, 2, 3, 4, 5, 6]
    xi, yi = xc[:, keep], xc[:, 1].astype(np.float64)
    xit, yit = xct[:, keep], xct[:, 1].astype(np.float64)
    xs, xst = xc[:, :4], xct[:, :4]

    xgb_common = dict(random_state=0, n_jobs=1, base_score=0.5, tree_method="exact")
    specs = {
        "xgb_binary": (lambda: xgboost.XGBClassifier(n_estimators=40, max_depth=4, learning_rate=0.3, **xgb_common),
                       "xgboost", xc, yc, xct, yct, "binary"),
        "xgb_multi": (lambda: xgboost.XGBClassifier(n_estimators=15, max_depth=3, learning_rate=0.3, **xgb_common),
                      "xgboost", x3, y3, x3t, y3t, "multiclass"),
        "lgbm_binary": (lambda: lightgbm.LGBMClassifier(n_estimators=40, num_leaves=15, random_state=0, n_jobs=1,
                                                        verbose=-1, deterministic=True),
                        "lightgbm", xc, yc, xct, yct, "binary"),
        "sk_gbt_binary": (lambda: GradientBoostingClassifier(n_estimators=40, max_depth=3, random_state=0),
                          "sklearn", xc, yc, xct, yct, "binary"),
        "sk_rf_binary": (lambda: RandomForestClassifier(n_estimators=15, max_depth=5, random_state=0),
                         "sklearn", xc, yc, xct, yct, "binary"),
        "sk_dt_multi": (lambda: DecisionTreeClassifier(max_depth=5, random_state=0), "sklearn", x3, y3, x3t, y3t,
                        "multiclass"),
        "sk_gbt_reg": (lambda: GradientBoostingRegressor(n_estimators=30, max_depth=3, random_state=0), "sklearn",
                       xi, yi, xit, yit, "regression"),
        "xgb_reg": (lambda: xgboost.XGBRegressor(n_estimators=30, max_depth=3, learning_rate=0.3, random_state=0,
                                                 n_jobs=1, base_score=50.0, tree_method="exact"),
                    "xgboost", xi, yi, xit, yit, "regression"),
        "lgbm_reg": (lambda: lightgbm.LGBMRegressor(n_estimators=30, num_leaves=8, random_state=0, n_jobs=1,
                                                    verbose=-1, deterministic=True),
                     "lightgbm", xi, yi, xit, yit, "regression"),
        "small_xgb": (lambda: xgboost.XGBClassifier(n_estimators=3, max_depth=2, learning_rate=0.5, **xgb_common),
                      "xgboost", xs, yc, xst, yct, "binary"),
        "sk_pipe_gbt": (lambda: Pipeline([("scale", StandardScaler()),
                                          ("gbt", GradientBoostingClassifier(n_estimators=20, max_depth=3,
                                                                             random_state=0))]),
                        "sklearn", xc, yc, xct, yct, "binary"),
        "sk_pipe_rf_reg": (lambda: Pipeline([("scale", MinMaxScaler()),
                                             ("rf", RandomForestRegressor(n_estimators=8, max_depth=4,
                                                                          random_state=0))]),
                           "sklearn", xi, yi, xit, yit, "regression"),
    }
    out = {}
    for name, (ctor, lib, X, y, Xt, yt, task) in specs.items():
        est = ctor()
        est.fit(X, y)
        out[name] = dict(est=est, lib=lib, X_train=X, y_train=y, X_test=Xt, y_test=yt, task=task)
    return out


def to_onnx_model(name, m):
    est, lib, X = m["est"], m["lib"], m["X_train"]
    if lib == "sklearn":
        from skl2onnx import to_onnx

        return to_onnx(est, X[:1]), "skl2onnx.to_onnx (defaults)"
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    types = [("input", FloatTensorType([None, X.shape[1]]))]
    if lib == "xgboost":
        return onnxmltools.convert_xgboost(est, initial_types=types), "onnxmltools.convert_xgboost (defaults)"
    return onnxmltools.convert_lightgbm(est, initial_types=types), "onnxmltools.convert_lightgbm (defaults)"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "trees"))
    args = ap.parse_args(argv)
    import lightgbm
    import onnx
    import onnxmltools
    import onnxruntime as ort
    import skl2onnx
    import sklearn
    import xgboost

    os.makedirs(args.out, exist_ok=True)
    models = build_models()
    manifest = {"generator": "tools/export_tree_models.py",
                "versions": {"numpy": np.__version__, "onnx": onnx.__version__, "onnxruntime": ort.__version__,
                             "scikit-learn": sklearn.__version__, "skl2onnx": skl2onnx.__version__,
                             "onnxmltools": onnxmltools.__version__, "xgboost": xgboost.__version__,
                             "lightgbm": lightgbm.__version__},
                "models": {}}
    data_of = {}
    for name, m in models.items():
        onx, how = to_onnx_model(name, m)
        path = os.path.join(args.out, name + ".onnx")
        with open(path, "wb") as f:
            f.write(onx.SerializeToString())
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        xt = m["X_test"][:200]
        res = sess.run(None, {sess.get_inputs()[0].name: xt})
        want = m["est"].predict(xt)
        if m["task"] == "regression":
            got = np.asarray(res[0]).reshape(-1)
            ok = bool(np.allclose(got, want, rtol=1e-4, atol=1e-3))
        else:
            got = np.asarray(res[0]).reshape(-1)
            ok = bool((got == want).mean() >= 0.995)  # float32 thresholds may move a row on a boundary
        if not ok:
            raise SystemExit(f"{name}: onnxruntime disagrees with {m['lib']} predict()")
        manifest["models"][name] = {"file": name + ".onnx", "library": m["lib"], "converter": how,
                                    "estimator": repr(m["est"]), "task": m["task"],
                                    "features": int(m["X_train"].shape[1]),
                                    "outputs": [o.name for o in sess.get_outputs()],
                                    "ort_agrees_with_predict_on_200_rows": ok}
    xc, yc, xct, yct, cols = credit()
    x3, y3, x3t, y3t = three()
    np.save(os.path.join(args.out, "credit_x.npy"), xct[:200])
    np.save(os.path.join(args.out, "credit_y.npy"), yct[:200])
    np.save(os.path.join(args.out, "credit_train_x.npy"), xc)
    np.save(os.path.join(args.out, "three_x.npy"), x3t[:200])
    np.save(os.path.join(args.out, "three_y.npy"), y3t[:200])
    np.save(os.path.join(args.out, "income_x.npy"), models["xgb_reg"]["X_test"][:200])
    np.save(os.path.join(args.out, "small_x.npy"), models["small_xgb"]["X_test"][:100])
    manifest["credit_columns"] = cols
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    print(f"wrote {len(models)} models to {args.out}")


if __name__ == "__main__":
    main()
