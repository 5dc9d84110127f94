"""The workflow through the real Snakemake CLI, in scratch copies of the repository.

One local run of configs/smoke.yaml per session (the ``smoke_run`` fixture of conftest.py) is
shared by these tests, tests/test_smoke_paths.py and tests/test_cluster.py
(tests/slurm/workflow_runs.py).
"""

from __future__ import annotations

import math
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
    metrics_tables,
    scratch_copy,
    snakemake,
)
from table_rows import read_rows

from ncplasticity.features import FeatureReader
from ncplasticity.jobs import HOLD_FILE_ENV

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def repo_copy(tmp_path_factory):
    """A scratch copy for dry runs and lint (they write .snakemake/, never results/)."""
    return scratch_copy(tmp_path_factory.mktemp("repo"))


def test_smoke_run_is_complete_and_consistent(smoke_run):
    assert "Nothing to be done" in snakemake(smoke_run, "-n", "--configfile", SMOKE_CONFIG).stdout
    features, metrics = feature_files(smoke_run), metrics_tables(smoke_run)
    for experiment in ("continual", "warm_start"):
        assert any(f"results/{experiment}/features/" in name for name in features), experiment
    assert len(metrics) == len(features)
    for name, path in features.items():
        with FeatureReader(path) as reader:
            snapshots = reader.snapshots()
        rows = read_rows(metrics[name.replace("/features/", "/metrics/").replace(".h5", ".tsv")])
        assert [row["snapshot"] for row in rows] == [s.name for s in snapshots], name
    assert not list((smoke_run / "results").glob("*/partial/*")), "partial state left behind"
    # Each analysis rule wrote its own table (not another rule's), and the paper's outputs.
    analysis = smoke_run / "results/continual/analysis"
    assert "metric" in read_rows(analysis / "correlations.tsv")[0]
    assert "r_first_nc1_pl" in read_rows(analysis / "sweep_correlations.tsv")[0]
    # The compiled loop's interventions and the class-pair scenario ran for real.
    for seed in (1, 2):
        mixed = read_rows(smoke_run / f"results/continual/logs/mixed_s{seed}.tsv")
        assert sum(row["redo_resets"] + row["cbp_replaced"] for row in mixed) > 0
        assert all(row["nc_dial_penalty"] > 0 and row["l2_init_penalty"] > 0 for row in mixed)
        pairs = read_rows(smoke_run / f"results/continual/tables/pairs_s{seed}.tsv")
        assert {row["epochs"] for row in pairs[1:]} <= {1, 2}
        assert all(math.isfinite(row["nc1"]) for row in pairs)
    summary = {row["variant"]: row for row in read_rows(analysis / "variant_summary.tsv")}
    assert set(summary) == {"e1", "nc0.28", "mixed", "pairs"}
    assert all(row["n_seeds"] == 2 and math.isfinite(row["pl_mean"]) for row in summary.values())
    reproduction = read_rows(smoke_run / "results/paper/reproduction.tsv")
    assert list(reproduction[0]) == [
        "claim",
        "statistic",
        "paper",
        "ours",
        "spread",
        "n_seeds",
        "signed_r",
        "p_perm",
        "expected_abs_r_null",
        "comparable",
        "config",
    ]
    assert sum(isinstance(row["ours"], float) for row in reproduction) >= 10
    for figure in ("continual_accuracy_nc1", "warm_start_nc_vs_accuracy", "warm_start_accuracy"):
        assert (smoke_run / f"results/paper/figures/{figure}.png").stat().st_size > 1000


