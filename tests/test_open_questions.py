"""The open-questions analysis (ncplasticity.open_questions) on synthetic run tables with known
answers, its configurations, and the workflow's plan of its outputs (a dry run)."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import yaml
from slurm.workflow_runs import REPO, scratch_copy, snakemake

from ncplasticity.continual.study import SPEC
from ncplasticity.open_questions import answers as answers_mod
from ncplasticity.open_questions import conditions as cond
from ncplasticity.open_questions import (
    duration,
    effects,
    panel,
    panel_models,
    pooling,
    predictors,
    readings,
    run,
    within,
)
from ncplasticity.study import deep_merge, resolve_experiment
from ncplasticity.tables import read_table
from ncplasticity.tsv import write_table

BASE = {
    "dataset": "mnist5k",
    "examples_per_task": 4000,
    "feature_dtype": "float16",
    "interventions": [],
    "network": {"hidden_sizes": [100, 100, 100], "layer_norm": False},
    "num_tasks": 30,
    "optimizer": {"batch_size": 1, "lr": 0.01, "name": "sgd"},
    "probe_size": 1000,
    "scenario": {"fraction": 1.0, "name": "permuted_pixels"},
    "schedule": {"epochs_per_task": 1, "first_task": {"epochs": 1}},
}
OVERRIDES = {
    "plain": {},
    "t0.25": {"interventions": [{"name": "nc_target", "target": 0.25}]},
    "t0.5": {"interventions": [{"name": "nc_target", "target": 0.5}]},
    "t1": {"interventions": [{"name": "nc_target", "target": 1.0}]},
    "epochs_124": {"schedule": {"epochs_per_task": [1, 2, 4]}},
    "l2": {"interventions": [{"name": "l2", "weight_decay": 1e-4}]},
    "sp_task": {"interventions": [{"name": "shrink_perturb", "every": "task"}]},
    "layer_norm": {"network": {"layer_norm": True}},
    "width50": {"network": {"hidden_sizes": [50, 50, 50]}},
    "adam": {"optimizer": {"name": "adam", "lr": 1e-4}},
    "f0.5": {"scenario": {"fraction": 0.5}},
    "f0.25": {"scenario": {"fraction": 0.25}},
    "labels": {"scenario": {"name": "permuted_labels", "fraction": None}},
}
SEEDS = [1, 2, 3, 4, 5]
TASKS = 30


def settings_of(overrides=OVERRIDES):
    out = {}
    for variant, change in overrides.items():
        merged = deep_merge(copy.deepcopy(BASE), change)
        if merged["scenario"].get("fraction") is None:
            merged["scenario"].pop("fraction", None)
        out[variant] = merged
    return out


def make_tables(tmp_path, beta: float, seed: int = 0, variants=None, level_step: float = 0.01):
    """Run tables where PL_i = level (level_step × the variant's index) + 0.05·log(steps
    before task i) + beta·NC1 after task i − 1 + run intercept + noise; NC1 = 0.3 +
    0.05·log(steps) + 0.1·log(nc_target's target / 0.5) + noise (so NC1 shares the duration trend
    whatever beta is; the trace ratio NC1 is the same column); dead_fraction is noise; effective
    rank follows the duration trend plus noise."""
    rng = np.random.default_rng(seed)
    all_settings = settings_of()
    variants = variants or list(all_settings)
    paths = []
    for index, variant in enumerate(variants):
        settings = all_settings[variant]
        target = cond.dose_target(settings)
        dose = 0.0 if np.isnan(target) else np.log(target / 0.5)
        level = level_step * index
        for s in SEEDS:
            per_task = settings["schedule"]["epochs_per_task"]
            epochs = [1] + [
                int(rng.choice(per_task)) if isinstance(per_task, list) else per_task
                for _ in range(TASKS - 1)
            ]
            steps = 4000 * np.array(epochs)
            total = np.cumsum(steps)
            nc1 = 0.3 + 0.05 * np.log(total) + 0.1 * dose + rng.normal(0, 0.02, TASKS)
            before = total - steps
            intercept = rng.normal(0, 0.02)
            pl = np.zeros(TASKS)
            pl[1:] = (
                level
                + 0.05 * np.log(before[1:])
                + beta * nc1[:-1]
                + intercept
                + rng.normal(0, 0.01, TASKS - 1)
            )
            pl[0] = 0.0
            accuracy = 0.9 - pl
            table = pd.DataFrame(
                {
                    "run": f"{variant}_s{s}",
                    "variant": variant,
                    "seed": s,
                    "task": np.arange(TASKS),
                    "epochs": epochs,
                    "steps": steps,
                    "total_steps": total,
                    "online_accuracy": accuracy,
                    "test_accuracy": accuracy,
                    "nc1": nc1,
                    "nc1_trace_ratio": nc1,
                    "degenerate": False,
                    "dead_fraction": rng.uniform(0, 0.1, TASKS),
                    "effective_rank": 50 - 2 * np.log(total) + rng.normal(0, 1.0, TASKS),
                    "pl": pl,
                }
            )
            path = tmp_path / f"{variant}_s{s}.tsv"
            write_table(table, path)
            paths.append(path)
    return paths, {v: all_settings[v] for v in variants}


# --- conditions ---


def test_conditions_come_from_settings():
    table = cond.describe(settings_of()).set_index("variant")
    assert table.loc["plain", "reference"] and table["reference"].sum() == 1
    families = table["families"].str.split(",")
    assert set(cond.family(table.reset_index(), "dose")["variant"]) == {
        "plain",
        "t0.25",
        "t0.5",
        "t1",
    }
    assert families["epochs_124"] == ["duration"]
    assert families["l2"] == ["intervention"] and families["sp_task"] == ["intervention"]
    assert families["layer_norm"] == ["intervention", "architecture"]
    assert families["width50"] == ["architecture"] and families["adam"] == ["architecture"]
    assert families["f0.5"] == ["similarity"] and families["labels"] == ["similarity"]
    # All doses are one held-out group, both permuted-pixel fractions another (parameter
    # values of one change stay together); every other change is its own.
    assert table.loc["t0.25", "group"] == table.loc["t1", "group"]
    assert table.loc["t1", "group"] == "interventions=nc_target"
    assert table.loc["f0.5", "group"] == table.loc["f0.25", "group"] == "scenario.fraction"
    assert len(set(table["group"])) == len(table) - 3
    assert table.loc["t0.25", "target"] == 0.25 and np.isnan(table.loc["plain", "target"])
    # The dial is an intervention like any other, never a dose.
    dial = cond.describe(
        settings_of(OVERRIDES | {"dial": {"interventions": [{"name": "nc_dial"}]}})
    )
    assert dial.set_index("variant").loc["dial", "families"] == "intervention"
    # Names play no part: renaming every variant changes nothing but the names.
    renamed = cond.describe({f"v{i}": s for i, s in enumerate(settings_of().values())})
    assert list(renamed["families"]) == list(table["families"])


# --- the panel models and leads: NC1 before the task, or duration alone ---


def _model_panel(tmp_path, beta, **kwargs):
    paths, settings = make_tables(tmp_path, beta=beta, **kwargs)
    data = panel.with_outcome_steps(panel.load(paths, TASKS))
    conditions = cond.describe(settings)
    return data, conditions, pooling.exclusions(data, conditions)


def test_lead_and_panel_model_find_nc1_before_the_task(tmp_path):
    data, conditions, excluded = _model_panel(tmp_path, beta=0.5)
    leads = predictors.leads(data, excluded).set_index("subset")
    pooled = leads.loc["pooled"]
    # PL_i = … + 0.5·NC1_{i−1}: per tenfold NC1, 0.5·NC1·ln 10 over the range NC1 spans.
    slopes = 0.5 * np.log(10) * data["nc1"].agg(["min", "max"])
    assert 0 < pooled["low"] < slopes["max"] and pooled["high"] > slopes["min"]
    assert pooled["scale"] == "log"
    assert pooled["placebo_low"] < 0 < pooled["placebo_high"]
    assert pooled["n_runs"] == len(conditions) * len(SEEDS) - len(excluded)
    assert pooled["p"] < 1e-6 and 0 < pooled["placebo_p"] <= 1
    assert leads.loc["plain", "n_runs"] == len(SEEDS)
    models = panel_models.nc1_models(data, excluded).set_index(["subset", "timing"])
    lead = models.loc[("pooled", "previous_task")]
    assert lead["ci_low"] > 0 and lead["n_runs"] == pooled["n_runs"]
    assert lead["n_obs"] == pooled["n_runs"] * (TASKS - 2)  # tasks 2…29 have PL_{i−1}
    # The coefficient is statsmodels' OLS on the stated design, errors clustered by run.
    assert models.loc[("plain", "same_task"), "n_runs"] == len(SEEDS)


def test_no_lead_when_pl_follows_steps_only(tmp_path):
    data, conditions, excluded = _model_panel(tmp_path, beta=0.0)
    pooled = predictors.leads(data, excluded).set_index("subset").loc["pooled"]
    assert pooled["low"] < 0 < pooled["high"]
    lead = panel_models.nc1_models(data, excluded).set_index(["subset", "timing"])
    lead = lead.loc[("pooled", "previous_task")]
    assert lead["ci_low"] < 0 < lead["ci_high"]
    # Yet NC1 and PL correlate strongly over the tasks of each run: the shared trend.
    table = within.within_run(data[data["variant"] == "plain"])
    assert within.summary(table, "plain", "r")["ci_low"] > 0.5
    diff = within.summary(table, "plain", "r_diff")
    assert diff["ci_low"] < 0 < diff["ci_high"] and diff["n_seeds"] == len(SEEDS)


def test_confounded_scenarios_and_degenerate_runs_are_analysed_on_their_own(tmp_path):
    overrides = OVERRIDES | {"rand": {"scenario": {"name": "random_labels", "fraction": None}}}
    settings = settings_of(overrides)
    conditions = cond.describe(settings)
    assert conditions.set_index("variant").loc["rand", "confound"].startswith("online accuracy")
    assert conditions.set_index("variant").loc["plain", "confound"] == ""
    rows = []
    for variant in ("plain", "rand"):
        for seed in (1, 2):
            degenerate = [False] * 5 if seed == 1 or variant == "rand" else [False] * 3 + [True] * 2
            rows.append(
                pd.DataFrame(
                    {"run": f"{variant}_s{seed}", "variant": variant, "seed": seed}
                    | {"task": range(5), "degenerate": degenerate}
                )
            )
    data = pd.concat(rows, ignore_index=True)
    excluded = pooling.exclusions(data, conditions).set_index("run")
    assert set(excluded.index) == {"rand_s1", "rand_s2", "plain_s2"}
    assert excluded.loc["plain_s2", "reason"] == "degenerate from task 3"
    assert excluded.loc["rand_s1", "reason"].startswith("random_labels: online accuracy")
    assert list(pooling.pooled(data, excluded.reset_index())["run"].unique()) == ["plain_s1"]
    summary = pooling.summary(excluded.reset_index()).set_index("variant")
    assert summary.loc["rand", "runs"] == 2


def test_an_extra_epoch_is_read_as_a_randomised_treatment(tmp_path):
    paths, settings = make_tables(tmp_path, beta=0.5)
    data = panel.load(paths, TASKS)
    # Each extra epoch on task i adds 0.2 to NC1_i and 0.03 to PL_{i+1}; PL_i (its first
    # epoch) does not depend on task i's epochs.
    data["nc1"] = data["nc1"] + 0.2 * data["epochs"]
    data = data.sort_values(["run", "task"])
    data["pl"] = data["pl"] + 0.03 * data.groupby("run")["epochs"].shift(1).fillna(0)
    conditions = cond.describe(settings)
    table = duration.epoch_effects(data, conditions, pooling.exclusions(data, conditions))
    table = table.set_index("outcome")
    assert list(table["variant"].unique()) == ["epochs_124"]
    nc1 = table.loc["nc1"]
    assert nc1["ci_low"] > 0 and nc1["n"] == len(SEEDS) and nc1["scale"] == "log10"
    assert table.loc["pl", "ci_low"] < 0 < table.loc["pl", "ci_high"]
    assert table.loc["pl_next", "ci_low"] < 0.03 < table.loc["pl_next", "ci_high"]


def test_within_run_statistics_on_a_known_series():
    # Linear trends in steps plus a shared wiggle: differences and steps-partialled values see
    # only the wiggle (r = 1 exactly); with the wiggle reversed in PL, r = −1, while the levels
    # still correlate positively through the shared trend.
    tasks = np.arange(1, 41)
    steps = 4000.0 * tasks
    wiggle = 0.1 * np.sin(tasks)
    rows = pd.DataFrame(
        {"task": tasks, "nc1": 0.05 * tasks + wiggle, "pl": 0.01 * tasks + wiggle}
    ).assign(steps_before=steps)
    values = within.run_statistics(rows)
    assert values["r_diff"] == pytest.approx(1.0) and values["partial_r_steps"] == pytest.approx(
        1.0
    )
    anti = within.run_statistics(rows.assign(pl=0.05 * tasks - wiggle))
    assert anti["r"] > 0.9
    assert anti["r_diff"] == pytest.approx(-1.0) and anti["partial_r_steps"] == pytest.approx(-1.0)
    assert values["n_points"] == 40


# --- condition effects ---


def test_condition_correlation_interval_rests_on_the_conditions():
    x = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    result = effects.condition_correlation(x, 2 * x + np.array([0, 0.01, -0.01, 0, 0.01, 0]))
    assert result["n"] == 6 and result["unit"] == "conditions"
    z = np.arctanh(result["estimate"])
    assert result["ci_low"] == pytest.approx(np.tanh(z - 1.959964 / np.sqrt(3)), abs=1e-6)
    assert np.isnan(effects.condition_correlation(x[:3], x[:3])["ci_low"])


def test_similarity_slope_of_pl_on_fraction(tmp_path):
    paths, settings = make_tables(tmp_path, beta=0.0, level_step=0.0)
    conditions = cond.describe(settings)
    data = panel.load(paths, TASKS)
    # Make PL grow with the fraction of permuted pixels: +0.2 per unit fraction.
    fraction = data["variant"].map(conditions.set_index("variant")["fraction"])
    data["pl"] = data["pl"] + 0.2 * fraction.fillna(0)
    means = panel.run_means(data, 20)
    table = effects.effects(conditions, means, within.within_run(data)).set_index("statistic")
    slope = table.loc["pl_per_fraction"]
    assert slope["ci_low"] > 0 and slope["n"] == len(SEEDS)
    assert list(effects.similarity_members(conditions)["fraction"]) == [0.25, 0.5, 1.0]


def test_shift_conditions_are_read_against_a_fresh_network():
    """Q3 by kind of shift: each scenario condition's pl_fresh level and its paired difference
    from the reference's, per seed, with a t-interval over seeds."""
    overrides = {
        "plain": {},
        "incremental": {"scenario": {"name": "class_incremental", "fraction": None}},
        "drift": {"scenario": {"name": "drifting_pixels", "fraction": None}},
    }
    # Two more one-change variants make plain the reference (the centre of the design).
    conditions = cond.describe(settings_of(overrides | {k: OVERRIDES[k] for k in ("l2", "f0.5")}))
    conditions = conditions[conditions["variant"].isin(list(overrides))]
    shifts = conditions.set_index("variant")["shift"]
    assert shifts["drift"] == "gradual input shift (pixels drift)"
    assert conditions.set_index("variant")["reference"]["plain"]
    assert set(cond.family(conditions, "similarity")["variant"]) == set(overrides)
    rng = np.random.default_rng(0)
    gap = {"plain": 0.02, "incremental": 0.10, "drift": 0.02}
    means = pd.DataFrame(
        [
            {"variant": v, "seed": seed, "pl_fresh_final": gap[v] + 0.01 * rng.standard_normal()}
            for seed in SEEDS
            for v in overrides
        ]
    )
    rows = pd.DataFrame(effects.fresh_gaps(conditions, means)).set_index(["statistic", "subject"])
    level = rows.loc[("pl_fresh", "incremental (growing label space (classes added))")]
    assert level["ci_low"] < 0.10 < level["ci_high"] and level["n"] == len(SEEDS)
    difference = rows.loc[
        ("pl_fresh_difference", "incremental (growing label space (classes added))")
    ]
    assert difference["ci_low"] > 0  # 0.08 more than the reference
    drift = rows.loc[("pl_fresh_difference", "drift (gradual input shift (pixels drift))")]
    assert drift["ci_low"] < 0 < drift["ci_high"]  # no difference
    assert ("pl_fresh_difference", "plain (abrupt input shift (pixels permuted))") not in rows.index
    # Runs without the fresh reference give no rows.
    assert effects.fresh_gaps(conditions, means.assign(pl_fresh_final=np.nan)) == []


