#!/usr/bin/env python3
"""Golden op cases for engine/src/ops_index.cpp and the shape ops of engine/src/ops_shape.cpp.

Run from the repository root (CPU, a few seconds):

    ${PYTHON:-.venv/bin/python} tools/engine_goldens_index.py [--out tests/fixtures/engine/ops_index]

Writes tests/fixtures/engine/ops_index/ in the format of tests/fixtures/engine/ops/ (see
tools/engine_goldens.py, whose helpers this script reuses):

  <case>/model.onnx      a one- or few-node ONNX model built with onnx.helper at the opset named in
                         cases.json ("opset"): the newest version of the op AND the older versions
                         whose semantics differ (Split-2/11 attribute, Split-13 input, Split-18
                         num_outputs; TopK-1 attribute k, TopK-10 input K, TopK-11 largest/sorted;
                         Slice-1 attributes; Concat-1 default axis; Pad-2 attributes, Pad-11 inputs,
                         Pad-18 axes, Pad-19 wrap; Reshape-14 allowzero; Squeeze/Unsqueeze-11
                         attribute axes; GatherND-12 batch_dims; ScatterND-16/18 reductions; Shape-15
                         start/end; DepthToSpace-11 modes; ...), IR 8
  <case>/input_<k>.npy   k-th graph input (float32, int64 or bool)
  <case>/output_<k>.npy  k-th graph output computed by onnxruntime (CPU, no graph optimisation)
  <case>/seed_<k>.npy    N(0,1) seed for each float output
  <case>/grad_<k>.npy    d/d input_k of sum_j sum(seed_j * output_j) by PyTorch autograd in float64
                         through an independent torch formula of the op (torch.split, expand, repeat,
                         gather, index_put, cumsum, topk, triu/tril, pixel_shuffle, einsum, numpy.pad
                         index maps, ...), for each float input that wants one
  cases.json             [{"name", "op", "opset", "inputs", "outputs", "grads", "seeds", "input_names",
                           "input_dtypes", "output_names", "note"}]

Checks: each case's torch formula must reproduce onnxruntime's forward (float outputs to
1e-5 relative + 1e-6 absolute, integer and bool outputs exactly), and every saved gradient is
compared against float64 central finite differences of the same formula (engine_goldens.fd_check).
Inputs come from numpy.random.default_rng(2000 + case index); TopK inputs are distinct values so
the selection is stable under the finite-difference step.
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import engine_goldens as eg  # noqa: E402  (shared driver: model builder, case writer, main)
from engine_goldens import boolean, distinct, i64, normal  # noqa: E402
from engine_goldens import simple as node  # noqa: E402

CASES = []


def case(name, op, opset, note=""):
    """Register a case builder fn(rng) -> dict(nodes, inputs, inits, outputs, torch_fn) at an opset."""
    return eg.register(CASES, name, op, opset, note)


def unary(op, fn, x, out_type=TensorProto.FLOAT, grad=True, **attrs):
    return dict(nodes=node(op, ["x"], **attrs), inputs=[("x", x, grad)], outputs=[("y", out_type)],
                torch_fn=lambda e: [fn(e["x"])])


# ---------------------------------------------------------------- Split
@case("split_attr_opset7", "Split", 7, "Split-2: split attribute [1,2] on axis 1 of [2,3,2]")
def _(rng):
    return dict(nodes=node("Split", ["x"], ["a", "b"], axis=1, split=[1, 2]), inputs=[("x", normal(rng, 2, 3, 2), True)],
                outputs=[("a", TensorProto.FLOAT), ("b", TensorProto.FLOAT)],
                torch_fn=lambda e: list(torch.split(e["x"], [1, 2], 1)))


@case("split_attr_neg_axis_opset11", "Split", 11, "Split-11: negative axis -1, split attribute [3,1]")
def _(rng):
    return dict(nodes=node("Split", ["x"], ["a", "b"], axis=-1, split=[3, 1]), inputs=[("x", normal(rng, 2, 4), True)],
                outputs=[("a", TensorProto.FLOAT), ("b", TensorProto.FLOAT)],
                torch_fn=lambda e: list(torch.split(e["x"], [3, 1], -1)))


@case("split_input_opset13", "Split", 13, "Split-13: split input [1,3,2] on axis 1 (three outputs)")
def _(rng):
    return dict(nodes=node("Split", ["x", "split"], ["a", "b", "c"], axis=1), inputs=[("x", normal(rng, 2, 6), True)],
                inits={"split": i64(1, 3, 2)},
                outputs=[("a", TensorProto.FLOAT), ("b", TensorProto.FLOAT), ("c", TensorProto.FLOAT)],
                torch_fn=lambda e: list(torch.split(e["x"], [1, 3, 2], 1)))


@case("split_equal_opset13", "Split", 13, "Split-13: no split input, 2 equal parts (torch.chunk in shufflenet)")
def _(rng):
    return dict(nodes=node("Split", ["x"], ["a", "b"], axis=1), inputs=[("x", normal(rng, 1, 4, 2, 2), True)],
                outputs=[("a", TensorProto.FLOAT), ("b", TensorProto.FLOAT)],
                torch_fn=lambda e: list(torch.chunk(e["x"], 2, 1)))


@case("split_num_outputs_uneven_opset18", "Split", 18, "Split-18: num_outputs 3 on an axis of 5: chunks 2,2,1")
def _(rng):
    return dict(nodes=node("Split", ["x"], ["a", "b", "c"], axis=0, num_outputs=3), inputs=[("x", normal(rng, 5, 2), True)],
                outputs=[("a", TensorProto.FLOAT), ("b", TensorProto.FLOAT), ("c", TensorProto.FLOAT)],
                torch_fn=lambda e: list(torch.split(e["x"], [2, 2, 1], 0)))


@case("split_input_opset18_int64", "Split", 18, "Split-18 with a split input on int64 data")
def _(rng):
    return dict(nodes=node("Split", ["x", "split"], ["a", "b"], axis=0), inputs=[("x", i64(*range(10)).reshape(5, 2), False)],
                inits={"split": i64(4, 1)}, outputs=[("a", TensorProto.INT64), ("b", TensorProto.INT64)],
                torch_fn=lambda e: list(torch.split(e["x"], [4, 1], 0)))


# ---------------------------------------------------------------- Expand, Tile
@case("expand_bcast_opset13", "Expand", 13, "[3,1] expanded by shape [2,1,4] -> [2,3,4] (rank grows, both broadcast)")
def _(rng):
    return dict(nodes=node("Expand", ["x", "shape"]), inputs=[("x", normal(rng, 3, 1), True)], inits={"shape": i64(2, 1, 4)},
                outputs=[("y", TensorProto.FLOAT)], torch_fn=lambda e: [e["x"].expand(2, 3, 4)])


@case("expand_smaller_shape_opset8", "Expand", 8, "Expand-8: [1,3] by shape [2,1] -> [2,3] (shape dim 1 keeps the input's)")
def _(rng):
    return dict(nodes=node("Expand", ["x", "shape"]), inputs=[("x", normal(rng, 1, 3), True)], inits={"shape": i64(2, 1)},
                outputs=[("y", TensorProto.FLOAT)], torch_fn=lambda e: [e["x"].expand(2, 3)])


@case("expand_bool", "Expand", 13, "bool [1,4] -> [3,4] (attention masks)")
def _(rng):
    return dict(nodes=node("Expand", ["x", "shape"]), inputs=[("x", boolean(rng, 1, 4), False)], inits={"shape": i64(3, 4)},
                outputs=[("y", TensorProto.BOOL)], torch_fn=lambda e: [e["x"].expand(3, 4)])


@case("tile_2d_opset13", "Tile", 13, "repeats [2,3] on [2,3] (gradients sum over the copies)")
def _(rng):
    return dict(nodes=node("Tile", ["x", "reps"]), inputs=[("x", normal(rng, 2, 3), True)], inits={"reps": i64(2, 3)},
                outputs=[("y", TensorProto.FLOAT)], torch_fn=lambda e: [e["x"].repeat(2, 3)])


@case("tile_3d_opset6", "Tile", 6, "Tile-6: repeats [1,3,2] on [2,1,3]")
def _(rng):
    return dict(nodes=node("Tile", ["x", "reps"]), inputs=[("x", normal(rng, 2, 1, 3), True)], inits={"reps": i64(1, 3, 2)},
                outputs=[("y", TensorProto.FLOAT)], torch_fn=lambda e: [e["x"].repeat(1, 3, 2)])


# ---------------------------------------------------------------- Range, ConstantOfShape, Size
@case("range_float_opset11", "Range", 11, "float scalars start 0.5, limit 3.0, delta 0.75 -> 4 values")
def _(rng):
    f = lambda v: np.array(v, np.float32)  # noqa: E731
    return dict(nodes=node("Range", ["s", "l", "d"]), inputs=[("s", f(0.5), False), ("l", f(3.0), False), ("d", f(0.75), False)],
                outputs=[("y", TensorProto.FLOAT)],
                torch_fn=lambda e: [torch.arange(0.5, 3.0, 0.75, dtype=torch.float64)])


@case("range_int_negative_delta", "Range", 11, "int64 10 -> 2 by -3: [10, 7, 4]")
def _(rng):
    return dict(nodes=node("Range", ["s", "l", "d"]),
                inputs=[("s", np.array(10, np.int64), False), ("l", np.array(2, np.int64), False), ("d", np.array(-3, np.int64), False)],
                outputs=[("y", TensorProto.INT64)], torch_fn=lambda e: [torch.arange(10, 2, -3)])


@case("range_int_empty", "Range", 11, "int64 start 5 limit 5: empty output")
def _(rng):
    return dict(nodes=node("Range", ["s", "l", "d"]),
                inputs=[("s", np.array(5, np.int64), False), ("l", np.array(5, np.int64), False), ("d", np.array(2, np.int64), False)],
                outputs=[("y", TensorProto.INT64)], torch_fn=lambda e: [torch.arange(5, 5, 2)])


@case("constantofshape_float_opset9", "ConstantOfShape", 9, "value float 1.5, shape [2,3] from a graph input")
def _(rng):
    return dict(nodes=node("ConstantOfShape", ["s"], value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.5])),
                inputs=[("s", i64(2, 3), False)], outputs=[("y", TensorProto.FLOAT)],
                torch_fn=lambda e: [torch.full((2, 3), 1.5, dtype=torch.float64)])


@case("constantofshape_int64_opset20", "ConstantOfShape", 20, "value int64 7, shape [3]")
def _(rng):
    return dict(nodes=node("ConstantOfShape", ["s"], value=helper.make_tensor("v", TensorProto.INT64, [1], [7])),
                inputs=[("s", i64(3), False)], outputs=[("y", TensorProto.INT64)],
                torch_fn=lambda e: [torch.full((3,), 7, dtype=torch.int64)])


@case("constantofshape_default_zero_dim", "ConstantOfShape", 13, "no value (float 0), shape [2,0]: empty output")
def _(rng):
    return dict(nodes=node("ConstantOfShape", ["s"]), inputs=[("s", i64(2, 0), False)], outputs=[("y", TensorProto.FLOAT)],
                torch_fn=lambda e: [torch.zeros((2, 0), dtype=torch.float64)])


@case("size_opset13", "Size", 13, "int64 scalar 24 for [2,3,4]")
def _(rng):
    return unary("Size", lambda x: torch.tensor(x.numel(), dtype=torch.int64), normal(rng, 2, 3, 4), TensorProto.INT64, False)


# ---------------------------------------------------------------- GatherElements, GatherND, ScatterND
@case("gatherelements_axis1_neg", "GatherElements", 13, "axis 1 of [3,4], indices [3,2] with negatives and repeats")
def _(rng):
    idx = np.array([[0, -1], [2, 2], [-4, 1]], np.int64)
    norm = np.where(idx < 0, idx + 4, idx)
    return dict(nodes=node("GatherElements", ["x", "idx"], axis=1), inputs=[("x", normal(rng, 3, 4), True), ("idx", idx, False)],
                outputs=[("y", TensorProto.FLOAT)], torch_fn=lambda e: [torch.gather(e["x"], 1, torch.from_numpy(norm))])


@case("gatherelements_axis0_smaller_opset11", "GatherElements", 11, "axis 0, indices [2,2] inside data [3,3]")
def _(rng):
    idx = np.array([[2, 0], [1, 2]], np.int64)
    return dict(nodes=node("GatherElements", ["x", "idx"], axis=0), inputs=[("x", normal(rng, 3, 3), True)], inits={"idx": idx},
                outputs=[("y", TensorProto.FLOAT)], torch_fn=lambda e: [torch.gather(e["x"], 0, torch.from_numpy(idx))])


@case("gathernd_opset13", "GatherND", 13, "data [2,3,4], index pairs [3,2] (one negative) -> [3,4]")
def _(rng):
    idx = np.array([[0, 1], [1, 2], [1, -1]], np.int64)
    return dict(nodes=node("GatherND", ["x", "idx"]), inputs=[("x", normal(rng, 2, 3, 4), True)], inits={"idx": idx},
                outputs=[("y", TensorProto.FLOAT)], torch_fn=lambda e: [e["x"][[0, 1, 1], [1, 2, 2]]])


@case("gathernd_batch_dims1", "GatherND", 13, "batch_dims 1: data [2,3,4], indices [2,2,1] -> [2,2,4]")
def _(rng):
    idx = np.array([[[2], [0]], [[1], [1]]], np.int64)
    return dict(nodes=node("GatherND", ["x", "idx"], batch_dims=1), inputs=[("x", normal(rng, 2, 3, 4), True)],
                inits={"idx": idx}, outputs=[("y", TensorProto.FLOAT)],
                torch_fn=lambda e: [torch.stack([e["x"][0][[2, 0]], e["x"][1][[1, 1]]])])


@case("gathernd_full_index_opset11", "GatherND", 11, "GatherND-11: full index tuples [2,2] on [3,3] -> scalars [2]")
def _(rng):
    idx = np.array([[2, 1], [0, 0]], np.int64)
    return dict(nodes=node("GatherND", ["x", "idx"]), inputs=[("x", normal(rng, 3, 3), True)], inits={"idx": idx},
                outputs=[("y", TensorProto.FLOAT)], torch_fn=lambda e: [e["x"][[2, 0], [1, 0]]])


def _index_put(data, idx, upd, accumulate=False):
    return data.index_put(tuple(torch.from_numpy(idx[..., c]) for c in range(idx.shape[-1])), upd, accumulate=accumulate)


@case("scatternd_none_opset11", "ScatterND", 11, "rows [1] and [3] of [4,3] replaced; grads for data and updates")
def _(rng):
    idx = np.array([[1], [3]], np.int64)
    return dict(nodes=node("ScatterND", ["x", "idx", "u"]), inputs=[("x", normal(rng, 4, 3), True), ("u", normal(rng, 2, 3), True)],
                inits={"idx": idx}, outputs=[("y", TensorProto.FLOAT)],
                torch_fn=lambda e: [_index_put(e["x"], idx, e["u"])])


@case("scatternd_add_dup_opset16", "ScatterND", 16, "reduction add with a repeated index pair on [3,2]")
def _(rng):
    idx = np.array([[0, 1], [2, 0], [0, 1]], np.int64)
    return dict(nodes=node("ScatterND", ["x", "idx", "u"], reduction="add"),
                inputs=[("x", normal(rng, 3, 2), True), ("u", normal(rng, 3), True)], inits={"idx": idx},
                outputs=[("y", TensorProto.FLOAT)], torch_fn=lambda e: [_index_put(e["x"], idx, e["u"], True)])


@case("scatternd_mul_opset16", "ScatterND", 16, "reduction mul (forward only)")
def _(rng):
    idx = np.array([[1], [0], [1]], np.int64)

    def tf(e):
        out = e["x"].clone()
        for j, (r,) in enumerate(idx):
            out[r] = out[r] * e["u"][j]
        return [out]
    return dict(nodes=node("ScatterND", ["x", "idx", "u"], reduction="mul"),
                inputs=[("x", normal(rng, 2, 3), False), ("u", normal(rng, 3, 3), False)], inits={"idx": idx},
                outputs=[("y", TensorProto.FLOAT)], torch_fn=tf)


@case("scatternd_max_opset18", "ScatterND", 18, "ScatterND-18 reduction max (forward only)")
def _(rng):
    idx = np.array([[0, 0], [1, 2], [0, 0]], np.int64)

    def tf(e):
        out = e["x"].clone()
        for j, (r, c) in enumerate(idx):
            out[r, c] = torch.maximum(out[r, c], e["u"][j])
        return [out]
    return dict(nodes=node("ScatterND", ["x", "idx", "u"], reduction="max"),
                inputs=[("x", normal(rng, 2, 3), False), ("u", normal(rng, 3), False)], inits={"idx": idx},
                outputs=[("y", TensorProto.FLOAT)], torch_fn=tf)


@case("scatternd_min_int64_opset18", "ScatterND", 18, "ScatterND-18 reduction min on int64")
def _(rng):
    idx = np.array([[1], [1]], np.int64)
    data = i64(5, 5, 5, 5, 5, 5).reshape(3, 2)
    upd = i64(7, 3, 4, 9).reshape(2, 2)
    return dict(nodes=node("ScatterND", ["x", "idx", "u"], reduction="min"),
                inputs=[("x", data, False), ("u", upd, False)], inits={"idx": idx}, outputs=[("y", TensorProto.INT64)],
                torch_fn=lambda e: [torch.tensor([[5, 5], [4, 3], [5, 5]], dtype=torch.int64)])


# ---------------------------------------------------------------- CumSum
def _cumsum(x, axis, exclusive=False, reverse=False):
    if reverse:
        x = torch.flip(x, [axis])
    y = torch.cumsum(x, axis)
    if exclusive:
        y = y - x
    return torch.flip(y, [axis]) if reverse else y


@case("cumsum_axis1_opset14", "CumSum", 14, "axis input 1 (0-d int64) on [3,4]")
def _(rng):
    return dict(nodes=node("CumSum", ["x", "axis"]), inputs=[("x", normal(rng, 3, 4), True)], inits={"axis": np.array(1, np.int64)},
                outputs=[("y", TensorProto.FLOAT)], torch_fn=lambda e: [_cumsum(e["x"], 1)])


@case("cumsum_exclusive_reverse_opset11", "CumSum", 11, "CumSum-11: exclusive and reverse, axis -1 on [2,5]")
def _(rng):
    return dict(nodes=node("CumSum", ["x", "axis"], exclusive=1, reverse=1), inputs=[("x", normal(rng, 2, 5), True)],
                inits={"axis": np.array(-1, np.int64)}, outputs=[("y", TensorProto.FLOAT)],
                torch_fn=lambda e: [_cumsum(e["x"], 1, True, True)])


@case("cumsum_exclusive_axis0", "CumSum", 14, "exclusive, axis 0 of [4,2]")
def _(rng):
    return dict(nodes=node("CumSum", ["x", "axis"], exclusive=1), inputs=[("x", normal(rng, 4, 2), True)],
                inits={"axis": np.array(0, np.int64)}, outputs=[("y", TensorProto.FLOAT)],
                torch_fn=lambda e: [_cumsum(e["x"], 0, True)])


@case("cumsum_int64_reverse", "CumSum", 14, "int64 data, reverse, axis 0")
def _(rng):
    return dict(nodes=node("CumSum", ["x", "axis"], reverse=1), inputs=[("x", i64(1, 2, 3, 4, 5, 6).reshape(3, 2), False)],
                inits={"axis": np.array(0, np.int64)}, outputs=[("y", TensorProto.INT64)],
                torch_fn=lambda e: [_cumsum(e["x"], 0, False, True)])


# ---------------------------------------------------------------- TopK
def _topk(op_outputs, x, k, dim, largest=True):
    v, i = torch.topk(x, k, dim, largest=largest, sorted=True)
    return [v, i]


@case("topk_attr_k_opset1", "TopK", 1, "TopK-1: attribute k 2, axis -1 of [3,5]; distinct values")
def _(rng):
    return dict(nodes=node("TopK", ["x"], ["v", "i"], k=2), inputs=[("x", distinct(rng, 3, 5), True)],
                outputs=[("v", TensorProto.FLOAT), ("i", TensorProto.INT64)],
                torch_fn=lambda e: _topk(None, e["x"], 2, -1))


@case("topk_input_k_opset10", "TopK", 10, "TopK-10: K input [2], axis 0 of [4,3]")
def _(rng):
    return dict(nodes=node("TopK", ["x", "k"], ["v", "i"], axis=0), inputs=[("x", distinct(rng, 4, 3), True)],
                inits={"k": i64(2)}, outputs=[("v", TensorProto.FLOAT), ("i", TensorProto.INT64)],
                torch_fn=lambda e: _topk(None, e["x"], 2, 0))


@case("topk_smallest_opset11", "TopK", 11, "TopK-11: largest 0, axis 1 of [2,5,2], K 3")
def _(rng):
    return dict(nodes=node("TopK", ["x", "k"], ["v", "i"], axis=1, largest=0), inputs=[("x", distinct(rng, 2, 5, 2), True)],
                inits={"k": i64(3)}, outputs=[("v", TensorProto.FLOAT), ("i", TensorProto.INT64)],
                torch_fn=lambda e: _topk(None, e["x"], 3, 1, largest=False))


@case("topk_int64_ties", "TopK", 11, "int64 with ties: equal values ordered by lower index")
def _(rng):
    x = i64(3, 1, 3, 2, 3, 1).reshape(1, 6)
    return dict(nodes=node("TopK", ["x", "k"], ["v", "i"]), inputs=[("x", x, False)], inits={"k": i64(4)},
                outputs=[("v", TensorProto.INT64), ("i", TensorProto.INT64)],
                torch_fn=lambda e: [torch.tensor([[3, 3, 3, 2]]), torch.tensor([[0, 2, 4, 3]])])


# ---------------------------------------------------------------- Trilu
@case("trilu_upper_k1", "Trilu", 14, "upper (default), k input 1 on [2,3,4]")
def _(rng):
    return dict(nodes=node("Trilu", ["x", "k"]), inputs=[("x", normal(rng, 2, 3, 4), True)], inits={"k": np.array(1, np.int64)},
                outputs=[("y", TensorProto.FLOAT)], torch_fn=lambda e: [torch.triu(e["x"], 1)])


@case("trilu_lower_neg_k", "Trilu", 14, "upper 0, k -1 on [4,3]")
def _(rng):
    return dict(nodes=node("Trilu", ["x", "k"], upper=0), inputs=[("x", normal(rng, 4, 3), True)], inits={"k": np.array(-1, np.int64)},
                outputs=[("y", TensorProto.FLOAT)], torch_fn=lambda e: [torch.tril(e["x"], -1)])


@case("trilu_lower_no_k_bool", "Trilu", 14, "causal mask: lower, no k, on bool [3,3]")
def _(rng):
    return dict(nodes=node("Trilu", ["x"], upper=0), inputs=[("x", np.ones((3, 3), bool), False)],
                outputs=[("y", TensorProto.BOOL)], torch_fn=lambda e: [torch.tril(e["x"])])


# ---------------------------------------------------------------- DepthToSpace, SpaceToDepth
def _d2s_dcr(x, b):
    n, c, h, w = x.shape
    return x.reshape(n, b, b, c // (b * b), h, w).permute(0, 3, 4, 1, 5, 2).reshape(n, c // (b * b), h * b, w * b)


def _s2d_dcr(x, b):
    n, c, h, w = x.shape
    return x.reshape(n, c, h // b, b, w // b, b).permute(0, 3, 5, 1, 2, 4).reshape(n, c * b * b, h // b, w // b)


@case("depthtospace_dcr_opset13", "DepthToSpace", 13, "mode DCR (default), blocksize 2, [1,8,2,3]")
def _(rng):
    return unary("DepthToSpace", lambda x: _d2s_dcr(x, 2), normal(rng, 1, 8, 2, 3), blocksize=2)


@case("depthtospace_crd_opset13", "DepthToSpace", 13, "mode CRD = torch.pixel_shuffle, blocksize 2, [2,4,2,2]")
def _(rng):
    return unary("DepthToSpace", lambda x: F.pixel_shuffle(x, 2), normal(rng, 2, 4, 2, 2), blocksize=2, mode="CRD")


@case("depthtospace_opset9", "DepthToSpace", 9, "DepthToSpace-1 (no mode: DCR), blocksize 3, [1,9,1,2]")
def _(rng):
    return unary("DepthToSpace", lambda x: _d2s_dcr(x, 3), normal(rng, 1, 9, 1, 2), blocksize=3)


@case("spacetodepth_opset13", "SpaceToDepth", 13, "blocksize 2, [1,2,4,6]")
def _(rng):
    return unary("SpaceToDepth", lambda x: _s2d_dcr(x, 2), normal(rng, 1, 2, 4, 6), blocksize=2)


# ---------------------------------------------------------------- Einsum
def _einsum(eq, *names, shapes):
    def build(rng):
        arrays = [normal(rng, *s) for s in shapes]
        return dict(nodes=node("Einsum", list(names), equation=eq),
                    inputs=[(n, a, True) for n, a in zip(names, arrays)], outputs=[("y", TensorProto.FLOAT)],
                    torch_fn=lambda e: [torch.einsum(eq, *[e[n] for n in names])])
    return build


for _name, _eq, _names, _shapes, _note in [
        ("einsum_batch_matmul", "bij,bjk->bik", "ab", [(2, 3, 4), (2, 4, 5)], "batched matmul"),
        ("einsum_attention_scores", "bhid,bhjd->bhij", "ab", [(1, 2, 3, 4), (1, 2, 5, 4)], "q k^T per head (SDPA lowering)"),
        ("einsum_implicit_matmul", "ij,jk", "ab", [(3, 4), (4, 2)], "implicit output 'ik'"),
        ("einsum_rowwise_dot", "bi,bi->b", "ab", [(3, 4), (3, 4)], "row-wise inner product"),
        ("einsum_transpose", "ij->ji", "a", [(3, 4)], "transpose"),
        ("einsum_trace", "ii", "a", [(3, 3)], "implicit trace -> scalar"),
        ("einsum_diagonal", "ii->i", "a", [(4, 4)], "diagonal"),
        ("einsum_ellipsis_broadcast", "...ij,jk->...ik", "ab", [(2, 3, 4), (4, 5)], "ellipsis batch"),
        ("einsum_three_operands", "ij,jk,kl->il", "abc", [(2, 3), (3, 4), (4, 2)], "chain of three"),
        ("einsum_sum_axis", "ijk->ik", "a", [(2, 3, 4)], "sum over j"),
        ("einsum_outer", "i,j->ij", "ab", [(3,), (4,)], "outer product"),
]:
    case(_name, "Einsum", 12, f"'{_eq}': {_note}")(_einsum(_eq, *_names, shapes=_shapes))


# ---------------------------------------------------------------- NonZero, OneHot
@case("nonzero_float_opset13", "NonZero", 13, "float [2,3] with zeros -> int64 [2, nnz]")
def _(rng):
    x = np.array([[0.0, 1.5, 0.0], [-2.0, 0.0, 3.0]], np.float32)
    return unary("NonZero", lambda x: torch.stack(torch.nonzero(x, as_tuple=True)), x, TensorProto.INT64, False)


@case("nonzero_bool_opset9", "NonZero", 9, "NonZero-9 on bool [4]")
def _(rng):
    x = np.array([True, False, True, True])
    return unary("NonZero", lambda x: torch.stack(torch.nonzero(x, as_tuple=True)), x, TensorProto.INT64, False)


def _one_hot(idx, depth, values, axis):
    norm = torch.where(idx < 0, idx + depth, idx)
    hot = (norm.unsqueeze(-1) == torch.arange(depth)).double()
    hot = torch.movedim(hot, -1, axis)
    return values[0] + (values[1] - values[0]) * hot


@case("onehot_axis_last_opset11", "OneHot", 11, "indices [2,3] with a negative and an out-of-range value, depth 4, "
      "values [off, on] as a float graph input (gradient)")
def _(rng):
    idx = np.array([[0, 3, -1], [5, 1, -4]], np.int64)
    vals = np.array([-0.5, 2.0], np.float32)
    return dict(nodes=node("OneHot", ["idx", "depth", "vals"]), inputs=[("idx", idx, False), ("vals", vals, True)],
                inits={"depth": np.array(4, np.int64)}, outputs=[("y", TensorProto.FLOAT)],
                torch_fn=lambda e: [_one_hot(e["idx"], 4, e["vals"], -1)])


@case("onehot_axis0_opset9", "OneHot", 9, "OneHot-9: axis 0, depth 3, int64 values")
def _(rng):
    idx = np.array([2, 0, 1, 2], np.int64)
    return dict(nodes=node("OneHot", ["idx", "depth", "vals"], axis=0), inputs=[("idx", idx, False)],
                inits={"depth": np.array(3, np.int64), "vals": i64(0, 1)}, outputs=[("y", TensorProto.INT64)],
                torch_fn=lambda e: [_one_hot(e["idx"], 3, torch.tensor([0, 1]), 0).long()])


# ---------------------------------------------------------------- Slice, Gather, Concat
@case("slice_attrs_opset9", "Slice", 9, "Slice-1: starts/ends/axes attributes, end past the dim")
def _(rng):
    return unary("Slice", lambda x: x[:, 1:], normal(rng, 3, 4), starts=[1], ends=[100], axes=[1])


@case("slice_attrs_default_axes_opset7", "Slice", 7, "Slice-1 without axes; negative start")
def _(rng):
    return unary("Slice", lambda x: x[0:2, -2:], normal(rng, 3, 4), starts=[0, -2], ends=[2, 4])


@case("slice_bool_steps", "Slice", 13, "bool data, step 2 and negative axis")
def _(rng):
    return dict(nodes=node("Slice", ["x", "s", "e", "a", "st"]), inputs=[("x", boolean(rng, 3, 6), False)],
                inits={"s": i64(1), "e": i64(6), "a": i64(-1), "st": i64(2)}, outputs=[("y", TensorProto.BOOL)],
                torch_fn=lambda e: [e["x"][:, 1:6:2]])


@case("gather_bool_scalar_index", "Gather", 13, "bool data [3,2], 0-d index -1 on axis 0 -> [2]")
def _(rng):
    return dict(nodes=node("Gather", ["x", "i"]), inputs=[("x", boolean(rng, 3, 2), False)], inits={"i": np.array(-1, np.int64)},
                outputs=[("y", TensorProto.BOOL)], torch_fn=lambda e: [e["x"][-1]])


@case("gather_int64_opset11", "Gather", 11, "Gather-11 on int64 shape values, indices [2,-3]")
def _(rng):
    return dict(nodes=node("Gather", ["x", "i"]), inputs=[("x", i64(4, 5, 6), False)], inits={"i": i64(2, -3)},
                outputs=[("y", TensorProto.INT64)], torch_fn=lambda e: [e["x"][[2, 0]]])


@case("concat_axis1_opset4", "Concat", 4, "Concat-4 axis 1 of [2,1] and [2,2]")
def _(rng):
    return dict(nodes=node("Concat", ["a", "b"], axis=1), inputs=[("a", normal(rng, 2, 1), True), ("b", normal(rng, 2, 2), True)],
                outputs=[("y", TensorProto.FLOAT)], torch_fn=lambda e: [torch.cat([e["a"], e["b"]], 1)])


@case("concat_bool", "Concat", 13, "bool inputs along axis 0")
def _(rng):
    return dict(nodes=node("Concat", ["a", "b"], axis=0), inputs=[("a", boolean(rng, 1, 3), False), ("b", boolean(rng, 2, 3), False)],
                outputs=[("y", TensorProto.BOOL)], torch_fn=lambda e: [torch.cat([e["a"], e["b"]], 0)])


@case("concat_empty_part", "Concat", 13, "one input is empty along the axis: [2,0] and [2,3]")
def _(rng):
    return dict(nodes=node("Concat", ["a", "b"], axis=1),
                inputs=[("a", np.zeros((2, 0), np.float32), True), ("b", normal(rng, 2, 3), True)],
                outputs=[("y", TensorProto.FLOAT)], torch_fn=lambda e: [torch.cat([e["a"], e["b"]], 1)])


# ---------------------------------------------------------------- Reshape, Squeeze, Unsqueeze, Flatten, Transpose
@case("reshape_allowzero_opset14", "Reshape", 14, "allowzero 1: [0,3,4] -> shape [3,4,0] (0 is a size)")
def _(rng):
    return dict(nodes=node("Reshape", ["x", "s"], allowzero=1), inputs=[("x", np.zeros((0, 3, 4), np.float32), True)],
                inits={"s": i64(3, 4, 0)}, outputs=[("y", TensorProto.FLOAT)], torch_fn=lambda e: [e["x"].reshape(3, 4, 0)])


@case("reshape_copy_zero_opset5", "Reshape", 5, "Reshape-5: shape [0,-1] copies dim 0")
def _(rng):
    return dict(nodes=node("Reshape", ["x", "s"]), inputs=[("x", normal(rng, 2, 3, 2), True)], inits={"s": i64(0, -1)},
                outputs=[("y", TensorProto.FLOAT)], torch_fn=lambda e: [e["x"].reshape(2, 6)])


@case("reshape_bool", "Reshape", 13, "bool [2,3] -> [3,2]")
def _(rng):
    return dict(nodes=node("Reshape", ["x", "s"]), inputs=[("x", boolean(rng, 2, 3), False)], inits={"s": i64(3, 2)},
                outputs=[("y", TensorProto.BOOL)], torch_fn=lambda e: [e["x"].reshape(3, 2)])


@case("squeeze_attr_opset11", "Squeeze", 11, "Squeeze-11: axes attribute [-1] on [2,3,1]")
def _(rng):
    return unary("Squeeze", lambda x: x.reshape(2, 3), normal(rng, 2, 3, 1), axes=[-1])


@case("squeeze_attr_opset7", "Squeeze", 7, "Squeeze-1: axes attribute [0,2] on [1,3,1,2]")
def _(rng):
    return unary("Squeeze", lambda x: x.reshape(3, 2), normal(rng, 1, 3, 1, 2), axes=[0, 2])


@case("unsqueeze_attr_opset11", "Unsqueeze", 11, "Unsqueeze-11: axes attribute [1,-1] on [2,3] -> [2,1,3,1]")
def _(rng):
    return unary("Unsqueeze", lambda x: x.reshape(2, 1, 3, 1), normal(rng, 2, 3), axes=[1, -1])


@case("unsqueeze_int64_opset13", "Unsqueeze", 13, "int64 scalar -> [1] (shape arithmetic)")
def _(rng):
    return dict(nodes=node("Unsqueeze", ["x", "a"]), inputs=[("x", np.array(7, np.int64), False)], inits={"a": i64(0)},
                outputs=[("y", TensorProto.INT64)], torch_fn=lambda e: [e["x"].reshape(1)])


@case("flatten_neg_axis_opset11", "Flatten", 11, "Flatten-11: axis -1 on [2,3,4] -> [6,4]")
def _(rng):
    return unary("Flatten", lambda x: x.reshape(6, 4), normal(rng, 2, 3, 4), axis=-1)


@case("transpose_bool", "Transpose", 13, "bool [2,3,1] perm [2,0,1]")
def _(rng):
    return unary("Transpose", lambda x: x.permute(2, 0, 1), boolean(rng, 2, 3, 1), TensorProto.BOOL, False, perm=[2, 0, 1])


@case("channel_shuffle_split", "Split", 13, "shufflenet block: Reshape [1,2,2,2,2] -> Transpose -> Reshape -> Split in 2")
def _(rng):
    nodes = [helper.make_node("Reshape", ["x", "s5"], ["r"], name="reshape_0"),
             helper.make_node("Transpose", ["r"], ["t"], name="transpose_0", perm=[0, 2, 1, 3, 4]),
             helper.make_node("Reshape", ["t", "s4"], ["u"], name="reshape_1"),
             helper.make_node("Split", ["u"], ["a", "b"], name="split_0", axis=1)]

    def tf(e):
        u = e["x"].reshape(1, 2, 2, 2, 2).permute(0, 2, 1, 3, 4).reshape(1, 4, 2, 2)
        return list(torch.chunk(u, 2, 1))
    return dict(nodes=nodes, inputs=[("x", normal(rng, 1, 4, 2, 2), True)], inits={"s5": i64(1, 2, 2, 2, 2), "s4": i64(1, 4, 2, 2)},
                outputs=[("a", TensorProto.FLOAT), ("b", TensorProto.FLOAT)], torch_fn=tf)


# ---------------------------------------------------------------- Pad
def _np_pad_ref(x, pads, mode, value=0.0):
    """Torch formula of ONNX Pad through numpy.pad's index map (negative pads crop afterwards)."""
    r = x.dim()
    shape = tuple(x.shape)
    pos = [(max(pads[k], 0), max(pads[k + r], 0)) for k in range(r)]
    np_mode = {"constant": "constant", "reflect": "reflect", "edge": "edge", "wrap": "wrap"}[mode]
    ids = np.arange(int(np.prod(shape))).reshape(shape)
    kw = {"constant_values": -1} if mode == "constant" else {}
    idx = np.pad(ids, pos, mode=np_mode, **kw)
    crop = tuple(slice(max(-pads[k], 0), idx.shape[k] - max(-pads[k + r], 0)) for k in range(r))
    idx = torch.from_numpy(np.ascontiguousarray(idx[crop]))
    flat = x.reshape(-1)
    gathered = flat[idx.clamp(min=0).reshape(-1)].reshape(idx.shape)
    if mode == "constant":
        return torch.where(idx >= 0, gathered, torch.tensor(value, dtype=x.dtype))
    return gathered


