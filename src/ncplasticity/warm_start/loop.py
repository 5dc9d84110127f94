"""The one training loop of warm starting (:func:`fit`): the warm-up, the fine-tuning of a
checkpoint and the fresh-init reference.

Data sit on the device as uint8 tensors and are normalised per batch (no DataLoader, no
per-image transforms); each epoch's shuffle comes from a generator seeded by (seed, phase,
epoch), and the loop saves its whole state after every epoch through a
:class:`~ncplasticity.jobs.ResumableJob`, so a killed job that is rerun continues bitwise
identically on CPU (on CUDA, cuDNN's algorithm choice can make the continuation differ in the
last bits).

Interventions act through their hooks: ``optimizer_options`` (e.g. ``weight_decay``), ``loss``
(a term added to each mini-batch loss; the NC regularisers report the batch NC1 in
``ctx.extra["batch_nc1"]``) and ``on_epoch_end``.

A run diverges when its epoch loss or penalty is not finite or a parameter is; it then stops. A
collapse of training accuracy (below half the best so far, once that best reached 0.5, as the
paper's NC regulariser does) is logged as ``collapsed`` and training goes on; so is
``degenerate`` (DESIGN §3b): from the first epoch whose training accuracy is within 0.05 of
chance (1 / the number of classes) onwards (:func:`ncplasticity.plasticity.degenerate`).
"""

from __future__ import annotations

import functools
import logging
import math
import operator
import time
from contextlib import contextmanager, nullcontext
from copy import deepcopy

import numpy as np
import torch
import torch.nn.functional as F

from ncplasticity.interventions import HookContext, call, optimizer_options
from ncplasticity.optim import SGD
from ncplasticity.plasticity import LEARNED_ACCURACY, degenerate, degenerate_so_far
from ncplasticity.runlog import progress_line

log = logging.getLogger(__name__)

# Accuracy collapse: training accuracy below this fraction of the best so far ...
COLLAPSE_FRACTION = 0.5
# ... once the best so far has reached this accuracy (a run that never does never learned).
COLLAPSE_MIN_BEST = LEARNED_ACCURACY
EVAL_BATCH = 1024
# Steps of an epoch run as usual before the step is recorded as a CUDA graph (train_epoch).
GRAPH_WARMUP = 3
# The per-epoch rows of :func:`fit`.
ROW_COLUMNS = [
    "epoch",
    "train_loss",
    "train_accuracy",
    "test_accuracy",
    "regularizer",
    "batch_nc1",
    "wall_seconds",
    "diverged",
    "collapsed",
    "degenerate",
]
# Phase codes in the seeds of the per-epoch generators and of initialisations.
WARMUP, FINETUNE, INIT, PERTURB, SPLIT = range(5)
# The training phases as progress lines name them.
PHASE_NAMES = {WARMUP: "warm-up", FINETUNE: "fine-tune"}
# Within an epoch, a progress line at most this often (seconds).
PROGRESS_SECONDS = 30.0


