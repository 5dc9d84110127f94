"""Plasticity measures: PL, dead units, ranks, weight norm, duplicated units, sign entropy,
pre-activation moments, and their catalogue entries."""

import math

import numpy as np
import pytest
import torch

from ncplasticity import metrics
from ncplasticity.continual.compiled import task_inputs
from ncplasticity.continual.measures import probe_features
from ncplasticity.networks import MLP
from ncplasticity.plasticity import (
    ProbeState,
    dead_fraction,
    degenerate,
    distance_from_init,
    dormant_fraction,
    duplicated_fraction,
    effective_rank,
    feature_norm,
    feature_rank,
    plasticity_loss,
    preactivation_mean,
    preactivation_std,
    sign_entropy,
    stable_rank,
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


def test_stable_rank_of_known_spectra_and_against_dense_norms():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(40, 40)))
    assert stable_rank(q[:, :5] * 2.5) == pytest.approx(5.0)  # orthogonal, equal norms: D
    assert stable_rank(np.outer(rng.normal(size=30), rng.normal(size=7))) == pytest.approx(1.0)
    assert stable_rank(np.zeros((4, 3))) == 0.0
    features = rng.normal(size=(300, 25)) * np.linspace(0.2, 4, 25)
    dense = np.linalg.norm(features, "fro") ** 2 / np.linalg.norm(features, 2) ** 2
    assert stable_rank(features.astype(np.float32)) == pytest.approx(dense, rel=1e-6)
    assert 1 <= stable_rank(features) <= 25


def test_duplicated_fraction_counts_units_with_a_near_copy_in_their_layer():
    rng = np.random.default_rng(1)
    a = np.abs(rng.normal(size=50))
    b = rng.normal(size=50)
    b = b - (b @ a) / (a @ a) * a  # orthogonal to a
    layer = np.stack([a, a, b], axis=1)
    assert duplicated_fraction(layer) == pytest.approx(2 / 3)
    scaled = np.stack([a, 3.0 * a, b], axis=1)  # cosine ignores scale
    assert duplicated_fraction(scaled) == pytest.approx(2 / 3)
    assert duplicated_fraction(np.stack([a, b], axis=1)) == 0.0
    # Dead units have no cosine: never duplicates, even of each other, but in the denominator.
    dead = np.zeros((50, 2))
    assert duplicated_fraction(np.hstack([layer, dead])) == pytest.approx(2 / 5)
    # A copy in another layer is no duplicate; layers pool into one share.
    assert duplicated_fraction([a[:, None], np.stack([a, b], axis=1)]) == 0.0
    assert duplicated_fraction([layer, np.stack([a, b], axis=1)]) == pytest.approx(2 / 5)
    # The threshold is strict: cosine 0.9 counts at 0.85 only.
    c = 0.9 * a / np.linalg.norm(a) + math.sqrt(1 - 0.81) * b / np.linalg.norm(b)
    assert duplicated_fraction(np.stack([a, c], axis=1)) == 0.0
    assert duplicated_fraction(np.stack([a, c], axis=1), threshold=0.85) == 1.0
    with pytest.raises(ValueError, match="different numbers of inputs"):
        duplicated_fraction([np.ones((3, 2)), np.ones((4, 2))])


def test_duplicated_fraction_against_pairwise_cosines():
    rng = np.random.default_rng(2)
    base = np.maximum(rng.normal(size=(80, 6)), 0)
    layers = [
        np.hstack([base, base[:, :3] * 2 + 0.05 * np.abs(rng.normal(size=(80, 3)))]),
        np.hstack([np.maximum(rng.normal(size=(80, 5)), 0), np.zeros((80, 1))]),
    ]
    duplicated = 0
    for layer in layers:
        for i in range(layer.shape[1]):
            for j in range(layer.shape[1]):
                ni, nj = np.linalg.norm(layer[:, i]), np.linalg.norm(layer[:, j])
                if i != j and ni > 0 and nj > 0 and layer[:, i] @ layer[:, j] / ni / nj > 0.95:
                    duplicated += 1
                    break
    assert duplicated >= 6  # the near-copies of the first three units, both ways
    assert duplicated_fraction([a.astype(np.float32) for a in layers]) == pytest.approx(
        duplicated / sum(layer.shape[1] for layer in layers)
    )


