"""Plasticity measures shared by both experiments (numpy only, no torch), each a function of
arrays; :class:`ProbeState` holds what they are computed from at a snapshot, and
:mod:`ncplasticity.metrics` lists them with their labels.

* :func:`plasticity_loss`: PL_i = acc(reference) − acc_i (the paper's definition, reference =
  the first task).
* :func:`dead_fraction`: fraction of ReLU units that output zero on every probe input.
* :func:`effective_rank`: effective rank of a feature matrix (Roy & Vetterli 2007, as used
  for loss of plasticity by Kumar et al. 2021 and Dohare et al. 2024): exp of the entropy of
  the normalised singular values.
* :func:`weight_norm`: Euclidean norm of all parameters together.
* :func:`dormant_fraction`: share of τ-dormant units (ReDo's score, Sokar et al. 2023).
* :func:`feature_rank`: srank_δ of a feature matrix (Kumar et al. 2021).
* :func:`distance_from_init`: ‖θ − θ₀‖ over all parameters.
* :func:`stable_rank`: ‖H‖_F² / ‖H‖₂² of a feature matrix.
* :func:`duplicated_fraction`: share of units with a near-copy in their layer (cosine > 0.95
  over the probe; Joudaki et al. 2025).
* :func:`sign_entropy`: mean binary entropy of each unit's firing, P(h_i > 0).
* :func:`preactivation_mean`, :func:`preactivation_std`: moments of the hidden layers'
  pre-activations, averaged over layers (Lyle et al. 2024 track their drift).
* :func:`feature_norm`: mean Euclidean norm ‖h‖ of the penultimate features over the probe.
* :func:`degenerate`: the manipulation check of DESIGN §3b, not a measure: accuracy within
  :data:`DEGENERATE_MARGIN` of chance, once and for ever after.
* :func:`never_learned`: another manipulation check: training accuracy never reached
  :data:`LEARNED_ACCURACY`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

# A run is degenerate from the first task (epoch) whose accuracy is within this of chance.
DEGENERATE_MARGIN = 0.05
# A run has learned once its training accuracy reaches this (5x chance on 10 classes). The
# warm-up's collapse rule only applies from then on, so a run that stays below it throughout
# cannot collapse: it is reported as never learned, not as a run that kept its accuracy.
LEARNED_ACCURACY = 0.5


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
        return singular_values(self.features)


def plasticity_loss(accuracy, reference: float | None = None) -> np.ndarray:
    """PL_i = reference − accuracy_i; the reference defaults to the first entry (task 0)."""
    accuracy = np.asarray(accuracy, dtype=float)
    if accuracy.ndim != 1 or len(accuracy) == 0:
        raise ValueError(
            f"plasticity_loss: need a non-empty 1-D accuracy array, got {accuracy.shape}"
        )
    return (accuracy[0] if reference is None else float(reference)) - accuracy


def _layers(activations, name: str) -> list[np.ndarray]:
    """One [N, D] array, or several with the same N (one per layer), as float64 arrays."""
    layers = [activations] if isinstance(activations, np.ndarray) else list(activations)
    if not layers or any(np.ndim(a) != 2 or len(a) == 0 for a in layers):
        raise ValueError(f"{name}: need one or more non-empty [N, D] activation arrays")
    if len({len(a) for a in layers}) != 1:
        raise ValueError(f"{name}: the layers' arrays have different numbers of inputs")
    return [np.asarray(a, dtype=np.float64) for a in layers]


def dead_fraction(activations) -> float:
    """Fraction of units (columns of [N, D] post-ReLU activations, or of several such arrays
    with the same N, e.g. one per hidden layer) that are zero for all N inputs."""
    layers = _layers(activations, "dead_fraction")
    dead = sum(int((~np.any(a != 0, axis=0)).sum()) for a in layers)
    return dead / sum(a.shape[1] for a in layers)


def effective_rank(features, sigma=None) -> float:
    """exp(H(p)) with p = σ / Σσ over the singular values σ of the [N, D] feature matrix
    (uncentred, in float64); between 1 and min(N, D); 0 for an all-zero matrix.

    σ comes from the eigenvalues of the D x D Gram matrix: O(N D²) and a small symmetric
    eigenproblem instead of an SVD of the tall matrix. Squaring loses the precision of the
    smallest σ, whose share of the entropy is negligible. ``sigma``: the features' singular
    values when already known (:func:`singular_values`).
    """
    sigma = singular_values(features) if sigma is None else sigma
    total = sigma.sum()
    if total == 0:
        return 0.0
    p = sigma[sigma > 0] / total
    return float(np.exp(-(p * np.log(p)).sum()))


def weight_norm(parameters: Iterable) -> float:
    """sqrt(Σ θ²) over all the given parameter arrays (accumulated in float64)."""
    return float(np.sqrt(sum(np.square(np.asarray(p, dtype=np.float64)).sum() for p in parameters)))


def dormant_fraction(activations, tau: float = 0.025) -> float:
    """Share of τ-dormant units over one or more [N, D] activation arrays (one per layer):
    unit i of a layer is dormant when s_i = E|h_i| / mean_k E|h_k| ≤ τ (ReDo's score; a layer
    whose units are all zero counts wholly dormant)."""
    layers = _layers(activations, "dormant_fraction")
    dormant = 0
    for layer in layers:
        score = np.abs(layer).mean(axis=0)
        mean = score.mean()
        dormant += int(score.size if mean == 0 else (score / mean <= tau).sum())
    return dormant / sum(a.shape[1] for a in layers)


def singular_values(features) -> np.ndarray:
    """Singular values of [N, D] features, ascending (via the D x D Gram matrix, float64)."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2:
        raise ValueError(f"need an [N, D] feature matrix, got shape {features.shape}")
    return np.sqrt(np.clip(np.linalg.eigvalsh(features.T @ features), 0, None))


