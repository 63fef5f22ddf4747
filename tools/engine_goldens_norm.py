#!/usr/bin/env python3
"""Golden op cases for engine/src/ops_norm.cpp and the window ops of ops_nn.cpp: normalisation layers,
ConvTranspose, Resize/Upsample, global pooling, BatchNormalization at each version, 1-D Conv/pooling.

Run from the repository root (CPU, a few seconds):

    .venv/bin/python tools/engine_goldens_norm.py [--out tests/fixtures/engine/ops_norm]

Writes tests/fixtures/engine/ops_norm/ in the format of tools/engine_goldens.py's ops/ folder:

  <case>/model.onnx      a one-node ONNX model built with onnx.helper at the case's opset (the newest
                         version of the op, and older versions whose semantics differ)
  <case>/input_<k>.npy   k-th graph input (float32, or int64); constant parameters are initializers
  <case>/output_<k>.npy  k-th graph output, computed by onnxruntime (CPU) from the float32 inputs
  <case>/seed_<k>.npy    random seed tensor (float32, N(0,1)) for each float output k
  <case>/grad_<k>.npy    vector-Jacobian product d/d input_k of sum_j sum(seed_j * output_j), from
                         PyTorch autograd in float64 through an independent torch formula of the op
                         (F.layer_norm, F.group_norm, F.conv_transpose2d, F.interpolate, ..., or for
                         Resize modes PyTorch lacks, per-axis interpolation matrices built in numpy from
                         the ONNX spec's formulas), for each float input k that wants a gradient
  cases.json             [{"name", "op", "opset", "inputs", "outputs", "grads", "seeds", "input_names",
                           "input_dtypes", "output_names", "note"}]

Checks, as tools/engine_goldens.py: the torch formula's float64 forward must agree with onnxruntime
(1e-5 relative + 1e-6 absolute) or the script fails, so the formula that produces the gradients is
cross-checked against onnxruntime; every gradient is checked against float64 central finite
differences of the same formula. Inputs are drawn with numpy.random.default_rng(2000 + case index);
max-type ops get distinct values, nearest-neighbour Resize cases are piecewise constant in X
(their VJP is a scatter of the seed, still exact).
"""
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from onnx import TensorProto

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import engine_goldens as eg  # noqa: E402  (shared driver: model builder, case writer, main)
from engine_goldens import distinct, i64, normal  # noqa: E402
from engine_goldens import simple as node  # noqa: E402

CASES = []


def case(name, op, opset, note=""):
    """Register a case builder: fn(rng) -> dict(nodes, inputs, inits, outputs, torch_fn[, skip_check])."""
    return eg.register(CASES, name, op, opset, note)


def positive(rng, *shape, low=0.5, high=2.0):
    return rng.uniform(low, high, shape).astype(np.float32)


FLOAT = TensorProto.FLOAT


# ---------------------------------------------------------------- LayerNormalization (17)
def torch_layer_norm(x, scale, bias, axis, eps):
    dims = tuple(range(axis, x.dim()))
    mean = x.mean(dims, keepdim=True)
    var = ((x - mean) ** 2).mean(dims, keepdim=True)
    inv = 1.0 / torch.sqrt(var + eps)
    y = (x - mean) * inv * scale
    return (y + bias if bias is not None else y), mean, inv


@case("layernorm_last_axis", "LayerNormalization", 17, "axis -1 of [2,3,4], Scale and B [4] (transformer)")
def _(rng):
    return dict(nodes=node("LayerNormalization", ["x", "s", "b"]),
                inputs=[("x", normal(rng, 2, 3, 4), True), ("s", normal(rng, 4), True), ("b", normal(rng, 4), True)],
                outputs=[("y", FLOAT)],
                torch_fn=lambda e: [torch_layer_norm(e["x"], e["s"], e["b"], 2, 1e-5)[0]])


@case("layernorm_axis1_stats", "LayerNormalization", 17,
      "axis 1 of [2,3,4], epsilon 1e-3, Scale/B [3,4]; Mean and InvStdDev outputs seeded too")
def _(rng):
    def f(e):
        y, m, inv = torch_layer_norm(e["x"], e["s"], e["b"], 1, 1e-3)
        return [y, m, inv]
    return dict(nodes=node("LayerNormalization", ["x", "s", "b"], ["y", "mean", "inv_std"], axis=1, epsilon=1e-3),
                inputs=[("x", normal(rng, 2, 3, 4), True), ("s", normal(rng, 3, 4), True), ("b", normal(rng, 3, 4), True)],
                outputs=[("y", FLOAT), ("mean", FLOAT), ("inv_std", FLOAT)], torch_fn=f)


@case("layernorm_no_bias_broadcast_scale", "LayerNormalization", 17,
      "no B; axis -2 of [2,3,4] with Scale [1,4] broadcast over the normalised [3,4]")
def _(rng):
    return dict(nodes=node("LayerNormalization", ["x", "s"], axis=-2),
                inputs=[("x", normal(rng, 2, 3, 4), True), ("s", normal(rng, 1, 4), True)],
                outputs=[("y", FLOAT)],
                torch_fn=lambda e: [torch_layer_norm(e["x"], e["s"], None, 1, 1e-5)[0]])


