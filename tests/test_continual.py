"""Continual driver: probe sets, scenarios, determinism, resuming, tables, analysis, figures."""

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from continual_runs import snapshots, train
from table_rows import read_rows

import ncplasticity.continual.job as ct
import ncplasticity.continual.learner as continual_learner
from ncplasticity import metrics, stats
from ncplasticity.continual import figures as continual_figures
from ncplasticity.continual import scenarios
from ncplasticity.continual import tables as continual_tables
from ncplasticity.continual.interventions import REGISTRY
from ncplasticity.continual.scenarios import SCENARIOS
from ncplasticity.continual.study import SPEC as CONTINUAL_SPEC
from ncplasticity.interventions import Intervention
from ncplasticity.jobs import ResumableJob
from ncplasticity.nc import file_metrics
from ncplasticity.networks import MLP
from ncplasticity.study import StudyError, resolve_experiment
from ncplasticity.tables import read_tables
from ncplasticity.tsv import write_tsv

REPO = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
SETTINGS = {
    "dataset": "mnist5k",
    "examples_per_task": None,
    "num_tasks": 3,
    "probe_size": 300,
    "feature_dtype": "float16",
    "network": {"hidden_sizes": [32, 32], "layer_norm": False},
    "optimizer": {"name": "sgd", "lr": 0.01, "batch_size": 1},
    "scenario": {"name": "permuted_pixels", "fraction": 1.0},
    "schedule": {"first_task": {"epochs": 1}, "epochs_per_task": 1},
    "interventions": [],
}


def settings(first_task=None, **changes):
    result = copy.deepcopy(SETTINGS) | changes
    if first_task is not None:
        result["schedule"] = {**result["schedule"], "first_task": first_task}
    return result


def epochs(n):
    return settings({"epochs": n})


def threshold(tau, max_epochs=3):
    return settings({"nc1_threshold": tau, "max_epochs": max_epochs})


def _assert_same_run(a, b):
    (features_a, log_a), (features_b, log_b) = a, b
    snaps_a, snaps_b = snapshots(features_a), snapshots(features_b)
    assert [info for info, _ in snaps_a] == [info for info, _ in snaps_b]
    for (_, arrays_a), (_, arrays_b) in zip(snaps_a, snaps_b, strict=True):
        for x, y in zip(arrays_a, arrays_b, strict=True):
            assert x.dtype == y.dtype and x.tobytes() == y.tobytes()
    rows_a, rows_b = read_rows(log_a), read_rows(log_b)
    for row in rows_a + rows_b:
        row.pop("wall_seconds")
    assert rows_a == rows_b


def test_probe_is_seeded_stratified_and_complete_when_unset():
    labels = np.repeat(np.arange(10), [50, 40, 60, 45, 55, 50, 52, 48, 50, 50])
    probe = scenarios.probe_indices(labels, 100, seed=3, num_classes=10)
    assert len(probe) == 100 and len(np.unique(probe)) == 100 and np.all(np.diff(probe) > 0)
    counts = np.bincount(labels[probe], minlength=10)
    assert np.all(np.abs(counts - 100 * np.bincount(labels) / len(labels)) <= 1)
    np.testing.assert_array_equal(probe, scenarios.probe_indices(labels, 100, 3, 10))
    assert not np.array_equal(probe, scenarios.probe_indices(labels, 100, 4, 10))
    np.testing.assert_array_equal(
        scenarios.probe_indices(labels, None, 3, 10), np.arange(len(labels))
    )
    with pytest.raises(ValueError, match="smaller than the 10 classes"):
        scenarios.probe_indices(labels, 5, 3, 10)


