"""Which measure predicts plasticity loss: every correlated NC metric and every plasticity
measure of the registry (and two duration baselines, cumulative steps and the task index),
scored by how well its value after task i − 1 predicts PL_i (the next task's plasticity loss):

- ``within``: per run, r of the first differences (Δx_{i−1}, ΔPL_i); tanh of the mean Fisher z
  over runs with a t-interval over the ``n_runs`` runs;
- ``mixed``: the mixed model of :mod:`.models` on x standardised over all rows (coefficient per
  standard deviation of x, Wald interval, ``mixed_converged`` whether the fit converged; NaN for
  the baselines, which the model's duration terms already hold);
- ``held_out``: leave one group of variants out at a time (:mod:`.conditions`: one intervention
  or architecture change; all doses of the dial together): PL_i = a + b·x_{i−1} fitted by least
  squares on the other groups, then the Spearman correlation of its predictions with PL_i over
  the held-out group's tasks; tanh of the mean Fisher z over the held-out groups with a
  t-interval over the ``n_groups`` groups.

Ranked by ``held_out`` (descending; rank 1 is the best out-of-sample predictor). A measure that
a group's tables lack is scored on the other groups.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ncplasticity import stats
from ncplasticity.open_questions import mixed_models
from ncplasticity.open_questions import panel as panel_mod

COLUMNS = [
    "rank",
    "measure",
    "label",
    "kind",
    "held_out",
    "held_out_ci_low",
    "held_out_ci_high",
    "n_groups",
    "within",
    "within_ci_low",
    "within_ci_high",
    "n_runs",
    "within_rank",
    "mixed",
    "mixed_ci_low",
    "mixed_ci_high",
    "mixed_converged",
    "mixed_rank",
]


def candidates(panel: pd.DataFrame) -> dict[str, tuple[str, str]]:
    """Measure name -> (label, kind): the registry's measures, then the baselines."""
    chosen = {m.name: (m.label, m.group) for m in panel_mod.measures(panel)}
    return chosen | {name: (label, "baseline") for name, label in panel_mod.BASELINES.items()}


def within_score(panel: pd.DataFrame, predictor: str) -> dict:
    rs = []
    for _, run in panel.groupby("run", sort=False):
        run = run.sort_values("task")
        rs.append(
            stats.pearson(
                np.diff(run[predictor].to_numpy(float)), np.diff(run["pl"].to_numpy(float))
            )
        )
    summary = stats.fisher_z_interval(rs)
    return {
        "within": summary["r"],
        "within_ci_low": summary["ci_low"],
        "within_ci_high": summary["ci_high"],
        "n_runs": summary["n_seeds"],
    }


def held_out_score(panel: pd.DataFrame, predictor: str, groups: pd.Series) -> dict:
    """``groups``: variant -> held-out group."""
    group_of = panel["variant"].map(groups)
    if group_of.isna().any():
        missing = sorted(panel.loc[group_of.isna(), "variant"].unique())
        raise ValueError(f"held_out_score: no group for variants {missing}")
    x, y = panel[predictor].to_numpy(float), panel["pl"].to_numpy(float)
    finite = np.isfinite(x) & np.isfinite(y)
    rs = []
    for group in group_of.unique():
        test = (group_of == group).to_numpy() & finite
        train = (group_of != group).to_numpy() & finite
        if train.sum() < 3 or test.sum() < 3 or np.ptp(x[train]) == 0:
            continue
        slope, intercept = np.polyfit(x[train], y[train], 1)
        rs.append(stats.spearman(intercept + slope * x[test], y[test]))
    summary = stats.fisher_z_interval(rs)
    return {
        "held_out": summary["r"],
        "held_out_ci_low": summary["ci_low"],
        "held_out_ci_high": summary["ci_high"],
        "n_groups": summary["n_seeds"],
    }


def mixed_score(panel: pd.DataFrame, predictor: str, kind: str, start: float | None) -> dict:
    """``start``: :func:`.mixed_models.duration_start` of the panel, where the fit starts."""
    values = panel[predictor].astype(float)
    scale = values.std()
    if kind == "baseline" or not np.isfinite(scale) or scale == 0:
        return {"mixed": np.nan, "mixed_ci_low": np.nan, "mixed_ci_high": np.nan}
    data = panel.assign(x_std=(values - values.mean()) / scale)
    row = mixed_models.fit(data, "x_std", start=start)
    return {
        "mixed": row["coef"],
        "mixed_ci_low": row["ci_low"],
        "mixed_ci_high": row["ci_high"],
        "mixed_converged": row["converged"],
    }


def ranking(panel: pd.DataFrame, conditions: pd.DataFrame) -> pd.DataFrame:
    """The ranked table (:data:`COLUMNS`). ``within_rank`` ranks |within|, ``mixed_rank`` the
    mixed model's |z| = |coef / (half-width / 1.96)|, both descending."""
    groups = conditions.set_index("variant")["group"]
    start = mixed_models.duration_start(panel)
    rows = []
    for name, (label, kind) in candidates(panel).items():
        predictor = f"{name}_prev"
        row = {"measure": name, "label": label, "kind": kind}
        row |= held_out_score(panel, predictor, groups)
        row |= within_score(panel, predictor)
        row |= mixed_score(panel, predictor, kind, start)
        rows.append(row)
    table = pd.DataFrame(rows)
    table["rank"] = table["held_out"].rank(ascending=False, method="min")
    table["within_rank"] = table["within"].abs().rank(ascending=False, method="min")
    half = (table["mixed_ci_high"] - table["mixed_ci_low"]) / 2
    table["mixed_rank"] = (table["mixed"] / (half / 1.96)).abs().rank(ascending=False, method="min")
    table = table.sort_values(["rank", "measure"], na_position="last")
    return table[COLUMNS].reset_index(drop=True)