# ---------------------------------------------------------------- Group/InstanceNormalization
@case("groupnorm_v21_per_channel", "GroupNormalization", 21, "2 groups of [2,4,3,3], scale/bias per channel [4]")
def _(rng):
    return dict(nodes=node("GroupNormalization", ["x", "s", "b"], num_groups=2),
                inputs=[("x", normal(rng, 2, 4, 3, 3), True), ("s", normal(rng, 4), True), ("b", normal(rng, 4), True)],
                outputs=[("y", FLOAT)],
                torch_fn=lambda e: [F.group_norm(e["x"], 2, e["s"], e["b"], 1e-5)])


@case("groupnorm_v18_per_group", "GroupNormalization", 18,
      "opset 18: scale/bias per GROUP [2] for 4 channels in 2 groups, epsilon 1e-3, 3-D input [2,4,5]")
def _(rng):
    return dict(nodes=node("GroupNormalization", ["x", "s", "b"], num_groups=2, epsilon=1e-3),
                inputs=[("x", normal(rng, 2, 4, 5), True), ("s", normal(rng, 2), True), ("b", normal(rng, 2), True)],
                outputs=[("y", FLOAT)],
                torch_fn=lambda e: [F.group_norm(e["x"], 2, e["s"].repeat_interleave(2), e["b"].repeat_interleave(2), 1e-3)],
                skip_check=True)


@case("instancenorm_nchw", "InstanceNormalization", 13, "[2,3,4,5], scale and B [3] (InstanceNorm2d affine)")
def _(rng):
    return dict(nodes=node("InstanceNormalization", ["x", "s", "b"]),
                inputs=[("x", normal(rng, 2, 3, 4, 5), True), ("s", normal(rng, 3), True), ("b", normal(rng, 3), True)],
                outputs=[("y", FLOAT)],
                torch_fn=lambda e: [F.instance_norm(e["x"], weight=e["s"], bias=e["b"], eps=1e-5)])


@case("instancenorm_ncw_v22", "InstanceNormalization", 22, "opset 22, 3-D [2,2,6], epsilon 1e-2, params initializers")
def _(rng):
    return dict(nodes=node("InstanceNormalization", ["x", "s", "b"], epsilon=1e-2),
                inputs=[("x", normal(rng, 2, 2, 6), True)], inits={"s": normal(rng, 2), "b": normal(rng, 2)},
                outputs=[("y", FLOAT)],
                torch_fn=lambda e: [F.instance_norm(e["x"], weight=e["s"], bias=e["b"], eps=1e-2)])


# ---------------------------------------------------------------- LpNormalization, MeanVarianceNormalization
@case("lpnorm_p2_last_axis", "LpNormalization", 22, "p 2, axis -1 of [3,4] (opset 22)")
def _(rng):
    return dict(nodes=node("LpNormalization", ["x"]), inputs=[("x", normal(rng, 3, 4), True)],
                outputs=[("y", FLOAT)], torch_fn=lambda e: [e["x"] / e["x"].norm(dim=-1, keepdim=True)])


@case("lpnorm_p1_axis0", "LpNormalization", 13, "p 1, axis 0 of [3,4]; |x| > 0.05 (|.| kink)")
def _(rng):
    return dict(nodes=node("LpNormalization", ["x"], p=1, axis=0),
                inputs=[("x", eg.away_from(rng, (3, 4), [0.0]), True)], outputs=[("y", FLOAT)],
                torch_fn=lambda e: [e["x"] / e["x"].abs().sum(0, keepdim=True)])


def torch_mvn(x, dims):
    m = x.mean(dims, keepdim=True)
    sd = torch.sqrt(((x - m) ** 2).mean(dims, keepdim=True))
    return (x - m) / (sd + 1e-9)


@case("mvn_default_axes", "MeanVarianceNormalization", 13, "default axes [0,2,3] of [2,3,2,3]")
def _(rng):
    return dict(nodes=node("MeanVarianceNormalization", ["x"]), inputs=[("x", normal(rng, 2, 3, 2, 3), True)],
                outputs=[("y", FLOAT)], torch_fn=lambda e: [torch_mvn(e["x"], (0, 2, 3))], skip_check=True)


@case("mvn_last_axis_v9", "MeanVarianceNormalization", 9, "opset 9, axes [2] of [2,3,5]")
def _(rng):
    return dict(nodes=node("MeanVarianceNormalization", ["x"], axes=[2]), inputs=[("x", normal(rng, 2, 3, 5), True)],
                outputs=[("y", FLOAT)], torch_fn=lambda e: [torch_mvn(e["x"], (2,))], skip_check=True)


# ---------------------------------------------------------------- BatchNormalization versions
def bn_formula(x, s, b, m, v, eps):
    """Inference batch norm over axis 1 written out (F.batch_norm has no gradient for the statistics)."""
    shape = [1, -1] + [1] * (x.dim() - 2)
    return (x - m.reshape(shape)) / torch.sqrt(v.reshape(shape) + eps) * s.reshape(shape) + b.reshape(shape)


