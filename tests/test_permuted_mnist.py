"""Permuted-MNIST driver: run ids, probe sets, determinism, resuming, tables, analysis, figures."""

import numpy as np
import pytest

import ncplasticity.permuted_mnist as pm
from ncplasticity import stats
from ncplasticity.data import prepare_dataset
from ncplasticity.features import FeatureReader
from ncplasticity.models import MLP
from ncplasticity.nc import file_metrics
from ncplasticity.tsv import read_tsv, write_tsv

CFG = {
    "dataset": "mnist5k",
    "hidden_sizes": [32, 32],
    "lr": 0.01,
    "batch_size": 1,
    "num_tasks": 3,
    "seeds": [1, 2],
    "first_task": {"epochs": [1], "nc1_thresholds": [0.5], "max_epochs": 3},
    "probe_size": 300,
    "feature_dtype": "float16",
    "threads": 1,
}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "mnist5k.npz"
    prepare_dataset("mnist5k", tmp_path_factory.mktemp("root"), path)
    return path


def _train(dataset, out, run_id, cfg=CFG):
    pm.train_run(
        cfg,
        dataset,
        run_id,
        out / f"{run_id}.h5",
        out / f"{run_id}.tsv",
        out / "partial" / run_id,
        device="cpu",
    )
    return out / f"{run_id}.h5", out / f"{run_id}.tsv"


def _snapshots(path):
    with FeatureReader(path) as reader:
        return [(info, reader.read(info.name)) for info in reader.snapshots()]


def _assert_same_run(a, b):
    (features_a, log_a), (features_b, log_b) = a, b
    snaps_a, snaps_b = _snapshots(features_a), _snapshots(features_b)
    assert [info for info, _ in snaps_a] == [info for info, _ in snaps_b]
    for (_, arrays_a), (_, arrays_b) in zip(snaps_a, snaps_b, strict=True):
        for x, y in zip(arrays_a, arrays_b, strict=True):
            assert x.dtype == y.dtype and x.tobytes() == y.tobytes()
    rows_a, rows_b = read_tsv(log_a), read_tsv(log_b)
    for row in rows_a + rows_b:
        row.pop("wall_seconds")
    assert rows_a == rows_b


def test_run_ids_round_trip():
    assert pm.parse_run_id("s1_e3") == pm.RunSpec(1, epochs=3)
    spec = pm.parse_run_id("s12_nc0.2")
    assert spec == pm.RunSpec(12, nc1_threshold=0.2) and spec.run_id == "s12_nc0.2"
    assert pm.RunSpec(2, nc1_threshold=1e-05).run_id == "s2_nc1e-05"
    for bad in ("s1", "1_e3", "s1_x3", "s1_nc"):
        with pytest.raises(ValueError, match="is not s"):
            pm.parse_run_id(bad)


def test_probe_is_seeded_stratified_and_complete_when_unset():
    labels = np.repeat(np.arange(10), [50, 40, 60, 45, 55, 50, 52, 48, 50, 50])
    probe = pm.probe_indices(labels, 100, seed=3, num_classes=10)
    assert len(probe) == 100 and len(np.unique(probe)) == 100 and np.all(np.diff(probe) > 0)
    counts = np.bincount(labels[probe], minlength=10)
    assert np.all(np.abs(counts - 100 * np.bincount(labels) / len(labels)) <= 1)
    np.testing.assert_array_equal(probe, pm.probe_indices(labels, 100, 3, 10))
    assert not np.array_equal(probe, pm.probe_indices(labels, 100, 4, 10))
    np.testing.assert_array_equal(pm.probe_indices(labels, None, 3, 10), np.arange(len(labels)))
    with pytest.raises(ValueError, match="smaller than the 10 classes"):
        pm.probe_indices(labels, 5, 3, 10)


