"""Recovering from what goes wrong around a run, through the real Snakemake CLI: a damaged
output that Snakemake would not rebuild by itself, a lock left by a killed Snakemake, and a
second instance on the same directory."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
import yaml
from slurm.workflow_runs import (
    SMOKE_CONFIG,
    check_success,
    scratch_copy,
    snakemake,
)

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


def test_a_second_instance_and_a_killed_one_leave_work_intact(smoke_run, tmp_path):
    """A second Snakemake on a directory in use stops at once; a SIGKILLed one leaves its
    lock, which `--unlock` removes, and the rerun resumes the killed training job."""
    workdir = scratch_copy(tmp_path / "repo")
    shutil.copytree(smoke_run / "results" / "data", workdir / "results" / "data")
    config = yaml.safe_load((workdir / SMOKE_CONFIG).read_text())
    config["continual"]["num_tasks"] = config["continual"]["analysis_tasks"] = 40
    (workdir / "long.yaml").write_text(yaml.safe_dump(config))
    target = "results/continual/features/e1_s1.h5"
    args = (target, "--cores", "1", "--configfile", "long.yaml")
    first = subprocess.Popen(
        [sys.executable, "-m", "snakemake", *args],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    state = workdir / "results/continual/partial/e1_s1/state.pt"
    deadline = time.monotonic() + 300
    while not state.exists():
        assert first.poll() is None, first.stdout.read()[-3000:]
        assert time.monotonic() < deadline, f"no {state} within 300 s"
        time.sleep(0.05)

    second = snakemake(workdir, *args)
    assert second.returncode != 0
    assert "Directory cannot be locked" in second.stdout, second.stdout[-3000:]
    assert first.poll() is None, "the second instance disturbed the first"

    os.killpg(first.pid, signal.SIGKILL)  # no clean-up: the lock stays
    first.communicate(timeout=60)
    locked = snakemake(workdir, *args)
    assert locked.returncode != 0 and "--unlock" in locked.stdout, locked.stdout[-3000:]
    assert state.exists(), "the killed job's state was lost"

    check_success(snakemake(workdir, "--unlock", "--configfile", "long.yaml"))
    rerun = snakemake(workdir, *args)
    check_success(rerun)
    job_log = re.search(r"^    log: (\S+)", rerun.stdout, re.MULTILINE).group(1)
    assert "resumed at task" in (workdir / job_log).read_text()