def bn_params(rng, shape):
    return normal(rng, *shape), normal(rng, *shape), normal(rng, *shape), positive(rng, *shape)


@case("batchnorm_v15_param_grads", "BatchNormalization", 15,
      "opset 15, scale/B/mean/var as graph inputs: gradients for all five inputs")
def _(rng):
    s, b, m, v = bn_params(rng, (3,))
    return dict(nodes=node("BatchNormalization", ["x", "s", "b", "m", "v"], epsilon=1e-3),
                inputs=[("x", normal(rng, 2, 3, 2, 2), True), ("s", s, True), ("b", b, True), ("m", m, True), ("v", v, True)],
                outputs=[("y", FLOAT)],
                torch_fn=lambda e: [bn_formula(e["x"], e["s"], e["b"], e["m"], e["v"], 1e-3)])


@case("batchnorm_v14_training_mode0_2d", "BatchNormalization", 14,
      "opset 14, training_mode 0 explicit, BatchNorm1d on [N,C] = [5,4]")
def _(rng):
    s, b, m, v = bn_params(rng, (4,))
    return dict(nodes=node("BatchNormalization", ["x", "s", "b", "m", "v"], training_mode=0),
                inputs=[("x", normal(rng, 5, 4), True)], inits={"s": s, "b": b, "m": m, "v": v},
                outputs=[("y", FLOAT)],
                torch_fn=lambda e: [F.batch_norm(e["x"], e["m"], e["v"], e["s"], e["b"], False, 0.0, 1e-5)])


@case("batchnorm_v9_ncw", "BatchNormalization", 9, "opset 9 (spatial removed), [2,3,4] (BatchNorm1d on NCL)")
def _(rng):
    s, b, m, v = bn_params(rng, (3,))
    return dict(nodes=node("BatchNormalization", ["x", "s", "b", "m", "v"]),
                inputs=[("x", normal(rng, 2, 3, 4), True)], inits={"s": s, "b": b, "m": m, "v": v},
                outputs=[("y", FLOAT)],
                torch_fn=lambda e: [F.batch_norm(e["x"], e["m"], e["v"], e["s"], e["b"], False, 0.0, 1e-5)])


@case("batchnorm_v7_spatial0", "BatchNormalization", 7,
      "opset 7, spatial 0: statistics per activation, params [C,H,W] = [3,2,2]; grads for x and scale")
def _(rng):
    s, b, m, v = bn_params(rng, (3, 2, 2))
    return dict(nodes=node("BatchNormalization", ["x", "s", "b", "m", "v"], spatial=0),
                inputs=[("x", normal(rng, 2, 3, 2, 2), True), ("s", s, True)], inits={"b": b, "m": m, "v": v},
                outputs=[("y", FLOAT)],
                torch_fn=lambda e: [(e["x"] - e["m"]) / torch.sqrt(e["v"] + 1e-5) * e["s"] + e["b"]])


# ---------------------------------------------------------------- ConvTranspose
def crop2d(y, top, left, h, w):
    return y[..., top:top + h, left:left + w]


@case("convtranspose_stride2_pad_outpad", "ConvTranspose", 22,
      "opset 22, 3x3, strides 2, pads 1, output_padding 1, bias; grads for X, W, B")
def _(rng):
    return dict(nodes=node("ConvTranspose", ["x", "w", "b"], strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1]),
                inputs=[("x", normal(rng, 1, 2, 3, 3), True), ("w", normal(rng, 2, 3, 3, 3, scale=0.5), True),
                        ("b", normal(rng, 3), True)],
                outputs=[("y", FLOAT)],
                torch_fn=lambda e: [F.conv_transpose2d(e["x"], e["w"], e["b"], stride=2, padding=1, output_padding=1)])


@case("convtranspose_group_dilation", "ConvTranspose", 11,
      "opset 11, group 2 (4 in, 4 out channels), dilations 2, strides [1,2], no bias, batch 2")
def _(rng):
    return dict(nodes=node("ConvTranspose", ["x", "w"], group=2, dilations=[2, 2], strides=[1, 2]),
                inputs=[("x", normal(rng, 2, 4, 3, 3), True), ("w", normal(rng, 4, 2, 2, 2, scale=0.5), True)],
                outputs=[("y", FLOAT)],
                torch_fn=lambda e: [F.conv_transpose2d(e["x"], e["w"], None, stride=(1, 2), dilation=2, groups=2)])


@case("convtranspose_output_shape", "ConvTranspose", 13,
      "output_shape [6,6] with 3x3 stride 2 on 3x3 (full 7x7: total padding 1, put at the beginning)")
def _(rng):
    return dict(nodes=node("ConvTranspose", ["x", "w", "b"], strides=[2, 2], output_shape=[6, 6]),
                inputs=[("x", normal(rng, 1, 1, 3, 3), True)],
                inits={"w": normal(rng, 1, 2, 3, 3, scale=0.5), "b": normal(rng, 2)},
                outputs=[("y", FLOAT)],
                torch_fn=lambda e: [crop2d(F.conv_transpose2d(e["x"], e["w"], e["b"], stride=2), 1, 1, 6, 6)])


