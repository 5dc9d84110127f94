"""task_incremental: each task trains its own k classes with its own head; heads share no row,
a group's head comes back as its last task left it, on both training paths, and resumes."""

import copy

import numpy as np
import pytest
import torch
import yaml
from continual_runs import snapshots, train
from table_rows import read_rows
from test_scenarios import REPO, SCHEMA, SETTINGS

import ncplasticity.continual.learner as continual_learner
from ncplasticity.continual.heads import switch_head
from ncplasticity.continual.scenarios import SCENARIOS
from ncplasticity.continual.study import SPEC as CONTINUAL_SPEC
from ncplasticity.networks import MLP
from ncplasticity.study import StudyError, resolve_experiment

LABELS = np.repeat(np.arange(10), 30)
TEST_LABELS = np.repeat(np.arange(10), 7)


def _scenario(k=2):
    return SCENARIOS.build([{"name": "task_incremental", "classes_per_task": k}])[0]


def test_tasks_partition_the_classes_and_label_within_the_group():
    scenario = _scenario(2)
    tasks = [scenario.task(3, t, 784, LABELS, TEST_LABELS) for t in range(10)]
    groups = [tuple(LABELS[task.train_index]) for task in tasks]
    first = [set(g) for g in groups[:5]]
    assert all(len(g) == 2 for g in first)
    assert set().union(*first) == set(range(10))  # five disjoint pairs: every class once
    assert groups[5:] == groups[:5]  # then the groups come back in the same order
    assert [scenario.head(3, t) for t in range(10)] == [0, 1, 2, 3, 4] * 2
    for t, task in enumerate(tasks):
        classes = scenario.classes(3, t).tolist()
        # Label = the class's place in its group, for training and test alike.
        expected = [classes.index(c) for c in LABELS[task.train_index]]
        np.testing.assert_array_equal(task.y_train, expected)
        np.testing.assert_array_equal(
            task.y_test, [classes.index(c) for c in TEST_LABELS[task.test_index]]
        )
        assert set(TEST_LABELS[task.test_index]) == set(classes)
    assert scenario.num_outputs(10) == 2
    # The grouping is drawn per run.
    assert any(scenario.classes(s, 0).tolist() != scenario.classes(3, 0).tolist() for s in (4, 5))


def test_switching_heads_keeps_each_heads_rows_and_optimiser_state():
    torch.manual_seed(0)
    model = MLP(6, [5], 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    heads: dict = {}

    def step():
        optimizer.zero_grad()
        model(torch.randn(4, 6)).square().sum().backward()
        optimizer.step()

    switch_head(model, optimizer, heads, 0)
    assert model.classifier.weight.abs().sum() == 0  # a new head starts at zero
    step()
    head0 = model.classifier.weight.detach().clone()
    moments0 = optimizer.state[model.classifier.weight]["exp_avg"].clone()
    switch_head(model, optimizer, heads, 1)
    assert model.classifier.weight.abs().sum() == 0
    assert optimizer.state[model.classifier.weight]["exp_avg"].abs().sum() == 0
    step()
    step()
    head1 = model.classifier.weight.detach().clone()
    switch_head(model, optimizer, heads, 0)  # head 0 back exactly as it left
    assert torch.equal(model.classifier.weight, head0)
    assert torch.equal(optimizer.state[model.classifier.weight]["exp_avg"], moments0)
    # Adam's step count is the run's (3 steps), for the returning head too.
    assert optimizer.state[model.classifier.weight]["step"] == 3
    assert torch.equal(heads[1]["weight"][0], head1)  # the other head, kept apart
    assert heads["current"] == 0


def _settings(**changes):
    base = copy.deepcopy(SETTINGS) | {"examples_per_task": None, "num_tasks": 7}
    base["scenario"] = {"name": "task_incremental", "classes_per_task": 2}
    return base | changes


@pytest.mark.parametrize("batch_size", [1, 4])  # the compiled loop, the autograd loop
def test_a_run_trains_each_group_with_its_own_head(dataset, tmp_path, monkeypatch, batch_size):
    heads_seen = []
    real_epoch = continual_learner.train_epoch

    def recording(model, *args, **kwargs):
        heads_seen.append(model.classifier.weight.detach().clone())
        return real_epoch(model, *args, **kwargs)

    monkeypatch.setattr(continual_learner, "train_epoch", recording)
    run = _settings()
    run["optimizer"] = {**run["optimizer"], "batch_size": batch_size}
    features, log_path = train(dataset, tmp_path, "ti_s1", run)
    rows = read_rows(log_path)
    # Tasks 0-4 start new heads at zero; tasks 5 and 6 get back the heads tasks 0 and 1 left.
    assert all(float(w.abs().sum()) == 0 for w in heads_seen[:5])
    stored = snapshots(features)
    for later, earlier in ((5, 0), (6, 1)):
        np.testing.assert_array_equal(heads_seen[later].numpy(), stored[earlier][1][2])
    for row, (info, (_, labels, weight, _)) in zip(rows, stored, strict=True):
        assert info.c == 2 and weight.shape == (2, 32)
        assert 0.7 < row["online_accuracy"] <= 1 and 0.8 < row["test_accuracy"] <= 1
        assert sorted(np.unique(labels)) == [0, 1]
    # A returning group starts where its head left off: better than its first visit.
    assert rows[5]["online_accuracy"] > rows[0]["online_accuracy"] - 0.02


def test_a_resumed_run_swaps_the_same_heads(dataset, tmp_path, monkeypatch):
    reference = read_rows(train(dataset, tmp_path / "a", "ti_s1", _settings())[1])
    real_epoch, calls = continual_learner.train_epoch, []

    def killed(*args, **kwargs):
        calls.append(1)
        if len(calls) == 6:  # in task 5, after the heads of tasks 0-4 were stored
            raise KeyboardInterrupt("killed")
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(continual_learner, "train_epoch", killed)
    with pytest.raises(KeyboardInterrupt):
        train(dataset, tmp_path / "b", "ti_s1", _settings())
    monkeypatch.undo()
    resumed = read_rows(train(dataset, tmp_path / "b", "ti_s1", _settings())[1])
    for a, b in zip(reference, resumed, strict=True):
        a.pop("wall_seconds"), b.pop("wall_seconds")
        assert a == b


@pytest.mark.parametrize(
    ("k", "message"),
    [
        (3, r"classes_per_task: 3 does not divide the 10"),
        (20, r"classes_per_task: 20 exceeds the 10 classes"),
    ],
)
def test_invalid_classes_per_task_stops_naming_variant_and_key(k, message):
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    scenario = {"name": "task_incremental", "classes_per_task": k}
    config["continual"]["variants"] = {"odd": {"scenario": scenario}}
    with pytest.raises(StudyError, match=rf"continual\.variants\.odd\.scenario\.{message}"):
        resolve_experiment(config, SCHEMA, CONTINUAL_SPEC)
