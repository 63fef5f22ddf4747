"""PyTorch definitions of mlaudit's bundled models, and their reconstruction from the ONNX files.

Shared by tools/train_models.py (training and export), tools/engine_goldens.py
(autograd goldens) and bench/engine/peer.py (PyTorch timings). Not a script:
import it with `sys.path.insert(0, "<repo>/tools")`.

`cnn_from_onnx` / `mlp_from_onnx` rebuild the torch module from the initializers of
the committed .onnx file (not from a training checkpoint, which is not committed), so
goldens and benchmarks always use exactly the weights the C++ engine loads.
"""
import gzip
import struct

import numpy as np
import onnx
import torch
import torch.nn as nn
from onnx import numpy_helper


class FmnistCNN(nn.Module):
    """Conv(1->16,3x3,p1)-ReLU-MaxPool2-Conv(16->32,3x3,p1)-ReLU-MaxPool2-Flatten-Gemm(1568->64)-ReLU-Gemm(64->10)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(32 * 7 * 7, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        x = self.flatten(x)
        return self.fc2(torch.relu(self.fc1(x)))


class CreditMLP(nn.Module):
    """(x - mean) / std -> Gemm(F->32)-ReLU-Gemm(32->16)-ReLU-Gemm(16->2); standardisation inside the graph."""

    def __init__(self, n_features, mean=None, std=None):
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features) if mean is None else torch.tensor(np.asarray(mean, dtype=np.float32)))
        self.register_buffer("std", torch.ones(n_features) if std is None else torch.tensor(np.asarray(std, dtype=np.float32)))
        self.fc1 = nn.Linear(n_features, 32)
        self.fc2 = nn.Linear(32, 16)
        self.fc3 = nn.Linear(16, 2)

    def forward(self, x):
        x = (x - self.mean) / self.std
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.fc3(x)


def read_idx_gz(path):
    """Read an IDX file (optionally gzipped) as a numpy array (MNIST family format)."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as fh:
        data = fh.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _constants(model):
    """Map tensor name -> numpy value for initializers and Constant-node outputs."""
    values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(a.t)
    return values


def _gemm_weights(model, values):
    """(W as [out,in], b) of every Gemm node in graph order."""
    out = []
    for node in model.graph.node:
        if node.op_type == "Gemm":
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            w = values[node.input[1]]
            if not attrs.get("transB", 0):
                w = w.T
            out.append((w, values[node.input[2]]))
    return out


def cnn_from_onnx(path):
    """Rebuild FmnistCNN from the initializers of models/fmnist_cnn.onnx."""
    model = onnx.load(path)
    values = _constants(model)
    convs = [(values[n.input[1]], values[n.input[2]]) for n in model.graph.node if n.op_type == "Conv"]
    gemms = _gemm_weights(model, values)
    if len(convs) != 2 or len(gemms) != 2:
        raise ValueError(f"{path}: expected 2 Conv and 2 Gemm nodes, got {len(convs)} and {len(gemms)}")
    net = FmnistCNN()
    sd = {
        "conv1.weight": convs[0][0], "conv1.bias": convs[0][1],
        "conv2.weight": convs[1][0], "conv2.bias": convs[1][1],
        "fc1.weight": gemms[0][0], "fc1.bias": gemms[0][1],
        "fc2.weight": gemms[1][0], "fc2.bias": gemms[1][1],
    }
    net.load_state_dict({k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in sd.items()})
    return net.eval()


def mlp_from_onnx(path):
    """Rebuild CreditMLP (standardisation constants included) from models/credit_mlp.onnx."""
    model = onnx.load(path)
    values = _constants(model)
    sub = [n for n in model.graph.node if n.op_type == "Sub"]
    div = [n for n in model.graph.node if n.op_type == "Div"]
    if len(sub) != 1 or len(div) != 1:
        raise ValueError(f"{path}: expected one Sub and one Div node (standardisation)")
    mean = values[sub[0].input[1]]
    std = values[div[0].input[1]]
    gemms = _gemm_weights(model, values)
    if len(gemms) != 3:
        raise ValueError(f"{path}: expected 3 Gemm nodes, got {len(gemms)}")
    net = CreditMLP(mean.shape[-1], mean.reshape(-1), std.reshape(-1))
    for i, (w, b) in enumerate(gemms, start=1):
        getattr(net, f"fc{i}").weight.data = torch.from_numpy(np.array(w, dtype=np.float32))
        getattr(net, f"fc{i}").bias.data = torch.from_numpy(np.array(b, dtype=np.float32))
    return net.eval()
