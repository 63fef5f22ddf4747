#!/usr/bin/env python3
"""Seeded generator of the synthetic tabular credit dataset bundled with mlaudit.

Run (from the repository root, numpy only):

    ${PYTHON:-.venv/bin/python} tools/make_credit_data.py [--out datasets/credit] [--seed 20240611]

Writes
    datasets/credit/credit_train.csv   4000 rows (rows 0..3999 of the generated table)
    datasets/credit/credit_test.csv    2000 rows (rows 4000..5999)
    datasets/credit/features.txt       model input column order, one name per line
    datasets/credit/README.md          columns, generating process, measured bias figures

Every CSV has a header row; columns (in this order):
    age, income, debt_ratio, years_employed, num_credit_lines, late_payments, sex, approved

Generating process (row i, all draws from numpy.random.default_rng(seed)):
    sex              ~ Bernoulli(0.5)                 (0 female, 1 male)
    age              ~ round(clip(N(42, 13), 18, 75)) years
    income           ~ round(LogNormal(log(30 + 0.6*(age-18)), 0.45), 1)   k$ per year
    debt_ratio       ~ round(Beta(2, 5), 3)           monthly debt payments / income
    years_employed   ~ round(min(age - 18, Gamma(2, 4)), 1)
    num_credit_lines ~ Poisson(3 + 2*debt_ratio) + 1
    late_payments    ~ Poisson(0.3 + 2.5*debt_ratio)
The financial features do NOT depend on sex: sex is independent of every other
feature, so any difference in outcomes between the groups comes from the label
mechanism below.

Label (class 1 = approved):
    z = 1.6*log(income/40) - 5.0*(debt_ratio - 0.28) + 0.10*(years_employed - 6)
        - 0.75*(late_payments - 1) + 0.08*(num_credit_lines - 4)
        - 0.03*|age - 45| + 0.3
        + BIAS * (sex - 0.5)                             with BIAS = 1.2
    approved ~ Bernoulli(sigmoid(2.0 * z))

GROUP BIAS (documented on purpose, so that fairness audits have something to find):
the term BIAS*(sex - 0.5) adds +0.6 to z for men and -0.6 for women, i.e. for two
applicants with identical financial features a man's approval log-odds exceed a
woman's by 2.0*1.2 = 2.4 (odds ratio exp(2.4) ~ 11). The script prints, and writes
into datasets/credit/README.md, the measured approval rate per group, the
disparate-impact ratio P(approved|female)/P(approved|male), and the same figures
for the counterfactual labels drawn with BIAS = 0 (same random numbers), so the
size of the bias is stated in outcome terms as well.
"""
import argparse
import os
import sys

import numpy as np

COLUMNS = ["age", "income", "debt_ratio", "years_employed", "num_credit_lines",
           "late_payments", "sex", "approved"]
FEATURES = COLUMNS[:-1]   # model input order; includes sex and age
N_TRAIN, N_TEST = 4000, 2000
BIAS = 1.2                # added to z for men, relative to women (see docstring)
LABEL_SCALE = 2.0         # sharpness of the logistic label noise


def generate(seed: int, n: int, bias: float):
    rng = np.random.default_rng(seed)
    sex = rng.binomial(1, 0.5, n)
    age = np.round(np.clip(rng.normal(42.0, 13.0, n), 18, 75))
    income = np.round(rng.lognormal(np.log(30.0 + 0.6 * (age - 18)), 0.45), 1)
    income = np.maximum(income, 5.0)
    debt_ratio = np.round(rng.beta(2.0, 5.0, n), 3)
    years_employed = np.round(np.minimum(age - 18, rng.gamma(2.0, 4.0, n)), 1)
    num_credit_lines = rng.poisson(3.0 + 2.0 * debt_ratio) + 1
    late_payments = rng.poisson(0.3 + 2.5 * debt_ratio)
    u = rng.random(n)  # shared uniform for the Bernoulli label, so the BIAS=0 counterfactual is paired
    z_fin = (1.6 * np.log(income / 40.0) - 5.0 * (debt_ratio - 0.28) + 0.10 * (years_employed - 6)
             - 0.75 * (late_payments - 1) + 0.08 * (num_credit_lines - 4)
             - 0.03 * np.abs(age - 45) + 0.3)

    def label(b):
        z = z_fin + b * (sex - 0.5)
        p = 1.0 / (1.0 + np.exp(-LABEL_SCALE * z))
        return (u < p).astype(np.int64), p

    approved, p = label(bias)
    approved_fair, p_fair = label(0.0)
    table = np.column_stack([age, income, debt_ratio, years_employed, num_credit_lines,
                             late_payments, sex, approved])
    return table, approved_fair, p, p_fair


def rates(y, sex):
    f = float(y[sex == 0].mean())
    m = float(y[sex == 1].mean())
    return f, m, f / m


