"""The Python module against the same goldens as the C++ tests and against the CLI.

Goldens: tests/fixtures/engine/models (onnxruntime logits, PyTorch float64 input gradients:
tools/engine_goldens.py), tests/fixtures/explain/goldens.json (Captum's IG deltas come with
the completeness check), tests/fixtures/fairness/toy.json (Fairlearn's toy example,
tools/fairness_goldens.py), tests/fixtures/verify (domain_sat/unsat with their reference).
The CLI comparison runs the executable of the same build on the same files: the module runs
the same command code, so the numbers must be equal, not close.
"""
import json
import os
import shutil
import signal
import threading
import time

import numpy as np
import pytest

import mlaudit


def worst_ratio(got, want, rel, floor):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape
    return float(np.max(np.abs(got - want) / (rel * np.abs(want) + floor)))


# ---------------------------------------------------------------------------------------------
# Model: forward and gradient

@pytest.mark.parametrize("name", ["fmnist_cnn", "credit_mlp"])
def test_model_run_and_gradient_match_goldens(src, name):
    d = src / "tests/fixtures/engine/models"
    x = np.load(d / f"{name}_x.npy")
    y = np.load(d / f"{name}_labels.npy")
    model = mlaudit.Model(src / f"models/{name}.onnx")
    logits = model.run(x)
    assert logits.dtype == np.float32 and logits.shape == (x.shape[0], 10 if name == "fmnist_cnn" else 2)
    # the C++ test's tolerances (tests/engine/test_models.cpp): 1e-4 relative, floors 1e-5 / 1e-6
    assert worst_ratio(logits, np.load(d / f"{name}_logits.npy"), 1e-4, 1e-5) <= 1.0
    seed = np.zeros_like(logits)
    seed[np.arange(len(y)), y] = 1.0  # d/dx sum_i logits[i, y_i]
    grad = model.gradient(x, seed=seed)
    assert grad.shape == x.shape
    assert worst_ratio(grad, np.load(d / f"{name}_grad.npy"), 1e-4, 1e-6) <= 1.0


def test_model_inputs_are_not_written_and_layouts_agree(src, fmnist):
    x, _ = fmnist
    model = mlaudit.Model(src / "models/fmnist_cnn.onnx")
    (name, dtype, shape), = model.inputs
    assert dtype == "float32" and shape[1:] == (1, 28, 28)
    want = model.run(x)
    # 64-byte aligned (borrowed, no copy), misaligned, float64 and Fortran-ordered inputs:
    # the same numbers, and the caller's array is never written
    buf = np.zeros(x.size + 64, dtype=np.float32)
    off = (-buf.ctypes.data % 64) // 4
    aligned = buf[off:off + x.size].reshape(x.shape)
    aligned[...] = x
    assert aligned.ctypes.data % 64 == 0
    misaligned = np.zeros(x.size + 1, dtype=np.float32)[1:].reshape(x.shape)
    misaligned[...] = x
    for variant in (aligned, misaligned, x.astype(np.float64), np.asfortranarray(x)):
        before = np.array(variant, copy=True)
        np.testing.assert_array_equal(model.run(variant), want)
        np.testing.assert_array_equal(variant, before)
    # by name, and as a dict
    np.testing.assert_array_equal(model.run(**{name: x}), want)
    np.testing.assert_array_equal(model.run({name: x}), want)
    # outputs own their memory: they outlive the model and later runs
    out = model.run(x[:2])
    want2 = np.array(out, copy=True)
    model.run(x[2:4])
    del model
    np.testing.assert_array_equal(out, want2)


def test_model_run_equals_cli_run(src, fmnist_files, run_cli, tmp_path):
    xf, _ = fmnist_files
    out = tmp_path / "run"
    run_cli("run", "--model", src / "models/fmnist_cnn.onnx", "--data", xf, "--out", out, "--quiet")
    files = sorted(out.glob("*.npy"))  # one .npy per output, named after it
    assert len(files) == 1
    np.testing.assert_array_equal(mlaudit.Model(src / "models/fmnist_cnn.onnx").run(np.load(xf)), np.load(files[0]))


