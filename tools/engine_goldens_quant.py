#!/usr/bin/env python3
"""Golden op cases for engine/src/ops_quant.cpp, Cast's float16/bfloat16/narrow-integer targets
(ops_elementwise.cpp) and the loader's narrow element types (onnx_loader.cpp).

Run from the repository root (CPU, a few seconds):

    ${PYTHON:-.venv/bin/python} tools/engine_goldens_quant.py [--out tests/fixtures/engine/ops_quant]

Writes tests/fixtures/engine/ops_quant/ in the format of tests/fixtures/engine/ops/
(tools/engine_goldens.py's shared driver):

  <case>/model.onnx      one-node ONNX model at the case's opset (field "opset"); quantized
                         tensors are uint8/int8/int16/uint16/int32 graph inputs or initializers,
                         float16 values initializers or graph inputs, as onnxruntime's
                         quantization tools and fp16 converters write them
  <case>/input_<k>.npy   k-th graph input (in its ONNX element type)
  <case>/output_<k>.npy  k-th output from "forward_reference": "onnxruntime" (CPU, optimisations
                         off); "onnx-reference" (onnx.reference.ReferenceEvaluator) where
                         onnxruntime has no kernel at that opset (the script falls back
                         automatically); "onnx-node-test" for the onnx package's own node tests of
                         these ops (expected outputs of onnx.backend.test, copied verbatim)
  <case>/seed_<k>.npy, grad_<k>.npy   for float outputs with float inputs that want a gradient
                         (ScatterElements data/updates with reduction none/add, Cast to float16):
                         PyTorch autograd in float64 through the torch formula of the case
  cases.json             as tools/engine_goldens.py

and <out>/node_tests/ (same format): the onnx package's own node tests
(onnx.backend.test) of these ops whose values the engine can load (no float8/float4/int4/int2),
single-node models with their expected outputs verbatim (float16/bfloat16/float64 widened to
float32, integers to int64: exact), the float outputs listed first; <out>/models/: quantized and
float16 torch models end to end (write_model_cases below; cases.json adds "rtol", "atol", "ops").

Checks: the torch formula written below from the ONNX spec (and onnxruntime's float32
arithmetic: x / scale in float32, round half to even, the requantization multiplier
a_scale * b_scale / y_scale in float32) must reproduce the reference exactly for integer outputs
and to 1e-5 relative + 1e-6 absolute for float outputs, or the script fails.
Inputs come from numpy.random.default_rng(7000 + case index).
"""
import os
import sys

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import engine_goldens as eg  # noqa: E402  (shared driver: model builder, case writer, main)
from engine_goldens import NP2ONNX, normal, ort_run  # noqa: E402
from engine_goldens import simple as node  # noqa: E402

NP2ONNX = dict(NP2ONNX)
for _np, _onnx in [(np.uint8, TensorProto.UINT8), (np.int8, TensorProto.INT8), (np.int16, TensorProto.INT16),
                   (np.uint16, TensorProto.UINT16), (np.int32, TensorProto.INT32), (np.uint32, TensorProto.UINT32),
                   (np.float16, TensorProto.FLOAT16)]:
    NP2ONNX[np.dtype(_np)] = _onnx
ONNX2NP = {TensorProto.FLOAT: np.float32, TensorProto.INT64: np.int64, TensorProto.BOOL: np.bool_,
           TensorProto.UINT8: np.uint8, TensorProto.INT8: np.int8, TensorProto.INT32: np.int32,
           TensorProto.INT16: np.int16, TensorProto.UINT16: np.uint16, TensorProto.FLOAT16: np.float16}
RANGES = {np.uint8: (0, 255), np.int8: (-128, 127), np.int16: (-32768, 32767), np.uint16: (0, 65535)}
CASES = []


def case(name, op, note=""):
    """Register a case builder: fn(rng) -> dict(nodes, inputs, inits, outputs, torch_fn, opset[, ref])."""
    return eg.register(CASES, name, op, note)


def f32(t):
    return t.detach().to(torch.float32)


def quantize_t(x, scale, zp, qtype):
    """ONNX QuantizeLinear as onnxruntime computes it: float32 x / scale, round half to even, + zp, saturate."""
    lo, hi = RANGES[qtype]
    q = torch.round(f32(x) / f32(scale)).double() + zp.double()
    return q.clamp(lo, hi).to(torch.int64)


def qrange_fix(a, qtype):
    return np.asarray(a).astype(qtype)


# ---------------------------------------------------------------- QuantizeLinear

def quantize_case(x, scale, zp, qtype, opset, axis=None, block=None, zp_as_input=False, **attrs):
    inits = {"scale": scale}
    inputs = [("x", x, False)]
    names = ["x", "scale"]
    if zp is not None:
        names.append("zp")
        if zp_as_input:
            inputs.append(("zp", zp, False))
        else:
            inits["zp"] = zp
    if axis is not None:
        attrs["axis"] = axis
    if block is not None:
        attrs["block_size"] = block

    def fn(e):
        s, z = e["scale"], e["zp"] if zp is not None else torch.zeros((), dtype=torch.int64)
        xs = e["x"]
        if s.dim() > 0 and s.numel() >= 1:
            ax = (axis if axis is not None else 1) % xs.dim()
            if block:
                s = s.repeat_interleave(block, dim=ax).narrow(ax, 0, xs.shape[ax])
                z = z.repeat_interleave(block, dim=ax).narrow(ax, 0, xs.shape[ax]) if z.dim() else z
            elif s.numel() > 1 or xs.dim() > ax:
                shape = [1] * xs.dim()
                shape[ax] = -1
                s = s.reshape(shape)
                z = z.reshape(shape) if z.dim() else z
        return [quantize_t(xs, s, z.to(torch.int64), qtype)]
    return dict(nodes=node("QuantizeLinear", names, **attrs), inputs=inputs, inits=inits,
                outputs=[("y", NP2ONNX[np.dtype(qtype)])], torch_fn=fn, opset=opset)


