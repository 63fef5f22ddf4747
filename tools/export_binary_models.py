#!/usr/bin/env python3
"""Binary classifiers with ONE output column, as PyTorch users export them, for the input-contract
tests (tests/engine/test_input_contract.cpp).

A binary classifier trained with BCEWithLogitsLoss ends in Linear(h, 1): its ONNX output is one
logit z per row ([N, 1]); one that ends in Sigmoid gives p = sigmoid(z). mlaudit's classification
commands read classes off the output's columns, so they audit such a model as two classes
(engine::SessionOptions::binary_two_classes): [0, z] for a logit, [log(1-p), log p] for a probability.

Writes tests/fixtures/binary/:
  logit.onnx      Linear(8,16) -> ReLU -> Linear(16,1)             (torch.onnx.export, dynamo=False, default opset)
  sigmoid.onnx    the same network followed by Sigmoid
  x.npy           64 rows, float32 uniform in [0, 1]
  z.npy           onnxruntime's output of logit.onnx on x ([64, 1])
  p.npy           onnxruntime's output of sigmoid.onnx on x ([64, 1])
  y.npy           int64 labels: the model's own decision (z > 0), so clean accuracy is 1

Python: $PYTHON or the repo-local .venv (tools/project_python.py); needs torch, onnx, onnxruntime.
    ${PYTHON:-.venv/bin/python} tools/export_binary_models.py
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import project_python  # noqa: E402

project_python.use()

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "fixtures", "binary")


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    body = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1)).eval()
    # Centre the logit on the data so both classes occur (bias shifted by the median logit).
    x = np.random.default_rng(0).uniform(0, 1, size=(64, 8)).astype(np.float32)
    with torch.no_grad():
        z0 = body(torch.from_numpy(x)).numpy()[:, 0]
        body[2].bias -= float(np.median(z0))
    models = {"logit": body, "sigmoid": torch.nn.Sequential(body, torch.nn.Sigmoid()).eval()}
    outs = {}
    for name, m in models.items():
        path = os.path.join(OUT, name + ".onnx")
        torch.onnx.export(m, (torch.from_numpy(x[:2]),), path, input_names=["x"], output_names=["score"],
                          dynamic_axes={"x": {0: "batch"}, "score": {0: "batch"}}, dynamo=False)
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        outs[name] = sess.run(None, {"x": x})[0]
    np.save(os.path.join(OUT, "x.npy"), x)
    np.save(os.path.join(OUT, "z.npy"), outs["logit"])
    np.save(os.path.join(OUT, "p.npy"), outs["sigmoid"])
    y = (outs["logit"][:, 0] > 0).astype(np.int64)
    np.save(os.path.join(OUT, "y.npy"), y)
    print(f"wrote {OUT}: {int(y.sum())} of {len(y)} rows positive")


if __name__ == "__main__":
    main()
