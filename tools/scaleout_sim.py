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


class Tree:
    """Tasks of a --split-after benchmark report, in recording order: seconds, children, the
    instance each belongs to, and whether it is a falsification round handed out alone (the
    instance does not wait for it: it can only find a counterexample)."""

    def __init__(self):
        self.durations, self.children, self.instance, self.falsify, self.roots = [], [], [], [], []
        self.sat = []  # per task: it found a counterexample
        self.instance_sat = []  # per instance: its verdict is sat (decided by its first sat task)


def read_tree(path):
    """The Tree of a --split-after benchmark report; None when the file has no task trees."""
    if not path.endswith(".json"):
        return None
    with open(path) as f:
        j = json.load(f)
    rows = j.get("instances") or []
    if not any("split" in r for r in rows):
        return None
    tr = Tree()
    for i, r in enumerate(rows):
        tree = r["split"]["task_tree"] if "split" in r else [{"parent": -1, "seconds": r["seconds"], "result": r["result"]}]
        tr.instance_sat.append(r.get("result") == "sat" and any(t.get("result") == "sat" for t in tree))
        base = len(tr.durations)
        for t in tree:
            tr.durations.append(float(t["seconds"]))
            tr.children.append([])
            tr.instance.append(i)
            tr.falsify.append(bool(t.get("falsify", False)))
            tr.sat.append(t.get("result") == "sat")
            if t["parent"] < 0:
                tr.roots.append(len(tr.durations) - 1)
            else:
                tr.children[base + t["parent"]].append(len(tr.durations) - 1)
    return tr