# --- the predictor tournament ---


def test_tournament_puts_the_driver_first_beside_the_baselines(tmp_path):
    data, conditions, excluded = _model_panel(tmp_path, beta=0.5)
    table = predictors.ranking(pooling.pooled(data, excluded)).set_index("measure")
    assert {"nc1", "dead_fraction", "effective_rank", "task", "steps", "pl_prev"} <= set(
        table.index
    )
    measures = table[table["kind"] == "measure"]
    assert measures["improvement"].idxmax() == "nc1" and table.loc["nc1", "low"] > 0
    assert table.loc["nc1", "scale"] == "log" and table.loc["nc1", "n_groups"] == len(SEEDS)
    noise = table.loc["dead_fraction"]
    assert noise["low"] < 0 < noise["high"] or noise["improvement"] < 0
    # Paired with NC1 on the same held-out seeds: noise does worse.
    assert noise["minus_nc1_high"] < 0 and table.loc["nc1", "minus_nc1"] == 0
    assert table["rank"].min() == 1


# --- the answers, recomputable from the run tables ---


def _answer_tables(tmp_path, paths, settings):
    out = {name: tmp_path / "oq" / f"{name}.tsv" for name in run.TABLE_NAMES}
    run.condition_tables(paths, settings, TASKS, 20, out)
    for stage in run.MODEL_TABLES:
        run.model_table(stage, paths, settings, TASKS, out[stage])
    return out


