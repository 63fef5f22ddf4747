#!/usr/bin/env python3
"""Soundness campaign for `mlaudit verify` (issue #25): random small networks and
properties, decided by an exact reference, and mlaudit's verdicts compared with it.

Run from the repository root with the project venv (tools/project_python.py finds it):

    # 1. generate N instances with their reference answers (ONNX + VNN-LIB + cases.csv)
    .venv/bin/python tools/verify_campaign.py generate --out /tmp/vc --count 500 --seed 1
    # 2. run mlaudit on them and compare (results.csv + a summary per family and property kind)
    .venv/bin/python tools/verify_campaign.py run --dir /tmp/vc --mlaudit build/mlaudit --timeout 10 --jobs 1
    # the two in chunks (generate, run, keep only the wrong/odd instances, append the rows)
    .venv/bin/python tools/verify_campaign.py campaign --work /tmp/vcamp --chunks 20 --chunk-size 500 \
        --seed 1000 --mlaudit build/mlaudit --jobs 1
    # summary of a campaign's accumulated rows (the table docs/dev/reliability.md shows)
    .venv/bin/python tools/verify_campaign.py summary /tmp/vcamp/results.csv
    # fixed cases for ctest (tests/fixtures/verify_campaign/, test_verify_campaign)
    .venv/bin/python tools/verify_campaign.py fixtures --out tests/fixtures/verify_campaign --pool 900 --seed 7 \
        --mlaudit build/mlaudit

Networks (one "family" each, built as exporters write them; weights float32):
  dense        Gemm(transB=1)/ReLU chains (torch) or MatMul+Add (keras), 2-6 layers, widths 2-8,
               sometimes an input normalisation (Sub/Div) and a ReLU on the output
  dense_bn     Gemm -> BatchNormalization (not folded) -> ReLU
  bn_folded    the same statistics folded into the Gemm weights (what torch.fx fusion exports)
  conv_pool    Conv -> ReLU -> MaxPool (-> Conv -> ReLU) -> Flatten -> Gemm, on 1-2 x 4-6 x 4-6 images
  conv_bn_avg  Conv -> BatchNormalization -> ReLU -> AveragePool -> Flatten -> Gemm
  ill          dense nets with per-layer weight scales 10^[-3, 3] and ReLUs whose
               pre-activation is (nearly) zero at the ball's centre
  residual     x + relu(f(x)) skip connections after the activation (an Add of two data tensors)
  leaky        LeakyReLU activations (the verifier folds them as a x + (1 - a) relu(x))
  sigmoid      Sigmoid activations                                     -- unsupported (no exact reference)
Not in the default nine (so that older campaigns stay reproducible), on request with --families:
  preact       pre-activation residual MLPs, h + W2 relu(W1 relu(h)); the first skip often reads the
               model input itself, later ones sums that are not ReLU outputs
  resnet       small convolutional ResNets on 1-2 x 3-4 x 3-4 images: Conv(3x3) [-> BN] -> ReLU stem
               (sometimes without the ReLU), then 1-2 blocks, each a basic block (identity shortcut), a
               projection block (1x1 Conv shortcut, written after or before the block's body) or a
               DenseNet-style Concat of the input and the block's ReLU output; Flatten -> Gemm
The verifier folds a model into a chain of affine maps, ReLUs and max-pools (docs/dev/verify.md, Method 1),
skip connections carried through the ReLU layers, LeakyReLU as a x + (1 - a) relu(x); sigmoid must come
back `unknown` (or `sat` with a counterexample that onnxruntime confirms).

Properties ("kind"):
  robust       L-inf ball around a centre, unsafe when another class reaches the centre's class
  robust_clip  the same ball intersected with the domain [0, 1] (centre in [0, 1])
  linear       a conjunction of 1-2 random linear output constraints c . y <= d
  disjunction  2-3 disjuncts, each a conjunction of 1-2 linear constraints
  multibox     2 input boxes, each with its own unsafe disjunction (ACAS Xu property 6's shape)

Reference (exact up to a margin): a MILP per (box, unsafe conjunction), big-M from sound interval
bounds, solved by HiGHS (scipy.optimize.milp): maximise t subject to t <= -(c_k . y + d_k) for every
row k. The conjunction is reachable iff t* >= 0. `sat` needs a MILP point whose exact float64
forward pass has t > margin; `unsat` needs HiGHS's dual bound < -margin; otherwise the instance is
`borderline` and excluded from the wrong-answer count (margin = 1e-4 x the outputs' magnitude, the
float32/float64 gap between onnxruntime, mlaudit's engine and the reference). A sampled point
(512 per box) with t > margin is a witness too, and contradicts an `unsat` reference (`refbug`).
On every 25th instance (--enum-every) whose net has only ReLUs and at most 8 unstable ones, the
reference is cross-checked by enumerating every activation pattern (one LP each, no big-M).

Comparison (`run`): wrong = mlaudit `unsat` where the reference is `sat`, mlaudit `sat` where the
reference is `unsat`, or a `sat` whose counterexample is outside the input region or does not
reach the unsafe set under onnxruntime (float32; tolerance 1e-6 x the outputs' magnitude, the
float32 summation-order difference between two runtimes).
"""
import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import project_python  # noqa: E402

project_python.use()

import numpy as np  # noqa: E402
import onnx  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from scipy.optimize import Bounds, LinearConstraint, milp  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAMILIES = ["dense", "dense_bn", "bn_folded", "conv_pool", "conv_bn_avg", "ill", "residual", "leaky", "sigmoid"]
KINDS = ["robust", "robust_clip", "linear", "disjunction", "multibox"]
UNSUPPORTED = {"sigmoid"}
# Relative decision margin of the reference: float32 forward passes (onnxruntime, the engine) and
# the float64 reference differ by about n u |W||a| ~ 1e-6 relative on these sizes; 1e-4 leaves 100x.
MARGIN_REL = 1e-4
# Floor of the margin relative to the largest |value| of any node (HiGHS's absolute tolerances; decide()).
HIDDEN_MARGIN_REL = 1e-6
# Counterexample re-check tolerance under onnxruntime: two float32 runtimes summing in different
# orders differ by a few ulps of the largest partial sum (~1e-7 relative); 1e-6 x output magnitude.
CEX_TOL_REL = 1e-6


def f32(a):
    return np.asarray(a, dtype=np.float32).astype(np.float64)