@case("convtranspose_same_upper", "ConvTranspose", 13,
      "auto_pad SAME_UPPER, 3x3 stride 2 on [1,2,3,4]: output in*stride, the odd padding at the end")
def _(rng):
    return dict(nodes=node("ConvTranspose", ["x", "w"], strides=[2, 2], auto_pad="SAME_UPPER"),
                inputs=[("x", normal(rng, 1, 2, 3, 4), True), ("w", normal(rng, 2, 1, 3, 3, scale=0.5), True)],
                outputs=[("y", FLOAT)],
                torch_fn=lambda e: [crop2d(F.conv_transpose2d(e["x"], e["w"], None, stride=2), 0, 0, 6, 8)])


@case("convtranspose_asym_pads", "ConvTranspose", 13, "asymmetric pads [0,1,1,0], 2x3 kernel")
def _(rng):
    return dict(nodes=node("ConvTranspose", ["x", "w"], pads=[0, 1, 1, 0]),
                inputs=[("x", normal(rng, 1, 2, 3, 3), True), ("w", normal(rng, 2, 2, 2, 3, scale=0.5), True)],
                outputs=[("y", FLOAT)],
                torch_fn=lambda e: [crop2d(F.conv_transpose2d(e["x"], e["w"]), 0, 1, 3, 4)])


@case("convtranspose_1d", "ConvTranspose", 11, "1-D (ConvTranspose1d): [2,2,5], kernel 3, stride 2, pads 1, bias")
def _(rng):
    return dict(nodes=node("ConvTranspose", ["x", "w", "b"], strides=[2], pads=[1, 1]),
                inputs=[("x", normal(rng, 2, 2, 5), True), ("w", normal(rng, 2, 3, 3, scale=0.5), True),
                        ("b", normal(rng, 3), True)],
                outputs=[("y", FLOAT)],
                torch_fn=lambda e: [F.conv_transpose1d(e["x"], e["w"], e["b"], stride=2, padding=1)])


# ---------------------------------------------------------------- Resize / Upsample
# For modes PyTorch lacks, an independent numpy construction of the ONNX spec's per-axis maps:
# M[out, in] with y = M x along the axis (plus an extrapolation mask for tf_crop_and_resize).
def cubic(x, a):
    x = abs(x)
    if x <= 1:
        return (a + 2) * x ** 3 - (a + 3) * x ** 2 + 1
    if x < 2:
        return a * x ** 3 - 5 * a * x ** 2 + 8 * a * x - 4 * a
    return 0.0


def resize_matrix(n_in, n_out, scale, mode="linear", coord="half_pixel", nearest="round_prefer_floor", a=-0.75,
                  exclude_outside=False, antialias=False, roi=(0.0, 1.0), length=None):
    """Interpolation matrix of one axis; `length` is the output width before flooring (default scale * n_in)."""
    length = scale * n_in if length is None else length
    m = np.zeros((n_out, n_in))
    outside = np.zeros(n_out, dtype=bool)
    for i in range(n_out):
        if coord == "half_pixel":
            x = (i + 0.5) / scale - 0.5
        elif coord == "half_pixel_symmetric":
            x = n_in / 2 * (1 - n_out / length) + (i + 0.5) / scale - 0.5
        elif coord == "pytorch_half_pixel":
            x = (i + 0.5) / scale - 0.5 if n_out > 1 else 0.0
        elif coord == "align_corners":
            x = 0.0 if length == 1 else i * (n_in - 1) / (length - 1)
        elif coord == "asymmetric":
            x = i / scale
        elif coord == "tf_crop_and_resize":
            x = roi[0] * (n_in - 1) + (i * (roi[1] - roi[0]) * (n_in - 1) / (length - 1) if length != 1
                                       else 0.5 * (roi[1] - roi[0]) * (n_in - 1))
            if x < 0 or x > n_in - 1:
                outside[i] = True
                continue
        else:
            raise ValueError(coord)
        if mode == "nearest":
            f = math.floor(x)
            frac = x - f
            j = {"round_prefer_floor": f if frac <= 0.5 else f + 1, "round_prefer_ceil": f if frac < 0.5 else f + 1,
                 "floor": f, "ceil": math.ceil(x), "simple": math.ceil(x) if scale < 1 else f}[nearest]
            m[i, min(max(j, 0), n_in - 1)] = 1.0
            continue
        s = min(scale, 1.0) if antialias else 1.0
        support = 2.0 if mode == "cubic" else 1.0
        taps = [j for j in range(math.floor(x - support / s) - 1, math.ceil(x + support / s) + 2)]
        w = np.array([(max(0.0, 1 - abs((j - x) * s)) if mode == "linear" else cubic((j - x) * s, a)) for j in taps])
        if antialias:
            w = w / w.sum()
        if exclude_outside:
            w = np.where([(0 <= j < n_in) for j in taps], w, 0.0)
            w = w / w.sum()
        for j, wj in zip(taps, w):
            m[i, min(max(j, 0), n_in - 1)] += wj
    return m, outside