def test_answers_are_generated_and_recomputable(tmp_path):
    paths, settings = make_tables(tmp_path, beta=0.5)
    # One run turns degenerate at task 25: left out of the pooled estimates, with a note.
    broken = next(p for p in paths if p.name == "width50_s1.tsv")
    table = read_table(broken)
    table["degenerate"] = table["task"] >= 25
    write_table(table, broken)
    out = _answer_tables(tmp_path, paths, settings)
    answers_tsv, answers_md = tmp_path / "oq/answers.tsv", tmp_path / "oq/answers.md"
    inputs = {name: out[name] for name in run.ANSWER_INPUTS}
    primary = ["lead_nc1", "iv_pl_per_log_nc1", "epoch_effect_pl_next"]
    run.answers(inputs, answers_tsv, answers_md, primary)
    answers = read_table(answers_tsv)
    assert list(answers.columns) == readings.COLUMNS
    questions = set(answers["question"])
    for question in (
        answers_mod.ASSOCIATION,
        answers_mod.LEAD,
        answers_mod.DURATION,
        "Q1b causal (nc_target)",
        "Q1c interventions",
        "Q2 architecture",
        "Q3 task similarity",
        answers_mod.PREDICTORS,
    ):
        assert question in questions, question
    # Only the primary analyses get a verdict; the rest carry a BH q-value.
    roles = answers.set_index("statistic")["role"]
    assert set(answers.loc[answers["role"] == "primary", "statistic"]) == set(primary)
    secondary = answers[answers["role"] == "secondary"]
    assert secondary["q"].notna().all() and (secondary["q"] >= secondary["p"] - 1e-12).all()
    assert not secondary["reading"].str.contains("Primary").any()
    assert roles["r_diff"].iloc[0] == "secondary"
    lead = answers[answers["statistic"] == "lead_nc1"].iloc[0]
    assert lead["subject"] == "pooled" and "NC1 leads PL" in lead["reading"]
    leads = read_table(out["leads"]).set_index("subset")
    assert lead["estimate"] == pytest.approx(leads.loc["pooled", "estimate"])
    # No reading says "predicts" or "reversed"; "leads" only where the lead was read.
    for row in answers.to_dict("records"):
        assert "predicts" not in row["reading"] and "reversed" not in row["reading"], row
        if "leads" in row["reading"]:
            assert row["statistic"] == "lead_nc1" and row["interval_low"] > 0
    # Each intervention, architecture and similarity condition has its own task-to-task link,
    # read off the within-run table's summary row.
    links = answers[answers["statistic"] == "r_diff"].set_index(["question", "subject"])
    within_table = read_table(out["within_run"])
    for question, variant in [
        ("Q1c interventions", "l2"),
        ("Q2 architecture", "width50"),
        ("Q3 task similarity", "labels"),
    ]:
        summary = within.summary(within_table, variant, "r_diff")
        assert links.loc[(question, variant), "estimate"] == pytest.approx(summary["r"])
        assert links.loc[(question, variant), "p"] == pytest.approx(summary["p"])
    # Each reading carries its own numbers.
    for row in answers.to_dict("records"):
        if np.isfinite(row["estimate"]) and row["role"] != "note":
            assert f"{row['estimate']:.3g}" in row["reading"], row
    # The duration experiment's three outcomes, and per-dose contrasts against plain.
    assert {"epoch_effect_nc1", "epoch_effect_pl", "epoch_effect_pl_next"} <= set(roles.index)
    doses = answers[answers["statistic"] == "dose_difference_pl"]
    assert len(doses) == 3 and (doses["n"] == len(SEEDS)).all()
    causal_rows = answers[answers["question"] == "Q1b causal (nc_target)"].set_index("statistic")
    assert "first-stage F" in causal_rows.loc["iv_pl_per_log_nc1", "reading"]
    assert "do not edit" in answers_md.read_text()
    note = answers[answers["statistic"] == "excluded_runs"].set_index("subject")
    assert list(note.index) == ["width50"] and note.loc["width50", "role"] == "note"
    assert "degenerate from task 25" in note.loc["width50", "reading"]
    leads = read_table(out["leads"]).set_index("subset")
    assert leads.loc["pooled", "n_runs"] == len(settings) * len(SEEDS) - 1
    # A primary name that names no row stops the answers with the key named.
    with pytest.raises(ValueError, match="open_questions.primary"):
        run.answers(inputs, answers_tsv, answers_md, ["lead_nc2"])


