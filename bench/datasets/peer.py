#!/usr/bin/env python3
"""Peer timings for bench/datasets/run.sh: numpy (np.load / np.save), pandas.read_csv
(C engine) and gzip + np.frombuffer for Fashion-MNIST (what torchvision's loader does).

Usage: python peer.py WORK_DIR   (run.sh calls it; prints "peer=... task=... ms=...")
"""
import gzip
import os
import sys
import time

import numpy as np


def median_ms(repeats, work):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append((time.perf_counter() - start) * 1000.0)
    times.sort()
    return times[len(times) // 2]


def fashion(split):
    root = "/usr/share/datasets/fashion-mnist"
    with gzip.open(f"{root}/{split}-images-idx3-ubyte.gz") as f:
        raw = f.read()
    x = np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 1, 28, 28).astype(np.float32) / 255.0
    with gzip.open(f"{root}/{split}-labels-idx1-ubyte.gz") as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64)
    return x, y


def main():
    work = sys.argv[1]
    state = {}
    print("peer=numpy task=npy_read ms=%.2f" % median_ms(5, lambda: state.update(x=np.load(f"{work}/images.npy"))))
    print("peer=numpy task=npy_write ms=%.2f" % median_ms(5, lambda: np.save(f"{work}/images_peer.npy", state["x"])))
    try:
        import pandas as pd

        def read():
            df = pd.read_csv(f"{work}/table.csv")
            m = df[["a", "b", "c", "d"]].to_numpy(np.float32)
            assert m.shape[0] == 1000000

        print("peer=pandas task=csv_read ms=%.2f" % median_ms(3, read))
    except ImportError:
        print("pandas not installed; csv peer skipped", file=sys.stderr)
    print("peer=numpy task=fmnist_t10k ms=%.2f" % median_ms(5, lambda: fashion("t10k")))
    print("peer=numpy task=fmnist_train ms=%.2f" % median_ms(3, lambda: fashion("train")))


if __name__ == "__main__":
    main()
