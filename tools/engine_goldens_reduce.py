#!/usr/bin/env python3
"""Golden op cases for engine/src/ops_reduce.cpp: ReduceMax/Min/Prod/L1/L2/LogSumExp/SumSquare/LogSum,
ArgMax/ArgMin.

Run from the repository root (CPU, a few seconds):

    ${PYTHON:-.venv/bin/python} tools/engine_goldens_reduce.py [--out tests/fixtures/engine/ops_reduce]

Writes tests/fixtures/engine/ops_reduce/ in the format of tests/fixtures/engine/ops/ (see
tools/engine_goldens.py, whose helpers this script reuses):

  <case>/model.onnx      a one- or few-node ONNX model built with onnx.helper at the opset named in
                         cases.json ("opset"), chosen to land on every since-version of the op:
                         Reduce* 1 (opset 10), 11, 12 (Max/Min), 13 with the axes ATTRIBUTE; 18 with
                         the axes INPUT (initializer, or a runtime graph input) and
                         noop_with_empty_axes; ReduceMax/Min 20 (bool); ReduceLogSum/LogSumExp 28;
                         ArgMax/ArgMin 1 (opset 10), 11 (negative axis), 12 and 13 (select_last_index);
                         IR version max(8, the oldest IR that carries the opset)
  <case>/input_<k>.npy   k-th graph input (float32, int64 or bool)
  <case>/output_<k>.npy  k-th graph output computed by onnxruntime (CPU, no graph optimisation)
  <case>/seed_<k>.npy    N(0,1) seed for each float output
  <case>/grad_<k>.npy    d/d input_k of sum_j sum(seed_j * output_j) by PyTorch autograd in float64
                         through an independent torch formula (torch.amax/amin, prod, abs().sum,
                         sqrt of sum of squares, torch.logsumexp, log of sum), for each float input
  cases.json             [{"name", "op", "opset", "inputs", "outputs", "grads", "seeds", "input_names",
                           "input_dtypes", "output_names", "note"}]

Checks: each case's torch formula must reproduce onnxruntime's forward (float outputs to 1e-5
relative + 1e-6 absolute, integer and bool outputs exactly), and every saved gradient is compared
against float64 central finite differences of the same formula (engine_goldens.fd_check), except
in the cases whose note says "ties": there the maximum is attained more than once, the function
has a kink, and the golden is PyTorch's convention (the gradient split evenly among the tied
elements) rather than a derivative. Inputs come from numpy.random.default_rng(3000 + case index):
distinct values for Max/Min/ArgMax (unless ties are the point), |x| > 0.05 for L1 (kink at 0),
positive sums for LogSum, magnitudes in [0.5, 1.5] for Prod (with exact zeros where the case
tests the division-free product gradient).
"""
import os
import sys

import numpy as np
import torch
from onnx import TensorProto, helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import engine_goldens as eg  # noqa: E402  (shared driver: model builder, case writer, main)
from engine_goldens import NP2ONNX, away_from, distinct, i64, normal  # noqa: E402

CASES = []
REDUCTIONS = ["ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSumExp",
              "ReduceSumSquare", "ReduceLogSum"]


def case(name, op, opset, note=""):
    """Register a case builder fn(rng) -> dict(nodes, inputs, inits, outputs, torch_fn[, fd]) at an opset."""
    return eg.register(CASES, name, op, opset, note)


# ---------------------------------------------------------------- torch formulas
def torch_reduce(op, x, dims, keep):
    """The reduction `op` of x over `dims` (a tuple; () is the identity reduction of
    noop_with_empty_axes, where the composite ops still apply their element-wise steps)."""
    if len(dims) == 0:
        return {"ReduceMax": lambda: x, "ReduceMin": lambda: x, "ReduceProd": lambda: x,
                "ReduceL1": lambda: x.abs(), "ReduceL2": lambda: torch.sqrt(x * x),
                "ReduceLogSumExp": lambda: x, "ReduceSumSquare": lambda: x * x,
                "ReduceLogSum": lambda: torch.log(x)}[op]()
    if x.dtype == torch.bool:  # ReduceMax/Min-20: False < True
        return x.any(dims, keep) if op == "ReduceMax" else x.all(dims, keep)
    if op == "ReduceMax":
        return torch.amax(x, dims, keep)
    if op == "ReduceMin":
        return torch.amin(x, dims, keep)
    if op == "ReduceProd":
        for d in sorted(dims, reverse=True):  # descending: earlier dims keep their index without keepdim
            x = x.prod(d, keepdim=keep)
        return x
    if op == "ReduceL1":
        return x.abs().sum(dims, keep)
    if op == "ReduceL2":
        s = (x * x).sum(dims, keep)
        return torch.sqrt(s) if s.is_floating_point() else torch.sqrt(s.double()).trunc().long()
    if op == "ReduceLogSumExp":
        return torch.logsumexp(x, dims, keep)
    if op == "ReduceSumSquare":
        return (x * x).sum(dims, keep)
    if op == "ReduceLogSum":
        return torch.log(x.sum(dims, keep))
    raise ValueError(op)


