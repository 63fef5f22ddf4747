"""PyTorch peer for bench/gpu: PGD-50, APGD-CE, APGD-T and Square (L-inf) and randomized-smoothing
sampling on the bundled CNN, eager fp32 on the GPU (TF32 off, as mlaudit's cuBLAS calls), same work as bench_gpu.

The CNN is rebuilt from the ONNX initializers. The GPU machine has no `onnx` package, so
bench/gpu/pack.sh first exports the weights here with

    ${PYTHON:-.venv/bin/python} bench/gpu/peer_torch.py --export-weights .gpu/bundle/fmnist_cnn_weights.npz

(which uses tools/mlaudit_torch.py's cnn_from_onnx), and device_check.sh runs

    python3 bench/gpu/peer_torch.py --weights W.npz --x X.npy --y Y.npy [--batch 4096] [--steps 50]
        [--smooth-n 100000] [--smooth-images 10] [--smooth-batch 32768] [--apgd-steps 100]
        [--apgd-targets 9] [--square-queries 5000]

torchattacks is not on the device image: APGD-CE/APGD-T and Square are ports of fra31/auto-attack's
loops (autopgd_base.py, square.py; torchattacks' APGD/APGDT/Square are the same code).

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
    from mlaudit_torch import cnn_from_onnx  # needs onnx: run with $PYTHON or .venv

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
    robust = _apgd_run(torch, model, x, y, eps, n_iter, gen, lambda logits, yy: F.cross_entropy(logits, yy, reduction="none"))
    return robust.float().mean().item()


def dlr_targeted(torch, logits, y, y_target):
    """Targeted DLR (Croce & Hein 2020, eq. 7), as fra31/auto-attack's dlr_loss_targeted."""
    z_sorted, _ = logits.sort(dim=1)
    u = torch.arange(logits.shape[0], device=logits.device)
    return -(logits[u, y] - logits[u, y_target]) / (z_sorted[:, -1] - 0.5 * (z_sorted[:, -3] + z_sorted[:, -4]) + 1e-12)


def apgd_t(torch, model, x, y, eps, n_iter, n_targets, gen):
    """APGD-T, L-inf (AutoAttack standard: targeted DLR, n_targets = 9 target classes, 1 restart each),
    after fra31/auto-attack's APGDTargetedAttack.perturb: for target rank t = 2 .. n_targets + 1 the
    class with the t-th largest clean logit, one APGD run (the loop of apgd_ce above with the targeted
    DLR loss) on the rows still robust. Every row of a run is optimised for all n_iter steps (as the
    reference). Returns the robust accuracy."""
    with torch.no_grad():
        order = model(x).sort(dim=1)[1]
        robust = model(x).argmax(1) == y
    for t in range(2, n_targets + 2):
        idx = robust.nonzero().squeeze(1)
        if idx.numel() == 0:
            break
        xs, ys, ts = x[idx], y[idx], order[idx, -t]
        broken = ~_apgd_run(torch, model, xs, ys, eps, n_iter, gen,
                            lambda logits, yy, tt=ts: dlr_targeted(torch, logits, yy, tt))
        robust[idx[broken]] = False
    return robust.float().mean().item()


def _apgd_run(torch, model, x, y, eps, n_iter, gen, loss_fn):
    """One APGD run (Algorithm 1, L-inf) with a per-row loss; returns the rows never misclassified."""
    n = x.shape[0]
    k = max(int(0.22 * n_iter), 1)
    size_decr, n_iter_min = max(int(0.03 * n_iter), 1), max(int(0.06 * n_iter), 1)
    view = (-1,) + (1,) * (x.dim() - 1)
    t = 2 * torch.rand(x.shape, device=x.device, generator=gen) - 1
    x_adv = (x + eps * t / t.reshape(n, -1).abs().max(1)[0].view(view)).clamp(0, 1)

    def grad_loss(xa):
        xa = xa.clone().requires_grad_(True)
        logits = model(xa)
        loss = loss_fn(logits, y)
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
    return robust


