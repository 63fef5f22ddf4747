#!/usr/bin/env python3
"""Export the model zoo of tests/fixtures/zoo/: small models as today's exporters write them.

"Models users bring": PyTorch models through both torch exporters (the TorchScript-based
`torch.onnx.export(..., dynamo=False)` and the torch.export/dynamo-based
`torch.onnx.export(..., dynamo=True)`, each at its default opset), scikit-learn models through
skl2onnx, XGBoost and LightGBM through onnxmltools. Every model is tiny (random init with fixed
seeds, narrow widths, small inputs): the point is the graph the exporter writes, not accuracy.

Python: $PYTHON, else the repo-local virtualenv .venv/ (the script re-executes itself under it
when started by another interpreter). Recipe (CPU wheel index first; PyPI when it is not reachable):

    python3.11 -m venv .venv
    .venv/bin/pip install onnx==1.23.2 onnxruntime numpy
    .venv/bin/pip install torch==2.15.0 torchvision==0.29.2 --index-url https://download.pytorch.org/whl/cpu \\
        || .venv/bin/pip install torch==2.15.0 torchvision==0.29.2
    .venv/bin/pip install scikit-learn skl2onnx onnxmltools xgboost lightgbm onnxscript
    nice ${PYTHON:-.venv/bin/python} tools/export_zoo.py [--out tests/fixtures/zoo] [--only NAME,...]

Writes per model tests/fixtures/zoo/<name>/:
  model.onnx
  input_b1.npy, input_b7.npy          the inputs at batch 1 and 7 (float32, or int64 for token ids)
  out<k>_b1.npy, out<k>_b7.npy        onnxruntime's output k (tensor outputs only; a ZipMap
                                      sequence-of-maps output is recorded in the manifest, not saved)
  extra<k>_b1.npy, extra<k>_b7.npy    onnxruntime's value of the probability tensor a ZipMap reads
                                      (manifest "extra_outputs": the engine exposes it as an output)
  for differentiable (torch) models:
  w<k>_b1.npy, w<k>_b7.npy            fixed random seed vectors, one per output
  grad_b1.npy, grad_b7.npy            PyTorch's d sum_k sum(output_k * w_k) / d input (float32)
and tests/fixtures/zoo/manifest.json: per model its family, exporter and version, opset_import,
inputs (name/shape/dtype), outputs (name/kind/dtype, whether compared, golden files),
tolerances with the reason, the op histogram, and measured agreement numbers (onnxruntime vs
PyTorch forward, float32 vs float64 PyTorch gradient) that justify the tolerances.

Deterministic: every model, dataset, input and seed vector comes from fixed seeds; torch runs
single-threaded with deterministic algorithms.
"""
import argparse
import collections
import json
import os
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import project_python  # noqa: E402

project_python.use()

import warnings  # noqa: E402

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402

BATCHES = (1, 7)
# Forward tolerances (|engine - onnxruntime| <= atol + rtol*|onnxruntime|), with the reason.
TOL_NN = dict(rtol=1e-4, atol=1e-5, why="float32 network: the engine and onnxruntime sum convolutions, "
              "matmuls and reductions in different orders (float32 rounding ~1e-7 relative per op, "
              "growing with depth); the script checks PyTorch agrees with onnxruntime within half of it")
TOL_TREE = dict(rtol=0.0, atol=1e-5, why="tree ensembles: leaf values summed in float32 in any order; "
                "labels/indices compared exactly")
TOL_LINEAR = dict(rtol=1e-5, atol=1e-5, why="linear/kernel models in float32: dot products summed in a "
                  "different order")
# Gradient tolerance: rtol 1e-3 and atol = GRAD_ATOL_REL * max|golden gradient| (float32 backward
# pass in another order; the script checks PyTorch's float32 gradient agrees with its float64
# gradient within a quarter of it).
GRAD_RTOL, GRAD_ATOL_REL = 1e-3, 1e-4


def np_dtype_name(a):
    return {np.dtype(np.float32): "float32", np.dtype(np.int64): "int64", np.dtype(np.float64): "float64",
            np.dtype(np.int32): "int32", np.dtype(np.bool_): "bool"}.get(np.asarray(a).dtype, str(np.asarray(a).dtype))


def op_histogram(model):
    """{'[domain:]OpType': count} over the graph, its subgraphs and local functions."""
    hist = collections.Counter()

    def walk(nodes):
        for n in nodes:
            key = n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}:{n.op_type}"
            hist[key] += 1
            for a in n.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    walk(a.g.node)
                elif a.type == onnx.AttributeProto.GRAPHS:
                    for g in a.graphs:
                        walk(g.node)

    walk(model.graph.node)
    for f in model.functions:
        walk(f.node)
    return dict(sorted(hist.items()))


