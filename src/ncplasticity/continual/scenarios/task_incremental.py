"""``task_incremental``: each task trains its own k classes with its own output head."""

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
class TaskIncremental(Scenario):
    """Multi-head task-incremental learning (the paper's next check 1; Split MNIST): the
    classes, in an order drawn once per run, form C/k groups of ``classes_per_task`` k; task t
    trains only on group t mod C/k, labelled 0..k−1 in the group's order, with that group's
    own output head of k units. The run keeps every group's head (weight, bias and their
    optimiser state) and swaps it in when the group's task comes, so heads share no row and a
    group's head resumes where its last task left it; a head starts at zero, like
    ``class_pairs``' new heads. Test accuracy is over the task's test examples of its classes
    (the argmax of its own head: within the task's classes), and NC over its classes with its
    head. Inputs unchanged; every task draws its own examples, so a group's classes come back
    every C/k tasks with new examples."""

    name = "task_incremental"
    shift = "class shift, a head per class group"
    confound = "each head learns a different class group, so tasks differ in difficulty"
    parameters = {"classes_per_task": {"type": "integer", "minimum": 1, "default": 2}}

    def problems(self, settings: dict) -> list[str]:
        return classes_per_task_problems(self.params["classes_per_task"])

    def num_outputs(self, num_classes: int) -> int:
        return self.params["classes_per_task"]

    def head(self, seed: int, task: int) -> int:
        return task % (NUM_CLASSES // self.params["classes_per_task"])

    def classes(self, seed: int, task: int, num_classes: int = NUM_CLASSES) -> np.ndarray:
        """Task ``task``'s classes, in the order of its labels 0..k−1."""
        k = self.params["classes_per_task"]
        group = task % (num_classes // k)
        return class_order(seed, num_classes)[group * k : (group + 1) * k]

    def task(self, seed, task, num_pixels, y_train, y_test, num_classes=NUM_CLASSES) -> Task:
        y_train, y_test = labels_of(y_train), labels_of(y_test)
        classes = self.classes(seed, task, num_classes)
        train_index, test_index = of_classes(y_train, y_test, classes)
        # Label = the class's place in the group: its row of the group's head.
        label = np.zeros(num_classes, np.int64)
        label[classes] = np.arange(len(classes))
        return Task(
            np.arange(num_pixels),
            label[y_train[train_index]],
            label[y_test[test_index]],
            train_index,
            test_index,
        )
