import copy
import math

import numpy as np
import pandas as pd
import pytest
from scipy.ndimage import gaussian_filter1d

from ncplasticity import stats
from ncplasticity.continual.tables import sweep_correlations
from ncplasticity.paper import figures, reproduction, selection
from ncplasticity.paper.reproduction import CLAIMS, COLUMNS, Inputs, write_reproduction
from ncplasticity.tables import read_table
from ncplasticity.tsv import write_table
from ncplasticity.warm_start.tables import sliding_correlations

TASKS = 12
ANALYSIS_TASKS = 10
CONTINUAL_SEEDS = [1, 2, 3]
WARM_SEEDS = [7, 8]
EPOCHS = [2, 4, 6, 8]
WINDOW = 6  # warm-up epochs: three checkpoints a window

CONTINUAL_SETTINGS = {
    "dataset": "mnist5k",
    "examples_per_task": 4000,
    "interventions": [],
    "network": {"hidden_sizes": [100, 100, 100], "layer_norm": False},
    "num_tasks": TASKS,
    "optimizer": {"batch_size": 1, "lr": 0.01, "name": "sgd"},
    "scenario": {"fraction": 1.0, "name": "permuted_pixels"},
    "schedule": {"epochs_per_task": 1, "first_task": {"epochs": 1}},
}
WARM_SETTINGS = {
    "dataset": "mnist5k",
    "width": 4,
    "lr": 0.05,
    "warmup_epochs": 8,
    "checkpoint_every": 2,
    "finetune": {"max_epochs": 12, "target_train_accuracy": 0.99},
    "interventions": [],
}


def _continual_variant(**first_task):
    settings = copy.deepcopy(CONTINUAL_SETTINGS)
    if first_task:
        settings["schedule"]["first_task"] = first_task
    return settings


def _warm_variant(*names):
    return {**WARM_SETTINGS, "interventions": [{"name": name, "lam": 0.1} for name in names]}


# Names say nothing: the choice must come from the settings.
CONTINUAL_VARIANTS = {
    "b": _continual_variant(nc1_threshold=0.3, max_epochs=5),
    "a": _continual_variant(),
    "c": {**_continual_variant(), "scenario": {"fraction": 0.5, "name": "permuted_pixels"}},
}
WARM_VARIANTS = {
    "x": _warm_variant("nc_reg"),
    "y": _warm_variant(),
    "z": _warm_variant("shrink_perturb"),
    "w": _warm_variant("nc_reg", "l2"),
}


def _continual_tables(tmp_path):
    """Per-run tables: accuracy falls and NC1 rises over tasks with per-seed noise and per-seed
    offsets (so the seed-mean r differs from the per-seed r); variant b trains its first task
    longer (a first-task sweep with a)."""
    paths = []
    for variant, first_epochs in (("a", 1), ("b", 3)):
        for seed in CONTINUAL_SEEDS:
            rng = np.random.default_rng(100 * seed + first_epochs)
            task = np.arange(TASKS)
            accuracy = 0.9 - 0.01 * task - 0.02 * seed + rng.normal(0, 0.01, TASKS)
            accuracy -= 0.005 * first_epochs * (task > 0)
            nc1 = 0.2 + 0.02 * task + 0.05 * seed + rng.normal(0, 0.02, TASKS)
            nc1[0] -= 0.03 * first_epochs + 0.01 * seed
            epochs = np.where(task == 0, first_epochs + (seed == 2), 1)
            table = pd.DataFrame(
                {
                    "run": f"{variant}_s{seed}",
                    "variant": variant,
                    "seed": seed,
                    "task": task,
                    "epochs": epochs,
                    "steps": epochs * 100,
                    "total_steps": np.cumsum(epochs * 100),
                    "online_accuracy": accuracy,
                    "nc1": nc1,
                    "pl": accuracy[0] - accuracy,
                }
            )
            paths.append(tmp_path / f"continual_{variant}_s{seed}.tsv")
            write_table(table, paths[-1])
    return paths


