#!/usr/bin/env python3
"""Marabou (maraboupy from PyPI) on the same ACAS Xu instances as mlaudit.

    python marabou_peer.py ACAS_DIR FILTER_REGEX TIMEOUT_S THREADS OUT.csv

Each instance runs in a child process (Marabou's own timeout plus a kill 10 s
later), with split-and-conquer on THREADS workers (the same thread count
mlaudit uses). Prints solved/wrong/total/median like `mlaudit verify --benchmark`.
"""
import csv
import multiprocessing as mp
import os
import re
import sys
import time


def solve(onnx, vnnlib, timeout, threads, q):
    from maraboupy import Marabou
    net = Marabou.read_onnx(onnx)
    opts = Marabou.createOptions(verbosity=0, timeoutInSeconds=int(timeout), snc=threads > 1,
                                 numWorkers=threads)
    code, _, _ = net.solve(verbose=False, options=opts, propertyFilename=vnnlib)
    q.put(code)


def main():
    acas, filt, timeout, threads, out = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    expected = {}
    with open(os.path.join(acas, "expected.csv")) as f:
        for r in csv.DictReader(f):
            expected[(r["onnx"], r["vnnlib"])] = r["expected"]
    rows, times = [], []
    sat = unsat = wrong = other = 0
    with open(os.path.join(acas, "instances.csv")) as f:
        instances = [line.strip().split(",") for line in f if line.strip()]
    for onnx, vnnlib, to in instances:
        key = (os.path.basename(onnx), os.path.basename(vnnlib))
        if not re.search(filt, ",".join(key)):
            continue
        limit = min(float(to), timeout)
        q = mp.Queue()
        t0 = time.time()
        p = mp.Process(target=solve, args=(os.path.join(acas, onnx), os.path.join(acas, vnnlib), limit, threads, q))
        p.start()
        p.join(limit + 10)
        if p.is_alive():
            p.kill()
            p.join()
        secs = time.time() - t0
        res = q.get() if not q.empty() else "timeout"
        res = res.lower()
        want = expected.get(key, "")
        solved = res in ("sat", "unsat")
        is_wrong = solved and want and res != want
        wrong += bool(is_wrong)
        if not is_wrong:
            sat += res == "sat"
            unsat += res == "unsat"
            other += not solved
        times.append(secs)
        rows.append({"onnx": key[0], "vnnlib": key[1], "result": res, "expected": want,
                     "correct": "" if not solved else ("no" if is_wrong else "yes"), "seconds": f"{secs:.3f}"})
        print(f"{key[0]} {key[1]} -> {res} ({secs:.2f} s){'  WRONG' if is_wrong else ''}", file=sys.stderr)
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["onnx", "vnnlib", "result", "expected", "correct", "seconds"])
        w.writeheader()
        w.writerows(rows)
    times.sort()
    median = times[len(times) // 2] if times else 0
    print(f"instances {len(rows)}: solved {sat + unsat} (sat {sat}, unsat {unsat}), wrong {wrong}, "
          f"unsolved {other}; total {sum(times):.2f} s, median {median:.3f} s")


if __name__ == "__main__":
    main()
