"""Each run's own curves, one PNG per run (the report's "Per-run curves"): where the
experiments' figures average a variant over seeds, these show a single run, read from its
per-run tables.

Continual run: online and test accuracy, then the plotted NC metrics, against task. Warm-start
run: warm-up train and test accuracy per epoch, test accuracy after fine-tuning each checkpoint
(with the fresh-init reference), then the plotted NC metrics of the checkpoints, against
warm-up epoch.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ncplasticity import metrics
from ncplasticity.plots import Panel, Series, panels_figure
from ncplasticity.tables import read_table


def _curve(table: pd.DataFrame, x: str, column: str) -> Series:
    values = table[column] if column in table else np.nan
    return Series(table[x].to_numpy(), np.asarray(values, dtype=float))


def _nc_panels(table: pd.DataFrame, x: str, name: str) -> list[Panel]:
    return [
        Panel(m.label, {name: _curve(table, x, m.name)}, scale=m.scale)
        for m in metrics.select(group="nc", plotted=True)
    ]


def _title(table: pd.DataFrame, run: str) -> str:
    return f"{run}: variant {table['variant'].iloc[0]}, seed {table['seed'].iloc[0]}"


def _png(out_dir: str | os.PathLike, run: str) -> Path:
    return Path(out_dir) / f"{run}.png"


def continual_run_figure(table_path, png, run: str) -> None:
    table = read_table(table_path).sort_values("task")
    accuracy = Panel(
        "accuracy",
        {
            "online accuracy": _curve(table, "task", "online_accuracy"),
            "test accuracy": _curve(table, "task", "test_accuracy"),
        },
    )
    panels = [accuracy, *_nc_panels(table, "task", run)]
    panels_figure(panels, "task", None, png, title=_title(table, run), fixed_layout=True)


def warm_start_run_figure(table_path, warmup_log_path, png, run: str) -> None:
    table = read_table(table_path).sort_values("epoch")
    log = read_table(warmup_log_path).sort_values("epoch")
    warmup = Panel(
        "warm-up accuracy",
        {
            "warm-up train accuracy": _curve(log, "epoch", "train_accuracy"),
            "warm-up test accuracy": _curve(log, "epoch", "test_accuracy"),
        },
    )
    fresh = float(table["fresh_test_accuracy"].iloc[0])
    finetuned = Panel(
        "test accuracy after fine-tuning",
        {"fine-tuned checkpoint": _curve(table, "epoch", "finetune_test_accuracy")},
        references={"fresh init": (fresh, 0.0)},
    )
    panels = [warmup, finetuned, *_nc_panels(table, "epoch", run)]
    panels_figure(panels, "warm-up epoch", None, png, title=_title(table, run), fixed_layout=True)


def continual_run_figures(table_paths, runs, out_dir) -> None:
    """One figure per run, ``runs`` naming the run of each table: ``out_dir/{run}.png``."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    for run, table_path in zip(runs, table_paths, strict=True):
        continual_run_figure(table_path, _png(out_dir, run), run)


def warm_start_run_figures(table_paths, warmup_log_paths, runs, out_dir) -> None:
    """One figure per run, from its table and its warm-up's log: ``out_dir/{run}.png``."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    for run, table_path, log_path in zip(runs, table_paths, warmup_log_paths, strict=True):
        warm_start_run_figure(table_path, log_path, _png(out_dir, run), run)
