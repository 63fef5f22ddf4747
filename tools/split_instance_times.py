#!/usr/bin/env python3
"""Per-part times of VNN-LIB instances whose input box is split into K equal sub-boxes.

docs/scale-out.md, "Scaling numbers": a run over whole instances can never end before its
longest instance (ACAS Xu 3_3 property 2 takes 17.5 of the benchmark's 74 s), however many
workers it has. This measures what splitting such an instance would give: its box (the
`(assert (<= X_i c))` / `(>= X_i c)` lines) is cut into K = 2^k equal parts, halving the widest
dimension (relative to the original box) each time, and `mlaudit verify --vnnlib` runs on each
part; the instance is unsat iff every part is, sat iff some part is. Prints a CSV
(instance,part,result,seconds) for tools/scaleout_sim.py.

Usage: tools/split_instance_times.py MLAUDIT BENCH_DIR 'ONNX,VNNLIB' K [--threads 1] [--timeout 116]
  (ONNX,VNNLIB as instances.csv lists them, e.g. onnx/ACASXU_run2a_3_3_batch_2000.onnx,vnnlib/prop_2.vnnlib)
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

BOUND = re.compile(r"^\(assert \((<=|>=) X_(\d+) ([-+0-9.eE]+)\)\)\s*$")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mlaudit")
    ap.add_argument("bench")
    ap.add_argument("instance")
    ap.add_argument("k", type=int)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=116)
    ap.add_argument("--header", action="store_true")
    a = ap.parse_args()
    onnx, vnnlib = a.instance.split(",")
    lines = open(os.path.join(a.bench, vnnlib)).read().splitlines()
    lo, hi = {}, {}
    for ln in lines:
        m = BOUND.match(ln.strip())
        if m:
            (hi if m.group(1) == "<=" else lo)[int(m.group(2))] = float(m.group(3))
    dims = sorted(set(lo) & set(hi))
    if not dims:
        sys.exit("split_instance_times: no box bounds on X_i found")
    boxes = [({d: lo[d] for d in dims}, {d: hi[d] for d in dims})]
    width0 = {d: hi[d] - lo[d] for d in dims}
    while len(boxes) < a.k:
        nxt = []
        for l, h in boxes:
            d = max(dims, key=lambda d: (h[d] - l[d]) / width0[d] if width0[d] > 0 else 0)
            mid = (l[d] + h[d]) / 2
            h1, l2 = dict(h), dict(l)
            h1[d], l2[d] = mid, mid
            nxt.append((l, h1))
            nxt.append((l2, h))
        boxes = nxt
    if a.header:
        print("instance,part,result,seconds")
    with tempfile.TemporaryDirectory() as tmp:
        for i, (l, h) in enumerate(boxes):
            out = []
            for ln in lines:
                m = BOUND.match(ln.strip())
                if m:
                    d = int(m.group(2))
                    out.append(f"(assert ({m.group(1)} X_{d} {repr(h[d] if m.group(1) == '<=' else l[d])}))")
                else:
                    out.append(ln)
            path = os.path.join(tmp, f"part{i}.vnnlib")
            open(path, "w").write("\n".join(out) + "\n")
            res = os.path.join(tmp, "r.json")
            t0 = time.perf_counter()
            subprocess.run([a.mlaudit, "-q", "--threads", str(a.threads), "verify", "--model", os.path.join(a.bench, onnx),
                            "--vnnlib", path, "--timeout", str(a.timeout), "--out", res],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            s = time.perf_counter() - t0
            verdict = "unknown"
            try:
                import json
                verdict = json.load(open(res)).get("result", "unknown")
            except Exception:
                pass
            print(f"{a.instance.replace(',', ' ')},{i},{verdict},{s:.3f}", flush=True)


if __name__ == "__main__":
    main()
