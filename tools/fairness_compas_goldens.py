#!/usr/bin/env python3
"""Golden values for `mlaudit fairness` on ProPublica's COMPAS table and on UCI Adult's base rates,
computed INDEPENDENTLY of mlaudit with pandas (counts, filters, bins) and scikit-learn (AUC).

Run from the repository root (takes Python from $PYTHON or the repo's .venv, see tools/project_python.py):
    ${PYTHON:-.venv/bin/python} tools/fairness_compas_goldens.py [--shared ../shared/datasets]

Writes tests/fixtures/fairness/:
  compas_propublica.json  ProPublica's confusion table on compas-scores-two-years.csv, per race and sex.
      Filter of ProPublica's notebook ("Compas Analysis.ipynb", R/dplyr):
        days_b_screening_arrest <= 30 & >= -30 (missing dropped, as dplyr::filter drops NA),
        is_recid != -1, c_charge_degree != "O", score_text != "N/A"   -> 6,172 of 7,214 rows.
      Positive class as in ProPublica's table: the positive label is recidivism (two_year_recid == 1),
      the positive prediction is "higher risk" (decile_score >= 5, i.e. score_text Medium or High);
      FPR = FP / (FP + TN) = P(higher risk | did not reoffend), FNR = FN / (FN + TP) = P(lower risk | reoffended).
      base_rate and selection_rate are mlaudit's: rates of the FAVORABLE label (no recidivism) and
      decision (lower risk). AUC: sklearn roc_auc_score of the favorable label against -decile_score.
  adult_base_rates.json  UCI Adult (adult.data, rows with '?' dropped as AIF360 does -> 30,162 rows):
      base rate P(income > 50K) per sex, race and sex&race; base-rate difference (max - min) and
      ratio (min / max) per attribute; age cut into quartile bins: edges numpy.quantile(age, [.25, .5, .75])
      (linear interpolation) and left-closed intervals (pandas.cut right=False), with base rates per bin.
"""
import argparse
import hashlib
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import project_python  # noqa: E402

project_python.use()

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "fairness")

ADULT_COLS = ["age", "workclass", "fnlwgt", "education", "education-num", "marital-status", "occupation",
              "relationship", "race", "sex", "capital-gain", "capital-loss", "hours-per-week", "native-country",
              "income"]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def compas(shared):
    path = os.path.join(shared, "compas", "compas-scores-two-years.csv")
    raw = pd.read_csv(path)
    df = raw[(raw.days_b_screening_arrest <= 30) & (raw.days_b_screening_arrest >= -30) & (raw.is_recid != -1)
             & (raw.c_charge_degree != "O") & (raw.score_text != "N/A")].copy()
    assert len(df) == 6172, len(df)
    recid = df.two_year_recid == 1          # positive label (ProPublica)
    high = df.decile_score >= 5             # positive prediction: "higher risk" (Medium/High)
    assert (high == (df.score_text != "Low")).all(), "decile_score >= 5 should be score_text Medium/High"
    out = {"source": "compas/compas-scores-two-years.csv", "sha256": sha256(path), "rows_read": int(len(raw)),
           "rows": int(len(df)), "threshold": 5,
           "positive": "label two_year_recid == 1 (recidivism); prediction decile_score >= 5 (score_text Medium/High)",
           "attributes": {}}
    for attr in ["race", "sex"]:
        groups = {}
        for g, idx in df.groupby(attr).groups.items():
            y, p = recid[idx], high[idx]
            tp, fp = int((y & p).sum()), int((~y & p).sum())
            tn, fn = int((~y & ~p).sum()), int((y & ~p).sum())
            n = tp + fp + tn + fn
            rec = {"count": n, "tp": tp, "fp": fp, "tn": tn, "fn": fn,
                   "fpr": fp / (fp + tn), "fnr": fn / (fn + tp), "tpr": tp / (tp + fn), "tnr": tn / (tn + fp),
                   "ppv": tp / (tp + fp) if tp + fp else None, "npv": tn / (tn + fn) if tn + fn else None,
                   "accuracy": (tp + tn) / n,
                   "base_rate": (tn + fp) / n,        # favorable label: no recidivism
                   "selection_rate": (tn + fn) / n}   # favorable decision: lower risk
            fav = (df.loc[idx, "two_year_recid"] == 0).astype(int)
            rec["auc"] = float(roc_auc_score(fav, -df.loc[idx, "decile_score"])) if fav.nunique() == 2 else None
            groups[str(g)] = rec
        disp = {}
        for key, name in [("fpr", "false_positive_rate_difference"), ("fnr", "false_negative_rate_difference"),
                          ("selection_rate", "demographic_parity_difference")]:
            vals = [r[key] for r in groups.values()]
            disp[name] = max(vals) - min(vals)
        sel = [r["selection_rate"] for r in groups.values()]
        disp["demographic_parity_ratio"] = min(sel) / max(sel)
        out["attributes"][attr] = {"groups": groups, "disparities": disp}
    with open(os.path.join(OUT, "compas_propublica.json"), "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
    for r in ["African-American", "Caucasian"]:
        g = out["attributes"]["race"]["groups"][r]
        print(f"COMPAS {r}: n={g['count']} FPR {g['fpr']:.4f} FNR {g['fnr']:.4f}")


def adult(shared):
    path = os.path.join(shared, "adult", "adult.data")
    raw = pd.read_csv(path, header=None, names=ADULT_COLS, skipinitialspace=True, na_values="?")
    df = raw.dropna().copy()
    assert len(df) == 30162, len(df)
    df["y"] = (df.income == ">50K").astype(int)
    out = {"source": "adult/adult.data", "sha256": sha256(path), "rows_read": int(len(raw)), "rows": int(len(df)),
           "attributes": {}}

    def record(name, keys):
        by = df.groupby(keys)["y"].agg(["count", "mean"])
        groups = {}
        for key, row in by.iterrows():
            gname = "&".join(str(k) for k in key) if isinstance(key, tuple) else str(key)
            groups[gname] = {"count": int(row["count"]), "base_rate": float(row["mean"])}
        rates = [g["base_rate"] for g in groups.values()]
        out["attributes"][name] = {"groups": groups, "disparities": {"base_rate_difference": max(rates) - min(rates),
                                                                     "base_rate_ratio": min(rates) / max(rates)}}

    record("sex", "sex")
    record("race", "race")
    record("sex&race", ["sex", "race"])
    edges = [float(e) for e in np.quantile(df.age.to_numpy(dtype=float), [0.25, 0.5, 0.75])]
    cut = pd.cut(df.age, bins=[-np.inf] + edges + [np.inf], right=False)
    by = df.groupby(cut, observed=True)["y"].agg(["count", "mean"])
    out["age_quartiles"] = {"edges": edges,
                            "bins": [{"count": int(r["count"]), "base_rate": float(r["mean"])} for _, r in by.iterrows()]}
    with open(os.path.join(OUT, "adult_base_rates.json"), "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
    for g, r in out["attributes"]["sex"]["groups"].items():
        print(f"Adult sex {g}: n={r['count']} base rate {r['base_rate']:.4f}")
    print("Adult age quartile edges:", edges)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.path.join(ROOT, "..", "shared", "datasets"))
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    compas(args.shared)
    adult(args.shared)
