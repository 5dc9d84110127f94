"""Q1's causal estimate (DESIGN §3b, §3d): the ``nc_target`` doses as an instrument for NC1.

Each dose assigns a target τ to the trace-ratio NC1 of the penultimate features; the run holds
it there while it keeps learning. With log τ as the instrument, two-stage least squares of the
task's plasticity loss on log achieved ``nc1_trace_ratio`` estimates what NC1 does to PL, free
of what both share with training duration. Over the dose runs' tasks from
:data:`FIRST_TASK` on (the set point settles over the first tasks), with a steps trend per dose
(a slope on cumulative steps for each dose, one common intercept: a per-dose intercept would
absorb the instrument) and errors clustered by run:

- first stage: log NC1 on log τ (coefficient, interval, and its F statistic: the squared
  clustered t of the one instrument; below 10 the instrument is weak and the estimate is not
  read);
- reduced form: PL on log τ;
- 2SLS: PL on log NC1, instrumented by log τ (linearmodels' IV2SLS);

for ``pl`` and, where the runs measured it, ``pl_fresh``. A run flagged ``degenerate`` is left
out, its reason named. Beside them, the dose's side effects on the other registered measures
(an instrument that moves them too does not isolate NC1): per dose, the final-window mean of
each measure minus the reference's at the same seed, with a t-interval over seeds. And the
manipulation checks per dose and seed (:func:`dose_checks`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ncplasticity.open_questions import conditions as cond
from ncplasticity.open_questions import pooling
from ncplasticity.open_questions.readings import effect_row, fmt, note_row
from ncplasticity.stats import mean_interval

FIRST_TASK = 10
# The tasks whose online accuracy the checks compare with the reference's (issue 26's targets).
EARLY_TASKS = (1, 20)
WEAK_INSTRUMENT_F = 10.0
# What each dose does to plasticity, read per dose against the reference (paired by seed),
# never as one line through the doses.
DOSE_OUTCOMES = ("pl", "pl_fresh")
SIDE_EFFECTS = ("weight_norm", "dormant_fraction", "feature_rank", "feature_norm", "test_accuracy")
CAUSAL_COLUMNS = [
    "question",
    "statistic",
    "outcome",
    "subject",
    "estimate",
    "ci_low",
    "ci_high",
    "p",
    "n",
    "unit",
    "first_stage_f",
    "method",
    "excluded",
]


def dose_data(panel: pd.DataFrame, conditions: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The dose runs' task rows from :data:`FIRST_TASK` on with ``log_target`` and
    ``log_nc1`` (the achieved ``nc1_trace_ratio``), and the reasons of the runs left out."""
    doses = cond.family(conditions, "dose")
    doses = doses[~doses["reference"]]
    data = panel[panel["variant"].isin(doses["variant"]) & (panel["task"] >= FIRST_TASK)]
    excluded = pooling.degenerate_runs(data)
    data = data[~data["run"].isin(excluded)].copy()
    data["log_target"] = np.log(data["variant"].map(doses.set_index("variant")["target"]))
    data["log_nc1"] = np.log(data["nc1_trace_ratio"].where(data["nc1_trace_ratio"] > 0))
    return data, sorted(f"{run}: {reason}" for run, reason in excluded.items())


def _design(data: pd.DataFrame) -> pd.DataFrame:
    """A common intercept and a slope on cumulative steps (millions) per dose."""
    design = pd.DataFrame({"const": 1.0}, index=data.index)
    for variant in sorted(data["variant"].unique()):
        design[f"steps_{variant}"] = data["steps_m"] * (data["variant"] == variant)
    return design


def _fit(dependent, exog, endog=None, instruments=None, clusters=None):
    from linearmodels.iv import IV2SLS

    model = IV2SLS(dependent, exog, endog, instruments)
    return model.fit(cov_type="clustered", clusters=clusters)


def _row(statistic, outcome, result, term, runs, method, f_stat, excluded) -> dict:
    """A row of :data:`CAUSAL_COLUMNS` from a fit's ``term``; without an estimate where
    ``result`` is None (the fit could not be made, ``method`` says why)."""
    if result is None:
        estimate = low = high = p = np.nan
    else:
        estimate, p = float(result.params[term]), float(result.pvalues[term])
        low, high = (float(bound) for bound in result.conf_int().loc[term])
    return {
        "question": "Q1b",
        "statistic": statistic,
        "outcome": outcome,
        "subject": "nc_target doses",
        "estimate": estimate,
        "ci_low": low,
        "ci_high": high,
        "p": p,
        "n": runs,
        "unit": "runs",
        "first_stage_f": f_stat,
        "method": method,
        "excluded": "; ".join(excluded) or "none",
    }


def _iv_statistics(outcome: str) -> tuple[str, str, str]:
    """The names of the first stage, the reduced form and the 2SLS estimate for ``outcome``."""
    return (
        "first_stage_log_nc1_per_log_target" + ("" if outcome == "pl" else f"_{outcome}"),
        f"reduced_form_{outcome}_per_log_target",
        f"iv_{outcome}_per_log_nc1",
    )


