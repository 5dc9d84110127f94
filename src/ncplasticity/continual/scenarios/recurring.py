"""``recurring``: any scenario with tasks, met again every ``period`` tasks."""

from __future__ import annotations

from ncplasticity.continual.scenarios.base import SCENARIOS, Scenario, Task
from ncplasticity.data import NUM_CLASSES


@SCENARIOS.register
class Recurring(Scenario):
    """Any scenario with tasks, met again: task t is task t mod ``period`` of the wrapped
    ``scenario`` (its examples, permutation, labels and head), so a network meets each task
    again every ``period`` tasks and forgetting separates from plasticity."""

    name = "recurring"
    parameters = {
        "period": {"type": "integer", "minimum": 1},
        "scenario": {"type": "object", "required": ["name"]},
    }
    required = ("period", "scenario")

    def __init__(self, **params):
        super().__init__(**params)
        inner = self.params["scenario"]
        if inner.get("name") == self.name:
            raise ValueError("recurring: the wrapped scenario cannot be recurring itself")
        self.inner = SCENARIOS.build([inner])[0]
        self.new_head = self.inner.new_head
        self.shift = f"{self.inner.shift}, recurring every {self.params['period']} tasks"
        self.confound = self.inner.confound

    def num_outputs(self, num_classes: int) -> int:
        return self.inner.num_outputs(num_classes)

    def problems(self, settings: dict) -> list[str]:
        import jsonschema

        inner = self.params["scenario"]
        invalid = jsonschema.Draft7Validator(SCENARIOS.item_schema()).iter_errors(inner)
        found = [f"scenario.scenario: {error.message}" for error in invalid]
        if not found and not self.inner.has_tasks:
            found = [f"scenario.scenario: {inner['name']!r} has no tasks to recur"]
        return found or [f"scenario.{p}" for p in self.inner.problems(settings)]

    def data_task(self, task: int) -> int:
        return task % self.params["period"]

    def head(self, seed: int, task: int) -> int | None:
        return self.inner.head(seed, self.data_task(task))

    def task(self, seed, task, num_pixels, y_train, y_test, num_classes=NUM_CLASSES) -> Task:
        return self.inner.task(seed, self.data_task(task), num_pixels, y_train, y_test, num_classes)
