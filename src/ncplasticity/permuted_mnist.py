"""Permuted-MNIST continual learning (DESIGN §3): training runs, per-run plasticity tables,
correlations between collapse and plasticity, and the data behind its figures.

Protocol, as in the paper's code (which follows Dohare et al.'s loss-of-plasticity code):

* Every task, task 0 included, is a new random permutation of the pixels of the whole
  training set, drawn from ``np.random.default_rng([seed, 0, task])``; samples are visited in
  a new shuffled order each epoch (``default_rng([seed, 1, task, epoch])``), one epoch per
  task. Pixels are scaled to [0, 1] and flattened, not normalised.
* The first task is longer: ``e{N}`` trains it N epochs; ``nc{tau}`` trains it epoch by
  epoch until NC1 of the probe features drops below tau (at most ``max_epochs``).
* Online accuracy of a task is the accuracy of the predictions made before each update over
  its *first* epoch, so every task, the longer first one included, is measured the same way:
  learning from one pass over new data. (The first task's last-epoch online accuracy is
  logged beside it.) PL_i = acc(task 0) − acc(task i).
* After each task: accuracy on the permuted test split, and the features (last hidden ReLU)
  of the task's permuted training set, or of a fixed seeded stratified probe subset of it
  (``probe_size``), stored as snapshot ``task{t:04d}`` in the run's feature store; dead-unit
  fraction (all hidden layers), effective rank of the features and weight norm are logged.

Runs are resumable: the state after every epoch (model, counters, log rows) goes to
``partial/{run}/state.pt`` after that epoch's snapshot is flushed; all randomness is derived
from (seed, task, epoch), so a resumed run is bitwise identical to an uninterrupted one.

``torch`` is imported inside the training functions only, so that the table, analysis and
figure jobs start without it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ncplasticity import stats
from ncplasticity.jobstate import publish, save_atomic
from ncplasticity.nc import METRIC_KEYS, collapse_metrics
from ncplasticity.plasticity import dead_fraction, effective_rank, plasticity_loss, weight_norm
from ncplasticity.tsv import column, read_tsv, write_tsv

log = logging.getLogger(__name__)

EXPERIMENT = "permuted_mnist"
# Independent random streams per (seed, ...): np.random.default_rng([seed, stream, ...]).
_PERMUTATION_STREAM, _ORDER_STREAM, _PROBE_STREAM = 0, 1, 2

LOG_COLUMNS = (
    "task",
    "epochs",
    "steps",
    "total_steps",
    "online_accuracy",
    "online_accuracy_last_epoch",
    "online_loss",
    "first_task_nc1",
    "test_accuracy",
    "dead_fraction",
    "effective_rank",
    "weight_norm",
    "wall_seconds",
)
# Per-task quantities correlated with online accuracy: NC metrics, then plasticity measures.
CORRELATED = (
    *(key for key in METRIC_KEYS if key != "accuracy"),
    "dead_fraction",
    "effective_rank",
    "weight_norm",
)
_RUN_ID = re.compile(r"s(?P<seed>\d+)_(?:e(?P<epochs>\d+)|nc(?P<tau>[0-9.eE+-]+))")


@dataclass(frozen=True)
class RunSpec:
    """A run: seed and first-task setting (``epochs`` or ``nc1_threshold``, not both)."""

    seed: int
    epochs: int | None = None
    nc1_threshold: float | None = None

    @property
    def setting(self) -> str:
        return f"e{self.epochs}" if self.epochs is not None else f"nc{self.nc1_threshold:g}"

    @property
    def run_id(self) -> str:
        return f"s{self.seed}_{self.setting}"


def parse_run_id(run_id: str) -> RunSpec:
    """``s1_e3`` -> seed 1, 3 first-task epochs; ``s2_nc0.2`` -> seed 2, NC1 threshold 0.2."""
    match = _RUN_ID.fullmatch(run_id)
    if match is None:
        raise ValueError(
            f"run id {run_id!r} is not s{{seed}}_e{{epochs}} or s{{seed}}_nc{{tau}} (e.g. s1_e3)"
        )
    seed = int(match["seed"])
    if match["epochs"] is not None:
        return RunSpec(seed, epochs=int(match["epochs"]))
    try:
        return RunSpec(seed, nc1_threshold=float(match["tau"]))
    except ValueError:
        raise ValueError(
            f"run id {run_id!r}: NC1 threshold {match['tau']!r} is not a number"
        ) from None


def task_permutation(seed: int, task: int, num_pixels: int) -> np.ndarray:
    return np.random.default_rng([seed, _PERMUTATION_STREAM, task]).permutation(num_pixels)


def epoch_order(seed: int, task: int, epoch: int, num_samples: int) -> np.ndarray:
    return np.random.default_rng([seed, _ORDER_STREAM, task, epoch]).permutation(num_samples)


def probe_indices(labels: np.ndarray, size: int | None, seed: int, num_classes: int) -> np.ndarray:
    """Sorted indices of a seeded subset of ``size`` samples, stratified by class (largest-
    remainder allocation, at least one per class); all samples when ``size`` is None or ≥ N."""
    labels = np.asarray(labels)
    if size is None or size >= len(labels):
        return np.arange(len(labels))
    if size < num_classes:
        raise ValueError(f"probe_size {size} is smaller than the {num_classes} classes")
    counts = np.bincount(labels, minlength=num_classes)
    quota = size * counts / counts.sum()
    take = np.maximum(np.floor(quota).astype(int), np.minimum(counts, 1))
    for c in np.argsort(-(quota - np.floor(quota)), kind="stable"):
        if take.sum() >= size:
            break
        take[c] += take[c] < counts[c]
    rng = np.random.default_rng([seed, _PROBE_STREAM])
    chosen = [
        rng.choice(np.flatnonzero(labels == c), take[c], replace=False) for c in range(num_classes)
    ]
    return np.sort(np.concatenate(chosen))


# --- Training ---------------------------------------------------------------------------


def train_run(
    cfg: dict,
    dataset_path: str | os.PathLike,
    run_id: str,
    features_path: str | os.PathLike,
    log_path: str | os.PathLike,
    partial_dir: str | os.PathLike,
    device: str = "auto",
    threads: int = 1,
) -> None:
    """Train one run (``cfg`` = the ``permuted_mnist`` config section) and write its feature
    store and per-task log; resumes from ``partial_dir`` when an earlier attempt left state."""
    import torch

    from ncplasticity.data import load_prepared
    from ncplasticity.features import FeatureWriter
    from ncplasticity.models import MLP

    spec = parse_run_id(run_id)
    torch.set_num_threads(threads)
    device = torch.device(
        "cuda"
        if device == "auto" and torch.cuda.is_available()
        else "cpu"
        if device == "auto"
        else device
    )
    data = load_prepared(dataset_path)
    x_train = _flat_pixels(data.x_train)
    x_test = _flat_pixels(data.x_test)
    probe = probe_indices(data.y_train, cfg.get("probe_size"), spec.seed, data.num_classes)
    config_text = json.dumps(cfg, sort_keys=True)

    torch.manual_seed(spec.seed)
    model = MLP(x_train.shape[1], cfg["hidden_sizes"], data.num_classes).to(device)
    partial = Path(partial_dir)
    state_path = partial / "state.pt"
    partial_features = partial / "features.h5"
    state = _load_state(state_path, run_id, config_text)
    if state is None:
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        state = {
            "run_id": run_id,
            "config": config_text,
            "task": 0,
            "total_steps": 0,
            "rows": [],
            "progress": _fresh_progress(),
        }
        mode = "w"
    else:
        model.load_state_dict(state["model"])
        log.info(
            "%s: resuming at task %d (%d epochs into it)",
            run_id,
            state["task"],
            state["progress"]["epochs"],
        )
        mode = "a"
    writer = FeatureWriter(
        partial_features,
        experiment=EXPERIMENT,
        run_id=run_id,
        seed=spec.seed,
        config=config_text,
        feature_dtype=cfg.get("feature_dtype", "float16"),
        mode=mode,
    )
    with writer:
        writer.truncate(len(state["rows"]))
        for task in range(state["task"], cfg["num_tasks"]):
            permutation = task_permutation(spec.seed, task, x_train.shape[1])
            progress = state["progress"]
            while not _task_done(task, progress, spec, cfg):
                started = time.perf_counter()
                _train_one_epoch(
                    model, x_train, data.y_train, spec.seed, task, permutation, cfg, progress
                )
                state["total_steps"] += len(x_train)
                if task == 0 and spec.nc1_threshold is not None:
                    features, _ = _probe_features(model, x_train[probe], permutation, device)
                    progress["nc1"] = collapse_metrics(
                        features, data.y_train[probe], *_classifier(model)
                    )["nc1"]
                progress["seconds"] += time.perf_counter() - started
                if not _task_done(task, progress, spec, cfg):
                    _save_state(state_path, state, model)
            started = time.perf_counter()
            features, hidden = _probe_features(model, x_train[probe], permutation, device)
            weight, bias = _classifier(model)
            writer.add_snapshot(
                f"task{task:04d}",
                features,
                data.y_train[probe],
                weight,
                bias,
                task=task,
                epoch=progress["epochs"],
                step=state["total_steps"],
                split="train",
            )
            row = {
                "task": task,
                "epochs": progress["epochs"],
                "steps": progress["epochs"] * len(x_train),
                "total_steps": state["total_steps"],
                "online_accuracy": progress["first_accuracy"],
                "online_accuracy_last_epoch": progress["last_accuracy"],
                "online_loss": progress["first_loss"],
                "first_task_nc1": progress.get("nc1"),
                "test_accuracy": _accuracy(model, x_test, data.y_test, permutation, device),
                "dead_fraction": dead_fraction(hidden),
                "effective_rank": effective_rank(features),
                "weight_norm": weight_norm(p.detach().cpu().numpy() for p in model.parameters()),
            }
            row["wall_seconds"] = progress["seconds"] + time.perf_counter() - started
            state["rows"].append(row)
            state["task"] = task + 1
            state["progress"] = _fresh_progress()
            _save_state(state_path, state, model)
            write_tsv(partial / "log.tsv", state["rows"], LOG_COLUMNS)
            log.info(
                "%s task %d: %s",
                run_id,
                task,
                " ".join(f"{k}={_short(v)}" for k, v in row.items() if k != "task"),
            )
    write_tsv(partial / "log.tsv", state["rows"], LOG_COLUMNS)
    publish([(partial_features, features_path), (partial / "log.tsv", log_path)], partial)
    try:
        partial.parent.rmdir()  # the last run to finish removes the empty partial/ folder
    except OSError:
        pass


def _flat_pixels(images: np.ndarray) -> np.ndarray:
    return (images.reshape(len(images), -1) / np.float32(255)).astype(np.float32)


def _fresh_progress() -> dict:
    return {
        "epochs": 0,
        "first_accuracy": None,
        "first_loss": None,
        "last_accuracy": None,
        "nc1": None,
        "seconds": 0.0,
    }


def _task_done(task: int, progress: dict, spec: RunSpec, cfg: dict) -> bool:
    epochs = progress["epochs"]
    if task > 0:
        return epochs >= 1
    if spec.epochs is not None:
        return epochs >= spec.epochs
    max_epochs = cfg["first_task"]["max_epochs"]
    nc1 = progress["nc1"]
    return epochs >= max_epochs or (nc1 is not None and nc1 < spec.nc1_threshold)


def _train_one_epoch(model, x, y, seed, task, permutation, cfg, progress) -> None:
    from ncplasticity.online_sgd import train_epoch

    order = epoch_order(seed, task, progress["epochs"], len(x))
    result = train_epoch(model, x, y, order, cfg["lr"], cfg["batch_size"], permutation)
    if progress["epochs"] == 0:
        progress["first_accuracy"] = result.accuracy
        progress["first_loss"] = float(result.loss.mean())
    progress["last_accuracy"] = result.accuracy
    progress["epochs"] += 1


def _probe_features(model, x, permutation, device) -> tuple[np.ndarray, list[np.ndarray]]:
    """(penultimate features, every hidden layer's activations) of permuted inputs."""
    import torch

    model.eval()
    with torch.no_grad():
        hidden = model.hidden_activations(torch.from_numpy(x[:, permutation]).to(device))
    hidden = [h.cpu().numpy() for h in hidden]
    return hidden[-1], hidden


def _classifier(model) -> tuple[np.ndarray, np.ndarray]:
    return (
        model.classifier.weight.detach().cpu().numpy().copy(),
        model.classifier.bias.detach().cpu().numpy().copy(),
    )


def _accuracy(model, x, y, permutation, device) -> float:
    import torch

    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(np.ascontiguousarray(x[:, permutation])).to(device))
    return float((logits.argmax(1).cpu().numpy() == y).mean())


