#!/usr/bin/env python3
"""Write ONNX's own backend node tests for mlaudit's engine op scope into tests/fixtures/onnx_node/.

onnx >= 1.16 no longer ships the generated node-test data (onnx/backend/test/data/node/) in its
wheels, only the generators (onnx/backend/test/case/node/*.py). This script runs those
generators in process (`onnx.backend.test.case.node.collect_testcases()`, with numpy seeded so
the random cases are reproducible) and writes every selected case the way onnx's own
`backend-test-tools generate-data` does: <test>/model.onnx and
<test>/test_data_set_0/input_<k>.pb, output_<k>.pb (serialized onnx.TensorProto, in graph
input/output order).

Python: $PYTHON, else the repo-local virtualenv .venv/ (the script re-executes itself under it
when started by another interpreter). The recipe:

    python3.11 -m venv .venv
    .venv/bin/pip install onnx==1.23.2 numpy
    ${PYTHON:-.venv/bin/python} tools/export_onnx_node_tests.py [--out tests/fixtures/onnx_node]

The script refuses any other onnx version (other releases generate other cases/opsets).

Selection (every generated case is examined; the reason for each skip of a case that touches a
scope op is written to README.md):
  * every node is a default-domain op of SCOPE_OPS (the engine's current and planned op list);
  * every case at every opset the package generates is taken (no upper opset gate: the engine's
    opset gate is being lifted); a case generated below opset 7 is kept when none of its ops
    changed up to opset 7, and its opset_import is then raised to 7;
  * every graph input, output, initializer, inferred intermediate value and tensor attribute
    (Constant/ConstantOfShape value, Cast/…'to') is float32, int64, int32 or bool;
  * within the engine's declared scope: Conv, ConvTranspose and pooling are 2-D only (4-D NCHW
    tensors), Pad is mode "constant" only;
  * no training-mode behaviour: Dropout with training_mode / mask output, and
    BatchNormalization with training_mode or more than one output, are skipped.

Old-opset variants: the package generates each single-op case at the newest version of its op
(e.g. Conv at opset 22), while models in the wild and the previous fixtures (onnx 1.13.1, opsets
<= 18) use older versions. For every kept case above opset 18 the script also writes
<test>_opset<V>, V being the newest version of its ops at opset 18 (at least 7), converted with
onnx.version_converter and kept only when onnx.checker (full check) accepts it and onnx's
ReferenceEvaluator reproduces the case's expected outputs at that opset (rtol 1e-3, atol 1e-7,
the tolerance of onnx's runner). A case whose op semantics changed (e.g. a new attribute) fails
that check and gets no variant (reason in README.md).

Float32 variants: ops whose generators only make float64 cases (Einsum, CumSum,
ReduceLogSumExp, ...) get <test>_float32, the case rewritten to float32 (graph values,
initializers, data; expected outputs rounded to float32), kept when onnx's ReferenceEvaluator
reproduces those outputs in float32 (rtol 1e-3, atol 1e-7).

Writes tests/fixtures/onnx_node/<test>/, LIST.txt (one kept test per line) and README.md
(recipe, kept tests per op and per opset, skipped tests with reasons); the tests of the previous
LIST.txt that are no longer kept are printed.
"""
import argparse
import collections
import os
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REQUIRED_ONNX = "1.23.2"


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import project_python  # noqa: E402

project_python.use()

import numpy as np  # noqa: E402
import onnx  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

