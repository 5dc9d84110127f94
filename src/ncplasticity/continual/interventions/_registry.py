"""The continual intervention registry, and the parameter schema its submodules share."""

from ncplasticity import interventions as hooks

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

NON_NEGATIVE = {"type": "number", "minimum": 0}
