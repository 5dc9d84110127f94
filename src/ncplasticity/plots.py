"""Figures. Shared helpers first, then one section per experiment."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def save_figure(fig, pdf_path: str | os.PathLike, png_path: str | os.PathLike) -> None:
    """Write one figure as PDF and PNG, then close it."""
    fig.savefig(pdf_path, bbox_inches="tight")
    fig.savefig(png_path, bbox_inches="tight", dpi=150)
    plt.close(fig)


def band(ax, x, mean, std, **plot_options):
    """Plot ``mean`` against ``x`` with a shaded ±``std`` band in the line's colour."""
    (line,) = ax.plot(x, mean, **plot_options)
    ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.25, lw=0)
    return line


def mean_band(ax, x, values, label=None, color=None):
    """Plot the mean over rows of ``values`` (seeds x points) with a ±1 std band."""
    values = np.asarray(values, dtype=float)
    return band(
        ax, x, np.nanmean(values, axis=0), np.nanstd(values, axis=0), label=label, color=color
    )


# --- Permuted MNIST ---------------------------------------------------------------------


def permuted_mnist_over_tasks(curves, panels, pdf, png) -> None:
    """Panels side by side against task. ``curves``: setting -> (tasks, {column: seeds x
    tasks}); ``panels``: (column, y label) pairs; one mean ± std line per setting."""
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 2.8), squeeze=False)
    for ax, (column, label) in zip(axes[0], panels, strict=True):
        for setting, (tasks, values) in curves.items():
            mean_band(ax, tasks, values[column], label=f"first task {setting}")
        ax.set_xlabel("task")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize="small")
    fig.tight_layout()
    save_figure(fig, pdf, png)


def permuted_mnist_sweep(rows, pdf, png) -> None:
    """Per-task correlations across the runs of the first-task sweep, one panel per method."""
    methods = list(dict.fromkeys(row["method"] for row in rows))
    fig, axes = plt.subplots(1, len(methods), figsize=(4.5 * len(methods), 3), squeeze=False)
    series = (
        ("r_first_nc1_pl", "NC1 after first task vs PL"),
        ("r_first_epochs_pl", "first-task epochs vs PL"),
        ("partial_r_first_nc1_pl_steps", "NC1 vs PL | first-task steps"),
    )
    for ax, method in zip(axes[0], methods, strict=True):
        mine = [row for row in rows if row["method"] == method]
        tasks = [row["task"] for row in mine]
        for name, label in series:
            ax.plot(tasks, table_column(mine, name), label=label)
        ax.axhline(0, color="0.5", lw=0.8)
        ax.set_ylim(-1.05, 1.05)
        ax.set_xlabel("task i")
        ax.set_ylabel(f"{method} r across runs")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize="small")
    fig.tight_layout()
    save_figure(fig, pdf, png)


# --- Warm starting ----------------------------------------------------------------------

from ncplasticity.tsv import column as table_column  # noqa: E402
from ncplasticity.tsv import read_tsv  # noqa: E402


def _runs_by_variant(paths) -> dict[str, list[list[dict]]]:
    """Rows of per-run TSVs named ``{variant}_s{seed}.tsv``, grouped by variant."""
    runs: dict[str, list[list[dict]]] = {}
    for path in paths:
        variant = os.path.basename(str(path)).rsplit("_s", 1)[0]
        runs.setdefault(variant, []).append(read_tsv(path))
    return runs


def _seeds_by_epochs(runs, column):
    """(epochs, seeds x epochs array) of ``column``; runs that stopped early are NaN-padded."""
    epochs = sorted({row["epoch"] for rows in runs for row in rows})
    position = {epoch: i for i, epoch in enumerate(epochs)}
    values = np.full((len(runs), len(epochs)), np.nan)
    for i, rows in enumerate(runs):
        for row in rows:
            if isinstance(row.get(column), (int, float)):
                values[i, position[row["epoch"]]] = row[column]
    return np.array(epochs), values


_WARM_START_NC_PANELS = (
    ("nc1", "NC1", True),
    ("nc2_etf_weights", "NC2 (classifier vs ETF)", False),
    ("nc3_wh", "NC3 (WM vs ETF)", False),
    ("nc4", "NC4 (1 - agreement)", False),
)