@case("pad_attr_opset7", "Pad", 7, "Pad-2: pads attribute [1,0,0,2] and value 1.5 on [2,3]")
def _(rng):
    return unary("Pad", lambda x: _np_pad_ref(x, [1, 0, 0, 2], "constant", 1.5), normal(rng, 2, 3), pads=[1, 0, 0, 2], value=1.5)


@case("pad_reflect_opset13", "Pad", 13, "mode reflect, pads [0,2,1,0,1,2] on [2,3,4]")
def _(rng):
    pads = [0, 2, 1, 0, 1, 2]
    return dict(nodes=node("Pad", ["x", "p"], mode="reflect"), inputs=[("x", normal(rng, 2, 3, 4), True)], inits={"p": i64(*pads)},
                outputs=[("y", TensorProto.FLOAT)], torch_fn=lambda e: [_np_pad_ref(e["x"], pads, "reflect")])


@case("pad_edge_opset11", "Pad", 11, "Pad-11 mode edge, pads [1,2,2,1] on [2,3]")
def _(rng):
    pads = [1, 2, 2, 1]
    return dict(nodes=node("Pad", ["x", "p"], mode="edge"), inputs=[("x", normal(rng, 2, 3), True)], inits={"p": i64(*pads)},
                outputs=[("y", TensorProto.FLOAT)], torch_fn=lambda e: [_np_pad_ref(e["x"], pads, "edge")])