def value_info_json(vi):
    t = vi.type
    if t.HasField("tensor_type"):
        dims = []
        for d in t.tensor_type.shape.dim:
            dims.append(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?"))
        # '?': a dynamic dim without a name (skl2onnx/onnxmltools write None)
        return {"name": vi.name, "kind": "tensor",
                "dtype": onnx.helper.tensor_dtype_to_np_dtype(t.tensor_type.elem_type).name
                if t.tensor_type.elem_type else "undefined", "shape": dims}
    if t.HasField("sequence_type"):
        return {"name": vi.name, "kind": "sequence(map)" if t.sequence_type.elem_type.HasField("map_type")
                else "sequence"}
    return {"name": vi.name, "kind": t.WhichOneof("value") or "unknown"}


def ort_session_options():
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return so


def ort_session(path):
    return ort.InferenceSession(path, ort_session_options(), providers=["CPUExecutionProvider"])


def normalized_err(got, want, rtol, atol):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if got.shape != want.shape:
        return float("inf")
    return float(np.max(np.abs(got - want) / (atol + rtol * np.abs(want)))) if got.size else 0.0


def canonical(model, name):
    """Byte-reproducible converter output: opset_import sorted by domain (skl2onnx/onnxmltools
    emit it in set order) and a random uuid graph name (onnxmltools) replaced by the model name."""
    import re

    ops = sorted(((o.domain, o.version) for o in model.opset_import))
    del model.opset_import[:]
    for d, v in ops:
        model.opset_import.add(domain=d, version=v)
    if re.fullmatch(r"[0-9a-f]{32}", model.graph.name):
        model.graph.name = name
    return model


class Zoo:
    def __init__(self, out):
        self.out = out
        self.entries = []

    def write_model(self, name, model_path_or_proto, family, exporter, inputs_by_batch, tol, notes="",
                    torch_forward=None, torch_grad=None, compare=None, short=None):
        """Save model + goldens; returns the manifest entry.

        inputs_by_batch: {batch: np.ndarray}. torch_forward(x) -> list of np outputs (float32 PyTorch)
        for the ORT-vs-PyTorch check; torch_grad(x, ws, dtype) -> np gradient for differentiable models.
        compare: names of outputs to compare (default: every tensor output)."""
        d = os.path.join(self.out, name)
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, "model.onnx")
        if isinstance(model_path_or_proto, onnx.ModelProto):
            onnx.save(canonical(model_path_or_proto, name), path)
        elif os.path.abspath(model_path_or_proto) != os.path.abspath(path):
            shutil.copyfile(model_path_or_proto, path)
        model = onnx.load(path)
        onnx.checker.check_model(model)
        outs_vi = [value_info_json(o) for o in model.graph.output]
        # ZipMap turns a classifier's probability tensor into a sequence of maps; that tensor (ZipMap's
        # input) is what an audit reads, and the engine exposes it as an output: golden it too, from
        # onnxruntime on a copy of the model that lists it as an extra graph output.
        extra = []
        producers = {o: n for n in model.graph.node for o in n.output}
        for o in outs_vi:
            n = producers.get(o["name"])
            if o["kind"] != "tensor" and n is not None and n.op_type == "ZipMap" and n.domain == "ai.onnx.ml":
                extra.append({"name": n.input[0], "kind": "tensor", "dtype": "float32", "via": f"input of ZipMap '{o['name']}'",
                              "compare": True, "golden": {}})
        if extra:
            probe = onnx.ModelProto()
            probe.CopyFrom(model)
            for e in extra:
                probe.graph.output.append(onnx.helper.make_tensor_value_info(e["name"], onnx.TensorProto.FLOAT, None))
            sess = ort.InferenceSession(probe.SerializeToString(), ort_session_options(),
                                        providers=["CPUExecutionProvider"])
        else:
            sess = ort_session(path)
        ins_vi = [value_info_json(i) for i in model.graph.input]
        init_names = {i.name for i in model.graph.initializer}
        ins_vi = [i for i in ins_vi if i["name"] not in init_names]
        assert len(ins_vi) == 1, f"{name}: expected one graph input, got {ins_vi}"
        in_name = ins_vi[0]["name"]
        compare = set(compare) if compare is not None else {o["name"] for o in outs_vi if o["kind"] == "tensor"}
        for o in outs_vi:
            o["compare"] = o["kind"] == "tensor" and o["name"] in compare
            o["golden"] = {}
        entry = {
            "name": name, "family": family, "exporter": exporter, "exporter_short": short or family,
            "opset_import": {(o.domain or "ai.onnx"): o.version for o in model.opset_import},
            "ir_version": model.ir_version, "producer": f"{model.producer_name} {model.producer_version}".strip(),
            "inputs": ins_vi, "outputs": outs_vi, "extra_outputs": extra, "batches": list(BATCHES),
            "input_files": {}, "differentiable": torch_grad is not None,
            "tolerance": {"rtol": tol["rtol"], "atol": tol["atol"], "why": tol["why"]},
            "ops": op_histogram(model), "nodes": len(model.graph.node),
            "bytes": os.path.getsize(path), "notes": notes,
        }
        worst_torch = 0.0
        worst_grad = 0.0
        grad_scale = 0.0
        for b in BATCHES:
            x = inputs_by_batch[b]
            np.save(os.path.join(d, f"input_b{b}.npy"), x)
            entry["input_files"][str(b)] = f"input_b{b}.npy"
            res = sess.run(None, {in_name: x})
            for o, r in zip(outs_vi, res):
                shp = o.get("shape")
                if o["kind"] == "tensor" and shp is not None and (
                        len(shp) != np.ndim(r) or any(isinstance(d, int) and d != a for d, a in zip(shp, np.shape(r)))):
                    msg = (f"output '{o['name']}' is declared with shape {shp} but onnxruntime returns "
                           f"{list(np.shape(r))} at batch {b} (exporter quirk: do not enforce declared output shapes)")
                    entry["notes"] += ("; " if entry["notes"] else "") + msg
            for k, (o, r) in enumerate(zip(outs_vi, res)):
                if o["kind"] != "tensor":
                    continue
                fn = f"out{k}_b{b}.npy"
                np.save(os.path.join(d, fn), np.asarray(r))
                o["golden"][str(b)] = fn
            for k, e in enumerate(extra):
                fn = f"extra{k}_b{b}.npy"
                np.save(os.path.join(d, fn), np.asarray(res[len(outs_vi) + k]))
                e["golden"][str(b)] = fn
            if torch_forward is not None:
                tres = torch_forward(x)
                for o, r, t in zip(outs_vi, res, tres):
                    if o["compare"]:
                        worst_torch = max(worst_torch, normalized_err(r, t, tol["rtol"], tol["atol"]))
            if torch_grad is not None:
                rng = np.random.default_rng(1000 + b)
                ws = []
                for k, (o, r) in enumerate(zip(outs_vi, res)):
                    w = rng.standard_normal(np.asarray(r).shape).astype(np.float32)
                    np.save(os.path.join(d, f"w{k}_b{b}.npy"), w)
                    o.setdefault("seed", {})[str(b)] = f"w{k}_b{b}.npy"
                    ws.append(w)
                g32 = torch_grad(x, ws, "float32")
                g64 = torch_grad(x, ws, "float64")
                np.save(os.path.join(d, f"grad_b{b}.npy"), g32.astype(np.float32))
                entry.setdefault("gradient", {"files": {}})["files"][str(b)] = f"grad_b{b}.npy"
                grad_scale = max(grad_scale, float(np.max(np.abs(g32))))
                gatol = GRAD_ATOL_REL * float(np.max(np.abs(g64)))
                worst_grad = max(worst_grad, normalized_err(g32, g64, GRAD_RTOL, gatol))
        if torch_forward is not None:
            entry["check_ort_vs_torch"] = round(worst_torch, 4)
            if worst_torch > 0.5:
                raise SystemExit(f"{name}: onnxruntime and PyTorch disagree by {worst_torch:.3g} of the tolerance")
        if torch_grad is not None:
            entry["gradient"].update({
                "rtol": GRAD_RTOL, "atol": GRAD_ATOL_REL * grad_scale,
                "why": "float32 backward pass summed in another order: rtol 1e-3, atol 1e-4 x max|gradient|; "
                       "the script checks PyTorch's float32 gradient agrees with its float64 one within a quarter",
                "seed": "d sum_k sum(output_k * w_k) / d input, w_k in w<k>_b<batch>.npy",
                "check_f32_vs_f64": round(worst_grad, 4)})
            if worst_grad > 0.25:
                raise SystemExit(f"{name}: float32 vs float64 PyTorch gradients differ by {worst_grad:.3g} of the tolerance")
        self.entries.append(entry)
        return entry


