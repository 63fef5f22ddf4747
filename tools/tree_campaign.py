#!/usr/bin/env python3
"""Soundness campaign for the tree-ensemble verifier and the individual-fairness proofs (issue #25).

Random tree ensembles are written as ONNX-ML TreeEnsembleClassifier / TreeEnsembleRegressor files
(BRANCH_LEQ / LT / GTE / GT, missing-value flags, thresholds colliding or one float32 step apart,
leaf values on a dyadic grid so that ties are exact; the `float_*` families have arbitrary float32
leaves), with random queries: L-inf robustness around rows (unbounded and clipped domains),
minimal adversarial distances, VNN-LIB properties (linear output constraints on link-free models,
argmax comparisons), individual fairness (protected feature with 2 or 3 levels, over the domain or
boxes around rows, with and without --delta).

The reference is independent of mlaudit's C++: it enumerates every threshold cell of the query box
in float32 semantics (a cut `a` separates the float32 values <= a from those >= nextafter(a); a box
is the set of float32 values v with |v - x| <= eps, compared exactly with Fractions) and evaluates a
point of each cell with **onnxruntime** (the classifier for decisions and audited outputs, a
TreeEnsembleRegressor twin with the same trees for raw scores). Both ends of every cell are
evaluated and must agree (else `refbug`). Queries whose box holds more than --max-cells cells are
not generated (the generator shrinks the radius).

Each case is one `mlaudit verify` run through the CLI (data mode: several rows x radii and the
minimal distances; vnnlib: one property; fairness: the domain or boxes around rows); every
answer is compared with the reference and every counterexample re-checked with onnxruntime.

  tree_campaign.py campaign --work DIR --seed S --cases N --mlaudit build/mlaudit [--first K]
  tree_campaign.py fixtures --out tests/fixtures/tree_campaign --seed S --count N
  tree_campaign.py summary DIR/results.jsonl
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from fractions import Fraction

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import project_python  # noqa: E402

project_python.use()

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402

F32 = np.float32
FMAX = F32(np.finfo(np.float32).max)
FAMILIES = ["gbt_binary", "gbt_multi", "forest", "binary_none", "regressor", "float_binary", "float_multi"]
KINDS = ["data", "data_clip", "vnnlib", "fair_domain", "fair_rows"]


def nxt(v):
    return F32(np.nextafter(F32(v), F32(np.inf)))


def prv(v):
    return F32(np.nextafter(F32(v), F32(-np.inf)))


def fr(v):
    return Fraction(float(v))


def f32_ceil(q):
    """Smallest float32 >= the rational q."""
    v = F32(float(q))
    if np.isinf(v):
        v = FMAX if v > 0 else -FMAX
    while fr(v) < q:
        v = nxt(v)
    while fr(prv(v)) >= q:
        v = prv(v)
    return v


def f32_floor(q):
    v = F32(float(q))
    if np.isinf(v):
        v = FMAX if v > 0 else -FMAX
    while fr(v) > q:
        v = prv(v)
    while fr(nxt(v)) <= q:
        v = nxt(v)
    return v


def up_double(q):
    """Smallest double >= the rational q >= 0."""
    d = float(q)
    while Fraction(d) < q:
        d = float(np.nextafter(d, np.inf))
    while d > 0 and Fraction(float(np.nextafter(d, -np.inf))) >= q:
        d = float(np.nextafter(d, -np.inf))
    return d


def box_range(x, eps, lo, hi):
    """Float32 values v with |v - x| <= eps (exact) and lo <= v <= hi (doubles, may be inf): (L, H) or None."""
    qx = fr(x)
    L = f32_ceil(qx - Fraction(eps)) if np.isfinite(eps) else -FMAX
    H = f32_floor(qx + Fraction(eps)) if np.isfinite(eps) else FMAX
    if np.isfinite(lo):
        L = max(L, f32_ceil(Fraction(lo)))
    if np.isfinite(hi):
        H = min(H, f32_floor(Fraction(hi)))
    return (L, H) if L <= H else None


# ------------------------------------------------------------------------------------------------
# Models


def make_trees(rng, nfeat, ntrees, maxdepth, pools, leaf_fn):
    """Random trees: list of node lists; node = dict(feature, value, mode, yes, no, miss) or leaf."""
    trees = []
    for _ in range(ntrees):
        nodes = []

        def build(depth):
            idx = len(nodes)
            nodes.append(None)
            if depth < maxdepth and (depth == 0 or rng.random() < 0.75):
                f = int(rng.integers(nfeat))
                t = F32(pools[f][int(rng.integers(len(pools[f])))])
                mode = ["BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT"][int(rng.choice(4, p=[.35, .35, .15, .15]))]
                yes = build(depth + 1)
                no = build(depth + 1)
                nodes[idx] = dict(feature=f, value=t, mode=mode, yes=yes, no=no, miss=int(rng.integers(2)))
            else:
                nodes[idx] = dict(leaf=leaf_fn())
            return idx

        build(0)
        trees.append(nodes)
    return trees


def threshold_pools(rng, nfeat, protected=None, plevels=2):
    grid = [F32(k / 8) for k in range(-4, 13)]
    pools = []
    for f in range(nfeat):
        if f == protected:
            base = [F32(v) for v in (0.5, 1.0, 1.5)[:plevels] + (0.0, 1.0)]
            extra = [nxt(F32(1.0)), prv(F32(1.0)), prv(F32(0.5))]
            pools.append(sorted(set(base + extra[:int(rng.integers(0, 4))])))
            continue
        k = int(rng.integers(2, 6))
        base = list(rng.choice(grid, size=k, replace=False))
        extra = []
        for b in base:
            r = rng.random()
            if r < 0.3:
                extra.append(nxt(b))
            elif r < 0.5:
                extra.append(prv(b))
        if rng.random() < 0.2:  # an arbitrary float32 threshold
            extra.append(F32(rng.uniform(-0.5, 1.5)))
        pools.append(sorted(set(F32(v) for v in base + extra)))
    return pools


def ntrees_for(rng, family):
    if family in ("forest",):
        return int(2 ** rng.integers(0, 5))
    return int(np.exp(rng.uniform(0, np.log(30.99))))


def gen_model(rng, family, protected=None, plevels=2, one_target=False):
    nfeat = int(rng.integers(2, 9))
    if protected is not None:
        protected = int(rng.integers(nfeat))
    pools = threshold_pools(rng, nfeat, protected, plevels)
    ntrees = ntrees_for(rng, family)
    maxdepth = int(rng.integers(1, 7))
    # Keep ensembles small enough for exhaustive cells: fewer trees when deep.
    while ntrees * (2 ** maxdepth) > 400 and ntrees > 1:
        ntrees = max(1, ntrees // 2)
    m = dict(family=family, nfeat=nfeat, ntrees=ntrees, maxdepth=maxdepth, protected=protected, base=None)
    avg = False
    if family in ("gbt_binary", "float_binary"):
        K, cols = 2, 1
        post = "LOGISTIC"
    elif family in ("gbt_multi", "float_multi"):
        K = int(rng.integers(3, 5))
        cols = K
        post = "SOFTMAX"
    elif family == "forest":
        K = int(rng.integers(2, 4))
        cols = K
        post = "NONE"
    elif family == "binary_none":
        K, cols = 2, 1
        post = "NONE"
    else:  # regressor
        K = 0
        cols = 1 if one_target else int(rng.integers(1, 3))
        post = "NONE"
        avg = rng.random() < 0.3 and (ntrees & (ntrees - 1)) == 0
    flt = family.startswith("float")
    signed_none = family == "binary_none" and rng.random() < 0.5

    def leaf_fn_for(tree_index):
        def leaf():
            if family == "forest":
                parts = np.bincount(rng.integers(0, K, size=8), minlength=K)
                return [F32(p / 8 / ntrees) for p in parts]
            if family == "binary_none":
                v = rng.integers(-8, 9) if signed_none else rng.integers(0, 9)
                return [F32(v / 16 / max(1, ntrees // 2 if ntrees > 1 else 1))]
            if flt:
                return [F32(rng.normal(0, 0.5))]
            if family == "regressor":
                return [F32(rng.integers(-16, 17) / 8) for _ in range(cols)]
            return [F32(rng.integers(-8, 9) / 8)]
        return leaf

    trees = []
    for t in range(ntrees):
        trees += make_trees(rng, nfeat, 1, maxdepth, pools, leaf_fn_for(t))
    m.update(K=K, cols=cols, post=post, avg=avg, pools=[[float(v) for v in p] for p in pools])
    if family in ("gbt_multi", "float_multi"):
        m["tree_class"] = [t % K for t in range(ntrees)]
    if rng.random() < 0.5 and family not in ("forest", "binary_none"):
        if flt:
            m["base"] = [float(F32(rng.normal(0, 0.3))) for _ in range(cols)]
        else:
            m["base"] = [float(F32(rng.integers(-8, 9) / 8)) for _ in range(cols)]
    m["trees"] = trees
    return m


REAL = ["xgb_binary", "xgb_multi", "lgbm_binary", "lgbm_multi", "sk_rf", "sk_gbt", "sk_dt"]


def gen_real(rng, kind):
    """A converter's model trained on random data (ONNX bytes with the converter's defaults) and the
    model dict parsed from its tree node (thresholds, leaves) for the cells and the raw-score twin."""
    import warnings
    warnings.filterwarnings("ignore")
    nfeat = int(rng.integers(2, 7))
    n = 200
    X = np.where(rng.random((n, nfeat)) < 0.5, rng.integers(-4, 13, (n, nfeat)) / 8,
                 rng.uniform(-0.5, 1.5, (n, nfeat))).astype(np.float32)
    K = 3 if kind.endswith("multi") or (kind in ("sk_rf", "sk_dt") and rng.random() < 0.4) else 2
    w = rng.normal(size=nfeat)
    score = X @ w + 0.3 * rng.normal(size=n)
    y = np.digitize(score, np.quantile(score, np.linspace(0, 1, K + 1)[1:-1])).astype(np.int64)
    ntrees = int(rng.integers(1, 9))
    depth = int(rng.integers(1, 5))
    if kind.startswith("xgb"):
        import xgboost
        est = xgboost.XGBClassifier(n_estimators=ntrees, max_depth=depth, learning_rate=0.5, n_jobs=1)
    elif kind.startswith("lgbm"):
        import lightgbm
        est = lightgbm.LGBMClassifier(n_estimators=ntrees, num_leaves=int(2 ** depth), min_child_samples=5,
                                      n_jobs=1, verbose=-1)
    elif kind == "sk_rf":
        from sklearn.ensemble import RandomForestClassifier
        est = RandomForestClassifier(n_estimators=ntrees, max_depth=depth, random_state=int(rng.integers(1 << 30)))
    elif kind == "sk_gbt":
        from sklearn.ensemble import GradientBoostingClassifier
        est = GradientBoostingClassifier(n_estimators=ntrees, max_depth=depth, random_state=0)
    else:
        from sklearn.tree import DecisionTreeClassifier
        est = DecisionTreeClassifier(max_depth=depth + 1, random_state=0)
    est.fit(X, y)
    if kind.startswith("sk"):
        from skl2onnx import to_onnx
        proto = to_onnx(est, X[:1])
    else:
        import onnxmltools
        from onnxmltools.convert.common.data_types import FloatTensorType
        types = [("input", FloatTensorType([None, nfeat]))]
        proto = (onnxmltools.convert_xgboost if kind.startswith("xgb") else onnxmltools.convert_lightgbm)(
            est, initial_types=types)
    node = [nd for nd in proto.graph.node if nd.op_type.startswith("TreeEnsemble")][0]
    a = {at.name: helper.get_attribute_value(at) for at in node.attribute}
    modes = [v.decode() if isinstance(v, bytes) else v for v in a["nodes_modes"]]
    cols = max(a["class_ids"]) + 1
    trees = {}
    for i, t in enumerate(a["nodes_treeids"]):
        trees.setdefault(t, {})[a["nodes_nodeids"][i]] = i
    leaves = {}
    for t, nid, c, wv in zip(a["class_treeids"], a["class_nodeids"], a["class_ids"], a["class_weights"]):
        leaves.setdefault((t, nid), [F32(0)] * cols)[c] = F32(wv)
    out_trees = []
    for t in sorted(trees):
        ids = trees[t]
        order = sorted(ids)
        pos = {nid: k for k, nid in enumerate(order)}
        nodes = []
        for nid in order:
            i = ids[nid]
            if modes[i] == "LEAF":
                nodes.append(dict(leaf=leaves.get((t, nid), [F32(0)] * cols)))
            else:
                nodes.append(dict(feature=a["nodes_featureids"][i], value=F32(a["nodes_values"][i]), mode=modes[i],
                                  yes=pos[a["nodes_truenodeids"][i]], no=pos[a["nodes_falsenodeids"][i]],
                                  miss=a.get("nodes_missing_value_tracks_true", [0] * len(modes))[i]))
        out_trees.append(nodes)
    post = a.get("post_transform", b"NONE")
    post = post.decode() if isinstance(post, bytes) else post
    base = [float(v) for v in a["base_values"]] if a.get("base_values") else None
    m = dict(family="real_" + kind, nfeat=nfeat, ntrees=len(out_trees), maxdepth=depth, protected=None, base=base,
             K=len(a["classlabels_int64s"]), cols=cols, post=post, avg=False, trees=out_trees, real=True)
    pools = []
    for f in range(nfeat):
        vs = sorted(set(float(nd["value"]) for t in out_trees for nd in t if "leaf" not in nd and nd["feature"] == f))
        pools.append(vs or [0.5])
    m["pools"] = pools
    return m, proto.SerializeToString()


def tree_attrs(m, prefix):
    """nodes_* and <prefix>_* attribute lists."""
    a = {k: [] for k in ("nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_values", "nodes_modes",
                         "nodes_truenodeids", "nodes_falsenodeids", "nodes_missing_value_tracks_true")}
    w = {prefix + "_treeids": [], prefix + "_nodeids": [], prefix + "_ids": [], prefix + "_weights": []}
    for ti, nodes in enumerate(m["trees"]):
        for ni, n in enumerate(nodes):
            a["nodes_treeids"].append(ti)
            a["nodes_nodeids"].append(ni)
            if "leaf" in n:
                a["nodes_featureids"].append(0)
                a["nodes_values"].append(0.0)
                a["nodes_modes"].append("LEAF")
                a["nodes_truenodeids"].append(0)
                a["nodes_falsenodeids"].append(0)
                a["nodes_missing_value_tracks_true"].append(0)
                vals = n["leaf"]
                if "tree_class" in m:
                    ids = [m["tree_class"][ti]]
                else:
                    ids = list(range(len(vals)))
                for c, v in zip(ids, vals):
                    w[prefix + "_treeids"].append(ti)
                    w[prefix + "_nodeids"].append(ni)
                    w[prefix + "_ids"].append(c)
                    w[prefix + "_weights"].append(float(v))
            else:
                a["nodes_featureids"].append(n["feature"])
                a["nodes_values"].append(float(n["value"]))
                a["nodes_modes"].append(n["mode"])
                a["nodes_truenodeids"].append(n["yes"])
                a["nodes_falsenodeids"].append(n["no"])
                a["nodes_missing_value_tracks_true"].append(n["miss"])
    return a, w


def model_proto(m, raw_twin=False):
    nf = m["nfeat"]
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, nf])
    if m["K"] == 0 or raw_twin:
        a, w = tree_attrs(m, "target")
        kw = dict(n_targets=m["cols"], post_transform="NONE",
                  aggregate_function="AVERAGE" if m["avg"] else "SUM", **a, **w)
        if m["base"]:
            kw["base_values"] = m["base"]
        node = helper.make_node("TreeEnsembleRegressor", ["input"], ["variable"], domain="ai.onnx.ml", **kw)
        outs = [helper.make_tensor_value_info("variable", TensorProto.FLOAT, [None, m["cols"]])]
    else:
        a, w = tree_attrs(m, "class")
        kw = dict(classlabels_int64s=list(range(m["K"])), post_transform=m["post"], **a, **w)
        if m["base"]:
            kw["base_values"] = m["base"]
        node = helper.make_node("TreeEnsembleClassifier", ["input"], ["label", "probabilities"], domain="ai.onnx.ml", **kw)
        outs = [helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
                helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, m["K"]])]
    g = helper.make_graph([node], "tree_campaign", [inp], outs)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("ai.onnx.ml", 1), helper.make_opsetid("", 13)],
                              producer_name="tree_campaign")
    model.ir_version = 8
    return model.SerializeToString()


class Oracle:
    """onnxruntime on the model (decisions, audited outputs) and on its raw-score twin."""

    def __init__(self, m, model_bytes=None):
        self.m = m
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        self.sess = ort.InferenceSession(model_bytes or model_proto(m), so, providers=["CPUExecutionProvider"])
        self.raw_sess = ort.InferenceSession(model_proto(m, raw_twin=True), so, providers=["CPUExecutionProvider"])
        self.flt = m["family"].startswith("float") or m.get("real", False)
        S = abs(np.array(m["base"] or [0.0])).max() + sum(
            max(abs(float(v)) for n in t if "leaf" in n for v in n["leaf"]) for t in m["trees"])
        self.S = S
        self.tol = 1e-5 * max(1.0, S) if self.flt else 0.0

    def run(self, X):
        """(decisions or None, audited outputs [N, C] float64, raw [N, cols] float64)."""
        X = np.ascontiguousarray(X, dtype=np.float32)
        out, raw = [], []
        dec = []
        for s in range(0, len(X), 50000):
            xs = X[s:s + 50000]
            r = self.sess.run(None, {self.sess.get_inputs()[0].name: xs})
            raw.append(self.raw_sess.run(None, {"input": xs})[0].astype(np.float64))
            if self.m["K"] == 0:
                out.append(r[0].astype(np.float64))
            else:
                p = r[1]
                if isinstance(p, list):  # ZipMap (scikit-learn converters' default)
                    p = [[d[k] for k in sorted(d)] for d in p]
                p = np.asarray(p, dtype=np.float64)
                out.append(p)
                dec.append(np.argmax(p, axis=1))
        out = np.concatenate(out)
        raw = np.concatenate(raw)
        return (np.concatenate(dec) if dec else None), out, raw

    def gap(self, raw):
        """Distance of the decision from a tie (float families only; 0 tolerance otherwise)."""
        if raw.shape[1] == 1:
            return np.abs(raw[:, 0] - (0.5 if self.m["post"] == "NONE" and self.m.get("real") else 0.0))
        s = np.sort(raw, axis=1)
        return s[:, -1] - s[:, -2]

    def score(self, raw):
        """The fairness --delta score: raw margin, class 1's raw score (two columns), the target."""
        return raw[:, 0] if raw.shape[1] == 1 else raw[:, 1]


