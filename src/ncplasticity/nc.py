"""Neural-collapse metrics NC1-NC4 (DESIGN §5), in memory or streamed from the feature store.

Numerics. Everything is accumulated in float64 whatever the stored dtype, in two passes over
the samples: the first sums features per class (class means), the second centres every row on
its class mean, ``R = h - mu_y``, and adds ``R.T @ R`` to the within-class scatter. Features of
a collapsed network are tiny deviations on top of a large common offset; the one-pass
``E[hh^T] - mu mu^T`` (worse in float32) cancels that offset catastrophically. The same second
pass gives each class's sum of squared deviations (for CDNV), the classifier's prediction
``argmax(W h + b)`` (evaluated as written) and the nearest class mean, scored from R and the
centred class means (one small matrix product, no large offset to cancel); rows whose two best
scores lie within round-off are decided again from ``||h - mu_c||^2`` itself, so exact ties go
to the lowest index as the definitions say. Memory is O(D^2 + C D + block).

Sigma_B^+ is rank-aware: the eigenpairs of Sigma_B = M~^T M~ / C come from the SVD of the
C x D matrix M~ (exact and cheap, O(C^2 D)); only the at most C-1 largest with eigenvalue above
1e-10 of the largest are inverted, and tr(Sigma_W Sigma_B^+) = sum_k v_k^T Sigma_W v_k / l_k.
Inverting the round-off eigenvalues of the rank-deficient Sigma_B is what makes other
implementations return huge or negative NC1. Sigma_B counts as zero (nc1 and nc1_trace_ratio
NaN) when ||M~||_F <= 16 eps ||M||_F, i.e. the class means agree to float64 round-off.

``collapse_metrics`` (arrays in memory) and the command line (HDF5 chunks) share one code
path, :func:`streaming_collapse_metrics`. Command line::

    python -m ncplasticity.nc FEATURES.h5 -o METRICS.tsv

writes one row per snapshot, in order: snapshot, order, the coordinates, n, d, c, then
:data:`METRIC_KEYS`. A snapshot whose features hold NaN or inf (a diverged run) gets NaN
metrics and a warning in the log instead of failing the whole table.
"""

from __future__ import annotations

import argparse
import functools
import logging
import math
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from ncplasticity.features import FeatureReader, FeatureStoreError, coordinate_columns
from ncplasticity.tsv import write_tsv

# What collapse_metrics returns and the metrics command writes, in this order (DESIGN §5); their
# labels, directions and scales are entries of the catalogue, :mod:`ncplasticity.metrics`.
METRIC_KEYS = (
    "nc1",
    "nc1_trace_ratio",
    "cdnv",
    "nc2_equinorm_means",
    "nc2_equinorm_weights",
    "nc2_equiangular_means",
    "nc2_equiangular_weights",
    "nc2_etf_means",
    "nc2_etf_weights",
    "nc3",
    "nc3_wh",
    "nc4",
    "accuracy",
)

EIGENVALUE_CUTOFF = 1e-10  # relative to the largest eigenvalue of Sigma_B
# ||M~||_F / ||M||_F at or below this: the class means coincide up to float64 round-off.
ZERO_BETWEEN_CLASS = 16 * np.finfo(np.float64).eps

_BLOCK_ELEMENTS = 1 << 22  # in-memory block: 4M features (32 MB as float64)
_CONVERT_ONCE_BYTES = 1 << 30  # in-memory features up to this size are converted once

log = logging.getLogger(__name__)

Chunks = Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]]


class NonFiniteFeaturesError(ValueError):
    """Features contain NaN or inf."""


