#!/usr/bin/env python3
"""Probe mlaudit against a held-out set of models exported the way users export them today.

Not a test fixture generator (that is tools/export_zoo.py): this script builds models that the zoo
does NOT cover (DenseNet, RegNet, ConvNeXt, ViT, Swin, MNASNet, GoogLeNet, Inception, AlexNet/VGG-
style, MobileNetV3, Conv1d audio, LSTM/GRU, MultiheadAttention with key_padding_mask, SDPA causal,
odd ops, tiny HF BERT/DistilBERT/GPT-2/ViT, more scikit-learn / XGBoost / LightGBM estimators),
exports each with today's exporters at their default opset (torch.onnx.export dynamo=False and
dynamo=True, skl2onnx / onnxmltools defaults), runs onnxruntime at batch 1 and 3, runs
`mlaudit run` on the same inputs and compares every output file (rtol 1e-4, atol 1e-5), and for
float-input differentiable torch models compares `mlaudit explain --method gradient --target 0`
with PyTorch's gradient of output[:, 0].

Everything is random-init with fixed seeds and tiny. Work files (models, inputs, onnxruntime
outputs, a repro.sh per model) go to --work (default /tmp/probe); a table is printed and
results.json written there.

    nice .venv/bin/python tools/probe_exporters.py [--work /tmp/probe] [--only NAME,...]
        [--exporters ts,dynamo] [--mlaudit build/mlaudit] [--list]
"""
import argparse
import copy
import json
import os
import shlex
import subprocess
import sys
import time
import traceback
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import project_python  # noqa: E402

project_python.use()

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402

RTOL, ATOL = 1e-4, 1e-5
GRAD_RTOL, GRAD_ATOL_REL = 1e-3, 1e-4
BATCHES = (1, 3)
CLI_TIMEOUT = 300

CASES = []  # (name, family, builder)


def case(name, family="torch"):
    def deco(fn):
        CASES.append((name, family, fn))
        return fn
    return deco


# ----------------------------------------------------------------------------------------------
# PyTorch models. A builder returns dict(model, inputs={name: (shape_without_batch, kind)}, grad)
# kind: "float" (standard normal), "ids:V" (int64 tokens in [1, V) with trailing zero padding),
# "ids_nopad:V".

def _img(c=3, h=32, w=32):
    return {"input": ((c, h, w), "float")}


def randomize_norm_stats(model, gen):
    import torch
    import torch.nn as nn
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) and m.running_mean is not None:
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=gen))
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm)):
                if getattr(m, "weight", None) is not None:
                    m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=gen))
                if getattr(m, "bias", None) is not None:
                    m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))


@case("densenet_small")
def _densenet():
    from torchvision.models import DenseNet
    return dict(model=DenseNet(growth_rate=8, block_config=(2, 2, 2), num_init_features=16, bn_size=2,
                               num_classes=10), inputs=_img(3, 32, 32))


@case("regnet_small")
def _regnet():
    from torchvision.models.regnet import BlockParams, RegNet
    bp = BlockParams.from_init_params(depth=4, w_0=8, w_a=8.0, w_m=2.0, group_width=8, se_ratio=0.25)
    return dict(model=RegNet(bp, num_classes=10, stem_width=8), inputs=_img(3, 32, 32))


@case("convnext_small")
def _convnext():
    from torchvision.models.convnext import CNBlockConfig, ConvNeXt
    cfg = [CNBlockConfig(16, 32, 1), CNBlockConfig(32, None, 1)]
    return dict(model=ConvNeXt(cfg, stochastic_depth_prob=0.1, layer_scale=0.5, num_classes=10),
                inputs=_img(3, 32, 32))


@case("vit_small")
def _vit():
    from torchvision.models.vision_transformer import VisionTransformer
    return dict(model=VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32,
                                        mlp_dim=64, num_classes=10), inputs=_img(3, 32, 32))


@case("swin_small")
def _swin():
    from torchvision.models.swin_transformer import SwinTransformer
    return dict(model=SwinTransformer(patch_size=[4, 4], embed_dim=16, depths=[2, 2], num_heads=[2, 2],
                                      window_size=[4, 4], num_classes=10), inputs=_img(3, 32, 32))


@case("mnasnet0_5")
def _mnasnet():
    from torchvision.models import mnasnet0_5
    return dict(model=mnasnet0_5(num_classes=10), inputs=_img(3, 64, 64))


@case("mobilenet_v3_small")
def _mnv3():
    from torchvision.models import mobilenet_v3_small
    return dict(model=mobilenet_v3_small(num_classes=10, width_mult=0.25), inputs=_img(3, 64, 64))


@case("googlenet")
def _googlenet():
    from torchvision.models import googlenet
    return dict(model=googlenet(weights=None, aux_logits=False, transform_input=False, init_weights=False,
                                num_classes=10), inputs=_img(3, 64, 64))