# ----------------------------------------------------------------------------- network IR
class Net:
    """A DAG over flat float64 vectors (C order of the ONNX tensors), mirrored by an ONNX graph.

    IR node ops: input, affine (W [out, in], b), relu, leaky (alpha), sigmoid, maxpool (windows), add,
    concat (of several sources; only in the reference's fairness twins, never exported).
    """

    def __init__(self, rng, input_shape):
        self.rng = rng
        self.nodes = []  # dicts: op, src (list of node ids), params
        self.onnx_nodes, self.inits = [], []
        self.names, self.shapes = [], []
        self.counter = 0
        self.input_shape = list(input_shape)
        self._add({"op": "input", "src": []}, "X", list(input_shape))

    def _add(self, node, name, shape):
        self.nodes.append(node)
        self.names.append(name)
        self.shapes.append(list(shape))
        return len(self.nodes) - 1

    def _name(self, base):
        self.counter += 1
        return f"{base}_{self.counter}"

    def _init(self, base, arr):
        n = self._name(base)
        self.inits.append(numpy_helper.from_array(np.asarray(arr, dtype=np.float32), n))
        return n

    def size(self, h):
        return int(np.prod(self.shapes[h]))

    # ---- layers
    def gemm(self, h, out, scale=1.0, style="gemm", W=None, b=None):
        n_in = self.size(h)
        if W is None:
            W = self.rng.normal(0, scale / np.sqrt(n_in), (out, n_in))
        if b is None:
            b = self.rng.normal(0, 0.3 * scale, out)
        W, b = f32(W), f32(b)
        x = self.names[h]
        y = self._name("fc")
        if style == "gemm":
            self.onnx_nodes.append(helper.make_node("Gemm", [x, self._init("W", W), self._init("B", b)], [y],
                                                    name=y, transB=1))
        else:
            t = self._name("mm")
            self.onnx_nodes.append(helper.make_node("MatMul", [x, self._init("W", W.T)], [t], name=t))
            self.onnx_nodes.append(helper.make_node("Add", [t, self._init("B", b)], [y], name=y))
        return self._add({"op": "affine", "src": [h], "W": W, "b": b}, y, [1, out])

    def bn(self, h, scale_mag=1.0):
        shp = self.shapes[h]
        C = shp[1]
        gamma = f32(self.rng.uniform(0.5, 1.5, C) * scale_mag * self.rng.choice([-1, 1], C))
        beta = f32(self.rng.normal(0, 0.3, C))
        mean = f32(self.rng.normal(0, 0.5, C))
        var = f32(self.rng.uniform(0.1, 2.0, C))
        eps = float(np.float32(1e-5))
        k = gamma / np.sqrt(var + eps)
        inner = self.size(h) // C
        s = np.repeat(k, inner)
        d = np.repeat(beta - k * mean, inner)
        y = self._name("bn")
        self.onnx_nodes.append(helper.make_node(
            "BatchNormalization", [self.names[h], self._init("g", gamma), self._init("be", beta),
                                   self._init("mu", mean), self._init("var", var)], [y], name=y, epsilon=1e-5))
        return self._add({"op": "affine", "src": [h], "W": np.diag(s), "b": d}, y, shp)

    def normalize(self, h):
        n = self.size(h)
        mean = f32(self.rng.uniform(0, 0.5, n))
        std = f32(self.rng.uniform(0.5, 2.0, n))
        t, y = self._name("sub"), self._name("div")
        self.onnx_nodes.append(helper.make_node("Sub", [self.names[h], self._init("mean", mean.reshape(self.shapes[h]))],
                                                [t], name=t))
        self.onnx_nodes.append(helper.make_node("Div", [t, self._init("std", std.reshape(self.shapes[h]))], [y], name=y))
        return self._add({"op": "affine", "src": [h], "W": np.diag(1.0 / std), "b": -mean / std}, y, self.shapes[h])

    def conv(self, h, out_ch, k=2, stride=1, pad=0, scale=1.0):
        _, C, H, Wd = self.shapes[h]
        Wt = f32(self.rng.normal(0, scale / np.sqrt(C * k * k), (out_ch, C, k, k)))
        b = f32(self.rng.normal(0, 0.3 * scale, out_ch))
        OH, OW = (H + 2 * pad - k) // stride + 1, (Wd + 2 * pad - k) // stride + 1
        M = np.zeros((out_ch * OH * OW, C * H * Wd))
        for m in range(out_ch):
            for oy in range(OH):
                for ox in range(OW):
                    o = (m * OH + oy) * OW + ox
                    for c in range(C):
                        for ky in range(k):
                            for kx in range(k):
                                iy, ix = oy * stride - pad + ky, ox * stride - pad + kx
                                if 0 <= iy < H and 0 <= ix < Wd:
                                    M[o, (c * H + iy) * Wd + ix] += Wt[m, c, ky, kx]
        y = self._name("conv")
        self.onnx_nodes.append(helper.make_node("Conv", [self.names[h], self._init("Wc", Wt), self._init("Bc", b)], [y],
                                                name=y, kernel_shape=[k, k], strides=[stride, stride],
                                                pads=[pad, pad, pad, pad]))
        return self._add({"op": "affine", "src": [h], "W": M, "b": np.repeat(b, OH * OW)}, y, [1, out_ch, OH, OW])

    def pool(self, h, kind, k=2, stride=2):
        _, C, H, Wd = self.shapes[h]
        OH, OW = (H - k) // stride + 1, (Wd - k) // stride + 1
        windows = []
        for c in range(C):
            for oy in range(OH):
                for ox in range(OW):
                    windows.append([(c * H + oy * stride + ky) * Wd + ox * stride + kx
                                    for ky in range(k) for kx in range(k)])
        y = self._name(kind)
        op = "MaxPool" if kind == "maxpool" else "AveragePool"
        self.onnx_nodes.append(helper.make_node(op, [self.names[h]], [y], name=y, kernel_shape=[k, k],
                                                strides=[stride, stride]))
        if kind == "maxpool":
            node = {"op": "maxpool", "src": [h], "windows": windows}
        else:
            M = np.zeros((len(windows), self.size(h)))
            for i, w in enumerate(windows):
                M[i, w] = 1.0 / len(w)
            node = {"op": "affine", "src": [h], "W": M, "b": np.zeros(len(windows))}
        return self._add(node, y, [1, C, OH, OW])

    def flatten(self, h):
        y = self._name("flat")
        self.onnx_nodes.append(helper.make_node("Flatten", [self.names[h]], [y], name=y, axis=1))
        return self._add({"op": "affine", "src": [h], "W": np.eye(self.size(h)), "b": np.zeros(self.size(h)),
                          "identity": True}, y, [1, self.size(h)])

    def act(self, h, kind="relu", alpha=0.1):
        y = self._name(kind)
        if kind == "relu":
            self.onnx_nodes.append(helper.make_node("Relu", [self.names[h]], [y], name=y))
            node = {"op": "relu", "src": [h]}
        elif kind == "leaky":
            alpha = float(np.float32(alpha))
            self.onnx_nodes.append(helper.make_node("LeakyRelu", [self.names[h]], [y], name=y, alpha=alpha))
            node = {"op": "leaky", "src": [h], "alpha": alpha}
        else:
            self.onnx_nodes.append(helper.make_node("Sigmoid", [self.names[h]], [y], name=y))
            node = {"op": "sigmoid", "src": [h]}
        return self._add(node, y, self.shapes[h])

    def concat(self, hs, axis=1):
        y = self._name("concat")
        self.onnx_nodes.append(helper.make_node("Concat", [self.names[h] for h in hs], [y], name=y, axis=axis))
        shape = list(self.shapes[hs[0]])
        shape[axis] = sum(self.shapes[h][axis] for h in hs)
        return self._add({"op": "concat", "src": list(hs)}, y, shape)

    def add(self, a, b):
        y = self._name("add")
        self.onnx_nodes.append(helper.make_node("Add", [self.names[a], self.names[b]], [y], name=y))
        return self._add({"op": "add", "src": [a, b]}, y, self.shapes[a])

    # ---- export and evaluation
    def to_onnx(self, out_h):
        self.out = out_h
        g = helper.make_graph(
            self.onnx_nodes, "campaign",
            [helper.make_tensor_value_info("X", TensorProto.FLOAT, self.input_shape)],
            [helper.make_tensor_value_info(self.names[out_h], TensorProto.FLOAT, self.shapes[out_h])],
            self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], producer_name="verify_campaign")
        m.ir_version = 8
        onnx.checker.check_model(m)
        return m

    def forward_all(self, x):
        """Every node's values for one input (float64)."""
        return [v[0] for v in self.forward_batch_all(np.asarray(x, dtype=np.float64)[None, :])]

    def forward(self, x):
        return self.forward_all(x)[self.out]

    def forward_batch_all(self, X):
        """Every node's values for many inputs (rows of X) at once, float64."""
        vals = []
        for nd in self.nodes:
            op = nd["op"]
            if op == "input":
                v = np.asarray(X, dtype=np.float64)
            elif op == "affine":
                v = vals[nd["src"][0]] @ nd["W"].T + nd["b"]
            elif op == "relu":
                v = np.maximum(vals[nd["src"][0]], 0)
            elif op == "leaky":
                z = vals[nd["src"][0]]
                v = np.where(z >= 0, z, nd["alpha"] * z)
            elif op == "sigmoid":
                v = 1 / (1 + np.exp(-vals[nd["src"][0]]))
            elif op == "maxpool":
                r = vals[nd["src"][0]]
                v = np.stack([r[:, w].max(axis=1) for w in nd["windows"]], axis=1)
            elif op == "concat":
                v = np.concatenate([vals[i] for i in nd["src"]], axis=1)
            else:
                v = vals[nd["src"][0]] + vals[nd["src"][1]]
            vals.append(v)
        return vals

    def forward_batch(self, X):
        """Forward of many inputs (rows of X) at once, float64."""
        return self.forward_batch_all(X)[self.out]

    def interval_bounds(self, lo, hi):
        """Sound interval bounds of every node on the box (float64, widened by 1e-9 relative + 1e-12)."""
        def widen(l, u):
            w = 1e-9 * np.maximum(np.abs(l), np.abs(u)) + 1e-12
            return l - w, u + w
        bounds = []
        for nd in self.nodes:
            op = nd["op"]
            if op == "input":
                l, u = np.asarray(lo, float), np.asarray(hi, float)
            else:
                sl, su = bounds[nd["src"][0]]
                if op == "concat":
                    l = np.concatenate([bounds[i][0] for i in nd["src"]])
                    u = np.concatenate([bounds[i][1] for i in nd["src"]])
                elif op == "affine":
                    mid, rad = (sl + su) / 2, (su - sl) / 2
                    c = nd["W"] @ mid + nd["b"]
                    r = np.abs(nd["W"]) @ rad
                    l, u = widen(c - r, c + r)
                elif op == "relu":
                    l, u = np.maximum(sl, 0), np.maximum(su, 0)
                elif op == "leaky":
                    a = nd["alpha"]
                    l, u = np.where(sl >= 0, sl, a * sl), np.where(su >= 0, su, a * su)
                elif op == "sigmoid":
                    l, u = 1 / (1 + np.exp(-sl)), 1 / (1 + np.exp(-su))
                elif op == "maxpool":
                    l = np.array([sl[w].max() for w in nd["windows"]])
                    u = np.array([su[w].max() for w in nd["windows"]])
                else:
                    tl, tu = bounds[nd["src"][1]]
                    l, u = widen(sl + tl, su + tu)
            bounds.append((l, u))
        return bounds

    def exact_encodable(self):
        return all(nd["op"] != "sigmoid" for nd in self.nodes)

    def relu_only(self):
        return all(nd["op"] in ("input", "affine", "relu", "add", "concat") for nd in self.nodes)


