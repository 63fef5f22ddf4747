#!/usr/bin/env python3
"""Independent goldens for the exact tree verifier (verify/trees.h): the minimal adversarial
L-inf distance of data rows of the tree fixtures, from a MILP (Kantchelian, Tygar & Joseph,
"Evasion and hardening of tree ensemble classifiers", ICML 2016) solved by HiGHS through
scipy.optimize.milp.

Nothing is shared with the C++ code: the trees are read from the ONNX attributes here
(TreeEnsembleClassifier nodes_* / class_*), decisions are checked against onnxruntime.

Encoding (per row x0 and per target class):
  cuts    per feature f the sorted distinct float32 values a_k that split it: a test
          "x <= t" cuts at t, "x < t" at the float32 below t (BRANCH_GTE / GT are the same
          tests with the branches swapped), so x <= a_k or x >= next(a_k).
  p_fk    binary, 1 iff x_f <= a_k; p_fk <= p_f(k+1).
  l_ti    leaf indicators in [0, 1]: sum_i l_ti = 1; a node splitting f at a_k: the leaves under
          its "<= a_k" child sum to <= p_fk, those under the other child to <= 1 - p_fk (with p
          binary, only the leaf the cell reaches can be non-zero).
  r       >= (next(a_k) - x0_f)(1 - p_fk) for cuts above x0_f, >= (x0_f - a_k) p_fk below it:
          the L-inf distance from x0 to the chosen cell, with no big-M on x (the variable is
          1e4 r, so that HiGHS's absolute tolerances separate cells one float32 step apart).
  flip    binary margin s = sum w l: label 1 -> s <= threshold, label 0 -> s >= threshold;
          classes: raw_j - raw_label >= 0 for target j.
  min r.
The solution's p is rounded, the cell's point nearest x0 is rebuilt in float32, its decision is
re-checked with onnxruntime (ties the non-strict encoding admits are re-solved with a 1e-6
margin), and the distance is recomputed exactly (fractions) as the smallest double >= it: the
radius at which the C++ linf_box first reaches the cell.

Output: tests/fixtures/trees/verify/milp_goldens.json (models, rows, distances, counterexamples,
seconds per row, library versions).

    ${PYTHON:-.venv/bin/python} tools/trees_verify_goldens.py [--rows 40]
    ${PYTHON:-.venv/bin/python} tools/trees_verify_goldens.py --bench --rows 200 --eps 0.01,0.05,0.2
        (time per robustness query at each eps for xgb_binary / lgbm_binary: the peer figures of
        bench/verify/trees.sh)
"""
import argparse
import json
import math
import os
import sys
import time
from fractions import Fraction

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import project_python  # noqa: E402

project_python.use()

import numpy as np  # noqa: E402

ROOT = project_python.ROOT
FIX = os.path.join(ROOT, "tests", "fixtures", "trees")
# The distance variable is R = R_SCALE * r: HiGHS meets rows to an absolute tolerance of 1e-7 and
# stops within an absolute gap of 1e-6, which in r units would not separate cells one float32
# step apart (0.5 and 0.50000012 are both crossings of the credit features); scaled, they are
# 1e-11 and 1e-10.
R_SCALE = 1e4
MODELS = {  # model -> data file
    "xgb_binary": "credit_x.npy",
    "lgbm_binary": "credit_x.npy",
    "sk_rf_binary": "credit_x.npy",
    "xgb_multi": "three_x.npy",
    "sk_dt_multi": "three_x.npy",
}


def f32_next(v):
    return float(np.nextafter(np.float32(v), np.float32(np.inf)))


def f32_prev(v):
    return float(np.nextafter(np.float32(v), np.float32(-np.inf)))


def double_up(q):
    """Smallest double >= the rational q."""
    f = float(q)
    if Fraction(f) < q:
        f = math.nextafter(f, math.inf)
    return f