def scale_of(rng, *shape):
    return rng.uniform(0.02, 0.05, shape).astype(np.float32)


@case("quantize_uint8_opset10", "QuantizeLinear", "opset 10, per-tensor uint8, values past 255 and below 0 saturate")
def _(rng):
    return quantize_case(normal(rng, 3, 4, scale=4.0), np.float32(0.03), np.uint8(120), np.uint8, 10)


@case("quantize_int8_opset13", "QuantizeLinear", "opset 13, per-tensor int8 (zero point's type), ties to even")
def _(rng):
    x = normal(rng, 2, 5, scale=3.0)
    x[0, :4] = [0.05, 0.15, -0.05, -0.25]  # exact halves of scale 0.1: round half to even
    return quantize_case(x, np.float32(0.1), np.int8(-3), np.int8, 13)


@case("quantize_per_axis_int8", "QuantizeLinear", "opset 13, per-axis (axis 1) int8")
def _(rng):
    return quantize_case(normal(rng, 2, 3, 2, scale=3.0), scale_of(rng, 3), np.array([0, -5, 7], np.int8), np.int8, 13,
                         axis=1)


@case("quantize_per_axis_negative_axis", "QuantizeLinear", "opset 19, per-axis axis -1 uint8")
def _(rng):
    return quantize_case(normal(rng, 3, 4, scale=3.0), scale_of(rng, 4), np.array([0, 100, 128, 250], np.uint8),
                         np.uint8, 19, axis=-1)


@case("quantize_no_zero_point", "QuantizeLinear", "opset 21, no zero point: uint8, zero point 0")
def _(rng):
    return quantize_case(normal(rng, 3, 4, scale=5.0), np.float32(0.02), None, np.uint8, 21)


@case("quantize_int16", "QuantizeLinear", "opset 21, int16 zero point")
def _(rng):
    return quantize_case(normal(rng, 3, 4, scale=500.0), np.float32(0.01), np.int16(-20), np.int16, 21)


@case("quantize_uint16_zp_input", "QuantizeLinear", "opset 21, uint16 zero point as graph input")
def _(rng):
    return quantize_case(normal(rng, 3, 4, scale=500.0), np.float32(0.01), np.array(30000, np.uint16), np.uint16, 21,
                         zp_as_input=True)


@case("quantize_blocked_int8", "QuantizeLinear", "opset 21, block_size 2 along axis 1 (length 5: last block short)")
def _(rng):
    return quantize_case(normal(rng, 2, 5, scale=3.0), scale_of(rng, 2, 3), np.array([[1, 2, 3], [-1, -2, -3]], np.int8),
                         np.int8, 21, axis=1, block=2)


@case("quantize_opset25", "QuantizeLinear", "opset 25 (newest before 28), int8")
def _(rng):
    return quantize_case(normal(rng, 2, 3, scale=3.0), np.float32(0.05), np.int8(4), np.int8, 25)


# ---------------------------------------------------------------- DequantizeLinear

def dequantize_case(x, scale, zp, opset, axis=None, block=None):
    inits = {"scale": scale}
    names = ["x", "scale"]
    if zp is not None:
        inits["zp"] = zp
        names.append("zp")
    attrs = {}
    if axis is not None:
        attrs["axis"] = axis
    if block is not None:
        attrs["block_size"] = block

    def fn(e):
        xs, s = e["x"].to(torch.int64), f32(e["scale"])
        z = e["zp"].to(torch.int64) if zp is not None else torch.zeros((), dtype=torch.int64)
        if s.dim() > 0:
            ax = (axis if axis is not None else 1) % xs.dim()
            if block:
                s = s.repeat_interleave(block, dim=ax).narrow(ax, 0, xs.shape[ax])
                z = z.repeat_interleave(block, dim=ax).narrow(ax, 0, xs.shape[ax]) if z.dim() else z
            else:
                shape = [1] * xs.dim()
                shape[ax] = -1
                s = s.reshape(shape)
                z = z.reshape(shape) if z.dim() else z
        return [((xs - z).to(torch.float32) * s).double()]
    return dict(nodes=node("DequantizeLinear", names, **attrs), inputs=[("x", x, False)], inits=inits,
                outputs=[("y", TensorProto.FLOAT)], torch_fn=fn, opset=opset)


def qvals(rng, qtype, *shape):
    lo, hi = RANGES[qtype]
    return rng.integers(lo, hi + 1, shape).astype(qtype)


@case("dequantize_uint8_opset10", "DequantizeLinear", "opset 10, per-tensor uint8")
def _(rng):
    return dequantize_case(qvals(rng, np.uint8, 3, 4), np.float32(0.05), np.uint8(128), 10)


@case("dequantize_int32_no_zp", "DequantizeLinear", "opset 10, int32 x (a quantized bias), no zero point")
def _(rng):
    return dequantize_case(rng.integers(-100000, 100000, (5,)).astype(np.int32), np.float32(0.001), None, 10)


@case("dequantize_per_axis_int8", "DequantizeLinear", "opset 13, per-axis axis 0 int8 (a QDQ weight)")
def _(rng):
    return dequantize_case(qvals(rng, np.int8, 3, 4), scale_of(rng, 3), np.array([0, 3, -3], np.int8), 13, axis=0)


@case("dequantize_int16", "DequantizeLinear", "opset 21, int16")
def _(rng):
    return dequantize_case(qvals(rng, np.int16, 2, 3), np.float32(0.001), np.int16(-7), 21)


@case("dequantize_blocked_uint8", "DequantizeLinear", "opset 21, block_size 2 along axis 0 of [3, 2]")
def _(rng):
    return dequantize_case(qvals(rng, np.uint8, 3, 2), scale_of(rng, 2, 2), np.array([[1, 2], [3, 4]], np.uint8), 21,
                           axis=0, block=2)


@case("dequantize_opset25", "DequantizeLinear", "opset 25, uint8")
def _(rng):
    return dequantize_case(qvals(rng, np.uint8, 2, 3), np.float32(0.1), np.uint8(10), 25)


