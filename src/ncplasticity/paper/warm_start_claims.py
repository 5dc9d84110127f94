"""The warm-starting claims of the reproduction table (DESIGN §3): test accuracy and NC at the
paper's warm-up epochs, the sliding-window correlation, and the NC1 regulariser's collapse."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from ncplasticity.paper.claims import SPREAD, Claim, Inputs, Missing, claim_result
from ncplasticity.paper.selection import WARM_START_ROLES
from ncplasticity.tables import read_table

# Without a `collapsed` column, an epoch collapses when its training accuracy is below this
# fraction of the best of the epochs before it.
COLLAPSE_FRACTION = 0.5
# The paper's warm-start reference values (its final_df.csv, mean of seeds 7-11), by warm-up
# epoch: plain, after shrink & perturb, NC1-regularised test accuracy, NC1, NC4 agreement.
WARM_START_REFERENCE = {
    5: (0.610, 0.664, 0.607, 15.5, 0.55),
    50: (0.588, 0.620, 0.595, 1.34, 0.86),
    100: (0.583, None, 0.594, 0.61, None),
    115: (0.583, 0.609, 0.592, 0.55, 0.997),
    350: (0.581, None, None, 0.415, None),
}
# Sliding-window (100 epochs, seeds 7-10) r(NC1, fine-tuned accuracy) by window end.
SLIDING_REFERENCE = {100: 0.90, 150: 0.58, 200: 0.14, 350: "≈ 0 (from 225 on)"}


def _role(inputs: Inputs, role: str) -> tuple[str, dict]:
    chosen = inputs.experiment("warm_start")
    variant = chosen[role]
    if variant is None:
        names = WARM_START_ROLES[role]
        raise Missing(f"no warm_start variant with interventions exactly {names}")
    return variant, chosen


def nearest(available, target: int) -> int:
    """The available value nearest to ``target`` (ties to the smaller)."""
    return int(min(sorted(set(available)), key=lambda value: abs(value - target)))


def _at_epoch(role: str, column: str, epoch: int) -> Callable[[Inputs], dict]:
    def compute(inputs: Inputs) -> dict:
        variant, chosen = _role(inputs, role)
        runs = inputs.warm_start[inputs.warm_start["variant"] == variant]
        if runs.empty:
            raise Missing(f"no per-run tables of warm_start variant {variant}")
        found = nearest(runs["epoch"], epoch)
        values = runs.loc[runs["epoch"] == found, column] if column in runs else []
        where = "" if found == epoch else f" (the checkpoint nearest to the paper's {epoch})"
        note = f", at warm-up epoch {found}{where}; mean over seeds; {SPREAD}"
        return claim_result(values, chosen["config"][variant], note)

    return compute


def _sliding(window_end: int) -> Callable[[Inputs], dict]:
    def compute(inputs: Inputs) -> dict:
        variant, chosen = _role(inputs, "plain")
        if inputs.warm_start_correlations is None:
            raise Missing("no warm-start correlation table")
        table = read_table(inputs.warm_start_correlations)
        rows = table[(table["variant"] == variant) & (table["metric"] == "nc1")]
        if rows.empty:
            raise Missing(f"no sliding window fits the warm-up of {variant}")
        found = nearest(rows["window_end"], window_end)
        row = rows[rows["window_end"] == found].iloc[0]
        where = "" if found == window_end else f" (nearest to the paper's {window_end})"
        return {
            "ours": float(row["r_mean"]),
            "spread": float(row["r_std"]),
            "n_seeds": int(row["n_seeds"]),
            "config": chosen["config"][variant],
            "note": f"; window of {chosen['window']} epochs ending at {found}{where}; mean over "
            "seeds; spread: std (ddof 0) over seeds",
        }

    return compute


def collapse_epochs(log: pd.DataFrame) -> tuple[np.ndarray, str]:
    """Which warm-up epochs of one run's log collapsed: its ``collapsed`` column where the log
    has one, else training accuracy below half the best of the epochs before; and the rule."""
    if "collapsed" in log and log["collapsed"].notna().any():
        return log["collapsed"].eq(True).to_numpy(), "the log's `collapsed` flag"
    accuracy = log["train_accuracy"].to_numpy(float)
    best_before = np.fmax.accumulate(np.concatenate([[-np.inf], accuracy[:-1]]))
    rule = f"training accuracy < {COLLAPSE_FRACTION} x the best of the epochs before"
    return accuracy < COLLAPSE_FRACTION * best_before, rule


def _collapse(summary: str) -> Callable[[Inputs], dict]:
    def compute(inputs: Inputs) -> dict:
        variant, chosen = _role(inputs, "nc_reg")
        warmup = chosen["warmups"][variant]
        logs = inputs.warmup_log[inputs.warmup_log["variant"] == warmup]
        if logs.empty:
            raise Missing(f"no warm-up logs of warm_start variant {warmup}")
        values, rules = [], set()
        for _, log in logs.sort_values("epoch").groupby("seed"):
            collapsed, rule = collapse_epochs(log)
            rules.add(rule)
            if summary == "fraction":
                values.append(float(collapsed.any()))
            elif summary == "epoch":
                values.append(log["epoch"].to_numpy()[collapsed][0] if collapsed.any() else np.nan)
            else:
                values.append(log["train_accuracy"].min())
        rule = "" if summary == "minimum" else f"; collapse: {' / '.join(sorted(rules))}"
        note = f"{rule}; {SPREAD}"
        return claim_result(values, chosen["config"][variant], note)

    return compute


def warm_start_claims() -> list[Claim]:
    finetuned = (
        "test accuracy after training the warm-up checkpoint on the full training set (fresh "
        "optimiser, until training accuracy > target or the epoch cap)"
    )
    quantities = [
        ("plain", "finetune_test_accuracy", "Warm start: test accuracy", finetuned),
        ("shrink_perturb", "finetune_test_accuracy", "Warm start: test accuracy after S&P",
         f"{finetuned}, after shrink & perturb of the checkpoint"),
        ("nc_reg", "finetune_test_accuracy", "Warm start: test accuracy, NC1-regularised",
         f"{finetuned}; warm-up with the paper's NC1 regulariser"),
        ("plain", "nc1", "Warm start: NC1", "NC1 of the warm-up-set features"),
        ("plain", "nc4_agreement", "Warm start: NC4 agreement",
         "NC4 agreement (1 - nc4) of the warm-up-set features"),
    ]  # fmt: skip
    claims = [
        Claim(f"{claim} at warm-up epoch {epoch}", statistic, values[i], _at_epoch(role, c, epoch))
        for i, (role, c, claim, statistic) in enumerate(quantities)
        for epoch, values in WARM_START_REFERENCE.items()
        if values[i] is not None
    ]
    claims += [
        Claim(f"Warm start: sliding-window r(NC1, test accuracy), window ending at {end}",
              "Pearson r between NC1 and the fine-tuned test accuracy over the checkpoints of "
              "a sliding window of warm-up epochs, per seed", paper, _sliding(end))
        for end, paper in SLIDING_REFERENCE.items()
    ]  # fmt: skip
    warmup = "the warm-up (half-set) training accuracy under the paper's NC1 regulariser"
    claims += [
        Claim("NC1 regulariser: seeds whose warm-up collapses",
              f"fraction of seeds in which {warmup} collapses", "1 (every seed)",
              _collapse("fraction")),
        Claim("NC1 regulariser: first epoch of the collapse",
              f"first warm-up epoch at which {warmup} collapses, mean over collapsed seeds",
              "≈ 55-130", _collapse("epoch")),
        Claim("NC1 regulariser: lowest warm-up training accuracy",
              f"minimum over warm-up epochs of {warmup}, mean over seeds", "0.1-0.2",
              _collapse("minimum")),
    ]  # fmt: skip
    return claims
