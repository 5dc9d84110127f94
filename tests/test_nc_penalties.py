import math

import numpy as np
import pytest
import torch

from ncplasticity.nc import collapse_metrics
from ncplasticity.nc_penalties import (
    batch_nc1,
    nc2_etf_distance,
    nc3_self_duality,
    paper_nc_penalty,
    stable_nc_penalty,
)

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


# --- NC2 (ETF distance of the classifier's Gram matrix) and NC3 (self-duality) ---


def random_problem(seed, classes=4, dim=6, per_class=3):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), per_class)
    features = (
        rng.normal(size=(classes * per_class, dim)) + 2 * rng.normal(size=(classes, dim))[labels]
    )
    return rng.normal(size=(classes, dim)), features, labels


def simplex_etf(classes, dim, scale=3.0, seed=0):
    """C x D rows forming a simplex ETF of norm ``scale``, randomly rotated (D ≥ C)."""
    rotation, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(dim, dim)))
    centred = (np.eye(classes) - 1.0 / classes) @ rotation[:classes]
    return scale * centred / np.linalg.norm(centred, axis=1, keepdims=True)


@pytest.mark.parametrize("classes,dim", [(4, 6), (10, 3)])  # D < C: a rank-deficient Gram
def test_nc2_etf_distance_equals_the_offline_metric(classes, dim):
    weight, features, labels = random_problem(classes + dim, classes, dim)
    expected = collapse_metrics(features, labels, weight, np.zeros(classes))["nc2_etf_weights"]
    value = nc2_etf_distance(torch.as_tensor(weight, dtype=torch.float32))
    assert value.dtype == torch.float64
    assert value.item() == pytest.approx(expected, rel=1e-6)  # from float32 weights


@pytest.mark.parametrize("classes,dim", [(4, 6), (10, 3)])
def test_nc3_self_duality_equals_the_offline_metric_with_every_class_present(classes, dim):
    weight, features, labels = random_problem(classes + dim, classes, dim)
    expected = collapse_metrics(features, labels, weight, np.zeros(classes))["nc3"]
    value = nc3_self_duality(*(torch.as_tensor(a) for a in (weight, features, labels)))
    assert value.dtype == torch.float64 and value.item() == pytest.approx(expected, rel=1e-12)


def test_nc3_self_duality_uses_only_the_classes_present():
    weight, features, labels = random_problem(1, classes=6)
    present = labels < 4  # classes 4 and 5 absent from the batch
    expected = collapse_metrics(features[present], labels[present], weight[:4], np.zeros(4))["nc3"]
    value = nc3_self_duality(
        *(torch.as_tensor(a) for a in (weight, features[present], labels[present]))
    )
    assert value.item() == pytest.approx(expected, rel=1e-12)


def test_nc2_etf_distance_gradient_matches_finite_differences():
    weight = torch.as_tensor(random_problem(2, classes=5, dim=4)[0]).requires_grad_(True)
    assert torch.autograd.gradcheck(nc2_etf_distance, (weight,))


def test_nc3_self_duality_gradient_matches_finite_differences():
    weight, features, _ = (torch.as_tensor(a) for a in random_problem(3, classes=10, dim=7))
    weight.requires_grad_(True)
    features = features[: len(LABELS)].clone().requires_grad_(True)
    # LABELS: class 4 has one sample, classes 5..9 are absent.
    assert torch.autograd.gradcheck(lambda w, h: nc3_self_duality(w, h, LABELS), (weight, features))


@pytest.mark.parametrize("dim", [4, 9])  # D = C: the ETF spans its whole (C−1)-dim subspace
def test_an_exact_simplex_etf_is_at_zero_distance(dim):
    classes = 4
    weight = torch.as_tensor(simplex_etf(classes, dim))
    assert nc2_etf_distance(weight).item() == pytest.approx(0.0, abs=1e-12)
    # Collapsed features on the (self-dual) ETF, shifted by a global mean: NC3 = 0 too.
    labels = torch.arange(classes).repeat(3)
    features = 0.5 * weight[labels] + torch.linspace(-1, 1, dim, dtype=torch.float64)
    assert nc3_self_duality(weight, features, labels).item() == pytest.approx(0.0, abs=1e-12)


def test_the_distances_are_scale_invariant_and_bounded():
    weight, features, labels = (torch.as_tensor(a) for a in random_problem(4))
    nc2, nc3 = nc2_etf_distance(weight), nc3_self_duality(weight, features, labels)
    assert nc2_etf_distance(7 * weight).item() == pytest.approx(nc2.item())
    assert nc3_self_duality(7 * weight, 0.1 * features, labels).item() == pytest.approx(nc3.item())
    # The bounds are reached: all rows equal (G = c·11ᵀ is orthogonal to E: √2), W = −M̃ (4).
    same = torch.ones(5, 3, dtype=torch.float64)
    assert nc2_etf_distance(same).item() == pytest.approx(math.sqrt(2))
    means = torch.as_tensor(simplex_etf(4, 6))
    assert nc3_self_duality(-means, means, torch.arange(4)).item() == pytest.approx(4.0)


def test_nc3_self_duality_with_one_class_is_a_zero_that_keeps_the_graph():
    weight = torch.randn(3, 5, requires_grad=True)
    features = torch.randn(4, 5, requires_grad=True)
    value = nc3_self_duality(weight, features, torch.full((4,), 2))
    assert value.item() == 0.0 and value.requires_grad
    value.backward()
    assert (weight.grad == 0).all() and (features.grad == 0).all()
