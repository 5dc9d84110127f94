"""Facts of the warm-starting protocol shared by training, analysis and the workflow.

Imports nothing heavy: the workflow reads it when planning the DAG.
"""

from __future__ import annotations

VARIANTS = ("plain", "nc_reg", "nc_reg_stable", "shrink_perturb", "l2")


def warmup_variant(variant: str) -> str:
    """The variant whose warm-up checkpoints ``variant`` fine-tunes."""
    if variant not in VARIANTS:
        raise ValueError(f"warm_start: unknown variant {variant!r}; expected one of {VARIANTS}")
    return "plain" if variant == "shrink_perturb" else variant


def checkpoint_epochs(cfg: dict) -> list[int]:
    """Warm-up epochs at which a checkpoint and a feature snapshot are taken."""
    return list(range(cfg["checkpoint_every"], cfg["warmup_epochs"] + 1, cfg["checkpoint_every"]))
