"""The reproduction table: one row per quantitative claim of the paper (DESIGN §3), with the
paper's value, ours from the run's per-run tables computed the way the paper computes it, the
spread over seeds, the number of seeds it rests on and the configuration that produced it.

Rows whose inputs the run lacks (an experiment not run, a variant not configured) say so in
``config`` and leave ``ours`` empty; they never fail the table. Which runs stand for the paper's
comes from :mod:`ncplasticity.paper.selection` (the ``choice``), never from variant names.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from ncplasticity import stats
from ncplasticity.paper.claims import SPREAD, Claim, Inputs, Missing, claim_result
from ncplasticity.paper.seed_mean import MAX_SUBSETS, seed_count_table, seed_mean_r
from ncplasticity.paper.sweep_claims import reference_note, sweep_claims
from ncplasticity.paper.warm_start_claims import warm_start_claims
from ncplasticity.tsv import write_table

# signed_r, p_perm, expected_abs_r_null: the first-task sweep's rows only
# (ncplasticity.paper.sweep_claims), NaN in every other row.
COLUMNS = [
    "claim", "statistic", "paper", "ours", "spread", "n_seeds", "signed_r", "p_perm",
    "expected_abs_r_null", "comparable", "config",
]  # fmt: skip


# --- continual ----------------------------------------------------------------------------


def _paper_runs(inputs: Inputs) -> tuple[pd.DataFrame, str]:
    chosen = inputs.experiment("continual")
    variant = chosen["variant"]
    if variant is None:
        raise Missing("no continual variant follows the paper's protocol (full permutations, "
                      "no interventions, one epoch a task, batch 1, MLP 100-100-100)")  # fmt: skip
    runs = inputs.continual[inputs.continual["variant"] == variant]
    if runs.empty:
        raise Missing(f"no per-run tables of continual variant {variant}")
    return runs, chosen["config"][variant]


def _at_task(column: str, last: bool) -> Callable[[Inputs], dict]:
    def compute(inputs: Inputs) -> dict:
        runs, config = _paper_runs(inputs)
        task = runs["task"].max() if last else runs["task"].min()
        values = runs.loc[runs["task"] == task, column]
        return claim_result(values, config, f" (task {task}); mean over seeds; {SPREAD}")

    return compute


def _per_seed_r(runs: pd.DataFrame) -> list[float]:
    return [stats.pearson(run["online_accuracy"], run["nc1"]) for _, run in runs.groupby("seed")]


def _seed_mean_r(inputs: Inputs) -> dict:
    runs, config = _paper_runs(inputs)
    result = claim_result(_per_seed_r(runs), config)
    tasks = f" over tasks {runs['task'].min()}-{runs['task'].max()}"
    return result | {"ours": seed_mean_r(runs), "note": f"{tasks}; {SPREAD} of the per-seed r"}


def _fisher_mean_r(inputs: Inputs) -> dict:
    runs, config = _paper_runs(inputs)
    per_seed = _per_seed_r(runs)
    result = claim_result(per_seed, config, f"; {SPREAD} of the per-seed r")
    return result | {"ours": stats.fisher_z_interval(per_seed)["r"]}


_NC1 = "NC1 = tr(Σ_W Σ_B⁺)/C of the penultimate features of the task's training set (probe)"
_ONLINE = "online accuracy (each prediction made before its update, averaged over the task)"
CONTINUAL_CLAIMS = [
    Claim("Permuted MNIST: online accuracy at the start", f"{_ONLINE}, first analysed task",
          0.925, _at_task("online_accuracy", last=False)),
    Claim("Permuted MNIST: online accuracy at the end", f"{_ONLINE}, last analysed task",
          0.81, _at_task("online_accuracy", last=True)),
    Claim("Permuted MNIST: NC1 at the start", f"{_NC1}, after the first analysed task", 0.23,
          _at_task("nc1", last=False)),
    Claim("Permuted MNIST: NC1 at the end", f"{_NC1}, after the last analysed task", 0.35,
          _at_task("nc1", last=True)),
    Claim("Permuted MNIST: r(online accuracy, NC1), the paper's statistic",
          "Pearson r between the seed-mean online-accuracy curve and the seed-mean NC1 curve "
          "(mean over seeds per task, then r over the tasks)", -0.945, _seed_mean_r),
    Claim("Permuted MNIST: r(online accuracy, NC1) per seed (ours)",
          "tanh of the mean over seeds of Fisher's z of each seed's Pearson r over the analysed "
          "tasks (95 % interval over seeds: results/continual/analysis/correlations.tsv, "
          "seed = mean)", "not reported", _fisher_mean_r),
    *sweep_claims(),
]  # fmt: skip


CLAIMS = CONTINUAL_CLAIMS + warm_start_claims()


def reproduction_table(inputs: Inputs) -> pd.DataFrame:
    return pd.DataFrame([claim.row(inputs) for claim in CLAIMS], columns=COLUMNS)


def _cell(value) -> str:
    if isinstance(value, (float, np.floating)):
        return "–" if np.isnan(value) else f"{value:.4g}"
    return str(value).replace("|", "\\|")


def markdown(table: pd.DataFrame) -> str:
    lines = [
        "| " + " | ".join(table.columns) + " |",
        "|" + "---|" * len(table.columns),
        *("| " + " | ".join(_cell(v) for v in row) + " |" for row in table.itertuples(False)),
    ]
    return "\n".join(lines) + "\n"


def write_reproduction(inputs: Inputs, tsv_path, md_path) -> None:
    """Write the table as TSV and as Markdown (the README quotes it)."""
    table = reproduction_table(inputs)
    write_table(table, tsv_path)
    header = (
        "# Reproduction of the paper's quantitative claims\n\n"
        "Built by the workflow's `paper_reproduction` rule from this run's per-run tables "
        "(`results/paper/reproduction.tsv`). `paper`: the value in the paper's code "
        "(DESIGN §3); `ours`: the same statistic on this run; `spread` and `n_seeds`: as the "
        "`statistic` says; `comparable` (warm-start rows): `yes` where this run has the paper's "
        "setting, else each way it differs (dataset, width, warm-up epochs, seeds, a checkpoint "
        "or window other than the paper's, several of the paper's sharing one of ours); "
        "`config`: the configuration that produced it. First-task sweep rows only: "
        "`signed_r`, the mean over tasks of the signed r; `p_perm`, its permutation p-value; "
        "`expected_abs_r_null`, the |r| that no correlation gives for that many runs.\n\n"
    )
    with open(md_path, "w") as fh:
        fh.write(header + markdown(table))
        note = reference_note(table)
        fh.write(f"\n{note}" if note else "")
        fh.write(_seed_count_section(inputs))


def _seed_count_section(inputs: Inputs) -> str:
    """The Markdown section on the paper's statistic against the number of seeds averaged."""
    heading = "\n## The paper's r(online accuracy, NC1) against the number of seeds\n\n"
    try:
        table = seed_count_table(inputs.continual)
    except Missing as missing:
        return f"{heading}Not available: {missing}.\n"
    return (
        f"{heading}Pearson r over tasks between the k-seed-mean online-accuracy and NC1 "
        "curves (the paper's statistic, -0.945 from its 5 seeds), per continual variant, over "
        f"the k-subsets of its seeds (every one, or {MAX_SUBSETS} seeded random ones where "
        "there are more): mean, min and max of r over the `n_subsets` subsets. Averaging seeds "
        "shrinks each seed's noise around the trend shared over tasks, so |r| tends to grow "
        "with k: compare the paper's value with the row of its seed count.\n\n" + markdown(table)
    )