def cuts(m, f):
    c = set()
    for t in m["trees"]:
        for n in t:
            if "leaf" not in n and n["feature"] == f:
                v = F32(n["value"])
                c.add(v if n["mode"] in ("BRANCH_LEQ", "BRANCH_GT") else prv(v))
    return sorted(c)


def intervals(cutlist, L, H):
    """Float32 intervals [lo, hi] of [L, H] between consecutive cuts."""
    starts = [L] + [nxt(c) for c in cutlist if L <= c < H]
    ends = [prv(s) for s in starts[1:]] + [H]
    return list(zip(starts, ends))


def ncells(m, ranges):
    n = 1
    for f, (L, H) in enumerate(ranges):
        n *= len(intervals(cuts(m, f), L, H))
    return n


def enumerate_cells(m, ranges, fixed=None):
    """Per-feature interval lists and the cells' low / high corner points (fixed: {feature: value})."""
    ivs = []
    for f, (L, H) in enumerate(ranges):
        if fixed and f in fixed:
            ivs.append([(F32(fixed[f]), F32(fixed[f]))])
        else:
            ivs.append(intervals(cuts(m, f), L, H))
    grids = np.meshgrid(*[np.arange(len(v)) for v in ivs], indexing="ij")
    idx = np.stack([g.ravel() for g in grids], axis=1)
    lo = np.stack([np.array([v[0] for v in ivs[f]], dtype=np.float32)[idx[:, f]] for f in range(len(ivs))], axis=1)
    hi = np.stack([np.array([v[1] for v in ivs[f]], dtype=np.float32)[idx[:, f]] for f in range(len(ivs))], axis=1)
    return ivs, idx, lo, hi


