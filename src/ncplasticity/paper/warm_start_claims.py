"""The warm-starting claims of the reproduction table (DESIGN §3): test accuracy and NC at the
paper's warm-up epochs, the sliding-window correlation, and the NC1 regulariser's collapse. Each
row says whether it is comparable with the paper's: `yes`, or how its setting differs."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from ncplasticity.paper.claims import SPREAD, Claim, Inputs, Missing, claim_result
from ncplasticity.paper.selection import WARM_START_ROLES
from ncplasticity.plasticity import LEARNED_ACCURACY, never_learned
from ncplasticity.tables import read_table

# Without a `collapsed` column, an epoch collapses when its training accuracy is below this
# fraction of the best of the epochs before it, once that best has reached LEARNED_ACCURACY (the
# warm-up loop's rule).
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
# The paper's sliding window, in warm-up epochs.
SLIDING_WINDOW = 100


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


def _comparable(chosen: dict, variant: str, *also: str) -> str:
    """`yes`, or each way a row's setting differs from the paper's: its variant's settings
    (:func:`ncplasticity.paper.selection.warm_start_differences`), then ``also``."""
    return "; ".join([*chosen["differences"][variant], *also]) or "yes"


def _mapped(available, target: int, paper_points, noun: str) -> list[str]:
    """How our ``noun`` nearest to the paper's ``target`` stands for it: a different one, or
    one that several of the paper's ``paper_points`` share (their rows then repeat a number)."""
    found = nearest(available, target)
    shared = [point for point in paper_points if nearest(available, point) == found]
    phrases = [f"{noun} {found} for the paper's {target}"] if found != target else []
    if len(shared) > 1:
        phrases.append(f"the paper's {noun}s {', '.join(map(str, shared))} share {noun} {found}")
    return phrases


def _at_epoch(role: str, column: str, epoch: int, paper_epochs) -> Callable[[Inputs], dict]:
    def compute(inputs: Inputs) -> dict:
        variant, chosen = _role(inputs, role)
        runs = inputs.warm_start[inputs.warm_start["variant"] == variant]
        if runs.empty:
            raise Missing(f"no per-run tables of warm_start variant {variant}")
        found = nearest(runs["epoch"], epoch)
        values = runs.loc[runs["epoch"] == found, column] if column in runs else []
        where = "" if found == epoch else f" (the checkpoint nearest to the paper's {epoch})"
        note = f", at warm-up epoch {found}{where}; mean over seeds; {SPREAD}"
        mapped = _mapped(runs["epoch"], epoch, paper_epochs, "checkpoint")
        return claim_result(values, chosen["config"][variant], note) | {
            "comparable": _comparable(chosen, variant, *mapped)
        }

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
        window = chosen["window"]
        differs = [f"window {window} (paper {SLIDING_WINDOW})"] if window != SLIDING_WINDOW else []
        mapped = _mapped(rows["window_end"], window_end, SLIDING_REFERENCE, "window end")
        return {
            "ours": float(row["r_mean"]),
            "spread": float(row["r_std"]),
            "n_seeds": int(row["n_seeds"]),
            "config": chosen["config"][variant],
            "note": f"; window of {window} epochs ending at {found}{where}; mean over seeds; "
            "spread: std (ddof 0) over seeds",
            "comparable": _comparable(chosen, variant, *differs, *mapped),
        }

    return compute


def collapse_epochs(log: pd.DataFrame) -> tuple[np.ndarray, str]:
    """Which warm-up epochs of one run's log collapsed: its ``collapsed`` column where the log
    has one, else training accuracy below half the best of the epochs before, once that best
    reached :data:`~ncplasticity.plasticity.LEARNED_ACCURACY`; and the rule."""
    if "collapsed" in log and log["collapsed"].notna().any():
        return log["collapsed"].eq(True).to_numpy(), "the log's `collapsed` flag"
    accuracy = log["train_accuracy"].to_numpy(float)
    best_before = np.fmax.accumulate(np.concatenate([[-np.inf], accuracy[:-1]]))
    rule = (
        f"training accuracy < {COLLAPSE_FRACTION} x the best of the epochs before, once that "
        f"reached {LEARNED_ACCURACY}"
    )
    learned = best_before >= LEARNED_ACCURACY
    return learned & (accuracy < COLLAPSE_FRACTION * best_before), rule


def _regulariser(summary: str) -> Callable[[Inputs], dict]:
    """A row of the NC1 regulariser's warm-ups; each counts the seeds that collapse and those
    that never learned (which cannot collapse, so "0 collapse" alone would read as stable)."""

    def compute(inputs: Inputs) -> dict:
        variant, chosen = _role(inputs, "nc_reg")
        warmup = chosen["warmups"][variant]
        logs = inputs.warmup_log[inputs.warmup_log["variant"] == warmup]
        if logs.empty:
            raise Missing(f"no warm-up logs of warm_start variant {warmup}")
        values, rules, collapses, unlearned = [], set(), 0, 0
        for _, log in logs.sort_values("epoch").groupby("seed"):
            collapsed, rule = collapse_epochs(log)
            never = never_learned(log["train_accuracy"])
            rules.add(rule)
            collapses += bool(collapsed.any())
            unlearned += never
            if summary == "fraction":
                values.append(float(collapsed.any()))
            elif summary == "never_learned":
                values.append(float(never))
            elif summary == "epoch":
                values.append(log["epoch"].to_numpy()[collapsed][0] if collapsed.any() else np.nan)
            else:
                values.append(log["train_accuracy"].min())
        note = (
            f"; of {logs['seed'].nunique()} seeds, {collapses} collapse and {unlearned} never "
            f"learn (best training accuracy < {LEARNED_ACCURACY}); collapse: "
            f"{' / '.join(sorted(rules))}; {SPREAD}"
        )
        return claim_result(values, chosen["config"][variant], note) | {
            "comparable": _comparable(chosen, variant)
        }

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
    claims = []
    for i, (role, column, claim, statistic) in enumerate(quantities):
        paper = {epoch: values[i] for epoch, values in WARM_START_REFERENCE.items()}
        epochs = [epoch for epoch, value in paper.items() if value is not None]
        claims += [
            Claim(f"{claim} at warm-up epoch {epoch}", statistic, paper[epoch],
                  _at_epoch(role, column, epoch, epochs))
            for epoch in epochs
        ]  # fmt: skip
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
              _regulariser("fraction")),
        Claim("NC1 regulariser: seeds whose warm-up never learns",
              f"fraction of seeds in which {warmup} never reaches {LEARNED_ACCURACY}",
              "0 (every seed learns, then collapses)", _regulariser("never_learned")),
        Claim("NC1 regulariser: first epoch of the collapse",
              f"first warm-up epoch at which {warmup} collapses, mean over collapsed seeds",
              "≈ 55-130", _regulariser("epoch")),
        Claim("NC1 regulariser: lowest warm-up training accuracy",
              f"minimum over warm-up epochs of {warmup}, mean over seeds", "0.1-0.2",
              _regulariser("minimum")),
    ]  # fmt: skip
    return claims
