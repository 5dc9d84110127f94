"""configs/smoke.yaml through profiles/slurm on a real single-node SLURM on localhost.

The test starts munge, slurmctld and slurmd (tests/slurm/local_slurm.py; needs root and the
Debian packages slurm-wlm and munge, which .ci/run installs), runs the workflow with the
SLURM executor plugin, checks that every non-local job was a SLURM job, and compares the
outputs with those of a local run.  The daemons are stopped when the module ends.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from slurm import local_slurm
from slurm.workflow_runs import (
    SMOKE_CONFIG,
    assert_same_features,
    check_success,
    feature_files,
    local_smoke_run,
    metrics_tables,
    scratch_copy,
    snakemake,
)
from table_rows import read_rows

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

# Rules that train the ResNet-18: each job asks for `warm_start.gpus` GPUs.
GPU_RULES = {"warm_start_warmup", "warm_start_finetune", "warm_start_fresh"}

JOB_BLOCK = re.compile(r"^(local)?rule (\w+):\n((?:    .*\n)+)", re.MULTILINE)
SUBMITTED = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (.+)\)\.")


@pytest.fixture(scope="module")
def local_cluster():
    reason = local_slurm.why_unavailable()
    if reason:
        pytest.skip(f"cannot start a local SLURM: {reason}")
    with local_slurm.running():
        yield


@pytest.fixture(scope="module")
def slurm_run(local_cluster, tmp_path_factory):
    """(workdir, snakemake's output) of the smoke workflow run through the SLURM profile."""
    workdir = scratch_copy(tmp_path_factory.mktemp("smoke-slurm"))
    # GPU jobs as in configs/paper.yaml; the node's GPUs are placeholders and the smoke
    # configuration computes on the CPU, so the outputs still equal those of a local run.
    (workdir / "gpus.yaml").write_text("warm_start:\n  gpus: 1\n")
    result = snakemake(
        workdir,
        "--profile",
        "profiles/slurm",
        "--configfile",
        SMOKE_CONFIG,
        "gpus.yaml",
        # No accounting database here: job states come from squeue (finished jobs stay
        # visible for MinJobAge), and there is no account to charge.
        "--slurm-status-command",
        "squeue",
        "--slurm-no-account",
        # Tiny jobs: poll soon after submission rather than after the default 40 s.
        "--slurm-init-seconds-before-status-checks",
        "2",
        # Keep every job's SLURM log as evidence that slurmd ran it.
        "--slurm-keep-successful-logs",
        # A failure must fail the test, not be hidden by the profile's retry.
        "--retries",
        "0",
    )
    check_success(result)
    return workdir, result.stdout


def _job_blocks(log: str) -> list[dict]:
    """Snakemake's job announcements: rule, local or not, jobid, outputs, wildcards."""
    blocks = []
    for local, rule, body in JOB_BLOCK.findall(log):
        fields = dict(
            line.strip().split(": ", 1) for line in body.splitlines() if ": " in line.strip()
        )
        blocks.append(
            {
                "rule": rule,
                "local": bool(local),
                "jobid": fields["jobid"],
                "outputs": fields.get("output", "").split(", "),
                # As the plugin names a submission: the wildcard values joined by "_".
                "wildcards": "_".join(
                    pair.split("=", 1)[1]
                    for pair in filter(None, fields.get("wildcards", "").split(", "))
                ),
            }
        )
    return blocks


def _slurm_jobs(run_id: str) -> dict[str, dict]:
    """SLURM's view of the run's jobs (finished ones included): id -> state, comment, TRES."""
    listed = subprocess.run(
        ["squeue", "--states=all", "--noheader", "--format=%i|%T|%k", "--name", run_id],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    jobs = {}
    for line in listed.splitlines():
        slurm_id, state, comment = line.split("|", 2)
        details = subprocess.run(
            ["scontrol", "--oneliner", "show", "job", slurm_id],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        jobs[slurm_id] = {"state": state, "comment": comment, "details": details}
    return jobs


def test_every_non_local_job_ran_as_a_slurm_job(slurm_run):
    workdir, log = slurm_run
    blocks = _job_blocks(log)
    remote = {block["jobid"]: block["rule"] for block in blocks if not block["local"]}
    wildcards = {block["jobid"]: block["wildcards"] for block in blocks}
    assert remote, "no job was submitted to SLURM"
    # Training and metrics write features and metrics: never on the submitting host.
    for block in blocks:
        if block["local"]:
            heavy = [out for out in block["outputs"] if re.search(r"/(features|metrics)/", out)]
            assert not heavy, f"local rule {block['rule']} wrote {heavy}"

    submitted = {
        job: (slurm_id, Path(log_path)) for job, slurm_id, log_path in SUBMITTED.findall(log)
    }
    assert set(submitted) == set(remote), "not every non-local job was submitted with sbatch"

    run_id = re.search(r"SLURM run ID: (\S+)", log).group(1)
    slurm_jobs = _slurm_jobs(run_id)
    assert len(slurm_jobs) == len(remote)
    for job, rule in remote.items():
        slurm_id, slurm_log = submitted[job]
        job_wildcards = wildcards[job]
        seen = slurm_jobs[slurm_id]
        assert seen["state"] == "COMPLETED", f"SLURM job {slurm_id} ({rule}): {seen['state']}"
        assert seen["comment"] in (f"rule_{rule}", f"rule_{rule}_wildcards_{job_wildcards}"), seen
        assert slurm_log.is_file(), f"slurmd wrote no log for job {slurm_id} ({rule})"
        if rule in GPU_RULES:
            assert "TresPerJob=gres:gpu:1" in seen["details"], f"{rule} got no GPU: {seen}"
    assert GPU_RULES <= set(remote.values()), "the smoke run has no job of some ResNet rule"


def test_slurm_outputs_equal_local_outputs(slurm_run, tmp_path_factory):
    slurm_dir, _ = slurm_run
    local_dir = local_smoke_run(tmp_path_factory)

    local_features, slurm_features = feature_files(local_dir), feature_files(slurm_dir)
    assert local_features, "the smoke run wrote no feature files"
    assert sorted(slurm_features) == sorted(local_features)
    for name, path in local_features.items():
        assert_same_features(path, slurm_features[name])

    local_metrics, slurm_metrics = metrics_tables(local_dir), metrics_tables(slurm_dir)
    assert local_metrics, "the smoke run wrote no metrics tables"
    assert sorted(slurm_metrics) == sorted(local_metrics)
    for name, path in local_metrics.items():
        assert read_rows(slurm_metrics[name]) == read_rows(path), f"{name} differs"
