"""Entry points of the workflow's open-questions rules: each reads its inputs, computes one
stage and writes its tables (the scripts only pass the ``snakemake`` object's fields)."""

from __future__ import annotations

from collections.abc import Mapping

from ncplasticity.open_questions import answers as answers_mod
from ncplasticity.open_questions import (
    causal,
    duration,
    panel_models,
    pooling,
    predictors,
    readings,
    regularisers,
    within,
)
from ncplasticity.open_questions import conditions as cond
from ncplasticity.open_questions import effects as effects_mod
from ncplasticity.open_questions import panel as panel_mod
from ncplasticity.open_questions.outputs import (  # noqa: F401  (re-exported)
    ANSWER_INPUTS,
    CONDITION_TABLES,
    FIGURE_NAMES,
    MODEL_TABLES,
    TABLE_NAMES,
)
from ncplasticity.tables import read_table
from ncplasticity.tsv import write_table, write_text


def _setup(table_paths, variant_settings: Mapping, analysis_tasks: int):
    """(conditions, the task panel, the runs left out of pooled analyses)."""
    conditions = cond.describe(variant_settings)
    data = panel_mod.load(table_paths, analysis_tasks)
    unknown = sorted(set(data["variant"]) - set(conditions["variant"]))
    if unknown:
        raise ValueError(f"open questions: no settings for variants {unknown}")
    return conditions, data, pooling.exclusions(data, conditions)


def condition_tables(
    table_paths, variant_settings, analysis_tasks: int, final_tasks: int, out: Mapping
) -> None:
    """conditions (facts, means and within-run summaries per variant), exclusions, within_run,
    effects, dose_response, similarity, duration, and the causal estimate's causal,
    dose_checks and dose_tasks tables. Condition means leave degenerate runs out."""
    conditions, data, excluded = _setup(table_paths, variant_settings, analysis_tasks)
    within_table = within.within_run(data)
    degenerate = pooling.degenerate_runs(data)
    means = panel_mod.run_means(data[~data["run"].isin(degenerate)], final_tasks)
    per_condition = effects_mod.with_within(
        effects_mod.condition_means(conditions, means), within_table
    )
    write_table(per_condition, out["conditions"])
    write_table(excluded, out["exclusions"])
    write_table(within_table, out["within_run"])
    write_table(effects_mod.effects(conditions, means, within_table), out["effects"])
    write_table(effects_mod.dose_members(per_condition), out["dose_response"])
    write_table(effects_mod.similarity_members(per_condition), out["similarity"])
    write_table(duration.epoch_effects(data, conditions, excluded), out["duration"])
    write_table(causal.causal_table(data, conditions), out["causal"])
    write_table(causal.dose_checks(data, conditions), out["dose_checks"])
    write_table(causal.dose_tasks(data, conditions), out["dose_tasks"])


def model_table(stage: str, table_paths, variant_settings, analysis_tasks: int, out_path):
    """One model stage (:data:`MODEL_TABLES`): the panel models of NC1, NC1's leads, or the
    predictor tournament over the pooled runs."""
    conditions, data, excluded = _setup(table_paths, variant_settings, analysis_tasks)
    data = panel_mod.with_outcome_steps(data)
    if stage == "panel_model":
        table = panel_models.nc1_models(data, excluded)
    elif stage == "leads":
        table = predictors.leads(data, excluded)
    elif stage == "predictors":
        table = predictors.ranking(pooling.pooled(data, excluded))
    else:
        raise ValueError(f"open questions: unknown model stage {stage!r}; one of {MODEL_TABLES}")
    write_table(table, out_path)


def regulariser_table(table_paths, variant_settings, out_path) -> None:
    """The warm-start regularisers' effects (the paper's third next check)."""
    write_table(regularisers.regulariser_effects(table_paths, variant_settings), out_path)


def answers(inputs: Mapping, out_tsv, out_md, primary=(), reference=None) -> None:
    """The answers table from the analysis tables (``inputs``: :data:`ANSWER_INPUTS`, and
    regularisers when the study ran warm starting); ``primary``: the config's primary
    analyses; ``reference``: the path of a reference study's answers TSV, or None."""
    tables = {name: read_table(inputs[name]) for name in inputs if name != "reference"}
    reference_table = None if reference is None else read_table(reference)
    table = answers_mod.build(tables, primary, reference_table)
    write_table(table, out_tsv)
    write_text(out_md, readings.markdown(table, reference))
