"""Continual scenarios (permuted labels, random labels, class pairs), drawn epochs per task,
churn and the interventions' task_log columns."""

import copy
import math
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from continual_runs import snapshots, train
from table_rows import read_rows

import ncplasticity.continual.job as ct
import ncplasticity.continual.learner as continual_learner
import ncplasticity.continual.measures as continual_measures
from ncplasticity.continual import scenarios
from ncplasticity.continual.interventions import REGISTRY
from ncplasticity.continual.scenarios import SCENARIOS
from ncplasticity.continual.scenarios.class_pairs import ClassPairs
from ncplasticity.continual.study import SPEC as CONTINUAL_SPEC
from ncplasticity.interventions import Intervention
from ncplasticity.nc import collapse_metrics, file_metrics
from ncplasticity.study import StudyError, resolve_experiment

REPO = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
# Small runs: 1,000 of mnist5k's 4,000 training digits a task, a 100-example probe.
SETTINGS = {
    "dataset": "mnist5k",
    "examples_per_task": 1000,
    "num_tasks": 3,
    "probe_size": 100,
    "feature_dtype": "float32",
    "network": {"hidden_sizes": [32, 32], "layer_norm": False},
    "optimizer": {"name": "sgd", "lr": 0.01, "batch_size": 1},
    "scenario": {"name": "permuted_pixels", "fraction": 1.0},
    "schedule": {"first_task": {"epochs": 1}, "epochs_per_task": 1},
    "interventions": [],
}


def settings(scenario=None, **changes):
    result = copy.deepcopy(SETTINGS) | changes
    if scenario is not None:
        result["scenario"] = scenario
    return result


def _build(name):
    return SCENARIOS.build([{"name": name}])[0]


# --- task draws --------------------------------------------------------------------------


LABELS = np.repeat(np.arange(10), 30)  # 30 examples of each class
TEST_LABELS = np.repeat(np.arange(10), 7)


def _draw(name, seed, task):
    return _build(name).task(seed, task, 784, LABELS, TEST_LABELS)


def _same(a, b):
    fields = ("permutation", "y_train", "y_test", "train_index", "test_index")
    return all(np.array_equal(getattr(a, f), getattr(b, f)) for f in fields)


@pytest.mark.parametrize("name", ["permuted_labels", "random_labels", "class_pairs"])
def test_task_draws_are_seeded_per_seed_and_task(name):
    assert _same(_draw(name, 1, 2), _draw(name, 1, 2))
    assert not _same(_draw(name, 1, 2), _draw(name, 1, 3))
    assert not _same(_draw(name, 1, 2), _draw(name, 2, 2))
    # Inputs are never permuted in these scenarios.
    np.testing.assert_array_equal(_draw(name, 1, 2).permutation, np.arange(784))


def test_permuted_labels_relabel_train_and_test_alike():
    for task_index in range(5):
        task = _draw("permuted_labels", 3, task_index)
        relabel = {int(c): int(task.y_train[LABELS == c][0]) for c in range(10)}
        assert sorted(relabel.values()) == list(range(10))  # a permutation of the labels
        np.testing.assert_array_equal(task.y_train, [relabel[c] for c in LABELS])
        np.testing.assert_array_equal(task.y_test, [relabel[c] for c in TEST_LABELS])
        assert task.train_index is None and task.test_index is None
        np.testing.assert_array_equal(task.classes, np.arange(10))
    assert _build("permuted_labels").num_outputs(10) == 10


def test_random_labels_are_uniform_and_unrelated_to_the_digits():
    labels = np.repeat(np.arange(10), 500)
    task = _build("random_labels").task(1, 0, 784, labels, labels[:1000])
    assert task.y_train.shape == labels.shape and task.y_test.shape == (1000,)
    counts = np.bincount(task.y_train, minlength=10)
    assert len(counts) == 10 and np.all(np.abs(counts - 500) < 100)
    assert abs(np.mean(task.y_train == labels) - 0.1) < 0.02
    assert abs(np.mean(task.y_test == labels[:1000]) - 0.1) < 0.04
    assert task.train_index is None


