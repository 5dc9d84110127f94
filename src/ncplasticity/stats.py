"""Correlations between collapse and plasticity: Pearson/Spearman, intervals over seeds,
sliding windows, partial correlation and per-group tables (numpy/scipy only).

Conventions shared by every function: pairs where either value is NaN or infinite are dropped;
fewer than 3 remaining points, or a constant variable, give NaN (never a warning or an error).
"""

from __future__ import annotations

import numpy as np
from scipy import special

METHODS = ("pearson", "spearman")
MIN_POINTS = 3
# With fewer seeds than this, an interval over seeds comes from the per-seed estimates (Fisher z,
# then a t-interval): a bootstrap over 3 seeds has 10 distinct resamples and returns their range.
MIN_BOOTSTRAP_SEEDS = 10
# |r| is clipped to this before Fisher's z, so a perfect correlation has a finite z.
_Z_CLIP = 1 - 1e-12


def pearson(x, y) -> float:
    """Pearson r of the finite pairs of ``x`` and ``y``."""
    return correlation(x, y, "pearson")


def spearman(x, y) -> float:
    """Spearman rank correlation (average ranks for ties) of the finite pairs."""
    return correlation(x, y, "spearman")


def correlation(x, y, method: str = "pearson") -> float:
    """``method`` ("pearson" or "spearman") correlation of the finite pairs of ``x`` and ``y``."""
    x, y = _finite_pairs(x, y)
    return _r(x, y, _check_method(method))


def correlation_test(x, y, method: str = "pearson") -> tuple[float, float, int]:
    """(r, two-sided p-value, number of finite pairs); r and p are NaN when undefined."""
    x, y = _finite_pairs(x, y)
    r = _r(x, y, _check_method(method))
    return r, _p_value(r, len(x)), len(x)


def _p_value(r: float, n: int) -> float:
    """Two-sided p-value of r = 0 from n pairs: the t-test with n − 2 degrees of freedom of
    t = r·√((n − 2)/(1 − r²)), which is scipy's spearmanr test and, as the same law, its
    pearsonr's exact beta distribution; NaN when r is. Without scipy.stats' per-call
    overhead (about 1 ms a test): a 60-run correlation table took 7.0 s with it, 3.0 s now."""
    if np.isnan(r):
        return float("nan")
    if abs(r) >= 1:
        return 0.0
    return float(2 * special.stdtr(n - 2, -abs(r) * np.sqrt((n - 2) / (1 - r * r))))


def expected_abs_r(n: int) -> float:
    """E|r| of the Pearson correlation of n independent bivariate-normal pairs with no
    correlation: Γ((n − 1)/2) / (√π · Γ(n/2)) (r's null density ∝ (1 − r²)^((n − 4)/2)); 0.29 for
    n = 9. What an |r| must exceed before it says anything; NaN below 3 pairs."""
    if n < MIN_POINTS:
        return float("nan")
    return float(np.exp(special.gammaln((n - 1) / 2) - special.gammaln(n / 2)) / np.sqrt(np.pi))


def permutation_p_value(
    x, y, method: str = "pearson", permutations: int = 999, seed: int = 0
) -> float:
    """Two-sided permutation p-value of the correlation of ``x`` and ``y``: ``x`` shuffled
    across the pairs ``permutations`` times (seeded), p = (1 + #{|r*| ≥ |r|}) / (1 +
    permutations). Exact in small samples, where the t-test's normality is a guess.

    ``y`` may be 2-D, [n, k]: k outcomes of the same n units (PL of every later task across the
    runs of a first-task sweep). The statistic is then the mean over the k columns of r(x, y_j)
    and each permutation shuffles ``x`` once for every column: one shared ``x`` makes the
    columns' correlations dependent, so only a joint shuffle tests their mean. Units with any
    non-finite value are dropped; NaN when any column's r is undefined."""
    x, y = _finite_rows(x, y)
    columns = [_r(x, column, _check_method(method)) for column in y.T]
    r = float(np.mean(columns)) if columns else float("nan")
    if np.isnan(r):
        return float("nan")
    if method == "spearman":
        x = _average_ranks(x)
        y = np.column_stack([_average_ranks(column) for column in y.T])
    dx = (x - x.mean()) / np.sqrt(((x - x.mean()) ** 2).sum())
    dy = (y - y.mean(axis=0)) / np.sqrt(((y - y.mean(axis=0)) ** 2).sum(axis=0))
    rng = np.random.default_rng(seed)
    shuffled = dx[rng.permuted(np.tile(np.arange(len(dx)), (permutations, 1)), axis=1)]
    null = (shuffled @ dy).mean(axis=1)
    # A rounding margin, so a permutation equal to the data counts as at least as extreme.
    return float((1 + np.sum(np.abs(null) >= abs(r) - 1e-12)) / (1 + permutations))


