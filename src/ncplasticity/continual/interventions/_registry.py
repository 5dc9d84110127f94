"""The continual intervention registry, and the parameter schema its submodules share."""

from ncplasticity import interventions as hooks
from ncplasticity.registry import Registry

# Every hook but the warm-start one: the continual loop calls all the others.
REGISTRY = Registry(
    "continual",
    kind="intervention",
    phases=("train",),
    hooks=tuple(hook for hook in hooks.HOOKS if hook != "before_finetune"),
)

NON_NEGATIVE = {"type": "number", "minimum": 0}