def test_class_pairs_keep_the_pairs_examples_labelled_0_and_1():
    scenario = _build("class_pairs")
    assert scenario.new_head and scenario.num_outputs(10) == 2
    pairs = set()
    for task_index in range(8):
        task = scenario.task(2, task_index, 784, LABELS, TEST_LABELS)
        first, second = ClassPairs.pair(2, task_index)
        assert first != second
        pairs.add((int(first), int(second)))
        np.testing.assert_array_equal(
            task.train_index, np.flatnonzero((LABELS == first) | (LABELS == second))
        )
        np.testing.assert_array_equal(
            task.test_index, np.flatnonzero((TEST_LABELS == first) | (TEST_LABELS == second))
        )
        np.testing.assert_array_equal(task.y_train, LABELS[task.train_index] == second)
        np.testing.assert_array_equal(task.y_test, TEST_LABELS[task.test_index] == second)
        np.testing.assert_array_equal(task.classes, [0, 1])
    assert len(pairs) > 4  # a new pair per task (pairs may recur)


def test_present_classes_give_nc_over_the_classes_a_task_has():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 3, 7], 20)
    features = rng.normal(size=(60, 5)) + 3 * np.eye(5)[[0, 1, 2]].repeat(20, axis=0)
    weight, bias = rng.normal(size=(10, 5)), rng.normal(size=10)
    with pytest.raises(ValueError, match="class 1 has no samples"):
        collapse_metrics(features, labels, weight, bias)
    renumbered, rows, offsets = scenarios.present_classes(labels, weight, bias)
    np.testing.assert_array_equal(renumbered, np.repeat([0, 1, 2], 20))
    np.testing.assert_array_equal(rows, weight[[0, 3, 7]])
    np.testing.assert_array_equal(offsets, bias[[0, 3, 7]])
    assert math.isfinite(collapse_metrics(features, renumbered, rows, offsets)["nc1"])
    # All classes present: unchanged.
    full = np.arange(10).repeat(2)
    assert scenarios.present_classes(full, weight, bias)[1] is weight


# --- runs ----------------------------------------------------------------------------------


def test_repeated_task_keeps_improving(dataset, tmp_path):
    """fraction 0 repeats the same task (on a new 1,000-digit sample each time): online
    accuracy keeps rising."""
    same = settings({"name": "permuted_pixels", "fraction": 0.0}, num_tasks=4)
    rows = read_rows(train(dataset, tmp_path, "same_s1", same)[1])
    accuracy = [row["online_accuracy"] for row in rows]
    assert all(b > a for a, b in zip(accuracy, accuracy[1:], strict=False)), accuracy


def test_random_labels_start_at_chance(dataset, tmp_path):
    rows = read_rows(train(dataset, tmp_path, "rl_s1", settings({"name": "random_labels"}))[1])
    assert abs(rows[0]["online_accuracy"] - 0.1) < 0.04
    for row in rows:  # test labels are random too: chance by construction
        assert abs(row["test_accuracy"] - 0.1) < 0.05


def test_permuted_labels_run_learns_each_relabelling(dataset, tmp_path):
    rows = read_rows(train(dataset, tmp_path, "pl_s1", settings({"name": "permuted_labels"}))[1])
    assert all(row["test_accuracy"] > 0.5 for row in rows)
    stored = snapshots(tmp_path / "pl_s1.h5")
    assert all(info.c == 10 for info, _ in stored)


