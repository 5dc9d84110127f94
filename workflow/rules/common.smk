# Helpers shared by every stage: import path, environments, targets, run ids and inputs.

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

from ncplasticity.warm_start_protocol import VARIANTS, checkpoint_epochs, warmup_variant

TRAIN_ENV = "../../envs/train.yaml"
ANALYSIS_ENV = "../../envs/analysis.yaml"

# Each experiment module registers a function returning its final targets.
EXPERIMENT_TARGETS = {}


def all_targets(wildcards):
    return [
        target
        for experiment in config["experiments"]
        for target in EXPERIMENT_TARGETS[experiment]()
    ]


def dataset_file(name):
    return f"results/data/{name}.npz"


wildcard_constraints:
    experiment="permuted_mnist|warm_start",
    run="[^/]+",
    dataset="mnist5k|mnist|cifar10",


# --- Permuted MNIST ---

PMNIST = config["permuted_mnist"]
# What a training job is given (and stores in its feature file): the section without the keys
# that only choose runs or analyses, so that adding a seed, a first-task setting or changing
# `analysis_tasks` does not rerun finished jobs (Snakemake reruns jobs whose params changed).
PMNIST_TRAINING = {
    key: value
    for key, value in PMNIST.items()
    if key not in ("seeds", "analysis_tasks", "threads")
} | {"first_task": {"max_epochs": PMNIST["first_task"]["max_epochs"]}}
PMNIST_ANALYSIS_TASKS = PMNIST.get("analysis_tasks", PMNIST["num_tasks"])


def permuted_mnist_runs():
    """Run ids: s{seed}_e{epochs} and s{seed}_nc{tau} (parsed by ncplasticity.permuted_mnist)."""
    first = PMNIST["first_task"]
    settings = [f"e{epochs}" for epochs in first.get("epochs", [])]
    settings += [f"nc{tau:g}" for tau in first.get("nc1_thresholds", [])]
    return [f"s{seed}_{setting}" for seed in PMNIST["seeds"] for setting in settings]


def permuted_mnist_runtime():
    """Minutes for a training job, generously: batch-1 SGD takes 5-30 us a step on one core
    (benchmarks/bench_online_sgd.py), plus about a second per epoch for features, test
    accuracy and the checkpoint."""
    samples = 4000 if PMNIST["dataset"] == "mnist5k" else 60000
    first = PMNIST["first_task"]
    epochs = (
        PMNIST["num_tasks"] - 1 + max([first["max_epochs"], *first.get("epochs", [])])
    )
    return 10 + int(epochs * (samples * 30e-6 + 1) / 60)


def permuted_mnist_tables():
    return expand("results/permuted_mnist/tables/{run}.tsv", run=permuted_mnist_runs())


# --- Warm starting ---

WARM_START = config["warm_start"]
# What a training job is given (and stores): the section without the keys that only choose
# runs, analyses or cluster resources (see PMNIST_TRAINING).
WARM_START_TRAINING = {
    key: value
    for key, value in WARM_START.items()
    if key
    not in (
        "seeds",
        "variants",
        "correlation_window",
        "threads",
        "gpus",
        "runtime_warmup",
        "runtime_finetune",
        "mem_mb",
    )
}
WARM_START_EPOCHS = checkpoint_epochs(WARM_START)
WARM_START_PARTIAL = "results/warm_start/partial"
WARM_START_FIGURE_NAMES = [
    "nc_metrics",
    "finetune_accuracy",
    "warmup_accuracy",
    "sliding_correlation",
]
WARM_START_DEVICE = config["device"]


# Keys that only one variant or one phase reads. A job is given the training settings without
# the other variants' and the other phase's keys, so that changing, say, nc_reg.lam or
# finetune.max_epochs reruns only the jobs that read it.
WARM_START_VARIANT_KEYS = ("nc_reg", "nc_reg_stable", "l2", "shrink_perturb")
WARM_START_PHASE_KEYS = {
    "warmup": ("warmup_fraction", "warmup_epochs", "checkpoint_every", "feature_dtype"),
    "finetune": ("finetune",),
}


def warm_start_settings(phase):
    """params function: the settings a `phase` job of the wildcards' variant reads."""

    def settings(wildcards):
        variant = wildcards.get("variant", "fresh")
        other_phases = [p for p in WARM_START_PHASE_KEYS if p != phase]
        excluded = {key for key in WARM_START_VARIANT_KEYS if key != variant}
        excluded.update(key for p in other_phases for key in WARM_START_PHASE_KEYS[p])
        return {k: v for k, v in WARM_START_TRAINING.items() if k not in excluded}

    return settings


def check_config():
    """Cross-field rules the JSON schema cannot express, named by their keys."""
    problems = []
    if "permuted_mnist" in config["experiments"]:
        first = PMNIST["first_task"]
        if not first.get("epochs") and not first.get("nc1_thresholds"):
            problems.append(
                "permuted_mnist.first_task: give at least one of `epochs`, `nc1_thresholds`"
            )
        # Run ids carry tau as f"{tau:g}", and the job reads tau back from its run id.
        rounded = [
            tau for tau in first.get("nc1_thresholds", []) if float(f"{tau:g}") != tau
        ]
        if rounded:
            problems.append(
                f"permuted_mnist.first_task.nc1_thresholds: {rounded} have more than 6 "
                "significant digits"
            )
        if PMNIST_ANALYSIS_TASKS > PMNIST["num_tasks"]:
            problems.append(
                f"permuted_mnist.analysis_tasks ({PMNIST_ANALYSIS_TASKS}) exceeds num_tasks "
                f"({PMNIST['num_tasks']})"
            )
    if "warm_start" in config["experiments"] and not WARM_START_EPOCHS:
        problems.append(
            f"warm_start.checkpoint_every ({WARM_START['checkpoint_every']}) exceeds "
            f"warmup_epochs ({WARM_START['warmup_epochs']}): no checkpoint would be taken"
        )
    if problems:
        raise ValueError("invalid configuration: " + "; ".join(problems))


check_config()


def warm_start_checkpoint(wildcards):
    variant = warmup_variant(wildcards.variant)
    return f"results/warm_start/checkpoints/{variant}_s{wildcards.seed}/epoch{wildcards.epoch}.pt"


def warm_start_runs(variants):
    return [f"{v}_s{s}" for v in variants for s in WARM_START["seeds"]]


def warm_start_table_inputs(wildcards):
    warmup_run = f"{warmup_variant(wildcards.variant)}_s{wildcards.seed}"
    return {
        "metrics": f"results/warm_start/metrics/{warmup_run}.tsv",
        "warmup_log": f"results/warm_start/logs/{warmup_run}.tsv",
        "finetune": [
            f"results/warm_start/finetune/{wildcards.variant}_s{wildcards.seed}/epoch{e:04d}.tsv"
            for e in WARM_START_EPOCHS
        ],
        "fresh": f"results/warm_start/finetune/fresh_s{wildcards.seed}.tsv",
    }


def warm_start_figure_inputs(figure):
    variants = WARM_START["variants"]
    if figure == "warmup_accuracy":
        own = dict.fromkeys(warmup_variant(v) for v in variants)
        return expand("results/warm_start/logs/{run}.tsv", run=warm_start_runs(own))
    if figure == "sliding_correlation":
        return ["results/warm_start/analysis/correlations.tsv"]
    return expand("results/warm_start/tables/{run}.tsv", run=warm_start_runs(variants))
