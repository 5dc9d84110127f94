"""One continual-learning run: tasks of the configured scenario, one after the other.

Protocol, as in the paper's code (which follows Dohare et al.'s loss-of-plasticity code):

* Task t is drawn by the scenario with ``default_rng([seed, 0, t])`` (the paper's Permuted
  MNIST: a new random permutation of the pixels, task 0 included); samples are visited in a new
  shuffled order each epoch (``default_rng([seed, 1, t, epoch])``). Pixels are scaled to
  [0, 1] and flattened, not normalised. The task's examples are ``examples_per_task`` seeded
  training examples (all when unset), of which the scenario may keep a subset (``class_pairs``:
  the examples of its two digits, in training and test); everything below uses only those.
* The first task is longer: ``schedule.first_task.epochs`` epochs, or epoch by epoch until NC1
  of the probe features drops below ``nc1_threshold`` (at most ``max_epochs``); every later
  task trains ``epochs_per_task`` epochs, or, when that is a list, a number drawn from it per
  task (``default_rng([seed, 5, t])``, a stream of its own: duration varies independently of
  the task index and of the task's data).
* Online accuracy of a task is the accuracy of the predictions made before each update over
  its *first* epoch, so every task is measured the same way (the last epoch's is logged too,
  and the mean over all its epochs, ``online_accuracy_all_epochs``: the paper's code logs that
  for a task, so its task-0 reference averages every epoch of the first task). A run is
  ``degenerate`` from the first task whose online accuracy is within 0.05 of chance for the
  task's classes (1 / the number of classes in its training labels) onwards
  (:func:`ncplasticity.plasticity.degenerate`).
* After each task: accuracy on the task's test split, and the features (last hidden ReLU) of
  a fixed seeded probe of the task's training examples (``probe_size``), stratified over the
  classes present in the task, stored as snapshot ``task{t:04d}`` with the classifier rows of
  those classes (labels renumbered 0..k−1 when fewer than all are present), so the NC metrics
  of the snapshot are over the task's classes; the registered plasticity measures, the churn
  (:func:`~ncplasticity.continual.measures.churn`) and the interventions' ``task_log`` columns
  are logged.

What a task is (its examples, epochs, epoch order, probe and classes) is defined in
:mod:`ncplasticity.continual.scenarios`, what is measured after it in
:mod:`ncplasticity.continual.measures`; this module runs the job. The optimiser lives for
the whole run (its state crosses task boundaries) and, with the interventions' state, is
saved after every epoch through :class:`ResumableJob`; all randomness is derived from (seed,
task, epoch), so a resumed run is bitwise identical to an uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import os
import time

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from ncplasticity import metrics
from ncplasticity.continual import EXPERIMENT
from ncplasticity.continual.compiled import task_inputs
from ncplasticity.continual.heads import switch_head, zero_classifier
from ncplasticity.continual.learner import (
    build_model,
    fresh_online_accuracy,
    new_learner,
    train_task_epoch,
)
from ncplasticity.continual.loop import fallback_reason
from ncplasticity.continual.measures import RunParts, classifier_arrays, probe_features, task_row
from ncplasticity.continual.scenarios import (
    SCENARIOS,
    present_classes,
    probe_indices,
    task_done,
    task_examples,
)
from ncplasticity.data import load_prepared
from ncplasticity.features import FeatureWriter
from ncplasticity.interventions import HookContext, call
from ncplasticity.jobs import ResumableJob, resolve_device, return_freed_arrays
from ncplasticity.nc import collapse_metrics
from ncplasticity.runlog import finished_line, progress_line

log = logging.getLogger(__name__)

# The log's columns; the interventions' task_log columns follow them (log_columns).
LOG_COLUMNS = (
    "task",
    "epochs",
    "steps",
    "total_steps",
    "online_accuracy",
    "online_accuracy_last_epoch",
    "online_accuracy_all_epochs",
    "online_loss",
    "first_task_nc1",
    "test_accuracy",
    "degenerate",
    "fresh_online_accuracy",
    "pl_fresh",
    *(m.name for m in metrics.select(computed=True)),
    "churn",
    "gradient_norm",
    "step_plasticity",
    "wall_seconds",
)


def log_columns(rows) -> list[str]:
    """:data:`LOG_COLUMNS`, then the other columns of ``rows`` (the interventions' task_log
    columns) in the order they first appear."""
    extra = dict.fromkeys(key for row in rows for key in row if key not in LOG_COLUMNS)
    return [*LOG_COLUMNS, *extra]


def _fresh_progress() -> dict:
    keys = ("first_accuracy", "first_loss", "last_accuracy", "nc1")
    sums = ("seconds", "grad_norm", "steps", "plasticity", "plasticity_steps", "correct")
    # "correct" and "predictions": over every epoch of the task (online_accuracy_all_epochs).
    return {"epochs": 0, "predictions": 0, **dict.fromkeys(sums, 0.0), **dict.fromkeys(keys)}


def train_run(
    settings: dict,
    seed: int,
    run_id: str,
    dataset_path: str | os.PathLike,
    features_path: str | os.PathLike,
    log_path: str | os.PathLike,
    partial_dir: str | os.PathLike,
    device: str = "cpu",
    threads: int = 1,
) -> None:
    """Train one run (``settings`` = its resolved settings) and write its feature store and
    per-task log; resumes from ``partial_dir`` when an earlier attempt left state. Batch-1
    training runs on the CPU (the workflow never gives these jobs a GPU)."""
    from ncplasticity.tsv import write_tsv

    job_started = time.perf_counter()
    return_freed_arrays()  # or freed per-task arrays pile up: memory grew with the tasks
    torch.set_num_threads(threads)
    # numpy's BLAS (the per-task measures) would otherwise start a thread per core beside
    # the other jobs.
    threadpool_limits(threads)
    device = resolve_device(device)
    data = load_prepared(dataset_path)
    x_train = _flat_pixels(data.x_train)
    x_test = _flat_pixels(data.x_test)
    scenario = SCENARIOS.build([settings["scenario"]])[0]
    num_outputs = scenario.num_outputs(data.num_classes)
    torch.manual_seed(seed)
    learner = new_learner(
        settings, seed, build_model(settings, x_train.shape[1], num_outputs).to(device), scenario
    )
    model, optimizer, interventions, ctx = (
        learner.model,
        learner.optimizer,
        learner.interventions,
        learner.ctx,
    )
    job = ResumableJob(
        partial_dir, {"settings": settings, "seed": seed, "run_id": run_id}, unit="task"
    )
    state = job.load(
        model=model, optimizer=optimizer, interventions=interventions, map_location=device
    )
    if state is None:
        state = {"task": 0, "total_steps": 0, "rows": [], "progress": _fresh_progress()}
    # State saved by an earlier version lacks the newer progress sums: they start at 0.
    state["progress"] = _fresh_progress() | state["progress"]
    state.setdefault("heads", {})  # a multi-head scenario's heads (heads.switch_head)
    ctx.step = state["total_steps"]  # optimiser steps (train_epoch advances it)
    partial_features = job.dir / "features.h5"
    fresh_every = settings["schedule"].get("fresh_every", 0)

    def save():
        job.save(model=model, optimizer=optimizer, interventions=interventions, **state)

    writer = FeatureWriter(
        partial_features,
        experiment=EXPERIMENT,
        run_id=run_id,
        seed=seed,
        config=json.dumps(settings, sort_keys=True),
        feature_dtype=settings.get("feature_dtype", "float16"),
        mode="a" if job.resuming else "w",
    )
    parts = RunParts(settings, seed, learner, writer, x_test, device)
    job_label = f"continual {run_id}"  # the progress lines' prefix
    batch_size = settings["optimizer"].get("batch_size", 1)
    slow = fallback_reason(model, optimizer, interventions, batch_size)
    if slow is not None:
        cost = ", ~50x slower" if batch_size == 1 else ""
        log.info("%s: %s: autograd loop%s", job_label, slow, cost)
    with writer:
        writer.truncate(len(state["rows"]))
        first_task, attempt_started = state["task"], time.perf_counter()
        # Where this attempt's time goes, for the job's last line (steps, measures, fresh).
        split = dict.fromkeys(("steps", "measures", "fresh reference"), 0.0)
        for task_index in range(first_task, settings["num_tasks"]):
            examples = task_examples(settings, seed, scenario.data_task(task_index), len(x_train))
            x_task = x_train if examples is None else x_train[examples]
            y_task = data.y_train if examples is None else data.y_train[examples]
            task = scenario.task(
                seed, task_index, x_train.shape[1], y_task, data.y_test, data.num_classes
            )
            if task.train_index is not None:  # the scenario keeps a subset (e.g. class_pairs)
                x_task = x_task[task.train_index]
            # Stratified over the classes present (labels renumbered 0..k-1 for the draw).
            probe = probe_indices(
                np.searchsorted(task.classes, task.y_train),
                settings.get("probe_size"),
                seed,
                len(task.classes),
            )
            progress = state["progress"]
            ctx.task, ctx.epoch = task_index, progress["epochs"]
            if progress["epochs"] == 0:
                head = scenario.head(seed, task_index)
                if head is not None:
                    switch_head(model, optimizer, state["heads"], head)
                if scenario.new_head:
                    zero_classifier(model)
                call(interventions, "on_task_start", ctx)
            # The NC1-threshold first task: NC1 of the probe after every epoch decides its end.
            nc1_schedule = task_index == 0 and "nc1_threshold" in settings["schedule"]["first_task"]
            while not task_done(settings, seed, task_index, progress):
                started = time.perf_counter()
                result = train_task_epoch(learner, settings, scenario, task_index, task, x_task)
                if progress["epochs"] == 0:
                    progress["first_accuracy"] = result.accuracy
                    progress["first_loss"] = float(result.loss.mean())
                progress["last_accuracy"] = result.accuracy
                progress["correct"] += float(result.correct.sum())
                progress["predictions"] += len(result.correct)
                progress["grad_norm"] += float(result.grad_norm.sum())
                progress["steps"] += len(result.grad_norm)
                measured = result.plasticity[~np.isnan(result.plasticity)]
                progress["plasticity"] += float(measured.sum())
                progress["plasticity_steps"] += len(measured)
                progress["epochs"] += 1
                ctx.epoch = progress["epochs"]
                state["total_steps"] = ctx.step
                if nc1_schedule:
                    inputs = task_inputs(x_task, task.permutation, probe)
                    features, _ = probe_features(model, inputs, device)
                    progress["nc1"] = collapse_metrics(
                        features, *present_classes(task.y_train[probe], *classifier_arrays(model))
                    )["nc1"]
                call(interventions, "on_epoch_end", ctx)
                progress["seconds"] += time.perf_counter() - started
                if nc1_schedule:
                    log.info(
                        "%s | nc1=%.4g",
                        progress_line(
                            job_label,
                            "first task epoch",
                            progress["epochs"],
                            settings["schedule"]["first_task"]["max_epochs"],
                            progress["seconds"] / progress["epochs"],
                            "epoch",
                            at_most=True,
                        ),
                        progress["nc1"],
                    )
                if not task_done(settings, seed, task_index, progress):
                    save()
            split["steps"] += progress["seconds"]
            started = time.perf_counter()
            row = task_row(parts, task_index, task, x_task, probe, state)
            split["measures"] += time.perf_counter() - started
            if fresh_every and task_index and task_index % fresh_every == 0:
                started = time.perf_counter()
                fresh = fresh_online_accuracy(
                    settings, seed, scenario, task_index, task, x_task, model
                )
                split["fresh reference"] += time.perf_counter() - started
                row["fresh_online_accuracy"] = fresh
                row["pl_fresh"] = fresh - row["online_accuracy"]
            row.update(_task_log(interventions, ctx))
            state["rows"].append(row)
            state["task"] = task_index + 1
            state["progress"] = _fresh_progress()
            save()
            done = task_index + 1 - first_task  # tasks of this attempt
            per_task = (time.perf_counter() - attempt_started) / done
            log.info(
                "%s | %s",
                progress_line(
                    job_label,
                    "task",
                    task_index + 1,
                    settings["num_tasks"],
                    per_task,
                    "task",
                ),
                " ".join(f"{k}={_short(v)}" for k, v in row.items() if k != "task"),
            )
        tasks = max(settings["num_tasks"] - first_task, 1)
        log.info(
            "%s: per task %s",
            job_label,
            ", ".join(f"{name} {total / tasks:.3g} s" for name, total in split.items()),
        )
    write_tsv(job.dir / "log.tsv", state["rows"], log_columns(state["rows"]))
    job.publish([(partial_features, features_path), (job.dir / "log.tsv", log_path)])
    log.info(finished_line(job_label, time.perf_counter() - job_started))


def _task_log(interventions, ctx: HookContext) -> dict:
    """The interventions' task_log columns of the task that ends (read once per task)."""
    columns: dict = {}
    for part in call(interventions, "task_log", ctx):
        clash = sorted(set(part) & (set(columns) | set(LOG_COLUMNS)))
        if clash:
            raise ValueError(f"task_log columns {clash} are logged twice")
        columns.update(part)
    return columns


def _flat_pixels(images: np.ndarray) -> np.ndarray:
    return (images.reshape(len(images), -1) / np.float32(255)).astype(np.float32)


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
