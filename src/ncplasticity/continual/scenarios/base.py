"""What a scenario is: the registry, the :class:`Scenario` base class and the :class:`Task` it
draws, and the random streams every draw of a run comes from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ncplasticity.data import NUM_CLASSES
from ncplasticity.registry import Registry

SCENARIOS = Registry("continual", kind="scenario")
# The random streams: the scenario's draw of a task (the permutation of the paper's protocol),
# each epoch's order, the probe, the fresh models of interventions and of the fresh reference
# (job.py), the task's examples and its number of epochs.
TASK_STREAM, ORDER_STREAM, PROBE_STREAM, INIT_STREAM, EXAMPLES_STREAM, EPOCHS_STREAM = range(6)


@dataclass(frozen=True)
class Task:
    """One task. ``train_index`` / ``test_index`` select the task's examples among the training
    and test examples the scenario was given (sorted indices; None: all of them, in order);
    ``y_train`` / ``y_test`` are the labels of exactly the selected examples. ``permutation``
    is the input pixel order its probe and test examples are measured in (for a scenario whose
    pixels drift within a task, the order at the task's end)."""

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
    """A registered scenario: ``name``, its ``parameters`` (JSON schema per parameter, with
    defaults) and :meth:`task`. The other methods have the defaults of a scenario whose tasks
    are fixed draws with one shared output layer."""

    name: ClassVar[str]
    parameters: ClassVar[dict] = {}
    required: ClassVar[tuple[str, ...]] = ()
    # Whether the network's output layer (weight and bias) is set to zero at the start of every
    # task, the first included (a new head per task, as Dohare et al.'s Continual ImageNet).
    new_head: ClassVar[bool] = False
    # Whether the learner meets tasks at all (False: the input drifts with no boundary, and
    # "tasks" are stretches of steps for measurement), so that tasks can recur.
    has_tasks: ClassVar[bool] = True
    # What changes from task to task, in words (the open questions' Q3 groups by it).
    shift: ClassVar[str] = "unspecified"
    # Why PL against task 0 does not compare tasks of this scenario ("" where it does): the
    # open questions analyse such a scenario on its own, never pooled (DESIGN §3d), and read
    # it by its fresh gap.
    confound: ClassVar[str] = ""

    def __init__(self, **params):
        # Schema defaults fill what the caller left out (a validated config has them all).
        defaults = {k: v["default"] for k, v in self.parameters.items() if "default" in v}
        self.params = {**defaults, **params}

    def num_outputs(self, num_classes: int) -> int:
        """Output units of the network for a dataset of ``num_classes`` classes."""
        return num_classes

    def problems(self, settings: dict) -> list[str]:
        """What is wrong with the parameters for a run's ``settings`` (its dataset, schedule):
        messages that start with the key, ``scenario.<parameter>``. The study stops before any
        job, naming the variant."""
        return []

    def data_task(self, task: int) -> int:
        """The task whose examples and draws task ``task`` uses (itself, unless tasks recur)."""
        return task

    def head(self, seed: int, task: int) -> int | None:
        """Which of the network's output heads task ``task`` trains and is measured with (a
        multi-head scenario keeps one output layer per head and swaps it in), or None: one
        output layer for every task."""
        return None

    def task(
        self, seed: int, task: int, num_pixels: int, y_train, y_test, num_classes=NUM_CLASSES
    ) -> Task:
        raise NotImplementedError

    def epoch_inputs(self, seed: int, task_index: int, task: Task, x, order: np.ndarray):
        """What an epoch of task ``task_index`` trains on, as ``train_epoch`` takes it: (inputs,
        labels, order, pixel order). By default the task's examples ``x`` (with ``task.y_train``)
        in ``order``, in the task's pixel order; a scenario whose input changes from step to
        step returns each step's input, in order."""
        return x, task.y_train, order, task.permutation


def task_rng(seed: int, task: int) -> np.random.Generator:
    return np.random.default_rng([seed, TASK_STREAM, task])


def labels_of(y) -> np.ndarray:
    return np.asarray(y, dtype=np.int64)


def of_classes(y_train, y_test, classes) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the training and of the test examples whose label is one of ``classes``."""
    return np.flatnonzero(np.isin(y_train, classes)), np.flatnonzero(np.isin(y_test, classes))


def classes_per_task_problems(k: int, num_classes: int = NUM_CLASSES) -> list[str]:
    """A ``classes_per_task`` k must be at most the classes and divide them."""
    if k > num_classes:
        return [f"scenario.classes_per_task: {k} exceeds the {num_classes} classes"]
    if num_classes % k:
        return [f"scenario.classes_per_task: {k} does not divide the {num_classes} classes"]
    return []


def class_order(seed: int, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """The run's seeded order of the classes (their order of arrival)."""
    return np.random.default_rng([seed, TASK_STREAM]).permutation(num_classes)
