"""``permuted_pixels``: the paper's Permuted MNIST, or a fraction of its pixels permuted."""

from __future__ import annotations

import numpy as np

from ncplasticity.continual.scenarios.base import SCENARIOS, Scenario, Task, task_rng
from ncplasticity.data import NUM_CLASSES


@SCENARIOS.register
class PermutedPixels(Scenario):
    """round(fraction·D) pixel positions, chosen at random per task, are permuted among
    themselves; the others keep their place. fraction 1 is the paper's Permuted MNIST (a full
    random permutation per task), fraction 0 repeats the same task."""

    name = "permuted_pixels"
    shift = "abrupt input shift (pixels permuted)"
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