@case("alexnet_style")
def _alexnet():
    import torch.nn as nn
    # torchvision AlexNet's layout with narrow widths; at 224x224 the features are 6x6 as in torchvision
    m = nn.Sequential(
        nn.Conv2d(3, 16, 11, 4, 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Conv2d(16, 24, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Conv2d(24, 32, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.AdaptiveAvgPool2d((6, 6)), nn.Flatten(),
        nn.Dropout(0.5), nn.Linear(32 * 36, 64), nn.ReLU(inplace=True), nn.Linear(64, 10))
    return dict(model=m, inputs=_img(3, 224, 224))


@case("vgg11_bn_style")
def _vgg():
    import torch.nn as nn
    from torchvision.models.vgg import make_layers
    # vgg11 layout with narrow widths; at 224x224 the features are 7x7 as in torchvision
    feats = make_layers([8, "M", 16, "M", 32, 32, "M", 32, 32, "M", 32, 32, "M"], batch_norm=True)

    class VGGs(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = feats
            self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
            self.classifier = nn.Sequential(nn.Linear(32 * 49, 64), nn.ReLU(True), nn.Dropout(),
                                            nn.Linear(64, 10))

        def forward(self, x):
            import torch
            return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))
    return dict(model=VGGs(), inputs=_img(3, 224, 224))


@case("inception_v3")
def _inception():
    from torchvision.models import inception_v3
    return dict(model=inception_v3(weights=None, aux_logits=False, init_weights=False, num_classes=10,
                                   transform_input=False), inputs=_img(3, 75, 75))


@case("audio_conv1d")
def _audio():
    import torch.nn as nn
    m = nn.Sequential(
        nn.Conv1d(1, 8, 9, stride=2, padding=4), nn.BatchNorm1d(8), nn.ReLU(), nn.MaxPool1d(2),
        nn.Conv1d(8, 16, 5, padding=2), nn.BatchNorm1d(16), nn.ReLU(), nn.MaxPool1d(2),
        nn.Conv1d(16, 16, 3, padding=1, dilation=1), nn.ReLU(),
        nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(16, 5))
    return dict(model=m, inputs={"input": ((1, 400), "float")})


@case("lstm_classifier")
def _lstm():
    import torch.nn as nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.LSTM(8, 16, num_layers=2, batch_first=True, bidirectional=True)
            self.fc = nn.Linear(32, 4)

        def forward(self, x):
            out, _ = self.rnn(x)
            return self.fc(out[:, -1, :])
    return dict(model=M(), inputs={"input": ((12, 8), "float")})


@case("gru_classifier")
def _gru():
    import torch.nn as nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.GRU(8, 16, batch_first=True)
            self.fc = nn.Linear(16, 4)

        def forward(self, x):
            _, h = self.rnn(x)
            return self.fc(h[-1])
    return dict(model=M(), inputs={"input": ((12, 8), "float")})


@case("mha_padding_mask")
def _mha():
    import torch
    import torch.nn as nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(50, 16, padding_idx=0)
            self.mha = nn.MultiheadAttention(16, 2, batch_first=True)
            self.fc = nn.Linear(16, 3)

        def forward(self, ids):
            pad = ids == 0
            x = self.emb(ids)
            y, _ = self.mha(x, x, x, key_padding_mask=pad)
            keep = (~pad).unsqueeze(-1).to(y.dtype)
            y = (y * keep).sum(1) / keep.sum(1).clamp(min=1.0)
            return self.fc(y)
    return dict(model=M(), inputs={"input_ids": ((10,), "ids:50")})


@case("sdpa_causal")
def _sdpa():
    import torch.nn as nn
    import torch.nn.functional as F

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv = nn.Linear(16, 48)
            self.proj = nn.Linear(16, 16)
            self.fc = nn.Linear(16, 4)

        def forward(self, x):
            b, t, _ = x.shape
            q, k, v = self.qkv(x).view(b, t, 3, 2, 8).permute(2, 0, 3, 1, 4)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            y = self.proj(y.transpose(1, 2).reshape(b, t, 16))
            return self.fc(y.mean(1))
    return dict(model=M(), inputs={"input": ((6, 16), "float")})


@case("embedding_layernorm_text")
def _embln():
    import torch.nn as nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(100, 24)
            self.ln = nn.LayerNorm(24)
            self.fc = nn.Linear(24, 3)

        def forward(self, ids):
            return self.fc(self.ln(self.emb(ids)).mean(dim=1))
    return dict(model=M(), inputs={"input_ids": ((9,), "ids_nopad:100")})


@case("pad_reflect_pixelshuffle")
def _padps():
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv2d(3, 16, 3)
            self.ps = nn.PixelShuffle(2)
            self.c2 = nn.Conv2d(4, 4, 3, padding=1)
            self.fc = nn.Linear(4 * 4, 5)

        def forward(self, x):
            x = self.c1(F.pad(x, (1, 1, 1, 1), mode="reflect"))
            x = self.c2(self.ps(x))
            x = F.avg_pool2d(x, 8)  # fixed-size pool: the TorchScript exporter rejects adaptive pools with a dynamic batch
            return self.fc(torch.flatten(x, start_dim=1))
    return dict(model=M(), inputs=_img(3, 8, 8))


@case("lrn_net")
def _lrn():
    import torch.nn as nn
    return dict(model=nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.LocalResponseNorm(5, alpha=1e-2, beta=0.75, k=2.0),
                                    nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 7 * 7, 4)), inputs=_img(3, 16, 16))