def _warm_start_files(tmp_path, collapsed_column=True):
    tables, logs = [], []
    warmups = selection.warm_start_choice(WARM_VARIANTS, _sources(), WINDOW, WARM_SEEDS)["warmups"]
    for variant in WARM_VARIANTS:
        for seed in WARM_SEEDS:
            epoch = np.array(EPOCHS)
            table = pd.DataFrame(
                {
                    "variant": variant,
                    "seed": seed,
                    "warmup_variant": warmups[variant],
                    "fresh_variant": "y",
                    "epoch": epoch,
                    "nc1": 10.0 / epoch + seed,
                    "nc2_etf_weights": 0.5 - 0.01 * epoch,
                    "nc3_wh": 0.8 - 0.02 * epoch,
                    "nc4_agreement": 0.5 + 0.05 * epoch,
                    "finetune_test_accuracy": 0.9 - 0.01 * epoch - 0.001 * seed * epoch**2,
                    "warmup_test_accuracy": 0.5 + 0.02 * epoch,
                    "fresh_test_accuracy": 0.92,
                }
            )
            tables.append(tmp_path / f"warm_{variant}_s{seed}.tsv")
            write_table(table, tables[-1])
    for warmup in sorted(set(warmups.values())):
        for seed in WARM_SEEDS:
            accuracy = np.linspace(0.3, 0.9, 8)
            if warmup == "x":  # the NC1 regulariser collapses from epoch 5 + seed - 7 on
                accuracy[4 + seed - 7 :] = 0.1 + 0.01 * seed
            log = pd.DataFrame(
                {"variant": warmup, "seed": seed, "epoch": np.arange(1, 9),
                 "train_accuracy": accuracy}
            )  # fmt: skip
            if collapsed_column:
                log["collapsed"] = accuracy < 0.2
            logs.append(tmp_path / f"log_{warmup}_s{seed}.tsv")
            write_table(log, logs[-1])
    correlations = tmp_path / "warm_correlations.tsv"
    sliding_correlations(tables, WINDOW, correlations)
    return tables, logs, correlations


def _sources():
    return {"x": "x", "y": "y", "z": "y", "w": "w"}


def _inputs(tmp_path, collapsed_column=True, warm_variants=WARM_VARIANTS):
    continual = selection.continual_choice(
        CONTINUAL_VARIANTS, [["a", "b"], ["c"]], ANALYSIS_TASKS, CONTINUAL_SEEDS
    )
    warm = selection.warm_start_choice(warm_variants, _sources(), WINDOW, WARM_SEEDS)
    tables = _continual_tables(tmp_path)
    sweep = tmp_path / "sweep.tsv"
    sweep_correlations(tables, sweep, ANALYSIS_TASKS, groups=[["a", "b"]])
    warm_tables, logs, correlations = _warm_start_files(tmp_path, collapsed_column)
    return Inputs(
        {"continual": continual, "warm_start": warm},
        continual_tables=tables,
        sweep_correlations=sweep,
        warm_start_tables=warm_tables,
        warm_start_correlations=correlations,
        warmup_logs=logs,
    )


def _rows(inputs):
    table = reproduction.reproduction_table(inputs)
    assert list(table.columns) == COLUMNS and len(table) == len(CLAIMS)
    return {row["claim"]: row for row in table.to_dict("records")}


def test_selection_comes_from_settings_not_names():
    continual = selection.continual_choice(
        CONTINUAL_VARIANTS, [["b", "a"], ["c"]], ANALYSIS_TASKS, CONTINUAL_SEEDS
    )
    assert continual["variant"] == "a" and continual["sweep"] == ["b", "a"]
    assert "first task until NC1 < 0.3" in continual["config"]["b"]
    assert "tasks 0-9 of 12" in continual["config"]["a"]
    # Without a one-epoch first task, the first variant following the protocol; none: None.
    only_sweep = {"b": CONTINUAL_VARIANTS["b"], "c": CONTINUAL_VARIANTS["c"]}
    assert selection.continual_choice(only_sweep, [["b"], ["c"]], 10, [1])["variant"] == "b"
    assert selection.continual_choice(only_sweep, [["b"], ["c"]], 10, [1])["sweep"] == []
    none = selection.continual_choice({"c": CONTINUAL_VARIANTS["c"]}, [["c"]], 10, [1])
    assert none["variant"] is None
    warm = selection.warm_start_choice(WARM_VARIANTS, _sources(), 4, WARM_SEEDS)
    assert (warm["plain"], warm["shrink_perturb"], warm["nc_reg"]) == ("y", "z", "x")
    assert "nc_reg(lam=0.1)" in warm["config"]["x"]


