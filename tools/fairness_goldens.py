#!/usr/bin/env python3
"""Golden values for the fairness module (tests/fixtures/fairness/*), computed by
INDEPENDENT implementations: Fairlearn (MetricFrame and its disparity functions),
scikit-learn (precision/recall/AUC/Brier), AIF360 (generalized entropy and Theil
indices, between-group indices, kNN consistency), PyTorch (counterfactual flips; weights rebuilt from the
ONNX file by tools/mlaudit_torch.py, decisions cross-checked with onnxruntime).

Run from the repository root:
    .venv/bin/pip install fairlearn aif360 scikit-learn pandas onnxruntime
    ${PYTHON:-.venv/bin/python} tools/fairness_goldens.py [--shared ../shared/datasets]

Writes:
  toy.json                  Fairlearn's documented toy example (18 rows, groups a/b/c)
  adult_scores.npy          float64 scores of a logistic regression (trained on adult.data,
                            rounded to 3 decimals so AUC has ties) for the 15,060 rows of
                            adult.test left after dropping rows with '?' (AIF360's rule)
  german_scores.npy         same for the 1,000 German credit rows (in-sample fit)
  adult.json, german.json   per-group metrics, disparities, entropy indices, consistency
  credit_counterfactual.json  flip test of models/credit_mlp.onnx on datasets/credit/credit_test.csv
"""
import argparse
import json
import os
import warnings

import numpy as np
import pandas as pd

warnings.filterwarnings("ignore")

from fairlearn.metrics import (MetricFrame, count, demographic_parity_difference, demographic_parity_ratio,
                               equal_opportunity_difference, equal_opportunity_ratio, equalized_odds_difference,
                               equalized_odds_ratio, false_negative_rate, false_positive_rate, selection_rate,
                               true_negative_rate, true_positive_rate)
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, balanced_accuracy_score, brier_score_loss, precision_score, roc_auc_score
from sklearn.preprocessing import StandardScaler

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "fairness")

ADULT_COLS = ["age", "workclass", "fnlwgt", "education", "education-num", "marital-status", "occupation",
              "relationship", "race", "sex", "capital-gain", "capital-loss", "hours-per-week", "native-country",
              "income"]
GERMAN_COLS = ["status", "month", "credit_history", "purpose", "credit_amount", "savings", "employment",
               "investment_as_income_percentage", "personal_status", "other_debtors", "residence_since", "property",
               "age", "installment_plans", "housing", "number_of_credits", "skill_level", "people_liable_for",
               "telephone", "foreign_worker", "credit"]


def ece(y, s, bins=10):
    """Expected calibration error, 10 equal-width bins, bin = min(floor(s*bins), bins-1)."""
    b = np.minimum((s * bins).astype(int), bins - 1)
    total = 0.0
    for k in range(bins):
        m = b == k
        if m.any():
            total += m.sum() / len(y) * abs(y[m].mean() - s[m].mean())
    return float(total)


def group_metrics(y, yhat, s, sf):
    """Per-group metrics through Fairlearn's MetricFrame with sklearn/Fairlearn metric functions."""
    metrics = {
        "count": count,
        "base_rate": lambda yt, yp: float(np.mean(yt)),
        "selection_rate": selection_rate,
        "tpr": true_positive_rate,
        "fpr": false_positive_rate,
        "tnr": true_negative_rate,
        "fnr": false_negative_rate,
        "ppv": lambda yt, yp: precision_score(yt, yp, pos_label=1),
        "npv": lambda yt, yp: precision_score(yt, yp, pos_label=0),
        "accuracy": accuracy_score,
        "balanced_accuracy": balanced_accuracy_score,
    }
    mf = MetricFrame(metrics=metrics, y_true=y, y_pred=yhat, sensitive_features=sf)
    out = {}
    for key, row in mf.by_group.iterrows():
        name = "&".join(str(k) for k in key) if isinstance(key, tuple) else str(key)
        out[name] = {k: float(v) for k, v in row.items()}
    if s is not None:
        score_metrics = {"auc": roc_auc_score, "brier_score": brier_score_loss, "ece": ece}
        mfs = MetricFrame(metrics=score_metrics, y_true=y, y_pred=s, sensitive_features=sf)
        for key, row in mfs.by_group.iterrows():
            name = "&".join(str(k) for k in key) if isinstance(key, tuple) else str(key)
            out[name].update({k: float(v) for k, v in row.items()})
    return out, mf


def disparities(y, yhat, sf, mf):
    d = {
        "demographic_parity_difference": demographic_parity_difference(y, yhat, sensitive_features=sf),
        "demographic_parity_ratio": demographic_parity_ratio(y, yhat, sensitive_features=sf),
        "equalized_odds_difference": equalized_odds_difference(y, yhat, sensitive_features=sf),
        "equalized_odds_ratio": equalized_odds_ratio(y, yhat, sensitive_features=sf),
        "equal_opportunity_difference": equal_opportunity_difference(y, yhat, sensitive_features=sf),
        "equal_opportunity_ratio": equal_opportunity_ratio(y, yhat, sensitive_features=sf),
    }
    diff = mf.difference(method="between_groups")
    d["predictive_parity_difference"] = diff["ppv"]
    d["false_positive_rate_difference"] = diff["fpr"]
    d["false_negative_rate_difference"] = diff["fnr"]
    d["accuracy_difference"] = diff["accuracy"]
    return {k: float(v) for k, v in d.items()}