def apply_axis(x, axis, mat, outside=None, extrapolation=0.0):
    y = torch.movedim(torch.tensordot(torch.from_numpy(mat), x, dims=([1], [axis])), 0, axis)
    if outside is not None and outside.any():
        shape = [1] * y.dim()
        shape[axis] = -1
        y = torch.where(torch.from_numpy(outside).reshape(shape), torch.tensor(extrapolation, dtype=y.dtype), y)
    return y


def resize_fn(mats, extrapolation=0.0):
    """torch_fn applying per-axis matrices {axis: (M, outside)}."""
    def f(e):
        y = e["x"]
        for axis, (mat, outside) in sorted(mats.items()):
            y = apply_axis(y, axis, mat, outside, extrapolation)
        return [y]
    return f


def f32(*v):
    return np.array(v, dtype=np.float32)


@case("resize_nearest_asymmetric_floor_2x", "Resize", 13,
      "nn.Upsample(scale_factor=2, nearest) export: scales [1,1,2,2], asymmetric, nearest_mode floor")
def _(rng):
    return dict(nodes=node("Resize", ["x", "", "scales"], mode="nearest", coordinate_transformation_mode="asymmetric",
                           nearest_mode="floor"),
                inputs=[("x", normal(rng, 1, 2, 3, 4), True)], inits={"scales": f32(1, 1, 2, 2)},
                outputs=[("y", FLOAT)],
                torch_fn=lambda e: [F.interpolate(e["x"], scale_factor=2, mode="nearest")])


@case("resize_bilinear_align_corners_sizes", "Resize", 13,
      "F.interpolate(size=(5,7), bilinear, align_corners=True): sizes input, align_corners")
def _(rng):
    return dict(nodes=node("Resize", ["x", "", "", "sizes"], mode="linear", coordinate_transformation_mode="align_corners"),
                inputs=[("x", normal(rng, 1, 2, 3, 4), True)], inits={"sizes": i64(1, 2, 5, 7)},
                outputs=[("y", FLOAT)],
                torch_fn=lambda e: [F.interpolate(e["x"], size=(5, 7), mode="bilinear", align_corners=True)])


@case("resize_bilinear_pytorch_half_pixel_2x", "Resize", 13,
      "F.interpolate(scale_factor=2, bilinear, align_corners=False): pytorch_half_pixel, scales [1,1,2,2]")
def _(rng):
    return dict(nodes=node("Resize", ["x", "", "scales"], mode="linear",
                           coordinate_transformation_mode="pytorch_half_pixel"),
                inputs=[("x", normal(rng, 2, 1, 3, 3), True)], inits={"scales": f32(1, 1, 2, 2)},
                outputs=[("y", FLOAT)],
                torch_fn=lambda e: [F.interpolate(e["x"], scale_factor=2, mode="bilinear", align_corners=False)])


@case("resize_bilinear_half_pixel_down_sizes", "Resize", 19,
      "opset 19 default half_pixel, linear downsample [6,5] -> sizes [3,2] (no antialias)")
def _(rng):
    return dict(nodes=node("Resize", ["x", "", "", "sizes"], mode="linear"),
                inputs=[("x", normal(rng, 1, 2, 6, 5), True)], inits={"sizes": i64(1, 2, 3, 2)},
                outputs=[("y", FLOAT)],
                torch_fn=lambda e: [F.interpolate(e["x"], size=(3, 2), mode="bilinear", align_corners=False)])


@case("resize_bicubic_half_pixel_v11", "Resize", 11,
      "opset 11 (roi input present, empty), cubic A -0.75, half_pixel, scales 2 (F.interpolate bicubic)")
def _(rng):
    return dict(nodes=node("Resize", ["x", "roi", "scales"], mode="cubic"),
                inputs=[("x", normal(rng, 1, 1, 3, 4), True)],
                inits={"roi": np.zeros(0, np.float32), "scales": f32(1, 1, 2, 2)},
                outputs=[("y", FLOAT)],
                torch_fn=lambda e: [F.interpolate(e["x"], scale_factor=2, mode="bicubic", align_corners=False)])


@case("resize_cubic_exclude_outside_down", "Resize", 13,
      "cubic A -0.5, exclude_outside 1, half_pixel, scales [1,1,0.6,0.8] on [1,1,5,5]")
def _(rng):
    kw = dict(mode="cubic", a=-0.5, exclude_outside=True)
    mats = {2: resize_matrix(5, 3, np.float32(0.6), **kw), 3: resize_matrix(5, 4, np.float32(0.8), **kw)}
    return dict(nodes=node("Resize", ["x", "", "scales"], mode="cubic", cubic_coeff_a=-0.5, exclude_outside=1),
                inputs=[("x", normal(rng, 1, 1, 5, 5), True)], inits={"scales": f32(1, 1, 0.6, 0.8)},
                outputs=[("y", FLOAT)], torch_fn=resize_fn(mats))


@case("resize_nearest_half_pixel_round_prefer_ceil", "Resize", 13,
      "nearest round_prefer_ceil, half_pixel, sizes [1,2,4,3] from [1,2,3,5] (up on H, down on W)")
