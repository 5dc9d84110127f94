"""The continual scenario registry: what each task of a run is (DESIGN §3b).

A scenario turns (run seed, task index, the task's examples) into a :class:`Task`: the input
permutation, which of the given training and test examples the task uses, and their labels.
Each task's randomness comes from ``np.random.default_rng([seed, TASK_STREAM, task])``
(:func:`task_rng`). A scenario may also say how many output units the network has
(:meth:`Scenario.num_outputs`) and whether the output layer is zeroed at every task start
(``new_head``). Adding a scenario is one registered class plus its test.

Scenarios: ``permuted_pixels`` (the paper's Permuted MNIST, or a fraction of it),
``permuted_labels``, ``random_labels`` and ``class_pairs``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ncplasticity.data import NUM_CLASSES
from ncplasticity.interventions import Registry

SCENARIOS = Registry("continual scenario")
# The stream of every task's draw (the permutation of the paper's protocol).
TASK_STREAM = 0


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
        self.params = params

    def num_outputs(self, num_classes: int) -> int:
        """Output units of the network for a dataset of ``num_classes`` classes."""
        return num_classes

    def task(
        self, seed: int, task: int, num_pixels: int, y_train, y_test, num_classes=NUM_CLASSES
    ) -> Task:
        raise NotImplementedError


def task_rng(seed: int, task: int) -> np.random.Generator:
    return np.random.default_rng([seed, TASK_STREAM, task])


def _labels(y) -> np.ndarray:
    return np.asarray(y, dtype=np.int64)


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
        train_index = np.flatnonzero(np.isin(y_train, pair))
        test_index = np.flatnonzero(np.isin(y_test, pair))
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
