"""Differentiable neural-collapse penalties on a mini-batch's penultimate features.

``batch_nc1`` is NC1 of DESIGN §5 (tr(Σ_W Σ_B⁺)/C) computed on one mini-batch with autograd
support. It never forms the D×D matrices: with M̃ the K×D centred class means of the K
classes present in the batch, G = M̃M̃ᵀ (K×K) and A = Z M̃ᵀ (Z = features minus their class
mean),

    tr(Σ_W Σ_B⁺)/K = tr(G⁺ G⁺ AᵀA) / N,

because Σ_B⁺ = K·M̃ᵀ G⁺² M̃. G has rank ≤ K−1 (its rows sum to zero), so its pseudo-inverse
keeps only eigenvalues above ``rtol`` of the largest, as the offline metric does; the
pseudo-inverse has an analytic gradient, so no eigenvector derivative (which is unstable for
close eigenvalues) is taken. Everything runs in float64 whatever the feature dtype.

``nc2_etf_distance`` and ``nc3_self_duality`` are DESIGN §5's ``nc2_etf_weights`` and ``nc3``
with autograd support (NC3 on a mini-batch's class means), the distances of the paper's third
"next check" (regularisers aimed at NC2 and NC3). Both compare unit-norm matrices, so they
are bounded and invariant to the scale of W and of the features: a regulariser that pushes
them up (a negative strength) cannot diverge by inflating a norm.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def batch_nc1(features: torch.Tensor, labels: torch.Tensor, rtol: float = 1e-10) -> torch.Tensor:
    """NC1 of a mini-batch over the classes present in it (a 0-d float64 tensor).

    Classes absent from the batch are left out (K = classes present). With fewer than two
    classes present NC1 is undefined and NaN is returned.
    """
    h = features.flatten(1).to(torch.float64)
    present, index = torch.unique(labels, return_inverse=True)
    num_present = present.numel()
    if num_present < 2:
        return torch.full((), float("nan"), dtype=torch.float64, device=h.device)
    onehot = F.one_hot(index, num_present).to(h.dtype)  # N x K
    means = (onehot.T @ h) / onehot.sum(0)[:, None]  # K x D
    within = h - means[index]
    centred_means = means - means.mean(0, keepdim=True)
    gram = centred_means @ centred_means.T
    gram_pinv = torch.linalg.pinv(gram, rtol=rtol, hermitian=True)
    projected = within @ centred_means.T  # N x K
    return torch.trace(gram_pinv @ gram_pinv @ (projected.T @ projected)) / h.shape[0]


def simplex_etf_gram(num_classes: int, **tensor_options) -> torch.Tensor:
    """E = (I − 11ᵀ/C)/√(C−1): the Gram matrix of a simplex ETF, of unit Frobenius norm."""
    eye = torch.eye(num_classes, **tensor_options)
    return (eye - 1.0 / num_classes) / math.sqrt(num_classes - 1)


def nc2_etf_distance(weight: torch.Tensor) -> torch.Tensor:
    """‖G/‖G‖_F − E‖_F with G = WWᵀ (DESIGN §5's ``nc2_etf_weights``), a 0-d float64 tensor.

    Bounded: 0 ≤ distance ≤ √2, because G and E are positive semi-definite of unit norm, so
    their inner product is ≥ 0 and the squared distance 2 − 2⟨G/‖G‖_F, E⟩ is ≤ 2. It is 0
    exactly when the rows of W form a simplex ETF (any scale, any rotation).
    """
    w = weight.to(torch.float64)
    gram = w @ w.T
    etf = simplex_etf_gram(gram.shape[0], dtype=gram.dtype, device=gram.device)
    return torch.linalg.matrix_norm(gram / torch.linalg.matrix_norm(gram) - etf)


def nc3_self_duality(
    weight: torch.Tensor, features: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """‖W/‖W‖_F − M̃/‖M̃‖_F‖_F² (DESIGN §5's ``nc3``) on a mini-batch, a 0-d float64 tensor.

    M̃ holds the centred class means of the K classes present in the batch (centred on the
    mean of those K means) and W only their rows, so with every class present this is ``nc3``
    of these features. Bounded: 0 ≤ value ≤ 4 (the squared distance of two unit vectors).
    With fewer than two classes present M̃ is zero and NC3 undefined: a zero is returned that
    keeps the graph (its gradient is zero), so the loss term is harmless.
    """
    h = features.flatten(1).to(torch.float64)
    w = weight.to(torch.float64)
    present, index = torch.unique(labels, return_inverse=True)
    num_present = present.numel()
    if num_present < 2:
        return 0.0 * (h.sum() + w.sum())
    onehot = F.one_hot(index, num_present).to(h.dtype)  # N x K
    means = (onehot.T @ h) / onehot.sum(0)[:, None]  # K x D
    centred_means = means - means.mean(0, keepdim=True)
    rows = w[present]
    unit_rows = rows / torch.linalg.matrix_norm(rows)
    unit_means = centred_means / torch.linalg.matrix_norm(centred_means)
    return (unit_rows - unit_means).square().sum()


def paper_nc_penalty(nc1: torch.Tensor, lam: float, cap: float) -> torch.Tensor:
    """The paper's term added to the loss: −λ·min(NC1, cap) (rewards within-class spread)."""
    return -lam * torch.clamp(nc1, max=cap)


def stable_nc_penalty(nc1: torch.Tensor, lam: float, target: float) -> torch.Tensor:
    """The stable variant: λ·max(0, log(target) − log NC1).

    It only acts once batch NC1 has collapsed below ``target`` and then pushes it back up to
    the target, not to infinity; in log scale, so the pull does not grow with the feature
    scale and cannot outweigh the cross-entropy by shrinking the class-mean distances (which
    is how the paper's unbounded −λ·NC1 reward destroys warm-up accuracy).
    """
    # NC1 is 0 when all class means coincide (e.g. dead features): a finite, maximal pull.
    nc1 = nc1.clamp_min(1e-12)
    return lam * torch.relu(torch.log(torch.as_tensor(target, dtype=nc1.dtype)) - torch.log(nc1))