@case("adaptive22_normalize_softmax")
def _adapt():
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(3, 8, 3, padding=1)
            self.pool = nn.AdaptiveAvgPool2d((2, 2))
            self.fc = nn.Linear(32, 6)
            self.sm = nn.Softmax(dim=1)

        def forward(self, x):
            x = torch.flatten(self.pool(torch.relu(self.c(x))), start_dim=1)
            x = F.normalize(x, p=2.0, dim=1)
            return self.sm(self.fc(x) * 4.0)
    return dict(model=M(), inputs=_img(3, 10, 14))


@case("clamp_minmax")
def _clamp():
    import torch
    import torch.nn as nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(12, 12)
            self.b = nn.Linear(12, 12)
            self.fc = nn.Linear(12 + 2, 4)

        def forward(self, x):
            a, b = self.a(x), self.b(x)
            y = torch.clamp(torch.minimum(a, b), min=-0.5, max=0.8) + torch.maximum(a, b).clamp(max=1.0)
            mx = torch.max(y, dim=1, keepdim=True).values
            mn = torch.min(y, dim=1, keepdim=True)[0]
            return self.fc(torch.cat([y, mx, mn], dim=1))
    return dict(model=M(), inputs={"input": ((12,), "float")})


@case("rnn_tanh_classifier")
def _rnn():
    import torch.nn as nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.RNN(8, 16, batch_first=True)
            self.fc = nn.Linear(16, 4)

        def forward(self, x):
            out, _ = self.rnn(x)
            return self.fc(out.mean(1))
    return dict(model=M(), inputs={"input": ((12, 8), "float")})


@case("grid_sample_stn")
def _stn():
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class M(nn.Module):  # spatial transformer network (affine_grid + grid_sample)
        def __init__(self):
            super().__init__()
            self.loc = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 6))
            self.c = nn.Conv2d(3, 4, 3)
            self.fc = nn.Linear(4 * 14 * 14, 5)

        def forward(self, x):
            theta = self.loc(x).view(-1, 2, 3) * 0.1 + torch.tensor([[1.0, 0, 0], [0, 1.0, 0]])
            grid = F.affine_grid(theta, list(x.shape), align_corners=False)
            x = F.grid_sample(x, grid, align_corners=False)
            return self.fc(torch.flatten(torch.relu(self.c(x)), 1))
    return dict(model=M(), inputs=_img(3, 16, 16))


@case("scatter_onehot")
def _scatter():
    import torch
    import torch.nn as nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(10, 4)
            self.g = nn.Linear(10, 10)

        def forward(self, x):
            idx = torch.argmax(self.g(x), dim=1, keepdim=True)
            hard = torch.zeros_like(x).scatter(1, idx, 1.0)
            return self.fc(x * hard + x)
    return dict(model=M(), inputs={"input": ((10,), "float")})


@case("stft_spectrogram")
def _stft():
    import torch
    import torch.nn as nn

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("win", torch.hann_window(64))
            self.fc = nn.Linear(33, 3)

        def forward(self, x):
            s = torch.stft(x, n_fft=64, hop_length=32, window=self.win, center=False, return_complex=False)
            mag = (s ** 2).sum(-1).clamp(min=1e-6).log()
            return self.fc(mag.mean(-1))
    return dict(model=M(), inputs={"input": ((256,), "float")})


@case("bicubic_unfold_sort")
def _misc2():
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(5, 3)

        def forward(self, x):
            x = F.interpolate(x, scale_factor=2.0, mode="bicubic", align_corners=False)
            p = F.unfold(x, kernel_size=4, stride=4)          # [N, C*16, L]
            v, _ = torch.sort(p.mean(1), dim=1, descending=True)
            return self.fc(v[:, :5])
    return dict(model=M(), inputs=_img(2, 8, 8))


# --- Hugging Face transformers (tiny random configs, no weight downloads) ---

def _hf_text(model_cls, config, two_inputs=True):
    import torch.nn as nn

    class W(nn.Module):
        def __init__(self):
            super().__init__()
            self.m = model_cls(config)

        if two_inputs:
            def forward(self, input_ids, attention_mask):
                return self.m(input_ids=input_ids, attention_mask=attention_mask).logits
        else:
            def forward(self, input_ids):
                return self.m(input_ids=input_ids).logits
    return W()


@case("hf_bert_seqcls", "torch")
def _bert():
    from transformers import BertConfig, BertForSequenceClassification
    cfg = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64, num_labels=3)
    return dict(model=_hf_text(BertForSequenceClassification, cfg),
                inputs={"input_ids": ((10,), "ids:100"), "attention_mask": ((10,), "mask")})


@case("hf_distilbert_seqcls", "torch")
def _distilbert():
    from transformers import DistilBertConfig, DistilBertForSequenceClassification
    cfg = DistilBertConfig(vocab_size=100, dim=32, n_layers=2, n_heads=2, hidden_dim=64,
                           max_position_embeddings=64, num_labels=3)
    return dict(model=_hf_text(DistilBertForSequenceClassification, cfg),
                inputs={"input_ids": ((10,), "ids:100"), "attention_mask": ((10,), "mask")})


