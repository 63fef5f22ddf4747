"""Peer side of bench/explain/tree_shap.sh: an XGBoost model on UCI Adult and shap.TreeExplainer's times.

Usage: ${PYTHON:-.venv/bin/python} bench/explain/tree_shap_peer.py prep DIR
       ${PYTHON:-.venv/bin/python} bench/explain/tree_shap_peer.py time DIR MODE THREADS
  prep  trains XGBClassifier(n_estimators=500, max_depth=6, learning_rate=0.1, tree_method="hist",
        random_state=0) on adult.data's five numeric columns (age, education-num, capital-gain,
        capital-loss, hours-per-week; the columns of models/adult), exports it with onnxmltools'
        defaults to DIR/adult_xgb.onnx and writes DIR/x.npy (the first 10,000 rows of adult.test),
        DIR/bg.npy (the first 100 rows of adult.data: the interventional background) and
        DIR/train.npy (all of adult.data: mlaudit's covers for the path-dependent run).
  time  MODE path: shap.TreeExplainer(model).shap_values(X) — shap hands path-dependent XGBoost models
        to XGBoost's own C++ TreeSHAP (predict(pred_contribs=True)), run with nthread=THREADS;
        MODE path-shap: shap's own C++ tree_shap (single-threaded), given the model as a dict of
        trees with covers counted from DIR/train.npy, mlaudit's covers (so the values must agree);
        MODE interventional: shap.TreeExplainer(model, data=bg, feature_perturbation="interventional")
        .shap_values(X) (shap's C++ dense_independent, single-threaded: it has no thread option).
        MODE interactions: shap_interaction_values of the first 1,000 rows, shap's C++ with mlaudit's
        covers (single-threaded).
        Prints "<wall seconds> <CPU seconds>" of one call (a warm-up call on 10 rows first) and saves the values to
        DIR/shap_MODE.npy for the agreement check.
"""
import os
import sys
import time
import warnings

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ADULT = os.path.join(os.path.dirname(ROOT), "shared", "datasets", "adult")
COLUMNS = [0, 4, 10, 11, 12]  # age, education-num, capital-gain, capital-loss, hours-per-week
warnings.filterwarnings("ignore")


def read(path, skip=0):
    rows, labels = [], []
    with open(path) as f:
        for i, line in enumerate(f):
            if i < skip:
                continue
            parts = [p.strip() for p in line.strip().rstrip(".").split(",")]
            if len(parts) < 15:
                continue
            rows.append([float(parts[c]) for c in COLUMNS])
            labels.append(1 if parts[14].startswith(">50K") else 0)
    return np.asarray(rows, dtype=np.float32), np.asarray(labels, dtype=np.int64)


def model(d, threads=2):
    import xgboost

    m = xgboost.XGBClassifier()
    m.load_model(os.path.join(d, "adult_xgb.json"))
    m.set_params(n_jobs=threads)
    return m


def prep(d):
    import onnxmltools
    import xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType

    os.makedirs(d, exist_ok=True)
    x_train, y_train = read(os.path.join(ADULT, "adult.data"))
    x_test, _ = read(os.path.join(ADULT, "adult.test"), skip=1)
    m = xgboost.XGBClassifier(n_estimators=500, max_depth=6, learning_rate=0.1, tree_method="hist", random_state=0,
                              n_jobs=2, base_score=0.5)
    m.fit(x_train, y_train)
    m.save_model(os.path.join(d, "adult_xgb.json"))
    onx = onnxmltools.convert_xgboost(m, initial_types=[("input", FloatTensorType([None, len(COLUMNS)]))])
    with open(os.path.join(d, "adult_xgb.onnx"), "wb") as f:
        f.write(onx.SerializeToString())
    np.save(os.path.join(d, "x.npy"), x_test[:10000])
    np.save(os.path.join(d, "bg.npy"), x_train[:100])
    np.save(os.path.join(d, "train.npy"), x_train)


def as_dict(m, cover):
    """The XGBoost model as shap's dict of trees with covers counted from `cover` (shap's
    dense_tree_update_weights), as mlaudit's, so shap runs its own C++ tree_shap on the same game."""
    from shap.explainers._tree import TreeEnsemble

    te = TreeEnsemble(m, data=cover.astype(np.float64), data_missing=np.isnan(cover), model_output="raw")
    trees = []
    for i, t in enumerate(te.trees):
        w = te.node_sample_weight[i].copy()
        w[len(t.children_left):] = 1.0
        trees.append({"children_left": te.children_left[i], "children_right": te.children_right[i],
                      "children_default": te.children_default[i], "features": te.features[i],
                      "thresholds": te.thresholds[i], "values": te.values[i], "node_sample_weight": w})
    return {"trees": trees, "base_offset": te.base_offset, "tree_output": te.tree_output, "objective": te.objective,
            "input_dtype": np.float32, "internal_dtype": np.float64}


def time_it(d, mode, threads):
    import shap

    x = np.load(os.path.join(d, "x.npy"))
    m = model(d, threads)
    if mode == "interactions":
        x = x[:1000]
        ex = shap.TreeExplainer(as_dict(m, np.load(os.path.join(d, "train.npy"))), feature_perturbation="tree_path_dependent")
        ex.shap_interaction_values(x[:10])
        t0, c0 = time.perf_counter(), time.process_time()
        v = ex.shap_interaction_values(x)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        np.save(os.path.join(d, "shap_interactions.npy"), np.asarray(v, dtype=np.float64))
        print(f"{seconds:.4f} {cpu:.4f}")
        return
    if mode == "path":
        ex = shap.TreeExplainer(m)
    elif mode == "path-shap":
        ex = shap.TreeExplainer(as_dict(m, np.load(os.path.join(d, "train.npy"))), feature_perturbation="tree_path_dependent")
    else:
        ex = shap.TreeExplainer(m, data=np.load(os.path.join(d, "bg.npy")), feature_perturbation="interventional")
    ex.shap_values(x[:10], check_additivity=False)  # warm-up
    t0, c0 = time.perf_counter(), time.process_time()
    v = ex.shap_values(x, check_additivity=False)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    np.save(os.path.join(d, f"shap_{mode}.npy"), np.asarray(v, dtype=np.float64))
    print(f"{seconds:.4f} {cpu:.4f}")


if __name__ == "__main__":
    if sys.argv[1] == "prep":
        prep(sys.argv[2])
    else:
        time_it(sys.argv[2], sys.argv[3], int(sys.argv[4]))