def _kill_when_held(workdir, target, config, hold_file, kill, timeout=300):
    """Build `target` with its training job held right after its first checkpoint (the
    ResumableJob test hook, HOLD_FILE_ENV) and send ``kill`` to the whole process group
    (Snakemake and the training job) while it is held: the kill lands mid-run on any machine.
    SIGTERM is what SLURM does on pre-emption (Snakemake cleans up); SIGKILL leaves Snakemake's
    lock behind. Before the kill, a second Snakemake on the same directory must stop at once
    and leave the first running."""
    args = (target, "--cores", "1", "--configfile", config)
    process = subprocess.Popen(
        [sys.executable, "-m", "snakemake", *args],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env={**os.environ, HOLD_FILE_ENV: str(hold_file)},
    )
    deadline = time.monotonic() + timeout
    while not hold_file.exists():
        if process.poll() is not None:
            pytest.fail(
                f"{target} ended before its first checkpoint:\n{process.stdout.read()[-3000:]}"
            )
        if time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            pytest.fail(f"{target}: its job was not held at a checkpoint within {timeout} s")
        time.sleep(0.02)
    if kill == signal.SIGKILL:
        second = snakemake(workdir, *args)
        assert second.returncode != 0, second.stdout[-3000:]
        assert "Directory cannot be locked" in second.stdout, second.stdout[-3000:]
        assert process.poll() is None, "the second instance disturbed the first"
    os.killpg(process.pid, kill)
    output = process.communicate(timeout=120)[0]
    assert process.returncode != 0, f"snakemake was not stopped by {kill!r}:\n{output[-3000:]}"


@pytest.mark.parametrize(
    ("experiment", "kill"), [("continual", signal.SIGKILL), ("warm_start", signal.SIGTERM)]
)
def test_killed_training_job_resumes_to_identical_features(experiment, kill, smoke_run, tmp_path):
    """A training job killed mid-way (pre-empted: SIGTERM; or Snakemake itself killed hard:
    SIGKILL, its lock left behind, which `--unlock` removes), rerun with --rerun-incomplete,
    continues from its checkpoint and writes features bitwise equal to those of the
    uninterrupted run; its log keeps the lines from before the kill."""
    target = next(name for name in feature_files(smoke_run) if f"/{experiment}/" in name)
    run = os.path.basename(target).removesuffix(".h5")
    workdir = scratch_copy(tmp_path / "repo")
    # The prepared dataset comes along, so the first job is the training job itself.
    shutil.copytree(smoke_run / "results" / "data", workdir / "results" / "data")
    partial_dir = workdir / "results" / experiment / "partial" / run

    _kill_when_held(workdir, target, SMOKE_CONFIG, tmp_path / "held", kill)
    assert not (workdir / target).exists()
    if kill == signal.SIGKILL:
        locked = snakemake(workdir, target, "--cores", "1", "--configfile", SMOKE_CONFIG)
        assert locked.returncode != 0 and "--unlock" in locked.stdout, locked.stdout[-3000:]
        check_success(snakemake(workdir, "--unlock", "--configfile", SMOKE_CONFIG))
    partial_features = list(partial_dir.glob("*.h5"))
    assert partial_features, f"no partial features in {partial_dir} after the kill"
    with FeatureReader(partial_features[0]) as reader:
        assert reader.snapshots(), "the killed job kept no snapshot"

    result = snakemake(
        workdir, target, "--rerun-incomplete", "--cores", "1", "--configfile", SMOKE_CONFIG
    )
    check_success(result)
    job_log = re.search(r"^    log: (\S+)", result.stdout, re.MULTILINE).group(1)
    # Snakemake deletes a job's log before rerunning it: the lines from before the kill come
    # back from the job's in-progress directory, then the rerun says where it resumed.
    earlier, resumed_line, _ = (workdir / job_log).read_text().partition("resumed at ")
    assert resumed_line, "the rerun did not resume"
    assert "started; in-progress state in" in earlier, f"the lines from before the kill:\n{earlier}"
    assert not partial_dir.exists()

    resumed = tmp_path / "resumed.h5"
    shutil.copy(workdir / target, resumed)
    check_success(
        snakemake(workdir, target, "--force", "--cores", "1", "--configfile", SMOKE_CONFIG)
    )
    assert_same_features(workdir / target, resumed)


