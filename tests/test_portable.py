"""`portable`: a short portable smoke run gives, exactly, the continual logs and NC metrics
committed under tests/portable_reference/, whatever x86-64 CPU runs it (ncplasticity.portable).

To regenerate the reference after a change that moves the trajectories on purpose:
``NCPLASTICITY_WRITE_PORTABLE_REFERENCE=1 pytest -k portable``."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from slurm.workflow_runs import check_success, scratch_copy, snakemake

from ncplasticity.portable import ENVIRONMENT, environment

REFERENCE = Path(__file__).parent / "portable_reference"
RUNS = ("e1_s1", "mixed_s1")
KINDS = ("logs", "metrics")
# What differs between two runs of the same computation: how long they took.
TIMING_COLUMNS = ("wall_seconds",)


def test_portable_environment_only_when_asked():
    assert environment({}) == {}
    assert environment({"portable": False}) == {}
    assert environment({"portable": True}) == ENVIRONMENT


@pytest.fixture(scope="module")
def portable_run(tmp_path_factory) -> Path:
    workdir = scratch_copy(tmp_path_factory.mktemp("portable"))
    targets = [f"results/continual/{kind}/{run}.tsv" for run in RUNS for kind in KINDS]
    result = snakemake(
        workdir,
        "--cores",
        "2",
        *targets,
        "--configfile",
        "configs/smoke.yaml",
        "tests/portable_reference/config.yaml",
    )
    check_success(result)
    return workdir


def _table(path: Path) -> pd.DataFrame:
    # Read as text: the comparison is of the digits written, exactly.
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False).drop(
        columns=list(TIMING_COLUMNS), errors="ignore"
    )


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("run", RUNS)
def test_portable_run_matches_committed_reference(portable_run, run, kind):
    produced = portable_run / "results" / "continual" / kind / f"{run}.tsv"
    reference = REFERENCE / kind / f"{run}.tsv"
    if os.environ.get("NCPLASTICITY_WRITE_PORTABLE_REFERENCE"):
        reference.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(produced, reference)
    pd.testing.assert_frame_equal(_table(produced), _table(reference), check_exact=True)


def test_portable_jobs_ran_pinned(portable_run):
    """Each job's log starts with its software manifest: the pinned environment reached the
    jobs, and the CPU that ran them is named."""
    for run in RUNS:
        log = (portable_run / "results" / "logs" / "continual_train" / f"{run}.log").read_text()
        assert '"portable": true' in log, log[:2000]
        assert '"cpu": ' in log