@case("hf_gpt2_lmhead", "torch")
def _gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel
    cfg = GPT2Config(vocab_size=100, n_embd=32, n_layer=2, n_head=2, n_positions=64, n_inner=64,
                     use_cache=False)
    return dict(model=_hf_text(GPT2LMHeadModel, cfg, two_inputs=False),
                inputs={"input_ids": ((10,), "ids_nopad:100")})


@case("hf_vit_imgcls", "torch")
def _hfvit():
    import torch.nn as nn
    from transformers import ViTConfig, ViTForImageClassification
    cfg = ViTConfig(image_size=32, patch_size=8, num_channels=3, hidden_size=32, num_hidden_layers=2,
                    num_attention_heads=2, intermediate_size=64, num_labels=10)

    class W(nn.Module):
        def __init__(self):
            super().__init__()
            self.m = ViTForImageClassification(cfg)

        def forward(self, pixel_values):
            return self.m(pixel_values=pixel_values).logits
    return dict(model=W(), inputs={"pixel_values": ((3, 32, 32), "float")})


def make_inputs(spec, batch, rng):
    out = {}
    for name, (shape, kind) in spec.items():
        if kind == "float":
            out[name] = rng.standard_normal((batch,) + shape).astype(np.float32)
        elif kind.startswith("ids"):
            v = int(kind.split(":")[1])
            a = rng.integers(1, v, size=(batch,) + shape).astype(np.int64)
            if not kind.startswith("ids_nopad"):
                for i in range(batch):  # trailing padding, different per row (row 0 unpadded)
                    n = (i * 3) % shape[-1]
                    if n:
                        a[i, -n:] = 0
            out[name] = a
        elif kind == "mask":
            a = np.ones((batch,) + shape, np.int64)
            for i in range(batch):
                n = (i * 3) % shape[-1]
                if n:
                    a[i, -n:] = 0
            out[name] = a
    # attention_mask consistent with input_ids padding
    if "attention_mask" in out and "input_ids" in out:
        out["input_ids"] = np.where(out["attention_mask"] == 0, 0, out["input_ids"]).astype(np.int64)
    return out


def export_torch(name, built, exp, path, example):
    import torch
    model = built["model"]
    names = list(built["inputs"])
    args = tuple(torch.from_numpy(example[n]) for n in names)
    with torch.no_grad():
        r = model(*args)
    n_out = len(r) if isinstance(r, (tuple, list)) else 1
    out_names = ["output"] if n_out == 1 else [f"output{k}" for k in range(n_out)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exp.startswith("ts"):
            kw = {"opset_version": int(exp[2:])} if exp[2:] else {}
            torch.onnx.export(model, args, path, dynamo=False, input_names=names, output_names=out_names,
                              dynamic_axes={n: {0: "batch"} for n in names + out_names}, **kw)
        else:
            batch = torch.export.Dim("batch", min=1, max=1024)
            prog = torch.onnx.export(model, args, dynamo=True, verbose=False, input_names=names, output_names=out_names,
                                     dynamic_shapes=tuple({0: batch} for _ in names))
            prog.save(path, external_data=False)


def torch_forward(model, names, x):
    import torch
    with torch.no_grad():
        r = model(*[torch.from_numpy(x[n]) for n in names])
    r = r if isinstance(r, (tuple, list)) else (r,)
    return [t.numpy() for t in r]


def torch_grad0(model, x, dtype, log=False):
    """d output[:, 0] / d input; d log(output[:, 0]) when mlaudit explains a probability output
    through its logarithm."""
    import torch
    m = copy.deepcopy(model).to(dtype)
    xt = torch.from_numpy(x).to(dtype).requires_grad_(True)
    r = m(xt)
    r = r[0] if isinstance(r, (tuple, list)) else r
    r = torch.log(r) if log else r
    (g,) = torch.autograd.grad(r[:, 0].sum(), xt)
    return g.detach().numpy()


# ----------------------------------------------------------------------------------------------
# scikit-learn / XGBoost / LightGBM. A builder returns dict(onnx=ModelProto, inputs={name: (shape, kind)})
# where kind is "float" or "int:K".

def _data(n=200, f=6, classes=3, seed=0, reg=False):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, f)).astype(np.float32)
    w = rng.standard_normal((f,))
    s = X @ w + 0.3 * rng.standard_normal(n)
    if reg:
        return X, s.astype(np.float32)
    y = np.digitize(s, np.quantile(s, np.linspace(0, 1, classes + 1)[1:-1]))
    return X, y


def _skl(est, X, name="X"):
    from skl2onnx import to_onnx
    return to_onnx(est, X[:1])


def _skl_float(est, X):
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    return convert_sklearn(est, initial_types=[("X", FloatTensorType([None, X.shape[1]]))])


SKF = {"X": ((6,), "float")}


