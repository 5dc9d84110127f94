"""A continual run's per-task table: its training log joined with its NC metrics, with PL_i and
the derived metrics. One job per run, so this module imports only what that join needs (no
scipy, matplotlib or torch: a job's start-up is most of its time)."""

from __future__ import annotations

from ncplasticity import metrics
from ncplasticity.nc import METRIC_KEYS
from ncplasticity.plasticity import plasticity_loss
from ncplasticity.tsv import read_table, write_table


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