def _(rng):
    kw = dict(mode="nearest", nearest="round_prefer_ceil")
    mats = {2: resize_matrix(3, 4, 4 / 3, length=4, **kw), 3: resize_matrix(5, 3, 3 / 5, length=3, **kw)}
    return dict(nodes=node("Resize", ["x", "", "", "sizes"], mode="nearest", nearest_mode="round_prefer_ceil"),
                inputs=[("x", normal(rng, 1, 2, 3, 5), True)], inits={"sizes": i64(1, 2, 4, 3)},
                outputs=[("y", FLOAT)], torch_fn=resize_fn(mats))


@case("resize_linear_axes_v18", "Resize", 18, "opset 18 axes [3] only, scales [1.5], linear half_pixel, [1,2,3,4]")
def _(rng):
    mats = {3: resize_matrix(4, 6, 1.5)}
    return dict(nodes=node("Resize", ["x", "", "scales"], mode="linear", axes=[3]),
                inputs=[("x", normal(rng, 1, 2, 3, 4), True)], inits={"scales": f32(1.5)},
                outputs=[("y", FLOAT)], torch_fn=resize_fn(mats))


@case("resize_tf_crop_and_resize_extrapolation", "Resize", 13,
      "linear tf_crop_and_resize, roi beyond the input on W (extrapolation_value 0.5), sizes [1,1,3,4]")
def _(rng):
    roi = f32(0, 0, 0.2, -0.1, 1, 1, 0.8, 1.2)
    mats = {2: resize_matrix(4, 3, 3 / 4, coord="tf_crop_and_resize", roi=(0.2, 0.8), length=3),
            3: resize_matrix(5, 4, 4 / 5, coord="tf_crop_and_resize", roi=(-0.1, 1.2), length=4)}
    return dict(nodes=node("Resize", ["x", "roi", "", "sizes"], mode="linear",
                           coordinate_transformation_mode="tf_crop_and_resize", extrapolation_value=0.5),
                inputs=[("x", normal(rng, 1, 1, 4, 5), True)], inits={"roi": roi, "sizes": i64(1, 1, 3, 4)},
                outputs=[("y", FLOAT)], torch_fn=resize_fn(mats, 0.5))


@case("resize_not_larger_axes_v19", "Resize", 19,
      "keep_aspect_ratio_policy not_larger, axes [2,3], sizes [4,4] on [1,1,3,5]: scale 0.8 -> [2,4]; linear")
def _(rng):
    s = np.float32(4 / 5)
    mats = {2: resize_matrix(3, 2, s), 3: resize_matrix(5, 4, s)}
    return dict(nodes=node("Resize", ["x", "", "", "sizes"], mode="linear", axes=[2, 3],
                           keep_aspect_ratio_policy="not_larger"),
                inputs=[("x", normal(rng, 1, 1, 3, 5), True)], inits={"sizes": i64(4, 4)},
                outputs=[("y", FLOAT)], torch_fn=resize_fn(mats))


@case("resize_linear_antialias_down", "Resize", 18, "opset 18 antialias 1, linear, scales 0.5 on [1,1,6,6]")
def _(rng):
    mats = {2: resize_matrix(6, 3, 0.5, antialias=True), 3: resize_matrix(6, 3, 0.5, antialias=True)}
    return dict(nodes=node("Resize", ["x", "", "scales"], mode="linear", antialias=1),
                inputs=[("x", normal(rng, 1, 1, 6, 6), True)], inits={"scales": f32(1, 1, 0.5, 0.5)},
                outputs=[("y", FLOAT)], torch_fn=resize_fn(mats))


@case("resize_half_pixel_symmetric_v19", "Resize", 19, "opset 19 half_pixel_symmetric, linear, scales 1.7 on W=4")
def _(rng):
    mats = {3: resize_matrix(4, 6, np.float32(1.7), coord="half_pixel_symmetric")}
    return dict(nodes=node("Resize", ["x", "", "scales"], mode="linear",
                           coordinate_transformation_mode="half_pixel_symmetric"),
                inputs=[("x", normal(rng, 1, 2, 2, 4), True)], inits={"scales": f32(1, 1, 1, 1.7)},
                outputs=[("y", FLOAT)], torch_fn=resize_fn(mats))


@case("resize_v10_nearest_down", "Resize", 10,
      "opset 10 (X, scales): asymmetric, nearest rounds up when downsampling; scales 0.6 on W=10")
def _(rng):
    mats = {3: resize_matrix(10, 6, np.float32(0.6), mode="nearest", coord="asymmetric", nearest="simple")}
    return dict(nodes=node("Resize", ["x", "scales"], mode="nearest"),
                inputs=[("x", normal(rng, 1, 1, 2, 10), True)], inits={"scales": f32(1, 1, 1, 0.6)},
                outputs=[("y", FLOAT)], torch_fn=resize_fn(mats))


@case("resize_v10_linear_up", "Resize", 10, "opset 10 linear: asymmetric, clamped at the end; scales [1,1,2,2.5]")
def _(rng):
    mats = {2: resize_matrix(2, 4, 2.0, coord="asymmetric"), 3: resize_matrix(3, 7, np.float32(2.5), coord="asymmetric")}
    return dict(nodes=node("Resize", ["x", "scales"], mode="linear"),
                inputs=[("x", normal(rng, 1, 2, 2, 3), True)], inits={"scales": f32(1, 1, 2, 2.5)},
                outputs=[("y", FLOAT)], torch_fn=resize_fn(mats))