@case("sk_columntransformer_logreg", "sklearn")
def _ct():
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, Int64TensorType
    rng = np.random.default_rng(1)
    n = 300
    df = pd.DataFrame({"age": rng.normal(40, 10, n).astype(np.float32),
                       "income": rng.normal(5, 2, n).astype(np.float32),
                       "job": rng.integers(0, 4, n).astype(np.int64),
                       "region": rng.integers(0, 3, n).astype(np.int64)})
    y = ((df.age - 40) / 10 + (df.job == 2) - 0.5 * (df.region == 1) + rng.normal(0, 0.5, n) > 0).astype(int)
    pipe = Pipeline([("pre", ColumnTransformer([("num", StandardScaler(), ["age", "income"]),
                                                ("cat", OneHotEncoder(handle_unknown="ignore"), ["job", "region"])])),
                     ("lr", LogisticRegression(max_iter=500))]).fit(df, y)
    onx = convert_sklearn(pipe, initial_types=[("age", FloatTensorType([None, 1])), ("income", FloatTensorType([None, 1])),
                                               ("job", Int64TensorType([None, 1])), ("region", Int64TensorType([None, 1]))])
    return dict(onnx=onx, inputs={"age": ((1,), "float"), "income": ((1,), "float"),
                                  "job": ((1,), "int:4"), "region": ((1,), "int:3")})


def _simple_skl(est, reg=False, classes=3):
    X, y = _data(reg=reg, classes=classes)
    est.fit(X, y)
    return dict(onnx=_skl_float(est, X), inputs=SKF)


@case("sk_kneighbors_clf", "sklearn")
def _knn():
    from sklearn.neighbors import KNeighborsClassifier
    return _simple_skl(KNeighborsClassifier(5))


@case("sk_decision_tree_clf", "sklearn")
def _dt():
    from sklearn.tree import DecisionTreeClassifier
    return _simple_skl(DecisionTreeClassifier(max_depth=5, random_state=0))


@case("sk_extra_trees_clf", "sklearn")
def _et():
    from sklearn.ensemble import ExtraTreesClassifier
    return _simple_skl(ExtraTreesClassifier(n_estimators=5, max_depth=4, random_state=0))


@case("sk_hist_gb_clf", "sklearn")
def _hgb():
    from sklearn.ensemble import HistGradientBoostingClassifier
    return _simple_skl(HistGradientBoostingClassifier(max_iter=5, max_depth=3, random_state=0))


@case("sk_linear_svc", "sklearn")
def _lsvc():
    from sklearn.svm import LinearSVC
    return _simple_skl(LinearSVC(random_state=0))


@case("sk_ridge", "sklearn")
def _ridge():
    from sklearn.linear_model import Ridge
    return _simple_skl(Ridge(1.0), reg=True)


@case("sk_sgd_clf", "sklearn")
def _sgd():
    from sklearn.linear_model import SGDClassifier
    return _simple_skl(SGDClassifier(random_state=0))


@case("sk_gaussian_nb", "sklearn")
def _gnb():
    from sklearn.naive_bayes import GaussianNB
    return _simple_skl(GaussianNB())


@case("sk_mlp_regressor", "sklearn")
def _mlpr():
    from sklearn.neural_network import MLPRegressor
    return _simple_skl(MLPRegressor(hidden_layer_sizes=(16,), max_iter=300, random_state=0), reg=True)


@case("sk_random_forest_reg", "sklearn")
def _rfr():
    from sklearn.ensemble import RandomForestRegressor
    return _simple_skl(RandomForestRegressor(n_estimators=5, max_depth=4, random_state=0), reg=True)


def _mltools(est, reg=False, classes=3):
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType
    X, y = _data(reg=reg, classes=classes)
    est.fit(X, y)
    types = [("X", FloatTensorType([None, X.shape[1]]))]
    if "xgboost" in type(est).__module__:
        onx = onnxmltools.convert_xgboost(est, initial_types=types)
    else:
        onx = onnxmltools.convert_lightgbm(est, initial_types=types)
    return dict(onnx=onx, inputs=SKF)


@case("xgb_regressor", "xgboost")
def _xgbr():
    from xgboost import XGBRegressor
    return _mltools(XGBRegressor(n_estimators=5, max_depth=3, random_state=0), reg=True)


@case("lgbm_regressor", "lightgbm")
def _lgbr():
    from lightgbm import LGBMRegressor
    return _mltools(LGBMRegressor(n_estimators=5, num_leaves=7, random_state=0, verbose=-1), reg=True)


@case("xgb_classifier_binary", "xgboost")
def _xgbc():
    from xgboost import XGBClassifier
    return _mltools(XGBClassifier(n_estimators=5, max_depth=3, random_state=0), classes=2)


@case("lgbm_classifier_multiclass", "lightgbm")
def _lgbc():
    from lightgbm import LGBMClassifier
    return _mltools(LGBMClassifier(n_estimators=5, num_leaves=7, random_state=0, verbose=-1), classes=3)


# ----------------------------------------------------------------------------------------------
# Checking