def dims_of(axes, rank):
    """ONNX axes (None or [] = every axis) as a tuple of non-negative torch dims."""
    if not axes:
        return tuple(range(rank))
    return tuple(sorted(a % rank for a in axes))


def reduce_spec(op, x, opset, axes=None, keepdims=None, noop=None, axes_runtime=False, fd=True):
    """One reduction node: axes as an attribute before opset 18, as an int64 initializer input
    (or, with axes_runtime, a graph input) from 18."""
    attrs = {}
    if keepdims is not None:
        attrs["keepdims"] = keepdims
    if noop is not None:
        attrs["noop_with_empty_axes"] = noop
    inputs, inits, node_inputs = [("x", x, x.dtype == np.float32)], {}, ["x"]
    if axes is not None:
        if opset >= 18:
            node_inputs.append("axes")
            if axes_runtime:
                inputs.append(("axes", i64(*axes), False))
            else:
                inits["axes"] = i64(*axes)
        else:
            attrs["axes"] = list(axes)
    keep = keepdims is None or keepdims != 0
    if noop and not axes:
        dims = ()
    else:
        dims = dims_of(axes, x.ndim)
    elem = NP2ONNX[np.dtype(x.dtype)]
    node = helper.make_node(op, node_inputs, ["y"], name=f"{op.lower()}_0", **attrs)
    return dict(nodes=[node], inputs=inputs, inits=inits, outputs=[("y", elem)],
                torch_fn=lambda e: [torch_reduce(op, e["x"], dims, keep)], fd=fd)


def values_for(op, rng, *shape):
    """Inputs away from each reduction's kinks and poles (see the docstring)."""
    if op in ("ReduceMax", "ReduceMin"):
        return distinct(rng, *shape)
    if op == "ReduceL1":
        return away_from(rng, shape, [0.0])
    if op == "ReduceLogSum":
        return rng.uniform(0.5, 2.0, shape).astype(np.float32)
    if op == "ReduceProd":
        return (rng.uniform(0.5, 1.5, shape) * rng.choice([-1.0, 1.0], shape)).astype(np.float32)
    if op == "ReduceL2":
        return away_from(rng, shape, [0.0])  # the noop case is |x|
    return normal(rng, *shape)


# ---------------------------------------------------------------- reduction cases, every op
def _register_common(op):
    short = op[len("Reduce"):].lower()

    @case(f"{short}_v18_axes_input", op, 18, "axes [1] as an int64 initializer input, keepdims default 1, [2,3,4]")
    def _(rng):
        return reduce_spec(op, values_for(op, rng, 2, 3, 4), 18, axes=[1])

    @case(f"{short}_v18_neg_multi_nokeep", op, 18, "axes [-1, 0] (negative, unsorted), keepdims 0, [2,3,4]")
    def _(rng):
        return reduce_spec(op, values_for(op, rng, 2, 3, 4), 18, axes=[-1, 0], keepdims=0)

    @case(f"{short}_v18_no_axes_all", op, 18, "no axes input, noop_with_empty_axes 0: every axis, keepdims 0")
    def _(rng):
        return reduce_spec(op, values_for(op, rng, 3, 4), 18, keepdims=0)

    @case(f"{short}_v18_noop_empty_axes", op, 18,
          "no axes, noop_with_empty_axes 1: identity reduction (element-wise steps only)")
    def _(rng):
        return reduce_spec(op, values_for(op, rng, 2, 3), 18, noop=1)

    @case(f"{short}_v18_empty_group", op, 18, "[2,0,3] over axis 1: every output is the empty-set value")
    def _(rng):
        x = np.zeros((2, 0, 3), np.float32)
        spec = reduce_spec(op, x, 18, axes=[1])
        ident = {"ReduceMax": -np.inf, "ReduceMin": np.inf, "ReduceProd": 1.0, "ReduceL1": 0.0, "ReduceL2": 0.0,
                 "ReduceLogSumExp": -np.inf, "ReduceSumSquare": 0.0, "ReduceLogSum": -np.inf}[op]
        # torch.amax/amin refuse an empty dim; the empty-set value is ONNX's documented identity.
        spec["torch_fn"] = lambda e: [e["x"].sum(1, keepdim=True) * 0 + ident]
        if np.isinf(ident):  # <seed, -inf> is no function to differentiate: forward only
            spec["inputs"] = [(n, a, False) for n, a, _ in spec["inputs"]]
        return spec

    @case(f"{short}_v13_attr_keep", op, 13, "axes attribute [0, 2], keepdims 1, [2,3,4]")
    def _(rng):
        return reduce_spec(op, values_for(op, rng, 2, 3, 4), 13, axes=[0, 2], keepdims=1)

    @case(f"{short}_v11_attr_neg_nokeep", op, 11, "axes attribute [-2], keepdims 0, [2,3,4]")
    def _(rng):
        return reduce_spec(op, values_for(op, rng, 2, 3, 4), 11, axes=[-2], keepdims=0)

    @case(f"{short}_v1_default_all", op, 10, "opset 10 (since-version 1): no axes attribute = every axis, keepdims 1")
    def _(rng):
        return reduce_spec(op, values_for(op, rng, 2, 3), 10)


