"""Golden attributions for tests/explain from independent implementations: Captum and SHAP.

Run from the repository root (needs captum and shap: .venv/bin/pip install captum shap):

    ${PYTHON:-.venv/bin/python} tools/explain_goldens.py

It rebuilds the bundled models in PyTorch from the initializers of models/*.onnx
(tools/mlaudit_torch.py), takes the first rows of the demo data and writes small
.npy/.json fixtures to tests/fixtures/explain/:

- fmnist (first 4 images of datasets/demo/fmnist_x.npy, target = predicted class):
  Captum IntegratedGradients (gausslegendre, 50 steps, zero baseline), Saliency (abs),
  NoiseTunnel smoothgrad / smoothgrad_sq over Saliency(abs=False) with a FIXED noise tensor
  (written as sg_noise.npy; Captum's own draw is patched out so C++ can use the same noise),
  Occlusion (window (1,4,4), stride (1,2,2), baseline 0).
- credit (first 6 rows of datasets/demo/credit_x.npy, target = output 1 "approved"):
  Captum IntegratedGradients (riemann_middle, 20 steps, baseline = background mean),
  Occlusion (window (1,), baseline 0), and shap.KernelExplainer on the logit of output 1
  with the 100 background rows of credit_background.npy, nsamples="auto" (= 2^7 - 2 = 126:
  every coalition enumerated, so no randomness) and l1_reg=False.
- credit, LIME: lime.lime_tabular.LimeTabularExplainer (regression mode on the same logit,
  discretize_continuous=False, sample_around_instance=True, 500 samples) on the first 3 rows,
  its normal draws replaced by the fixed matrix lime_noise.npy.
Everything runs in float32 on the CPU with torch.set_num_threads(2).
"""
import json
import os
import sys

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import mlaudit_torch  # noqa: E402

from captum.attr import IntegratedGradients, NoiseTunnel, Occlusion, Saliency  # noqa: E402
from captum.attr._core import noise_tunnel as nt_module  # noqa: E402
import shap  # noqa: E402

OUT = os.path.join(ROOT, "tests", "fixtures", "explain")


def save(name, arr):
    np.save(os.path.join(OUT, name), np.ascontiguousarray(arr))


