#!/usr/bin/env python3
"""Golden values for the robustness module (tests/fixtures/robustness/).

Independent implementations:
  * attacks: torchattacks 3.5.1 (PyPI) on the bundled CNN rebuilt in PyTorch from
    models/fmnist_cnn.onnx (tools/mlaudit_torch.cnn_from_onnx), same 200 demo images
    datasets/demo/fmnist_x.npy / fmnist_y.npy, domain [0,1];
  * Clopper-Pearson bounds: statsmodels proportion_confint(method="beta") and
    scipy.stats.beta.ppf; binomial test p-values: scipy.stats.binomtest;
    normal quantiles: scipy.stats.norm.ppf;
  * corruption reference values: scipy.ndimage.gaussian_filter (mode="nearest") for
    the blur of a fixed 28x28 pattern.

Run from the repository root:
    ${PYTHON:-.venv/bin/python} tools/robustness_goldens.py [--stats-only] [--runs apgd-ce:l2:1,...]
It rewrites tests/fixtures/robustness/stats_goldens.json and attack_goldens.json (a few
kB; `--runs attack:norm:eps,...` recomputes only those runs and merges them in).
"""
import json
import os
import sys
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
OUT = os.path.join(ROOT, "tests", "fixtures", "robustness")


def stats_goldens():
    from scipy import stats
    from scipy.ndimage import gaussian_filter
    from statsmodels.stats.proportion import proportion_confint

    cp = []
    for k, n, alpha in [(100, 100, 0.001), (990, 1000, 0.001), (99990, 100000, 0.001), (60, 100, 0.05),
                        (512, 1000, 0.001), (1, 10, 0.01), (7, 7, 0.05), (5000, 10000, 0.001)]:
        # one-sided lower bound at alpha == two-sided interval at 2*alpha (Cohen et al. core.py)
        lo_sm = proportion_confint(k, n, alpha=2 * alpha, method="beta")[0]
        lo_sp = stats.beta.ppf(alpha, k, n - k + 1)
        assert abs(lo_sm - lo_sp) < 1e-12
        cp.append({"k": k, "n": n, "alpha": alpha, "lower": float(lo_sm)})
    bt = []
    for k, n in [(60, 100), (55, 100), (70, 100), (10, 12), (0, 5), (3, 6), (520, 1000), (5, 9)]:
        bt.append({"k": k, "n": n, "pvalue": float(stats.binomtest(k, n, 0.5).pvalue)})
    radii = []
    for n in [100, 1000, 100000]:
        radii.append({"n": n, "alpha": 0.001, "phi_inv": float(stats.norm.ppf(0.001 ** (1.0 / n)))})
    pattern = (np.arange(28 * 28, dtype=np.float64).reshape(28, 28) * 37 % 101) / 100.0
    blur = {}
    for sev, sigma in enumerate([0.4, 0.6, 0.7, 0.8, 1.0], start=1):
        blur[str(sev)] = np.clip(gaussian_filter(pattern, sigma, mode="nearest", truncate=4.0), 0, 1)[::7, ::7].ravel().tolist()
    return {"schema": "mlaudit.fixture/1", "recipe": "tools/robustness_goldens.py (scipy/statsmodels)",
            "clopper_pearson": cp, "binomtest": bt, "phi_inv_all_agree": radii,
            "blur_pattern": "((arange(784).reshape(28,28)*37) % 101)/100, samples [::7, ::7]", "gaussian_blur": blur}


# (attack, norm, eps, options): the golden runs. torchattacks on 2 busy CPU cores needs
# minutes per APGD run and ~15 min per Square run, so `--runs` recomputes a subset and
# merges it into the existing fixture; the fixture is rewritten after every run.
RUNS = [("fgsm", "linf", 0.02, {}), ("pgd", "linf", 0.02, {"steps": 10}), ("apgd-ce", "linf", 0.02, {"steps": 100}),
        ("apgd-dlr", "linf", 0.02, {"steps": 100}), ("square", "linf", 0.02, {"queries": 1000}),
        ("fgsm", "linf", 0.05, {}), ("pgd", "linf", 0.05, {"steps": 10}), ("apgd-ce", "linf", 0.05, {"steps": 100}),
        ("apgd-dlr", "linf", 0.05, {"steps": 100}), ("pgd", "l2", 1.0, {"steps": 10}), ("apgd-ce", "l2", 1.0, {"steps": 100})]


def make_attack(torchattacks, model, name, norm, eps, opts):
    if name == "fgsm":
        return torchattacks.FGSM(model, eps=eps)
    if name == "pgd" and norm == "linf":
        return torchattacks.PGD(model, eps=eps, alpha=2.5 * eps / opts["steps"], steps=opts["steps"], random_start=True)
    if name == "pgd":
        return torchattacks.PGDL2(model, eps=eps, alpha=2.5 * eps / opts["steps"], steps=opts["steps"], random_start=True)
    if name.startswith("apgd"):
        return torchattacks.APGD(model, norm="Linf" if norm == "linf" else "L2", eps=eps, steps=opts["steps"], n_restarts=1,
                                 loss=name.split("-")[1], seed=0)
    if name == "square":
        return torchattacks.Square(model, norm="Linf" if norm == "linf" else "L2", eps=eps, n_queries=opts["queries"],
                                   n_restarts=1, seed=0)
    raise ValueError(name)


def attack_goldens(path, selected):
    import torchattacks
    from mlaudit_torch import cnn_from_onnx

    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = cnn_from_onnx(os.path.join(ROOT, "models", "fmnist_cnn.onnx")).eval()
    x = torch.from_numpy(np.load(os.path.join(ROOT, "datasets", "demo", "fmnist_x.npy")))
    y = torch.from_numpy(np.load(os.path.join(ROOT, "datasets", "demo", "fmnist_y.npy")))
    with torch.no_grad():
        clean_ok = model(x).argmax(1) == y
    fixture = {"runs": []}
    if os.path.exists(path) and os.path.getsize(path) > 0:
        fixture = json.load(open(path))
    fixture.update({"schema": "mlaudit.fixture/1",
                    "recipe": "tools/robustness_goldens.py (torchattacks %s, torch %s), 200 demo images, domain [0,1]"
                              % (torchattacks.__version__, torch.__version__),
                    "clean_accuracy": clean_ok.float().mean().item()})
    for name, norm, eps, opts in RUNS:
        key = "%s:%s:%g" % (name, norm, eps)
        if selected and key not in selected:
            continue
        t0 = time.time()
        adv = make_attack(torchattacks, model, name, norm, eps, opts)(x, y)
        with torch.no_grad():
            robust = ((model(adv).argmax(1) == y) & clean_ok).float().mean().item()
        entry = {"attack": name, "norm": norm, "eps": eps, **opts, "robust_accuracy": robust, "seconds": time.time() - t0}
        print(entry, flush=True)
        fixture["runs"] = [r for r in fixture["runs"] if "%s:%s:%g" % (r["attack"], r["norm"], r["eps"]) != key] + [entry]
        with open(path, "w") as f:
            json.dump(fixture, f, indent=1)


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "stats_goldens.json"), "w") as f:
        json.dump(stats_goldens(), f, indent=1)
    if "--stats-only" not in sys.argv:
        sel = sys.argv[sys.argv.index("--runs") + 1].split(",") if "--runs" in sys.argv else []
        attack_goldens(os.path.join(OUT, "attack_goldens.json"), sel)
