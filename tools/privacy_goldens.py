"""Golden values for the privacy module's membership-inference tests.

Run from the repository root after tools/privacy_train.py (a few seconds):

    ${PYTHON:-.venv/bin/python} tools/privacy_goldens.py

Independent implementation: logits from onnxruntime (not the mlaudit engine), scores
with scipy.special (log_softmax / logsumexp in float64), metrics with scikit-learn
(roc_auc_score, roc_curve with drop_intermediate=False) and brute-force threshold
sweeps. Writes tests/fixtures/privacy/membership_goldens.json with, per attack, the
member / non-member scores, AUC, TPR at 0.1 % and 1 % FPR (largest TPR among ROC
points with FPR <= target), and the best balanced accuracy with one global threshold
and with one threshold per class.
"""
import json
import os

import numpy as np
import onnxruntime as ort
from scipy.special import log_softmax, logsumexp
from sklearn.metrics import roc_auc_score, roc_curve

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def logits(model, x):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    return sess.run(["logits"], {"input": x})[0].astype(np.float64)


def loss_score(z, y):  # Yeom et al. 2018: minus cross-entropy
    return log_softmax(z, axis=1)[np.arange(len(y)), y]


def confidence_score(z, y):  # Song & Mittal 2021: true-class probability
    return np.exp(loss_score(z, y))


def mentr_score(z, y):  # Song & Mittal 2021 Eq. 5, in log space
    lp = log_softmax(z, axis=1)
    n, c = z.shape
    lse = logsumexp(z, axis=1)
    # log(1 - p_j) = logsumexp_{k != j} z_k - logsumexp z
    log1m = np.empty_like(z)
    for j in range(c):
        others = np.delete(z, j, axis=1)
        log1m[:, j] = logsumexp(others, axis=1) - lse
    p = np.exp(lp)
    mentr = np.zeros(n)
    for j in range(c):
        is_y = (y == j)
        mentr -= np.where(is_y, np.exp(log1m[:, j]) * lp[:, j], p[:, j] * log1m[:, j])
    return -mentr


def phi(z, y):  # logit-scaled confidence z_y - logsumexp_{i != y} z_i
    out = np.empty(len(y))
    for i in range(len(y)):
        out[i] = z[i, y[i]] - logsumexp(np.delete(z[i], y[i]))
    return out


def lira_offline(target_phi, ref_phis):  # Carlini et al. 2022 offline, global variance (< 64 refs)
    ref = np.stack(ref_phis)  # [R, N]
    mu = ref.mean(axis=0)
    var = ref.var(axis=0, ddof=1).mean()
    return (target_phi - mu) / (np.sqrt(var) + 1e-30)


def metrics(sm, sn, cm, cn):
    s = np.concatenate([sm, sn])
    m = np.concatenate([np.ones(len(sm)), np.zeros(len(sn))])
    fpr, tpr, _ = roc_curve(m, s, drop_intermediate=False)
    out = {"auc": float(roc_auc_score(m, s)),
           "tpr_at_fpr_0.001": float(tpr[fpr <= 0.001].max()),
           "tpr_at_fpr_0.01": float(tpr[fpr <= 0.01].max()),
           "balanced_accuracy_global": float(((tpr + 1 - fpr) / 2).max())}
    if cm is not None:
        c = np.concatenate([cm, cn])
        P, N = len(sm), len(sn)
        total = 0.0
        for k in np.unique(c):
            sel = c == k
            best = 0.0
            for t in np.unique(s[sel]):
                pred = sel & (s >= t)
                best = max(best, (pred & (m == 1)).sum() / P - (pred & (m == 0)).sum() / N)
            total += best
        out["balanced_accuracy_per_class"] = 0.5 + 0.5 * total
    return out


def main():
    d = os.path.join(ROOT, "datasets", "privacy")
    xm = np.load(os.path.join(d, "overfit_members_x.npy"))
    ym = np.load(os.path.join(d, "overfit_members_y.npy"))
    xn = np.load(os.path.join(d, "overfit_nonmembers_x.npy"))
    yn = np.load(os.path.join(d, "overfit_nonmembers_y.npy"))
    model = os.path.join(ROOT, "models", "privacy", "overfit_mlp.onnx")
    zm, zn = logits(model, xm), logits(model, xn)
    refs = sorted(os.listdir(os.path.join(ROOT, "models", "privacy", "overfit_refs")))
    ref_logits = [(logits(os.path.join(ROOT, "models", "privacy", "overfit_refs", r), xm),
                   logits(os.path.join(ROOT, "models", "privacy", "overfit_refs", r), xn)) for r in refs]
    out = {"source": "tools/privacy_goldens.py (onnxruntime logits, scipy scores, scikit-learn metrics)",
           "model": "models/privacy/overfit_mlp.onnx", "attacks": {}}
    for name, fn in (("loss", loss_score), ("confidence", confidence_score), ("entropy", mentr_score)):
        sm, sn = fn(zm, ym), fn(zn, yn)
        out["attacks"][name] = {"member_scores": sm.tolist(), "non_member_scores": sn.tolist(),
                                **metrics(sm, sn, ym, yn)}
    pm, pn = phi(zm, ym), phi(zn, yn)
    s = lira_offline(np.concatenate([pm, pn]),
                     [np.concatenate([phi(a, ym), phi(b, yn)]) for a, b in ref_logits])
    sm, sn = s[:len(ym)], s[len(ym):]
    out["attacks"]["lira"] = {"member_scores": sm.tolist(), "non_member_scores": sn.tolist(),
                              **metrics(sm, sn, None, None)}
    # Heavy ties: loss scores rounded to one decimal (exercises tie handling of the ROC).
    sm, sn = np.round(loss_score(zm, ym), 1), np.round(loss_score(zn, yn), 1)
    out["attacks"]["loss_rounded"] = {"member_scores": sm.tolist(), "non_member_scores": sn.tolist(),
                                      **metrics(sm, sn, ym, yn)}
    out["member_labels"] = ym.tolist()
    out["non_member_labels"] = yn.tolist()
    dst = os.path.join(ROOT, "tests", "fixtures", "privacy", "membership_goldens.json")
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    with open(dst, "w") as fh:
        json.dump(out, fh)
    for k, v in out["attacks"].items():
        print(k, {kk: vv for kk, vv in v.items() if not kk.endswith("scores")})
    print(f"wrote {dst} ({os.path.getsize(dst)} bytes)")


if __name__ == "__main__":
    main()
