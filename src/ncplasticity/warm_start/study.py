"""What the workflow needs of a warm-start study, without torch: the settings each job is given,
the checkpoint epochs and which variants share a warm-up.

A variant's warm-up settings are its settings without the fine-tune keys and with only its
warm-up interventions; variants whose warm-up settings agree share one warm-up (the first of
them in the config runs it), so e.g. ``shrink_perturb``, a fine-tune-only intervention,
fine-tunes the plain variant's checkpoints. A fine-tune job is given the settings without the
warm-up keys and with only its fine-tune interventions, so changing ``finetune.max_epochs``
reruns no warm-up. The fresh-init reference is trained from a variant's fine-tune settings
without interventions; variants whose reference settings agree share one reference.
"""

from __future__ import annotations

from collections.abc import Mapping

from ncplasticity.study import ExperimentSpec, without
from ncplasticity.warm_start import EXPERIMENT
from ncplasticity.warm_start.interventions import REGISTRY

# Section keys that choose runs, analyses or cluster resources, never a run's settings.
STUDY_KEYS = (
    "seeds",
    "correlation_window",
    "threads",
    "gpus",
    "runtime_warmup",
    "runtime_finetune",
    "mem_mb",
)
WARMUP_ONLY_KEYS = ("warmup_fraction", "warmup_epochs", "checkpoint_every", "feature_dtype")
FINETUNE_ONLY_KEYS = ("finetune",)

# The fresh-init reference's name in tables; no variant may take it.
FRESH = "fresh"

SPEC = ExperimentSpec(EXPERIMENT, REGISTRY, STUDY_KEYS, reserved_variants=(FRESH,))


def _phase_view(settings: Mapping, phase: str, excluded: tuple[str, ...]) -> dict:
    view = without(settings, *excluded)
    view["interventions"] = REGISTRY.in_phase(settings.get("interventions", []), phase)
    return view


def warmup_settings(settings: Mapping) -> dict:
    return _phase_view(settings, "warmup", FINETUNE_ONLY_KEYS)


def finetune_settings(settings: Mapping) -> dict:
    return _phase_view(settings, "finetune", WARMUP_ONLY_KEYS)


def fresh_settings(settings: Mapping) -> dict:
    """The fresh-init reference: the fine-tune settings without any intervention."""
    return {**finetune_settings(settings), "interventions": []}


def checkpoint_epochs(settings: Mapping) -> list[int]:
    """Warm-up epochs at which a checkpoint and a feature snapshot are taken."""
    every, last = settings["checkpoint_every"], settings["warmup_epochs"]
    return list(range(every, last + 1, every))


def shared_sources(variants: Mapping[str, Mapping], view) -> dict[str, str]:
    """variant -> the first variant (in config order) whose ``view`` of the settings equals
    its own: the one whose job it shares."""
    sources: dict[str, str] = {}
    for name, settings in variants.items():
        own = view(settings)
        sources[name] = next((other for other in sources if view(variants[other]) == own), name)
    return sources


def warmup_sources(variants: Mapping[str, Mapping]) -> dict[str, str]:
    """variant -> the variant whose warm-up it fine-tunes."""
    return shared_sources(variants, warmup_settings)


def fresh_sources(variants: Mapping[str, Mapping]) -> dict[str, str]:
    """variant -> the variant whose fresh-init reference it is compared with."""
    return shared_sources(variants, fresh_settings)
