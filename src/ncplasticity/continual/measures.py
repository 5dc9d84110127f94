"""What a continual run measures after each task (DESIGN §3b): the probe's features stored as
the task's snapshot, test accuracy, the registered plasticity measures, the churn and the
training loop's per-step measures, as the task's log row."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np
import torch

from ncplasticity import metrics, plasticity
from ncplasticity.continual.compiled import task_inputs
from ncplasticity.continual.learner import Learner
from ncplasticity.continual.loop import train_epoch
from ncplasticity.continual.scenarios import Task, epoch_order, present_classes, steps_per_epoch
from ncplasticity.features import FeatureWriter
from ncplasticity.interventions import call
from ncplasticity.metrics import ProbeState
from ncplasticity.networks import MLP, parameter_arrays
from ncplasticity.optim import SGD


@dataclass(frozen=True)
class RunParts:
    """What every task's snapshot reads of its run."""

    settings: dict
    seed: int
    learner: Learner
    writer: FeatureWriter
    x_test: np.ndarray
    device: torch.device

    @property
    def model(self) -> MLP:
        return self.learner.model

    @property
    def optimizer(self) -> torch.optim.Optimizer | SGD:
        return self.learner.optimizer


def task_row(parts: RunParts, task_index: int, task: Task, x_task, probe, state) -> dict:
    """Snapshot the probe features and return the task's log row."""
    settings, model, writer, device = parts.settings, parts.model, parts.writer, parts.device
    x_test, initial_parameters = parts.x_test, parts.learner.ctx.initial_parameters
    if task.test_index is not None:
        x_test = x_test[task.test_index]
    progress = state["progress"]
    started = time.perf_counter()
    probe_inputs = task_inputs(x_task, task.permutation, probe)
    features, hidden, pre_activations = probe_features(model, probe_inputs, device, True)
    labels, weight, bias = present_classes(task.y_train[probe], *classifier_arrays(model))
    writer.add_snapshot(
        f"task{task_index:04d}",
        features,
        labels,
        weight,
        bias,
        task=task_index,
        epoch=progress["epochs"],
        step=state["total_steps"],
        split="train",
    )
    call(parts.learner.interventions, "on_probe", parts.learner.ctx, features, labels, weight, bias)
    # In float64 once: every measure computes in float64 (a no-op conversion for it then).
    probe_state = ProbeState(
        features,
        [h.astype(np.float64) for h in hidden],
        parameter_arrays(model),
        initial_parameters,
        pre_activations=[z.astype(np.float64) for z in pre_activations],
    )
    row = {
        "task": task_index,
        "epochs": progress["epochs"],
        "steps": progress["epochs"] * steps_per_epoch(settings, len(x_task)),
        "total_steps": state["total_steps"],
        "online_accuracy": progress["first_accuracy"],
        "online_accuracy_last_epoch": progress["last_accuracy"],
        "online_accuracy_all_epochs": progress["correct"] / max(progress["predictions"], 1),
        "online_loss": progress["first_loss"],
        "first_task_nc1": progress["nc1"],
        "test_accuracy": accuracy_on(model, x_test, task.y_test, task, device),
        # Chance for the classes the task trains on; once degenerate, a run stays so.
        "degenerate": plasticity.degenerate(
            progress["first_accuracy"],
            len(task.classes),
            plasticity.degenerate_so_far(state["rows"]),
        ),
        **{m.name: m.compute(probe_state) for m in metrics.select(computed=True)},
        "churn": churn(parts, task_index, task, x_task, probe_inputs, progress["epochs"], features),
        # Per-step measures of the task's training (every epoch; steps of every
        # loop.PLASTICITY_EVERY-th global step for the plasticity).
        "gradient_norm": progress["grad_norm"] / max(progress["steps"], 1),
        "step_plasticity": (
            progress["plasticity"] / progress["plasticity_steps"]
            if progress["plasticity_steps"]
            else float("nan")
        ),
    }
    row["wall_seconds"] = progress["seconds"] + time.perf_counter() - started
    return row


def churn(
    parts: RunParts, task_index: int, task: Task, x_task, probe_inputs, epochs: int, features
):
    """Mean |logits after − logits before| over the probe (every example and output unit) of
    one more update at the task's end (DESIGN §3b), taken on deep copies of the model and
    optimiser, so training is unchanged. The update is ``train_epoch`` without interventions on
    the first batch (batch size 1: the first sample) of the epoch order the task would train
    next, ``epoch_order(seed, task, epochs)`` (deterministic, and no sample of the task is
    favoured). ``probe_inputs`` are the probe's inputs in the task's pixel order
    (:func:`~ncplasticity.continual.compiled.task_inputs`) and ``features`` its
    penultimate features before the update (from :func:`probe_features`): the logits before are
    the classifier's of them, bit for bit those of a forward pass, which they save."""
    settings, device = parts.settings, parts.device
    batch_size = settings["optimizer"].get("batch_size", 1)
    before = _logits(parts.model.classifier, torch.from_numpy(features).to(device))
    # One deepcopy of both: the optimiser's parameters are the copied model's.
    model, optimizer = copy.deepcopy((parts.model, parts.optimizer))
    order = epoch_order(parts.seed, task_index, epochs, len(x_task))[:batch_size]
    train_epoch(
        model,
        x_task,
        task.y_train,
        order,
        settings["optimizer"]["lr"],
        batch_size,
        task.permutation,
        optimizer=optimizer,
    )
    inputs = torch.from_numpy(probe_inputs).to(device)
    return float(np.abs(_logits(model, inputs) - before).mean())


def _logits(module, inputs) -> np.ndarray:
    module.eval()
    with torch.no_grad():
        return module(inputs).cpu().numpy().astype(np.float64)


def probe_features(model, inputs, device, pre_activations: bool = False) -> tuple:
    """(penultimate features, every hidden layer's activations) of ``inputs`` (in the task's
    pixel order: :func:`~ncplasticity.continual.compiled.task_inputs`), and with
    ``pre_activations`` every hidden layer's pre-activations (before any LayerNorm and the
    ReLU) third; all numpy, from one forward pass."""
    model.eval()
    with torch.no_grad():
        pre, hidden = model.pre_and_post_activations(torch.from_numpy(inputs).to(device))
    hidden = [h.cpu().numpy() for h in hidden]
    if pre_activations:
        return hidden[-1], hidden, [z.cpu().numpy() for z in pre]
    return hidden[-1], hidden


def classifier_arrays(model) -> tuple[np.ndarray, np.ndarray]:
    return (
        model.classifier.weight.detach().cpu().numpy().copy(),
        model.classifier.bias.detach().cpu().numpy().copy(),
    )


def accuracy_on(model, x, y, task: Task, device) -> float:
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(task_inputs(x, task.permutation)).to(device))
    return float((logits.argmax(1).cpu().numpy() == y).mean())
