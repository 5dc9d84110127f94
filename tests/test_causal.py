"""The nc_target doses' causal estimate on simulated panels whose truth is known: 2SLS finds the
effect of NC1 on PL where a confounder fools a plain regression, covers a true zero, says when
the instrument is weak, leaves degenerate runs out with their reason, and the manipulation
checks read achieved against target."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from ncplasticity.open_questions import causal, readings
from ncplasticity.open_questions import conditions as cond

BASE = {
    "dataset": "mnist5k",
    "examples_per_task": 2000,
    "interventions": [],
    "network": {"hidden_sizes": [100, 100, 100], "layer_norm": False},
    "num_tasks": 60,
    "optimizer": {"batch_size": 1, "lr": 0.01, "name": "sgd"},
    "probe_size": 1000,
    "scenario": {"fraction": 1.0, "name": "permuted_pixels"},
    "schedule": {"epochs_per_task": 1, "first_task": {"epochs": 1}},
}
NATURAL = 0.5  # the reference's NC1
DOSES = (0.5, 0.7, 1.4, 2.0)
SEEDS = (1, 2, 3, 4, 5)


def _conditions():
    variants = {"plain": copy.deepcopy(BASE)}
    for dose in DOSES:
        settings = copy.deepcopy(BASE)
        settings["interventions"] = [{"name": "nc_target", "target": dose * NATURAL}]
        variants[f"target{dose}"] = settings
    # Two one-change variants more, so that plain is the centre of the design.
    variants["l2"] = copy.deepcopy(BASE) | {"interventions": [{"name": "l2"}]}
    variants["f0.5"] = copy.deepcopy(BASE) | {
        "scenario": {"name": "permuted_pixels", "fraction": 0.5}
    }
    return cond.describe(variants)


def simulate(beta, rng, pull=1.0, tasks=60):
    """Task rows of every dose and plain run: log NC1 = log(natural) + pull·log(τ/natural) +
    u_run + a run's persistent noise + a trend in steps; PL = β·log NC1 + γ·steps − 2·u_run +
    noise. u_run (unobserved) moves both: a regression of PL on NC1 is confounded, the target
    is not (it is assigned)."""
    rows = []
    conditions = _conditions()
    for variant, target in conditions.set_index("variant")["target"].items():
        if variant in ("l2", "f0.5"):
            continue
        for seed in SEEDS:
            u = rng.normal(0, 0.2)
            steps_m = np.arange(tasks) * 0.002
            offset = 0.0 if np.isnan(target) else pull * np.log(target / NATURAL)
            noise = np.zeros(tasks)
            for t in range(1, tasks):  # AR(1): persistent within a run
                noise[t] = 0.7 * noise[t - 1] + rng.normal(0, 0.05)
            log_nc1 = np.log(NATURAL) + offset + u + noise + 2.0 * steps_m
            pl = beta * log_nc1 + 0.5 * steps_m - 2.0 * u + rng.normal(0, 0.02, tasks)
            for t in range(tasks):
                rows.append(
                    {
                        "run": f"{variant}_s{seed}",
                        "variant": variant,
                        "seed": seed,
                        "task": t,
                        "steps_m": steps_m[t],
                        "nc1_trace_ratio": np.exp(log_nc1[t]),
                        "pl": pl[t],
                        "pl_fresh": pl[t] + 0.1 if t % 10 == 0 else np.nan,
                        "online_accuracy": 0.9 - 0.01 * offset,
                        "degenerate": False,
                        "weight_norm": 10 + offset + rng.normal(0, 0.1),
                    }
                )
    return pd.DataFrame(rows), conditions


def _estimate(table, statistic):
    return table.set_index("statistic").loc[statistic]


def test_2sls_finds_the_effect_a_confounded_regression_misses():
    panel, conditions = simulate(beta=-0.5, rng=np.random.default_rng(0))
    table = causal.causal_table(panel, conditions)
    first = _estimate(table, "first_stage_log_nc1_per_log_target")
    assert first["first_stage_f"] > 10 and first["ci_low"] < 1 < first["ci_high"]
    iv = _estimate(table, "iv_pl_per_log_nc1")
    assert iv["ci_low"] < -0.5 < iv["ci_high"] and iv["ci_high"] < 0
    assert iv["n"] == len(DOSES) * len(SEEDS) and iv["unit"] == "runs"
    # The confounder fools a plain regression of PL on log NC1 over the same rows.
    data, _ = causal.dose_data(panel, conditions)
    naive = np.polyfit(data["log_nc1"], data["pl"], 1)[0]
    assert naive < -0.6 and abs(naive + 0.5) > abs(iv["estimate"] + 0.5)
    reduced = _estimate(table, "reduced_form_pl_per_log_target")
    assert reduced["estimate"] == pytest.approx(iv["estimate"] * first["estimate"], rel=0.05)
    # pl_fresh (every 10th task) gets its own estimate.
    assert "iv_pl_fresh_per_log_nc1" in set(table["statistic"])


def test_2sls_covers_a_true_zero_and_a_true_effect_in_most_studies():
    rng = np.random.default_rng(1)
    covered = {0.0: 0, -0.5: 0}
    studies = 25
    for beta in covered:
        for _ in range(studies):
            panel, conditions = simulate(beta, rng, tasks=40)
            iv = _estimate(causal.causal_table(panel, conditions), "iv_pl_per_log_nc1")
            covered[beta] += iv["ci_low"] <= beta <= iv["ci_high"]
    assert all(count >= 0.85 * studies for count in covered.values()), covered


def _primary_reading(table) -> str:
    """The 2SLS row's reading in an answers table where it is the primary analysis."""
    answers = readings.finish(causal.answer_rows(table), ["iv_pl_per_log_nc1"])
    return answers.set_index("statistic").loc["iv_pl_per_log_nc1", "reading"]


