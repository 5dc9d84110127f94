import math
import warnings

import numpy as np
import pytest
from scipy import stats as sps

from ncplasticity import stats
from ncplasticity.stats import (
    MIN_BOOTSTRAP_SEEDS,
    correlation_test,
    fisher_z_interval,
    partial_correlation,
    pearson,
    seed_interval,
    sliding_window_correlation,
    spearman,
)


@pytest.fixture
def no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def test_perfect_linear_relations_give_plus_and_minus_one():
    x = np.linspace(-3, 7, 25)
    assert pearson(x, 2.5 * x + 1) == pytest.approx(1.0, abs=1e-12)
    assert pearson(x, -0.1 * x + 4) == pytest.approx(-1.0, abs=1e-12)
    assert spearman(x, -0.1 * x + 4) == -1.0


def test_monotone_nonlinear_relation_is_spearman_one_but_not_pearson_one():
    x = np.linspace(0, 5, 30)
    y = np.exp(2 * x)
    assert spearman(x, y) == 1.0
    assert pearson(x, y) < 0.9


def test_matches_scipy_on_random_data_with_ties():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 5, 60).astype(float)  # many ties: Spearman uses average ranks
    y = x + rng.normal(size=60)
    assert pearson(x, y) == pytest.approx(sps.pearsonr(x, y).statistic, abs=1e-12)
    assert spearman(x, y) == pytest.approx(sps.spearmanr(x, y).statistic, abs=1e-12)
    r, p, n = correlation_test(x, y, "spearman")
    assert (r, n) == (pytest.approx(sps.spearmanr(x, y).statistic, abs=1e-12), 60)
    assert p == pytest.approx(sps.spearmanr(x, y).pvalue, rel=1e-9)


@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_p_values_are_scipys(method):
    """correlation_test's p-value (a t-test on r, without scipy.stats' per-call overhead) is
    scipy's pearsonr / spearmanr p-value, from 3 points up, with ties, and 0 at |r| = 1."""
    scipy_test = sps.pearsonr if method == "pearson" else sps.spearmanr
    rng = np.random.default_rng(7)
    for n in (3, 4, 5, 8, 20, 140, 1000):
        for strength in (0.0, 0.3, 3.0):
            x = rng.integers(0, 6, n).astype(float) if n > 5 else rng.normal(size=n)
            y = strength * x + rng.normal(size=n)
            r, p, count = correlation_test(x, y, method)
            expected = scipy_test(x, y)
            assert count == n and r == pytest.approx(expected.statistic, abs=1e-12)
            assert p == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)
    assert correlation_test([1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0, 8.0], method)[1] == 0.0


def test_nan_and_inf_pairs_are_dropped(no_warnings):
    x = np.array([1.0, 2.0, np.nan, 4.0, 5.0, 6.0])
    y = np.array([2.0, 1.0, 3.0, np.inf, 7.0, 6.5])
    keep = [0, 1, 4, 5]
    assert pearson(x, y) == pytest.approx(pearson(x[keep], y[keep]), abs=1e-15)
    assert correlation_test(x, y)[2] == 4


def test_undefined_correlations_are_nan_without_warnings(no_warnings):
    assert math.isnan(pearson([1.0, 2.0], [3.0, 5.0]))  # fewer than 3 points
    assert math.isnan(pearson([1.0, 2.0, np.nan, 4.0], [1.0, 2.0, 3.0, np.nan]))
    assert math.isnan(spearman([0.1] * 5, [1.0, 2.0, 3.0, 4.0, 5.0]))  # constant
    r, p, n = correlation_test([0.1] * 5, [1.0, 2.0, 3.0, 4.0, 5.0])
    assert math.isnan(r) and math.isnan(p) and n == 5


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="method"):
        correlation_test([1, 2, 3], [1, 2, 3], "kendall")
    with pytest.raises(ValueError, match="one length"):
        pearson([1, 2, 3], [1, 2])


def test_partial_correlation_matches_closed_form():
    rng = np.random.default_rng(0)
    z = rng.normal(size=200)
    x = 0.8 * z + rng.normal(size=200)
    y = -0.5 * z + 0.3 * x + rng.normal(size=200)
    rxy, rxz, ryz = pearson(x, y), pearson(x, z), pearson(y, z)
    closed_form = (rxy - rxz * ryz) / math.sqrt((1 - rxz**2) * (1 - ryz**2))
    assert partial_correlation(x, y, z) == pytest.approx(closed_form, abs=1e-12)


