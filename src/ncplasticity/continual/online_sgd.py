"""SGD epochs for the MLP, with a compiled fast path for batch size 1 (online learning).

Batch-1 SGD through PyTorch autograd spends hundreds of microseconds a step on framework
overhead for a network that needs ~0.2 MFLOP. The fast path runs a whole epoch inside one
numba-compiled loop over preallocated float32 buffers and skips the multiply-adds of zero
inputs (MNIST pixels are ~80% zero, ReLU outputs about half), which leaves it a few
microseconds a step. Both paths implement the same update: plain SGD on the cross-entropy of
the batch mean, with the online prediction (made before each update) recorded per sample.

Weights live in the torch model between epochs; the fast path copies them into one flat
array (each layer's weight transposed to [in, out], then its bias) and back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from numba import njit
from torch import nn

from ncplasticity.interventions import HookContext, Intervention, call
from ncplasticity.models import MLP

# Reassociation lets LLVM vectorise the dot products of the backward pass; no-NaN/no-inf
# flags are left out so that a diverging run still shows NaNs.
_FASTMATH = {"reassoc", "contract", "nsz", "arcp"}


@dataclass
class EpochResult:
    """Per-sample outcomes of one epoch, in training order."""

    correct: np.ndarray  # bool [steps]: the prediction made before the update was right
    loss: np.ndarray  # float32 [steps]: cross-entropy of that prediction

    @property
    def accuracy(self) -> float:
        return float(self.correct.mean())


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
    takes the steps. Interventions with ``every`` get ``on_every`` after each multiple of
    their period (counted in optimiser steps from ``ctx.step``, which is advanced), so the
    epoch runs in chunks between those calls. Plain SGD at batch size 1 without loss hooks runs
    the compiled loop, anything else the autograd loop.
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
    for first, last in _chunks(ctx.step, num_steps, [i.every for i in periodic]):
        part = order[first * batch_size : last * batch_size]
        if compiled:
            results.append(_train_epoch_compiled(model, x, y, part, optimizer, permutation))
        else:
            results.append(
                train_epoch_autograd(
                    model, x, y, part, lr, batch_size, permutation, optimizer, interventions, ctx
                )
            )
        ctx.step += last - first
        for intervention in periodic:
            if ctx.step % intervention.every == 0:
                intervention.on_every(ctx)
    return EpochResult(
        np.concatenate([r.correct for r in results]), np.concatenate([r.loss for r in results])
    )


def compiles(model: nn.Module, optimizer, interventions: Sequence[Intervention] = ()) -> bool:
    """Whether the compiled batch-1 loop implements this update: the plain MLP, one group of
    SGD without momentum or weight decay, and no intervention adding a loss term or optimiser
    option."""
    groups = optimizer.param_groups
    plain_sgd = (
        type(optimizer) is torch.optim.SGD
        and len(groups) == 1
        and groups[0]["momentum"] == 0
        and groups[0]["weight_decay"] == 0
    )
    hooks_in_step = ("loss", "optimizer_options")
    return (
        plain_sgd
        and isinstance(model, MLP)
        and not model.layer_norm
        and not any(type(i).uses(hook) for i in interventions for hook in hooks_in_step)
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
    backward, ``optimizer.step()``.

    Serves whatever the compiled loop does not and is the reference the compiled path is
    tested and benchmarked against. ``optimizer`` defaults to plain SGD at ``lr``.
    """
    device = next(model.parameters()).device
    if optimizer is None:
        optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    with_loss = [i for i in interventions if type(i).uses("loss")]
    inputs = torch.from_numpy(np.ascontiguousarray(x[:, permutation])).to(device)
    targets = torch.from_numpy(np.asarray(y, dtype=np.int64)).to(device)
    order_t = torch.from_numpy(np.asarray(order, dtype=np.int64)).to(device)
    correct = torch.empty(len(order), dtype=torch.bool, device=device)
    losses = torch.empty(len(order), dtype=torch.float32, device=device)
    model.train()
    for start in range(0, len(order), batch_size):
        idx = order_t[start : start + batch_size]
        features = model.features(inputs[idx])
        logits = model.classifier(features)
        per_sample = F.cross_entropy(logits, targets[idx], reduction="none")
        loss = per_sample.mean()
        for term in call(with_loss, "loss", ctx, features, logits, targets[idx]):
            if term is not None:
                loss = loss + term
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        correct[start : start + batch_size] = logits.detach().argmax(1) == targets[idx]
        losses[start : start + batch_size] = per_sample.detach()
    return EpochResult(correct.cpu().numpy(), losses.cpu().numpy())


def flat_parameters(model: MLP) -> tuple[np.ndarray, np.ndarray]:
    """The MLP's parameters as (flat float32 array, layer sizes) in the compiled layout."""
    layers = [*model.hidden, model.classifier]
    sizes = np.array([layers[0].in_features] + [layer.out_features for layer in layers])
    parts = []
    for layer in layers:
        parts.append(layer.weight.detach().cpu().numpy().T.ravel())
        parts.append(layer.bias.detach().cpu().numpy())
    return np.concatenate(parts).astype(np.float32), sizes.astype(np.int64)


def load_flat_parameters(model: MLP, params: np.ndarray) -> None:
    """Write a flat array from :func:`flat_parameters` back into the MLP."""
    pos = 0
    with torch.no_grad():
        for layer in [*model.hidden, model.classifier]:
            n_out, n_in = layer.weight.shape
            weight_t = params[pos : pos + n_in * n_out].reshape(n_in, n_out)
            layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(weight_t.T)))
            pos += n_in * n_out
            layer.bias.copy_(torch.from_numpy(params[pos : pos + n_out].copy()))
            pos += n_out


