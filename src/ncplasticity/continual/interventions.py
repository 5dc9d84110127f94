"""The continual intervention registry (hooks: :mod:`ncplasticity.interventions`).

Interventions that only act at boundaries or every k steps keep a run on the compiled batch-1
path (it runs in chunks between their hooks); a ``loss`` term or optimiser option moves the run
to the autograd loop. torch is imported inside the hooks: the workflow reads this registry
while planning.
"""

from __future__ import annotations

from ncplasticity import interventions as hooks
from ncplasticity.interventions import HookContext, Intervention, WeightDecay

REGISTRY = hooks.Registry(
    "continual",
    phases=("train",),
    hooks=(
        "optimizer_options",
        "loss",
        "after_step",
        "on_every",
        "on_task_start",
        "on_epoch_end",
        "task_log",
    ),
)

_NON_NEGATIVE = {"type": "number", "minimum": 0}


@REGISTRY.register
class L2(WeightDecay):
    """SGD on loss + (λ/2)‖θ‖², i.e. weight decay λ (for Adam: L2 added to the gradient)."""

    name = "l2"
    parameters = {"weight_decay": {**_NON_NEGATIVE, "default": 1e-4}}


@REGISTRY.register
class ShrinkPerturb(Intervention):
    """Shrink & perturb at the start of every task after the first (Ash & Adams):
    θ ← shrink·θ + perturb·θ_fresh, θ_fresh a new initialisation seeded by (seed, task)."""

    name = "shrink_perturb"
    parameters = {
        "shrink": {**_NON_NEGATIVE, "default": 0.6},
        "perturb": {**_NON_NEGATIVE, "default": 0.01},
    }

    def on_task_start(self, ctx: HookContext) -> None:
        if ctx.task > 0:
            hooks.shrink_and_perturb(
                ctx.model, ctx.fresh_model(0), self.params["shrink"], self.params["perturb"]
            )
