#!/usr/bin/env python3
"""Golden values for the verify module's tests (tests/fixtures/verify/).

Run from the repository root with the project venv:

    ${PYTHON:-.venv/bin/python} tools/verify_goldens.py

It writes
  * tests/fixtures/verify/crown_random_net.json: a seeded random ReLU network
    (4-8-8-3), an input box, and the IBP and CROWN bounds of every layer computed
    by an independent NumPy implementation (interval arithmetic; CROWN
    back-substitution with the adaptive lower slope, Zhang et al. 2018);
  * tests/fixtures/verify/acasxu_forward.json: onnxruntime outputs of two ACAS
    Xu networks at seeded inputs (the reference the ONNX->Network conversion
    must reproduce);
  * tests/fixtures/verify/credit_forward.json: the same for models/credit_mlp.onnx
    when it exists.
"""
import json
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "verify")
ACAS = os.path.join(ROOT, "..", "shared", "datasets", "vnncomp2022", "acasxu")


def ibp(weights, biases, lo, hi):
    bounds = []
    for k, (W, b) in enumerate(zip(weights, biases)):
        mid, rad = (lo + hi) / 2, (hi - lo) / 2
        zl = W @ mid + b - np.abs(W) @ rad
        zu = W @ mid + b + np.abs(W) @ rad
        bounds.append((zl, zu))
        lo, hi = np.maximum(zl, 0), np.maximum(zu, 0)
    return bounds


def crown_lower(weights, biases, bounds, lo, hi, C, start):
    """Lower bound of C z_start by back-substitution; bounds[k] for k < start."""
    lam = C @ weights[start]
    const = C @ biases[start]
    for k in range(start - 1, -1, -1):
        l, u = bounds[k]
        new = np.zeros_like(lam)
        for j in range(lam.shape[1]):
            if l[j] >= 0:
                new[:, j] = lam[:, j]
            elif u[j] <= 0:
                new[:, j] = 0
            else:
                s = u[j] / (u[j] - l[j])
                alpha = 1.0 if u[j] > -l[j] else 0.0
                pos = lam[:, j] >= 0
                new[pos, j] = lam[pos, j] * alpha
                new[~pos, j] = lam[~pos, j] * s
                const = const + np.where(~pos, lam[:, j] * (-s * l[j]), 0.0)
        const = const + new @ biases[k]
        lam = new @ weights[k]
    return const + np.where(lam >= 0, lam * lo, lam * hi).sum(axis=1)


def crown(weights, biases, lo, hi):
    ib = ibp(weights, biases, lo, hi)
    bounds = [ib[0]]
    for k in range(1, len(weights)):
        n = weights[k].shape[0]
        eye = np.eye(n)
        low = crown_lower(weights, biases, bounds, lo, hi, eye, k)
        up = -crown_lower(weights, biases, bounds, lo, hi, -eye, k)
        bounds.append((np.maximum(low, ib[k][0]), np.minimum(up, ib[k][1])))
    return bounds


def random_net_golden():
    rng = np.random.default_rng(20231)
    sizes = [4, 8, 8, 3]
    weights = [rng.normal(0, 1 / np.sqrt(sizes[i]), (sizes[i + 1], sizes[i])).astype(np.float32).astype(np.float64)
               for i in range(3)]
    biases = [rng.normal(0, 0.3, sizes[i + 1]).astype(np.float32).astype(np.float64) for i in range(3)]
    lo = np.array([-0.5, -0.2, 0.0, 0.3])
    hi = np.array([0.5, 0.4, 0.25, 0.9])
    ib = ibp(weights, biases, lo, hi)
    cr = crown(weights, biases, lo, hi)
    return {
        "recipe": "tools/verify_goldens.py random_net_golden (NumPy IBP + CROWN back-substitution)",
        "weights": [W.tolist() for W in weights],
        "biases": [b.tolist() for b in biases],
        "box_lower": lo.tolist(),
        "box_upper": hi.tolist(),
        "ibp_lower": [b[0].tolist() for b in ib],
        "ibp_upper": [b[1].tolist() for b in ib],
        "crown_lower": [b[0].tolist() for b in cr],
        "crown_upper": [b[1].tolist() for b in cr],
    }


def onnx_forward(path, inputs, shape):
    import onnxruntime as ort
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    outs = []
    for x in inputs:
        outs.append(sess.run(None, {name: np.asarray(x, dtype=np.float32).reshape(shape)})[0].reshape(-1).tolist())
    return outs


def main():
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "crown_random_net.json"), "w") as f:
        json.dump(random_net_golden(), f, indent=1)
    rng = np.random.default_rng(7)
    if os.path.isdir(ACAS):
        cases = []
        for net in ["ACASXU_run2a_1_1_batch_2000.onnx", "ACASXU_run2a_3_3_batch_2000.onnx"]:
            xs = rng.uniform(-0.5, 0.5, (6, 5)).astype(np.float32)
            ys = onnx_forward(os.path.join(ACAS, "onnx", net), xs, (1, 1, 1, 5))
            cases.append({"onnx": net, "inputs": xs.astype(np.float64).tolist(), "outputs": ys})
        with open(os.path.join(OUT, "acasxu_forward.json"), "w") as f:
            json.dump({"recipe": "onnxruntime CPU, float32, tools/verify_goldens.py", "cases": cases}, f, indent=1)
    credit = os.path.join(ROOT, "models", "credit_mlp.onnx")
    if os.path.exists(credit):
        import onnx
        m = onnx.load(credit)
        dims = [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim]
        nfeat = dims[-1]
        xs = np.abs(rng.normal(0, 1, (6, nfeat))).astype(np.float32) * np.float32(10)
        ys = onnx_forward(credit, xs, (1, nfeat))
        with open(os.path.join(OUT, "credit_forward.json"), "w") as f:
            json.dump({"recipe": "onnxruntime CPU, float32, tools/verify_goldens.py",
                       "inputs": xs.astype(np.float64).tolist(), "outputs": ys}, f, indent=1)
    print("wrote", OUT)


if __name__ == "__main__":
    sys.exit(main())
