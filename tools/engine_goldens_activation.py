#!/usr/bin/env python3
"""Golden op cases for engine/src/ops_activation.cpp and the version history of ops_elementwise.cpp.

Run from the repository root (CPU, a few seconds):

    ${PYTHON:-.venv/bin/python} tools/engine_goldens_activation.py [--out tests/fixtures/engine/ops_activation]

Writes tests/fixtures/engine/ops_activation/ in the format of tests/fixtures/engine/ops/
(tools/engine_goldens.py, whose input generators, torch environment and finite-difference check
this script reuses):

  <case>/model.onnx      a one-node ONNX model built with onnx.helper AT THE CASE'S OPSET (field
                         "opset" of cases.json): the newest version of each op and the older
                         versions whose semantics differ (legacy broadcast/axis attributes of
                         opset < 7 binary ops, Hardmax's coerced-2-D axis before 13, Selu-1's
                         constants, PRelu-6's per-channel slope, Mod-28's float fmod=0, Clip-1/6
                         attributes, Cast-1's string type names, ...); IR version the lowest that
                         opset allows, at least 8
  <case>/input_<k>.npy   k-th graph input (float32, int64 or bool)
  <case>/output_<k>.npy  k-th graph output from the reference named by "forward_reference":
                         "onnxruntime" (CPU, optimisations off) wherever onnxruntime runs the op
                         at that opset and type; "onnx-reference" (onnx.reference.ReferenceEvaluator)
                         where onnxruntime has no kernel (Mod-28, int64 Relu, bool Where, ...: the
                         script falls back automatically); "torch" for opset < 7 cases, which
                         no onnxruntime kernel or onnx reference op implements: there the output
                         is the float64 torch formula written below from the ONNX spec, rounded
                         to float32 (integer and bool outputs exact)
  <case>/seed_<k>.npy    N(0,1) seed for each float output
  <case>/grad_<k>.npy    d/d input_k of sum_j sum(seed_j * output_j), PyTorch autograd in float64
                         through the torch formula of the case (independent of onnxruntime)
  cases.json             [{"name", "op", "opset", "forward_reference", "inputs", "outputs", "grads",
                           "seeds", "input_names", "input_dtypes", "output_names", "note"}]

Checks: wherever the forward comes from onnxruntime or the onnx reference, the torch formula's
float64 forward must agree with it to 1e-5 relative + 1e-6 absolute (integer and bool outputs
exactly), or the script fails; every gradient is checked against float64 central finite
differences of the torch formula (engine_goldens.fd_check). Inputs are drawn with
numpy.random.default_rng(5000 + case index) and kept 0.1 away from kinks and jumps (0 for PRelu,
+-3 for HardSwish, alpha for ThresholdedRelu, +-lambd for Shrink; a/b 0.2 from integers for Mod).
"""
import os
import sys

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import TensorProto

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import engine_goldens as eg  # noqa: E402  (shared driver: model builder, case writer, main)
from engine_goldens import NP2ONNX, away_from, boolean, distinct, nonzero_signed, normal, ort_run  # noqa: E402
from engine_goldens import simple as node  # noqa: E402

NP2ONNX = dict(NP2ONNX)
NP2ONNX[np.dtype(np.uint8)] = TensorProto.UINT8
ONNX2NP = {TensorProto.FLOAT: np.float32, TensorProto.INT64: np.int64, TensorProto.BOOL: np.bool_,
           TensorProto.UINT8: np.uint8, TensorProto.INT32: np.int32}
CASES = []


def case(name, op, note=""):
    """Register a case builder: fn(rng) -> dict(nodes, inputs, inits, outputs, torch_fn, opset[, ref])."""
    return eg.register(CASES, name, op, note)


def i64(rng, *shape, low=-6, high=7):
    return rng.integers(low, high, shape).astype(np.int64)


def unary(op, fn, x, opset, grad=True, out_type=TensorProto.FLOAT, **attrs):
    return dict(nodes=node(op, ["x"], **attrs), inputs=[("x", x, grad)], outputs=[("y", out_type)],
                torch_fn=lambda e: [fn(e["x"])], opset=opset)


def binary(op, fn, a, b, opset, grads=(True, True), out_type=None, ref="onnxruntime", **attrs):
    out_type = out_type or NP2ONNX[a.dtype]
    return dict(nodes=node(op, ["a", "b"], **attrs), inputs=[("a", a, grads[0]), ("b", b, grads[1])],
                outputs=[("y", out_type)], torch_fn=lambda e: [fn(e["a"], e["b"])], opset=opset, ref=ref)


def legacy_b(b, a_rank, axis):
    """B of an opset < 7 binary op with broadcast=1 aligned at `axis` (trailing 1s), as torch broadcasting needs it."""
    return b.reshape(tuple(b.shape) + (1,) * (a_rank - axis - b.dim()))


# ---------------------------------------------------------------- new activations