def fisher_z_interval(rs, confidence: float = 0.95) -> dict:
    """Mean of per-seed correlations on Fisher's z scale with a t-interval over the seeds.

    With z_s = artanh(r_s) over the n finite r_s (|r| clipped to 1 − 1e-12), z̄ their mean and
    s their sample std (ddof 1): ``r`` = tanh(z̄), the interval is
    tanh(z̄ ± t_{n−1, (1+confidence)/2} · s/√n) and ``p`` is the two-sided one-sample t-test
    of z̄ = 0 (df n − 1). ``n_seeds`` = n. With one seed the interval and p are NaN; with
    none everything is NaN.
    """
    _check_confidence(confidence)
    z = _fisher_z(rs)
    summary = mean_interval(z, confidence)
    return {
        "r": float(np.tanh(summary["mean"])),
        "ci_low": float(np.tanh(summary["ci_low"])),
        "ci_high": float(np.tanh(summary["ci_high"])),
        "p": summary["p"],
        "n_seeds": summary["n"],
        "interval": "fisher_z_t" if summary["n"] > 1 else "none",
    }


def t_interval(values, confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, half-width t_{n−1, (1+confidence)/2} · s/√n of its t-interval, standard error
    s/√n) of n ≥ 2 finite ``values`` (s: sample std, ddof 1). The quantile is scipy.stats.t's
    own function (``special.stdtrit``), without its ~0.3 ms per call."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    se = float(values.std(ddof=1)) / np.sqrt(n)
    return float(values.mean()), float(special.stdtrit(n - 1, (1 + confidence) / 2)) * se, se


def mean_interval(values, confidence: float = 0.95) -> dict:
    """Mean of the finite ``values`` with its t-interval (``ci_low``, ``ci_high``) and the
    two-sided one-sample t-test of mean 0 (``p``), resting on ``n`` values (interval and p
    NaN below 2; p 0 when every value is the same non-zero number)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    n = len(values)
    result = {"mean": float(values.mean()) if n else np.nan, "ci_low": np.nan, "ci_high": np.nan}
    result["p"] = np.nan
    if n >= 2:
        mean, half, se = t_interval(values, confidence)
        result |= {"ci_low": mean - half, "ci_high": mean + half}
        if se > 0:
            result["p"] = float(2 * special.stdtr(n - 1, -abs(mean) / se))
        elif mean != 0:
            result["p"] = 0.0
    return result | {"n": n}


def t_interval_p_value(estimate: float, low: float, high: float, n: int) -> float:
    """The two-sided p of the one-sample t-test behind a symmetric t-interval
    [``low``, ``high``] at 95 % around ``estimate`` over ``n`` values (df n − 1): the same p as
    :func:`mean_interval`'s, recovered from an interval (NaN where it is undefined)."""
    if n < 2 or not np.all(np.isfinite([estimate, low, high])):
        return float("nan")
    se = (high - low) / 2 / float(special.stdtrit(n - 1, 0.975))
    if se <= 0:
        return 0.0 if estimate != 0 else float("nan")
    return float(2 * special.stdtr(n - 1, -abs(estimate) / se))


def seed_interval(
    rs,
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
    min_bootstrap: int = MIN_BOOTSTRAP_SEEDS,
) -> dict:
    """The mean over seeds of per-seed correlations ``rs`` (tanh of the mean Fisher z) with an
    interval over seeds: :func:`fisher_z_interval` with fewer than ``min_bootstrap`` finite
    seeds, else the ``confidence`` percentile interval of a bootstrap over seeds (``n_boot``
    resamples of the seeds, each giving tanh of its mean z; ``p`` stays the t-test's). The
    ``interval`` entry names the method ("fisher_z_t", "bootstrap_seeds" or "none"),
    ``n_seeds`` the number of seeds it rests on."""
    result = fisher_z_interval(rs, confidence)
    if result["n_seeds"] < max(min_bootstrap, 2):
        return result
    z = _fisher_z(rs)
    rng = np.random.default_rng(seed)
    means = np.tanh(z[rng.integers(0, len(z), (n_boot, len(z)))].mean(axis=1))
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return result | {"ci_low": float(low), "ci_high": float(high), "interval": "bootstrap_seeds"}