def _dry_run_with(repo_copy, path, value):
    """Dry-run the smoke config with config[path] = value."""
    config = yaml.safe_load((repo_copy / SMOKE_CONFIG).read_text())
    *sections, key = path
    section = config
    for name in sections:
        section = section.setdefault(name, {})
    section[key] = value
    bad_config = repo_copy / f"bad_{'_'.join(map(str, path))}.yaml"
    bad_config.write_text(yaml.safe_dump(config))
    return snakemake(repo_copy, "-n", "--configfile", bad_config.name)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        # unknown key of the settings every run starts from
        (("continual", "learning_rate_typo"), 0.01, "continual: Additional properties"),
        # wrong type
        (("continual", "optimizer", "lr"), "fast", "continual.optimizer.lr: 'fast' is not of"),
        # a variant's unknown key, bad type, unknown intervention, unknown parameter
        (
            ("continual", "variants", "wide"),
            {"network": {"hidden_sizes": [400], "widht": 3}},
            "continual.variants.wide.network: Additional properties",
        ),
        (
            ("warm_start", "variants", "fast"),
            {"lr": "fast"},
            "warm_start.variants.fast.lr: 'fast' is not of type 'number'",
        ),
        (
            ("continual", "variants", "redo"),
            {"interventions": [{"name": "rdo"}]},
            "continual.variants.redo.interventions[0].name: 'rdo' is not one of",
        ),
        (
            ("warm_start", "variants", "sp"),
            {"interventions": [{"name": "shrink_perturb", "shrinkk": 0.5}]},
            "warm_start.variants.sp.interventions[0]: Additional properties",
        ),
        (
            ("warm_start", "variants", "negative"),
            {"warmup_epochs": -3},
            "warm_start.variants.negative.warmup_epochs: -3 is less than the minimum of 1",
        ),
        (
            ("continual", "variants", "nc"),
            {"schedule": {"first_task": {"nc1_threshold": 0.2}}},
            "continual.variants.nc.schedule.first_task",
        ),
    ],
)
def test_invalid_study_stops_before_any_job_naming_variant_and_key(path, value, message, repo_copy):
    result = _dry_run_with(repo_copy, path, value)

    assert result.returncode != 0
    assert message in result.stdout, result.stdout[-2000:]
    assert "rule continual_train" not in result.stdout


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("warm_start", "seeds"), "7"),  # wrong type of a study key
        (("continual", "variants"), ["e1"]),  # variants are a mapping
    ],
)
def test_invalid_study_keys_are_schema_errors_naming_the_key(path, value, repo_copy):
    result = _dry_run_with(repo_copy, path, value)

    assert result.returncode != 0
    assert "ValidationError" in result.stdout, result.stdout[-2000:]
    assert f"'{path[-1]}'" in result.stdout, result.stdout[-2000:]


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            ("warm_start", "checkpoint_every"),
            99,
            "warm_start.variants.plain: checkpoint_every (99) exceeds",
        ),
        (("continual", "analysis_tasks"), 99, "continual.analysis_tasks (99) exceeds"),
    ],
)
def test_inconsistent_config_is_an_error_naming_the_keys(path, value, message, repo_copy):
    result = _dry_run_with(repo_copy, path, value)

    assert result.returncode != 0
    assert message in result.stdout, result.stdout[-2000:]


def test_a_failed_job_shows_its_cause_on_the_console(repo_copy):
    """The workflow profile (profiles/default) prints a failed job's log: here the data job,
    offline and without CIFAR-10 under data_root, lists the files it expected."""
    overlay = {"experiments": ["warm_start"], "warm_start": {"dataset": "cifar10"}}
    (repo_copy / "no_cifar.yaml").write_text(yaml.safe_dump(overlay))
    result = snakemake(
        repo_copy,
        "results/data/cifar10.npz",
        "--cores",
        "1",
        "--configfile",
        SMOKE_CONFIG,
        "no_cifar.yaml",
    )
    assert result.returncode != 0
    assert "cifar-10-batches-py" in result.stdout and "data_root" in result.stdout, result.stdout[
        -3000:
    ]


TRAINING_RULES = ("continual_train", "warm_start_warmup", "warm_start_finetune", "warm_start_fresh")