def test_partial_correlation_removes_a_shared_cause():
    # x and y share z; their remaining parts are e and -e exactly (e is orthogonal to [1, z]),
    # so the raw correlation is strongly positive but the partial one is exactly -1.
    rng = np.random.default_rng(1)
    z = rng.normal(size=50)
    design = np.column_stack([np.ones(50), z])
    e = rng.normal(size=50)
    e -= design @ np.linalg.lstsq(design, e, rcond=None)[0]
    e *= 0.2
    x, y = 3 * z + e, 3 * z - e
    assert pearson(x, y) > 0.9
    assert partial_correlation(x, y, z) == pytest.approx(-1.0, abs=1e-12)


def test_partial_spearman_is_invariant_to_monotone_transforms_and_drops_nan_rows():
    rng = np.random.default_rng(2)
    z = rng.normal(size=40)
    x = z + rng.normal(size=40)
    y = z + rng.normal(size=40)
    expected = partial_correlation(x, y, z, "spearman")
    assert partial_correlation(np.exp(x), y**3, 2 * z + 1, "spearman") == pytest.approx(
        expected, abs=1e-12
    )
    with_nan = partial_correlation(np.append(x, np.nan), np.append(y, 0.0), np.append(z, 1.0))
    assert with_nan == pytest.approx(partial_correlation(x, y, z), abs=1e-12)
    assert math.isnan(partial_correlation(x[:3], y[:3], z[:3]))  # 3 rows, 1 covariate


def test_fisher_z_t_interval_matches_its_closed_form():
    # z = 0.5, 1.0, 1.5: mean 1, sample std 0.5, se 0.5/sqrt(3). With 2 degrees of freedom
    # Student's t has F(t) = 1/2 + t / (2 sqrt(t^2 + 2)), so the 97.5 % quantile solves
    # t / sqrt(t^2 + 2) = 0.95 and the two-sided p of t_obs is 1 - t_obs / sqrt(t_obs^2 + 2).
    result = fisher_z_interval(np.tanh([0.5, 1.0, 1.5]))
    se = 0.5 / math.sqrt(3)
    quantile = math.sqrt(2 * 0.95**2 / (1 - 0.95**2))
    assert quantile == pytest.approx(4.3027, abs=1e-4)
    assert result["r"] == pytest.approx(math.tanh(1.0), abs=1e-12)
    assert result["ci_low"] == pytest.approx(math.tanh(1.0 - quantile * se), abs=1e-12)
    assert result["ci_high"] == pytest.approx(math.tanh(1.0 + quantile * se), abs=1e-12)
    t_obs = 1.0 / se
    assert result["p"] == pytest.approx(1 - t_obs / math.sqrt(t_obs**2 + 2), rel=1e-9)
    assert (result["n_seeds"], result["interval"]) == (3, "fisher_z_t")


def test_fisher_z_interval_edge_cases(no_warnings):
    # NaN seeds are left out and counted out; one seed has no interval.
    single = fisher_z_interval([0.3, np.nan])
    assert single["r"] == pytest.approx(0.3) and single["n_seeds"] == 1
    assert math.isnan(single["ci_low"]) and math.isnan(single["p"])
    assert single["interval"] == "none"
    empty = fisher_z_interval([])
    assert math.isnan(empty["r"]) and empty["n_seeds"] == 0
    # Equal seeds: a zero-width interval at their r; perfect correlations stay finite.
    same = fisher_z_interval([-0.5, -0.5, -0.5, -0.5])
    assert same["ci_low"] == pytest.approx(-0.5) and same["ci_high"] == pytest.approx(-0.5)
    assert same["p"] == 0.0
    perfect = fisher_z_interval([1.0, 1.0, 1.0])
    assert perfect["r"] == pytest.approx(1.0) and perfect["ci_low"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="confidence"):
        fisher_z_interval([0.1, 0.2], confidence=1.5)


def test_seed_interval_bootstraps_only_from_ten_seeds():
    few = np.tanh(np.linspace(0.2, 1.0, MIN_BOOTSTRAP_SEEDS - 1))
    assert seed_interval(few) == fisher_z_interval(few)
    many = np.tanh(np.linspace(0.2, 1.0, MIN_BOOTSTRAP_SEEDS))
    result = seed_interval(many, n_boot=4000, seed=3)
    t_interval = fisher_z_interval(many)
    assert result["interval"] == "bootstrap_seeds" and result["n_seeds"] == MIN_BOOTSTRAP_SEEDS
    assert result["r"] == t_interval["r"] == pytest.approx(math.tanh(0.6))
    assert result["ci_low"] < result["r"] < result["ci_high"]
    # The bootstrap's percentile interval of a mean is close to, and a little narrower than,
    # the t-interval.
    assert t_interval["ci_low"] < result["ci_low"] < result["r"]
    assert result["ci_low"] == pytest.approx(t_interval["ci_low"], abs=0.05)
    assert result == seed_interval(many, n_boot=4000, seed=3)