class Ensemble:
    """The TreeEnsembleClassifier of an ONNX file, as trees of (feature, cut, le_child, gt_child)."""

    def __init__(self, path):
        import onnx

        m = onnx.load(path)
        node = [n for n in m.graph.node if n.op_type == "TreeEnsembleClassifier"][0]
        a = {x.name: onnx.helper.get_attribute_value(x) for x in node.attribute}
        self.post = a.get("post_transform", b"NONE").decode()
        self.labels = list(a["classlabels_int64s"])
        ids = sorted(set(a["class_ids"]))
        self.columns = len(ids)
        self.base = list(a.get("base_values", [0.0] * self.columns))
        nodes = {}
        for i in range(len(a["nodes_nodeids"])):
            key = (a["nodes_treeids"][i], a["nodes_nodeids"][i])
            nodes[key] = dict(mode=a["nodes_modes"][i].decode(), f=a["nodes_featureids"][i],
                              t=float(np.float32(a["nodes_values"][i])),
                              yes=(a["nodes_treeids"][i], a["nodes_truenodeids"][i]),
                              no=(a["nodes_treeids"][i], a["nodes_falsenodeids"][i]))
        self.weights = {}
        for i in range(len(a["class_ids"])):
            key = (a["class_treeids"][i], a["class_nodeids"][i])
            self.weights.setdefault(key, [0.0] * self.columns)[ids.index(a["class_ids"][i])] += float(np.float32(a["class_weights"][i]))
        children = {c for n in nodes.values() if n["mode"] != "LEAF" for c in (n["yes"], n["no"])}
        self.roots = sorted(k for k in nodes if k not in children)
        self.nodes = nodes
        self.features = 1 + max(n["f"] for n in nodes.values() if n["mode"] != "LEAF")
        # Normalise each split to (cut a, child taken when x <= a, child taken when x >= next(a)).
        for n in nodes.values():
            mode = n["mode"]
            if mode == "LEAF":
                continue
            t = n["t"]
            if mode == "BRANCH_LEQ":
                n["a"], n["le"], n["gt"] = t, n["yes"], n["no"]
            elif mode == "BRANCH_LT":
                n["a"], n["le"], n["gt"] = f32_prev(t), n["yes"], n["no"]
            elif mode == "BRANCH_GTE":
                n["a"], n["le"], n["gt"] = f32_prev(t), n["no"], n["yes"]
            elif mode == "BRANCH_GT":
                n["a"], n["le"], n["gt"] = t, n["no"], n["yes"]
            else:
                raise SystemExit(f"{path}: split mode {mode} not handled")

    def leaf(self, root, x):
        k = root
        while self.nodes[k]["mode"] != "LEAF":
            n = self.nodes[k]
            k = n["le"] if np.float32(x[n["f"]]) <= np.float32(n["a"]) else n["gt"]
        return k

    def raw(self, x):
        s = list(self.base)
        for r in self.roots:
            w = self.weights.get(self.leaf(r, x), [0.0] * self.columns)
            s = [a + b for a, b in zip(s, w)]
        return s

    def leaves_under(self, k):
        n = self.nodes[k]
        if n["mode"] == "LEAF":
            return [k]
        return self.leaves_under(n["le"]) + self.leaves_under(n["gt"])

    def cuts(self):
        c = [set() for _ in range(self.features)]
        for n in self.nodes.values():
            if n["mode"] != "LEAF":
                c[n["f"]].add(n["a"])
        return [sorted(s) for s in c]


