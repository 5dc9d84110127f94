"""Condition-level effects: each condition's mean NC1 and PL, the dose-response of the NC dial,
the across-condition correlation and task similarity.

A condition's value is computed per run first (the mean over the run's last ``final_tasks``
analysed tasks, :func:`.panel.run_means`), then summarised over the seeds: the mean with a
t-interval over seeds (``n_seeds``). Effects across conditions are estimated per seed (the
runs of one seed share a seed across variants) and summarised over the seeds the same way:
slopes with a t-interval, correlations on Fisher's z scale
(:func:`ncplasticity.stats.fisher_z_interval`). The correlation of the condition means over K
conditions has the Fisher interval tanh(z ± z_{0.975}/√(K − 3)) and rests on K conditions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import special

from ncplasticity import stats
from ncplasticity.open_questions import conditions as cond
from ncplasticity.open_questions import within
from ncplasticity.stats import mean_interval

EFFECT_COLUMNS = [
    "question",
    "statistic",
    "estimate",
    "ci_low",
    "ci_high",
    "p",
    "n",
    "unit",
    "method",
    "conditions",
    "subject",
]


def condition_means(conditions: pd.DataFrame, run_means: pd.DataFrame) -> pd.DataFrame:
    """``conditions`` with, per variant, ``<q>_mean``, ``<q>_ci_low``, ``<q>_ci_high`` of
    q = nc1_final, pl_final, pl_fresh_final over seeds, ``n_seeds`` and the final window's
    tasks."""
    rows = []
    for row in conditions.to_dict("records"):
        runs = run_means[run_means["variant"] == row["variant"]]
        out = dict(row)
        for quantity in ("nc1_final", "pl_final", "pl_fresh_final"):
            summary = mean_interval(runs[quantity])
            out |= {
                f"{quantity}_mean": summary["mean"],
                f"{quantity}_ci_low": summary["ci_low"],
                f"{quantity}_ci_high": summary["ci_high"],
            }
        out["n_seeds"] = len(runs)
        out["final_tasks"] = (
            f"{runs['first_task'].min()}-{runs['last_task'].max()}" if len(runs) else ""
        )
        rows.append(out)
    return pd.DataFrame(rows)


def _per_seed(run_means: pd.DataFrame, members: pd.DataFrame, x: str, y: str) -> dict:
    """Seed -> (x values, y values) over ``members``' runs, for the seeds every member ran;
    ``x`` and ``y`` are columns of ``run_means`` or of ``members`` (a condition's fact)."""
    facts = [c for c in (x, y) if c not in run_means.columns]
    table = run_means.merge(members[["variant", *facts]], on="variant")
    seeds = set.intersection(
        *(set(table.loc[table["variant"] == v, "seed"]) for v in members["variant"])
    )
    return {
        seed: (rows[x].to_numpy(float), rows[y].to_numpy(float))
        for seed, rows in table[table["seed"].isin(seeds)].groupby("seed", sort=True)
    }


def _slope(x, y) -> float:
    keep = np.isfinite(x) & np.isfinite(y)
    if keep.sum() < 2 or np.ptp(x[keep]) == 0:
        return np.nan
    return float(np.polyfit(x[keep], y[keep], 1)[0])


def seed_slope(run_means, members, x: str, y: str) -> dict:
    """Per seed, the least-squares slope of ``y`` on ``x`` over the members' runs of that seed;
    the mean slope with its t-interval over seeds."""
    slopes = [_slope(xs, ys) for xs, ys in _per_seed(run_means, members, x, y).values()]
    summary = mean_interval(slopes)
    return {
        "estimate": summary["mean"],
        "ci_low": summary["ci_low"],
        "ci_high": summary["ci_high"],
        "p": summary["p"],
        "n": summary["n"],
        "unit": "seeds",
        "method": "per-seed slope, t-interval over seeds",
    }


def seed_correlation(run_means, members, x: str, y: str) -> dict:
    """Per seed, r(x, y) over the members' runs of that seed; Fisher z t-interval over seeds."""
    rs = [stats.pearson(xs, ys) for xs, ys in _per_seed(run_means, members, x, y).values()]
    summary = stats.fisher_z_interval(rs)
    return {
        "estimate": summary["r"],
        "ci_low": summary["ci_low"],
        "ci_high": summary["ci_high"],
        "p": summary["p"],
        "n": summary["n_seeds"],
        "unit": "seeds",
        "method": "per-seed Pearson r, Fisher z t-interval over seeds",
    }


def condition_correlation(x, y, confidence: float = 0.95) -> dict:
    """Pearson r of condition means with the Fisher interval over K conditions (NaN below 4)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    k = int(keep.sum())
    r = stats.pearson(x[keep], y[keep])
    low = high = p = np.nan
    if k >= 4 and np.isfinite(r):
        z = np.arctanh(np.clip(r, -1 + 1e-12, 1 - 1e-12))
        half = special.ndtri((1 + confidence) / 2) / np.sqrt(k - 3)
        low, high = float(np.tanh(z - half)), float(np.tanh(z + half))
        p = float(2 * special.ndtr(-abs(z) * np.sqrt(k - 3)))
    return {
        "estimate": r,
        "ci_low": low,
        "ci_high": high,
        "p": p,
        "n": k,
        "unit": "conditions",
        "method": "Pearson r of condition means, Fisher interval over conditions",
    }


def dose_members(conditions: pd.DataFrame) -> pd.DataFrame:
    """The dose family, the reference (no target) first, then by target."""
    return cond.family(conditions, "dose").sort_values("target", na_position="first")


def similarity_members(conditions: pd.DataFrame) -> pd.DataFrame:
    """The similarity family's conditions with a fraction (one scenario: the reference's)."""
    members = cond.family(conditions, "similarity")
    scenario = conditions.loc[conditions["reference"], "scenario"].iloc[0]
    members = members[(members["scenario"] == scenario) & members["fraction"].notna()]
    return members.sort_values("fraction")


def effects(
    conditions: pd.DataFrame, run_means: pd.DataFrame, within_table: pd.DataFrame
) -> pd.DataFrame:
    """Every condition-level effect, one row each (:data:`EFFECT_COLUMNS`)."""
    rows = []

    def add(question, statistic, members, result):
        subject = f"{len(members)} conditions"
        rows.append(
            {"question": question, "statistic": statistic, "conditions": len(members)}
            | result
            | {"subject": subject}
        )

    means = condition_means(conditions, run_means)
    for question, name in (("Q1c", "intervention"), ("Q2", "architecture")):
        members = cond.family(means, name)
        if len(members) >= 3:
            result = condition_correlation(members["nc1_final_mean"], members["pl_final_mean"])
            add(question, "r_nc1_pl_conditions", members, result)
    similar = similarity_members(conditions)
    if len(similar) >= 2:
        add(
            "Q3", "pl_per_fraction", similar, seed_slope(run_means, similar, "fraction", "pl_final")
        )
        diffs = within_table[
            (within_table["statistic"] == "r_diff") & (within_table["seed"].astype(str) != "mean")
        ][["variant", "seed", "r"]].rename(columns={"r": "r_diff"})
        diffs = diffs.assign(seed=diffs["seed"].astype(int))
        add("Q3", "r_diff_per_fraction", similar, seed_slope(diffs, similar, "fraction", "r_diff"))
    rows += fresh_gaps(conditions, run_means)
    return pd.DataFrame(rows, columns=EFFECT_COLUMNS)


def fresh_gaps(conditions: pd.DataFrame, run_means: pd.DataFrame) -> list[dict]:
    """Q3 by kind of shift, against a fresh network (DESIGN §3d: where tasks differ in
    difficulty only the fresh gap means plasticity loss): for every condition of the
    similarity family whose runs measured ``pl_fresh``, its level (``pl_fresh``: the mean over
    seeds of each run's final-window mean) and, beside the reference, its difference from the
    reference's at the same seed (``pl_fresh_difference``), each with a t-interval over seeds."""
    members = cond.family(conditions, "similarity")
    reference = conditions.loc[conditions["reference"], "variant"].iloc[0]
    by_seed = run_means.pivot_table(index="seed", columns="variant", values="pl_fresh_final")
    rows = []
    for row in members.to_dict("records"):
        variant = row["variant"]
        if variant not in by_seed or not by_seed[variant].notna().any():
            continue
        subject = f"{variant} ({row['shift']})"
        level = mean_interval(by_seed[variant])
        rows.append(_seed_effect("pl_fresh", subject, level, "per seed, final-window mean"))
        if variant != reference and reference in by_seed:
            gap = mean_interval(by_seed[variant] - by_seed[reference])
            method = f"per seed, final-window mean minus {reference}'s"
            rows.append(_seed_effect("pl_fresh_difference", subject, gap, method))
    return rows


def _seed_effect(statistic: str, subject: str, summary: dict, method: str) -> dict:
    return {
        "question": "Q3",
        "statistic": statistic,
        "estimate": summary["mean"],
        "ci_low": summary["ci_low"],
        "ci_high": summary["ci_high"],
        "p": summary["p"],
        "n": summary["n"],
        "unit": "seeds",
        "method": f"{method}; t-interval over seeds",
        "conditions": 1,
        "subject": subject,
    }


def with_within(table: pd.DataFrame, within_table: pd.DataFrame) -> pd.DataFrame:
    """``table`` (one row per variant) with the within-run summaries: ``<statistic>``,
    ``<statistic>_ci_low``/``_ci_high`` for each of :data:`.within.STATISTICS`."""
    out = table.copy()
    for statistic in within.STATISTICS:
        summaries = within_table[
            (within_table["statistic"] == statistic)
            & (within_table["seed"].astype(str) == within.SEED_MEAN)
        ].set_index("variant")
        for column, source in (("", "r"), ("_ci_low", "ci_low"), ("_ci_high", "ci_high")):
            out[f"{statistic}{column}"] = out["variant"].map(summaries[source])
    return out
