#!/usr/bin/env python3
"""Golden op cases for engine/src/ops_rnn.cpp: RNN, GRU and LSTM.

Run from the repository root (CPU, a few seconds):

    ${PYTHON:-.venv/bin/python} tools/engine_goldens_rnn.py [--out tests/fixtures/engine/ops_rnn]

Writes tests/fixtures/engine/ops_rnn/ in the format of tests/fixtures/engine/ops/
(tools/engine_goldens.py, whose model builder, case writer, torch environment and
finite-difference check this script reuses):

  <case>/model.onnx      a one-node ONNX model built with onnx.helper AT THE CASE'S OPSET (field
                         "opset" of cases.json): every since-version of the three ops (LSTM 1, 7,
                         14, 22; GRU 1, 3, 7, 14, 22; RNN 1, 7, 14, 22), directions forward, reverse
                         and bidirectional, with and without B, initial_h, initial_c, P (peepholes),
                         sequence_lens (an int32 initializer, as exporters emit it), GRU
                         linear_before_reset 0 and 1, layout 1 (opset >= 14), clip, input_forget,
                         non-default activations, omitted outputs; plus two models exported by
                         PyTorch's TorchScript exporter (opset 20): a batch_first nn.LSTM and a
                         batch_first nn.GRU classifier (Transpose -> LSTM/GRU -> Squeeze -> Gather -> Gemm);
                         and onnx's own backend node tests of the three ops (test_lstm_*, test_gru_*,
                         test_simple_rnn_*, test_rnn_seq_length: forward only, "forward_reference"
                         "onnx-node-test", outputs from onnx's numpy reference; they are not in
                         tests/fixtures/onnx_node/)
  <case>/input_<k>.npy   k-th graph input (float32): X, W, R, B, initial_h, initial_c, P as present
  <case>/output_<k>.npy  k-th graph output from the reference named by "forward_reference":
                         "onnxruntime" (CPU, optimisations off); "onnx-reference"
                         (onnx.reference.ReferenceEvaluator) where onnxruntime has no kernel for
                         the op at that opset (the pre-7 versions); "torch" (the float64 formula
                         below rounded to float32) for RNN-1, which neither implements (its only
                         difference from RNN-7 is the output_sequence attribute, not set here)
  <case>/seed_<k>.npy    N(0,1) seed for each float output
  <case>/grad_<k>.npy    d/d input_k of sum_j sum(seed_j * output_j), PyTorch autograd in float64
                         through an explicit loop over time written below from the ONNX spec
                         (onnx_rnn), independent of onnxruntime and of the engine; for the
                         exported classifiers, through the PyTorch module itself (float64)

Checks: the torch formula's float64 forward must agree with the reference forward to 1e-5
relative + 1e-6 absolute, or the script fails (this cross-checks onnx_rnn's gate order, bias
placement, sequence_lens handling and layout against onnxruntime); every gradient is checked
against float64 central finite differences of the same formula (engine_goldens.fd_check). Sizes
are tiny: sequence 3-4, batch 2, input 3, hidden 3-4; inputs are drawn with
numpy.random.default_rng(7000 + case index), weights scaled by 0.5.
"""
import functools
import io
import os
import sys

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import engine_goldens as eg  # noqa: E402  (shared driver: model builder, case writer, main)
from engine_goldens import normal, ort_run  # noqa: E402

CASES = []
F = TensorProto.FLOAT


def case(name, op, note=""):
    """Register a case builder: fn(rng) -> dict(nodes, inputs, inits, outputs, torch_fn, opset)."""
    return eg.register(CASES, name, op, note)


# ---------------------------------------------------------------- the torch formula (ONNX spec)

def act_fn(name, alpha=None, beta=None):
    n = name.lower()
    if n == "sigmoid":
        return torch.sigmoid
    if n == "tanh":
        return torch.tanh
    if n == "relu":
        return torch.relu
    if n == "leakyrelu":
        a = 0.01 if alpha is None else alpha
        return lambda x: torch.where(x >= 0, x, a * x)
    if n == "hardsigmoid":
        a, b = (0.2 if alpha is None else alpha), (0.5 if beta is None else beta)
        return lambda x: torch.clamp(a * x + b, 0.0, 1.0)
    if n == "softsign":
        return lambda x: x / (1 + x.abs())
    raise ValueError(name)


