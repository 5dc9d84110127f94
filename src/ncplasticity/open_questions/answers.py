"""The answers table: one row per question and sub-question, and the best-predicting measure
and NC1's rank among the measures, each with its estimate, interval, the number of seeds,
runs, conditions or groups it rests on, and a one-sentence reading generated from the numbers.

Every row is read off the analysis tables (:mod:`.within`, :mod:`.models`, :mod:`.effects`,
:mod:`.predictors`); nothing here computes a new statistic.
"""

from __future__ import annotations

import pandas as pd

from ncplasticity.open_questions import causal, within
from ncplasticity.open_questions import conditions as cond
from ncplasticity.open_questions.readings import (
    COLUMNS,
    answer_row,
    effect_row,
    fmt,
    relation,
    span,
)
from ncplasticity.tsv import markdown_row


def _seed_row(question, within_table, variant, statistic, method, reading) -> dict:
    """A row of ``variant``'s ``statistic`` from its summary over seeds in the within-run table."""
    summary = within.summary(within_table, variant, statistic)
    return answer_row(
        question,
        statistic,
        variant,
        summary["r"],
        summary["ci_low"],
        summary["ci_high"],
        summary["n_seeds"],
        "seeds",
        method,
        reading,
    )


def _family_rows(conditions, within_table, reference, family, question, statistic, method, reading):
    """:func:`_seed_row` of each condition of ``family`` other than the reference."""
    return [
        _seed_row(question, within_table, variant, statistic, method, reading)
        for variant in cond.family(conditions, family)["variant"]
        if variant != reference
    ]


def _within_rows(within_table, reference) -> list[dict]:
    rows = []
    for statistic, name in within.STATISTICS.items():

        def reading(row, s, name=name, statistic=statistic):
            text = f"{name} in {row['subject']}: {span(row)} over {row['n']} seeds; "
            if statistic == "r_diff":
                return text + relation(s, "NC1", " from task to task") + "."
            if statistic == "r_diff_prev":
                return text + relation(s, "the previous task's NC1", " from task to task") + "."
            if statistic == "partial_r_steps":
                return text + relation(s, "NC1", " at equal steps") + "."
            return (
                text
                + relation(s, "NC1", " over tasks (a trend shared with the task index counts)")
                + "."
            )

        method = "per-seed Pearson r, Fisher z t-interval over seeds"
        rows.append(_seed_row("Q1 within run", within_table, reference, statistic, method, reading))
    return rows


def _mixed_rows(mixed, subset, question) -> list[dict]:
    rows = []
    for row in mixed[mixed["subset"] == subset].to_dict("records"):
        when = "after task i−1" if row["predictor"] == "nc1_prev" else "after task i"

        def reading(out, s, when=when, row=row):
            verdict = {
                1: "NC1 predicts plasticity loss beyond duration (higher NC1, higher PL)",
                -1: "NC1 predicts plasticity loss beyond duration (higher NC1, lower PL)",
                0: "NC1 does not predict plasticity loss beyond duration here",
            }[s]
            fit = "" if row["converged"] else " (the fit did not converge: treat with care)"
            return (
                f"log10 NC1 ({when}) coefficient {span(out)} on PL_i (PL per tenfold NC1) "
                f"over {out['n']} runs, controlling for steps and condition: {verdict}{fit}."
            )

        rows.append(
            answer_row(
                question,
                f"mixed_{row['predictor']}",
                subset,
                row["coef"],
                row["ci_low"],
                row["ci_high"],
                row["n_runs"],
                "runs",
                f"MixedLM {row['formula']}, groups {row['groups']}, Wald 95 %",
                reading,
            )
        )
    return rows


EFFECT_TEXT = {
    "r_nc1_pl_conditions": "r(NC1, PL) across conditions' means",
    "pl_per_fraction": "PL per unit of permuted-pixel fraction",
    "r_diff_per_fraction": "first-differenced r(NC1, PL) per unit of permuted-pixel fraction",
    "pl_fresh": "PL against a fresh network (fresh − ours, online accuracy)",
    "pl_fresh_difference": "PL against a fresh network, minus the reference's at the same seed",
}