@case("gelu_erf", "Gelu", "opset 20, approximate none: 0.5 x (1 + erf(x / sqrt 2))")
def _(rng):
    return unary("Gelu", lambda x: F.gelu(x), normal(rng, 3, 4, scale=1.5), 20)


@case("gelu_tanh", "Gelu", "opset 20, approximate tanh")
def _(rng):
    return unary("Gelu", lambda x: F.gelu(x, approximate="tanh"), normal(rng, 3, 4, scale=1.5), 20, approximate="tanh")


@case("reciprocal", "Reciprocal", "|x| in [0.5, 2]")
def _(rng):
    return unary("Reciprocal", torch.reciprocal, nonzero_signed(rng, 3, 4), 13)


@case("reciprocal_opset6", "Reciprocal", "opset 6")
def _(rng):
    return unary("Reciprocal", torch.reciprocal, nonzero_signed(rng, 2, 3), 6)


@case("hardswish", "HardSwish", "opset 14, x in [-5, 5] at least 0.1 from the kinks -3, 3")
def _(rng):
    return unary("HardSwish", F.hardswish, away_from(rng, (3, 5), [-3.0, 3.0], 0.1, -5, 5), 14)


@case("hardswish_opset22", "HardSwish", "opset 22")
def _(rng):
    return unary("HardSwish", F.hardswish, away_from(rng, (2, 4), [-3.0, 3.0], 0.1, -5, 5), 22)


@case("mish", "Mish", "opset 18: x tanh(softplus x)")
def _(rng):
    return unary("Mish", F.mish, normal(rng, 3, 4, scale=2.0), 18)


@case("selu_opset6_default", "Selu", "opset 6 defaults alpha 1.67326319, gamma 1.05070102")
def _(rng):
    return unary("Selu", torch.selu, away_from(rng, (3, 4), [0.0], 0.1), 6)


@case("selu_opset1_default", "Selu", "opset 1: the schema's shorter defaults alpha 1.6732, gamma 1.0507; onnxruntime "
      "has no Selu-1 kernel, forward from the torch formula",)
def _(rng):
    a, g = float(np.float32(1.6732)), float(np.float32(1.0507))
    spec = unary("Selu", lambda x: g * torch.where(x > 0, x, a * (torch.exp(x) - 1)),
                 away_from(rng, (3, 4), [0.0], 0.1), 1)
    spec["ref"] = "torch"
    return spec


@case("selu_attrs", "Selu", "opset 22, alpha 2, gamma 3")
def _(rng):
    return unary("Selu", lambda x: 3.0 * torch.where(x > 0, x, 2.0 * (torch.exp(x) - 1)),
                 away_from(rng, (3, 4), [0.0], 0.1), 22, alpha=2.0, gamma=3.0)


@case("celu_alpha2", "Celu", "opset 12, alpha 2")
def _(rng):
    return unary("Celu", lambda x: F.celu(x, alpha=2.0), away_from(rng, (3, 4), [0.0], 0.1), 12, alpha=2.0)


@case("celu_default", "Celu", "opset 12, alpha 1")
def _(rng):
    return unary("Celu", F.celu, away_from(rng, (2, 5), [0.0], 0.1), 12)


@case("thresholdedrelu", "ThresholdedRelu", "opset 10, alpha 0.5, x at least 0.1 from 0.5")
def _(rng):
    return unary("ThresholdedRelu", lambda x: torch.where(x > 0.5, x, torch.zeros_like(x)),
                 away_from(rng, (3, 4), [0.5], 0.1), 10, alpha=0.5)


@case("softsign", "Softsign", "opset 1")
def _(rng):
    return unary("Softsign", F.softsign, normal(rng, 3, 4, scale=2.0), 1)


@case("cos", "Cos", "opset 7")
def _(rng):
    return unary("Cos", torch.cos, normal(rng, 3, 4, scale=2.0), 7)


@case("sin", "Sin", "opset 22")
def _(rng):
    return unary("Sin", torch.sin, normal(rng, 3, 4, scale=2.0), 22)


@case("tan", "Tan", "x in [-1.2, 1.2]")
def _(rng):
    return unary("Tan", torch.tan, rng.uniform(-1.2, 1.2, (3, 4)).astype(np.float32), 7)


@case("atan", "Atan")
def _(rng):
    return unary("Atan", torch.atan, normal(rng, 3, 4, scale=2.0), 7)


@case("asin", "Asin", "x in [-0.7, 0.7]")
def _(rng):
    return unary("Asin", torch.asin, rng.uniform(-0.7, 0.7, (3, 4)).astype(np.float32), 7)


@case("acos", "Acos", "x in [-0.7, 0.7]")
def _(rng):
    return unary("Acos", torch.acos, rng.uniform(-0.7, 0.7, (3, 4)).astype(np.float32), 22)