# ----------------------------------------------------------------------------------------------
# PyTorch models


def torch_models():
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    import torchvision
    from torchvision.models import efficientnet, mobilenetv2, resnet, shufflenetv2, squeezenet

    class TinyResNet(nn.Module):
        """ResNet-18's layout (stem conv 7x7/2 + BN + ReLU + maxpool, BasicBlock stages, global
        pool, fc) with torchvision's BasicBlock, one block per stage and widths 8..32."""

        def __init__(self, num_classes=10, widths=(8, 16, 32)):
            super().__init__()
            self.conv1 = nn.Conv2d(3, widths[0], 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(widths[0])
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            layers, cin = [], widths[0]
            for i, w in enumerate(widths):
                stride = 1 if i == 0 else 2
                down = None
                if stride != 1 or cin != w:
                    down = nn.Sequential(resnet.conv1x1(cin, w, stride), nn.BatchNorm2d(w))
                layers.append(resnet.BasicBlock(cin, w, stride, down))
                cin = w
            self.layers = nn.Sequential(*layers)
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(cin, num_classes)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layers(x)
            return self.fc(torch.flatten(self.avgpool(x), 1))

    class TinySqueezeNet(nn.Module):
        """squeezenet1_1's layout (conv 3x3/2, ceil-mode max pools, Fire modules, dropout, final
        1x1 conv classifier + ReLU + global pool) with torchvision's Fire module at 1/8 width;
        squeezenet1_1 itself has no width parameter and is 5 MB."""

        def __init__(self, num_classes=10):
            super().__init__()
            Fire = squeezenet.Fire
            self.features = nn.Sequential(
                nn.Conv2d(3, 8, 3, 2), nn.ReLU(inplace=True),
                nn.MaxPool2d(3, 2, ceil_mode=True),
                Fire(8, 2, 8, 8), Fire(16, 2, 8, 8),
                nn.MaxPool2d(3, 2, ceil_mode=True),
                Fire(16, 4, 16, 16), Fire(32, 4, 16, 16),
                nn.MaxPool2d(3, 2, ceil_mode=True),
                Fire(32, 6, 24, 24), Fire(48, 8, 32, 32))
            final_conv = nn.Conv2d(64, num_classes, 1)
            self.classifier = nn.Sequential(nn.Dropout(0.5), final_conv, nn.ReLU(inplace=True),
                                            nn.AdaptiveAvgPool2d((1, 1)))

        def forward(self, x):
            return torch.flatten(self.classifier(self.features(x)), 1)

    class TabularMLP(nn.Module):
        def __init__(self, d_in=12, classes=3):
            super().__init__()
            self.fc1 = nn.Linear(d_in, 32)
            self.bn = nn.BatchNorm1d(32)
            self.act1 = nn.GELU()  # approximate='none' (erf)
            self.drop = nn.Dropout(0.2)
            self.fc2 = nn.Linear(32, 24)
            self.ln = nn.LayerNorm(24)
            self.act2 = nn.GELU(approximate="tanh")
            self.fc3 = nn.Linear(24, 16)
            self.act3 = nn.SiLU()
            self.fc4 = nn.Linear(16, classes)

        def forward(self, x):
            x = self.drop(self.act1(self.bn(self.fc1(x))))
            x = self.act2(self.ln(self.fc2(x)))
            return self.fc4(self.act3(self.fc3(x)))

    class TransformerClassifier(nn.Module):
        def __init__(self, d_in=4, d_model=16, classes=3):
            super().__init__()
            self.proj = nn.Linear(d_in, d_model)
            layer = nn.TransformerEncoderLayer(d_model=d_model, nhead=2, dim_feedforward=32, dropout=0.1,
                                               batch_first=True)
            self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
            self.head = nn.Linear(d_model, classes)

        def forward(self, x):  # x: [N, T, d_in]
            h = self.encoder(self.proj(x))
            return self.head(h.mean(dim=1))

    class UpsampleNet(nn.Module):
        """Decoder-style blocks: ConvTranspose2d, nn.Upsample (nearest), F.interpolate (bilinear),
        GroupNorm, InstanceNorm2d, PReLU, Hardswish, Mish."""

        def __init__(self, classes=4):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 8, 3, 2, 1)
            self.prelu = nn.PReLU(8)
            self.deconv = nn.ConvTranspose2d(8, 8, 4, 2, 1)
            self.inorm = nn.InstanceNorm2d(8, affine=True)
            self.hsw = nn.Hardswish()
            self.up = nn.Upsample(scale_factor=2, mode="nearest")
            self.conv2 = nn.Conv2d(8, 12, 3, 2, 1)
            self.gnorm = nn.GroupNorm(3, 12)
            self.mish = nn.Mish()
            self.conv3 = nn.Conv2d(12, classes, 1)

        def forward(self, x):  # [N,3,16,16]
            h = self.prelu(self.conv1(x))               # 8x8
            h = self.hsw(self.inorm(self.deconv(h)))    # 16x16
            h = self.up(h)                              # 32x32
            h = self.mish(self.gnorm(self.conv2(h)))    # 16x16
            h = F.interpolate(h, scale_factor=0.5, mode="bilinear", align_corners=False)  # 8x8
            h = F.interpolate(h, size=(12, 12), mode="bilinear", align_corners=False)
            return self.conv3(h).mean(dim=(2, 3))

    class ActivationsNet(nn.Module):
        """Tabular net with SELU, CELU, Softsign, torch.split/chunk, torch.where, cumsum and two
        outputs (class logits and a regression head)."""

        def __init__(self, d_in=10):
            super().__init__()
            self.fc1 = nn.Linear(d_in, 24)
            self.selu = nn.SELU()
            self.celu = nn.CELU(alpha=0.7)
            self.soft = nn.Softsign()
            self.fc2 = nn.Linear(12, 8)
            self.fc3 = nn.Linear(8, 3)
            self.reg = nn.Linear(8, 1)

        def forward(self, x):
            h = self.fc1(x)
            a, b = torch.chunk(h, 2, dim=1)                 # 12 + 12
            g = torch.where(a > 0, self.selu(a), self.celu(b))
            p, q, r = torch.split(g, [4, 4, 4], dim=1)
            g = torch.cat([self.soft(p), torch.cumsum(q, dim=1), r * torch.sigmoid(p)], dim=1)
            z = torch.tanh(self.fc2(g))
            return self.fc3(z), self.reg(z).squeeze(1)

    class TopKHead(nn.Module):
        """Non-differentiable outputs: top-2 scores with their indices and the argmax."""

        def __init__(self, d_in=10, classes=6):
            super().__init__()
            self.fc = nn.Linear(d_in, classes)

        def forward(self, x):
            logits = self.fc(x)
            vals, idx = torch.topk(torch.softmax(logits, dim=1), 2, dim=1)
            return vals, idx, torch.argmax(logits, dim=1)

    class EmbeddingClassifier(nn.Module):
        """Token ids (int64 input) -> nn.Embedding (Gather) -> mean -> Linear."""

        def __init__(self, vocab=50, dim=8, classes=3):
            super().__init__()
            self.emb = nn.Embedding(vocab, dim)
            self.fc = nn.Linear(dim, classes)

        def forward(self, ids):  # [N, T] int64
            return self.fc(self.emb(ids).mean(dim=1))

    def eff_b0_tiny():
        settings, last = efficientnet._efficientnet_conf("efficientnet_b0", width_mult=0.25, depth_mult=0.25)
        return torchvision.models.EfficientNet(settings, dropout=0.2, num_classes=10, last_channel=last)

    def shufflenet_tiny():
        return shufflenetv2.ShuffleNetV2(stages_repeats=[2, 1, 1], stages_out_channels=[8, 16, 32, 64, 128],
                                         num_classes=10)

    def mobilenet_tiny():
        setting = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 2, 2], [6, 64, 1, 2]]
        return mobilenetv2.MobileNetV2(num_classes=10, width_mult=0.25, inverted_residual_setting=setting)

    # (name, constructor, per-sample input shape, input kind, notes)
    return [
        ("resnet_tiny", TinyResNet, (3, 32, 32), "image", "torchvision BasicBlock stages, ResNet-18 stem"),
        ("mobilenet_v2", mobilenet_tiny, (3, 32, 32), "image",
         "torchvision MobileNetV2(width_mult=0.25, 4 stages)"),
        ("efficientnet_b0", eff_b0_tiny, (3, 32, 32), "image",
         "torchvision EfficientNet with efficientnet_b0 config at width_mult=0.25, depth_mult=0.25"),
        ("squeezenet1_1", TinySqueezeNet, (3, 48, 48), "image", "squeezenet1_1 layout with torchvision Fire at 1/8 width"),
        ("shufflenet_v2", shufflenet_tiny, (3, 32, 32), "image",
         "torchvision ShuffleNetV2(stages_repeats=[2,1,1], stages_out_channels=[8,16,32,64,128])"),
        ("tabular_mlp", TabularMLP, (12,), "features", "BatchNorm1d, GELU erf + tanh, LayerNorm, SiLU, Dropout"),
        ("transformer", TransformerClassifier, (6, 4), "features",
         "2-layer nn.TransformerEncoder (batch_first, d_model 16, 2 heads), mean pool, Linear head"),
        ("upsample_net", UpsampleNet, (3, 16, 16), "image",
         "ConvTranspose2d, Upsample nearest, interpolate bilinear, GroupNorm, InstanceNorm2d, PReLU, Hardswish, Mish"),
        ("activations_net", ActivationsNet, (10,), "features",
         "SELU, CELU, Softsign, chunk/split, where, cumsum; two outputs"),
        ("topk_head", TopKHead, (10,), "features", "topk values + indices and argmax (not differentiable)"),
        ("embedding_bag", EmbeddingClassifier, (7,), "tokens", "int64 token ids -> Embedding -> mean -> Linear"),
    ]


