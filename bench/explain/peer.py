"""Peer timings for bench/explain/run.sh: Captum (IG, DeepLift) on the bundled CNN, shap.KernelExplainer
and lime.LimeTabularExplainer on the credit MLP.

Usage: ${PYTHON:-.venv/bin/python} bench/explain/peer.py KIND ROWS N [THREADS]
  KIND: ig (N = steps) | deeplift (N unused) | kernelshap (N = nsamples) | lime (N = num_samples)
        | kernelshap_ort (as kernelshap, the model run by onnxruntime instead of torch)
        | kernelshap196 (N = nsamples; models/privacy/overfit_mlp.onnx, 196 features, 20 background
          rows = the first 20 of datasets/privacy/overfit_members_x.npy, target 0)
Prints one line: "<wall seconds per sample> <CPU seconds per sample>", the best of 3 repeats. Same
work as the mlaudit run (same rows; target = predicted class for the CNN; logit of output 1 with
the 100 background rows for the credit MLP), torch.set_num_threads(THREADS) (default 2).
"""
import os
import sys
import time
import warnings

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import mlaudit_torch  # noqa: E402

warnings.filterwarnings("ignore")


def best_of(fn, rows, repeats=3):
    """(wall, cpu) seconds per sample: the fastest of `repeats` runs of fn()."""
    best = (float("inf"), float("inf"))
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        best = min(best, ((time.perf_counter() - t0) / rows, (time.process_time() - c0) / rows))
    return best


def cnn_rows(rows):
    cnn = mlaudit_torch.cnn_from_onnx(os.path.join(ROOT, "models", "fmnist_cnn.onnx"))
    x = torch.from_numpy(np.load(os.path.join(ROOT, "datasets", "demo", "fmnist_x.npy"))[:rows].astype(np.float32))
    with torch.no_grad():
        targets = cnn(x).argmax(dim=1)
    return cnn, x, targets


def bench_ig(rows, steps):
    from captum.attr import IntegratedGradients
    cnn, x, targets = cnn_rows(rows)
    ig = IntegratedGradients(cnn)
    ig.attribute(x[:1], target=targets[:1], n_steps=steps)  # warm-up

    def run():  # one sample at a time, all its steps in one batch (Captum's default)
        for i in range(rows):
            ig.attribute(x[i:i + 1], target=targets[i:i + 1], n_steps=steps, method="gausslegendre")
    return best_of(run, rows)


def bench_deeplift(rows, _):
    from captum.attr import DeepLift
    from explain_deeplift_goldens import CnnModules
    cnn, x, targets = cnn_rows(rows)
    dl = DeepLift(CnnModules(cnn).eval())
    dl.attribute(x[:1], baselines=torch.zeros_like(x[:1]), target=targets[:1])  # warm-up
    return best_of(lambda: dl.attribute(x, baselines=torch.zeros_like(x), target=targets), rows)


def credit():
    mlp = mlaudit_torch.mlp_from_onnx(os.path.join(ROOT, "models", "credit_mlp.onnx"))
    bg = np.load(os.path.join(ROOT, "datasets", "demo", "credit_background.npy")).astype(np.float32)

    def f(a):
        with torch.no_grad():
            return mlp(torch.from_numpy(np.asarray(a, dtype=np.float32)))[:, 1].numpy().astype(np.float64)
    return f, bg


def bench_kernelshap(rows, samples):
    import shap
    f, bg = credit()
    cx = np.load(os.path.join(ROOT, "datasets", "demo", "credit_x.npy"))[:rows].astype(np.float32)
    ex = shap.KernelExplainer(f, bg)
    ex.shap_values(cx[:1], nsamples=samples, l1_reg=False, silent=True)  # warm-up
    return best_of(lambda: ex.shap_values(cx, nsamples=samples, l1_reg=False, silent=True), rows)


def sequential_from_onnx(path):
    """torch.nn.Sequential of the Gemm/Relu chain of an ONNX MLP (weights from its initializers)."""
    import onnx
    from onnx import numpy_helper
    model = onnx.load(path)
    values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    layers = []
    for node in model.graph.node:
        if node.op_type == "Gemm":
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            w = values[node.input[1]] if attrs.get("transB", 0) else values[node.input[1]].T
            lin = torch.nn.Linear(w.shape[1], w.shape[0])
            lin.weight.data = torch.from_numpy(np.array(w, dtype=np.float32))
            lin.bias.data = torch.from_numpy(np.array(values[node.input[2]], dtype=np.float32))
            layers.append(lin)
        elif node.op_type == "Relu":
            layers.append(torch.nn.ReLU())
        else:
            raise ValueError(f"{path}: unexpected op {node.op_type}")
    return torch.nn.Sequential(*layers).eval()


def bench_kernelshap_ort(rows, samples, threads):
    """shap.KernelExplainer with onnxruntime running the credit MLP (faster than torch here)."""
    import onnxruntime as ort
    import shap
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    sess = ort.InferenceSession(os.path.join(ROOT, "models", "credit_mlp.onnx"), so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name

    def f(a):
        return sess.run(None, {name: np.asarray(a, dtype=np.float32)})[0][:, 1].astype(np.float64)
    bg = np.load(os.path.join(ROOT, "datasets", "demo", "credit_background.npy")).astype(np.float32)
    cx = np.load(os.path.join(ROOT, "datasets", "demo", "credit_x.npy"))[:rows].astype(np.float32)
    ex = shap.KernelExplainer(f, bg)
    ex.shap_values(cx[:1], nsamples=samples, l1_reg=False, silent=True)  # warm-up
    return best_of(lambda: ex.shap_values(cx, nsamples=samples, l1_reg=False, silent=True), rows)


def bench_kernelshap196(rows, samples):
    import shap
    net = sequential_from_onnx(os.path.join(ROOT, "models", "privacy", "overfit_mlp.onnx"))
    x = np.load(os.path.join(ROOT, "datasets", "privacy", "overfit_nonmembers_x.npy"))[:rows].astype(np.float32)
    bg = np.load(os.path.join(ROOT, "datasets", "privacy", "overfit_members_x.npy"))[:20].astype(np.float32)

    def f(a):
        with torch.no_grad():
            return net(torch.from_numpy(np.asarray(a, dtype=np.float32)))[:, 0].numpy().astype(np.float64)
    ex = shap.KernelExplainer(f, bg)
    return best_of(lambda: ex.shap_values(x, nsamples=samples, l1_reg=False, silent=True), rows, repeats=1)


def bench_lime(rows, samples):
    from lime.lime_tabular import LimeTabularExplainer
    f, bg = credit()
    cx = np.load(os.path.join(ROOT, "datasets", "demo", "credit_x.npy"))[:rows].astype(np.float32)
    ex = LimeTabularExplainer(bg, mode="regression", discretize_continuous=False, sample_around_instance=True,
                              random_state=0)

    def run():
        for i in range(rows):
            ex.explain_instance(cx[i], f, num_features=cx.shape[1], num_samples=samples)
    return best_of(run, rows)


if __name__ == "__main__":
    kind, rows, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    threads = int(sys.argv[4]) if len(sys.argv) > 4 else 2
    torch.set_num_threads(threads)
    if kind == "kernelshap_ort":
        wall, cpu = bench_kernelshap_ort(rows, n, threads)
    else:
        fn = {"ig": bench_ig, "deeplift": bench_deeplift, "kernelshap": bench_kernelshap, "lime": bench_lime,
              "kernelshap196": bench_kernelshap196}[kind]
        wall, cpu = fn(rows, n)
    print(f"{wall:.6f} {cpu:.6f}")
