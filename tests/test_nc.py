"""NC engine: exact cases, invariances, numerics against a plain dense reference, bad input."""

import math

import numpy as np
import pytest

from ncplasticity.nc import METRIC_KEYS, NonFiniteFeaturesError, collapse_metrics

NC_KEYS = [key for key in METRIC_KEYS if key != "accuracy"]


def simplex_etf(c: int, d: int, seed: int = 0) -> np.ndarray:
    """C x D rows (D >= C-1) of a centred simplex ETF (Gram I - 11^T/C), randomly rotated."""
    centring = np.eye(c) - 1.0 / c
    basis = np.linalg.svd(centring)[0][:, : c - 1]  # orthonormal basis of the span, C x (C-1)
    rotation, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, c - 1)))
    return centring @ basis @ rotation.T


def reference_metrics(features, labels, weight, bias) -> dict[str, float]:
    """DESIGN §5 written out densely in float64, with D x D eigh instead of the engine's SVD."""
    h = np.asarray(features, dtype=np.float64)
    w = np.asarray(weight, dtype=np.float64)
    b = np.asarray(bias, dtype=np.float64)
    c, n = len(w), len(h)
    means = np.stack([h[labels == k].mean(axis=0) for k in range(c)])
    centred = means - means.mean(axis=0)
    sigma_w = sum((h[labels == k] - means[k]).T @ (h[labels == k] - means[k]) for k in range(c)) / n
    sigma_b = centred.T @ centred / c
    eigenvalues, eigenvectors = np.linalg.eigh(sigma_b)
    eigenvalues, eigenvectors = eigenvalues[::-1][: c - 1], eigenvectors[:, ::-1][:, : c - 1]
    keep = eigenvalues > 1e-10 * eigenvalues[0]
    pinv = eigenvectors[:, keep] @ np.diag(1 / eigenvalues[keep]) @ eigenvectors[:, keep].T
    variances = [np.mean(np.sum((h[labels == k] - means[k]) ** 2, axis=1)) for k in range(c)]
    cdnv = np.mean(
        [
            (variances[i] + variances[j]) / (2 * np.sum((means[i] - means[j]) ** 2))
            for i in range(c)
            for j in range(i + 1, c)
        ]
    )
    etf = (np.eye(c) - np.ones((c, c)) / c) / np.sqrt(c - 1)

    def equinorm(rows):
        norms = np.linalg.norm(rows, axis=1)
        return np.std(norms) / np.mean(norms)

    def equiangular(rows):
        values = [
            abs(rows[i] @ rows[j] / np.linalg.norm(rows[i]) / np.linalg.norm(rows[j]) + 1 / (c - 1))
            for i in range(c)
            for j in range(c)
            if i != j
        ]
        return np.mean(values)

    def etf_distance(g):
        return np.linalg.norm(g / np.linalg.norm(g) - etf)

    distances = np.linalg.norm(h[:, None, :] - means[None, :, :], axis=2)
    nearest = np.argmin(distances, axis=1)
    predicted = np.argmax(h @ w.T + b, axis=1)
    wh = w @ centred.T
    return {
        "nc1": np.trace(sigma_w @ pinv) / c,
        "nc1_trace_ratio": np.trace(sigma_w) / np.trace(sigma_b),
        "cdnv": cdnv,
        "nc2_equinorm_means": equinorm(centred),
        "nc2_equinorm_weights": equinorm(w),
        "nc2_equiangular_means": equiangular(centred),
        "nc2_equiangular_weights": equiangular(w),
        "nc2_etf_means": etf_distance(centred @ centred.T),
        "nc2_etf_weights": etf_distance(w @ w.T),
        "nc3": np.linalg.norm(w / np.linalg.norm(w) - centred / np.linalg.norm(centred)) ** 2,
        "nc3_wh": etf_distance(wh),
        "nc4": np.mean(nearest != predicted),
        "accuracy": np.mean(predicted == labels),
    }


def random_problem(n=600, d=12, c=5, seed=0, counts=None):
    """Features with class structure plus noise, and a partly aligned classifier."""
    rng = np.random.default_rng(seed)
    labels = (
        np.repeat(np.arange(c), counts) if counts is not None else np.arange(n) % c
    )  # every class present
    labels = rng.permutation(labels)
    means = rng.normal(size=(c, d)) * 2
    features = means[labels] + rng.normal(size=(len(labels), d))
    weight = means + rng.normal(size=(c, d))
    bias = rng.normal(size=c)
    return features, labels, weight, bias


def assert_matches_reference(result, expected, rtol=1e-9):
    assert list(result) == list(METRIC_KEYS)
    for key in METRIC_KEYS:
        assert result[key] == pytest.approx(expected[key], rel=rtol, abs=1e-12), key