def test_class_pairs_run_is_binary_with_a_new_head_per_task(dataset, tmp_path, monkeypatch):
    """Each task trains, probes, tests and snapshots only its pair's examples, with a 2-unit
    head zeroed at its start; the stored snapshot's NC is over the 2 classes."""
    real_epoch = continual_learner.train_epoch
    head_at_start = []

    def recording(model, *args, **kwargs):
        if kwargs.get("ctx") is not None:  # the run's training epochs (not the churn's copy)
            head_at_start.append(
                float(
                    model.classifier.weight.detach().abs().sum()
                    + model.classifier.bias.detach().abs().sum()
                )
            )
        return real_epoch(model, *args, **kwargs)

    monkeypatch.setattr(continual_learner, "train_epoch", recording)
    pairs = settings({"name": "class_pairs"}, examples_per_task=None, num_tasks=3)
    features_path, log_path = train(dataset, tmp_path, "cp_s1", pairs)
    assert head_at_start == [0.0, 0.0, 0.0]  # one epoch per task, each starting from zero
    rows = read_rows(log_path)
    stored = snapshots(features_path)
    _, nc = file_metrics(features_path)
    for row, (info, arrays), nc_row in zip(rows, stored, nc, strict=True):
        # mnist5k has 400 training digits of each class; batch size 1: a step per example.
        assert row["steps"] == 800
        features, labels, weight, bias = arrays
        assert info.c == 2 and weight.shape == (2, 32) and bias.shape == (2,)
        assert sorted(np.unique(labels)) == [0, 1] and abs(np.mean(labels) - 0.5) < 0.02
        assert nc_row["c"] == 2 and math.isfinite(nc_row["nc1"])
        assert nc_row["nc1"] == pytest.approx(collapse_metrics(*arrays)["nc1"])
        assert 0.5 < row["test_accuracy"] <= 1 and 0.5 < row["online_accuracy"] <= 1
    assert [row["total_steps"] for row in rows] == [800, 1600, 2400]


def test_drawn_epochs_per_task_and_their_step_counts(dataset, tmp_path):
    drawn = settings(
        num_tasks=5, schedule={"first_task": {"epochs": 2}, "epochs_per_task": [1, 2, 3]}
    )
    expected = [2] + [scenarios.task_epochs(drawn, 1, t) for t in range(1, 5)]
    assert len(set(expected[1:])) > 1  # the draws vary over tasks
    # Seeded per (seed, task), independently of the list of tasks that came before.
    assert expected[1:] == [scenarios.task_epochs(drawn, 1, t) for t in range(1, 5)]
    many = [scenarios.task_epochs(drawn, 7, t) for t in range(200)]
    assert set(many) == {1, 2, 3} and many != [
        scenarios.task_epochs(drawn, 8, t) for t in range(200)
    ]
    assert scenarios.task_epochs(settings(), 1, 3) == 1

    features_path, log_path = train(dataset, tmp_path, "drawn_s1", drawn)
    rows = read_rows(log_path)
    assert [row["epochs"] for row in rows] == expected
    assert [row["steps"] for row in rows] == [1000 * e for e in expected]
    assert [row["total_steps"] for row in rows] == list(np.cumsum([1000 * e for e in expected]))
    coords = [info.coords for info, _ in snapshots(features_path)]
    assert [c["epoch"] for c in coords] == expected
    assert [c["step"] for c in coords] == [row["total_steps"] for row in rows]
    for row in rows:
        assert math.isfinite(row["churn"]) and row["churn"] > 0


def test_epochs_per_task_schema_takes_an_int_or_a_list():
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["continual"]["variants"] = {"drawn": {"schedule": {"epochs_per_task": [1, 2, 4]}}}
    (run, *_) = resolve_experiment(config, SCHEMA, CONTINUAL_SPEC).values()
    assert run.settings["schedule"]["epochs_per_task"] == [1, 2, 4]
    for bad in ([], [0, 1], 0, [1.5]):
        config["continual"]["variants"]["drawn"]["schedule"]["epochs_per_task"] = bad
        with pytest.raises(StudyError, match="epochs_per_task"):
            resolve_experiment(config, SCHEMA, CONTINUAL_SPEC)


def test_churn_leaves_training_unchanged(dataset, tmp_path, monkeypatch):
    """The churn's update runs on copies: the run's snapshots are bitwise those of a run that
    does not measure it (Adam: the optimiser's state is copied too)."""
    adam = settings(optimizer={"name": "adam", "lr": 1e-3, "batch_size": 2}, num_tasks=2)
    measured = train(dataset, tmp_path / "a", "adam_s1", adam)
    churn = [row["churn"] for row in read_rows(measured[1])]
    assert all(math.isfinite(c) and c > 0 for c in churn)
    monkeypatch.setattr(continual_measures, "churn", lambda *args: 0.0)
    unmeasured = train(dataset, tmp_path / "b", "adam_s1", adam)
    for (_, a), (_, b) in zip(snapshots(measured[0]), snapshots(unmeasured[0]), strict=True):
        assert all(x.tobytes() == y.tobytes() for x, y in zip(a, b, strict=True))


