#!/usr/bin/env python3
"""Golden TreeSHAP values for tests/explain/test_tree_shap.cpp, from shap.TreeExplainer on the very
trees that tools/export_tree_models.py exports (its build_models() retrains them deterministically).

Run from the repository root (needs shap besides export_tree_models.py's packages:
.venv/bin/pip install shap):

    ${PYTHON:-.venv/bin/python} tools/trees_shap_goldens.py [--out tests/fixtures/trees/shap]

For each model (xgb_binary, xgb_multi, lgbm_binary, sk_gbt_binary, sk_rf_binary, sk_dt_multi,
sk_gbt_reg, xgb_reg, lgbm_reg) it writes <model>.json with, on the first 20 "safe" rows of the
committed data file (credit_x.npy, three_x.npy, income_x.npy):

- interventional: shap.TreeExplainer(est, data=background, feature_perturbation="interventional")
  .shap_values(X), background = the first 100 safe training rows, model_output="raw";
- probability (models with a logistic link: xgb_binary, lgbm_binary, sk_gbt_binary): the same
  with model_output="probability" (shap's per-reference rescaling); shap refuses it for the
  softmax models;
- path_dependent and interactions (first 10 rows): covers counted from a cover set (the safe
  training rows). ONNX stores no covers and XGBoost's own covers are hessian sums, so shap is
  given the counts: shap.explainers._tree.TreeEnsemble(est, data=cover, data_missing=...) parses
  the native trees and recounts node_sample_weight from the data (shap's dense_tree_update_weights),
  and those trees are passed to shap.TreeExplainer as a custom model dict
  ({"trees": [{children_left, children_right, children_default, features, thresholds, values,
  node_sample_weight}], "base_offset": ...}). The dict keeps shap from delegating to XGBoost's
  pred_contribs / LightGBM's pred_contrib (which use the libraries' own covers) and runs shap's C++
  tree_shap. For scikit-learn GBT and decision trees (no subsampling) the counts from the full
  training data equal weighted_n_node_samples: checked here and recorded under "checks"
  (a random forest's bootstrap makes its weighted_n_node_samples differ, as expected).

Safe rows: ONNX holds float32 thresholds and x <= t / x < t conventions, the libraries float64
thresholds or their own conventions. A row is used only when none of its features lies within
4 float32 ulps (2.5e-7 relative) of any threshold of the model (the native float64 ones and their
float32 roundings), so every convention sends it the same way; the onnxruntime outputs of
the chosen rows are also checked against the library's predictions (probabilities to 1e-5).
Row indices are recorded so that the C++ test reads the same rows from the committed .npy files.

The cover/background source for the three-class set is its training part, written here as
three_train_x.npy (1200 x 6 float32); credit and income use the credit training rows, written here
as a C-order copy of ../credit_train_x.npy (stored in Fortran order, which mlaudit's npy reader
refuses) (income: columns 0,2,3,4,5,6). shap's cover recount replaces zero counts by 1e-6; the safe cover sets here reach
every node (checked: "uncovered_nodes": 0), where that rule and mlaudit's (zero fractions) agree.
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
FIX = os.path.join(ROOT, "tests", "fixtures", "trees")
MODELS = ["xgb_binary", "xgb_multi", "lgbm_binary", "sk_gbt_binary", "sk_rf_binary", "sk_dt_multi", "sk_gbt_reg",
          "xgb_reg", "lgbm_reg"]
LOGISTIC = {"xgb_binary", "lgbm_binary", "sk_gbt_binary"}
ROWS, INTERACTION_ROWS, BACKGROUND = 20, 10, 100


def onnx_thresholds(path):
    """(feature, float32 threshold) pairs of the model's tree-ensemble node."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(path)
    for node in m.graph.node:
        if node.op_type.startswith("TreeEnsemble"):
            a = {x.name: x for x in node.attribute}
            feats = list(a["nodes_featureids"].ints)
            if "nodes_values" in a:
                vals = list(a["nodes_values"].floats)
            else:
                vals = numpy_helper.to_array(a["nodes_values_as_tensor"].t).tolist()
            modes = [s.decode() for s in a["nodes_modes"].strings]
            return [(f, np.float32(v)) for f, v, md in zip(feats, vals, modes) if md != "LEAF"]
    raise SystemExit(f"{path}: no tree ensemble node")