@pytest.mark.parametrize("d", [9, 32])
def test_exact_simplex_etf_with_self_dual_classifier_is_fully_collapsed(d):
    c = 10
    means = 3.0 * simplex_etf(c, d)
    labels = np.repeat(np.arange(c), 7)
    result = collapse_metrics(means[labels], labels, 0.5 * means, np.zeros(c))
    for key in NC_KEYS:
        assert abs(result[key]) < 1e-10, (key, result[key])
    assert result["accuracy"] == 1.0


def test_matches_dense_reference_on_a_generic_problem():
    features, labels, weight, bias = random_problem()
    result = collapse_metrics(features, labels, weight, bias)
    assert_matches_reference(result, reference_metrics(features, labels, weight, bias))
    assert 0 < result["nc1"] < 10 and 0 < result["nc4"] < 1


def test_unbalanced_classes_match_reference():
    features, labels, weight, bias = random_problem(counts=[3, 40, 400, 9, 1])
    assert_matches_reference(
        collapse_metrics(features, labels, weight, bias),
        reference_metrics(features, labels, weight, bias),
    )


def test_fewer_feature_dimensions_than_classes_minus_one():
    features, labels, weight, bias = random_problem(d=4, c=10)
    result = collapse_metrics(features, labels, weight, bias)
    assert_matches_reference(result, reference_metrics(features, labels, weight, bias))
    assert math.isfinite(result["nc1"])


def test_near_collapse_with_large_offset_in_float32_matches_float64_reference():
    c, d, per_class = 10, 64, 200
    rng = np.random.default_rng(1)
    means = simplex_etf(c, d, seed=1)
    labels = np.repeat(np.arange(c), per_class)
    features = (1000.0 + means[labels] + 1e-3 * rng.normal(size=(c * per_class, d))).astype(
        np.float32
    )
    weight, bias = means, np.zeros(c)
    expected = reference_metrics(features, labels, weight, bias)
    result = collapse_metrics(features, labels, weight, bias)
    assert 1e-7 < expected["nc1"] < 1e-2  # nearly, not exactly, collapsed
    for key in ("nc1", "nc1_trace_ratio", "cdnv"):
        assert result[key] == pytest.approx(expected[key], rel=1e-6), key

    # What the careful numerics avoid: one pass E[hh^T] - mu mu^T in float32, and pinv with
    # its default tolerance on Sigma_B.
    h = features
    class_means = np.stack([h[labels == k].mean(axis=0) for k in range(c)])
    second_moment = (h.T @ h) / np.float32(len(h))
    counts = np.bincount(labels).astype(np.float32) / len(h)
    sigma_w = second_moment - (class_means.T * counts) @ class_means
    centred = class_means - class_means.mean(axis=0)
    naive_nc1 = np.trace(sigma_w @ np.linalg.pinv(centred.T @ centred / c)) / c
    assert abs(naive_nc1 - expected["nc1"]) > 100 * expected["nc1"]


def test_invariances():
    features, labels, weight, bias = random_problem(seed=3)
    base = collapse_metrics(features, labels, weight, bias)

    order = np.random.default_rng(0).permutation(len(labels))
    shuffled = collapse_metrics(features[order], labels[order], weight, bias)
    for key in METRIC_KEYS:
        assert shuffled[key] == pytest.approx(base[key], rel=1e-10), key

    scaled = collapse_metrics(7.5 * features, labels, weight, bias)
    for key in METRIC_KEYS:
        if key not in ("nc4", "accuracy"):  # the classifier's bias does not scale with them
            assert scaled[key] == pytest.approx(base[key], rel=1e-10), key

    shifted = collapse_metrics(features + 123.0, labels, weight, bias)
    for key in METRIC_KEYS:
        if key not in ("nc4", "accuracy"):  # a shift changes the logits, not the geometry
            assert shifted[key] == pytest.approx(base[key], rel=1e-8), key


def test_float16_and_integer_features_are_computed_in_float64():
    features, labels, weight, bias = random_problem()
    half = features.astype(np.float16)
    assert_matches_reference(
        collapse_metrics(half, labels, weight, bias), reference_metrics(half, labels, weight, bias)
    )
    integers = np.round(features * 10).astype(np.int32)
    assert_matches_reference(
        collapse_metrics(integers, labels, weight, bias),
        reference_metrics(integers, labels, weight, bias),
    )


def test_coinciding_class_means_give_nan_nc1():
    labels = np.repeat(np.arange(3), 2)
    features = np.array([[1.0, 0.0], [-1.0, 0.0]] * 3) + 5.0  # every class mean is (5, 5)
    result = collapse_metrics(features, labels, np.eye(3, 2), np.zeros(3))
    assert math.isnan(result["nc1"]) and math.isnan(result["nc1_trace_ratio"])


