"""``drifting_pixels``: the pixel permutation drifts one transposition at a time, with no task
boundary for the learner."""

from __future__ import annotations

import numpy as np
from numba import njit

from ncplasticity.continual.scenarios.base import SCENARIOS, Scenario, Task, task_rng
from ncplasticity.data import NUM_CLASSES, PIXELS


@SCENARIOS.register
class DriftingPixels(Scenario):
    """Gradual shift (Liu & Mou 2026 tie plasticity loss to abrupt shifts; every other
    scenario here is abrupt). The input's pixel order starts as it is and drifts: every
    ``steps_to_full`` s training examples bring 2·D seeded transpositions of two pixel
    positions (D pixels), spread evenly over those steps, so consecutive steps' orders differ
    by at most one transposition, and after any s steps all but about e⁻⁴ ≈ 2 % of the
    positions have been swapped: as far from where they started as under a fresh permutation.
    The drift never stops. The learner sees no boundary: "task" t is the t-th stretch of
    ``examples_per_task`` steps (one epoch over that task's examples, in its epoch order), and
    is measured (probe, test accuracy) in the pixel order of its last step. Drift advances one
    transposition slot per training example, so a stretch is the same at any batch size.
    Transpositions of block b (steps b·s … (b + 1)·s − 1) are drawn from
    ``default_rng([seed, 0, b])``."""

    name = "drifting_pixels"
    shift = "gradual input shift (pixels drift)"
    parameters = {"steps_to_full": {"type": "integer", "minimum": 1, "default": 4000}}
    has_tasks = False

    def __init__(self, **params):
        super().__init__(**params)
        # The pixel order after the events before ``_cache[2]``, for (seed, pixels): runs ask
        # for their stretches in order, so each is replayed once.
        self._cache: tuple = (None, None, 0, [])

    def problems(self, settings: dict) -> list[str]:
        found = []
        steps, pixels = self.params["steps_to_full"], PIXELS[settings["dataset"]]
        if steps < 2 * pixels:
            found.append(
                f"scenario.steps_to_full: {steps} is below 2 × the {pixels} pixels: the drift "
                "would make more than one transposition a step"
            )
        schedule = settings["schedule"]
        if schedule["first_task"] != {"epochs": 1} or schedule.get("epochs_per_task", 1) != 1:
            found.append(
                "scenario: drifting_pixels has no tasks to repeat: schedule.first_task must be "
                "{epochs: 1} and schedule.epochs_per_task 1"
            )
        return found

    def task(self, seed, task, num_pixels, y_train, y_test, num_classes=NUM_CLASSES) -> Task:
        last_step = (task + 1) * len(y_train) - 1
        return Task(self.permutation_at(seed, num_pixels, last_step), y_train, y_test)

    def epoch_inputs(self, seed, task_index, task, x, order):
        """Each step's input in its own pixel order, in training order."""
        steps, pixels = len(order), x.shape[1]
        start = task_index * steps
        inputs = np.empty((steps, pixels), np.float32)
        permutation = self.permutation_at(seed, pixels, start)
        times, a, b = self.transpositions(seed, pixels, start + 1, start + steps)
        _gather_drifting(x, np.asarray(order, np.int64), permutation, times - start, a, b, inputs)
        return inputs, task.y_train[order], np.arange(steps), np.arange(pixels)

    def transpositions(self, seed: int, pixels: int, start: int, stop: int):
        """(steps, a, b) of the transpositions at steps start … stop − 1, in order: from the
        input of that step on, positions a and b have swapped their pixels."""
        s, count = self.params["steps_to_full"], 2 * pixels
        parts = []
        for block in range(start // s, max(start, stop - 1) // s + 1):
            rng = task_rng(seed, block)
            a = rng.integers(pixels, size=count)
            b = (a + rng.integers(1, pixels, size=count)) % pixels
            times = block * s + np.arange(count) * s // count
            chosen = (times >= start) & (times < stop)
            parts.append((times[chosen], a[chosen], b[chosen]))
        if not parts:
            return tuple(np.zeros(0, np.int64) for _ in range(3))
        return tuple(np.concatenate(column).astype(np.int64) for column in zip(*parts, strict=True))

    def permutation_at(self, seed: int, pixels: int, step: int) -> np.ndarray:
        """The pixel order of the input at training step ``step`` (0-based)."""
        cached_seed, cached_pixels, done, order = self._cache
        if (cached_seed, cached_pixels) != (seed, pixels) or done > step + 1:
            done, order = 0, list(range(pixels))
        _, first, second = self.transpositions(seed, pixels, done, step + 1)
        for a, b in zip(first.tolist(), second.tolist(), strict=True):
            order[a], order[b] = order[b], order[a]
        self._cache = (seed, pixels, step + 1, order)
        return np.array(order)


@njit(cache=True)
def _gather_drifting(x, order, permutation, steps, first, second, out):
    """``out[i] = x[order[i]][permutation]`` with the transposition ``(first[e], second[e])``
    applied to ``permutation`` (in place) from step ``steps[e]`` on."""
    event = 0
    for i in range(order.shape[0]):
        while event < steps.shape[0] and steps[event] <= i:
            a, b = first[event], second[event]
            permutation[a], permutation[b] = permutation[b], permutation[a]
            event += 1
        row = x[order[i]]
        for k in range(permutation.shape[0]):
            out[i, k] = row[permutation[k]]