def main():
    torch.set_num_threads(2)
    os.makedirs(OUT, exist_ok=True)
    meta = {"generator": "tools/explain_goldens.py", "captum": __import__("captum").__version__,
            "shap": shap.__version__, "torch": torch.__version__}

    # ------------------------------------------------------------ fmnist CNN
    cnn = mlaudit_torch.cnn_from_onnx(os.path.join(ROOT, "models", "fmnist_cnn.onnx"))
    x = torch.from_numpy(np.load(os.path.join(ROOT, "datasets", "demo", "fmnist_x.npy"))[:4].astype(np.float32))
    with torch.no_grad():
        targets = cnn(x).argmax(dim=1)
    meta["fmnist_targets"] = targets.tolist()

    ig = IntegratedGradients(cnn)
    attr, delta = ig.attribute(x, baselines=torch.zeros_like(x), target=targets, n_steps=50,
                               method="gausslegendre", return_convergence_delta=True)
    save("ig_fmnist.npy", attr.detach().numpy())
    meta["ig_fmnist_delta"] = delta.tolist()

    save("saliency_fmnist.npy", Saliency(cnn).attribute(x, target=targets, abs=True).detach().numpy())

    rng = np.random.default_rng(7)
    samples = 8
    noise = (0.15 * rng.standard_normal((samples, 1, 28, 28))).astype(np.float32)
    save("sg_noise.npy", noise)
    fixed = torch.from_numpy(noise)

    def fixed_noise(inp, stdev, nt_samples_partition):
        # Same noise for every row: rows are repeat_interleaved, so noise tiles per row.
        assert nt_samples_partition == samples
        return inp.repeat_interleave(samples, dim=0) + fixed.repeat(inp.shape[0], 1, 1, 1)

    nt_module.NoiseTunnel._add_noise_to_input = staticmethod(fixed_noise)
    tunnel = NoiseTunnel(Saliency(cnn))
    sg = tunnel.attribute(x, nt_type="smoothgrad", nt_samples=samples, stdevs=0.15, target=targets, abs=False)
    save("smoothgrad_fmnist.npy", sg.detach().numpy())
    sgsq = tunnel.attribute(x, nt_type="smoothgrad_sq", nt_samples=samples, stdevs=0.15, target=targets, abs=False)
    save("smoothgrad_sq_fmnist.npy", sgsq.detach().numpy())

    occ = Occlusion(cnn).attribute(x, sliding_window_shapes=(1, 4, 4), strides=(1, 2, 2), baselines=0.0,
                                   target=targets)
    save("occlusion_fmnist.npy", occ.detach().numpy())

    # ------------------------------------------------------------ credit MLP
    mlp = mlaudit_torch.mlp_from_onnx(os.path.join(ROOT, "models", "credit_mlp.onnx"))
    cx = np.load(os.path.join(ROOT, "datasets", "demo", "credit_x.npy"))[:6].astype(np.float32)
    bg = np.load(os.path.join(ROOT, "datasets", "demo", "credit_background.npy")).astype(np.float32)
    xt = torch.from_numpy(cx)
    mean_baseline = torch.from_numpy(bg.mean(axis=0, keepdims=True)).expand_as(xt).contiguous()
    ig_c, delta_c = IntegratedGradients(mlp).attribute(xt, baselines=mean_baseline, target=1, n_steps=20,
                                                      method="riemann_middle", return_convergence_delta=True)
    save("ig_credit.npy", ig_c.detach().numpy())
    meta["ig_credit_delta"] = delta_c.tolist()
    occ_c = Occlusion(mlp).attribute(xt, sliding_window_shapes=(1,), strides=(1,), baselines=0.0, target=1)
    save("occlusion_credit.npy", occ_c.detach().numpy())

    def f(rows):
        with torch.no_grad():
            return mlp(torch.from_numpy(np.asarray(rows, dtype=np.float32)))[:, 1].numpy().astype(np.float64)

    explainer = shap.KernelExplainer(f, bg)
    np.random.seed(0)
    phi = explainer.shap_values(cx, nsamples="auto", l1_reg=False, silent=True)
    save("kernelshap_credit.npy", np.asarray(phi, dtype=np.float64))
    meta["kernelshap_expected_value"] = float(np.asarray(explainer.expected_value).reshape(-1)[0])

    # LIME through the lime package's own LimeTabularExplainer (regression mode on the logit of
    # output 1, discretize_continuous=False, sample_around_instance=True): its random_state is
    # replaced by a fixed N(0,1) matrix (lime_noise.npy) that the C++ test feeds in as well.
    import lime.lime_tabular
    lime_samples = 500
    lime_noise = np.random.default_rng(11).standard_normal((lime_samples, cx.shape[1]))
    save("lime_noise.npy", lime_noise.astype(np.float32))

    class FixedNormal:
        def normal(self, loc, scale, size):
            assert size == lime_noise.size
            return lime_noise.astype(np.float32).astype(np.float64).reshape(-1) * scale + loc

    lime_coef, lime_r2, lime_pred = [], [], []
    for row in cx[:3]:
        ex = lime.lime_tabular.LimeTabularExplainer(bg, mode="regression", discretize_continuous=False,
                                                    sample_around_instance=True, feature_selection="none")
        ex.random_state = FixedNormal()
        e = ex.explain_instance(row, f, num_features=cx.shape[1], num_samples=lime_samples)
        coef = np.zeros(cx.shape[1])
        for j, v in e.local_exp[1]:
            coef[j] = v
        lime_coef.append(coef)
        lime_r2.append(float(e.score))
        lime_pred.append(float(np.asarray(e.local_pred).reshape(-1)[0]))
    save("lime_credit.npy", np.asarray(lime_coef))
    meta["lime_r2"] = lime_r2
    meta["lime_local_pred"] = lime_pred

    with open(os.path.join(OUT, "goldens.json"), "w") as fh:
        json.dump(meta, fh, indent=2)
        fh.write("\n")
    print("wrote", sorted(os.listdir(OUT)))


if __name__ == "__main__":
    main()