def test_run_outputs_and_determinism(dataset, tmp_path):
    first = train(dataset, tmp_path / "a", "e2_s1", epochs(2))
    _assert_same_run(first, train(dataset, tmp_path / "b", "e2_s1", epochs(2)))
    assert not (tmp_path / "a" / "partial").exists()
    snaps = snapshots(first[0])
    assert [info.name for info, _ in snaps] == ["task0000", "task0001", "task0002"]
    assert [info.coords for info, _ in snaps] == [
        {"task": 0, "epoch": 2, "step": 8000, "split": "train"},
        {"task": 1, "epoch": 1, "step": 12000, "split": "train"},
        {"task": 2, "epoch": 1, "step": 16000, "split": "train"},
    ]
    assert all(info.n == 300 and info.d == 32 and info.c == 10 for info, _ in snaps)
    log = read_rows(first[1])
    assert [row["steps"] for row in log] == [8000, 4000, 4000]
    for row in log:
        assert 0.3 < row["online_accuracy"] < 1 and 0.3 < row["test_accuracy"] < 1
        assert 0 <= row["dead_fraction"] < 1 and 1 < row["effective_rank"] <= 32
    # The second epoch of task 0 sees the same data again: it is predicted better.
    assert log[0]["online_accuracy_last_epoch"] > log[0]["online_accuracy"]
    # The paper's accuracy of a task: the mean over all its epochs (two of 4,000 steps here).
    both = (log[0]["online_accuracy"] + log[0]["online_accuracy_last_epoch"]) / 2
    assert log[0]["online_accuracy_all_epochs"] == pytest.approx(both, abs=1e-12)
    assert all(row["online_accuracy_all_epochs"] == row["online_accuracy"] for row in log[1:])
    assert all(row["degenerate"] is False and row["feature_norm"] > 0 for row in log)


def test_nc1_threshold_stops_first_task(dataset, tmp_path):
    # NC1 of this small network is about 0.58 after 2 epochs and above 0.6 after one.
    _, log_path = train(dataset, tmp_path, "nc0.6_s2", threshold(0.6), seed=2)
    first = read_rows(log_path)[0]
    assert first["epochs"] == 2 and first["first_task_nc1"] < 0.6
    assert first["steps"] == 8000
    # An unreachable threshold stops at max_epochs.
    _, log_path = train(dataset, tmp_path, "nc0.01_s2", threshold(0.01), seed=2)
    assert read_rows(log_path)[0]["epochs"] == 3


RUNS = {
    "e2_s1": epochs(2),
    "nc0.3_s1": threshold(0.3),
    # Drawn epochs per task (seed 1: 2 then 3), 1,000 examples a task.
    "list_s1": settings(
        examples_per_task=1000,
        schedule={"first_task": {"epochs": 1}, "epochs_per_task": [2, 3]},
    ),
}


@pytest.mark.parametrize(
    ("run_id", "fail_at"), [("e2_s1", 3), ("nc0.3_s1", 2), ("list_s1", 3), ("list_s1", 5)]
)
def test_interrupted_run_resumes_bitwise(dataset, tmp_path, monkeypatch, run_id, fail_at):
    """Interrupt inside the ``fail_at``-th epoch (nc0.3 does not reach NC1 < 0.3 within
    max_epochs = 3, so its second epoch is inside task 0; list_s1's 3rd and 5th epochs are
    the last of task 1 and the middle one of task 2, whose epochs are drawn), rerun, and get
    exactly the uninterrupted run."""
    if run_id == "list_s1":
        assert [scenarios.task_epochs(RUNS[run_id], 1, t) for t in (1, 2)] == [2, 3]
    reference = train(dataset, tmp_path / "ref", run_id, RUNS[run_id])
    _interrupt_at_epoch(monkeypatch, fail_at)
    with pytest.raises(KeyboardInterrupt):
        train(dataset, tmp_path / "resumed", run_id, RUNS[run_id])
    assert (tmp_path / "resumed" / "partial" / run_id / "state.pt").exists()
    monkeypatch.undo()
    _assert_same_run(reference, train(dataset, tmp_path / "resumed", run_id, RUNS[run_id]))


def _interrupt_at_epoch(monkeypatch, fail_at):
    """Raise inside the ``fail_at``-th training epoch (counting the run's epochs, which pass
    its HookContext; the churn's one update on a copy at each task end passes none)."""
    real_epoch = continual_learner.train_epoch
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(kwargs.get("ctx") is not None)
        if sum(calls) == fail_at and calls[-1]:
            raise KeyboardInterrupt("killed")
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(continual_learner, "train_epoch", interrupted)


def _first_task_at(monkeypatch, every):
    """Make the run's first training epoch right on every ``every``-th prediction only."""
    real_epoch = continual_learner.train_epoch
    calls = []

    def at_chance(*args, **kwargs):
        result = real_epoch(*args, **kwargs)
        calls.append(kwargs.get("ctx") is not None)
        if sum(calls) == 1 and calls[-1]:
            result.correct = np.arange(len(result.correct)) % every == 0
        return result

    monkeypatch.setattr(continual_learner, "train_epoch", at_chance)