def randomize_norm_stats(model, gen):
    """Non-trivial eval-mode normalisation: random running statistics and affine parameters."""
    import torch
    import torch.nn as nn

    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=gen))
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm, nn.InstanceNorm2d)):
                if getattr(m, "weight", None) is not None:
                    m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=gen))
                    m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))


def export_torch(zoo, only, tmp):
    import torch

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    versions = {"torch": torch.__version__}
    for idx, (name, ctor, shape, kind, notes) in enumerate(torch_models()):
        if only and not any(o in (name, f"{name}_ts", f"{name}_dynamo") for o in only):
            continue
        torch.manual_seed(100 + idx)
        model = ctor()
        randomize_norm_stats(model, torch.Generator().manual_seed(200 + idx))
        model.eval()
        rng = np.random.default_rng(300 + idx)
        if kind == "tokens":
            inputs = {b: rng.integers(0, 50, size=(b,) + shape).astype(np.int64) for b in BATCHES}
        else:
            inputs = {b: rng.standard_normal((b,) + shape).astype(np.float32) for b in BATCHES}
        differentiable = kind != "tokens" and name != "topk_head"
        example = torch.from_numpy(rng.standard_normal((2,) + shape).astype(np.float32)) if kind != "tokens" \
            else torch.from_numpy(rng.integers(0, 50, size=(2,) + shape).astype(np.int64))
        with torch.no_grad():
            n_out = len(model(example)) if isinstance(model(example), tuple) else 1
        out_names = ["output"] if n_out == 1 else [f"output{k}" for k in range(n_out)]

        def fwd(x, model=model):
            with torch.no_grad():
                r = model(torch.from_numpy(x))
            r = r if isinstance(r, tuple) else (r,)
            return [t.numpy() for t in r]

        def grad(x, ws, dtype, model=model):
            import copy

            m = copy.deepcopy(model)
            tdt = torch.float64 if dtype == "float64" else torch.float32
            m = m.to(tdt)
            xt = torch.from_numpy(x).to(tdt).requires_grad_(True)
            r = m(xt)
            r = r if isinstance(r, tuple) else (r,)
            total = sum((t * torch.from_numpy(w).to(tdt)).sum() for t, w in zip(r, ws))
            (g,) = torch.autograd.grad(total, xt)
            return g.detach().numpy()

        for exp in ("ts", "dynamo"):
            full = f"{name}_{exp}"
            if only and full not in only and name not in only:
                continue
            path = os.path.join(tmp, full + ".onnx")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if exp == "ts":
                    torch.onnx.export(model, (example,), path, dynamo=False, input_names=["input"],
                                      output_names=out_names,
                                      dynamic_axes={n: {0: "batch"} for n in ["input"] + out_names})
                    exporter = "torch.onnx.export(dynamo=False) [TorchScript exporter]"
                else:
                    batch = torch.export.Dim("batch", min=1, max=1024)
                    prog = torch.onnx.export(model, (example,), dynamo=True, input_names=["input"],
                                             output_names=out_names, dynamic_shapes=({0: batch},))
                    prog.save(path, external_data=False)
                    exporter = "torch.onnx.export(dynamo=True) [torch.export exporter]"
            zoo.write_model(full, path, "torch", f"{exporter} torch {torch.__version__}", inputs, TOL_NN,
                            notes=notes, torch_forward=fwd, torch_grad=grad if differentiable else None,
                            short=f"torch-{exp}")
    return versions