def iv_estimates(data: pd.DataFrame, excluded: list[str], outcome: str) -> list[dict]:
    """First stage, reduced form and 2SLS for ``outcome`` (rows of :data:`CAUSAL_COLUMNS`).
    Where fewer than two doses or three runs have the outcome (e.g. the doses' runs turned
    degenerate), the same three rows without an estimate, saying what is left, so that the
    answers say why instead of losing the question."""
    data = data[data[outcome].notna() & data["log_nc1"].notna()]
    doses, runs = int(data["variant"].nunique()), int(data["run"].nunique())
    names = _iv_statistics(outcome)
    if doses < 2 or runs < 3:
        method = (
            f"not estimable: {doses} dose(s) and {runs} run(s) have {outcome} once degenerate "
            "runs are left out (it needs 2 doses and 3 runs)"
        )
        return [_row(name, outcome, None, None, runs, method, np.nan, excluded) for name in names]
    clusters = pd.Series(pd.factorize(data["run"])[0], index=data.index)
    exog = _design(data)
    trend = "steps trend per dose, errors clustered by run"
    first = _fit(
        data["log_nc1"], pd.concat([exog, data[["log_target"]]], axis=1), None, None, clusters
    )
    f_stat = float(first.tstats["log_target"] ** 2)
    reduced = _fit(
        data[outcome], pd.concat([exog, data[["log_target"]]], axis=1), None, None, clusters
    )
    iv = _fit(data[outcome], exog, data[["log_nc1"]], data[["log_target"]], clusters)
    return [
        _row(
            # The first stage over the rows that have the outcome (pl_fresh: every k-th task).
            names[0],
            outcome,
            first,
            "log_target",
            runs,
            f"OLS of log achieved NC1 on log target, {trend}",
            f_stat,
            excluded,
        ),
        _row(
            names[1],
            outcome,
            reduced,
            "log_target",
            runs,
            f"OLS of {outcome} on log target, {trend}",
            f_stat,
            excluded,
        ),
        _row(
            names[2],
            outcome,
            iv,
            "log_nc1",
            runs,
            f"2SLS of {outcome} on log achieved NC1 instrumented by log target, {trend}",
            f_stat,
            excluded,
        ),
    ]


def side_effects(panel: pd.DataFrame, conditions: pd.DataFrame) -> list[dict]:
    """Per dose and measure of :data:`DOSE_OUTCOMES` (``dose_difference_<measure>``) and
    :data:`SIDE_EFFECTS` (``side_effect_<measure>``): the mean over tasks from
    :data:`FIRST_TASK` on minus the reference's at the same seed, t-interval over seeds."""
    doses = cond.family(conditions, "dose")
    reference = conditions.loc[conditions["reference"], "variant"].iloc[0]
    late = panel[panel["task"] >= FIRST_TASK]
    rows = []
    for measure in (m for m in (*DOSE_OUTCOMES, *SIDE_EFFECTS) if m in late):
        kind = "dose_difference" if measure in DOSE_OUTCOMES else "side_effect"
        means = late.pivot_table(index="seed", columns="variant", values=measure, aggfunc="mean")
        for dose in doses[~doses["reference"]].sort_values("target").itertuples():
            if dose.variant not in means or reference not in means:
                continue
            summary = mean_interval(means[dose.variant] - means[reference])
            rows.append(
                {
                    "question": "Q1b",
                    "statistic": f"{kind}_{measure}",
                    "outcome": measure,
                    "subject": f"{dose.variant} (target {dose.target:.4g})",
                    "estimate": summary["mean"],
                    "ci_low": summary["ci_low"],
                    "ci_high": summary["ci_high"],
                    "p": summary["p"],
                    "n": summary["n"],
                    "unit": "seeds",
                    "first_stage_f": np.nan,
                    "method": (
                        f"per seed, mean over tasks {FIRST_TASK}+ minus {reference}'s; "
                        "t-interval over seeds"
                    ),
                    "excluded": "none",
                }
            )
    return rows


def causal_table(panel: pd.DataFrame, conditions: pd.DataFrame) -> pd.DataFrame:
    """The causal estimates for ``pl`` and ``pl_fresh``, then the side effects."""
    data, excluded = dose_data(panel, conditions)
    rows = []
    for outcome in ("pl", "pl_fresh"):
        if outcome in data:
            rows += iv_estimates(data, excluded, outcome)
    rows += side_effects(panel, conditions)
    return pd.DataFrame(rows, columns=CAUSAL_COLUMNS)


