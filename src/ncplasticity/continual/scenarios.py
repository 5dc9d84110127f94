"""What each task of a continual run is (DESIGN §3b): the scenario registry, and the task's
examples, epochs, epoch order, probe and classes.

A scenario turns (run seed, task index, the task's examples) into a :class:`Task`: the input
permutation, which of the given training and test examples the task uses, and their labels.
A scenario may also say how many output units the network has (:meth:`Scenario.num_outputs`)
and whether the output layer is zeroed at every task start (``new_head``). Adding a scenario
is one registered class plus its test.

Scenarios: ``permuted_pixels`` (the paper's Permuted MNIST, or a fraction of it),
``permuted_labels``, ``random_labels``, ``class_pairs``, ``class_incremental`` and
``recurring`` (any scenario with tasks, met again every ``period`` tasks).

Every draw is seeded by (seed, stream, task, ...), each kind of draw a stream of its own
(``np.random.default_rng([seed, stream, ...])``), so a task is the same whenever it is rebuilt
(a resumed run included) and its draws are independent of one another.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ncplasticity.data import NUM_CLASSES
from ncplasticity.registry import Registry

SCENARIOS = Registry("continual", kind="scenario")
# The random streams: the scenario's draw of a task (the permutation of the paper's protocol),
# each epoch's order, the probe, the fresh models of interventions (job.py), the task's
# examples and its number of epochs.
TASK_STREAM, ORDER_STREAM, PROBE_STREAM, INIT_STREAM, EXAMPLES_STREAM, EPOCHS_STREAM = range(6)


@dataclass(frozen=True)
class Task:
    """One task. ``train_index`` / ``test_index`` select the task's examples among the training
    and test examples the scenario was given (sorted indices; None: all of them, in order);
    ``y_train`` / ``y_test`` are the labels of exactly the selected examples."""

    permutation: np.ndarray  # input pixel order of the task: x[:, permutation]
    y_train: np.ndarray  # labels of the task's training examples
    y_test: np.ndarray  # labels of the task's test examples
    train_index: np.ndarray | None = None
    test_index: np.ndarray | None = None

    @property
    def classes(self) -> np.ndarray:
        """The classes present among the task's training labels, sorted: the classes its probe
        is stratified over and its NC metrics are computed over."""
        return np.unique(self.y_train)


class Scenario:
    name: ClassVar[str]
    parameters: ClassVar[dict] = {}
    required: ClassVar[tuple[str, ...]] = ()
    # Whether the network's output layer (weight and bias) is set to zero at the start of every
    # task, the first included (a new head per task, as Dohare et al.'s Continual ImageNet).
    new_head: ClassVar[bool] = False

    def __init__(self, **params):
        # Schema defaults fill what the caller left out (a validated config has them all).
        defaults = {k: v["default"] for k, v in self.parameters.items() if "default" in v}
        self.params = {**defaults, **params}

    def num_outputs(self, num_classes: int) -> int:
        """Output units of the network for a dataset of ``num_classes`` classes."""
        return num_classes

    def problems(self, num_classes: int) -> list[str]:
        """What is wrong with the parameters for a dataset of ``num_classes`` classes (the
        study stops before any job, naming the variant and the key)."""
        return []

    def data_task(self, task: int) -> int:
        """The task whose examples and draws task ``task`` uses (itself, unless tasks recur)."""
        return task

    def task(
        self, seed: int, task: int, num_pixels: int, y_train, y_test, num_classes=NUM_CLASSES
    ) -> Task:
        raise NotImplementedError


def task_rng(seed: int, task: int) -> np.random.Generator:
    return np.random.default_rng([seed, TASK_STREAM, task])


def _labels(y) -> np.ndarray:
    return np.asarray(y, dtype=np.int64)


def _of_classes(y_train, y_test, classes) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the training and of the test examples whose label is one of ``classes``."""
    return np.flatnonzero(np.isin(y_train, classes)), np.flatnonzero(np.isin(y_test, classes))


@SCENARIOS.register
class PermutedPixels(Scenario):
    """round(fraction·D) pixel positions, chosen at random per task, are permuted among
    themselves; the others keep their place. fraction 1 is the paper's Permuted MNIST (a full
    random permutation per task), fraction 0 repeats the same task."""

    name = "permuted_pixels"
    parameters = {"fraction": {"type": "number", "minimum": 0, "maximum": 1, "default": 1.0}}

    def task(self, seed, task, num_pixels, y_train, y_test, num_classes=NUM_CLASSES) -> Task:
        rng = task_rng(seed, task)
        fraction = self.params["fraction"]
        if fraction == 1:
            permutation = rng.permutation(num_pixels)
        else:
            permutation = np.arange(num_pixels)
            moved = rng.choice(num_pixels, int(round(fraction * num_pixels)), replace=False)
            permutation[moved] = moved[rng.permutation(len(moved))]
        return Task(permutation, y_train, y_test)


@SCENARIOS.register
class PermutedLabels(Scenario):
    """Inputs unchanged; every task relabels the classes by a random permutation of the class
    labels (the same permutation for its training and test examples). The first task is
    permuted too."""

    name = "permuted_labels"

    def task(self, seed, task, num_pixels, y_train, y_test, num_classes=NUM_CLASSES) -> Task:
        relabel = task_rng(seed, task).permutation(num_classes)
        return Task(np.arange(num_pixels), relabel[_labels(y_train)], relabel[_labels(y_test)])


