"""mlaudit from Python: a notebook's walk-through as a script (ctest runs it: python.example).

After `make`:           PYTHONPATH=build/python python3 examples/python_audit.py
After `pip install .`:  python3 examples/python_audit.py

Each cell below is what a notebook user would run. The last one runs the same attack through
the `mlaudit` executable and shows that the numbers are the same, not merely close: the
module runs the CLI's own command code.
"""
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

import mlaudit

root = Path(__file__).resolve().parents[1]
print(f"mlaudit {mlaudit.__version__} ({mlaudit.version()['commit']})")

# --- a model and its data: NumPy in, NumPy out
model = mlaudit.Model(root / "models/fmnist_cnn.onnx")
x = np.load(root / "datasets/demo/fmnist_x.npy")[:64]
y = np.load(root / "datasets/demo/fmnist_y.npy")[:64]
logits = model.run(x)
print(f"clean accuracy on {len(y)} images: {np.mean(logits.argmax(1) == y):.3f}")

# --- adversarial robustness: APGD-CE at eps = 8/255 (AutoAttack's first attack)
attack = mlaudit.attack(model, x, y, attack="apgd-ce", eps=[8 / 255], seed=0)
row = attack["by_eps"][0]
lo, hi = row["robust_accuracy_ci"]["lower"], row["robust_accuracy_ci"]["upper"]
print(f"APGD-CE eps 8/255: robust accuracy {row['robust_accuracy']:.3f} (95% CI {lo:.3f}-{hi:.3f})")

# --- certified robustness: randomized smoothing (Cohen et al.) on a few images
cert = mlaudit.certify(model, x[:4], y[:4], sigma=0.25, n=2000, seed=0)
radii = [s.get("radius") for s in cert["per_sample"]]
print(f"smoothing sigma 0.25: certified L2 radii {radii}")

# --- attributions: integrated gradients satisfy completeness
ig = mlaudit.explain(model, x[:2], y[:2], method="integrated-gradients", target="label")
gap = [float(ig["attributions"][i].sum() - (logits[i, y[i]] - model.run(np.zeros_like(x[:1]))[0, y[i]]))
       for i in range(2)]
print(f"integrated gradients: completeness gap {gap[0]:+.4f}, {gap[1]:+.4f}")

# --- fairness of a credit model on a table (a dict of columns; a pandas DataFrame works too)
import csv

with open(root / "datasets/credit/credit_test.csv") as f:
    rows = list(csv.DictReader(f))
table = {k: [r[k] for r in rows] for k in rows[0]}
features = [line.strip() for line in open(root / "datasets/credit/features.txt") if line.strip()]
fair = mlaudit.fairness(table, label_column="approved", protected="sex", model=root / "models/credit_mlp.onnx",
                        features=features, bootstrap=200, seed=0)
dp = next(d for d in fair["disparities"] if d["name"] == "demographic_parity_ratio")
print(f"credit model: demographic parity ratio by sex {dp['value']:.3f} (four-fifths rule: {dp['four_fifths_rule']})")

# --- the same numbers as the CLI
exe = os.environ.get("MLAUDIT_EXE") or shutil.which("mlaudit")
if exe:
    with tempfile.TemporaryDirectory() as d:
        np.save(f"{d}/x.npy", x)
        np.save(f"{d}/y.npy", y)
        subprocess.run([exe, "attack", "--model", str(root / "models/fmnist_cnn.onnx"), "--data", f"{d}/x.npy",
                        "--labels", f"{d}/y.npy", "--attack", "apgd-ce", "--eps", repr(8 / 255), "--seed", "0",
                        "--out", f"{d}/a.json", "--quiet"], check=True)
        cli = json.load(open(f"{d}/a.json"))
    assert cli["by_eps"] == attack["by_eps"] and cli["per_sample"] == attack["per_sample"]
    print(f"the CLI ({exe}) gives the same attack results, sample by sample")
