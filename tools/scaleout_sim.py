#!/usr/bin/env python3
"""Makespan of one sharded or dynamically scheduled run on W workers, from measured per-item times.

docs/scale-out.md, "Scaling numbers". The machines here have two cores, so the wall time of
8, 64 or 512 workers is simulated from the per-item times of real runs:

  static   --shard I/N: worker I gets the contiguous block [T*I/N, T*(I+1)/N) of the items in
           list order (what a Slurm array or a CI matrix runs).
  dynamic  one coordinator hands the next item in list order to the first idle worker (what a
           work queue, e.g. rank 0 of an MPI run, does); each hand-out costs `--dispatch` seconds
           of the worker's time (message round trip).
  lpt      dynamic, longest item first (Graham's LPT: within 4/3 of optimal); needs the times in
           advance, so it is the best a scheduler that could predict them would do.
  ideal    total / W: no schedule of whole items beats max(ideal, longest item).

Every worker also pays `--startup` seconds once (process start, model load). Inputs are
files of per-item seconds: a CSV with a `seconds` column (bench/verify/*_results.csv), or a
mlaudit JSON report (per_sample[].seconds of certify, instances[].seconds of
verify --benchmark). `--resample N --scale F` draws N items with replacement from the measured
ones (fixed seed) and multiplies their times by F, to model a larger run from a smaller one (e.g.
certify at n = 100,000 from a run at n = 10,000: the time per image is linear in n).

A verify --benchmark report run with --split-after (one process: the pieces one after another)
records each split instance's task tree (instances[].split.task_tree: every task's seconds and
the task whose split made it). Such a file is simulated as `--mpi` runs it: the instances in
list order, a split's pieces put in front of the queue when their parent ends ("dynamic"; the
static and lpt columns do not apply to a tree and print "-"). `--ideal-from FILE` takes the
ideal from another run's total (the same benchmark unsplit), so that the work the split adds
counts against it.

Usage:
  tools/scaleout_sim.py TIMES [--label NAME] [--workers 8,64,512] [--dispatch 0.001]
                        [--startup 0.05] [--resample N --scale F] [--seed 1]
Prints one markdown table row per worker count: makespan of each policy and its ratio to ideal.
"""
import argparse
import csv
import heapq
import json
import random
import sys
from collections import deque


def read_tree(path):
    """Tasks of a --split-after benchmark report: (seconds, children) per task, and the roots in
    list order; None when the file has no task trees."""
    if not path.endswith(".json"):
        return None
    with open(path) as f:
        j = json.load(f)
    rows = j.get("instances") or []
    if not any("split" in r for r in rows):
        return None
    durations, children, roots = [], [], []
    for r in rows:
        tree = r["split"]["task_tree"] if "split" in r else [{"parent": -1, "seconds": r["seconds"]}]
        base = len(durations)
        for t in tree:
            durations.append(float(t["seconds"]))
            children.append([])
            if t["parent"] < 0:
                roots.append(len(durations) - 1)
            else:
                children[base + t["parent"]].append(len(durations) - 1)
    return durations, children, roots


def dynamic_tree(durations, children, roots, workers, startup, dispatch):
    """The queue of --mpi with splits: idle workers take the front of the queue; a finished
    task's pieces go to the front, in their order."""
    ready = deque(roots)
    running = []
    idle = workers
    t = startup
    end = 0.0
    while True:
        while idle > 0 and ready:
            k = ready.popleft()
            idle -= 1
            heapq.heappush(running, (t + dispatch + durations[k], k))
        if not running:
            return end
        t, k = heapq.heappop(running)
        end = max(end, t)
        idle += 1
        ready.extendleft(reversed(children[k]))


def read_times(path):
    if path.endswith(".json"):
        with open(path) as f:
            j = json.load(f)
        rows = j.get("per_sample") or j.get("instances") or []
        times = [float(r["seconds"]) for r in rows if "seconds" in r]
    else:
        with open(path, newline="") as f:
            times = [float(r["seconds"]) for r in csv.DictReader(f)]
    if not times:
        sys.exit(f"scaleout_sim: {path}: no per-item seconds found")
    return times


def static_blocks(times, workers, startup):
    t = len(times)
    spans = []
    for i in range(min(workers, t)):
        a, b = t * i // workers, t * (i + 1) // workers
        spans.append(startup + sum(times[a:b]))
    return max(spans)


def dynamic(times, workers, startup, dispatch, order):
    free = [startup] * min(workers, len(times))  # time each worker becomes idle
    heapq.heapify(free)
    end = 0.0
    for k in order:
        t0 = heapq.heappop(free)
        t1 = t0 + dispatch + times[k]
        end = max(end, t1)
        heapq.heappush(free, t1)
    return end


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("times")
    ap.add_argument("--label", default=None)
    ap.add_argument("--workers", default="8,64,512")
    ap.add_argument("--dispatch", type=float, default=0.001, help="seconds per hand-out (dynamic, lpt)")
    ap.add_argument("--startup", type=float, default=0.05, help="seconds per worker before its first item")
    ap.add_argument("--resample", type=int, default=0)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--header", action="store_true", help="print the table header first")
    ap.add_argument("--ideal-from", default=None, help="take the ideal's total from this run (e.g. the unsplit one)")
    a = ap.parse_args()
    tree = None if a.resample else read_tree(a.times)
    times = read_times(a.times) if tree is None else tree[0]
    if a.resample:
        rng = random.Random(a.seed)
        times = [rng.choice(times) for _ in range(a.resample)]
    times = [t * a.scale for t in times]
    label = a.label or a.times
    total = sum(times) if not a.ideal_from else sum(read_times(a.ideal_from))
    if a.header:
        print("| run | items | total s | longest s | workers | ideal s | static s (x ideal) | dynamic s (x ideal) | lpt s (x ideal) |")
        print("|---|---|---|---|---|---|---|---|---|")
    for w in [int(x) for x in a.workers.split(",")]:
        ideal = total / w
        if tree is not None:
            dy = dynamic_tree(tree[0], tree[1], tree[2], w, a.startup, a.dispatch)
            print(f"| {label} | {len(times)} tasks | {total:.1f} (tasks {sum(times):.1f}) | {max(times):.2f} | {w} | "
                  f"{ideal:.2f} | - | {dy:.2f} ({dy / ideal:.2f}) | - |")
            continue
        st = static_blocks(times, w, a.startup)
        dy = dynamic(times, w, a.startup, a.dispatch, range(len(times)))
        lpt = dynamic(times, w, a.startup, a.dispatch, sorted(range(len(times)), key=lambda k: -times[k]))
        print(f"| {label} | {len(times)} | {total:.1f} | {max(times):.2f} | {w} | {ideal:.2f} | "
              f"{st:.2f} ({st / ideal:.2f}) | {dy:.2f} ({dy / ideal:.2f}) | {lpt:.2f} ({lpt / ideal:.2f}) |")


if __name__ == "__main__":
    main()
