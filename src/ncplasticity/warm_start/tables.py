"""Warm-starting tables: one per run, the sliding correlations and the variant summary (pandas,
no plotting; runs in the analysis environment).

Per run, one row per warm-up checkpoint epoch joins the NC metrics of the warm-up features at
that epoch, the warm-up log (its accuracies, divergence, collapse and degeneracy flags, whether
the warm-up ever learned, and the plasticity measures taken at the checkpoint) and the
fine-tuned outcome (the last row of the fine-tune job's per-epoch table), plus the fresh-init
reference of the same seed. A variant that fine-tunes another's warm-up (e.g.
``shrink_perturb``, plain's) has that warm-up's NC metrics, plasticity measures and log: its
``warmup_variant``. Every row names its variant, seed and warm-up variant, so no analysis reads
anything from a file name. Which metrics enter the tables and correlations come from the metric
registry.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ncplasticity import metrics, summary
from ncplasticity.plasticity import LEARNED_ACCURACY, never_learned
from ncplasticity.stats import pearson, sliding_window_correlation
from ncplasticity.tables import read_table
from ncplasticity.tsv import write_table, write_text

OUTCOME_COLUMNS = [
    "warmup_train_accuracy",
    "warmup_test_accuracy",
    "finetune_test_accuracy",
    "finetune_train_accuracy",
    "finetune_epochs",
    "diverged",
    "collapsed",
    "never_learned",
    "degenerate",
    "fresh_test_accuracy",
    "pl_fresh",
]
CORRELATION_COLUMNS = ["variant", "metric", "window_end", "r_mean", "r_std", "n_seeds"]


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
    # A run-level flag: the warm-up's best training accuracy over all its logged epochs.
    warmup_never_learned = never_learned(logged["train_accuracy"])
    plasticity_columns = [m.name for m in metrics.select(group="plasticity") if m.name in logged]
    logged = logged.reindex(
        columns=["epoch", "train_accuracy", "test_accuracy", "diverged", "collapsed", "degenerate"]
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
    # NaN: no log row (after a divergence), or a log written before the flag existed.
    table["collapsed"] = table["collapsed"].eq(True)
    table["never_learned"] = warmup_never_learned
    table["degenerate"] = table["degenerate"].eq(True)
    table["fresh_test_accuracy"] = float(fresh["test_accuracy"].iloc[0])
    table["pl_fresh"] = table["fresh_test_accuracy"] - table["finetune_test_accuracy"]
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
    "pl_fresh": "pl_fresh (gap to fresh init)",
    "finetune_epochs": "fine-tune epochs",
    "warmup_train_accuracy_last": "warm-up training accuracy, last checkpoint",
    "nc1_first": "NC1, first checkpoint",
    "nc1_last": "NC1, last checkpoint",
    "collapsed_fraction": "checkpoints after a collapse",
    "never_learned": f"warm-up never learned (best training accuracy < {LEARNED_ACCURACY})",
    "r_nc1_finetune": "r(NC1, fine-tuned accuracy) over checkpoints",
}


def variant_summary(table_paths, out_tsv, out_md) -> None:
    """One row per variant (in the tables' order): ``n_seeds`` and, per quantity of
    :data:`SUMMARY_QUANTITIES`, its mean and standard deviation over seeds
    (:func:`ncplasticity.summary.over_seeds`). Per seed: the mean over checkpoints of the
    fine-tuned test accuracy, its gap to the fresh-init reference and the fine-tune epochs; the
    warm-up training accuracy and NC1 at the first and last checkpoints; the fraction of
    checkpoints taken after a collapse; whether the warm-up never learned (so over seeds, the
    fraction of seeds whose warm-up never learned); Pearson r(NC1, fine-tuned accuracy) over the
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
                "pl_fresh": run["pl_fresh"].mean(),
                "finetune_epochs": run["finetune_epochs"].mean(),
                "warmup_train_accuracy_last": last["warmup_train_accuracy"],
                "nc1_first": nc1[0],
                "nc1_last": nc1[-1],
                "collapsed_fraction": run["collapsed"].astype(bool).mean(),
                "never_learned": float(run["never_learned"].astype(bool).any()),
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
        "last checkpoint; pl_fresh: fresh-init − fine-tuned test accuracy (the gap to fresh "
        "init, as the continual runs name it; positive = plasticity lost)."
    )
    write_text(out_md, summary.markdown(table, SUMMARY_QUANTITIES, header))