# ---------------------------------------------------------------- DynamicQuantizeLinear

def dynamic_quantize_t(x):
    x = f32(x)
    lo, hi = min(float(x.min()), 0.0), max(float(x.max()), 0.0)
    scale = np.float32(1.0) if hi == lo else np.float32((np.float32(hi) - np.float32(lo)) / np.float32(255))
    zp = np.float32(np.clip(np.float32(0) - np.float32(lo) / scale, 0, 255))
    zp = int(np.round(zp))
    y = torch.round(x / torch.tensor(scale)).double() + zp
    return [torch.tensor(float(scale), dtype=torch.float64), y.clamp(0, 255).to(torch.int64),
            torch.tensor(zp, dtype=torch.int64)]


# Graph outputs with the float one first: the engine's Session puts a model's first float32
# output in front (its score), so the fixture lists it first too.
DQL_OUTPUTS = [("y_scale", TensorProto.FLOAT), ("y", TensorProto.UINT8), ("y_zp", TensorProto.UINT8)]


@case("dynamic_quantize", "DynamicQuantizeLinear", "opset 11, mixed signs")
def _(rng):
    return dict(nodes=node("DynamicQuantizeLinear", ["x"], ["y", "y_scale", "y_zp"]),
                inputs=[("x", normal(rng, 3, 4, scale=2.0), False)],
                outputs=DQL_OUTPUTS, torch_fn=lambda e: dynamic_quantize_t(e["x"]), opset=11)


@case("dynamic_quantize_positive", "DynamicQuantizeLinear", "opset 11, all positive: range starts at 0")
def _(rng):
    return dict(nodes=node("DynamicQuantizeLinear", ["x"], ["y", "y_scale", "y_zp"]),
                inputs=[("x", np.abs(normal(rng, 2, 3)) + 0.5, False)],
                outputs=DQL_OUTPUTS, torch_fn=lambda e: dynamic_quantize_t(e["x"]), opset=11)


# ---------------------------------------------------------------- MatMulInteger, QLinearMatMul

def int_matmul_t(a, b, azp, bzp):
    a = a.to(torch.int64) - azp.to(torch.int64).reshape(-1, 1) if azp.numel() > 1 else a.to(torch.int64) - azp.to(torch.int64)
    b = b.to(torch.int64) - bzp.to(torch.int64)
    return torch.matmul(a.double(), b.double()).to(torch.int64)  # exact: |values| < 2^53


@case("matmul_integer_uint8", "MatMulInteger", "opset 10, uint8 A and B with scalar zero points")
def _(rng):
    return dict(nodes=node("MatMulInteger", ["a", "b", "azp", "bzp"]),
                inputs=[("a", qvals(rng, np.uint8, 3, 4), False), ("b", qvals(rng, np.uint8, 4, 2), False)],
                inits={"azp": np.uint8(12), "bzp": np.uint8(200)}, outputs=[("y", TensorProto.INT32)],
                torch_fn=lambda e: [int_matmul_t(e["a"], e["b"], e["azp"], e["bzp"])], opset=10)


@case("matmul_integer_int8_per_column", "MatMulInteger",
      "opset 10, uint8 A (batched 3-D) times int8 B with per-column zero point (quantize_dynamic's weights)")
def _(rng):
    return dict(nodes=node("MatMulInteger", ["a", "b", "azp", "bzp"]),
                inputs=[("a", qvals(rng, np.uint8, 2, 3, 4), False)],
                inits={"b": qvals(rng, np.int8, 4, 3), "azp": np.uint8(100), "bzp": np.array([0, 1, -2], np.int8)},
                outputs=[("y", TensorProto.INT32)],
                torch_fn=lambda e: [int_matmul_t(e["a"], e["b"], e["azp"], e["bzp"])], opset=10)


@case("matmul_integer_no_zero_points", "MatMulInteger", "opset 10, int8 x int8, no zero points")
def _(rng):
    return dict(nodes=node("MatMulInteger", ["a", "b"]),
                inputs=[("a", qvals(rng, np.int8, 2, 5), False), ("b", qvals(rng, np.int8, 5, 3), False)],
                outputs=[("y", TensorProto.INT32)],
                torch_fn=lambda e: [int_matmul_t(e["a"], e["b"], torch.zeros(()), torch.zeros(()))], opset=10)


def requantize_t(acc, multiplier, yzp, qtype):
    lo, hi = RANGES[qtype]
    v = torch.round(acc.to(torch.float32) * multiplier.to(torch.float32)).double() + float(yzp)
    return v.clamp(lo, hi).to(torch.int64)


def qlinear_matmul_case(rng, qtype, opset):
    a, b = qvals(rng, qtype, 2, 4), qvals(rng, qtype, 4, 3)
    zp = (lambda v: np.array(v, qtype))
    inits = {"a_scale": np.float32(0.02), "a_zp": zp(5 if qtype == np.int8 else 120), "b_scale": np.float32(0.03),
             "b_zp": zp(-2 if qtype == np.int8 else 130), "y_scale": np.float32(0.5),
             "y_zp": zp(1 if qtype == np.int8 else 128)}

    def fn(e):
        acc = int_matmul_t(e["a"], e["b"], e["a_zp"], e["b_zp"])
        mult = torch.tensor(np.float32(np.float32(0.02) * np.float32(0.03) / np.float32(0.5)))
        return [requantize_t(acc, mult, inits["y_zp"], qtype)]
    return dict(nodes=node("QLinearMatMul", ["a", "a_scale", "a_zp", "b", "b_scale", "b_zp", "y_scale", "y_zp"]),
                inputs=[("a", a, False), ("b", b, False)], inits=inits,
                outputs=[("y", NP2ONNX[np.dtype(qtype)])], torch_fn=fn, opset=opset)


@case("qlinear_matmul_uint8_opset10", "QLinearMatMul", "opset 10, uint8")
def _(rng):
    return qlinear_matmul_case(rng, np.uint8, 10)


