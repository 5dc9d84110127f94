"""Training epochs of the continual MLP: the compiled batch-1 loop and the autograd loop.

Batch-1 training through PyTorch autograd spends hundreds of microseconds a step on framework
overhead for a network that needs ~0.2 MFLOP. The compiled loop (:mod:`.kernel`) runs a whole
stretch of steps inside numba over one flat float32 parameter vector (each layer's weight
transposed to [in, out], its bias, then its LayerNorm weight and bias), with the optimiser's
state and the interventions' state beside it. Every option of the experiment (LayerNorm,
SGD or Adam, weight decay) and every intervention that provides ``kernel_options`` runs there;
the autograd loop serves larger batches and anything else, and is the plain PyTorch reference
the compiled loop is checked against step by step (its interventions act through their
``loss`` and ``after_step`` hooks).

Both loops record per step: the prediction made before the update and its loss, the norm of
the loss gradient (cross-entropy plus the interventions' loss terms, before weight decay), and
on every ``PLASTICITY_EVERY``-th global step the per-step plasticity
clamp(1 − L(x_t; θ_{t+1}) / L(x_t; θ_t), 0, 1) (NaN on the other steps).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ncplasticity import optim
from ncplasticity.continual import kernel, kernel_constants, kernel_forward
from ncplasticity.continual.flat_parameters import (
    flatten,
    layer_sizes,
    load_flat_parameters,
    unflatten,
)
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
    takes the steps. ``ctx.step`` (global optimiser steps) is advanced; interventions with
    ``every`` get ``on_every`` after each multiple of their period, so the epoch runs in chunks
    between those calls. Batch size 1 runs the compiled loop when :func:`compiles`, anything
    else the autograd loop.
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
    compiled = batch_size == 1 and compiles(model, optimizer, interventions)
    periodic = [i for i in interventions if i.every and type(i).uses("on_every")]
    num_steps = -(-len(order) // batch_size)
    results = []
    first_step = ctx.step
    for first, last in _chunks(first_step, num_steps, [i.every for i in periodic]):
        part = order[first * batch_size : last * batch_size]
        if compiled:
            results.append(
                _train_compiled(model, x, y, part, permutation, optimizer, interventions, ctx)
            )
        else:
            results.append(
                train_epoch_autograd(
                    model, x, y, part, lr, batch_size, permutation, optimizer, interventions, ctx
                )
            )
        for intervention in periodic:
            if ctx.step % intervention.every == 0:
                intervention.on_every(ctx)
    return EpochResult.concatenate(results)


def compiles(model: nn.Module, optimizer, interventions: Sequence[Intervention] = ()) -> bool:
    """Whether the compiled batch-1 loop implements this update: the MLP (with or without
    LayerNorm), one parameter group of SGD without momentum or of Adam without amsgrad, and
    interventions whose per-step hooks (``loss``, ``after_step``) all have a compiled form
    (``kernel_options``)."""
    groups = optimizer.param_groups
    if len(groups) != 1 or not isinstance(model, MLP):
        return False
    if type(optimizer) in (torch.optim.SGD, optim.SGD):
        supported = groups[0]["momentum"] == 0 and not groups[0]["nesterov"]
    elif type(optimizer) is torch.optim.Adam:
        supported = not groups[0]["amsgrad"] and not groups[0].get("decoupled_weight_decay")
    else:
        supported = False
    per_step = ("loss", "after_step")
    return supported and all(
        hasattr(i, "kernel_options") or not any(type(i).uses(h) for h in per_step)
        for i in interventions
    )


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
    inputs = torch.from_numpy(kernel_forward.task_inputs(x, permutation)).to(device)
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


# Kernel state rows of the per-unit array that interventions may own, by name.
_UNIT_ROWS = {
    "redo_sum": kernel_constants.U_REDO_SUM,
    "cbp_util": kernel_constants.U_CBP_UTIL,
    "cbp_age": kernel_constants.U_CBP_AGE,
    "cbp_mean": kernel_constants.U_CBP_MEAN,
}
_HP = {
    "init_decay": kernel_constants.H_INIT_DECAY,
    "noise_std": kernel_constants.H_NOISE_STD,
    "dial": kernel_constants.H_DIAL,
    "redo_every": kernel_constants.H_REDO_EVERY,
    "redo_tau": kernel_constants.H_REDO_TAU,
    "cbp_rate": kernel_constants.H_CBP_RATE,
    "cbp_maturity": kernel_constants.H_CBP_MATURITY,
    "cbp_decay": kernel_constants.H_CBP_DECAY,
}
_COUNTS = {
    "redo_resets": kernel_constants.C_REDO_RESETS,
    "cbp_replaced": kernel_constants.C_CBP_REPLACED,
}


def _train_compiled(model, x, y, order, permutation, optimizer, interventions, ctx) -> EpochResult:
    """Run ``order`` through the compiled loop: the model, optimiser and intervention states go
    into flat arrays and come back after."""
    group = optimizer.param_groups[0]
    adam = type(optimizer) is torch.optim.Adam
    sizes = layer_sizes(model)
    params = flatten(model)
    hp = np.zeros(kernel_constants.NUM_HP)
    hp[kernel_constants.H_LR] = group["lr"]
    hp[kernel_constants.H_WEIGHT_DECAY] = group["weight_decay"]
    hp[kernel_constants.H_LAYER_NORM] = model.layer_norm
    hp[kernel_constants.H_PLASTICITY_EVERY] = PLASTICITY_EVERY
    counters = np.zeros(kernel_constants.NUM_COUNTERS, np.int64)
    counters[kernel_constants.C_STEP] = ctx.step
    counters[kernel_constants.C_SEED] = ctx.seed
    if adam:
        hp[kernel_constants.H_ADAM] = 1
        hp[kernel_constants.H_BETA1], hp[kernel_constants.H_BETA2] = group["betas"]
        hp[kernel_constants.H_EPS] = group["eps"]
        states = [optimizer.state.get(p, {}) for p in model.parameters()]
        first = not states[0]
        opt_m = np.zeros_like(params) if first else flatten(model, [s["exp_avg"] for s in states])
        opt_v = (
            np.zeros_like(params) if first else flatten(model, [s["exp_avg_sq"] for s in states])
        )
        counters[kernel_constants.C_ADAM_STEP] = 0 if first else int(states[0]["step"])
    else:
        opt_m = opt_v = np.zeros(0, np.float32)
    n_layers = len(sizes) - 1
    state = {
        "init_params": np.zeros(0, np.float32),
        "cbp_counter": np.zeros(n_layers - 1),
        "dial_mean": np.zeros((sizes[-1], sizes[-2]), np.float32),
        "dial_count": np.zeros(sizes[-1], np.int64),
        "dial_penalty": np.zeros(2),
        "noise_table": np.zeros(1, np.float32),
    }
    units = np.zeros((4, int(sizes[1:-1].sum())))
    owners = []
    for intervention in interventions:
        if not hasattr(intervention, "kernel_options"):
            continue
        options, arrays = intervention.kernel_options(ctx)
        for key, value in options.items():
            hp[_HP[key]] = value
        for key, array in arrays.items():
            if key in _UNIT_ROWS:
                units[_UNIT_ROWS[key]] = array
            elif key not in _COUNTS:
                state[key] = array
        owners.append(arrays)
    steps = len(order)
    result = EpochResult(
        np.empty(steps, np.bool_),
        np.empty(steps, np.float32),
        np.empty(steps, np.float32),
        np.empty(steps, np.float32),
    )
    with _denormals_flushed() if adam else contextlib.nullcontext():
        kernel.run_steps(
            params,
            state["init_params"],
            opt_m,
            opt_v,
            sizes,
            kernel_forward.layout(sizes, model.layer_norm)[0],
            hp,
            counters,
            units,
            state["cbp_counter"],
            state["dial_mean"],
            state["dial_count"],
            state["dial_penalty"],
            state["noise_table"],
            x,
            np.asarray(y, dtype=np.int64),
            np.asarray(order, dtype=np.int64),
            np.asarray(permutation, dtype=np.int64),
            result.correct,
            result.loss,
            result.grad_norm,
            result.plasticity,
        )
    load_flat_parameters(model, params)
    if adam:
        for p, m, v in zip(
            model.parameters(), unflatten(model, opt_m), unflatten(model, opt_v), strict=True
        ):
            s = optimizer.state[p]
            s["step"] = torch.tensor(float(counters[kernel_constants.C_ADAM_STEP]))
            s["exp_avg"] = torch.from_numpy(m)
            s["exp_avg_sq"] = torch.from_numpy(v)
    for arrays in owners:
        for key, array in arrays.items():
            if key in _UNIT_ROWS:
                array[:] = units[_UNIT_ROWS[key]]
            elif key in _COUNTS:
                array += counters[_COUNTS[key]]
    ctx.step = int(counters[kernel_constants.C_STEP])
    return result


@contextlib.contextmanager
def _denormals_flushed():
    """Denormal floats flushed to zero (FTZ/DAZ) in this thread for the block. Adam's moments
    of a weight whose gradient stays zero (the rows of zero pixels) decay into the denormal
    range and stick there (0.1·m rounds to zero, so m − 0.1·m = m), and every operation on a
    denormal costs ~100 cycles: that nearly doubled the compiled Adam step. The weights are
    unchanged by it, since an update from such a moment is far below any weight's ulp."""
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)
