"""`snakemake --report` on the session's smoke run (tests/slurm/workflow_runs.py): the
introduction says what ran, the configuration, tables, figures and per-run curves are in it by
category, and a report built with another configuration than the results' says so."""

from __future__ import annotations

import base64
import json
import re

import pytest
from slurm.workflow_runs import SMOKE_CONFIG, check_success, local_smoke_run, snakemake

from ncplasticity.report import config_differences


def _report_variable(page: str, name: str):
    """A JSON variable of the report's page (``var <name> = ...;``; the libraries embedded
    before it may use the same name for other things)."""
    for value in re.findall(rf"^\s*var {name} = (.*);$", page, re.MULTILINE):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            continue
    raise AssertionError(f"no JSON `var {name}` in the report")


def _embedded(result: dict) -> str:
    """The text of a file embedded in the report (a base64 data URI)."""
    return base64.b64decode(result["data_uri"].split(",", 1)[1]).decode()


def _text(html: str) -> str:
    """An HTML fragment's text: tags dropped, whitespace runs as one space."""
    return " ".join(re.sub(r"<[^>]+>", "", html).split())


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    return local_smoke_run(tmp_path_factory)


def _build(workdir, path, *args):
    check_success(snakemake(workdir, "--report", str(path), "--configfile", SMOKE_CONFIG, *args))
    return path.read_text(encoding="utf-8")


@pytest.mark.slow
def test_report_has_the_introduction_config_tables_figures_and_runs(smoke_run, tmp_path):
    page = _build(smoke_run, tmp_path / "report.html")
    introduction = _text(_report_variable(page, "workflow_desc"))
    assert "Can We Understand Plasticity Through Neural Collapse?" in introduction
    assert "Configuration files named: config.yaml, configs/smoke.yaml" in introduction
    assert "Continual learning on mnist5k: 8 runs = 4 variants × 2 seeds" in introduction
    assert "Warm starting on mnist5k: 7 runs = 7 variants × 1 seed." in introduction
    assert "Configuration mismatch" not in introduction

    categories = _report_variable(page, "categories")
    results = _report_variable(page, "results")
    assert set(categories) == {
        "Configuration",
        "Continual learning",
        "Warm starting",
        "Paper",
        "Per-run curves",
    }
    assert categories["Configuration"]["Other"] == [
        "results/config_used.html",
        "results/config_used.yaml",
    ]
    config_page = _embedded(results["results/config_used.html"])
    assert "examples_per_task: 4000" in config_page  # the smoke configuration, in full
    continual = categories["Continual learning"]
    assert set(continual) == {"Collapse and plasticity over tasks", "First-task sweep"}
    assert (
        "results/continual/analysis/correlations.html"
        in continual["Collapse and plasticity over tasks"]
    )
    assert set(categories["Warm starting"]) == {"Warm-up", "Fine-tuning and NC"}
    assert "results/paper/reproduction.html" in categories["Paper"]["Claims"]
    for path in (p for subcats in categories.values() for ps in subcats.values() for p in ps):
        assert results[path]["caption"].strip(), f"{path} has no caption"
        if path.endswith(".html"):
            assert results[path]["mime_type"] == "text/html"

    per_run = categories["Per-run curves"]
    assert sorted(per_run["Continual learning"]) == [
        f"results/continual/figures/runs/{variant}_s{seed}.png"
        for variant in ("e1", "mixed", "nc0.28", "pairs")
        for seed in (1, 2)
    ]
    assert len(per_run["Warm starting"]) == 7
    labels = results["results/continual/figures/runs/nc0.28_s2.png"]["labels"]
    assert labels == {"variant": "nc0.28", "seed": 2}
    assert results["results/warm_start/figures/runs/shrink_perturb_s7.png"]["mime_type"] == (
        "image/png"
    )


@pytest.mark.slow
def test_report_built_with_another_config_names_the_differing_keys(smoke_run, tmp_path):
    page = _build(
        smoke_run,
        tmp_path / "report.html",
        "--config",
        "warm_start={lr: 0.02}",
        "continual={variants: {e1: {optimizer: {lr: 0.5}}}}",
    )
    introduction = _text(_report_variable(page, "workflow_desc"))
    assert "Configuration mismatch" in introduction
    assert "warm_start.lr: results 0.01, this report 0.02" in introduction
    assert "continual.variants.e1.optimizer: results (absent), this report {lr: 0.5}" in (
        introduction
    )


def test_config_differences_name_changed_added_and_removed_keys():
    recorded = {"a": 1, "b": {"c": [1, 2], "d": "x"}, "gone": None}
    current = {"a": 1, "b": {"c": [1, 3], "e": 0.5}, "new": {"f": 1}}
    assert config_differences(recorded, current) == [
        {"key": "b.c", "recorded": "[1, 2]", "current": "[1, 3]"},
        {"key": "b.d", "recorded": "x", "current": "(absent)"},
        {"key": "b.e", "recorded": "(absent)", "current": "0.5"},
        {"key": "gone", "recorded": "null", "current": "(absent)"},
        {"key": "new", "recorded": "(absent)", "current": "{f: 1}"},
    ]
