#!/usr/bin/env python3
"""Golden fixtures for the engine's C++ tests: bundled models end to end, and one- or few-node op cases.

Run from the repository root after tools/train_models.py (CPU, a few seconds):

    ${PYTHON:-.venv/bin/python} tools/engine_goldens.py [--out tests/fixtures/engine]

Writes tests/fixtures/engine/

  models/<model>_x.npy       8 inputs (float32): the first 8 demo inputs (datasets/demo/fmnist_x.npy, credit_x.npy)
  models/<model>_labels.npy  their labels y_i (int64)
  models/<model>_logits.npy  onnxruntime forward of models/<model>.onnx (float32)
  models/<model>_grad.npy    d/dx sum_i logits[i, y_i], PyTorch autograd in float64 on the torch module
                             REBUILT FROM THE ONNX INITIALIZERS (tools/mlaudit_torch.py), saved as float32
  for <model> in fmnist_cnn, credit_mlp.

  ops/<case>/model.onnx      a one-node (or few-node) ONNX model built with onnx.helper, opset 13, IR 8
  ops/<case>/input_<k>.npy   k-th GRAPH input, in graph-input order (float32, or int64 for indices);
                             constant parameters (Reshape shape, Slice starts, BN statistics, ...) are
                             initializers inside model.onnx, as exporters emit them
  ops/<case>/output_<k>.npy  k-th graph output, computed by onnxruntime (CPU) from the float32 inputs
  ops/<case>/seed_<k>.npy    random seed tensor (float32, N(0,1)) for each float output k
  ops/<case>/grad_<k>.npy    vector-Jacobian product d/d input_k of sum_j sum(seed_j * output_j),
                             from PyTorch autograd in float64 through the torch functional equivalent
                             of the op written below (independent of onnxruntime), for each float input k
  ops/cases.json             [{"name", "op", "inputs", "outputs", "grads", "seeds", "input_names",
                               "input_dtypes", "output_names", "note"}]

Recipe and checks: every case's torch equivalent is run forward in float64 and must agree with
onnxruntime to 1e-5 relative + 1e-6 absolute, otherwise the script fails; this cross-checks the
torch formula (which produces the gradients) against onnxruntime's forward. Every saved gradient
is also checked against float64 central finite differences of the same torch formula (up to 64
coordinates per input, 1e-5 relative). Inputs are drawn with
numpy.random.default_rng(<fixed per-case seed>) and kept away from non-differentiable points
(|x| > 0.05 for Relu/Abs/Sign/LeakyRelu, Clip/HardSigmoid kinks avoided, distinct values for
Max/Min/MaxPool, positive arguments for Log/Sqrt/Pow bases, divisors with |b| >= 0.5), so finite
differences in float64 are valid too.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mlaudit_torch import cnn_from_onnx, mlp_from_onnx  # noqa: E402

OPSET = 13
IR_VERSION = 8
FWD_RTOL, FWD_ATOL = 1e-5, 1e-6
NP2ONNX = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.int64): TensorProto.INT64,
           np.dtype(np.bool_): TensorProto.BOOL}

CASES = []


def register(cases, name, op, *meta):
    """Decorator appending (name, op, *meta, fn) to `cases`: the case registries of this script and its parts."""
    def deco(fn):
        cases.append((name, op, *meta, fn))
        return fn
    return deco


def case(name, op, note=""):
    """Register a case builder: fn(rng) -> dict(nodes, inputs, inits, outputs, torch_fn)."""
    return register(CASES, name, op, note)


# ---------------------------------------------------------------- input helpers
def normal(rng, *shape, scale=1.0):
    return np.asarray(rng.standard_normal(shape) * scale, dtype=np.float32)


def away_from(rng, shape, points, margin=0.05, low=-2.0, high=2.0):
    """Uniform in [low, high] with every value at least `margin` from each of `points` (kinks)."""
    x = rng.uniform(low, high, shape)
    for _ in range(100):
        bad = np.zeros(shape, dtype=bool)
        for p in points:
            bad |= np.abs(x - p) < margin
        if not bad.any():
            break
        x[bad] = rng.uniform(low, high, int(bad.sum()))
    return x.astype(np.float32)


def distinct(rng, *shape, low=-2.0, high=2.0):
    """Distinct values (gaps >= (high-low)/size) in random order: max/min have a unique argmax."""
    n = int(np.prod(shape))
    vals = np.linspace(low, high, n)
    return rng.permutation(vals).reshape(shape).astype(np.float32)


def nonzero_signed(rng, *shape, low=0.5, high=2.0):
    return (rng.uniform(low, high, shape) * rng.choice([-1.0, 1.0], shape)).astype(np.float32)


def i64(*vals):
    return np.array(vals, dtype=np.int64)


def boolean(rng, *shape):
    return rng.random(shape) < 0.5


def simple(op, inputs, outputs=("y",), **attrs):
    return [helper.make_node(op, list(inputs), list(outputs), name=f"{op.lower()}_0", **attrs)]


# ---------------------------------------------------------------- cases
# Each builder returns dict: nodes, inputs [(name, array, wants_grad)], inits {name: array},
# outputs [(name, onnx elem type)], torch_fn(env: name -> float64/int64 torch tensor) -> list of outputs.

@case("gemm_transb_bias_vector", "Gemm", "Y = A B^T + C, C [N] broadcast over rows (nn.Linear export)")
def _(rng):
    return dict(nodes=simple("Gemm", ["a", "b", "c"], transB=1),
                inputs=[("a", normal(rng, 3, 5), True), ("b", normal(rng, 4, 5), True), ("c", normal(rng, 4), True)],
                outputs=[("y", TensorProto.FLOAT)],
                torch_fn=lambda e: [e["a"] @ e["b"].T + e["c"]])


@case("gemm_transa_alpha_beta", "Gemm", "Y = 0.5 A^T B + 2 C with C [M,N]")
def _(rng):
    return dict(nodes=simple("Gemm", ["a", "b", "c"], transA=1, alpha=0.5, beta=2.0),
                inputs=[("a", normal(rng, 5, 3), True), ("b", normal(rng, 5, 4), True), ("c", normal(rng, 3, 4), True)],
                outputs=[("y", TensorProto.FLOAT)],
                torch_fn=lambda e: [0.5 * e["a"].T @ e["b"] + 2.0 * e["c"]])


@case("gemm_batch1_no_c", "Gemm", "batch 1, no C input, B as initializer (weight)")
def _(rng):
    return dict(nodes=simple("Gemm", ["a", "w"], transB=1),
                inputs=[("a", normal(rng, 1, 6), True)], inits={"w": normal(rng, 3, 6)},
                outputs=[("y", TensorProto.FLOAT)],
                torch_fn=lambda e: [e["a"] @ e["w"].T])


@case("gemm_empty_batch", "Gemm", "empty batch: A [0,4] -> Y [0,3]")
def _(rng):
    return dict(nodes=simple("Gemm", ["a", "w", "c"], transB=1),
                inputs=[("a", np.zeros((0, 4), np.float32), True)],
                inits={"w": normal(rng, 3, 4), "c": normal(rng, 3)},
                outputs=[("y", TensorProto.FLOAT)],
                torch_fn=lambda e: [e["a"] @ e["w"].T + e["c"]])


@case("matmul_2d", "MatMul", "[3,4] x [4,5]")
def _(rng):
    return dict(nodes=simple("MatMul", ["a", "b"]),
                inputs=[("a", normal(rng, 3, 4), True), ("b", normal(rng, 4, 5), True)],
                outputs=[("y", TensorProto.FLOAT)], torch_fn=lambda e: [e["a"] @ e["b"]])


@case("matmul_batched_broadcast", "MatMul", "[2,1,3,4] x [3,4,5] -> [2,3,3,5]: both batch dims broadcast")
def _(rng):
    return dict(nodes=simple("MatMul", ["a", "b"]),
                inputs=[("a", normal(rng, 2, 1, 3, 4), True), ("b", normal(rng, 3, 4, 5), True)],
                outputs=[("y", TensorProto.FLOAT)], torch_fn=lambda e: [e["a"] @ e["b"]])


@case("matmul_3d_by_2d", "MatMul", "[2,3,4] x [4,2]: weight shared across the batch")
def _(rng):
    return dict(nodes=simple("MatMul", ["a", "b"]),
                inputs=[("a", normal(rng, 2, 3, 4), True), ("b", normal(rng, 4, 2), True)],
                outputs=[("y", TensorProto.FLOAT)], torch_fn=lambda e: [e["a"] @ e["b"]])


def _binary(op, fn, shape_a, shape_b, rng, b_gen=None):
    b = b_gen(rng, *shape_b) if b_gen else normal(rng, *shape_b)
    return dict(nodes=simple(op, ["a", "b"]),
                inputs=[("a", normal(rng, *shape_a), True), ("b", b, True)],
                outputs=[("y", TensorProto.FLOAT)], torch_fn=lambda e: [fn(e["a"], e["b"])])


@case("add_broadcast_last", "Add", "[2,3,4] + [4]")
def _(rng):
    return _binary("Add", lambda a, b: a + b, (2, 3, 4), (4,), rng)


@case("add_same_shape", "Add", "[3,4] + [3,4]")
def _(rng):
    return _binary("Add", lambda a, b: a + b, (3, 4), (3, 4), rng)


@case("sub_broadcast_both", "Sub", "[2,1,4] - [3,1] -> [2,3,4]: both operands broadcast")
def _(rng):
    return _binary("Sub", lambda a, b: a - b, (2, 1, 4), (3, 1), rng)


@case("mul_broadcast_both", "Mul", "[2,1,4] * [3,1] -> [2,3,4]")
def _(rng):
    return _binary("Mul", lambda a, b: a * b, (2, 1, 4), (3, 1), rng)


@case("mul_scalar", "Mul", "[2,3] * [] (0-d tensor)")
def _(rng):
    return _binary("Mul", lambda a, b: a * b, (2, 3), (), rng)


@case("div_broadcast", "Div", "[2,3,4] / [3,1], |divisor| in [0.5, 2]")
def _(rng):
    return _binary("Div", lambda a, b: a / b, (2, 3, 4), (3, 1), rng, nonzero_signed)


def _unary(op, fn, x, **attrs):
    return dict(nodes=simple(op, ["x"], **attrs), inputs=[("x", x, True)],
                outputs=[("y", TensorProto.FLOAT)], torch_fn=lambda e: [fn(e["x"])])


@case("neg", "Neg")
def _(rng):
    return _unary("Neg", torch.neg, normal(rng, 3, 4))


@case("abs", "Abs", "|x| > 0.05")
def _(rng):
    return _unary("Abs", torch.abs, away_from(rng, (3, 4), [0.0]))


@case("relu", "Relu", "|x| > 0.05")
def _(rng):
    return _unary("Relu", torch.relu, away_from(rng, (2, 3, 4), [0.0]))


@case("relu_empty_batch", "Relu", "empty batch [0,3]")
def _(rng):
    return _unary("Relu", torch.relu, np.zeros((0, 3), np.float32))


@case("leakyrelu_default", "LeakyRelu", "default alpha 0.01")
def _(rng):
    return _unary("LeakyRelu", lambda x: F.leaky_relu(x, 0.01), away_from(rng, (3, 4), [0.0]))


@case("leakyrelu_alpha", "LeakyRelu", "alpha 0.2")
def _(rng):
    return _unary("LeakyRelu", lambda x: F.leaky_relu(x, 0.2), away_from(rng, (3, 4), [0.0]), alpha=0.2)


@case("sigmoid", "Sigmoid", "inputs in [-6, 6]")
def _(rng):
    return _unary("Sigmoid", torch.sigmoid, (rng.uniform(-6, 6, (3, 5))).astype(np.float32))


@case("tanh", "Tanh")
def _(rng):
    return _unary("Tanh", torch.tanh, normal(rng, 3, 5, scale=1.5))


@case("softmax_default_axis", "Softmax", "opset 13 default axis -1, [2,3,5]")
def _(rng):
    return _unary("Softmax", lambda x: torch.softmax(x, -1), normal(rng, 2, 3, 5, scale=2.0))


@case("softmax_axis1", "Softmax", "axis 1 of [2,3,4]")
def _(rng):
    return _unary("Softmax", lambda x: torch.softmax(x, 1), normal(rng, 2, 3, 4, scale=2.0), axis=1)


@case("logsoftmax_default_axis", "LogSoftmax", "opset 13 default axis -1")
def _(rng):
    return _unary("LogSoftmax", lambda x: torch.log_softmax(x, -1), normal(rng, 3, 6, scale=2.0))


@case("logsoftmax_axis0", "LogSoftmax", "axis 0 of [4,3]")
def _(rng):
    return _unary("LogSoftmax", lambda x: torch.log_softmax(x, 0), normal(rng, 4, 3, scale=2.0), axis=0)


@case("exp", "Exp")
def _(rng):
    return _unary("Exp", torch.exp, normal(rng, 3, 4))


@case("log", "Log", "x in [0.2, 3]")
def _(rng):
    return _unary("Log", torch.log, rng.uniform(0.2, 3.0, (3, 4)).astype(np.float32))


@case("sqrt", "Sqrt", "x in [0.2, 3]")
def _(rng):
    return _unary("Sqrt", torch.sqrt, rng.uniform(0.2, 3.0, (3, 4)).astype(np.float32))


@case("pow_tensor_exponent", "Pow", "x^y, x in [0.5, 2], y [4] broadcast; grad w.r.t. both (d/dy = x^y ln x)")
def _(rng):
    return dict(nodes=simple("Pow", ["x", "y_exp"]),
                inputs=[("x", rng.uniform(0.5, 2.0, (3, 4)).astype(np.float32), True),
                        ("y_exp", rng.uniform(-1.5, 2.5, (4,)).astype(np.float32), True)],
                outputs=[("y", TensorProto.FLOAT)], torch_fn=lambda e: [torch.pow(e["x"], e["y_exp"])])


@case("pow_const_square", "Pow", "x^2 with the exponent a 0-d initializer (x signed)")
def _(rng):
    return dict(nodes=simple("Pow", ["x", "two"]), inputs=[("x", normal(rng, 3, 4), True)],
                inits={"two": np.array(2.0, np.float32)},
                outputs=[("y", TensorProto.FLOAT)], torch_fn=lambda e: [torch.pow(e["x"], e["two"])])


@case("erf", "Erf")
def _(rng):
    return _unary("Erf", torch.erf, normal(rng, 3, 4))


@case("elu_default", "Elu", "alpha 1.0; |x| > 0.05")
def _(rng):
    return _unary("Elu", lambda x: F.elu(x, 1.0), away_from(rng, (3, 4), [0.0]))


@case("elu_alpha", "Elu", "alpha 0.5")
def _(rng):
    return _unary("Elu", lambda x: F.elu(x, 0.5), away_from(rng, (3, 4), [0.0]), alpha=0.5)


@case("softplus", "Softplus", "ln(1 + e^x), x in [-8, 8]")
def _(rng):
    return _unary("Softplus", lambda x: torch.log1p(torch.exp(x)), rng.uniform(-8, 8, (3, 5)).astype(np.float32))


@case("hardsigmoid_default", "HardSigmoid", "alpha 0.2 beta 0.5: kinks at x = +-2.5 avoided")
def _(rng):
    return _unary("HardSigmoid", lambda x: torch.clamp(0.2 * x + 0.5, 0.0, 1.0),
                  away_from(rng, (3, 5), [-2.5, 2.5], low=-4, high=4))


@case("hardsigmoid_alpha_beta", "HardSigmoid", "alpha 0.5 beta 0.6: kinks at -1.2 and 0.8 avoided")
def _(rng):
    return _unary("HardSigmoid", lambda x: torch.clamp(0.5 * x + 0.6, 0.0, 1.0),
                  away_from(rng, (3, 5), [-1.2, 0.8], low=-3, high=3), alpha=0.5, beta=0.6)


@case("clip_min_max", "Clip", "opset 13 min/max as 0-d initializer inputs (-0.5, 0.7); kinks avoided")
def _(rng):
    return dict(nodes=simple("Clip", ["x", "lo", "hi"]),
                inputs=[("x", away_from(rng, (3, 5), [-0.5, 0.7]), True)],
                inits={"lo": np.array(-0.5, np.float32), "hi": np.array(0.7, np.float32)},
                outputs=[("y", TensorProto.FLOAT)], torch_fn=lambda e: [torch.clamp(e["x"], -0.5, 0.7)])


@case("clip_min_only", "Clip", "max omitted (empty input name): only min 0 (ReLU6-style exports)")
def _(rng):
    return dict(nodes=simple("Clip", ["x", "lo", ""]),
                inputs=[("x", away_from(rng, (3, 5), [0.0]), True)],
                inits={"lo": np.array(0.0, np.float32)},
                outputs=[("y", TensorProto.FLOAT)], torch_fn=lambda e: [torch.clamp(e["x"], min=0.0)])


def onnx_pad_nchw(x, pads, value=0.0):
    """ONNX pads [h_begin, w_begin, h_end, w_end] on the two spatial axes of NCHW, as F.pad wants them."""
    hb, wb, he, we = pads
    return F.pad(x, (wb, we, hb, he), value=value)


@case("conv_pad1_bias", "Conv", "3x3, pads 1, stride 1, bias; W and B are graph inputs (grads for X, W, B)")
def _(rng):
    return dict(nodes=simple("Conv", ["x", "w", "b"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
                inputs=[("x", normal(rng, 2, 2, 5, 5), True), ("w", normal(rng, 3, 2, 3, 3, scale=0.5), True),
                        ("b", normal(rng, 3), True)],
                outputs=[("y", TensorProto.FLOAT)],
                torch_fn=lambda e: [F.conv2d(e["x"], e["w"], e["b"], padding=1)])


@case("conv_stride_dilation_asym_pads", "Conv",
      "2x2 kernel, strides [2,1], dilations [2,2], asymmetric pads [1,0,2,1]; W initializer")
def _(rng):
    pads = [1, 0, 2, 1]
    return dict(nodes=simple("Conv", ["x", "w", "b"], kernel_shape=[2, 2], strides=[2, 1], dilations=[2, 2], pads=pads),
                inputs=[("x", normal(rng, 2, 2, 6, 5), True)],
                inits={"w": normal(rng, 3, 2, 2, 2, scale=0.5), "b": normal(rng, 3)},
                outputs=[("y", TensorProto.FLOAT)],
                torch_fn=lambda e: [F.conv2d(onnx_pad_nchw(e["x"], pads), e["w"], e["b"], stride=(2, 1), dilation=2)])


@case("conv_groups_batch1", "Conv", "groups 2 (4 in, 4 out channels), batch 1, no bias, pads 1 on all corners")
def _(rng):
    return dict(nodes=simple("Conv", ["x", "w"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=2),
                inputs=[("x", normal(rng, 1, 4, 4, 4), True), ("w", normal(rng, 4, 2, 3, 3, scale=0.5), True)],
                outputs=[("y", TensorProto.FLOAT)],
                torch_fn=lambda e: [F.conv2d(e["x"], e["w"], None, padding=1, groups=2)])


@case("conv_depthwise_stride2", "Conv", "depthwise (groups = channels = 3), stride 2, pads 1, bias")
def _(rng):
    return dict(nodes=simple("Conv", ["x", "w", "b"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2], group=3),
                inputs=[("x", normal(rng, 2, 3, 5, 5), True)],
                inits={"w": normal(rng, 3, 1, 3, 3, scale=0.5), "b": normal(rng, 3)},
                outputs=[("y", TensorProto.FLOAT)],
                torch_fn=lambda e: [F.conv2d(e["x"], e["w"], e["b"], padding=1, stride=2, groups=3)])


@case("maxpool_2x2", "MaxPool", "kernel 2, stride 2, distinct values")
def _(rng):
    return _unary("MaxPool", lambda x: F.max_pool2d(x, 2, 2), distinct(rng, 2, 2, 4, 4),
                  kernel_shape=[2, 2], strides=[2, 2])


@case("maxpool_3x3_s2_pad1", "MaxPool", "kernel 3, stride 2, pads 1 (padded corners are -inf), 5x5 input")
def _(rng):
    return _unary("MaxPool", lambda x: F.max_pool2d(x, 3, 2, padding=1), distinct(rng, 1, 2, 5, 5),
                  kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])


@case("maxpool_rect_kernel", "MaxPool", "kernel [2,3], strides [1,2], no pads")
def _(rng):
    return _unary("MaxPool", lambda x: F.max_pool2d(x, (2, 3), (1, 2)), distinct(rng, 2, 1, 4, 7),
                  kernel_shape=[2, 3], strides=[1, 2])


@case("averagepool_pad_exclude", "AveragePool", "kernel 3, stride 2, pads 1, count_include_pad 0")
def _(rng):
    return _unary("AveragePool", lambda x: F.avg_pool2d(x, 3, 2, padding=1, count_include_pad=False),
                  normal(rng, 2, 2, 5, 5), kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=0)


@case("averagepool_pad_include", "AveragePool", "kernel 3, stride 2, pads 1, count_include_pad 1")
def _(rng):
    return _unary("AveragePool", lambda x: F.avg_pool2d(x, 3, 2, padding=1, count_include_pad=True),
                  normal(rng, 2, 2, 5, 5), kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1)


@case("averagepool_2x2", "AveragePool", "kernel 2, stride 2, batch 1")
def _(rng):
    return _unary("AveragePool", lambda x: F.avg_pool2d(x, 2, 2), normal(rng, 1, 3, 4, 6),
                  kernel_shape=[2, 2], strides=[2, 2])


@case("globalaveragepool", "GlobalAveragePool", "[2,3,4,5] -> [2,3,1,1]")
def _(rng):
    return _unary("GlobalAveragePool", lambda x: x.mean(dim=(2, 3), keepdim=True), normal(rng, 2, 3, 4, 5))


@case("batchnorm_nchw", "BatchNormalization", "inference: scale, B, mean, var initializers, epsilon 1e-5")
def _(rng):
    c = 3
    inits = {"scale": normal(rng, c), "bias": normal(rng, c), "mean": normal(rng, c),
             "var": rng.uniform(0.5, 2.0, c).astype(np.float32)}
    return dict(nodes=simple("BatchNormalization", ["x", "scale", "bias", "mean", "var"]),
                inputs=[("x", normal(rng, 2, c, 3, 4), True)], inits=inits,
                outputs=[("y", TensorProto.FLOAT)],
                torch_fn=lambda e: [F.batch_norm(e["x"], e["mean"], e["var"], e["scale"], e["bias"], False, 0.0, 1e-5)])


@case("batchnorm_nc_eps", "BatchNormalization", "2-D input [N,C], epsilon 1e-3")
def _(rng):
    c = 4
    inits = {"scale": normal(rng, c), "bias": normal(rng, c), "mean": normal(rng, c),
             "var": rng.uniform(0.5, 2.0, c).astype(np.float32)}
    return dict(nodes=simple("BatchNormalization", ["x", "scale", "bias", "mean", "var"], epsilon=1e-3),
                inputs=[("x", normal(rng, 5, c), True)], inits=inits,
                outputs=[("y", TensorProto.FLOAT)],
                torch_fn=lambda e: [F.batch_norm(e["x"], e["mean"], e["var"], e["scale"], e["bias"], False, 0.0, 1e-3)])


@case("flatten_default", "Flatten", "axis 1: [2,3,2,2] -> [2,12]")
def _(rng):
    return _unary("Flatten", lambda x: x.reshape(x.shape[0], -1), normal(rng, 2, 3, 2, 2))


@case("flatten_axis2", "Flatten", "axis 2: [2,3,2,2] -> [6,4]")
def _(rng):
    return _unary("Flatten", lambda x: x.reshape(6, 4), normal(rng, 2, 3, 2, 2), axis=2)


@case("flatten_axis0", "Flatten", "axis 0: [2,3,4] -> [1,24]")
def _(rng):
    return _unary("Flatten", lambda x: x.reshape(1, -1), normal(rng, 2, 3, 4), axis=0)


@case("reshape_minus1_zero", "Reshape", "shape initializer [0,-1,2]: 0 copies the input dim, -1 inferred")
def _(rng):
    return dict(nodes=simple("Reshape", ["x", "shape"]), inputs=[("x", normal(rng, 2, 3, 4), True)],
                inits={"shape": i64(0, -1, 2)}, outputs=[("y", TensorProto.FLOAT)],
                torch_fn=lambda e: [e["x"].reshape(2, 6, 2)])


@case("transpose_perm", "Transpose", "perm [0,2,3,1] (NCHW -> NHWC)")
def _(rng):
    return _unary("Transpose", lambda x: x.permute(0, 2, 3, 1), normal(rng, 2, 3, 2, 4), perm=[0, 2, 3, 1])


@case("transpose_default", "Transpose", "no perm: reverse the axes")
def _(rng):
    return _unary("Transpose", lambda x: x.permute(2, 1, 0), normal(rng, 2, 3, 4))


@case("squeeze_axes", "Squeeze", "opset 13 axes input [1,-1]: [2,1,3,1] -> [2,3]")
def _(rng):
    return dict(nodes=simple("Squeeze", ["x", "axes"]), inputs=[("x", normal(rng, 2, 1, 3, 1), True)],
                inits={"axes": i64(1, -1)}, outputs=[("y", TensorProto.FLOAT)],
                torch_fn=lambda e: [e["x"].reshape(2, 3)])


@case("squeeze_all", "Squeeze", "no axes: every size-1 dim removed")
def _(rng):
    return _unary("Squeeze", lambda x: x.reshape(3, 2), normal(rng, 1, 3, 1, 2))


@case("unsqueeze_axes", "Unsqueeze", "opset 13 axes input [0,-1]: [2,3] -> [1,2,3,1]")
def _(rng):
    return dict(nodes=simple("Unsqueeze", ["x", "axes"]), inputs=[("x", normal(rng, 2, 3), True)],
                inits={"axes": i64(0, -1)}, outputs=[("y", TensorProto.FLOAT)],
                torch_fn=lambda e: [e["x"].reshape(1, 2, 3, 1)])


@case("concat_axis1_three", "Concat", "three inputs along axis 1 with different sizes")
def _(rng):
    return dict(nodes=simple("Concat", ["a", "b", "c"], axis=1),
                inputs=[("a", normal(rng, 2, 1, 3), True), ("b", normal(rng, 2, 2, 3), True), ("c", normal(rng, 2, 3, 3), True)],
                outputs=[("y", TensorProto.FLOAT)], torch_fn=lambda e: [torch.cat([e["a"], e["b"], e["c"]], 1)])


@case("concat_neg_axis", "Concat", "axis -1")
def _(rng):
    return dict(nodes=simple("Concat", ["a", "b"], axis=-1),
                inputs=[("a", normal(rng, 3, 2), True), ("b", normal(rng, 3, 4), True)],
                outputs=[("y", TensorProto.FLOAT)], torch_fn=lambda e: [torch.cat([e["a"], e["b"]], -1)])


@case("slice_neg_indices_steps", "Slice", "starts [1,-4] ends [1000,-1] axes [0,-1] steps [1,2] on [3,8]")
def _(rng):
    return dict(nodes=simple("Slice", ["x", "starts", "ends", "axes", "steps"]),
                inputs=[("x", normal(rng, 3, 8), True)],
                inits={"starts": i64(1, -4), "ends": i64(1000, -1), "axes": i64(0, -1), "steps": i64(1, 2)},
                outputs=[("y", TensorProto.FLOAT)], torch_fn=lambda e: [e["x"][1:, 4:7:2]])


@case("slice_negative_step", "Slice", "axis 1 reversed: starts [-1] ends [-1000] steps [-1] (x[:, ::-1])")
def _(rng):
    return dict(nodes=simple("Slice", ["x", "starts", "ends", "axes", "steps"]),
                inputs=[("x", normal(rng, 2, 5), True)],
                inits={"starts": i64(-1), "ends": i64(-1000), "axes": i64(1), "steps": i64(-1)},
                outputs=[("y", TensorProto.FLOAT)], torch_fn=lambda e: [torch.flip(e["x"], [1])])


@case("slice_default_axes", "Slice", "only starts/ends [0,1]/[2,3]: axes default to 0..r-1, steps to 1")
def _(rng):
    return dict(nodes=simple("Slice", ["x", "starts", "ends"]),
                inputs=[("x", normal(rng, 3, 4, 2), True)],
                inits={"starts": i64(0, 1), "ends": i64(2, 3)},
                outputs=[("y", TensorProto.FLOAT)], torch_fn=lambda e: [e["x"][0:2, 1:3]])


@case("gather_axis0", "Gather", "axis 0, indices initializer [[0,2],[2,1]] (repeated row: gradients accumulate)")
def _(rng):
    idx = i64(0, 2, 2, 1).reshape(2, 2)
    return dict(nodes=simple("Gather", ["x", "idx"], axis=0), inputs=[("x", normal(rng, 3, 4), True)],
                inits={"idx": idx}, outputs=[("y", TensorProto.FLOAT)],
                torch_fn=lambda e: [e["x"][e["idx"]]])


@case("gather_axis1_neg_index", "Gather", "axis 1, int64 indices [3,-1,0] as a graph input (no gradient)")
def _(rng):
    return dict(nodes=simple("Gather", ["x", "idx"], axis=1),
                inputs=[("x", normal(rng, 2, 4, 3), True), ("idx", i64(3, -1, 0), False)],
                outputs=[("y", TensorProto.FLOAT)],
                torch_fn=lambda e: [e["x"][:, [3, 3, 0]]])


@case("pad_constant_value", "Pad", "mode constant, pads [0,1,2,0,2,1] on [2,3,2], constant_value 0.5")
def _(rng):
    pads = i64(0, 1, 2, 0, 2, 1)
    return dict(nodes=simple("Pad", ["x", "pads", "value"], mode="constant"),
                inputs=[("x", normal(rng, 2, 3, 2), True)],
                inits={"pads": pads, "value": np.array(0.5, np.float32)},
                outputs=[("y", TensorProto.FLOAT)],
                torch_fn=lambda e: [F.pad(e["x"], (2, 1, 1, 2, 0, 0), value=0.5)])


@case("pad_nchw_zero", "Pad", "NCHW spatial pads [0,0,1,1,0,0,1,1], default value 0")
def _(rng):
    return dict(nodes=simple("Pad", ["x", "pads"]), inputs=[("x", normal(rng, 1, 2, 3, 3), True)],
                inits={"pads": i64(0, 0, 1, 1, 0, 0, 1, 1)}, outputs=[("y", TensorProto.FLOAT)],
                torch_fn=lambda e: [F.pad(e["x"], (1, 1, 1, 1))])


@case("identity", "Identity")
def _(rng):
    return _unary("Identity", lambda x: x, normal(rng, 3, 4))


@case("dropout_inference", "Dropout", "opset 13 without training_mode: identity; ratio 0.3 initializer")
def _(rng):
    return dict(nodes=simple("Dropout", ["x", "ratio"]), inputs=[("x", normal(rng, 3, 4), True)],
                inits={"ratio": np.array(0.3, np.float32)}, outputs=[("y", TensorProto.FLOAT)],
                torch_fn=lambda e: [e["x"]])


@case("constant_add", "Constant", "Constant node (value tensor [3]) -> Add with the input")
def _(rng):
    c = normal(rng, 3)
    nodes = [helper.make_node("Constant", [], ["c"], name="constant_0", value=numpy_helper.from_array(c, "c_value")),
             helper.make_node("Add", ["x", "c"], ["y"], name="add_0")]
    return dict(nodes=nodes, inputs=[("x", normal(rng, 2, 3), True)], outputs=[("y", TensorProto.FLOAT)],
                torch_fn=lambda e: [e["x"] + torch.from_numpy(c).double()])


@case("shape", "Shape", "output int64 [4] (no seed, no gradient)")
def _(rng):
    return dict(nodes=simple("Shape", ["x"]), inputs=[("x", normal(rng, 2, 3, 1, 4), False)],
                outputs=[("y", TensorProto.INT64)],
                torch_fn=lambda e: [torch.tensor(list(e["x"].shape), dtype=torch.int64)])


@case("cast_int64_to_float_mul", "Cast", "Cast(int64 input -> float) * float input; grad only for the float input")
def _(rng):
    nodes = [helper.make_node("Cast", ["n"], ["nf"], name="cast_0", to=TensorProto.FLOAT),
             helper.make_node("Mul", ["x", "nf"], ["y"], name="mul_0")]
    return dict(nodes=nodes, inputs=[("x", normal(rng, 2, 3), True), ("n", i64(-2, 0, 3), False)],
                outputs=[("y", TensorProto.FLOAT)],
                torch_fn=lambda e: [e["x"] * e["n"].double()])


@case("cast_float_to_float", "Cast", "Cast float -> float (identity; gradient passes through)")
def _(rng):
    return _unary("Cast", lambda x: x, normal(rng, 3, 2), to=TensorProto.FLOAT)


@case("reducemean_axis1_keep", "ReduceMean", "axes [1], keepdims 1")
def _(rng):
    return _unary("ReduceMean", lambda x: x.mean(1, keepdim=True), normal(rng, 2, 3, 4), axes=[1])


@case("reducemean_neg_axis_nokeep", "ReduceMean", "axes [-1], keepdims 0")
def _(rng):
    return _unary("ReduceMean", lambda x: x.mean(-1), normal(rng, 2, 3, 4), axes=[-1], keepdims=0)


@case("reducemean_all", "ReduceMean", "no axes: all, keepdims 1 -> [1,1,1]")
def _(rng):
    return _unary("ReduceMean", lambda x: x.mean().reshape(1, 1, 1), normal(rng, 2, 3, 4))


@case("reducesum_axes_input", "ReduceSum", "opset 13 axes input [0,2], keepdims 0")
def _(rng):
    return dict(nodes=simple("ReduceSum", ["x", "axes"], keepdims=0), inputs=[("x", normal(rng, 2, 3, 4), True)],
                inits={"axes": i64(0, 2)}, outputs=[("y", TensorProto.FLOAT)],
                torch_fn=lambda e: [e["x"].sum((0, 2))])


@case("reducesum_all", "ReduceSum", "no axes input: reduce all, keepdims 1")
def _(rng):
    return _unary("ReduceSum", lambda x: x.sum().reshape(1, 1), normal(rng, 3, 4))


@case("sum_three_broadcast", "Sum", "three inputs [2,3], [3], [2,1]")
def _(rng):
    return dict(nodes=simple("Sum", ["a", "b", "c"]),
                inputs=[("a", normal(rng, 2, 3), True), ("b", normal(rng, 3), True), ("c", normal(rng, 2, 1), True)],
                outputs=[("y", TensorProto.FLOAT)], torch_fn=lambda e: [e["a"] + e["b"] + e["c"]])


@case("sum_single", "Sum", "one input: identity")
def _(rng):
    return _unary("Sum", lambda x: x, normal(rng, 2, 3))


def _minmax(op, rng, shapes):
    fn = torch.maximum if op == "Max" else torch.minimum
    vals = distinct(rng, sum(int(np.prod(s)) for s in shapes))
    arrays, off = [], 0
    for s in shapes:
        n = int(np.prod(s))
        arrays.append(vals[off:off + n].reshape(s))
        off += n
    names = "abc"[:len(shapes)]

    def tf(e):
        out = e[names[0]]
        for nm in names[1:]:
            out = fn(out, e[nm])
        return [out]
    return dict(nodes=simple(op, list(names)), inputs=[(nm, a, True) for nm, a in zip(names, arrays)],
                outputs=[("y", TensorProto.FLOAT)], torch_fn=tf)


@case("max_broadcast", "Max", "[2,3] vs [3]; all values distinct (unique argmax)")
def _(rng):
    return _minmax("Max", rng, [(2, 3), (3,)])


@case("max_three", "Max", "three inputs [2,3]")
def _(rng):
    return _minmax("Max", rng, [(2, 3), (2, 3), (2, 3)])


@case("min_broadcast", "Min", "[2,1,3] vs [2,3]")
def _(rng):
    return _minmax("Min", rng, [(2, 1, 3), (2, 3)])


@case("min_three", "Min", "three inputs [3], [2,3], [2,1]")
def _(rng):
    return _minmax("Min", rng, [(3,), (2, 3), (2, 1)])


@case("sign", "Sign", "|x| > 0.05; gradient is zero")
def _(rng):
    return _unary("Sign", torch.sign, away_from(rng, (3, 4), [0.0]))


# ---------------------------------------------------------------- driver
def ort_run(model_path, feeds):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model_path, so, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def min_ir_version(opset):
    """The lowest IR version onnx allows for a default-domain opset, and at least IR_VERSION."""
    return max(IR_VERSION, helper.find_min_ir_version_for([helper.make_opsetid("", opset)]))


def build_model(name, spec, out_shapes=None, opset=OPSET, producer="mlaudit-engine-goldens", ir_version=IR_VERSION,
                np2onnx=NP2ONNX):
    """The ONNX model of a case; output shapes are filled in (from onnxruntime's results) on the second call,
    which also runs onnx's checker unless the spec says skip_check. ir_version: a number or a function of the opset."""
    inputs = [helper.make_tensor_value_info(n, np2onnx[a.dtype], list(a.shape)) for n, a, _ in spec["inputs"]]
    shapes = out_shapes or [None] * len(spec["outputs"])
    outputs = [helper.make_tensor_value_info(n, t, s) for (n, t), s in zip(spec["outputs"], shapes)]
    inits = [numpy_helper.from_array(v, k) for k, v in spec.get("inits", {}).items()]
    graph = helper.make_graph(spec["nodes"], name, inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name=producer)
    model.ir_version = ir_version(opset) if callable(ir_version) else ir_version
    if out_shapes is not None and not spec.get("skip_check"):
        onnx.checker.check_model(model, full_check=True)
    return model


def torch_env(spec, arrays):
    env = {}
    for (n, a, want), _ in zip(spec["inputs"], arrays):
        t = torch.from_numpy(np.array(a))
        if t.dtype == torch.float32:
            t = t.double().requires_grad_(want)
        env[n] = t
    for k, v in spec.get("inits", {}).items():
        t = torch.from_numpy(np.array(v))
        env[k] = t.double() if t.dtype == torch.float32 else t
    return env


def fd_check(name, spec, env, input_name, grad, seeds_by_output, h=1e-6, max_coords=64):
    """Central finite differences in float64 of L = sum_k sum(seed_k * out_k) on up to 64 coordinates
    of one input must match autograd (|fd - ag| <= 1e-6 + 1e-5 |ag|: O(h^2) truncation plus
    O(eps/h) rounding is ~1e-9 here). Catches an input drawn too close to a kink."""
    def loss(e):
        outs = spec["torch_fn"](e)
        return sum(float((outs[k].detach() * sd).sum()) for k, sd in seeds_by_output.items())
    base = env[input_name].detach()
    flat = base.reshape(-1)
    coords = range(flat.numel()) if flat.numel() <= max_coords else \
        np.random.default_rng(0).choice(flat.numel(), max_coords, replace=False)
    for c in coords:
        vals = []
        for sgn in (1.0, -1.0):
            x = flat.clone()
            x[c] += sgn * h
            e = dict(env)
            e[input_name] = x.reshape(base.shape)
            vals.append(loss(e))
        fd = (vals[0] - vals[1]) / (2 * h)
        ag = float(grad.reshape(-1)[c])
        if abs(fd - ag) > 1e-6 + 1e-5 * abs(ag):
            raise SystemExit(f"{name}: finite difference {fd} vs autograd {ag} at {input_name}[{c}]")


def check_forward(name, k, o, tn, source="onnxruntime", equal_nan=False):
    """Output k of the reference (`source`) against the torch formula's: float32 to FWD_RTOL/FWD_ATOL, other
    dtypes (integers, bool) exactly."""
    if o.shape != tn.shape:
        raise SystemExit(f"{name}: output {k} shape {source} {o.shape} vs torch {tn.shape}")
    if o.dtype == np.float32:
        if not np.allclose(o, tn, rtol=FWD_RTOL, atol=FWD_ATOL, equal_nan=equal_nan):
            raise SystemExit(f"{name}: output {k} {source} vs torch max diff {np.abs(o - tn).max()}")
    elif not np.array_equal(o.astype(np.int64), tn.astype(np.int64)):
        raise SystemExit(f"{name}: output {k} {source} {o.tolist()} vs torch {tn.tolist()}")


def ort_forward(model_path, spec, feeds, touts):
    return ort_run(model_path, feeds)


def write_case(out_dir, idx, name, op, note, fn, opset=OPSET, seed_base=1000, model_args=None, forward=ort_forward,
               source="onnxruntime", equal_nan=False, meta=None):
    """Write one case: model.onnx, inputs, reference outputs, seeds and autograd VJPs (finite-difference checked
    unless the spec says fd=False); returns its cases.json entry.

    Inputs come from numpy.random.default_rng(seed_base + idx); opset None takes the spec's "opset";
    model_args are build_model's keyword arguments; forward(model_path, spec, feeds, torch outputs) gives the
    reference outputs (named `source` in errors); meta(spec) gives the entry's keys after "op"."""
    rng = np.random.default_rng(seed_base + idx)
    spec = fn(rng)
    opset = spec["opset"] if opset is None else opset
    model_args = dict(model_args or {}, opset=opset)
    case_dir = os.path.join(out_dir, name)
    os.makedirs(case_dir, exist_ok=True)
    model_path = os.path.join(case_dir, "model.onnx")
    onnx.save(build_model(name, spec, **model_args), model_path)
    feeds = {n: a for n, a, _ in spec["inputs"]}
    env = torch_env(spec, [a for _, a, _ in spec["inputs"]])
    touts = spec["torch_fn"](env)
    outs = forward(model_path, spec, feeds, touts)
    onnx.save(build_model(name, spec, [list(o.shape) for o in outs], **model_args), model_path)
    if len(touts) != len(outs):
        raise SystemExit(f"{name}: torch gives {len(touts)} outputs, {source} {len(outs)}")
    seeds, loss, seeds_by_output = [], None, {}
    for k, (o, t) in enumerate(zip(outs, touts)):
        check_forward(name, k, o, t.detach().numpy(), source, equal_nan)
        np.save(os.path.join(case_dir, f"output_{k}.npy"), o)
        if o.dtype == np.float32:
            seed = rng.standard_normal(o.shape).astype(np.float32)
            np.save(os.path.join(case_dir, f"seed_{k}.npy"), seed)
            seeds.append(k)
            seeds_by_output[k] = torch.from_numpy(seed).double()
            term = (t * seeds_by_output[k]).sum()
            loss = term if loss is None else loss + term
    grads = []
    for k, (n, a, want) in enumerate(spec["inputs"]):
        np.save(os.path.join(case_dir, f"input_{k}.npy"), a)
        if want and a.dtype == np.float32:
            t = env[n]
            g = None
            if loss is not None and loss.requires_grad:
                g = torch.autograd.grad(loss, t, retain_graph=True, allow_unused=True)[0]
            g = torch.zeros_like(t) if g is None else g
            if spec.get("fd", True):
                fd_check(name, spec, env, n, g, seeds_by_output)
            # np.array, not np.ascontiguousarray: the latter turns a 0-d gradient into shape (1,).
            np.save(os.path.join(case_dir, f"grad_{k}.npy"), np.array(g.detach().numpy(), dtype=np.float32, order="C"))
            grads.append(k)
    return {"name": name, "op": op, **(meta(spec) if meta else {}), "inputs": len(spec["inputs"]),
            "outputs": len(outs), "grads": grads, "seeds": seeds, "input_names": [n for n, _, _ in spec["inputs"]],
            "input_dtypes": [str(a.dtype) for _, a, _ in spec["inputs"]],
            "output_names": [n for n, _ in spec["outputs"]], "note": note}


def fresh_dir(path):
    if os.path.isdir(path):
        shutil.rmtree(path)
    os.makedirs(path)


def write_cases_json(out_dir, entries):
    with open(os.path.join(out_dir, "cases.json"), "w") as fh:
        json.dump(entries, fh, indent=1)
        fh.write("\n")


def write_readme(out_dir, title, script, doc):
    """README.md: a title and the generating script's docstring, verbatim."""
    with open(os.path.join(out_dir, "README.md"), "w") as fh:
        fh.write(f"# {title}\n\nGenerated by `tools/{script}`; its docstring, verbatim:\n\n```\n" + doc.strip()
                 + "\n```\n")


def part_main(argv, description, subdir, cases, write_one, readme=None, threads=2):
    """main() of a part script (engine_goldens_<part>.py): writes every case of `cases` with
    write_one(out_dir, index, *case) under --out (default tests/fixtures/engine/<subdir>, emptied first),
    cases.json and, given readme=(title, script, docstring), README.md."""
    ap = argparse.ArgumentParser(description=description)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--out", default=os.path.join(root, "tests", "fixtures", "engine", subdir))
    args = ap.parse_args(argv)
    torch.set_num_threads(threads)
    fresh_dir(args.out)
    entries = [write_one(args.out, i, *c) for i, c in enumerate(cases)]
    write_cases_json(args.out, entries)
    if readme:
        write_readme(args.out, *readme)
    ops = sorted({e["op"] for e in entries})
    print(f"wrote {len(entries)} op cases under {args.out} covering {len(ops)} ops: {', '.join(ops)}")
    return 0


class ShapeArith(torch.nn.Module):
    """x.view(x.size(0), -1) followed by a linear map: PyTorch exports Shape -> Gather -> Unsqueeze -> Concat -> Reshape."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(7)
        self.w = torch.nn.Parameter(torch.randn(12, 3, generator=g))

    def forward(self, x):
        return x.view(x.size(0), -1) @ self.w


def write_shape_arith_case(out_dir):
    import inspect
    name = "shape_arith_view_flatten"
    case_dir = os.path.join(out_dir, name)
    os.makedirs(case_dir, exist_ok=True)
    net = ShapeArith().eval()
    rng = np.random.default_rng(999)
    x = normal(rng, 2, 3, 2, 2)
    kwargs = dict(input_names=["input"], output_names=["output"], opset_version=OPSET,
                  dynamic_axes={"input": {0: "N"}, "output": {0: "N"}}, do_constant_folding=False)
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False
    path = os.path.join(case_dir, "model.onnx")
    torch.onnx.export(net, torch.from_numpy(x), path, **kwargs)
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    ops = [n.op_type for n in model.graph.node]
    for need in ("Shape", "Gather", "Unsqueeze", "Concat", "Reshape"):
        if need not in ops:
            raise SystemExit(f"{name}: exported graph lacks {need}: {ops}")
    (o,) = ort_run(path, {"input": x})
    xt = torch.from_numpy(x).double().requires_grad_(True)
    y = xt.reshape(2, -1) @ net.w.detach().double()
    if not np.allclose(o, y.detach().numpy(), rtol=FWD_RTOL, atol=FWD_ATOL):
        raise SystemExit(f"{name}: onnxruntime vs torch differ")
    seed = rng.standard_normal(o.shape).astype(np.float32)
    (g,) = torch.autograd.grad((y * torch.from_numpy(seed).double()).sum(), xt)
    np.save(os.path.join(case_dir, "input_0.npy"), x)
    np.save(os.path.join(case_dir, "output_0.npy"), o)
    np.save(os.path.join(case_dir, "seed_0.npy"), seed)
    np.save(os.path.join(case_dir, "grad_0.npy"), np.ascontiguousarray(g.numpy().astype(np.float32)))
    return {"name": name, "op": "ShapeArithmetic", "inputs": 1, "outputs": 1, "grads": [0], "seeds": [0],
            "input_names": ["input"], "input_dtypes": ["float32"], "output_names": ["output"],
            "note": "torch.onnx.export (TorchScript, opset 13, no constant folding, dynamic batch) of "
                    "x.view(x.size(0), -1) @ W: graph ops " + ", ".join(ops)}


def write_model_goldens(root, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    specs = [("fmnist_cnn", cnn_from_onnx, "fmnist_x.npy", "fmnist_y.npy"),
             ("credit_mlp", mlp_from_onnx, "credit_x.npy", "credit_y.npy")]
    for name, loader, xf, yf in specs:
        onnx_path = os.path.join(root, "models", f"{name}.onnx")
        x = np.load(os.path.join(root, "datasets", "demo", xf))[:8].astype(np.float32)
        y = np.load(os.path.join(root, "datasets", "demo", yf))[:8].astype(np.int64)
        (logits,) = ort_run(onnx_path, {"input": x})
        net = loader(onnx_path).double()
        xt = torch.from_numpy(x).double().requires_grad_(True)
        out = net(xt)
        rel = np.abs(out.detach().numpy() - logits).max() / np.abs(logits).max()
        if rel > 1e-5:
            raise SystemExit(f"{name}: torch (rebuilt from ONNX) vs onnxruntime relative diff {rel}")
        (g,) = torch.autograd.grad(out.gather(1, torch.from_numpy(y)[:, None]).sum(), xt)
        files = {f"{name}_x.npy": x, f"{name}_labels.npy": y, f"{name}_logits.npy": logits,
                 f"{name}_grad.npy": g.numpy().astype(np.float32)}
        for fn, arr in files.items():
            np.save(os.path.join(out_dir, fn), arr)
            print(f"wrote {os.path.join(out_dir, fn)} {arr.dtype} {list(arr.shape)}")
        print(f"  {name}: max rel |torch - ort| logits {rel:.1e}")


def main(argv=None):
    ap = argparse.ArgumentParser(description="Write the engine golden fixtures.")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--out", default=os.path.join(root, "tests", "fixtures", "engine"))
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    write_model_goldens(root, os.path.join(args.out, "models"))
    ops_dir = os.path.join(args.out, "ops")
    fresh_dir(ops_dir)
    entries = [write_case(ops_dir, i, name, op, note, fn) for i, (name, op, note, fn) in enumerate(CASES)]
    entries.append(write_shape_arith_case(ops_dir))
    write_cases_json(ops_dir, entries)
    write_readme(args.out, "Engine golden fixtures", "engine_goldens.py", __doc__)
    print(f"wrote {os.path.join(args.out, 'README.md')}")
    ops = sorted({e["op"] for e in entries})
    print(f"wrote {len(entries)} op cases under {ops_dir} covering {len(ops)} ops: {', '.join(ops)}")
    print(f"wrote {os.path.join(ops_dir, 'cases.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