def _effect_reading(row, s, statistic, conditions) -> str:
    if statistic in ("pl_fresh", "pl_fresh_difference"):
        text = f"{EFFECT_TEXT[statistic]} in {row['subject']}: {span(row)} over {row['n']} seeds"
        if statistic == "pl_fresh":
            verdict = {
                1: "it learns new tasks worse than a fresh network",
                -1: "it learns new tasks better than a fresh network",
                0: "no gap to a fresh network can be told from zero",
            }[s]
        else:
            verdict = {
                1: "it loses more plasticity than the reference",
                -1: "it loses less plasticity than the reference",
                0: "no difference from the reference can be told from zero",
            }[s]
        return f"{text}: {verdict}."
    text = f"{EFFECT_TEXT[statistic]}: {span(row)} ({row['n']} {row['n_unit']}"
    text += f", {conditions} conditions)" if row["n_unit"] != "conditions" else ")"
    moves = {1: "rises", -1: "falls", 0: "shows no change that can be told from zero"}[s]
    if statistic == "pl_per_fraction":
        return text + f": PL {moves} as tasks share fewer pixels."
    if statistic == "r_diff_per_fraction":
        return text + f": the task-to-task link {moves} as tasks grow less similar."
    return text + ": " + relation(s, "NC1", " across conditions") + "."


# The families whose conditions each get their own task-to-task link (how an intervention, the
# architecture or optimiser, or the task similarity changes it), and their question.
CONDITION_QUESTIONS = {
    "intervention": "Q1c interventions",
    "architecture": "Q2 architecture",
    "similarity": "Q3 task similarity",
}


def _condition_link_rows(conditions, within_table, reference, name, question) -> list[dict]:
    """r(ΔNC1, ΔPL) of each condition of family ``name`` beside the reference's: the reading
    gives both, and says no more than each interval does (no test of their difference)."""
    base = within.summary(within_table, reference, "r_diff")
    base_text = f"{reference}: {fmt(base['r'])} [{fmt(base['ci_low'])}, {fmt(base['ci_high'])}]"
    return _family_rows(
        conditions,
        within_table,
        reference,
        name,
        question,
        "r_diff",
        "per-seed Pearson r of first differences, Fisher z t-interval over seeds",
        lambda row, s: (
            f"r(ΔNC1, ΔPL) in {row['subject']}: {span(row)} over {row['n']} seeds "
            f"({base_text}); " + relation(s, "NC1", " from task to task") + "."
        ),
    )


def build(
    conditions, within_table, mixed, effects, ranking, causal_table, regularisers=None
) -> pd.DataFrame:
    """The answers (:data:`COLUMNS`) from the analysis tables (``causal_table``: the nc_target
    doses' causal estimate; ``regularisers``: the warm-start regulariser effects, when the
    study ran warm starting)."""
    reference = conditions.loc[conditions["reference"], "variant"].iloc[0]
    rows = causal.answer_rows(causal_table)
    rows += _within_rows(within_table, reference)
    rows += _mixed_rows(mixed, "all", "Q1 beyond duration")
    rows += _family_rows(
        conditions,
        within_table,
        reference,
        "duration",
        "Q1a duration",
        "partial_r_steps",
        "per-seed partial Pearson r given cumulative steps, Fisher z t-interval",
        lambda row, s: (
            f"With each task's epochs drawn independently ({row['subject']}), partial "
            f"r(NC1, PL | steps) {span(row)} over {row['n']} seeds: "
            + relation(s, "NC1", " beyond duration")
            + "."
        ),
    )
    rows += _mixed_rows(mixed, "duration", "Q1a duration")
    questions = {"Q1c": "Q1c interventions", "Q2": "Q2 architecture", "Q3": "Q3 task similarity"}
    for effect in effects.to_dict("records"):
        statistic = effect["statistic"]
        rows.append(
            effect_row(
                questions[effect["question"]],
                effect,
                effect["method"],
                lambda row, s, st=statistic, k=effect["conditions"]: _effect_reading(row, s, st, k),
            )
        )
    for name, question in CONDITION_QUESTIONS.items():
        rows += _condition_link_rows(conditions, within_table, reference, name, question)
    rows += _predictor_rows(ranking)
    if regularisers is not None:
        rows += _regulariser_rows(regularisers)
    # Each question's rows together (its across-condition effects first), in question order.
    rank = {question: i for i, question in enumerate(dict.fromkeys(r["question"] for r in rows))}
    rows.sort(key=lambda row: rank[row["question"]])  # stable: each question keeps its order
    return pd.DataFrame(rows, columns=COLUMNS)


