#!/usr/bin/env python3
"""Golden two-sided 95 % Clopper-Pearson intervals for datasets::clopper_pearson (tests/datasets/test_validate.cpp).

Reference: scipy.stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact"),
an independent implementation of the same "exact" interval (statsmodels' proportion_confint
method="beta" gives the same numbers). Python: $PYTHON or the repo-local .venv.
    ${PYTHON:-.venv/bin/python} tools/stats_goldens.py   # writes tests/fixtures/datasets/clopper_pearson.json
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import project_python  # noqa: E402

project_python.use()

import scipy  # noqa: E402
from scipy.stats import binomtest  # noqa: E402

CASES = [(0, 1), (1, 1), (0, 20), (8, 20), (20, 20), (21, 50), (1, 100), (99, 100), (500, 1000), (3, 10000), (9990, 10000)]


def main():
    rows = []
    for k, n in CASES:
        for conf in (0.95, 0.99):
            ci = binomtest(k, n).proportion_ci(confidence_level=conf, method="exact")
            rows.append({"k": k, "n": n, "confidence": conf, "lower": ci.low, "upper": ci.high})
    out = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "fixtures", "datasets",
                       "clopper_pearson.json")
    with open(out, "w") as f:
        json.dump({"recipe": "tools/stats_goldens.py", "reference": f"scipy {scipy.__version__} binomtest(...).proportion_ci(method='exact')",
                   "cases": rows}, f, indent=1)
    print(f"wrote {out}: {len(rows)} cases")


if __name__ == "__main__":
    main()