class TaskLogger(Intervention):
    """A toy intervention that reports what it saw at each task end as log columns."""

    name = "toy_task_logger"
    parameters = {"key": {"type": "string", "default": "toy_tasks_seen"}}

    def __init__(self, **params):
        super().__init__(**params)
        self.seen = 0

    def on_task_start(self, ctx):
        self.seen += 1

    def task_log(self, ctx):
        return {self.params.get("key", "toy_tasks_seen"): self.seen, "toy_step": ctx.step}


@pytest.fixture
def task_logger():
    REGISTRY.register(TaskLogger)
    yield TaskLogger
    REGISTRY.unregister(TaskLogger.name)


def test_task_log_columns_follow_the_log_columns(dataset, tmp_path, task_logger):
    logged = settings(interventions=[{"name": "toy_task_logger"}])
    _, log_path = train(dataset, tmp_path, "toy_s1", logged)
    header = log_path.read_text().splitlines()[0].split("\t")
    assert header == [*ct.LOG_COLUMNS, "toy_tasks_seen", "toy_step"]
    rows = read_rows(log_path)
    assert [row["toy_tasks_seen"] for row in rows] == [1, 2, 3]
    assert [row["toy_step"] for row in rows] == [row["total_steps"] for row in rows]

    clash = settings(interventions=[{"name": "toy_task_logger", "key": "churn"}])
    with pytest.raises(ValueError, match=r"task_log columns \['churn'\] are logged twice"):
        train(dataset, tmp_path, "clash_s1", clash)


def test_new_head_scenario_gives_shrink_perturb_a_matching_fresh_model(dataset, tmp_path):
    """Interventions that draw a fresh model get one with the scenario's output width."""
    pairs = settings(
        {"name": "class_pairs"},
        num_tasks=2,
        interventions=[{"name": "shrink_perturb", "shrink": 0.6, "perturb": 0.01}],
    )
    rows = read_rows(train(dataset, tmp_path, "cp_sp_s1", pairs)[1])
    assert len(rows) == 2 and all(0.5 < row["online_accuracy"] for row in rows)


def test_nc_dial_moves_nc1_in_the_sign_of_its_strength(dataset, tmp_path):
    """On mnist5k with the paper's network, strength ±1 moves the mean NC1 of the first 20
    tasks from the run without the dial in the strength's direction (DESIGN §3b): by 10 % at
    least, one seed's trajectory being one draw (+1 gave -17 % and -1 +20 % or more here)."""
    base = settings(examples_per_task=4000, num_tasks=20, probe_size=1000)
    base["network"]["hidden_sizes"] = [100, 100, 100]
    mean_nc1 = {}
    for strength in (0.0, 1.0, -1.0):
        run = copy.deepcopy(base)
        if strength:
            run["interventions"] = [{"name": "nc_dial", "strength": strength}]
        features, _ = train(dataset, tmp_path, f"dial{strength}", run)
        mean_nc1[strength] = np.mean([row["nc1"] for row in file_metrics(features)[1]])
    assert mean_nc1[1.0] <= 0.9 * mean_nc1[0.0]
    assert mean_nc1[-1.0] >= 1.1 * mean_nc1[0.0]


def test_progress_lines_say_run_position_rate_and_eta(dataset, tmp_path, caplog):
    caplog.set_level("INFO", logger="ncplasticity.continual.job")
    train(dataset, tmp_path, "progress_s1", settings())
    lines = [r.getMessage() for r in caplog.records if "continual progress_s1" in r.getMessage()]
    *progress, split, finished = lines
    assert [line.split(",")[0] for line in progress] == [
        f"continual progress_s1: task {t}/3" for t in (1, 2, 3)
    ]
    assert all(" s/task, eta " in line for line in progress)
    # Where a task's time went, then the job's last line: what a Snakemake benchmark file
    # would hold, without its sampling.
    assert split.startswith("continual progress_s1: per task steps ")
    assert re.fullmatch(r"continual progress_s1: finished in \d+ s, peak memory \d+ MB", finished)