@case("pad_wrap_opset19", "Pad", 19, "Pad-19 mode wrap, pads [0,1,0,2] on [2,3]")
def _(rng):
    pads = [0, 1, 0, 2]
    return dict(nodes=node("Pad", ["x", "p"], mode="wrap"), inputs=[("x", normal(rng, 2, 3), True)], inits={"p": i64(*pads)},
                outputs=[("y", TensorProto.FLOAT)], torch_fn=lambda e: [_np_pad_ref(e["x"], pads, "wrap")])


@case("pad_axes_opset18", "Pad", 18, "Pad-18 axes input [-1], pads [2,1], constant_value -1 on [2,3]")
def _(rng):
    return dict(nodes=node("Pad", ["x", "p", "v", "a"]), inputs=[("x", normal(rng, 2, 3), True)],
                inits={"p": i64(2, 1), "v": np.array(-1.0, np.float32), "a": i64(-1)}, outputs=[("y", TensorProto.FLOAT)],
                torch_fn=lambda e: [_np_pad_ref(e["x"], [0, 2, 0, 1], "constant", -1.0)])


@case("pad_negative_crop", "Pad", 13, "constant mode with negative pads [-1,1,0,-2] on [3,4] (crop and pad)")
def _(rng):
    pads = [-1, 1, 0, -2]
    return dict(nodes=node("Pad", ["x", "p"]), inputs=[("x", normal(rng, 3, 4), True)], inits={"p": i64(*pads)},
                outputs=[("y", TensorProto.FLOAT)], torch_fn=lambda e: [_np_pad_ref(e["x"], pads, "constant")])