def onnx_rnn(cell, e, attrs, names, probe=None):
    """Outputs (Y, Y_h[, Y_c]) of an ONNX RNN/GRU/LSTM node from the spec's equations, as an explicit loop
    over time (per batch row where sequence_lens differ). e: name -> tensor; names: the node's input
    names (X, W, R, B, sequence_lens, initial_h, initial_c, P; "" when omitted); probe: a list that
    receives every pre-activation clip sees (to keep them away from +-clip)."""
    get = lambda k: e[names[k]] if k < len(names) and names[k] else None  # noqa: E731
    X, W, R, Bias, lens, h0, c0, P = (get(k) for k in range(8))
    layout = attrs.get("layout", 0)
    if layout == 1:
        X = X.transpose(0, 1)
        h0 = None if h0 is None else h0.transpose(0, 1)
        c0 = None if c0 is None else c0.transpose(0, 1)
    T, Bn, _ = X.shape
    D, GH, H = R.shape
    direction = attrs.get("direction", "forward")
    clip = attrs.get("clip")
    lbr = attrs.get("linear_before_reset", 0)
    input_forget = attrs.get("input_forget", 0)
    per = {"RNN": 1, "GRU": 2, "LSTM": 3}[cell]
    default = {"RNN": ["Tanh"], "GRU": ["Sigmoid", "Tanh"], "LSTM": ["Sigmoid", "Tanh", "Tanh"]}[cell]
    acts = attrs.get("activations", default * D)
    alphas, betas = list(attrs.get("activation_alpha", [])), list(attrs.get("activation_beta", []))
    fns = []
    for a in acts:
        al = alphas.pop(0) if a.lower() in ("leakyrelu", "hardsigmoid") and alphas else None
        be = betas.pop(0) if a.lower() == "hardsigmoid" and betas else None
        fns.append(act_fn(a, al, be))
    lens = [T] * Bn if lens is None else [int(v) for v in lens]
    def cl(v):
        if probe is not None:
            probe.append(v.detach().reshape(-1))
        return v if clip is None else torch.clamp(v, -clip, clip)
    ys, hs, cs = [], [], []
    for d in range(D):
        f, g, hf = (fns[d * per + k] if k < per else None for k in range(3))
        rev = direction == "reverse" or (direction == "bidirectional" and d == 1)
        Wd, Rd = W[d], R[d]
        wb = Bias[d, :GH] if Bias is not None else torch.zeros(GH, dtype=X.dtype)
        rb = Bias[d, GH:] if Bias is not None else torch.zeros(GH, dtype=X.dtype)
        y = [[None] * Bn for _ in range(T)]
        hfin, cfin = [], []
        for b in range(Bn):
            h = h0[d, b] if h0 is not None else torch.zeros(H, dtype=X.dtype)
            c = c0[d, b] if c0 is not None else torch.zeros(H, dtype=X.dtype)
            for s in range(lens[b]):
                t = lens[b] - 1 - s if rev else s
                x = X[t, b]
                if cell == "RNN":
                    h = f(cl(x @ Wd.T + h @ Rd.T + wb + rb))
                elif cell == "GRU":
                    xz = x @ Wd.T + wb
                    z = f(cl(xz[:H] + h @ Rd[:H].T + rb[:H]))
                    r = f(cl(xz[H:2 * H] + h @ Rd[H:2 * H].T + rb[H:2 * H]))
                    if lbr:
                        hh = g(cl(xz[2 * H:] + r * (h @ Rd[2 * H:].T + rb[2 * H:])))
                    else:
                        hh = g(cl(xz[2 * H:] + (r * h) @ Rd[2 * H:].T + rb[2 * H:]))
                    h = (1 - z) * hh + z * h
                else:
                    a = x @ Wd.T + h @ Rd.T + wb + rb
                    pi, po, pf = (P[d, :H], P[d, H:2 * H], P[d, 2 * H:]) if P is not None else (0, 0, 0)
                    i = f(cl(a[:H] + pi * c))
                    fg = 1 - i if input_forget else f(cl(a[2 * H:3 * H] + pf * c))
                    cc = g(cl(a[3 * H:]))
                    c = fg * c + i * cc
                    o = f(cl(a[H:2 * H] + po * c))
                    h = o * hf(c)
                y[t][b] = h
            hfin.append(h)
            cfin.append(c)
        zero = torch.zeros(H, dtype=X.dtype)
        ys.append(torch.stack([torch.stack([y[t][b] if y[t][b] is not None else zero for b in range(Bn)])
                               for t in range(T)]) if T else torch.zeros(0, Bn, H, dtype=X.dtype))
        hs.append(torch.stack(hfin))
        cs.append(torch.stack(cfin))
    Y, Yh, Yc = torch.stack(ys, 1), torch.stack(hs), torch.stack(cs)  # [T, D, B, H], [D, B, H]
    if layout == 1:
        Y, Yh, Yc = Y.permute(2, 0, 1, 3), Yh.transpose(0, 1), Yc.transpose(0, 1)
    return Y, Yh, Yc


