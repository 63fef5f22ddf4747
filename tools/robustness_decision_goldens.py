#!/usr/bin/env python3
"""Reference runs of the decision-based attacks for tests/robustness/test_decision.cpp.

Runs ART's HopSkipJump (L2 and Linf, ART's defaults: max_iter 50, max_eval 1e4, init_eval 100,
init_size 100) and Foolbox 3's BoundaryAttack (L2, its defaults: steps 25000, spherical_step
0.01, source_step 0.01, source_step_convergance 1e-7, step_adaptation 1.5,
update_stats_every_k 10, LinearSearchBlendedUniformNoiseAttack(steps=50) start) on the same ONNX
models through onnxruntime, on the rows the model classifies correctly, and writes per-sample
distances and query counts to tests/fixtures/robustness/decision/goldens.json.

The attacks draw random numbers (ART's start even from an unseeded RandomState), so the values
are not bit-reproducible, and one run's median over 30-50 rows of a tree model moves by +-20 %
between seeds (tree boundaries are piecewise constant: a run either finds a row's near corner or
not). Each attack therefore runs RUNS times (numpy seeds 0..RUNS-1); the test compares our
median with the median of the runs' medians (`median_of_run_medians`).

Usage: .venv/bin/python tools/robustness_decision_goldens.py [--quick]
Needs: pip install adversarial-robustness-toolbox foolbox onnxruntime (not needed by CI: the
tests read the committed JSON only).
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import project_python  # noqa: E402

project_python.use()

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402

ROOT = project_python.ROOT
TREES = os.path.join(ROOT, "tests", "fixtures", "trees")
OUT = os.path.join(ROOT, "tests", "fixtures", "robustness", "decision")

# (name, model, data, labels, rows, domain): the domain is the [clip_min, clip_max] box both sides
# use (mlaudit's --clip-min/--clip-max, ART's clip_values, Foolbox's bounds).
CASES = [
    ("xgb_binary", "xgb_binary.onnx", "credit_x.npy", "credit_y.npy", 50, (0.0, 250.0)),
    ("xgb_multi", "xgb_multi.onnx", "three_x.npy", "three_y.npy", 30, (-6.0, 6.0)),
]


class Counted:
    """Probabilities from onnxruntime; counts the rows queried."""

    def __init__(self, path):
        self.sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        self.input = self.sess.get_inputs()[0].name
        outs = [o.name for o in self.sess.get_outputs()]
        self.output = "probabilities" if "probabilities" in outs else outs[-1]
        self.queries = 0

    def __call__(self, x):
        x = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
        self.queries += len(x)
        p = self.sess.run([self.output], {self.input: x})[0]
        if isinstance(p, list):  # ZipMap
            p = np.array([[d[k] for k in sorted(d)] for d in p], dtype=np.float32)
        return np.asarray(p, dtype=np.float32)


def art_hsja(model, x, norm, domain, classes):
    from art.attacks.evasion import HopSkipJump
    from art.estimators.classification import BlackBoxClassifier

    clf = BlackBoxClassifier(model, input_shape=(x.shape[1],), nb_classes=classes, clip_values=domain)
    dist, queries, seconds = [], [], 0.0
    for i in range(len(x)):
        attack = HopSkipJump(clf, norm=2 if norm == "l2" else np.inf, verbose=False)
        model.queries = 0
        t0 = time.perf_counter()
        adv = attack.generate(x[i : i + 1])
        seconds += time.perf_counter() - t0
        queries.append(int(model.queries))
        same = np.argmax(model(adv), 1)[0] == np.argmax(model(x[i : i + 1]), 1)[0]
        diff = (adv - x[i : i + 1]).ravel().astype(np.float64)
        dist.append(None if same else float(np.linalg.norm(diff) if norm == "l2" else np.abs(diff).max()))
    return dist, queries, seconds


def foolbox_boundary(model, x, y, domain):
    import foolbox as fb

    fmodel = fb.models.NumPyModel(lambda z: np.log(np.maximum(model(z), 1e-30)), bounds=domain)
    attack = fb.attacks.BoundaryAttack()
    model.queries = 0
    t0 = time.perf_counter()
    adv = attack.run(fmodel, x, fb.criteria.Misclassification(y))
    seconds = time.perf_counter() - t0
    adv = np.asarray(adv)
    broken = np.argmax(model(adv), 1) != y
    dist = [float(np.linalg.norm((adv[i] - x[i]).astype(np.float64))) if broken[i] else None for i in range(len(x))]
    return dist, int(model.queries), seconds


RUNS = 5


def median_of_medians(runs):
    return float(np.median([np.median([v for v in r["distance"] if v is not None]) for r in runs]))


def main():
    quick = "--quick" in sys.argv
    import art
    import foolbox

    out = {
        "generator": "tools/robustness_decision_goldens.py",
        "versions": {"art": art.__version__, "foolbox": foolbox.__version__, "onnxruntime": ort.__version__,
                     "numpy": np.__version__},
        "note": f"{RUNS} runs per attack (numpy seeds 0..{RUNS - 1}); ART HopSkipJump defaults (max_iter 50, max_eval 1e4, init_eval 100, init_size 100); Foolbox 3 "
                "BoundaryAttack defaults (steps 25000); rows: the first `rows` rows the model classifies correctly "
                "(indices into the data file); distances in input units, null where the attack failed",
        "cases": {},
    }
    for name, model_file, xf, yf, n, domain in CASES:
        model = Counted(os.path.join(TREES, model_file))
        x = np.load(os.path.join(TREES, xf)).astype(np.float32)
        y = np.load(os.path.join(TREES, yf)).astype(np.int64)
        classes = model(x[:1]).shape[1]
        pred = np.argmax(model(x), 1)
        rows = [i for i in range(len(x)) if pred[i] == y[i]][: (8 if quick else n)]
        xs, ys = x[rows], y[rows]
        case = {"model": f"tests/fixtures/trees/{model_file}", "data": f"tests/fixtures/trees/{xf}",
                "labels": f"tests/fixtures/trees/{yf}", "domain": list(domain), "rows": rows}
        runs = 1 if quick else RUNS
        for norm in ("l2", "linf"):
            case[f"art_hsja_{norm}"] = {"runs": []}
            for seed in range(runs):
                np.random.seed(seed)
                d, q, s = art_hsja(model, xs, norm, domain, classes)
                case[f"art_hsja_{norm}"]["runs"].append({"seed": seed, "distance": d, "queries": q, "seconds": s})
                ok = [v for v in d if v is not None]
                print(f"{name} ART HSJA {norm} seed {seed}: median {np.median(ok):.4g} over {len(ok)}/{len(d)}, "
                      f"{np.mean(q):.0f} queries/row, {s:.1f} s", flush=True)
            case[f"art_hsja_{norm}"]["median_of_run_medians"] = median_of_medians(case[f"art_hsja_{norm}"]["runs"])
        case["foolbox_boundary_l2"] = {"runs": []}
        for seed in range(runs):
            np.random.seed(seed)
            d, q, s = foolbox_boundary(model, xs, ys, domain)
            case["foolbox_boundary_l2"]["runs"].append({"seed": seed, "distance": d, "queries_total": q, "seconds": s})
            ok = [v for v in d if v is not None]
            print(f"{name} Foolbox Boundary l2 seed {seed}: median {np.median(ok):.4g} over {len(ok)}/{len(d)}, "
                  f"{q / len(d):.0f} queries/row, {s:.1f} s", flush=True)
        case["foolbox_boundary_l2"]["median_of_run_medians"] = median_of_medians(case["foolbox_boundary_l2"]["runs"])
        out["cases"][name] = case
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, "goldens.json" if not quick else "goldens_quick.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print("wrote", path)


if __name__ == "__main__":
    main()