@case("qlinear_matmul_int8_opset21", "QLinearMatMul", "opset 21, int8")
def _(rng):
    return qlinear_matmul_case(rng, np.int8, 21)


# ---------------------------------------------------------------- ConvInteger, QLinearConv

def int_conv_t(x, w, xzp, wzp, pads=(0, 0), strides=(1, 1), group=1):
    xs = x.to(torch.int64) - xzp.to(torch.int64)
    ws = w.to(torch.int64) - (wzp.to(torch.int64).reshape(-1, 1, 1, 1) if wzp.numel() > 1 else wzp.to(torch.int64))
    y = torch.nn.functional.conv2d(xs.double(), ws.double(), padding=pads, stride=strides, groups=group)
    return y.round().to(torch.int64)


@case("conv_integer_padded", "ConvInteger", "opset 10, uint8 x with zero point (padding holds it), 3x3 pads 1")
def _(rng):
    return dict(nodes=node("ConvInteger", ["x", "w", "xzp", "wzp"], pads=[1, 1, 1, 1]),
                inputs=[("x", qvals(rng, np.uint8, 1, 2, 4, 4), False)],
                inits={"w": qvals(rng, np.uint8, 3, 2, 3, 3), "xzp": np.uint8(128), "wzp": np.uint8(127)},
                outputs=[("y", TensorProto.INT32)],
                torch_fn=lambda e: [int_conv_t(e["x"], e["w"], e["xzp"], e["wzp"], pads=(1, 1))], opset=10)


@case("conv_integer_strided_group", "ConvInteger", "opset 10, stride 2, group 2, no zero points")
def _(rng):
    return dict(nodes=node("ConvInteger", ["x", "w"], strides=[2, 2], group=2),
                inputs=[("x", qvals(rng, np.uint8, 1, 4, 5, 5), False)], inits={"w": qvals(rng, np.uint8, 2, 2, 3, 3)},
                outputs=[("y", TensorProto.INT32)],
                torch_fn=lambda e: [int_conv_t(e["x"], e["w"], torch.zeros(()), torch.zeros(()), strides=(2, 2),
                                               group=2)], opset=10)


@case("qlinear_conv_per_channel", "QLinearConv", "opset 10, uint8 x, int8 per-channel weights, int32 bias, pads 1")
def _(rng):
    w_scale = scale_of(rng, 3)
    inits = {"x_scale": np.float32(0.02), "x_zp": np.uint8(128), "w": qvals(rng, np.int8, 3, 2, 3, 3),
             "w_scale": w_scale, "w_zp": np.zeros(3, np.int8), "y_scale": np.float32(0.3), "y_zp": np.uint8(100),
             "bias": rng.integers(-2000, 2000, 3).astype(np.int32)}

    def fn(e):
        acc = int_conv_t(e["x"], e["w"], e["x_zp"], e["w_zp"], pads=(1, 1)) + e["bias"].to(torch.int64).reshape(1, -1, 1, 1)
        mult = torch.tensor(np.float32(0.02) * w_scale / np.float32(0.3)).reshape(1, -1, 1, 1)
        return [requantize_t(acc, mult, 100, np.uint8)]
    return dict(nodes=node("QLinearConv", ["x", "x_scale", "x_zp", "w", "w_scale", "w_zp", "y_scale", "y_zp", "bias"],
                           pads=[1, 1, 1, 1]),
                inputs=[("x", qvals(rng, np.uint8, 1, 2, 4, 4), False)], inits=inits,
                outputs=[("y", TensorProto.UINT8)], torch_fn=fn, opset=10)


# ---------------------------------------------------------------- Cast, CastLike

def round_to_fp16(x):
    return torch.from_numpy(f32(x).numpy().astype(np.float16).astype(np.float32)).double()


def round_to_bf16(x):
    return f32(x).to(torch.bfloat16).double()  # torch rounds float32 -> bfloat16 to nearest even


class StraightThrough(torch.autograd.Function):
    """Cast's VJP in the engine: the identity (the rounding is a float-to-float cast)."""
    @staticmethod
    def forward(ctx, x, rounded):
        return rounded

    @staticmethod
    def backward(ctx, g):
        return g, None


@case("cast_to_float16", "Cast", "opset 13, float32 -> float16 output (round to nearest even; overflow to inf)")
def _(rng):
    x = normal(rng, 3, 4, scale=3.0)
    x[0, :3] = [1e-7, 70000.0, 1.0 + 2.0 ** -11]  # subnormal half, overflow, a tie
    return dict(nodes=node("Cast", ["x"], to=TensorProto.FLOAT16), inputs=[("x", x, False)],
                outputs=[("y", TensorProto.FLOAT16)], torch_fn=lambda e: [round_to_fp16(e["x"])], opset=13)


@case("cast_to_float16_and_back", "Cast", "opset 19: float -> float16 -> float, the fp16 converter's pattern")
def _(rng):
    nodes = [helper.make_node("Cast", ["x"], ["h"], to=TensorProto.FLOAT16),
             helper.make_node("Cast", ["h"], ["y"], to=TensorProto.FLOAT)]
    return dict(nodes=nodes, inputs=[("x", normal(rng, 2, 5, scale=2.0), True)], outputs=[("y", TensorProto.FLOAT)],
                torch_fn=lambda e: [StraightThrough.apply(e["x"], round_to_fp16(e["x"]))], opset=19, fd=False)


@case("cast_to_bfloat16_and_back", "Cast", "opset 21: float -> bfloat16 -> float")
def _(rng):
    nodes = [helper.make_node("Cast", ["x"], ["h"], to=TensorProto.BFLOAT16),
             helper.make_node("Cast", ["h"], ["y"], to=TensorProto.FLOAT)]
    return dict(nodes=nodes, inputs=[("x", normal(rng, 2, 5, scale=100.0), False)], outputs=[("y", TensorProto.FLOAT)],
                torch_fn=lambda e: [round_to_bf16(e["x"])], opset=21)