def dose_checks(panel: pd.DataFrame, conditions: pd.DataFrame) -> pd.DataFrame:
    """Per dose run and per reference run: its target, the median achieved
    ``nc1_trace_ratio`` over tasks from :data:`FIRST_TASK` on and its ratio to the target, the
    mean online accuracy over tasks :data:`EARLY_TASKS` relative to the reference's at the same
    seed, whether it turned degenerate, and whether the doses' achieved NC1 is ordered like
    their targets at that seed."""
    doses = cond.family(conditions, "dose")
    targets = doses.set_index("variant")["target"]
    first, last = EARLY_TASKS
    rows = []
    for (variant, seed), run in panel[panel["variant"].isin(targets.index)].groupby(
        ["variant", "seed"], sort=False
    ):
        early = run[(run["task"] >= first) & (run["task"] <= last)]
        achieved = float(run.loc[run["task"] >= FIRST_TASK, "nc1_trace_ratio"].median())
        rows.append(
            {
                "variant": variant,
                "seed": int(seed),
                "target": targets[variant],
                "achieved": achieved,
                "achieved_over_target": achieved / targets[variant],
                "early_accuracy": float(early["online_accuracy"].mean()),
                "degenerate": bool(run["degenerate"].astype(bool).any())
                if "degenerate" in run
                else False,
            }
        )
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    reference = conditions.loc[conditions["reference"], "variant"].iloc[0]
    plain = table[table["variant"] == reference].set_index("seed")["early_accuracy"]
    table["early_accuracy_over_reference"] = table["early_accuracy"] / table["seed"].map(plain)
    ordered = {}
    for seed, rows_of_seed in table[table["target"].notna()].groupby("seed"):
        by_target = rows_of_seed.sort_values("target")["achieved"].to_numpy()
        ordered[seed] = bool(np.all(np.diff(by_target) > 0))
    table["doses_ordered_at_seed"] = table["seed"].map(ordered)
    return table.sort_values(["target", "seed"], na_position="first", kind="stable")


def dose_tasks(panel: pd.DataFrame, conditions: pd.DataFrame) -> pd.DataFrame:
    """Per dose (and the reference) and task: the target, and the achieved
    ``nc1_trace_ratio``'s median, minimum and maximum over seeds (the figure's bands)."""
    doses = cond.family(conditions, "dose")
    rows = panel[panel["variant"].isin(doses["variant"])]
    grouped = rows.groupby(["variant", "task"], sort=True)["nc1_trace_ratio"]
    table = grouped.agg(achieved_median="median", achieved_min="min", achieved_max="max")
    table["n_seeds"] = grouped.count()
    table = table.reset_index()
    table.insert(1, "target", table["variant"].map(doses.set_index("variant")["target"]))
    return table


def answer_rows(causal_table: pd.DataFrame) -> list[dict]:
    """The causal table's rows of the answers table: the first stage, the reduced form and the
    2SLS estimate per outcome (a verdict only where the first-stage F reaches 10, and with the
    doses' side effects named where they move other measures); then each dose's PL against the
    reference and its side effects."""
    side = causal_table[causal_table["statistic"].str.startswith("side_effect_")]
    moved = list(side[(side["ci_low"] > 0) | (side["ci_high"] < 0)]["outcome"].unique())
    rows = []
    for effect in causal_table.to_dict("records"):
        statistic, f_stat, outcome = effect["statistic"], effect["first_stage_f"], effect["outcome"]
        if not np.isfinite(effect["estimate"]):
            text = f"{statistic}: {effect['method']}; runs left out: {effect['excluded']}"
            row = note_row(
                "Q1b causal (nc_target)",
                statistic,
                effect["subject"],
                effect["n"],
                effect["unit"],
                text,
            )
            rows.append(row | {"estimate": np.nan})  # a note's estimate is its count otherwise
            continue
        weak = f_stat < WEAK_INSTRUMENT_F
        strength = f"first-stage F = {fmt(f_stat)}" + (" < 10: a weak instrument" if weak else "")
        verdict = None
        if statistic.startswith("side_effect_") or statistic.startswith("dose_difference_"):
            description = f"{outcome} of {effect['subject']} minus the reference's, per seed"
        elif statistic.startswith("first_stage"):
            description = f"log achieved NC1 per log target ({strength})"
        elif statistic.startswith("reduced_form"):
            description = f"{outcome} per log target ({strength})"
        else:
            description = f"{outcome} per log achieved NC1, 2SLS ({strength})"

            def verdict(s, weak=weak, strength=strength):
                if weak:
                    return f"the instrument is weak ({strength}): no causal reading."
                if moved:
                    direction = {1: "more", -1: "less", 0: "no measurably different"}[s]
                    return (
                        f"runs held at higher NC1 (less collapse) lose {direction} plasticity, but "
                        f"the doses also move {', '.join(moved)} (intervals excluding 0): the "
                        "target is no clean instrument, this estimate does not isolate NC1, and "
                        "no causal effect of NC1 can be read."
                    )
                return {
                    1: "holding NC1 higher (less collapse) causes more plasticity loss.",
                    -1: "holding NC1 higher (less collapse) causes less plasticity loss, "
                    "i.e. collapse causes plasticity loss.",
                    0: "no causal effect of NC1 on it can be told from zero.",
                }[s]

        method = f"{effect['method']}; runs left out: {effect['excluded']}"
        rows.append(effect_row("Q1b causal (nc_target)", effect, method, description, verdict))
    return rows