def test_a_run_is_degenerate_from_a_task_at_chance_on_and_stays_so_when_resumed(
    dataset, tmp_path, monkeypatch
):
    _first_task_at(monkeypatch, 10)  # chance of 10 classes
    log = read_rows(train(dataset, tmp_path / "a", "e1_s1", settings())[1])
    assert log[0]["online_accuracy"] == pytest.approx(0.1)
    assert all(row["online_accuracy"] > 0.3 for row in log[1:])  # it learns again ...
    assert [row["degenerate"] for row in log] == [True, True, True]  # ... and stays flagged
    # Killed in task 2 and resumed: the flag comes back with the saved rows.
    monkeypatch.undo()
    _first_task_at(monkeypatch, 10)
    _interrupt_at_epoch(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        train(dataset, tmp_path / "b", "e1_s1", settings())
    monkeypatch.undo()
    resumed = read_rows(train(dataset, tmp_path / "b", "e1_s1", settings())[1])
    assert [row["degenerate"] for row in resumed] == [True, True, True]


def test_chance_is_over_the_classes_the_task_trains_on(dataset, tmp_path, monkeypatch):
    # Accuracy 0.5: chance for a pair of digits (class_pairs), far above it for ten digits.
    pairs = settings(scenario={"name": "class_pairs"}, num_tasks=2, probe_size=20)
    for run_id, run in (("pairs_s1", pairs), ("e1_s1", settings(num_tasks=2))):
        _first_task_at(monkeypatch, 2)
        log = read_rows(train(dataset, tmp_path, run_id, run)[1])
        monkeypatch.undo()
        assert log[0]["online_accuracy"] == 0.5 and log[1]["online_accuracy"] > 0.6
        assert [row["degenerate"] for row in log] == [run is pairs] * 2


def test_autograd_path_keeps_and_resumes_its_optimizer_state(dataset, tmp_path, monkeypatch):
    """Adam at batch size 4 runs the autograd loop: its moments cross task boundaries (the
    optimiser is made once per run) and survive a kill mid-run bitwise."""
    adam = settings(optimizer={"name": "adam", "lr": 1e-3, "batch_size": 4})
    reference = train(dataset, tmp_path / "ref", "adam_s1", adam)
    _interrupt_at_epoch(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        train(dataset, tmp_path / "resumed", "adam_s1", adam)
    saved = torch.load(
        tmp_path / "resumed" / "partial" / "adam_s1" / "state.pt", weights_only=False
    )
    # Two tasks' worth of Adam steps: the state was not reset at the task boundary.
    assert saved["optimizer"]["state"][0]["step"] == 2 * 4000 / 4
    monkeypatch.undo()
    _assert_same_run(reference, train(dataset, tmp_path / "resumed", "adam_s1", adam))


def test_run_killed_while_publishing_its_files_publishes_them_when_rerun(
    dataset, tmp_path, monkeypatch
):
    from ncplasticity import jobs

    reference = train(dataset, tmp_path / "ref", "e1_s1", epochs(1))
    real_publish = jobs.publish

    def killed_after_first_file(files, partial_dir):
        files = list(files)
        real_publish(files[:1], tmp_path / "scratch")  # links the features, then "dies"
        raise KeyboardInterrupt("killed")

    (tmp_path / "scratch").mkdir()
    monkeypatch.setattr(jobs, "publish", killed_after_first_file)
    with pytest.raises(KeyboardInterrupt):
        train(dataset, tmp_path / "rerun", "e1_s1", epochs(1))
    (tmp_path / "rerun" / "e1_s1.h5").unlink()  # Snakemake removes a killed job's outputs
    monkeypatch.setattr(jobs, "publish", real_publish)
    _assert_same_run(reference, train(dataset, tmp_path / "rerun", "e1_s1", epochs(1)))


def test_state_of_other_settings_is_not_resumed(dataset, tmp_path):
    stale = ResumableJob(tmp_path / "partial" / "e1_s1", {"settings": epochs(2), "seed": 1})
    stale.save(model=MLP(784, [32, 32], 10), rows=[{"task": 0}] * 2, task=2)
    _assert_same_run(
        train(dataset, tmp_path, "e1_s1", epochs(1)),
        train(dataset, tmp_path / "b", "e1_s1", epochs(1)),
    )


class CountingIntervention(Intervention):
    """A toy intervention: counts task starts and every-3-steps calls, scales the classifier
    at every task start (so its effect is visible), and keeps its counters across resumes."""

    name = "toy_counter"
    parameters = {"period": {"type": "integer", "minimum": 1}, "scale": {"type": "number"}}
    required = ("period",)
    instances = []

    def __init__(self, **params):
        super().__init__(**params)
        self.task_starts = 0
        self.calls = 0
        self.instances.append(self)

    def on_task_start(self, ctx):
        self.task_starts += 1
        with torch.no_grad():
            ctx.model.classifier.weight.mul_(self.params.get("scale", 1.0))

    def on_period(self, ctx):
        assert ctx.step % self.period == 0
        self.calls += 1

    def state_dict(self):
        return {"task_starts": self.task_starts, "calls": self.calls}

    def load_state_dict(self, state):
        self.task_starts, self.calls = state["task_starts"], state["calls"]


@pytest.fixture
def toy_intervention():
    REGISTRY.register(CountingIntervention)
    yield CountingIntervention
    REGISTRY.unregister(CountingIntervention.name)
    CountingIntervention.instances.clear()


def test_registered_toy_intervention_runs_on_the_compiled_path_and_resumes(
    dataset, tmp_path, monkeypatch, toy_intervention
):
    """Registering a class is all it takes: the run calls its hooks on the compiled path
    (chunked between every-k calls), its effect shows in the features, and its state is
    saved and resumed bitwise."""
    toy = settings(interventions=[{"name": "toy_counter", "period": 3, "scale": 0.5}])
    # The study validates it from its registered parameter schema, like any other.
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["continual"]["variants"] = {
        "toy": {"interventions": copy.deepcopy(toy["interventions"])}
    }
    (run, *_) = resolve_experiment(config, SCHEMA, CONTINUAL_SPEC).values()
    assert run.settings["interventions"] == toy["interventions"]
    config["continual"]["variants"]["toy"]["interventions"][0]["period"] = 0
    with pytest.raises(StudyError, match=r"toy.interventions\[0\].period: 0 is less than"):
        resolve_experiment(config, SCHEMA, CONTINUAL_SPEC)

    reference = train(dataset, tmp_path / "ref", "toy_s1", toy)
    (counter,) = toy_intervention.instances
    assert counter.task_starts == 3 and counter.calls == 3 * 4000 // 3
    plain = train(dataset, tmp_path / "plain", "plain_s1", settings())
    assert snapshots(reference[0])[0][1][0].tobytes() != snapshots(plain[0])[0][1][0].tobytes()

    _interrupt_at_epoch(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        train(dataset, tmp_path / "resumed", "toy_s1", toy)
    monkeypatch.undo()
    toy_intervention.instances.clear()
    _assert_same_run(reference, train(dataset, tmp_path / "resumed", "toy_s1", toy))
    (resumed,) = toy_intervention.instances
    assert resumed.task_starts == 3 and resumed.calls == 3 * 4000 // 3


def test_scenarios_permute_the_requested_fraction_of_pixels():
    labels = np.arange(10)
    full = SCENARIOS.build([{"name": "permuted_pixels", "fraction": 1.0}])[0]
    task = full.task(1, 5, 784, labels, labels)
    # The paper's protocol: a full permutation from default_rng([seed, 0, task]).
    np.testing.assert_array_equal(
        task.permutation, np.random.default_rng([1, 0, 5]).permutation(784)
    )
    for fraction in (0.0, 0.25, 0.5):
        part = SCENARIOS.build([{"name": "permuted_pixels", "fraction": fraction}])[0]
        permutation = part.task(1, 5, 784, labels, labels).permutation
        assert sorted(permutation) == list(range(784))
        moved = np.flatnonzero(permutation != np.arange(784))
        assert len(moved) <= round(fraction * 784)
        assert len(moved) >= round(fraction * 784) - 10  # a few land on their own place


def test_layer_norm_runs_on_the_autograd_path(dataset, tmp_path):
    ln = settings(network={"hidden_sizes": [32, 32], "layer_norm": True}, num_tasks=2)
    _, log_path = train(dataset, tmp_path, "ln_s1", ln)
    rows = read_rows(log_path)
    assert len(rows) == 2 and all(0.3 < row["online_accuracy"] < 1 for row in rows)


@pytest.fixture(scope="module")
def tables(dataset, tmp_path_factory):
    """Per-run tables of a small sweep: 2 seeds x first task of 1 or 3 epochs."""
    out = tmp_path_factory.mktemp("sweep")
    paths = []
    for variant, first_epochs in (("e1", 1), ("e3", 3)):
        for seed in (1, 2):
            run_id = f"{variant}_s{seed}"
            features, log = train(
                dataset, out, run_id, epochs(first_epochs) | {"num_tasks": 4}, seed=seed
            )
            columns, rows = file_metrics(features)
            write_tsv(out / f"{run_id}.metrics.tsv", rows, columns)
            paths.append(out / f"{run_id}.table.tsv")
            continual_tables.plasticity_table(
                log,
                out / f"{run_id}.metrics.tsv",
                paths[-1],
                run_id=run_id,
                variant=variant,
                seed=seed,
            )
    return paths


def test_plasticity_table_joins_log_and_metrics(tables):
    rows = read_rows(tables[2])
    assert [row["task"] for row in rows] == [0, 1, 2, 3]
    assert rows[0]["run"] == "e3_s1" and rows[0]["variant"] == "e3" and rows[0]["seed"] == 1
    for row in rows:
        assert row["pl"] == pytest.approx(rows[0]["online_accuracy"] - row["online_accuracy"])
        assert row["nc1"] > 0 and 0 <= row["nc4"] <= 1 and 0 < row["probe_accuracy"] <= 1
        assert row["nc4_agreement"] == pytest.approx(1 - row["nc4"])


def test_plasticity_table_rejects_missing_metrics(tables, tmp_path):
    rows = read_rows(tables[0])
    log = tmp_path / "log.tsv"
    write_tsv(log, [{k: row[k] for k in ct.LOG_COLUMNS} for row in rows])
    metrics_path = tmp_path / "metrics.tsv"
    write_tsv(metrics_path, [{"task": 0, "accuracy": 1.0}])
    with pytest.raises(ValueError, match=r"no metrics for tasks \[1, 2, 3\]"):
        continual_tables.plasticity_table(
            log, metrics_path, tmp_path / "out.tsv", run_id="e1_s1", variant="e1", seed=1
        )


def test_correlations_per_variant_per_seed_and_over_seeds(tables, tmp_path):
    out = tmp_path / "corr.tsv"
    continual_tables.correlations(tables, out, analysis_tasks=3, n_boot=50)
    rows = read_rows(out)
    assert {row["variant"] for row in rows} == {"e1", "e3"}
    # Every correlated metric of the registry, less plasticity measures these runs do not log
    # (e.g. ones only another experiment or an intervention writes).
    logged = set(read_rows(tables[0])[0])
    expected = {
        m.name
        for m in metrics.select(correlated=True)
        if m.group != "plasticity" or m.name in logged
    }
    assert {row["metric"] for row in rows} == expected
    runs = {path.name: read_rows(path)[:3] for path in tables}
    acc = [[r["online_accuracy"] for r in runs[f"e3_s{s}.table.tsv"]] for s in (1, 2)]
    nc1 = [[r["nc1"] for r in runs[f"e3_s{s}.table.tsv"]] for s in (1, 2)]
    # The seed column mixes seeds and the summary's label: pandas reads it as text.
    pick = {(r["variant"], r["metric"], r["method"], str(r["seed"])): r for r in rows}
    assert pick["e3", "nc1", "pearson", "2"]["r"] == pytest.approx(stats.pearson(acc[1], nc1[1]))
    assert pick["e3", "nc1", "pearson", "2"]["n_seeds"] == 1
    assert pick["e3", "nc1", "pearson", "2"]["interval"] == "none"
    # Two seeds: the interval comes from the per-seed r (Fisher z, t), never a bootstrap; the
    # pooled r stays beside it.
    over = pick["e3", "nc1", "spearman", continual_tables.SEED_MEAN]
    per_seed = [stats.spearman(a, n) for a, n in zip(acc, nc1, strict=True)]
    expected = stats.fisher_z_interval(per_seed)
    assert over["interval"] == "fisher_z_t" and over["n_seeds"] == 2
    for key in ("r", "ci_low", "ci_high"):
        assert over[key] == pytest.approx(expected[key])
    assert over["r_pooled"] == pytest.approx(
        stats.spearman(np.concatenate(acc), np.concatenate(nc1))
    )
    assert over["n_points"] == 6


def test_sweep_correlations_and_figures(tables, tmp_path):
    out = tmp_path / "sweep.tsv"
    continual_tables.sweep_correlations(tables, out, analysis_tasks=4)
    rows = read_rows(out)
    assert [(row["task"], row["method"]) for row in rows] == [
        (t, m) for m in ("pearson", "spearman") for t in (1, 2, 3)
    ]
    first = {path: read_rows(path) for path in tables}
    nc1 = [t[0]["nc1"] for t in first.values()]
    pl2 = [t[2]["pl"] for t in first.values()]
    assert rows[1]["r_first_nc1_pl"] == pytest.approx(stats.pearson(nc1, pl2))
    assert all(row["n_runs"] == 4 and row["variants"] == "e1,e3" for row in rows)
    assert all(-1 <= row["r_first_epochs_pl"] <= 1 for row in rows)
    assert all(row["expected_abs_r_null"] == pytest.approx(stats.expected_abs_r(4)) for row in rows)
    assert rows[1]["p_perm_first_nc1_pl"] == stats.permutation_p_value(nc1, pl2)
    assert all(0 < row["p_perm_first_epochs_pl"] <= 1 for row in rows)
    # The paper's reference: every task's online accuracy over all its epochs, so task 0's
    # covers the 3 epochs of e3's first task (runs e1_s1, e1_s2, e3_s1, e3_s2).
    epochs = [t[0]["epochs"] for t in first.values()]
    assert epochs == [1, 1, 3, 3]
    pl2_paper = [t[0]["online_accuracy_all_epochs"] - t[2]["online_accuracy_all_epochs"]
                 for t in first.values()]  # fmt: skip
    assert pl2_paper[:2] == pytest.approx(pl2[:2])  # one-epoch first tasks: the same PL
    assert pl2_paper[2:] != pytest.approx(pl2[2:])
    paper_r = {"epochs": stats.pearson(epochs, pl2_paper), "nc1": stats.pearson(nc1, pl2_paper)}
    assert rows[1]["r_first_epochs_pl_all_epochs"] == pytest.approx(paper_r["epochs"])
    assert rows[1]["r_first_nc1_pl_all_epochs"] == pytest.approx(paper_r["nc1"])
    assert rows[1]["p_perm_first_epochs_pl_all_epochs"] == stats.permutation_p_value(
        epochs, pl2_paper
    )
    # One shuffle for every task: the mean over tasks 1-3 of r(first-task epochs, PL_i).
    runs = read_tables(tables, analysis_tasks=4)
    pl = np.array([[t[0]["online_accuracy"] - t[i]["online_accuracy"] for i in (1, 2, 3)]
                   for t in first.values()])  # fmt: skip
    assert continual_tables.sweep_mean_r_p_value(runs, "epochs", "first_epoch") == (
        stats.permutation_p_value(epochs, pl)
    )
    for panels in continual_figures.PANEL_SETS:
        pdf, png = tmp_path / f"{panels}.pdf", tmp_path / f"{panels}.png"
        continual_figures.over_tasks_figure(tables, pdf, png, 4, panels)
        assert pdf.stat().st_size > 1000 and png.read_bytes()[:4] == b"\x89PNG"
    continual_figures.sweep_figure(out, tmp_path / "sweep.pdf", tmp_path / "sweep.png")
    assert (tmp_path / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="unknown panel set"):
        continual_figures.over_tasks_figure(tables, pdf, png, 4, "nope")


def test_variant_summary_of_run_tables(tables, tmp_path):
    out_tsv, out_md = tmp_path / "summary.tsv", tmp_path / "summary.md"
    continual_tables.variant_summary(tables, out_tsv, out_md, analysis_tasks=4)
    rows = read_rows(out_tsv)
    assert [(row["variant"], row["n_seeds"]) for row in rows] == [("e1", 2), ("e3", 2)]
    runs = [read_rows(path) for path in tables[2:]]  # e3's seeds
    first = [run[0]["online_accuracy"] for run in runs]
    final = [np.mean([r["nc1"] for r in run]) for run in runs]  # 4 tasks: all are final
    assert rows[1]["first_accuracy_mean"] == pytest.approx(np.mean(first))
    assert rows[1]["nc1_final_sd"] == pytest.approx(np.std(final, ddof=1))
    # These runs had no fresh reference (fresh_every unset): their PL against it is NaN.
    fresh = [key for key in rows[0] if key.startswith("pl_fresh")]
    assert fresh and all(math.isnan(row[key]) for row in rows for key in fresh)
    finite = [key for key in rows[0] if key != "variant" and key not in fresh]
    assert all(math.isfinite(row[key]) for row in rows for key in finite)
    assert "each row rests on 2 seeds" in out_md.read_text(encoding="utf-8")


def test_collapse_panels_come_from_the_metric_registry():
    names = [m.name for m in continual_figures.panel_metrics("collapse")]
    assert names == ["online_accuracy", "nc1", "nc2_etf_weights", "nc3_wh", "nc4_agreement"]


def _summary_table(path, variant, seed, num_tasks, columns):
    rows = [
        {"run": f"{variant}_s{seed}", "variant": variant, "seed": seed, "task": t}
        | {name: value(t) for name, value in columns.items()}
        for t in range(num_tasks)
    ]
    write_tsv(path, rows)
    return path


def test_variant_summary_means_and_sds_over_seeds(tmp_path):
    """Known per-task values -> known summary: variants in the tables' order, first = task 0,
    final = mean over the last 10 analysed tasks (tasks 12-13 lie beyond analysis_tasks), sd
    over seeds with ddof 1, NaN for a column only other tables have."""

    def zeta(seed):
        return {
            "online_accuracy": lambda t: (
                0.0 if t >= 12 else (1.0 - seed / 10 if t == 0 else 0.8 - seed / 5)
            ),
            "nc1": lambda t: float(seed * t),
            "test_accuracy": lambda t: 0.7,
            "dormant_fraction": lambda t: seed / 10,
            "distance_from_init": lambda t: float(seed),
            # A fresh reference every 5th task: tasks 5 and 10, both in the final window.
            "pl_fresh": lambda t: seed / 10 + t / 100 if t and t % 5 == 0 else float("nan"),
        }

    alpha = {
        "online_accuracy": lambda t: 1.0 if t == 0 else 0.5,
        "nc1": lambda t: 2.0,
        "test_accuracy": lambda t: 0.9,
        "distance_from_init": lambda t: 3.0,
    }
    tables = [
        _summary_table(tmp_path / "z1.tsv", "zeta", 1, 14, zeta(1)),
        _summary_table(tmp_path / "z2.tsv", "zeta", 2, 14, zeta(2)),
        _summary_table(tmp_path / "a3.tsv", "alpha", 3, 5, alpha),
    ]
    out_tsv, out_md = tmp_path / "summary.tsv", tmp_path / "summary.md"
    continual_tables.variant_summary(tables, out_tsv, out_md, analysis_tasks=12)
    rows = read_rows(out_tsv)
    assert list(rows[0])[:4] == ["variant", "n_seeds", "first_accuracy_mean", "first_accuracy_sd"]
    assert len(rows[0]) == 2 + 2 * 9
    z, a = rows
    assert (z["variant"], z["n_seeds"], a["variant"], a["n_seeds"]) == ("zeta", 2, "alpha", 1)
    sd2 = 2**-0.5  # the sd (ddof 1) of two values 1 apart
    expected_zeta = {
        "first_accuracy": (0.85, 0.1 * sd2),
        "final_accuracy": (0.5, 0.2 * sd2),
        "pl": (0.35, 0.1 * sd2),  # 0.9 - 0.6 and 0.8 - 0.4
        "pl_fresh_final": (0.225, 0.1 * sd2),  # tasks 5 and 10: 0.175 and 0.275
        "nc1_first": (0.0, 0.0),
        "nc1_final": (9.75, 6.5 * sd2),  # mean of tasks 2..11: 6.5 and 13
        "dormant_fraction_final": (0.15, 0.1 * sd2),
        "distance_from_init_final": (1.5, sd2),
        "test_accuracy_final": (0.7, 0.0),
    }
    for quantity, (mean, sd) in expected_zeta.items():
        assert z[f"{quantity}_mean"] == pytest.approx(mean), quantity
        assert z[f"{quantity}_sd"] == pytest.approx(sd, abs=1e-12), quantity
    # Five analysed tasks: final is the mean over all of them (1 + 4 x 0.5) / 5.
    assert a["first_accuracy_mean"] == 1.0 and a["final_accuracy_mean"] == pytest.approx(0.6)
    assert a["pl_mean"] == pytest.approx(0.4) and a["nc1_final_mean"] == 2.0
    assert a["test_accuracy_final_mean"] == pytest.approx(0.9)
    assert math.isnan(a["dormant_fraction_final_mean"]) and math.isnan(a["pl_sd"])
    text = out_md.read_text(encoding="utf-8").splitlines()
    assert text[0].startswith("Generated by the workflow") and "do not edit" in text[0]
    assert "standard deviation over seeds" in text[0] and "column *seeds*" in text[0]
    assert "(tasks zeta: 2–11; alpha: 0–4)" in text[0]
    assert text[2].startswith("| variant | seeds | online accuracy of task 0 |")
    assert text[4].startswith(
        "| zeta | 2 | 0.85 ± 0.071 | 0.5 ± 0.14 | 0.35 ± 0.071 | 0.225 ± 0.071 | 0 ± 0 |"
    )
    assert text[5].startswith("| alpha | 1 | 1 | 0.6 | 0.4 | n/a | 2 | 2 | n/a | 3 | 0.9 |")
    assert len(text) == 6


def test_first_task_epochs_of_the_nc1_schedule_log_progress_lines(dataset, tmp_path, caplog):
    """The NC1-threshold first task, trained epoch by epoch up to max_epochs, logs each epoch
    (the total an upper bound: it stops once NC1 drops below the threshold)."""
    caplog.set_level("INFO", logger="ncplasticity.continual.job")
    train(dataset, tmp_path, "nc0.01_s1", threshold(0.01, max_epochs=2) | {"num_tasks": 1})
    lines = [r.getMessage() for r in caplog.records if "first task epoch" in r.getMessage()]
    assert [line.split(", ")[0] for line in lines] == [
        f"continual nc0.01_s1: first task epoch {epoch}/≤2" for epoch in (1, 2)
    ]
    assert all(" s/epoch, eta ≤" in line and " | nc1=" in line for line in lines)


def test_a_run_outside_the_compiled_loop_says_so_once(dataset, tmp_path, caplog):
    """The autograd loop is ~50x slower at batch size 1: a run sent there logs one line naming
    the run and the reason, and a compiled run logs none."""
    caplog.set_level("INFO", logger="ncplasticity.continual.job")
    small = {"num_tasks": 1, "examples_per_task": 200, "probe_size": 50}
    batched = settings(**small, optimizer={"name": "sgd", "lr": 0.01, "batch_size": 4})
    train(dataset, tmp_path / "batched", "b4_s1", batched)
    train(dataset, tmp_path / "plain", "plain_s1", settings(**small))
    lines = [r.getMessage() for r in caplog.records if "autograd loop" in r.getMessage()]
    assert lines == ["continual b4_s1: batch size 4: autograd loop"]


def test_a_run_ends_with_its_time_per_task_split_into_steps_and_measures(dataset, tmp_path, caplog):
    """Where a run's time goes: the job's second-to-last line gives the mean seconds a task of
    the attempt spent in steps, in measures and in the fresh reference (every 2nd task here)."""
    caplog.set_level("INFO", logger="ncplasticity.continual.job")
    small = {"num_tasks": 3, "examples_per_task": 200, "probe_size": 50}
    run = settings(**small)
    run["schedule"] = {**run["schedule"], "fresh_every": 2}
    train(dataset, tmp_path, "plain_s1", run)
    lines = [r.getMessage() for r in caplog.records if ": per task " in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith("continual plain_s1: per task steps ")
    seconds = {
        part.rsplit(" ", 2)[0]: float(part.rsplit(" ", 2)[1])
        for part in lines[0].split(": per task ")[1].split(", ")
    }
    assert set(seconds) == {"steps", "measures", "fresh reference"}
    assert all(value > 0 for value in seconds.values()), seconds