for _op in REDUCTIONS:
    _register_common(_op)


@case("l2_v18_runtime_axes", "ReduceL2", 18, "axes [2] fed as a graph input at run time, keepdims 1")
def _(rng):
    return reduce_spec("ReduceL2", normal(rng, 2, 2, 3), 18, axes=[2], axes_runtime=True)


@case("prod_v18_adjacent_axes", "ReduceProd", 18, "axes [1, 2] of [2,3,2,2]: adjacent reduced axes (one merged run)")
def _(rng):
    return reduce_spec("ReduceProd", values_for("ReduceProd", rng, 2, 3, 2, 2), 18, axes=[1, 2])


@case("logsumexp_v13_adjacent_axes", "ReduceLogSumExp", 13, "axes [2, 1] of [2,3,2,2], keepdims 0")
def _(rng):
    return reduce_spec("ReduceLogSumExp", normal(rng, 2, 3, 2, 2), 13, axes=[2, 1], keepdims=0)


@case("max_v18_outer_adjacent_axes", "ReduceMax", 18, "axes [0, 1, 3] of [2,2,3,2]: a merged outer run and a strided one")
def _(rng):
    return reduce_spec("ReduceMax", distinct(rng, 2, 2, 3, 2), 18, axes=[0, 1, 3])


@case("max_v12_attr", "ReduceMax", 12, "since-version 12 (uint8/int8 added): axes attribute [1]")
def _(rng):
    return reduce_spec("ReduceMax", distinct(rng, 3, 4), 12, axes=[1])


@case("min_v12_attr", "ReduceMin", 12, "since-version 12: axes attribute [0], keepdims 0")
def _(rng):
    return reduce_spec("ReduceMin", distinct(rng, 3, 4), 12, axes=[0], keepdims=0)


@case("max_v20_float", "ReduceMax", 20, "since-version 20 with float input, axes [0]")
def _(rng):
    return reduce_spec("ReduceMax", distinct(rng, 3, 4), 20, axes=[0])


@case("min_v20_float_nokeep", "ReduceMin", 20, "since-version 20 with float input, axes [-1], keepdims 0")
def _(rng):
    return reduce_spec("ReduceMin", distinct(rng, 3, 4), 20, axes=[-1], keepdims=0)


@case("max_v20_bool", "ReduceMax", 20, "bool input (False < True: any), axes [1]")
def _(rng):
    x = rng.random((3, 4)) < 0.3
    x[0] = False
    return reduce_spec("ReduceMax", x, 20, axes=[1])


@case("min_v20_bool", "ReduceMin", 20, "bool input (all), axes [1], keepdims 0")
def _(rng):
    x = rng.random((3, 4)) < 0.7
    x[0] = True
    return reduce_spec("ReduceMin", x, 20, axes=[1], keepdims=0)


@case("max_ties_v18", "ReduceMax", 18, "ties: the maximum appears 2 or 3 times per row; the gradient is split evenly")
def _(rng):
    x = np.array([[1.0, 3.0, 3.0, -1.0], [2.0, 2.0, 2.0, 0.5], [0.0, -1.0, 4.0, 1.0]], np.float32)
    return reduce_spec("ReduceMax", x, 18, axes=[1], fd=False)


@case("min_ties_v13", "ReduceMin", 13, "ties: the minimum appears twice in columns; reduce all rows")
def _(rng):
    x = np.array([[1.0, -2.0, 0.5], [1.0, 3.0, 0.5], [2.0, -2.0, 0.7]], np.float32)
    return reduce_spec("ReduceMin", x, 13, axes=[0], keepdims=0, fd=False)


