"""The answers table: one row per question, sub-question and subject, each with its estimate,
interval, p, the seeds, runs, conditions or groups it rests on, and a reading generated from
the numbers (:mod:`.readings`: verdicts only for the primary analyses, effect sizes with
BH q-values for the rest, the reference study's estimate beside each row).

Every row is read off the analysis tables (:mod:`.within`, :mod:`.panel_models`,
:mod:`.predictors`, :mod:`.duration`, :mod:`.effects`, :mod:`.causal`, :mod:`.pooling`);
nothing here computes a new statistic. Same-task links are called *associations*; a *lead* is
read only where its interval excludes 0 and its placebo's does not.
"""

from __future__ import annotations

import pandas as pd

from ncplasticity.open_questions import causal, pooling, within
from ncplasticity.open_questions import conditions as cond
from ncplasticity.open_questions.pooling import POOLED
from ncplasticity.open_questions.readings import (
    answer_row,
    effect_row,
    finish,
    fmt,
    note_row,
    sign,
)

ASSOCIATION = "Q1 association (same task)"
LEAD = "Q1 lead (NC1 before the task)"
DURATION = "Q1a duration (epochs drawn at random)"
PREDICTORS = "Which measure improves the prediction of PL"
FAMILY_QUESTIONS = {
    "intervention": "Q1c interventions",
    "architecture": "Q2 architecture",
    "similarity": "Q3 task similarity",
}


def _subject(variant: str, conditions: pd.DataFrame) -> str:
    """A condition's name, with its confound where its scenario has one."""
    confound = cond.confounds(conditions).get(variant, "")
    return f"{variant} (on its own: {confound})" if confound else variant


def _within_rows(within_table, conditions, reference) -> list[dict]:
    """The reference's same-task associations, then each family condition's r(ΔNC1, ΔPL)."""
    rows = []
    method = "per-seed Pearson r, Fisher z t-interval over seeds"
    for statistic, name in within.STATISTICS.items():
        summary = within.summary(within_table, reference, statistic)
        rows.append(_within_row(ASSOCIATION, statistic, reference, name, summary, method))
    for family, question in FAMILY_QUESTIONS.items():
        for variant in cond.family(conditions, family)["variant"]:
            if variant == reference:
                continue
            summary = within.summary(within_table, variant, "r_diff")
            name = within.STATISTICS["r_diff"]
            subject = _subject(variant, conditions)
            rows.append(_within_row(question, "r_diff", subject, name, summary, method))
    return rows


def _within_row(question, statistic, subject, name, summary, method) -> dict:
    return answer_row(
        question,
        statistic,
        subject,
        summary["r"],
        summary["ci_low"],
        summary["ci_high"],
        summary["p"],
        summary["n_seeds"],
        "seeds",
        method,
        f"{name} in {subject}, an association of NC1 with PL on the same task",
        lambda s: {
            1: "NC1 and PL rise together",
            -1: "PL falls as NC1 rises",
            0: "no association can be told from zero",
        }[s],
    )


def _panel_rows(panel_table, conditions) -> list[dict]:
    """Pooled NC1 association (and its panel-model lead), then each condition's slope."""
    rows = []
    method = (
        "OLS of PL_i on log10 NC1, PL_{i−1} and each condition's spline trend in steps; "
        "errors clustered by run (t, runs − 1 df)"
    )
    for row in panel_table.to_dict("records"):
        pooled = row["subset"] == POOLED
        if not pooled and row["timing"] != "same_task":
            continue
        when = "after task i" if row["timing"] == "same_task" else "after task i−1"
        subject = POOLED if pooled else _subject(row["subset"], conditions)
        statistic = f"panel_nc1_{row['timing']}" + ("" if pooled else "_condition")
        description = (
            f"PL_i per tenfold NC1 {when}, given PL_{{i−1}} and the duration trend, in "
            f"{subject}" + (" (an association: both measure task i)" if pooled else "")
        )
        rows.append(
            answer_row(
                ASSOCIATION if row["timing"] == "same_task" else LEAD,
                statistic,
                subject,
                row["coef"],
                row["ci_low"],
                row["ci_high"],
                row["p"],
                row["n_runs"],
                "runs",
                method,
                description,
                lambda s: {
                    1: "PL is higher where NC1 is higher, beyond duration and PL's past",
                    -1: "PL is lower where NC1 is higher, beyond duration and PL's past",
                    0: "no association beyond duration and PL's past can be told from zero",
                }[s],
            )
        )
    return rows