def test_feature_norm_is_the_mean_euclidean_norm_of_the_rows():
    assert feature_norm(np.array([[3.0, 4.0], [0.0, 0.0], [0.0, 1.0]])) == pytest.approx(2.0)
    features = np.random.default_rng(4).random((50, 7)).astype(np.float32)
    want = np.mean([np.linalg.norm(row.astype(np.float64)) for row in features])
    assert feature_norm(features) == pytest.approx(want, rel=1e-12)
    with pytest.raises(ValueError, match="non-empty"):
        feature_norm(np.zeros((0, 3)))


@pytest.mark.parametrize(
    ("accuracy", "classes", "already", "flag"),
    [
        (0.14, 10, False, True),  # within 0.05 of 1/10
        (0.16, 10, False, False),
        (0.06, 10, False, True),  # below chance counts too
        (0.54, 2, False, True),  # a pair of classes: chance 0.5
        (0.9, 10, True, True),  # once degenerate, for ever after
    ],
)
def test_degenerate_rule(accuracy, classes, already, flag):
    assert degenerate(accuracy, classes, already) is flag


def test_sign_entropy_of_always_on_dead_and_half_on_units():
    on = np.ones((4, 2))
    half = np.array([[1.0], [0.0], [2.0], [0.0]])
    assert sign_entropy(on) == 0.0
    assert sign_entropy(np.zeros((4, 3))) == 0.0
    assert sign_entropy(half) == pytest.approx(1.0)
    assert sign_entropy([on, half]) == pytest.approx(1 / 3)  # units of all layers pooled
    rng = np.random.default_rng(3)
    layers = [rng.normal(loc=m, size=(200, 7)) for m in (-1.0, 0.0, 2.0)]
    expected = []
    for layer in layers:
        for unit in layer.T:
            p = float(np.mean(unit > 0))
            expected.append(
                0.0 if p in (0.0, 1.0) else -p * math.log2(p) - (1 - p) * math.log2(1 - p)
            )
    assert sign_entropy(layers) == pytest.approx(np.mean(expected))


@pytest.mark.parametrize("layer_norm", [False, True])
def test_preactivation_moments_of_a_tiny_mlp_against_numpy(layer_norm):
    torch.manual_seed(0)
    model = MLP(in_features=6, hidden_sizes=(5, 4), num_classes=3, layer_norm=layer_norm)
    model = model.double()
    if layer_norm:  # non-trivial LayerNorm parameters
        for norm in model.norms:
            torch.nn.init.normal_(norm.weight)
            torch.nn.init.normal_(norm.bias)
    for layer in model.hidden:
        torch.nn.init.normal_(layer.bias)
    x = np.random.default_rng(4).normal(size=(9, 6))
    pre, post = model.pre_and_post_activations(torch.from_numpy(x))
    pre = [z.detach().numpy() for z in pre]
    post = [h.detach().numpy() for h in post]
    # Direct numpy forward pass in float64.
    h, expected_pre, expected_post = x, [], []
    for i, layer in enumerate(model.hidden):
        z = h @ layer.weight.detach().numpy().T + layer.bias.detach().numpy()
        expected_pre.append(z)
        if layer_norm:
            norm = model.norms[i]
            z = (z - z.mean(1, keepdims=True)) / np.sqrt(z.var(1, keepdims=True) + norm.eps)
            z = z * norm.weight.detach().numpy() + norm.bias.detach().numpy()
        h = np.maximum(z, 0)
        expected_post.append(h)
    for got, want in zip(pre + post, expected_pre + expected_post, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    hidden = [h.detach().numpy() for h in model.hidden_activations(torch.from_numpy(x))]
    for got, want in zip(hidden, post, strict=True):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(model.features(torch.from_numpy(x)).detach().numpy(), post[-1])
    assert preactivation_mean(pre) == pytest.approx(np.mean([z.mean() for z in expected_pre]))
    assert preactivation_std(pre) == pytest.approx(
        np.mean([np.sqrt(np.mean((z - z.mean()) ** 2)) for z in expected_pre])
    )
    assert preactivation_mean(pre[0]) == pytest.approx(expected_pre[0].mean())
    assert np.isnan(preactivation_mean(None)) and np.isnan(preactivation_std(None))


def test_task_inputs_are_numpys_fancy_indexing():
    x = np.random.default_rng(4).random((9, 12)).astype(np.float32)
    permutation = np.random.default_rng(5).permutation(12)
    rows = np.array([7, 0, 3, 3])
    for got, want in (
        (task_inputs(x, permutation), x[:, permutation]),
        (task_inputs(x, permutation, rows), x[rows][:, permutation]),
        (task_inputs(x[::2], permutation, [1, 0]), x[::2][[1, 0]][:, permutation]),
    ):
        assert got.flags.c_contiguous and got.dtype == np.float32
        np.testing.assert_array_equal(got, want)
    with pytest.raises(IndexError, match="out of range"):
        task_inputs(x, permutation, [9])
    with pytest.raises(IndexError, match="out of range"):
        task_inputs(x, np.arange(13))


def test_probe_features_pass_the_pre_activations():
    model = MLP(in_features=6, hidden_sizes=(5, 4), num_classes=3)
    x = np.random.default_rng(5).random((7, 6)).astype(np.float32)
    inputs = task_inputs(x, np.arange(6)[::-1])
    features, hidden = probe_features(model, inputs, torch.device("cpu"))
    again, hidden_again, pre = probe_features(model, inputs, torch.device("cpu"), True)
    with torch.no_grad():
        want_pre, want_post = model.pre_and_post_activations(torch.from_numpy(x[:, ::-1].copy()))
    np.testing.assert_array_equal(features, again)
    for got, want in zip(hidden + hidden_again, want_post + want_post, strict=True):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-6)
    assert all(isinstance(z, np.ndarray) for z in pre)
    for got, want in zip(pre, want_pre, strict=True):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-6)