def dynamic_tree(tr, workers, startup, dispatch, on_demand=False, latency=(0.07, 0.01), min_age=0.01, asks_per=4,
                 trace=None):
    """The queue of --mpi with splits: idle workers take the front of the queue; a finished
    task's pieces go to the front, in their order. An instance is decided when its first task
    that found a counterexample ends (a sat instance: the recording stopped there), else when its
    last task that is not a handed-out falsification round ends; its other tasks still queued
    are dropped, running ones hold their worker to the end. The makespan is the last decision.

    on_demand: split on demand as --mpi does it: while workers wait and the queue is empty, the
    coordinator asks the running task that started first (one request per `asks_per` idle workers
    at a time) to split now. Modelled on the recorded tree: a task asked at time t (one that split
    in the recording, and has run min_age) hands out its recorded pieces at
    min(its recorded end, t + latency) -- latency (root, piece) being the branch in progress and
    the breadth-first expansion (measured: a root asked on ACAS Xu answers in 0.02-0.09 s, a
    piece in 0.005-0.011 s) -- and the time it would still have run is added to its pieces,
    evenly: the work is conserved and only moves. A task that did not split in the recording
    cannot be asked (it ended within its split-after).

    trace: a list that receives (start, end, task) of every task run."""
    dur = list(tr.durations)
    roots = set(tr.roots)
    gating_left = {}
    for k, inst in enumerate(tr.instance):
        if not tr.falsify[k]:
            gating_left[inst] = gating_left.get(inst, 0) + 1
    decided = set()
    ready = deque(tr.roots)
    running = {}  # task -> [start, end, asked]
    heap = []
    idle = workers
    t = startup
    end = 0.0
    asks = 0
    while True:
        while idle > 0 and ready:
            k = ready.popleft()
            if tr.instance[k] in decided:
                continue
            idle -= 1
            running[k] = [t, t + dispatch + dur[k], False]
            heapq.heappush(heap, (running[k][1], k))
        while on_demand and not ready and idle > asks * asks_per:
            cands = [k for k, (s0, e0, a) in running.items()
                     if not a and tr.children[k] and t - s0 >= min_age and tr.instance[k] not in decided]
            if not cands:
                break
            k = min(cands, key=lambda k: running[k][0])
            s0, e0, _ = running[k]
            new_end = min(e0, t + latency[0 if k in roots else 1])
            for c in tr.children[k]:
                dur[c] += (e0 - new_end) / len(tr.children[k])
            running[k] = [s0, new_end, True]
            heapq.heappush(heap, (new_end, k))
            asks += 1
        if not heap:
            return end
        t, k = heapq.heappop(heap)
        if k not in running or running[k][1] != t:
            continue  # the entry of a task whose end moved
        idle += 1
        s0, _, asked = running.pop(k)
        if asked:
            asks -= 1
        if trace is not None:
            trace.append((s0, t, k))
        inst = tr.instance[k]
        if inst not in decided:
            if tr.instance_sat[inst]:
                done = tr.sat[k]
            else:
                gating_left[inst] -= 0 if tr.falsify[k] else 1
                done = gating_left[inst] == 0
            if done:
                decided.add(inst)
                end = max(end, t)
        ready.extendleft(reversed(tr.children[k]))


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
    ap.add_argument("--on-demand", action="store_true",
                    help="task trees: also split on demand (the last column; see dynamic_tree_on_demand)")
    ap.add_argument("--ask-latency", default="0.07,0.01",
                    help="on demand: seconds from the request to the pieces (branch in progress + expansion), "
                         "for a root task and for a piece")
    ap.add_argument("--ask-min-age", type=float, default=0.01, help="on demand: a task is asked once it has run this long")
    ap.add_argument("--utilisation", type=float, default=0,
                    help="task trees: also print the share of busy workers per this many seconds (on demand if given)")
    ap.add_argument("--asks-per", type=int, default=4,
                    help="on demand: one open request per this many idle workers (as cli/mpi.cpp)")
    a = ap.parse_args()
    tree = None if a.resample else read_tree(a.times)
    times = read_times(a.times) if tree is None else tree.durations
    if a.resample:
        rng = random.Random(a.seed)
        times = [rng.choice(times) for _ in range(a.resample)]
    times = [t * a.scale for t in times]
    label = a.label or a.times
    total = sum(times) if not a.ideal_from else sum(read_times(a.ideal_from))
    if a.header:
        print("| run | items | total s | longest s | workers | ideal s | static s (x ideal) | dynamic s (x ideal) | lpt, or on demand for task trees, s (x ideal) |")
        print("|---|---|---|---|---|---|---|---|---|")
    for w in [int(x) for x in a.workers.split(",")]:
        ideal = total / w
        if tree is not None:
            dy = dynamic_tree(tree, w, a.startup, a.dispatch)
            od = "-"
            if a.on_demand:
                lat = tuple(float(x) for x in a.ask_latency.split(","))
                m = dynamic_tree(tree, w, a.startup, a.dispatch, True, (lat[0], lat[-1]), a.ask_min_age, a.asks_per)
                od = f"{m:.2f} ({m / ideal:.2f})"
            if a.utilisation > 0:
                spans = []
                dynamic_tree(tree, w, a.startup, a.dispatch, a.on_demand, (lat[0], lat[-1]) if a.on_demand else (0, 0),
                             a.ask_min_age, a.asks_per, spans)
                end = max(e for _, e, _ in spans)
                bins = [0.0] * (int(end / a.utilisation) + 1)
                for s0, e0, _ in spans:
                    for b in range(int(s0 / a.utilisation), int(e0 / a.utilisation) + 1):
                        lo, hi = b * a.utilisation, (b + 1) * a.utilisation
                        bins[b] += max(0.0, min(e0, hi) - max(s0, lo))
                print(f"{w} workers, busy share per {a.utilisation} s: " +
                      " ".join(f"{v / (a.utilisation * w):.2f}" for v in bins))
            print(f"| {label} | {len(times)} tasks | {total:.1f} (tasks {sum(times):.1f}) | {max(times):.2f} | {w} | "
                  f"{ideal:.2f} | - | {dy:.2f} ({dy / ideal:.2f}) | {od} |")
            continue
        st = static_blocks(times, w, a.startup)
        dy = dynamic(times, w, a.startup, a.dispatch, range(len(times)))
        lpt = dynamic(times, w, a.startup, a.dispatch, sorted(range(len(times)), key=lambda k: -times[k]))
        print(f"| {label} | {len(times)} | {total:.1f} | {max(times):.2f} | {w} | {ideal:.2f} | "
              f"{st:.2f} ({st / ideal:.2f}) | {dy:.2f} ({dy / ideal:.2f}) | {lpt:.2f} ({lpt / ideal:.2f}) |")


if __name__ == "__main__":
    main()
