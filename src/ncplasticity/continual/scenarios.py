"""The continual scenario registry: what each task of a run is (DESIGN §3b).

A scenario turns (run seed, task index, dataset) into a :class:`Task`: the input permutation
and the labels of the task's training and test examples. Each task's randomness comes from
``np.random.default_rng([seed, TASK_STREAM, task])``. Adding a scenario is one registered class
plus its test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ncplasticity.interventions import Registry

SCENARIOS = Registry("continual scenario")
# The stream of every task's draw (the permutation of the paper's protocol).
TASK_STREAM = 0


@dataclass(frozen=True)
class Task:
    permutation: np.ndarray  # input pixel order of the task: x[:, permutation]
    y_train: np.ndarray  # labels of the training examples
    y_test: np.ndarray


class Scenario:
    name: ClassVar[str]
    parameters: ClassVar[dict] = {}
    required: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **params):
        self.params = params

    def task(self, seed: int, task: int, num_pixels: int, y_train, y_test) -> Task:
        raise NotImplementedError


def task_rng(seed: int, task: int) -> np.random.Generator:
    return np.random.default_rng([seed, TASK_STREAM, task])


@SCENARIOS.register
class PermutedPixels(Scenario):
    """round(fraction·D) pixel positions, chosen at random per task, are permuted among
    themselves; the others keep their place. fraction 1 is the paper's Permuted MNIST (a full
    random permutation per task), fraction 0 repeats the same task."""

    name = "permuted_pixels"
    parameters = {"fraction": {"type": "number", "minimum": 0, "maximum": 1, "default": 1.0}}

    def task(self, seed, task, num_pixels, y_train, y_test) -> Task:
        rng = task_rng(seed, task)
        fraction = self.params["fraction"]
        if fraction == 1:
            permutation = rng.permutation(num_pixels)
        else:
            permutation = np.arange(num_pixels)
            moved = rng.choice(num_pixels, int(round(fraction * num_pixels)), replace=False)
            permutation[moved] = moved[rng.permutation(len(moved))]
        return Task(permutation, y_train, y_test)