class PermutedRows(scenarios.Scenario):
    """A toy scenario: each task permutes the image's rows, keeping each row intact."""

    name = "toy_permuted_rows"

    def task(self, seed, task, num_pixels, y_train, y_test, num_classes=10):
        side = round(num_pixels**0.5)
        rows = scenarios.task_rng(seed, task).permutation(side)
        return scenarios.Task((rows[:, None] * side + np.arange(side)).ravel(), y_train, y_test)


def test_a_scenario_is_one_registered_class(dataset, tmp_path):
    """Registering a class is all a scenario takes: the study validates it by name and a run
    trains on its tasks, whose draws are its own."""
    SCENARIOS.register(PermutedRows)
    try:
        config = yaml.safe_load((REPO / "config.yaml").read_text())
        config["continual"]["variants"] = {"rows": {"scenario": {"name": "toy_permuted_rows"}}}
        (run, *_) = resolve_experiment(config, SCHEMA, CONTINUAL_SPEC).values()
        assert run.settings["scenario"] == {"name": "toy_permuted_rows"}
        toy = settings({"name": "toy_permuted_rows"}, num_tasks=2)
        features, log_path = train(dataset, tmp_path, "rows_s1", toy)
        assert [row["task"] for row in read_rows(log_path)] == [0, 1]
        permutation = PermutedRows().task(1, 1, 784, LABELS, TEST_LABELS).permutation
        assert sorted(permutation) == list(range(784))
        assert (np.diff(permutation.reshape(28, 28), axis=1) == 1).all()  # rows kept intact
    finally:
        SCENARIOS.unregister(PermutedRows.name)
    with pytest.raises(StudyError, match="scenario.name: 'toy_permuted_rows' is not one of"):
        resolve_experiment(config, SCHEMA, CONTINUAL_SPEC)


# --- class-incremental and recurring tasks -------------------------------------------------


def test_class_incremental_sees_k_more_classes_each_task_until_all():
    scenario = SCENARIOS.build([{"name": "class_incremental", "classes_per_task": 2}])[0]
    seen = [scenario.task(4, t, 784, LABELS, TEST_LABELS) for t in range(6)]
    classes = [set(task.classes) for task in seen]
    assert [len(c) for c in classes] == [2, 4, 6, 8, 10, 10]
    assert all(a < b for a, b in zip(classes[:4], classes[1:5], strict=True))  # nested, growing
    for task in seen:
        np.testing.assert_array_equal(task.permutation, np.arange(784))
        np.testing.assert_array_equal(task.y_train, LABELS[task.train_index])
        assert set(task.y_test) == set(task.y_train)
    # The order of arrival is drawn per run.
    other = scenario.task(5, 0, 784, LABELS, TEST_LABELS)
    assert any(
        set(other.classes) != set(scenario.task(s, 0, 784, LABELS, TEST_LABELS).classes)
        for s in (4, 6, 7)
    )


def test_recurring_tasks_repeat_the_task_one_period_before():
    inner = {"name": "permuted_pixels", "fraction": 1.0}
    scenario = SCENARIOS.build([{"name": "recurring", "period": 3, "scenario": inner}])[0]
    plain = _build("permuted_pixels")
    for t in range(3, 9):
        assert _same(
            scenario.task(1, t, 784, LABELS, TEST_LABELS),
            scenario.task(1, t - 3, 784, LABELS, TEST_LABELS),
        )
        assert _same(
            scenario.task(1, t, 784, LABELS, TEST_LABELS),
            plain.task(1, t % 3, 784, LABELS, TEST_LABELS),
        )
    assert not _same(
        scenario.task(1, 1, 784, LABELS, TEST_LABELS), scenario.task(1, 2, 784, LABELS, TEST_LABELS)
    )
    # A task's examples recur with it.
    subset = settings(examples_per_task=100)
    examples = [scenarios.task_examples(subset, 1, scenario.data_task(t), 4000) for t in (1, 4)]
    np.testing.assert_array_equal(*examples)
    # The wrapped scenario's head and outputs.
    pairs = {"name": "class_pairs"}
    wrapped = SCENARIOS.build([{"name": "recurring", "period": 2, "scenario": pairs}])[0]
    assert wrapped.new_head and wrapped.num_outputs(10) == 2


