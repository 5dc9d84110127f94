"""Fixtures shared by test modules: the prepared mnist5k data set, the warm-start toy
intervention, and the local run of configs/smoke.yaml."""

import pytest
from slurm.workflow_runs import local_smoke_run

from ncplasticity.data import prepare_dataset
from ncplasticity.interventions import Intervention
from ncplasticity.warm_start.interventions import REGISTRY


class EpochCounter(Intervention):
    """A toy intervention: counts epochs (state that must survive a resume), adds a small
    logit penalty and sets the optimiser's momentum (whose buffers must survive one too)."""

    name = "test_epoch_counter"
    phase = "warmup"
    calls: list = []  # (epoch, count) of every on_epoch_end call, across instances

    def __init__(self, **params):
        super().__init__(**params)
        self.count = 0

    def optimizer_options(self):
        return {"momentum": 0.9}

    def loss(self, ctx, features, logits, targets):
        return 1e-3 * logits.float().pow(2).mean()

    def on_epoch_end(self, ctx):
        self.count += 1
        EpochCounter.calls.append((ctx.epoch, self.count))

    def state_dict(self):
        return {"count": self.count}

    def load_state_dict(self, state):
        self.count = state["count"]


@pytest.fixture
def epoch_counter():
    REGISTRY.register(EpochCounter)
    EpochCounter.calls = []
    yield EpochCounter
    REGISTRY.unregister(EpochCounter.name)


@pytest.fixture(scope="session")
def dataset(tmp_path_factory):
    """mnist5k prepared once per session (the continual tests train on it)."""
    path = tmp_path_factory.mktemp("data") / "mnist5k.npz"
    prepare_dataset("mnist5k", tmp_path_factory.mktemp("root"), path)
    return path


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """The scratch copy in which configs/smoke.yaml ran to completion, once per session."""
    return local_smoke_run(tmp_path_factory)
