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
    (the first-task variable shuffled across runs). The ``variants`` column names the group."""
    tables = read_tables(table_paths, analysis_tasks)
    if groups is None:
        groups = [sorted(tables["variant"].unique())]
    rows = []
    for group in groups:
        rows += _sweep_rows(tables[tables["variant"].isin(group)], ",".join(group))
    write_table(pd.DataFrame(rows), out_path)


def _sweep_rows(tables: pd.DataFrame, group: str) -> list[dict]:
    from ncplasticity import stats

    first = tables[tables["task"] == 0].set_index("run")
    later = tables[tables["task"] > 0].copy()
    later["first_nc1"] = later["run"].map(first["nc1"])
    later["first_epochs"] = later["run"].map(first["epochs"])
    later["first_steps"] = later["run"].map(first["steps"])
    points = later.to_dict("records")
    by_task = dict(list(later.groupby("task")))
    rows = []
    for method in stats.METHODS:
        by_nc1 = stats.per_group_correlation(points, "task", "first_nc1", "pl", method)
        by_epochs = stats.per_group_correlation(points, "task", "first_epochs", "pl", method)
        for nc1_row, epochs_row in zip(by_nc1, by_epochs, strict=True):
            members = by_task[nc1_row["task"]]
            partial = stats.partial_correlation(
                members["first_nc1"].to_numpy(float),
                members["pl"].to_numpy(float),
                members["first_steps"].to_numpy(float),
                method,
            )
            rows.append(
                {
                    "variants": group,
                    "task": nc1_row["task"],
                    "method": method,
                    "r_first_nc1_pl": nc1_row["r"],
                    "p_first_nc1_pl": nc1_row["p"],
                    "r_first_epochs_pl": epochs_row["r"],
                    "p_first_epochs_pl": epochs_row["p"],
                    "partial_r_first_nc1_pl_steps": partial,
                    "n_runs": nc1_row["n"],
                    # With few runs an |r| means little by itself: the |r| no correlation
                    # gives, and the p-value of the first-task variable shuffled across runs.
                    "expected_abs_r_null": stats.expected_abs_r(nc1_row["n"]),
                    "p_perm_first_nc1_pl": stats.permutation_p_value(
                        members["first_nc1"], members["pl"], method
                    ),
                    "p_perm_first_epochs_pl": stats.permutation_p_value(
                        members["first_epochs"], members["pl"], method
                    ),
                }
            )
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
