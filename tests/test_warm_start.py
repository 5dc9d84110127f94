"""The warm-start jobs (warm-up, fine-tune) and their interventions. The helpers here serve
test_warm_start_training too."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from ncplasticity.features import FeatureReader
from ncplasticity.interventions import HookContext, Intervention
from ncplasticity.models import ResNet18
from ncplasticity.tsv import read_tsv
from ncplasticity.warm_start import run, training
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
    monkeypatch.setattr(run, "load_prepared", lambda path: dataset)
    return dataset


def warmup(tmp_path, out, variant="plain", run_settings=None):
    run_settings = run_settings or settings(variant)
    run.run_warmup(
        "tiny.npz",
        settings=warmup_settings(run_settings),
        seed=3,
        variant=variant,
        features_path=tmp_path / out / "features.h5",
        checkpoint_dir=tmp_path / out / "ckpt",
        log_path=tmp_path / out / "log.tsv",
        partial_dir=tmp_path / "partial" / f"{variant}_s3",
        device="cpu",
    )
    return tmp_path / out


def kill_in_epoch(monkeypatch, epoch):
    """Make ``train_epoch`` raise in its ``epoch``-th call, as a kill would; returns the undo."""
    real_train_epoch, calls = training.train_epoch, []

    def killed(*args, **kwargs):
        calls.append(1)
        if len(calls) == epoch:
            raise KeyboardInterrupt("killed")
        return real_train_epoch(*args, **kwargs)

    monkeypatch.setattr(training, "train_epoch", killed)
    return lambda: monkeypatch.setattr(training, "train_epoch", real_train_epoch)


def parameter_values(model):
    return [p.detach().clone() for p in model.parameters()]


def without_wall_time(rows):
    return [{k: v for k, v in row.items() if k != "wall_seconds"} for row in rows]


class EpochCounter(Intervention):
    """A toy intervention: counts epochs (state that must survive a resume), adds a small
    logit penalty and sets the optimiser's momentum (whose buffers must survive one too)."""

    name = "test_epoch_counter"
    phase = "warmup"
    calls: list = []  # (epoch, count) of every on_epoch_end call, across instances

    def __init__(self, **params):
        super().__init__(**params)
        self.count = 0

    def optimizer_options(self):
        return {"momentum": 0.9}

    def loss(self, ctx, features, logits, targets):
        return 1e-3 * logits.float().pow(2).mean()

    def on_epoch_end(self, ctx):
        self.count += 1
        EpochCounter.calls.append((ctx.epoch, self.count))

    def state_dict(self):
        return {"count": self.count}

    def load_state_dict(self, state):
        self.count = state["count"]


@pytest.fixture
def epoch_counter():
    REGISTRY.register(EpochCounter)
    EpochCounter.calls = []
    yield EpochCounter
    REGISTRY.unregister(EpochCounter.name)


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
    assert training.derived_seed(3, training.PERTURB, 2, 0) == training.derived_seed(
        3, training.PERTURB, 2
    )
    assert training.derived_seed(3, training.PERTURB, 2, 1) != training.derived_seed(
        3, training.PERTURB, 2
    )


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
    log = read_tsv(out / "log.tsv")
    assert list(log[0]) == run.LOG_COLUMNS
    assert [(r["variant"], r["seed"], r["epoch"]) for r in log] == [
        ("nc_reg", 3, epoch) for epoch in (1, 2, 3, 4)
    ]
    assert all(math.isfinite(r["batch_nc1"]) for r in log)
    assert not (tmp_path / "partial" / "nc_reg_s3").exists()


def test_a_diverged_warmup_stops_and_leaves_markers(tiny_dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(training, "_diverged", lambda row, best: row["epoch"] == 3)
    out = warmup(tmp_path, "run")
    log = read_tsv(out / "log.tsv")
    assert [(r["epoch"], r["diverged"]) for r in log] == [(1, False), (2, False), (3, True)]
    assert [name for name, _, _ in read_store(out / "features.h5")] == ["epoch0002"]
    assert "model" in torch.load(out / "ckpt" / "epoch0002.pt", weights_only=False)
    marker = torch.load(out / "ckpt" / "epoch0004.pt", weights_only=False)
    assert marker == {"epoch": 4, "diverged": True}


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
    log_a, log_b = read_tsv(a / "log.tsv"), read_tsv(b / "log.tsv")
    assert repr(without_wall_time(log_a)) == repr(without_wall_time(log_b))  # NaN equals NaN


def test_a_registered_intervention_runs_end_to_end_and_resumes(
    tiny_dataset, tmp_path, monkeypatch, epoch_counter
):
    counted = settings("counted", interventions=[{"name": epoch_counter.name}])
    reference = warmup(tmp_path, "reference", "counted", counted)
    assert epoch_counter.calls == [(e, e) for e in (1, 2, 3, 4)]
    log = read_tsv(reference / "log.tsv")
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
    class EveryStep(Intervention):
        name = "test_every_step"
        phase = "warmup"

        def on_every(self, ctx):
            pass

    class NoPhase(Intervention):
        name = "test_no_phase"

    with pytest.raises(ValueError, match="never calls"):
        REGISTRY.register(EveryStep)
    with pytest.raises(ValueError, match="set `phase` to one of"):
        REGISTRY.register(NoPhase)
    assert "test_every_step" not in REGISTRY and "test_no_phase" not in REGISTRY


def test_finetune_rows_for_checkpoint_fresh_and_diverged_marker(tiny_dataset, tmp_path):
    out = warmup(tmp_path, "run")

    def finetune(variant, checkpoint_path, out_path, view=finetune_settings):
        run.run_finetune(
            "tiny.npz",
            settings=view(settings(variant)),
            seed=3,
            variant=variant,
            checkpoint_path=checkpoint_path,
            out_path=tmp_path / out_path,
            partial_dir=tmp_path / "partial" / out_path,
            device="cpu",
        )
        ((row,),) = [read_tsv(tmp_path / out_path)]
        assert list(row) == run.FINETUNE_COLUMNS
        return row

    sp = finetune("shrink_perturb", out / "ckpt" / "epoch0002.pt", "sp.tsv")
    fresh = finetune("fresh", None, "fresh.tsv", view=fresh_settings)
    torch.save({"epoch": 4, "diverged": True}, tmp_path / "marker.pt")
    diverged = finetune("nc_reg", tmp_path / "marker.pt", "diverged.tsv")
    assert (sp["variant"], sp["warmup_epoch"], fresh["warmup_epoch"]) == ("shrink_perturb", 2, 0)
    assert 1 <= sp["epochs"] <= 3 and 0.0 <= sp["test_accuracy"] <= 1.0
    assert diverged["diverged"] is True and diverged["epochs"] == 0
    assert diverged["test_accuracy"] is not None and math.isnan(diverged["test_accuracy"])
    assert not (tmp_path / "partial" / "sp.tsv").exists()
    with pytest.raises(ValueError, match="needs a checkpoint"):
        finetune("plain", None, "none.tsv")
