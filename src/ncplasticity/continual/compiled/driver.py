"""The wing's entry point: a stretch of batch-1 steps of the continual MLP in the compiled loop.
The model, the optimiser's state and the compiled forms' states go into flat arrays, the
specialised step loop runs, and everything comes back."""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Sequence

import numpy as np
import torch

from ncplasticity import optim
from ncplasticity.continual.compiled import constants as slots
from ncplasticity.continual.compiled.flat_parameters import flatten, plan, unflatten
from ncplasticity.continual.compiled.form import CompiledForm
from ncplasticity.continual.compiled.forward import sparse_rows
from ncplasticity.continual.compiled.specialise import run_steps_for
from ncplasticity.interventions import HookContext, Intervention
from ncplasticity.networks import MLP

# The hooks an intervention runs on every step: without a compiled form it needs the autograd
# loop.
_PER_STEP_HOOKS = ("loss", "after_step")


def unsupported_reason(model, optimizer, interventions: Sequence[Intervention] = ()) -> str | None:
    """Why the compiled loop cannot run this update, or None when it can: it runs the MLP
    (with or without LayerNorm), one parameter group of SGD without momentum or of Adam without
    amsgrad, and interventions whose per-step hooks all have a compiled form."""
    if not isinstance(model, MLP):
        return f"model {type(model).__name__} is not the continual MLP"
    groups = optimizer.param_groups
    if len(groups) != 1:
        return f"{len(groups)} parameter groups"
    if type(optimizer) in (torch.optim.SGD, optim.SGD):
        if groups[0]["momentum"] != 0 or groups[0]["nesterov"]:
            return "SGD with momentum"
    elif type(optimizer) is torch.optim.Adam:
        if groups[0]["amsgrad"] or groups[0].get("decoupled_weight_decay"):
            return "Adam with amsgrad or decoupled weight decay"
    else:
        return f"optimiser {type(optimizer).__name__}"
    for intervention in interventions:
        kind = type(intervention)
        if not kind.uses("compiled_form") and any(kind.uses(h) for h in _PER_STEP_HOOKS):
            return f"intervention {intervention.name!r} has no compiled form"
    return None


def train_steps(
    model: MLP,
    optimizer,
    x: np.ndarray,
    y: np.ndarray,
    order: np.ndarray,
    permutation: np.ndarray,
    forms: Sequence[CompiledForm],
    ctx: HookContext,
    plasticity_every: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Batch-1 steps over ``x[order]`` (inputs in ``permutation``'s pixel order), updating the
    model, the optimiser's state and the forms' states in place and advancing ``ctx.step``;
    returns per step (correct, loss, gradient norm, per-step plasticity or NaN)."""
    group = optimizer.param_groups[0]
    adam = type(optimizer) is torch.optim.Adam
    layout = plan(model)
    params = layout.gather()
    hp = np.zeros(slots.NUM_HP)
    hp[slots.H_LR] = group["lr"]
    hp[slots.H_WEIGHT_DECAY] = group["weight_decay"]
    hp[slots.H_LAYER_NORM] = model.layer_norm
    hp[slots.H_PLASTICITY_EVERY] = plasticity_every
    counters = np.zeros(slots.NUM_COUNTERS, np.int64)
    counters[slots.C_STEP] = ctx.step
    counters[slots.C_SEED] = ctx.seed
    decaying = [form for form in forms if form.decay_to_initial]
    if len(decaying) > 1:
        raise ValueError("two interventions decay the weights toward their initial values")
    init_params = np.zeros(0, np.float32)
    if decaying:
        if ctx.initial_parameters is None:
            raise ValueError("a decay toward θ₀ needs the run's initial parameters in the context")
        hp[slots.H_INIT_DECAY] = decaying[0].decay_to_initial
        init_params = flatten(model, ctx.initial_parameters)
    if adam:
        hp[slots.H_ADAM] = 1
        hp[slots.H_BETA1], hp[slots.H_BETA2] = group["betas"]
        hp[slots.H_EPS] = group["eps"]
        states = [optimizer.state.get(p, {}) for p in model.parameters()]
        first = not states[0]
        opt_m = np.zeros_like(params) if first else flatten(model, [s["exp_avg"] for s in states])
        opt_v = (
            np.zeros_like(params) if first else flatten(model, [s["exp_avg_sq"] for s in states])
        )
        counters[slots.C_ADAM_STEP] = 0 if first else int(states[0]["step"])
    else:
        opt_m = opt_v = np.zeros(0, np.float32)
    steps = len(order)
    record = (
        np.empty(steps, np.bool_),
        np.empty(steps, np.float32),
        np.empty(steps, np.float32),
        np.empty(steps, np.float32),
    )
    run_steps = run_steps_for(forms)
    # An empty tuple has no numba type of its own: a form-less loop gets one unused array.
    hook_states = tuple(form.state for form in forms if form.has_functions) or (np.zeros(0),)
    with _denormals_flushed() if adam else contextlib.nullcontext():
        run_steps(
            params,
            init_params,
            opt_m,
            opt_v,
            layout.sizes,
            layout.offsets,
            hp,
            counters,
            hook_states,
            *_sparse_inputs(x),
            np.asarray(y, dtype=np.int64),
            np.asarray(order, dtype=np.int64),
            np.argsort(np.asarray(permutation, dtype=np.int64)),
            *record,
        )
    layout.scatter(params)
    if adam:
        for p, m, v in zip(
            model.parameters(), unflatten(model, opt_m), unflatten(model, opt_v), strict=True
        ):
            s = optimizer.state[p]
            s["step"] = torch.tensor(float(counters[slots.C_ADAM_STEP]))
            s["exp_avg"] = torch.from_numpy(m)
            s["exp_avg_sq"] = torch.from_numpy(v)
    ctx.step = int(counters[slots.C_STEP])
    return record


# The last inputs' compressed rows, keyed by the array itself: a job trains every task on one
# data set, and a task's steps come in several calls (chunks, epochs). Inputs are read as
# immutable, as everywhere in the training loop.
_SPARSE: tuple[weakref.ref, tuple] | None = None


def _sparse_inputs(x: np.ndarray) -> tuple:
    global _SPARSE
    if _SPARSE is None or _SPARSE[0]() is not x:
        _SPARSE = (weakref.ref(x), sparse_rows(x))
    return _SPARSE[1]


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
