"""What `snakemake --report` shows beyond the experiments' own figures: the introduction page's
context (what ran, and whether the results were made with the configuration the report is
built with), the configuration record, and tables rendered as HTML.

The report is built from the configuration of the `snakemake --report` command, while the
results were made by an earlier run: the run records its resolved configuration
(:func:`write_config_record`) and the report compares it with its own
(:func:`config_differences`), so a report of other settings says so instead of mislabelling.
"""

from __future__ import annotations

import html
import os
from collections.abc import Mapping

import yaml

from ncplasticity.tables import read_table
from ncplasticity.tsv import write_text

# The experiments' names in the report: its categories and the introduction.
EXPERIMENT_TITLES = {"continual": "Continual learning", "warm_start": "Warm starting"}
# Shown for a key that one of the two configurations lacks.
ABSENT = "(absent)"


def normalized(config: Mapping) -> dict:
    """``config`` as it reads back from YAML (tuples as lists, keys as written)."""
    return yaml.safe_load(yaml.safe_dump(dict(config), sort_keys=False))


def write_config_record(
    config: Mapping, yaml_path: str | os.PathLike, html_path: str | os.PathLike
) -> None:
    """The resolved configuration a run used, as YAML (keys in the configuration's order) and
    as an HTML page of that YAML (the report shows HTML, not YAML)."""
    text = yaml.safe_dump(normalized(config), sort_keys=False)
    write_text(yaml_path, text)
    source = f"<p>From <code>{html.escape(str(yaml_path))}</code></p>"
    page = _page("The resolved configuration of the run", f"{source}<pre>{html.escape(text)}</pre>")
    write_text(html_path, page)


def read_config_record(path: str | os.PathLike) -> dict | None:
    """The recorded configuration, or None when no run has recorded one yet."""
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as file:
        return yaml.safe_load(file) or {}


def config_differences(recorded: Mapping, current: Mapping, prefix: str = "") -> list[dict]:
    """Every dotted key whose value differs between two configurations (mappings compared key
    by key, anything else as a whole), with both values as YAML text (``ABSENT`` where a
    configuration lacks the key)."""
    differences = []
    for key in [*recorded, *(key for key in current if key not in recorded)]:
        name = f"{prefix}{key}"
        old, new = recorded.get(key, ABSENT), current.get(key, ABSENT)
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            differences += config_differences(old, new, f"{name}.")
        elif old != new:
            differences.append({"key": name, "recorded": _text(old), "current": _text(new)})
    return differences


def _text(value) -> str:
    if value is ABSENT:
        return ABSENT
    text = yaml.safe_dump(value, default_flow_style=True, width=1000)
    return text.strip().removesuffix("...").strip()


def study_summary(experiment: str, runs) -> dict:
    """An experiment's runs (``ncplasticity.study.Run``) as the introduction lists them."""
    runs = list(runs)
    return {
        "name": experiment,
        "title": EXPERIMENT_TITLES.get(experiment, experiment),
        "runs": len(runs),
        "variants": list(dict.fromkeys(run.variant for run in runs)),
        "seeds": sorted({run.seed for run in runs}),
        "datasets": sorted({run.settings["dataset"] for run in runs}),
    }


def report_context(
    config: Mapping, record_path: str | os.PathLike, config_files, runs_by_experiment: Mapping
) -> dict:
    """What workflow/report/workflow.rst shows: the configuration files named (in the order they
    are laid over each other), the configured experiments' runs, and the differences of the
    recorded configuration from ``config``."""
    recorded = read_config_record(record_path)
    current = normalized(config)
    return {
        "config_files": [_shown_path(path) for path in config_files],
        "experiments": [
            study_summary(experiment, runs_by_experiment[experiment].values())
            for experiment in config["experiments"]
        ],
        "open_questions": config.get("open_questions") is not None,
        "differences": [] if recorded is None else config_differences(recorded, current),
    }


def _shown_path(path) -> str:
    """``path`` relative to the working directory when it lies inside it."""
    relative = os.path.relpath(path)
    return str(path) if relative.startswith("..") else relative


def run_labels(runs: Mapping):
    """The labels of a run's figure in the report (``runs``: run id -> Run), as a function of
    the wildcards Snakemake matched (``run``). No run id: the report makes a later label with
    two values, each on half the figures (two seeds), a toggle within the rows of the other
    labels, which a run id would make unique (and the page would fail on a missing pair)."""
    return lambda wildcards: {
        "variant": runs[wildcards.run].variant,
        "seed": runs[wildcards.run].seed,
    }


def table_page(tsv_path: str) -> str:
    """Where a TSV table's HTML page goes: beside it."""
    return tsv_path.removesuffix(".tsv") + ".html"


def table_html(tsv_path: str | os.PathLike, html_path: str | os.PathLike, title: str) -> None:
    """A TSV table as a self-contained HTML page (the report shows HTML, not TSV)."""
    table = read_table(tsv_path)
    body = table.to_html(index=False, na_rep="", float_format=lambda value: f"{value:.4g}")
    source = f"<p>{len(table)} rows, from <code>{html.escape(str(tsv_path))}</code></p>"
    write_text(html_path, _page(title, source + body))


def _page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h2>{html.escape(title)}</h2>{body}</body></html>\n"
    )


_STYLE = (
    "body{font-family:sans-serif;font-size:13px;margin:1em}"
    "pre{background:#f4f4f4;padding:1em}"
    "table{border-collapse:collapse}"
    "th,td{border:1px solid #ccc;padding:2px 6px;text-align:left;vertical-align:top}"
    "td{max-width:40em}"
    "th{background:#eee;position:sticky;top:0;white-space:nowrap}"
    "tr:nth-child(even){background:#f8f8f8}"
)
