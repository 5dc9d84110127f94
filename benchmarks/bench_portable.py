"""What ``portable: true`` costs: the same continual run with and without the pinned
environment (ncplasticity.portable), each in a fresh process (the environment is read when
numba, torch and numpy load).

Trains config.yaml's continual settings (plain Permuted MNIST on mnist5k, 4,000 digits a task,
one job thread) for ``--tasks`` tasks, alternating the two settings, and prints the median
wall time of each and the increase, as the line

    portable: +X % run time (A s -> B s, N tasks, median of R runs each)

The first round of each compiles numba's code for its target and is not counted.

Usage: python benchmarks/bench_portable.py [--tasks 40] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from ncplasticity.data import prepare_dataset
from ncplasticity.portable import ENVIRONMENT

REPO = Path(__file__).resolve().parents[1]

# The child: one run, its wall time on stdout.
CHILD = """
import sys, time, yaml
from ncplasticity.continual.job import train_run
settings, dataset, out = yaml.safe_load(sys.argv[1]), sys.argv[2], sys.argv[3]
started = time.perf_counter()
train_run(settings, 1, "b", dataset, out + "/f.h5", out + "/l.tsv", out + "/partial")
print(time.perf_counter() - started)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    settings = yaml.safe_load((REPO / "config.yaml").read_text())["continual"]
    for key in ("seeds", "analysis_tasks", "threads", "variants"):
        settings.pop(key)
    settings["num_tasks"] = args.tasks
    plain_env = {k: v for k, v in os.environ.items() if k not in ENVIRONMENT}
    environments = {"host": plain_env, "portable": plain_env | ENVIRONMENT}
    times: dict[str, list[float]] = {name: [] for name in environments}
    with tempfile.TemporaryDirectory() as tmp:
        dataset = Path(tmp) / "mnist5k.npz"
        prepare_dataset("mnist5k", Path(tmp) / "root", dataset)
        for repeat in range(args.repeats + 1):
            for name, env in environments.items():
                out = Path(tmp) / f"r{repeat}_{name}"
                out.mkdir()
                seconds = subprocess.run(
                    [sys.executable, "-c", CHILD, yaml.safe_dump(settings), str(dataset), str(out)],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout.split()[-1]
                if repeat:
                    times[name].append(float(seconds))
    host, portable = statistics.median(times["host"]), statistics.median(times["portable"])
    print(
        f"portable: {100 * (portable / host - 1):+.1f} % run time ({host:.1f} s -> "
        f"{portable:.1f} s, {args.tasks} tasks, median of {args.repeats} runs each)"
    )


if __name__ == "__main__":
    main()