@case("sinh", "Sinh")
def _(rng):
    return unary("Sinh", torch.sinh, normal(rng, 3, 4), 9)


@case("cosh", "Cosh")
def _(rng):
    return unary("Cosh", torch.cosh, normal(rng, 3, 4), 9)


@case("asinh", "Asinh")
def _(rng):
    return unary("Asinh", torch.asinh, normal(rng, 3, 4, scale=2.0), 9)


@case("acosh", "Acosh", "x in [1.2, 4]")
def _(rng):
    return unary("Acosh", torch.acosh, rng.uniform(1.2, 4.0, (3, 4)).astype(np.float32), 9)


@case("atanh", "Atanh", "x in [-0.7, 0.7]")
def _(rng):
    return unary("Atanh", torch.atanh, rng.uniform(-0.7, 0.7, (3, 4)).astype(np.float32), 22)


@case("floor", "Floor", "no gradient flows (piecewise constant)")
def _(rng):
    return unary("Floor", torch.floor, normal(rng, 3, 4, scale=3.0), 13, grad=False)


@case("ceil_opset6", "Ceil", "opset 6")
def _(rng):
    return unary("Ceil", torch.ceil, normal(rng, 3, 4, scale=3.0), 6, grad=False)


@case("round_half_even", "Round", "opset 11: halves to even, negative halves, integral values")
def _(rng):
    x = np.array([[0.5, 1.5, 2.5, -0.5, -1.5, -2.5], [0.49, 2.51, -3.0, 7.0, -0.51, 1e6 + 0.5]], np.float32)
    return unary("Round", torch.round, x, 11, grad=False)


@case("shrink", "Shrink", "opset 9, lambd 0.5, bias 0.2, x at least 0.1 from +-0.5")
def _(rng):
    return unary("Shrink", lambda x: torch.where(x < -0.5, x + 0.2, torch.where(x > 0.5, x - 0.2, torch.zeros_like(x))),
                 away_from(rng, (3, 5), [-0.5, 0.5], 0.1), 9, lambd=0.5, bias=0.2)


@case("shrink_default", "Shrink", "defaults lambd 0.5, bias 0 (hardshrink)")
def _(rng):
    return unary("Shrink", lambda x: F.hardshrink(x, 0.5), away_from(rng, (2, 4), [-0.5, 0.5], 0.1), 9)


@case("shrink_int64", "Shrink", "int64 input, lambd 1.5, bias 1")
def _(rng):
    return unary("Shrink", lambda x: torch.where(x < -1.5, x + 1, torch.where(x > 1.5, x - 1, torch.zeros_like(x))),
                 i64(rng, 3, 4), 9, out_type=TensorProto.INT64, lambd=1.5, bias=1.0)


@case("isnan", "IsNaN", "opset 13, bool output")
def _(rng):
    x = np.array([[1.0, np.nan, -np.inf], [np.inf, 0.0, np.nan]], np.float32)
    return unary("IsNaN", torch.isnan, x, 13, grad=False, out_type=TensorProto.BOOL)


@case("isinf", "IsInf", "opset 10, both signs")
def _(rng):
    x = np.array([[1.0, np.nan, -np.inf], [np.inf, 0.0, -3.0]], np.float32)
    return unary("IsInf", torch.isinf, x, 10, grad=False, out_type=TensorProto.BOOL)


@case("isinf_positive_only", "IsInf", "opset 20, detect_negative 0")
def _(rng):
    x = np.array([[1.0, np.nan, -np.inf], [np.inf, 0.0, -3.0]], np.float32)
    return unary("IsInf", torch.isposinf, x, 20, grad=False, out_type=TensorProto.BOOL, detect_negative=0)


# ---------------------------------------------------------------- Hardmax

def hardmax_torch(x, axis):
    idx = x.argmax(dim=axis, keepdim=True)  # first maximum
    return torch.zeros_like(x).scatter_(axis, idx, 1.0)


def hardmax_coerced(x, axis):
    s = x.shape
    return hardmax_torch(x.reshape(int(np.prod(s[:axis])), -1), 1).reshape(s)


@case("hardmax_axis_last", "Hardmax", "opset 13 default axis -1, [2,3,4], no gradient")
def _(rng):
    return unary("Hardmax", lambda x: hardmax_torch(x, -1), distinct(rng, 2, 3, 4), 13, grad=False)


@case("hardmax_axis1", "Hardmax", "opset 13 axis 1: along dim 1 only")
def _(rng):
    return unary("Hardmax", lambda x: hardmax_torch(x, 1), distinct(rng, 2, 3, 4), 13, grad=False, axis=1)


@case("hardmax_opset11_axis1", "Hardmax", "opset 11 axis 1 (default): input coerced to [2, 12], one 1 per row")
def _(rng):
    return unary("Hardmax", lambda x: hardmax_coerced(x, 1), distinct(rng, 2, 3, 4), 11, grad=False)