def wrap_t(x, np_type):
    return torch.from_numpy(x.numpy().astype(np.int64).astype(np_type).astype(np.int64))


@case("cast_int64_to_int8_wraps", "Cast", "opset 13, int64 -> int8 wraps (C-style) and back to int64")
def _(rng):
    x = np.array([-300, -129, -128, 0, 127, 128, 255, 300], np.int64)
    nodes = [helper.make_node("Cast", ["x"], ["h"], to=TensorProto.INT8),
             helper.make_node("Cast", ["h"], ["y"], to=TensorProto.INT64)]
    return dict(nodes=nodes, inputs=[("x", x, False)], outputs=[("y", TensorProto.INT64)],
                torch_fn=lambda e: [wrap_t(e["x"], np.int8)], opset=13)


@case("cast_int64_to_uint16_int16_uint32", "Cast", "opset 21, int64 -> uint16, int16, uint32 (wrap)")
def _(rng):
    x = np.array([-70000, -1, 0, 40000, 70000, 5000000000], np.int64)
    nodes = [helper.make_node("Cast", ["x"], ["a"], to=TensorProto.UINT16),
             helper.make_node("Cast", ["x"], ["b"], to=TensorProto.INT16),
             helper.make_node("Cast", ["x"], ["c"], to=TensorProto.UINT32)]
    return dict(nodes=nodes, inputs=[("x", x, False)],
                outputs=[("a", TensorProto.UINT16), ("b", TensorProto.INT16), ("c", TensorProto.UINT32)],
                torch_fn=lambda e: [wrap_t(e["x"], np.uint16), wrap_t(e["x"], np.int16), wrap_t(e["x"], np.uint32)],
                opset=21)


@case("float16_input_initializer", "Add", "loader: float16 graph input and float16 initializer (raw data), widened "
      "exactly (the arithmetic in float32: the engine computes no float16 op)")
def _(rng):
    nodes = [helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT),
             helper.make_node("Cast", ["b"], ["bf"], to=TensorProto.FLOAT), helper.make_node("Add", ["xf", "bf"], ["y"])]
    return dict(nodes=nodes, inputs=[("x", normal(rng, 2, 3).astype(np.float16), False)],
                inits={"b": normal(rng, 3).astype(np.float16)}, outputs=[("y", TensorProto.FLOAT)],
                torch_fn=lambda e: [e["x"].double() + e["b"].double()], opset=13)


@case("typed_field_constants", "Add", "loader: Constant tensors in typed fields (int8, uint16, float16, bfloat16 in "
      "int32_data; uint32, uint64 in uint64_data), not raw_data")
def _(rng):
    def const(name, dtype, dims, vals):  # onnx.helper stores float16/bfloat16 as bit patterns in int32_data
        return helper.make_node("Constant", [], [name], value=helper.make_tensor(name + "_t", dtype, dims, vals, raw=False))
    h = np.array([0.5, -1.25, 3e-6], np.float16)  # 3e-6: a subnormal half
    bf = np.array([1.5, -2.0, 288.0], np.float32)  # exact in bfloat16
    nodes = [const("i8", TensorProto.INT8, [3], [-128, 5, 127]), const("u16", TensorProto.UINT16, [3], [0, 65535, 7]),
             const("u32", TensorProto.UINT32, [3], [4000000000, 1, 2]),
             const("u64", TensorProto.UINT64, [3], [1, 2, 3]),
             const("f16", TensorProto.FLOAT16, [3], h.astype(np.float32).tolist()),
             const("bf16", TensorProto.BFLOAT16, [3], bf.tolist()),
             helper.make_node("Cast", ["i8"], ["i8f"], to=TensorProto.FLOAT),
             helper.make_node("Cast", ["u16"], ["u16f"], to=TensorProto.FLOAT),
             helper.make_node("Cast", ["u32"], ["u32f"], to=TensorProto.FLOAT),
             helper.make_node("Cast", ["u64"], ["u64f"], to=TensorProto.FLOAT),
             helper.make_node("Cast", ["f16"], ["f16f"], to=TensorProto.FLOAT),
             helper.make_node("Cast", ["bf16"], ["bf16f"], to=TensorProto.FLOAT),
             helper.make_node("Sum", ["x", "i8f", "u16f", "u32f", "u64f", "f16f", "bf16f"], ["y"])]
    consts = (torch.tensor([-128.0, 5, 127]) + torch.tensor([0.0, 65535, 7]) + torch.tensor([4e9, 1, 2])
              + torch.tensor([1.0, 2, 3]) + torch.from_numpy(h.astype(np.float32)) + torch.from_numpy(bf)).double()
    return dict(nodes=nodes, inputs=[("x", normal(rng, 3), False)], outputs=[("y", TensorProto.FLOAT)],
                torch_fn=lambda e: [e["x"] + consts], opset=13)


@case("castlike_float16_target", "CastLike", "opset 15: target a float16 initializer -> float16 rounding")
def _(rng):
    return dict(nodes=node("CastLike", ["x", "like"]), inputs=[("x", normal(rng, 2, 4, scale=3.0), False)],
                inits={"like": np.zeros(1, np.float16)}, outputs=[("y", TensorProto.FLOAT16)],
                torch_fn=lambda e: [round_to_fp16(e["x"])], opset=15)


@case("castlike_int8_target", "CastLike", "opset 19: int64 to an int8 target's type (wrap)")
def _(rng):
    x = np.array([-200, -1, 5, 130, 1000], np.int64)
    return dict(nodes=node("CastLike", ["x", "like"]), inputs=[("x", x, False)], inits={"like": np.zeros(1, np.int8)},
                outputs=[("y", TensorProto.INT8)], torch_fn=lambda e: [wrap_t(e["x"], np.int8)], opset=19)


