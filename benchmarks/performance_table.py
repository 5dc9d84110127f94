"""Run the project's benchmarks and print one markdown table: figure, value, command.

Each benchmark script under benchmarks/ runs as a subprocess, with the quickest arguments that
still measure its figure; every row gives the exact command that measures it, runnable from the
repository root. A line above the table names the CPU (`lscpu`'s model name), the core count
and the commit, so a pasted table says where it was measured. Takes about 5 minutes on a quiet
2-core machine; ``--cifar10-shaped`` adds a ResNet epoch on 50,000 CIFAR-10-shaped images
(several minutes more).

    python benchmarks/performance_table.py > /tmp/performance.md

Progress goes to standard error; a benchmark that fails is a row saying so (with its last
error line), and the script exits 1 after printing the table.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SGD = "python benchmarks/bench_online_sgd.py --steps 2000 --autograd-steps 500"
NC = "python benchmarks/bench_nc.py --repeats 3"
RESNET_MNIST = "python benchmarks/bench_resnet_epoch.py --width 4 --threads 1"
RESNET_CIFAR = "python benchmarks/bench_resnet_epoch.py --synthetic-cifar10 --width 2 --threads 2"
BUDGET = "python benchmarks/paper_budget.py"
FRESH = "python benchmarks/bench_fresh_reference.py --tasks 150 --repeats 3"
PORTABLE = "python benchmarks/bench_portable.py --tasks 40 --repeats 3"
PLAN = "snakemake -n -q --configfile configs/paper.yaml"
# The compiled step as issue 27 found it (fd689ba) against the working tree, in one process.
VERSIONS = "python benchmarks/bench_step_versions.py fd689ba WORKTREE --rounds 12"

NUMBER = r"([-+0-9.,]+)"


def run(command: str) -> tuple[str, float]:
    """Run a command from the repository root with this interpreter; stdout and wall seconds."""
    print(f"running: {command}", file=sys.stderr, flush=True)
    words = command.split()
    if words[0] == "python":
        words[0] = sys.executable
    started = time.perf_counter()
    result = subprocess.run(words, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines() or ["(no output)"]
        last = next((x for x in reversed(lines) if "Error" in x), lines[-1])
        raise RuntimeError(f"exit {result.returncode}: {last}")
    return result.stdout, seconds


def find(pattern: str, text: str) -> tuple[str, ...]:
    match = re.search(pattern, text)
    if match is None:
        raise RuntimeError(f"output did not match {pattern!r}")
    return match.groups()


def online_sgd() -> list[tuple[str, str]]:
    out, _ = run(SGD)
    fast, slow, ratio = find(rf"fast {NUMBER} us/step, autograd {NUMBER} us/step, {NUMBER}x", out)
    (floor,) = find(rf"floor {NUMBER} us/step", out)
    (memory,) = find(rf"memory estimate {NUMBER} us/step", out)
    rows = [
        (
            "Batch-1 SGD step, paper's MLP, 1 thread: compiled loop vs plain autograd loop",
            f"{fast} µs vs {slow} µs ({ratio}×); arithmetic floor {floor} µs, "
            f"weight rows at L2 speed {memory} µs",
        )
    ]
    cut, calls, uncut = find(
        rf"every-1000-steps hook: {NUMBER} us/step \((\d+) calls\), uncut {NUMBER}", out
    )
    (call,) = find(rf"a call of 10 steps: {NUMBER} ms", out)
    rows.append(
        (
            "The same, cut into chunks by an every-1000-steps hook; a call of 10 steps",
            f"{cut} µs ({calls} calls) vs {uncut} µs uncut; {call} ms a call",
        )
    )
    per_option = re.findall(rf"intervention (\S+): {NUMBER} us/step", out)
    if per_option:
        slow_us = float(slow)
        rows.append(
            (
                "Each intervention and option on the compiled path (µs/step, × vs autograd)",
                ", ".join(f"`{name}` {us} ({slow_us / float(us):.0f}×)" for name, us in per_option),
            )
        )
    adam = re.findall(
        rf"torch\.optim\.Adam (\(fused=True\) )?{NUMBER} us/step; compiled adam {NUMBER}", out
    )
    if adam:
        parts = [
            f"{'fused ' if fused else ''}torch.optim.Adam {us} µs ({float(us) / float(ours):.1f}×)"
            for fused, us, ours in adam
        ]
        rows.append(
            (
                "Compiled Adam vs the plain loop with torch's Adam",
                f"{adam[0][2]} µs vs " + ", ".join(parts),
            )
        )
    batches = re.findall(rf"autograd batch (\d+): {NUMBER} us/sample", out)
    if batches:
        rows.append(
            (
                "Autograd loop at larger batches (µs per sample)",
                ", ".join(f"batch {b}: {us}" for b, us in batches),
            )
        )
    return [(figure, value, SGD) for figure, value in rows]


def step_versions() -> list[tuple[str, str, str]]:
    out, _ = run(VERSIONS)
    rows = re.findall(
        rf"version (\S+): best {NUMBER} us/step, median {NUMBER} us/step; "
        rf"speed-up over \S+: {NUMBER}x by the best, {NUMBER}x by the median",
        out,
    )
    if len(rows) != 2:
        raise RuntimeError(f"expected two versions in the output of {VERSIONS}")
    (old, old_best, old_median, _, _), (_, best, median, by_best, by_median) = rows
    return [
        (
            f"Compiled SGD step against the step at {old}, one process, in turns (4,000 steps "
            "a call)",
            f"{best} µs vs {old_best} µs by the best of 12 rounds ({by_best}×), {median} µs vs "
            f"{old_median} µs by the median ({by_median}×)",
            VERSIONS,
        )
    ]


def nc_engine() -> list[tuple[str, str, str]]:
    out, _ = run(NC)
    rows = []
    for shape in ("60000x100", "25000x512"):
        (engine,) = find(rf"engine {shape} [^:]*: {NUMBER} s", out)
        floor, ratio = find(rf"floor  {shape} [^:]*: {NUMBER} s; engine/floor = {NUMBER}", out)
        (loop,) = find(rf"per-sample outer-product loop {shape} [^:]*: {NUMBER} s", out)
        rows.append(
            (
                f"NC metrics (all of them), {shape} float32 features, C = 10",
                f"{engine} s = {ratio}× the floor ({floor} s); per-sample loop {loop} s",
                NC,
            )
        )
    rss, wall = find(rf"peak RSS {NUMBER} MiB \(target <= 400\), wall {NUMBER} s", out)
    rows.append(
        (
            "`python -m ncplasticity.nc` on a 512 MiB float32 snapshot",
            f"peak RSS {rss} MiB, {wall} s",
            NC,
        )
    )
    return rows


def resnet(command: str, what: str) -> list[tuple[str, str, str]]:
    # The benchmark prepares mnist5k where the workflow would (results/data/mnist5k.npz) when
    # it is missing, but does not create the folder.
    (REPO / "results" / "data").mkdir(parents=True, exist_ok=True)
    out, _ = run(command)
    (ours,) = find(rf"ours \(tensors on device\): +{NUMBER} images/s", out)
    (loader,) = find(rf"DataLoader \+ PIL transforms: +{NUMBER} images/s", out)
    (ratio,) = find(rf"speed-up: +{NUMBER}x", out)
    return [(what, f"{ours} img/s vs DataLoader + transforms {loader} ({ratio}×)", command)]


def paper_budget() -> list[tuple[str, str, str]]:
    out, _ = run(BUDGET)
    paper, reference = re.findall(r"  continual: (.*)", out)
    (warm,) = find(r"  warm_start: (.*)", out)
    (gpu,) = find(r"  warm_start GPU time: (.*)", out)
    (total,) = find(r"total disk of these studies: (.*)", out)
    return [
        ("`configs/paper.yaml`: continual jobs and disk (exact)", paper, BUDGET),
        ("`configs/paper.yaml`: warm-start jobs and disk (exact)", warm, BUDGET),
        ("`configs/paper.yaml`: warm-start GPU time", gpu, BUDGET),
        ("The open questions' reference study (full MNIST): jobs and disk", reference, BUDGET),
        ("Disk of both paper-scale studies", total, BUDGET),
    ]


def fresh_reference() -> list[tuple[str, str, str]]:
    out, _ = run(FRESH)
    (line,) = find(r"fresh_every 10: (.*)", out)
    return [("A continual run with the fresh reference every 10th task (pl_fresh)", line, FRESH)]


def portable() -> list[tuple[str, str, str]]:
    out, _ = run(PORTABLE)
    (line,) = find(r"portable: (.*)", out)
    return [
        ("A continual run under `portable: true`, against the host's code paths", line, PORTABLE)
    ]


def planning() -> list[tuple[str, str, str]]:
    _, seconds = run(PLAN)
    return [("Planning the paper sweep (dry run)", f"{seconds:.1f} s", PLAN)]


def machine() -> str:
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = re.search(r"Model name:\s*(.+)", lscpu).group(1).strip()
    except (OSError, AttributeError):
        model = "unknown CPU"
    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"Measured on {model}, {os.cpu_count()} CPUs (load average {load:.1f} at the start), "
        f"commit {commit or 'unknown'}, {time.strftime('%Y-%m-%d')}."
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cifar10-shaped",
        action="store_true",
        help="also time a ResNet epoch on 50,000 CIFAR-10-shaped images (minutes on 2 cores)",
    )
    args = parser.parse_args()
    header = machine()
    benchmarks = [
        (SGD, online_sgd),
        (VERSIONS, step_versions),
        (NC, nc_engine),
        (RESNET_MNIST, lambda: resnet(RESNET_MNIST, "ResNet-18 epoch, mnist5k, width 4, 1 thread")),
        (BUDGET, paper_budget),
        (FRESH, fresh_reference),
        (PORTABLE, portable),
        (PLAN, planning),
    ]
    if args.cifar10_shaped:
        what = "ResNet-18 epoch, 50,000 CIFAR-10-shaped random images, width 2, 2 threads"
        benchmarks.insert(3, (RESNET_CIFAR, lambda: resnet(RESNET_CIFAR, what)))
    rows, failed = [], False
    for command, measure in benchmarks:
        try:
            rows.extend(measure())
        except (RuntimeError, OSError) as error:
            failed = True
            rows.append(("(failed)", str(error).replace("|", "\\|"), command))
    print(header)
    print()
    print("| figure | value | command |")
    print("|---|---|---|")
    for figure, value, command in rows:
        print(f"| {figure} | {value} | `{command}` |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