# ----------------------------------------------------------------------------------------------
# scikit-learn, XGBoost, LightGBM


def german_numeric():
    """German credit's 7 numeric attributes (duration, amount, installment rate, residence, age,
    existing credits, people liable) and label (1 good -> 0, 2 bad -> 1); a fixed synthetic
    stand-in when ../shared/datasets is absent."""
    path = os.path.join(ROOT, "..", "shared", "datasets", "german", "german.data")
    if os.path.isfile(path):
        rows = [ln.split() for ln in open(path) if ln.strip()]
        cols = [1, 4, 7, 10, 12, 15, 17]
        X = np.array([[float(r[c]) for c in cols] for r in rows], dtype=np.float32)
        y = np.array([int(r[20]) - 1 for r in rows], dtype=np.int64)
        return X, y, "UCI Statlog German credit (../shared/datasets/german/german.data), 7 numeric columns"
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=1000, n_features=7, random_state=0)
    return X.astype(np.float32), y.astype(np.int64), "sklearn make_classification(n_features=7, random_state=0)"


def three_class():
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=400, n_features=8, n_informative=5, n_classes=3, random_state=1)
    return X.astype(np.float32), y.astype(np.int64), "sklearn make_classification(400x8, 3 classes, random_state=1)"


def check_against_library(zoo, name, est, lib):
    """The library's own predict() agrees with onnxruntime's first output (a check of the
    converter): labels exactly, regression values to float32 precision."""
    path = os.path.join(zoo.out, name, "model.onnx")
    sess = ort_session(path)
    x7 = np.load(os.path.join(zoo.out, name, "input_b7.npy"))
    got = np.asarray(sess.run(None, {sess.get_inputs()[0].name: x7})[0]).reshape(-1)
    want = np.asarray(est.predict(x7)).reshape(-1)
    ok = np.array_equal(got.astype(np.int64), want.astype(np.int64)) if got.dtype.kind in "iu" \
        else np.allclose(got, want, rtol=1e-4, atol=1e-4)
    if not ok:
        raise SystemExit(f"{name}: onnxruntime's output differs from {lib}'s predict(): {got} vs {want}")