def write_csv(path, rows):
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        fh.write(",".join(COLUMNS) + "\n")
        for r in rows:
            fh.write("%d,%.1f,%.3f,%.1f,%d,%d,%d,%d\n" % (r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]))
    os.replace(tmp, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="datasets/credit")
    ap.add_argument("--seed", type=int, default=20240611)
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)

    n = N_TRAIN + N_TEST
    table, y_fair, p, p_fair = generate(args.seed, n, BIAS)
    sex = table[:, 6].astype(int)
    y = table[:, 7].astype(int)
    train, test = table[:N_TRAIN], table[N_TRAIN:]

    paths = {k: os.path.join(args.out, k) for k in
             ["credit_train.csv", "credit_test.csv", "features.txt", "README.md"]}
    write_csv(paths["credit_train.csv"], train)
    write_csv(paths["credit_test.csv"], test)
    with open(paths["features.txt"], "w") as fh:
        fh.write("\n".join(FEATURES) + "\n")

    f, m, di = rates(y, sex)
    ff, mf, dif = rates(y_fair, sex)
    changed = float((y != y_fair).mean())
    bayes_acc = float(np.mean(np.maximum(p, 1 - p)))
    stats = {
        "rows": n, "approved": float(y.mean()), "female_rate": f, "male_rate": m, "di": di,
        "female_rate_fair": ff, "male_rate_fair": mf, "di_fair": dif, "changed": changed,
        "bayes_acc": bayes_acc, "female_share": float((sex == 0).mean()),
    }
    write_readme(paths["README.md"], args.seed, stats, train, test)

    for k in ["credit_train.csv", "credit_test.csv", "features.txt", "README.md"]:
        print("wrote", paths[k])
    print("approval rate female %.3f male %.3f  disparate impact %.3f" % (f, m, di))
    print("counterfactual BIAS=0: female %.3f male %.3f  disparate impact %.3f  (%.1f%% of labels differ)"
          % (ff, mf, dif, 100 * changed))
    print("Bayes-optimal accuracy of the label noise: %.3f" % bayes_acc)
    return 0


def write_readme(path, seed, s, train, test):
    text = f"""# Synthetic credit dataset (bundled demo data)

Generated by `tools/make_credit_data.py` (seed {seed}; numpy only):

    ${PYTHON:-.venv/bin/python} tools/make_credit_data.py

It is synthetic: no real person is described. It exists so that the fairness,
explanation and robustness audits have a tabular model with a KNOWN group bias.

## Files

| file | rows | content |
|---|---|---|
| `credit_train.csv` | {len(train)} | generated rows 0..{len(train) - 1}; the rows `models/credit_mlp.onnx` was trained on |
| `credit_test.csv` | {len(test)} | generated rows {len(train)}..{len(train) + len(test) - 1}; held out |
| `features.txt` | | model input column order (the ONNX input `input` is `[N, {len(FEATURES)}]` in this order) |

Columns (header row, comma separated): {", ".join("`%s`" % c for c in COLUMNS)}.

| column | meaning | distribution |
|---|---|---|
| `age` | years, integer 18..75 | round(clip(N(42, 13), 18, 75)) |
| `income` | k$ per year | LogNormal(log(30 + 0.6 (age-18)), 0.45), at least 5 |
| `debt_ratio` | monthly debt / income | Beta(2, 5) |
| `years_employed` | years | min(age - 18, Gamma(2, 4)) |
| `num_credit_lines` | count | Poisson(3 + 2 debt_ratio) + 1 |
| `late_payments` | count | Poisson(0.3 + 2.5 debt_ratio) |
| `sex` | protected attribute, 0 female, 1 male | Bernoulli(0.5), independent of all other features |
| `approved` | label, 1 approved | Bernoulli(sigmoid(2 z)), z below |

    z = 1.6 log(income/40) - 5 (debt_ratio - 0.28) + 0.10 (years_employed - 6)
        - 0.75 (late_payments - 1) + 0.08 (num_credit_lines - 4) - 0.03 |age - 45| + 0.3
        + 1.2 (sex - 0.5)

## The group bias (deliberate)

The last term of `z` is the bias: for two applicants with identical financial
features, a man's approval log-odds exceed a woman's by 2 x 1.2 = **2.4**
(odds ratio about 11). `age` also enters `z` (applicants far from 45 are
penalised), so `age` is a second protected attribute with a direct effect.

Measured on all {s['rows']} generated rows (female share {s['female_share']:.3f}):

| labels | approval rate female | approval rate male | disparate impact (F/M) |
|---|---|---|---|
| as generated (bias 1.2) | {s['female_rate']:.3f} | {s['male_rate']:.3f} | {s['di']:.3f} |
| counterfactual, bias 0 (same random draws) | {s['female_rate_fair']:.3f} | {s['male_rate_fair']:.3f} | {s['di_fair']:.3f} |

{100 * s['changed']:.1f}% of the labels differ between the two. Overall approval rate
{s['approved']:.3f}. The label noise caps any classifier's expected accuracy at
about {s['bayes_acc']:.3f} (Bayes-optimal accuracy, mean of max(p, 1-p)).
"""
    with open(path, "w") as fh:
        fh.write(text)


if __name__ == "__main__":
    sys.exit(main())
