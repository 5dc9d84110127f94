# Helpers shared by every stage: run ids, targets, resources.

import json


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


def config_json(section):
    """The experiment's config section as canonical JSON (stored in every HDF5 file)."""
    return json.dumps(config[section], sort_keys=True)


def dataset_file(name):
    return f"results/data/{name}.npz"


wildcard_constraints:
    experiment="permuted_mnist|warm_start",
    run="[^/]+",
    dataset="mnist5k|mnist|cifar10",