def _planned_training(workdir, overlay, *extra):
    """Output files of the training jobs a dry run with the smoke config + ``overlay`` (and
    ``extra`` arguments) plans."""
    (workdir / "overlay.yaml").write_text(yaml.safe_dump(overlay))
    result = snakemake(workdir, "-n", "--configfile", SMOKE_CONFIG, "overlay.yaml", *extra)
    check_success(result)
    planned = set()
    for job in result.stdout.split("\nrule ")[1:]:
        rule = job.split(":", 1)[0].strip()
        if rule in TRAINING_RULES:
            outputs = re.search(r"^    output: (.+)$", job, re.MULTILINE).group(1)
            planned.add(outputs.split(",")[0].strip())
    return planned


def test_a_nested_config_override_keeps_its_type(smoke_run):
    """Snakemake passes nested --config values as strings; the workflow types them, so one
    nested value changes one variant's runs."""
    override = "continual={variants: {nc0.28: {optimizer: {lr: 0.02}}}}"
    planned = _planned_training(smoke_run, {}, "--config", override)
    assert planned == {f"results/continual/features/nc0.28_s{seed}.h5" for seed in (1, 2)}


def test_adding_variants_or_seeds_reruns_nothing_that_exists(smoke_run):
    """The real Snakemake CLI on the finished smoke run: a new variant or seed plans only its
    own training jobs; changing one variant's setting reruns only that variant's jobs."""
    planned = _planned_training(
        smoke_run,
        {
            "continual": {
                "seeds": [1, 2, 3],
                "variants": {"wide": {"network": {"hidden_sizes": [200, 100, 100]}}},
            },
            "warm_start": {
                "variants": {
                    "l2_strong": {"interventions": [{"name": "l2", "weight_decay": 0.01}]},
                    # Another learning rate: its own warm-up and its own fresh reference.
                    "fast": {"lr": 0.02},
                }
            },
        },
    )
    continual = {p for p in planned if "/continual/" in p}
    assert continual == {
        f"results/continual/features/{run}.h5"
        for run in ("e1_s3", "nc0.28_s3", "mixed_s3", "pairs_s3", "wide_s1", "wide_s2", "wide_s3")
    }
    warm = {p for p in planned if "/warm_start/" in p}
    assert all("l2_strong_s7" in p or "fast_s7" in p for p in warm), warm
    assert "results/warm_start/finetune/fresh/fast_s7.tsv" in warm
    assert "results/warm_start/features/l2_strong_s7.h5" in warm

    planned = _planned_training(
        smoke_run,
        {
            "continual": {
                "variants": {"nc0.28": {"schedule": {"first_task": {"nc1_threshold": 0.45}}}}
            },
            "warm_start": {
                "variants": {"nc_reg": {"interventions": [{"name": "nc_reg", "lam": 0.01}]}}
            },
        },
    )
    assert {p for p in planned if "/continual/" in p} == {
        "results/continual/features/nc0.28_s1.h5",
        "results/continual/features/nc0.28_s2.h5",
    }
    warm = {p for p in planned if "/warm_start/" in p}
    assert warm and all("nc_reg_s7" in p for p in warm), warm
    # shrink_perturb acts before fine-tuning only: it fine-tunes plain's warm-up.
    assert not (smoke_run / "results/warm_start/features/shrink_perturb_s7.h5").exists()
    assert (smoke_run / "results/warm_start/finetune/shrink_perturb_s7/epoch0001.tsv").exists()


@pytest.mark.parametrize("name", ["smoke", "paper", "warm_start_long"])
def test_every_shipped_config_plans(name, repo_copy):
    result = snakemake(repo_copy, "-n", "-q", "--configfile", f"configs/{name}.yaml")
    assert result.returncode == 0, result.stdout[-4000:]


def test_lint_is_clean(repo_copy):
    result = snakemake(repo_copy, "--lint")
    assert result.returncode == 0 and "Lints for" not in result.stdout, result.stdout[-4000:]