def test_run_outputs_and_determinism(dataset, tmp_path):
    first = _train(dataset, tmp_path / "a", "s1_e2")
    _assert_same_run(first, _train(dataset, tmp_path / "b", "s1_e2"))
    assert not (tmp_path / "a" / "partial").exists()
    snaps = _snapshots(first[0])
    assert [info.name for info, _ in snaps] == ["task0000", "task0001", "task0002"]
    assert [info.coords for info, _ in snaps] == [
        {"task": 0, "epoch": 2, "step": 8000, "split": "train"},
        {"task": 1, "epoch": 1, "step": 12000, "split": "train"},
        {"task": 2, "epoch": 1, "step": 16000, "split": "train"},
    ]
    assert all(info.n == 300 and info.d == 32 and info.c == 10 for info, _ in snaps)
    log = read_tsv(first[1])
    assert [row["steps"] for row in log] == [8000, 4000, 4000]
    for row in log:
        assert 0.3 < row["online_accuracy"] < 1 and 0.3 < row["test_accuracy"] < 1
        assert 0 <= row["dead_fraction"] < 1 and 1 < row["effective_rank"] <= 32
    # The second epoch of task 0 sees the same data again: it is predicted better.
    assert log[0]["online_accuracy_last_epoch"] > log[0]["online_accuracy"]


def test_nc1_threshold_stops_first_task(dataset, tmp_path):
    # NC1 of this small network is about 0.58 after 2 epochs and above 0.6 after one.
    _, log_path = _train(dataset, tmp_path, "s2_nc0.6")
    first = read_tsv(log_path)[0]
    assert first["epochs"] == 2 and first["first_task_nc1"] < 0.6
    assert first["steps"] == 8000
    # An unreachable threshold stops at max_epochs.
    _, log_path = _train(dataset, tmp_path, "s2_nc0.01")
    assert read_tsv(log_path)[0]["epochs"] == CFG["first_task"]["max_epochs"]