@case("upsample_v9_nearest", "Upsample", 9, "opset 9 scales input [1,1,2,3], nearest")
def _(rng):
    return dict(nodes=node("Upsample", ["x", "scales"], mode="nearest"),
                inputs=[("x", normal(rng, 1, 2, 2, 3), True)], inits={"scales": f32(1, 1, 2, 3)},
                outputs=[("y", FLOAT)],
                torch_fn=lambda e: [F.interpolate(e["x"], scale_factor=(2, 3), mode="nearest")])


@case("upsample_v7_linear", "Upsample", 7, "opset 7 scales attribute [1,1,2,2], linear (asymmetric, clamped)")
def _(rng):
    mats = {2: resize_matrix(2, 4, 2.0, coord="asymmetric"), 3: resize_matrix(3, 6, 2.0, coord="asymmetric")}
    return dict(nodes=node("Upsample", ["x"], mode="linear", scales=[1.0, 1.0, 2.0, 2.0]),
                inputs=[("x", normal(rng, 1, 2, 2, 3), True)],
                outputs=[("y", FLOAT)], torch_fn=resize_fn(mats))


# ---------------------------------------------------------------- global pooling
@case("globalmaxpool", "GlobalMaxPool", 22, "opset 22, [2,3,3,4] distinct values")
def _(rng):
    return dict(nodes=node("GlobalMaxPool", ["x"]), inputs=[("x", distinct(rng, 2, 3, 3, 4), True)],
                outputs=[("y", FLOAT)], torch_fn=lambda e: [e["x"].amax(dim=(2, 3), keepdim=True)])


@case("globalmaxpool_ncw_v1", "GlobalMaxPool", 1, "opset 1, 3-D [2,2,5] distinct values")
def _(rng):
    return dict(nodes=node("GlobalMaxPool", ["x"]), inputs=[("x", distinct(rng, 2, 2, 5), True)],
                outputs=[("y", FLOAT)], torch_fn=lambda e: [e["x"].amax(dim=2, keepdim=True)])


@case("globalaveragepool_ncw_v22", "GlobalAveragePool", 22, "opset 22, 3-D [2,3,5] (AdaptiveAvgPool1d(1))")
def _(rng):
    return dict(nodes=node("GlobalAveragePool", ["x"]), inputs=[("x", normal(rng, 2, 3, 5), True)],
                outputs=[("y", FLOAT)], torch_fn=lambda e: [e["x"].mean(dim=2, keepdim=True)])


# ---------------------------------------------------------------- 1-D Conv / pooling, pooling versions
@case("conv1d_stride_pad_bias", "Conv", 22, "opset 22 Conv1d: [2,3,7], kernel 3, stride 2, pads 1, bias; all grads")
def _(rng):
    return dict(nodes=node("Conv", ["x", "w", "b"], kernel_shape=[3], strides=[2], pads=[1, 1]),
                inputs=[("x", normal(rng, 2, 3, 7), True), ("w", normal(rng, 4, 3, 3, scale=0.5), True),
                        ("b", normal(rng, 4), True)],
                outputs=[("y", FLOAT)],
                torch_fn=lambda e: [F.conv1d(e["x"], e["w"], e["b"], stride=2, padding=1)])


@case("conv1d_groups_dilation_v1", "Conv", 1, "opset 1 Conv1d, groups 2, dilation 2, asymmetric pads [2,1], no bias")
def _(rng):
    return dict(nodes=node("Conv", ["x", "w"], group=2, dilations=[2], pads=[2, 1]),
                inputs=[("x", normal(rng, 1, 4, 6), True), ("w", normal(rng, 2, 2, 3, scale=0.5), True)],
                outputs=[("y", FLOAT)],
                torch_fn=lambda e: [F.conv1d(F.pad(e["x"], (2, 1)), e["w"], None, dilation=2, groups=2)])


@case("conv2d_same_upper_v11", "Conv", 11, "opset 11 auto_pad SAME_UPPER, 3x3 stride 2 on 5x6")
def _(rng):
    # out = ceil(in/2): H 3 (total pad 2: 1,1), W 3 (total pad 1: 0 begin, 1 end)
    return dict(nodes=node("Conv", ["x", "w"], strides=[2, 2], auto_pad="SAME_UPPER"),
                inputs=[("x", normal(rng, 1, 2, 5, 6), True), ("w", normal(rng, 3, 2, 3, 3, scale=0.5), True)],
                outputs=[("y", FLOAT)],
                torch_fn=lambda e: [F.conv2d(F.pad(e["x"], (0, 1, 1, 1)), e["w"], None, stride=2)])


@case("maxpool1d_pad", "MaxPool", 12, "opset 12 MaxPool1d: kernel 3, stride 2, pads 1, [2,2,7] distinct")
def _(rng):
    return dict(nodes=node("MaxPool", ["x"], kernel_shape=[3], strides=[2], pads=[1, 1]),
                inputs=[("x", distinct(rng, 2, 2, 7), True)], outputs=[("y", FLOAT)],
                torch_fn=lambda e: [F.max_pool1d(e["x"], 3, 2, padding=1)])