class RefBug(Exception):
    pass


def eval_cells(oracle, lo, hi):
    """Evaluate both corners of every cell; they must agree (a cell is constant)."""
    d1, o1, r1 = oracle.run(lo)
    d2, o2, r2 = oracle.run(hi)
    if d1 is not None and not np.array_equal(d1, d2) and not oracle.flt:
        raise RefBug("cell corners disagree on the decision")
    if not oracle.flt and not (np.array_equal(o1, o2) and np.array_equal(r1, r2)):
        raise RefBug("cell corners disagree on the outputs")
    return d1, o1, r1


# ------------------------------------------------------------------------------------------------
# References


def ref_robust(oracle, x, eps, clip):
    """(label, expected) for one row and radius: verified / falsified / borderline."""
    m = oracle.m
    ranges = [box_range(x[f], eps, clip[0], clip[1]) for f in range(m["nfeat"])]
    _, _, lo, hi = enumerate_cells(m, ranges)
    d0, _, r0 = oracle.run(np.array([x], dtype=np.float32))
    label = int(d0[0])
    dec, _, raw = eval_cells(oracle, lo, hi)
    flipped = dec != label
    if oracle.tol > 0:
        if oracle.gap(r0)[0] <= oracle.tol:
            return label, "borderline", len(lo)
        near = oracle.gap(raw) <= oracle.tol
        if np.any(flipped & ~near):
            return label, "falsified", len(lo)
        if np.any(near):
            return label, "borderline", len(lo)
        return label, "verified", len(lo)
    return label, ("falsified" if flipped.any() else "verified"), len(lo)


