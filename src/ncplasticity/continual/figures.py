"""Continual-learning figures (matplotlib, through :mod:`ncplasticity.plots`): the metrics of a
panel set against task, one line per variant, and the first-task sweep's correlations per
task. Which figures there are is :mod:`ncplasticity.continual.outputs`."""

from __future__ import annotations

from ncplasticity import metrics
from ncplasticity.continual.outputs import PANEL_SETS
from ncplasticity.continual.tables import present_metrics
from ncplasticity.plots import Panel, Series, panels_figure
from ncplasticity.tables import read_table, read_tables


def panel_metrics(panels: str) -> list[metrics.Metric]:
    if panels not in PANEL_SETS:
        raise ValueError(f"unknown panel set {panels!r}; expected one of {list(PANEL_SETS)}")
    outcomes, group = PANEL_SETS[panels]
    outcome_metrics = [metrics.registry()[name] for name in outcomes]
    return [*outcome_metrics, *metrics.select(group=group, plotted=True)]


def over_tasks_figure(table_paths, pdf, png, analysis_tasks: int, panels: str) -> None:
    """The panel set's metrics against task: mean ± std over seeds, one line per variant,
    through the tasks that measured it (``pl_fresh``: every ``fresh_every``-th task)."""
    tables = read_tables(table_paths, analysis_tasks)
    chosen = present_metrics(panel_metrics(panels), tables)
    figure_panels = []
    for metric in chosen:
        series = {}
        for variant, runs in tables.groupby("variant", sort=True):
            wide = runs.pivot_table(
                index="seed", columns="task", values=metric.name, aggfunc="first", dropna=False
            ).dropna(axis=1, how="all")
            if wide.empty:
                continue
            series[variant] = Series(wide.columns.to_numpy(), wide.to_numpy(float))
        if series:
            figure_panels.append(Panel(metric.label, series, scale=metric.scale))
    panels_figure(figure_panels, "task", pdf, png)


SWEEP_SERIES = {
    "r_first_nc1_pl": "NC1 after first task vs PL",
    "r_first_epochs_pl": "first-task epochs vs PL",
    "partial_r_first_nc1_pl_steps": "NC1 vs PL | first-task steps",
}


def sweep_figure(sweep_path, pdf, png) -> None:
    """Per-task correlations of the first-task sweep, one panel per method (one line per
    quantity, and per group of variants when there are several)."""
    table = read_table(sweep_path)
    several = table["variants"].nunique() > 1
    figure_panels = []
    for method, rows in table.groupby("method", sort=False):
        series = {}
        for group, members in rows.groupby("variants", sort=True):
            for column, label in SWEEP_SERIES.items():
                name = f"{label} ({group})" if several else label
                series[name] = Series(members["task"].to_numpy(), members[column].to_numpy(float))
        figure_panels.append(
            Panel(f"{method} r across runs", series, ylim=(-1.05, 1.05), zero_line=True)
        )
    panels_figure(figure_panels, "task i", pdf, png)