def _load_state(path: Path, run_id: str, config_text: str) -> dict | None:
    """The saved state if it belongs to this run and config (otherwise start over)."""
    import torch

    if not path.exists():
        return None
    state = torch.load(path, weights_only=True)
    if state.get("run_id") != run_id or state.get("config") != config_text:
        log.warning("%s: state of another run or config; starting %s from scratch", path, run_id)
        return None
    return state


def _save_state(path: Path, state: dict, model) -> None:
    save_atomic({**state, "model": model.state_dict()}, path)


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


# --- Tables and analysis -----------------------------------------------------------------


def plasticity_table(
    run_id: str, log_path: str | os.PathLike, metrics_path: str | os.PathLike, out_path
) -> None:
    """Join a run's log and NC metrics per task, add PL_i = acc(task 0) − acc(task i)."""
    spec = parse_run_id(run_id)
    log_rows = read_tsv(log_path)
    metrics = {row["task"]: row for row in read_tsv(metrics_path) if "task" in row}
    missing = [row["task"] for row in log_rows if row["task"] not in metrics]
    if missing:
        raise ValueError(f"{metrics_path}: no metrics for tasks {missing} of {log_path}")
    pl = plasticity_loss([row["online_accuracy"] for row in log_rows])
    pl_test = plasticity_loss([row["test_accuracy"] for row in log_rows])
    rows = []
    for row, loss, loss_test in zip(log_rows, pl, pl_test, strict=True):
        nc = metrics[row["task"]]
        rows.append(
            {
                "run": run_id,
                "seed": spec.seed,
                "setting": spec.setting,
                **row,
                "pl": loss,
                "pl_test": loss_test,
                "probe_accuracy": nc["accuracy"],
            }
            | {key: nc[key] for key in METRIC_KEYS if key != "accuracy"}
        )
    write_tsv(out_path, rows)