def test_ties_go_to_the_lowest_class():
    # Both samples sit exactly between the two class means and have equal logits.
    features = np.array([[-1.0], [1.0], [0.0], [0.0]])
    labels = np.array([0, 1, 0, 1])
    result = collapse_metrics(features, labels, np.zeros((2, 1)), np.zeros(2))
    assert result["accuracy"] == 0.5  # everything predicted as class 0
    assert result["nc4"] == 0.25  # sample 1 is nearest to mean 1, predicted 0


def test_ties_are_exact_when_means_are_not_representable():
    # Means 1/3 and -1 are inexact in binary; rearranged scores broke these exact ties.
    logit_tie = collapse_metrics(
        np.array([[0.0], [-1.0], [2.0], [0.0]]),
        np.array([0, 1, 0, 0]),
        np.array([[0.0], [-1.0]]),
        np.array([-1.0, -1.0]),
    )
    assert logit_tie["accuracy"] == 1.0 and logit_tie["nc4"] == 0.0
    # h = 0 is equidistant from the means 1 and -1: nearest is class 0 (lowest index).
    mean_tie = collapse_metrics(
        np.array([[0.0], [-1.0], [2.0], [2.0]]),
        np.array([0, 1, 2, 0]),
        np.array([[0.0], [-1.0], [1.0]]),
        np.array([1.0, 0.0, 0.0]),
    )
    assert mean_tie["nc4"] == 0.25


def test_prediction_and_nearest_mean_match_direct_evaluation_on_tie_prone_integers():
    # Small integer features and classifiers make exact ties common.
    rng = np.random.default_rng(3)
    for _ in range(100):
        c = int(rng.integers(2, 5))
        labels = np.concatenate([np.arange(c), rng.integers(0, c, 8)])
        features = rng.integers(-2, 3, (len(labels), 2)).astype(float) + 100.0
        weight = rng.integers(-1, 2, (c, 2)).astype(float)
        bias = rng.integers(-1, 2, c).astype(float)
        result = collapse_metrics(features, labels, weight, bias)
        with np.errstate(invalid="ignore", divide="ignore"):  # zero rows: NC2 undefined
            expected = reference_metrics(features, labels, weight, bias)
        assert result["nc4"] == expected["nc4"]
        assert result["accuracy"] == expected["accuracy"]


def test_tiny_but_nonzero_between_class_spread_is_not_nan():
    # Class means differ by 1e-12 on an offset of 1: Sigma_B is small, not zero.
    features = np.array([[1 - 1e-13], [1 + 1e-13], [1 + 1e-12 - 1e-13], [1 + 1e-12 + 1e-13]])
    result = collapse_metrics(
        features, np.array([0, 0, 1, 1]), np.array([[1.0], [-1.0]]), np.zeros(2)
    )
    assert result["nc1"] == pytest.approx(0.02, rel=1e-2)
    assert result["nc1_trace_ratio"] == pytest.approx(0.04, rel=1e-2)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda f, y, w, b: (f, np.where(y == 2, 0, y), w, b), "class 2 has no samples"),
        (lambda f, y, w, b: (np.where(np.arange(len(f))[:, None] == 5, np.nan, f), y, w, b), "NaN"),
        (lambda f, y, w, b: (np.where(f > 3, np.inf, f), y, w, b), "inf"),
        (lambda f, y, w, b: (f, y[:-1], w, b), "labels"),
        (lambda f, y, w, b: (f[:, :-1], y, w, b), "D=12"),
        (lambda f, y, w, b: (f, y, w, b[:-1]), "bias"),
        (lambda f, y, w, b: (f, np.where(y == 0, 5, y), w, b), "0..4"),
        (lambda f, y, w, b: (f, np.where(y == 0, -1, y), w, b), "0..4"),
        (lambda f, y, w, b: (f, y.astype(float), w, b), "integers"),
        (lambda f, y, w, b: (f, y, np.where(w > 1, np.nan, w), b), "weight"),
        (lambda f, y, w, b: (f, y * 0, w[:1], b[:1]), "C >= 2"),
        (lambda f, y, w, b: (f.astype(complex), y, w, b), "real"),
        (lambda f, y, w, b: (f[:0], y[:0], w, b), "no samples"),
    ],
)
def test_bad_input_is_a_clear_value_error(mutate, message):
    with pytest.raises(ValueError, match=message):
        collapse_metrics(*mutate(*random_problem()))


def test_non_finite_features_have_their_own_error_type():
    features, labels, weight, bias = random_problem()
    features[10, 3] = np.nan
    with pytest.raises(NonFiniteFeaturesError, match=r"sample 10\)"):
        collapse_metrics(features, labels, weight, bias)
