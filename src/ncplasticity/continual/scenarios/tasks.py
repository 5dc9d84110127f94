"""The rest of a task, whatever its scenario: its examples, epochs, epoch order, probe and the
classes its NC metrics are computed over."""

from __future__ import annotations

import numpy as np

from ncplasticity.continual.scenarios.base import (
    EPOCHS_STREAM,
    EXAMPLES_STREAM,
    ORDER_STREAM,
    PROBE_STREAM,
)


def epoch_order(seed: int, task: int, epoch: int, num_samples: int) -> np.ndarray:
    return np.random.default_rng([seed, ORDER_STREAM, task, epoch]).permutation(num_samples)


def probe_indices(labels: np.ndarray, size: int | None, seed: int, num_classes: int) -> np.ndarray:
    """Sorted indices of a seeded subset of ``size`` samples, stratified by class (largest-
    remainder allocation, at least one per present class); all samples when ``size`` is None
    or ≥ N."""
    labels = np.asarray(labels)
    if size is None or size >= len(labels):
        return np.arange(len(labels))
    if size < num_classes:
        raise ValueError(f"probe_size {size} is smaller than the {num_classes} classes")
    counts = np.bincount(labels, minlength=num_classes)
    quota = size * counts / counts.sum()
    take = np.maximum(np.floor(quota).astype(int), np.minimum(counts, 1))
    for c in np.argsort(-(quota - np.floor(quota)), kind="stable"):
        if take.sum() >= size:
            break
        take[c] += take[c] < counts[c]
    rng = np.random.default_rng([seed, PROBE_STREAM])
    chosen = [
        rng.choice(np.flatnonzero(labels == c), take[c], replace=False) for c in range(num_classes)
    ]
    return np.sort(np.concatenate(chosen))


def task_examples(settings: dict, seed: int, task: int, num_train: int) -> np.ndarray | None:
    """Indices of the task's training examples (a seeded subset when ``examples_per_task`` is
    below the training set's size), or None for all of them."""
    count = settings.get("examples_per_task")
    if count is None or count == num_train:
        return None
    if count > num_train:
        raise ValueError(
            f"continual.examples_per_task ({count}) exceeds the {num_train} training examples "
            f"of dataset {settings['dataset']!r}"
        )
    rng = np.random.default_rng([seed, EXAMPLES_STREAM, task])
    return np.sort(rng.choice(num_train, count, replace=False))


def steps_per_epoch(settings: dict, num_examples: int) -> int:
    """Optimiser steps of one epoch (the step counts of the log)."""
    return -(-num_examples // settings["optimizer"].get("batch_size", 1))


def _first_task_done(settings: dict, progress: dict) -> bool:
    first = settings["schedule"]["first_task"]
    if "nc1_threshold" not in first:
        return progress["epochs"] >= first["epochs"]
    nc1 = progress["nc1"]
    return progress["epochs"] >= first["max_epochs"] or (
        nc1 is not None and nc1 < first["nc1_threshold"]
    )


def task_epochs(settings: dict, seed: int, task: int) -> int:
    """Epochs of task ``task`` ≥ 1: ``schedule.epochs_per_task``, or when it is a list, an
    element drawn uniformly from it with ``default_rng([seed, EPOCHS_STREAM, task])`` (a
    stream of its own, independent of the task's data, order and probe)."""
    epochs = settings["schedule"].get("epochs_per_task", 1)
    if isinstance(epochs, int):
        return epochs
    choices = list(epochs)
    if not choices:
        raise ValueError("schedule.epochs_per_task: an empty list")
    rng = np.random.default_rng([seed, EPOCHS_STREAM, task])
    return int(choices[rng.integers(len(choices))])


def task_done(settings: dict, seed: int, task: int, progress: dict) -> bool:
    if task == 0:
        return _first_task_done(settings, progress)
    return progress["epochs"] >= task_epochs(settings, seed, task)


def present_classes(labels, weight, bias) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels renumbered 0..k−1 over the k classes present in ``labels``, those classes'
    classifier rows of ``weight`` and ``bias``): what the NC metrics of a task are computed on,
    so that a class the task lacks counts neither as a class nor as a classifier row (NC4 and
    the accuracy then take the argmax over the present classes' outputs). Unchanged when every
    class is present."""
    labels = np.asarray(labels)
    classes = np.unique(labels)
    if len(classes) == len(weight):
        return labels, weight, bias
    return np.searchsorted(classes, labels), weight[classes], bias[classes]
