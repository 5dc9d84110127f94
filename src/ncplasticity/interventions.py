"""Interventions as plugins on named hooks (in the manner of Avalanche's strategy callbacks).

An intervention is one class registered with its experiment's intervention registry
(:class:`ncplasticity.registry.Registry`): a ``name``, a JSON schema of its parameters, and the
hooks it overrides. A training loop calls every hook of every configured intervention at its
point; the defaults do nothing. Adding an intervention is one registered class plus its test
and a config line.

Hooks (``ctx`` is the loop's :class:`HookContext`):

* ``optimizer_options()``: extra keyword arguments of the optimiser (``weight_decay``: SGD on
  loss + (λ/2)‖θ‖²);
* ``loss(ctx, features, logits, targets)``: a term added to the mini-batch loss (a tensor), or
  ``None``;
* ``after_step(ctx, hidden, targets)``: after every optimiser step of the autograd loop, with
  the hidden layers' activations of that step's forward pass (before the update);
* ``on_period(ctx)``: called after every ``period`` optimiser steps (``period``: the
  intervention's parameter of that name; an intervention without one is never called);
* ``compiled_form(ctx)``: what the intervention adds to the continual experiment's compiled
  batch-1 step (a :class:`ncplasticity.continual.compiled.CompiledForm`), or None for nothing;
  an intervention whose ``loss`` or ``after_step`` has no compiled form sends its runs to the
  autograd loop;
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

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

HOOKS = (
    "optimizer_options",
    "loss",
    "after_step",
    "on_period",
    "compiled_form",
    "on_task_start",
    "on_epoch_end",
    "on_probe",
    "before_finetune",
    "task_log",
)


@dataclass
class HookContext:
    """What a hook may read or change: the model, its optimiser, where training stands, a
    factory of freshly initialised models (``fresh_model(salt)``, seeded by the run's seed,
    the position and ``salt``), and the run's initial parameters θ₀ (numpy arrays in
    ``model.parameters()`` order; None where the experiment does not keep them)."""

    model: Any
    optimizer: Any = None
    seed: int = 0
    task: int = 0
    epoch: int = 0
    step: int = 0
    fresh_model: Callable[[int], Any] | None = None
    initial_parameters: list | None = None
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

    @property
    def period(self) -> int | None:
        """Optimiser steps between ``on_period`` calls: the ``period`` parameter, if any."""
        return self.params.get("period")

    # --- hooks (no-ops) ---
    def optimizer_options(self) -> dict:
        return {}

    def loss(self, ctx: HookContext, features, logits, targets):
        return None

    def after_step(self, ctx: HookContext, hidden, targets) -> None:
        pass

    def on_period(self, ctx: HookContext) -> None:
        pass

    def compiled_form(self, ctx: HookContext):
        return None

    def on_task_start(self, ctx: HookContext) -> None:
        pass

    def on_epoch_end(self, ctx: HookContext) -> None:
        pass

    def on_probe(self, ctx: HookContext, features, labels, weight, bias) -> None:
        """After each task: the penultimate features of the task's probe, their labels
        (0..k−1 over the task's k classes) and those classes' classifier rows, as the task's
        snapshot stores them (for an intervention that steers by a measured quantity)."""

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