def collapse_metrics(features, labels, weight, bias) -> dict[str, float]:
    """NC metrics of features [N, D] with labels [N] in 0..C-1 and classifier weight [C, D],
    bias [C] (any real dtypes; computed in float64). Returns exactly :data:`METRIC_KEYS`."""
    features, labels = np.asarray(features), np.asarray(labels)
    if features.ndim != 2 or labels.shape != features.shape[:1]:
        raise ValueError(
            f"features must be [N, D] and labels [N]; got {features.shape} and {labels.shape}"
        )
    weight, bias = _classifier(weight, bias)
    if features.size * 8 <= _CONVERT_ONCE_BYTES and features.dtype.kind in "fiu":
        features = features.astype(np.float64, copy=False)  # once, for both passes
    # Blocks of ~4M features; the first pass's one-hot block is rows x C, so C bounds it too.
    rows = max(1, _BLOCK_ELEMENTS // max(features.shape[1], len(weight)))

    def blocks():
        for start in range(0, len(features), rows):
            yield features[start : start + rows], labels[start : start + rows]

    return streaming_collapse_metrics(blocks, weight, bias)


def streaming_collapse_metrics(chunks: Chunks, weight, bias) -> dict[str, float]:
    """NC metrics from ``chunks``, a zero-argument callable returning a fresh iterable of
    (features, labels) blocks; it is called twice (two passes)."""
    weight, bias = _classifier(weight, bias)
    counts, sums = _class_sums(chunks(), weight.shape)
    means = sums / counts[:, None]
    centred_means = means - means.mean(axis=0)
    scatter, sq_dev, disagree, correct = _within_class_pass(
        chunks(), means, centred_means, weight, bias
    )
    return _metrics(counts, means, centred_means, scatter, sq_dev, disagree, correct, weight)


def _classifier(weight, bias) -> tuple[np.ndarray, np.ndarray]:
    weight = np.asarray(weight, dtype=np.float64)
    bias = np.asarray(bias, dtype=np.float64)
    if weight.ndim != 2 or weight.shape[0] < 2 or bias.shape != weight.shape[:1]:
        raise ValueError(
            f"weight must be [C, D] with C >= 2 classes and bias [C]; got {weight.shape} and "
            f"{bias.shape}"
        )
    if not (np.isfinite(weight).all() and np.isfinite(bias).all()):
        raise ValueError("classifier weight or bias contains NaN or inf")
    return weight, bias


def _checked(features: np.ndarray, labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Validate one block against the classifier's (C, D); returns labels as intp."""
    c, d = shape
    if features.ndim != 2 or features.shape[1] != d or labels.shape != features.shape[:1]:
        raise ValueError(
            f"features must be [N, D={d}] (D = weight columns) with labels [N]; got a block of "
            f"{features.shape} with labels {labels.shape}"
        )
    if not (
        np.issubdtype(features.dtype, np.floating) or np.issubdtype(features.dtype, np.integer)
    ):
        raise ValueError(f"features must be real numbers, got dtype {features.dtype}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
    if len(labels) and (labels.min() < 0 or labels.max() >= c):
        bad = labels[(labels < 0) | (labels >= c)]
        raise ValueError(
            f"labels must lie in 0..{c - 1} (C = weight rows); found {bad[:5].tolist()}"
        )
    return labels.astype(np.intp, copy=False)


def _class_sums(blocks, shape) -> tuple[np.ndarray, np.ndarray]:
    """First pass: samples per class and float64 sums of features per class."""
    c, d = shape
    counts = np.zeros(c, dtype=np.int64)
    sums = np.zeros((c, d))
    start = 0
    for features, labels in blocks:
        labels = _checked(features, labels, shape)
        one_hot = np.zeros((len(labels), c))
        one_hot[np.arange(len(labels)), labels] = 1.0
        with np.errstate(invalid="ignore", over="ignore"):
            block_sums = one_hot.T @ features.astype(np.float64, copy=False)
        # NaN/inf anywhere in the block makes its float64 sums non-finite (finite features
        # cannot overflow them), so only a bad block is searched for the culprit.
        if not np.isfinite(block_sums).all():
            row = start + int(np.flatnonzero(~np.isfinite(features).all(axis=1))[0])
            raise NonFiniteFeaturesError(f"features contain NaN or inf (first at sample {row})")
        sums += block_sums
        counts += np.bincount(labels, minlength=c)
        start += len(labels)
    if start == 0:
        raise ValueError("no samples")
    empty = np.flatnonzero(counts == 0)
    if len(empty):
        raise ValueError(
            f"class {empty[0]} has no samples (classes without samples: {empty.tolist()}; C = {c} "
            "from the classifier's rows)"
        )
    return counts, sums


def _within_class_pass(blocks, means, centred_means, weight, bias):
    """Second pass: within-class scatter, per-class squared deviations, and the counts of
    samples where classifier and nearest class mean disagree, and where the classifier is right."""
    c, d = weight.shape
    # ||mu_y - mu_k||^2 for every (y, k), from direct differences.
    mean_distances = np.square(means[:, None, :] - means[None, :, :]).sum(axis=2)
    largest_mean = float(np.sqrt(np.square(centred_means).sum(axis=1).max()))
    scatter = np.zeros((d, d))
    sq_dev = np.zeros(c)
    disagree = correct = 0
    for features, labels in blocks:
        labels = _checked(features, labels, weight.shape)
        features = features.astype(np.float64, copy=False)
        centred = features - means[labels]
        scatter += centred.T @ centred
        row_sq = np.einsum("ij,ij->i", centred, centred)
        sq_dev += np.bincount(labels, row_sq, minlength=c)
        predicted = np.argmax(features @ weight.T + bias, axis=1)
        # ||h - mu_k||^2 - ||R||^2 = ||mu_y - mu_k||^2 - 2 R.(mu~_k - mu~_y): small terms only
        # (R and the centred means), so no large offset cancels. Rows whose best two scores lie
        # within round-off of each other are decided again from the distances themselves, so
        # that exact ties go to the lowest index as the definition says.
        projected = centred @ centred_means.T
        rows = np.arange(len(labels))
        scores = mean_distances[labels] - 2.0 * (projected - projected[rows, labels][:, None])
        nearest = np.argmin(scores, axis=1)
        best = scores[rows, nearest]
        scale = row_sq + 2.0 * np.sqrt(row_sq) * largest_mean + mean_distances[labels].max(axis=1)
        close = np.count_nonzero(scores <= (best + 1e-9 * scale)[:, None], axis=1) > 1
        if close.any():
            offsets = features[close][:, None, :] - means[None, :, :]
            nearest[close] = np.argmin(np.square(offsets).sum(axis=2), axis=1)
        disagree += int(np.count_nonzero(predicted != nearest))
        correct += int(np.count_nonzero(predicted == labels))
    return scatter, sq_dev, disagree, correct


def _etf_distance(gram: np.ndarray) -> float:
    """||G/||G||_F - E||_F for a C x C matrix G, with E = (I - 11^T/C)/sqrt(C-1) the unit-norm
    Gram matrix of a simplex ETF."""
    c = len(gram)
    etf = (np.eye(c) - 1.0 / c) / math.sqrt(c - 1)
    return float(np.linalg.norm(gram / np.linalg.norm(gram) - etf))


def _equinorm(rows: np.ndarray) -> float:
    norms = np.linalg.norm(rows, axis=1)
    return float(norms.std() / norms.mean())


def _equiangular(rows: np.ndarray) -> float:
    c = len(rows)
    norms = np.linalg.norm(rows, axis=1)
    cosines = (rows @ rows.T) / np.outer(norms, norms)
    off_diagonal = ~np.eye(c, dtype=bool)
    return float(np.abs(cosines[off_diagonal] + 1.0 / (c - 1)).mean())


def _metrics(counts, means, centred_means, scatter, sq_dev, disagree, correct, weight):
    c = len(counts)
    n = int(counts.sum())
    sigma_w = scatter / n
    _, singular, right = np.linalg.svd(centred_means, full_matrices=False)
    eigenvalues = singular**2 / c  # of Sigma_B, largest first
    with np.errstate(divide="ignore", invalid="ignore"):
        if singular[0] <= ZERO_BETWEEN_CLASS * np.linalg.norm(means):
            nc1 = trace_ratio = math.nan
        else:
            keep = eigenvalues[: c - 1] > EIGENVALUE_CUTOFF * eigenvalues[0]
            vectors, kept = right[: c - 1][keep], eigenvalues[: c - 1][keep]
            nc1 = float(np.sum((vectors @ sigma_w) * vectors, axis=1) @ (1.0 / kept) / c)
            trace_ratio = float(np.trace(sigma_w) / eigenvalues.sum())

        mean_gram = centred_means @ centred_means.T
        # Differences formed directly: the expanded |a|^2 + |b|^2 - 2ab cancels for close means.
        distances = np.square(means[:, None, :] - means[None, :, :]).sum(axis=2)
        variances = sq_dev / counts
        first, second = np.triu_indices(c, 1)
        cdnv = float(
            np.mean((variances[first] + variances[second]) / (2.0 * distances[first, second]))
        )
        wh = weight @ centred_means.T
        nc3 = np.linalg.norm(
            weight / np.linalg.norm(weight) - centred_means / np.linalg.norm(centred_means)
        )
        return {
            "nc1": nc1,
            "nc1_trace_ratio": trace_ratio,
            "cdnv": cdnv,
            "nc2_equinorm_means": _equinorm(centred_means),
            "nc2_equinorm_weights": _equinorm(weight),
            "nc2_equiangular_means": _equiangular(centred_means),
            "nc2_equiangular_weights": _equiangular(weight),
            "nc2_etf_means": _etf_distance(mean_gram),
            "nc2_etf_weights": _etf_distance(weight @ weight.T),
            "nc3": float(nc3**2),
            "nc3_wh": _etf_distance(wh),
            "nc4": disagree / n,
            "accuracy": correct / n,
        }


def file_metrics(path: str | Path) -> tuple[list[str], list[dict]]:
    """(columns, rows) of the metrics table of a feature store: one row per snapshot in order."""
    with FeatureReader(path) as reader:
        infos = reader.snapshots()
        rows = []
        for info in infos:
            started = time.perf_counter()
            weight, bias = reader.read_classifier(info.name)
            try:
                chunks = functools.partial(reader.iter_chunks, info.name)
                if info.n <= reader.block_rows(info.name):
                    # One block (every continual probe): read and converted to float64 once
                    # for both passes, the same values either way.
                    blocks = [(f.astype(np.float64), y) for f, y in chunks()]
                    chunks = functools.partial(iter, blocks)
                metrics = streaming_collapse_metrics(chunks, weight, bias)
            except NonFiniteFeaturesError as exc:
                log.warning("%s: snapshot %s: %s; its metrics are NaN", path, info.name, exc)
                metrics = dict.fromkeys(METRIC_KEYS, math.nan)
            except FeatureStoreError:
                raise
            except ValueError as exc:
                raise ValueError(f"{path}: snapshot {info.name!r}: {exc}") from exc
            log.info(
                "%s (n=%d, d=%d, c=%d): nc1=%.6g accuracy=%.4f in %.2f s",
                info.name, info.n, info.d, info.c, metrics["nc1"], metrics["accuracy"],
                time.perf_counter() - started,
            )  # fmt: skip
            rows.append(
                {"snapshot": info.name, "order": info.order, **info.coords}
                | {"n": info.n, "d": info.d, "c": info.c, **metrics}
            )
    columns = ["snapshot", "order", *coordinate_columns(infos), "n", "d", "c", *METRIC_KEYS]
    return columns, rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ncplasticity.nc",
        description="Neural-collapse metrics (NC1-NC4) of every snapshot in a feature store, "
        "streamed chunk by chunk, as a TSV table.",
    )
    parser.add_argument("features", type=Path, help="HDF5 feature store (one run)")
    parser.add_argument(
        "-o", "--output", required=True, help="metrics TSV to write; - for standard output"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s"
    )
    try:
        columns, rows = file_metrics(args.features)
    except (OSError, ValueError) as exc:
        parser.exit(1, f"error: {exc}\n")
    write_tsv(args.output, rows, columns)
    log.info("wrote %d snapshots to %s", len(rows), "stdout" if args.output == "-" else args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
