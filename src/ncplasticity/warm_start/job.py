"""The warm-start jobs: the warm-up of one run, and the fine-tuning of one checkpoint (or of
the fresh initialisation, the reference).

``settings`` are a run's resolved settings, already reduced to the job's phase by the workflow
(:mod:`ncplasticity.warm_start.study`); a job's identity (what decides whether its saved state
may be resumed) is those settings and the seed, plus the checkpoint file for a fine-tune.

Warm-up checkpoints are taken at epochs ``checkpoint_every, 2·checkpoint_every, …,
warmup_epochs`` (no epoch-0 snapshot: fine-tuning the epoch-0 model is exactly the fresh-init
reference). A fine-tune job applies its interventions' ``before_finetune`` hooks (e.g. shrink
& perturb) to the checkpoint, then trains on the full training set with a fresh optimiser.

A warm-up diverges only when its loss or a parameter turns non-finite (a collapse of its
training accuracy is logged as ``collapsed`` and training goes on, so every checkpoint of a
collapsed run is fine-tuned). A diverged warm-up stops cleanly: its log row says ``diverged``,
the snapshots so far are kept, and every checkpoint not yet reached is written as a marker
``{"epoch": E, "diverged": True}`` that the fine-tune job turns into a diverged row, so the
workflow's job graph stays fixed.

At each checkpoint the warm-up log row also holds the registry's computed plasticity measures
that need no pre-activations (``metrics.select(computed=True, given=())``) of the warm-up set's
penultimate features (NaN at other epochs), with the model right after initialisation as θ₀.
The log is rewritten in the job's partial directory after every epoch (``tail -f`` follows a
running job) and published at the end. A fine-tune job writes one row per epoch
(FINETUNE_COLUMNS); its last row is the outcome.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import numpy as np
import torch

from ncplasticity import metrics
from ncplasticity.data import load_prepared
from ncplasticity.features import FeatureWriter
from ncplasticity.interventions import HookContext, call
from ncplasticity.jobs import ResumableJob, resolve_device, save_atomic
from ncplasticity.networks import ResNet18, parameter_arrays
from ncplasticity.study import run_id as make_run_id
from ncplasticity.tsv import write_tsv
from ncplasticity.warm_start import EXPERIMENT
from ncplasticity.warm_start.interventions import REGISTRY
from ncplasticity.warm_start.loop import (
    FINETUNE,
    INIT,
    PERTURB,
    ROW_COLUMNS,
    SPLIT,
    WARMUP,
    DeviceData,
    derived_seed,
    features_and_accuracy,
    fit,
)
from ncplasticity.warm_start.study import checkpoint_epochs

log = logging.getLogger(__name__)

PLASTICITY_COLUMNS = [m.name for m in metrics.select(computed=True, given=())]
LOG_COLUMNS = ["variant", "seed", *ROW_COLUMNS, *PLASTICITY_COLUMNS]
FINETUNE_COLUMNS = [
    "variant",
    "seed",
    "warmup_epoch",
    "epoch",
    "train_loss",
    "train_accuracy",
    "test_accuracy",
    "wall_seconds",
    "diverged",
]


def warmup_indices(num_train: int, fraction: float, seed: int) -> np.ndarray:
    """The seeded random warm-up subset (sorted indices into the training set)."""
    count = int(round(fraction * num_train))
    return np.sort(np.random.default_rng([seed, SPLIT]).permutation(num_train)[:count])


def build_model(settings: dict, data: DeviceData, init_seed: int) -> ResNet18:
    """A ResNet-18 initialised from ``init_seed`` (the global RNG is left untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        model = ResNet18(data.in_channels, data.num_classes, settings["width"])
    model = model.to(data.device)
    return model.to(memory_format=torch.channels_last) if data.channels_last else model


def plasticity_measures(features, model, initial_parameters) -> dict[str, float]:
    """Every computed plasticity measure of the registry, the probe being penultimate
    ``features`` (post-ReLU, average-pooled: also the one hidden layer shown)."""
    probe = metrics.ProbeState(features, [features], parameter_arrays(model), initial_parameters)
    return {m.name: float(m.compute(probe)) for m in metrics.select(computed=True, given=())}


def _setup(device: str, threads: int, dataset_path, settings: dict) -> DeviceData:
    torch.set_num_threads(threads)
    return DeviceData(
        load_prepared(dataset_path), resolve_device(device), settings.get("channels_last", False)
    )


def _checkpoint(epoch: int) -> str:
    return f"epoch{epoch:04d}.pt"


def run_warmup(
    dataset_path,
    *,
    settings: dict,
    seed: int,
    variant: str,
    features_path,
    checkpoint_dir,
    log_path,
    partial_dir,
    device="auto",
    threads=1,
) -> None:
    """Warm up one run: checkpoints ``checkpoint_dir/epochEEEE.pt``, feature snapshots
    ``epochEEEE`` of the warm-up set in ``features_path``, per-epoch log TSV (LOG_COLUMNS,
    rewritten in ``partial_dir`` after every epoch)."""
    run_id = make_run_id(variant, seed)
    data = _setup(device, threads, dataset_path, settings)
    interventions = REGISTRY.build(settings.get("interventions", []))
    job = ResumableJob(partial_dir, {"settings": settings, "seed": seed}, unit="epoch")
    partial_features = job.dir / "features.h5"
    epochs = checkpoint_epochs(settings)
    indices = warmup_indices(len(data.y_train), settings.get("warmup_fraction", 0.5), seed)
    x_warm, y_warm = data.x_train[torch.as_tensor(indices)], data.y_train[torch.as_tensor(indices)]
    model = build_model(settings, data, derived_seed(seed, INIT))
    initial_parameters = parameter_arrays(model)  # θ₀, before any resumed state is loaded
    log_tsv = job.dir / "log.tsv"

    def write_log(rows):
        write_tsv(log_tsv, [{"variant": variant, "seed": seed, **row} for row in rows], LOG_COLUMNS)

    with FeatureWriter(
        partial_features,
        experiment=EXPERIMENT,
        run_id=run_id,
        seed=seed,
        config=settings,
        feature_dtype=settings.get("feature_dtype", "float16"),
        mode="a" if job.resuming else "w",
    ) as writer:

        def at_epoch_end(rows, evaluated):
            row = rows[-1]
            epoch = row["epoch"]
            row.update(dict.fromkeys(PLASTICITY_COLUMNS, math.nan))
            if row["diverged"]:
                for marker_epoch in (e for e in epochs if e >= epoch):
                    save_atomic(
                        {"epoch": marker_epoch, "diverged": True},
                        job.dir / _checkpoint(marker_epoch),
                    )
            elif epoch in epochs:
                save_atomic(
                    {"epoch": epoch, "diverged": False, "model": model.state_dict()},
                    job.dir / _checkpoint(epoch),
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
                row.update(plasticity_measures(features, model, initial_parameters))
            write_log(rows)
            return {"n_snapshots": writer.num_snapshots}

        rows = fit(
            model,
            data,
            indices,
            settings=settings,
            seed=seed,
            phase=WARMUP,
            max_epochs=settings["warmup_epochs"],
            job=job,
            label=f"{EXPERIMENT} {run_id}",
            interventions=interventions,
            at_epoch_end=at_epoch_end,
            # Drop a snapshot written after the last save (a kill in between).
            on_resume=lambda state: writer.truncate(state["n_snapshots"]),
        )
    write_log(rows)  # current already, unless a finished state was saved without its log
    checkpoints = [
        (job.dir / _checkpoint(epoch), Path(checkpoint_dir) / _checkpoint(epoch))
        for epoch in epochs
    ]
    job.publish([*checkpoints, (partial_features, features_path), (log_tsv, log_path)])


def run_finetune(
    dataset_path,
    *,
    settings: dict,
    seed: int,
    variant: str,
    checkpoint_path,
    out_path,
    partial_dir,
    device="auto",
    threads=1,
) -> None:
    """Fine-tune one warm-up checkpoint (or, with ``checkpoint_path=None`` and variant
    ``fresh``, the fresh initialisation) on the full training set with a fresh optimiser until
    running training accuracy > ``finetune.target_train_accuracy`` or ``finetune.max_epochs``;
    write one TSV row per epoch (FINETUNE_COLUMNS; test accuracy only in the last, the
    outcome). A diverged warm-up's marker gives one diverged row of epoch 0."""
    if checkpoint_path is None and variant != "fresh":
        raise ValueError(f"warm_start: fine-tuning variant {variant!r} needs a checkpoint")
    data = _setup(device, threads, dataset_path, settings)
    interventions = REGISTRY.build(settings.get("interventions", []))
    model = build_model(settings, data, derived_seed(seed, INIT))
    keys = {"variant": variant, "seed": seed, "warmup_epoch": 0}  # of every row
    label, source = f"{EXPERIMENT} {make_run_id(variant, seed)}", None
    if checkpoint_path is not None:
        checkpoint = torch.load(checkpoint_path, map_location=data.device, weights_only=False)
        warmup_epoch = keys["warmup_epoch"] = checkpoint["epoch"]
        label += f" from epoch {warmup_epoch}"
        if checkpoint["diverged"]:
            log.info("checkpoint %s comes from a diverged warm-up; not fine-tuned", checkpoint_path)
            not_run = dict.fromkeys(["train_loss", "train_accuracy", "test_accuracy"], math.nan)
            row = {**keys, "epoch": 0, **not_run, "wall_seconds": 0.0, "diverged": True}
            write_tsv(out_path, [row], FINETUNE_COLUMNS)
            return
        model.load_state_dict(checkpoint["model"])
        ctx = HookContext(
            model=model,
            seed=seed,
            epoch=warmup_epoch,
            fresh_model=lambda salt: build_model(
                settings, data, derived_seed(seed, PERTURB, warmup_epoch, salt)
            ),
        )
        call(interventions, "before_finetune", ctx)
        stat = os.stat(checkpoint_path)
        source = [stat.st_size, stat.st_mtime_ns]
    job = ResumableJob(
        partial_dir, {"settings": settings, "seed": seed, "checkpoint": source}, unit="epoch"
    )
    finetune = settings["finetune"]
    rows = fit(
        model,
        data,
        np.arange(len(data.y_train)),
        settings=settings,
        seed=seed,
        phase=FINETUNE,
        max_epochs=finetune["max_epochs"],
        job=job,
        interventions=interventions,
        stop_accuracy=finetune["target_train_accuracy"],
        test_every_epoch=False,  # only the last epoch's test accuracy is the outcome
        label=label,
    )
    write_tsv(job.dir / "finetune.tsv", [{**keys, **row} for row in rows], FINETUNE_COLUMNS)
    job.publish([(job.dir / "finetune.tsv", out_path)])