def test_answers_carry_the_reference_study_reading(tmp_path):
    paths, settings = make_tables(tmp_path, beta=0.5)
    out = _answer_tables(tmp_path, paths, settings)
    inputs = {name: out[name] for name in run.ANSWER_INPUTS}
    quick_tsv, md = tmp_path / "quick.tsv", tmp_path / "quick.md"
    run.answers(inputs, quick_tsv, md, ["lead_nc1"])
    # The reference: the same table with the lead's sign flipped and one row missing.
    reference = read_table(quick_tsv)
    lead = reference["statistic"] == "lead_nc1"
    flipped = reference["interval_low"].where(~lead, -reference["interval_high"])
    reference["interval_high"] = reference["interval_high"].where(~lead, -reference["interval_low"])
    reference["interval_low"] = flipped
    reference = reference[reference["statistic"] != "epoch_effect_pl"]
    ref_path = tmp_path / "reference.tsv"
    write_table(reference, ref_path)
    run.answers(inputs, quick_tsv, md, ["lead_nc1"], ref_path)
    answers = read_table(quick_tsv)
    assert list(answers.columns) == readings.COLUMNS + readings.REFERENCE_COLUMNS
    answers = answers.set_index("statistic")
    assert answers.loc["lead_nc1", "same_reading"] == "no"
    assert answers.loc["iv_pl_per_log_nc1", "same_reading"] == "yes"
    assert pd.isna(answers.loc["epoch_effect_pl", "same_reading"]) or (
        answers.loc["epoch_effect_pl", "same_reading"] == ""
    )
    text = md.read_text()
    assert str(ref_path) in text and "## Readings that hold at both scales" in text
    held = text.split("## Readings that hold at both scales")[1]
    assert "| iv_pl_per_log_nc1 |" in held and "| lead_nc1 |" not in held


