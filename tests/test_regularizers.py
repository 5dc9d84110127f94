import math

import numpy as np
import pytest
import torch

from ncplasticity.regularizers import batch_nc1, paper_nc_penalty, stable_nc_penalty

# Class 4 has one sample, classes 5..9 are absent from the batch.
LABELS = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 4])


def reference_nc1(h, y):
    """DESIGN §5 NC1 over the classes present, straight from the D x D matrices."""
    classes = np.unique(y)
    means = np.stack([h[y == c].mean(0) for c in classes])
    centred = means - means.mean(0)
    within = h - means[np.searchsorted(classes, y)]
    sigma_w = within.T @ within / len(h)
    sigma_b = centred.T @ centred / len(classes)
    return np.trace(sigma_w @ np.linalg.pinv(sigma_b, rcond=1e-10, hermitian=True)) / len(classes)


@pytest.mark.parametrize("dim", [2, 7])  # 2 < K-1: Σ_B has rank 2, the pseudo-inverse matters
def test_batch_nc1_matches_the_reference_definition(dim):
    h = torch.randn(12, dim, dtype=torch.float64, generator=torch.Generator().manual_seed(dim))
    assert batch_nc1(h, LABELS).item() == pytest.approx(reference_nc1(h.numpy(), LABELS.numpy()))


@pytest.mark.parametrize("dim", [2, 7])
def test_batch_nc1_gradient_matches_finite_differences(dim):
    h = torch.randn(12, dim, dtype=torch.float64, generator=torch.Generator().manual_seed(10 + dim))
    h.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: batch_nc1(x, LABELS), (h,))


def test_batch_nc1_of_float32_features_is_float64_and_differentiable():
    h = torch.randn(12, 5, requires_grad=True)
    nc1 = batch_nc1(h, LABELS)
    nc1.backward()
    assert nc1.dtype == torch.float64
    assert h.grad.dtype == torch.float32 and torch.isfinite(h.grad).all()


def test_batch_nc1_with_one_class_is_nan_without_graph():
    nc1 = batch_nc1(torch.randn(4, 3, requires_grad=True), torch.zeros(4, dtype=torch.int64))
    assert math.isnan(nc1.item()) and not nc1.requires_grad


def test_paper_penalty_rewards_nc1_up_to_the_cap():
    nc1 = torch.tensor([3.0, 500.0], dtype=torch.float64)
    assert paper_nc_penalty(nc1, lam=0.05, cap=200).tolist() == pytest.approx([-0.15, -10.0])


def test_stable_penalty_is_zero_above_target_and_pushes_nc1_up_below_it():
    above = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    below = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    assert stable_nc_penalty(above, lam=0.1, target=1.0).item() == 0.0
    penalty = stable_nc_penalty(below, lam=0.1, target=1.0)
    penalty.backward()
    assert penalty.item() == pytest.approx(0.1 * math.log(2.0))
    assert below.grad.item() == pytest.approx(-0.1 / 0.5)  # descent raises NC1


def test_stable_penalty_is_finite_when_class_means_coincide():
    # Dead features: every class mean equal, batch NC1 = 0; the pull stays finite.
    penalty = stable_nc_penalty(torch.zeros((), dtype=torch.float64), lam=0.1, target=1.0)
    assert torch.isfinite(penalty) and penalty.item() > 0