def sliding_window_correlation(
    t, x, y, window: float, method: str = "pearson"
) -> tuple[np.ndarray, np.ndarray]:
    """Correlation of ``x`` and ``y`` over sliding windows of ``t`` (e.g. warm-up epochs).

    The window ending at ``e`` holds the points with ``e - window < t <= e`` (so with a
    checkpoint every k epochs it holds window/k checkpoints). A window ends at each distinct
    value of ``t`` that is ``>= window``: ``t`` counts from 0, so earlier windows would reach
    back before training began. Returns (window ends, r), r NaN where a window has fewer than
    3 finite pairs.
    """
    _check_method(method)
    if window <= 0:
        raise ValueError(f"sliding_window_correlation: window must be positive, got {window}")
    t = np.asarray(t)
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if not t.shape == x.shape == y.shape or t.ndim != 1:
        raise ValueError(
            f"sliding_window_correlation: t, x, y must be 1-D of one length, got "
            f"{t.shape}, {x.shape}, {y.shape}"
        )
    ends = np.unique(t[np.isfinite(t)])  # keeps t's dtype: integer epochs stay integers
    ends = ends[ends >= window]
    r = []
    for end in ends:
        inside = (t > end - window) & (t <= end)
        r.append(correlation(x[inside], y[inside], method))
    return ends, np.array(r, dtype=float)


def partial_correlation(x, y, control, method: str = "pearson") -> float:
    """Correlation of ``x`` and ``y`` controlling for ``control`` (1-D, or 2-D [N, K]).

    The correlation of the residuals of ``x`` and ``y`` after least-squares regression on
    [1, control]; with ``method="spearman"`` all variables are ranked first. Rows with any
    non-finite value are dropped; NaN when fewer than K + 3 rows remain.
    """
    _check_method(method)
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    control = np.asarray(control, dtype=float)
    control = control.reshape(len(control), -1)
    if not len(x) == len(y) == len(control) or x.ndim != 1 or y.ndim != 1:
        raise ValueError(
            f"partial_correlation: x, y, control need one length, got {x.shape}, {y.shape}, "
            f"{control.shape}"
        )
    keep = np.isfinite(x) & np.isfinite(y) & np.isfinite(control).all(axis=1)
    x, y, control = x[keep], y[keep], control[keep]
    if len(x) < control.shape[1] + MIN_POINTS:
        return float("nan")
    if method == "spearman":
        x, y = _average_ranks(x), _average_ranks(y)
        control = np.column_stack([_average_ranks(column) for column in control.T])
    design = np.column_stack([np.ones(len(x)), control])
    coef, *_ = np.linalg.lstsq(design, np.column_stack([x, y]), rcond=None)
    residuals = np.column_stack([x, y]) - design @ coef
    return _r(residuals[:, 0], residuals[:, 1], "pearson")


def _check_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"unknown correlation method {method!r}; expected one of {METHODS}")
    return method


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def _fisher_z(rs) -> np.ndarray:
    rs = np.asarray(rs, dtype=float).ravel()
    return np.arctanh(np.clip(rs[np.isfinite(rs)], -_Z_CLIP, _Z_CLIP))


def _finite_pairs(x, y) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y must have one length, got {len(x)} and {len(y)}")
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]


def _finite_rows(x, y) -> tuple[np.ndarray, np.ndarray]:
    """``x`` (n,) and ``y`` as [n, k] (a 1-D ``y`` is one column), less the rows with any
    non-finite value."""
    x = np.asarray(x, dtype=float).ravel()
    y = np.asarray(y, dtype=float)
    y = y.reshape(len(y), -1)
    if len(x) != len(y):
        raise ValueError(f"x and y must have one length, got {len(x)} and {len(y)}")
    keep = np.isfinite(x) & np.isfinite(y).all(axis=1)
    return x[keep], y[keep]


def _r(x: np.ndarray, y: np.ndarray, method: str) -> float:
    """Correlation of already-finite pairs; NaN for fewer than 3 points or a constant."""
    if len(x) < MIN_POINTS or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    if method == "spearman":
        x, y = _average_ranks(x), _average_ranks(y)
    dx = x - x.mean()
    dy = y - y.mean()
    return float(np.clip((dx @ dy) / np.sqrt((dx @ dx) * (dy @ dy)), -1.0, 1.0))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their average rank (scipy's rankdata, ~6x faster)."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts_block = np.empty(len(values), dtype=bool)
    starts_block[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=starts_block[1:])
    starts = np.flatnonzero(starts_block)
    stops = np.append(starts[1:], len(values))
    ranks = np.empty(len(values))
    ranks[order] = ((starts + stops + 1) / 2.0)[np.cumsum(starts_block) - 1]
    return ranks
