#!/usr/bin/env python3
"""Peer for bench/verify/residual: auto_LiRPA CROWN and alpha-CROWN on the same ResNet and images.

    PYTHONPATH=.lirpa ${PYTHON:-.venv/bin/python} bench/verify/residual/peer_lirpa.py DIR \
        [--eps 0.004,0.01,0.02] [--opts default|matrix] [--threads 2] [--json OUT.json]

DIR is what tools/make_residual_bench.py wrote: resnet_fmnist.pt (the BN-folded weights the ONNX
file holds; the network is rebuilt in PyTorch, float32), x.npy, y.npy. For every image and eps it
bounds the margins y_label - y_j (j != label) over the L-inf ball clipped to [0, 1] with
auto_LiRPA 0.3 (incomplete verification):

  CROWN        compute_bounds(method="CROWN", C=margins, bound_upper=False)
  alpha-CROWN  compute_bounds(method="alpha-CROWN", ...) with auto_LiRPA's optimiser defaults
               (20 Adam iterations, lr 0.5, slopes initialised by one CROWN pass) and the early
               stop alpha-beta-CROWN uses (stop as soon as every margin's lower bound is > 0)

A sample is verified when every margin's lower bound is > 0; a misclassified image counts as not
verified and is not bounded (0 s). Each call is timed alone; the BoundedModule is built once (its
time is printed as setup). --opts default: auto_LiRPA's default bound_opts (patches mode for
convolutions, sparse intermediate bounds); --opts matrix: {"sparse_intermediate_bounds": False,
"sparse_conv_intermediate_bounds": False, "conv_mode": "matrix"} (tools/verify_residual_golden.py's).
auto_LiRPA 0.3 runs beside the venv's newer torch with the patches described in
tools/verify_maxpool_golden.py and patch_lirpa() below.
"""
import argparse
import contextlib
import io
import json
import os
import sys
import time
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(ROOT, "tools"))
from verify_residual_golden import patch_lirpa  # noqa: E402  (auto_LiRPA 0.3 vs newer torch)


def patch_alpha_clamp():
    """alpha-CROWN's ReLU slopes pass through torch.clamp(alpha, 0, 1) (BoundRelu._relu_mask_alpha), and
    CROWN's initial slopes are exactly 0 or 1. In this venv's torch (2.15) clamp's gradient is 0 *at* the
    clamp bounds (torch.clamp(torch.tensor([0., 1., .5], requires_grad=True), 0, 1).sum().backward()
    gives [0, 0, 1]); auto_LiRPA 0.3 was written for a torch that passed it there, so unpatched every
    alpha's gradient is 0 and alpha-CROWN returns CROWN's bound after its iterations. This clamp passes
    the gradient on [0, 1] inclusive (the values are the same; alphas are clipped into [0, 1] after each
    step by clip_alpha_ anyway). Returns False (and patches nothing) when this torch does not need it."""
    import torch
    from auto_LiRPA.operators import activation

    a = torch.tensor([0.0, 1.0], requires_grad=True)
    torch.clamp(a, min=0.0, max=1.0).sum().backward()
    if bool((a.grad == 1).all()):
        return False

    def clamp01(t):
        return torch.where((t >= 0) & (t <= 1), t, t.detach().clamp(0.0, 1.0))

    def relu_mask_alpha(lower, upper, lb_lower_d, ub_lower_d):
        lower_mask = (lower >= 0).requires_grad_(False).to(lower.dtype)
        upper_mask = (upper <= 0).requires_grad_(False)
        zero_coeffs = upper_mask.all()
        no_mask = (1. - lower_mask) * (1. - upper_mask.to(upper.dtype))
        if lb_lower_d is not None:
            lb_lower_d = clamp01(lb_lower_d) * no_mask + lower_mask
        if ub_lower_d is not None:
            ub_lower_d = clamp01(ub_lower_d) * no_mask + lower_mask
        return lb_lower_d, ub_lower_d, zero_coeffs

    activation.BoundRelu._relu_mask_alpha = staticmethod(relu_mask_alpha)
    return True


