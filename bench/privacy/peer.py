"""Peer side of bench/privacy/run.sh (PyTorch CPU, 2 threads). Not a test.

    peer.py prepare OUTDIR        10,000 members (Fashion-MNIST train[:10000], the bundled CNN's
                                  training data) and 10,000 non-members (t10k) as .npy
    peer.py mia OUTDIR            loss + confidence threshold attacks in torch + scikit-learn metrics
                                  (the same method as mlaudit), and ART's
                                  MembershipInferenceBlackBoxRuleBased on a PyTorchClassifier
    peer.py nc CLEAN.npy EPOCHS   Neural Cleanse over all 10 classes: a PyTorch port of the reference
                                  visualizer loop with mlaudit's budget (ART's NeuralCleanse accepts
                                  only Keras classifiers, so it cannot run this PyTorch/ONNX model)
Prints one line "<label> <seconds>" per timing (model loading and file I/O excluded).
"""
import os
import sys
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))
from mlaudit_torch import cnn_from_onnx, read_idx_gz  # noqa: E402

torch.set_num_threads(2)
FMNIST = "/usr/share/datasets/fashion-mnist"
MODEL = os.path.join(ROOT, "models", "fmnist_cnn.onnx")


def prepare(out):
    xtr = read_idx_gz(f"{FMNIST}/train-images-idx3-ubyte.gz")[:10000].astype(np.float32)[:, None] / 255.0
    ytr = read_idx_gz(f"{FMNIST}/train-labels-idx1-ubyte.gz")[:10000].astype(np.int64)
    xte = read_idx_gz(f"{FMNIST}/t10k-images-idx3-ubyte.gz").astype(np.float32)[:, None] / 255.0
    yte = read_idx_gz(f"{FMNIST}/t10k-labels-idx1-ubyte.gz").astype(np.int64)
    for name, a in (("xm", xtr), ("ym", ytr), ("xn", xte), ("yn", yte)):
        np.save(os.path.join(out, name + ".npy"), a)


def mia(out):
    from sklearn.metrics import roc_auc_score, roc_curve
    net = cnn_from_onnx(MODEL).eval()
    xm, ym = np.load(os.path.join(out, "xm.npy")), np.load(os.path.join(out, "ym.npy"))
    xn, yn = np.load(os.path.join(out, "xn.npy")), np.load(os.path.join(out, "yn.npy"))
    t0 = time.perf_counter()
    with torch.no_grad():
        scores = {}
        for tag, x, y in (("m", xm, ym), ("n", xn, yn)):
            z = torch.cat([net(torch.from_numpy(x[i:i + 256])) for i in range(0, len(x), 256)])
            lp = torch.log_softmax(z.double(), 1)[torch.arange(len(y)), torch.from_numpy(y)].numpy()
            scores[tag] = (lp, np.exp(lp))
    member = np.r_[np.ones(len(ym)), np.zeros(len(yn))]
    res = []
    for k in range(2):
        s = np.r_[scores["m"][k], scores["n"][k]]
        fpr, tpr, _ = roc_curve(member, s, drop_intermediate=False)
        res.append((roc_auc_score(member, s), tpr[fpr <= 0.001].max(), tpr[fpr <= 0.01].max(), ((tpr + 1 - fpr) / 2).max()))
    t1 = time.perf_counter()
    print(f"torch_loss_confidence {t1 - t0:.3f}")
    print(f"# torch+sklearn loss AUC {res[0][0]:.4f} confidence AUC {res[1][0]:.4f}")
    try:
        from art.attacks.inference.membership_inference import MembershipInferenceBlackBoxRuleBased
        from art.estimators.classification import PyTorchClassifier
        clf = PyTorchClassifier(net, loss=torch.nn.CrossEntropyLoss(), input_shape=(1, 28, 28), nb_classes=10,
                                clip_values=(0.0, 1.0), device_type="cpu")
        attack = MembershipInferenceBlackBoxRuleBased(clf)
        t0 = time.perf_counter()
        pm = attack.infer(xm, ym)
        pn = attack.infer(xn, yn)
        t1 = time.perf_counter()
        print(f"art_rule_based {t1 - t0:.3f}")
        print(f"# ART rule-based balanced accuracy {(pm.mean() + 1 - pn.mean()) / 2:.4f}")
    except ImportError as e:
        print(f"# ART unavailable: {e}")


def nc(clean_path, epochs):
    """Reference Neural Cleanse loop (Wang et al. 2019, visualizer.py) in PyTorch, same budget as mlaudit."""
    net = cnn_from_onnx(MODEL).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    x = torch.from_numpy(np.load(clean_path))
    n, eps = len(x), 1e-7
    t0 = time.perf_counter()
    norms = []
    for target in range(10):
        g = torch.Generator().manual_seed(target)
        a = torch.atanh((torch.rand(28, 28, generator=g, dtype=torch.float64) - 0.5) * (2 - eps)).float().requires_grad_()
        b = torch.atanh((torch.rand(1, 28, 28, generator=g, dtype=torch.float64) - 0.5) * (2 - eps)).float().requires_grad_()
        opt = torch.optim.Adam([a, b], lr=0.1, betas=(0.5, 0.9), eps=1e-7)
        cost, up_c, down_c, best = 1e-3, 0, 0, float("inf")
        for _ in range(epochs):
            perm = torch.randperm(n, generator=g)
            accs, regs = [], []
            for i in range(0, n, 32):
                xb = x[perm[i:i + 32]]
                m = torch.tanh(a) / (2 - eps) + 0.5
                p = torch.tanh(b) / (2 - eps) + 0.5
                z = net((1 - m) * xb + m * p)
                ce = torch.nn.functional.cross_entropy(z, torch.full((len(xb),), target))
                reg = m.sum()
                opt.zero_grad()
                (ce + cost * reg).backward()
                opt.step()
                accs.append((z.argmax(1) == target).float().mean().item())
                regs.append(reg.item())
            acc, r = np.mean(accs), np.mean(regs)
            if acc >= 0.99 and r < best:
                best = r
            up_c, down_c = (up_c + 1, 0) if acc >= 0.99 else (0, down_c + 1)
            if up_c >= 5:
                up_c, cost = 0, cost * 1.5
            elif down_c >= 5:
                down_c, cost = 0, cost / 1.5 ** 1.5
        norms.append(best)
    t1 = time.perf_counter()
    print(f"torch_neural_cleanse {t1 - t0:.3f}")
    print("# torch NC mask L1 per class " + " ".join(f"{v:.1f}" for v in norms))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "prepare":
        prepare(sys.argv[2])
    elif cmd == "mia":
        mia(sys.argv[2])
    elif cmd == "nc":
        nc(sys.argv[2], int(sys.argv[3]))
