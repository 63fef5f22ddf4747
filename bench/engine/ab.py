#!/usr/bin/env python3
"""A/B timing of two bench_engine builds against onnxruntime, interleaved (issue #20).

    ${PYTHON:-.venv/bin/python} bench/engine/ab.py --base OLD/bench_engine --new NEW/bench_engine \
        [--threads 2] [--rounds 5] [--batches 1,256] [--modes fwd,fwdgrad] MODEL.onnx ...

On a shared machine single runs say little: each round runs, for every model and batch, the base
build, the new build and onnxruntime (forward; same thread count, inter-op 1) one after the
other, and the table gives the median over the rounds of each one's per-run median (bench_engine's
own ms=, onnxruntime's median of repeated runs after warm-up, peer.py's time_ms). Inputs are
uniform [0, 1) of the model's input shape with the batch axis set. A benchmark: prints, never fails.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer import time_ms  # noqa: E402


def bench(binary, model, threads, batch, mode):
    try:
        out = subprocess.run([binary, model, str(threads), str(batch), "--modes", mode], capture_output=True,
                             text=True, timeout=600).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(rf"mode={mode} batch={batch} .*?ms=([0-9.]+)", out)
    return float(m.group(1)) if m else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--new", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batches", default="1,256")
    ap.add_argument("--modes", default="fwd")
    ap.add_argument("models", nargs="+")
    args = ap.parse_args()
    import onnxruntime as ort

    batches = [int(b) for b in args.batches.split(",")]
    modes = args.modes.split(",")
    times = {}
    sessions = {}
    for model in args.models:
        so = ort.SessionOptions()
        so.intra_op_num_threads = args.threads
        so.inter_op_num_threads = 1
        sessions[model] = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    for _ in range(args.rounds):
        for model in args.models:
            sess = sessions[model]
            inp = sess.get_inputs()[0]
            for b in batches:
                for mode in modes:
                    for who, binary in (("base", args.base), ("new", args.new)):
                        t = bench(binary, model, args.threads, b, mode)
                        if t is not None:
                            times.setdefault((model, b, mode, who), []).append(t)
                shape = [b] + [d if isinstance(d, int) else 1 for d in inp.shape[1:]]
                x = np.random.default_rng(0).random(shape, dtype=np.float32)
                times.setdefault((model, b, "fwd", "ort"), []).append(
                    time_ms(lambda: sess.run(None, {inp.name: x}), b))
    print(f"# threads={args.threads} rounds={args.rounds} load={os.getloadavg()[0]:.2f} (1-min load at the end)")
    print(f"{'model':<20} {'mode':<8} {'batch':>5} {'base_ms':>9} {'new_ms':>9} {'ort_ms':>9} {'base/new':>8} {'ort/new':>8}")
    for model in args.models:
        for b in batches:
            for mode in modes:
                med = {w: statistics.median(times[(model, b, mode, w)]) if (model, b, mode, w) in times else None
                       for w in ("base", "new", "ort")}
                if mode != "fwd":
                    med["ort"] = None
                f = lambda v: f"{v:9.3f}" if v is not None else f"{'-':>9}"
                r = lambda a, c: f"{a / c:7.2f}x" if a is not None and c else f"{'-':>8}"
                name = os.path.splitext(os.path.basename(model))[0]
                print(f"{name:<20} {mode:<8} {b:>5} {f(med['base'])} {f(med['new'])} {f(med['ort'])} "
                      f"{r(med['base'], med['new'])} {r(med['ort'], med['new'])}")


if __name__ == "__main__":
    main()