def safe_mask(X, pairs):
    """True for rows with no feature within 4 float32 ulps (2.5e-7 relative) of one of the thresholds:
    the float64 and float32 copies of a threshold differ by at most half an ulp, so such rows take
    the same branch under every convention (x <= t, x < t, either precision)."""
    ok = np.ones(X.shape[0], dtype=bool)
    by_feature = {}
    for f, t in pairs:
        by_feature.setdefault(int(f), []).append(float(t))
    for f, ts in by_feature.items():
        ts = np.unique(np.asarray(ts, dtype=np.float64))
        x = X[:, f].astype(np.float64)
        hi = np.clip(np.searchsorted(ts, x), 0, len(ts) - 1)
        lo = np.clip(hi - 1, 0, len(ts) - 1)
        for t in (ts[hi], ts[lo]):
            ok &= np.abs(x - t) > 2.5e-7 * np.maximum(np.abs(x), np.abs(t))
    return ok


def as_nfk(v, n, f):
    a = np.asarray(v, dtype=np.float64)
    if a.ndim == 2:
        a = a[:, :, None]
    assert a.shape[:2] == (n, f), a.shape
    return a


def flat(a):
    return [float(v) for v in np.asarray(a, dtype=np.float64).reshape(-1)]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(FIX, "shap"))
    args = ap.parse_args(argv)
    import onnxruntime as ort
    import shap
    from shap.explainers._tree import TreeEnsemble

    from export_tree_models import build_models

    os.makedirs(args.out, exist_ok=True)
    models = build_models()
    # credit_train_x.npy is stored in Fortran order, which mlaudit's npy reader refuses: a C-order copy
    credit_train = np.ascontiguousarray(np.load(os.path.join(FIX, "credit_train_x.npy")))
    np.save(os.path.join(args.out, "credit_train_x.npy"), credit_train)
    three_train = models["xgb_multi"]["X_train"].astype(np.float32)
    np.save(os.path.join(args.out, "three_train_x.npy"), three_train)
    income_cols = [0, 2, 3, 4, 5, 6]
    sources = {"credit": ("credit_x.npy", "shap/credit_train_x.npy", None),
               "three": ("three_x.npy", "shap/three_train_x.npy", None),
               "income": ("income_x.npy", "shap/credit_train_x.npy", income_cols)}
    for name in MODELS:
        m = models[name]
        est = m["est"]
        kind = "three" if name in ("xgb_multi", "sk_dt_multi") else "income" if name.endswith("_reg") else "credit"
        data_file, train_file, cols = sources[kind]
        X_all = np.load(os.path.join(FIX, data_file))
        T_all = {"credit": credit_train, "three": three_train, "income": credit_train[:, income_cols]}[kind]
        assert np.array_equal(T_all, m["X_train"].astype(np.float32)), name
        onnx_path = os.path.join(FIX, name + ".onnx")
        te_native = TreeEnsemble(est, model_output="raw")
        pairs = onnx_thresholds(onnx_path)
        for t in te_native.trees:
            for f, thr in zip(t.features, t.thresholds):
                if f >= 0:
                    pairs.append((int(f), float(thr)))
        rows = np.flatnonzero(safe_mask(X_all, pairs))[:ROWS]
        cover_ok = safe_mask(T_all, pairs)
        cover_rows = np.flatnonzero(cover_ok)
        background_rows = cover_rows[:BACKGROUND]
        X = X_all[rows]
        cover = T_all[cover_rows]
        bg = T_all[background_rows]
        n, f = X.shape

        # onnxruntime agrees with the library on these rows
        sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
        res = sess.run(None, {sess.get_inputs()[0].name: X})
        if m["task"] == "regression":
            got, want = np.asarray(res[0]).reshape(-1), est.predict(X)
            assert np.allclose(got, want, rtol=1e-5, atol=1e-4), name
        else:
            proba = res[1]
            if isinstance(proba, list):
                proba = np.array([[d[k] for k in sorted(d)] for d in proba])
            assert np.allclose(np.asarray(proba), est.predict_proba(X), atol=1e-5), name

        out = {"generator": "tools/trees_shap_goldens.py", "shap_version": shap.__version__, "model": name + ".onnx",
               "data": data_file, "rows": rows.tolist(), "cover_data": train_file, "cover_columns": cols,
               "cover_rows_excluded": np.flatnonzero(~cover_ok).tolist(), "background_rows": background_rows.tolist(),
               "features": f}

        # interventional, raw
        ex = shap.TreeExplainer(est, data=bg, feature_perturbation="interventional", model_output="raw")
        sv = as_nfk(ex.shap_values(X, check_additivity=False), n, f)
        out["outputs"] = sv.shape[2]
        out["interventional"] = {"expected_value": flat(np.atleast_1d(ex.expected_value)), "values": flat(sv)}
        if name in LOGISTIC:
            exp_ = shap.TreeExplainer(est, data=bg, feature_perturbation="interventional", model_output="probability")
            pv = as_nfk(exp_.shap_values(X, check_additivity=False), n, f)
            out["probability"] = {"expected_value": flat(np.atleast_1d(exp_.expected_value)), "values": flat(pv)}

        # path-dependent with covers counted from the cover set
        te = TreeEnsemble(est, data=cover.astype(np.float64), data_missing=np.isnan(cover), model_output="raw")
        uncovered = int(sum(int((t.node_sample_weight <= 1e-6).sum()) for t in te.trees))
        # te's padded per-tree arrays (multi-class XGBoost: one output column per stacked tree)
        weights = te.node_sample_weight.copy()
        for i, t in enumerate(te.trees):
            weights[i, len(t.children_left):] = 1.0  # padding, never visited (shap checks it is > 0)
        trees = [{"children_left": te.children_left[i], "children_right": te.children_right[i],
                  "children_default": te.children_default[i], "features": te.features[i],
                  "thresholds": te.thresholds[i], "values": te.values[i],
                  "node_sample_weight": weights[i]} for i in range(len(te.trees))]
        model_dict = {"trees": trees, "base_offset": te.base_offset, "tree_output": te.tree_output,
                      "objective": te.objective, "input_dtype": np.float32, "internal_dtype": np.float64}
        # E f over the covers: base + sum over trees and leaves of value * cover / root cover
        expected = np.array(te.base_offset, dtype=np.float64).reshape(-1) + sum(
            (te.values[i] * (te.node_sample_weight[i] * (te.children_left[i] < 0))[:, None]).sum(0)
            / te.node_sample_weight[i][0] for i in range(len(te.trees)))
        pd = shap.TreeExplainer(model_dict, feature_perturbation="tree_path_dependent")
        pv = as_nfk(pd.shap_values(X, check_additivity=False), n, f)
        iv = np.asarray(pd.shap_interaction_values(X[:INTERACTION_ROWS]), dtype=np.float64)
        if iv.ndim == 3:
            iv = iv[..., None]
        out["path_dependent"] = {"expected_value": flat(expected), "values": flat(pv),
                                 "shap_expected_value": flat(np.atleast_1d(pd.expected_value))}
        out["interactions"] = {"rows": INTERACTION_ROWS, "values": flat(iv)}
        checks = {"uncovered_nodes": uncovered, "cover_rows": int(len(cover_rows)), "cover_set_rows": int(len(T_all))}
        if name in ("sk_gbt_binary", "sk_dt_multi", "sk_gbt_reg", "sk_rf_binary"):
            full = TreeEnsemble(est, data=T_all.astype(np.float64), data_missing=np.isnan(T_all))
            trees_native = [e.tree_ for e in np.ravel(getattr(est, "estimators_", [est]))] if hasattr(est, "estimators_") \
                else [est.tree_]
            equal = all(np.array_equal(t.node_sample_weight, tn.weighted_n_node_samples)
                        for t, tn in zip(full.trees, trees_native))
            checks["training_counts_equal_weighted_n_node_samples"] = bool(equal)
        out["checks"] = checks
        # local accuracy of shap's own values, for the record
        raw = te_native.predict(X)
        raw = raw.reshape(n, -1)
        out["checks"]["shap_path_dependent_local_accuracy_max_gap"] = float(
            np.abs(pv.sum(1) + expected - raw).max())
        with open(os.path.join(args.out, name + ".json"), "w") as fh:
            json.dump(out, fh, separators=(",", ":"))
            fh.write("\n")
        print(f"{name}: {n} rows, {f} features, {sv.shape[2]} outputs, {len(cover_rows)} cover rows, checks {checks}")


if __name__ == "__main__":
    main()
