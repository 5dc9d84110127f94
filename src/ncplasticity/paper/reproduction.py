"""The reproduction table: one row per quantitative claim of the paper (DESIGN §3), with the
paper's value, ours from the run's per-run tables computed the way the paper computes it, the
spread over seeds, the number of seeds it rests on and the configuration that produced it.

Rows whose inputs the run lacks (an experiment not run, a variant not configured) say so in
``config`` and leave ``ours`` empty; they never fail the table. Which runs stand for the paper's
comes from :mod:`ncplasticity.paper.selection` (the ``choice``), never from variant names.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter1d

from ncplasticity import stats
from ncplasticity.continual.analysis import read_tables
from ncplasticity.paper.selection import WARM_START_ROLES
from ncplasticity.tsv import read_table, write_table

COLUMNS = ["claim", "statistic", "paper", "ours", "spread", "n_seeds", "config"]
SPREAD = "spread: sample std (ddof 1) over seeds"
# The paper smooths the sweep's per-task |r| with a Gaussian of this σ (in tasks).
SWEEP_SIGMA = 4
# Without a `collapsed` column, an epoch collapses when its training accuracy is below this
# fraction of the best of the epochs before it.
COLLAPSE_FRACTION = 0.5
# The paper's warm-start reference values (its final_df.csv, mean of seeds 7-11), by warm-up
# epoch: plain, after shrink & perturb, NC1-regularised test accuracy, NC1, NC4 agreement.
WARM_START_REFERENCE = {
    5: (0.610, 0.664, 0.607, 15.5, 0.55),
    50: (0.588, 0.620, 0.595, 1.34, 0.86),
    100: (0.583, None, 0.594, 0.61, None),
    115: (0.583, 0.609, 0.592, 0.55, 0.997),
    350: (0.581, None, None, 0.415, None),
}
# Sliding-window (100 epochs, seeds 7-10) r(NC1, fine-tuned accuracy) by window end.
SLIDING_REFERENCE = {100: 0.90, 150: 0.58, 200: 0.14, 350: "≈ 0 (from 225 on)"}


class Missing(Exception):
    """A claim whose inputs this run lacks; the message says which."""


@dataclass
class Inputs:
    """The run's files and the choice of the paper's runs (``choice["continual"]`` /
    ``choice["warm_start"]``: None when that experiment was not run)."""

    choice: dict
    continual_tables: Sequence = ()
    sweep_correlations: str | None = None
    warm_start_tables: Sequence = ()
    warm_start_correlations: str | None = None
    warmup_logs: Sequence = ()

    def experiment(self, name: str) -> dict:
        chosen = self.choice.get(name)
        if not chosen:
            raise Missing(f"the {name} experiment is not among this run's experiments")
        return chosen

    @cached_property
    def continual(self) -> pd.DataFrame:
        chosen = self.experiment("continual")
        if not self.continual_tables:
            raise Missing("no continual per-run tables")
        return read_tables(self.continual_tables, chosen["analysis_tasks"])

    @cached_property
    def warm_start(self) -> pd.DataFrame:
        return _read_all(self.warm_start_tables, "warm-start per-run tables")

    @cached_property
    def warmup_log(self) -> pd.DataFrame:
        return _read_all(self.warmup_logs, "warm-up logs")


def _read_all(paths, what: str) -> pd.DataFrame:
    if not paths:
        raise Missing(f"no {what}")
    return pd.concat([read_table(path) for path in paths], ignore_index=True)


def _summary(values) -> tuple[float, float, int]:
    """Mean, sample std (ddof 1; NaN below 2) and count of the finite values."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if not len(values):
        return float("nan"), float("nan"), 0
    spread = float(values.std(ddof=1)) if len(values) > 1 else float("nan")
    return float(values.mean()), spread, len(values)


def _result(values, config: str, note: str = "") -> dict:
    ours, spread, n = _summary(values)
    return {"ours": ours, "spread": spread, "n_seeds": n, "config": config, "note": note}


