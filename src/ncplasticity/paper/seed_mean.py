"""The paper's r(online accuracy, NC1): Pearson r over tasks of the seed-MEAN curves, and how it
depends on the number of seeds averaged. Averaging k seeds shrinks each seed's noise around
the shared trend over tasks by √k while the trend stays, so |r| of the mean curves grows with
k: the paper's −0.945 from 5 seeds is not comparable with an r from fewer seeds, nor with
any single run's.
"""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pandas as pd

from ncplasticity import stats

# Beyond this many k-subsets of the seeds, that many seeded random ones stand for them all.
MAX_SUBSETS = 100
SEED_COUNT_COLUMNS = ["variant", "k", "r_mean", "r_min", "r_max", "n_subsets", "n_seeds"]


def seed_mean_r(runs: pd.DataFrame, x: str = "online_accuracy", y: str = "nc1") -> float:
    """The paper's r: Pearson r over tasks of the seed-mean curves (the mean over seeds of
    each task's value, then r over the tasks)."""
    curves = runs.groupby("task", sort=True)[[x, y]].mean()
    return stats.pearson(curves[x], curves[y])


def seed_subsets(
    seeds, k: int, max_subsets: int = MAX_SUBSETS, seed: int = 0
) -> list[tuple[int, ...]]:
    """Every k-subset of ``seeds`` (sorted) when there are at most ``max_subsets``, else
    ``max_subsets`` distinct ones drawn at random (seeded, so the table is reproducible)."""
    seeds = sorted(seeds)
    if math.comb(len(seeds), k) <= max_subsets:
        return list(combinations(seeds, k))
    rng = np.random.default_rng(seed)
    drawn: set[tuple[int, ...]] = set()
    while len(drawn) < max_subsets:
        drawn.add(tuple(sorted(rng.choice(seeds, k, replace=False).tolist())))
    return sorted(drawn)


def seed_count_table(
    runs: pd.DataFrame, x: str = "online_accuracy", y: str = "nc1", max_subsets: int = MAX_SUBSETS
) -> pd.DataFrame:
    """Per variant (in the tables' order) and k = 1 … n seeds: :func:`seed_mean_r` of the
    k-seed-mean curves over the k-subsets of :func:`seed_subsets` — their mean (``r_mean``,
    plain mean of r), ``r_min``, ``r_max`` and ``n_subsets``; ``n_seeds`` = n. k = 1 gives the
    per-seed r, k = n the paper's statistic on all seeds."""
    rows = []
    for variant, variant_runs in runs.groupby("variant", sort=False):
        seeds = variant_runs["seed"].unique()
        for k in range(1, len(seeds) + 1):
            subsets = seed_subsets(seeds, k, max_subsets)
            rs = np.array(
                [seed_mean_r(variant_runs[variant_runs["seed"].isin(s)], x, y) for s in subsets]
            )
            finite = rs[np.isfinite(rs)]
            rows.append(
                {
                    "variant": variant,
                    "k": k,
                    "r_mean": finite.mean() if len(finite) else np.nan,
                    "r_min": finite.min() if len(finite) else np.nan,
                    "r_max": finite.max() if len(finite) else np.nan,
                    "n_subsets": len(subsets),
                    "n_seeds": len(seeds),
                }
            )
    return pd.DataFrame(rows, columns=SEED_COUNT_COLUMNS)
