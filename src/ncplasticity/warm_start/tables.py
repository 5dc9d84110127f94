"""Warm-starting tables, correlations and figures (pandas; runs in the analysis environment).

Per run, one row per warm-up checkpoint epoch joins the NC metrics of the warm-up features at
that epoch, the warm-up log (its accuracies, divergence and collapse flags and the plasticity
measures taken at the checkpoint) and the fine-tuned outcome (the last row of the fine-tune
job's per-epoch table), plus the fresh-init reference of the same seed. A variant that
fine-tunes another's warm-up (e.g. ``shrink_perturb``, plain's) has that warm-up's NC metrics,
plasticity measures and log: its ``warmup_variant``. Every row names its variant, seed
and warm-up variant, so no analysis reads anything from a file name. Which metrics enter the
tables, correlations and panels, and their labels, come from the metric registry.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ncplasticity import metrics, summary
from ncplasticity.plots import Panel, Series, panels_figure
from ncplasticity.stats import pearson, sliding_window_correlation
from ncplasticity.tsv import read_table, write_table, write_text

OUTCOME_COLUMNS = [
    "warmup_train_accuracy",
    "warmup_test_accuracy",
    "finetune_test_accuracy",
    "finetune_train_accuracy",
    "finetune_epochs",
    "diverged",
    "collapsed",
    "fresh_test_accuracy",
    "gap_to_fresh",
]
CORRELATION_COLUMNS = ["variant", "metric", "window_end", "r_mean", "r_std", "n_seeds"]


def _read_all(paths) -> pd.DataFrame:
    return pd.concat([read_table(path) for path in paths], ignore_index=True)


def _outcomes(paths, variant: str, seed: int) -> pd.DataFrame:
    """The outcome of each fine-tune job: the last row of its per-epoch table."""
    outcomes = []
    for path in paths:
        table = read_table(path)
        found = set(zip(table["variant"], table["seed"], table["warmup_epoch"], strict=True))
        if {(v, s) for v, s, _ in found} != {(variant, seed)} or len(found) != 1:
            raise ValueError(
                f"{path}: rows of (variant, seed, warm-up epoch) {sorted(found)}, expected "
                f"({variant!r}, {seed}) at one warm-up epoch"
            )
        outcomes.append(table.tail(1))
    return pd.concat(outcomes, ignore_index=True)


def _snapshot_metrics(path) -> pd.DataFrame:
    """The registered NC metrics of a run's snapshots by warm-up epoch (none after a
    divergence; a table without snapshots has no epoch column)."""
    table = read_table(path)
    names = [m.name for m in metrics.select(group="nc") if m.name in table]
    table = table.reindex(columns=["epoch", *names])
    if table["epoch"].isna().any():
        raise ValueError(f"{path}: a snapshot without an 'epoch' coordinate")
    return table.astype({"epoch": "int64"})


def run_table(
    metrics_path,
    warmup_log_path,
    finetune_paths,
    fresh_path,
    out_path,
    *,
    variant: str,
    seed: int,
    warmup_variant: str,
    fresh_variant: str,
) -> None:
    """Write the per-checkpoint table of one run (rows in warm-up-epoch order);
    ``warmup_variant`` and ``fresh_variant`` name the variants whose warm-up and fresh-init
    reference it shares."""
    finetuned = _outcomes(finetune_paths, variant, seed)
    fresh = _outcomes([fresh_path], "fresh", seed)
    logged = read_table(warmup_log_path)
    plasticity_columns = [m.name for m in metrics.select(group="plasticity") if m.name in logged]
    logged = logged.reindex(
        columns=["epoch", "train_accuracy", "test_accuracy", "diverged", "collapsed"]
        + plasticity_columns
    ).rename(
        columns={
            "train_accuracy": "warmup_train_accuracy",
            "test_accuracy": "warmup_test_accuracy",
            "diverged": "warmup_diverged",
        }
    )
    table = pd.DataFrame(
        {
            "variant": variant,
            "seed": seed,
            "warmup_variant": warmup_variant,
            "fresh_variant": fresh_variant,
            "epoch": finetuned["warmup_epoch"].astype("int64"),
            "finetune_test_accuracy": finetuned["test_accuracy"].astype(float),
            "finetune_train_accuracy": finetuned["train_accuracy"].astype(float),
            "finetune_epochs": finetuned["epoch"],
            "finetune_diverged": finetuned["diverged"].astype(bool),
        }
    )
    # Left joins: a checkpoint after a divergence has no snapshot, its metrics are NaN.
    table = table.merge(_snapshot_metrics(metrics_path), on="epoch", how="left")
    table = table.merge(logged, on="epoch", how="left")
    table["diverged"] = table.pop("finetune_diverged") | table.pop("warmup_diverged").eq(True)
    table["collapsed"] = table["collapsed"].eq(True)  # NaN: no log row (after a divergence)
    table["fresh_test_accuracy"] = float(fresh["test_accuracy"].iloc[0])
    table["gap_to_fresh"] = table["fresh_test_accuracy"] - table["finetune_test_accuracy"]
    table = metrics.add_derived(table)
    nc_columns = [m.name for m in metrics.select(group="nc") if m.name in table]
    columns = [
        "variant",
        "seed",
        "warmup_variant",
        "fresh_variant",
        "epoch",
        *nc_columns,
        *plasticity_columns,
        *OUTCOME_COLUMNS,
    ]
    write_table(table[columns].sort_values("epoch", kind="stable"), out_path)


def sliding_correlations(table_paths, window: int, out_path) -> None:
    """Pearson r between each correlated NC metric (NC4 as agreement) and plasticity measure
    and fine-tuned test accuracy over sliding windows of ``window`` warm-up epochs, per run;
    then mean and std over the seeds of each variant (a metric a table lacks has no finite r).

    Output columns: variant, metric, window_end, r_mean, r_std, n_seeds (seeds with a finite
    r in that window).
    """
    names = [m.name for m in metrics.select(correlated=True) if m.group in ("nc", "plasticity")]
    records = []
    for path in table_paths:
        table = read_table(path)
        if table.empty:
            raise ValueError(f"{path}: empty warm-start table")
        epochs = table["epoch"].to_numpy()
        accuracy = table["finetune_test_accuracy"].to_numpy(float)
        for name in names:
            values = table[name].to_numpy(float) if name in table else np.full(len(table), np.nan)
            ends, rs = sliding_window_correlation(epochs, values, accuracy, window)
            records += [
                {"variant": table["variant"].iloc[0], "metric": name, "window_end": int(e), "r": r}
                for e, r in zip(ends, rs, strict=True)
            ]
    per_seed = pd.DataFrame(records, columns=["variant", "metric", "window_end", "r"])
    r = per_seed.groupby(["variant", "metric", "window_end"])["r"]
    table = pd.DataFrame({"r_mean": r.mean(), "r_std": r.std(ddof=0), "n_seeds": r.count()})
    write_table(table.reset_index()[CORRELATION_COLUMNS], out_path)


SUMMARY_QUANTITIES = {
    "finetune_test_accuracy": "fine-tuned test accuracy",
    "fresh_test_accuracy": "fresh-init test accuracy",
    "gap_to_fresh": "gap to fresh init",
    "finetune_epochs": "fine-tune epochs",
    "warmup_train_accuracy_last": "warm-up training accuracy, last checkpoint",
    "nc1_first": "NC1, first checkpoint",
    "nc1_last": "NC1, last checkpoint",
    "collapsed_fraction": "checkpoints after a collapse",
    "r_nc1_finetune": "r(NC1, fine-tuned accuracy) over checkpoints",
}


def variant_summary(table_paths, out_tsv, out_md) -> None:
    """One row per variant (in the tables' order): ``n_seeds`` and, per quantity of
    :data:`SUMMARY_QUANTITIES`, its mean and standard deviation over seeds
    (:func:`ncplasticity.summary.over_seeds`). Per seed: the mean over checkpoints of the
    fine-tuned test accuracy, its gap to the fresh-init reference and the fine-tune epochs; the
    warm-up training accuracy and NC1 at the first and last checkpoints; the fraction of
    checkpoints taken after a collapse; Pearson r(NC1, fine-tuned accuracy) over the
    checkpoints (NaN with fewer than 3). Also writes ``out_md``, the same table in Markdown."""
    per_seed, epochs = [], set()
    for path in table_paths:
        run = read_table(path).sort_values("epoch", kind="stable")
        if run.empty:
            raise ValueError(f"{path}: empty warm-start table")
        epochs.update(int(e) for e in run["epoch"])
        first, last = run.iloc[0], run.iloc[-1]
        nc1 = run["nc1"].to_numpy(float) if "nc1" in run else np.full(len(run), np.nan)
        accuracy = run["finetune_test_accuracy"].to_numpy(float)
        per_seed.append(
            {
                "variant": first["variant"],
                "seed": first["seed"],
                "finetune_test_accuracy": accuracy.mean(),
                "fresh_test_accuracy": first["fresh_test_accuracy"],
                "gap_to_fresh": run["gap_to_fresh"].mean(),
                "finetune_epochs": run["finetune_epochs"].mean(),
                "warmup_train_accuracy_last": last["warmup_train_accuracy"],
                "nc1_first": nc1[0],
                "nc1_last": nc1[-1],
                "collapsed_fraction": run["collapsed"].astype(bool).mean(),
                "r_nc1_finetune": pearson(nc1, accuracy) if len(run) >= 3 else np.nan,
            }
        )
    table = summary.over_seeds(pd.DataFrame(per_seed), SUMMARY_QUANTITIES)
    write_table(table, out_tsv)
    header = (
        "Generated by the workflow (rule warm_start_variant_summary, from "
        "results/warm_start/tables); do not edit. Mean ± standard deviation over seeds; "
        f"{summary.rests_on(table)}. Per seed: the mean over the fine-tuned checkpoints "
        f"(warm-up epochs {', '.join(map(str, sorted(epochs)))}), or the value at the first or "
        "last checkpoint; gap to fresh init: fresh-init − fine-tuned test accuracy."
    )
    write_text(out_md, summary.markdown(table, SUMMARY_QUANTITIES, header))


# --- figures ------------------------------------------------------------------------------


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


FIGURES = {
    "nc_metrics": nc_metrics_figure,
    "finetune_accuracy": finetune_accuracy_figure,
    "warmup_accuracy": warmup_accuracy_figure,
    "sliding_correlation": sliding_correlation_figure,
}
