"""The duration natural experiment (the paper's second next check): where each task's number of
epochs is drawn at random (``schedule.epochs_per_task`` a list), one more epoch on task i is
a randomised treatment, so its effect is causal.

Per run, OLS of the outcome on [1, spline(task index), epochs_i] (the trend in the task index
only absorbs variance: the draw is independent of everything before it; cumulative steps are
not controlled, since they include the treated epochs); the effect per epoch is the mean of
the per-run coefficients with a t-interval over the runs. Outcomes:

- ``nc1``: log10 NC1 after task i (the registry's scale), measured after all its epochs;
- ``pl``: PL_i, whose online accuracy is the task's *first* epoch, before the extra epochs: an
  effect here would be a flaw in the design (a built-in placebo);
- ``pl_next``: PL_{i+1}, the next task's plasticity loss after a longer task i.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ncplasticity import stats
from ncplasticity.open_questions import conditions as cond
from ncplasticity.open_questions import inference

DURATION_COLUMNS = [
    "variant",
    "outcome",
    "scale",
    "estimate",
    "ci_low",
    "ci_high",
    "p",
    "n",
    "epochs_drawn",
]
OUTCOMES = {
    "nc1": "log10 NC1 after task i",
    "pl": "PL_i (its first epoch, before the extra epochs)",
    "pl_next": "PL_{i+1}",
}


def _outcomes(run: pd.DataFrame) -> dict[str, np.ndarray]:
    nc1, _ = inference.log_scaled(run["nc1"].astype(float), "nc1")
    pl = run["pl"].to_numpy(dtype=float)
    return {"nc1": nc1.to_numpy(), "pl": pl, "pl_next": np.r_[pl[1:], np.nan]}


def epoch_effects(panel: pd.DataFrame, conditions: pd.DataFrame, excluded) -> pd.DataFrame:
    """One row per duration condition with drawn epochs and outcome (:data:`DURATION_COLUMNS`);
    runs in ``excluded`` (:func:`.pooling.exclusions`) are left out."""
    members = cond.family(conditions, "duration")
    drawn = members[members["epochs_per_task"].str.startswith("[")]
    rows = []
    for variant in drawn["variant"]:
        runs = panel[(panel["variant"] == variant) & ~panel["run"].isin(excluded["run"])]
        effects = {outcome: [] for outcome in OUTCOMES}
        for _, run in runs.groupby("run", sort=False):
            run = run.sort_values("task")
            if run["task"].diff().dropna().ne(1).any():
                raise ValueError(f"duration: run {run['run'].iloc[0]} has gaps in its tasks")
            task = run["task"].to_numpy(dtype=float)
            trend = inference.spline_basis(task, task, inference.n_knots(len(task)))
            epochs = run["epochs"].to_numpy(dtype=float)
            design = np.column_stack([np.ones(len(task)), trend, epochs])
            for outcome, values in _outcomes(run).items():
                effects[outcome].append(inference.last_coefficient(design, values))
        for outcome, coefficients in effects.items():
            summary = stats.mean_interval(coefficients)
            rows.append(
                {
                    "variant": variant,
                    "outcome": outcome,
                    "scale": "log10" if outcome == "nc1" else "linear",
                    "estimate": summary["mean"],
                    "ci_low": summary["ci_low"],
                    "ci_high": summary["ci_high"],
                    "p": summary["p"],
                    "n": summary["n"],
                    "epochs_drawn": drawn.set_index("variant").at[variant, "epochs_per_task"],
                }
            )
    return pd.DataFrame(rows, columns=DURATION_COLUMNS)