def _read_tables(paths, analysis_tasks: int) -> dict[str, list[list[dict]]]:
    """Tables grouped by first-task setting, each cut to its first ``analysis_tasks`` tasks."""
    by_setting = defaultdict(list)
    for path in paths:
        rows = [row for row in read_tsv(path) if row["task"] < analysis_tasks]
        if not rows:
            raise ValueError(f"{path}: no tasks below analysis_tasks={analysis_tasks}")
        by_setting[rows[0]["setting"]].append(rows)
    return dict(by_setting)


def correlations(
    table_paths, out_path, analysis_tasks: int, x: str = "online_accuracy", n_boot: int = 2000
) -> None:
    """Per-task ``x`` against every NC metric and plasticity measure, per first-task setting:
    per seed (r, p) and pooled over seeds (r with a bootstrap CI over seeds), Pearson and
    Spearman, each with the partial correlation controlling for training steps so far."""
    rows = []
    for setting, runs in sorted(_read_tables(table_paths, analysis_tasks).items()):
        for metric in CORRELATED:
            for method in stats.METHODS:
                xs = [column(run, x) for run in runs]
                ys = [column(run, metric) for run in runs]
                steps = [column(run, "total_steps") for run in runs]
                for run, xv, yv, sv in zip(runs, xs, ys, steps, strict=True):
                    r, p, n = stats.correlation_test(xv, yv, method)
                    rows.append(
                        {
                            "setting": setting,
                            "x": x,
                            "metric": metric,
                            "method": method,
                            "seed": run[0]["seed"],
                            "r": r,
                            "p": p,
                            "n_points": n,
                            "n_groups": 1,
                            "partial_r_steps": stats.partial_correlation(xv, yv, sv, method),
                        }
                    )
                pooled = stats.bootstrap_correlation(xs, ys, method, n_boot=n_boot, seed=0)
                rows.append(
                    {
                        "setting": setting,
                        "x": x,
                        "metric": metric,
                        "method": method,
                        "seed": "pooled",
                        **pooled,
                        "partial_r_steps": stats.partial_correlation(
                            np.concatenate(xs), np.concatenate(ys), np.concatenate(steps), method
                        ),
                    }
                )
    columns = [
        "setting",
        "x",
        "metric",
        "method",
        "seed",
        "r",
        "ci_low",
        "ci_high",
        "p",
        "n_points",
        "n_groups",
        "partial_r_steps",
    ]
    write_tsv(out_path, rows, columns)


