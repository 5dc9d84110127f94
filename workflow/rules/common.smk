# Helpers shared by every stage: import path, environments, the study (runs with their
# resolved settings) and targets. Rules look runs up by wildcard; nothing is parsed from names.

import os
import sys

# Jobs import the package from this checkout, also inside `--sdm conda` environments (which
# carry only third-party dependencies) and on cluster nodes that re-read this file.
_SRC = os.path.join(workflow.basedir, "src")
_PYTHONPATH = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
if _SRC not in _PYTHONPATH:
    os.environ.update(PYTHONPATH=os.pathsep.join([_SRC, *_PYTHONPATH]))
if _SRC not in sys.path:
    sys.path.insert(0, _SRC)

import re

from snakemake.exceptions import WorkflowError

import yaml

from ncplasticity.continual import study as continual_study
from ncplasticity.continual.study import SPEC as CONTINUAL_SPEC
from ncplasticity.continual.study import sweep_groups
from ncplasticity.report import EXPERIMENT_TITLES, run_labels
from ncplasticity.portable import environment as portable_environment
from ncplasticity.study import StudyError, resolve_experiment, run_id, typed
from ncplasticity.warm_start import study as warm_start_study

# Nested `--config` values arrive as strings ('0.02'): give them their YAML types.
config.update(typed(config))

# `portable`: jobs (subprocesses, or cluster jobs that re-read this file) run with the CPU
# dispatch of numba, MKL, ATen, numpy and OpenBLAS pinned to a baseline (ncplasticity.portable).
os.environ.update(portable_environment(config))

TRAIN_ENV = "../../envs/train.yaml"
ANALYSIS_ENV = "../../envs/analysis.yaml"
# Warm-start jobs that request GPUs need one: `auto` becomes `cuda`, which fails at once on a
# node without a usable CUDA (an explicit `cpu` still runs on the CPU). Continual (batch-1)
# jobs always run on the CPU.
DEVICE = config.get("device", "auto")


def dataset_file(name):
    return f"results/data/{name}.npz"


def one_of(names):
    """A wildcard constraint matching exactly the given names."""
    return "|".join(re.escape(name) for name in names) or "(?!)"


with open(
    os.path.join(workflow.basedir, "workflow/schemas/config.schema.yaml")
) as _schema:
    SCHEMA = yaml.safe_load(_schema)


def resolve(spec):
    """The experiment's runs (run id -> Run), or a stop naming the variant and key."""
    if spec.name not in config:
        return {}
    try:
        return resolve_experiment(config, SCHEMA, spec)
    except StudyError as error:
        raise WorkflowError(str(error)) from None


def seeds_of(experiment):
    return config[experiment]["seeds"] if experiment in config else []


# --- Continual ---

CONTINUAL_RUNS = resolve(CONTINUAL_SPEC)
CONTINUAL = config.get("continual", {})
CONTINUAL_ANALYSIS_TASKS = CONTINUAL.get(
    "analysis_tasks", CONTINUAL.get("num_tasks", 1)
)


# Groups of variants that differ only in the first task: the runs of a first-task sweep.
CONTINUAL_SWEEPS = sweep_groups(
    {run.variant: run.settings for run in CONTINUAL_RUNS.values()}
)


def continual_run_settings(wildcards):
    return CONTINUAL_RUNS[wildcards.run].settings


def continual_runtime(wildcards):
    """Minutes for a training job, generously: batch-1 SGD takes 5-30 us a step on one core
    (benchmarks/bench_online_sgd.py; the autograd loop ~10x more), plus about a second per
    epoch for features, test accuracy and the checkpoint."""
    settings = CONTINUAL_RUNS[wildcards.run].settings
    samples = settings.get("examples_per_task") or 60000
    first = settings["schedule"]["first_task"]
    # A list of epochs per task is drawn per task: estimate with its largest element.
    per_task = settings["schedule"].get("epochs_per_task", 1)
    if not isinstance(per_task, int):
        per_task = max(per_task)
    epochs = (settings["num_tasks"] - 1) * per_task
    epochs += first.get("epochs") or first["max_epochs"]
    return 10 + int(epochs * (samples * 300e-6 + 1) / 60)


def continual_mem_mb(wildcards):
    """MB for a training job, from its measured peak (continual.study.memory_mb)."""
    return continual_study.memory_mb(CONTINUAL_RUNS[wildcards.run].settings)


