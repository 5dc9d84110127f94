"""Warm starting (DESIGN §3): warm-up on half the training set, then fine-tune each checkpoint.

One training loop (:func:`fit`) serves the warm-up, the fine-tuning of a checkpoint and the
fresh-init reference. Data sit on the device as uint8 tensors and are normalised per batch
(no DataLoader, no per-image transforms); each epoch's shuffle comes from a generator seeded
by (seed, phase, epoch), and the loop saves its whole state after every epoch, so a killed
job that is rerun continues bitwise identically on CPU (the resumable-training convention; on
CUDA, cuDNN's algorithm choice can make the continuation differ in the last bits).

Run ids are ``{variant}_s{seed}``. Warm-up checkpoints are taken at epochs ``checkpoint_every,
2·checkpoint_every, …, warmup_epochs`` (no epoch-0 snapshot: fine-tuning the epoch-0 model is
exactly the fresh-init reference). ``shrink_perturb`` reuses ``plain``'s warm-up and applies
θ ← shrink·θ + perturb·θ_fresh to each checkpoint before fine-tuning.

A run diverges when its epoch loss is not finite or its training accuracy collapses (below
half the best so far, once that best reached 0.5). It then stops cleanly: the log row says
``diverged``, the snapshots so far are kept, and every checkpoint not yet reached is written as
a marker ``{"epoch": E, "diverged": True}`` that the fine-tune job turns into a diverged row,
so the workflow's job graph stays fixed and goes on.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from copy import deepcopy
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ncplasticity.data import load_prepared
from ncplasticity.features import FeatureWriter
from ncplasticity.jobstate import publish, save_atomic
from ncplasticity.models import ResNet18
from ncplasticity.regularizers import batch_nc1, paper_nc_penalty, stable_nc_penalty
from ncplasticity.tsv import write_tsv
from ncplasticity.warm_start_protocol import checkpoint_epochs, warmup_variant

log = logging.getLogger(__name__)

EXPERIMENT = "warm_start"
# Accuracy collapse: training accuracy below this fraction of the best so far ...
COLLAPSE_FRACTION = 0.5
# ... once the best so far has reached this accuracy.
COLLAPSE_MIN_BEST = 0.5
EVAL_BATCH = 1024
LOG_COLUMNS = [
    "epoch",
    "train_loss",
    "train_accuracy",
    "test_accuracy",
    "regularizer",
    "batch_nc1",
    "wall_seconds",
    "diverged",
]
FINETUNE_COLUMNS = [
    "variant",
    "seed",
    "warmup_epoch",
    "epochs",
    "train_accuracy",
    "test_accuracy",
    "wall_seconds",
    "diverged",
]
# Phase codes in the seeds of the per-epoch generators and of initialisations.
_WARMUP, _FINETUNE, _INIT, _PERTURB, _SPLIT = range(5)


def run_id(variant: str, seed: int) -> str:
    return f"{variant}_s{seed}"


def _derived_seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


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


def warmup_indices(num_train: int, fraction: float, seed: int) -> np.ndarray:
    """The seeded random warm-up subset (sorted indices into the training set)."""
    count = int(round(fraction * num_train))
    return np.sort(np.random.default_rng([seed, _SPLIT]).permutation(num_train)[:count])


def build_model(cfg: dict, data: DeviceData, init_seed: int) -> ResNet18:
    """A ResNet-18 initialised from ``init_seed`` (the global RNG is left untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        model = ResNet18(data.in_channels, data.num_classes, cfg["width"])
    model = model.to(data.device)
    return model.to(memory_format=torch.channels_last) if data.channels_last else model


def shrink_perturb(model: torch.nn.Module, fresh: torch.nn.Module, shrink: float, perturb: float):
    """θ ← shrink·θ + perturb·θ_fresh for every parameter (Ash & Adams); buffers (BatchNorm
    running statistics) are kept."""
    with torch.no_grad():
        for param, fresh_param in zip(model.parameters(), fresh.parameters(), strict=True):
            param.mul_(shrink).add_(fresh_param, alpha=perturb)


class NCRegularizer:
    """Batch-NC1 penalty of a variant: returns (penalty tensor, batch NC1) per mini-batch."""

    def __init__(self, variant: str, cfg: dict):
        if variant == "nc_reg":
            params = cfg["nc_reg"]
            self._penalty = lambda nc1: paper_nc_penalty(nc1, params["lam"], params["cap"])
        elif variant == "nc_reg_stable":
            params = cfg["nc_reg_stable"]
            self._penalty = lambda nc1: stable_nc_penalty(nc1, params["lam"], params["target"])
        else:
            raise ValueError(f"warm_start: variant {variant!r} has no NC regulariser")

    def __call__(self, features: torch.Tensor, labels: torch.Tensor):
        nc1 = batch_nc1(features, labels)
        if not nc1.requires_grad:  # fewer than two classes in the batch: NC1 undefined
            return features.new_zeros(()), nc1
        return self._penalty(nc1), nc1


def train_epoch(
    model,
    optimizer,
    data: DeviceData,
    indices,
    *,
    batch_size,
    generator_seed,
    regularizer=None,
    precision="float32",
):
    """One shuffled pass over ``data.x_train[indices]``; returns loss, running accuracy
    (predictions made during the pass, BatchNorm in train mode), mean penalty and batch NC1."""
    model.train()
    order = indices[
        torch.randperm(len(indices), generator=torch.Generator().manual_seed(generator_seed))
    ]
    order = order.to(data.device)
    autocast = torch.autocast(
        data.device.type, dtype=torch.bfloat16, enabled=precision == "bfloat16"
    )
    totals = torch.zeros(4, dtype=torch.float64, device=data.device)
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        x, y = data.batch(data.x_train[batch]), data.y_train[batch]
        with autocast:
            features = model.features(x)
            logits = model.classifier(features)
            loss = F.cross_entropy(logits.float(), y)
        total = loss
        if regularizer is not None:
            penalty, nc1 = regularizer(features, y)
            total = loss + penalty
            totals[2] += penalty.detach() * len(batch)
            totals[3] += torch.nan_to_num(nc1.detach()) * len(batch)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        totals[0] += loss.detach() * len(batch)
        totals[1] += (logits.argmax(1) == y).sum()
    loss, correct, penalty, nc1 = (totals / len(order)).tolist()
    if regularizer is None:
        penalty = nc1 = float("nan")
    return {"train_loss": loss, "train_accuracy": correct, "regularizer": penalty, "batch_nc1": nc1}


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


def evaluation_model(model, data: DeviceData, indices: torch.Tensor, cfg: dict):
    """The model to evaluate and take features from: BN recalibrated on the training indices
    when ``cfg["recalibrate_bn"]``, else ``model`` as it is (the paper's code)."""
    return recalibrated_bn(model, data, indices) if cfg.get("recalibrate_bn") else model


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


def _diverged(row: dict, best_train_accuracy: float) -> bool:
    # A non-finite penalty (regularised variants; NaN when there is none) diverges the run too.
    if not math.isfinite(row["train_loss"]) or math.isinf(row["regularizer"]):
        return True
    return (
        best_train_accuracy >= COLLAPSE_MIN_BEST
        and row["train_accuracy"] < COLLAPSE_FRACTION * best_train_accuracy
    )


def fit(
    model,
    data: DeviceData,
    indices,
    *,
    cfg,
    lr,
    weight_decay,
    max_epochs,
    epoch_seed,
    state_path: Path,
    stop_accuracy=None,
    regularizer=None,
    at_epoch_end=None,
    test_every_epoch=True,
):
    """Train ``model`` on ``data.x_train[indices]`` with plain SGD, resuming from ``state_path``.

    After each epoch: evaluate test accuracy (every epoch with ``test_every_epoch``, else only
    on the last one, the others logging NaN), log, call ``at_epoch_end(epoch, row, evaluated)``
    with the evaluation model (see :func:`evaluation_model`; it returns extra state to save,
    e.g. the snapshot count), save the state atomically, and stop when the run diverged or the
    running training accuracy exceeds ``stop_accuracy``. Returns the per-epoch rows (those of
    earlier runs included when resumed).
    """
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.0, weight_decay=weight_decay)
    rows, extra = [], {}
    if state_path.exists():
        state = torch.load(state_path, map_location=data.device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        rows, extra = state["rows"], state["extra"]
        log.info("resumed %s after epoch %d", state_path, len(rows))
    indices = torch.as_tensor(indices)

    def finished(rows):
        last = rows[-1]
        return last["diverged"] or (
            stop_accuracy is not None and last["train_accuracy"] > stop_accuracy
        )

    while len(rows) < max_epochs and not (rows and finished(rows)):
        epoch = len(rows) + 1
        started = time.perf_counter()
        row = {"epoch": epoch}
        row.update(
            train_epoch(
                model,
                optimizer,
                data,
                indices,
                batch_size=cfg["batch_size"],
                generator_seed=_derived_seed(*epoch_seed, epoch),
                regularizer=regularizer,
                precision=cfg.get("precision", "float32"),
            )
        )
        best = max((r["train_accuracy"] for r in rows), default=0.0)
        row["diverged"] = _diverged(row, best)
        tested = test_every_epoch or epoch == max_epochs or finished([row])
        evaluated = None
        if tested or at_epoch_end is not None:
            evaluated = evaluation_model(model, data, indices, cfg)
        row["test_accuracy"] = math.nan
        if tested:
            _, row["test_accuracy"] = features_and_accuracy(
                evaluated, data, data.x_test, data.y_test
            )
        row["wall_seconds"] = time.perf_counter() - started
        rows.append(row)
        log.info("epoch %d: %s", epoch, " ".join(f"{k}={row[k]:.4g}" for k in LOG_COLUMNS[1:]))
        if at_epoch_end is not None:
            extra = at_epoch_end(epoch, row, evaluated)
        save_atomic(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "rows": rows,
                "extra": extra,
            },
            state_path,
        )
    return rows