def test_model_errors(src, tmp_path):
    with pytest.raises(mlaudit.InputError, match="nope.onnx"):
        mlaudit.Model(tmp_path / "nope.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    with pytest.raises(mlaudit.InputError, match="bad.onnx"):
        mlaudit.Model(bad)
    model = mlaudit.Model(src / "models/credit_mlp.onnx")
    with pytest.raises(mlaudit.InputError, match="input"):
        model.run(np.zeros((2, 3), np.float32))  # credit takes 7 features
    with pytest.raises(mlaudit.InputError, match="input"):
        model.run(np.zeros((2, 7), np.float32), np.zeros((2, 7), np.float32))
    assert issubclass(mlaudit.InputError, ValueError)
    assert issubclass(mlaudit.UnsupportedError, mlaudit.InputError)


def test_model_from_bytes(src, fmnist):
    x, _ = fmnist
    data = (src / "models/fmnist_cnn.onnx").read_bytes()
    m = mlaudit.Model.from_bytes(data, name="cnn.onnx")
    np.testing.assert_array_equal(m.run(x), mlaudit.Model(src / "models/fmnist_cnn.onnx").run(x))
    assert os.path.exists(m.path)
    with pytest.raises(mlaudit.InputError, match="broken.onnx"):
        mlaudit.Model.from_bytes(data[:1000], name="broken.onnx")


def test_unsupported_operator_is_unsupported_error(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper
    node = helper.make_node("NoSuchOp", ["x"], ["y"], domain="")
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(mlaudit.InputError, match="NoSuchOp"):
        mlaudit.Model.from_bytes(m.SerializeToString(), name="custom.onnx")


def test_from_torch_equals_torch(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3)).eval()
    x = torch.randn(8, 5)
    try:
        model = mlaudit.Model.from_torch(net, x)
    except mlaudit.InputError as e:  # an exporter that needs packages this Python lacks
        pytest.skip(str(e))
    with torch.no_grad():
        want = net(x).numpy()
    np.testing.assert_allclose(model.run(x.numpy()), want, rtol=1e-5, atol=1e-6)
    # the commands read the exported file (and any weights the exporter kept beside it)
    r = mlaudit.attack(model, x.numpy(), want.argmax(1), eps=[0.05], steps=5, clip_min=-10, clip_max=10)
    assert r["clean_accuracy"] == 1.0 and r["n_samples"] == 8
    # the exporter's error, passed on as an InputError naming the module
    class Bad(torch.nn.Module):
        def forward(self, x):
            return torch.from_numpy(np.asarray(x.tolist()))

    with pytest.raises(mlaudit.InputError, match="from_torch: torch.onnx.export failed on Bad"):
        mlaudit.Model.from_torch(Bad(), x)


# ---------------------------------------------------------------------------------------------
# Commands: the CLI's numbers

def test_attack_equals_cli_and_adversarials_are_valid(src, fmnist, fmnist_files, cli_json):
    x, y = fmnist
    xf, yf = fmnist_files
    model_path = src / "models/fmnist_cnn.onnx"
    opts = dict(attack="pgd", eps=[0.03, 0.1], steps=10, seed=3)
    r = mlaudit.attack(model_path, x, y, save_adv=True, **opts)
    c = cli_json("attack", "--model", model_path, "--data", xf, "--labels", yf, "--attack", "pgd", "--eps",
                 "0.03,0.1", "--steps", "10", "--seed", "3")
    assert r["by_eps"] == c["by_eps"]
    assert r["per_sample"] == c["per_sample"]
    assert r["clean_accuracy"] == c["clean_accuracy"]
    # the same input files give the same provenance, byte for byte
    rf = mlaudit.attack(mlaudit.Model(model_path), xf, yf, **opts)
    assert rf["inputs"] == c["inputs"]
    # the last radius's adversarials lie in the ball and the domain, and the ones reported
    # successful really change the model's label
    adv = r["adversarial"]
    assert adv.shape == x.shape
    assert np.max(np.abs(adv - x)) <= 0.1 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    pred = mlaudit.Model(model_path).run(adv).argmax(1)
    for s in r["per_sample"]:
        last = s["by_eps"][-1]
        if s["correct"] and last["success"]:
            assert pred[s["index"]] != s["label"]


def test_certify_equals_cli(src, fmnist, fmnist_files, cli_json):
    x, y = fmnist
    xf, yf = fmnist_files
    m = src / "models/fmnist_cnn.onnx"
    r = mlaudit.certify(m, x[:6], y[:6], sigma=0.25, n0=50, n=500, seed=1)
    c = cli_json("certify", "--model", m, "--data", xf, "--labels", yf, "--sigma", "0.25", "--n0", "50", "--n", "500",
                 "--seed", "1", "--limit", "6")
    # every record but its wall-clock seconds
    untimed = lambda rows: [{k: v for k, v in row.items() if k != "seconds"} for row in rows]
    assert untimed(r["per_sample"]) == untimed(c["per_sample"])
    assert len(r["per_sample"]) == 6
    for key in c:
        if key.startswith("certified_accuracy"):
            assert r[key] == c[key], key


def test_explain_integrated_gradients_completeness(src, fmnist):
    x, y = fmnist
    model = mlaudit.Model(src / "models/fmnist_cnn.onnx")
    r = mlaudit.explain(model, x[:4], y[:4], method="integrated-gradients", target="label", steps=200)
    a = r["attributions"]
    assert a.shape == x[:4].shape
    # completeness (Sundararajan et al. 2017): sum of attributions = f(x) - f(baseline 0), to
    # the Riemann sum's error; Captum's own deltas on this model reach 0.035 at its 50 steps
    logits = model.run(x[:4])
    zero = model.run(np.zeros_like(x[:4]))
    for i in range(4):
        want = logits[i, y[i]] - zero[i, y[i]]
        assert abs(a[i].sum() - want) <= 0.02 * max(1.0, abs(want))


def test_explain_equals_cli(src, fmnist_files, cli_json, tmp_path):
    xf, yf = fmnist_files
    m = src / "models/credit_mlp.onnx"
    xc = src / "datasets/demo/credit_x.npy"
    bg = src / "datasets/demo/credit_background.npy"
    r = mlaudit.explain(m, xc, method="kernel-shap", background=np.load(bg), limit=3, seed=2)
    att = tmp_path / "a.npy"
    c = cli_json("explain", "--model", m, "--data", xc, "--method", "kernel-shap", "--background", bg, "--limit", "3",
                 "--seed", "2", "--attributions", att)
    np.testing.assert_array_equal(r["attributions"], np.load(att))


def test_fairness_toy_dataframe_and_dict_equal_cli_and_fairlearn(src, tmp_path, cli_json):
    toy = json.loads((src / "tests/fixtures/fairness/toy.json").read_text())
    cols = {"y": np.array(toy["y_true"]), "yhat": np.array(toy["y_pred"]), "g": np.array(toy["groups_of_rows"])}
    r = mlaudit.fairness(cols, label_column="y", prediction="yhat", protected="g", bootstrap=0)

    def disparity(j, name):
        hits = [d for d in j["disparities"] if d["name"] == name]
        assert hits, name
        return hits[0]["value"]

    for name, want in toy["disparities"].items():
        assert disparity(r, name) == pytest.approx(want, abs=1e-12), name
    csvf = tmp_path / "toy.csv"
    with open(csvf, "w") as f:
        f.write("y,yhat,g\n")
        for a, b, g in zip(*cols.values()):
            f.write(f"{a},{b},{g}\n")
    c = cli_json("fairness", "--data", csvf, "--label-column", "y", "--prediction", "yhat", "--protected", "g",
                 "--bootstrap", "0")
    assert r["disparities"] == c["disparities"] and r["groups"] == c["groups"]
    pd = pytest.importorskip("pandas")
    rp = mlaudit.fairness(pd.DataFrame(cols), label_column="y", prediction="yhat", protected=["g"], bootstrap=0)
    assert rp["disparities"] == c["disparities"]


def test_verify_vnnlib_and_robustness(src):
    d = src / "tests/fixtures/verify"
    sat = mlaudit.verify(d / "domain_mlp.onnx", vnnlib=d / "domain_sat.vnnlib", timeout=30)
    unsat = mlaudit.verify(d / "domain_mlp.onnx", vnnlib=d / "domain_unsat.vnnlib", timeout=30)
    assert sat["result"] == "sat" and sat["verdict"] == "falsified"
    assert unsat["result"] == "unsat"
    # the counterexample lies in the property's input box and the model's output satisfies it
    # (domain_sat.vnnlib: Y_0 <= Y_1 somewhere in the box)
    x = np.array(sat["counterexample"]["input"], dtype=np.float32)
    box = np.array(sat["input_boxes"][0]["lower"]), np.array(sat["input_boxes"][0]["upper"])
    assert np.all(x >= box[0] - 1e-6) and np.all(x <= box[1] + 1e-6)
    y = mlaudit.Model(d / "domain_mlp.onnx").run(x[None, :])[0]
    assert y[0] <= y[1]


def test_audit_returns_report_and_writes_files(src, tmp_path):
    cfg = tmp_path / "audit.yaml"
    cfg.write_text(f"""version: 1
system: {{name: python check, version: "1", owner: ci}}
models: {{credit: {src}/models/credit_mlp.onnx}}
datasets:
  credit: {{csv: {src}/datasets/credit/credit_test.csv, label: approved, protected: [sex], features: {src}/datasets/credit/features.txt}}
sections:
  performance: [{{model: credit, data: credit, bootstrap: 50}}]
gates:
  - {{check: accuracy() >= 0.5, model: credit, name: credit accuracy}}
  - {{check: accuracy() >= 0.999, model: credit, name: impossible}}
""")
    out = tmp_path / "report"
    rep = mlaudit.audit(cfg, out=out)
    assert rep["schema"].startswith("mlaudit.report/")
    for f in ("report.json", "report.html", "report.md", "junit.xml"):
        assert (out / f).stat().st_size > 0
    assert json.loads((out / "report.json").read_text()) == rep
    with pytest.raises(mlaudit.InputError, match="nope.yaml"):
        mlaudit.audit(tmp_path / "nope.yaml")


def test_command_errors_are_the_cli_lines(src, fmnist, tmp_path):
    x, y = fmnist
    with pytest.raises(mlaudit.InputError, match=r"^attack: .*--attack.*'nosuch'"):
        mlaudit.attack(src / "models/fmnist_cnn.onnx", x, y, attack="nosuch", eps=0.1)
    with pytest.raises(mlaudit.InputError, match="unrecognised|unknown"):
        mlaudit.attack(src / "models/fmnist_cnn.onnx", x, y, eps=0.1, no_such_option=3)
    with pytest.raises(mlaudit.InputError, match="labels"):
        mlaudit.attack(src / "models/fmnist_cnn.onnx", x, y[:3], eps=0.1)
    with pytest.raises(mlaudit.InputError, match="labels"):
        mlaudit.attack(src / "models/fmnist_cnn.onnx", x, y + 0.5, eps=0.1)


def test_cli_function_and_version(src, run_cli):
    assert mlaudit.cli("info", "-m", src / "models/credit_mlp.onnx", quiet=True) == 0
    v = mlaudit.version()
    _, out, _ = run_cli("--version", "--json")
    cli = json.loads(out)
    # the same source and modules; the backends may differ (a CPU-only wheel beside a CUDA build)
    for key in ("schema", "version", "commit", "modules"):
        assert v[key] == cli[key], key
    assert mlaudit.__version__ == v["version"]


# ---------------------------------------------------------------------------------------------
# Long calls: progress, the GIL, Ctrl-C

def test_progress_callback_sees_every_update(src, fmnist):
    x, y = fmnist
    seen = []
    mlaudit.certify(src / "models/fmnist_cnn.onnx", x[:5], y[:5], sigma=0.25, n0=20, n=200,
                    progress=lambda *a: seen.append(a))
    assert seen and seen[-1][4] is True  # the line's end
    label, unit, done, total, _ = seen[-1]
    assert label == "certify" and unit == "samples" and done == total == 5
    assert [s[2] for s in seen[:-1]] == sorted(s[2] for s in seen[:-1])


def test_long_calls_release_the_gil(src, fmnist):
    x, y = fmnist
    ticks = 0
    done = threading.Event()

    def count():
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            time.sleep(0.001)

    t = threading.Thread(target=count)
    t.start()
    start = time.monotonic()
    mlaudit.certify(src / "models/fmnist_cnn.onnx", x[:8], y[:8], sigma=0.25, n0=50, n=4000, progress=False)
    elapsed = time.monotonic() - start
    done.set()
    t.join()
    # with the GIL held for the whole call the counter could not move; released, it ticks at
    # roughly 1 kHz (a generous floor: the machine may be loaded)
    assert elapsed > 0.2 and ticks >= 0.1 * elapsed * 1000 / 4


def test_ctrl_c_stops_a_long_call(src, fmnist):
    x, y = fmnist
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    start = time.monotonic()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        # 24 samples at n = 100,000: far longer than the half second before the signal
        mlaudit.certify(src / "models/fmnist_cnn.onnx", x, y, sigma=0.25, progress=False)
    timer.cancel()
    assert time.monotonic() - start < 30


def test_calls_from_two_threads_keep_their_own_progress_and_results(src, fmnist):
    x, y = fmnist
    m = src / "models/fmnist_cnn.onnx"
    want = {s: mlaudit.certify(m, x[:3], y[:3], sigma=s, n0=20, n=300, progress=False)["per_sample"]
            for s in (0.12, 0.5)}
    seen = {0.12: [], 0.5: []}
    got = {}

    def work(sigma):
        got[sigma] = mlaudit.certify(m, x[:3], y[:3], sigma=sigma, n0=20, n=300,
                                     progress=lambda *a: seen[sigma].append(a))["per_sample"]

    threads = [threading.Thread(target=work, args=(s,)) for s in (0.12, 0.5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    untimed = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
    for s in (0.12, 0.5):
        assert untimed(got[s]) == untimed(want[s])
        # each call's callback saw its own line only: 3 samples, then the end
        assert seen[s] and seen[s][-1][2:] == (3, 3, True)
        assert all(a[3] == 3 for a in seen[s])


def test_verify_benchmark_runs_its_instances_in_the_mlaudit_child(src, tmp_path):
    # verify --benchmark runs each instance in a persistent child mlaudit (cli/task_server.h); in
    # Python the child is $MLAUDIT_EXE (set by the test environment), not python itself.
    if not os.environ.get("MLAUDIT_EXE"):
        pytest.skip("MLAUDIT_EXE not set")
    d = src / "tests/fixtures/verify"
    (tmp_path / "onnx").mkdir()
    (tmp_path / "vnnlib").mkdir()
    shutil.copy(d / "domain_mlp.onnx", tmp_path / "onnx")
    for v in ("domain_sat.vnnlib", "domain_unsat.vnnlib"):
        shutil.copy(d / v, tmp_path / "vnnlib")
    (tmp_path / "instances.csv").write_text("onnx/domain_mlp.onnx,vnnlib/domain_sat.vnnlib,30\n"
                                            "onnx/domain_mlp.onnx,vnnlib/domain_unsat.vnnlib,30\n")
    out = tmp_path / "r.json"
    assert mlaudit.cli("verify", "--benchmark", tmp_path, "--out", out, quiet=True) == 0
    rows = json.loads(out.read_text())["instances"]
    assert [r["result"] for r in rows] == ["sat", "unsat"]