@dataclass(frozen=True)
class Claim:
    claim: str
    statistic: str
    paper: object
    compute: Callable[[Inputs], dict]  # -> ours, spread, n_seeds, config, note

    def row(self, inputs: Inputs) -> dict:
        base = {"claim": self.claim, "paper": self.paper}
        try:
            found = self.compute(inputs)
        except Missing as missing:
            return base | {
                "statistic": self.statistic,
                "ours": float("nan"),
                "spread": float("nan"),
                "n_seeds": 0,
                "config": f"not available: {missing}",
            }
        return base | {"statistic": self.statistic + found.pop("note")} | found


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
        return _result(values, config, f" (task {task}); mean over seeds; {SPREAD}")

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
    result = _result(_per_seed_r(runs), config)
    tasks = f" over tasks {runs['task'].min()}-{runs['task'].max()}"
    return result | {"ours": seed_mean_r(runs), "note": f"{tasks}; {SPREAD} of the per-seed r"}


def _fisher_mean_r(inputs: Inputs) -> dict:
    runs, config = _paper_runs(inputs)
    per_seed = _per_seed_r(runs)
    result = _result(per_seed, config, f"; {SPREAD} of the per-seed r")
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


# --- warm starting ------------------------------------------------------------------------


def _role(inputs: Inputs, role: str) -> tuple[str, dict]:
    chosen = inputs.experiment("warm_start")
    variant = chosen[role]
    if variant is None:
        names = WARM_START_ROLES[role]
        raise Missing(f"no warm_start variant with interventions exactly {names}")
    return variant, chosen


def nearest(available, target: int) -> int:
    """The available value nearest to ``target`` (ties to the smaller)."""
    return int(min(sorted(set(available)), key=lambda value: abs(value - target)))


def _at_epoch(role: str, column: str, epoch: int) -> Callable[[Inputs], dict]:
    def compute(inputs: Inputs) -> dict:
        variant, chosen = _role(inputs, role)
        runs = inputs.warm_start[inputs.warm_start["variant"] == variant]
        if runs.empty:
            raise Missing(f"no per-run tables of warm_start variant {variant}")
        found = nearest(runs["epoch"], epoch)
        values = runs.loc[runs["epoch"] == found, column] if column in runs else []
        where = "" if found == epoch else f" (the checkpoint nearest to the paper's {epoch})"
        note = f", at warm-up epoch {found}{where}; mean over seeds; {SPREAD}"
        return _result(values, chosen["config"][variant], note)

    return compute


def _sliding(window_end: int) -> Callable[[Inputs], dict]:
    def compute(inputs: Inputs) -> dict:
        variant, chosen = _role(inputs, "plain")
        if inputs.warm_start_correlations is None:
            raise Missing("no warm-start correlation table")
        table = read_table(inputs.warm_start_correlations)
        rows = table[(table["variant"] == variant) & (table["metric"] == "nc1")]
        if rows.empty:
            raise Missing(f"no sliding window fits the warm-up of {variant}")
        found = nearest(rows["window_end"], window_end)
        row = rows[rows["window_end"] == found].iloc[0]
        where = "" if found == window_end else f" (nearest to the paper's {window_end})"
        return {
            "ours": float(row["r_mean"]),
            "spread": float(row["r_std"]),
            "n_seeds": int(row["n_seeds"]),
            "config": chosen["config"][variant],
            "note": f"; window of {chosen['window']} epochs ending at {found}{where}; mean over "
            "seeds; spread: std (ddof 0) over seeds",
        }

    return compute