@case("hardmax_opset11_axis2", "Hardmax", "opset 11 axis 2: coerced to [6, 4]")
def _(rng):
    return unary("Hardmax", lambda x: hardmax_coerced(x, 2), distinct(rng, 2, 3, 4), 11, grad=False, axis=2)


@case("hardmax_ties", "Hardmax", "opset 13, ties: the first maximum gets the 1")
def _(rng):
    x = np.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0]], np.float32)
    return unary("Hardmax", lambda x: hardmax_torch(x, -1), x, 13, grad=False)


# ---------------------------------------------------------------- Mod, PRelu, Mean

def mod_operands(rng, shape_a, shape_b):
    """Float operands whose quotient a/b stays 0.2 away from integers (the jumps of Mod), with |b| >= 1 and
    |a| ~ 1 so that a finite-difference step of 1e-2 * N(0,1) in b moves a/b by well under 0.2."""
    b = nonzero_signed(rng, *shape_b, low=1.0, high=2.0)
    a = normal(rng, *shape_a, scale=1.5)
    bb = np.broadcast_to(b, np.broadcast_shapes(shape_a, shape_b))
    for _ in range(200):
        q = np.broadcast_to(a, bb.shape) / bb
        bad = np.abs(q - np.round(q)) < 0.2
        if not bad.any():
            break
        a = normal(rng, *shape_a, scale=1.5)
    else:
        raise SystemExit("mod_operands: no draw keeps a/b away from integers")
    return a, b


@case("mod_fmod_float", "Mod", "opset 13, fmod 1 on float: C fmod, sign of the dividend; [2,3] % [3]")
def _(rng):
    a, b = mod_operands(rng, (2, 3), (3,))
    return binary("Mod", torch.fmod, a, b, 13, fmod=1)


@case("mod_float_fmod0_opset28", "Mod", "opset 28, fmod 0 on float: Python %, sign of the divisor (onnxruntime "
      "has no Mod-28 kernel: forward from onnx.reference)")
def _(rng):
    a, b = mod_operands(rng, (2, 3), (2, 3))
    return binary("Mod", torch.remainder, a, b, 28, ref="onnx-reference")


@case("mod_int_python", "Mod", "opset 13, int64 fmod 0: Python %, mixed signs, broadcast [2,3] % [3]")
def _(rng):
    a = np.array([[-7, 7, -7], [5, -5, 0]], np.int64)
    b = np.array([3, -3, -4], np.int64)
    return binary("Mod", torch.remainder, a, b, 13, grads=(False, False))


@case("mod_int_fmod", "Mod", "opset 10, int64 fmod 1: C %, sign of the dividend")
def _(rng):
    a = np.array([[-7, 7, -7], [5, -5, 9]], np.int64)
    b = np.array([[3, -3, -4], [2, 2, -5]], np.int64)
    return binary("Mod", torch.fmod, a, b, 10, grads=(False, False), fmod=1)


def prelu_ref(x, s):
    return torch.where(x < 0, s * x, x)


@case("prelu_channel", "PRelu", "opset 16, slope [C,1,1] on [N,C,H,W] (torch nn.PReLU(C) export)")
def _(rng):
    return binary("PRelu", prelu_ref, away_from(rng, (2, 3, 2, 2), [0.0], 0.1), normal(rng, 3, 1, 1, scale=0.3), 16)


@case("prelu_shared", "PRelu", "opset 9, one shared slope [1]")
def _(rng):
    return binary("PRelu", prelu_ref, away_from(rng, (2, 5), [0.0], 0.1), np.array([0.25], np.float32), 9)


@case("prelu_trailing", "PRelu", "opset 7, slope [4] broadcast along the last dim of [2,3,4]")
def _(rng):
    return binary("PRelu", prelu_ref, away_from(rng, (2, 3, 4), [0.0], 0.1), normal(rng, 4, scale=0.3), 7)


@case("prelu_opset6_per_channel", "PRelu", "opset 6 (Caffe2 semantics): 1-D slope [C] applies along dim 1 of "
      "[N,C,H]; no onnxruntime kernel before 7, forward from the torch formula")
def _(rng):
    spec = binary("PRelu", lambda x, s: prelu_ref(x, s.reshape(-1, 1)), away_from(rng, (2, 3, 2), [0.0], 0.1),
                  normal(rng, 3, scale=0.3), 6, ref="torch")
    return spec


@case("mean_broadcast", "Mean", "opset 13, three inputs [2,3], [3], [2,1]")
def _(rng):
    return dict(nodes=node("Mean", ["a", "b", "c"]),
                inputs=[("a", normal(rng, 2, 3), True), ("b", normal(rng, 3), True), ("c", normal(rng, 2, 1), True)],
                outputs=[("y", TensorProto.FLOAT)], torch_fn=lambda e: [(e["a"] + e["b"] + e["c"]) / 3], opset=13)