SCOPE_OPS = {
    # the engine's original 48 ops
    "Abs", "Add", "AveragePool", "BatchNormalization", "Cast", "Clip", "Concat", "Constant", "Conv",
    "Div", "Dropout", "Elu", "Erf", "Exp", "Flatten", "Gather", "Gemm", "GlobalAveragePool",
    "HardSigmoid", "Identity", "LeakyRelu", "Log", "LogSoftmax", "MatMul", "Max", "MaxPool", "Min",
    "Mul", "Neg", "Pad", "Pow", "ReduceMean", "ReduceSum", "Relu", "Reshape", "Shape", "Sigmoid",
    "Sign", "Slice", "Softmax", "Softplus", "Sqrt", "Squeeze", "Sub", "Sum", "Tanh", "Transpose",
    "Unsqueeze",
    # ops today's exporters emit (being added)
    "Gelu", "LayerNormalization", "GroupNormalization", "InstanceNormalization", "Mod", "Split",
    "Where", "Expand", "Tile", "Range", "ConstantOfShape", "Equal", "Less", "Greater", "LessOrEqual",
    "GreaterOrEqual", "Not", "And", "Or", "Einsum", "Reciprocal", "HardSwish", "Mish", "PRelu",
    "Selu", "Celu", "ThresholdedRelu", "Softsign", "ConvTranspose", "Resize", "Upsample",
    "DepthToSpace", "SpaceToDepth", "GatherElements", "GatherND", "ScatterND", "CumSum", "ArgMax",
    "ArgMin", "TopK", "Trilu", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
    "ReduceLogSumExp", "ReduceSumSquare", "ReduceLogSum", "Size", "Floor", "Ceil", "Round", "Cos",
    "Sin", "Xor", "Hardmax", "Mean", "IsNaN", "IsInf",
    # added with them
    "OneHot", "NonZero", "GlobalMaxPool", "LpNormalization", "MeanVarianceNormalization", "Shrink",
    "Tan", "Atan", "Asin", "Acos", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh",
    "LSTM", "GRU", "RNN", "ScatterElements", "Scatter", "QuantizeLinear", "DequantizeLinear",
    "DynamicQuantizeLinear", "MatMulInteger", "ConvInteger", "QLinearMatMul", "QLinearConv", "CastLike",
    # ai.onnx.ml (numeric tensors only; strings and maps are out of scope)
    "Scaler", "Normalizer", "Binarizer", "Imputer", "OneHotEncoder", "LabelEncoder", "ArrayFeatureExtractor",
    "FeatureVectorizer", "LinearClassifier", "LinearRegressor", "SVMClassifier", "SVMRegressor",
    "TreeEnsembleClassifier", "TreeEnsembleRegressor", "TreeEnsemble",
}
QUANT_OPS = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "MatMulInteger", "ConvInteger",
             "QLinearMatMul", "QLinearConv", "Cast", "CastLike", "Identity", "Reshape", "Transpose"}
SPATIAL_2D_OPS = {"Conv", "ConvTranspose", "MaxPool", "AveragePool", "GlobalAveragePool"}
ALLOWED_TYPES = {TensorProto.FLOAT, TensorProto.INT64, TensorProto.INT32, TensorProto.BOOL,
                 TensorProto.INT8, TensorProto.UINT8}  # 8-bit integers: quantized models
OPSET_MIN = 7
OLD_OPSET = 18  # the previous fixtures' (and the engine's original) top opset
SEED = 0


def type_name(t):
    return TensorProto.DataType.Name(t)


def default_opset(model):
    vs = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    return max(vs) if vs else None