@case("castlike_float_to_int64", "CastLike", "opset 21: float -> int64 target (truncation)")
def _(rng):
    return dict(nodes=node("CastLike", ["x", "like"]), inputs=[("x", normal(rng, 2, 3, scale=5.0), False)],
                inits={"like": np.zeros(1, np.int64)}, outputs=[("y", TensorProto.INT64)],
                torch_fn=lambda e: [f32(e["x"]).trunc().to(torch.int64)], opset=21)


# ---------------------------------------------------------------- ScatterElements, Scatter

def scatter_t(data, indices, updates, axis, reduction="none"):
    idx = indices.clone()
    n = data.shape[axis]
    idx = torch.where(idx < 0, idx + n, idx)
    if reduction == "none":
        return data.scatter(axis, idx, updates)
    red = {"add": "sum", "mul": "prod", "max": "amax", "min": "amin"}[reduction]
    return data.scatter_reduce(axis, idx, updates, red, include_self=True)


def unique_indices(rng, n_axis, shape, axis, negative=False):
    """Indices along `axis` without duplicates within a line (reduction none is then order-free)."""
    out = np.zeros(shape, np.int64)
    moved = np.moveaxis(out, axis, -1)
    for pos in np.ndindex(moved.shape[:-1]):
        moved[pos] = rng.permutation(n_axis)[: shape[axis]]
    if negative:
        out = np.where(rng.random(shape) < 0.5, out - n_axis, out)
    return out


def scatter_case(rng, op, opset, data_shape, idx_shape, axis, reduction=None, negative=False, dtype=np.float32,
                 unique=True):
    data = normal(rng, *data_shape) if dtype == np.float32 else \
        (rng.integers(-5, 6, data_shape).astype(np.int64) if dtype == np.int64 else rng.random(data_shape) < 0.5)
    upd = normal(rng, *idx_shape) if dtype == np.float32 else \
        (rng.integers(-5, 6, idx_shape).astype(np.int64) if dtype == np.int64 else rng.random(idx_shape) < 0.5)
    ax = axis % len(data_shape)
    idx = unique_indices(rng, data_shape[ax], idx_shape, ax, negative) if unique else \
        rng.integers(-data_shape[ax], data_shape[ax], idx_shape).astype(np.int64)
    attrs = {"axis": axis}
    if reduction is not None:
        attrs["reduction"] = reduction
    grad = dtype == np.float32 and reduction in (None, "none", "add")
    return dict(nodes=node(op, ["data", "indices", "updates"], **attrs),
                inputs=[("data", data, grad), ("indices", idx, False), ("updates", upd, grad)],
                outputs=[("y", NP2ONNX[np.dtype(dtype)])],
                torch_fn=lambda e: [scatter_t(e["data"], e["indices"], e["updates"], ax, reduction or "none")],
                opset=opset)


@case("scatter_elements_axis0", "ScatterElements", "opset 11, axis 0, float")
def _(rng):
    return scatter_case(rng, "ScatterElements", 11, (3, 3), (2, 3), 0)


@case("scatter_elements_negative", "ScatterElements", "opset 13, axis -1, negative indices")
def _(rng):
    return scatter_case(rng, "ScatterElements", 13, (2, 3, 4), (2, 2, 3), -1, negative=True)


@case("scatter_elements_add", "ScatterElements", "opset 16, reduction add with duplicate indices")
def _(rng):
    return scatter_case(rng, "ScatterElements", 16, (3, 4), (3, 4), 1, reduction="add", unique=False)


@case("scatter_elements_mul", "ScatterElements", "opset 16, reduction mul, duplicates")
def _(rng):
    return scatter_case(rng, "ScatterElements", 16, (3, 4), (2, 4), 0, reduction="mul", unique=False)


@case("scatter_elements_max", "ScatterElements", "opset 18, reduction max")
def _(rng):
    return scatter_case(rng, "ScatterElements", 18, (3, 4), (3, 2), 1, reduction="max", unique=False)


@case("scatter_elements_min_int64", "ScatterElements", "opset 18, reduction min, int64 data")
def _(rng):
    return scatter_case(rng, "ScatterElements", 18, (4, 3), (3, 3), 0, reduction="min", dtype=np.int64, unique=False)


@case("scatter_elements_bool", "ScatterElements", "opset 18, bool data, reduction none")
def _(rng):
    return scatter_case(rng, "ScatterElements", 18, (2, 4), (2, 2), 1, dtype=np.bool_)


@case("scatter_elements_none_opset18", "ScatterElements", "opset 18, reduction none explicit, 3-D axis 1")
def _(rng):
    return scatter_case(rng, "ScatterElements", 18, (2, 4, 2), (2, 3, 2), 1, reduction="none")


@case("scatter_opset9", "Scatter", "deprecated Scatter, opset 9 (ScatterElements semantics)")
def _(rng):
    return scatter_case(rng, "Scatter", 9, (3, 4), (2, 4), 0)


@case("scatter_opset10", "Scatter", "deprecated Scatter, opset 10, axis 1 with negative indices")
def _(rng):
    return scatter_case(rng, "Scatter", 10, (3, 4), (3, 2), 1, negative=True)


# ---------------------------------------------------------------- driver

def reference_forward(model_path, spec, feeds, touts):
    ref = spec.get("ref", "onnxruntime")
    outs = None
    if ref == "onnxruntime":
        try:
            outs = ort_run(model_path, feeds)
        except Exception as e:  # onnxruntime's NotImplemented / opset too new
            msg = str(e)
            if "NOT_IMPLEMENTED" not in msg and "not supported" not in msg.lower() and "opset" not in msg.lower():
                raise
            spec["ref"] = ref = "onnx-reference"
    if ref == "onnx-reference":
        from onnx.reference import ReferenceEvaluator
        outs = ReferenceEvaluator(onnx.load(model_path)).run(None, feeds)
    # float16 outputs are stored widened to float32 (exact), as the engine holds them.
    return [np.asarray(o).astype(np.float32) if np.asarray(o).dtype == np.float16 else np.asarray(o) for o in outs]


