"""The open-questions outputs by name (light: the workflow imports it when it parses)."""

# Tables written by the cheap condition stage, then one job each for the model stages.
CONDITION_TABLES = (
    "conditions",
    "exclusions",
    "within_run",
    "effects",
    "dose_response",
    "similarity",
    "duration",
    "causal",
    "dose_checks",
    "dose_tasks",
)
MODEL_TABLES = ("panel_model", "leads", "predictors")
TABLE_NAMES = (*CONDITION_TABLES, *MODEL_TABLES)
# The tables the answers are read from.
ANSWER_INPUTS = (
    "conditions",
    "exclusions",
    "within_run",
    "panel_model",
    "leads",
    "duration",
    "effects",
    "predictors",
    "causal",
)
# Figure -> the tables it is drawn from (one figure per question).
FIGURE_INPUTS = {
    "within_run": ("within_run",),
    "leads": ("leads", "panel_model"),
    "dose_response": ("dose_response", "dose_tasks"),
    "across_conditions": ("conditions", "effects"),
    "task_similarity": ("conditions", "similarity"),
    "predictors": ("predictors",),
}
FIGURE_NAMES = tuple(FIGURE_INPUTS)