def ort_run(path, feeds):
    """onnxruntime outputs by name; a ZipMap output is replaced by the tensor ZipMap reads."""
    model = onnx.load(path)
    producers = {o: n for n in model.graph.node for o in n.output}
    tensor_outs, extra = [], []
    for o in model.graph.output:
        if o.type.HasField("tensor_type"):
            tensor_outs.append(o.name)
        else:
            n = producers.get(o.name)
            if n is not None and n.op_type == "ZipMap":
                extra.append(n.input[0])
    if extra:
        for e in extra:
            model.graph.output.append(onnx.helper.make_tensor_value_info(e, onnx.TensorProto.FLOAT, None))
        src = model.SerializeToString()
    else:
        src = path
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    res = sess.run(None, feeds)
    return {n: np.asarray(r) for n, r in zip(names, res) if n in tensor_outs or n in extra}


def first_line(s):
    for line in (s or "").splitlines():
        line = line.strip()
        if line:
            return line[:200]
    return ""


def cli(args, timeout=CLI_TIMEOUT):
    try:
        p = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return 124, "", f"timeout after {timeout}s"
    return p.returncode, p.stdout, p.stderr


def cmp_arrays(got, want):
    """(ok, maxabs, why)"""
    want = np.asarray(want)
    got = np.asarray(got)
    if got.shape != want.shape:
        if got.size == want.size:
            why = f"shape {list(got.shape)} vs ort {list(want.shape)}"
            got = got.reshape(want.shape)
            d = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64)))) if got.size else 0.0
            return False, d, why
        return False, float("inf"), f"shape {list(got.shape)} vs ort {list(want.shape)}"
    if want.dtype.kind in "iub" and got.dtype.kind not in "iub" and got.dtype.kind != "f":
        return False, float("inf"), f"dtype {got.dtype} vs ort {want.dtype}"
    g, w = got.astype(np.float64), want.astype(np.float64)
    if not g.size:
        return True, 0.0, ""
    d = np.abs(g - w)
    bad = ~(d <= ATOL + RTOL * np.abs(w))
    both_nan = np.isnan(g) & np.isnan(w)
    bad &= ~both_nan
    maxd = float(np.nanmax(d)) if np.any(~np.isnan(d)) else float("nan")
    why = "" if got.dtype == want.dtype else f"dtype {got.dtype} vs ort {want.dtype}"
    return (not bad.any()), maxd, why


class Probe:
    def __init__(self, work, mlaudit):
        self.work = work
        self.mlaudit = mlaudit
        self.rows = []
        self.post = True

    def row(self, model, exporter, opset, status, grad="-", note=""):
        r = dict(model=model, exporter=exporter, opset=opset, status=status, grad=grad, note=note)
        self.rows.append(r)
        print(f"  -> {model} [{exporter}] opset={opset}: {status} | grad: {grad} {('| ' + note) if note else ''}",
              flush=True)

    def check(self, name, exporter, d, path, inputs_by_batch, torch_ref=None, grad_ref=None):
        model = onnx.load(path)
        opset = ",".join(f"{o.domain or ''}:{o.version}".lstrip(":") for o in
                         sorted(model.opset_import, key=lambda o: o.domain))
        repro = []
        statuses = []
        notes = []
        for b, feeds in inputs_by_batch.items():
            in_files = {}
            for n, a in feeds.items():
                fn = os.path.join(d, f"in_{n}_b{b}.npy")
                np.save(fn, a)
                in_files[n] = fn
            try:
                want = ort_run(path, feeds)
            except Exception as e:  # noqa: BLE001
                return self.row(name, exporter, opset, "ort error: " + first_line(str(e)))
            for k, (n, a) in enumerate(want.items()):
                np.save(os.path.join(d, f"ort_{k}_b{b}.npy"), a)
            if torch_ref is not None:
                tr = torch_ref(feeds)
                worst = 0.0
                for a, t in zip(want.values(), tr):
                    if a.shape == t.shape and a.dtype.kind == "f":
                        worst = max(worst, float(np.max(np.abs(a - t))) if a.size else 0.0)
                if worst > 1e-3:
                    notes.append(f"ort-vs-torch b{b} {worst:.2g}")
            od = os.path.join(d, f"mlaudit_b{b}")
            os.makedirs(od, exist_ok=True)
            for f in os.listdir(od):
                os.remove(os.path.join(od, f))
            args = [self.mlaudit, "run", "--model", path]
            if len(feeds) == 1:
                args += ["--input", next(iter(in_files.values()))]
            else:
                for n, fn in in_files.items():
                    args += ["--input", f"{n}={fn}"]
            args += ["--output-dir", od]
            repro.append(" ".join(shlex.quote(a) for a in args))
            t0 = time.time()
            rc, out, err = cli(args)
            if rc != 0:
                msg = first_line(err) or first_line(out) or f"rc={rc}"
                statuses.append(f"error b{b}: {msg}")
                break
            for k, (n, a) in enumerate(want.items()):
                fn = os.path.join(od, n + ".npy")
                if not os.path.exists(fn):
                    statuses.append(f"missing output '{n}' b{b} (have {sorted(os.listdir(od))})")
                    continue
                got = np.load(fn, allow_pickle=False)
                ok, maxd, why = cmp_arrays(got, a)
                if not ok:
                    statuses.append(f"mismatch '{n}' b{b} maxdiff {maxd:.3g}" + (f" ({why})" if why else ""))
                elif why:
                    notes.append(f"'{n}' {why}")
            notes.append(f"b{b} {time.time() - t0:.1f}s")
        status = "ok" if not statuses else "; ".join(dict.fromkeys(statuses))
        grad = "-"
        if grad_ref is not None and not (statuses and statuses[0].startswith("error")):
            grad_st = []
            for b, feeds in inputs_by_batch.items():
                (n, x), = feeds.items()
                fn = os.path.join(d, f"in_{n}_b{b}.npy")
                gfn = os.path.join(d, f"mlaudit_grad_b{b}.npy")
                if os.path.exists(gfn):
                    os.remove(gfn)
                args = [self.mlaudit, "explain", "--model", path, "--data", fn, "--method", "gradient",
                        "--target", "0", "--out", gfn]
                repro.append(" ".join(shlex.quote(a) for a in args))
                rc, out, err = cli(args)
                if rc != 0:
                    grad_st.append(f"error b{b}: {first_line(err) or first_line(out) or rc}")
                    break
                log = "logarithm" in err  # 'output is a probability vector; explain audits its logarithm'
                if log and "log-prob ref" not in notes:
                    notes.append("log-prob ref")
                g32 = grad_ref(x, "f32", log)
                g64 = grad_ref(x, "f64", log)
                np.save(os.path.join(d, f"torch_grad_b{b}.npy"), g32)
                got = np.load(gfn)
                atol = GRAD_ATOL_REL * float(np.max(np.abs(g64)))
                if got.shape != g32.shape:
                    grad_st.append(f"shape {list(got.shape)} vs {list(g32.shape)}")
                    continue
                dd = np.abs(got.astype(np.float64) - g64)
                if not np.all(dd <= atol + GRAD_RTOL * np.abs(g64)):
                    ref_d = float(np.max(np.abs(g32.astype(np.float64) - g64)))
                    grad_st.append(f"mismatch b{b} maxdiff {float(dd.max()):.3g} (max|g| {float(np.max(np.abs(g64))):.3g},"
                                   f" torch f32 vs f64 {ref_d:.2g})")
            grad = "ok" if not grad_st else "; ".join(grad_st)
        with open(os.path.join(d, "repro.sh"), "w") as f:
            f.write("#!/bin/sh\n# run from the repository root\n" + "\n".join(repro) + "\n")
        self.row(name, exporter, opset, status, grad, ", ".join(notes))