@case("pad_int64_constant", "Pad", 13, "int64 data, constant_value 9")
def _(rng):
    return dict(nodes=node("Pad", ["x", "p", "v"]), inputs=[("x", i64(1, 2, 3, 4).reshape(2, 2), False)],
                inits={"p": i64(0, 1, 1, 0), "v": np.array(9, np.int64)}, outputs=[("y", TensorProto.INT64)],
                torch_fn=lambda e: [torch.tensor([[9, 1, 2], [9, 3, 4], [9, 9, 9]])])


# ---------------------------------------------------------------- Shape, Constant
@case("shape_start_end_opset15", "Shape", 15, "Shape-15: start 1, end -1 of [2,3,4,5] -> [3,4]")
def _(rng):
    return unary("Shape", lambda x: torch.tensor([3, 4]), normal(rng, 2, 3, 4, 5), TensorProto.INT64, False, start=1, end=-1)


@case("constant_value_floats_opset13", "Constant", 13, "Constant value_floats [3] added to the input")
def _(rng):
    c = [0.5, -1.0, 2.0]
    nodes = [helper.make_node("Constant", [], ["c"], name="constant_0", value_floats=c),
             helper.make_node("Add", ["x", "c"], ["y"], name="add_0")]
    return dict(nodes=nodes, inputs=[("x", normal(rng, 2, 3), True)], outputs=[("y", TensorProto.FLOAT)],
                torch_fn=lambda e: [e["x"] + torch.tensor(c, dtype=torch.float64)])


@case("constant_value_int_opset13", "Constant", 13, "Constant value_int 4 as a graph output (int64 scalar)")
def _(rng):
    nodes = [helper.make_node("Constant", [], ["c"], name="constant_0", value_int=4),
             helper.make_node("Add", ["x", "c"], ["y"], name="add_0")]
    return dict(nodes=nodes, inputs=[("x", i64(1, 2), False)], outputs=[("y", TensorProto.INT64)],
                torch_fn=lambda e: [e["x"] + 4])


# ---------------------------------------------------------------- driver
def write_case(out_dir, idx, name, op, opset, note, fn):
    return eg.write_case(out_dir, idx, name, op, note, fn, opset=opset, seed_base=2000,
                         model_args=dict(producer="mlaudit-engine-goldens-index"), meta=lambda spec: {"opset": opset})


def main(argv=None):
    return eg.part_main(argv, "Write the index/shape op golden fixtures.", "ops_index", CASES, write_case,
                        readme=("Index and shape op golden fixtures", "engine_goldens_index.py", __doc__))


if __name__ == "__main__":
    sys.exit(main())
