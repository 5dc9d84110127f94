"""The paper's figures (DESIGN §3), drawn from the run's tables: each function writes one PDF
and one PNG. A variant keeps its colour (:func:`ncplasticity.plots.series_colors`); labels come
from the metric registry. Twin-axis panels draw the NC metric in the variant's colour and the
accuracy in black."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ncplasticity import metrics
from ncplasticity.paper.sweep_claims import SWEEP_SIGMA, sweep_curves
from ncplasticity.plots import (
    REFERENCE_COLOR,
    Panel,
    Series,
    draw_panel,
    panels_figure,
    save_figure,
    series_colors,
)
from ncplasticity.tables import read_table, read_tables

FINETUNED = "finetune_test_accuracy"
FINETUNED_LABEL = "fine-tuned test accuracy (full set)"


def _read_all(paths) -> pd.DataFrame:
    return pd.concat([read_table(path) for path in paths], ignore_index=True)


def by_seed(table: pd.DataFrame, column: str, x: str) -> Series:
    """``column`` against ``x``, one row per seed (NaN where a seed has no value)."""
    values = table[column] if column in table else np.nan
    wide = table.assign(_value=values).pivot_table(
        index="seed", columns=x, values="_value", aggfunc="first", dropna=False
    )
    return Series(wide.columns.to_numpy(), wide.to_numpy(dtype=float))


def _twin_panels(panels, xlabel: str, pdf, png, ncols: int, title: str = "") -> None:
    """Panels (title, colour, left Panel, right Panel), each with a twin y axis: the left
    panel's series and axis label in ``colour``, the right's in black (the axis labels name
    them, so there is no legend)."""
    nrows = max(1, -(-len(panels) // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.4 * ncols, 3.2 * nrows), squeeze=False)
    for ax, (panel_title, color, left, right) in zip(axes.flat, panels, strict=False):
        twin = ax.twinx()
        draw_panel(ax, left, xlabel, colors=dict.fromkeys(left.series, color))
        draw_panel(twin, right, xlabel, colors=dict.fromkeys(right.series, REFERENCE_COLOR))
        twin.grid(False)
        ax.yaxis.label.set_color(color)
        if panel_title:
            ax.set_title(panel_title, color=color, fontsize="medium")
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title, fontsize="medium")
    fig.tight_layout()
    save_figure(fig, pdf, png)


def continual_accuracy_nc1(table_paths, pdf, png, analysis_tasks: int, variants=()) -> None:
    """Online accuracy and NC1 against task on twin axes, mean ± std over seeds, one panel per
    variant (the paper's Permuted-MNIST figure)."""
    tables = read_tables(table_paths, analysis_tasks)
    accuracy, nc1 = metrics.registry()["online_accuracy"], metrics.registry()["nc1"]
    colors = series_colors([*variants, *tables["variant"]])
    panels = [
        (
            variant,
            colors[variant],
            Panel(nc1.label, {nc1.label: by_seed(runs, nc1.name, "task")}),
            Panel(accuracy.label, {accuracy.label: by_seed(runs, accuracy.name, "task")}),
        )
        for variant, runs in tables.groupby("variant", sort=True)
    ]
    _twin_panels(panels, "task", pdf, png, ncols=min(3, len(panels)))


def first_task_sweep_correlations(sweep_paths, pdf, png, variants: Sequence[str]) -> None:
    """|r| across the sweep's runs of NC1 after the first task vs PL_i and of first-task
    epochs vs PL_i, per task i: Gaussian-smoothed (σ = 4, as the paper) and raw, faintly.
    ``sweep_paths``: the one sweep-correlation table."""
    (sweep_path,) = sweep_paths
    curves = sweep_curves(sweep_path, variants)
    labels = {"nc1": "NC1 after first task vs PL", "epochs": "first-task epochs vs PL"}
    colors = series_colors(labels.values())
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for name, label in labels.items():
        ax.plot(curves["task"], curves[f"abs_r_{name}"], color=colors[label], alpha=0.3, lw=0.8)
        ax.plot(curves["task"], curves[f"smooth_{name}"], color=colors[label], lw=1.6,
                label=f"{label} (smoothed, σ = {SWEEP_SIGMA})")  # fmt: skip
    if curves.empty:
        ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", color="0.4")
    ax.set(xlabel="task i", ylabel="|Pearson r| across runs", ylim=(0, 1.02))
    ax.set_title(f"first-task sweep: {', '.join(variants)}", fontsize="medium")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="lower right")
    fig.tight_layout()
    save_figure(fig, pdf, png)