def _lead_rows(lead_table, conditions) -> list[dict]:
    """Per subset the lead of NC1 on PL and its placebo; "lead" only where the lead's interval
    excludes 0 and the placebo's does not."""
    rows = []
    method = (
        "per run OLS of PL_i on log10 NC1_{i−1}, PL_{i−1} and a spline in steps; mean over "
        "runs, t-interval; placebo: NC1_{i+1} given NC1_i, NC1_{i−1}, PL_{i−1} and the trend"
    )
    for lead in lead_table.to_dict("records"):
        pooled = lead["subset"] == POOLED
        subject = POOLED if pooled else _subject(lead["subset"], conditions)
        suffix = "" if pooled else "_condition"
        placebo_sign = sign(lead["placebo_low"], lead["placebo_high"])
        placebo_text = (
            f"placebo {fmt(lead['placebo'])} [{fmt(lead['placebo_low'])}, "
            f"{fmt(lead['placebo_high'])}]"
        )

        def verdict(s, placebo_sign=placebo_sign, placebo_text=placebo_text):
            if s == 0:
                return f"no lead can be told from zero ({placebo_text})"
            if placebo_sign != 0:
                return f"the placebo fires too ({placebo_text}): no lead can be read"
            direction = "higher" if s > 0 else "lower"
            return (
                f"NC1 leads PL: a higher NC1 before a task goes with {direction} PL on it, and "
                f"the placebo does not fire ({placebo_text})"
            )

        description = (
            f"PL_i per tenfold NC1 after task i−1, given PL_{{i−1}} and the trend, in "
            f"{subject} ({placebo_text})"
        )
        rows.append(
            answer_row(
                LEAD,
                f"lead_nc1{suffix}",
                subject,
                lead["estimate"],
                lead["low"],
                lead["high"],
                lead["p"],
                lead["n_runs"],
                "runs",
                method,
                description,
                verdict,
            )
        )
        rows.append(
            answer_row(
                LEAD,
                f"placebo_nc1{suffix}",
                subject,
                lead["placebo"],
                lead["placebo_low"],
                lead["placebo_high"],
                lead["placebo_p"],
                lead["n_runs"],
                "runs",
                method,
                f"placebo: PL_i per tenfold NC1 after task i+1 in {subject} (the future "
                "cannot cause the past: an interval excluding 0 flags confounding)",
            )
        )
    return rows


DURATION_TEXT = {
    "nc1": "log10 NC1 after task i per extra epoch on task i",
    "pl": "PL_i per extra epoch on task i (first-epoch accuracy: a built-in placebo)",
    "pl_next": "PL_{i+1} per extra epoch on task i",
}


def _duration_rows(duration_table) -> list[dict]:
    rows = []
    method = (
        "epochs drawn at random per task; per run OLS on [1, spline(task), epochs_i]; mean "
        "over runs, t-interval"
    )
    for effect in duration_table.to_dict("records"):
        outcome = effect["outcome"]
        subject = f"{effect['variant']} (epochs {effect['epochs_drawn']})"
        rows.append(
            answer_row(
                DURATION,
                f"epoch_effect_{outcome}",
                subject,
                effect["estimate"],
                effect["ci_low"],
                effect["ci_high"],
                effect["p"],
                effect["n"],
                "runs",
                method,
                f"{DURATION_TEXT[outcome]} (randomised: a causal effect of duration)",
                lambda s: {1: "more epochs raise it", -1: "more epochs lower it"}.get(
                    s, "no effect of an extra epoch can be told from zero"
                ),
            )
        )
    return rows


EFFECT_TEXT = {
    "r_nc1_pl_conditions": "r(NC1, PL) across the conditions' final means",
    "pl_per_fraction": "PL per unit of permuted-pixel fraction",
    "r_diff_per_fraction": "r(ΔNC1, ΔPL) per unit of permuted-pixel fraction",
    "pl_fresh": "PL against a fresh network (fresh − ours, online accuracy)",
    "pl_fresh_difference": "PL against a fresh network, minus the reference's at the same seed",
}
# The effects table's question codes -> their questions.
QUESTIONS = {question.split(" ")[0]: question for question in FAMILY_QUESTIONS.values()}


