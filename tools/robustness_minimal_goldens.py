#!/usr/bin/env python3
"""Per-sample goldens for the deterministic attacks FAB / FAB-T and DeepFool
(tests/fixtures/robustness/minimal_goldens.json).

Independent implementations, on the bundled CNN rebuilt in PyTorch from
models/fmnist_cnn.onnx (tools/mlaudit_torch.cnn_from_onnx) and the first N_IMAGES demo
images (datasets/demo/fmnist_x.npy / fmnist_y.npy), domain [0,1]:
  * FAB-T and FAB: torchattacks.FAB (a port of fra31/auto-attack fab_pt.py; GitHub is not
    reachable from the build machine, so auto-attack itself could not be installed) with
    the AutoAttack "standard" settings: multi_targeted=True (targets = 2nd..10th clean
    logit), n_restarts=1, steps=100, alpha_max=0.1, eta=1.05, beta=0.9; untargeted FAB with
    the same settings and multi_targeted=False;
  * DeepFool: Foolbox 3 (foolbox.attacks.L2DeepFoolAttack / LinfDeepFoolAttack), steps=50,
    candidates=10, overshoot=0.02, loss="logits" (the authors' LTS4 update rule).
FAB with no random start and DeepFool are deterministic, so the fixture stores per-sample
success flags and perturbation norms (null where no adversarial point was found).

Run from the repository root (about a minute on 2 CPU threads):
    .venv/bin/pip install torchattacks==3.5.1 foolbox==3.3.4
    ${PYTHON:-.venv/bin/python} tools/robustness_minimal_goldens.py
"""
import json
import os
import sys
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
OUT = os.path.join(ROOT, "tests", "fixtures", "robustness", "minimal_goldens.json")
N_IMAGES = 48

# (name, norm, eps): eps is the AutoAttack acceptance radius of FAB; a large eps makes every
# point FAB finds count at the first target that finds it, so its norm is compared directly.
FAB_RUNS = [("fab-t", "linf", 0.05), ("fab-t", "linf", 1.0), ("fab-t", "l2", 1.0), ("fab-t", "l2", 100.0),
            ("fab", "linf", 1.0)]
DEEPFOOL_RUNS = ["l2", "linf"]


def norms(adv, x, norm):
    d = (adv - x).reshape(x.shape[0], -1)
    return d.abs().max(1)[0] if norm == "linf" else d.norm(dim=1)


def main():
    import foolbox as fb
    import torchattacks
    from mlaudit_torch import cnn_from_onnx

    torch.set_num_threads(2)
    model = cnn_from_onnx(os.path.join(ROOT, "models", "fmnist_cnn.onnx")).eval()
    x = torch.from_numpy(np.load(os.path.join(ROOT, "datasets", "demo", "fmnist_x.npy")))[:N_IMAGES]
    y = torch.from_numpy(np.load(os.path.join(ROOT, "datasets", "demo", "fmnist_y.npy")))[:N_IMAGES].long()
    with torch.no_grad():
        clean_ok = model(x).argmax(1) == y
    fixture = {"schema": "mlaudit.fixture/1",
               "recipe": "tools/robustness_minimal_goldens.py (torchattacks %s FAB, foolbox %s DeepFool, torch %s), "
                         "first %d demo images, domain [0,1]" % (torchattacks.__version__, fb.__version__, torch.__version__, N_IMAGES),
               "n_images": N_IMAGES, "clean_correct": clean_ok.tolist(), "runs": []}
    for name, norm, eps in FAB_RUNS:
        t0 = time.time()
        atk = torchattacks.FAB(model, norm="Linf" if norm == "linf" else "L2", eps=eps, steps=100, n_restarts=1,
                               alpha_max=0.1, eta=1.05, beta=0.9, seed=0, multi_targeted=(name == "fab-t"), n_classes=10)
        adv = atk(x, y)
        with torch.no_grad():
            ok = (model(adv).argmax(1) != y) & clean_ok
        nr = norms(adv, x, norm)
        succ = ok & (nr <= eps)
        entry = {"attack": name, "norm": norm, "eps": eps, "steps": 100,
                 "robust_accuracy": float((clean_ok & ~succ).float().mean()),
                 "success": succ.tolist(), "norm_values": [float(v) if s else None for v, s in zip(nr.tolist(), succ.tolist())],
                 "seconds": time.time() - t0}
        print(name, norm, eps, "robust", entry["robust_accuracy"], "%.1fs" % entry["seconds"], flush=True)
        fixture["runs"].append(entry)
    fmodel = fb.PyTorchModel(model, bounds=(0, 1))
    for norm in DEEPFOOL_RUNS:
        t0 = time.time()
        cls = fb.attacks.L2DeepFoolAttack if norm == "l2" else fb.attacks.LinfDeepFoolAttack
        atk = cls(steps=50, candidates=10, overshoot=0.02, loss="logits")
        # Only clean-correct points are attacked (mlaudit's convention); foolbox returns x for the others.
        raw, _, _ = atk(fmodel, x, y, epsilons=None)
        with torch.no_grad():
            ok = (model(raw).argmax(1) != y) & clean_ok
        nr = norms(raw, x, norm)
        entry = {"attack": "deepfool", "norm": norm, "steps": 50, "overshoot": 0.02,
                 "success": ok.tolist(), "norm_values": [float(v) if s else None for v, s in zip(nr.tolist(), ok.tolist())],
                 "seconds": time.time() - t0}
        print("deepfool", norm, "found", int(ok.sum()), "%.1fs" % entry["seconds"], flush=True)
        fixture["runs"].append(entry)
    with open(OUT, "w") as f:
        json.dump(fixture, f, indent=1)


if __name__ == "__main__":
    main()