def aif360_indices(y, yhat, df, attrs, features):
    """AIF360 ClassificationMetric / BinaryLabelDatasetMetric on integer-coded attributes."""
    from aif360.datasets import BinaryLabelDataset
    from aif360.metrics import BinaryLabelDatasetMetric, ClassificationMetric
    codes = {a: pd.Categorical(df[a]).codes.astype(float) for a in attrs}
    frame = pd.DataFrame({a: codes[a] for a in attrs})
    frame["label"] = y.astype(float)
    truth = BinaryLabelDataset(df=frame, label_names=["label"], protected_attribute_names=attrs,
                               favorable_label=1.0, unfavorable_label=0.0)
    pred = truth.copy()
    pred.labels = yhat.astype(float).reshape(-1, 1)
    first = attrs[0]
    cm = ClassificationMetric(truth, pred, unprivileged_groups=[{first: 0.0}], privileged_groups=[{first: 1.0}])
    f = lambda v: float(np.ravel(v)[0])
    out = {"generalized_entropy_index": f(cm.generalized_entropy_index(alpha=2)), "theil_index": f(cm.theil_index()),
           "between_group": {}}
    for a in attrs:
        groups = [[{a: float(c)}] for c in sorted(set(codes[a]))]
        out["between_group"][a] = {
            "between_group_generalized_entropy_index": f(cm._between_group_generalized_entropy_index(groups, alpha=2)),
            "between_group_theil_index": f(cm._between_group_generalized_entropy_index(groups, alpha=1))}
    # Consistency (k=5) of the decisions over the given numeric features.
    ff = df[features].astype(float).reset_index(drop=True)
    ff["label"] = yhat.astype(float)
    ds = BinaryLabelDataset(df=ff, label_names=["label"], protected_attribute_names=[features[-1]])
    out["consistency"] = {"features": features, "k": 5, "value": f(BinaryLabelDatasetMetric(ds).consistency(5))}
    check_knn_ties(ff[features].to_numpy(), yhat, 5)
    return out


def check_knn_ties(X, yhat, k):
    """Warn when the k-th and (k+1)-th neighbour tie at a distance and could change the result."""
    ambiguous = 0
    for start in range(0, len(X), 1024):
        d = ((X[start:start + 1024, None, :] - X[None, :, :]) ** 2).sum(-1)
        part = np.sort(d, axis=1)[:, :k + 1]
        for r in np.nonzero(part[:, k - 1] == part[:, k])[0]:
            row = d[r]
            tied = row == part[r, k - 1]
            if len(set(yhat[tied])) > 1:
                ambiguous += 1
    print(f"  kNN rows with label-changing ties at the k-th neighbour: {ambiguous}")


def evaluate(name, y, yhat, s, df, attrs, features):
    res = {"rows": int(len(y)), "attributes": {}}
    for a in attrs + ["&".join(attrs)]:
        sf = df[a.split("&")] if "&" in a else df[a]
        groups, mf = group_metrics(y, yhat, s, sf)
        res["attributes"][a] = {"groups": groups, "disparities": disparities(y, yhat, sf, mf)}
    res["aif360"] = aif360_indices(y, yhat, df, attrs, features)
    with open(os.path.join(OUT, f"{name}.json"), "w") as f:
        json.dump(res, f, indent=1, sort_keys=True)
    print(f"{name}: {len(y)} rows")


def toy():
    # Fairlearn user guide ("Common fairness metrics") example.
    y_true = [0, 1, 1, 1, 1, 0, 1, 0, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1]
    y_pred = [0, 0, 1, 0, 1, 1, 1, 0, 0, 1, 1, 1, 1, 0, 0, 1, 1, 0]
    sf = ["b", "b", "a", "b", "b", "c", "c", "c", "a", "a", "c", "a", "b", "c", "c", "b", "c", "c"]
    y, yh = np.array(y_true), np.array(y_pred)
    groups, mf = group_metrics(y, yh, None, pd.Series(sf))
    res = {"y_true": y_true, "y_pred": y_pred, "groups_of_rows": sf, "groups": groups,
           "disparities": disparities(y, yh, pd.Series(sf), mf)}
    with open(os.path.join(OUT, "toy.json"), "w") as f:
        json.dump(res, f, indent=1, sort_keys=True)
    print("toy:", res["disparities"])


