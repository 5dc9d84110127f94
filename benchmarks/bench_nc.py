"""Speed and memory of the NC engine (issue 2, item 8). Prints one line per figure.

For 60k x 100 (Permuted MNIST) and 25k x 512 (ResNet-18) float32 features with C = 10:
the engine (``collapse_metrics``, all metrics), the unavoidable floor (float64 conversion,
class means, one R^T R of the centred features), and a per-sample outer-product loop like the
paper's code (timed on a subset and extrapolated). Then the streaming command line's peak RSS
and wall time on a 512 MiB float32 snapshot. Targets: engine <= 2x floor; CLI <= 400 MB.

    python benchmarks/bench_nc.py [--repeats 5] [--tmpdir DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ncplasticity.features import FeatureWriter
from ncplasticity.nc import collapse_metrics

C = 10
SHAPES = [(60_000, 100, "Permuted MNIST"), (25_000, 512, "ResNet-18")]
LOOP_SAMPLES = 2_000
CLI_SHAPE = (262_144, 512)  # 512 MiB of float32


def synthetic(n: int, d: int, seed: int = 0):
    """ReLU features with class structure, and a classifier, in float32."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, C, n)
    means = rng.normal(size=(C, d)).astype(np.float32)
    features = np.empty((n, d), dtype=np.float32)
    for start in range(0, n, 8192):  # in blocks: no float64 copy of the whole array
        block = labels[start : start + 8192]
        noise = rng.standard_normal((len(block), d), dtype=np.float32)
        features[start : start + 8192] = np.maximum(means[block] + noise, 0)
    return features, labels, rng.normal(size=(C, d)), rng.normal(size=C)


def best_time(repeats: int, function, *args) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function(*args)
        times.append(time.perf_counter() - started)
    return min(times)


def floor(features, labels):
    """The work no exact method avoids: float64 copy, class means, one R^T R."""
    x = features.astype(np.float64)
    one_hot = np.zeros((len(labels), C))
    one_hot[np.arange(len(labels)), labels] = 1.0
    means = (one_hot.T @ x) / one_hot.sum(axis=0)[:, None]
    centred = x - means[labels]
    return centred.T @ centred


def per_sample_loop(features, labels, count):
    """Within-class scatter one sample at a time, as the paper's code does."""
    means = np.stack([features[labels == c].mean(axis=0, dtype=np.float64) for c in range(C)])
    scatter = np.zeros((features.shape[1],) * 2)
    for h, y in zip(features[:count], labels[:count], strict=True):
        deviation = h - means[y]
        scatter += np.outer(deviation, deviation)
    return scatter


def bench_engine(repeats: int) -> None:
    for n, d, what in SHAPES:
        features, labels, weight, bias = synthetic(n, d)
        engine = best_time(repeats, collapse_metrics, features, labels, weight, bias)
        minimum = best_time(repeats, floor, features, labels)
        loop = best_time(1, per_sample_loop, features, labels, LOOP_SAMPLES)
        shape = f"{n}x{d} C={C} ({what})"
        print(f"engine {shape}: {engine:.3f} s (best of {repeats})")
        print(
            f"floor  {shape}: {minimum:.3f} s; engine/floor = {engine / minimum:.2f} (target <= 2)"
        )
        print(
            f"per-sample outer-product loop {shape}: {loop * n / LOOP_SAMPLES:.1f} s "
            f"(extrapolated from {LOOP_SAMPLES} samples; {loop * n / LOOP_SAMPLES / engine:.0f}x "
            "the engine)"
        )


def bench_cli(tmpdir: str | None) -> None:
    n, d = CLI_SHAPE
    with tempfile.TemporaryDirectory(dir=tmpdir) as tmp:
        path, output = Path(tmp) / "big.h5", Path(tmp) / "big.tsv"
        features, labels, weight, bias = synthetic(n, d, seed=1)
        started = time.perf_counter()
        with FeatureWriter(
            path, experiment="bench", run_id="big", seed=1, config={}, feature_dtype="float32"
        ) as writer:
            writer.add_snapshot("epoch0000", features, labels, weight, bias, epoch=0)
        written = time.perf_counter() - started
        del features
        print(
            f"write {n}x{d} float32 ({n * d * 4 / 2**20:.0f} MiB) snapshot: {written:.1f} s, "
            f"file {path.stat().st_size / 2**20:.0f} MiB (gzip 1)"
        )
        # ru_maxrss of a child counts the parent's pages it was forked from (this process holds
        # the 512 MiB array), so a small intermediate process spawns the CLI and reports.
        measure = (
            "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
        )
        command = [sys.executable, "-m", "ncplasticity.nc", str(path), "-o", str(output)]
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-c", measure, *command], check=True, stdout=subprocess.PIPE, text=True
        )
        wall = time.perf_counter() - started
        peak_mb = int(result.stdout.split()[-1]) / 1024  # KiB on Linux
        print(
            f"CLI on the {n * d * 4 / 2**20:.0f} MiB float32 snapshot: peak RSS {peak_mb:.0f} MiB "
            f"(target <= 400), wall {wall:.1f} s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timings are the best of these")
    parser.add_argument("--tmpdir", help="where to write the 512 MiB test file (default: system)")
    args = parser.parse_args()
    bench_engine(args.repeats)
    bench_cli(args.tmpdir)


if __name__ == "__main__":
    main()