def test_continual_rows_are_the_papers_statistics(tmp_path):
    inputs = _inputs(tmp_path)
    rows = _rows(inputs)
    tables = pd.concat([read_table(p) for p in inputs.continual_tables])
    runs = tables[(tables["variant"] == "a") & (tables["task"] < ANALYSIS_TASKS)]
    # r of the seed-mean curves, recomputed here from the tables.
    curves = runs.groupby("task")[["online_accuracy", "nc1"]].mean()
    expected = np.corrcoef(curves["online_accuracy"], curves["nc1"])[0, 1]
    paper_r = rows["Permuted MNIST: r(online accuracy, NC1), the paper's statistic"]
    assert paper_r["ours"] == pytest.approx(expected, abs=1e-12)
    per_seed = [np.corrcoef(r["online_accuracy"], r["nc1"])[0, 1] for _, r in runs.groupby("seed")]
    assert paper_r["spread"] == pytest.approx(np.std(per_seed, ddof=1))
    assert paper_r["n_seeds"] == 3 and paper_r["paper"] == -0.945
    assert abs(expected - np.mean(per_seed)) > 0.01  # not the same statistic
    ours_r = rows["Permuted MNIST: r(online accuracy, NC1) per seed (ours)"]
    assert ours_r["ours"] == pytest.approx(np.tanh(np.mean(np.arctanh(per_seed))))
    end = rows["Permuted MNIST: NC1 at the end"]
    last = runs[runs["task"] == ANALYSIS_TASKS - 1]["nc1"]
    assert end["ours"] == pytest.approx(last.mean()) and end["spread"] == pytest.approx(last.std())
    assert "(task 9)" in end["statistic"] and end["config"].startswith("continual/a:")
    start = rows["Permuted MNIST: online accuracy at the start"]
    assert start["ours"] == pytest.approx(runs[runs["task"] == 0]["online_accuracy"].mean())


def test_sweep_rows_smooth_the_per_task_abs_r(tmp_path):
    inputs = _inputs(tmp_path)
    rows = _rows(inputs)
    tables = pd.concat([read_table(p) for p in inputs.continual_tables])
    tables = tables[tables["task"] < ANALYSIS_TASKS]
    first = tables[tables["task"] == 0].set_index("run")["nc1"]
    abs_r = [
        abs(stats.pearson(group["run"].map(first), group["pl"]))
        for _, group in tables[tables["task"] > 0].groupby("task")
    ]
    row = rows["First-task sweep: |r(NC1 after the first task, PL_i)|"]
    smooth = gaussian_filter1d(np.array(abs_r), 4, mode="reflect")
    assert row["ours"] == pytest.approx(smooth.mean())
    assert row["spread"] == pytest.approx(smooth.std())
    assert row["n_seeds"] == 3 and "6 runs" in row["config"]


def test_warm_start_rows_at_the_nearest_checkpoint(tmp_path):
    rows = _rows(_inputs(tmp_path))
    at5 = rows["Warm start: test accuracy at warm-up epoch 5"]
    # Checkpoints 2, 4, 6, 8: epoch 5 is as near to 4 as to 6; ties go to the earlier.
    expected = [0.9 - 0.04 - 0.001 * seed * 16 for seed in WARM_SEEDS]
    assert at5["ours"] == pytest.approx(np.mean(expected))
    assert at5["spread"] == pytest.approx(np.std(expected, ddof=1))
    assert "warm-up epoch 4 (the checkpoint nearest to the paper's 5)" in at5["statistic"]
    assert at5["config"].startswith("warm_start/y:") and at5["paper"] == 0.610
    nc1 = rows["Warm start: NC1 at warm-up epoch 350"]
    assert nc1["ours"] == pytest.approx(10 / 8 + 7.5) and "epoch 8" in nc1["statistic"]
    assert rows["Warm start: test accuracy after S&P at warm-up epoch 50"]["config"].startswith(
        "warm_start/z:"
    )
    sliding = rows["Warm start: sliding-window r(NC1, test accuracy), window ending at 100"]
    assert sliding["n_seeds"] == 2 and "ending at 8" in sliding["statistic"]