@case("maxpool1d_ceil_dilation_v22", "MaxPool", 22, "opset 22 MaxPool1d kernel 2, dilation 2, stride 2, ceil_mode")
def _(rng):
    return dict(nodes=node("MaxPool", ["x"], kernel_shape=[2], strides=[2], dilations=[2], ceil_mode=1),
                inputs=[("x", distinct(rng, 1, 2, 8), True)], outputs=[("y", FLOAT)],
                torch_fn=lambda e: [F.max_pool1d(e["x"], 2, 2, dilation=2, ceil_mode=True)])


@case("maxpool_v8_indices", "MaxPool", 8, "opset 8 with the Indices output (flat NCHW index), 2x2 stride 2 on 4x5")
def _(rng):
    def f(e):
        y, idx = F.max_pool2d(e["x"], 2, 2, return_indices=True)
        n, c, h, w = e["x"].shape
        base = (torch.arange(n * c).reshape(n, c, 1, 1) * h * w)
        return [y, idx + base]
    return dict(nodes=node("MaxPool", ["x"], ["y", "indices"], kernel_shape=[2, 2], strides=[2, 2]),
                inputs=[("x", distinct(rng, 2, 2, 4, 5), True)],
                outputs=[("y", FLOAT), ("indices", TensorProto.INT64)], torch_fn=f)


@case("maxpool_v10_ceil_dilation", "MaxPool", 10, "opset 10 ceil_mode 1, dilations [2,1], kernel 2, stride 2, 6x5")
def _(rng):
    return dict(nodes=node("MaxPool", ["x"], kernel_shape=[2, 2], strides=[2, 2], dilations=[2, 1], ceil_mode=1),
                inputs=[("x", distinct(rng, 1, 2, 6, 5), True)], outputs=[("y", FLOAT)],
                torch_fn=lambda e: [F.max_pool2d(e["x"], 2, 2, dilation=(2, 1), ceil_mode=True)])


@case("averagepool1d_exclude_pad", "AveragePool", 11, "opset 11 AvgPool1d kernel 3 stride 2 pads 1, count_include_pad 0")
def _(rng):
    return dict(nodes=node("AveragePool", ["x"], kernel_shape=[3], strides=[2], pads=[1, 1]),
                inputs=[("x", normal(rng, 2, 2, 7), True)], outputs=[("y", FLOAT)],
                torch_fn=lambda e: [F.avg_pool1d(e["x"], 3, 2, padding=1, count_include_pad=False)])


@case("averagepool_v7_include_pad", "AveragePool", 7, "opset 7 count_include_pad 1, kernel 3 stride 2 pads 1")
def _(rng):
    return dict(nodes=node("AveragePool", ["x"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1),
                inputs=[("x", normal(rng, 1, 2, 5, 5), True)], outputs=[("y", FLOAT)],
                torch_fn=lambda e: [F.avg_pool2d(e["x"], 3, 2, padding=1, count_include_pad=True)])


@case("averagepool_v10_ceil", "AveragePool", 10, "opset 10 ceil_mode 1, kernel 2 stride 2 on 5x5 (partial windows)")
def _(rng):
    return dict(nodes=node("AveragePool", ["x"], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1),
                inputs=[("x", normal(rng, 1, 2, 5, 5), True)], outputs=[("y", FLOAT)],
                torch_fn=lambda e: [F.avg_pool2d(e["x"], 2, 2, ceil_mode=True, count_include_pad=False)])


@case("averagepool_v19_dilations", "AveragePool", 19, "opset 19 dilations [2,2], kernel 2, stride 1 on 5x5")
def _(rng):
    def f(e):
        cols = F.unfold(e["x"], 2, dilation=2)  # [N, C*4, L]
        n, c = e["x"].shape[:2]
        return [cols.reshape(n, c, 4, -1).mean(2).reshape(n, c, 3, 3)]
    return dict(nodes=node("AveragePool", ["x"], kernel_shape=[2, 2], dilations=[2, 2]),
                inputs=[("x", normal(rng, 1, 2, 5, 5), True)], outputs=[("y", FLOAT)], torch_fn=f)


# ---------------------------------------------------------------- driver
def ir_version(opset):
    return 8 if opset <= 18 else 9 if opset <= 20 else 10


# skip_check in a spec: onnx's checker refuses deprecated op versions (GroupNormalization-18) and fails in its
# own function-body inference for MeanVarianceNormalization; onnxruntime runs both.
def write_case(out_dir, idx, name, op, opset, note, fn):
    return eg.write_case(out_dir, idx, name, op, note, fn, opset=opset, seed_base=2000,
                         model_args=dict(producer="mlaudit-engine-goldens-norm", ir_version=ir_version),
                         meta=lambda spec: {"opset": opset})


def main(argv=None):
    return eg.part_main(argv, "Write the ops_norm golden fixtures.", "ops_norm", CASES, write_case)


if __name__ == "__main__":
    sys.exit(main())