@case("max_ties_all_v11", "ReduceMax", 11, "ties: every element equal, reduce all (gradient 1/n each)")
def _(rng):
    return reduce_spec("ReduceMax", np.full((2, 3), 0.25, np.float32), 11, fd=False)


@case("prod_one_zero", "ReduceProd", 18, "one exact zero per row: its gradient is the product of the others")
def _(rng):
    x = values_for("ReduceProd", rng, 3, 4)
    x[0, 1] = 0.0
    x[2, 3] = 0.0
    return reduce_spec("ReduceProd", x, 18, axes=[1])


@case("prod_two_zeros", "ReduceProd", 13, "two zeros in a row: gradient zero in that row")
def _(rng):
    x = values_for("ReduceProd", rng, 2, 4)
    x[1, 0] = 0.0
    x[1, 2] = 0.0
    return reduce_spec("ReduceProd", x, 13, axes=[1], keepdims=0)


@case("logsumexp_large_stable", "ReduceLogSumExp", 18,
      "values near 100 (exp overflows float32 above 88.7): needs the max-shifted sum")
def _(rng):
    x = (100.0 + rng.uniform(-3, 3, (2, 3))).astype(np.float32)
    x[1, 0] = -100.0
    return reduce_spec("ReduceLogSumExp", x, 18, axes=[1])


@case("logsumexp_v28", "ReduceLogSumExp", 28, "since-version 28 (integer types removed): axes [0]")
def _(rng):
    return reduce_spec("ReduceLogSumExp", normal(rng, 3, 4), 28, axes=[0])


@case("logsum_v28_nokeep", "ReduceLogSum", 28, "since-version 28: axes [1], keepdims 0")
def _(rng):
    return reduce_spec("ReduceLogSum", values_for("ReduceLogSum", rng, 3, 4), 28, axes=[1], keepdims=0)


@case("logsumexp_v28_noop", "ReduceLogSumExp", 28, "since-version 28, noop_with_empty_axes 1 (identity)")
def _(rng):
    return reduce_spec("ReduceLogSumExp", normal(rng, 2, 3), 28, noop=1)


def _ints(rng, *shape, low=-5, high=6):
    return rng.integers(low, high, shape).astype(np.int64)


@case("max_int64_v18", "ReduceMax", 18, "int64 input, axes [1]")
def _(rng):
    return reduce_spec("ReduceMax", _ints(rng, 3, 4), 18, axes=[1])


@case("min_int64_v13", "ReduceMin", 13, "int64 input, axes attribute [0], keepdims 0")
def _(rng):
    return reduce_spec("ReduceMin", _ints(rng, 3, 4), 13, axes=[0], keepdims=0)


@case("prod_int64_v18", "ReduceProd", 18, "int64 input, every axis")
def _(rng):
    return reduce_spec("ReduceProd", _ints(rng, 2, 3, low=-3, high=4), 18, keepdims=0)


@case("sumsquare_int64_v18", "ReduceSumSquare", 18, "int64 input, axes [-1]")
def _(rng):
    return reduce_spec("ReduceSumSquare", _ints(rng, 3, 4), 18, axes=[-1])


@case("l1_int64_v13", "ReduceL1", 13, "int64 input, axes attribute [1]")
def _(rng):
    return reduce_spec("ReduceL1", _ints(rng, 3, 4), 13, axes=[1])


# ---------------------------------------------------------------- composite graphs
@case("l2_normalize_v18", "ReduceL2", 18, "x / ReduceL2(x, axes [-1], keepdims 1): embedding normalisation head")
def _(rng):
    nodes = [helper.make_node("ReduceL2", ["x", "axes"], ["n"], name="reducel2_0"),
             helper.make_node("Div", ["x", "n"], ["y"], name="div_0")]
    return dict(nodes=nodes, inputs=[("x", normal(rng, 2, 5), True)], inits={"axes": i64(-1)},
                outputs=[("y", TensorProto.FLOAT)],
                torch_fn=lambda e: [e["x"] / torch.sqrt((e["x"] * e["x"]).sum(-1, keepdim=True))])


@case("logsumexp_log_softmax_v13", "ReduceLogSumExp", 13,
      "x - ReduceLogSumExp(x, axes [1]): log-probabilities as scikit-learn converters write them")
def _(rng):
    nodes = [helper.make_node("ReduceLogSumExp", ["x"], ["lse"], name="reducelogsumexp_0", axes=[1]),
             helper.make_node("Sub", ["x", "lse"], ["y"], name="sub_0")]
    return dict(nodes=nodes, inputs=[("x", normal(rng, 3, 4, scale=2.0), True)],
                outputs=[("y", TensorProto.FLOAT)], torch_fn=lambda e: [torch.log_softmax(e["x"], 1)])