def cell_distance(x, lo, hi):
    """Exact L-inf distance (rounded up to double) from x to each cell [lo, hi] (arrays [N, F])."""
    out = np.zeros(len(lo))
    xq = [fr(v) for v in x]
    for i in range(len(lo)):
        best = Fraction(0)
        for f in range(len(x)):
            if lo[i, f] > x[f]:
                d = fr(lo[i, f]) - xq[f]
            elif hi[i, f] < x[f]:
                d = xq[f] - fr(hi[i, f])
            else:
                continue
            if d > best:
                best = d
        out[i] = up_double(best)
    return out


def ref_minimal(oracle, x, clip, max_cells):
    """Minimal adversarial L-inf distance (double) or None if no float32 point of the domain changes the
    decision; 'borderline' / 'skip' where the reference cannot decide."""
    m = oracle.m
    d0, _, r0 = oracle.run(np.array([x], dtype=np.float32))
    label = int(d0[0])
    if oracle.tol > 0 and oracle.gap(r0)[0] <= oracle.tol:
        return label, "borderline"
    cand = set()
    for f in range(m["nfeat"]):
        for c in cuts(m, f):
            if c >= x[f]:
                cand.add(up_double(fr(nxt(c)) - fr(x[f])))
            else:
                cand.add(up_double(fr(x[f]) - fr(c)))
    cand = sorted(cand)
    k = 0
    while True:
        r = cand[min(k, len(cand) - 1)] if cand else 0.0
        last = k >= len(cand) - 1
        ranges = [box_range(x[f], r, clip[0], clip[1]) for f in range(m["nfeat"])]
        if ncells(m, ranges) > max_cells:
            return label, "skip"
        _, _, lo, hi = enumerate_cells(m, ranges)
        dec, _, raw = eval_cells(oracle, lo, hi)
        flipped = dec != label
        near = (oracle.gap(raw) <= oracle.tol) if oracle.tol > 0 else np.zeros(len(lo), bool)
        if flipped.any() or near.any():
            dist = cell_distance(x, lo, hi)
            d_flip = dist[flipped & ~near].min() if np.any(flipped & ~near) else np.inf
            d_near = dist[near].min() if near.any() else np.inf
            if d_near <= d_flip:
                return label, "borderline"
            return label, float(d_flip)
        if last:
            return label, None
        k = 2 * k + 1


def ref_vnnlib(oracle, lo_b, hi_b, disj):
    """disj: list of conjunctions of (coef list, op, rhs) over the audited output: sat/unsat/borderline."""
    m = oracle.m
    ranges = []
    for f in range(m["nfeat"]):
        L, H = f32_ceil(Fraction(lo_b[f])), f32_floor(Fraction(hi_b[f]))
        if L > H:
            return "unsat", "unsat", 0  # empty box
        ranges.append((L, H))
    _, _, lo, hi = enumerate_cells(m, ranges)
    _, out, raw = eval_cells(oracle, lo, hi)
    return judge_outputs(oracle, out, raw, disj), judge_outputs(oracle, out, raw, disj, strict=True), len(lo)


def conj_holds(oracle, out, raw, conj, strict=False):
    """(holds, near) per row for one conjunction. mlaudit's VNN-LIB reader gives strict comparisons the
    closed set (verify/src/vnnlib.cpp: a proof of the closure proves the strict property), so `<` is
    read as `<=` unless strict=True (which only feeds a note)."""
    holds = np.ones(len(out), bool)
    near = np.zeros(len(out), bool)
    for c, op, d in conj:
        v = out @ np.array(c, dtype=np.float64)
        holds &= (v < d) if (op == "<" and strict) else (v <= d)
        if oracle.tol > 0:
            # argmax comparisons under a link: compare the raw columns
            rv = raw @ np.array(c, dtype=np.float64) if raw.shape[1] == len(c) else raw[:, 0]
            near |= np.abs(rv) <= oracle.tol
    return holds, near


def judge_outputs(oracle, out, raw, disj, strict=False):
    sat = np.zeros(len(out), bool)
    near = np.zeros(len(out), bool)
    for conj in disj:
        h, n = conj_holds(oracle, out, raw, conj, strict)
        sat |= h & ~n
        near |= n
    if sat.any():
        return "sat"
    return "borderline" if near.any() else "unsat"


def fair_unsafe(oracle, da, db, ra, rb, delta):
    unsafe = np.zeros(len(ra), bool) if da is None else (da != db)
    near = np.zeros(len(ra), bool)
    if oracle.tol > 0 and da is not None:
        near |= (oracle.gap(ra) <= oracle.tol) | (oracle.gap(rb) <= oracle.tol)
    if delta is not None:
        dd = np.abs(oracle.score(ra) - oracle.score(rb))
        unsafe |= dd > delta
        if oracle.tol > 0:
            near |= np.abs(dd - delta) <= oracle.tol
    return unsafe, near


def ref_fair(oracle, ranges, prot, values, delta):
    """Is there a float32 point of the box (protected feature free) and two protected levels a, b with
    different decisions (or scores more than delta apart)? proved / counterexample / borderline."""
    m = oracle.m
    res = "proved"
    n = 0
    for ia in range(len(values)):
        for ib in range(ia + 1, len(values)):
            _, _, loa, hia = enumerate_cells(m, ranges, {prot: values[ia]})
            _, _, lob, hib = enumerate_cells(m, ranges, {prot: values[ib]})
            da, _, ra = eval_cells(oracle, loa, hia)
            db, _, rb = eval_cells(oracle, lob, hib)
            n += len(loa)
            unsafe, near = fair_unsafe(oracle, da, db, ra, rb, delta)
            if np.any(unsafe & ~near):
                return "counterexample", n
            if near.any():
                res = "borderline"
    return res, n


# ------------------------------------------------------------------------------------------------
# Cases


def fmt(v):
    return repr(float(v))


def pick_row(rng, m, clip):
    """A row: features on thresholds, one float32 step off them, or random."""
    x = []
    for f in range(m["nfeat"]):
        pool = [F32(v) for v in m["pools"][f]]
        r = rng.random()
        if r < 0.35:
            v = pool[int(rng.integers(len(pool)))]
        elif r < 0.6:
            v = pool[int(rng.integers(len(pool)))]
            v = nxt(v) if rng.random() < 0.5 else prv(v)
        else:
            v = F32(rng.uniform(-0.6, 1.6))
        if m["protected"] == f:
            v = F32(int(rng.integers(0, 2)))
        x.append(v)
    x = np.array(x, dtype=np.float32)
    if clip is not None:
        x = np.clip(x, F32(f32_ceil(Fraction(clip[0]))), F32(f32_floor(Fraction(clip[1])))).astype(np.float32)
    return x


