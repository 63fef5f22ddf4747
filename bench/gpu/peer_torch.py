"""PyTorch peer for bench/gpu: PGD-50 (L-inf) and randomized-smoothing sampling on the bundled
CNN, eager fp32 on the GPU (TF32 off, as mlaudit's cuBLAS calls), same work as bench_gpu.

The CNN is rebuilt from the ONNX initializers. The GPU machine has no `onnx` package, so
bench/gpu/pack.sh first exports the weights here with

    /work/venv/bin/python bench/gpu/peer_torch.py --export-weights .gpu/bundle/fmnist_cnn_weights.npz

(which uses tools/mlaudit_torch.py's cnn_from_onnx), and device_check.sh runs

    python3 bench/gpu/peer_torch.py --weights W.npz --x X.npy --y Y.npy [--batch 4096] [--steps 50]
        [--smooth-n 100000] [--smooth-images 10] [--smooth-batch 32768] [--apgd-steps 100]

printing one `torch mode=... key=value ...` line per measurement. Never raises on a missing GPU:
it prints a note instead.
"""
import argparse
import os
import sys
import time

import numpy as np


def export_weights(path):
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(os.path.dirname(here))
    sys.path.insert(0, os.path.join(root, "tools"))
    from mlaudit_torch import cnn_from_onnx  # needs onnx: run with /work/venv

    net = cnn_from_onnx(os.path.join(root, "models", "fmnist_cnn.onnx"))
    np.savez(path, **{k: v.detach().cpu().numpy() for k, v in net.state_dict().items()})
    print(f"wrote {path}")


def build_cnn(weights, torch):
    nn = torch.nn

    class FmnistCNN(nn.Module):
        """Conv(1->16,3x3,p1)-ReLU-MaxPool2-Conv(16->32,3x3,p1)-ReLU-MaxPool2-Flatten-Gemm(1568->64)-ReLU-Gemm(64->10)."""

        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
            self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
            self.pool = nn.MaxPool2d(2)
            self.fc1 = nn.Linear(32 * 7 * 7, 64)
            self.fc2 = nn.Linear(64, 10)

        def forward(self, x):
            x = self.pool(torch.relu(self.conv1(x)))
            x = self.pool(torch.relu(self.conv2(x)))
            x = torch.flatten(x, 1)
            return self.fc2(torch.relu(self.fc1(x)))

    net = FmnistCNN()
    w = np.load(weights)
    net.load_state_dict({k: torch.from_numpy(np.array(w[k], dtype=np.float32)) for k in w.files})
    for p in net.parameters():
        p.requires_grad_(False)  # input gradients only, as mlaudit
    return net.eval()


def pgd(torch, model, x, y, eps, alpha, steps, gen):
    """Madry et al. 2018 L-inf PGD with a uniform random start (torchattacks.PGD's loop)."""
    F = torch.nn.functional
    xa = (x + torch.empty_like(x).uniform_(-eps, eps, generator=gen)).clamp(0, 1)
    for _ in range(steps):
        xa.requires_grad_(True)
        loss = F.cross_entropy(model(xa), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, xa)
        xa = xa.detach() + alpha * grad.sign()
        xa = torch.min(torch.max(xa, x - eps), x + eps).clamp(0, 1)
    with torch.no_grad():
        return (model(xa).argmax(1) == y).float().mean().item()


