"""``class_pairs``: a binary task between two digits per task, a new head each (Dohare et al.)."""

from __future__ import annotations

import numpy as np

from ncplasticity.continual.scenarios.base import (
    SCENARIOS,
    Scenario,
    Task,
    labels_of,
    of_classes,
    task_rng,
)
from ncplasticity.data import NUM_CLASSES


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
    shift = "abrupt class shift, new binary head per task"
    confound = "2 classes a task, a new head per task, and the pair's difficulty varies"
    new_head = True

    def num_outputs(self, num_classes: int) -> int:
        return 2

    def task(self, seed, task, num_pixels, y_train, y_test, num_classes=NUM_CLASSES) -> Task:
        pair = self.pair(seed, task, num_classes)
        y_train, y_test = labels_of(y_train), labels_of(y_test)
        train_index, test_index = of_classes(y_train, y_test, pair)
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
