"""Warm-starting tables and correlations (numpy/scipy only: runs in the analysis environment).

Per run ``{variant}_s{seed}``, one row per warm-up checkpoint epoch joins the NC metrics of
the warm-up features at that epoch, the warm-up log, and the fine-tuned outcome, plus the
fresh-init reference of the same seed. ``shrink_perturb`` has no warm-up of its own: its NC
metrics and warm-up log are those of ``plain`` (the checkpoints it shrinks and perturbs).
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from ncplasticity.stats import sliding_window_correlation
from ncplasticity.tsv import read_tsv, write_tsv

# The NC metrics correlated with fine-tuned accuracy and plotted against warm-up epoch.
NC_METRICS = ["nc1", "nc1_trace_ratio", "cdnv", "nc2_etf_weights", "nc3_wh", "nc4"]
METADATA = ["snapshot", "order", "epoch", "phase", "split", "task", "step", "n", "d", "c"]


def _by_epoch(rows, path, what):
    table = {}
    for row in rows:
        if row.get("epoch") is None:
            raise ValueError(f"{path}: {what} row without an 'epoch' column: {row}")
        table[int(row["epoch"])] = row
    return table


def run_table(metrics_path, warmup_log_path, finetune_paths, fresh_path, out_path) -> None:
    """Write the per-checkpoint table of one run (rows in warm-up-epoch order)."""
    metrics = _by_epoch(read_tsv(metrics_path), metrics_path, "metrics")
    warmup_log = _by_epoch(read_tsv(warmup_log_path), warmup_log_path, "warm-up log")
    (fresh,) = read_tsv(fresh_path)
    rows = []
    for path in finetune_paths:
        (finetuned,) = read_tsv(path)
        epoch = int(finetuned["warmup_epoch"])
        nc = metrics.get(epoch, {})  # absent when the warm-up diverged before this epoch
        logged = warmup_log.get(epoch, {})
        row = {"variant": finetuned["variant"], "seed": finetuned["seed"], "epoch": epoch}
        row.update({k: v for k, v in nc.items() if k not in METADATA})
        row["warmup_train_accuracy"] = logged.get("train_accuracy")
        row["warmup_test_accuracy"] = logged.get("test_accuracy")
        row["finetune_test_accuracy"] = finetuned["test_accuracy"]
        row["finetune_train_accuracy"] = finetuned["train_accuracy"]
        row["finetune_epochs"] = finetuned["epochs"]
        row["diverged"] = finetuned["diverged"] or bool(logged.get("diverged"))
        row["fresh_test_accuracy"] = fresh["test_accuracy"]
        row["gap_to_fresh"] = _difference(fresh["test_accuracy"], finetuned["test_accuracy"])
        rows.append(row)
    rows.sort(key=lambda r: r["epoch"])
    write_tsv(out_path, rows)


def _difference(a, b):
    if a is None or b is None or isinstance(a, str) or isinstance(b, str):
        return math.nan
    return a - b


def sliding_correlations(table_paths, window: int, out_path, metrics=NC_METRICS) -> None:
    """Pearson r between each NC metric and fine-tuned test accuracy over sliding windows of
    ``window`` warm-up epochs, per run; then mean and std over the seeds of each variant.

    Output columns: variant, metric, window_end, r_mean, r_std, n_seeds (seeds with a finite
    r in that window).
    """
    per_run = defaultdict(list)  # (variant, metric, window_end) -> [r per seed]
    for path in table_paths:
        rows = read_tsv(path)
        if not rows:
            raise ValueError(f"{path}: empty warm-start table")
        epochs = np.array([r["epoch"] for r in rows])
        accuracy = np.array([_float(r.get("finetune_test_accuracy")) for r in rows])
        for metric in metrics:
            values = np.array([_float(r.get(metric)) for r in rows])
            ends, rs = sliding_window_correlation(epochs, values, accuracy, window)
            for end, r in zip(ends, rs, strict=True):
                per_run[(rows[0]["variant"], metric, int(end))].append(r)
    out = []
    for (variant, metric, end), rs in sorted(per_run.items()):
        finite = np.array([r for r in rs if np.isfinite(r)])
        out.append(
            {
                "variant": variant,
                "metric": metric,
                "window_end": end,
                "r_mean": float(finite.mean()) if len(finite) else math.nan,
                "r_std": float(finite.std()) if len(finite) else math.nan,
                "n_seeds": len(finite),
            }
        )
    write_tsv(out_path, out, ["variant", "metric", "window_end", "r_mean", "r_std", "n_seeds"])


def _float(value) -> float:
    return math.nan if value is None or isinstance(value, str) else float(value)