def _regulariser_rows(regularisers: pd.DataFrame) -> list[dict]:
    rows = []
    for effect in regularisers.to_dict("records"):
        quantity = effect["quantity"]
        outcome = quantity == "finetune_test_accuracy"

        def reading(row, s, effect=effect, outcome=outcome, quantity=quantity):
            if outcome:
                verdict = {
                    1: "it preserves plasticity",
                    -1: "it costs plasticity",
                    0: "no effect on plasticity can be told from zero",
                }[s]
                what = "the fine-tuned test accuracy of the warm start"
            else:
                verdict = {1: "it raises it", -1: "it lowers it", 0: "no change can be told"}[s]
                what = quantity
            return (
                f"{effect['interventions']} changes {what} by {span(row)} against "
                f"{effect['reference']} over {row['n']} seeds: {verdict}."
            )

        rows.append(
            answer_row(
                "Next check 3 NC regularisers",
                f"{quantity}_difference",
                effect["variant"],
                effect["estimate"],
                effect["ci_low"],
                effect["ci_high"],
                effect["n_seeds"],
                "seeds",
                "per seed, mean over checkpoints, minus the reference's; t-interval over seeds",
                reading,
            )
        )
    return rows


def _predictor_rows(ranking: pd.DataFrame) -> list[dict]:
    ranked = ranking[ranking["held_out"].notna()]
    if ranked.empty:
        return []
    measures = ranked[ranked["kind"] != "baseline"]
    best = ranked.iloc[0]
    method = "held-out Spearman, leave one group of variants out, Fisher z t-interval"
    rows = [
        answer_row(
            "Which measure predicts PL",
            "best_predictor",
            best["measure"],
            best["held_out"],
            best["held_out_ci_low"],
            best["held_out_ci_high"],
            best["n_groups"],
            "held-out groups",
            method,
            lambda row, s: (
                f"{row['subject']} predicts the next task's PL best out of sample: Spearman "
                f"{span(row)} over {row['n']} held-out groups"
                + (
                    " (a duration baseline: no measure beats training duration)."
                    if best["kind"] == "baseline"
                    else "."
                )
            ),
        )
    ]
    nc1 = measures[measures["measure"] == "nc1"]
    if len(nc1):
        nc1 = nc1.iloc[0]
        place = int((measures["held_out"] > nc1["held_out"]).sum()) + 1
        rows.append(
            answer_row(
                "Which measure predicts PL",
                "nc1_rank",
                f"NC1 rank {place} of {len(measures)}",
                nc1["held_out"],
                nc1["held_out_ci_low"],
                nc1["held_out_ci_high"],
                nc1["n_groups"],
                "held-out groups",
                method,
                lambda row, s: (
                    f"NC1 ranks {place} of {len(measures)} measures out of sample (Spearman "
                    f"{span(row)} over {row['n']} held-out groups; within run, differenced: "
                    f"rank {fmt(nc1['within_rank'])}; mixed model: rank {fmt(nc1['mixed_rank'])})."
                ),
            )
        )
    return rows


def markdown(answers: pd.DataFrame, formula: str) -> str:
    header = (
        "Generated by the workflow (rule open_questions_answers, from results/continual/tables "
        "through results/open_questions/*.tsv); do not edit. Intervals are 95 %; *n* counts "
        "what each interval rests on (seeds, runs, conditions or held-out groups). Mixed model: "
        f"`{formula}`, random intercept per run."
    )
    names = ["question", "statistic", "subject", "estimate [95 % interval]", "n", "reading"]
    lines = [header, "", markdown_row(names), markdown_row(["---"] * len(names))]
    for row in answers.to_dict("records"):
        lines.append(
            markdown_row(
                [
                    row["question"],
                    row["statistic"],
                    str(row["subject"]),
                    span(row),
                    f"{row['n']} {row['n_unit']}",
                    row["reading"],
                ]
            )
        )
    return "\n".join(lines) + "\n"