def pick_eps(rng, m, x):
    """A radius: random, or exactly the distance to a threshold crossing (+- one double step)."""
    r = rng.random()
    if r < 0.5:
        f = int(rng.integers(m["nfeat"]))
        cs = cuts(m, f)
        if cs:
            c = cs[int(rng.integers(len(cs)))]
            q = fr(nxt(c)) - fr(x[f]) if c >= x[f] else fr(x[f]) - fr(c)
            e = up_double(q)
            s = rng.random()
            if s < 0.25:
                e = float(np.nextafter(e, -np.inf))
            elif s < 0.4:
                e = float(np.nextafter(e, np.inf))
            return max(e, 0.0)
    if r < 0.6:
        return 0.0
    return float(10 ** rng.uniform(-3, 0))


def shrink_eps(m, x, eps, clip, max_cells):
    while eps > 1e-7 and ncells(m, [box_range(x[f], eps, clip[0], clip[1]) for f in range(m["nfeat"])]) > max_cells:
        eps /= 4
    return eps


def make_case(seed, n, max_cells=20000, real=False):
    """Case n of seed: (model dict, query dict) with the reference answers. real: a converter's model
    (XGBoost, LightGBM, scikit-learn) trained on random data instead of a generated ensemble."""
    rng = np.random.default_rng([seed, n])
    kind = KINDS[int(rng.integers(len(KINDS)))]
    if real:
        family = REAL[int(rng.integers(len(REAL)))]
        m, blob = gen_real(rng, family)
        family = m["family"]
        m["onnx"] = blob
        plevels = 2
        if kind.startswith("fair"):
            m["protected"] = int(rng.integers(m["nfeat"]))
            m["pools"][m["protected"]] = [0.0, 1.0]
    elif kind.startswith("fair"):
        family = ["gbt_binary", "gbt_multi", "forest", "binary_none", "regressor", "float_binary"][int(rng.integers(6))]
        plevels = 3 if rng.random() < 0.3 else 2
        m = gen_model(rng, family, protected=True, plevels=plevels, one_target=True)
    else:
        fams = FAMILIES if kind == "vnnlib" else [f for f in FAMILIES if f != "regressor"]
        family = fams[int(rng.integers(len(fams)))]
        plevels = 2
        m = gen_model(rng, family)
    oracle = Oracle(m, m.get("onnx"))
    q = dict(kind=kind, family=family, seed=seed, n=n)
    if kind in ("data", "data_clip"):
        clip = (-np.inf, np.inf) if kind == "data" else (float(rng.choice([0.0, -0.25])), float(rng.choice([1.0, 0.875])))
        rows = [pick_row(rng, m, None if kind == "data" else clip) for _ in range(int(rng.integers(1, 5)))]
        epss = sorted(set(pick_eps(rng, m, rows[int(rng.integers(len(rows)))]) for _ in range(int(rng.integers(1, 4)))))
        epss = sorted(set(min(shrink_eps(m, x, e, clip, max_cells) for x in rows) for e in epss))
        q.update(clip=list(clip), rows=[[float(v) for v in x] for x in rows], eps=epss, expect=[], minimal=[])
        for i, x in enumerate(rows):
            for e in epss:
                label, exp, nc = ref_robust(oracle, x, e, clip)
                q["expect"].append(dict(row=i, eps=e, label=label, expected=exp, cells=nc))
        if rng.random() < 0.6:
            q["minimal_distance"] = True
            for i, x in enumerate(rows):
                label, d = ref_minimal(oracle, x, clip, max_cells * 5)
                q["minimal"].append(dict(row=i, label=label, distance=d))
    elif kind == "vnnlib":
        x = pick_row(rng, m, None)
        eps = shrink_eps(m, x, pick_eps(rng, m, x) if rng.random() < 0.7 else float(10 ** rng.uniform(-2, 0)),
                         (-np.inf, np.inf), max_cells)
        lo_b = [float(v) - eps for v in x]
        hi_b = [float(v) + eps for v in x]
        C = m["K"] if m["K"] else m["cols"]
        linkless = m["post"] == "NONE" and not m.get("real")
        # sample outputs in the box to place right-hand sides at achieved values (ties)
        ranges = [(f32_ceil(Fraction(lo_b[f])), f32_floor(Fraction(hi_b[f]))) for f in range(m["nfeat"])]
        _, _, lo, hi = enumerate_cells(m, ranges)
        _, out, _ = oracle.run(lo)
        disj = []
        strict = rng.random() < 0.3
        for _ in range(int(rng.integers(1, 4))):
            conj = []
            for _ in range(int(rng.integers(1, 3))):
                if linkless and (C == 1 or rng.random() < 0.6):
                    c = [float(rng.integers(-2, 3)) for _ in range(C)]
                    if not any(c):
                        c[int(rng.integers(C))] = 1.0
                    vals = out @ np.array(c)
                    d = float(vals[int(rng.integers(len(vals)))]) + float(rng.choice([0, 0, 0, 1 / 16, -1 / 16]))
                    conj.append((c, "<" if strict else "<=", d))
                else:
                    i, j = rng.choice(C, size=2, replace=False) if C > 1 else (0, 0)
                    c = [0.0] * C
                    c[int(i)] += 1.0
                    c[int(j)] -= 1.0  # Y_i - Y_j <= 0 : Y_j >= Y_i
                    conj.append((c, "<" if strict else "<=", 0.0))
            disj.append(conj)
        exp, exp_strict, nc = ref_vnnlib(oracle, lo_b, hi_b, disj)
        q.update(lo=lo_b, hi=hi_b, disj=disj, expected=exp, expected_strict=exp_strict, cells=nc, outputs=C)
    else:
        prot = m["protected"]
        dom_lo = [float(rng.choice([-0.5, -0.25, 0.0])) for _ in range(m["nfeat"])]
        dom_hi = [float(rng.choice([1.0, 1.25, 1.5])) for _ in range(m["nfeat"])]
        dom_lo[prot], dom_hi[prot] = 0.0, float(plevels - 1)
        values = list(range(plevels))
        delta = None
        if m["K"] == 0 or (m["K"] == 2 and rng.random() < 0.5):
            delta = float(rng.choice([0.0, 1 / 8, 1 / 4, 1 / 2, 1.0]))
        q.update(domain=[dom_lo, dom_hi], protected=prot, values=values, delta=delta)
        if kind == "fair_domain":
            ranges = [(f32_ceil(Fraction(dom_lo[f])), f32_floor(Fraction(dom_hi[f]))) for f in range(m["nfeat"])]
            nc = ncells(m, [r if f != prot else (F32(0), F32(0)) for f, r in enumerate(ranges)])
            if nc > max_cells:  # too many cells: boxes around rows instead
                kind = q["kind"] = "fair_rows"
            else:
                exp, nc = ref_fair(oracle, ranges, prot, values, delta)
                q.update(expected=exp, cells=nc, partitions=int(rng.integers(1, 3)))
        if kind == "fair_rows":
            rows = [pick_row(rng, m, None) for _ in range(int(rng.integers(1, 4)))]
            rows = [np.clip(x, np.array(dom_lo, np.float32), np.array(dom_hi, np.float32)).astype(np.float32) for x in rows]
            eps = pick_eps(rng, m, rows[0])
            for x in rows:
                eps = shrink_eps(m, x, eps, (-np.inf, np.inf), max_cells // 2)
            q.update(rows=[[float(v) for v in x] for x in rows], eps=eps, expect=[])
            for x in rows:
                ranges = [box_range(x[f], eps, dom_lo[f], dom_hi[f]) for f in range(m["nfeat"])]
                if any(r is None for f, r in enumerate(ranges) if f != prot):
                    q["expect"].append(dict(expected="empty", cells=0))
                    continue
                exp, nc = ref_fair(oracle, ranges, prot, values, delta)
                q["expect"].append(dict(expected=exp, cells=nc))
    return m, q


def strip_model(m):
    return {k: v for k, v in m.items() if k not in ("trees", "onnx")}



# ------------------------------------------------------------------------------------------------
# Runner


def write_case(d, name, m, q):
    """Model, inputs and the command line (list, with {D} for the case folder) of one case."""
    with open(os.path.join(d, name + ".onnx"), "wb") as f:
        f.write(m.get("onnx") or model_proto(m))
    args = ["verify", "--model", "{D}/" + name + ".onnx"]
    k = q["kind"]
    if k in ("data", "data_clip"):
        np.save(os.path.join(d, name + "_x.npy"), np.array(q["rows"], dtype=np.float32))
        args += ["--data", "{D}/" + name + "_x.npy", "--eps", ",".join(fmt(e) for e in q["eps"]),
                 "--clip-min=" + ("-inf" if not np.isfinite(q["clip"][0]) else fmt(q["clip"][0])),
                 "--clip-max=" + ("inf" if not np.isfinite(q["clip"][1]) else fmt(q["clip"][1]))]
        if q.get("minimal_distance"):
            args.append("--minimal-distance")
    elif k == "vnnlib":
        C = q["outputs"]
        lines = [f"; tree_campaign {q['seed']} {q['n']}"]
        lines += [f"(declare-const X_{i} Real)" for i in range(m["nfeat"])]
        lines += [f"(declare-const Y_{j} Real)" for j in range(C)]
        for i in range(m["nfeat"]):
            lines.append(f"(assert (>= X_{i} {fmt(q['lo'][i])}))")
            lines.append(f"(assert (<= X_{i} {fmt(q['hi'][i])}))")

        def term(c):
            ts = [(f"Y_{j}" if cj == 1 else f"(* {fmt(cj)} Y_{j})") for j, cj in enumerate(c) if cj != 0]
            return ts[0] if len(ts) == 1 else "(+ " + " ".join(ts) + ")"

        def cons(c, op, d):
            nz = [j for j in range(len(c)) if c[j] != 0]
            if d == 0 and len(nz) == 2 and sorted(c[j] for j in nz) == [-1.0, 1.0]:
                pos = nz[0] if c[nz[0]] == 1 else nz[1]
                neg = nz[1] if pos == nz[0] else nz[0]
                return f"({'>' if op == '<' else '>='} Y_{neg} Y_{pos})"
            return f"({op} {term(c)} {fmt(d)})"

        lines.append("(assert (or " + " ".join("(and " + " ".join(cons(*c) for c in conj) + ")" for conj in q["disj"]) + "))")
        with open(os.path.join(d, name + ".vnnlib"), "w") as f:
            f.write("\n".join(lines) + "\n")
        args += ["--vnnlib", "{D}/" + name + ".vnnlib", "--result", "{T}/" + name + ".txt"]
    else:
        feats = [f"f{i}" for i in range(m["nfeat"])]
        with open(os.path.join(d, name + "_ranges.csv"), "w") as f:
            f.write("feature,min,max\n")
            for i in range(m["nfeat"]):
                f.write(f"f{i},{fmt(q['domain'][0][i])},{fmt(q['domain'][1][i])}\n")
        args += ["--fairness", "--protected", f"f{q['protected']}", "--features", ",".join(feats),
                 "--domain", "{D}/" + name + "_ranges.csv"]
        if q["delta"] is not None:
            args += ["--delta", fmt(q["delta"])]
        if k == "fair_domain":
            args += ["--partitions", str(q["partitions"])]
        else:
            np.save(os.path.join(d, name + "_x.npy"), np.array(q["rows"], dtype=np.float32))
            args += ["--data", "{D}/" + name + "_x.npy", "--eps", fmt(q["eps"])]
    args += ["--out", "{T}/" + name + ".json"]
    q["args"] = args
    return args


def in_box(x, lo, hi):
    return all(fr(lo[i]) <= fr(F32(x[i])) <= fr(hi[i]) for i in range(len(x)))


def check_case(m, q, oracle, out_json, result_txt, status):
    """Compare mlaudit's answers with the reference: list of (instance kind, outcome, note)."""
    res = []
    k = q["kind"]
    if status != 0 or not os.path.exists(out_json):
        return [(k, "error", f"exit {status}")]
    with open(out_json) as f:
        j = json.load(f)
    if k in ("data", "data_clip"):
        clip = q["clip"]
        per = {(s["index"], float(s["eps"])): s for s in j["per_sample"]}
        for e in q["expect"]:
            s = per.get((e["row"], float(e["eps"])))
            if s is None:
                res.append(("robust", "error", "missing sample"))
                continue
            v = s["verdict"]
            note, outcome = "", v
            x = np.array(q["rows"][e["row"]], dtype=np.float32)
            if e["expected"] != "borderline" and s["label"] != e["label"]:
                outcome, note = "wrong", f"label {s['label']} vs onnxruntime {e['label']}"
            elif v == "verified" and e["expected"] == "falsified":
                outcome, note = "wrong", "verified, reference falsified"
            elif v == "falsified":
                cx = np.array(s["counterexample"], dtype=np.float64)
                ranges = [box_range(x[f], e["eps"], clip[0], clip[1]) for f in range(len(x))]
                if not in_box(cx, [r[0] for r in ranges], [r[1] for r in ranges]):
                    outcome, note = "wrong", "counterexample outside the box"
                else:
                    dec, _, raw = oracle.run(np.array([cx], dtype=np.float32))
                    if dec[0] == s["label"] and not (oracle.tol and oracle.gap(raw)[0] <= oracle.tol):
                        outcome, note = "wrong", "counterexample keeps the decision under onnxruntime"
                    elif e["expected"] == "verified":
                        outcome, note = "wrong", "falsified, reference verified (counterexample checks?)"
            if e["expected"] == "borderline" and outcome != "wrong":
                outcome = "borderline"
            res.append(("robust_clip" if k == "data_clip" else "robust", outcome, note))
        if q.get("minimal_distance"):
            md = {s["index"]: s for s in j.get("minimal_distance", [])}
            for e in q["minimal"]:
                s = md.get(e["row"])
                if s is None:
                    res.append(("minimal", "error", "missing"))
                    continue
                ref = e["distance"]
                st = s["status"]
                if st == "timeout":
                    res.append(("minimal", "timeout", ""))
                    continue
                got = s["distance"] if st == "found" else None
                outcome, note = ("found" if st == "found" else "none"), ""
                if ref in ("borderline", "skip"):
                    outcome = ref
                elif ref is None and got is not None:
                    outcome, note = "wrong", f"found {got!r}, reference: none"
                elif ref is not None and got is None:
                    outcome, note = "wrong", f"none, reference {ref!r}"
                elif ref is not None and abs(got - ref) > 1e-6:
                    outcome, note = "wrong", f"distance {got!r}, reference {ref!r}"
                elif ref is not None and got != ref:
                    note = f"within 1e-6, not bitwise: {got!r} vs {ref!r}"
                if st == "found" and outcome != "wrong":
                    cx = np.array(s["counterexample"], dtype=np.float32)
                    x = np.array(q["rows"][e["row"]], dtype=np.float32)
                    dec, _, raw = oracle.run(np.array([cx]))
                    dist = max(abs(fr(cx[f]) - fr(x[f])) for f in range(len(x)))
                    if dist > Fraction(got):
                        outcome, note = "wrong", "counterexample farther than the distance"
                    elif dec[0] == s["label"] and not (oracle.tol and oracle.gap(raw)[0] <= oracle.tol):
                        outcome, note = "wrong", "minimal-distance point keeps the decision"
                    elif any(float(v) < clip[0] or float(v) > clip[1] for v in cx):
                        outcome, note = "wrong", "minimal-distance point outside the domain"
                res.append(("minimal", outcome, note))
    elif k == "vnnlib":
        verdict = j.get("result", "missing")
        exp = q["expected"]
        outcome, note = verdict, ""
        if verdict == "unsat" and exp == "sat":
            outcome, note = "wrong", "unsat, reference sat"
        elif verdict == "sat":
            cx = j["counterexample"]["input"]
            if not in_box(cx, [f32_ceil(Fraction(v)) for v in q["lo"]], [f32_floor(Fraction(v)) for v in q["hi"]]):
                outcome, note = "wrong", "counterexample outside the box"
            else:
                _, out, raw = oracle.run(np.array([cx], dtype=np.float32))
                ok = judge_outputs(oracle, out, raw, q["disj"])
                if ok == "unsat":
                    outcome, note = "wrong", "counterexample not unsafe under onnxruntime"
                elif exp == "unsat":
                    outcome, note = "wrong", "sat, reference unsat"
            # the result file too
            if result_txt and os.path.exists(result_txt):
                with open(result_txt) as f:
                    if f.readline().strip() != "sat":
                        outcome, note = "wrong", "result file disagrees with the JSON"
        if exp == "borderline" and outcome != "wrong":
            outcome = "borderline"
        if q["expected_strict"] != exp and not note:
            note = f"strict comparisons: {q['expected_strict']} with strict semantics, {exp} on the closure"
        res.append(("vnnlib", outcome, note))
    else:
        parts = j["partitions"]
        prot, values, delta = q["protected"], q["values"], q["delta"]
        dom_lo, dom_hi = q["domain"]

        def check_pair(p, box_lo, box_hi):
            a = np.array(p["input_a"], dtype=np.float32)
            b = np.array(p["input_b"], dtype=np.float32)
            for f in range(len(a)):
                if f == prot:
                    continue
                if a[f] != b[f]:
                    return "pair differs outside the protected feature"
            if float(a[prot]) not in values or float(b[prot]) not in values or a[prot] == b[prot]:
                return "protected values not two distinct levels"
            an, bn = a.copy(), b.copy()
            an[prot] = bn[prot] = box_lo[prot]
            if not in_box(an, box_lo, box_hi):
                return "pair outside the box"
            da, _, ra = oracle.run(np.array([a]))
            db, _, rb = oracle.run(np.array([b]))
            unsafe, near = fair_unsafe(oracle, da, db, ra, rb, delta)
            if not unsafe[0] and not near[0]:
                return "pair not unfair under onnxruntime"
            return ""

        if k == "fair_domain":
            ranges = [(f32_ceil(Fraction(dom_lo[f])), f32_floor(Fraction(dom_hi[f]))) for f in range(len(dom_lo))]
            box_lo = [r[0] for r in ranges]
            box_hi = [r[1] for r in ranges]
            verdicts = [p["verdict"] for p in parts]
            note = ""
            if "counterexample" in verdicts:
                got = "counterexample"
            elif all(v == "proved" for v in verdicts):
                got = "proved"
            else:
                got = "timeout" if "timeout" in verdicts else "unknown"
            outcome = got
            if got == "proved" and q["expected"] == "counterexample":
                outcome, note = "wrong", "proved, reference counterexample"
            for p in parts:
                if p["verdict"] == "counterexample":
                    bad = check_pair(p, box_lo, box_hi)
                    if bad:
                        outcome, note = "wrong", bad
                    elif q["expected"] == "proved":
                        outcome, note = "wrong", "counterexample, reference proved"
            if q["expected"] == "borderline" and outcome != "wrong":
                outcome = "borderline"
            res.append(("fair_domain", outcome, note))
        else:
            for i, e in enumerate(q["expect"]):
                if i >= len(parts):
                    res.append(("fair_rows", "error", "missing box"))
                    continue
                p = parts[i]
                x = np.array(q["rows"][i], dtype=np.float32)
                outcome, note = p["verdict"], ""
                if e["expected"] == "empty":
                    res.append(("fair_rows", "empty", ""))
                    continue
                if p["verdict"] == "proved" and e["expected"] == "counterexample":
                    outcome, note = "wrong", "proved, reference counterexample"
                elif p["verdict"] == "counterexample":
                    ranges = [box_range(x[f], q["eps"], dom_lo[f], dom_hi[f]) if f != prot else (F32(0), F32(0))
                              for f in range(len(x))]
                    bad = check_pair(p, [r[0] for r in ranges], [r[1] for r in ranges])
                    if bad:
                        outcome, note = "wrong", bad
                    elif e["expected"] == "proved":
                        outcome, note = "wrong", "counterexample, reference proved"
                if e["expected"] == "borderline" and outcome != "wrong":
                    outcome = "borderline"
                res.append(("fair_rows", outcome, note))
    return res


def run_one(mlaudit, d, tmp, name, q, timeout):
    args = [a.replace("{D}", d).replace("{T}", tmp) for a in q["args"]]
    t0 = time.time()
    try:
        p = subprocess.run([mlaudit, "--threads", "1", "--quiet"] + args + ["--timeout", str(timeout)],
                           capture_output=True, text=True, timeout=timeout * 5 + 20)
        status, err = p.returncode, p.stderr.strip()[-300:]
    except subprocess.TimeoutExpired:
        status, err = -9, "killed"
    return status, err, time.time() - t0


def campaign(args):
    os.makedirs(args.work, exist_ok=True)
    out_path = os.path.join(args.work, "results.jsonl")
    kept = os.path.join(args.work, "kept")
    done = set()
    if os.path.exists(out_path):
        with open(out_path) as f:
            for line in f:
                done.add(json.loads(line)["n"])
    t_start = time.time()
    with open(out_path, "a") as out:
        for n in range(args.first, args.first + args.cases):
            if n in done:
                continue
            if args.stop_after and time.time() - t_start > args.stop_after:
                break
            d = os.path.join(args.work, f"c{n}")
            os.makedirs(d, exist_ok=True)
            rec = dict(seed=args.seed, n=n)
            try:
                t0 = time.time()
                m, q = make_case(args.seed, n, args.max_cells, args.real)
                rec["ref_seconds"] = time.time() - t0
                name = "m"
                write_case(d, name, m, q)
                oracle = Oracle(m, m.get("onnx"))
                status, err, secs = run_one(args.mlaudit, d, d, name, q, args.timeout)
                rec.update(kind=q["kind"], family=q["family"], seconds=secs, status=status)
                rt = os.path.join(d, name + ".txt") if q["kind"] == "vnnlib" else None
                results = check_case(m, q, oracle, os.path.join(d, name + ".json"), rt, status)
                if status != 0:
                    rec["stderr"] = err
                rec["results"] = results
            except RefBug as e:
                rec.update(results=[("case", "refbug", str(e))])
            except Exception as e:  # a generator error is the campaign's, never mlaudit's
                import traceback
                rec.update(results=[("case", "generror", repr(e) + traceback.format_exc()[-500:])])
            bad = any(r[1] in ("wrong", "error", "refbug", "generror") for r in rec["results"])
            if bad:
                os.makedirs(kept, exist_ok=True)
                dst = os.path.join(kept, f"c{args.seed}_{n}")
                shutil.rmtree(dst, ignore_errors=True)
                shutil.copytree(d, dst)
                if "q" in locals():
                    with open(os.path.join(dst, "query.json"), "w") as f:
                        json.dump(dict(query=q, model=strip_model(m)), f, default=float, indent=1)
            shutil.rmtree(d, ignore_errors=True)
            out.write(json.dumps(rec, default=float) + "\n")
            out.flush()
            if not args.quiet and n % 50 == 0:
                print(f"case {n} ({time.time() - t_start:.0f} s)", flush=True)


def summary(path):
    from collections import Counter, defaultdict
    by_kind = defaultdict(Counter)
    by_family = defaultdict(Counter)
    secs = []
    cases = 0
    for line in open(path):
        r = json.loads(line)
        cases += 1
        if "seconds" in r:
            secs.append(r["seconds"])
        for kind, outcome, note in r["results"]:
            by_kind[kind][outcome] += 1
            by_family[r.get("family", "?")][outcome] += 1
            if outcome in ("wrong", "error", "refbug", "generror"):
                print("!!", r["seed"], r["n"], r.get("family"), kind, outcome, note, r.get("stderr", "")[:200])
    cols = ["verified", "falsified", "sat", "unsat", "proved", "counterexample", "found", "none", "unknown",
            "timeout", "borderline", "skip", "empty", "wrong", "error", "refbug", "generror"]

    def table(title, d):
        used = [c for c in cols if any(d[k][c] for k in d)]
        print(f"\n| {title} | instances | " + " | ".join(used) + " |")
        print("|---|---:|" + "---:|" * len(used))
        tot = Counter()
        for k in sorted(d):
            tot.update(d[k])
            print(f"| {k} | {sum(d[k].values())} | " + " | ".join(str(d[k][c]) for c in used) + " |")
        print(f"| **all** | {sum(tot.values())} | " + " | ".join(str(tot[c]) for c in used) + " |")

    table("kind", by_kind)
    table("family", by_family)
    if secs:
        s = np.sort(secs)
        print(f"\n{cases} cases; mlaudit seconds per case: median {np.median(s):.3f}, p99 {s[int(0.99 * (len(s) - 1))]:.3f}, "
              f"max {s[-1]:.2f}, total {s.sum():.0f}")


def fixtures(args):
    """Small cases with a definite reference for tests/fixtures/tree_campaign (cases.json + files)."""
    os.makedirs(args.out, exist_ok=True)
    cases = []
    n = 0
    per_kind = {}
    quota = args.count // len(KINDS) + 1
    total = 0
    real_n = 0
    while len(cases) < args.count + args.real_count and n < args.count * 50:
        real = len(cases) >= args.count
        if real:
            real_n += 1
        else:
            n += 1
        try:
            m, q = make_case(args.seed, real_n if real else n, args.max_cells, real)
        except RefBug:
            continue
        size = len(m.get("onnx") or model_proto(m))
        if size > args.max_bytes * (3 if real else 1) or (not real and per_kind.get(q["kind"], 0) >= quota):
            continue
        if any(isinstance(e, dict) and e.get("expected") == "borderline" for e in q.get("expect", [])) or \
                q.get("expected") == "borderline":
            continue
        name = f"{'r' if real else 't'}{args.seed}_{real_n if real else n:05d}"
        write_case(args.out, name, m, q)
        c = dict(name=name, kind=q["kind"], family=q["family"], args=q["args"])
        if q["kind"] in ("data", "data_clip"):
            c.update(clip=[v if np.isfinite(v) else None for v in q["clip"]], rows=q["rows"],
                     expect=[dict(row=e["row"], eps=e["eps"], label=e["label"], expected=e["expected"]) for e in q["expect"]],
                     minimal=[dict(row=e["row"], distance=e["distance"] if not isinstance(e["distance"], str) else e["distance"])
                              for e in q["minimal"]])
        elif q["kind"] == "vnnlib":
            c.update(expected=q["expected"], lo=q["lo"], hi=q["hi"])
        elif q["kind"] == "fair_domain":
            c.update(expected=q["expected"], protected=q["protected"])
        else:
            c.update(expect=[e["expected"] for e in q["expect"]], protected=q["protected"], eps=q["eps"], rows=q["rows"],
                     domain=q["domain"])
        cases.append(c)
        per_kind[q["kind"]] = per_kind.get(q["kind"], 0) + 1
        total += size
    with open(os.path.join(args.out, "cases.json"), "w") as f:
        json.dump(dict(seed=args.seed, generator="tools/tree_campaign.py fixtures", cases=cases), f, indent=0, default=float)
    print(f"{len(cases)} cases ({per_kind}), models {total / 1e3:.0f} kB")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("campaign")
    c.add_argument("--work", required=True)
    c.add_argument("--seed", type=int, default=1)
    c.add_argument("--first", type=int, default=0)
    c.add_argument("--cases", type=int, default=100)
    c.add_argument("--mlaudit", default="build/mlaudit")
    c.add_argument("--timeout", type=float, default=10)
    c.add_argument("--max-cells", type=int, default=20000)
    c.add_argument("--stop-after", type=float, default=0, help="stop after this many seconds")
    c.add_argument("--quiet", action="store_true")
    c.add_argument("--real", action="store_true", help="converters' models (XGBoost, LightGBM, scikit-learn)")
    s = sub.add_parser("summary")
    s.add_argument("results")
    fx = sub.add_parser("fixtures")
    fx.add_argument("--out", required=True)
    fx.add_argument("--seed", type=int, default=7)
    fx.add_argument("--count", type=int, default=200)
    fx.add_argument("--max-cells", type=int, default=3000)
    fx.add_argument("--max-bytes", type=int, default=6000)
    fx.add_argument("--real-count", type=int, default=0, help="also this many converters' models")
    a = ap.parse_args()
    if a.cmd == "campaign":
        campaign(a)
    elif a.cmd == "summary":
        summary(a.results)
    else:
        fixtures(a)


if __name__ == "__main__":
    main()