def _partial_dir(root, name: str, identity: dict) -> Path:
    """The in-progress directory of a job; state left by a job with another identity (config,
    variant, seed, source checkpoint) is discarded rather than resumed."""
    partial = Path(root) / name
    identity_path = partial / "identity.json"
    identity_text = json.dumps(identity, sort_keys=True, default=str)
    if partial.exists() and (
        not identity_path.exists() or identity_path.read_text() != identity_text
    ):
        log.warning("discarding %s: left by a job with another configuration", partial)
        shutil.rmtree(partial)
    partial.mkdir(parents=True, exist_ok=True)
    identity_path.write_text(identity_text)
    return partial


def _setup(device: str, threads: int, dataset_path, cfg: dict) -> DeviceData:
    torch.set_num_threads(threads)
    return DeviceData(
        load_prepared(dataset_path), resolve_device(device), cfg.get("channels_last", False)
    )


def run_warmup(
    dataset_path,
    *,
    cfg: dict,
    variant: str,
    seed: int,
    features_path,
    checkpoint_dir,
    log_path,
    partial_root,
    device="auto",
    threads=1,
) -> None:
    """Warm up one (variant, seed): checkpoints ``checkpoint_dir/epochEEEE.pt``, feature
    snapshots ``epochEEEE`` of the warm-up set in ``features_path``, per-epoch log TSV."""
    if warmup_variant(variant) != variant:
        raise ValueError(f"warm_start: variant {variant!r} has no warm-up of its own")
    data = _setup(device, threads, dataset_path, cfg)
    name = run_id(variant, seed)
    partial = _partial_dir(partial_root, name, {"cfg": cfg, "variant": variant, "seed": seed})
    partial_features = partial / "features.h5"
    epochs = checkpoint_epochs(cfg)
    indices = warmup_indices(len(data.y_train), cfg.get("warmup_fraction", 0.5), seed)
    x_warm, y_warm = data.x_train[torch.as_tensor(indices)], data.y_train[torch.as_tensor(indices)]
    model = build_model(cfg, data, _derived_seed(seed, _INIT))
    regularizer = NCRegularizer(variant, cfg) if variant.startswith("nc_reg") else None
    weight_decay = cfg["l2"]["weight_decay"] if variant == "l2" else 0.0
    state_path = partial / "state.pt"
    resuming = state_path.exists()
    n_snapshots = (
        torch.load(state_path, map_location="cpu", weights_only=False)["extra"]["n_snapshots"]
        if resuming
        else 0
    )
    with FeatureWriter(
        partial_features,
        experiment=EXPERIMENT,
        run_id=name,
        seed=seed,
        config=cfg,
        feature_dtype=cfg.get("feature_dtype", "float16"),
        mode="a" if resuming else "w",
    ) as writer:
        writer.truncate(n_snapshots)

        def at_epoch_end(epoch, row, evaluated):
            if row["diverged"]:
                for marker_epoch in (e for e in epochs if e >= epoch):
                    save_atomic(
                        {"epoch": marker_epoch, "diverged": True},
                        partial / f"epoch{marker_epoch:04d}.pt",
                    )
            elif epoch in epochs:
                save_atomic(
                    {"epoch": epoch, "diverged": False, "model": model.state_dict()},
                    partial / f"epoch{epoch:04d}.pt",
                )
                features, _ = features_and_accuracy(evaluated, data, x_warm, y_warm)
                writer.add_snapshot(
                    f"epoch{epoch:04d}",
                    features,
                    y_warm.cpu().numpy(),
                    model.classifier.weight.detach().float().cpu().numpy(),
                    model.classifier.bias.detach().float().cpu().numpy(),
                    epoch=epoch,
                    phase="warmup",
                    split="train",
                )
            return {"n_snapshots": writer.num_snapshots}

        rows = fit(
            model,
            data,
            indices,
            cfg=cfg,
            lr=cfg["lr"],
            weight_decay=weight_decay,
            max_epochs=cfg["warmup_epochs"],
            epoch_seed=(seed, _WARMUP),
            state_path=state_path,
            regularizer=regularizer,
            at_epoch_end=at_epoch_end,
        )
    write_tsv(partial / "log.tsv", rows, LOG_COLUMNS)
    checkpoints = [
        (partial / f"epoch{epoch:04d}.pt", Path(checkpoint_dir) / f"epoch{epoch:04d}.pt")
        for epoch in epochs
    ]
    files = [*checkpoints, (partial_features, features_path), (partial / "log.tsv", log_path)]
    publish(files, partial)