def sweep_correlations(table_paths, out_path, analysis_tasks: int) -> None:
    """Per task i ≥ 1, across all runs of the first-task sweep: correlation of PL_i with the
    NC1 after the first task and with the first task's epochs, and of PL_i with that NC1
    controlling for the first task's training steps."""
    points = []
    for runs in _read_tables(table_paths, analysis_tasks).values():
        for run in runs:
            first = run[0]
            for row in run[1:]:
                points.append(
                    {
                        "task": row["task"],
                        "pl": row["pl"],
                        "first_nc1": first["nc1"],
                        "first_epochs": first["epochs"],
                        "first_steps": first["steps"],
                    }
                )
    rows = []
    for method in stats.METHODS:
        by_nc1 = stats.per_group_correlation(points, "task", "first_nc1", "pl", method)
        by_epochs = stats.per_group_correlation(points, "task", "first_epochs", "pl", method)
        for nc1_row, epochs_row in zip(by_nc1, by_epochs, strict=True):
            members = [p for p in points if p["task"] == nc1_row["task"]]
            partial = stats.partial_correlation(
                column(members, "first_nc1"),
                column(members, "pl"),
                column(members, "first_steps"),
                method,
            )
            rows.append(
                {
                    "task": nc1_row["task"],
                    "method": method,
                    "r_first_nc1_pl": nc1_row["r"],
                    "p_first_nc1_pl": nc1_row["p"],
                    "r_first_epochs_pl": epochs_row["r"],
                    "p_first_epochs_pl": epochs_row["p"],
                    "partial_r_first_nc1_pl_steps": partial,
                    "n_runs": nc1_row["n"],
                }
            )
    write_tsv(out_path, rows)


