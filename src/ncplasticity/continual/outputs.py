"""The continual outputs by name (light: the workflow imports it when it parses)."""

ANALYSIS_DIR = "results/continual/analysis"
# The tables over every run's table, one rule each (continual_{name}): table name -> its files
# (the TSV, and for the variant summary its Markdown copy).
TABLES = {
    "correlations": (f"{ANALYSIS_DIR}/correlations.tsv",),
    "sweep_correlations": (f"{ANALYSIS_DIR}/sweep_correlations.tsv",),
    "variant_summary": (
        f"{ANALYSIS_DIR}/variant_summary.tsv",
        f"{ANALYSIS_DIR}/variant_summary.md",
    ),
}
TABLE_NAMES = tuple(TABLES)

FIGURE_DIR = "results/continual/figures"
# Figures against task, one per panel set (rule continual_{panels}_figure, figure
# {panels}_over_tasks): outcomes, then the plotted metrics of a metric group.
PANEL_SETS = {
    "collapse": (("online_accuracy",), "nc"),
    "plasticity": (("test_accuracy", "pl_fresh"), "plasticity"),
}
# The first-task sweep's correlations per task, drawn from the table of the same name.
SWEEP_FIGURE = "sweep_correlations"
FIGURE_NAMES = (*(f"{panels}_over_tasks" for panels in PANEL_SETS), SWEEP_FIGURE)