def apgd_ce(torch, model, x, y, eps, n_iter, gen):
    """APGD-CE, L-inf, one restart (Croce & Hein 2020, Algorithm 1), written after the structure of
    fra31/auto-attack's autopgd_base.py: eta0 = 2 eps, momentum 0.75 after the first step,
    checkpoints with period 0.22 n_iter shrinking by 0.03 n_iter down to 0.06 n_iter, rho = 0.75,
    step halving with restart from the best point. Every row is optimised for all n_iter steps
    (as the reference does). Returns the robust accuracy."""
    F = torch.nn.functional
    n = x.shape[0]
    k = max(int(0.22 * n_iter), 1)
    size_decr, n_iter_min = max(int(0.03 * n_iter), 1), max(int(0.06 * n_iter), 1)
    view = (-1,) + (1,) * (x.dim() - 1)
    t = 2 * torch.rand(x.shape, device=x.device, generator=gen) - 1
    x_adv = (x + eps * t / t.reshape(n, -1).abs().max(1)[0].view(view)).clamp(0, 1)

    def grad_loss(xa):
        xa = xa.clone().requires_grad_(True)
        logits = model(xa)
        loss = F.cross_entropy(logits, y, reduction="none")
        (g,) = torch.autograd.grad(loss.sum(), xa)
        return logits.detach(), loss.detach(), g.detach()

    logits, loss, grad = grad_loss(x_adv)
    robust = logits.argmax(1) == y
    x_best, grad_best, loss_best = x_adv.clone(), grad.clone(), loss.clone()
    step = torch.full((n,) + (1,) * (x.dim() - 1), 2 * eps, device=x.device)
    x_old = x_adv.clone()
    loss_prev = loss.clone()
    inc = torch.zeros(n, device=x.device)
    loss_best_last = loss_best.clone()
    reduced_last = torch.ones(n, dtype=torch.bool, device=x.device)
    counter = 0
    for i in range(n_iter):
        with torch.no_grad():
            a = 0.75 if i > 0 else 1.0
            grad2 = x_adv - x_old
            x_old = x_adv.clone()
            z = torch.min(torch.max(x_adv + step * grad.sign(), x - eps), x + eps).clamp(0, 1)
            x_adv = torch.min(torch.max(x_adv + (z - x_adv) * a + grad2 * (1 - a), x - eps), x + eps).clamp(0, 1)
        logits, loss, grad = grad_loss(x_adv)
        with torch.no_grad():
            robust &= logits.argmax(1) == y
            inc += (loss > loss_prev).float()
            loss_prev = loss
            better = loss > loss_best
            x_best[better] = x_adv[better]
            grad_best[better] = grad[better]
            loss_best = torch.where(better, loss, loss_best)
            counter += 1
            if counter == k:
                reduce = (inc <= k * 0.75) | (~reduced_last & (loss_best_last >= loss_best))
                reduced_last = reduce
                loss_best_last = loss_best.clone()
                step[reduce] /= 2.0
                x_adv[reduce] = x_best[reduce]
                grad[reduce] = grad_best[reduce]
                inc.zero_()
                k = max(k - size_decr, n_iter_min)
                counter = 0
    return robust.float().mean().item()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--export-weights")
    ap.add_argument("--weights")
    ap.add_argument("--x")
    ap.add_argument("--y")
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--smooth-n", type=int, default=100000)
    ap.add_argument("--smooth-images", type=int, default=10)
    ap.add_argument("--smooth-batch", type=int, default=32768)  # mlaudit's cap; larger than 10000 is faster for torch too
    ap.add_argument("--apgd-steps", type=int, default=100)
    a = ap.parse_args()
    if a.export_weights:
        export_weights(a.export_weights)
        return
    try:
        import torch
    except ImportError:
        print("torch: not installed; peer skipped")
        return
    if not torch.cuda.is_available():
        print("torch: no CUDA device; peer skipped")
        return
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dev = torch.device("cuda")
    model = build_cnn(a.weights, torch).to(dev)
    x = torch.from_numpy(np.load(a.x).astype(np.float32))
    y = torch.from_numpy(np.load(a.y).astype(np.int64))
    idx = torch.arange(a.batch) % x.shape[0]
    xb, yb = x[idx].to(dev), y[idx].to(dev)
    gen = torch.Generator(device=dev).manual_seed(1)
    pgd(torch, model, xb, yb, 0.1, 0.01, 2, gen)  # warm-up (cuDNN autotuning, allocator)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    acc = pgd(torch, model, xb, yb, 0.1, 0.01, a.steps, gen)
    torch.cuda.synchronize()
    sec = time.perf_counter() - t0
    print(f"torch mode=pgd{a.steps} batch={a.batch} ms={sec * 1e3:.2f} images_per_s={a.batch / sec:.0f} robust_acc={acc:.4f}")

    # APGD-CE, 100 iterations (AutoAttack's n_iter), eps 0.03, same batch.
    apgd_ce(torch, model, xb, yb, 0.03, 2, gen)  # warm-up
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    acc = apgd_ce(torch, model, xb, yb, 0.03, a.apgd_steps, gen)
    torch.cuda.synchronize()
    sec = time.perf_counter() - t0
    print(f"torch mode=apgd{a.apgd_steps} batch={a.batch} ms={sec * 1e3:.2f} images_per_s={a.batch / sec:.0f} robust_acc={acc:.4f}")

    # Randomized smoothing (Cohen et al. 2019): smooth_n samples x + N(0, 0.25^2) per image, argmax counts.
    xs = x[: a.smooth_images].to(dev)
    sigma = 0.25

    def counts_for(img, n):
        c = torch.zeros(10, dtype=torch.long, device=dev)
        with torch.no_grad():
            done = 0
            while done < n:
                m = min(a.smooth_batch, n - done)
                noisy = img.unsqueeze(0) + sigma * torch.randn((m,) + tuple(img.shape), device=dev, generator=gen)
                c += torch.bincount(model(noisy).argmax(1), minlength=10)
                done += m
        return c

    counts_for(xs[0], 1000)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    top0 = None
    for i in range(xs.shape[0]):
        c = counts_for(xs[i], a.smooth_n)
        if top0 is None:
            top0 = c.max()
    torch.cuda.synchronize()
    sec = time.perf_counter() - t0
    n_img = xs.shape[0]
    print(f"torch mode=smoothing n={a.smooth_n} images={n_img} ms_per_image={sec * 1e3 / n_img:.2f} "
          f"samples_per_s={a.smooth_n * n_img / sec:.0f} top_count_image0={int(top0)}")


if __name__ == "__main__":
    main()