def warm_start_nc_vs_accuracy(table_paths, pdf, png, variant: str, variants=()) -> None:
    """2×2: the plotted NC metrics (NC1, NC2, NC3, NC4 as agreement) of ``variant``'s warm-up
    features against warm-up epoch, with its fine-tuned test accuracy on a twin axis (mean ±
    std over seeds)."""
    table = _read_all(table_paths)
    runs = table[table["variant"] == variant]
    color = series_colors([*variants, variant])[variant]
    accuracy = Panel(FINETUNED_LABEL, {FINETUNED_LABEL: by_seed(runs, FINETUNED, "epoch")})
    panels = [
        ("", color, Panel(m.label, {m.label: by_seed(runs, m.name, "epoch")}, m.scale), accuracy)
        for m in metrics.select(group="nc", plotted=True)
    ]
    title = f"{variant}: NC of the warm-up features (colour), fine-tuned test accuracy (black)"
    _twin_panels(panels, "warm-up epoch", pdf, png, ncols=2, title=title)


def warm_start_sliding_correlation(correlation_paths, pdf, png, window: int, variants=()) -> None:
    """Sliding-window r(NC1, fine-tuned test accuracy), mean ± std over seeds, one curve per
    variant."""
    rows = _read_all(correlation_paths)
    rows = rows[rows["metric"] == "nc1"].sort_values("window_end")
    series = {
        variant: Series(group["window_end"].to_numpy(), group["r_mean"].to_numpy(float),
                        group["r_std"].to_numpy(float))
        for variant, group in rows.groupby("variant", sort=True)
    }  # fmt: skip
    panel = Panel(f"r(NC1, test accuracy), {window}-epoch window", series, ylim=(-1.05, 1.05),
                  zero_line=True)  # fmt: skip
    panels_figure([panel], "window end (warm-up epoch)", pdf, png, color_names=variants)


def warm_start_accuracy(table_paths, pdf, png, variants=()) -> None:
    """Test accuracy after full-set fine-tuning per variant (fresh-init reference as a band),
    and of the warm-up (half-set) model per warm-up, against the checkpoint's warm-up epoch."""
    table = _read_all(table_paths)
    fresh = table.drop_duplicates(["fresh_variant", "seed"])["fresh_test_accuracy"]
    full = Panel(
        FINETUNED_LABEL,
        {v: by_seed(runs, FINETUNED, "epoch") for v, runs in table.groupby("variant")},
        references={"fresh init": (fresh.mean(), fresh.std(ddof=0))},
    )
    warmups = table.drop_duplicates(["warmup_variant", "seed", "epoch"])
    half = Panel(
        "test accuracy of the\nwarm-up (half-set) model",
        {v: by_seed(runs, "warmup_test_accuracy", "epoch") for v, runs in
         warmups.groupby("warmup_variant")},
    )  # fmt: skip
    panels_figure([full, half], "warm-up epoch", pdf, png, sharey=True, color_names=variants)


FIGURES = {
    "continual_accuracy_nc1": continual_accuracy_nc1,
    "first_task_sweep_correlations": first_task_sweep_correlations,
    "warm_start_nc_vs_accuracy": warm_start_nc_vs_accuracy,
    "warm_start_sliding_correlation": warm_start_sliding_correlation,
    "warm_start_accuracy": warm_start_accuracy,
}
