"""``random_labels``: memorisation, a random label per example and task."""

from __future__ import annotations

import numpy as np

from ncplasticity.continual.scenarios.base import SCENARIOS, Scenario, Task, task_rng
from ncplasticity.data import NUM_CLASSES


@SCENARIOS.register
class RandomLabels(Scenario):
    """Inputs unchanged; every task gives each of its training examples a uniformly random
    label in 0..C−1, drawn anew per task (memorisation, as in Lyle et al. 2023 and Kumar et al.
    2023). Its test examples get random labels the same way, so test accuracy is at chance
    (≈ 1/C) by construction: the task's outcome is online (training) accuracy."""

    name = "random_labels"
    shift = "memorisation (random labels)"
    confound = "online accuracy is at chance by construction (labels are random)"

    def task(self, seed, task, num_pixels, y_train, y_test, num_classes=NUM_CLASSES) -> Task:
        rng = task_rng(seed, task)
        return Task(
            np.arange(num_pixels),
            rng.integers(0, num_classes, len(y_train), dtype=np.int64),
            rng.integers(0, num_classes, len(y_test), dtype=np.int64),
        )