def continual_tables():
    return expand("results/continual/tables/{run}.tsv", run=list(CONTINUAL_RUNS))


# --- Warm starting ---

WARM_START = config.get("warm_start", {})
WARM_START_RUNS = resolve(warm_start_study.SPEC)
# variant -> its resolved settings (the same for every seed).
WARM_START_VARIANTS = {run.variant: run.settings for run in WARM_START_RUNS.values()}
# variant -> the variant whose warm-up it fine-tunes (shared when warm-up settings agree).
WARM_START_SOURCES = warm_start_study.warmup_sources(WARM_START_VARIANTS)
WARM_START_WARMUPS = sorted(set(WARM_START_SOURCES.values()))
# variant -> the variant whose fresh-init reference it is compared with.
WARM_START_FRESH = warm_start_study.fresh_sources(WARM_START_VARIANTS)
WARM_START_PARTIAL = "results/warm_start/partial"
WARM_START_DEVICE = (
    "cuda" if DEVICE == "auto" and WARM_START.get("gpus", 0) > 0 else DEVICE
)


def warm_start_epochs(variant):
    return warm_start_study.checkpoint_epochs(WARM_START_VARIANTS[variant])


def warm_start_runs(variants):
    return [run_id(v, s) for v in variants for s in seeds_of("warm_start")]


def warm_start_checkpoint(wildcards):
    source = WARM_START_SOURCES[wildcards.variant]
    return f"results/warm_start/checkpoints/{source}_s{wildcards.seed}"


def warm_start_table_inputs(wildcards):
    warmup_run = run_id(WARM_START_SOURCES[wildcards.variant], wildcards.seed)
    return {
        "metrics": f"results/warm_start/metrics/{warmup_run}.tsv",
        "warmup_log": f"results/warm_start/logs/{warmup_run}.tsv",
        "finetune": [
            f"results/warm_start/finetune/{wildcards.variant}_s{wildcards.seed}/epoch{e:04d}.tsv"
            for e in warm_start_epochs(wildcards.variant)
        ],
        "fresh": f"results/warm_start/finetune/fresh/{WARM_START_FRESH[wildcards.variant]}_s{wildcards.seed}.tsv",
    }


def warm_start_tables():
    """Every warm-start run's table."""
    return expand(
        "results/warm_start/tables/{run}.tsv", run=warm_start_runs(WARM_START_VARIANTS)
    )


def warm_start_warmup_logs():
    """The log of every warm-up (one per shared warm-up and seed)."""
    return expand(
        "results/warm_start/logs/{run}.tsv", run=warm_start_runs(WARM_START_WARMUPS)
    )


def check_config():
    """Cross-field rules the JSON schema cannot express, named by their keys."""
    problems = []
    if "continual" in config["experiments"]:
        base_tasks = CONTINUAL.get("num_tasks", 1)
        if CONTINUAL_ANALYSIS_TASKS > base_tasks:
            problems.append(
                f"continual.analysis_tasks ({CONTINUAL_ANALYSIS_TASKS}) exceeds num_tasks "
                f"({base_tasks}); variants with fewer tasks are analysed over all of theirs"
            )
    for variant, settings in WARM_START_VARIANTS.items():
        if not warm_start_study.checkpoint_epochs(settings):
            problems.append(
                f"warm_start.variants.{variant}: checkpoint_every "
                f"({settings['checkpoint_every']}) exceeds warmup_epochs "
                f"({settings['warmup_epochs']}): no checkpoint would be taken"
            )
    missing = [e for e in config["experiments"] if e not in config]
    if missing:
        problems.append(f"experiments: {missing} listed but have no section")
    if problems:
        raise WorkflowError("invalid configuration: " + "; ".join(problems))


check_config()


wildcard_constraints:
    experiment="continual|warm_start",
    run="[^/]+",
    dataset="mnist5k|mnist|cifar10",


# Every run's curves, one PNG per run in one directory per experiment (the report lists each
# run's figure with its labels).
RUN_CURVES_DIR = "results/{experiment}/figures/runs"
# A run-curves job takes about 1.4 s a run, the longest of the jobs that wait for every run's
# table: started first, the other analysis jobs run beside it instead of leaving cores idle.
RUN_CURVES_PRIORITY = 10