# Post-processing users apply to an exported model (on the default-opset TorchScript export):
# qdyn  onnxruntime.quantization.quantize_dynamic (QInt8 weights: DynamicQuantizeLinear/MatMulInteger/ConvInteger)
# qdq   onnxruntime.quantization.quantize_static, QDQ format, calibrated on 8 random rows
# fp16  onnxconverter_common.float16.convert_float_to_float16(keep_io_types=True)
POST = {
    "audio_conv1d": ["qdyn", "qdq", "fp16"],
    "mobilenet_v3_small": ["qdq", "fp16"],
    "convnext_small": ["fp16"],
    "clamp_minmax": ["qdyn"],
    "hf_bert_seqcls": ["qdyn", "fp16"],
    "vit_small": ["qdyn", "qdq"],
}


def post_process(kind, src, dst, calib):
    if kind == "qdyn":
        from onnxruntime.quantization import QuantType, quantize_dynamic
        quantize_dynamic(src, dst, weight_type=QuantType.QInt8)
    elif kind == "qdq":
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

        class R(CalibrationDataReader):
            def __init__(self):
                self.it = iter(calib)

            def get_next(self):
                return next(self.it, None)
        quantize_static(src, dst, R(), quant_format=QuantFormat.QDQ)
    elif kind == "fp16":
        from onnxconverter_common import float16
        onnx.save(float16.convert_float_to_float16(onnx.load(src), keep_io_types=True), dst)