def export_classic(zoo, only):
    import lightgbm
    import onnxmltools
    import skl2onnx
    import sklearn
    import xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType as MLFloat
    from skl2onnx import to_onnx
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    Xg, yg, gsrc = german_numeric()
    X3, y3, tsrc = three_class()
    # Standardised copy for the models without a scaler in their pipeline (SVC, MLP).
    mu, sd = Xg.mean(0), Xg.std(0)
    Xgs = ((Xg - mu) / sd).astype(np.float32)
    rng = np.random.default_rng(7)

    def rows(X):
        idx = rng.permutation(len(X))[:7]
        return {1: X[idx[:1]].copy(), 7: X[idx].copy()}

    skl_ver = f"skl2onnx {skl2onnx.__version__}, scikit-learn {sklearn.__version__}"
    specs = [
        ("sk_logreg_pipeline", lambda: Pipeline([("scale", StandardScaler()),
                                                 ("lr", LogisticRegression(max_iter=500))]), Xg, yg, gsrc,
         {}, TOL_LINEAR, "StandardScaler + LogisticRegression; skl2onnx default options (ZipMap kept)"),
        ("sk_mlp", lambda: MLPClassifier(hidden_layer_sizes=(16, 8), max_iter=300, random_state=0), X3, y3, tsrc,
         {"zipmap": False}, TOL_LINEAR, "MLPClassifier 3 classes, options={'zipmap': False}"),
        ("sk_random_forest", lambda: RandomForestClassifier(n_estimators=5, max_depth=4, random_state=0), Xg, yg,
         gsrc, {"zipmap": False}, TOL_TREE, "5 trees, depth 4, options={'zipmap': False}"),
        ("sk_gradient_boosting", lambda: GradientBoostingClassifier(n_estimators=5, max_depth=3, random_state=0),
         X3, y3, tsrc, {}, TOL_TREE, "5 rounds x 3 classes, depth 3; default options (ZipMap kept)"),
        ("sk_linear_regression", LinearRegression, Xg, Xg[:, 1] * 0.001 + Xg[:, 0] * 0.1, gsrc, {}, TOL_LINEAR,
         "regression target: 0.001*amount + 0.1*duration"),
        ("sk_svc_linear", lambda: SVC(kernel="linear", C=0.5), Xgs[:300], yg[:300], gsrc + " (standardised, 300 rows)",
         {}, TOL_LINEAR, "SVC(kernel='linear'), probability=False"),
        ("sk_svc_rbf", lambda: SVC(kernel="rbf", C=1.0, gamma="scale"), Xgs[:300], yg[:300],
         gsrc + " (standardised, 300 rows)", {"zipmap": False}, TOL_LINEAR,
         "SVC(kernel='rbf'), probability=False, options={'zipmap': False} (decision scores as a tensor)"),
    ]
    for name, ctor, X, y, src, options, tol, notes in specs:
        if only and name not in only:
            continue
        est = ctor()
        est.fit(X, y)
        kw = {"options": {id(est): options}} if options else {}
        onx = to_onnx(est, X[:1].astype(np.float32), **kw)
        e = zoo.write_model(name, onx, "sklearn", f"skl2onnx.to_onnx (default target opset) [{skl_ver}]",
                            rows(X), tol, notes=notes + f"; trained on {src}", short="skl2onnx")
        e["sklearn_estimator"] = repr(est)
        check_against_library(zoo, name, est, "scikit-learn")

    boost = [
        ("xgboost_classifier", lambda: xgboost.XGBClassifier(n_estimators=5, max_depth=3, learning_rate=0.3,
                                                             random_state=0, n_jobs=1, base_score=0.5),
         X3, y3, tsrc, "xgboost", "XGBClassifier 3 classes, 5 rounds, depth 3"),
        ("lightgbm_classifier", lambda: lightgbm.LGBMClassifier(n_estimators=5, num_leaves=7, random_state=0,
                                                                n_jobs=1, verbose=-1, deterministic=True),
         Xg, yg, gsrc, "lightgbm", "LGBMClassifier binary, 5 rounds, 7 leaves; default options (ZipMap kept)"),
    ]
    for name, ctor, X, y, src, lib, notes in boost:
        if only and name not in only:
            continue
        est = ctor()
        est.fit(X, y)
        types = [("input", MLFloat([None, X.shape[1]]))]
        if lib == "xgboost":
            onx = onnxmltools.convert_xgboost(est, initial_types=types)
            ver = f"onnxmltools.convert_xgboost [onnxmltools {onnxmltools.__version__}, xgboost {xgboost.__version__}]"
        else:
            onx = onnxmltools.convert_lightgbm(est, initial_types=types)
            ver = f"onnxmltools.convert_lightgbm [onnxmltools {onnxmltools.__version__}, lightgbm {lightgbm.__version__}]"
        e = zoo.write_model(name, onx, lib, ver + " (default target opset)", rows(X), TOL_TREE,
                            notes=notes + f"; trained on {src}", short="onnxmltools")
        e["estimator"] = repr(est)
        check_against_library(zoo, name, est, lib)
    return {"scikit-learn": sklearn.__version__, "skl2onnx": skl2onnx.__version__,
            "onnxmltools": onnxmltools.__version__, "xgboost": xgboost.__version__, "lightgbm": lightgbm.__version__}