@pytest.mark.parametrize(
    ("scenario", "message"),
    [
        (
            {"name": "class_incremental", "classes_per_task": 3},
            r"scenario\.classes_per_task: 3 does not divide the 10",
        ),
        (
            {"name": "class_incremental", "classes_per_task": 20},
            r"scenario\.classes_per_task: 20 exceeds the 10 classes",
        ),
        (
            {
                "name": "recurring",
                "period": 2,
                "scenario": {"name": "class_incremental", "classes_per_task": 4},
            },
            r"scenario\.scenario\.classes_per_task: 4 does not divide",
        ),
        (
            {"name": "recurring", "period": 2, "scenario": {"name": "permuted_pixels", "f": 1}},
            r"scenario\.scenario: Additional properties are not allowed",
        ),
    ],
)
def test_invalid_scenarios_stop_before_any_job_naming_variant_and_key(scenario, message):
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["continual"]["variants"] = {"odd": {"scenario": scenario}}
    with pytest.raises(StudyError, match=rf"continual\.variants\.odd\.{message}"):
        resolve_experiment(config, SCHEMA, CONTINUAL_SPEC)


@pytest.mark.parametrize(
    "scenario",
    [
        {"name": "class_incremental", "classes_per_task": 5},
        {"name": "recurring", "period": 2, "scenario": {"name": "permuted_pixels"}},
    ],
)
def test_new_scenarios_run_end_to_end(dataset, tmp_path, scenario):
    _, log_path = train(dataset, tmp_path, "new_s1", settings(scenario, num_tasks=3))
    rows = read_rows(log_path)
    assert [row["task"] for row in rows] == [0, 1, 2]
    assert all(0.2 < row["online_accuracy"] <= 1 for row in rows)


# --- every scenario on both paths, with every intervention ---------------------------------

# Parameters a scenario or intervention has no default for, and nc_dial's sign: its default
# positive strength kills the features of a network this small (DESIGN §3b), leaving no NC1.
REQUIRED = {
    "recurring": {"period": 2, "scenario": {"name": "permuted_pixels"}},
    "nc_target": {"target": 1.0},
    "nc_dial": {"strength": -0.5},
}


@pytest.mark.parametrize("name", sorted(SCENARIOS.names()))
def test_every_scenario_runs_compiled_and_with_every_intervention(dataset, tmp_path, name):
    """The compiled loop (plain; each compiled form is checked step by step against PyTorch
    on its own, whatever the data) and the autograd loop (batch 2) with every registered
    intervention at once, with every measure, on every registered scenario."""
    scenario = {"name": name, **REQUIRED.get(name, {})}
    small = {"examples_per_task": 500, "num_tasks": 3, "probe_size": 50}
    small["network"] = {"hidden_sizes": [16, 16], "layer_norm": False}
    compiled = settings(scenario, **small)
    compiled["schedule"] = {**compiled["schedule"], "fresh_every": 2}
    everything = copy.deepcopy(compiled)
    everything["optimizer"] = {**everything["optimizer"], "batch_size": 2}
    everything["interventions"] = [
        {"name": n, **REQUIRED.get(n, {})} for n in sorted(REGISTRY.names())
    ]
    for run_id, run in (("compiled_s1", compiled), ("everything_s1", everything)):
        features, log_path = train(dataset, tmp_path, run_id, run)
        rows = read_rows(log_path)
        assert [row["task"] for row in rows] == [0, 1, 2]
        for row in rows:
            assert 0 <= row["online_accuracy"] <= 1 and 0 <= row["test_accuracy"] <= 1
            assert math.isfinite(row["feature_norm"]) and math.isfinite(row["churn"])
        assert math.isfinite(rows[2]["pl_fresh"])
        assert all(math.isfinite(nc["nc1"]) for nc in file_metrics(features)[1])


def test_the_interventions_study_holds_every_scenario():
    study = yaml.safe_load((REPO / "configs/interventions.yaml").read_text())
    variants = study["continual"]["variants"].values()
    named = {v["scenario"]["name"] for v in variants if v and "scenario" in v}
    assert named | {"permuted_pixels"} == set(SCENARIOS.names())