def check(model, name):
    """None if the case is kept, else the reason it is skipped."""
    domains = {o.domain for o in model.opset_import}
    if domains - {"", "ai.onnx", "ai.onnx.ml"}:
        return f"operator domain {sorted(domains - {'', 'ai.onnx', 'ai.onnx.ml'})}"
    if model.functions:
        return "model-local functions"
    opset = default_opset(model)
    ops = [n.op_type for n in model.graph.node]
    other = sorted({o for o in ops if o not in SCOPE_OPS})
    if other:
        return "ops outside the scope list: " + ", ".join(other)
    if opset is not None and opset < OPSET_MIN:
        changed = sorted({o for o in ops if onnx.defs.get_schema(o, OPSET_MIN, "").since_version > opset})
        if changed:
            return f"opset {opset} < {OPSET_MIN} and {', '.join(changed)} changed by opset {OPSET_MIN}"
    for vi in list(model.graph.input) + list(model.graph.output):
        if not vi.type.HasField("tensor_type"):
            return f"non-tensor graph value '{vi.name}' (sequence/optional/map)"
        et = vi.type.tensor_type.elem_type
        if et not in ALLOWED_TYPES:
            return f"graph value '{vi.name}' has type {type_name(et)}"
    for init in model.graph.initializer:
        if init.data_type not in ALLOWED_TYPES:
            return f"initializer '{init.name}' has type {type_name(init.data_type)}"
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    except Exception as e:  # noqa: BLE001
        return f"onnx shape inference fails: {str(e).splitlines()[0][:120]}"
    values = list(inferred.graph.input) + list(inferred.graph.output) + list(inferred.graph.value_info)
    for vi in values:
        if vi.type.HasField("tensor_type"):
            et = vi.type.tensor_type.elem_type
            if et not in ALLOWED_TYPES and et != TensorProto.UNDEFINED:
                return f"intermediate value '{vi.name}' has type {type_name(et)}"
        elif vi.type.WhichOneof("value") is not None:
            return f"non-tensor value '{vi.name}'"
    # 8-bit integers are in scope only as quantized tensors, for the quantization ops.
    eight_bit = {vi.name for vi in values if vi.type.HasField("tensor_type")
                 and vi.type.tensor_type.elem_type in (TensorProto.INT8, TensorProto.UINT8)}
    eight_bit |= {i.name for i in model.graph.initializer if i.data_type in (TensorProto.INT8, TensorProto.UINT8)}
    for node in model.graph.node:
        if node.op_type not in QUANT_OPS and any(i in eight_bit for i in node.input):
            return f"{node.op_type} on 8-bit integers (in scope for the quantization ops only)"
    ranks = {}
    for vi in values:
        t = vi.type.tensor_type
        if vi.type.HasField("tensor_type") and t.HasField("shape"):
            ranks[vi.name] = len(t.shape.dim)
    for node in model.graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        for a in node.attribute:
            if a.type == onnx.AttributeProto.TENSOR and a.t.data_type not in ALLOWED_TYPES:
                return f"{node.op_type} attribute '{a.name}' has type {type_name(a.t.data_type)}"
            if a.type in (onnx.AttributeProto.STRING, onnx.AttributeProto.STRINGS) and node.op_type == "Constant":
                return "Constant of strings"
            if a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
                return f"{node.op_type} with a subgraph"
        if node.op_type == "Cast" and attrs.get("to") not in ALLOWED_TYPES:
            return f"Cast to {type_name(attrs.get('to'))}"
        if node.op_type in SPATIAL_2D_OPS:
            r = ranks.get(node.input[0])
            if r is not None and r not in (3, 4):
                return f"{node.op_type} on a {r - 2}-D spatial input (engine scope: 1-D NCW and 2-D NCHW)"
        if node.op_type == "Dropout" and (len(node.output) > 1 or len(node.input) > 2 or "training" in name):
            return "Dropout in training mode / with mask output (random, not inference)"
        if node.op_type == "BatchNormalization" and (len(node.output) > 1 or attrs.get("training_mode", 0)):
            return "BatchNormalization in training mode (running statistics outputs)"
    return None


def raise_old_opset(model):
    """Set opset_import to OPSET_MIN for a model generated below it; check() made sure every op's
    schema is unchanged between the declared opset and OPSET_MIN, so the model means the same."""
    changed = False
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx") and o.version < OPSET_MIN:
            o.version = OPSET_MIN
            changed = True
    if changed:
        if model.ir_version < 3:
            model.ir_version = 3
        onnx.checker.check_model(model)
    return changed


def outputs_match(model, inputs, outputs):
    """Whether onnx's ReferenceEvaluator reproduces the expected outputs (onnx runner tolerance)."""
    from onnx.reference import ReferenceEvaluator

    feeds = {vi.name: (numpy_helper.to_array(x) if isinstance(x, TensorProto) else x)
             for vi, x in zip(model.graph.input, inputs)}
    got = ReferenceEvaluator(model).run(None, feeds)
    for g, w in zip(got, outputs):
        w = numpy_helper.to_array(w) if isinstance(w, TensorProto) else np.asarray(w)
        g = np.asarray(g)
        if g.shape != w.shape:
            return False
        if w.dtype.kind in "biu":
            if not np.array_equal(g, w):
                return False
        elif not np.allclose(g, w, rtol=1e-3, atol=1e-7, equal_nan=True):
            return False
    return True