def test_figures_draw_from_the_tables(tmp_path):
    from ncplasticity.open_questions import figures

    paths, settings = make_tables(tmp_path, beta=0.5, variants=list(OVERRIDES)[:6])
    out = _answer_tables(tmp_path, paths, settings)
    for name in figures.FIGURES:
        pdf, png = tmp_path / f"{name}.pdf", tmp_path / f"{name}.png"
        figures.draw(name, out, pdf, png)
        assert pdf.stat().st_size > 0 and png.stat().st_size > 0, name


# --- configurations and the plan ---


def _resolved(*names):
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    for name in names:
        config = deep_merge(config, yaml.safe_load((REPO / f"configs/{name}.yaml").read_text()))
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    runs = resolve_experiment(config, schema, SPEC)
    return config, {r.variant: r.settings for r in runs.values()}


def test_configs_hold_every_question():
    config, settings = _resolved("open_questions")
    paper_config, paper_settings = _resolved("open_questions_paper")
    assert list(settings) == list(paper_settings)
    assert len(config["continual"]["seeds"]) >= 5 and len(paper_config["continual"]["seeds"]) == 10
    assert paper_settings["plain"]["dataset"] == "mnist"
    assert paper_settings["plain"]["examples_per_task"] is None
    assert all(s["num_tasks"] == 150 and s["dataset"] == "mnist5k" for s in settings.values())
    table = cond.describe(settings)
    members = {f: set(cond.family(table, f)["variant"]) for f in cond.FAMILIES}
    # The doses: nc_target at 0.5x, 0.7x, 1.4x and 2x plain's median nc1_trace_ratio over tasks
    # 10-149, recomputed from the committed plain table the config names.
    plain = pd.read_csv(REPO / "docs/open_questions_plain_nc1.tsv", sep="\t")
    assert sorted(plain["seed"].unique()) == config["continual"]["seeds"]
    reference = plain.loc[plain["task"] >= 10, "nc1_trace_ratio"].median()
    targets = sorted(cond.family(table, "dose")["target"].dropna())
    assert targets == [round(m * reference, 4) for m in (0.5, 0.7, 1.4, 2.0)]
    assert "nc_dial" not in set(table["interventions"])
    assert members["duration"] == {"plain", "epochs_124"}
    names = set(table.set_index("variant").loc[list(members["intervention"]), "interventions"])
    assert {"l2", "l2_init", "shrink_perturb", "redo", "cbp"} <= names
    assert {"layer_norm", "layer_norm_l2"} <= members["intervention"]
    widths = set(cond.family(table, "architecture")["width"])
    depths = set(cond.family(table, "architecture")["depth"])
    assert {50, 100, 200} <= widths and {1, 3, 5} <= depths
    fractions = set(effects.similarity_members(table)["fraction"])
    assert fractions == {0.1, 0.25, 0.5, 1.0}
    scenarios = set(cond.family(table, "similarity")["scenario"])
    assert {"permuted_labels", "random_labels", "class_pairs"} <= scenarios
    shifts = {"class_incremental", "task_incremental", "drifting_pixels", "recurring"}
    assert shifts <= scenarios
    # The fresh reference wherever the analysis reads pl_fresh: the reference, the doses, Q3.
    read = {*members["similarity"], *members["dose"]}
    assert all(settings[v]["schedule"]["fresh_every"] > 0 for v in read)
    warm = {v for v, o in config["warm_start"]["variants"].items() if o is not None}
    assert {"nc2_reg", "nc3_reg"} <= warm
    # The primary analyses, named before the study runs, are the same at both scales.
    primary = ["iv_pl_per_log_nc1", "lead_nc1", "epoch_effect_pl_next"]
    assert config["open_questions"]["primary"] == paper_config["open_questions"]["primary"]
    assert config["open_questions"]["primary"] == primary


