#!/usr/bin/env python3
"""Fixture and exact reference for `verify --data`'s input domain (issue #18).

Builds a tiny ONNX classifier (2 inputs, one hidden ReLU layer of 9 units, 2 logits)
whose decision flips only OUTSIDE [0, 1]^2 near the square's edges, plus one corner
(x0 + x1 > 1.7) where it flips inside the square as well:

    margin(x) = y0 - y1 = 0.6 + (small seeded random ReLU terms)
                          - 10 (relu(-x0) + relu(x0 - 1) + relu(-x1) + relu(x1 - 1))
                          - 20 relu(x0 + x1 - 1.7)

and a few points in [0, 1]^2 (label 0) near the edges. With an L-inf ball of radius
0.1 the unbounded box reaches outside the square and is falsified there; the box
intersected with the default domain [0, 1] is not (except at the corner point).

Reference (independent of mlaudit): the margin is piecewise linear in x with breaks
on the hidden units' lines w_k . x + b_k = 0, so its minimum over a box is attained
at a vertex of the arrangement of those lines inside the box: the box corners, the
lines' crossings with the box edges and their pairwise crossings inside the box.
The script evaluates the margin (float32 weights, float64 arithmetic) at every such
vertex ("exhaustive"), and checks the result against a 401 x 401 grid of the box
("dense sampling", never below the exhaustive minimum, and within 1e-6 of it
since the box corners are on the grid's ones) and onnxruntime's forward at the
arg-min. Verdict: falsified when the exact minimum margin is < 0, verified when
> 0 (every case keeps |min| > 0.05, far from the tie).

Writes tests/fixtures/verify/: domain_mlp.onnx, domain_x.npy (float32 [5, 2]),
domain_y.npy (int64 [5]), domain_sat.vnnlib, domain_unsat.vnnlib and
domain_reference.json. Run from anywhere:

    ${PYTHON:-.venv/bin/python} tools/verify_domain_fixture.py
"""
import itertools
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import project_python  # noqa: E402

project_python.use()

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "verify")


def weights():
    rng = np.random.default_rng(18)
    # Hidden units: 4 edge detectors, 1 inside-corner unit, 4 seeded random units.
    w1 = [[-1, 0], [1, 0], [0, -1], [0, 1], [1, 1]]
    b1 = [0, -1, 0, -1, -1.7]
    w1 += rng.normal(0, 1, (4, 2)).tolist()
    b1 += rng.normal(0, 0.5, 4).tolist()
    w1 = np.array(w1, np.float32)
    b1 = np.array(b1, np.float32)
    w2 = np.zeros((2, 9), np.float32)
    w2[0, :4] = -10
    w2[0, 4] = -20
    w2[0, 5:] = rng.uniform(-0.03, 0.03, 4)
    w2[1, 5:] = rng.uniform(-0.03, 0.03, 4)
    b2 = np.array([0.6, 0.0], np.float32)
    return w1, b1, w2, b2


def margin(x, w):
    w1, b1, w2, b2 = (a.astype(np.float64) for a in w)
    h = np.maximum(x @ w1.T + b1, 0)
    y = h @ w2.T + b2
    return y[..., 0] - y[..., 1]


def vertices(lo, hi, w1, b1):
    """Corners of the box [lo, hi] and the vertices of the hidden units' lines inside it."""
    lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
    pts = [np.array(c) for c in itertools.product(*zip(lo, hi))]
    lines = [(w1[k].astype(np.float64), float(b1[k])) for k in range(len(b1))]
    for w, b in lines:  # crossings with the box edges
        for d in range(2):
            o = 1 - d
            if w[o] == 0:
                continue
            for v in (lo[d], hi[d]):
                p = np.zeros(2)
                p[d] = v
                p[o] = -(b + w[d] * v) / w[o]
                pts.append(p)
    for (wa, ba), (wb, bb) in itertools.combinations(lines, 2):  # pairwise crossings
        a = np.array([wa, wb])
        if abs(np.linalg.det(a)) > 1e-12:
            pts.append(np.linalg.solve(a, -np.array([ba, bb])))
    pts = np.array(pts)
    inside = np.all((pts >= lo - 1e-12) & (pts <= hi + 1e-12), axis=1)
    return np.clip(pts[inside], lo, hi)


