"""Plasticity measures shared by both experiments (numpy only, no torch).

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
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ncplasticity.metrics import Metric, register


def plasticity_loss(accuracy, reference: float | None = None) -> np.ndarray:
    """PL_i = reference − accuracy_i; the reference defaults to the first entry (task 0)."""
    accuracy = np.asarray(accuracy, dtype=float)
    if accuracy.ndim != 1 or len(accuracy) == 0:
        raise ValueError(
            f"plasticity_loss: need a non-empty 1-D accuracy array, got {accuracy.shape}"
        )
    return (accuracy[0] if reference is None else float(reference)) - accuracy


def dead_fraction(activations) -> float:
    """Fraction of units (columns of [N, D] post-ReLU activations, or of several such arrays
    with the same N, e.g. one per hidden layer) that are zero for all N inputs."""
    layers = [activations] if isinstance(activations, np.ndarray) else list(activations)
    if not layers or any(np.ndim(a) != 2 or len(a) == 0 for a in layers):
        raise ValueError("dead_fraction: need one or more non-empty [N, D] activation arrays")
    dead = sum(int((~np.any(np.asarray(a) != 0, axis=0)).sum()) for a in layers)
    return dead / sum(np.shape(a)[1] for a in layers)


def effective_rank(features) -> float:
    """exp(H(p)) with p = σ / Σσ over the singular values σ of the [N, D] feature matrix
    (uncentred, in float64); between 1 and min(N, D); 0 for an all-zero matrix.

    σ comes from the eigenvalues of the D x D Gram matrix: O(N D²) and a small symmetric
    eigenproblem instead of an SVD of the tall matrix. Squaring loses the precision of the
    smallest σ, whose share of the entropy is negligible.
    """
    sigma = _singular_values(features)
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
    layers = [activations] if isinstance(activations, np.ndarray) else list(activations)
    if not layers or any(np.ndim(a) != 2 or len(a) == 0 for a in layers):
        raise ValueError("dormant_fraction: need one or more non-empty [N, D] activation arrays")
    dormant = 0
    for layer in layers:
        score = np.abs(np.asarray(layer, dtype=np.float64)).mean(axis=0)
        mean = score.mean()
        dormant += int(score.size if mean == 0 else (score / mean <= tau).sum())
    return dormant / sum(np.shape(a)[1] for a in layers)


def _singular_values(features) -> np.ndarray:
    """Singular values of [N, D] features, ascending (via the D x D Gram matrix, float64)."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2:
        raise ValueError(f"need an [N, D] feature matrix, got shape {features.shape}")
    return np.sqrt(np.clip(np.linalg.eigvalsh(features.T @ features), 0, None))


def feature_rank(features, delta: float = 0.01) -> int:
    """srank_δ: the smallest k with Σ_{i≤k} σ_i / Σ σ ≥ 1 − δ (σ in decreasing order); 0 for
    an all-zero matrix."""
    sigma = _singular_values(features)[::-1]
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


# Registry entries (ncplasticity.metrics): the continual loop computes each from the probe.
for _name, _label, _direction, _compute in (
    ("dead_fraction", "dead ReLU fraction", 1, lambda probe: dead_fraction(probe.hidden)),
    ("effective_rank", "effective rank of features", -1, lambda p: effective_rank(p.features)),
    ("weight_norm", "weight norm", 1, lambda probe: weight_norm(probe.parameters)),
    ("dormant_fraction", "τ-dormant unit fraction", 1, lambda p: dormant_fraction(p.hidden)),
    ("feature_rank", "feature rank srank", -1, lambda p: feature_rank(p.features)),
    (
        "distance_from_init",
        "distance from initial weights",
        1,
        lambda p: distance_from_init(p.parameters, p.initial_parameters),
    ),
):
    register(Metric(_name, _label, "plasticity", _direction, plotted=True, compute=_compute))