def test_the_reference_study_is_the_quick_one_at_every_digit():
    """configs/open_questions_4000.yaml, laid over the quick study, changes only the examples a
    task (all 4,000 of mnist5k's) and has no reference of its own."""
    config, settings = _resolved("open_questions")
    ref_config, ref_settings = _resolved("open_questions", "open_questions_4000")
    assert list(ref_settings) == list(settings)
    for variant, run_settings in ref_settings.items():
        assert run_settings["examples_per_task"] is None
        assert run_settings | {"examples_per_task": 2000} == settings[variant], variant
    assert ref_config["open_questions"].get("reference") is None
    assert ref_config["continual"]["seeds"] == config["continual"]["seeds"]


def _dose_targets(settings: dict) -> list[float]:
    return sorted(cond.family(cond.describe(settings), "dose")["target"].dropna())


def test_paper_scale_doses_come_from_plain_at_that_scale():
    """The reference study and the cluster study run at 60,000 digits a task, where plain's NC1
    is lower than at 2,000: their doses are 0.5x-2x of plain's there, recomputed from the
    committed table of the reference study's plain runs, and the two studies share them."""
    _, reference = _resolved("open_questions", "open_questions_reference")
    _, paper = _resolved("open_questions_paper")
    plain = pd.read_csv(REPO / "docs/open_questions_plain_nc1_60000.tsv", sep="\t")
    assert sorted(plain["seed"].unique()) == [1, 2, 3, 4, 5]
    median = plain.loc[plain["task"] >= 10, "nc1_trace_ratio"].median()
    targets = [round(m * median, 4) for m in (0.5, 0.7, 1.4, 2.0)]
    assert _dose_targets(reference) == targets == _dose_targets(paper)
    doses = [v for v in reference if v.startswith("nc_target")]
    assert all(reference[v] == paper[v] for v in doses)
    assert all(reference[v]["dataset"] == "mnist" for v in doses)