# --- Figures ------------------------------------------------------------------------------

# Figure panels: (table column, y label); nc4_agreement = 1 − nc4 (the paper plots agreement).
FIGURE_PANELS = {
    "collapse": (
        ("online_accuracy", "online accuracy"),
        ("nc1", "NC1"),
        ("nc2_etf_weights", "NC2 (ETF distance of W)"),
        ("nc3_wh", "NC3 (WH ETF distance)"),
        ("nc4_agreement", "NC4 agreement (1 − nc4)"),
    ),
    "plasticity": (
        ("test_accuracy", "test accuracy"),
        ("dead_fraction", "dead ReLU fraction"),
        ("effective_rank", "effective rank of features"),
        ("weight_norm", "weight norm"),
    ),
}


def over_tasks_figure(table_paths, pdf, png, analysis_tasks: int, panels: str) -> None:
    """The ``FIGURE_PANELS[panels]`` columns against task: mean ± std over seeds, one line
    per first-task setting."""
    from ncplasticity.plots import permuted_mnist_over_tasks

    if panels not in FIGURE_PANELS:
        raise ValueError(f"unknown panel set {panels!r}; expected one of {list(FIGURE_PANELS)}")
    curves = {}
    for setting, runs in sorted(_read_tables(table_paths, analysis_tasks).items()):
        n = min(len(run) for run in runs)
        values = {}
        for name, _ in FIGURE_PANELS[panels]:
            if name == "nc4_agreement":
                values[name] = 1 - np.array([column(run[:n], "nc4") for run in runs])
            else:
                values[name] = np.array([column(run[:n], name) for run in runs])
        curves[setting] = (np.arange(n), values)
    permuted_mnist_over_tasks(curves, FIGURE_PANELS[panels], pdf, png)


def sweep_figure(sweep_path, pdf, png) -> None:
    """Per-task correlations of the first-task sweep (Pearson and Spearman)."""
    from ncplasticity.plots import permuted_mnist_sweep

    permuted_mnist_sweep(read_tsv(sweep_path), pdf, png)