MATRIX_OPTS = {"sparse_intermediate_bounds": False, "sparse_conv_intermediate_bounds": False, "conv_mode": "matrix"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--eps", default="0.004,0.01,0.02")
    ap.add_argument("--opts", choices=("matrix", "patches"), default="matrix")
    ap.add_argument("--alpha-timeout", type=float, default=5.0,
                    help="alpha-CROWN: stop optimising after the iteration that passes this many seconds "
                         "(0: auto_LiRPA's 20 iterations, no cap)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="write the per-sample results and per-eps totals here")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")

    import numpy as np
    import torch
    from make_residual_bench import resnet_folded
    try:
        from auto_LiRPA import BoundedModule, BoundedTensor, PerturbationLpNorm
    except ImportError as e:
        raise SystemExit(f"peer_lirpa: auto_LiRPA not importable ({e}); unpack it in .lirpa "
                         "(tools/verify_maxpool_golden.py) and run with PYTHONPATH=.lirpa")
    patch_lirpa()
    clamp_patched = patch_alpha_clamp()
    torch.set_num_threads(args.threads)

    eps_list = [float(e) for e in args.eps.split(",")]
    model = resnet_folded()
    model.load_state_dict(torch.load(os.path.join(args.dir, "resnet_fmnist.pt")))
    model.eval()
    x = np.load(os.path.join(args.dir, "x.npy")).astype(np.float32)
    y = np.load(os.path.join(args.dir, "y.npy")).astype(np.int64)
    classes = 10

    # sparse_features_alpha off in both modes: with it on, auto_LiRPA 0.3 keeps a layer's sparse alpha
    # indices when it falls back to a full alpha (>90% of the layer unstable; the reset sits under
    # `if verbosity > 0` in BoundRelu.init_opt_parameters) and alpha-CROWN fails with "shape mismatch:
    # value tensor of shape [784, 1, 16, 7, 7] cannot be broadcast to indexing result of shape
    # [784, 1, 732, 7, 7]". Patches mode also needs sparse_spec_alpha off ("'Patches' object has no
    # attribute 'size'" in patches.maybe_unfold_patches). Neither changes a bound, only how slopes are stored.
    opts = dict(MATRIX_OPTS) if args.opts == "matrix" else {"sparse_spec_alpha": False}
    opts["sparse_features_alpha"] = False
    deadline = [None]

    def stop(lb):
        # alpha-beta-CROWN's early stop (every margin's lower bound > 0), and the per-query time cap.
        # Returning True ends the loop with the best bounds found so far (keep_best).
        done = bool((lb > 0).all()) or (deadline[0] is not None and time.perf_counter() > deadline[0])
        return torch.tensor(done)

    opts["optimize_bound_args"] = {"stop_criterion_func": stop}
    t0 = time.perf_counter()
    bm = BoundedModule(model, torch.zeros(1, 1, 28, 28), bound_opts=opts, device="cpu")
    setup_s = time.perf_counter() - t0

    rows = []
    for i in range(len(x)):
        xt = torch.from_numpy(x[i:i + 1])
        label = int(y[i])
        with torch.no_grad():
            pred = int(model(xt).argmax(1))
        others = [j for j in range(classes) if j != label]
        C = torch.zeros(1, classes - 1, classes)
        for r, j in enumerate(others):
            C[0, r, label], C[0, r, j] = 1.0, -1.0
        for eps in eps_list:
            row = {"index": i, "label": label, "eps": eps, "correct": pred == label}
            if pred != label:
                row.update(crown=False, crown_s=0.0, alpha=False, alpha_s=0.0, crown_min_margin=None, alpha_min_margin=None)
                rows.append(row)
                continue
            lo, hi = torch.clamp(xt - eps, 0.0, 1.0), torch.clamp(xt + eps, 0.0, 1.0)
            bx = BoundedTensor(xt, PerturbationLpNorm(norm=np.inf, eps=eps, x_L=lo, x_U=hi))
            for key, method in (("crown", "CROWN"), ("alpha", "alpha-CROWN")):
                t = time.perf_counter()
                deadline[0] = t + args.alpha_timeout if args.alpha_timeout > 0 else None
                try:
                    with contextlib.redirect_stdout(io.StringIO()):  # "all verified at 0th iter" etc.
                        lb, _ = bm.compute_bounds(x=(bx,), C=C, method=method, bound_upper=False)
                    m = float(lb.detach().min())
                    row[key], row[key + "_min_margin"] = m > 0, m
                except Exception as e:  # a crash is a not-verified query, named in the JSON
                    row[key], row[key + "_min_margin"], row[key + "_error"] = False, None, f"{type(e).__name__}: {e}"
                row[key + "_s"] = time.perf_counter() - t
            rows.append(row)

    summary = []
    errors = sum(("crown_error" in r) + ("alpha_error" in r) for r in rows)
    cap = f"alpha-CROWN capped at {args.alpha_timeout:g} s/query" if args.alpha_timeout > 0 else "alpha-CROWN uncapped"
    print(f"auto_LiRPA 0.3 ({args.opts} mode, float32, {args.threads} threads, {cap}"
          f"{', clamp-gradient patch on' if clamp_patched else ''}): {len(x)} images, "
          f"{int(sum(r['correct'] for r in rows) / len(eps_list))} classified correctly; BoundedModule setup "
          f"{setup_s:.2f} s; {errors} failed bound computations")
    for eps in eps_list:
        rs = [r for r in rows if r["eps"] == eps]
        s = {"eps": eps, "samples": len(rs), "crown_verified": sum(r["crown"] for r in rs),
             "crown_seconds": sum(r["crown_s"] for r in rs), "alpha_verified": sum(r["alpha"] for r in rs),
             "alpha_seconds": sum(r["alpha_s"] for r in rs)}
        summary.append(s)
        print(f"eps {eps:g}: CROWN verified {s['crown_verified']}/{s['samples']} in {s['crown_seconds']:.2f} s; "
              f"alpha-CROWN verified {s['alpha_verified']}/{s['samples']} in {s['alpha_seconds']:.2f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"tool": "auto_LiRPA 0.3", "mode": args.opts, "threads": args.threads,
                       "alpha_timeout_s": args.alpha_timeout, "clamp_gradient_patch": clamp_patched,
                       "setup_seconds": setup_s, "by_eps": summary, "per_sample": rows}, f, indent=1)


if __name__ == "__main__":
    main()