def adult(shared):
    read = lambda p, skip: pd.read_csv(p, header=None, names=ADULT_COLS, skipinitialspace=True, na_values="?",
                                       skiprows=skip).dropna()
    train = read(os.path.join(shared, "adult", "adult.data"), 0)
    test = read(os.path.join(shared, "adult", "adult.test"), 1).reset_index(drop=True)
    feats = ["age", "education-num", "hours-per-week", "capital-gain", "capital-loss"]
    xs = lambda d: np.column_stack([d[feats].to_numpy(float), (d["sex"] == "Male").to_numpy(float)])
    ytr = train["income"].str.rstrip(".").eq(">50K").to_numpy(int)
    y = test["income"].str.rstrip(".").eq(">50K").to_numpy(int)
    sc = StandardScaler().fit(xs(train))
    lr = LogisticRegression(max_iter=1000).fit(sc.transform(xs(train)), ytr)
    s = np.round(lr.predict_proba(sc.transform(xs(test)))[:, 1], 3)
    np.save(os.path.join(OUT, "adult_scores.npy"), s)
    yhat = (s >= 0.5).astype(int)
    evaluate("adult", y, yhat, s, test, ["sex", "race"], ["age", "fnlwgt", "education-num", "hours-per-week", "capital-gain", "capital-loss"])


def german(shared):
    df = pd.read_csv(os.path.join(shared, "german", "german.data"), sep=" ", header=None, names=GERMAN_COLS)
    df["sex"] = df["personal_status"].map({"A91": "male", "A93": "male", "A94": "male", "A92": "female",
                                           "A95": "female"})
    df["age_group"] = np.where(df["age"] < 25, "age<25", "age>=25")
    y = (df["credit"] == 1).to_numpy(int)
    feats = ["month", "credit_amount", "age", "investment_as_income_percentage"]
    X = np.column_stack([df[feats].to_numpy(float), (df["sex"] == "male").to_numpy(float)])
    Xs = StandardScaler().fit_transform(X)
    s = np.round(LogisticRegression(max_iter=1000).fit(Xs, y).predict_proba(Xs)[:, 1], 3)
    np.save(os.path.join(OUT, "german_scores.npy"), s)
    yhat = (s >= 0.5).astype(int)
    evaluate("german", y, yhat, s, df, ["sex", "age_group"], ["month", "credit_amount", "age"])


def credit_counterfactual():
    import onnxruntime as ort
    feats = open(os.path.join(ROOT, "datasets", "credit", "features.txt")).read().split()
    df = pd.read_csv(os.path.join(ROOT, "datasets", "credit", "credit_test.csv"))
    X = df[feats].to_numpy(np.float32)
    sess = ort.InferenceSession(os.path.join(ROOT, "models", "credit_mlp.onnx"))

    def run(x):
        logits = sess.run(None, {sess.get_inputs()[0].name: x})[0].astype(np.float64)
        z = np.exp(logits - logits.max(1, keepdims=True))
        p = z / z.sum(1, keepdims=True)
        return logits.argmax(1), p[:, 1]

    import sys
    import torch
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    from mlaudit_torch import mlp_from_onnx
    torch.set_num_threads(2)
    net = mlp_from_onnx(os.path.join(ROOT, "models", "credit_mlp.onnx")).eval()

    def run_torch(x):
        with torch.no_grad():
            logits = net(torch.from_numpy(x)).double()
        return logits.argmax(1).numpy(), torch.softmax(logits, 1)[:, 1].numpy()

    col = feats.index("sex")
    Xc = X.copy()
    Xc[:, col] = 1.0 - Xc[:, col]  # sex is 0/1: the only other group
    # PyTorch recomputation (weights rebuilt from the ONNX initializers), cross-checked with onnxruntime.
    d0, s0 = run_torch(X)
    d1, s1 = run_torch(Xc)
    e0, _ = run(X)
    e1, _ = run(Xc)
    assert (d0 == e0).all() and (d1 == e1).all(), "PyTorch and onnxruntime decisions differ"
    flipped = np.nonzero(d0 != d1)[0]
    y = df["approved"].to_numpy(int)
    res = {"engine": "pytorch (tools/mlaudit_torch.mlp_from_onnx), decisions equal to onnxruntime's", "rows": int(len(X)), "flip_rate": float(np.mean(d0 != d1)), "mean_score_change": float(np.mean(s1 - s0)),
           "flipped_rows": int(len(flipped)), "first_flipped": [int(i) for i in flipped[:20]],
           "pairs": {f"{a}->{1 - a}": {"rows": int((X[:, col] == a).sum()),
                                        "flips": int(((X[:, col] == a) & (d0 != d1)).sum())} for a in (0, 1)},
           "selection_rate_by_sex": {str(a): float(d0[X[:, col] == a].mean()) for a in (0, 1)},
           "tpr_by_sex": {str(a): float(d0[(X[:, col] == a) & (y == 1)].mean()) for a in (0, 1)},
           "demographic_parity_difference": float(demographic_parity_difference(y, d0, sensitive_features=X[:, col]))}
    with open(os.path.join(OUT, "credit_counterfactual.json"), "w") as f:
        json.dump(res, f, indent=1, sort_keys=True)
    print("credit counterfactual:", res["flip_rate"], res["mean_score_change"], res["flipped_rows"])


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.path.join(ROOT, "..", "shared", "datasets"))
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    toy()
    adult(args.shared)
    german(args.shared)
    credit_counterfactual()