# ----------------------------------------------------------------------------- MILP reference
class Encoding:
    """Variables of every IR node; binaries for unstable ReLUs / leaky / max-pool windows."""

    def __init__(self, net, lo, hi, pattern=None):
        self.net = net
        self.bounds = net.interval_bounds(lo, hi)
        self.nvar = 0
        self.lb, self.ub, self.integ = [], [], []
        self.rows, self.rlo, self.rhi = [], [], []  # rows as dict {var: coef}
        self.var = []
        self.unstable = []  # (node, index, binary var)
        self.pattern = pattern  # dict (node, i) -> 0/1 fixes an unstable ReLU's phase (enumeration)
        for k, nd in enumerate(net.nodes):
            l, u = self.bounds[k]
            ids = self.new(l, u)
            self.var.append(ids)
            op = nd["op"]
            if op == "input":
                continue
            s = self.var[nd["src"][0]]
            if op == "affine":
                W = nd["W"]
                for i in range(len(ids)):
                    row = {ids[i]: 1.0}
                    for j in np.nonzero(W[i])[0]:
                        row[s[j]] = row.get(s[j], 0.0) - W[i, j]
                    self.row(row, nd["b"][i], nd["b"][i])
            elif op == "concat":  # (fairness twins: tools/fairness_campaign.py)
                src = [v for i in nd["src"] for v in self.var[i]]
                for i in range(len(ids)):
                    self.row({ids[i]: 1.0, src[i]: -1.0}, 0, 0)
            elif op == "add":
                t = self.var[nd["src"][1]]
                for i in range(len(ids)):
                    self.row({ids[i]: 1.0, s[i]: -1.0, t[i]: -1.0}, 0, 0)
            elif op in ("relu", "leaky"):
                a = nd.get("alpha", 0.0)
                sl, su = self.bounds[nd["src"][0]]
                for i in range(len(ids)):
                    y, z = ids[i], s[i]
                    if sl[i] >= 0:
                        self.row({y: 1, z: -1}, 0, 0)
                    elif su[i] <= 0:
                        self.row({y: 1, z: -a}, 0, 0)
                    else:
                        # y = a z + (1 - a) r, r = relu(z) (big-M: r >= z, r >= 0, r <= z - l (1-d), r <= u d)
                        r = self.new([0.0], [su[i]])[0]
                        d = self.new([0.0], [1.0], integer=True)[0]
                        self.unstable.append((k, i, d))
                        self.row({y: 1, z: -a, r: -(1 - a)}, 0, 0)
                        self.row({r: 1, z: -1}, 0, np.inf)
                        self.row({r: 1, z: -1, d: -sl[i]}, -np.inf, -sl[i])
                        self.row({r: 1, d: -su[i]}, -np.inf, 0)
                        if pattern is not None:
                            ph = pattern[(k, i)]
                            self.lb[d] = self.ub[d] = float(ph)
                            # the phase as plain linear constraints too (no reliance on big-M)
                            if ph:
                                self.row({z: 1}, 0, np.inf)
                                self.row({r: 1, z: -1}, 0, 0)
                            else:
                                self.row({z: 1}, -np.inf, 0)
                                self.row({r: 1}, 0, 0)
            elif op == "maxpool":
                sl, su = self.bounds[nd["src"][0]]
                for i, w in enumerate(nd["windows"]):
                    y = ids[i]
                    lmax = max(sl[j] for j in w)
                    cand = [j for j in w if su[j] >= lmax]
                    umax = max(su[j] for j in w)
                    for j in w:
                        self.row({y: 1, s[j]: -1}, 0, np.inf)  # y >= every input
                    if len(cand) == 1:
                        self.row({y: 1, s[cand[0]]: -1}, 0, 0)
                        continue
                    ds = []
                    for j in cand:
                        d = self.new([0.0], [1.0], integer=True)[0]
                        ds.append(d)
                        # d = 1 -> y <= x_j:  y - x_j <= (umax - l_j)(1 - d)
                        M = umax - sl[j]
                        self.row({y: 1, s[j]: -1, d: M}, -np.inf, M)
                    self.row({d: 1 for d in ds}, 1, 1)
            else:
                raise ValueError("sigmoid has no exact encoding")

    def new(self, l, u, integer=False):
        ids = list(range(self.nvar, self.nvar + len(l)))
        self.nvar += len(l)
        self.lb += [float(v) for v in l]
        self.ub += [float(v) for v in u]
        self.integ += [1 if integer else 0] * len(l)
        return ids

    def row(self, coefs, lo, hi):
        self.rows.append(coefs)
        self.rlo.append(lo)
        self.rhi.append(hi)

    def solve_conjunction(self, rows_cd, time_limit=20.0):
        """max t s.t. t <= -(c_k . y + d_k) for all k. Returns (status, primal t, x or None, dual bound)."""
        yv = self.var[self.net.out]
        nv = self.nvar + 1
        tv = self.nvar
        R = list(self.rows)
        lo, hi = list(self.rlo), list(self.rhi)
        for c, d in rows_cd:
            row = {tv: 1.0}
            for j, cj in enumerate(c):
                if cj != 0:
                    row[yv[j]] = row.get(yv[j], 0.0) + cj
            R.append(row)
            lo.append(-np.inf)
            hi.append(-d)
        data, ri, ci = [], [], []
        for r, row in enumerate(R):
            for v, c in row.items():
                ri.append(r)
                ci.append(v)
                data.append(c)
        A = sp.csr_matrix((data, (ri, ci)), shape=(len(R), nv))
        cost = np.zeros(nv)
        cost[tv] = -1.0
        lb = np.array(self.lb + [-1e9])
        ub = np.array(self.ub + [1e9])
        integ = np.array(self.integ + [0])
        res = milp(cost, constraints=LinearConstraint(A, lo, hi), integrality=integ, bounds=Bounds(lb, ub),
                   options={"time_limit": time_limit, "mip_rel_gap": 1e-9})
        xin = self.var[0]
        if res.x is None:
            if res.status == 2:  # infeasible: no point of the box (never for a non-empty box)
                return "infeasible", -np.inf, None, -np.inf
            return "fail", None, None, None
        dual = getattr(res, "mip_dual_bound", None)
        dual = -dual if dual is not None else None  # milp minimises -t
        if res.status == 0 and not any(self.integ):
            dual = -res.fun
        return ("optimal" if res.status == 0 else "limit"), -res.fun, res.x[xin], dual