def run_torch(probe, name, builder, exporters, idx):
    import torch
    torch.manual_seed(100 + idx)
    try:
        built = builder()
    except Exception as e:  # noqa: BLE001
        return probe.row(name, "build", "-", "build error: " + first_line(f"{type(e).__name__}: {e}"))
    model = built["model"].eval()
    randomize_norm_stats(model, torch.Generator().manual_seed(200 + idx))
    rng = np.random.default_rng(300 + idx)
    spec = built["inputs"]
    names = list(spec)
    example = make_inputs(spec, 2, rng)
    inputs_by_batch = {b: make_inputs(spec, b, rng) for b in BATCHES}
    float_single = len(spec) == 1 and next(iter(spec.values()))[1] == "float"
    try:
        with torch.no_grad():
            r = model(*[torch.from_numpy(example[n]) for n in names])
    except Exception as e:  # noqa: BLE001
        return probe.row(name, "build", "-", "forward error: " + first_line(f"{type(e).__name__}: {e}"))
    r0 = r[0] if isinstance(r, (tuple, list)) else r
    differentiable = float_single and r0.dim() == 2 and built.get("grad", True)

    def tref(feeds):
        return torch_forward(model, names, feeds)

    def gref(x, prec, log=False):
        return torch_grad0(model, x, torch.float64 if prec == "f64" else torch.float32, log)

    for exp in exporters:
        full = f"{name}_{exp}"
        d = os.path.join(probe.work, full)
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, "model.onnx")
        label = "torch-" + exp.replace("ts", "ts@") if exp.startswith("ts") and exp != "ts" else (
            "torch-ts" if exp == "ts" else "torch-dynamo")
        t0 = time.time()
        try:
            export_torch(name, built, exp, path, example)
        except Exception as e:  # noqa: BLE001
            msg = f"{type(e).__name__}: {e}"
            with open(os.path.join(d, "export_error.txt"), "w") as f:
                f.write(traceback.format_exc())
            probe.row(full, label, "-", "export error: " + first_line(msg))
            continue
        print(f"  exported {full} in {time.time() - t0:.1f}s", flush=True)
        probe.check(full, label, d, path, inputs_by_batch, torch_ref=tref,
                    grad_ref=gref if differentiable else None)
        if exp == "ts" and probe.post:
            calib = [make_inputs(spec, 1, np.random.default_rng(900 + k)) for k in range(8)]
            for kind in POST.get(name, []):
                pd_ = os.path.join(probe.work, f"{name}_ts_{kind}")
                os.makedirs(pd_, exist_ok=True)
                ppath = os.path.join(pd_, "model.onnx")
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        post_process(kind, path, ppath, calib)
                except Exception as e:  # noqa: BLE001
                    with open(os.path.join(pd_, "export_error.txt"), "w") as f:
                        f.write(traceback.format_exc())
                    probe.row(f"{name}_ts_{kind}", f"torch-ts+{kind}", "-",
                              "export error: " + first_line(f"{type(e).__name__}: {e}"))
                    continue
                probe.check(f"{name}_ts_{kind}", f"torch-ts+{kind}", pd_, ppath, inputs_by_batch)


def run_classic(probe, name, family, builder, idx):
    d = os.path.join(probe.work, name)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "model.onnx")
    label = {"sklearn": "skl2onnx", "xgboost": "onnxmltools", "lightgbm": "onnxmltools"}[family]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            built = builder()
        onnx.save(built["onnx"], path)
    except Exception as e:  # noqa: BLE001
        with open(os.path.join(d, "export_error.txt"), "w") as f:
            f.write(traceback.format_exc())
        return probe.row(name, label, "-", "export error: " + first_line(f"{type(e).__name__}: {e}"))
    rng = np.random.default_rng(400 + idx)
    inputs_by_batch = {}
    for b in BATCHES:
        feeds = {}
        for n, (shape, kind) in built["inputs"].items():
            if kind == "float":
                feeds[n] = rng.standard_normal((b,) + shape).astype(np.float32)
            else:
                feeds[n] = rng.integers(0, int(kind.split(":")[1]), size=(b,) + shape).astype(np.int64)
        inputs_by_batch[b] = feeds
    probe.check(name, label, d, path, inputs_by_batch)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default="/tmp/probe")
    ap.add_argument("--only", default="")
    ap.add_argument("--skip", default="")
    ap.add_argument("--exporters", default="ts,dynamo")
    ap.add_argument("--mlaudit", default=os.path.join(ROOT, "build", "mlaudit"))
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--table-all", action="store_true", help="print previous results.json rows too")
    ap.add_argument("--no-post", action="store_true", help="skip the quantized / fp16 variants")
    a = ap.parse_args(argv)
    if a.list:
        for n, fam, _ in CASES:
            print(n, fam)
        return 0
    import torch
    torch.set_num_threads(1)
    only = {s for s in a.only.split(",") if s}
    skip = {s for s in a.skip.split(",") if s}
    os.makedirs(a.work, exist_ok=True)
    probe = Probe(a.work, os.path.abspath(a.mlaudit))
    exporters = [e for e in a.exporters.split(",") if e]
    probe.post = not a.no_post
    for idx, (name, family, builder) in enumerate(CASES):
        if (only and name not in only) or name in skip:
            continue
        print(f"[{name}]", flush=True)
        if family == "torch":
            run_torch(probe, name, builder, exporters, idx)
        else:
            run_classic(probe, name, family, builder, idx)
    res_path = os.path.join(a.work, "results.json")
    old = []
    if os.path.exists(res_path) and (only or skip):  # partial run: merge into the previous results
        new = {(r["model"], r["exporter"]) for r in probe.rows}
        old = [r for r in json.load(open(res_path)) if (r["model"], r["exporter"]) not in new]
    with open(res_path, "w") as f:
        json.dump(old + probe.rows, f, indent=1)
    print()
    print_table(old + probe.rows if a.table_all else probe.rows)
    return 0


def print_table(rows):
    w = max(len(r["model"]) for r in rows) if rows else 10
    print(f"| {'model':<{w}} | exporter | opset | status | grad | notes |")
    print(f"|{'-' * (w + 2)}|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']:<{w}} | {r['exporter']} | {r['opset']} | {r['status']} | {r['grad']} | {r['note']} |")


if __name__ == "__main__":
    sys.exit(main())
