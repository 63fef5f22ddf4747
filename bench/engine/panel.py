#!/usr/bin/env python3
"""Engine benchmark panel: mlaudit vs onnxruntime (forward) and PyTorch (forward, forward + input
gradient) on a panel of models, same thread count; prints one table of times and ratios.

    ${PYTHON:-.venv/bin/python} bench/engine/panel.py --bench BUILD/bench/engine/bench_engine [THREADS]
        [--only NAME,...] [--cache DIR] [--max-seconds S]

The panel (random init with fixed seeds, eval mode; exported like tools/export_zoo.py does:
torch.onnx.export(dynamo=False) at its default opset with a dynamic batch dim):
  fmnist_cnn      models/fmnist_cnn.onnx; PyTorch rebuilt from its initializers (tools/mlaudit_torch.py);
                  inputs datasets/demo/fmnist_x.npy                                       batches 1, 256
  credit_mlp      models/credit_mlp.onnx, likewise; inputs datasets/demo/credit_x.npy     batches 1, 256
  resnet18, mobilenet_v2, efficientnet_b0
                  torchvision at full width, 1000 classes, inputs N(0,1) [N,3,64,64]       batches 1, 64
  transformer     2-layer nn.TransformerEncoder (batch_first, d_model 64, 4 heads, feed-forward 256),
                  mean pool over the 32 positions + Linear(64, 10); inputs N(0,1) [N,32,64]   1, 64
  tabular_mlp     Linear(64,256)-BatchNorm1d-GELU-Linear(256,256)-LayerNorm-SiLU-Linear(256,2)  1, 64
  random_forest   scikit-learn RandomForestClassifier(100 trees, max_depth 6) on
                  make_classification(2000 x 32), skl2onnx (zipmap off); forward only, its PyTorch
                  column is scikit-learn's predict_proba (n_jobs = THREADS)                1, 64
Exports and inputs are cached in --cache (default bench/engine/.panel/, git-ignored) and
rebuilt when the recipe or the library versions change.

Modes (as bench/engine/peer.py): fwd = outputs; fwdgrad = d/dx sum_i CE(output_i, 0) (PyTorch
autograd w.r.t. the input only). Each measurement: warm-up runs, then the median wall time of
repeated runs, stopping after --max-seconds of timed runs (at least 5). THREADS (default 2)
goes to torch.set_num_threads, onnxruntime's intra_op_num_threads (inter_op 1), OMP_NUM_THREADS
and bench_engine's thread count. Ratios are peer time / mlaudit time: > 1 means mlaudit is faster;
the table gives them on the medians and on the fastest runs (the latter moves less when other
processes share the cores).
`err` is max|mlaudit - onnxruntime| / max|onnxruntime| on the forward output, a check that the
timed work is the same. GFLOP/s and %peak: mlaudit's arithmetic rate from the engine's FLOP
estimate (twice the forward's for fwd+grad) and its share of oneDNN's sgemm peak measured at the
start (bench_engine --sgemm-peak); rss_MB: bench_engine's peak resident set for the model. A model mlaudit cannot load or run prints "unsupported: <error>" in its
rows; the panel goes on. A benchmark: it prints figures and never fails (exit code 0).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.join(ROOT, "bench", "engine")
sys.path.insert(0, os.path.join(ROOT, "tools"))

# Bump when a model recipe below changes, so cached exports are rebuilt.
RECIPE = 1
SMALL_BATCHES, BIG_BATCHES = (1, 256), (1, 64)


def median_ms(fn, budget_s):
    """(median, fastest) wall time (ms) of fn() after warm-up; stops after budget_s of timed runs (>= 5)."""
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    for _ in range(0 if first > budget_s / 5 else 2):
        fn()
    cap = 200 if first < 0.01 else 30
    times = []
    while len(times) < cap:
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
        if len(times) >= 5 and sum(times) > 1e3 * budget_s:
            break
    return statistics.median(times), min(times)


def cyclic_rows(a, n):
    import numpy as np

    return np.ascontiguousarray(a[np.arange(n) % len(a)])


# ----------------------------------------------------------------------------------------------
# The panel: name -> builder returning (kind, batches, torch module or sklearn estimator, input rows)


def randomize_norm_stats(model, gen):
    """Non-trivial eval-mode normalisation (as tools/export_zoo.py): random running statistics and
    affine parameters, so no norm layer is an identity an engine could skip."""
    import torch
    import torch.nn as nn

    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=gen))
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm)) and m.weight is not None:
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=gen))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))


def build_torch(name, seed):
    import numpy as np
    import torch
    import torch.nn as nn
    import torchvision

    class TransformerClassifier(nn.Module):
        def __init__(self, d_model=64, heads=4, layers=2, classes=10):
            super().__init__()
            layer = nn.TransformerEncoderLayer(d_model=d_model, nhead=heads, dim_feedforward=4 * d_model,
                                               dropout=0.1, batch_first=True)
            self.encoder = nn.TransformerEncoder(layer, num_layers=layers, enable_nested_tensor=False)
            self.head = nn.Linear(d_model, classes)

        def forward(self, x):  # [N, 32, 64]
            return self.head(self.encoder(x).mean(dim=1))

    class TabularMLP(nn.Module):
        def __init__(self, d_in=64, width=256, classes=2):
            super().__init__()
            self.fc1, self.bn, self.act1 = nn.Linear(d_in, width), nn.BatchNorm1d(width), nn.GELU()
            self.fc2, self.ln, self.act2 = nn.Linear(width, width), nn.LayerNorm(width), nn.SiLU()
            self.fc3 = nn.Linear(width, classes)

        def forward(self, x):
            return self.fc3(self.act2(self.ln(self.fc2(self.act1(self.bn(self.fc1(x)))))))

    ctors = {
        "resnet18": (lambda: torchvision.models.resnet18(weights=None), (3, 64, 64)),
        "mobilenet_v2": (lambda: torchvision.models.mobilenet_v2(weights=None), (3, 64, 64)),
        "efficientnet_b0": (lambda: torchvision.models.efficientnet_b0(weights=None), (3, 64, 64)),
        "transformer": (TransformerClassifier, (32, 64)),
        "tabular_mlp": (TabularMLP, (64,)),
    }
    ctor, shape = ctors[name]
    torch.manual_seed(seed)
    model = ctor()
    randomize_norm_stats(model, torch.Generator().manual_seed(seed + 1))
    model.eval()
    x = np.random.default_rng(seed + 2).standard_normal((max(BIG_BATCHES),) + shape).astype(np.float32)
    return model, x


def export_torch(model, x, path):
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.from_numpy(x[:2]),), path, dynamo=False, input_names=["input"],
                          output_names=["output"], dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})


def build_forest(seed):
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    X, y = make_classification(n_samples=2000, n_features=32, n_informative=16, random_state=seed)
    X = X.astype("float32")
    est = RandomForestClassifier(n_estimators=100, max_depth=6, random_state=seed).fit(X, y)
    return est, X


PANEL = ["fmnist_cnn", "credit_mlp", "resnet18", "mobilenet_v2", "efficientnet_b0", "transformer", "tabular_mlp",
         "random_forest"]


def prepare(name, cache, versions):
    """Returns dict(path, x, batches, peer ('torch'|'sklearn'), torch_module or estimator)."""
    import numpy as np

    if name in ("fmnist_cnn", "credit_mlp"):
        from mlaudit_torch import cnn_from_onnx, mlp_from_onnx

        path = os.path.join(ROOT, "models", f"{name}.onnx")
        rebuild = cnn_from_onnx if name == "fmnist_cnn" else mlp_from_onnx
        data = "fmnist_x.npy" if name == "fmnist_cnn" else "credit_x.npy"
        x = cyclic_rows(np.load(os.path.join(ROOT, "datasets", "demo", data)).astype(np.float32), max(SMALL_BATCHES))
        net = rebuild(path).eval()
        return dict(path=path, x=x, batches=SMALL_BATCHES, peer="torch", model=net)

    seed = 100 + PANEL.index(name)
    path = os.path.join(cache, f"{name}.onnx")
    key_path = os.path.join(cache, f"{name}.json")
    key = json.dumps({"recipe": RECIPE, "seed": seed, **versions}, sort_keys=True)
    fresh = os.path.isfile(path) and os.path.isfile(key_path) and open(key_path).read() == key
    if name == "random_forest":
        est, X = build_forest(seed)
        if not fresh:
            from skl2onnx import to_onnx

            onx = to_onnx(est, X[:1], options={id(est): {"zipmap": False}})
            with open(path, "wb") as fh:
                fh.write(onx.SerializeToString())
        x = cyclic_rows(X[np.random.default_rng(seed).permutation(len(X))], max(BIG_BATCHES))
        out = dict(path=path, x=x, batches=BIG_BATCHES, peer="sklearn", model=est)
    else:
        model, x = build_torch(name, seed)
        if not fresh:
            export_torch(model, x, path)
        out = dict(path=path, x=x, batches=BIG_BATCHES, peer="torch", model=model)
    if not fresh:
        with open(key_path, "w") as fh:
            fh.write(key)
    return out


# ----------------------------------------------------------------------------------------------


def run_mlaudit(bench, entry, threads, budget, cache, name, modes):
    """{(mode, batch): ms or 'unsupported: ...'} and {batch: forward output path}."""
    import numpy as np

    inp = os.path.join(cache, f"{name}_input.npy")
    np.save(inp, entry["x"])
    prefix = os.path.join(cache, f"{name}_mlaudit_out_b")
    cmd = [bench, entry["path"], str(threads)] + [str(b) for b in entry["batches"]] + [
        "--input", inp, "--modes", ",".join(modes), "--max-seconds", str(budget), "--save-output", prefix]
    res = {"flops_per_row": 0.0, "peak_rss_mb": None}
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        lines, rc = p.stdout.splitlines(), p.returncode
        err_tail = (p.stderr.strip().splitlines() or [""])[-1]
    except subprocess.TimeoutExpired:
        lines, rc, err_tail = [], "timeout (900 s)", ""
    except OSError as e:  # no bench_engine binary
        lines, rc, err_tail = [], "-", str(e)
    for ln in lines:
        f = dict(kv.split("=", 1) for kv in ln.split(" unsupported:")[0].split() if "=" in kv)
        if "unsupported:" in ln:
            msg = "unsupported:" + ln.split("unsupported:", 1)[1]
            if "mode" in f:
                res[(f["mode"], int(f["batch"]))] = msg
            else:
                for m in modes:
                    for b in entry["batches"]:
                        res[(m, b)] = msg
        elif "ms" in f:
            res[(f["mode"], int(f["batch"]))] = (float(f["ms"]), float(f.get("min", f["ms"])))
        elif "flops_per_row" in f:
            res["flops_per_row"] = float(f["flops_per_row"])
        elif "peak_rss_mb" in f:
            res["peak_rss_mb"] = float(f["peak_rss_mb"])
    for m in modes:
        for b in entry["batches"]:
            if (m, b) not in res:
                res[(m, b)] = f"failed: bench_engine exit {rc} {err_tail}".strip()
    return res, {b: f"{prefix}{b}.npy" for b in entry["batches"]}


def main(argv=None):
    ap = argparse.ArgumentParser(description="mlaudit vs PyTorch / onnxruntime on a model panel.")
    ap.add_argument("threads", nargs="?", type=int, default=2)
    ap.add_argument("--bench", default=os.path.join(ROOT, "build", "bench", "engine", "bench_engine"),
                    help="the bench_engine binary")
    ap.add_argument("--only", default="", help="comma-separated models (default: the whole panel)")
    ap.add_argument("--cache", default=os.path.join(HERE, ".panel"))
    ap.add_argument("--max-seconds", type=float, default=2.0, help="timed seconds per measurement (default 2)")
    args = ap.parse_args(argv)
    t = args.threads
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(t)

    import numpy as np
    import onnxruntime as ort
    import sklearn
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(t)
    os.makedirs(args.cache, exist_ok=True)
    versions = {"torch": torch.__version__, "sklearn": sklearn.__version__}
    try:
        import skl2onnx
        import torchvision

        versions.update(torchvision=torchvision.__version__, skl2onnx=skl2onnx.__version__)
    except ImportError as e:
        print(f"# {e}: panel limited", file=sys.stderr)
    names = [n for n in PANEL if not args.only or n in args.only.split(",")]
    load = os.getloadavg()
    print(f"# panel threads={t} torch={torch.__version__} onnxruntime={ort.__version__} "
          f"scikit-learn={sklearn.__version__} load_avg={load[0]:.1f} cpus={os.cpu_count()}", flush=True)
    # The machine's measured peak: oneDNN's sgemm at the same thread count (bench_engine --sgemm-peak).
    peak = None
    try:
        out = subprocess.run([args.bench, "--sgemm-peak", str(t)], capture_output=True, text=True, timeout=300).stdout
        peak = float(out.split("sgemm_peak_gflops=")[1].split()[0])
        print(f"# measured peak: oneDNN sgemm 2048^3 at {t} threads, {peak:.0f} GFLOP/s", flush=True)
    except (OSError, IndexError, ValueError, subprocess.TimeoutExpired):
        print("# measured peak: unavailable (bench_engine --sgemm-peak failed)", flush=True)
    rows = []
    for name in names:
        try:
            entry = prepare(name, args.cache, versions)
        except Exception as e:  # a peer library missing or an exporter failing: report, go on
            print(f"# {name}: could not build/export: {type(e).__name__}: {str(e).splitlines()[0]}", flush=True)
            continue
        modes = ["fwd"] if entry["peer"] == "sklearn" else ["fwd", "fwdgrad"]
        t0 = time.perf_counter()
        ours, out_files = run_mlaudit(args.bench, entry, t, args.max_seconds, args.cache, name, modes)
        so = ort.SessionOptions()
        so.intra_op_num_threads = t
        so.inter_op_num_threads = 1
        sess = ort.InferenceSession(entry["path"], so, providers=["CPUExecutionProvider"])
        in_name = sess.get_inputs()[0].name
        out_names = [o.name for o in sess.get_outputs()]
        out_name = "probabilities" if "probabilities" in out_names else out_names[0]
        model = entry["model"]
        if entry["peer"] == "sklearn":
            model.n_jobs = t
        for b in entry["batches"]:
            x_np = np.ascontiguousarray(entry["x"][:b])
            x = torch.from_numpy(x_np)
            y = torch.zeros(b, dtype=torch.int64)

            def ort_fwd():
                return sess.run([out_name], {in_name: x_np})[0]

            def torch_fwd():
                with torch.no_grad():
                    return model(x)

            def torch_fwdgrad():
                xg = x.detach().requires_grad_(True)
                loss = F.cross_entropy(model(xg), y, reduction="sum")
                return torch.autograd.grad(loss, xg)[0]

            def sklearn_fwd():
                return model.predict_proba(x_np)

            ref = ort_fwd()
            if entry["peer"] == "torch":
                model.requires_grad_(False)
                peer_fns = {"fwd": torch_fwd, "fwdgrad": torch_fwdgrad}
                peer_out = torch_fwd().numpy()
            else:
                peer_fns = {"fwd": sklearn_fwd}
                peer_out = sklearn_fwd()
            scale = float(np.max(np.abs(ref))) or 1.0
            peer_err = float(np.max(np.abs(peer_out - ref))) / scale
            err = "-"
            if isinstance(ours[("fwd", b)], tuple) and os.path.isfile(out_files[b]):
                got = np.load(out_files[b])
                err = f"{float(np.max(np.abs(got.reshape(ref.shape) - ref))) / scale:.1e}" \
                    if got.size == ref.size else f"shape {list(got.shape)}"
            ort_ms = median_ms(ort_fwd, args.max_seconds)
            for m in modes:
                rows.append(dict(model=name, batch=b, mode=m, ours=ours[(m, b)], peer=entry["peer"],
                                 flops=ours["flops_per_row"] * b * (2 if m == "fwdgrad" else 1),
                                 rss=ours["peak_rss_mb"],
                                 peer_ms=median_ms(peer_fns[m], args.max_seconds),
                                 ort_ms=ort_ms if m == "fwd" else None, err=err if m == "fwd" else "",
                                 peer_err=peer_err))
        print(f"# {name}: done in {time.perf_counter() - t0:.0f} s (peer vs onnxruntime forward: "
              f"{max(r['peer_err'] for r in rows if r['model'] == name):.1e})", flush=True)
        del sess

    print()
    print(f"{'':31} {'median of runs':-^61}  {'fastest run':-^17}")
    print(f"{'model':16} {'batch':>5} {'mode':8} {'mlaudit_ms':>11} {'peer':8} {'peer_ms':>10} {'ort_ms':>10} "
          f"{'peer/us':>8} {'ort/us':>8}  {'peer/us':>8} {'ort/us':>8} {'err':>8} {'GFLOP/s':>8} {'%peak':>6} {'rss_MB':>7}")
    slow = []
    for r in rows:
        head = f"{r['model']:16} {r['batch']:>5} {r['mode']:8}"
        if not isinstance(r["ours"], tuple):
            print(f"{head} {r['ours']}")
            continue
        (o, o_min), (p, p_min) = r["ours"], r["peer_ms"]
        ratio = lambda a, b: f"{a / b:.2f}x" if b > 0 else "-"  # noqa: E731
        if r["ort_ms"] is not None:
            ort_s, ort_r, ort_rmin = f"{r['ort_ms'][0]:.4f}", ratio(r["ort_ms"][0], o), ratio(r["ort_ms"][1], o_min)
        else:
            ort_s = ort_r = ort_rmin = "-"
        gflops = r["flops"] / (o * 1e6) if r["flops"] > 0 else None
        gf_s = f"{gflops:.1f}" if gflops is not None else "-"
        pk_s = f"{100 * gflops / peak:.0f}%" if gflops is not None and peak else "-"
        rss_s = f"{r['rss']:.0f}" if r["rss"] is not None else "-"
        print(f"{head} {o:11.4f} {r['peer']:8} {p:10.4f} {ort_s:>10} {ratio(p, o):>8} {ort_r:>8}  "
              f"{ratio(p_min, o_min):>8} {ort_rmin:>8} {r['err']:>8} {gf_s:>8} {pk_s:>6} {rss_s:>7}")
        if r["peer"] == "torch" and o > 2 * p:
            slow.append(f"{r['model']} b{r['batch']} {r['mode']} ({p / o:.2f}x; fastest runs {p_min / o_min:.2f}x)")
    print("(peer/us, ort/us: peer time / mlaudit time, > 1 means mlaudit is faster; peer: PyTorch, or scikit-learn's "
          "predict_proba for the forest; err: max|mlaudit - ort| / max|ort| on the forward output; GFLOP/s: mlaudit's, "
          "from the engine's FLOP estimate of a forward (engine/cost.h) times the batch, twice that for fwd+grad (the "
          "input gradient's backward-data pass costs about one forward; no weight gradients); %peak: of the measured "
          "sgemm peak above; rss_MB: bench_engine's peak resident set over the model's runs)")
    print("more than 2x slower than PyTorch (median): " + ("; ".join(slow) if slow else "none"))
    print(f"# load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