def write_case(out_dir, idx, name, op, note, fn):
    return eg.write_case(out_dir, idx, name, op, note, fn, opset=None, seed_base=7000, forward=reference_forward,
                         source="reference", equal_nan=True,
                         model_args=dict(producer="mlaudit-engine-goldens-quant", ir_version=eg.min_ir_version,
                                         np2onnx=NP2ONNX),
                         meta=lambda spec: {"opset": spec["opset"],
                                            "forward_reference": spec.get("ref", "onnxruntime")})


# ---------------------------------------------------------------- the onnx package's node tests

NODE_TEST_OPS = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "MatMulInteger", "ConvInteger",
                 "QLinearMatMul", "QLinearConv", "ScatterElements", "Scatter", "CastLike", "Cast"}
# Element types the engine loads (float16/bfloat16 widened, narrow integers as int64); node tests
# touching float8/float4/int4/int2 types are left out (the engine refuses those types by name).
ENGINE_TYPES = {TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.BOOL,
                TensorProto.INT8, TensorProto.UINT8, TensorProto.INT16, TensorProto.UINT16, TensorProto.INT32,
                TensorProto.UINT32, TensorProto.INT64, TensorProto.UINT64}


def node_test_cases():
    """(name, op, model, inputs, expected outputs) of every onnx node test whose only op is one of this part's
    and whose values the engine can load."""
    from onnx.backend.test.case.node import collect_testcases
    out = []
    for c in collect_testcases():
        if c.kind != "node" or len(c.model.graph.node) != 1 or c.model.graph.node[0].op_type not in NODE_TEST_OPS:
            continue
        values = list(c.model.graph.input) + list(c.model.graph.output)
        if any(v.type.tensor_type.elem_type not in ENGINE_TYPES for v in values):
            continue
        inputs, outputs = c.data_sets[0]
        arr = (lambda a: numpy_helper.to_array(a) if isinstance(a, onnx.TensorProto) else np.asarray(a))
        out.append((c.name, c.model.graph.node[0].op_type, c.model, [arr(a) for a in inputs],
                    [arr(a) for a in outputs]))
    return out


def write_node_test(out_dir, name, op, model, inputs, outputs):
    """One node test in the fixture format: inputs as the test gives them, expected outputs widened to the
    engine's types (float16/bfloat16/float64 -> float32, integers -> int64; exact), the graph's float outputs
    listed first (the engine's Session puts its first float output in front)."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    order = sorted(range(len(outputs)), key=lambda k: np.asarray(outputs[k]).dtype.kind != "f")
    outs = [model.graph.output[k] for k in order]
    del model.graph.output[:]
    model.graph.output.extend(outs)
    case_dir = os.path.join(out_dir, name)
    os.makedirs(case_dir, exist_ok=True)
    onnx.save(model, os.path.join(case_dir, "model.onnx"))
    for k, a in enumerate(inputs):
        a = np.asarray(a)
        if a.dtype.kind == "V" or str(a.dtype) == "bfloat16":  # ml_dtypes bfloat16: widen (exact)
            a = a.astype(np.float32)
        np.save(os.path.join(case_dir, f"input_{k}.npy"), a)
    for j, k in enumerate(order):
        o = np.asarray(outputs[k])
        o = o.astype(np.float32) if o.dtype.kind in "fV" or str(o.dtype) == "bfloat16" else \
            (o if o.dtype == np.bool_ else o.astype(np.int64))
        np.save(os.path.join(case_dir, f"output_{j}.npy"), o)
    return {"name": name, "op": op, "opset": model.opset_import[0].version, "forward_reference": "onnx-node-test",
            "inputs": len(inputs), "outputs": len(outputs), "grads": [], "seeds": [],
            "input_names": [v.name for v in model.graph.input], "input_dtypes": [str(np.asarray(a).dtype) for a in inputs],
            "output_names": [v.name for v in model.graph.output],
            "note": "onnx.backend.test node test, expected outputs verbatim (widened)"}


def write_node_tests(out_dir):
    entries = [write_node_test(out_dir, *c) for c in node_test_cases()]
    eg.write_cases_json(out_dir, entries)
    print(f"wrote {len(entries)} onnx node tests under {out_dir}")


# ---------------------------------------------------------------- end to end: quantized / fp16 torch models

class Mlp(torch.nn.Module):
    """Linear-ReLU-Linear."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(11)
        self.fc1, self.fc2 = torch.nn.Linear(8, 16), torch.nn.Linear(16, 3)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