@case("mean_opset6_same_shape", "Mean", "opset 6: no broadcasting, two inputs of one shape")
def _(rng):
    return dict(nodes=node("Mean", ["a", "b"]), inputs=[("a", normal(rng, 2, 3), True), ("b", normal(rng, 2, 3), True)],
                outputs=[("y", TensorProto.FLOAT)], torch_fn=lambda e: [(e["a"] + e["b"]) / 2], opset=6)


# ---------------------------------------------------------------- comparisons, logic, Where

def cmp_case(op, fn, a, b, opset, **kw):
    return binary(op, fn, a, b, opset, grads=(False, False), out_type=TensorProto.BOOL, **kw)


def with_ties(rng, shape_a, b):
    """Float A with some elements equal to B's (broadcast), so Equal/LessOrEqual see ties."""
    a = np.round(normal(rng, *shape_a), 0).astype(np.float32)
    return a, np.round(b, 0).astype(np.float32)


@case("equal_float_broadcast", "Equal", "opset 19, float [2,3] == [3] with ties")
def _(rng):
    a, b = with_ties(rng, (2, 3), normal(rng, 3))
    return cmp_case("Equal", torch.eq, a, b, 19)


@case("equal_int64", "Equal", "opset 13, int64")
def _(rng):
    return cmp_case("Equal", torch.eq, i64(rng, 3, 4, low=-2, high=3), i64(rng, 3, 4, low=-2, high=3), 13)


@case("equal_bool", "Equal", "opset 11, bool operands")
def _(rng):
    return cmp_case("Equal", torch.eq, boolean(rng, 2, 3), boolean(rng, 2, 3), 11)


@case("less_float", "Less", "opset 13, [2,1,3] < [4,1]")
def _(rng):
    return cmp_case("Less", torch.lt, normal(rng, 2, 1, 3), normal(rng, 4, 1), 13)


@case("less_opset7", "Less", "opset 7, numpy broadcasting [3,4] < [4]")
def _(rng):
    return cmp_case("Less", torch.lt, normal(rng, 3, 4), normal(rng, 4), 7)


@case("greater_int64", "Greater", "opset 13, int64 [3,4] > [] (0-d)")
def _(rng):
    return cmp_case("Greater", torch.gt, i64(rng, 3, 4), np.array(1, np.int64), 13)


@case("greater_opset1_axis", "Greater", "opset 1 legacy broadcast=1, axis=0: B [2] aligned with A's dim 0; no "
      "onnxruntime kernel before 7, forward from the torch formula")
def _(rng):
    return cmp_case("Greater", lambda a, b: a > legacy_b(b, 3, 0), normal(rng, 2, 3, 2), normal(rng, 2), 1,
                    ref="torch", broadcast=1, axis=0)


@case("less_or_equal", "LessOrEqual", "opset 16, float with ties, [2,3] <= [2,1]")
def _(rng):
    a, b = with_ties(rng, (2, 3), normal(rng, 2, 1))
    return cmp_case("LessOrEqual", torch.le, a, b, 16)


@case("greater_or_equal_int64", "GreaterOrEqual", "opset 12, int64")
def _(rng):
    return cmp_case("GreaterOrEqual", torch.ge, i64(rng, 2, 4, low=-2, high=3), i64(rng, 4, low=-2, high=3), 12)


@case("not", "Not", "opset 1")
def _(rng):
    return unary("Not", torch.logical_not, boolean(rng, 2, 3, 2), 1, grad=False, out_type=TensorProto.BOOL)


@case("and_broadcast", "And", "opset 7, [2,3,4] and [3,1]")
def _(rng):
    return cmp_case("And", torch.logical_and, boolean(rng, 2, 3, 4), boolean(rng, 3, 1), 7)


@case("or_broadcast", "Or", "opset 7, [3,1] or [1,4]")
def _(rng):
    return cmp_case("Or", torch.logical_or, boolean(rng, 3, 1), boolean(rng, 1, 4), 7)


@case("xor", "Xor", "opset 7")
def _(rng):
    return cmp_case("Xor", torch.logical_xor, boolean(rng, 3, 4), boolean(rng, 3, 4), 7)


@case("and_opset1_axis", "And", "opset 1 legacy broadcast=1, axis=1: B [3] on A [2,3,2]; forward from the torch "
      "formula (no onnxruntime kernel before 7)")
def _(rng):
    return cmp_case("And", lambda a, b: torch.logical_and(a, legacy_b(b, 3, 1)), boolean(rng, 2, 3, 2),
                    boolean(rng, 3), 1, ref="torch", broadcast=1, axis=1)


@case("where_broadcast3", "Where", "opset 16, condition [2,1,4], X [3,1], Y [4]: all three broadcast to [2,3,4]")
def _(rng):
    return dict(nodes=node("Where", ["c", "x", "y"], ["out"]),
                inputs=[("c", boolean(rng, 2, 1, 4), False), ("x", normal(rng, 3, 1), True), ("y", normal(rng, 4), True)],
                outputs=[("out", TensorProto.FLOAT)], torch_fn=lambda e: [torch.where(e["c"], e["x"], e["y"])], opset=16)


