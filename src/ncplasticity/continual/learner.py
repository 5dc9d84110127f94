"""The learner of a continual run: its network, optimiser, interventions and hook context, one
epoch of a task as the scenario presents it, and the fresh reference (``pl_fresh``, DESIGN
§3d): the same learner, freshly initialised, on the same task."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ncplasticity.continual.heads import zero_classifier
from ncplasticity.continual.interventions import REGISTRY
from ncplasticity.continual.loop import EpochResult, train_epoch
from ncplasticity.continual.scenarios import INIT_STREAM, Scenario, Task, epoch_order
from ncplasticity.interventions import HookContext, call, optimizer_options
from ncplasticity.networks import MLP, parameter_arrays
from ncplasticity.optim import SGD

# The salt of the fresh reference's network among the fresh models of a task (the
# interventions' fresh_model salts are small: shrink_perturb takes 0).
FRESH_REFERENCE_SALT = 2**31 - 1


@dataclass
class Learner:
    model: MLP
    optimizer: torch.optim.Optimizer | SGD
    interventions: list
    ctx: HookContext


def build_model(settings: dict, in_features: int, num_classes: int) -> MLP:
    network = settings["network"]
    return MLP(in_features, network["hidden_sizes"], num_classes, network.get("layer_norm", False))


def build_optimizer(settings: dict, model, interventions):
    """``torch.optim.Adam``, or plain SGD as :class:`ncplasticity.optim.SGD` (torch's update
    without the 2.5–3 s import of ``torch._dynamo`` that any ``torch.optim`` optimiser costs)."""
    spec = settings["optimizer"]
    options = optimizer_options(interventions)
    if spec.get("name", "sgd") == "adam":
        betas = tuple(spec.get("betas", (0.9, 0.999)))
        return torch.optim.Adam(
            model.parameters(), lr=spec["lr"], betas=betas, eps=spec.get("eps", 1e-8), **options
        )
    return SGD(model.parameters(), lr=spec["lr"], **options)


def seeded_model(settings, in_features, num_outputs, device, entropy: list[int]) -> MLP:
    """A network of the run's initial distribution seeded by ``entropy``, leaving torch's
    global random state as it was."""
    seed = int(np.random.SeedSequence(entropy).generate_state(1)[0])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model(settings, in_features, num_outputs).to(device)


def new_learner(settings, seed, model, scenario: Scenario, step: int = 0) -> Learner:
    """The run's learner around ``model`` (a new head zeroed first where the scenario has
    new or separate heads, so that θ₀ is where training starts): the configured optimiser
    and interventions, and their hook context, whose fresh models are of the context's task."""
    if scenario.new_head or scenario.head(seed, 0) is not None:
        zero_classifier(model)
    interventions = REGISTRY.build(settings["interventions"])
    optimizer = build_optimizer(settings, model, interventions)
    in_features, num_outputs = model.hidden[0].in_features, model.classifier.out_features
    device = next(model.parameters()).device

    def fresh_model(salt: int) -> MLP:
        entropy = [seed, INIT_STREAM, ctx.task, salt]
        return seeded_model(settings, in_features, num_outputs, device, entropy)

    ctx = HookContext(
        model,
        optimizer,
        seed=seed,
        step=step,
        fresh_model=fresh_model,
        initial_parameters=parameter_arrays(model),  # θ₀, before any resumed state is loaded
    )
    return Learner(model, optimizer, interventions, ctx)


def train_task_epoch(
    learner: Learner, settings, scenario: Scenario, task_index: int, task: Task, x_task
) -> EpochResult:
    """Epoch ``learner.ctx.epoch`` of task ``task_index``: the task's examples ``x_task`` in
    the epoch's seeded order, as the scenario presents them."""
    seed, epoch = learner.ctx.seed, learner.ctx.epoch
    order = epoch_order(seed, task_index, epoch, len(x_task))
    x, y, order, permutation = scenario.epoch_inputs(seed, task_index, task, x_task, order)
    return train_epoch(
        learner.model,
        x,
        y,
        order,
        settings["optimizer"]["lr"],
        settings["optimizer"].get("batch_size", 1),
        permutation,
        optimizer=learner.optimizer,
        interventions=learner.interventions,
        ctx=learner.ctx,
    )


def fresh_online_accuracy(
    settings, seed: int, scenario: Scenario, task_index: int, task: Task, x_task, run_model: MLP
) -> float:
    """The online accuracy (first epoch, as the run's ``online_accuracy``) of the run's
    learner freshly initialised — a network shaped like ``run_model`` of the run's initial
    distribution seeded by (seed, task), its own optimiser state and interventions — on task
    ``task_index`` with the run's budget, on the path (compiled or autograd) the run trains on.
    Online accuracy is measured over the first epoch, so the task's later epochs, which could
    not change it, are not run."""
    in_features, num_outputs = run_model.hidden[0].in_features, run_model.classifier.out_features
    device = next(run_model.parameters()).device
    entropy = [seed, INIT_STREAM, task_index, FRESH_REFERENCE_SALT]
    model = seeded_model(settings, in_features, num_outputs, device, entropy)
    learner = new_learner(settings, seed, model, scenario)
    learner.ctx.task = task_index
    call(learner.interventions, "on_task_start", learner.ctx)
    return train_task_epoch(learner, settings, scenario, task_index, task, x_task).accuracy
