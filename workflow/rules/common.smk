# Helpers shared by every stage: run ids, targets, resources.

import json
import os

# Jobs import the package from this checkout, also inside `--sdm conda` environments (which
# carry only third-party dependencies) and on cluster nodes that re-read this file.
_SRC = os.path.join(workflow.basedir, "src")
_PYTHONPATH = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
if _SRC not in _PYTHONPATH:
    os.environ["PYTHONPATH"] = os.pathsep.join([_SRC, *_PYTHONPATH])

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
