"""The warm-start outputs by name (light: the workflow imports it when it parses)."""

from typing import NamedTuple

ANALYSIS_DIR = "results/warm_start/analysis"
# The analysis tables over every run's table: sliding-window correlations, and the variant
# summary (a TSV and its Markdown copy).
CORRELATIONS = f"{ANALYSIS_DIR}/correlations.tsv"
VARIANT_SUMMARY_TSV = f"{ANALYSIS_DIR}/variant_summary.tsv"
VARIANT_SUMMARY_MD = f"{ANALYSIS_DIR}/variant_summary.md"
TABLES = (CORRELATIONS, VARIANT_SUMMARY_TSV, VARIANT_SUMMARY_MD)


class Figure(NamedTuple):
    # What it is drawn from: "tables" (every run's table), "warmup_logs" (every warm-up's
    # log) or "correlations" (CORRELATIONS).
    inputs: str
    # Its group in the report: the warm-up itself, or fine-tuning its checkpoints.
    subcategory: str


FIGURES = {
    "nc_metrics": Figure("tables", "Warm-up"),
    "finetune_accuracy": Figure("tables", "Fine-tuning and NC"),
    "warmup_accuracy": Figure("warmup_logs", "Warm-up"),
    "sliding_correlation": Figure("correlations", "Fine-tuning and NC"),
}
FIGURE_NAMES = tuple(FIGURES)
FIGURE_DIR = "results/warm_start/figures"