def main(argv=None):
    ap = argparse.ArgumentParser(description="Export the model zoo and its goldens.")
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "zoo"))
    ap.add_argument("--only", default="", help="comma-separated model names (default: all; rewrites manifest)")
    args = ap.parse_args(argv)
    only = {s for s in args.only.split(",") if s}
    import tempfile

    if not only and os.path.isdir(args.out):
        shutil.rmtree(args.out)
    os.makedirs(args.out, exist_ok=True)
    zoo = Zoo(args.out)
    versions = {"python": sys.version.split()[0], "onnx": onnx.__version__, "onnxruntime": ort.__version__,
                "numpy": np.__version__}
    with tempfile.TemporaryDirectory() as tmp:
        versions.update(export_torch(zoo, only, tmp))
    versions.update(export_classic(zoo, only))
    try:
        import onnxscript

        versions["onnxscript"] = onnxscript.__version__
    except ImportError:
        pass

    manifest_path = os.path.join(args.out, "manifest.json")
    entries = zoo.entries
    if only and os.path.isfile(manifest_path):
        old = json.load(open(manifest_path))["models"]
        new = {e["name"] for e in entries}
        entries = [e for e in old if e["name"] not in new] + entries
    order = {n: i for i, n in enumerate(MODEL_ORDER)}
    entries.sort(key=lambda e: (order.get(e["name"].rsplit("_", 1)[0], order.get(e["name"], 999)), e["name"]))
    manifest = {
        "generator": "tools/export_zoo.py",
        "versions": versions,
        "batches": list(BATCHES),
        "comparison": "|engine - golden| <= atol + rtol*|golden| per element; integer/label outputs exactly",
        "models": entries,
    }
    with open(manifest_path, "w") as fh:
        json.dump(manifest, fh, indent=1, sort_keys=False)
        fh.write("\n")

    total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fns in os.walk(args.out) for f in fns)
    print(f"{'model':34} {'exporter':12} {'opset':16} {'nodes':>5} {'KiB':>6} {'diff':>4} outputs compared")
    for e in entries:
        exp = e["exporter_short"]
        ops = ",".join(f"{k.replace('ai.onnx.ml', 'ml')}{v}" for k, v in e["opset_import"].items())
        comp = ",".join(o["name"] for o in e["outputs"] if o["compare"])
        print(f"{e['name']:34} {exp[:12]:12} {ops[:16]:16} {e['nodes']:5d} {e['bytes'] / 1024:6.1f} "
              f"{'yes' if e['differentiable'] else 'no':>4} {comp}")
    print("\nop histogram per model:")
    for e in entries:
        print(f"  {e['name']}: " + ", ".join(f"{k}x{v}" for k, v in e["ops"].items()))
    print(f"\nwrote {len(entries)} models, {total / 1024:.0f} KiB in all -> {args.out}")
    return 0


MODEL_ORDER = ["resnet_tiny", "mobilenet_v2", "efficientnet_b0", "squeezenet1_1", "shufflenet_v2", "tabular_mlp",
               "transformer", "upsample_net", "activations_net", "topk_head", "embedding_bag"]

if __name__ == "__main__":
    sys.exit(main())
