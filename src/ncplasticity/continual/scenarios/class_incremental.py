"""``class_incremental``: the classes arrive k at a time, one output layer over all of them."""

from __future__ import annotations

import numpy as np

from ncplasticity.continual.scenarios.base import (
    SCENARIOS,
    Scenario,
    Task,
    class_order,
    classes_per_task_problems,
    labels_of,
    of_classes,
)
from ncplasticity.data import NUM_CLASSES


@SCENARIOS.register
class ClassIncremental(Scenario):
    """The classes arrive ``classes_per_task`` at a time, in an order drawn once per run: task
    t trains on the examples of every class seen so far (the first (t + 1)·k of the order, all
    of them once every class has arrived), with one output layer over all classes; its test
    examples are those of the same classes. Inputs unchanged. The paper's next check 1 (Dohare
    et al.'s incremental CIFAR-100, on digits); the NC metrics of a task are over its classes."""

    name = "class_incremental"
    shift = "growing label space (classes added)"
    confound = "the number of classes grows, so tasks differ in difficulty"
    parameters = {"classes_per_task": {"type": "integer", "minimum": 1, "default": 2}}

    def problems(self, settings: dict) -> list[str]:
        return classes_per_task_problems(self.params["classes_per_task"])

    def classes_seen(self, seed: int, task: int, num_classes: int = NUM_CLASSES) -> np.ndarray:
        """The classes task ``task`` trains on, in their order of arrival."""
        seen = (task + 1) * self.params["classes_per_task"]
        return class_order(seed, num_classes)[:seen]

    def task(self, seed, task, num_pixels, y_train, y_test, num_classes=NUM_CLASSES) -> Task:
        y_train, y_test = labels_of(y_train), labels_of(y_test)
        seen = self.classes_seen(seed, task, num_classes)
        train_index, test_index = of_classes(y_train, y_test, seen)
        return Task(
            np.arange(num_pixels), y_train[train_index], y_test[test_index], train_index, test_index
        )