# ---------------------------------------------------------------- case builder

def rnn_case(rng, cell, opset, T=3, batch=2, inp=3, hidden=4, direction="forward", bias=True, init_h=False,
             init_c=False, peep=False, lens=None, outputs=(True, True, True), **attrs):
    """One RNN/GRU/LSTM node: graph inputs X, W, R (B, initial_h, initial_c, P as asked), sequence_lens an
    int32 initializer; outputs Y, Y_h, Y_c where asked (omitted ones are "")."""
    G = {"RNN": 1, "GRU": 3, "LSTM": 4}[cell]
    D = 2 if direction == "bidirectional" else 1
    layout = attrs.get("layout", 0)
    x_shape = (batch, T, inp) if layout else (T, batch, inp)
    st_shape = (batch, D, hidden) if layout else (D, batch, hidden)
    inputs = [("x", normal(rng, *x_shape), True), ("w", normal(rng, D, G * hidden, inp, scale=0.5), True),
              ("r", normal(rng, D, G * hidden, hidden, scale=0.5), True)]
    names = ["x", "w", "r"]
    inits = {}
    if bias:
        inputs.append(("b", normal(rng, D, 2 * G * hidden, scale=0.5), True))
    names.append("b" if bias else "")
    if lens is not None:
        inits["seq_lens"] = np.array(lens, dtype=np.int32)
    names.append("seq_lens" if lens is not None else "")
    if init_h:
        inputs.append(("initial_h", normal(rng, *st_shape, scale=0.5), True))
    names.append("initial_h" if init_h else "")
    if cell == "LSTM":
        if init_c:
            inputs.append(("initial_c", normal(rng, *st_shape, scale=0.5), True))
        names.append("initial_c" if init_c else "")
        if peep:
            inputs.append(("p", normal(rng, D, 3 * hidden, scale=0.5), True))
        names.append("p" if peep else "")
    while names and names[-1] == "":
        names.pop()
    n_out = 3 if cell == "LSTM" else 2
    out_names = [("y", "y_h", "y_c")[k] if outputs[k] else "" for k in range(n_out)]
    while out_names and out_names[-1] == "":
        out_names.pop()
    node_attrs = dict(attrs, hidden_size=hidden)
    if direction != "forward":
        node_attrs["direction"] = direction
    nodes = [helper.make_node(cell, names, out_names, name=f"{cell.lower()}_0", **node_attrs)]

    def torch_fn(e, probe=None):
        env = dict(e)
        if "seq_lens" in env:
            env["seq_lens"] = env["seq_lens"].long()
        # Attributes read from the node at call time (with_clip adds one after building).
        node_attrs = {a.name: helper.get_attribute_value(a) for a in nodes[0].attribute}
        node_attrs = {k: ([x.decode() for x in v] if k == "activations" else
                          v.decode() if isinstance(v, bytes) else v) for k, v in node_attrs.items()}
        outs = onnx_rnn(cell, env, node_attrs, names, probe)
        return [o for o, n in zip(outs, out_names) if n]

    return dict(nodes=nodes, inputs=inputs, inits=inits, outputs=[(n, F) for n in out_names if n],
                torch_fn=torch_fn, opset=opset)


# ---------------------------------------------------------------- LSTM

@case("lstm_forward", "LSTM", "opset 22, forward, B, no initial state")
def _(rng):
    return rnn_case(rng, "LSTM", 22)


@case("lstm_no_bias", "LSTM", "opset 14, forward, no B, initial_h and initial_c")
def _(rng):
    return rnn_case(rng, "LSTM", 14, bias=False, init_h=True, init_c=True)


@case("lstm_bidirectional_init", "LSTM", "opset 14, bidirectional, initial_h and initial_c")
def _(rng):
    return rnn_case(rng, "LSTM", 14, direction="bidirectional", init_h=True, init_c=True)