@pytest.fixture(scope="module")
def repo_copy(tmp_path_factory):
    return scratch_copy(tmp_path_factory.mktemp("repo"))


def _planned_rules(result) -> set[str]:
    stats = result.stdout.split("Job stats:")[1].split("total")[0]
    return {line.split()[0] for line in stats.splitlines()[3:] if line.strip()}


@pytest.mark.parametrize("name", ["open_questions", "open_questions_paper"])
def test_open_questions_configs_plan_their_outputs(repo_copy, name):
    result = snakemake(repo_copy, "-n", "--configfile", f"configs/{name}.yaml")
    assert result.returncode == 0, result.stdout[-4000:]
    planned = _planned_rules(result)
    expected = {
        "open_questions_tables",
        *(f"open_questions_{stage}" for stage in run.MODEL_TABLES),
        "open_questions_answers",
        "open_questions_regularisers",  # both run warm starting too
        *(f"open_questions_figure_{name}" for name in run.FIGURE_NAMES),
    }
    assert expected <= planned, expected - planned


def test_the_default_config_plans_no_open_questions(repo_copy):
    default = snakemake(repo_copy, "-n")
    assert default.returncode == 0 and not any(
        name.startswith("open_questions") for name in _planned_rules(default)
    )


# --- the third next check: warm-start regularisers aimed at an NC metric ---


