"""Which runs enter the pooled analyses (DESIGN §3d), and why the others do not.

Two kinds of run are analysed on their own, never pooled with the rest:

- every run of a condition whose scenario declares a ``confound`` (the scenario registry's
  reason why PL against task 0 does not compare its tasks: random labels, class pairs, classes
  added, a head per class group); such a condition is read by its own rows and its fresh gap;
- a run flagged ``degenerate`` (online accuracy at chance for its task's classes from some task
  on): it is reported, kept in its own tables, and left out of every pooled or causal estimate.
"""

from __future__ import annotations

import pandas as pd

from ncplasticity.open_questions import conditions as cond

EXCLUSION_COLUMNS = ["variant", "run", "reason"]
POOLED = "pooled"


def degenerate_runs(panel: pd.DataFrame) -> dict[str, str]:
    """Run -> "degenerate from task k" for every run of ``panel`` flagged degenerate."""
    if "degenerate" not in panel:
        return {}
    flagged = panel[panel["degenerate"].astype(bool)]
    first = flagged.groupby("run", sort=False)["task"].min()
    return {run: f"degenerate from task {int(task)}" for run, task in first.items()}


def exclusions(panel: pd.DataFrame, conditions: pd.DataFrame) -> pd.DataFrame:
    """One row per run left out of the pooled analyses (:data:`EXCLUSION_COLUMNS`): its
    condition's confound, else its degeneracy."""
    confound = cond.confounds(conditions)
    scenario = conditions.set_index("variant")["scenario"]
    degenerate = degenerate_runs(panel)
    rows = []
    for (variant, run), _ in panel.groupby(["variant", "run"], sort=False):
        if confound.get(variant, ""):
            rows.append([variant, run, f"{scenario[variant]}: {confound[variant]}"])
        elif run in degenerate:
            rows.append([variant, run, degenerate[run]])
    return pd.DataFrame(rows, columns=EXCLUSION_COLUMNS)


def pooled(panel: pd.DataFrame, excluded: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``panel`` whose run is not in ``excluded``."""
    return panel[~panel["run"].isin(excluded["run"])]


def subsets(panel: pd.DataFrame, excluded: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The runs each estimate is made on: ``pooled`` (every run not in ``excluded``), then each
    condition on its own (its runs not flagged degenerate; a confounded condition included)."""
    degenerate = excluded.loc[excluded["reason"].str.startswith("degenerate"), "run"]
    own = panel[~panel["run"].isin(degenerate)]
    return {POOLED: pooled(panel, excluded)} | dict(tuple(own.groupby("variant", sort=False)))


def summary(excluded: pd.DataFrame) -> pd.DataFrame:
    """Per condition with excluded runs: how many, and the reasons (for the answers table)."""
    if excluded.empty:
        return pd.DataFrame(columns=["variant", "runs", "reasons"])
    grouped = excluded.groupby("variant", sort=False)
    return pd.DataFrame(
        {
            "runs": grouped["run"].count(),
            "reasons": grouped["reason"].agg(lambda r: "; ".join(dict.fromkeys(r))),
        }
    ).reset_index()