@pytest.mark.parametrize("collapsed_column", [True, False])
def test_regulariser_collapse_rows(tmp_path, collapsed_column):
    rows = _rows(_inputs(tmp_path, collapsed_column))
    assert rows["NC1 regulariser: seeds whose warm-up collapses"]["ours"] == 1.0
    first = rows["NC1 regulariser: first epoch of the collapse"]
    assert first["ours"] == pytest.approx(5.5) and first["n_seeds"] == 2
    rule = "`collapsed` flag" if collapsed_column else "< 0.5 x the best of the epochs before"
    assert rule in first["statistic"]
    lowest = rows["NC1 regulariser: lowest warm-up training accuracy"]
    assert lowest["ours"] == pytest.approx(0.175)


def test_missing_inputs_say_so(tmp_path):
    inputs = _inputs(tmp_path, warm_variants={"y": WARM_VARIANTS["y"]})
    rows = _rows(inputs)
    row = rows["Warm start: test accuracy after S&P at warm-up epoch 5"]
    assert math.isnan(row["ours"]) and row["n_seeds"] == 0
    assert row["config"] == "not available: no warm_start variant with interventions exactly " + (
        "['shrink_perturb']"
    )
    full = _inputs(tmp_path)
    choice = {**full.choice, "continual": None}
    rows = _rows(Inputs(choice, warm_start_tables=full.warm_start_tables))
    assert rows["Permuted MNIST: NC1 at the end"]["config"] == (
        "not available: the continual experiment is not among this run's experiments"
    )
    assert rows["Warm start: NC1 at warm-up epoch 5"]["n_seeds"] == 2
    assert "no warm-up logs" in rows["NC1 regulariser: lowest warm-up training accuracy"]["config"]


def test_written_table_and_markdown(tmp_path):
    tsv, md = tmp_path / "reproduction.tsv", tmp_path / "reproduction.md"
    write_reproduction(_inputs(tmp_path), tsv, md)
    table = read_table(tsv)
    assert list(table.columns) == COLUMNS and len(table) == len(CLAIMS)
    text = md.read_text()
    assert text.count("\n| ") == len(CLAIMS) + 1  # the header row and one per claim
    assert "| Permuted MNIST: r(online accuracy, NC1), the paper's statistic |" in text


def test_every_figure_renders(tmp_path):
    inputs = _inputs(tmp_path)
    arguments = {
        "continual_accuracy_nc1": (
            inputs.continual_tables, {"analysis_tasks": ANALYSIS_TASKS, "variants": ["a", "b"]}
        ),
        "first_task_sweep_correlations": ([inputs.sweep_correlations], {"variants": ["a", "b"]}),
        "warm_start_nc_vs_accuracy": (inputs.warm_start_tables, {"variant": "y"}),
        "warm_start_sliding_correlation": ([inputs.warm_start_correlations], {"window": WINDOW}),
        "warm_start_accuracy": (inputs.warm_start_tables, {"variants": list(WARM_VARIANTS)}),
    }  # fmt: skip
    assert set(arguments) == set(figures.FIGURES)
    for name, (paths, kwargs) in arguments.items():
        pdf, png = tmp_path / f"{name}.pdf", tmp_path / f"{name}.png"
        figures.FIGURES[name](list(paths), pdf, png, **kwargs)
        assert pdf.stat().st_size > 1000 and png.read_bytes()[:4] == b"\x89PNG"