@case("where_mask_fill", "Where", "opset 9, transformer mask: condition [1,1,3,3], X scalar -100, Y [2,2,3,3]")
def _(rng):
    return dict(nodes=node("Where", ["c", "x", "y"], ["out"]),
                inputs=[("c", np.triu(np.ones((3, 3), bool), 1)[None, None], False),
                        ("x", np.array(-100.0, np.float32), True), ("y", normal(rng, 2, 2, 3, 3), True)],
                outputs=[("out", TensorProto.FLOAT)], torch_fn=lambda e: [torch.where(e["c"], e["x"], e["y"])], opset=9)


@case("where_int64", "Where", "opset 16, int64 X and Y")
def _(rng):
    return dict(nodes=node("Where", ["c", "x", "y"], ["out"]),
                inputs=[("c", boolean(rng, 2, 3), False), ("x", i64(rng, 2, 3), False), ("y", i64(rng, 3), False)],
                outputs=[("out", TensorProto.INT64)], torch_fn=lambda e: [torch.where(e["c"], e["x"], e["y"])], opset=16)


@case("where_bool", "Where", "opset 16, bool X and Y (onnxruntime has no bool Where kernel: forward from onnx.reference)")
def _(rng):
    return dict(nodes=node("Where", ["c", "x", "y"], ["out"]),
                inputs=[("c", boolean(rng, 2, 3), False), ("x", boolean(rng, 2, 3), False), ("y", boolean(rng, 1), False)],
                outputs=[("out", TensorProto.BOOL)], torch_fn=lambda e: [torch.where(e["c"], e["x"], e["y"])], opset=16,
                ref="onnx-reference")


# ---------------------------------------------------------------- older versions of ops_elementwise.cpp

LEGACY = "no onnxruntime kernel before opset 7: forward from the torch formula"


@case("add_opset6_axis", "Add", f"opset 6 broadcast=1 axis=1: B [3,4] on A [2,3,4,5]; {LEGACY}")
def _(rng):
    return binary("Add", lambda a, b: a + legacy_b(b, 4, 1), normal(rng, 2, 3, 4, 5), normal(rng, 3, 4), 6,
                  ref="torch", broadcast=1, axis=1)


@case("add_opset1_suffix", "Add", f"opset 1 broadcast=1, no axis: B [5] suffix-aligned; consumed_inputs given; {LEGACY}")
def _(rng):
    return binary("Add", lambda a, b: a + b, normal(rng, 2, 3, 5), normal(rng, 5), 1, ref="torch", broadcast=1,
                  consumed_inputs=[0, 0])


@case("sub_opset6_scalar", "Sub", f"opset 6 broadcast=1, B one element [1]; {LEGACY}")
def _(rng):
    return binary("Sub", lambda a, b: a - b.reshape(()), normal(rng, 2, 3), normal(rng, 1), 6, ref="torch", broadcast=1)


@case("mul_opset6_same_shape", "Mul", f"opset 6 broadcast=0, equal shapes; {LEGACY}")
def _(rng):
    return binary("Mul", lambda a, b: a * b, normal(rng, 2, 3), normal(rng, 2, 3), 6, ref="torch")


@case("div_opset6_axis0", "Div", f"opset 6 broadcast=1 axis=0: B [2] on A [2,3]; {LEGACY}")
def _(rng):
    return binary("Div", lambda a, b: a / legacy_b(b, 2, 0), normal(rng, 2, 3), nonzero_signed(rng, 2), 6,
                  ref="torch", broadcast=1, axis=0)


@case("pow_opset1_axis", "Pow", f"opset 1 broadcast=1 axis=1: exponent [3] on base [2,3,2]; {LEGACY}")
def _(rng):
    return binary("Pow", lambda a, b: a ** legacy_b(b, 3, 1), rng.uniform(0.5, 2.0, (2, 3, 2)).astype(np.float32),
                  normal(rng, 3), 1, ref="torch", broadcast=1, axis=1)


@case("pow_float_int_exponent", "Pow", "opset 15, float base, int64 exponent")
def _(rng):
    return binary("Pow", lambda a, b: a ** b.double(), nonzero_signed(rng, 2, 3), np.array([2, -1, 3], np.int64), 15,
                  grads=(True, False))


@case("pow_int_int", "Pow", "opset 15, int64 base and exponent")
def _(rng):
    return binary("Pow", lambda a, b: a ** b, i64(rng, 2, 3, low=-4, high=5), np.array([0, 1, 3], np.int64), 15,
                  grads=(False, False))


