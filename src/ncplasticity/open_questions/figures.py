"""One figure per open question, drawn from the analysis tables (PDF and PNG). A variant keeps
its colour (:func:`ncplasticity.plots.series_colors`) in every figure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ncplasticity.open_questions import within
from ncplasticity.open_questions.outputs import FIGURE_INPUTS
from ncplasticity.plots import save_figure, series_colors
from ncplasticity.tables import read_table

STAT_COLORS = {
    "r": "0.55",
    "partial_r_steps": "tab:blue",
    "r_diff": "tab:red",
}


def _no_data(ax) -> None:
    ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center", color="0.4")


def _errors(table, column, low, high):
    values = table[column].to_numpy(float)
    lower = values - table[low].to_numpy(float)
    upper = table[high].to_numpy(float) - values
    return values, np.nan_to_num(np.vstack([lower, upper]), nan=0.0)


def within_run_figure(within_path, pdf, png) -> None:
    """Per variant: the within-run statistics with their intervals over seeds."""
    table = read_table(within_path)
    table = table[table["seed"].astype(str) == within.SEED_MEAN]
    variants = list(dict.fromkeys(table["variant"]))
    fig, ax = plt.subplots(figsize=(6.5, 0.3 * len(variants) + 1.5))
    for offset, (statistic, label) in zip(
        (-0.25, 0.0, 0.25), within.STATISTICS.items(), strict=True
    ):
        rows = table[table["statistic"] == statistic].set_index("variant").loc[variants]
        values, errors = _errors(rows, "r", "ci_low", "ci_high")
        y = np.arange(len(variants)) + offset
        ax.errorbar(
            values, y, xerr=errors, fmt="o", ms=3, color=STAT_COLORS[statistic], label=label
        )
    if not variants:
        _no_data(ax)
    ax.set_yticks(range(len(variants)), variants)
    ax.invert_yaxis()
    ax.axvline(0, color="0.5", lw=0.8)
    ax.set_xlim(-1.05, 1.05)
    n = ", ".join(str(int(v)) for v in sorted(set(table["n_seeds"])))
    ax.set_xlabel(f"r over each run's tasks (mean of seeds, 95 % interval over {n} seeds)")
    ax.legend(fontsize="small", loc="lower left", bbox_to_anchor=(0, 1.0), ncol=2)
    ax.grid(alpha=0.3)
    save_figure(fig, pdf, png)


def leads_figure(leads_path, panel_path, pdf, png) -> None:
    """Left: NC1's lead on PL with its placebo per subset; right: the panel model's same-task
    association per subset (pooled first), each with its 95 % interval."""
    leads = read_table(leads_path)
    panel = read_table(panel_path)
    panel = panel[panel["timing"] == "same_task"]
    subsets = list(dict.fromkeys([*leads["subset"], *panel["subset"]]))
    fig, axes = plt.subplots(1, 2, figsize=(9, 0.3 * len(subsets) + 1.8), sharey=True)
    y = {subset: i for i, subset in enumerate(subsets)}
    for offset, (column, low, high, style) in enumerate(
        (("estimate", "low", "high", "o"), ("placebo", "placebo_low", "placebo_high", "s"))
    ):
        values, errors = _errors(leads, column, low, high)
        ys = leads["subset"].map(y).to_numpy(float) + (0.2 * offset - 0.1)
        label = "lead (NC1 after task i−1)" if offset == 0 else "placebo (NC1 after task i+1)"
        face = "tab:red" if offset == 0 else "none"
        axes[0].errorbar(
            values, ys, xerr=errors, fmt=style, ms=4, color="tab:red", mfc=face, label=label
        )
    values, errors = _errors(panel, "coef", "ci_low", "ci_high")
    axes[1].errorbar(values, panel["subset"].map(y), xerr=errors, fmt="o", ms=4, color="tab:blue")
    for ax, title in zip(
        axes, ("lead on PL_i, given PL_{i−1} and the trend", "same-task association"), strict=True
    ):
        ax.axvline(0, color="0.5", lw=0.8)
        ax.set_title(title, fontsize="small")
        ax.set_xlabel("PL per tenfold NC1 (95 % interval)")
        ax.grid(alpha=0.3)
    if not subsets:
        _no_data(axes[0])
    axes[0].set_yticks(range(len(subsets)), subsets)
    axes[0].invert_yaxis()
    axes[0].legend(fontsize="small", loc="lower left", bbox_to_anchor=(0, 1.05))
    save_figure(fig, pdf, png)


def dose_response_figure(dose_path, dose_tasks_path, pdf, png) -> None:
    """The nc_target doses: achieved against target NC1 over tasks (median over seeds, band
    from the lowest to the highest seed; dashed: the target), and each dose's PL and PL
    against a fresh network (final tasks, mean over seeds ± 95 % t-interval) against its
    target, the reference's as a line."""
    doses = read_table(dose_path)
    tasks = read_table(dose_tasks_path)
    colors = series_colors(doses["variant"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ax = axes[0]
    for variant, rows in tasks.groupby("variant", sort=False):
        color = colors[variant]
        x = rows["task"].to_numpy()
        ax.plot(x, rows["achieved_median"], color=color, label=variant)
        ax.fill_between(x, rows["achieved_min"], rows["achieved_max"], color=color, alpha=0.2)
        target = rows["target"].iloc[0]
        if np.isfinite(target):
            ax.axhline(target, color=color, ls="--", lw=0.9)
    if tasks.empty:
        _no_data(ax)
    ax.set_yscale("log")
    ax.set_xlabel("task")
    ax.set_ylabel("achieved NC1 tr Σ_W / tr Σ_B (dashed: target)")
    ax.legend(fontsize="x-small")
    ax.grid(alpha=0.3)
    ax = axes[1]
    dosed = doses[doses["target"].notna()].sort_values("target")
    reference = doses[doses["target"].isna()]
    for quantity, marker, label in (
        ("pl_final", "o-", "PL"),
        ("pl_fresh_final", "s--", "PL fresh"),
    ):
        if dosed.empty or dosed[f"{quantity}_mean"].isna().all():
            continue
        values, errors = _errors(
            dosed, f"{quantity}_mean", f"{quantity}_ci_low", f"{quantity}_ci_high"
        )
        ax.errorbar(dosed["target"], values, yerr=errors, fmt=marker, capsize=2, label=label)
        for row in reference.itertuples():
            ax.axhline(getattr(row, f"{quantity}_mean"), color="0.4", ls=":", lw=0.9)
    if dosed.empty:
        _no_data(ax)
    ax.set_xscale("log")
    ax.set_xlabel("nc_target target τ (dotted: the reference without a target)")
    n = ", ".join(str(int(v)) for v in sorted(set(doses["n_seeds"])))
    ax.set_ylabel(f"final tasks, mean ± 95 % interval ({n} seeds)")
    ax.axhline(0, color="0.5", lw=0.8)
    ax.legend(fontsize="x-small")
    ax.grid(alpha=0.3)
    save_figure(fig, pdf, png)


def across_conditions_figure(conditions_path, effects_path, pdf, png) -> None:
    """Each condition's mean NC1 against its mean PL (intervals over seeds), interventions and
    architectures; the across-condition correlations in the title."""
    table = read_table(conditions_path)
    effects = read_table(effects_path)
    families = table["families"].fillna("").astype(str).str.split(",")
    chosen = table[families.apply(lambda f: "intervention" in f or "architecture" in f)]
    colors = series_colors(table["variant"])
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for row in chosen.itertuples():
        marker = (
            "s" if "architecture" in row.families and "intervention" not in row.families else "o"
        )
        ax.errorbar(
            row.nc1_final_mean,
            row.pl_final_mean,
            xerr=[
                [row.nc1_final_mean - row.nc1_final_ci_low],
                [row.nc1_final_ci_high - row.nc1_final_mean],
            ],
            yerr=[
                [row.pl_final_mean - row.pl_final_ci_low],
                [row.pl_final_ci_high - row.pl_final_mean],
            ],
            fmt=marker,
            color=colors[row.variant],
            label=row.variant,
            capsize=2,
        )
    if chosen.empty:
        _no_data(ax)
    titles = []
    for row in effects[effects["statistic"] == "r_nc1_pl_conditions"].itertuples():
        titles.append(
            f"{row.question}: r = {row.estimate:.2f} [{row.ci_low:.2f}, {row.ci_high:.2f}], "
            f"{row.n} conditions"
        )
    ax.set_title("\n".join(titles) or "across conditions", fontsize="small")
    ax.set_xlabel("NC1, mean of the final tasks (95 % interval over seeds)")
    ax.set_ylabel("PL, mean of the final tasks")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="x-small", ncol=2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    save_figure(fig, pdf, png)


def task_similarity_figure(conditions_path, similarity_path, pdf, png) -> None:
    """PL and the within-run r (levels and differenced) against the permuted-pixel fraction;
    the other scenarios as horizontal lines."""
    table = read_table(conditions_path)
    pixels = read_table(similarity_path).sort_values("fraction")
    families = table["families"].fillna("").astype(str).str.split(",")
    others = table[
        families.apply(lambda f: "similarity" in f) & ~table["variant"].isin(pixels["variant"])
    ]
    colors = series_colors(table["variant"])
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    x = pixels["fraction"].to_numpy(float)
    quantities = {
        0: [("pl_final_mean", "pl_final_ci_low", "pl_final_ci_high", "PL (final tasks)", "k")],
        1: [
            ("r", "r_ci_low", "r_ci_high", within.STATISTICS["r"], STAT_COLORS["r"]),
            ("r_diff", "r_diff_ci_low", "r_diff_ci_high", within.STATISTICS["r_diff"], "tab:red"),
        ],
    }
    for index, rows in quantities.items():
        ax = axes[index]
        for column, low, high, label, color in rows:
            values, errors = _errors(pixels, column, low, high)
            ax.errorbar(x, values, yerr=errors, fmt="o-", color=color, capsize=2, label=label)
            for row in others.itertuples():
                ax.axhline(
                    getattr(row, column),
                    color=colors[row.variant],
                    ls=":",
                    label=f"{row.variant}: {label}",
                )
        if pixels.empty:
            _no_data(ax)
        ax.axhline(0, color="0.5", lw=0.8)
        ax.set_xlabel("fraction of pixels permuted per task")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small")
    axes[0].set_ylabel("PL")
    axes[1].set_ylabel("r over tasks (95 % interval over seeds)")
    save_figure(fig, pdf, png)


def predictors_figure(predictors_path, pdf, png) -> None:
    """The tournament: each row's held-out MSE reduction of PL_i beyond the baseline, ranked,
    NC1 and the baselines marked."""
    table = read_table(predictors_path)
    fig, ax = plt.subplots(figsize=(6.5, 0.28 * len(table) + 1.6))
    if len(table):
        values, errors = _errors(table, "improvement", "low", "high")
        colors = [
            "tab:red" if m == "nc1" else "0.6" if k == "baseline" else "tab:blue"
            for m, k in zip(table["measure"], table["kind"], strict=True)
        ]
        for i, (value, color) in enumerate(zip(values, colors, strict=True)):
            ax.errorbar(value, i, xerr=errors[:, [i]], fmt="o", color=color)
        n = ", ".join(str(v) for v in sorted(set(table["n_groups"].dropna().astype(int))))
        ax.set_xlabel(f"held-out MSE reduction of PL_i (95 % interval over {n} held-out seeds)")
    else:
        _no_data(ax)
    ax.set_yticks(
        range(len(table)),
        [
            f"{int(r)}. {m}" if pd.notna(r) else m
            for r, m in zip(table["rank"], table["measure"], strict=True)
        ],
    )
    ax.invert_yaxis()
    ax.axvline(0, color="0.5", lw=0.8)
    ax.set_title(
        "value after task i−1 added to duration and PL_{i−1} (red: NC1, grey: baselines)",
        fontsize="small",
    )
    ax.grid(alpha=0.3)
    save_figure(fig, pdf, png)


_DRAW = {
    "within_run": within_run_figure,
    "leads": leads_figure,
    "dose_response": dose_response_figure,
    "across_conditions": across_conditions_figure,
    "task_similarity": task_similarity_figure,
    "predictors": predictors_figure,
}
# name -> (drawing function, the tables it takes in order).
FIGURES = {name: (_DRAW[name], FIGURE_INPUTS[name]) for name in FIGURE_INPUTS}


def draw(name: str, inputs: dict, pdf, png) -> None:
    """Draw figure ``name`` of :data:`FIGURES` from its input tables (name -> path)."""
    function, needed = FIGURES[name]
    function(*(inputs[table] for table in needed), pdf, png)