@case("max_mask_shift_v18", "ReduceMax", 18, "x - ReduceMax(x, axes [-1]): the attention-score shift")
def _(rng):
    nodes = [helper.make_node("ReduceMax", ["x", "axes"], ["m"], name="reducemax_0"),
             helper.make_node("Sub", ["x", "m"], ["y"], name="sub_0")]
    return dict(nodes=nodes, inputs=[("x", distinct(rng, 2, 2, 4), True)], inits={"axes": i64(-1)},
                outputs=[("y", TensorProto.FLOAT)],
                torch_fn=lambda e: [e["x"] - torch.amax(e["x"], -1, True)])


# ---------------------------------------------------------------- ArgMax / ArgMin
def arg_spec(op, x, opset, axis=None, keepdims=None, last=None):
    attrs = {}
    if axis is not None:
        attrs["axis"] = axis
    if keepdims is not None:
        attrs["keepdims"] = keepdims
    if last is not None:
        attrs["select_last_index"] = last
    ax = 0 if axis is None else axis % x.ndim
    keep = keepdims is None or keepdims != 0
    is_max = op == "ArgMax"

    def tf(e):
        v = e["x"].detach()
        if last:  # index of the last extremum: flip, take the first, map back
            n = v.shape[ax]
            flipped = torch.flip(v, [ax])
            idx = n - 1 - (flipped.argmax(ax, keepdim=keep) if is_max else flipped.argmin(ax, keepdim=keep))
        else:
            idx = v.argmax(ax, keepdim=keep) if is_max else v.argmin(ax, keepdim=keep)
        return [idx]
    return dict(nodes=[helper.make_node(op, ["x"], ["y"], name=f"{op.lower()}_0", **attrs)],
                inputs=[("x", x, False)], outputs=[("y", TensorProto.INT64)], torch_fn=tf)


def _ties(rng, *shape):
    """Few distinct values, so every line has repeated extrema."""
    return rng.integers(0, 3, shape).astype(np.float32)


for _op in ("ArgMax", "ArgMin"):
    _s = _op.lower()

    def _reg(op=_op, s=_s):
        @case(f"{s}_v1_default_axis", op, 10, "opset 10 (since-version 1): default axis 0, keepdims 1")
        def _(rng):
            return arg_spec(op, distinct(rng, 3, 4), 10)

        @case(f"{s}_v11_neg_axis_nokeep", op, 11, "axis -1, keepdims 0")
        def _(rng):
            return arg_spec(op, distinct(rng, 2, 3, 4), 11, axis=-1, keepdims=0)

        @case(f"{s}_v11_ties_first", op, 11, "ties: the first index of the extremum (no select_last_index before 12)")
        def _(rng):
            return arg_spec(op, _ties(rng, 4, 5), 11, axis=1)

        @case(f"{s}_v12_select_last", op, 12, "ties with select_last_index 1, axis 0")
        def _(rng):
            return arg_spec(op, _ties(rng, 5, 4), 12, axis=0, last=1)

        @case(f"{s}_v13_select_first_nokeep", op, 13, "ties with select_last_index 0, axis 1, keepdims 0")
        def _(rng):
            return arg_spec(op, _ties(rng, 3, 6), 13, axis=1, keepdims=0, last=0)

        @case(f"{s}_v13_select_last_3d", op, 13, "ties with select_last_index 1, axis 1 of [2,4,3]")
        def _(rng):
            return arg_spec(op, _ties(rng, 2, 4, 3), 13, axis=1, last=1)

        @case(f"{s}_v13_int64", op, 13, "int64 input, axis -2, keepdims 0, ties")
        def _(rng):
            return arg_spec(op, rng.integers(-2, 2, (3, 4)).astype(np.int64), 13, axis=-2, keepdims=0)
    _reg()


# ---------------------------------------------------------------- driver
def write_case(out_dir, idx, name, op, opset, note, fn):
    return eg.write_case(out_dir, idx, name, op, f"opset {opset}: {note}", fn, opset=opset, seed_base=3000,
                         equal_nan=True, meta=lambda spec: {"opset": opset},
                         model_args=dict(producer="mlaudit-engine-goldens-reduce", ir_version=eg.min_ir_version))


def main(argv=None):
    return eg.part_main(argv, "Write the reduction op golden fixtures.", "ops_reduce", CASES, write_case,
                        readme=("Reduction op golden fixtures", "engine_goldens_reduce.py", __doc__), threads=1)


if __name__ == "__main__":
    sys.exit(main())