def old_opset_variant(case):
    """(name, model) of the case converted to the op versions in force at opset 18, or
    (None, reason)."""
    from onnx import version_converter

    model = case.model
    opset = default_opset(model)
    try:
        target = max([OPSET_MIN] + [onnx.defs.get_schema(n.op_type, OLD_OPSET, "").since_version
                                     for n in model.graph.node])
    except onnx.defs.SchemaError:
        return None, f"an op does not exist at opset {OLD_OPSET}"
    if target >= opset:
        return None, None
    for n in model.graph.node:
        # onnx's converter keeps attribute values the older version does not define, and its
        # reference evaluator runs them anyway: Pad's "wrap" mode is new in Pad-19.
        if n.op_type == "Pad" and any(a.name == "mode" and a.s == b"wrap" for a in n.attribute) and target < 19:
            return None, f"no opset-{target} variant: Pad mode 'wrap' is new in Pad-19"
    try:
        conv = version_converter.convert_version(model, target)
        onnx.checker.check_model(conv, full_check=True)
    except Exception as e:  # noqa: BLE001
        return None, f"no opset-{target} variant: {str(e).splitlines()[0][:140]}"
    try:
        ok = outputs_match(conv, *case.data_sets[0])
    except Exception as e:  # noqa: BLE001
        return None, f"no opset-{target} variant: reference evaluator fails: {str(e).splitlines()[0][:120]}"
    if not ok:
        return None, f"no opset-{target} variant: outputs differ at opset {target} (semantics changed)"
    conv.graph.name = f"{case.name}_opset{target}"
    return f"{case.name}_opset{target}", conv


def float32_variant(case):
    """(name, model, data_set) of a float64 case rewritten to float32 (graph values, initializers and
    data cast; expected outputs rounded to float32), for ops whose generators only make float64 cases;
    None when the case has Cast nodes or other element types, or onnx's ReferenceEvaluator does not
    reproduce the expected outputs in float32 (rtol 1e-3, atol 1e-7)."""
    m = onnx.ModelProto()
    m.CopyFrom(case.model)
    if any(n.op_type == "Cast" for n in m.graph.node) or "float64" in case.name:
        return None  # a Cast test's types are its point; *_float64 cases have a *_float32 twin
    changed = False
    for vi in list(m.graph.input) + list(m.graph.output) + list(m.graph.value_info):
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.elem_type == TensorProto.DOUBLE:
            vi.type.tensor_type.elem_type = TensorProto.FLOAT
            changed = True
    for i, init in enumerate(m.graph.initializer):
        if init.data_type == TensorProto.DOUBLE:
            m.graph.initializer[i].CopyFrom(numpy_helper.from_array(
                numpy_helper.to_array(init).astype(np.float32), init.name))
            changed = True
    if not changed or check(m, case.name) is not None:
        return None

    def f32(x):
        a = numpy_helper.to_array(x) if isinstance(x, TensorProto) else np.asarray(x)
        return a.astype(np.float32) if a.dtype == np.float64 else a

    inputs, outputs = case.data_sets[0]
    ds = ([f32(x) for x in inputs], [f32(x) for x in outputs])
    try:
        if not outputs_match(m, *ds):
            return None
    except Exception:  # noqa: BLE001
        return None
    m.graph.name = case.name + "_float32"
    return case.name + "_float32", m, ds


def write_case(out_dir, name, model, data_set):
    d = os.path.join(out_dir, name)
    os.makedirs(os.path.join(d, "test_data_set_0"))
    with open(os.path.join(d, "model.onnx"), "wb") as f:
        f.write(model.SerializeToString())
    inputs, outputs = data_set
    for kind, vals, vis in (("input", inputs, model.graph.input), ("output", outputs, model.graph.output)):
        for j, v in enumerate(vals):
            t = v if isinstance(v, TensorProto) else numpy_helper.from_array(np.asarray(v), vis[j].name)
            with open(os.path.join(d, "test_data_set_0", f"{kind}_{j}.pb"), "wb") as f:
                f.write(t.SerializeToString())
    return sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fns in os.walk(d) for f in fns)


