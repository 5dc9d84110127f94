"""The first-task sweep's rows of the reproduction table: per task i ≥ 1, |r| across the
sweep's runs of a first-task variable (NC1 after it, its epochs) vs PL_i, Gaussian-smoothed over
tasks as the paper does, with PL_i against two references to task 0's accuracy:

* the paper's (``all_epochs``): its code logs a task's online accuracy over all the task's
  iterations, so task 0's averages every epoch of a longer first task;
* ours (``first_epoch``): every task's first epoch, the same measurement for every run whatever
  the first task's length.

Beside the paper's statistic each row gives the mean signed r over tasks with its permutation
p-value and the |r| that no correlation gives for that many runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter1d

from ncplasticity import stats
from ncplasticity.continual.tables import PL_REFERENCES, sweep_mean_r_p_value
from ncplasticity.paper.claims import Claim, Inputs, Missing
from ncplasticity.tables import read_table

# The paper smooths the sweep's per-task |r| with a Gaussian of this σ (in tasks).
SWEEP_SIGMA = 4
# First-task variable -> (its label in a claim, its words in a statistic).
VARIABLES = {
    "nc1": ("NC1 after the first task", "NC1 after the first task"),
    "epochs": ("first-task epochs", "the first task's epochs"),
}
# Reference -> (its label in a claim, the paper's value of the row, what acc means).
REFERENCES = {
    "all_epochs": (
        "the paper's reference",
        "0.75-0.9",
        "acc: the task's online accuracy over all its epochs (online_accuracy_all_epochs, as the "
        "paper's code logs it: task 0's averages every epoch of the first task)",
    ),
    "first_epoch": (
        "first-epoch reference",
        "not reported",
        "acc: the task's online accuracy over its first epoch (online_accuracy: measured alike "
        "in every run, whatever the first task's length)",
    ),
}


def claim_name(variable: str, reference: str) -> str:
    return f"First-task sweep: |r({VARIABLES[variable][0]}, PL_i)|, {REFERENCES[reference][0]}"


def sweep_curves(
    sweep_path, variants: Sequence[str], method: str = "pearson", reference: str = "first_epoch"
) -> pd.DataFrame:
    """Per task i of the sweep group ``variants``: the signed r across its runs of NC1 after the
    first task vs PL_i and of first-task epochs vs PL_i against ``reference`` (``r_nc1``,
    ``r_epochs``), their |r| (``abs_r_*``) and the |r| Gaussian-smoothed over tasks with σ = 4
    as the paper does (``smooth_*``; scipy's gaussian_filter1d, reflecting edges, over the
    tasks with a finite r)."""
    table = read_table(sweep_path)
    rows = table[(table["variants"] == ",".join(variants)) & (table["method"] == method)]
    curves = pd.DataFrame({"task": rows["task"].to_numpy(), "n_runs": rows["n_runs"].to_numpy()})
    suffix = PL_REFERENCES[reference][1]
    for name in VARIABLES:
        column = f"r_first_{name}_pl{suffix}"
        if column not in rows:
            raise Missing(f"the sweep table has no {column} (written before it had the column)")
        signed = rows[column].to_numpy(float)
        smooth = np.full(len(signed), np.nan)
        finite = np.isfinite(signed)
        if finite.any():
            smooth[finite] = gaussian_filter1d(np.abs(signed[finite]), SWEEP_SIGMA, mode="reflect")
        curves[f"r_{name}"], curves[f"abs_r_{name}"] = signed, np.abs(signed)
        curves[f"smooth_{name}"] = smooth
    return curves


def _sweep(variable: str, reference: str) -> Callable[[Inputs], dict]:
    def compute(inputs: Inputs) -> dict:
        chosen = inputs.experiment("continual")
        if not chosen["sweep"] or inputs.sweep_correlations is None:
            raise Missing("no first-task sweep (variants that differ only in the first task)")
        curves = sweep_curves(inputs.sweep_correlations, chosen["sweep"], reference=reference)
        if curves.empty:
            raise Missing(f"no sweep correlations of group {','.join(chosen['sweep'])}")
        smooth = curves[f"smooth_{variable}"]
        runs = int(curves["n_runs"].max())
        sweep_runs = inputs.continual[inputs.continual["variant"].isin(chosen["sweep"])]
        return {
            "ours": float(smooth.mean()),
            "spread": float(smooth.std(ddof=0)),
            "n_seeds": len(chosen["seeds"]),
            "signed_r": float(curves[f"r_{variable}"].mean()),
            "p_perm": sweep_mean_r_p_value(sweep_runs, variable, reference),
            # Smoothing and the mean over tasks are averages, so E|r| of one task's r is also
            # the value `ours` takes without any correlation.
            "expected_abs_r_null": stats.expected_abs_r(runs),
            "config": f"first-task sweep of {runs} runs: "
            + " | ".join(chosen["config"][v] for v in chosen["sweep"]),
            "note": f" (tasks {curves['task'].min()}-{curves['task'].max()}); ours: mean over "
            "tasks of the smoothed |r|; spread: its std (ddof 0) over tasks; signed_r: mean "
            "over tasks of the signed r; p_perm: its permutation p-value (the first-task "
            "variable shuffled across runs, once for every task); expected_abs_r_null: E|r| "
            "without any correlation for that many runs, what ours gives by chance",
        }

    return compute


def sweep_claims() -> list[Claim]:
    """The paper's reference first (the paper's statistic exactly), then ours."""
    return [
        Claim(
            claim_name(variable, reference),
            f"per task i >= 1, |Pearson r| across the sweep's runs (variants x seeds) of "
            f"{words} vs PL_i = acc(task 0) - acc(task i), {meaning}; Gaussian-smoothed over "
            f"tasks (sigma = {SWEEP_SIGMA})",
            paper,
            _sweep(variable, reference),
        )
        for reference, (_, paper, meaning) in REFERENCES.items()
        for variable, (_, words) in VARIABLES.items()
    ]


def reference_note(table: pd.DataFrame) -> str:
    """The sentence the reproduction's Markdown gives under its table: what the two references
    mean, with this run's mean signed r(first-task epochs, PL_i) and p-value under each."""
    rows = table.set_index("claim")
    found = {
        reference: rows.loc[claim_name("epochs", reference)]
        for reference in REFERENCES
        if claim_name("epochs", reference) in rows.index
    }
    if len(found) < len(REFERENCES) or any(np.isnan(row["ours"]) for row in found.values()):
        return ""
    paper, ours = found["all_epochs"], found["first_epoch"]
    return (
        "**First-task sweep, the paper's reference and ours.** With the paper's reference, "
        "acc(task 0) is task 0's online accuracy over all its epochs: a longer first task adds "
        "epochs of online accuracy on a task already learned and so raises acc(task 0), and "
        "PL_i = acc(task 0) - acc(task i) grows with the first task's length mechanically, "
        "whatever happens to plasticity. The first-epoch reference measures task 0 over its "
        "first epoch in every run, which removes that. Here the mean signed r(first-task "
        f"epochs, PL_i) over tasks is {paper['signed_r']:.3g} (permutation p "
        f"{paper['p_perm']:.3g}) with the paper's reference and {ours['signed_r']:.3g} "
        f"(p {ours['p_perm']:.3g}) with the first-epoch reference; without any correlation "
        f"|r| would be {ours['expected_abs_r_null']:.3g} for these runs.\n"
    )
