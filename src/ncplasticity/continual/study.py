"""What the workflow needs of a continual study, without torch: its study keys and the
canonical form of a run's settings."""

from __future__ import annotations

import copy

from ncplasticity.continual import EXPERIMENT
from ncplasticity.continual.interventions import REGISTRY
from ncplasticity.continual.scenarios import SCENARIOS
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


SPEC = ExperimentSpec(
    EXPERIMENT,
    REGISTRY,
    STUDY_KEYS,
    normalise=normalise,
    registries={"continual_scenario": SCENARIOS},
)
