"""What the workflow needs of a continual study, without torch: its study keys and the
canonical form of a run's settings."""

from __future__ import annotations

import copy
from collections.abc import Mapping

from ncplasticity.continual import EXPERIMENT
from ncplasticity.continual.interventions import REGISTRY
from ncplasticity.continual.scenarios import SCENARIOS
from ncplasticity.data import NUM_CLASSES, PIXELS, TRAINING_EXAMPLES
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
    return [*problems, *scenario.problems(settings)]


def memory_mb(settings: dict) -> int:
    """A training job's memory (MB, the rule's ``mem_mb``): its peak is flat over the tasks
    (:func:`ncplasticity.jobs.return_freed_arrays`) and is ~1.1 GB of libraries and numba's
    compiling of the step loop (0.72 GB where the loop is cached already, up to 1.09 GB
    measured where it is not), the training set (uint8, flattened to float32, and a permuted
    float32 copy in the autograd loop: ~10 bytes a pixel) and the probe's per-task arrays (its
    inputs in float32, every hidden layer's activations and pre-activations in float32 and
    float64: 4 bytes a pixel and ~28 a hidden unit per probe example); with a quarter of
    headroom, in hundreds of MB. Measured peaks with a cached loop (issue 27; 100-100-100
    network): 1.70 GB at all 60,000 MNIST digits a task with a probe of all of them (declared:
    2,800), 1.10 GB with a probe of 10,000 (2,100), 0.73 GB on mnist5k with a probe of all
    4,000 (1,500)."""
    pixels = PIXELS[settings["dataset"]]
    training = TRAINING_EXAMPLES[settings["dataset"]]
    probe = settings.get("probe_size") or settings.get("examples_per_task") or training
    per_example = 4 * pixels + 28 * sum(settings["network"]["hidden_sizes"])
    estimate = 1100 + (10 * training * pixels + probe * per_example) / 2**20
    return 100 * -(-int(1.25 * estimate) // 100)


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
