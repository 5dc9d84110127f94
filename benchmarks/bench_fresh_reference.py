"""What the fresh reference (``schedule.fresh_every``, pl_fresh) adds to a continual run's time.

Trains the same run (config.yaml's continual settings, plain Permuted MNIST on mnist5k, 4,000
digits a task, one job thread) with ``fresh_every`` 0 and 10, alternating, and prints the
median wall time of each and the increase, as the line

    fresh_every 10: +X % run time (A s -> B s, N tasks, median of R runs each)

The issue's target is at most +15 %. Run it on a quiet machine: the two settings alternate, so
load affects both alike, but not evenly.

Usage: python benchmarks/bench_fresh_reference.py [--tasks 40] [--repeats 3]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path

import yaml

from ncplasticity.continual.job import train_run
from ncplasticity.data import prepare_dataset

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    base = yaml.safe_load((REPO / "config.yaml").read_text())["continual"]
    for key in ("seeds", "analysis_tasks", "threads", "variants"):
        base.pop(key)
    base["num_tasks"] = args.tasks
    times: dict[int, list[float]] = {0: [], 10: []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        dataset = tmp / "mnist5k.npz"
        prepare_dataset("mnist5k", tmp / "root", dataset)
        for repeat in range(args.repeats + 1):  # the first round compiles and is not counted
            for every in times:
                settings = copy.deepcopy(base)
                settings["schedule"]["fresh_every"] = every
                out = tmp / f"r{repeat}_f{every}"
                started = time.perf_counter()
                train_run(settings, 1, "b", dataset, out / "f.h5", out / "l.tsv", out / "partial")
                if repeat:
                    times[every].append(time.perf_counter() - started)
    off, on = statistics.median(times[0]), statistics.median(times[10])
    print(
        f"fresh_every 10: {100 * (on / off - 1):+.1f} % run time ({off:.1f} s -> {on:.1f} s, "
        f"{args.tasks} tasks, median of {args.repeats} runs each)"
    )


if __name__ == "__main__":
    main()