class Milp:
    """The Kantchelian MILP of one ensemble; solve(x0, flip) for one row and flip condition."""

    def __init__(self, ens):
        self.e = ens
        self.cuts = ens.cuts()
        self.pidx = {}
        n = 1  # variable 0 is r
        for f, cs in enumerate(self.cuts):
            for k, a in enumerate(cs):
                self.pidx[(f, k)] = n
                n += 1
        self.leaves = []
        self.lidx = {}
        for r in ens.roots:
            for lf in ens.leaves_under(r):
                self.lidx[lf] = n
                self.leaves.append(lf)
                n += 1
        self.n = n
        # Structural rows (independent of x0).
        rows, lo, hi = [], [], []
        for f, cs in enumerate(self.cuts):
            for k in range(len(cs) - 1):
                rows.append({self.pidx[(f, k)]: 1.0, self.pidx[(f, k + 1)]: -1.0})
                lo.append(-np.inf), hi.append(0.0)
        for r in ens.roots:
            rows.append({self.lidx[lf]: 1.0 for lf in ens.leaves_under(r)})
            lo.append(1.0), hi.append(1.0)
        for key, nd in ens.nodes.items():
            if nd["mode"] == "LEAF":
                continue
            k = self.cuts[nd["f"]].index(nd["a"])
            p = self.pidx[(nd["f"], k)]
            row = {self.lidx[lf]: 1.0 for lf in ens.leaves_under(nd["le"])}
            row[p] = -1.0
            rows.append(row), lo.append(-np.inf), hi.append(0.0)
            row = {self.lidx[lf]: 1.0 for lf in ens.leaves_under(nd["gt"])}
            row[p] = 1.0
            rows.append(row), lo.append(-np.inf), hi.append(1.0)
        self.struct = (rows, lo, hi)

    def solve(self, x0, flip_coef, flip_lo, flip_hi, r_max=None, time_limit=600):
        """min r s.t. flip_lo <= sum_leaf flip_coef[leaf] l <= flip_hi (and r <= r_max)."""
        from scipy.optimize import LinearConstraint, milp, Bounds
        from scipy.sparse import coo_matrix

        rows, lo, hi = list(self.struct[0]), list(self.struct[1]), list(self.struct[2])
        for f, cs in enumerate(self.cuts):
            x = Fraction(float(np.float32(x0[f])))
            for k, a in enumerate(cs):
                p = self.pidx[(f, k)]
                if Fraction(a) >= x:  # crossing needs x >= next(a): r >= D (1 - p)
                    D = double_up(Fraction(f32_next(a)) - x) * R_SCALE
                    rows.append({0: 1.0, p: D}), lo.append(D), hi.append(np.inf)
                else:  # crossing needs x <= a: r >= D p
                    D = double_up(x - Fraction(a)) * R_SCALE
                    rows.append({0: 1.0, p: -D}), lo.append(0.0), hi.append(np.inf)
        rows.append({self.lidx[lf]: c for lf, c in flip_coef.items() if c != 0.0})
        lo.append(flip_lo), hi.append(flip_hi)
        ri, ci, vals = [], [], []
        for i, row in enumerate(rows):
            for j, v in row.items():
                ri.append(i), ci.append(j), vals.append(v)
        A = coo_matrix((vals, (ri, ci)), shape=(len(rows), self.n))
        c = np.zeros(self.n)
        c[0] = 1.0 if r_max is None else 0.0
        integrality = np.zeros(self.n)
        for p in self.pidx.values():
            integrality[p] = 1
        ub = np.ones(self.n)
        ub[0] = np.inf if r_max is None else r_max * R_SCALE
        res = milp(c, constraints=LinearConstraint(A.tocsr(), lo, hi), integrality=integrality,
                   bounds=Bounds(np.zeros(self.n), ub), options={"time_limit": time_limit, "mip_rel_gap": 0})
        if res.status == 2 or res.x is None:  # infeasible
            return None
        if res.status != 0:
            raise SystemExit(f"HiGHS status {res.status}: {res.message}")
        return self.point(x0, res.x)

    def point(self, x0, sol):
        """The float32 point of the solution's cell nearest x0 and its exact L-inf distance."""
        z = []
        for f, cs in enumerate(self.cuts):
            lo, hi = -np.inf, np.inf
            for k, a in enumerate(cs):
                if sol[self.pidx[(f, k)]] > 0.5:  # x <= a_k: the first such cut bounds above
                    hi = a
                    break
                lo = f32_next(a)
            z.append(float(min(max(np.float32(x0[f]), np.float32(lo)), np.float32(hi))))
        d = Fraction(0)
        for f in range(len(z)):
            d = max(d, abs(Fraction(z[f]) - Fraction(float(np.float32(x0[f])))))
        return z, double_up(d)


def decide_ort(sess, x):
    out = sess.run(None, {sess.get_inputs()[0].name: np.asarray([x], dtype=np.float32)})
    prob = out[1]
    if isinstance(prob, list):  # ZipMap
        prob = [[d[k] for k in sorted(d)] for d in prob]
    prob = np.asarray(prob, dtype=np.float32)[0]
    return int(np.argmax(prob)), prob


def binary_rule(ens, sess, X):
    """(sign, threshold): class 1 iff sign * s > sign * threshold, checked on the rows with onnxruntime."""
    for sign, thr in ((1, 0.0), (1, 0.5), (-1, 0.5)):
        if ens.post == "LOGISTIC" and thr != 0.0:
            continue
        if ens.post != "LOGISTIC" and thr == 0.0:
            continue
        ok = all((sign * ens.raw(x)[0] > sign * thr) == (decide_ort(sess, x)[0] == 1) for x in X)
        if ok:
            return sign, thr
    raise SystemExit("no binary decision rule agrees with onnxruntime")