@case("div_int64_trunc", "Div", "opset 14, int64 division truncates towards zero")
def _(rng):
    a = np.array([[7, -7, 7], [-7, 0, 9]], np.int64)
    b = np.array([[2, 2, -2], [-2, 3, 4]], np.int64)
    return binary("Div", lambda a, b: torch.div(a, b, rounding_mode="trunc"), a, b, 14, grads=(False, False))


@case("add_int64", "Add", "opset 14, int64 broadcast")
def _(rng):
    return binary("Add", torch.add, i64(rng, 2, 3), i64(rng, 3), 14, grads=(False, False))


@case("sum_opset6_same_shape", "Sum", "opset 6: no broadcasting, three inputs")
def _(rng):
    return dict(nodes=node("Sum", ["a", "b", "c"]),
                inputs=[("a", normal(rng, 2, 3), True), ("b", normal(rng, 2, 3), True), ("c", normal(rng, 2, 3), True)],
                outputs=[("y", TensorProto.FLOAT)], torch_fn=lambda e: [e["a"] + e["b"] + e["c"]], opset=6)


@case("max_opset6_same_shape", "Max", "opset 6, distinct values")
def _(rng):
    v = distinct(rng, 2, 2, 3)
    return dict(nodes=node("Max", ["a", "b"]), inputs=[("a", v[0], True), ("b", v[1], True)],
                outputs=[("y", TensorProto.FLOAT)], torch_fn=lambda e: [torch.maximum(e["a"], e["b"])], opset=6)


@case("min_int64_broadcast", "Min", "opset 13, int64 [2,3] and [3]")
def _(rng):
    return dict(nodes=node("Min", ["a", "b"]), inputs=[("a", i64(rng, 2, 3), False), ("b", i64(rng, 3), False)],
                outputs=[("y", TensorProto.INT64)], torch_fn=lambda e: [torch.minimum(e["a"], e["b"])], opset=13)


@case("relu_int64", "Relu", "opset 14, int64")
def _(rng):
    return unary("Relu", torch.relu, i64(rng, 3, 4), 14, out_type=TensorProto.INT64)


@case("relu_opset1", "Relu", f"opset 1 with consumed_inputs; {LEGACY}")
def _(rng):
    spec = unary("Relu", torch.relu, away_from(rng, (2, 4), [0.0], 0.1), 1, consumed_inputs=[0])
    spec["ref"] = "torch"
    return spec


@case("neg_int64", "Neg", "opset 13, int64")
def _(rng):
    return unary("Neg", torch.neg, i64(rng, 3, 4), 13, out_type=TensorProto.INT64)


@case("abs_int64", "Abs", "opset 13, int64")
def _(rng):
    return unary("Abs", torch.abs, i64(rng, 3, 4), 13, out_type=TensorProto.INT64)


@case("sign_int64", "Sign", "opset 13, int64")
def _(rng):
    return unary("Sign", torch.sign, i64(rng, 3, 4, low=-2, high=3), 13, out_type=TensorProto.INT64)


@case("leakyrelu_opset6", "LeakyRelu", "opset 6 alpha 0.1")
def _(rng):
    return unary("LeakyRelu", lambda x: F.leaky_relu(x, 0.1), away_from(rng, (3, 4), [0.0], 0.1), 6, alpha=0.1)


@case("elu_opset6", "Elu", "opset 6 alpha 0.5")
def _(rng):
    return unary("Elu", lambda x: F.elu(x, 0.5), away_from(rng, (3, 4), [0.0], 0.1), 6, alpha=0.5)


@case("hardsigmoid_opset6", "HardSigmoid", "opset 6 alpha 0.25 beta 0.4, away from the kinks")
def _(rng):
    return unary("HardSigmoid", lambda x: torch.clamp(0.25 * x + 0.4, 0, 1),
                 away_from(rng, (3, 4), [-1.6, 2.4], 0.1, -3, 3), 6, alpha=0.25, beta=0.4)


@case("sigmoid_opset6", "Sigmoid", "opset 6")
def _(rng):
    return unary("Sigmoid", torch.sigmoid, normal(rng, 3, 4, scale=2.0), 6)


@case("softplus_opset1", "Softplus", "opset 1")
def _(rng):
    return unary("Softplus", F.softplus, normal(rng, 3, 4, scale=2.0), 1)


@case("exp_opset6", "Exp", "opset 6")
def _(rng):
    return unary("Exp", torch.exp, normal(rng, 3, 4), 6)


@case("clip_opset6_attrs", "Clip", "opset 6 min -0.5 max 0.8 attributes, away from the bounds")
def _(rng):
    return unary("Clip", lambda x: torch.clamp(x, -0.5, 0.8), away_from(rng, (3, 4), [-0.5, 0.8], 0.1), 6,
                 min=-0.5, max=0.8)


@case("clip_opset1_min_only", "Clip", f"opset 1, min only (max unbounded); {LEGACY}")
def _(rng):
    spec = unary("Clip", lambda x: torch.clamp(x, min=-0.3), away_from(rng, (3, 4), [-0.3], 0.1), 1, min=-0.3)
    spec["ref"] = "torch"
    return spec


