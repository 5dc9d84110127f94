"""The metric catalogue: every per-snapshot quantity with its label, direction and scale,
which feeds the metric tables, every correlation table and every figure.

The values are computed elsewhere: the NC metrics by :mod:`ncplasticity.nc`, the plasticity
measures by :mod:`ncplasticity.plasticity` (each entry holds the function that computes it
from a :class:`ProbeState`, except those the training loop logs itself, e.g. the gradient
norm, which have none), the training outcomes by the training loops. Adding a metric is one
entry of :data:`CATALOGUE` (with its function) plus its test. The catalogue's order is the
column order of every table: outcomes, then NC metrics, then plasticity measures.

``direction`` is +1 when the value rises as features collapse or plasticity is lost, −1 when
it falls. NC4 is shown one way everywhere: as agreement (1 − nc4), the paper's choice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ncplasticity import nc, plasticity
from ncplasticity.plasticity import ProbeState

__all__ = ["CATALOGUE", "GROUPS", "Metric", "ProbeState", "add_derived", "registry", "select"]

GROUPS = ("outcome", "nc", "plasticity")


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


def _probe_measure(name, label, direction, compute, requires=()) -> Metric:
    """A plasticity measure computed from the probe (continual loop, warm-start checkpoints)."""
    return Metric(
        name, label, "plasticity", direction, plotted=True, compute=compute, requires=requires
    )


def _logged_measure(name, label, direction) -> Metric:
    """A plasticity measure the training loop logs itself (no probe function)."""
    return Metric(name, label, "plasticity", direction, plotted=True)


CATALOGUE: tuple[Metric, ...] = (
    # Training outcomes, logged by the training loops.
    Metric("online_accuracy", "online accuracy", "outcome", -1, plotted=True, correlated=False),
    Metric("test_accuracy", "test accuracy", "outcome", -1, plotted=True, correlated=False),
    Metric("pl", "plasticity loss PL", "outcome", 1, correlated=False),
    # Logged every schedule.fresh_every-th task only: fresh − ours online accuracy.
    Metric("pl_fresh", "PL against a fresh network", "outcome", 1, correlated=False),
    # NC metrics, the columns nc.METRIC_KEYS of the metrics tables.
    Metric("nc1", "NC1 tr(Σ_W Σ_B⁺)/C", "nc", -1, scale="log", plotted=True),
    Metric("nc1_trace_ratio", "NC1 tr Σ_W / tr Σ_B", "nc", -1, scale="log"),
    Metric("cdnv", "CDNV", "nc", -1, scale="log"),
    Metric("nc2_equinorm_means", "NC2 equinorm of means", "nc", -1),
    Metric("nc2_equinorm_weights", "NC2 equinorm of weights", "nc", -1),
    Metric("nc2_equiangular_means", "NC2 equiangularity of means", "nc", -1),
    Metric("nc2_equiangular_weights", "NC2 equiangularity of weights", "nc", -1),
    Metric("nc2_etf_means", "NC2 ETF distance of means", "nc", -1),
    Metric("nc2_etf_weights", "NC2 ETF distance of W", "nc", -1, plotted=True),
    Metric("nc3", "NC3 ‖W − M̃‖² (normalised)", "nc", -1),
    Metric("nc3_wh", "NC3 ETF distance of WM̃ᵀ", "nc", -1, plotted=True),
    Metric("nc4", "NC4 disagreement", "nc", -1, correlated=False),
    Metric("accuracy", "accuracy of the snapshot's classifier", "nc", -1, correlated=False),
    # Shown instead of nc4 everywhere (the paper plots agreement).
    Metric(
        "nc4_agreement",
        "NC4 agreement (1 − nc4)",
        "nc",
        1,
        plotted=True,
        derive=lambda row: 1 - row["nc4"],
    ),
    # Plasticity measures computed from the probe.
    _probe_measure(
        "dead_fraction", "dead ReLU fraction", 1, lambda p: plasticity.dead_fraction(p.hidden)
    ),
    _probe_measure(
        "effective_rank",
        "effective rank of features",
        -1,
        lambda p: plasticity.effective_rank(p.features, p.feature_singular_values),
    ),
    _probe_measure("weight_norm", "weight norm", 1, lambda p: plasticity.weight_norm(p.parameters)),
    _probe_measure(
        "dormant_fraction",
        "τ-dormant unit fraction",
        1,
        lambda p: plasticity.dormant_fraction(p.hidden),
    ),
    _probe_measure(
        "feature_rank",
        "feature rank srank",
        -1,
        lambda p: plasticity.feature_rank(p.features, sigma=p.feature_singular_values),
    ),
    _probe_measure(
        "stable_rank",
        "stable rank of features",
        -1,
        lambda p: plasticity.stable_rank(p.features, p.feature_singular_values),
    ),
    _probe_measure(
        "distance_from_init",
        "distance from initial weights",
        1,
        lambda p: plasticity.distance_from_init(p.parameters, p.initial_parameters),
    ),
    _probe_measure(
        "duplicated_fraction",
        "duplicated unit fraction (cosine > 0.95)",
        1,
        lambda p: plasticity.duplicated_fraction(p.hidden),
    ),
    # Units stuck always on or always off (dead) have zero entropy.
    _probe_measure(
        "sign_entropy", "unit sign entropy (bits)", -1, lambda p: plasticity.sign_entropy(p.hidden)
    ),
    # Pre-activations (before LayerNorm and ReLU), averaged over layers; NaN where unknown.
    # The mean: -1, units drift below zero as they go dormant or die under ReLU (the drift
    # Lyle et al. 2024 track); the std: +1, the pre-activations' scale grows with the weight
    # norm, as weight_norm (+1) does.
    _probe_measure(
        "preactivation_mean",
        "pre-activation mean (over layers)",
        -1,
        lambda p: plasticity.preactivation_mean(p.pre_activations),
        requires=("pre_activations",),
    ),
    _probe_measure(
        "preactivation_std",
        "pre-activation std (over layers)",
        1,
        lambda p: plasticity.preactivation_std(p.pre_activations),
        requires=("pre_activations",),
    ),
    # Features that grow with the weights (+1, as weight_norm); nc_target's side-effect
    # check, since shrinking features is how a collapse penalty can be met without learning.
    _probe_measure(
        "feature_norm",
        "feature norm (mean ‖h‖)",
        1,
        lambda p: plasticity.feature_norm(p.features),
    ),
    # Plasticity measures logged by the training loop itself.
    _logged_measure("gradient_norm", "gradient norm (mean over task)", -1),
    _logged_measure("step_plasticity", "per-step plasticity", -1),
    _logged_measure("churn", "churn of probe logits", 1),
)


def registry() -> dict[str, Metric]:
    """Every metric of the catalogue by name, in catalogue order."""
    return {m.name: m for m in CATALOGUE}


def _check_catalogue() -> None:
    names = [m.name for m in CATALOGUE]
    if len(set(names)) != len(names):
        raise ValueError("metric catalogue: a name appears twice")
    if [m.group for m in CATALOGUE] != sorted((m.group for m in CATALOGUE), key=GROUPS.index):
        raise ValueError(f"metric catalogue: entries must be in group order {GROUPS}")
    missing = set(nc.METRIC_KEYS) - set(names)
    if missing:
        raise ValueError(f"metric catalogue: NC metrics without an entry: {sorted(missing)}")


_check_catalogue()


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
