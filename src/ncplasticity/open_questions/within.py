"""Within-run correlations of NC1 and PL_i, per run and summarised per variant over seeds.

Three statistics per run, over its tasks i ≥ 1 (Pearson):

- ``r``: r(NC1 after task i, PL_i), the paper's kind of correlation over time, which pools any
  trend shared with the task index;
- ``partial_r_steps``: the same controlling for the cumulative steps before task i;
- ``r_diff``: r of the first differences (task-to-task changes ΔNC1_i, ΔPL_i), which removes
  a shared smooth trend.

All three are same-task *associations*: NC1 after task i and PL_i both measure how well task
i was fitted. The lagged first-difference r(ΔNC1_{i−1}, ΔPL_i) is not computed: with only
same-task noise shared it is ≈ −r_diff/2 by construction (DESIGN §3d); a lead is estimated in
levels (:func:`.inference.lead_lag`).

Each variant's summary row (``seed`` = "mean") is tanh of the mean Fisher z over its seeds with
a t-interval over the seeds (:func:`ncplasticity.stats.fisher_z_interval`), ``n_seeds`` saying
how many it rests on.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ncplasticity import stats

STATISTICS = {
    "r": "r(NC1, PL) over tasks",
    "partial_r_steps": "partial r(NC1, PL | steps)",
    "r_diff": "r(ΔNC1, ΔPL), first differences",
}
SEED_MEAN = "mean"
COLUMNS = [
    "variant",
    "seed",
    "statistic",
    "r",
    "ci_low",
    "ci_high",
    "p",
    "interval",
    "n_seeds",
    "n_points",
]


def run_statistics(run: pd.DataFrame, x: str = "nc1", y: str = "pl") -> dict:
    """The statistics of one run's panel rows (sorted by task here)."""
    run = run.sort_values("task")
    xs, ys = run[x].to_numpy(float), run[y].to_numpy(float)
    steps = run["steps_before"].to_numpy(float)
    return {
        "r": stats.pearson(xs, ys),
        "partial_r_steps": stats.partial_correlation(xs, ys, steps),
        "r_diff": stats.pearson(np.diff(xs), np.diff(ys)),
        "n_points": int((np.isfinite(xs) & np.isfinite(ys)).sum()),
    }


def within_run(panel: pd.DataFrame, x: str = "nc1", y: str = "pl") -> pd.DataFrame:
    """Per run and per variant (summary over seeds): :data:`COLUMNS`, one row per statistic."""
    rows = []
    for variant, runs in panel.groupby("variant", sort=False):
        per_seed = []
        for seed, run in runs.groupby("seed", sort=True):
            values = run_statistics(run, x, y)
            per_seed.append(values)
            for statistic in STATISTICS:
                rows.append(
                    {
                        "variant": variant,
                        "seed": int(seed),
                        "statistic": statistic,
                        "r": values[statistic],
                        "interval": "none",
                        "n_seeds": 1,
                        "n_points": values["n_points"],
                    }
                )
        for statistic in STATISTICS:
            summary = stats.fisher_z_interval([values[statistic] for values in per_seed])
            rows.append(
                {
                    "variant": variant,
                    "seed": SEED_MEAN,
                    "statistic": statistic,
                    "r": summary["r"],
                    "ci_low": summary["ci_low"],
                    "ci_high": summary["ci_high"],
                    "p": summary["p"],
                    "interval": summary["interval"],
                    "n_seeds": summary["n_seeds"],
                    "n_points": sum(values["n_points"] for values in per_seed),
                }
            )
    return pd.DataFrame(rows, columns=COLUMNS)


def summary(table: pd.DataFrame, variant: str, statistic: str) -> dict:
    """The summary row of ``variant``'s ``statistic`` in a :func:`within_run` table."""
    chosen = table[
        (table["variant"] == variant)
        & (table["seed"].astype(str) == SEED_MEAN)
        & (table["statistic"] == statistic)
    ]
    if len(chosen) != 1:
        raise ValueError(f"no summary of {statistic!r} for variant {variant!r}")
    return chosen.iloc[0].to_dict()
