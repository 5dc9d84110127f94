"""The metric registry: one list of every per-snapshot quantity with its label, direction and
scale, which feeds the metric tables, every correlation table and every figure.

Entries are registered where their value is computed: the NC metrics in
:mod:`ncplasticity.nc`, the plasticity measures in :mod:`ncplasticity.plasticity` (each with
the function that computes it from a :class:`ProbeState`, except those the training loop logs
itself, e.g. the gradient norm, which have none), the training outcomes here. Adding a metric
is one registered entry (with its function) plus its test.

``direction`` is +1 when the value rises as features collapse or plasticity is lost, −1 when
it falls. NC4 is shown one way everywhere: as agreement (1 − nc4), the paper's choice.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

GROUPS = ("outcome", "nc", "plasticity")


@dataclass(frozen=True)
class ProbeState:
    """What a plasticity measure sees at a snapshot: penultimate features [N, D] of the probe,
    every hidden layer's post-activation output [N, units] (for a network with convolutions,
    the layers the experiment exposes), the parameters and the initial parameters (numpy
    arrays, same order; None when unknown), and every hidden layer's pre-activations [N, units]
    (the linear layer's output, before any LayerNorm and the ReLU; None when unknown)."""

    features: Any
    hidden: list
    parameters: list
    initial_parameters: list | None = None
    pre_activations: list | None = None

    @cached_property
    def feature_singular_values(self):
        """Singular values of ``features``, ascending: computed once for every rank measure."""
        from ncplasticity.plasticity import singular_values

        return singular_values(self.features)


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    group: str
    direction: int  # +1: rises with collapse / plasticity loss; -1: falls
    scale: str = "linear"  # y scale in figures: linear or log
    plotted: bool = False  # a panel of the group's figures
    correlated: bool = True  # enters the correlation tables
    compute: Callable[[ProbeState], float] | None = None  # plasticity measures
    # Optional ProbeState fields the computation needs (an experiment that cannot give them
    # leaves the measure out: select(given=...)).
    requires: tuple[str, ...] = ()
    derive: Callable[[Mapping], float] | None = None  # from other columns of a table row

    def __post_init__(self):
        if self.group not in GROUPS or self.direction not in (1, -1):
            raise ValueError(f"metric {self.name!r}: bad group or direction")
        if self.scale not in ("linear", "log"):
            raise ValueError(f"metric {self.name!r}: scale must be linear or log")


_REGISTRY: dict[str, Metric] = {}
# Modules whose import registers entries.
_PROVIDERS = ("ncplasticity.nc", "ncplasticity.plasticity")


def register(metric: Metric) -> Metric:
    if metric.name in _REGISTRY and _REGISTRY[metric.name] != metric:
        raise ValueError(f"metric {metric.name!r} is registered twice")
    _REGISTRY[metric.name] = metric
    return metric


def registry() -> dict[str, Metric]:
    """Every registered metric by name, in group order (outcomes, NC, plasticity)."""
    for module in _PROVIDERS:
        importlib.import_module(module)
    return {m.name: m for group in GROUPS for m in _REGISTRY.values() if m.group == group}


def select(*, group=None, plotted=None, correlated=None, computed=None, given=None) -> list[Metric]:
    """Registered metrics matching every given property, in registry order; with ``given``
    (the optional ProbeState fields an experiment provides), only those it can compute."""
    return [
        m
        for m in registry().values()
        if (group is None or m.group == group)
        and (plotted is None or m.plotted == plotted)
        and (correlated is None or m.correlated == correlated)
        and (computed is None or (m.compute is not None) == computed)
        and (given is None or set(m.requires) <= set(given))
    ]


def add_derived(table):
    """Add the derived metrics (e.g. ``nc4_agreement``) to a pandas table that has their
    sources; returns the table."""
    for metric in registry().values():
        if metric.derive is not None:
            try:
                table[metric.name] = table.apply(metric.derive, axis=1).astype(float)
            except KeyError:
                continue
    return table


# Training outcomes, logged by the training loops.
register(
    Metric("online_accuracy", "online accuracy", "outcome", -1, plotted=True, correlated=False)
)
register(Metric("test_accuracy", "test accuracy", "outcome", -1, plotted=True, correlated=False))
register(Metric("pl", "plasticity loss PL", "outcome", 1, correlated=False))