def test_regulariser_effects_are_paired_by_seed_and_read_into_answers(tmp_path):
    # Per seed, nc2_reg fine-tunes 0.02 higher than plain (seed offsets cancel in the pairs)
    # and raises nc2_etf_weights by 0.7; shrink & perturb acts on no NC metric: no row.
    paths, variants = [], {}
    for variant, accuracy, nc2, interventions in (
        ("plain", 0.90, 0.4, []),
        ("push_etf", 0.92, 1.1, [{"name": "nc2_reg", "strength": -1.0}]),
        ("sp", 0.95, 0.4, [{"name": "shrink_perturb", "shrink": 0.6, "perturb": 0.01}]),
    ):
        variants[variant] = {"interventions": interventions}
        for seed in (7, 8, 9):
            table = pd.DataFrame(
                {
                    "variant": variant,
                    "seed": seed,
                    "epoch": [2, 4, 6],
                    "finetune_test_accuracy": accuracy + 0.01 * seed + np.array([0, 0.01, 0.03]),
                    "nc2_etf_weights": nc2 + 0.05 * seed,
                }
            )
            paths.append(tmp_path / f"{variant}_s{seed}.tsv")
            write_table(table, paths[-1])
    run.regulariser_table(paths, variants, tmp_path / "regularisers.tsv")
    table = read_table(tmp_path / "regularisers.tsv").set_index("quantity")
    assert set(table["variant"]) == {"push_etf"} and set(table["reference"]) == {"plain"}
    assert table.loc["finetune_test_accuracy", "estimate"] == pytest.approx(0.02)
    assert table.loc["nc2_etf_weights", "estimate"] == pytest.approx(0.7)
    assert table.loc["nc2_etf_weights", "n_seeds"] == 3
    assert table.loc["nc2_etf_weights", "interventions"] == "nc2_reg(strength=-1.0)"
    rows = answers_mod._regulariser_rows(table.reset_index())
    assert [row["statistic"] for row in rows] == [
        "finetune_test_accuracy_difference",
        "nc2_etf_weights_difference",
    ]
    assert all(row["question"] == "Next check 3 NC regularisers" for row in rows)
    reading = readings.finish(rows, []).iloc[0]["reading"]
    assert "nc2_reg(strength=-1.0): change of the fine-tuned test accuracy" in reading
    assert "0.02" in reading and "3 seeds" in reading and "secondary, q = " in reading