def min_distance(ens, milp_, sess, rule, x0, label, margin=0.0):
    """Minimal distance over all flips of `label`: (distance, point, adversarial label) or None."""
    best = None
    if ens.columns == 1:
        sign, thr = rule
        w = {lf: ens.weights.get(lf, [0.0])[0] for lf in milp_.leaves}
        s0 = ens.base[0]
        # label 1 (sign*s > sign*thr) flips where sign*s <= sign*thr.
        if (label == 1) == (sign == 1):
            targets = [(w, -np.inf, thr - s0 - margin)]
        else:
            targets = [(w, thr - s0 + margin, np.inf)]
    else:
        targets = []
        for j in range(ens.columns):
            if j == label:
                continue
            w = {lf: ens.weights.get(lf, [0.0] * ens.columns)[j] - ens.weights.get(lf, [0.0] * ens.columns)[label]
                 for lf in milp_.leaves}
            targets.append((w, ens.base[label] - ens.base[j] + margin, np.inf))
    for coef, lo, hi in targets:
        got = milp_.solve(x0, coef, lo, hi)
        if got is None:
            continue
        z, d = got
        adv, _ = decide_ort(sess, z)
        if adv == label:
            if margin == 0.0:  # a tie the non-strict encoding admitted: re-solve with a margin
                return min_distance(ens, milp_, sess, rule, x0, label, 1e-6)
            continue
        if best is None or d < best[0]:
            best = (d, z, adv)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=40)
    ap.add_argument("--out", default=os.path.join(FIX, "verify", "milp_goldens.json"))
    ap.add_argument("--bench", action="store_true", help="time robustness queries at --eps (xgb_binary, lgbm_binary)")
    ap.add_argument("--eps", default="0.01,0.05,0.2")
    args = ap.parse_args()
    import onnxruntime as ort
    import scipy

    if args.bench:
        eps_list = [float(e) for e in args.eps.split(",")]
        for name in ("xgb_binary", "lgbm_binary"):
            ens = Ensemble(os.path.join(FIX, name + ".onnx"))
            sess = ort.InferenceSession(os.path.join(FIX, name + ".onnx"), providers=["CPUExecutionProvider"])
            X = np.load(os.path.join(FIX, MODELS[name]))[: args.rows]
            rule = binary_rule(ens, sess, X[:50])
            m = Milp(ens)
            for eps in eps_list:
                t0 = time.perf_counter()
                falsified = 0
                for x in X:
                    label = decide_ort(sess, x)[0]
                    sign, thr = rule
                    w = {lf: ens.weights.get(lf, [0.0])[0] for lf in m.leaves}
                    s0 = ens.base[0]
                    if (label == 1) == (sign == 1):
                        got = m.solve(x, w, -np.inf, thr - s0, r_max=eps)
                    else:
                        got = m.solve(x, w, thr - s0, np.inf, r_max=eps)
                    # HiGHS meets r <= eps to its feasibility tolerance (1e-7): a solution counts only
                    # when its cell's exact distance is within eps.
                    falsified += got is not None and got[1] <= eps
                dt = time.perf_counter() - t0
                print(f"milp {name} eps {eps:g}: {len(X)} rows, falsified {falsified}, {dt / len(X) * 1e3:.3f} ms/query")
        return

    goldens = {"generator": "tools/trees_verify_goldens.py",
               "encoding": "Kantchelian et al. 2016 MILP (cut indicators, leaf indicators, L-inf distance from cut "
                           "distances), HiGHS via scipy.optimize.milp, mip_rel_gap 0; counterexamples re-checked with "
                           "onnxruntime; distances recomputed exactly and rounded up to a double",
               "versions": {"scipy": scipy.__version__, "onnxruntime": ort.__version__, "numpy": np.__version__},
               "models": {}}
    for name, data in MODELS.items():
        path = os.path.join(FIX, name + ".onnx")
        ens = Ensemble(path)
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        X = np.load(os.path.join(FIX, data))[: args.rows]
        rule = binary_rule(ens, sess, X) if ens.columns == 1 else None
        if ens.columns > 1:
            for x in X:  # raw argmax == onnxruntime's label
                assert int(np.argmax(ens.raw(x))) == decide_ort(sess, x)[0]
        m = Milp(ens)
        rows = []
        t_all = time.perf_counter()
        for i, x in enumerate(X):
            label = decide_ort(sess, x)[0]
            t0 = time.perf_counter()
            best = min_distance(ens, m, sess, rule, x, label)
            dt = time.perf_counter() - t0
            row = {"index": i, "label": label, "seconds": dt}
            if best is None:
                row["distance"] = None
            else:
                row["distance"], row["counterexample"], row["adversarial_label"] = best[0], best[1], best[2]
            rows.append(row)
        print(f"{name}: {len(rows)} rows, {time.perf_counter() - t_all:.2f} s")
        goldens["models"][name] = {"file": name + ".onnx", "data": data, "rows": rows}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(goldens, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