def run_finetune(
    dataset_path,
    *,
    cfg: dict,
    variant: str,
    seed: int,
    checkpoint_path,
    out_path,
    partial_root,
    device="auto",
    threads=1,
) -> None:
    """Fine-tune one warm-up checkpoint (or, with ``checkpoint_path=None`` and variant
    ``fresh``, the fresh initialisation) on the full training set with a fresh optimiser until
    running training accuracy > ``finetune.target_train_accuracy`` or ``finetune.max_epochs``;
    write one TSV row (FINETUNE_COLUMNS)."""
    data = _setup(device, threads, dataset_path, cfg)
    model = build_model(cfg, data, _derived_seed(seed, _INIT))
    warmup_epoch, diverged_checkpoint = 0, False
    if checkpoint_path is not None:
        warmup_variant(variant)
        checkpoint = torch.load(checkpoint_path, map_location=data.device, weights_only=False)
        warmup_epoch, diverged_checkpoint = checkpoint["epoch"], checkpoint["diverged"]
        if not diverged_checkpoint:
            model.load_state_dict(checkpoint["model"])
        if variant == "shrink_perturb" and not diverged_checkpoint:
            params = cfg["shrink_perturb"]
            fresh = build_model(cfg, data, _derived_seed(seed, _PERTURB, warmup_epoch))
            shrink_perturb(model, fresh, params["shrink"], params["perturb"])
    elif variant != "fresh":
        raise ValueError(f"warm_start: fine-tuning variant {variant!r} needs a checkpoint")
    result = {"variant": variant, "seed": seed, "warmup_epoch": warmup_epoch}
    if diverged_checkpoint:
        log.info("checkpoint %s comes from a diverged warm-up; not fine-tuned", checkpoint_path)
        result.update(
            epochs=0,
            train_accuracy=math.nan,
            test_accuracy=math.nan,
            wall_seconds=0.0,
            diverged=True,
        )
    else:
        source = None if checkpoint_path is None else os.stat(checkpoint_path)
        partial = _partial_dir(
            partial_root,
            f"{run_id(variant, seed)}_finetune{warmup_epoch:04d}",
            {
                "cfg": cfg,
                "variant": variant,
                "seed": seed,
                "checkpoint": None if source is None else [source.st_size, source.st_mtime_ns],
            },
        )
        finetune = cfg["finetune"]
        rows = fit(
            model,
            data,
            np.arange(len(data.y_train)),
            cfg=cfg,
            lr=cfg["lr"],
            weight_decay=0.0,
            max_epochs=finetune["max_epochs"],
            epoch_seed=(seed, _FINETUNE),
            state_path=partial / "state.pt",
            stop_accuracy=finetune["target_train_accuracy"],
            test_every_epoch=False,  # only the last epoch's test accuracy is the outcome
        )
        last = rows[-1]
        result.update(
            epochs=len(rows),
            train_accuracy=last["train_accuracy"],
            test_accuracy=last["test_accuracy"],
            wall_seconds=sum(r["wall_seconds"] for r in rows),
            diverged=last["diverged"],
        )
    write_tsv(out_path, [result], FINETUNE_COLUMNS)
    if not diverged_checkpoint:
        shutil.rmtree(partial)  # after the output: a kill in between reruns from the state