@case("clip_int64", "Clip", "opset 13, int64 input with int64 min/max initializers")
def _(rng):
    return dict(nodes=node("Clip", ["x", "lo", "hi"]), inputs=[("x", i64(rng, 3, 4), False)],
                inits={"lo": np.array(-2, np.int64), "hi": np.array(3, np.int64)},
                outputs=[("y", TensorProto.INT64)], torch_fn=lambda e: [torch.clamp(e["x"], -2, 3)], opset=13)


@case("cast_float_to_bool", "Cast", "opset 13, nonzero is true")
def _(rng):
    x = np.array([[0.0, -0.0, 0.5], [-2.0, 0.0, 1e-30]], np.float32)
    return unary("Cast", lambda x: x != 0, x, 13, grad=False, out_type=TensorProto.BOOL, to=TensorProto.BOOL)


@case("cast_bool_to_float", "Cast", "opset 19")
def _(rng):
    return unary("Cast", lambda x: x.double(), boolean(rng, 2, 3), 19, grad=False, to=TensorProto.FLOAT)


@case("cast_float_to_int32", "Cast", "opset 13, truncation towards zero")
def _(rng):
    x = np.array([[1.7, -1.7, 0.2], [-0.2, 100.9, -3.5]], np.float32)
    return unary("Cast", lambda x: x.trunc().to(torch.int32), x, 13, grad=False, out_type=TensorProto.INT32,
                 to=TensorProto.INT32)


@case("cast_int64_to_uint8", "Cast", "opset 13, int64 -> uint8 wraps modulo 256")
def _(rng):
    x = np.array([[0, 255, 256], [300, -1, -200]], np.int64)
    return unary("Cast", lambda x: x.to(torch.uint8), x, 13, grad=False, out_type=TensorProto.UINT8,
                 to=TensorProto.UINT8)


@case("cast_opset1_string_to", "Cast", f"opset 1: target named by string 'INT64'; {LEGACY}")
def _(rng):
    x = np.array([[1.7, -1.7, 0.2], [-0.2, 100.9, -3.5]], np.float32)
    spec = unary("Cast", lambda x: x.trunc().long(), x, 1, grad=False, out_type=TensorProto.INT64, to="INT64")
    spec["ref"] = "torch"
    return spec


@case("dropout_opset12_mask", "Dropout", "opset 12 inference: ratio input given, training_mode absent; output and "
      "all-true mask")
def _(rng):
    return dict(nodes=node("Dropout", ["x", "r"], ["y", "mask"]), inputs=[("x", normal(rng, 2, 3), True)],
                inits={"r": np.array(0.3, np.float32)},
                outputs=[("y", TensorProto.FLOAT), ("mask", TensorProto.BOOL)],
                torch_fn=lambda e: [e["x"] * 1.0, torch.ones(e["x"].shape, dtype=torch.bool)], opset=12)


# ---------------------------------------------------------------- writer

def reference_forward(model_path, spec, feeds, touts):
    """Outputs from the case's reference; onnxruntime falls back to onnx.reference where it has no kernel
    for the op at that opset and type (the case's "ref" is updated, so cases.json records the source)."""
    ref = spec.get("ref", "onnxruntime")
    if ref == "onnxruntime":
        try:
            return ort_run(model_path, feeds)
        except Exception as e:  # onnxruntime's NotImplemented / Fail (no kernel, opset too new)
            if "NOT_IMPLEMENTED" not in str(e) and "not supported" not in str(e).lower():
                raise
            spec["ref"] = ref = "onnx-reference"
    if ref == "onnx-reference":
        from onnx.reference import ReferenceEvaluator
        return ReferenceEvaluator(onnx.load(model_path)).run(None, feeds)
    if ref == "torch":
        return [np.ascontiguousarray(t.detach().numpy().astype(ONNX2NP[ty]))
                for t, (_, ty) in zip(touts, spec["outputs"])]
    raise SystemExit(f"unknown reference {ref}")


def write_case(out_dir, idx, name, op, note, fn):
    return eg.write_case(out_dir, idx, name, op, note, fn, opset=None, seed_base=5000, forward=reference_forward,
                         source="reference", equal_nan=True,
                         model_args=dict(producer="mlaudit-engine-goldens-activation", ir_version=eg.min_ir_version,
                                         np2onnx=NP2ONNX),
                         meta=lambda spec: {"opset": spec["opset"],
                                            "forward_reference": spec.get("ref", "onnxruntime")})


def main(argv=None):
    return eg.part_main(argv, "Write the activation/logic op golden fixtures.", "ops_activation", CASES, write_case,
                        readme=("Activation, logic and comparison op fixtures", "engine_goldens_activation.py", __doc__))


if __name__ == "__main__":
    sys.exit(main())