def collapse_epochs(log: pd.DataFrame) -> tuple[np.ndarray, str]:
    """Which warm-up epochs of one run's log collapsed: its ``collapsed`` column where the log
    has one, else training accuracy below half the best of the epochs before; and the rule."""
    if "collapsed" in log and log["collapsed"].notna().any():
        return log["collapsed"].eq(True).to_numpy(), "the log's `collapsed` flag"
    accuracy = log["train_accuracy"].to_numpy(float)
    best_before = np.fmax.accumulate(np.concatenate([[-np.inf], accuracy[:-1]]))
    rule = f"training accuracy < {COLLAPSE_FRACTION} x the best of the epochs before"
    return accuracy < COLLAPSE_FRACTION * best_before, rule


def _collapse(summary: str) -> Callable[[Inputs], dict]:
    def compute(inputs: Inputs) -> dict:
        variant, chosen = _role(inputs, "nc_reg")
        warmup = chosen["warmups"][variant]
        logs = inputs.warmup_log[inputs.warmup_log["variant"] == warmup]
        if logs.empty:
            raise Missing(f"no warm-up logs of warm_start variant {warmup}")
        values, rules = [], set()
        for _, log in logs.sort_values("epoch").groupby("seed"):
            collapsed, rule = collapse_epochs(log)
            rules.add(rule)
            if summary == "fraction":
                values.append(float(collapsed.any()))
            elif summary == "epoch":
                values.append(log["epoch"].to_numpy()[collapsed][0] if collapsed.any() else np.nan)
            else:
                values.append(log["train_accuracy"].min())
        rule = "" if summary == "minimum" else f"; collapse: {' / '.join(sorted(rules))}"
        note = f"{rule}; {SPREAD}"
        return _result(values, chosen["config"][variant], note)

    return compute


def _warm_start_claims() -> list[Claim]:
    finetuned = (
        "test accuracy after training the warm-up checkpoint on the full training set (fresh "
        "optimiser, until training accuracy > target or the epoch cap)"
    )
    quantities = [
        ("plain", "finetune_test_accuracy", "Warm start: test accuracy", finetuned),
        ("shrink_perturb", "finetune_test_accuracy", "Warm start: test accuracy after S&P",
         f"{finetuned}, after shrink & perturb of the checkpoint"),
        ("nc_reg", "finetune_test_accuracy", "Warm start: test accuracy, NC1-regularised",
         f"{finetuned}; warm-up with the paper's NC1 regulariser"),
        ("plain", "nc1", "Warm start: NC1", "NC1 of the warm-up-set features"),
        ("plain", "nc4_agreement", "Warm start: NC4 agreement",
         "NC4 agreement (1 - nc4) of the warm-up-set features"),
    ]  # fmt: skip
    claims = [
        Claim(f"{claim} at warm-up epoch {epoch}", statistic, values[i], _at_epoch(role, c, epoch))
        for i, (role, c, claim, statistic) in enumerate(quantities)
        for epoch, values in WARM_START_REFERENCE.items()
        if values[i] is not None
    ]
    claims += [
        Claim(f"Warm start: sliding-window r(NC1, test accuracy), window ending at {end}",
              "Pearson r between NC1 and the fine-tuned test accuracy over the checkpoints of "
              "a sliding window of warm-up epochs, per seed", paper, _sliding(end))
        for end, paper in SLIDING_REFERENCE.items()
    ]  # fmt: skip
    warmup = "the warm-up (half-set) training accuracy under the paper's NC1 regulariser"
    claims += [
        Claim("NC1 regulariser: seeds whose warm-up collapses",
              f"fraction of seeds in which {warmup} collapses", "1 (every seed)",
              _collapse("fraction")),
        Claim("NC1 regulariser: first epoch of the collapse",
              f"first warm-up epoch at which {warmup} collapses, mean over collapsed seeds",
              "≈ 55-130", _collapse("epoch")),
        Claim("NC1 regulariser: lowest warm-up training accuracy",
              f"minimum over warm-up epochs of {warmup}, mean over seeds", "0.1-0.2",
              _collapse("minimum")),
    ]  # fmt: skip
    return claims


CLAIMS = CONTINUAL_CLAIMS + _warm_start_claims()


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
