"""The reproduction table: one row per quantitative claim of the paper (DESIGN §3), with the
paper's value, ours from the run's per-run tables computed the way the paper computes it, the
spread over seeds, the number of seeds it rests on and the configuration that produced it.

Rows whose inputs the run lacks (an experiment not run, a variant not configured) say so in
``config`` and leave ``ours`` empty; they never fail the table. Which runs stand for the paper's
comes from :mod:`ncplasticity.paper.selection` (the ``choice``), never from variant names.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter1d

from ncplasticity import stats
from ncplasticity.paper.claims import SPREAD, Claim, Inputs, Missing, claim_result
from ncplasticity.paper.warm_start_claims import warm_start_claims
from ncplasticity.tables import read_table
from ncplasticity.tsv import write_table

COLUMNS = ["claim", "statistic", "paper", "ours", "spread", "n_seeds", "config"]
# The paper smooths the sweep's per-task |r| with a Gaussian of this σ (in tasks).
SWEEP_SIGMA = 4


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


def seed_mean_r(runs: pd.DataFrame, x: str = "online_accuracy", y: str = "nc1") -> float:
    """The paper's r: Pearson r over tasks of the seed-mean curves (the mean over seeds of
    each task's value, then r over the tasks)."""
    curves = runs.groupby("task", sort=True)[[x, y]].mean()
    return stats.pearson(curves[x], curves[y])


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


def sweep_curves(sweep_path, variants: Sequence[str], method: str = "pearson") -> pd.DataFrame:
    """Per task i of the sweep group ``variants``: |r| across its runs of NC1 after the first
    task vs PL_i and of first-task epochs vs PL_i (``abs_r_nc1``, ``abs_r_epochs``), each also
    Gaussian-smoothed over tasks with σ = 4 as the paper does (``smooth_*``; scipy's
    gaussian_filter1d, reflecting edges, over the tasks with a finite r)."""
    table = read_table(sweep_path)
    rows = table[(table["variants"] == ",".join(variants)) & (table["method"] == method)]
    curves = pd.DataFrame({"task": rows["task"].to_numpy(), "n_runs": rows["n_runs"].to_numpy()})
    for name, column in (("nc1", "r_first_nc1_pl"), ("epochs", "r_first_epochs_pl")):
        raw = rows[column].abs().to_numpy(float)
        smooth = np.full(len(raw), np.nan)
        finite = np.isfinite(raw)
        if finite.any():
            smooth[finite] = gaussian_filter1d(raw[finite], SWEEP_SIGMA, mode="reflect")
        curves[f"abs_r_{name}"], curves[f"smooth_{name}"] = raw, smooth
    return curves


def _sweep(quantity: str) -> Callable[[Inputs], dict]:
    def compute(inputs: Inputs) -> dict:
        chosen = inputs.experiment("continual")
        if not chosen["sweep"] or inputs.sweep_correlations is None:
            raise Missing("no first-task sweep (variants that differ only in the first task)")
        curves = sweep_curves(inputs.sweep_correlations, chosen["sweep"])
        if curves.empty:
            raise Missing(f"no sweep correlations of group {','.join(chosen['sweep'])}")
        smooth = curves[f"smooth_{quantity}"]
        runs = int(curves["n_runs"].max())
        return {
            "ours": float(smooth.mean()),
            "spread": float(smooth.std(ddof=0)),
            "n_seeds": len(chosen["seeds"]),
            "config": f"first-task sweep of {runs} runs: "
            + " | ".join(chosen["config"][v] for v in chosen["sweep"]),
            "note": f" (tasks {curves['task'].min()}-{curves['task'].max()}); ours: mean over "
            "tasks of the smoothed |r|; spread: its std (ddof 0) over tasks",
        }

    return compute


_SWEEP_STATISTIC = (
    "per task i >= 1, |Pearson r| across the sweep's runs (variants x seeds) of {} vs "
    "PL_i = acc(task 0) - acc(task i), Gaussian-smoothed over tasks (sigma = 4)"
)
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
    Claim("First-task sweep: |r(NC1 after the first task, PL_i)|",
          _SWEEP_STATISTIC.format("NC1 after the first task"), "0.75-0.9", _sweep("nc1")),
    Claim("First-task sweep: |r(first-task epochs, PL_i)|",
          _SWEEP_STATISTIC.format("the first task's epochs"), "0.75-0.9", _sweep("epochs")),
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
        "`statistic` says; `config`: the configuration that produced it.\n\n"
    )
    with open(md_path, "w") as fh:
        fh.write(header + markdown(table))
