"""Plasticity measures: PL, dead units, effective rank, weight norm."""

import numpy as np
import pytest

from ncplasticity.plasticity import (
    dead_fraction,
    distance_from_init,
    dormant_fraction,
    effective_rank,
    feature_rank,
    plasticity_loss,
    weight_norm,
)


def test_plasticity_loss_relative_to_first_task_or_reference():
    np.testing.assert_allclose(plasticity_loss([0.9, 0.8, 0.95]), [0.0, 0.1, -0.05])
    np.testing.assert_allclose(plasticity_loss([0.9, 0.8], reference=1.0), [0.1, 0.2])
    with pytest.raises(ValueError, match="non-empty 1-D"):
        plasticity_loss([])


def test_dead_fraction_counts_units_zero_on_every_input():
    layer1 = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 2.0]])  # unit 0 dead
    layer2 = np.array([[0.0], [0.0]])  # dead
    assert dead_fraction(layer1) == pytest.approx(1 / 3)
    assert dead_fraction([layer1, layer2]) == pytest.approx(2 / 4)
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        dead_fraction(np.zeros(3))


def test_effective_rank_of_known_spectra():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(50, 50)))
    equal = q[:, :4] * 3.0  # four equal singular values
    assert effective_rank(equal) == pytest.approx(4.0)
    assert effective_rank(np.outer(rng.normal(size=20), rng.normal(size=6))) == pytest.approx(1.0)
    assert effective_rank(np.zeros((5, 3))) == 0.0
    features = rng.normal(size=(200, 30)) * np.linspace(0.1, 3, 30)
    sigma = np.linalg.svd(features, compute_uv=False)
    p = sigma / sigma.sum()
    assert effective_rank(features.astype(np.float16)) == pytest.approx(
        np.exp(-(p * np.log(p)).sum()), rel=1e-3
    )


def test_weight_norm_over_all_arrays():
    assert weight_norm([np.ones((3, 1)), np.full(1, 2.0, np.float32)]) == pytest.approx(np.sqrt(7))


def test_dormant_fraction_uses_redos_score_per_layer():
    # Layer 1: scores |h| means 1, 1, 0.01 -> mean 0.67, s = 1.49, 1.49, 0.015 -> 1 dormant.
    layer1 = np.array([[1.0, -1.0, 0.01], [1.0, 1.0, -0.01]])
    layer2 = np.zeros((2, 2))  # all zero: wholly dormant
    assert dormant_fraction(layer1) == pytest.approx(1 / 3)
    assert dormant_fraction([layer1, layer2]) == pytest.approx(3 / 5)
    assert dormant_fraction(layer1, tau=0.0) == 0


def test_feature_rank_counts_the_singular_values_holding_1_minus_delta():
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.normal(size=(6, 6)))[0]
    features = np.diag([10.0, 5.0, 1.0, 0.01, 0, 0]) @ basis  # σ = 10, 5, 1, 0.01
    assert feature_rank(features, delta=0.01) == 3
    assert feature_rank(features, delta=0.5) == 1
    assert feature_rank(features, delta=1e-4) == 4
    assert feature_rank(np.zeros((3, 4))) == 0


def test_distance_from_init():
    before = [np.zeros((2, 2)), np.ones(3)]
    after = [np.full((2, 2), 1.0), np.ones(3)]
    assert distance_from_init(after, before) == pytest.approx(2.0)
    assert np.isnan(distance_from_init(after, None))
