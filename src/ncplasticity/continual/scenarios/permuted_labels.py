"""``permuted_labels``: the same inputs, the class labels permuted per task."""

from __future__ import annotations

import numpy as np

from ncplasticity.continual.scenarios.base import SCENARIOS, Scenario, Task, labels_of, task_rng
from ncplasticity.data import NUM_CLASSES


@SCENARIOS.register
class PermutedLabels(Scenario):
    """Inputs unchanged; every task relabels the classes by a random permutation of the class
    labels (the same permutation for its training and test examples). The first task is
    permuted too."""

    name = "permuted_labels"
    shift = "abrupt label shift (classes relabelled)"

    def task(self, seed, task, num_pixels, y_train, y_test, num_classes=NUM_CLASSES) -> Task:
        relabel = task_rng(seed, task).permutation(num_classes)
        return Task(np.arange(num_pixels), relabel[labels_of(y_train)], relabel[labels_of(y_test)])