def derived_seed(*parts: int) -> int:
    """A seed derived from ``parts``. Up to four 32-bit parts, trailing zeros do not change
    it (numpy's SeedSequence pads its entropy with zeros): a salt of 0 keeps earlier seeds."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])


class DeviceData:
    """A prepared dataset held on the device as uint8, normalised batch by batch."""

    def __init__(self, dataset, device: torch.device, channels_last: bool):
        self.device = device
        self.channels_last = channels_last
        self.num_classes = int(dataset.num_classes)
        self.in_channels = int(dataset.x_train.shape[1])
        self.x_train = torch.as_tensor(dataset.x_train, device=device)
        self.y_train = torch.as_tensor(dataset.y_train, dtype=torch.int64, device=device)
        self.x_test = torch.as_tensor(dataset.x_test, device=device)
        self.y_test = torch.as_tensor(dataset.y_test, dtype=torch.int64, device=device)
        self.mean = torch.as_tensor(dataset.mean, dtype=torch.float32, device=device)[:, None, None]
        self.std = torch.as_tensor(dataset.std, dtype=torch.float32, device=device)[:, None, None]

    def batch(self, x_uint8: torch.Tensor) -> torch.Tensor:
        x = (x_uint8.to(torch.float32) / 255.0 - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


def train_epoch(
    model,
    optimizer,
    data: DeviceData,
    indices,
    *,
    batch_size,
    generator_seed,
    interventions=(),
    ctx: HookContext | None = None,
    precision="float32",
    cuda_graph=False,
    progress=None,
):
    """One shuffled pass over ``data.x_train[indices]``; returns loss, running accuracy
    (predictions made during the pass, BatchNorm in train mode), the mean of the
    interventions' loss terms (NaN without any) and the mean batch NC1 they reported (NaN
    when none did).

    ``cuda_graph`` (on a CUDA device, without interventions' ``loss`` terms): the first
    :data:`GRAPH_WARMUP` steps run as usual, the step is then recorded as one CUDA graph and
    replayed for every full batch (the last, smaller batch runs as usual). A ResNet-18 step at
    batch 128 is a few hundred short kernels, and launching them one by one from Python costs
    more than they take on a recent GPU; a replay launches them at once. The replay runs the
    same kernels on the same memory, so the updates are those of the plain loop.

    ``progress(batches_done, batches_total)`` is called every :data:`PROGRESS_SECONDS` within
    the epoch (a clock read per batch, no wait for the device: on a GPU, batches done are those
    queued).
    """
    if ctx is None:
        ctx = HookContext(model=model, optimizer=optimizer)
    penalised = any(type(i).uses("loss") for i in interventions)
    model.train()
    order = indices[
        torch.randperm(len(indices), generator=torch.Generator().manual_seed(generator_seed))
    ]
    order = order.to(data.device)
    autocast = torch.autocast(
        data.device.type, dtype=torch.bfloat16, enabled=precision == "bfloat16"
    )
    # loss, correct, penalty and batch NC1, each summed over images; kept on the device so that
    # no step waits for the GPU.
    totals = torch.zeros(4, dtype=torch.float64, device=data.device)
    nc1_reported = False

    def step(batch):
        nonlocal nc1_reported
        x, y = data.batch(data.x_train[batch]), data.y_train[batch]
        with autocast:
            features = model.features(x)
            logits = model.classifier(features)
            loss = F.cross_entropy(logits.float(), y)
        total = loss
        terms = [t for t in call(interventions, "loss", ctx, features, logits, y) if t is not None]
        if terms:
            penalty = functools.reduce(operator.add, terms)
            total = loss + penalty
            totals[2] += penalty.detach() * len(batch)
        nc1 = ctx.extra.pop("batch_nc1", None)
        if nc1 is not None:
            nc1_reported = True
            totals[3] += torch.nan_to_num(nc1.detach()) * len(batch)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        totals[0] += loss.detach() * len(batch)
        totals[1] += (logits.argmax(1) == y).sum()

    batches = list(torch.split(order, batch_size))
    graphed = cuda_graph and data.device.type == "cuda" and not penalised
    replay = None
    next_progress = time.perf_counter() + PROGRESS_SECONDS
    cpu_bfloat16 = precision == "bfloat16" and data.device.type == "cpu"
    with _without_onednn() if cpu_bfloat16 else nullcontext():
        for number, batch in enumerate(batches):
            if replay is not None and len(batch) == batch_size:
                replay(batch)
            elif graphed and number == GRAPH_WARMUP and len(batch) == batch_size:
                replay = _captured(step, batch)
                replay(batch)
            elif graphed and number < GRAPH_WARMUP:
                _on_side_stream(step, batch)  # warm-up steps (cuDNN, allocator) before capture
            else:
                step(batch)
            if progress is not None and time.perf_counter() >= next_progress:
                progress(number + 1, len(batches))
                next_progress = time.perf_counter() + PROGRESS_SECONDS
    loss, correct, penalty, nc1 = (totals / len(order)).tolist()
    return {
        "train_loss": loss,
        "train_accuracy": correct,
        "regularizer": penalty if penalised else math.nan,
        "batch_nc1": nc1 if nc1_reported else math.nan,
    }


@contextmanager
def _without_onednn():
    """bfloat16 on a CPU without oneDNN: on CPUs with AMX (Intel Xeon from Sapphire Rapids)
    its bfloat16 convolutions returned weight gradients with entries of ~1e28, different from
    run to run (torch 2.14); ATen's own kernels are slower and right."""
    enabled = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = enabled


def _on_side_stream(step, batch) -> None:
    """Run ``step`` on a side stream, as PyTorch asks of the steps before a graph capture."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        step(batch)
    torch.cuda.current_stream().wait_stream(stream)


def _captured(step, batch):
    """``step`` recorded as a CUDA graph on a static copy of ``batch``; returns a function
    that copies its batch there and replays the graph. Capturing runs nothing."""
    static_batch = batch.clone()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step(static_batch)

    def replay(batch):
        static_batch.copy_(batch)
        graph.replay()

    return replay


@torch.no_grad()
def recalibrated_bn(model, data: DeviceData, indices: torch.Tensor) -> torch.nn.Module:
    """A copy of ``model`` whose BatchNorm running statistics are recomputed over
    ``data.x_train[indices]`` ("precise BN"); ``model`` itself is left untouched.

    The running mean becomes the exact mean over the data, the running variance the
    size-weighted mean of the batches' (unbiased) variances. With a large learning rate the
    exponential running averages lag the weights, and eval-mode accuracy swings from epoch to
    epoch (test accuracy 0.63-0.96 over consecutive fine-tuning epochs of the CPU default);
    recalibrated statistics remove that noise.
    """
    indices = indices.to(data.device)
    copy = deepcopy(model)
    norms = [m for m in copy.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [norm.momentum for norm in norms]
    for norm in norms:
        norm.reset_running_stats()
    copy.train()
    # Near-equal batches: no batch of one image, whose variance BatchNorm rejects.
    seen = 0
    for batch in torch.tensor_split(indices, math.ceil(len(indices) / EVAL_BATCH)):
        seen += len(batch)
        for norm in norms:
            norm.momentum = len(batch) / seen  # running average weighted by batch size
        copy.features(data.batch(data.x_train[batch]))
    for norm, momentum in zip(norms, momenta, strict=True):
        norm.momentum = momentum
    return copy


def evaluation_model(model, data: DeviceData, indices: torch.Tensor, settings: dict):
    """The model to evaluate and take features from: BN recalibrated on the training indices
    when ``settings["recalibrate_bn"]``, else ``model`` as it is (the paper's code)."""
    return recalibrated_bn(model, data, indices) if settings.get("recalibrate_bn") else model


@torch.no_grad()
def features_and_accuracy(model, data: DeviceData, x_uint8, labels):
    """Penultimate features (float32, numpy) in eval mode and the classifier's accuracy."""
    model.eval()
    chunks, correct = [], 0
    for start in range(0, len(x_uint8), EVAL_BATCH):
        h = model.features(data.batch(x_uint8[start : start + EVAL_BATCH])).float()
        correct += int((model.classifier(h).argmax(1) == labels[start : start + EVAL_BATCH]).sum())
        chunks.append(h.cpu())
    return torch.cat(chunks).numpy(), correct / len(x_uint8)


def _diverged(row: dict, model) -> bool:
    """A non-finite epoch loss or penalty (NaN when there is none: a NaN penalty makes the
    parameters NaN), or a non-finite parameter."""
    if not math.isfinite(row["train_loss"]) or math.isinf(row["regularizer"]):
        return True
    return not bool(torch.stack([torch.isfinite(p).all() for p in model.parameters()]).all())


def _collapsed(row: dict, best_train_accuracy: float) -> bool:
    """Training accuracy below half the best so far, once that best reached 0.5."""
    return (
        best_train_accuracy >= COLLAPSE_MIN_BEST
        and row["train_accuracy"] < COLLAPSE_FRACTION * best_train_accuracy
    )


def fit(
    model,
    data: DeviceData,
    indices,
    *,
    settings,
    seed,
    phase,
    max_epochs,
    job,
    interventions=(),
    stop_accuracy=None,
    at_epoch_end=None,
    on_resume=None,
    test_every_epoch=True,
    label="warm_start",
):
    """Train ``model`` on ``data.x_train[indices]`` with :class:`~ncplasticity.optim.SGD` (``lr``
    from ``settings``, options from the interventions), resuming from ``job`` (a ResumableJob).

    After each epoch: call the ``on_epoch_end`` hooks, evaluate test accuracy (every epoch
    with ``test_every_epoch``, else only on the last one, the others logging NaN), log, call
    ``at_epoch_end(rows, evaluated)`` with the rows so far (the last is this epoch's, which it
    may complete) and the evaluation model (see :func:`evaluation_model`; it returns extra
    entries to save, e.g. the snapshot count), save the state, and stop when the run diverged
    or the running training accuracy exceeds ``stop_accuracy`` (a collapse is only logged).
    ``on_resume(state)`` sees the saved state when resuming. Returns the per-epoch rows (those
    of earlier runs included when resumed).

    Each epoch logs a progress line ``{label}: {phase} epoch E/N, R s/epoch, eta T | {row}``
    (``≤N`` and ``eta ≤T`` with a ``stop_accuracy``: training may stop earlier), and epochs
    longer than :data:`PROGRESS_SECONDS` log the batches done within them too.
    """
    optimizer = SGD(model.parameters(), lr=settings["lr"], **optimizer_options(interventions))
    ctx = HookContext(model=model, optimizer=optimizer, seed=seed)
    rows, extra = [], {}
    state = job.load(
        model=model, optimizer=optimizer, interventions=interventions, map_location=data.device
    )
    if state is not None:
        rows = state["rows"]
        if on_resume is not None:
            on_resume(state)
    indices = torch.as_tensor(indices)

    def finished(row):
        return row["diverged"] or (
            stop_accuracy is not None and row["train_accuracy"] > stop_accuracy
        )

    name, at_most = PHASE_NAMES[phase], stop_accuracy is not None

    def within_epoch(done, total):
        position = f"{name} epoch {epoch}/{'≤' if at_most else ''}{max_epochs}, batch"
        rate = (time.perf_counter() - started) / done
        log.info(progress_line(label, position, done, total, rate, "batch"))

    attempt_started, first_epoch = time.perf_counter(), len(rows) + 1

    while len(rows) < max_epochs and not (rows and finished(rows[-1])):
        epoch = ctx.epoch = len(rows) + 1
        started = time.perf_counter()
        row = {"epoch": epoch}
        row.update(
            train_epoch(
                model,
                optimizer,
                data,
                indices,
                batch_size=settings["batch_size"],
                generator_seed=derived_seed(seed, phase, epoch),
                interventions=interventions,
                ctx=ctx,
                precision=settings.get("precision", "float32"),
                cuda_graph=settings.get("cuda_graph", True),
                progress=within_epoch,
            )
        )
        call(interventions, "on_epoch_end", ctx)
        best = max((r["train_accuracy"] for r in rows), default=0.0)
        row["diverged"] = _diverged(row, model)
        row["collapsed"] = _collapsed(row, best)
        row["degenerate"] = degenerate(
            row["train_accuracy"], data.num_classes, degenerate_so_far(rows)
        )
        tested = test_every_epoch or epoch == max_epochs or finished(row)
        evaluated = None
        if tested or at_epoch_end is not None:
            evaluated = evaluation_model(model, data, indices, settings)
        row["test_accuracy"] = math.nan
        if tested:
            _, row["test_accuracy"] = features_and_accuracy(
                evaluated, data, data.x_test, data.y_test
            )
        row["wall_seconds"] = time.perf_counter() - started
        rows.append(row)
        rate = (time.perf_counter() - attempt_started) / (epoch - first_epoch + 1)
        line = progress_line(
            label, f"{name} epoch", epoch, max_epochs, rate, "epoch", at_most=at_most
        )
        log.info("%s | %s", line, " ".join(f"{k}={row[k]:.4g}" for k in ROW_COLUMNS[1:]))
        if at_epoch_end is not None:
            extra = at_epoch_end(rows, evaluated)
        job.save(model=model, optimizer=optimizer, interventions=interventions, rows=rows, **extra)
    return rows