def int_compute_tests(kept):
    """Kept tests that feed integer data to arithmetic (not just shape bookkeeping)."""
    shape_ops = {"Shape", "Gather", "Concat", "Reshape", "Unsqueeze", "Squeeze", "Slice", "Cast", "Constant",
                 "Identity", "Size", "Expand", "Tile", "Split", "Transpose", "Flatten", "ConstantOfShape",
                 "GatherElements", "GatherND", "ScatterND", "Where", "Range", "Equal", "Less", "Greater",
                 "LessOrEqual", "GreaterOrEqual", "TopK", "ArgMax", "ArgMin", "Trilu", "Pad", "DepthToSpace",
                 "SpaceToDepth"}
    out = []
    for t, model in kept:
        ints = {vi.name for vi in model.graph.input
                if vi.type.tensor_type.elem_type in (TensorProto.INT64, TensorProto.INT32)}
        for n in model.graph.node:
            if n.op_type not in shape_ops and any(i in ints for i in n.input):
                out.append(t)
                break
    return out


def main(argv=None):
    if onnx.__version__ != REQUIRED_ONNX:
        raise SystemExit(f"needs onnx {REQUIRED_ONNX} (found {onnx.__version__} under {sys.executable}): "
                         "see the docstring for the recipe")
    ap = argparse.ArgumentParser(description="Write ONNX backend node tests for the engine op scope.")
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "onnx_node"))
    args = ap.parse_args(argv)

    import warnings

    import onnx.backend.test.case.node as node_cases

    np.random.seed(SEED)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = sorted(node_cases.collect_testcases(), key=lambda c: c.name)

    kept, skipped = [], []  # kept: (name, model, data_set, ops)
    for c in cases:
        ops = sorted({n.op_type for n in c.model.graph.node})
        # Only cases that touch at least one scope op are of interest; the rest are unrelated ops.
        if not set(ops) & SCOPE_OPS:
            continue
        reason = check(c.model, c.name)
        if reason:
            skipped.append((c.name, ops, reason))
            continue
        model = onnx.ModelProto()
        model.CopyFrom(c.model)
        raised = raise_old_opset(model)
        kept.append((c.name, model, c.data_sets[0], ops, raised))
    names = {k[0] for k in kept} | {c.name for c in cases}
    variants, no_variant = [], []
    for c in cases:
        if c.name not in {k[0] for k in kept}:
            continue
        vname, vmodel = old_opset_variant(c)
        if vname is None:
            if vmodel:
                no_variant.append((c.name, vmodel))
            continue
        if vname in names:
            continue  # the package already generates a case of that name
        names.add(vname)
        variants.append((vname, vmodel, c.data_sets[0], sorted({n.op_type for n in vmodel.graph.node}), False))
    f32_variants = []
    for c in cases:
        v = float32_variant(c) if any(s[0] == c.name for s in skipped) else None
        if v and v[0] not in names:
            names.add(v[0])
            f32_variants.append((v[0], v[1], v[2], sorted({n.op_type for n in v[1].graph.node}), False))
    kept = sorted(kept + variants + f32_variants, key=lambda k: k[0])

    old_list = []
    if os.path.isfile(os.path.join(args.out, "LIST.txt")):
        with open(os.path.join(args.out, "LIST.txt")) as fh:
            old_list = [ln.strip() for ln in fh if ln.strip() and not ln.startswith("#")]
    if os.path.isdir(args.out):
        shutil.rmtree(args.out)
    os.makedirs(args.out)
    total = 0
    for t, model, ds, _, _ in kept:
        total += write_case(args.out, t, model, ds)
    with open(os.path.join(args.out, "LIST.txt"), "w") as fh:
        fh.write("".join(k[0] + "\n" for k in kept))

    per_op = collections.defaultdict(list)
    per_opset = collections.Counter()
    for t, model, _, ops, _ in kept:
        per_opset[default_opset(model) or 0] += 1  # 0: the model imports ai.onnx.ml only
        for o in ops:
            per_op[o].append(t)
    raised = [k[0] for k in kept if k[4]]
    kept_names = {k[0] for k in kept}
    gone = [t for t in old_list if t not in kept_names]
    lines = [
        "# ONNX backend node tests for the engine op scope",
        "",
        f"Generated from the onnx {REQUIRED_ONNX} Python package's node-test generators",
        "(`onnx.backend.test.case.node.collect_testcases()`, numpy seeded with "
        f"{SEED}) by `tools/export_onnx_node_tests.py`:",
        "",
        "    python3.11 -m venv .venv",
        f"    .venv/bin/pip install onnx=={REQUIRED_ONNX} numpy",
        "    ${PYTHON:-.venv/bin/python} tools/export_onnx_node_tests.py",
        "",
        "Each `<test>/` holds `model.onnx` and `test_data_set_0/input_<k>.pb`, `output_<k>.pb`",
        "(serialized `onnx.TensorProto`, in graph input/output order). `LIST.txt` names the",
        f"{len(kept)} kept tests ({total / 1024:.0f} KiB). Compare outputs with the tolerance of",
        "onnx's own runner (`onnx/backend/test/runner`: rtol 1e-3, atol 1e-7) unless a test needs more.",
        "",
        "Kept when: every node is in the scope op list (default domain); any opset the package",
        "generates (a case generated below opset 7 is kept when none of its ops changed up to opset 7;",
        f"its `opset_import` is then raised to 7: {', '.join(raised) if raised else 'none'});",
        "graph inputs, outputs, initializers, inferred intermediate values and tensor attributes are",
        "float32/int64/int32/bool (and Cast targets one of them); Conv/ConvTranspose/pooling are 2-D;",
        "Pad is mode constant; no training-mode Dropout/BatchNormalization.",
        "",
        f"`<test>_opset<V>` ({len(variants)} tests): a kept case above opset {OLD_OPSET} converted with",
        f"`onnx.version_converter` to V, the newest version of its ops at opset {OLD_OPSET} (>= 7), kept when",
        "`onnx.checker` (full check) accepts it and onnx's ReferenceEvaluator reproduces the expected",
        "outputs at V. They keep the coverage of the old-opset models the exporters still write (the",
        "previous fixtures came from onnx 1.13.1 at opsets <= 18).",
        "",
        f"`<test>_float32` ({len(f32_variants)} tests): a case the package only generates in float64",
        "(e.g. all of Einsum's, CumSum's and ReduceLogSumExp's) rewritten to float32: graph values,",
        "initializers and data cast, expected outputs rounded to float32; kept when onnx's",
        "ReferenceEvaluator reproduces them in float32 (rtol 1e-3, atol 1e-7).",
        "",
        "## Kept tests per opset",
        "",
    ]
    lines += [f"- opset {v}: {per_opset[v]}" if v else f"- ai.onnx.ml only: {per_opset[v]}" for v in sorted(per_opset)]
    lines += ["", "## Kept tests per op", ""]
    for o in sorted(per_op):
        lines.append(f"- **{o}** ({len(per_op[o])}): " + ", ".join(per_op[o]))
    missing = sorted(SCOPE_OPS - set(per_op))
    lines += ["", "Scope ops with no kept test: " + (", ".join(missing) if missing else "none") + "."]
    ints = int_compute_tests([(k[0], k[1]) for k in kept])
    lines += ["", "## Kept tests that do integer arithmetic (not only shape bookkeeping)", "",
              "These need int64/int32 kernels of the op itself: " + (", ".join(ints) if ints else "none") + "."]
    lines += ["", f"## Kept cases above opset {OLD_OPSET} without an old-opset variant, and why", ""]
    for t, reason in no_variant:
        lines.append(f"- `{t}`: {reason}")
    lines += ["", "## Skipped tests that involve a scope op, and why", ""]
    for t, ops, reason in skipped:
        lines.append(f"- `{t}` ({', '.join(ops)}): {reason}")
    with open(os.path.join(args.out, "README.md"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print(f"kept {len(kept)} tests ({len(variants)} old-opset variants, {len(f32_variants)} float32 variants), {total / 1024:.0f} KiB -> {args.out}; "
          f"skipped {len(skipped)} (reasons in README.md)")
    print("kept per opset: " + ", ".join(f"{v}:{per_opset[v]}" for v in sorted(per_opset)))
    if gone:
        print(f"tests of the previous LIST.txt not kept now ({len(gone)}): " + ", ".join(gone))
    if missing:
        print("scope ops with no kept test: " + ", ".join(missing))
    return 0


if __name__ == "__main__":
    sys.exit(main())
