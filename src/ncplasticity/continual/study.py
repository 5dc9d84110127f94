"""What the workflow needs of a continual study, without torch: its study keys and the
canonical form of a run's settings."""

from __future__ import annotations

import copy
from collections.abc import Mapping

from ncplasticity.continual import EXPERIMENT
from ncplasticity.continual.interventions import REGISTRY
from ncplasticity.continual.scenarios import SCENARIOS
from ncplasticity.data import NUM_CLASSES, TRAINING_EXAMPLES
from ncplasticity.study import ExperimentSpec

# Section keys that choose runs, analyses or resources, never a run's settings.
STUDY_KEYS = ("seeds", "analysis_tasks", "threads")


def normalise(settings: dict) -> dict:
    """A first task with ``nc1_threshold`` trains until NC1 drops below it: its ``epochs``
    (e.g. inherited from the base settings) is dropped, so equal runs have equal settings."""
    settings = copy.deepcopy(settings)
    first = settings["schedule"]["first_task"]
    if "nc1_threshold" in first:
        first.pop("epochs", None)
    else:
        first.pop("max_epochs", None)
    return settings


def check(settings: dict) -> list[str]:
    """What the schema cannot say: sizes that depend on the dataset, and the scenario's own
    checks."""
    problems = []
    available = TRAINING_EXAMPLES[settings["dataset"]]
    examples = settings.get("examples_per_task")
    if examples is not None and examples > available:
        problems.append(
            f"examples_per_task: {examples} exceeds the {available} training examples of "
            f"{settings['dataset']}"
        )
    probe = settings.get("probe_size")
    if probe is not None and probe < NUM_CLASSES:
        problems.append(f"probe_size: {probe} is smaller than the {NUM_CLASSES} classes")
    try:
        scenario = SCENARIOS.build([settings["scenario"]])[0]
    except ValueError as error:  # e.g. a wrapped scenario that is unknown
        return [*problems, f"scenario: {error}"]
    return [*problems, *scenario.problems(NUM_CLASSES)]


SPEC = ExperimentSpec(
    EXPERIMENT,
    REGISTRY,
    STUDY_KEYS,
    normalise=normalise,
    registries={"continual_scenario": SCENARIOS},
    check=check,
)


def sweep_groups(variants: Mapping[str, Mapping]) -> list[list[str]]:
    """Variants whose settings agree except for the first task's schedule, grouped (in config
    order): the runs a first-task sweep may correlate across."""
    groups: dict[str, list[str]] = {}
    for name, settings in variants.items():
        rest = copy.deepcopy(dict(settings))
        rest["schedule"].pop("first_task")
        groups.setdefault(repr(rest), []).append(name)
    return list(groups.values())