def test_a_target_that_does_not_move_nc1_is_a_weak_instrument():
    panel, conditions = simulate(beta=-0.1, rng=np.random.default_rng(2), pull=0.01)
    table = causal.causal_table(panel, conditions)
    assert _estimate(table, "iv_pl_per_log_nc1")["first_stage_f"] < 10
    reading = _primary_reading(table)
    assert "the instrument is weak" in reading and "causes" not in reading


def test_a_dose_that_moves_other_measures_is_no_clean_instrument():
    panel, conditions = simulate(beta=-0.5, rng=np.random.default_rng(5))
    reading = _primary_reading(causal.causal_table(panel, conditions))
    # The simulated doses move weight_norm by log(τ / natural): the reading says so.
    assert "also move weight_norm" in reading and "does not isolate NC1" in reading
    assert "causes" not in reading and "no causal effect of NC1 can be read" in reading


def test_degenerate_runs_are_left_out_with_their_reason():
    panel, conditions = simulate(beta=-0.1, rng=np.random.default_rng(3))
    broken = (panel["run"] == "target2.0_s3") & (panel["task"] >= 25)
    panel.loc[broken, "degenerate"] = True
    table = causal.causal_table(panel, conditions)
    iv = _estimate(table, "iv_pl_per_log_nc1")
    assert iv["n"] == len(DOSES) * len(SEEDS) - 1
    assert iv["excluded"] == "target2.0_s3: degenerate from task 25"
    # ... and is still reported in the checks.
    checks = causal.dose_checks(panel, conditions).set_index(["variant", "seed"])
    assert checks.loc[("target2.0", 3), "degenerate"]


def test_doses_left_without_two_sound_doses_give_no_estimate_and_say_why():
    """Where the doses break the network (every run of all doses but one degenerate), the
    primary 2SLS row stays in the answers as a note naming what is left and the runs left out,
    with no estimate and no verdict."""
    panel, conditions = simulate(beta=-0.1, rng=np.random.default_rng(6))
    broken = panel["variant"].isin(["target0.5", "target1.4", "target2.0"])
    panel.loc[broken, "degenerate"] = True
    table = causal.causal_table(panel, conditions)
    iv = _estimate(table, "iv_pl_per_log_nc1")
    assert np.isnan(iv["estimate"]) and iv["n"] == len(SEEDS)
    assert iv["method"].startswith("not estimable: 1 dose(s) and 5 run(s)")
    answers = readings.finish(causal.answer_rows(table), ["iv_pl_per_log_nc1"])
    row = answers.set_index("statistic").loc["iv_pl_per_log_nc1"]
    assert row["role"] == readings.NOTE and np.isnan(row["estimate"])
    assert (
        "not estimable" in row["reading"]
        and "target2.0_s1: degenerate from task 10" in row["reading"]
    )
    assert "causes" not in row["reading"]


def test_side_effects_and_checks_compare_each_dose_with_the_reference():
    panel, conditions = simulate(beta=-0.1, rng=np.random.default_rng(4))
    table = causal.causal_table(panel, conditions)
    side = table[table["statistic"] == "side_effect_weight_norm"].set_index("subject")
    # weight_norm = 10 + log(τ / natural) + noise: 2x's side effect is log 2.
    assert side.loc["target2.0 (target 1)", "estimate"] == pytest.approx(np.log(2), abs=0.05)
    checks = causal.dose_checks(panel, conditions)
    dosed = checks[checks["target"].notna()]
    for _, rows in dosed.groupby("seed"):  # the run effect u can swap neighbouring doses
        achieved = rows.sort_values("target")["achieved"].to_numpy()
        assert rows["doses_ordered_at_seed"].iloc[0] == bool((np.diff(achieved) > 0).all())
    late = panel[(panel["run"] == "target0.5_s1") & (panel["task"] >= causal.FIRST_TASK)]
    check = dosed.set_index(["variant", "seed"]).loc[("target0.5", 1)]
    assert check["achieved"] == late["nc1_trace_ratio"].median()
    assert check["achieved_over_target"] == check["achieved"] / 0.25
    assert check["early_accuracy_over_reference"] == pytest.approx((0.9 - 0.01 * np.log(0.5)) / 0.9)
    tasks = causal.dose_tasks(panel, conditions)
    assert set(tasks["variant"]) == {"plain", *(f"target{d}" for d in DOSES)}
    assert (tasks["n_seeds"] == len(SEEDS)).all()