def _effect_rows(effects) -> list[dict]:
    return [
        effect_row(
            QUESTIONS[effect["question"]],
            effect,
            effect["method"],
            f"{EFFECT_TEXT[effect['statistic']]} in {effect['subject']}",
        )
        for effect in effects.to_dict("records")
    ]


def _predictor_rows(ranking) -> list[dict]:
    rows = []
    method = (
        "held-out MSE of PL_i: baseline (each condition's steps trend + PL_{i−1}) minus "
        "baseline + the row's value after task i−1, leave one seed out; t-interval over seeds"
    )
    total = int(ranking["rank"].notna().sum())
    for row in ranking.to_dict("records"):
        kind = "a duration or past baseline" if row["kind"] == "baseline" else "a measure"
        paired = (
            f"; minus NC1's {fmt(row['minus_nc1'])} [{fmt(row['minus_nc1_low'])}, "
            f"{fmt(row['minus_nc1_high'])}]"
            if row["measure"] != "nc1"
            else ""
        )
        description = (
            f"held-out MSE reduction by {row['label']} ({kind}, {row['scale']} scale), rank "
            f"{fmt(row['rank'])} of {total} with the baselines{paired}"
        )
        rows.append(
            answer_row(
                PREDICTORS,
                "held_out_improvement",
                row["measure"],
                row["improvement"],
                row["low"],
                row["high"],
                row["p"],
                row["n_groups"],
                "held-out seeds",
                method,
                description,
            )
        )
    return rows


def _exclusion_rows(summary) -> list[dict]:
    """A note per condition with runs left out (``summary``: :func:`.pooling.summary`)."""
    return [
        note_row(
            "Runs analysed on their own",
            "excluded_runs",
            row["variant"],
            row["runs"],
            "runs",
            f"{row['runs']} run(s) of {row['variant']} left out of every pooled and causal "
            f"estimate and analysed on their own: {row['reasons']}",
        )
        for row in summary.to_dict("records")
    ]


def _regulariser_rows(regularisers: pd.DataFrame) -> list[dict]:
    rows = []
    for effect in regularisers.to_dict("records"):
        quantity = effect["quantity"]
        what = (
            "the fine-tuned test accuracy of the warm start"
            if quantity == "finetune_test_accuracy"
            else quantity
        )
        rows.append(
            answer_row(
                "Next check 3 NC regularisers",
                f"{quantity}_difference",
                effect["variant"],
                effect["estimate"],
                effect["ci_low"],
                effect["ci_high"],
                effect["p"],
                effect["n_seeds"],
                "seeds",
                "per seed, mean over checkpoints, minus the reference's; t-interval over seeds",
                f"{effect['interventions']}: change of {what} against {effect['reference']}",
            )
        )
    return rows


def build(tables: dict, primary=(), reference: pd.DataFrame | None = None) -> pd.DataFrame:
    """The answers from the analysis tables (``tables``: conditions, within_run, panel_model,
    leads, duration, effects, predictors, causal, exclusions, and regularisers when the study
    ran warm starting); ``primary``: the statistics that get a verdict; ``reference``: the
    answers table of a reference study."""
    conditions = tables["conditions"]
    reference_variant = conditions.loc[conditions["reference"], "variant"].iloc[0]
    rows = causal.answer_rows(tables["causal"])
    rows += _lead_rows(tables["leads"], conditions)
    rows += _panel_rows(tables["panel_model"], conditions)
    rows += _within_rows(tables["within_run"], conditions, reference_variant)
    rows += _duration_rows(tables["duration"])
    rows += _effect_rows(tables["effects"])
    rows += _predictor_rows(tables["predictors"])
    if "regularisers" in tables:
        rows += _regulariser_rows(tables["regularisers"])
    rows += _exclusion_rows(pooling.summary(tables["exclusions"]))
    # Each question's rows together, in the order questions first appear.
    order = {q: i for i, q in enumerate(dict.fromkeys(r["question"] for r in rows))}
    rows.sort(key=lambda row: order[row["question"]])  # stable: each keeps its order
    return finish(rows, primary, reference)