def feature_rank(features, delta: float = 0.01, sigma=None) -> int:
    """srank_δ: the smallest k with Σ_{i≤k} σ_i / Σ σ ≥ 1 − δ (σ in decreasing order); 0 for
    an all-zero matrix."""
    sigma = (singular_values(features) if sigma is None else sigma)[::-1]
    total = sigma.sum()
    if total == 0:
        return 0
    return int(np.searchsorted(np.cumsum(sigma) / total, 1 - delta - 1e-12) + 1)


def distance_from_init(parameters: Iterable, initial: Iterable | None) -> float:
    """‖θ − θ₀‖ over all parameter arrays (float64); NaN without the initial parameters."""
    if initial is None:
        return float("nan")
    return weight_norm(
        np.asarray(p, dtype=np.float64) - np.asarray(p0, dtype=np.float64)
        for p, p0 in zip(parameters, initial, strict=True)
    )


def stable_rank(features, sigma=None) -> float:
    """‖H‖_F² / ‖H‖₂² = Σσ² / σ_max² of the [N, D] feature matrix (uncentred, float64);
    between 1 and min(N, D); 0 for an all-zero matrix (σ² are the eigenvalues of the D x D
    Gram matrix)."""
    sigma = singular_values(features) if sigma is None else sigma
    if sigma.size == 0 or sigma[-1] <= 0:
        return 0.0
    return float(np.square(sigma).sum() / sigma[-1] ** 2)


def duplicated_fraction(activations, threshold: float = 0.95) -> float:
    """Share of units (columns of one or more [N, D] activation arrays, one per layer, pooled)
    that have another unit of the same layer whose activation vector over the N inputs has
    cosine similarity > ``threshold`` (Joudaki et al. 2025). Cosine ignores scale, so a scaled
    copy counts.

    A unit that is zero on every input (dead) has no defined cosine: it is never a duplicate
    nor anyone's partner (dead units are counted by :func:`dead_fraction`), but it stays in the
    denominator, which is every unit of every layer.
    """
    layers = _layers(activations, "duplicated_fraction")
    duplicated = 0
    for layer in layers:
        # The cosines from the Gram matrix: no normalised copy of the [N, D] activations.
        gram = layer.T @ layer
        norms = np.sqrt(np.diag(gram))
        alive = norms > 0
        cosine = gram[np.ix_(alive, alive)] / np.outer(norms[alive], norms[alive])
        np.fill_diagonal(cosine, -np.inf)
        duplicated += int((cosine > threshold).any(axis=1).sum())
    return duplicated / sum(layer.shape[1] for layer in layers)


def sign_entropy(activations) -> float:
    """Mean over units (columns of one or more [N, D] activation arrays, all layers pooled) of
    the binary entropy in bits of p_i = P(h_i > 0) over the N inputs: 1 for a unit on for half
    of the inputs, 0 for a unit always on or always off (dead)."""
    layers = _layers(activations, "sign_entropy")
    p = np.concatenate([(layer > 0).mean(axis=0) for layer in layers])
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -(p * np.log2(p) + (1 - p) * np.log2(1 - p))
    return float(np.nan_to_num(entropy, nan=0.0).mean())  # 0 log 0 = 0 at p = 0 or 1


def preactivation_mean(pre_activations) -> float:
    """Mean of each hidden layer's pre-activations (the linear layer's output, before any
    LayerNorm and the ReLU; [N, units] per layer) over the inputs and units, averaged over the
    layers (float64); NaN when the pre-activations are unknown (None)."""
    if pre_activations is None:
        return float("nan")
    return float(np.mean([z.mean() for z in _layers(pre_activations, "preactivation_mean")]))


def preactivation_std(pre_activations) -> float:
    """Standard deviation (ddof 0) of each hidden layer's pre-activations over the inputs and
    units together (every entry of its [N, units] array), averaged over the layers (float64);
    NaN when the pre-activations are unknown (None)."""
    if pre_activations is None:
        return float("nan")
    return float(np.mean([z.std() for z in _layers(pre_activations, "preactivation_std")]))


def feature_norm(features) -> float:
    """Mean over the N rows of [N, D] features of their Euclidean norm ‖h‖ (float64)."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) == 0:
        raise ValueError(f"feature_norm: need a non-empty [N, D] array, got {features.shape}")
    return float(np.sqrt(np.einsum("ij,ij->i", features, features)).mean())


def degenerate_so_far(rows) -> bool:
    """Whether the last of a run's earlier log rows (dicts) was flagged degenerate: the flag
    never clears, and a resumed job reads it from its saved rows."""
    return bool(rows) and bool(rows[-1].get("degenerate", False))


def degenerate(accuracy: float, num_classes: int, already: bool = False) -> bool:
    """The `degenerate` flag (DESIGN §3b): true when ``already`` (an earlier task or epoch was
    degenerate: the flag never clears) or when ``accuracy`` is within
    :data:`DEGENERATE_MARGIN` of chance, 1 / ``num_classes``."""
    if num_classes < 1:
        raise ValueError(f"degenerate: need at least one class, got {num_classes}")
    return bool(already) or abs(float(accuracy) - 1.0 / num_classes) <= DEGENERATE_MARGIN


def never_learned(train_accuracy) -> bool:
    """Whether the best of a run's training accuracies stays below :data:`LEARNED_ACCURACY`
    (NaN, e.g. after a divergence, never counts as reaching it)."""
    return not bool(np.any(np.asarray(train_accuracy, dtype=float) >= LEARNED_ACCURACY))
