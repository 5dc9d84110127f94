"""The per-run continual tables as one task-level panel for the open questions.

Each row is a task i ≥ 1 of a run (task 0's PL is 0 by definition): its PL_i = acc(task 0) −
acc(task i) (online accuracy of the task's first epoch, ``ncplasticity.plasticity``), the
duration before it (``steps_before`` = cumulative optimiser steps when task i starts =
``total_steps`` − ``steps``; ``steps_m`` the same in millions), and every measure after task i
(the column's own name). Lags are taken where they are used (:func:`.inference.lagged`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ncplasticity import metrics
from ncplasticity.tables import read_tables

OUTCOME = "pl"
# Plasticity loss against a fresh network, measured every ``schedule.fresh_every``-th task
# only: the outcome where tasks differ in difficulty (DESIGN §3d).
FRESH_OUTCOME = "pl_fresh"


def measures(table: pd.DataFrame) -> list[metrics.Metric]:
    """Every correlated NC metric and every plasticity measure of the registry that ``table``
    has a column for, in registry order."""
    chosen = metrics.select(group="nc", correlated=True) + metrics.select(group="plasticity")
    return [m for m in chosen if m.name in table.columns]


def build(tables: pd.DataFrame) -> pd.DataFrame:
    """The panel of :func:`read_tables`'s concatenated runs (see the module docstring)."""
    needed = {"run", "variant", "seed", "task", "steps", "total_steps", OUTCOME, "nc1"}
    missing = sorted(needed - set(tables.columns))
    if missing:
        raise ValueError(f"open questions: the run tables lack columns {missing}")
    parts = []
    for _, run in tables.groupby("run", sort=False):
        run = run.sort_values("task").copy()
        tasks = run["task"].to_numpy()
        if tasks[0] != 0 or np.any(np.diff(tasks) != 1):
            raise ValueError(f"run {run['run'].iloc[0]}: tasks must run 0, 1, 2, … without gaps")
        run["steps_before"] = (run["total_steps"] - run["steps"]).astype(float)
        parts.append(run[run["task"] >= 1])
    panel = pd.concat(parts, ignore_index=True)
    panel["steps_m"] = panel["steps_before"] / 1e6
    return panel


def with_outcome_steps(panel: pd.DataFrame) -> pd.DataFrame:
    """``panel`` with ``steps`` = cumulative optimiser steps when task i starts
    (``steps_before``), the duration key of :mod:`.inference`: PL_i is the online accuracy of
    task i's first epoch, so the state it measures is the one those steps left. (The steps at
    the end of task i include its later epochs: where they are drawn at random, a trend in them
    misses the duration PL_i depends on, and NC1_{i−1}, measured at exactly that duration,
    would pick the rest up as a spurious lead.)"""
    return panel.assign(steps=panel["steps_before"].astype(float))


def load(paths, analysis_tasks: int) -> pd.DataFrame:
    """The panel of the run tables at ``paths``, each cut to its first ``analysis_tasks``."""
    return build(read_tables(paths, analysis_tasks))


def run_means(
    panel: pd.DataFrame, final_tasks: int, columns=("nc1", OUTCOME, FRESH_OUTCOME)
) -> pd.DataFrame:
    """Per run (``run``, ``variant``, ``seed``): the mean of each column over its last
    ``final_tasks`` analysed tasks (``<column>_final``) and the tasks they span. ``pl_fresh``
    is the mean over the tasks of that window that measured it (``pl_fresh_tasks`` of them;
    NaN where none did or the run has no such column); any other column's NaN stays NaN."""
    rows = []
    for run, rows_of_run in panel.groupby("run", sort=False):
        final = rows_of_run.sort_values("task").tail(final_tasks)
        row = {
            "run": run,
            "variant": final["variant"].iloc[0],
            "seed": int(final["seed"].iloc[0]),
            "first_task": int(final["task"].iloc[0]),
            "last_task": int(final["task"].iloc[-1]),
        }
        for column in columns:
            if column == FRESH_OUTCOME:
                measured = final[column].dropna() if column in final else final["task"][:0]
                row[f"{column}_final"] = float(measured.mean()) if len(measured) else np.nan
                row[f"{column}_tasks"] = len(measured)
            else:
                row[f"{column}_final"] = float(final[column].mean(skipna=False))
        rows.append(row)
    return pd.DataFrame(rows)
