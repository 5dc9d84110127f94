"""drifting_pixels: one transposition at a time, every pixel moved after steps_to_full steps,
each step trained in its own pixel order on both paths, and the checks that stop a study."""

import copy

import numpy as np
import pytest
import yaml
from continual_runs import train
from table_rows import read_rows
from test_scenarios import REPO, SCHEMA, SETTINGS

import ncplasticity.continual.learner as continual_learner
from ncplasticity.continual.scenarios import SCENARIOS
from ncplasticity.continual.study import SPEC as CONTINUAL_SPEC
from ncplasticity.study import StudyError, resolve_experiment

PIXELS = 784


def _scenario(steps_to_full=2000):
    return SCENARIOS.build([{"name": "drifting_pixels", "steps_to_full": steps_to_full}])[0]


def test_consecutive_orders_differ_by_at_most_one_transposition():
    scenario = _scenario(2000)
    orders = np.array([scenario.permutation_at(7, PIXELS, t) for t in range(4500)])
    differing = (orders[1:] != orders[:-1]).sum(axis=1)
    assert set(differing) <= {0, 2}  # a step swaps two positions or none
    assert (differing == 2).sum() > 0.7 * 4500 * 2 * PIXELS / 2000  # ~1.57 swaps per 2 steps
    assert all(sorted(order) == list(range(PIXELS)) for order in orders[::500])


@pytest.mark.parametrize("start", [0, 1234, 5000])
def test_after_steps_to_full_steps_nearly_every_pixel_has_moved(start):
    scenario = _scenario(2000)
    before = scenario.permutation_at(3, PIXELS, start)
    after = scenario.permutation_at(3, PIXELS, start + 2000)
    assert np.mean(before != after) >= 0.95
    # ... and the drift keeps going.
    assert np.mean(after != scenario.permutation_at(3, PIXELS, start + 4000)) >= 0.95


def test_orders_are_seeded_and_recomputed_alike():
    a, b = _scenario(), _scenario()
    late = a.permutation_at(1, PIXELS, 9000)
    a.permutation_at(1, PIXELS, 100)  # going back replays from the start
    np.testing.assert_array_equal(late, a.permutation_at(1, PIXELS, 9000))
    np.testing.assert_array_equal(late, b.permutation_at(1, PIXELS, 9000))
    assert not np.array_equal(late, b.permutation_at(2, PIXELS, 9000))
    np.testing.assert_array_equal(a.permutation_at(1, PIXELS, 0)[:10], np.arange(10))


def test_each_step_is_trained_in_its_own_pixel_order():
    scenario = _scenario(2000)
    rng = np.random.default_rng(0)
    x = rng.random((300, PIXELS), dtype=np.float32)
    labels = rng.integers(0, 10, 300)
    task = scenario.task(5, 2, PIXELS, labels, labels[:50])
    order = rng.permutation(300)
    inputs, y, train_order, permutation = scenario.epoch_inputs(5, 2, task, x, order)
    np.testing.assert_array_equal(train_order, np.arange(300))
    np.testing.assert_array_equal(permutation, np.arange(PIXELS))
    np.testing.assert_array_equal(y, labels[order])
    for i in (0, 1, 150, 299):  # task 2 is steps 600-899 of the drift
        np.testing.assert_array_equal(
            inputs[i], x[order[i]][scenario.permutation_at(5, PIXELS, 600 + i)]
        )
    # The task is measured in the order of its last step.
    np.testing.assert_array_equal(task.permutation, scenario.permutation_at(5, PIXELS, 899))


def _settings(**changes):
    run = copy.deepcopy(SETTINGS) | {"num_tasks": 3} | changes
    run["scenario"] = {"name": "drifting_pixels", "steps_to_full": 2000}
    return run


@pytest.mark.parametrize("batch_size", [1, 4])  # the compiled loop, the autograd loop
def test_a_drifting_run_learns_through_the_drift(dataset, tmp_path, monkeypatch, batch_size):
    inputs_seen = []
    real_epoch = continual_learner.train_epoch

    def recording(model, x, *args, **kwargs):
        inputs_seen.append(x.copy())
        return real_epoch(model, x, *args, **kwargs)

    monkeypatch.setattr(continual_learner, "train_epoch", recording)
    run = _settings()
    run["optimizer"] = {**run["optimizer"], "batch_size": batch_size}
    rows = read_rows(train(dataset, tmp_path, "drift_s1", run)[1])
    assert [row["steps"] for row in rows] == [1000 // batch_size] * 3
    assert all(len(x) == 1000 for x in inputs_seen)
    # Consecutive stretches continue one drift: no boundary in the inputs.
    assert not np.array_equal(inputs_seen[0][0], inputs_seen[1][0])
    assert all(0.3 < row["test_accuracy"] <= 1 for row in rows)


@pytest.mark.parametrize(
    ("scenario", "schedule", "message"),
    [
        ({"name": "drifting_pixels", "steps_to_full": 1000}, {}, r"scenario\.steps_to_full: 1000"),
        (
            {"name": "drifting_pixels"},
            {"epochs_per_task": 2},
            r"scenario: drifting_pixels has no tasks to repeat",
        ),
        (
            {"name": "recurring", "period": 3, "scenario": {"name": "drifting_pixels"}},
            {},
            r"scenario\.scenario: 'drifting_pixels' has no tasks to recur",
        ),
    ],
)
def test_invalid_drift_stops_before_any_job_naming_variant_and_key(scenario, schedule, message):
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    variant = {"scenario": scenario}
    if schedule:
        variant["schedule"] = schedule
    config["continual"]["variants"] = {"odd": variant}
    with pytest.raises(StudyError, match=rf"continual\.variants\.odd\.{message}"):
        resolve_experiment(config, SCHEMA, CONTINUAL_SPEC)