def test_sliding_window_convention_and_values():
    epochs = np.arange(5, 105, 5)  # checkpoints every 5 epochs, 5..100
    x = np.where(epochs <= 50, epochs, 100 - epochs).astype(float)  # rises, then falls
    y = epochs * 2.0
    ends, r = sliding_window_correlation(epochs, x, y, window=25)
    np.testing.assert_array_equal(ends, np.arange(25, 105, 5))
    assert ends.dtype.kind == "i"
    # the window ending at 25 holds epochs 5..25 (5 checkpoints, 0 < t <= 25)
    assert r[0] == pytest.approx(1.0)
    assert r[ends.tolist().index(50)] == pytest.approx(1.0)
    assert r[ends.tolist().index(80)] == pytest.approx(-1.0)  # epochs 60..80
    assert -1 < r[ends.tolist().index(60)] < 1  # straddles the peak


def test_sliding_window_with_too_few_points_is_nan():
    ends, r = sliding_window_correlation([2, 4], [1.0, 2.0], [3.0, 1.0], window=2)
    np.testing.assert_array_equal(ends, [2, 4])
    assert np.isnan(r).all()


def test_expected_abs_r_under_no_correlation_is_what_simulation_gives():
    rng = np.random.default_rng(0)
    for n in (5, 9, 30):
        x, y = rng.normal(size=(2, 20000, n))
        x = x - x.mean(1, keepdims=True)
        y = y - y.mean(1, keepdims=True)
        r = (x * y).sum(1) / np.sqrt((x * x).sum(1) * (y * y).sum(1))
        assert stats.expected_abs_r(n) == pytest.approx(np.abs(r).mean(), abs=0.005)
    assert stats.expected_abs_r(9) == pytest.approx(0.291, abs=0.001)
    assert math.isnan(stats.expected_abs_r(2))


@pytest.mark.parametrize("method", stats.METHODS)
def test_permutation_p_value_is_calibrated_under_no_correlation_and_small_with_one(method):
    rng = np.random.default_rng(1)
    null = [stats.permutation_p_value(*rng.normal(size=(2, 9)), method, 199) for _ in range(400)]
    assert 0.02 <= np.mean(np.array(null) <= 0.05) <= 0.09
    x = rng.normal(size=12)
    assert stats.permutation_p_value(x, x + 0.2 * rng.normal(size=12), method) <= 0.002
    # Seeded: the same p-value every call; NaN where r is.
    assert stats.permutation_p_value(x, -x, method) == stats.permutation_p_value(x, -x, method)
    assert math.isnan(stats.permutation_p_value(x, np.ones(12), method))


@pytest.mark.parametrize("method", stats.METHODS)
def test_permutation_p_value_of_the_mean_r_over_columns(method):
    """A 2-D y: the mean over its columns of r(x, y_j), x shuffled once for every column."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=10)
    y = np.column_stack([x + rng.normal(size=10), rng.normal(size=10)])
    # One column is the 1-D test.
    assert stats.permutation_p_value(x, y[:, :1], method) == pytest.approx(
        stats.permutation_p_value(x, y[:, 0], method)
    )
    # Against every one of the 10! orders of x is too many; the mean r's null distribution is
    # that of x's shuffles, so 20,000 of them agree within sampling error.
    mean_r = np.mean([stats.correlation(x, column, method) for column in y.T])
    shuffles = [rng.permutation(x) for _ in range(20000)]
    null = np.array([np.mean([stats.correlation(s, c, method) for c in y.T]) for s in shuffles])
    expected = np.mean(np.abs(null) >= abs(mean_r) - 1e-12)
    assert stats.permutation_p_value(x, y, method, 9999) == pytest.approx(expected, abs=0.01)
    # A unit with a non-finite value in any column is dropped from every column.
    y[0, 1] = np.nan
    assert stats.permutation_p_value(x, y, method) == stats.permutation_p_value(
        x[1:], y[1:], method
    )