@pytest.mark.parametrize(("run_id", "fail_at"), [("s1_e2", 3), ("s1_nc0.3", 2)])
def test_interrupted_run_resumes_bitwise(dataset, tmp_path, monkeypatch, run_id, fail_at):
    """Interrupt inside the ``fail_at``-th epoch (s1_nc0.3 does not reach NC1 < 0.3 within
    max_epochs = 3, so its second epoch is inside task 0), rerun, and get exactly the
    uninterrupted run."""
    reference = _train(dataset, tmp_path / "ref", run_id)
    real_epoch = pm._train_one_epoch
    calls = []

    def interrupted(*args):
        calls.append(1)
        if len(calls) == fail_at:
            raise KeyboardInterrupt("killed")
        real_epoch(*args)

    monkeypatch.setattr(pm, "_train_one_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _train(dataset, tmp_path / "resumed", run_id)
    assert (tmp_path / "resumed" / "partial" / run_id / "state.pt").exists()
    monkeypatch.setattr(pm, "_train_one_epoch", real_epoch)
    _assert_same_run(reference, _train(dataset, tmp_path / "resumed", run_id))


def test_run_killed_while_publishing_its_files_publishes_them_when_rerun(
    dataset, tmp_path, monkeypatch
):
    reference = _train(dataset, tmp_path / "ref", "s1_e1")
    real_publish = pm.publish

    def killed_after_first_file(files, partial_dir):
        files = list(files)
        real_publish(files[:1], tmp_path / "scratch")  # links the features, then "dies"
        raise KeyboardInterrupt("killed")

    (tmp_path / "scratch").mkdir()
    monkeypatch.setattr(pm, "publish", killed_after_first_file)
    with pytest.raises(KeyboardInterrupt):
        _train(dataset, tmp_path / "rerun", "s1_e1")
    (tmp_path / "rerun" / "s1_e1.h5").unlink()  # Snakemake removes a killed job's outputs
    monkeypatch.setattr(pm, "publish", real_publish)
    _assert_same_run(reference, _train(dataset, tmp_path / "rerun", "s1_e1"))


def test_state_of_another_config_is_not_resumed(dataset, tmp_path):
    partial = tmp_path / "partial" / "s1_e1"
    partial.mkdir(parents=True)
    stale = {"run_id": "s1_e1", "config": "{}", "task": 2}
    pm._save_state(partial / "state.pt", stale, MLP(784, CFG["hidden_sizes"], 10))
    _assert_same_run(_train(dataset, tmp_path, "s1_e1"), _train(dataset, tmp_path / "b", "s1_e1"))


@pytest.fixture(scope="module")
def tables(dataset, tmp_path_factory):
    """Per-run tables of a small sweep: 2 seeds x first task of 1 or 3 epochs."""
    out = tmp_path_factory.mktemp("sweep")
    cfg = {**CFG, "num_tasks": 4}
    paths = []
    for run_id in ("s1_e1", "s2_e1", "s1_e3", "s2_e3"):
        features, log = _train(dataset, out, run_id, cfg)
        columns, rows = file_metrics(features)
        write_tsv(out / f"{run_id}.metrics.tsv", rows, columns)
        paths.append(out / f"{run_id}.table.tsv")
        pm.plasticity_table(run_id, log, out / f"{run_id}.metrics.tsv", paths[-1])
    return paths


def test_plasticity_table_joins_log_and_metrics(tables):
    rows = read_tsv(tables[2])
    assert [row["task"] for row in rows] == [0, 1, 2, 3]
    assert rows[0]["run"] == "s1_e3" and rows[0]["setting"] == "e3" and rows[0]["seed"] == 1
    for row in rows:
        assert row["pl"] == pytest.approx(rows[0]["online_accuracy"] - row["online_accuracy"])
        assert row["nc1"] > 0 and 0 <= row["nc4"] <= 1 and 0 < row["probe_accuracy"] <= 1


def test_plasticity_table_rejects_missing_metrics(tables, tmp_path):
    rows = read_tsv(tables[0])
    log = tmp_path / "log.tsv"
    write_tsv(log, [{k: row[k] for k in pm.LOG_COLUMNS} for row in rows])
    metrics = tmp_path / "metrics.tsv"
    write_tsv(metrics, [{"task": 0, "accuracy": 1.0}])
    with pytest.raises(ValueError, match=r"no metrics for tasks \[1, 2, 3\]"):
        pm.plasticity_table("s1_e1", log, metrics, tmp_path / "out.tsv")


def test_correlations_per_seed_and_pooled(tables, tmp_path):
    out = tmp_path / "corr.tsv"
    pm.correlations(tables, out, analysis_tasks=3, n_boot=50)
    rows = read_tsv(out)
    assert {row["setting"] for row in rows} == {"e1", "e3"}
    assert {row["metric"] for row in rows} == set(pm.CORRELATED)
    runs = {path.name: read_tsv(path)[:3] for path in tables}
    acc = [[r["online_accuracy"] for r in runs[f"s{s}_e3.table.tsv"]] for s in (1, 2)]
    nc1 = [[r["nc1"] for r in runs[f"s{s}_e3.table.tsv"]] for s in (1, 2)]
    pick = {(r["setting"], r["metric"], r["method"], r["seed"]): r for r in rows}
    assert pick["e3", "nc1", "pearson", 2]["r"] == pytest.approx(stats.pearson(acc[1], nc1[1]))
    pooled = pick["e3", "nc1", "spearman", "pooled"]
    assert pooled["r"] == pytest.approx(stats.spearman(np.concatenate(acc), np.concatenate(nc1)))
    assert pooled["n_points"] == 6 and pooled["n_groups"] == 2


def test_sweep_correlations_and_figures(tables, tmp_path):
    out = tmp_path / "sweep.tsv"
    pm.sweep_correlations(tables, out, analysis_tasks=4)
    rows = read_tsv(out)
    assert [(row["task"], row["method"]) for row in rows] == [
        (t, m) for m in ("pearson", "spearman") for t in (1, 2, 3)
    ]
    first = {path: read_tsv(path) for path in tables}
    nc1 = [t[0]["nc1"] for t in first.values()]
    pl2 = [t[2]["pl"] for t in first.values()]
    assert rows[1]["r_first_nc1_pl"] == pytest.approx(stats.pearson(nc1, pl2))
    assert all(row["n_runs"] == 4 for row in rows)
    assert all(-1 <= row["r_first_epochs_pl"] <= 1 for row in rows)
    for panels in pm.FIGURE_PANELS:
        pdf, png = tmp_path / f"{panels}.pdf", tmp_path / f"{panels}.png"
        pm.over_tasks_figure(tables, pdf, png, 4, panels)
        assert pdf.stat().st_size > 1000 and png.read_bytes()[:4] == b"\x89PNG"
    pm.sweep_figure(out, tmp_path / "sweep.pdf", tmp_path / "sweep.png")
    assert (tmp_path / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="unknown panel set"):
        pm.over_tasks_figure(tables, pdf, png, 4, "nope")
