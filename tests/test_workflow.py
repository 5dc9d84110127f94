"""The workflow through the real Snakemake CLI, in scratch copies of the repository.

One local run of configs/smoke.yaml per session is shared by these tests and by
tests/test_cluster.py (tests/slurm/workflow_runs.py).
"""

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
    assert_same_features,
    check_success,
    feature_files,
    local_smoke_run,
    metrics_tables,
    scratch_copy,
    snakemake,
)

from ncplasticity.features import FeatureReader
from ncplasticity.tsv import read_tsv

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    return local_smoke_run(tmp_path_factory)


@pytest.fixture(scope="module")
def repo_copy(tmp_path_factory):
    """A scratch copy for dry runs and lint (they write .snakemake/, never results/)."""
    return scratch_copy(tmp_path_factory.mktemp("repo"))


def test_smoke_run_is_complete_and_consistent(smoke_run):
    assert "Nothing to be done" in snakemake(smoke_run, "-n", "--configfile", SMOKE_CONFIG).stdout
    features, metrics = feature_files(smoke_run), metrics_tables(smoke_run)
    for experiment in ("permuted_mnist", "warm_start"):
        assert any(f"results/{experiment}/features/" in name for name in features), experiment
    assert len(metrics) == len(features)
    for name, path in features.items():
        with FeatureReader(path) as reader:
            snapshots = reader.snapshots()
        rows = read_tsv(metrics[name.replace("/features/", "/metrics/").replace(".h5", ".tsv")])
        assert [row["snapshot"] for row in rows] == [s.name for s in snapshots], name
    assert not list((smoke_run / "results").glob("*/partial/*")), "partial state left behind"


def _kill_once_checkpointed(workdir, target, config, partial_dir, timeout=300):
    """Build `target` and SIGTERM the whole process group (Snakemake and the training job, as
    SLURM does on pre-emption) once the job has saved its first checkpoint."""
    process = subprocess.Popen(
        [sys.executable, "-m", "snakemake", target, "--cores", "1", "--configfile", config],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    while not (partial_dir / "state.pt").exists():
        if process.poll() is not None:
            pytest.fail(
                f"{target} finished before its first checkpoint could be seen:\n"
                + process.stdout.read()[-3000:]
            )
        if time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            pytest.fail(f"no checkpoint {partial_dir / 'state.pt'} within {timeout} s")
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGTERM)
    output = process.communicate(timeout=120)[0]
    assert process.returncode != 0, f"snakemake was not stopped by SIGTERM:\n{output[-3000:]}"


@pytest.mark.parametrize("experiment", ["permuted_mnist", "warm_start"])
def test_killed_training_job_resumes_to_identical_features(experiment, smoke_run, tmp_path):
    """A training job killed mid-way, rerun with --rerun-incomplete, continues from its
    checkpoint and writes features bitwise equal to those of the uninterrupted run."""
    target = next(name for name in feature_files(smoke_run) if f"/{experiment}/" in name)
    run = os.path.basename(target).removesuffix(".h5")
    workdir = scratch_copy(tmp_path / "repo")
    # The smoke run's 4 tasks pass in a fraction of a second: more tasks after the first
    # checkpoint, so the kill surely lands mid-run.
    config = yaml.safe_load((workdir / SMOKE_CONFIG).read_text())
    config["permuted_mnist"]["num_tasks"] = config["permuted_mnist"]["analysis_tasks"] = 40
    kill_config = "kill.yaml"
    (workdir / kill_config).write_text(yaml.safe_dump(config))
    # The prepared dataset comes along, so the first job is the training job itself.
    shutil.copytree(smoke_run / "results" / "data", workdir / "results" / "data")
    partial_dir = workdir / "results" / experiment / "partial" / run

    _kill_once_checkpointed(workdir, target, kill_config, partial_dir)
    assert not (workdir / target).exists()
    partial_features = list(partial_dir.glob("*.h5"))
    assert partial_features, f"no partial features in {partial_dir} after the kill"
    with FeatureReader(partial_features[0]) as reader:
        assert reader.snapshots(), "the killed job kept no snapshot"

    result = snakemake(
        workdir, target, "--rerun-incomplete", "--cores", "1", "--configfile", kill_config
    )
    check_success(result)
    job_log = re.search(r"^    log: (\S+)", result.stdout, re.MULTILINE).group(1)
    assert "resum" in (workdir / job_log).read_text().lower(), "the rerun did not resume"
    assert not partial_dir.exists()

    resumed = tmp_path / "resumed.h5"
    shutil.copy(workdir / target, resumed)
    check_success(
        snakemake(workdir, target, "--force", "--cores", "1", "--configfile", kill_config)
    )
    assert_same_features(workdir / target, resumed)


def _dry_run_with(repo_copy, path, value, first_task=None):
    """Dry-run the smoke config with config[path] = value (and first_task keys replaced)."""
    config = yaml.safe_load((repo_copy / SMOKE_CONFIG).read_text())
    config["permuted_mnist"]["first_task"].update(first_task or {})
    *sections, key = path
    section = config
    for name in sections:
        section = section[name]
    section[key] = value
    bad_config = repo_copy / f"bad_{'_'.join(path)}.yaml"
    bad_config.write_text(yaml.safe_dump(config))
    return snakemake(repo_copy, "-n", "--configfile", bad_config.name)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("permuted_mnist", "learning_rate_typo"), 0.01),  # unknown key
        (("permuted_mnist", "lr"), "fast"),  # wrong type
        (("warm_start", "seeds"), "7"),  # wrong type
        (("warm_start", "warmup_epochs"), -3),  # negative epochs
        (("permuted_mnist", "first_task", "epochs"), [-1]),  # negative epochs
    ],
)
def test_invalid_config_is_a_schema_error_naming_the_key(path, value, repo_copy):
    result = _dry_run_with(repo_copy, path, value)

    assert result.returncode != 0
    assert "ValidationError" in result.stdout, result.stdout[-2000:]
    assert f"'{path[-1]}'" in result.stdout, result.stdout[-2000:]


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("warm_start", "checkpoint_every"), 99, "warm_start.checkpoint_every (99) exceeds"),
        (("permuted_mnist", "analysis_tasks"), 99, "permuted_mnist.analysis_tasks (99) exceeds"),
        (("permuted_mnist", "first_task", "nc1_thresholds"), [], "permuted_mnist.first_task"),
        (("permuted_mnist", "first_task", "nc1_thresholds"), [0.1234567], "6 significant"),
    ],
)
def test_inconsistent_config_is_an_error_naming_the_keys(path, value, message, repo_copy):
    result = _dry_run_with(
        repo_copy, path, value, first_task={"epochs": [], "nc1_thresholds": [0.5]}
    )

    assert result.returncode != 0
    assert message in result.stdout, result.stdout[-2000:]


@pytest.mark.parametrize("name", ["smoke", "paper", "warm_start_long"])
def test_every_shipped_config_plans(name, repo_copy):
    result = snakemake(repo_copy, "-n", "-q", "--configfile", f"configs/{name}.yaml")
    assert result.returncode == 0, result.stdout[-4000:]


def test_lint_is_clean(repo_copy):
    result = snakemake(repo_copy, "--lint")
    assert result.returncode == 0 and "Lints for" not in result.stdout, result.stdout[-4000:]