@case("lstm_reverse_seqlens", "LSTM", "opset 7, reverse, sequence_lens [4, 2], initial states")
def _(rng):
    return rnn_case(rng, "LSTM", 7, T=4, direction="reverse", init_h=True, init_c=True, lens=[4, 2])


@case("lstm_bidirectional_seqlens", "LSTM", "opset 22, bidirectional, sequence_lens [2, 4]")
def _(rng):
    return rnn_case(rng, "LSTM", 22, T=4, direction="bidirectional", lens=[2, 4])


@case("lstm_peepholes", "LSTM", "opset 22, forward, P, initial states, sequence_lens [3, 1]")
def _(rng):
    return rnn_case(rng, "LSTM", 22, init_h=True, init_c=True, peep=True, lens=[3, 1])


@case("lstm_layout1_bidirectional", "LSTM", "opset 14, layout 1 (batch first), bidirectional, initial states, P")
def _(rng):
    return rnn_case(rng, "LSTM", 14, direction="bidirectional", init_h=True, init_c=True, peep=True, layout=1)


@case("lstm_opset1_y_h_only", "LSTM", "opset 1, Y and Y_c omitted (outputs '', 'y_h')")
def _(rng):
    return rnn_case(rng, "LSTM", 1, hidden=3, outputs=(False, True, False))


@case("lstm_input_forget_clip", "LSTM", "opset 22, input_forget 1 (f = 1 - i), clip chosen in [0.8, 2] with "
      "pre-activations >= 0.03 from +-clip")
def _(rng):
    return with_clip(rnn_case(rng, "LSTM", 22, hidden=3, init_h=True, init_c=True, input_forget=1),
                     [0.8 + 0.01 * k for k in range(121)])


@case("lstm_activations", "LSTM", "opset 22, activations HardSigmoid(0.3, 0.6), LeakyRelu(0.1), Softsign")
def _(rng):
    return rnn_case(rng, "LSTM", 22, activations=["HardSigmoid", "LeakyRelu", "Softsign"],
                    activation_alpha=[0.3, 0.1], activation_beta=[0.6])


# ---------------------------------------------------------------- GRU

@case("gru_forward", "GRU", "opset 22, forward, linear_before_reset 0")
def _(rng):
    return rnn_case(rng, "GRU", 22)


@case("gru_lbr1_init", "GRU", "opset 14, linear_before_reset 1, initial_h")
def _(rng):
    return rnn_case(rng, "GRU", 14, init_h=True, linear_before_reset=1)


@case("gru_bidirectional_lbr1_seqlens", "GRU", "opset 22, bidirectional, linear_before_reset 1, sequence_lens [4, 3]")
def _(rng):
    return rnn_case(rng, "GRU", 22, T=4, direction="bidirectional", init_h=True, lens=[4, 3], linear_before_reset=1)


@case("gru_reverse_seqlens", "GRU", "opset 7, reverse, linear_before_reset 0, sequence_lens [1, 3], initial_h")
def _(rng):
    return rnn_case(rng, "GRU", 7, direction="reverse", init_h=True, lens=[1, 3])


@case("gru_bidirectional_no_bias", "GRU", "opset 22, bidirectional, no B, linear_before_reset 0")
def _(rng):
    return rnn_case(rng, "GRU", 22, direction="bidirectional", bias=False)


@case("gru_layout1", "GRU", "opset 14, layout 1, bidirectional, linear_before_reset 1, initial_h")
def _(rng):
    return rnn_case(rng, "GRU", 14, direction="bidirectional", init_h=True, layout=1, linear_before_reset=1)


@case("gru_opset3_lbr1", "GRU", "opset 3, linear_before_reset 1, Y omitted")
def _(rng):
    return rnn_case(rng, "GRU", 3, hidden=3, linear_before_reset=1, outputs=(False, True))


@case("gru_opset1", "GRU", "opset 1 (no linear_before_reset attribute: 0)")
def _(rng):
    return rnn_case(rng, "GRU", 1, hidden=3)


def clip_margin(spec, clip):
    """Smallest distance of the case's pre-activations (at the given clip) to +-clip."""
    node = spec["nodes"][0]
    kept = [a for a in node.attribute if a.name != "clip"]
    del node.attribute[:]
    node.attribute.extend(kept + [helper.make_attribute("clip", float(clip))])
    probe = []
    spec["torch_fn"](eg.torch_env(spec, [a for _, a, _ in spec["inputs"]]), probe)
    return float((torch.cat(probe).abs() - clip).abs().min())