def write_model(w, path):
    w1, b1, w2, b2 = w
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w1", "b1"], ["z"], transB=1, name="fc1"),
         helper.make_node("Relu", ["z"], ["h"], name="relu1"),
         helper.make_node("Gemm", ["h", "w2", "b2"], ["logits"], transB=1, name="fc2")],
        "domain_mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(b1, "b1"),
         numpy_helper.from_array(w2, "w2"), numpy_helper.from_array(b2, "b2")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="verify_domain_fixture.py")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)


def vnnlib(lo, hi):
    s = "; written by tools/verify_domain_fixture.py\n"
    s += "".join(f"(declare-const X_{i} Real)\n" for i in range(2))
    s += "".join(f"(declare-const Y_{j} Real)\n" for j in range(2))
    for i in range(2):
        s += f"(assert (>= X_{i} {lo[i]}))\n(assert (<= X_{i} {hi[i]}))\n"
    return s + "(assert (<= Y_0 Y_1))\n"


def decide(lo, hi, w, sess):
    """Exact min margin over the box (vertex enumeration), cross-checked by dense sampling and onnxruntime."""
    v = vertices(lo, hi, w[0], w[1])
    m = margin(v, w)
    k = int(np.argmin(m))
    g = np.stack(np.meshgrid(np.linspace(lo[0], hi[0], 401), np.linspace(lo[1], hi[1], 401)), -1).reshape(-1, 2)
    grid_min = float(margin(g, w).min())
    assert grid_min >= m[k] - 1e-9 and grid_min <= m[k] + 1e-6, (lo, hi, grid_min, m[k])
    y = sess.run(None, {"x": v[k:k + 1].astype(np.float32)})[0][0]
    assert abs(float(y[0] - y[1]) - m[k]) < 1e-5
    assert abs(m[k]) > 0.05, "reference too close to the decision boundary"
    return {"lower": list(map(float, lo)), "upper": list(map(float, hi)), "min_margin": float(m[k]),
            "argmin": v[k].tolist(), "grid_min_margin": grid_min, "vertices": int(len(v)),
            "verdict": "falsified" if m[k] < 0 else "verified"}


def main():
    os.makedirs(OUT, exist_ok=True)
    w = weights()
    model_path = os.path.join(OUT, "domain_mlp.onnx")
    write_model(w, model_path)
    sess = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    x = np.array([[0.03, 0.5], [0.5, 0.97], [0.96, 0.04], [0.5, 0.5], [0.8, 0.8]], np.float32)
    y = np.zeros(len(x), np.int64)
    assert np.all(margin(x.astype(np.float64), w) > 0.05), "every sample is classified as its label 0"
    np.save(os.path.join(OUT, "domain_x.npy"), x)
    np.save(os.path.join(OUT, "domain_y.npy"), y)
    eps_list = [0.02, 0.1]
    cases = []
    for e in eps_list:
        for i, xi in enumerate(x.astype(np.float64)):
            row = {"index": i, "eps": e}
            for name, (dlo, dhi) in (("unbounded", (-np.inf, np.inf)), ("default", (0.0, 1.0))):
                row[name] = decide(np.maximum(xi - e, dlo), np.minimum(xi + e, dhi), w, sess)
            cases.append(row)
    props = {}
    for name, lo, hi in (("domain_sat", [-0.1, 0.4], [0.1, 0.6]), ("domain_unsat", [0.2, 0.2], [0.8, 0.8])):
        with open(os.path.join(OUT, name + ".vnnlib"), "w") as f:
            f.write(vnnlib(lo, hi))
        props[name] = decide(np.array(lo), np.array(hi), w, sess)
    ref = {"recipe": "tools/verify_domain_fixture.py (exact vertex enumeration, 401x401 grid, onnxruntime "
                     + ort.__version__ + ")",
           "eps": eps_list, "cases": cases, "vnnlib": props}
    with open(os.path.join(OUT, "domain_reference.json"), "w") as f:
        json.dump(ref, f, indent=1)
        f.write("\n")
    for c in cases:
        print(f"sample {c['index']} eps {c['eps']}: unbounded {c['unbounded']['verdict']} "
              f"({c['unbounded']['min_margin']:.3f}), [0, 1] {c['default']['verdict']} ({c['default']['min_margin']:.3f})")
    for k, v in props.items():
        print(f"{k}: {v['verdict']} ({v['min_margin']:.3f})")


if __name__ == "__main__":
    main()
