"""Entry points of the workflow's open-questions rules: each reads its inputs, computes one
stage and writes its tables (the scripts only pass the ``snakemake`` object's fields)."""

from __future__ import annotations

from collections.abc import Mapping

from ncplasticity.open_questions import answers as answers_mod
from ncplasticity.open_questions import (
    causal,
    mixed_models,
    panel,
    predictors,
    regularisers,
    within,
)
from ncplasticity.open_questions import conditions as cond
from ncplasticity.open_questions import effects as effects_mod
from ncplasticity.open_questions.outputs import (  # noqa: F401  (re-exported)
    ANSWER_INPUTS,
    CONDITION_TABLES,
    FIGURE_NAMES,
    MODEL_TABLES,
    TABLE_NAMES,
)
from ncplasticity.tables import read_table
from ncplasticity.tsv import write_table, write_text

# The subsets of variants (question families) the NC1 mixed model is also fitted on.
MIXED_SUBSETS = ("duration",)


def _setup(table_paths, variant_settings: Mapping, analysis_tasks: int):
    conditions = cond.describe(variant_settings)
    data = panel.load(table_paths, analysis_tasks)
    unknown = sorted(set(data["variant"]) - set(conditions["variant"]))
    if unknown:
        raise ValueError(f"open questions: no settings for variants {unknown}")
    return conditions, data


def condition_tables(
    table_paths, variant_settings, analysis_tasks: int, final_tasks: int, out: Mapping
) -> None:
    """conditions (facts, means and within-run summaries per variant), within_run, effects,
    dose_response, similarity, and the causal estimate's causal, dose_checks and dose_tasks
    tables."""
    conditions, data = _setup(table_paths, variant_settings, analysis_tasks)
    within_table = within.within_run(data)
    means = panel.run_means(data, final_tasks)
    per_condition = effects_mod.with_within(
        effects_mod.condition_means(conditions, means), within_table
    )
    write_table(per_condition, out["conditions"])
    write_table(within_table, out["within_run"])
    write_table(effects_mod.effects(conditions, means, within_table), out["effects"])
    dose = effects_mod.dose_members(per_condition)
    write_table(dose, out["dose_response"])
    write_table(effects_mod.similarity_members(per_condition), out["similarity"])
    write_table(causal.causal_table(data, conditions), out["causal"])
    write_table(causal.dose_checks(data, conditions), out["dose_checks"])
    write_table(causal.dose_tasks(data, conditions), out["dose_tasks"])


def mixed_model(table_paths, variant_settings, analysis_tasks: int, out_path) -> None:
    conditions, data = _setup(table_paths, variant_settings, analysis_tasks)
    subsets = {
        name: list(cond.family(conditions, name)["variant"])
        for name in MIXED_SUBSETS
        if len(cond.family(conditions, name)) > 1
    }
    write_table(mixed_models.nc1_models(data, subsets), out_path)


def predictor_ranking(table_paths, variant_settings, analysis_tasks: int, out_path) -> None:
    conditions, data = _setup(table_paths, variant_settings, analysis_tasks)
    write_table(predictors.ranking(data, conditions), out_path)


def regulariser_table(table_paths, variant_settings, out_path) -> None:
    """The warm-start regularisers' effects (the paper's third next check)."""
    write_table(regularisers.regulariser_effects(table_paths, variant_settings), out_path)


def answers(inputs: Mapping, out_tsv, out_md) -> None:
    """The answers table from the analysis tables (``inputs``: conditions, within_run,
    mixed_model, effects, predictors, and regularisers when the study ran warm starting)."""
    tables = {name: read_table(inputs[name]) for name in inputs}
    table = answers_mod.build(
        tables["conditions"],
        tables["within_run"],
        tables["mixed_model"],
        tables["effects"],
        tables["predictors"],
        tables["causal"],
        tables.get("regularisers"),
    )
    write_table(table, out_tsv)
    formula = mixed_models.formula("np.log10(NC1)", 2)
    write_text(out_md, answers_mod.markdown(table, formula))