def _train_epoch_compiled(model, x, y, order, optimizer, permutation) -> EpochResult:
    lr = optimizer.param_groups[0]["lr"]
    params, sizes = flat_parameters(model)
    steps = len(order)
    correct = np.empty(steps, dtype=np.bool_)
    loss = np.empty(steps, dtype=np.float32)
    _sgd_steps(
        params,
        sizes,
        x,
        np.asarray(y, dtype=np.int64),
        np.asarray(order, dtype=np.int64),
        np.asarray(permutation, dtype=np.int64),
        np.float32(lr),
        correct,
        loss,
    )
    load_flat_parameters(model, params)
    return EpochResult(correct, loss)


@njit(cache=True, fastmath=_FASTMATH)
def _sgd_steps(params, sizes, x, y, order, permutation, lr, correct, loss):
    """Batch-1 SGD over ``order``; ``params`` is updated in place (layout: flat_parameters)."""
    n_layers = sizes.shape[0] - 1
    w_off = np.empty(n_layers, np.int64)
    b_off = np.empty(n_layers, np.int64)
    a_off = np.empty(n_layers + 1, np.int64)  # acts[a_off[l]:] = input of layer l; last = logits
    pos = 0
    apos = 0
    widest = 0
    for layer in range(n_layers):
        w_off[layer] = pos
        pos += sizes[layer] * sizes[layer + 1]
        b_off[layer] = pos
        pos += sizes[layer + 1]
        a_off[layer] = apos
        apos += sizes[layer]
        widest = max(widest, sizes[layer + 1])
    a_off[n_layers] = apos
    acts = np.zeros(apos + sizes[n_layers], np.float32)
    delta = np.zeros(widest, np.float32)
    delta_prev = np.zeros(widest, np.float32)
    active = np.zeros(apos, np.int64)  # per layer input: indices of the nonzero entries
    n_active = np.zeros(n_layers, np.int64)
    n_classes = sizes[n_layers]

    for step in range(order.shape[0]):
        sample = order[step]
        inputs = acts[: sizes[0]]
        for k in range(sizes[0]):
            inputs[k] = x[sample, permutation[k]]

        # Forward: out = b + sum over nonzero inputs i of a_i * W^T[i, :]. Loops run over
        # array views: with offsets into one flat array LLVM does not vectorise them.
        for layer in range(n_layers):
            n_in = sizes[layer]
            n_out = sizes[layer + 1]
            a_in = acts[a_off[layer] : a_off[layer] + n_in]
            a_out = acts[a_off[layer + 1] : a_off[layer + 1] + n_out]
            bias = params[b_off[layer] : b_off[layer] + n_out]
            # Indices of the nonzero inputs, gathered without branches (a data-dependent
            # branch per input costs more in mispredictions than the arithmetic it skips).
            nz = active[a_off[layer] : a_off[layer] + n_in]
            count = 0
            for i in range(n_in):
                nz[count] = i
                count += a_in[i] != 0
            n_active[layer] = count
            for o in range(n_out):
                a_out[o] = bias[o]
            for k in range(count):
                i = nz[k]
                v = a_in[i]
                row = params[w_off[layer] + i * n_out : w_off[layer] + (i + 1) * n_out]
                for o in range(n_out):
                    a_out[o] += v * row[o]
            if layer < n_layers - 1:
                for o in range(n_out):
                    if a_out[o] < 0:
                        a_out[o] = 0

        # Softmax cross-entropy; prediction = first maximal logit (as torch.argmax).
        logits = acts[a_off[n_layers] :]
        label = y[sample]
        best = 0
        for c in range(1, n_classes):
            if logits[c] > logits[best]:
                best = c
        top = logits[best]
        total = 0.0
        for c in range(n_classes):
            total += np.exp(np.float64(logits[c] - top))
        correct[step] = best == label
        loss[step] = np.float32(np.log(total) - (logits[label] - top))
        for c in range(n_classes):
            p = np.exp(np.float64(logits[c] - top)) / total
            delta[c] = np.float32(p - (1.0 if c == label else 0.0))

        # Backward and update, layer by layer: each weight row W^T[i, :] first gives the
        # gradient of input i (with the old weights), then takes its update. Zero inputs
        # (ReLU inactive, or blank pixels) have zero gradient and no update.
        for layer in range(n_layers - 1, -1, -1):
            n_in = sizes[layer]
            n_out = sizes[layer + 1]
            a_in = acts[a_off[layer] : a_off[layer] + n_in]
            d_out = delta[:n_out]
            nz = active[a_off[layer] : a_off[layer] + n_in]
            if layer > 0:
                for i in range(n_in):
                    delta_prev[i] = 0
            for k in range(n_active[layer]):
                i = nz[k]
                v = a_in[i]
                row = params[w_off[layer] + i * n_out : w_off[layer] + (i + 1) * n_out]
                if layer > 0:
                    g = np.float32(0.0)
                    for o in range(n_out):
                        g += row[o] * d_out[o]
                    delta_prev[i] = g
                for o in range(n_out):
                    row[o] -= lr * (v * d_out[o])
            bias = params[b_off[layer] : b_off[layer] + n_out]
            for o in range(n_out):
                bias[o] -= lr * d_out[o]
            delta, delta_prev = delta_prev, delta