NEW_ENTRIES = {
    # name: (label, direction, computed from the probe)
    "stable_rank": ("stable rank of features", -1, True),
    "duplicated_fraction": ("duplicated unit fraction (cosine > 0.95)", 1, True),
    "sign_entropy": ("unit sign entropy (bits)", -1, True),
    "preactivation_mean": ("pre-activation mean (over layers)", -1, True),
    "preactivation_std": ("pre-activation std (over layers)", 1, True),
    "feature_norm": ("feature norm (mean ‖h‖)", 1, True),
    "gradient_norm": ("gradient norm (mean over task)", -1, False),
    "step_plasticity": ("per-step plasticity", -1, False),
    "churn": ("churn of probe logits", 1, False),
}


def test_registry_entries_of_the_new_measures():
    registry = metrics.registry()
    for name, (label, direction, computed) in NEW_ENTRIES.items():
        metric = registry[name]
        assert (metric.group, metric.label, metric.direction) == ("plasticity", label, direction)
        assert (metric.compute is not None) == computed
    computed = {m.name for m in metrics.select(computed=True)}
    assert {"gradient_norm", "step_plasticity", "churn"}.isdisjoint(computed)


def test_registered_measures_compute_from_a_probe_state():
    rng = np.random.default_rng(6)
    hidden = [np.maximum(rng.normal(size=(30, 5)), 0) for _ in range(2)]
    pre = [rng.normal(loc=1.0, scale=2.0, size=(30, 5)) for _ in range(2)]
    params = [rng.normal(size=(5, 5))]
    registry = metrics.registry()
    state = ProbeState(hidden[-1], hidden, params, None, pre)
    assert registry["stable_rank"].compute(state) == pytest.approx(stable_rank(hidden[-1]))
    assert registry["duplicated_fraction"].compute(state) == duplicated_fraction(hidden)
    assert registry["sign_entropy"].compute(state) == pytest.approx(sign_entropy(hidden))
    assert registry["preactivation_mean"].compute(state) == pytest.approx(preactivation_mean(pre))
    assert registry["preactivation_std"].compute(state) == pytest.approx(preactivation_std(pre))
    assert registry["feature_norm"].compute(state) == pytest.approx(feature_norm(hidden[-1]))
    # The warm start passes no pre-activations: those two are NaN, the others finite.
    warm = ProbeState(hidden[-1], [hidden[-1]], params)
    values = {m.name: m.compute(warm) for m in metrics.select(computed=True)}
    assert np.isnan(values["preactivation_mean"]) and np.isnan(values["preactivation_std"])
    unknown = {"preactivation_mean", "preactivation_std", "distance_from_init"}
    assert all(np.isfinite(v) for k, v in values.items() if k not in unknown)


def test_the_catalogue_is_in_group_order_and_covers_the_nc_engine():
    from ncplasticity.nc import METRIC_KEYS

    catalogue = metrics.registry()
    groups = [m.group for m in catalogue.values()]
    assert groups == sorted(groups, key=metrics.GROUPS.index)
    assert [name for name in catalogue if name in METRIC_KEYS] == list(METRIC_KEYS)
    assert metrics.ProbeState is ProbeState