def with_clip(spec, candidates, margin=0.03):
    """The case with clip set to the candidate whose pre-activations stay farthest from +-clip (at least
    `margin`: the C++ finite-difference step 1e-2 * N(0,1) then moves a pre-activation by about 0.01-0.02,
    and a slight crossing costs only O(crossing^2 / step))."""
    best = max(candidates, key=lambda c: clip_margin(spec, c))
    if clip_margin(spec, best) < margin:  # also leaves the node's clip at `best`
        raise SystemExit(f"no clip in {candidates} keeps the pre-activations {margin} from the clamp")
    return spec


@case("gru_clip", "GRU", "opset 22, clip chosen in [0.6, 1.2] with pre-activations >= 0.03 from +-clip, initial_h")
def _(rng):
    return with_clip(rnn_case(rng, "GRU", 22, T=3, hidden=3, init_h=True),
                     [0.6 + 0.02 * k for k in range(31)])


# ---------------------------------------------------------------- RNN

@case("rnn_forward", "RNN", "opset 22, forward, tanh")
def _(rng):
    return rnn_case(rng, "RNN", 22)


@case("rnn_bidirectional_init", "RNN", "opset 14, bidirectional, initial_h")
def _(rng):
    return rnn_case(rng, "RNN", 14, direction="bidirectional", init_h=True)


@case("rnn_reverse_seqlens", "RNN", "opset 7, reverse, sequence_lens [2, 4], initial_h")
def _(rng):
    return rnn_case(rng, "RNN", 7, T=4, direction="reverse", init_h=True, lens=[2, 4])


@case("rnn_bidirectional_seqlens_relu", "RNN", "opset 22, bidirectional, activations Relu, Sigmoid, sequence_lens [3, 2]")
def _(rng):
    return rnn_case(rng, "RNN", 22, direction="bidirectional", lens=[3, 2], activations=["Relu", "Sigmoid"])


@case("rnn_layout1", "RNN", "opset 22, layout 1, initial_h, no B")
def _(rng):
    return rnn_case(rng, "RNN", 22, init_h=True, bias=False, layout=1)


@case("rnn_opset1", "RNN", "opset 1, Y_h omitted")
def _(rng):
    return rnn_case(rng, "RNN", 1, hidden=3, outputs=(True, False))


# ---------------------------------------------------------------- PyTorch exports

class Classifier(torch.nn.Module):
    """batch_first nn.LSTM / nn.GRU over [B, T, 3] and a linear head on the last step."""

    def __init__(self, kind):
        super().__init__()
        self.rnn = getattr(torch.nn, kind)(3, 4, batch_first=True)
        self.fc = torch.nn.Linear(4, 2)

    def forward(self, x):
        y, _ = self.rnn(x)
        return self.fc(y[:, -1])


def exported_case(rng, kind):
    """TorchScript export (opset 20) of Classifier(kind), its nodes and initializers re-wrapped as a case;
    the gradient reference is the module itself in float64."""
    torch.manual_seed(int(rng.integers(1 << 30)))
    module = Classifier(kind).eval()
    x = normal(rng, 2, 4, 3)
    buf = io.BytesIO()
    torch.onnx.export(module, torch.from_numpy(x), buf, dynamo=False, opset_version=20, input_names=["x"],
                      output_names=["logits"])
    m = onnx.load_from_string(buf.getvalue())
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    module64 = module.double()
    return dict(nodes=list(m.graph.node), inputs=[("x", x, True)], inits=inits, outputs=[("logits", F)],
                torch_fn=lambda e: [module64(e["x"])], opset=20)


@case("torch_export_lstm_classifier", "LSTM", "nn.LSTM(3, 4, batch_first) + Linear(4, 2), TorchScript exporter opset 20")
def _(rng):
    return exported_case(rng, "LSTM")


@case("torch_export_gru_classifier", "GRU", "nn.GRU(3, 4, batch_first) + Linear(4, 2), TorchScript exporter opset 20")
def _(rng):
    return exported_case(rng, "GRU")


# ---------------------------------------------------------------- ONNX's own node tests

