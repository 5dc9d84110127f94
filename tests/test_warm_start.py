"""The warm-start jobs (warm-up, fine-tune) and their interventions. The helpers here serve
test_warm_start_training too."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from table_rows import read_rows

from ncplasticity import metrics, plasticity
from ncplasticity.features import FeatureReader
from ncplasticity.interventions import HookContext, Intervention
from ncplasticity.networks import ResNet18, parameter_arrays
from ncplasticity.runlog import progress_line
from ncplasticity.warm_start import job, loop
from ncplasticity.warm_start.interventions import REGISTRY
from ncplasticity.warm_start.study import finetune_settings, fresh_settings, warmup_settings

SETTINGS = {
    "width": 2,
    "warmup_fraction": 0.5,
    "warmup_epochs": 4,
    "checkpoint_every": 2,
    "batch_size": 16,
    "lr": 0.05,
    "finetune": {"max_epochs": 3, "target_train_accuracy": 0.99},
    "feature_dtype": "float32",
    "recalibrate_bn": True,
    "interventions": [],
}
INTERVENTIONS = {
    "plain": [],
    "nc_reg": [{"name": "nc_reg", "lam": 0.05, "cap": 200}],
    "nc_reg_stable": [{"name": "nc_reg_stable", "lam": 0.1, "target": 1.0}],
    "shrink_perturb": [{"name": "shrink_perturb", "shrink": 0.6, "perturb": 0.01}],
}


def settings(variant, **changes):
    return {**SETTINGS, "interventions": INTERVENTIONS.get(variant, []), **changes}


def make_tiny_dataset():
    """64 train / 16 test random 8x8 one-channel images of 4 classes."""
    rng = np.random.default_rng(0)
    return SimpleNamespace(
        x_train=rng.integers(0, 256, (64, 1, 8, 8), dtype=np.uint8),
        y_train=np.arange(64) % 4,
        x_test=rng.integers(0, 256, (16, 1, 8, 8), dtype=np.uint8),
        y_test=np.arange(16) % 4,
        mean=np.array([0.5], dtype=np.float32),
        std=np.array([0.3], dtype=np.float32),
        num_classes=4,
    )


@pytest.fixture
def tiny_dataset(monkeypatch):
    """The tiny dataset in place of a prepared file."""
    dataset = make_tiny_dataset()
    monkeypatch.setattr(job, "load_prepared", lambda path: dataset)
    return dataset


def warmup(tmp_path, out, variant="plain", run_settings=None, device="cpu"):
    run_settings = run_settings or settings(variant)
    job.run_warmup(
        "tiny.npz",
        settings=warmup_settings(run_settings),
        seed=3,
        variant=variant,
        features_path=tmp_path / out / "features.h5",
        checkpoint_dir=tmp_path / out / "ckpt",
        log_path=tmp_path / out / "log.tsv",
        partial_dir=tmp_path / "partial" / f"{variant}_s3",
        device=device,
    )
    return tmp_path / out


def wrap_train_epoch(monkeypatch, change):
    """Make the n-th call of ``train_epoch`` return ``change(n, train)``, ``train()`` being the
    real call (``change`` may look around before it, raise or alter its row); returns the
    undo."""
    real_train_epoch, calls = loop.train_epoch, []

    def wrapped(*args, **kwargs):
        calls.append(1)
        return change(len(calls), lambda: real_train_epoch(*args, **kwargs))

    monkeypatch.setattr(loop, "train_epoch", wrapped)
    return lambda: monkeypatch.setattr(loop, "train_epoch", real_train_epoch)


def kill_in_epoch(monkeypatch, epoch):
    """Make ``train_epoch`` raise in its ``epoch``-th call, as a kill would; returns the undo."""

    def killed(n, train):
        if n == epoch:
            raise KeyboardInterrupt("killed")
        return train()

    return wrap_train_epoch(monkeypatch, killed)


def parameter_values(model):
    return [p.detach().clone() for p in model.parameters()]


def without_wall_time(rows):
    return [{k: v for k, v in row.items() if k != "wall_seconds"} for row in rows]


def test_shrink_perturb_mixes_parameters_and_keeps_buffers():
    torch.manual_seed(0)
    model, fresh = ResNet18(1, 4, 2), ResNet18(1, 4, 2)
    model.stem[1].running_mean.fill_(3.0)
    before = parameter_values(model)
    (intervention,) = REGISTRY.build(INTERVENTIONS["shrink_perturb"])
    salts = []
    intervention.before_finetune(
        HookContext(model=model, fresh_model=lambda salt: salts.append(salt) or fresh)
    )
    assert salts == [0]
    for old, new, f in zip(before, model.parameters(), fresh.parameters(), strict=True):
        torch.testing.assert_close(new, 0.6 * old + 0.01 * f)
    assert (model.stem[1].running_mean == 3.0).all()


def test_a_salt_of_zero_keeps_the_seed_of_the_fresh_model_before_salts():
    # ctx.fresh_model(0) must build the model shrink & perturb used before hooks existed.
    assert loop.derived_seed(3, loop.PERTURB, 2, 0) == loop.derived_seed(3, loop.PERTURB, 2)
    assert loop.derived_seed(3, loop.PERTURB, 2, 1) != loop.derived_seed(3, loop.PERTURB, 2)


def read_store(path):
    with FeatureReader(path) as reader:
        return [(info.name, info.coords, reader.read(info.name)) for info in reader.snapshots()]


def test_warmup_writes_checkpoints_snapshots_and_log(tiny_dataset, tmp_path):
    out = warmup(tmp_path, "run", variant="nc_reg")
    assert sorted(p.name for p in (out / "ckpt").iterdir()) == ["epoch0002.pt", "epoch0004.pt"]
    store = read_store(out / "features.h5")
    assert [name for name, _, _ in store] == ["epoch0002", "epoch0004"]
    assert store[0][1]["epoch"] == 2 and store[0][1]["phase"] == "warmup"
    features, labels, weight, _ = store[0][2]
    assert features.shape == (32, 16) and weight.shape == (4, 16) and len(labels) == 32
    log = read_rows(out / "log.tsv")
    assert list(log[0]) == job.LOG_COLUMNS
    assert [(r["variant"], r["seed"], r["epoch"]) for r in log] == [
        ("nc_reg", 3, epoch) for epoch in (1, 2, 3, 4)
    ]
    assert all(math.isfinite(r["batch_nc1"]) for r in log)
    assert all(r["collapsed"] in (True, False) for r in log)
    assert not (tmp_path / "partial" / "nc_reg_s3").exists()


def test_plasticity_measures_at_checkpoints(tiny_dataset, tmp_path):
    out = warmup(tmp_path, "run")
    log = read_rows(out / "log.tsv")
    assert job.PLASTICITY_COLUMNS == [m.name for m in metrics.select(computed=True, given=())]
    assert "preactivation_mean" not in job.PLASTICITY_COLUMNS  # the ResNet probe has none
    assert {"dead_fraction", "effective_rank", "distance_from_init"} <= set(job.PLASTICITY_COLUMNS)
    for row in log:  # measured at the checkpoints only
        checkpoint = row["epoch"] in (2, 4)
        assert all(math.isfinite(row[m]) is checkpoint for m in job.PLASTICITY_COLUMNS)
    # The probe: the warm-up set's penultimate features (float32 in this store), the one
    # hidden layer shown; θ₀ the model as built.
    (_, _, (features, *_)), _ = read_store(out / "features.h5")
    assert log[1]["effective_rank"] == pytest.approx(plasticity.effective_rank(features))
    assert log[1]["dead_fraction"] == pytest.approx(plasticity.dead_fraction(features))
    data = loop.DeviceData(tiny_dataset, torch.device("cpu"), channels_last=False)
    initial = job.build_model(SETTINGS, data, loop.derived_seed(3, loop.INIT))
    state = torch.load(out / "ckpt" / "epoch0004.pt", weights_only=False)["model"]
    trained = job.build_model(SETTINGS, data, 0)
    trained.load_state_dict(state)
    expected = plasticity.distance_from_init(parameter_arrays(trained), parameter_arrays(initial))
    assert log[3]["distance_from_init"] == pytest.approx(expected) and expected > 0


def test_the_warmup_log_grows_in_the_partial_directory(tiny_dataset, tmp_path, monkeypatch):
    partial_log = tmp_path / "partial" / "plain_s3" / "log.tsv"
    seen = []

    def look(n, train):
        seen.append([r["epoch"] for r in read_rows(partial_log)] if partial_log.exists() else [])
        return train()

    wrap_train_epoch(monkeypatch, look)
    out = warmup(tmp_path, "run")
    assert seen == [[], [1], [1, 2], [1, 2, 3]]  # before each epoch: the epochs so far
    assert [r["epoch"] for r in read_rows(out / "log.tsv")] == [1, 2, 3, 4]


def finetune(tmp_path, variant, checkpoint_path, out, view=finetune_settings, device="cpu"):
    """Fine-tune ``checkpoint_path`` (None: the fresh initialisation); returns its rows."""
    job.run_finetune(
        "tiny.npz",
        settings=view(settings(variant)),
        seed=3,
        variant=variant,
        checkpoint_path=checkpoint_path,
        out_path=tmp_path / out,
        partial_dir=tmp_path / "partial" / out,
        device=device,
    )
    rows = read_rows(tmp_path / out)
    assert all(list(row) == job.FINETUNE_COLUMNS for row in rows)
    return rows


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")
def test_the_jobs_run_on_cuda_with_the_step_replayed_as_a_graph(tiny_dataset, tmp_path):
    # Batch 8 on the 32 warm-up images (batch 16 on the 64 of fine-tuning): 4 steps an epoch,
    # the last one replayed from the graph.
    out = warmup(tmp_path, "run", run_settings=settings("plain", batch_size=8), device="cuda")
    log = read_rows(out / "log.tsv")
    assert [r["epoch"] for r in log] == [1, 2, 3, 4]
    assert all(math.isfinite(r["train_loss"]) and not r["diverged"] for r in log)
    assert log[-1]["train_accuracy"] > log[0]["train_accuracy"]
    # A checkpoint written on the GPU loads on a machine without one.
    checkpoint = torch.load(out / "ckpt" / "epoch0004.pt", map_location="cpu", weights_only=False)
    model = ResNet18(1, 4, 2)
    model.load_state_dict(checkpoint["model"])
    rows = finetune(tmp_path, "plain", out / "ckpt" / "epoch0004.pt", "ft.tsv", device="cuda")
    assert all(math.isfinite(r["train_loss"]) for r in rows)
    assert 0.0 <= rows[-1]["test_accuracy"] <= 1.0


def test_a_warmup_is_degenerate_from_an_epoch_at_chance_on(tiny_dataset, tmp_path, monkeypatch):
    accuracy = {1: 0.9, 2: 0.28, 3: 0.6, 4: 0.9}  # 4 classes: chance 0.25, within 0.05 at 2
    wrap_train_epoch(monkeypatch, lambda n, train: {**train(), "train_accuracy": accuracy[n]})
    log = read_rows(warmup(tmp_path, "run") / "log.tsv")
    assert [r["degenerate"] for r in log] == [False, True, True, True]  # once, for ever after


def test_a_collapse_is_flagged_and_training_goes_on(tiny_dataset, tmp_path, monkeypatch):
    def collapse(n, train):  # the paper's regulariser: accuracy falls to chance and stays
        return {**train(), "train_accuracy": 0.9 if n <= 2 else 0.1}

    undo_collapse = wrap_train_epoch(monkeypatch, collapse)
    out = warmup(tmp_path, "run")
    undo_collapse()
    log = read_rows(out / "log.tsv")
    assert [(r["epoch"], r["diverged"], r["collapsed"]) for r in log] == [
        (1, False, False), (2, False, False), (3, False, True), (4, False, True)
    ]  # fmt: skip
    assert [name for name, _, _ in read_store(out / "features.h5")] == ["epoch0002", "epoch0004"]
    assert all(math.isfinite(log[3][m]) for m in job.PLASTICITY_COLUMNS)
    for epoch in (2, 4):  # every checkpoint is a model, and is fine-tuned
        rows = finetune(tmp_path, "plain", out / "ckpt" / f"epoch{epoch:04d}.pt", f"f{epoch}.tsv")
        assert not rows[-1]["diverged"] and 0.0 <= rows[-1]["test_accuracy"] <= 1.0


def test_a_non_finite_loss_diverges_stops_and_leaves_markers(tiny_dataset, tmp_path, monkeypatch):
    def blow_up(n, train):
        row = train()
        return {**row, "train_loss": math.nan} if n == 3 else row

    wrap_train_epoch(monkeypatch, blow_up)
    out = warmup(tmp_path, "run")
    log = read_rows(out / "log.tsv")
    assert [(r["epoch"], r["diverged"]) for r in log] == [(1, False), (2, False), (3, True)]
    assert [name for name, _, _ in read_store(out / "features.h5")] == ["epoch0002"]
    assert "model" in torch.load(out / "ckpt" / "epoch0002.pt", weights_only=False)
    marker = torch.load(out / "ckpt" / "epoch0004.pt", weights_only=False)
    assert marker == {"epoch": 4, "diverged": True}
    ((row,),) = [finetune(tmp_path, "plain", out / "ckpt" / "epoch0004.pt", "marker.tsv")]
    assert (row["warmup_epoch"], row["epoch"], row["diverged"]) == (4, 0, True)
    assert math.isnan(row["test_accuracy"]) and math.isnan(row["train_loss"])


def test_resume_after_interruption_is_bitwise_identical(tiny_dataset, tmp_path, monkeypatch):
    reference = warmup(tmp_path, "reference", "nc_reg_stable")

    undo_kill = kill_in_epoch(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        warmup(tmp_path, "resumed", "nc_reg_stable")
    assert (tmp_path / "partial" / "nc_reg_stable_s3" / "state.pt").exists()
    undo_kill()
    resumed = warmup(tmp_path, "resumed", "nc_reg_stable")
    assert_same_warmup(reference, resumed)


def assert_same_warmup(a, b):
    """Bitwise equal feature stores and checkpoints, equal logs but for the wall time."""
    for (name_a, coords_a, arrays_a), (name_b, coords_b, arrays_b) in zip(
        read_store(a / "features.h5"), read_store(b / "features.h5"), strict=True
    ):
        assert (name_a, coords_a) == (name_b, coords_b)
        for array_a, array_b in zip(arrays_a, arrays_b, strict=True):
            np.testing.assert_array_equal(array_a, array_b)
    for epoch in ("epoch0002.pt", "epoch0004.pt"):
        state_a = torch.load(a / "ckpt" / epoch, weights_only=False)["model"]
        state_b = torch.load(b / "ckpt" / epoch, weights_only=False)["model"]
        assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    log_a, log_b = read_rows(a / "log.tsv"), read_rows(b / "log.tsv")
    assert repr(without_wall_time(log_a)) == repr(without_wall_time(log_b))  # NaN equals NaN


def test_a_registered_intervention_runs_end_to_end_and_resumes(
    tiny_dataset, tmp_path, monkeypatch, epoch_counter
):
    counted = settings("counted", interventions=[{"name": epoch_counter.name}])
    reference = warmup(tmp_path, "reference", "counted", counted)
    assert epoch_counter.calls == [(e, e) for e in (1, 2, 3, 4)]
    log = read_rows(reference / "log.tsv")
    assert all(r["variant"] == "counted" and r["regularizer"] > 0 for r in log)

    undo_kill = kill_in_epoch(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        warmup(tmp_path, "resumed", "counted", counted)
    undo_kill()
    epoch_counter.calls = []
    resumed = warmup(tmp_path, "resumed", "counted", counted)
    assert epoch_counter.calls == [(3, 3), (4, 4)]  # the count survived the kill
    assert_same_warmup(reference, resumed)


def test_partial_state_of_other_settings_is_discarded(tiny_dataset, tmp_path, monkeypatch):
    faster = settings("plain", lr=0.1)
    reference = warmup(tmp_path, "reference", run_settings=faster)
    undo_kill = kill_in_epoch(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        warmup(tmp_path, "killed", run_settings=settings("plain"))
    undo_kill()
    # The state of the lr 0.05 run is not resumed: the lr 0.1 run starts from scratch.
    assert_same_warmup(reference, warmup(tmp_path, "rerun", run_settings=faster))


def test_an_intervention_warm_starting_would_ignore_is_refused_when_registered():
    class PeriodicStep(Intervention):
        name = "test_periodic_step"
        phase = "warmup"

        def on_period(self, ctx):
            pass

    class NoPhase(Intervention):
        name = "test_no_phase"

    with pytest.raises(ValueError, match="never calls"):
        REGISTRY.register(PeriodicStep)
    with pytest.raises(ValueError, match="set `phase` to one of"):
        REGISTRY.register(NoPhase)
    assert "test_periodic_step" not in REGISTRY and "test_no_phase" not in REGISTRY


def test_finetune_writes_a_row_per_epoch_the_last_the_outcome(tiny_dataset, tmp_path):
    out = warmup(tmp_path, "run")
    sp = finetune(tmp_path, "shrink_perturb", out / "ckpt" / "epoch0002.pt", "sp.tsv")
    fresh = finetune(tmp_path, "fresh", None, "fresh.tsv", view=fresh_settings)
    for rows, warmup_epoch in ((sp, 2), (fresh, 0)):
        assert 1 <= len(rows) <= 3
        assert [r["epoch"] for r in rows] == list(range(1, len(rows) + 1))
        assert {(r["variant"], r["seed"], r["warmup_epoch"]) for r in rows} == {
            (rows[0]["variant"], 3, warmup_epoch)
        }
        assert all(math.isfinite(r["train_loss"]) and not r["diverged"] for r in rows)
        # Only the last epoch is tested: its test accuracy is the outcome.
        assert all(math.isnan(r["test_accuracy"]) for r in rows[:-1])
        assert 0.0 <= rows[-1]["test_accuracy"] <= 1.0
    assert sp[0]["variant"] == "shrink_perturb" and fresh[0]["variant"] == "fresh"
    assert not (tmp_path / "partial" / "sp.tsv").exists()
    with pytest.raises(ValueError, match="needs a checkpoint"):
        finetune(tmp_path, "plain", None, "none.tsv")


def test_jobs_log_progress_lines_with_position_rate_and_eta(
    tiny_dataset, tmp_path, caplog, monkeypatch
):
    """Every epoch of a warm-up or fine-tune job logs its run, position, rate and remaining
    time (a fine-tune's total and eta are upper bounds: it stops at the target accuracy);
    within an epoch, the batches done every loop.PROGRESS_SECONDS (0 here: every batch)."""
    caplog.set_level("INFO", logger="ncplasticity.warm_start.loop")
    out = warmup(tmp_path, "run")
    finetune(tmp_path, "shrink_perturb", out / "ckpt" / "epoch0002.pt", "sp.tsv")
    epoch_lines = [r.getMessage() for r in caplog.records if " s/epoch, eta " in r.getMessage()]
    assert [line.split(",")[0] for line in epoch_lines[:4]] == [
        f"warm_start plain_s3: warm-up epoch {epoch}/4" for epoch in (1, 2, 3, 4)
    ]
    assert epoch_lines[4].startswith(
        "warm_start shrink_perturb_s3 from epoch 2: fine-tune epoch 1/≤3, "
    )
    assert " s/epoch, eta ≤" in epoch_lines[4] and "train_loss=" in epoch_lines[4]

    caplog.clear()
    monkeypatch.setattr(loop, "PROGRESS_SECONDS", 0.0)
    finetune(tmp_path, "fresh", None, "fresh.tsv", view=fresh_settings)
    batch_lines = [r.getMessage() for r in caplog.records if " s/batch, eta " in r.getMessage()]
    # 64 training images in batches of 16: 4 batches an epoch.
    assert [line.split(", ")[:2] for line in batch_lines[:4]] == [
        ["warm_start fresh_s3: fine-tune epoch 1/≤3", f"batch {done}/4"] for done in (1, 2, 3, 4)
    ]


def test_progress_line_format_is_shared_by_both_experiments():
    assert (
        progress_line("warm_start plain_s7", "warm-up epoch", 12, 100, 41.2, "epoch")
        == "warm_start plain_s7: warm-up epoch 12/100, 41.2 s/epoch, eta 1 h 00 min"
    )
    assert (
        progress_line("continual e1_s1", "first task epoch", 3, 20, 130.4, "epoch", at_most=True)
        == "continual e1_s1: first task epoch 3/≤20, 130 s/epoch, eta ≤37 min"
    )
    assert progress_line("continual e1_s1", "task", 150, 150, 0.031, "task").endswith(
        "150/150, 0.031 s/task, eta 0 s"
    )
