"""Training epochs of the continual MLP: the compiled batch-1 loop and the autograd loop.

Batch-1 training through PyTorch autograd spends hundreds of microseconds a step on framework
overhead for a network that needs ~0.2 MFLOP. The compiled loop (the sealed wing
:mod:`ncplasticity.continual.compiled`) runs a whole stretch of steps inside numba. Every option
of the experiment (LayerNorm, SGD or Adam, weight decay) and every intervention whose per-step
hooks have a compiled form (``compiled_form``) runs there; the autograd loop serves larger
batches and anything else, and is the plain PyTorch reference the compiled loop is checked
against step by step (its interventions act through their ``loss`` and ``after_step`` hooks).

Both loops record per step: the prediction made before the update and its loss, the norm of
the loss gradient (cross-entropy plus the interventions' loss terms, before weight decay), and
on every ``PLASTICITY_EVERY``-th global step the per-step plasticity
clamp(1 − L(x_t; θ_{t+1}) / L(x_t; θ_t), 0, 1) (NaN on the other steps).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ncplasticity.continual import compiled
from ncplasticity.interventions import HookContext, Intervention, call
from ncplasticity.networks import MLP

# Per-step plasticity costs one extra forward pass; measuring every 10th step keeps that ~3%
# of a step while a task of 4,000 steps still averages 400 measurements.
PLASTICITY_EVERY = 10


@dataclass
class EpochResult:
    """Per-step outcomes of one epoch, in training order."""

    correct: np.ndarray  # bool [steps]: the prediction made before the update was right
    loss: np.ndarray  # float32 [steps]: cross-entropy of that prediction
    grad_norm: np.ndarray  # float32 [steps]: norm of the loss gradient
    plasticity: np.ndarray  # float32 [steps]: per-step plasticity, NaN where not measured

    @property
    def accuracy(self) -> float:
        return float(self.correct.mean())

    @classmethod
    def concatenate(cls, parts: Sequence[EpochResult]) -> EpochResult:
        return cls(
            *(np.concatenate([getattr(p, f) for p in parts]) for f in cls.__dataclass_fields__)
        )


def train_epoch(
    model: MLP,
    x: np.ndarray,
    y: np.ndarray,
    order: np.ndarray,
    lr: float,
    batch_size: int = 1,
    permutation: np.ndarray | None = None,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    interventions: Sequence[Intervention] = (),
    ctx: HookContext | None = None,
) -> EpochResult:
    """One pass over ``x[order]`` (updating ``model`` in place).

    ``x`` is float32 [N, D] (flattened inputs), ``y`` int labels [N], ``order`` the sample
    order, ``permutation`` (optional) the input permutation applied to every sample
    (``x[:, permutation]``), so permuted tasks need no permuted copy of the data.
    ``optimizer`` (kept by the caller across epochs and tasks; plain SGD at ``lr`` when None)
    takes the steps. ``ctx.step`` (global optimiser steps) is advanced; interventions with a
    ``period`` get ``on_period`` after each multiple of it, so the epoch runs in chunks between
    those calls. The compiled loop runs the steps unless :func:`fallback_reason` says why not.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != model.hidden[0].in_features:
        raise ValueError(
            f"train_epoch: inputs must be [N, {model.hidden[0].in_features}], got {x.shape}"
        )
    if permutation is None:
        permutation = np.arange(x.shape[1])
    if optimizer is None:
        optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    ctx = ctx or HookContext(model, optimizer)
    fast = fallback_reason(model, optimizer, interventions, batch_size) is None
    periodic = [i for i in interventions if i.period and type(i).uses("on_period")]
    num_steps = -(-len(order) // batch_size)
    results = []
    for first, last in _chunks(ctx.step, num_steps, [i.period for i in periodic]):
        part = order[first * batch_size : last * batch_size]
        if fast:
            forms = [f for f in call(interventions, "compiled_form", ctx) if f is not None]
            steps = compiled.train_steps(
                model, optimizer, x, y, part, permutation, forms, ctx, PLASTICITY_EVERY
            )
            results.append(EpochResult(*steps))
        else:
            results.append(
                train_epoch_autograd(
                    model, x, y, part, lr, batch_size, permutation, optimizer, interventions, ctx
                )
            )
        for intervention in periodic:
            if ctx.step % intervention.period == 0:
                intervention.on_period(ctx)
    return EpochResult.concatenate(results)


def fallback_reason(
    model: nn.Module, optimizer, interventions: Sequence[Intervention] = (), batch_size: int = 1
) -> str | None:
    """Why an epoch runs in the autograd loop (about 50x slower at batch size 1), or None when
    the compiled loop runs it."""
    if batch_size != 1:
        return f"batch size {batch_size}"
    return compiled.unsupported_reason(model, optimizer, interventions)


def _chunks(step: int, num_steps: int, periods: Sequence[int]) -> list[tuple[int, int]]:
    """(first, last) step ranges of an epoch of ``num_steps`` steps starting after global step
    ``step``, cut after every global multiple of a period."""
    cuts = {num_steps}
    for period in periods:
        cuts.update(range(period - step % period, num_steps, period))
    ends = sorted(c for c in cuts if c > 0)
    return list(zip([0, *ends[:-1]], ends, strict=True))


def train_epoch_autograd(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    order: np.ndarray,
    lr: float,
    batch_size: int,
    permutation: np.ndarray,
    optimizer: torch.optim.Optimizer | None = None,
    interventions: Sequence[Intervention] = (),
    ctx: HookContext | None = None,
) -> EpochResult:
    """The plain PyTorch loop: forward, ``F.cross_entropy`` (+ the interventions' loss terms),
    backward, ``optimizer.step()``, then the interventions' ``after_step`` hooks.

    Serves whatever the compiled loop does not and is the reference the compiled loop is
    tested and benchmarked against. ``optimizer`` defaults to plain SGD at ``lr``;
    ``ctx.step`` counts the steps.
    """
    device = next(model.parameters()).device
    if optimizer is None:
        optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    ctx = ctx or HookContext(model, optimizer)
    with_loss = [i for i in interventions if type(i).uses("loss")]
    after_step = [i for i in interventions if type(i).uses("after_step")]
    inputs = torch.from_numpy(compiled.task_inputs(x, permutation)).to(device)
    targets = torch.from_numpy(np.asarray(y, dtype=np.int64)).to(device)
    order_t = torch.from_numpy(np.asarray(order, dtype=np.int64)).to(device)
    num_steps = -(-len(order) // batch_size)
    correct = torch.empty(len(order), dtype=torch.bool, device=device)
    losses = torch.empty(len(order), dtype=torch.float32, device=device)
    grad_norm = np.empty(num_steps, np.float32)
    plasticity = np.full(num_steps, np.nan, np.float32)
    model.train()
    for step, start in enumerate(range(0, len(order), batch_size)):
        idx = order_t[start : start + batch_size]
        hidden = model.hidden_activations(inputs[idx])
        logits = model.classifier(hidden[-1])
        per_sample = F.cross_entropy(logits, targets[idx], reduction="none")
        loss = per_sample.mean()
        for term in call(with_loss, "loss", ctx, hidden[-1], logits, targets[idx]):
            if term is not None:
                loss = loss + term
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm[step] = torch.sqrt(
            sum(p.grad.double().square().sum() for p in model.parameters() if p.grad is not None)
        )
        optimizer.step()
        call(after_step, "after_step", ctx, [h.detach() for h in hidden], targets[idx])
        if ctx.step % PLASTICITY_EVERY == 0:
            plasticity[step] = _step_plasticity(
                model, inputs[idx], targets[idx], loss_before=per_sample.mean()
            )
        correct[start : start + batch_size] = logits.detach().argmax(1) == targets[idx]
        losses[start : start + batch_size] = per_sample.detach()
        ctx.step += 1
    correct, losses = correct.cpu().numpy(), losses.cpu().numpy()
    if batch_size == 1:
        return EpochResult(correct, losses, grad_norm, plasticity)
    # Per-sample outcomes, per-step measures: repeat each step's for its samples.
    per_step = np.minimum(np.arange(len(order)) // batch_size, num_steps - 1)
    return EpochResult(correct, losses, grad_norm[per_step], plasticity[per_step])


def _step_plasticity(model, inputs, targets, loss_before) -> float:
    """clamp(1 − L(x; θ_{t+1}) / L(x; θ_t), 0, 1) of the step's batch."""
    with torch.no_grad():
        after = F.cross_entropy(model(inputs), targets).item()
    before = loss_before.item()
    return min(max(1.0 - after / before, 0.0), 1.0) if before > 0 else 0.0