def warm_start_nc_metrics(table_paths, pdf, png) -> None:
    """NC1-NC4 of the warm-up features against warm-up epoch, one line per variant with a
    warm-up of its own (shrink_perturb shares plain's)."""
    runs = _runs_by_variant(table_paths)
    runs.pop("shrink_perturb", None)
    fig, axes = plt.subplots(1, 4, figsize=(13, 2.9))
    for ax, (column, label, log_scale) in zip(axes, _WARM_START_NC_PANELS, strict=True):
        for variant, variant_runs in runs.items():
            mean_band(ax, *_seeds_by_epochs(variant_runs, column), label=variant)
        if log_scale:
            ax.set_yscale("log")
        ax.set_xlabel("warm-up epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small")
    fig.tight_layout()
    save_figure(fig, pdf, png)


def warm_start_finetune_accuracy(table_paths, pdf, png) -> None:
    """Test accuracy after fine-tuning each warm-up checkpoint on the full set, per variant,
    with the fresh-init reference (mean ± std over seeds) as a horizontal band."""
    runs = _runs_by_variant(table_paths)
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for variant, variant_runs in runs.items():
        mean_band(ax, *_seeds_by_epochs(variant_runs, "finetune_test_accuracy"), label=variant)
    by_seed = {
        rows[0]["seed"]: rows[0]["fresh_test_accuracy"] for rs in runs.values() for rows in rs
    }
    fresh = np.array(list(by_seed.values()), dtype=float)
    ax.axhline(fresh.mean(), color="k", ls="--", lw=1, label="fresh init")
    ax.axhspan(fresh.mean() - fresh.std(), fresh.mean() + fresh.std(), color="k", alpha=0.1)
    ax.set_xlabel("warm-up epoch of the checkpoint")
    ax.set_ylabel("test accuracy after fine-tuning")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    save_figure(fig, pdf, png)


def warm_start_warmup_accuracy(log_paths, pdf, png) -> None:
    """Warm-up training and test accuracy per epoch, per variant (shows any collapse)."""
    runs = _runs_by_variant(log_paths)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), sharey=True)
    for ax, column in zip(axes, ("train_accuracy", "test_accuracy"), strict=True):
        for variant, variant_runs in runs.items():
            mean_band(ax, *_seeds_by_epochs(variant_runs, column), label=variant)
        ax.set_xlabel("warm-up epoch")
        ax.set_ylabel(f"warm-up {column.replace('_', ' ')}")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small")
    fig.tight_layout()
    save_figure(fig, pdf, png)


def warm_start_sliding_correlation(correlation_paths, pdf, png) -> None:
    """Pearson r between each NC metric and fine-tuned test accuracy over sliding windows of
    warm-up epochs (mean ± std over seeds), one panel per metric, one line per variant."""
    (path,) = correlation_paths
    rows = read_tsv(path)
    fig, axes = plt.subplots(1, 4, figsize=(13, 2.9), sharey=True)
    for ax, (column, label, _) in zip(axes, _WARM_START_NC_PANELS, strict=True):
        for variant in dict.fromkeys(r["variant"] for r in rows):
            mine = [r for r in rows if r["variant"] == variant and r["metric"] == column]
            ends = table_column(mine, "window_end")
            mean, std = table_column(mine, "r_mean"), table_column(mine, "r_std")
            band(ax, ends, mean, std, marker="o", ms=3, label=variant)
        ax.axhline(0, color="0.5", lw=0.8)
        ax.set_ylim(-1.05, 1.05)
        ax.set_xlabel("window end (warm-up epoch)")
        ax.set_ylabel(f"r({label.split()[0]}, fine-tuned acc)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small")
    fig.tight_layout()
    save_figure(fig, pdf, png)


WARM_START_FIGURES = {
    "nc_metrics": warm_start_nc_metrics,
    "finetune_accuracy": warm_start_finetune_accuracy,
    "warmup_accuracy": warm_start_warmup_accuracy,
    "sliding_correlation": warm_start_sliding_correlation,
}
