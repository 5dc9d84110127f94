"""Interventions as plugins on named hooks (in the manner of Avalanche's strategy callbacks).

An intervention is one class registered with its experiment's :class:`Registry`: a ``name``,
a JSON schema of its parameters, and the hooks it overrides. A training loop calls every hook
of every configured intervention at its point; the defaults do nothing. Adding an intervention
is one registered class plus its test and a config line.

Hooks (``ctx`` is the loop's :class:`HookContext`):

* ``optimizer_options()``: extra keyword arguments of the optimiser (``weight_decay``: SGD on
  loss + (λ/2)‖θ‖²);
* ``loss(ctx, features, logits, targets)``: a term added to the mini-batch loss (a tensor), or
  ``None``;
* ``after_step(ctx, hidden, targets)``: after every optimiser step of the autograd loop, with
  the hidden layers' activations of that step's forward pass (before the update);
* ``on_every(ctx)``: called after every ``every`` optimiser steps (``every`` is a parameter);
* ``on_task_start(ctx)`` / ``on_epoch_end(ctx)``: task and epoch boundaries (continual);
* ``before_finetune(ctx)``: applied to a warm-up checkpoint before it is fine-tuned (warm start);
* ``task_log(ctx)``: columns of the task's log row saying what the intervention did (units
  reset, penalty value), read and cleared at every task end (continual);
* ``state_dict()`` / ``load_state_dict(state)``: whatever must survive a resume.

``phase`` says which phase of a two-phase experiment an intervention acts in (warm start:
``warmup`` or ``finetune``); a run's warm-up is shared by all variants whose warm-up settings
agree, so a fine-tune-only intervention reuses the plain warm-up.

This module imports no torch: the workflow reads the registries while planning.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

HOOKS = (
    "optimizer_options",
    "loss",
    "after_step",
    "on_every",
    "on_task_start",
    "on_epoch_end",
    "before_finetune",
    "task_log",
)


@dataclass
class HookContext:
    """What a hook may read or change: the model, its optimiser, where training stands, and a
    factory of freshly initialised models (``fresh_model(salt)``, seeded by the run's seed,
    the position and ``salt``)."""

    model: Any
    optimizer: Any = None
    seed: int = 0
    task: int = 0
    epoch: int = 0
    step: int = 0
    fresh_model: Callable[[int], Any] | None = None
    extra: dict = field(default_factory=dict)


class Intervention:
    name: ClassVar[str]
    description: ClassVar[str] = ""
    # JSON schema of the parameters (``properties``; ``required`` lists those without default).
    parameters: ClassVar[dict] = {}
    required: ClassVar[tuple[str, ...]] = ()
    phase: ClassVar[str] = "train"
    # The NC metric (registry name) the intervention acts on, if any: analyses ask whether
    # moving it moves plasticity (e.g. the open questions' regulariser effects).
    nc_metric: ClassVar[str | None] = None

    def __init__(self, **params):
        # Schema defaults fill what the caller left out (a validated config has them all).
        defaults = {k: v["default"] for k, v in self.parameters.items() if "default" in v}
        self.params = {**defaults, **params}
        self.every = self.params.get("every")

    # --- hooks (no-ops) ---
    def optimizer_options(self) -> dict:
        return {}

    def loss(self, ctx: HookContext, features, logits, targets):
        return None

    def after_step(self, ctx: HookContext, hidden, targets) -> None:
        pass

    def on_every(self, ctx: HookContext) -> None:
        pass

    def on_task_start(self, ctx: HookContext) -> None:
        pass

    def on_epoch_end(self, ctx: HookContext) -> None:
        pass

    def before_finetune(self, ctx: HookContext) -> None:
        pass

    def task_log(self, ctx: HookContext) -> dict:
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    @classmethod
    def uses(cls, hook: str) -> bool:
        """Whether the class overrides ``hook``."""
        if hook not in HOOKS:
            raise ValueError(f"unknown hook {hook!r}; expected one of {HOOKS}")
        return getattr(cls, hook) is not getattr(Intervention, hook)


class WeightDecay(Intervention):
    """SGD on loss + (λ/2)‖θ‖², i.e. weight decay λ (Adam: L2 added to the gradient). Each
    experiment registers it with its own name, phase and default."""

    def optimizer_options(self) -> dict:
        return {"weight_decay": self.params["weight_decay"]}


def shrink_and_perturb(model, fresh, shrink: float, perturb: float) -> None:
    """θ ← shrink·θ + perturb·θ_fresh for every parameter (Ash & Adams); buffers (e.g.
    BatchNorm running statistics) are kept."""
    import torch

    with torch.no_grad():
        for param, fresh_param in zip(model.parameters(), fresh.parameters(), strict=True):
            param.mul_(shrink).add_(fresh_param, alpha=perturb)


class Registry:
    """The registered classes of one experiment (interventions, scenarios), by name.
    ``phases`` and ``hooks``, when given, are the phases its interventions may act in and the
    hooks its training loop calls: a class outside them is refused when it is registered,
    never silently ignored."""

    def __init__(self, experiment: str, phases: tuple[str, ...] = (), hooks: tuple[str, ...] = ()):
        self.experiment = experiment
        self.phases = phases
        self.hooks = hooks
        self._classes: dict[str, type[Intervention]] = {}

    def register(self, cls: type[Intervention]) -> type[Intervention]:
        """Class decorator: add ``cls`` under ``cls.name``."""
        if cls.name in self._classes and self._classes[cls.name] is not cls:
            raise ValueError(f"{self.experiment}: intervention {cls.name!r} is registered twice")
        if self.phases and cls.phase not in self.phases:
            raise ValueError(
                f"{self.experiment}: intervention {cls.name!r} has phase {cls.phase!r}; "
                f"set `phase` to one of {self.phases}"
            )
        uncalled = [h for h in HOOKS if self.hooks and h not in self.hooks and cls.uses(h)]
        if uncalled:
            raise ValueError(
                f"{self.experiment}: intervention {cls.name!r} uses {uncalled}, which "
                f"{self.experiment} training never calls"
            )
        self._classes[cls.name] = cls
        return cls

    def unregister(self, name: str) -> None:
        self._classes.pop(name, None)

    def __contains__(self, name: str) -> bool:
        return name in self._classes

    def __getitem__(self, name: str) -> type[Intervention]:
        try:
            return self._classes[name]
        except KeyError:
            raise ValueError(
                f"{self.experiment}: unknown intervention {name!r}; expected one of {self.names()}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._classes)

    def item_schema(self) -> dict:
        """JSON schema of one ``interventions`` entry: ``name`` from the registry, then that
        intervention's parameters (unknown parameters are errors)."""
        cases = []
        for name, cls in sorted(self._classes.items()):
            properties = {"name": {"const": name}, **copy.deepcopy(cls.parameters)}
            cases.append(
                {
                    "if": {"properties": {"name": {"const": name}}},
                    "then": {
                        "properties": properties,
                        "required": ["name", *cls.required],
                        "additionalProperties": False,
                    },
                }
            )
        return {
            "type": "object",
            "required": ["name"],
            "properties": {"name": {"enum": self.names()}},
            "allOf": cases,
        }

    def build(self, specs: Iterable[Mapping]) -> list[Intervention]:
        """Instances for a run's ``interventions`` list (each ``{name, **parameters}``)."""
        built = []
        for spec in specs:
            params = {k: v for k, v in spec.items() if k != "name"}
            built.append(self[spec["name"]](**params))
        return built

    def in_phase(self, specs: Iterable[Mapping], phase: str) -> list[dict]:
        """The entries of ``specs`` whose intervention acts in ``phase``."""
        return [dict(spec) for spec in specs if self[spec["name"]].phase == phase]


def call(interventions: Iterable[Intervention], hook: str, *args) -> list:
    """Call ``hook`` on every intervention that uses it; their results in order."""
    return [getattr(i, hook)(*args) for i in interventions if type(i).uses(hook)]


def optimizer_options(interventions: Iterable[Intervention]) -> dict:
    """The optimiser options of all interventions together (a clash is an error)."""
    options: dict = {}
    for intervention in interventions:
        for key, value in intervention.optimizer_options().items():
            if key in options and options[key] != value:
                raise ValueError(f"interventions disagree on the optimiser's {key!r}")
            options[key] = value
    return options
