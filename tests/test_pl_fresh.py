"""pl_fresh: every fresh_every-th task a fresh copy of the learner trains on the same task;
the run itself is unchanged, and a run that loses no plasticity is not behind it."""

import copy
import math

import numpy as np
import pytest
from continual_runs import snapshots, train
from table_rows import read_rows
from test_scenarios import SETTINGS

import ncplasticity.continual.learner as continual_learner


def _settings(fresh_every, scenario=None, **changes):
    run = copy.deepcopy(SETTINGS) | {"num_tasks": 5} | changes
    run["schedule"] = {**run["schedule"], "fresh_every": fresh_every}
    if scenario:
        run["scenario"] = scenario
    return run


def test_fresh_reference_every_kth_task_leaves_the_run_unchanged(dataset, tmp_path):
    features, log_path = train(dataset, tmp_path / "on", "f_s1", _settings(2))
    plain_features, plain_log = train(dataset, tmp_path / "off", "f_s1", _settings(0))
    rows, plain = read_rows(log_path), read_rows(plain_log)
    for row, reference in zip(rows, plain, strict=True):
        fresh = row.pop("fresh_online_accuracy"), row.pop("pl_fresh")
        if row["task"] in (2, 4):
            assert 0.3 < fresh[0] <= 1
            assert fresh[1] == pytest.approx(fresh[0] - row["online_accuracy"])
        else:
            assert all(math.isnan(v) for v in fresh)
        assert all(math.isnan(reference.pop(k)) for k in ("fresh_online_accuracy", "pl_fresh"))
        row.pop("wall_seconds"), reference.pop("wall_seconds")
        assert row == reference
    for (_, a), (_, b) in zip(snapshots(features), snapshots(plain_features), strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)


def test_the_fresh_network_is_the_runs_learner_freshly_seeded(dataset, tmp_path, monkeypatch):
    """It trains the task's first epoch, in the run's epoch order, with a network seeded by
    (seed, task) that is not the run's, on the run's path."""
    seen = []
    real_epoch = continual_learner.train_epoch

    def recording(model, x, y, order, *args, **kwargs):
        seen.append((model, order.copy(), kwargs["ctx"].step))
        return real_epoch(model, x, y, order, *args, **kwargs)

    monkeypatch.setattr(continual_learner, "train_epoch", recording)
    train(dataset, tmp_path, "f_s1", _settings(2, num_tasks=3))
    (run_model, *_), fresh = seen[0], seen[3]  # tasks 0, 1, 2; then task 2's fresh network
    assert fresh[0] is not run_model and fresh[2] == 0  # its own network and step count
    np.testing.assert_array_equal(fresh[1], seen[2][1])  # task 2's order
    assert not np.array_equal(
        fresh[0].hidden[0].weight.detach().numpy(), run_model.hidden[0].weight.detach().numpy()
    )


def test_no_plasticity_loss_means_no_gap_to_a_fresh_network(dataset, tmp_path):
    """Fraction 0 repeats task 0: the run has learnt it already, a fresh network has not."""
    same_task = {"name": "permuted_pixels", "fraction": 0.0}
    rows = read_rows(train(dataset, tmp_path, "f0_s1", _settings(1, same_task, num_tasks=4))[1])
    gaps = [row["pl_fresh"] for row in rows[1:]]
    assert np.mean(gaps) <= 0
    # Permuted MNIST, the other way round: the fresh gap is finite, and small this early.
    rows = read_rows(train(dataset, tmp_path, "pp_s1", _settings(1, num_tasks=3))[1])
    assert all(abs(row["pl_fresh"]) < 0.2 for row in rows[1:])
