"""Continual-learning tables (pandas; no torch or matplotlib): each run's per-task table, and
across runs the correlations, the first-task sweep's correlations and the per-variant summary.

Per-run tables carry ``run``, ``variant`` and ``seed`` columns (from the workflow, never from
file names); every analysis groups by ``variant``, so runs of different variants never pool
silently. Metrics come from the registry (:mod:`ncplasticity.metrics`); a registered
plasticity measure that the continual tables lack (one only the warm-start experiment logs) is
left out of the correlations and figures, not an error (a missing outcome or NC column is);
the variant summary gives NaN for any quantity whose column a table lacks.

Every run's table is a job of its own whose start-up is most of its time, so this module
imports :mod:`ncplasticity.stats` (scipy) only inside the analyses that use it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ncplasticity import metrics, summary
from ncplasticity.nc import METRIC_KEYS
from ncplasticity.plasticity import plasticity_loss
from ncplasticity.tables import read_table, read_tables
from ncplasticity.tsv import write_table, write_text

CORRELATION_COLUMNS = [
    "variant",
    "x",
    "metric",
    "method",
    "seed",
    "r",
    "ci_low",
    "ci_high",
    "interval",
    "n_seeds",
    "p",
    "r_pooled",
    "n_points",
    "partial_r_steps",
]
# The ``seed`` of the row that summarises a variant's seeds.
SEED_MEAN = "mean"


def plasticity_table(
    log_path, metrics_path, out_path, *, run_id: str, variant: str, seed: int
) -> None:
    """Join a run's log and NC metrics per task, add PL_i = acc(task 0) − acc(task i) and the
    derived metrics."""
    log = read_table(log_path)
    nc = read_table(metrics_path)
    missing = sorted(set(log["task"]) - set(nc["task"]))
    if missing:
        raise ValueError(f"{metrics_path}: no metrics for tasks {missing} of {log_path}")
    nc = nc[["task", *METRIC_KEYS]].rename(columns={"accuracy": "probe_accuracy"})
    table = log.merge(nc, on="task", how="left", validate="one_to_one")
    table.insert(0, "seed", seed)
    table.insert(0, "variant", variant)
    table.insert(0, "run", run_id)
    table["pl"] = plasticity_loss(table["online_accuracy"])
    table["pl_test"] = plasticity_loss(table["test_accuracy"])
    write_table(metrics.add_derived(table), out_path)


def present_metrics(chosen: list[metrics.Metric], table: pd.DataFrame) -> list[metrics.Metric]:
    """``chosen`` less the measures and outcomes ``table`` has no column for (a run without
    the fresh reference has no ``pl_fresh``); the NC metrics are always there."""
    return [m for m in chosen if m.group == "nc" or m.name in table.columns]


def correlations(
    table_paths, out_path, analysis_tasks: int, x: str = "online_accuracy", n_boot: int = 2000
) -> None:
    """Per-task ``x`` against every correlated metric of the registry, per variant, Pearson and
    Spearman, each with the partial correlation controlling for training steps so far.

    One row per seed (r, p, partial r over that run's tasks; no interval, ``n_seeds`` 1), then
    a row with ``seed`` = "mean" summarising the seeds: ``r`` and ``partial_r_steps`` = tanh of
    the mean Fisher z of the per-seed values, ``ci_low``/``ci_high`` its 95 % interval over
    seeds (``interval`` names the method: a t-interval on the z scale below
    :data:`stats.MIN_BOOTSTRAP_SEEDS` seeds, else a bootstrap over seeds), ``p`` the t-test of
    mean z = 0, ``n_seeds`` the seeds with a finite r, and ``r_pooled`` the correlation of all
    seeds' points pooled (``n_points`` of them).
    """
    from ncplasticity import stats

    rows = []
    tables = read_tables(table_paths, analysis_tasks)
    for variant, runs in tables.groupby("variant", sort=True):
        by_seed = [run for _, run in runs.groupby("seed", sort=True)]
        for metric in present_metrics(metrics.select(correlated=True), tables):
            for method in stats.METHODS:
                xs = [run[x].to_numpy(float) for run in by_seed]
                ys = [run[metric.name].to_numpy(float) for run in by_seed]
                steps = [run["total_steps"].to_numpy(float) for run in by_seed]
                common = {"variant": variant, "x": x, "metric": metric.name, "method": method}
                seed_rows = []
                for run, xv, yv, sv in zip(by_seed, xs, ys, steps, strict=True):
                    r, p, n = stats.correlation_test(xv, yv, method)
                    seed_rows.append(
                        common
                        | {
                            "seed": int(run["seed"].iloc[0]),
                            "r": r,
                            "interval": "none",
                            "n_seeds": 1,
                            "p": p,
                            "n_points": n,
                            "partial_r_steps": stats.partial_correlation(xv, yv, sv, method),
                        }
                    )
                pooled_r, _, pooled_n = stats.correlation_test(
                    np.concatenate(xs), np.concatenate(ys), method
                )
                partials = [row["partial_r_steps"] for row in seed_rows]
                rows += seed_rows
                rows.append(
                    common
                    | stats.seed_interval([row["r"] for row in seed_rows], n_boot=n_boot)
                    | {
                        "seed": SEED_MEAN,
                        "r_pooled": pooled_r,
                        "n_points": pooled_n,
                        "partial_r_steps": stats.fisher_z_interval(partials)["r"],
                    }
                )
    write_table(pd.DataFrame(rows, columns=CORRELATION_COLUMNS), out_path)


def sweep_correlations(table_paths, out_path, analysis_tasks: int, groups=None) -> None:
    """Per task i ≥ 1, across the runs of a first-task sweep (every seed of a group of
    variants that differ only in the first task's schedule; all variants when ``groups`` is
    None): correlation of PL_i with the NC1 after the first task and with the first task's
    epochs, and of PL_i with that NC1 controlling for the first task's training steps; beside
    them the expected |r| without any correlation for that many runs and permutation p-values
    (the first-task variable shuffled across runs). The ``variants`` column names the group.

    PL_i is taken against both references of :data:`PL_REFERENCES`: ours (``*_pl``, every
    task's first epoch) and the paper's (``*_pl_all_epochs``, every task's mean over all its
    epochs, so task 0's reference averages every epoch of a longer first task)."""
    tables = read_tables(table_paths, analysis_tasks)
    if groups is None:
        groups = [sorted(tables["variant"].unique())]
    rows = []
    for group in groups:
        rows += _sweep_rows(tables[tables["variant"].isin(group)], ",".join(group))
    write_table(pd.DataFrame(rows), out_path)


# PL_i = acc(task 0) − acc(task i) of a sweep, per reference: (the accuracy column, the suffix
# of the sweep table's columns). The paper's code logs a task's online accuracy over all its
# iterations, so with its reference a longer first task raises acc(task 0) mechanically (more
# epochs on a task already learned); the first epoch measures task 0 as every other task.
PL_REFERENCES = {
    "first_epoch": ("online_accuracy", ""),
    "all_epochs": ("online_accuracy_all_epochs", "_all_epochs"),
}
# The first-task variables a sweep correlates with PL_i (columns ``first_<name>``).
SWEEP_VARIABLES = ("nc1", "epochs")


def sweep_panel(tables: pd.DataFrame, reference: str = "first_epoch") -> pd.DataFrame:
    """The later tasks (task ≥ 1) of a sweep's runs, each with its run's first-task NC1, epochs
    and steps (``first_nc1``, ``first_epochs``, ``first_steps``) and ``pl`` = PL_i against
    ``reference`` (a key of :data:`PL_REFERENCES`)."""
    accuracy, _ = PL_REFERENCES[reference]
    if accuracy not in tables:
        raise ValueError(f"first-task sweep: the per-run tables have no {accuracy!r} column")
    first = tables[tables["task"] == 0].set_index("run")
    later = tables[tables["task"] > 0].copy()
    for name in ("nc1", "epochs", "steps"):
        later[f"first_{name}"] = later["run"].map(first[name])
    later["pl"] = later["run"].map(first[accuracy]) - later[accuracy]
    return later


def sweep_mean_r_p_value(
    tables: pd.DataFrame, variable: str, reference: str, method: str = "pearson"
) -> float:
    """Permutation p-value of the mean over tasks i ≥ 1 of r(first-task ``variable``, PL_i)
    across the runs of ``tables`` (one sweep group): each permutation shuffles the first-task
    variable across runs once for every task, since one value per run underlies every task's
    r (per-task p-values are far from independent)."""
    from ncplasticity import stats

    panel = sweep_panel(tables, reference)
    pl = panel.pivot(index="run", columns="task", values="pl")
    first = panel.groupby("run")[f"first_{variable}"].first().reindex(pl.index)
    return stats.permutation_p_value(first.to_numpy(float), pl.to_numpy(float), method)


def _sweep_rows(tables: pd.DataFrame, group: str) -> list[dict]:
    from ncplasticity import stats

    by_task = {
        reference: dict(list(sweep_panel(tables, reference).groupby("task")))
        for reference in PL_REFERENCES
    }
    rows = []
    for method in stats.METHODS:
        for task, first_epoch in by_task["first_epoch"].items():
            row, n_pairs = {"variants": group, "task": task, "method": method}, {}
            for reference, (_, suffix) in PL_REFERENCES.items():
                members = by_task[reference][task]
                for variable in SWEEP_VARIABLES:
                    first, pl = members[f"first_{variable}"], members["pl"]
                    name = f"first_{variable}_pl{suffix}"
                    row[f"r_{name}"], row[f"p_{name}"], n_pairs[name] = stats.correlation_test(
                        first, pl, method
                    )
                    # With few runs an |r| means little by itself: the p-value of the
                    # first-task variable shuffled across runs, and the |r| no correlation gives.
                    row[f"p_perm_{name}"] = stats.permutation_p_value(first, pl, method)
            row["partial_r_first_nc1_pl_steps"] = stats.partial_correlation(
                first_epoch["first_nc1"].to_numpy(float),
                first_epoch["pl"].to_numpy(float),
                first_epoch["first_steps"].to_numpy(float),
                method,
            )
            row["n_runs"] = n_pairs["first_nc1_pl"]
            row["expected_abs_r_null"] = stats.expected_abs_r(row["n_runs"])
            rows.append(row)
    return rows


# The variant summary: "final" is the mean over each run's last FINAL_TASKS analysed tasks.
FINAL_TASKS = 10
# (quantity, its description in the Markdown header).
SUMMARY_QUANTITIES = {
    "first_accuracy": "online accuracy of task 0",
    "final_accuracy": "online accuracy, final",
    "pl": "plasticity loss, first − final accuracy",
    "pl_fresh_final": "PL against a fresh network, final",
    "nc1_first": "NC1 after task 0",
    "nc1_final": "NC1, final",
    "dormant_fraction_final": "dormant fraction, final",
    "distance_from_init_final": "distance from init, final",
    "test_accuracy_final": "test accuracy, final",
}


def variant_summary(table_paths, out_tsv, out_md, analysis_tasks: int) -> None:
    """One row per variant (in the tables' order): ``n_seeds`` and, per quantity of
    :data:`SUMMARY_QUANTITIES`, its mean and standard deviation over seeds
    (:func:`ncplasticity.summary.over_seeds`). Each quantity is computed per seed first: task
    0's value, or the mean over the run's last :data:`FINAL_TASKS` analysed tasks (``_final``);
    ``pl`` = first − final accuracy. A column a table lacks gives NaN. Also writes ``out_md``,
    the same table in Markdown."""
    tables = read_tables(table_paths, analysis_tasks)
    per_seed, windows = [], {}
    for (variant, seed), run in tables.groupby(["variant", "seed"], sort=False):
        if run["run"].nunique() > 1:
            raise ValueError(f"variant {variant!r}: several runs of seed {seed}")
        values, window = _seed_summary(run.sort_values("task"))
        per_seed.append({"variant": variant, "seed": seed, **values})
        windows.setdefault(variant, set()).add(window)
    table = summary.over_seeds(pd.DataFrame(per_seed), SUMMARY_QUANTITIES)
    write_table(table, out_tsv)
    spans = {v: ", ".join(f"{a}–{b}" for a, b in sorted(w)) for v, w in windows.items()}
    if len(set(spans.values())) == 1:
        span = f"tasks {next(iter(spans.values()))}"
    else:
        span = "tasks " + "; ".join(f"{v}: {w}" for v, w in spans.items())
    header = (
        "Generated by the workflow (rule continual_variant_summary, from "
        "results/continual/tables); do not edit. Mean ± standard deviation over seeds; "
        f"{summary.rests_on(table)}. Final: mean over the last {FINAL_TASKS} analysed tasks "
        f"({span}); PL: first − final online accuracy, per seed; PL against a fresh network: "
        "fresh − ours online accuracy, over the final tasks with a fresh reference."
    )
    write_text(out_md, summary.markdown(table, SUMMARY_QUANTITIES, header))


def _seed_summary(run: pd.DataFrame) -> tuple[dict, tuple[int, int]]:
    """One run's quantities and the (first, last) task of its final window."""
    if run["task"].iloc[0] != 0:
        raise ValueError(f"run {run['run'].iloc[0]}: no task 0")
    first, final = run.iloc[0], run.tail(FINAL_TASKS)

    def last(column):
        return final[column].mean(skipna=False) if column in run else np.nan

    values = {
        "first_accuracy": first.get("online_accuracy", np.nan),
        "final_accuracy": last("online_accuracy"),
        "nc1_first": first.get("nc1", np.nan),
        "nc1_final": last("nc1"),
        "dormant_fraction_final": last("dormant_fraction"),
        "distance_from_init_final": last("distance_from_init"),
        "test_accuracy_final": last("test_accuracy"),
    }
    values["pl"] = values["first_accuracy"] - values["final_accuracy"]
    # Measured every fresh_every-th task only: the mean over the final tasks that have it.
    values["pl_fresh_final"] = final["pl_fresh"].mean() if "pl_fresh" in run else np.nan
    return values, (int(final["task"].iloc[0]), int(final["task"].iloc[-1]))


def write_analysis(
    name: str, table_paths, out_paths, analysis_tasks: int, sweep_groups=None
) -> None:
    """Write the analysis table ``name`` (one of
    :data:`~ncplasticity.continual.outputs.TABLE_NAMES`) to ``out_paths``: its TSV, then its
    Markdown copy when it has one."""
    if name == "correlations":
        correlations(table_paths, out_paths[0], analysis_tasks)
    elif name == "sweep_correlations":
        sweep_correlations(table_paths, out_paths[0], analysis_tasks, sweep_groups)
    elif name == "variant_summary":
        variant_summary(table_paths, out_paths[0], out_paths[1], analysis_tasks)
    else:
        raise ValueError(f"unknown continual analysis {name!r}")