def conj_value(y, rows_cd):
    """min_k -(c_k . y + d_k): >= 0 iff y is in the closed unsafe conjunction."""
    return min(-(float(np.dot(c, y)) + d) for c, d in rows_cd)


def decide(net, prop, enumerate_patterns=False, samples=512, rng=None):
    """Reference decision of a property: (answer, detail dict). answer in sat/unsat/borderline/none."""
    out_scale = prop["out_scale"]
    # HiGHS's tolerances are absolute (primal feasibility 1e-7 per row), and a row's error grows with
    # the magnitudes inside the network: when the outputs are small next to the hidden values (an
    # ill-conditioned net with cancelling layers) 1e-4 x the outputs is below what the MILP resolves.
    # Found by the campaign (seed 5000, instance 1908, family ill_centre: outputs ~6e-4, hidden
    # values ~120; HiGHS's optimum -7.2e-7, "unsat" by the old margin, while mlaudit's counterexample
    # reaches t = +1.6e-8 in float64). So the margin is also at least 1e-6 x the largest sampled
    # |value| of any node.
    lo0, hi0 = np.array(prop["cases"][0]["lo"]), np.array(prop["cases"][0]["hi"])
    hidden_scale = max(float(np.abs(v).max()) for k in range(8)
                       for v in net.forward_all(lo0 + (hi0 - lo0) * rng.random(len(lo0))))
    margin = max(MARGIN_REL * out_scale, HIDDEN_MARGIN_REL * hidden_scale)
    detail = {"margin": margin, "t": [], "method": "milp"}
    any_border, any_sat = False, False
    witness = None
    for case in prop["cases"]:
        if any_sat and not enumerate_patterns:
            break
        lo, hi = np.array(case["lo"]), np.array(case["hi"])
        # sampled points: a cheap witness search and a check against `unsat` references
        X = lo + (hi - lo) * rng.random((samples, len(lo)))
        X[: samples // 4] = np.where(rng.random((samples // 4, len(lo))) < 0.5, lo, hi)
        Y = net.forward_batch(X)
        if not net.exact_encodable():
            for rows_cd in case["unsafe"]:
                vals = np.min(np.stack([-(Y @ np.array(c) + d) for c, d in rows_cd], axis=1), axis=1)
                i = int(np.argmax(vals))
                if vals[i] > margin:
                    return "sat", {"margin": margin, "t": [float(vals[i])], "method": "sampling", "x": X[i].tolist()}
            any_border = True
            continue
        enc = Encoding(net, lo, hi)
        for rows_cd in case["unsafe"]:
            vals = np.min(np.stack([-(Y @ np.array(c) + d) for c, d in rows_cd], axis=1), axis=1)
            smax = float(vals.max())
            if smax > margin and not enumerate_patterns:
                # a sampled point is an exact (float64) witness: sat without the MILP
                any_sat = True
                witness = X[int(np.argmax(vals))].tolist()
                detail["t"].append([None, smax, None, smax])
                detail["method"] = "sampled witness"
                break
            st, t, x, dual = enc.solve_conjunction(rows_cd)
            if st == "fail":
                any_border = True
                detail["t"].append(None)
                continue
            t_exact = conj_value(net.forward(np.clip(x, lo, hi)), rows_cd) if x is not None else -np.inf
            detail["t"].append([t, t_exact, dual, smax])
            if smax > margin and dual is not None and dual < -margin:
                raise RuntimeError(f"reference inconsistent: sampled t {smax} > 0 but MILP dual bound {dual}")
            if t_exact > margin:
                any_sat = True
                witness = np.clip(x, lo, hi).tolist()
            elif smax > margin:
                any_sat = True
                witness = X[int(np.argmax(vals))].tolist()
            elif dual is None or dual >= -margin:
                any_border = True
            if enumerate_patterns and net.relu_only() and len(enc.unstable) <= 8:
                best = -np.inf
                nodes = [(k, i) for k, i, _ in enc.unstable]
                for m in range(1 << len(nodes)):
                    pat = {nodes[b]: (m >> b) & 1 for b in range(len(nodes))}
                    e2 = Encoding(net, lo, hi, pattern=pat)
                    st2, t2, _, _ = e2.solve_conjunction(rows_cd)
                    if st2 == "optimal":
                        best = max(best, t2)
                detail.setdefault("enum", []).append(best)
                detail["method"] = "milp+enum"
                if abs(best - t) > 1e-6 * max(1.0, abs(t)) + 1e-7:
                    raise RuntimeError(f"MILP {t} and pattern enumeration {best} disagree")
    if any_sat:
        detail["x"] = witness
        return "sat", detail
    if not net.exact_encodable():
        return "none", detail
    return ("borderline" if any_border else "unsat"), detail


# ----------------------------------------------------------------------------- generators
def build_net(family, rng):
    """A random network of the family; returns (net, n_inputs, n_outputs, input_shape, is_image)."""
    n_out = int(rng.integers(2, 5))
    if family == "resnet":
        C, H = int(rng.integers(1, 3)), int(rng.integers(3, 5))
        net = Net(rng, [1, C, H, H])
        h = 0
        if rng.random() < 0.3:
            h = net.normalize(h)
        ch = int(rng.integers(1, 3))
        h = net.conv(h, ch, k=3, pad=1)
        if rng.random() < 0.5:
            h = net.bn(h)
        if rng.random() < 0.8:
            h = net.act(h)  # else the first shortcut reads a value that is not a ReLU output
        for _ in range(int(rng.integers(1, 3))):
            style = str(rng.choice(["basic", "project", "project_first", "concat"]))
            ch2 = ch if style == "basic" else int(rng.integers(1, 3))
            s = net.conv(h, ch2, k=1) if style == "project_first" else h
            t = net.conv(h, ch2, k=3, pad=1)
            if rng.random() < 0.5:
                t = net.bn(t)
            t = net.act(t)
            if style == "concat":
                h = net.concat([h, t])
                ch += ch2
                continue
            t = net.conv(t, ch2, k=3, pad=1)
            if rng.random() < 0.5:
                t = net.bn(t)
            if style == "project":
                s = net.conv(h, ch2, k=1)
            h = net.act(net.add(t, s) if rng.random() < 0.5 else net.add(s, t))
            ch = ch2
        h = net.flatten(h)
        if rng.random() < 0.3:
            h = net.act(net.gemm(h, int(rng.integers(2, 7))))
        h = net.gemm(h, n_out)
        return net, int(np.prod(net.input_shape)), n_out, True, h
    if family == "preact":
        n_in = int(rng.integers(2, 6))
        net = Net(rng, [1, n_in])
        h = 0
        if rng.random() < 0.5:
            h = net.gemm(h, int(rng.integers(2, 7)))  # else the first skip reads the model input
        for _ in range(int(rng.integers(1, 4))):
            t = net.gemm(net.act(h), int(rng.integers(2, 7)))
            t = net.gemm(net.act(t), net.size(h))
            h = net.add(h, t)
        if rng.random() < 0.5:
            h = net.act(h)
        h = net.gemm(h, n_out)
        return net, n_in, n_out, False, h
    if family in ("conv_pool", "conv_bn_avg"):
        C, H = int(rng.integers(1, 3)), int(rng.integers(4, 6))
        net = Net(rng, [1, C, H, H])
        h = 0
        if rng.random() < 0.3:
            h = net.normalize(h)
        h = net.conv(h, int(rng.integers(1, 3)), k=2, stride=int(rng.integers(1, 3)) if H == 5 else 1,
                     pad=int(rng.integers(0, 2)))
        if family == "conv_bn_avg":
            h = net.bn(h)
            h = net.act(h)
            h = net.pool(h, "avgpool")
        else:
            h = net.act(h)
            h = net.pool(h, "maxpool")
            if rng.random() < 0.4 and net.shapes[h][2] >= 2:
                h = net.conv(h, int(rng.integers(1, 3)), k=2, stride=1, pad=0)
                h = net.act(h)
        h = net.flatten(h)
        if rng.random() < 0.5:
            h = net.gemm(h, int(rng.integers(2, 7)))
            h = net.act(h)
        h = net.gemm(h, n_out)
        return net, int(np.prod(net.input_shape)), n_out, True, h
    n_in = int(rng.integers(2, 6))
    net = Net(rng, [1, n_in])
    h = 0
    if family == "dense" and rng.random() < 0.25:
        h = net.normalize(h)
    layers = int(rng.integers(3 if family == "residual" else 2, 7))  # affine layers, the last one the output
    style = "matmul" if rng.random() < 0.3 else "gemm"
    scales = np.ones(layers)
    if family in ("ill", "ill_centre"):
        scales = 10.0 ** rng.uniform(-3, 3, layers)
    act = {"leaky": "leaky", "sigmoid": "sigmoid"}.get(family, "relu")
    alpha = float(rng.choice([0.01, 0.1, 0.2, 0.5]))
    for k in range(layers - 1):
        width = int(rng.integers(2, 9))
        if family == "residual" and k > 0:
            width = net.size(h)  # every hidden layer after the first has a skip connection
        if family == "bn_folded":
            W = rng.normal(0, 1 / np.sqrt(net.size(h)), (width, net.size(h)))
            b = rng.normal(0, 0.3, width)
            g, be = rng.uniform(0.5, 1.5, width) * rng.choice([-1, 1], width), rng.normal(0, 0.3, width)
            mu, var = rng.normal(0, 0.5, width), rng.uniform(0.1, 2.0, width)
            kk = g / np.sqrt(var + 1e-5)
            z = net.gemm(h, width, W=W * kk[:, None], b=kk * (b - mu) + be, style=style)
        else:
            z = net.gemm(h, width, scale=scales[k], style=style)
        if family == "dense_bn":
            z = net.bn(z)
        a = net.act(z, act, alpha)
        if family == "residual" and net.size(a) == net.size(h) and k > 0:
            a = net.add(a, h)
        h = a
    h = net.gemm(h, n_out, scale=scales[-1], style=style)
    if family == "dense" and rng.random() < 0.1:
        h = net.act(h)  # a ReLU on the output (kept as the last layer's activation)
    return net, n_in, n_out, False, h


def degenerate_centre(net, rng, x0):
    """Ill-conditioned family: move some first-layer biases so the pre-activation at x0 is ~0."""
    for nd in net.nodes:
        if nd["op"] == "affine" and not nd.get("identity"):
            src = net.forward_all(x0)[nd["src"][0]]
            z = nd["W"] @ src
            sel = rng.random(len(z)) < 0.6
            tiny = rng.choice([0.0, 1e-7, -1e-7, 1e-12], len(z))
            nd["b"] = np.where(sel, f32(-z + tiny), nd["b"])
            # keep the ONNX initializer in step (the bias is the node's last initializer)
            name = None
            for on in net.onnx_nodes:
                if on.output[0] == net.names[net.nodes.index(nd)]:
                    name = on.input[2] if on.op_type == "Gemm" else on.input[1]
            for i, t in enumerate(net.inits):
                if t.name == name:
                    net.inits[i] = numpy_helper.from_array(np.asarray(nd["b"], dtype=np.float32), name)
            return


def fmt_num(v):
    return repr(float(v))


def lin_term(c):
    terms = []
    for j, cj in enumerate(c):
        if cj == 0:
            continue
        terms.append(f"Y_{j}" if cj == 1 else f"(* {fmt_num(cj)} Y_{j})")
    return terms[0] if len(terms) == 1 else "(+ " + " ".join(terms) + ")"


def make_property(kind, net, n_in, n_out, image, rng, centre=None):
    """Random property of the kind; unsafe conjunctions as rows (c, d) meaning c . y + d <= 0."""
    def random_centre():
        return rng.uniform(0, 1, n_in) if (kind == "robust_clip" or image or rng.random() < 0.5) \
            else rng.normal(0, 1, n_in)
    x0 = f32(random_centre()) if centre is None else f32(centre)
    eps = float(10.0 ** rng.uniform(-3, 0.3)) if rng.random() < 0.9 else float(10.0 ** rng.uniform(-6, -3))
    cases = []
    nboxes = 2 if kind == "multibox" else 1
    strict = rng.random() < 0.2
    for b in range(nboxes):
        xc = x0 if b == 0 else f32(np.clip(x0 + rng.normal(0, 2 * eps, n_in), 0, None) if kind == "robust_clip"
                                   else x0 + rng.normal(0, 2 * eps, n_in))
        lo, hi = xc - eps, xc + eps
        if kind == "robust_clip":
            lo, hi = np.maximum(lo, 0), np.minimum(hi, 1)
        lo, hi = [float(v) for v in lo], [float(v) for v in hi]
        cases.append({"lo": lo, "hi": hi, "unsafe": []})
    # output statistics over the boxes (thresholds near the reachable range make hard instances)
    Ys = []
    for case in cases:
        lo, hi = np.array(case["lo"]), np.array(case["hi"])
        Ys.append(net.forward_batch(lo + (hi - lo) * rng.random((256, n_in))))
    Yall = np.concatenate(Ys)
    out_scale = float(max(np.abs(Yall).max(), 1e-30))
    y0 = net.forward(x0)

    def random_row():
        c = f32(rng.normal(0, 1, n_out) * (rng.random(n_out) < 0.7))
        if not c.any():
            c[int(rng.integers(n_out))] = 1.0
        v = Yall @ c
        lo_v, hi_v = v.min(), v.max()
        span = max(hi_v - lo_v, 1e-2 * out_scale)
        # unsafe c . y <= thr; thr near the sampled minimum (below it: usually unsat, above: sat)
        thr = lo_v + span * rng.choice([rng.uniform(-0.3, 0.05), rng.uniform(-0.02, 0.02), rng.uniform(0, 0.5)])
        thr = float(np.float32(thr))
        return (c.tolist(), -thr)

    for case in cases:
        if kind in ("robust", "robust_clip") or (kind == "multibox" and rng.random() < 0.5):
            label = int(np.argmax(y0))
            for j in range(n_out):
                if j != label:
                    c = [0.0] * n_out
                    c[label], c[j] = 1.0, -1.0  # y_label - y_j <= 0
                    case["unsafe"].append([(c, 0.0)])
        elif kind == "linear":
            case["unsafe"].append([random_row() for _ in range(int(rng.integers(1, 3)))])
        else:
            for _ in range(int(rng.integers(2, 4))):
                case["unsafe"].append([random_row() for _ in range(int(rng.integers(1, 3)))])
    # VNN-LIB text
    lines = [f"; verify_campaign: kind {kind}"]
    lines += [f"(declare-const X_{i} Real)" for i in range(n_in)]
    lines += [f"(declare-const Y_{j} Real)" for j in range(n_out)]
    le = "<" if strict else "<="

    def conj_text(rows):
        parts = []
        for c, d in rows:
            nz = [j for j in range(n_out) if c[j] != 0]
            if d == 0 and len(nz) == 2 and sorted([c[nz[0]], c[nz[1]]]) == [-1.0, 1.0]:
                pos = nz[0] if c[nz[0]] == 1 else nz[1]
                neg = nz[1] if pos == nz[0] else nz[0]
                parts.append(f"({'>=' if not strict else '>'} Y_{neg} Y_{pos})")
            else:
                parts.append(f"({le} {lin_term(c)} {fmt_num(-d)})")
        return "(and " + " ".join(parts) + ")"

    def box_text(case):
        return " ".join(f"(<= X_{i} {fmt_num(case['hi'][i])}) (>= X_{i} {fmt_num(case['lo'][i])})" for i in range(n_in))

    if len(cases) == 1:
        case = cases[0]
        for i in range(n_in):
            lines.append(f"(assert (<= X_{i} {fmt_num(case['hi'][i])}))")
            lines.append(f"(assert (>= X_{i} {fmt_num(case['lo'][i])}))")
        lines.append("(assert (or " + " ".join(conj_text(r) for r in case["unsafe"]) + "))")
    else:
        lines.append("(assert (or " + " ".join(
            "(and " + box_text(case) + " (or " + " ".join(conj_text(r) for r in case["unsafe"]) + "))"
            for case in cases) + "))")
    return {"kind": kind, "cases": cases, "out_scale": out_scale, "eps": eps, "vnnlib": "\n".join(lines) + "\n"}


def generate(out, count, seed, families=None, kinds=None, enum_every=25, start=0, quiet=False):
    """Write `count` instances under `out` (onnx/, vnnlib/, cases.csv) with the reference answer."""
    os.makedirs(os.path.join(out, "onnx"), exist_ok=True)
    os.makedirs(os.path.join(out, "vnnlib"), exist_ok=True)
    os.makedirs(os.path.join(out, "props"), exist_ok=True)
    families = families or FAMILIES
    kinds = kinds or KINDS
    rows = []
    t0 = time.time()
    for n in range(start, start + count):
        rng = np.random.default_rng([seed, n])
        family = families[n % len(families)]
        kind = kinds[(n // len(families)) % len(kinds)]
        net, n_in, n_out, image, out_h = build_net(family, rng)
        net.out = out_h
        point = None
        if family in ("ill", "ill_centre"):
            point = f32(rng.uniform(0, 1, n_in))
            degenerate_centre(net, rng, point)
        # ill: the (near-)zero pre-activations sit at a random point of [0, 1]^n; ill_centre (not in
        # the default families, so that older campaigns stay reproducible): at the first ball's centre.
        prop = make_property(kind, net, n_in, n_out, image, rng, centre=point if family == "ill_centre" else None)
        name = f"c{seed}_{n:06d}_{family}_{kind}"
        model = net.to_onnx(out_h)
        try:
            answer, detail = decide(net, prop, enumerate_patterns=(n % enum_every == 0), rng=rng)
        except RuntimeError as e:
            answer, detail = "refbug", {"error": str(e)}
        onnx.save(model, os.path.join(out, "onnx", name + ".onnx"))
        with open(os.path.join(out, "vnnlib", name + ".vnnlib"), "w") as f:
            f.write(prop["vnnlib"])
        with open(os.path.join(out, "props", name + ".json"), "w") as f:
            json.dump({"cases": prop["cases"]}, f)
        relus = sum(net.size(i) for i, nd in enumerate(net.nodes) if nd["op"] in ("relu", "leaky", "sigmoid"))
        rows.append({"name": name, "family": family, "kind": kind, "expected": answer,
                     "margin": f"{detail.get('margin', 0):.3g}", "out_scale": f"{prop['out_scale']:.6g}",
                     "method": detail.get("method", ""), "neurons": relus, "inputs": n_in,
                     "detail": json.dumps({k: v for k, v in detail.items() if k in ("t", "enum", "error")})})
        if not quiet and (n - start + 1) % 100 == 0:
            print(f"generated {n - start + 1}/{count} ({time.time() - t0:.0f} s)", flush=True)
    with open(os.path.join(out, "cases.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(rows)
    return rows


# ----------------------------------------------------------------------------- comparison
def parse_result(path):
    with open(path) as f:
        text = f.read()
    lines = text.strip().splitlines()
    verdict = lines[0].strip() if lines else "missing"
    xs, ys = {}, {}
    import re
    for m in re.finditer(r"\((X|Y)_(\d+)\s+([^\s)]+)\)", text):
        (xs if m.group(1) == "X" else ys)[int(m.group(2))] = float(m.group(3))
    return verdict, xs, ys


def check_counterexample(model_path, case_props, xs, n_in, out_scale):
    """(ok, why): the input lies in some case's box and onnxruntime's outputs reach that case's unsafe set."""
    import onnxruntime as ort
    if len(xs) != n_in:
        return False, "counterexample has the wrong number of inputs"
    x = np.array([xs[i] for i in range(n_in)])
    sess = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in inp.shape]
    y = sess.run(None, {inp.name: x.astype(np.float32).reshape(shape)})[0].reshape(-1).astype(np.float64)
    tol = CEX_TOL_REL * out_scale
    why = "input outside every box"
    for case in case_props:
        if np.all(x >= np.array(case["lo"])) and np.all(x <= np.array(case["hi"])):
            for rows in case["unsafe"]:
                if conj_value(y, rows) >= -tol:
                    return True, ""
            why = f"onnxruntime outputs {y.tolist()} reach no unsafe conjunction"
    return False, why


def run_one(mlaudit, d, row, timeout):
    name = row["name"]
    model = os.path.join(d, "onnx", name + ".onnx")
    prop = os.path.join(d, "vnnlib", name + ".vnnlib")
    res = os.path.join(d, "results", name + ".txt")
    t0 = time.time()
    try:
        p = subprocess.run([mlaudit, "--threads", "1", "verify", "--model", model, "--vnnlib", prop, "--result", res,
                            "--timeout", str(timeout), "--quiet"], capture_output=True, text=True, timeout=timeout + 30)
        rc = p.returncode
        err = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else ""
    except subprocess.TimeoutExpired:
        rc, err = -1, "killed"
    secs = time.time() - t0
    if rc != 0 or not os.path.exists(res):
        return {"verdict": "error", "seconds": secs, "note": f"rc {rc}: {err}"}
    verdict, xs, ys = parse_result(res)
    return {"verdict": verdict, "seconds": secs, "xs": xs, "note": ""}


def judge(row, out, d):
    """Compare one mlaudit verdict with the reference: (outcome, note)."""
    exp, got = row["expected"], out["verdict"]
    if got == "sat":
        with open(os.path.join(d, "props", row["name"] + ".json")) as f:
            cases = json.load(f)
        ok, why = check_counterexample(os.path.join(d, "onnx", row["name"] + ".onnx"), cases["cases"], out["xs"],
                                       int(row["inputs"]), float(row["out_scale"]))
        if not ok:
            return "wrong", "sat counterexample rejected: " + why
        if exp == "unsat":
            return "wrong", "sat (counterexample confirmed by onnxruntime) but the reference says unsat: reference error?"
        return "falsified", ""
    if got == "unsat":
        if exp == "sat":
            return "wrong", "unsat but the reference has a counterexample"
        if exp in ("none",) or row["family"] in UNSUPPORTED:
            return "wrong", "unsat on a network with an op the verifier does not support"
        if exp == "borderline":
            return "borderline", ""
        if exp == "refbug":
            return "refbug", ""
        return "verified", ""
    if got in ("unknown", "timeout"):
        return got, ""
    return "error", out.get("note", "")


def run_dir(d, mlaudit, timeout, jobs, quiet=False):
    with open(os.path.join(d, "cases.csv")) as f:
        rows = list(csv.DictReader(f))
    os.makedirs(os.path.join(d, "results"), exist_ok=True)
    results = [None] * len(rows)
    t0 = time.time()

    def work(i):
        out = run_one(mlaudit, d, rows[i], timeout)
        outcome, note = judge(rows[i], out, d)
        r = dict(rows[i])
        r.pop("detail", None)
        r.update({"mlaudit": out["verdict"], "outcome": outcome, "seconds": f"{out['seconds']:.3f}",
                  "note": note or out.get("note", "")})
        results[i] = r
        return r

    with ThreadPoolExecutor(max_workers=jobs) as ex:
        for k, r in enumerate(ex.map(work, range(len(rows)))):
            if r["outcome"] in ("wrong", "error"):
                print(f"!! {r['name']}: {r['outcome']} mlaudit {r['mlaudit']} expected {r['expected']} {r['note']}",
                      flush=True)
            if not quiet and (k + 1) % 100 == 0:
                print(f"ran {k + 1}/{len(rows)} ({time.time() - t0:.0f} s)", flush=True)
    with open(os.path.join(d, "results.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(results[0].keys()))
        w.writeheader()
        w.writerows(results)
    return results


def run_dir_inproc(d, runner, timeout):
    """The same comparison in process: tests/verify/test_verify_campaign (the fixed-case test) pointed at
    the folder decides every instance twice, with the default options and with the falsifier off, and
    checks each counterexample with the engine's float32 forward of the ONNX model."""
    with open(os.path.join(d, "cases.csv")) as f:
        rows = list(csv.DictReader(f))
    out_csv = os.path.join(d, "inproc.csv")
    env = dict(os.environ, MLAUDIT_CAMPAIGN_DIR=d, MLAUDIT_CAMPAIGN_OUT=out_csv, MLAUDIT_CAMPAIGN_TIMEOUT=str(timeout))
    subprocess.run([runner], env=env, capture_output=True, text=True)
    got = {}
    with open(out_csv) as f:
        for r in csv.DictReader(f):
            got[(os.path.basename(r["onnx"])[:-5], r["mode"])] = r
    results = []
    for row in rows:
        r = dict(row)
        r.pop("detail", None)
        for mode, suffix in (("default", ""), ("no_falsifier", "_nf")):
            g = got.get((row["name"], mode)) or got.get((row["name"], "load"))
            if g is None:
                r["mlaudit" + suffix], r["outcome" + suffix], r["seconds" + suffix] = "missing", "error", "0"
                r["note" + suffix] = "no result (runner crashed?)"
                continue
            v = g["verdict"]
            if g["problem"]:
                oc = "wrong"
            elif v == "unsupported":
                oc = "refused"
            elif v == "accepted":
                oc = "wrong"
            elif v == "unsat":
                oc = "borderline" if row["expected"] == "borderline" else "verified"
            elif v == "sat":
                oc = "falsified"
            else:
                oc = v
            r["mlaudit" + suffix], r["outcome" + suffix] = v, oc
            r["seconds" + suffix], r["note" + suffix] = g["seconds"], g["problem"] or g["method"]
        results.append(r)
        if "wrong" in (r["outcome"], r["outcome_nf"]):
            print(f"!! {r['name']}: wrong {r['mlaudit']}/{r['mlaudit_nf']} expected {r['expected']} "
                  f"{r['note']} {r['note_nf']}", flush=True)
    with open(os.path.join(d, "results.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(results[0].keys()))
        w.writeheader()
        w.writerows(results)
    return results


def summarize(results, out=sys.stdout, suffix=""):
    if suffix:
        results = [dict(r, outcome=r["outcome" + suffix], seconds=r["seconds" + suffix]) for r in results]
    cols = ["verified", "falsified", "unknown", "timeout", "wrong", "borderline", "refused", "error", "refbug"]

    def table(key):
        groups = {}
        for r in results:
            g = groups.setdefault(r[key], {c: 0 for c in cols} | {"n": 0})
            g["n"] += 1
            oc = r["outcome"]
            if r["expected"] == "borderline" and oc != "wrong":
                g["borderline"] += 1  # the reference decided nothing; only a bad counterexample counts
            else:
                g[oc] = g.get(oc, 0) + 1
        print(f"| {key} | instances | " + " | ".join(cols) + " |", file=out)
        print("|---|---:|" + "---:|" * len(cols), file=out)
        tot = {c: 0 for c in cols} | {"n": 0}
        for k in sorted(groups):
            g = groups[k]
            print(f"| {k} | {g['n']} | " + " | ".join(str(g[c]) for c in cols) + " |", file=out)
            for c in tot:
                tot[c] += g[c]
        print(f"| **all** | {tot['n']} | " + " | ".join(str(tot[c]) for c in cols) + " |", file=out)
        print(file=out)

    table("family")
    table("kind")
    exp = {}
    for r in results:
        exp[r["expected"]] = exp.get(r["expected"], 0) + 1
    print("reference answers: " + ", ".join(f"{k} {v}" for k, v in sorted(exp.items())), file=out)
    secs = sorted(float(r["seconds"]) for r in results)
    if secs:
        print(f"mlaudit seconds: median {secs[len(secs) // 2]:.3f}, p99 {secs[int(0.99 * (len(secs) - 1))]:.3f}, "
              f"max {secs[-1]:.3f}, total {sum(secs):.0f}", file=out)


# ----------------------------------------------------------------------------- commands
def append_rows(path, rows):
    """Append result rows to a campaign's CSV (the header when the file is new)."""
    new = not os.path.exists(path)
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        if new:
            w.writeheader()
        w.writerows(rows)


def keep_files(d, keep, name, subs):
    """Copy instance `name`'s files (folder, extension) from chunk folder d into `keep`."""
    os.makedirs(keep, exist_ok=True)
    for sub, ext in subs:
        p = os.path.join(d, sub, name + ext)
        if os.path.exists(p):
            shutil.copy(p, os.path.join(keep, name + ext))


def cmd_generate(a):
    generate(a.out, a.count, a.seed, start=a.start, enum_every=a.enum_every,
             families=a.families.split(",") if a.families else None)


def cmd_run(a):
    res = run_dir(a.dir, a.mlaudit, a.timeout, a.jobs)
    summarize(res)


def cmd_campaign(a):
    os.makedirs(a.work, exist_ok=True)
    allres = os.path.join(a.work, "results.csv")
    keep = os.path.join(a.work, "kept")
    for c in range(a.chunks):
        start = a.first_chunk * a.chunk_size + c * a.chunk_size
        d = os.path.join(a.work, f"chunk_{start:06d}")
        t0 = time.time()
        generate(d, a.chunk_size, a.seed, start=start, enum_every=a.enum_every, quiet=True,
                 families=a.families.split(",") if a.families else None)
        tg = time.time() - t0
        res = (run_dir_inproc(d, a.inproc, a.timeout) if a.inproc else
               run_dir(d, a.mlaudit, a.timeout, a.jobs, quiet=True))
        print(f"chunk {start}: generate {tg:.0f} s, run {time.time() - t0 - tg:.0f} s; " +
              ", ".join(f"{k} {sum(1 for r in res if r['outcome'] == k)}" for k in
                        ("verified", "falsified", "unknown", "timeout", "borderline", "refused", "wrong", "error",
                         "refbug")) +
              (f"; falsifier off: wrong {sum(1 for r in res if r['outcome_nf'] == 'wrong')}" if a.inproc else ""),
              flush=True)
        append_rows(allres, res)
        for r in res:  # keep the instances worth a look, drop the rest
            if "wrong" in (r["outcome"], r.get("outcome_nf")) or r["outcome"] in ("error", "refbug"):
                keep_files(d, keep, r["name"], (("onnx", ".onnx"), ("vnnlib", ".vnnlib"), ("results", ".txt"),
                                                ("props", ".json")))
        shutil.rmtree(d)


def cmd_summary(a):
    with open(a.results) as f:
        rows = list(csv.DictReader(f))
    summarize(rows)
    if rows and "outcome_nf" in rows[0]:
        print("\nfalsifier off (bounds and branch and bound must decide; in-process runner):\n")
        summarize(rows, suffix="_nf")


def cmd_fixtures(a):
    """Decided instances of the supported families (sat and unsat per family and kind, preferring sat
    instances that 512 samples miss and unsat ones that are tight), plus a few of the unsupported
    families, that mlaudit decides within 1.5 s: the fixed cases test_verify_campaign runs."""
    tmp = a.out + ".tmp"
    if os.path.exists(tmp):
        shutil.rmtree(tmp)
    generate(tmp, a.pool, a.seed, enum_every=a.pool + 1)
    res = run_dir(tmp, a.mlaudit, 5, a.jobs)
    with open(os.path.join(tmp, "cases.csv")) as f:
        detail = {r["name"]: json.loads(r["detail"]) for r in csv.DictReader(f)}

    def hardness(r):
        # sat: was any sampled point a witness? unsat: how close is the optimum to the threshold?
        ts = [t for t in detail[r["name"]].get("t", []) if isinstance(t, list)]
        if r["expected"] == "sat":
            return 0 if all(t[3] <= float(r["margin"]) for t in ts) else 1
        best = max((t[2] for t in ts if t[2] is not None), default=-1.0)
        return -best / max(float(r["out_scale"]), 1e-30)

    cand = [r for r in res if r["expected"] in ("sat", "unsat") and r["outcome"] not in ("wrong", "error")
            and float(r["seconds"]) < 1.5]
    cand.sort(key=hardness)
    chosen, taken = [], {}
    per = {"sat": a.per_bucket // 2, "unsat": a.per_bucket - a.per_bucket // 2}
    for r in cand:
        key = (r["family"], r["kind"], r["expected"])
        limit = 1 if r["family"] in UNSUPPORTED else per[r["expected"]]
        if taken.get(key, 0) < limit:
            taken[key] = taken.get(key, 0) + 1
            chosen.append(r)
    chosen.sort(key=lambda r: r["name"])
    if os.path.exists(a.out):
        shutil.rmtree(a.out)
    os.makedirs(os.path.join(a.out, "onnx"))
    os.makedirs(os.path.join(a.out, "vnnlib"))
    for r in chosen:
        shutil.copy(os.path.join(tmp, "onnx", r["name"] + ".onnx"), os.path.join(a.out, "onnx"))
        shutil.copy(os.path.join(tmp, "vnnlib", r["name"] + ".vnnlib"), os.path.join(a.out, "vnnlib"))
    with open(os.path.join(a.out, "cases.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["onnx", "vnnlib", "expected", "family", "kind", "out_scale", "supported"])
        for r in chosen:
            w.writerow([f"onnx/{r['name']}.onnx", f"vnnlib/{r['name']}.vnnlib", r["expected"], r["family"],
                        r["kind"], r["out_scale"], 0 if r["family"] in UNSUPPORTED else 1])
    with open(os.path.join(a.out, "README.md"), "w") as f:
        f.write("# Fixed cases of the verifier's soundness campaign (issue #25)\n\n"
                f"Made by `tools/verify_campaign.py fixtures --out {a.out} --pool {a.pool} --seed {a.seed} "
                f"--per-bucket {a.per_bucket}`\n(the campaign's generator with seed {a.seed}; `expected` is the "
                "MILP reference's answer, decided with a margin of 1e-4 x the outputs' magnitude; see "
                "docs/dev/reliability.md).\n\n"
                "`cases.csv`: onnx, vnnlib, expected (sat/unsat), family, kind, out_scale (the largest |y| "
                "sampled in the input region, the scale of the counterexample check's tolerance), supported "
                "(0: a Sigmoid network, which the verifier must refuse as unsupported).\n"
                "Run by `tests/verify/test_verify_campaign.cpp` (ctest test_verify_campaign).\n")
    shutil.rmtree(tmp)
    by = {}
    for r in chosen:
        by[(r["expected"], r["family"] in UNSUPPORTED)] = by.get((r["expected"], r["family"] in UNSUPPORTED), 0) + 1
    print(f"{len(chosen)} fixtures: {by}")


def campaign_parsers(doc, fns, timeout, campaign_seed):
    """The generate / run / campaign / summary / fixtures commands every campaign tool shares
    (tools/fairness_campaign.py too): fns maps each command to its function; returns the parser and
    the campaign and fixtures subparsers for the tool's own options."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    mlaudit = os.path.join(ROOT, "build", "mlaudit")
    g = sub.add_parser("generate")
    g.add_argument("--out", required=True)
    g.add_argument("--count", type=int, default=100)
    g.add_argument("--seed", type=int, default=1)
    g.add_argument("--start", type=int, default=0)
    g.add_argument("--enum-every", type=int, default=25)
    g.add_argument("--families", default="", help="comma list (default: the tool's default families)")
    r = sub.add_parser("run")
    r.add_argument("--dir", required=True)
    r.add_argument("--mlaudit", default=mlaudit)
    r.add_argument("--timeout", type=float, default=timeout)
    r.add_argument("--jobs", type=int, default=1)
    c = sub.add_parser("campaign")
    c.add_argument("--work", required=True)
    c.add_argument("--chunks", type=int, default=20)
    c.add_argument("--chunk-size", type=int, default=500)
    c.add_argument("--first-chunk", type=int, default=0)
    c.add_argument("--seed", type=int, default=campaign_seed)
    c.add_argument("--enum-every", type=int, default=25)
    c.add_argument("--mlaudit", default=mlaudit)
    c.add_argument("--timeout", type=float, default=timeout)
    c.add_argument("--jobs", type=int, default=1)
    s = sub.add_parser("summary")
    s.add_argument("results")
    x = sub.add_parser("fixtures")
    x.add_argument("--out", required=True)
    x.add_argument("--seed", type=int, default=7)
    x.add_argument("--mlaudit", default=mlaudit)
    x.add_argument("--jobs", type=int, default=1)
    for name, p in (("generate", g), ("run", r), ("campaign", c), ("summary", s), ("fixtures", x)):
        p.set_defaults(fn=fns[name])
    return ap, c, x


def main():
    ap, c, x = campaign_parsers(__doc__, {"generate": cmd_generate, "run": cmd_run, "campaign": cmd_campaign,
                                          "summary": cmd_summary, "fixtures": cmd_fixtures}, 10, 1000)
    c.add_argument("--families", default="", help="comma list (default: all nine; 'ill_centre' only on request)")
    c.add_argument("--inproc", default="", help="run the instances in process with this test_verify_campaign binary "
                   "(both option sets) instead of one `mlaudit verify` per instance")
    x.add_argument("--pool", type=int, default=900)
    x.add_argument("--per-bucket", type=int, default=10)
    a = ap.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()