def square_linf(torch, model, x, y, eps, n_queries, p_init, gen):
    """Square attack, L-inf (Andriushchenko et al. 2020), after fra31/auto-attack's square.py
    (= torchattacks.Square): vertical-stripe init, margin loss, one s x s window and per-channel
    sign per iteration shared by the batch, the published p schedule rescaled to n_queries, only the
    rows with margin > 0 evaluated, stop when all are broken. n_queries forwards per row including
    the init (as mlaudit). Returns the robust accuracy."""
    n, c, h, w = x.shape

    def rand_sign(shape):
        return 2 * torch.randint(0, 2, shape, device=x.device, generator=gen).float() - 1

    def margin(xa, yy):
        with torch.no_grad():
            logits = model(xa)
            u = torch.arange(xa.shape[0], device=x.device)
            corr = logits[u, yy].clone()
            logits[u, yy] = -float("inf")
            return corr - logits.max(1)[0]

    def p_sel(it):
        it = int(it / n_queries * 10000)
        for lim, div in ((10, 1), (50, 2), (200, 4), (500, 8), (1000, 16), (2000, 32), (4000, 64), (6000, 128), (8000, 256)):
            if it <= lim:
                return p_init / div
        return p_init / 512

    x_best = (x + eps * rand_sign((n, c, 1, w))).clamp(0, 1)
    m = margin(x_best, y)
    for it in range(1, n_queries):
        idx = (m > 0).nonzero().squeeze(1)
        if idx.numel() == 0:
            break
        xc, xbc, yc = x[idx], x_best[idx], y[idx]
        s = max(int(round((p_sel(it) * c * h * w / c) ** 0.5)), 1)
        s = min(s, h - 1)
        vh = int(torch.randint(0, h - s, (1,), generator=gen, device=x.device).item())
        vw = int(torch.randint(0, w - s, (1,), generator=gen, device=x.device).item())
        delta = torch.zeros((c, h, w), device=x.device)
        delta[:, vh:vh + s, vw:vw + s] = 2.0 * eps * rand_sign((c, 1, 1))
        xn = torch.min(torch.max(xbc + delta, xc - eps), xc + eps).clamp(0, 1)
        mn = margin(xn, yc)
        better = mn < m[idx]
        m[idx] = torch.where(better, mn, m[idx])
        x_best[idx[better]] = xn[better]
    return (m > 0).float().mean().item()


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
    ap.add_argument("--apgd-targets", type=int, default=9)
    ap.add_argument("--square-queries", type=int, default=5000)
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

    # APGD-T, AutoAttack standard (targeted DLR, 9 targets x 100 iterations), eps 0.03, same batch.
    apgd_t(torch, model, xb, yb, 0.03, 2, 1, gen)  # warm-up
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    acc = apgd_t(torch, model, xb, yb, 0.03, a.apgd_steps, a.apgd_targets, gen)
    torch.cuda.synchronize()
    sec = time.perf_counter() - t0
    print(f"torch mode=tapgd{a.apgd_targets}x{a.apgd_steps} batch={a.batch} ms={sec * 1e3:.2f} images_per_s={a.batch / sec:.0f} "
          f"robust_acc={acc:.4f}")

    # Square L-inf, 5000 queries, p_init 0.8 (AutoAttack defaults), eps 0.03, same batch.
    square_linf(torch, model, xb, yb, 0.03, 20, 0.8, gen)  # warm-up
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    acc = square_linf(torch, model, xb, yb, 0.03, a.square_queries, 0.8, gen)
    torch.cuda.synchronize()
    sec = time.perf_counter() - t0
    print(f"torch mode=square{a.square_queries} batch={a.batch} ms={sec * 1e3:.2f} images_per_s={a.batch / sec:.0f} "
          f"robust_acc={acc:.4f}")

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