@SCENARIOS.register
class RandomLabels(Scenario):
    """Inputs unchanged; every task gives each of its training examples a uniformly random
    label in 0..C−1, drawn anew per task (memorisation, as in Lyle et al. 2023 and Kumar et al.
    2023). Its test examples get random labels the same way, so test accuracy is at chance
    (≈ 1/C) by construction: the task's outcome is online (training) accuracy."""

    name = "random_labels"

    def task(self, seed, task, num_pixels, y_train, y_test, num_classes=NUM_CLASSES) -> Task:
        rng = task_rng(seed, task)
        return Task(
            np.arange(num_pixels),
            rng.integers(0, num_classes, len(y_train), dtype=np.int64),
            rng.integers(0, num_classes, len(y_test), dtype=np.int64),
        )


@SCENARIOS.register
class ClassPairs(Scenario):
    """A binary task between a random pair of digits per task: Dohare et al.'s Continual
    ImageNet protocol (``lop/imagenet``), on digits. Inputs unchanged; the task keeps only the
    examples of its two digits (training and test, among the examples it is given, so with
    ``examples_per_task`` about 2/C of them) and labels them 0 (the first digit drawn) and 1
    (the second). Pairs are drawn independently per task, so a pair may recur.

    Output layer, as in Dohare et al.'s code (``ConvNet(num_classes=2)`` and ``new_heads``:
    the last layer's weight and bias multiplied by 0 at the start of every task): the network
    has 2 output units, zeroed at the start of every task, the first included. The optimiser's
    state (e.g. Adam's moments) is kept across tasks, as theirs (SGD with momentum) is."""

    name = "class_pairs"
    new_head = True

    def num_outputs(self, num_classes: int) -> int:
        return 2

    def task(self, seed, task, num_pixels, y_train, y_test, num_classes=NUM_CLASSES) -> Task:
        pair = self.pair(seed, task, num_classes)
        y_train, y_test = _labels(y_train), _labels(y_test)
        train_index, test_index = _of_classes(y_train, y_test, pair)
        return Task(
            np.arange(num_pixels),
            (y_train[train_index] == pair[1]).astype(np.int64),
            (y_test[test_index] == pair[1]).astype(np.int64),
            train_index,
            test_index,
        )

    @staticmethod
    def pair(seed: int, task: int, num_classes: int = NUM_CLASSES) -> np.ndarray:
        """The task's two digits (label 0, label 1)."""
        return task_rng(seed, task).choice(num_classes, 2, replace=False)


@SCENARIOS.register
class ClassIncremental(Scenario):
    """The classes arrive ``classes_per_task`` at a time, in an order drawn once per run: task
    t trains on the examples of every class seen so far (the first (t + 1)·k of the order, all
    of them once every class has arrived), with one output layer over all classes; its test
    examples are those of the same classes. Inputs unchanged. The paper's next check 1 (Dohare
    et al.'s incremental CIFAR-100, on digits); the NC metrics of a task are over its classes."""

    name = "class_incremental"
    parameters = {"classes_per_task": {"type": "integer", "minimum": 1, "default": 2}}

    def problems(self, num_classes: int) -> list[str]:
        k = self.params["classes_per_task"]
        if k > num_classes:
            return [f"scenario.classes_per_task: {k} exceeds the {num_classes} classes"]
        if num_classes % k:
            return [f"scenario.classes_per_task: {k} does not divide the {num_classes} classes"]
        return []

    def classes_seen(self, seed: int, task: int, num_classes: int = NUM_CLASSES) -> np.ndarray:
        """The classes task ``task`` trains on, in their order of arrival."""
        order = np.random.default_rng([seed, TASK_STREAM]).permutation(num_classes)
        return order[: min(num_classes, (task + 1) * self.params["classes_per_task"])]

    def task(self, seed, task, num_pixels, y_train, y_test, num_classes=NUM_CLASSES) -> Task:
        y_train, y_test = _labels(y_train), _labels(y_test)
        seen = self.classes_seen(seed, task, num_classes)
        train_index, test_index = _of_classes(y_train, y_test, seen)
        return Task(
            np.arange(num_pixels), y_train[train_index], y_test[test_index], train_index, test_index
        )


@SCENARIOS.register
class Recurring(Scenario):
    """Any scenario with tasks, met again: task t is task t mod ``period`` of the wrapped
    ``scenario`` (its examples, permutation and labels), so a network meets each task again
    every ``period`` tasks and forgetting separates from plasticity."""

    name = "recurring"
    parameters = {
        "period": {"type": "integer", "minimum": 1},
        "scenario": {"type": "object", "required": ["name"]},
    }
    required = ("period", "scenario")

    def __init__(self, **params):
        super().__init__(**params)
        inner = self.params["scenario"]
        if inner.get("name") == self.name:
            raise ValueError("recurring: the wrapped scenario cannot be recurring itself")
        self.inner = SCENARIOS.build([inner])[0]
        self.new_head = self.inner.new_head

    def num_outputs(self, num_classes: int) -> int:
        return self.inner.num_outputs(num_classes)

    def problems(self, num_classes: int) -> list[str]:
        import jsonschema

        inner = self.params["scenario"]
        invalid = jsonschema.Draft7Validator(SCENARIOS.item_schema()).iter_errors(inner)
        found = [f"scenario.scenario: {error.message}" for error in invalid]
        return found or [f"scenario.{p}" for p in self.inner.problems(num_classes)]

    def data_task(self, task: int) -> int:
        return task % self.params["period"]

    def task(self, seed, task, num_pixels, y_train, y_test, num_classes=NUM_CLASSES) -> Task:
        return self.inner.task(seed, self.data_task(task), num_pixels, y_train, y_test, num_classes)


# The rest of a task, whatever its scenario: its examples, epochs, epoch order, probe and the
# classes its NC metrics are computed over.


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