NODE_TESTS = ["test_gru_defaults", "test_gru_with_initial_bias", "test_gru_seq_length", "test_gru_batchwise",
              "test_gru_reverse", "test_gru_bidirectional", "test_lstm_defaults", "test_lstm_with_initial_bias",
              "test_lstm_with_peepholes", "test_lstm_batchwise", "test_lstm_reverse", "test_lstm_bidirectional",
              "test_simple_rnn_defaults", "test_simple_rnn_with_initial_bias", "test_rnn_seq_length",
              "test_simple_rnn_batchwise", "test_simple_rnn_reverse", "test_simple_rnn_bidirectional"]
for _t in NODE_TESTS:
    CASES.append((_t, {"gru": "GRU", "lstm": "LSTM"}.get(_t.split("_")[1], "RNN"),
                  "ONNX's backend node test (onnx 1.23.2), expected outputs from its numpy reference; forward only",
                  ("onnx-node-test", _t)))


@functools.lru_cache(maxsize=None)
def onnx_node_tests():
    from onnx.backend.test.case.node import collect_testcases
    return {c.name: c for c in collect_testcases(None) if c.name in NODE_TESTS}


def write_node_test(out_dir, name, op, note):
    """One of onnx's generated node tests as a forward-only case (int32 inputs saved as int64, the
    engine's index type)."""
    tc = onnx_node_tests()[name]
    case_dir = os.path.join(out_dir, name)
    os.makedirs(case_dir, exist_ok=True)
    onnx.save(tc.model, os.path.join(case_dir, "model.onnx"))
    ins, outs = tc.data_sets[0]
    for k, a in enumerate(ins):
        np.save(os.path.join(case_dir, f"input_{k}.npy"), a.astype(np.int64) if a.dtype == np.int32 else a)
    for k, a in enumerate(outs):
        np.save(os.path.join(case_dir, f"output_{k}.npy"), a)
    return {"name": name, "op": op, "opset": tc.model.opset_import[0].version, "forward_reference": "onnx-node-test",
            "inputs": len(ins), "outputs": len(outs), "grads": [], "seeds": [],
            "input_names": [i.name for i in tc.model.graph.input],
            "input_dtypes": [str(np.int64 if a.dtype == np.int32 else a.dtype) for a in ins],
            "output_names": [o.name for o in tc.model.graph.output], "note": note}


# ---------------------------------------------------------------- driver

def reference_forward(model_path, spec, feeds, touts):
    """onnxruntime, or onnx.reference where onnxruntime has no kernel for the op at that opset
    (the case's "ref" is updated, so cases.json records the source)."""
    try:
        return ort_run(model_path, feeds)
    except Exception as e:  # onnxruntime's NotImplemented (no kernel for the pre-7 versions)
        if "NOT_IMPLEMENTED" not in str(e) and "not supported" not in str(e).lower() \
                and "not implemented" not in str(e).lower():
            raise
    from onnx.reference import ReferenceEvaluator
    try:
        outs = ReferenceEvaluator(onnx.load(model_path)).run(None, feeds)
        spec["ref"] = "onnx-reference"
        return outs
    except RuntimeError as e:  # "No implementation for operator 'RNN' ... version 1"
        if "No implementation" not in str(e):
            raise
    spec["ref"] = "torch"
    return [np.ascontiguousarray(t.detach().numpy().astype(np.float32)) for t in touts]


def ir_version(opset):
    """The lowest IR version the opset allows, at least 8 (onnx's table lacks opset 3, whose IR is 3)."""
    return eg.min_ir_version(opset) if opset != 3 else eg.IR_VERSION


def write_case(out_dir, idx, name, op, note, fn):
    if isinstance(fn, tuple):
        return write_node_test(out_dir, name, op, note)
    return eg.write_case(out_dir, idx, name, op, note, fn, opset=None, seed_base=7000, forward=reference_forward,
                         source="reference",
                         model_args=dict(producer="mlaudit-engine-goldens-rnn", ir_version=ir_version),
                         meta=lambda spec: {"opset": spec["opset"],
                                            "forward_reference": spec.get("ref", "onnxruntime")})


def main(argv=None):
    return eg.part_main(argv, "Write the RNN/GRU/LSTM op golden fixtures.", "ops_rnn", CASES, write_case,
                        readme=("RNN, GRU and LSTM op fixtures", "engine_goldens_rnn.py", __doc__))


if __name__ == "__main__":
    sys.exit(main())
