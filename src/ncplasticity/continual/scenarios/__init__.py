"""What each task of a continual run is (DESIGN §3b): the scenario registry, and the task's
examples, epochs, epoch order, probe and classes.

A scenario turns (run seed, task index, the task's examples) into a :class:`Task`: the input
permutation, which of the given training and test examples the task uses, and their labels.
A scenario may also say how many output units the network has (``num_outputs``), whether the
output layer is zeroed at every task start (``new_head``), which of several output heads a task
uses (``head``), and what each step's input is when it changes within a task
(``epoch_inputs``); :class:`~.base.Scenario` documents each. A scenario is one module of this
package holding its registered class (importing the package imports every module in it), plus
its test.

Scenarios: ``permuted_pixels`` (the paper's Permuted MNIST, or a fraction of it),
``permuted_labels``, ``random_labels``, ``class_pairs``, ``class_incremental``,
``task_incremental``, ``drifting_pixels`` and ``recurring`` (any scenario with tasks, met again
every ``period`` tasks).

Every draw is seeded by (seed, stream, task, ...), each kind of draw a stream of its own
(``np.random.default_rng([seed, stream, ...])``), so a task is the same whenever it is rebuilt
(a resumed run included) and its draws are independent of one another.
"""

import importlib
import pkgutil

from ncplasticity.continual.scenarios.base import (
    EPOCHS_STREAM,
    EXAMPLES_STREAM,
    INIT_STREAM,
    ORDER_STREAM,
    PROBE_STREAM,
    SCENARIOS,
    TASK_STREAM,
    Scenario,
    Task,
    task_rng,
)
from ncplasticity.continual.scenarios.tasks import (
    epoch_order,
    present_classes,
    probe_indices,
    steps_per_epoch,
    task_done,
    task_epochs,
    task_examples,
)

# Every other module of the package is one scenario: importing it registers its class.
for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if _module not in ("base", "tasks"):
        importlib.import_module(f"{__name__}.{_module}")

__all__ = [
    "EPOCHS_STREAM",
    "EXAMPLES_STREAM",
    "INIT_STREAM",
    "ORDER_STREAM",
    "PROBE_STREAM",
    "SCENARIOS",
    "TASK_STREAM",
    "Scenario",
    "Task",
    "epoch_order",
    "present_classes",
    "probe_indices",
    "steps_per_epoch",
    "task_done",
    "task_epochs",
    "task_examples",
    "task_rng",
]
