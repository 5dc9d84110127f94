"""Recovering from a damaged output that Snakemake would not rebuild by itself, through the
real Snakemake CLI. (A killed Snakemake's lock and a second instance on the same directory are
tested with the killed training job in test_workflow.)"""

from __future__ import annotations

import shutil

import pytest
from slurm.workflow_runs import SMOKE_CONFIG, check_success, snakemake

pytestmark = pytest.mark.slow


def test_a_truncated_feature_file_names_the_command_that_rebuilds_it(smoke_run, tmp_path):
    workdir = tmp_path / "repo"
    shutil.copytree(smoke_run, workdir, symlinks=True)
    features = "results/continual/features/e1_s1.h5"
    metrics = "results/continual/metrics/e1_s1.tsv"
    data = (workdir / features).read_bytes()
    (workdir / features).write_bytes(data[: len(data) // 2])  # a copy cut short, say
    (workdir / metrics).unlink()
    config = ("--cores", "1", "--configfile", SMOKE_CONFIG)

    failed = snakemake(workdir, metrics, *config)
    assert failed.returncode != 0
    command = f"snakemake --force {features}"
    # The profile prints the failed job's log: the cause and the way out, on the console.
    assert f"Rebuild it with `{command}`" in failed.stdout, failed.stdout[-3000:]
    assert (workdir / features).exists(), "the damaged file is evidence: left in place"

    check_success(snakemake(workdir, *command.split()[1:], *config))
    check_success(snakemake(workdir, metrics, *config))
    assert (workdir / metrics).stat().st_size > 0
