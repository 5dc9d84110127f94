"""Warm-starting figures: each drawn from the per-run tables, the warm-up logs or the sliding
correlations (:data:`ncplasticity.warm_start.outputs.FIGURES` says which); the metrics shown,
their labels and scales come from the metric registry."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ncplasticity import metrics
from ncplasticity.plots import Panel, Series, panels_figure
from ncplasticity.tables import read_table
from ncplasticity.warm_start.outputs import FIGURE_NAMES


def _read_all(paths) -> pd.DataFrame:
    return pd.concat([read_table(path) for path in paths], ignore_index=True)


def _by_seed(table: pd.DataFrame, by: str, column: str, x: str = "epoch") -> dict[str, Series]:
    """One series per value of ``by``: ``column`` against ``x``, a row per seed (NaN where a
    run has no point, e.g. after it diverged)."""
    series = {}
    for name, group in table.groupby(by, sort=False):
        values = group[column] if column in group else np.nan
        wide = group.assign(_value=values).pivot(index="seed", columns=x, values="_value")
        series[name] = Series(wide.columns.to_numpy(), wide.to_numpy(dtype=float))
    return series


def nc_metrics_figure(table_paths, pdf, png, variants=()) -> None:
    """The plotted NC metrics of the warm-up features against warm-up epoch, one line per
    warm-up (one shared by several variants is shown once)."""
    table = _read_all(table_paths).drop_duplicates(["warmup_variant", "seed", "epoch"])
    panels = [
        Panel(m.label, _by_seed(table, "warmup_variant", m.name), scale=m.scale)
        for m in metrics.select(group="nc", plotted=True)
    ]
    panels_figure(panels, "warm-up epoch", pdf, png, color_names=variants)


def finetune_accuracy_figure(table_paths, pdf, png, variants=()) -> None:
    """Test accuracy after fine-tuning each warm-up checkpoint, per variant, with each
    fresh-init reference (mean ± std over seeds) as a band."""
    table = _read_all(table_paths)
    references = {}
    for group, rows in table.groupby("fresh_variant", sort=True):
        fresh = rows.drop_duplicates("seed")["fresh_test_accuracy"].to_numpy(float)
        label = "fresh init" if table["fresh_variant"].nunique() == 1 else f"fresh init ({group})"
        references[label] = (fresh.mean(), fresh.std())
    panel = Panel(
        "test accuracy after fine-tuning",
        _by_seed(table, "variant", "finetune_test_accuracy"),
        references=references,
    )
    panels_figure([panel], "warm-up epoch of the checkpoint", pdf, png, color_names=variants)


def warmup_accuracy_figure(log_paths, pdf, png, variants=()) -> None:
    """Warm-up training and test accuracy per epoch, one line per warm-up (shows any
    collapse)."""
    logs = _read_all(log_paths)
    panels = [
        Panel(f"warm-up {column.replace('_', ' ')}", _by_seed(logs, "variant", column))
        for column in ("train_accuracy", "test_accuracy")
    ]
    panels_figure(panels, "warm-up epoch", pdf, png, sharey=True, color_names=variants)


def sliding_correlation_figure(correlation_paths, pdf, png, variants=()) -> None:
    """r between each plotted NC metric and fine-tuned test accuracy over sliding windows of
    warm-up epochs (mean ± std over seeds), one panel per metric, one line per variant."""
    rows = _read_all(correlation_paths)
    panels = []
    for metric in metrics.select(group="nc", plotted=True):
        mine = rows[rows["metric"] == metric.name].sort_values("window_end")
        series = {
            variant: Series(
                group["window_end"].to_numpy(),
                group["r_mean"].to_numpy(float),
                group["r_std"].to_numpy(float),
            )
            for variant, group in mine.groupby("variant", sort=False)
        }
        panels.append(
            Panel(
                f"r with fine-tuned accuracy\n{metric.label}",
                series,
                ylim=(-1.05, 1.05),
                zero_line=True,
            )
        )
    panels_figure(panels, "window end (warm-up epoch)", pdf, png, sharey=True, color_names=variants)


_DRAW = {
    "nc_metrics": nc_metrics_figure,
    "finetune_accuracy": finetune_accuracy_figure,
    "warmup_accuracy": warmup_accuracy_figure,
    "sliding_correlation": sliding_correlation_figure,
}
# name -> the function that draws it from its inputs (outputs.FIGURES says which).
FIGURES = {name: _DRAW[name] for name in FIGURE_NAMES}