class SmallConv(torch.nn.Module):
    """Conv-ReLU-Conv(stride 2)-ReLU-flatten-Linear on [N, 2, 6, 6]."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(12)
        self.c1 = torch.nn.Conv2d(2, 4, 3, padding=1)
        self.c2 = torch.nn.Conv2d(4, 4, 3, stride=2, padding=1)
        self.fc = torch.nn.Linear(4 * 3 * 3, 3)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.4)

    def forward(self, x):
        y = torch.relu(self.c2(torch.relu(self.c1(x))))
        return self.fc(y.flatten(1))


def export_torchscript(module, x, path):
    kwargs = dict(input_names=["input"], output_names=["output"], opset_version=17,
                  dynamic_axes={"input": {0: "N"}, "output": {0: "N"}})
    import inspect
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False
    torch.onnx.export(module.eval(), torch.from_numpy(x), path, **kwargs)


def write_model_cases(out_dir):
    """Each float model exported with the TorchScript exporter, then (a) quantize_dynamic (uint8 activations,
    int8 weights: DynamicQuantizeLinear + MatMulInteger/ConvInteger), (b) quantize_static in QDQ format
    (uint8 activations, int8 per-channel weights, 8 calibration samples) and (c) float16 with
    keep_io_types; the engine's output against onnxruntime's (optimisations off) on 4 fresh samples.

    Tolerances ("rtol", "atol" per case):
      dynamic: MatMulInteger/ConvInteger are exact integer sums on both sides and every float step
        (DynamicQuantizeLinear's range, the scale products, bias adds) is element-wise in the same
        order, so only float32 rounding remains: 1e-5 relative + 1e-5 absolute.
      qdq: the integers are exact, but each DequantizeLinear -> float MatMul/Conv -> QuantizeLinear
        step rounds a float32 sum whose order differs (oneDNN vs MLAS), so an activation on a rounding
        boundary may land one quantum apart (both round half to even: no systematic off-by-one); one
        flipped quantum entering the last layer moves an output by at most scale * max column sum of
        |W|, and the case allows two such flips (atol = 2 scale max_j sum_i |W_ij|, rtol 0).
      fp16: onnxruntime computes in float16, the engine in float32 on the float16-rounded weights:
        1e-2 relative + 1e-2 absolute (float16's 2^-11 relative step over a few layers of O(1) sums)."""
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic,
                                          quantize_static)
    from onnxconverter_common import float16
    import tempfile

    entries = []
    rng = np.random.default_rng(7777)
    for base, module, shape in [("mlp", Mlp(), (8,)), ("conv", SmallConv(), (2, 6, 6))]:
        calib = [normal(rng, 1, *shape) for _ in range(8)]
        test_x = normal(rng, 4, *shape)
        with tempfile.TemporaryDirectory() as tmp:
            fp32 = os.path.join(tmp, "fp32.onnx")
            export_torchscript(module, test_x, fp32)

            class Reader(CalibrationDataReader):
                def __init__(self):
                    self.it = iter([{"input": c} for c in calib])

                def get_next(self):
                    return next(self.it, None)

            variants = {}
            dyn = os.path.join(tmp, "dyn.onnx")
            quantize_dynamic(fp32, dyn, weight_type=QuantType.QInt8)
            variants["dynamic"] = dyn
            qdq = os.path.join(tmp, "qdq.onnx")
            quantize_static(fp32, qdq, Reader(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8, per_channel=True)
            variants["qdq"] = qdq
            fp16 = os.path.join(tmp, "fp16.onnx")
            onnx.save(float16.convert_float_to_float16(onnx.load(fp32), keep_io_types=True), fp16)
            variants["fp16"] = fp16
            for kind, path in variants.items():
                name = f"{base}_{kind}"
                model = onnx.load(path)
                ops = sorted({n.op_type for n in model.graph.node})
                y = ort_run(path, {"input": test_x})[0]
                case_dir = os.path.join(out_dir, name)
                os.makedirs(case_dir, exist_ok=True)
                onnx.save(model, os.path.join(case_dir, "model.onnx"))
                np.save(os.path.join(case_dir, "input_0.npy"), test_x)
                np.save(os.path.join(case_dir, "output_0.npy"), y)
                if kind == "fp16":
                    rtol, atol = 1e-2, 1e-2
                elif kind == "dynamic":
                    rtol, atol = 1e-5, 1e-5
                else:
                    rtol, atol = 0.0, last_layer_quantum(model)
                entries.append({"name": name, "op": "model", "forward_reference": "onnxruntime", "inputs": 1,
                                "outputs": 1, "grads": [], "seeds": [], "rtol": rtol, "atol": atol, "ops": ops,
                                "note": f"{base} exported with TorchScript, {kind}"})
    eg.write_cases_json(out_dir, entries)
    print(f"wrote {len(entries)} quantized/fp16 model cases under {out_dir}")


def last_layer_quantum(model):
    """Output change from one flipped activation quantum entering the last MatMul/Gemm: the activation's
    scale times the largest column sum of |weights| of that layer, times 2 (two flips allowed)."""
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    prod = {o: n for n in model.graph.node for o in n.output}
    last = [n for n in model.graph.node if n.op_type in ("MatMul", "Gemm", "MatMulInteger")][-1]

    def float_weight(name):
        if name in inits:
            return inits[name].astype(np.float64)
        n = prod.get(name)
        if n is not None and n.op_type == "DequantizeLinear":
            q = inits[n.input[0]].astype(np.float64)
            sc = inits[n.input[1]].astype(np.float64)
            zp = inits[n.input[2]].astype(np.float64) if len(n.input) > 2 and n.input[2] else 0.0
            axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
            if sc.ndim == 1 and sc.size > 1:
                shp = [1] * q.ndim
                shp[axis] = -1
                sc, zp = sc.reshape(shp), (zp.reshape(shp) if np.ndim(zp) else zp)
            return (q - zp) * sc
        return None

    w = float_weight(last.input[1])
    if last.op_type == "MatMulInteger":  # dynamic: activation scale comes at run time; bound by the weight scale
        w = inits[last.input[1]].astype(np.float64)
        scale = 0.05
    else:
        dq = prod.get(last.input[0])
        scale = float(inits[dq.input[1]]) if dq is not None and dq.op_type == "DequantizeLinear" else 0.05
    trans_b = any(a.name == "transB" and a.i for a in last.attribute)
    col = np.abs(w).sum(axis=1 if trans_b else 0)
    return float(2 * scale * col.max())


def main(argv=None):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    rc = eg.part_main(argv, "Write the quantization/scatter op golden fixtures.", "ops_quant", CASES, write_case,
                      readme=("Quantization, Cast and ScatterElements op fixtures", "engine_goldens_quant.py", __doc__))
    out = argv[argv.index("--out") + 1] if argv and "--out" in argv else \
        os.path.join(root, "tests", "fixtures", "engine", "ops_quant")
    node_dir = os.path.join(out, "node_tests")
    eg.fresh_dir(node_dir)
    write_node_tests(node_dir)
    eg.write_readme(node_dir, "onnx node tests of the quantization, Cast and ScatterElements ops",
                    "engine_goldens_quant.py", __doc__)
    model_dir = os.path.join(out, "models")
    eg.fresh_dir(model_dir)
    write_model_cases(model_dir)
    eg.write_readme(model_dir, "Quantized and float16 torch models (end to end)", "engine_goldens_quant.py",
                    (write_model_cases.__doc__ or "") + "\n\n" + __doc__)
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
