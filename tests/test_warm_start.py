import math
from functools import partial
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision import transforms

from ncplasticity import warm_start
from ncplasticity.features import FeatureReader
from ncplasticity.models import ResNet18
from ncplasticity.regularizers import batch_nc1, paper_nc_penalty
from ncplasticity.tsv import read_tsv

CFG = {
    "width": 2,
    "warmup_fraction": 0.5,
    "warmup_epochs": 4,
    "checkpoint_every": 2,
    "batch_size": 16,
    "lr": 0.05,
    "finetune": {"max_epochs": 3, "target_train_accuracy": 0.99},
    "nc_reg": {"lam": 0.05, "cap": 200},
    "nc_reg_stable": {"lam": 0.1, "target": 1.0},
    "shrink_perturb": {"shrink": 0.6, "perturb": 0.01},
    "l2": {"weight_decay": 0.0005},
    "feature_dtype": "float32",
    "recalibrate_bn": True,
}


@pytest.fixture
def tiny_dataset(monkeypatch):
    """64 train / 16 test random 8x8 one-channel images of 4 classes, in place of a file."""
    rng = np.random.default_rng(0)
    dataset = SimpleNamespace(
        x_train=rng.integers(0, 256, (64, 1, 8, 8), dtype=np.uint8),
        y_train=np.arange(64) % 4,
        x_test=rng.integers(0, 256, (16, 1, 8, 8), dtype=np.uint8),
        y_test=np.arange(16) % 4,
        mean=np.array([0.5], dtype=np.float32),
        std=np.array([0.3], dtype=np.float32),
        num_classes=4,
    )
    monkeypatch.setattr(warm_start, "load_prepared", lambda path: dataset)
    return dataset


def warmup(tmp_path, out, variant="plain"):
    warm_start.run_warmup(
        "tiny.npz",
        cfg=CFG,
        variant=variant,
        seed=3,
        features_path=tmp_path / out / "features.h5",
        checkpoint_dir=tmp_path / out / "ckpt",
        log_path=tmp_path / out / "log.tsv",
        partial_root=tmp_path / "partial",
        device="cpu",
    )
    return tmp_path / out


def kill_in_epoch(monkeypatch, epoch):
    """Make ``train_epoch`` raise in its ``epoch``-th call, as a kill would; returns the undo."""
    real_train_epoch, calls = warm_start.train_epoch, []

    def killed(*args, **kwargs):
        calls.append(1)
        if len(calls) == epoch:
            raise KeyboardInterrupt("killed")
        return real_train_epoch(*args, **kwargs)

    monkeypatch.setattr(warm_start, "train_epoch", killed)
    return lambda: monkeypatch.setattr(warm_start, "train_epoch", real_train_epoch)


def parameter_values(model):
    return [p.detach().clone() for p in model.parameters()]


def without_wall_time(rows):
    return [{k: v for k, v in row.items() if k != "wall_seconds"} for row in rows]


def test_shrink_perturb_mixes_parameters_and_keeps_buffers():
    torch.manual_seed(0)
    model, fresh = ResNet18(1, 4, 2), ResNet18(1, 4, 2)
    model.stem[1].running_mean.fill_(3.0)
    before = parameter_values(model)
    warm_start.shrink_perturb(model, fresh, 0.6, 0.01)
    for old, new, f in zip(before, model.parameters(), fresh.parameters(), strict=True):
        torch.testing.assert_close(new, 0.6 * old + 0.01 * f)
    assert (model.stem[1].running_mean == 3.0).all()


@pytest.mark.parametrize(
    ("loss", "accuracy", "best", "regularizer", "diverged"),
    [
        (float("nan"), 0.9, 0.9, float("nan"), True),
        (float("inf"), 0.9, 0.0, float("nan"), True),
        (0.5, 0.2, 0.9, float("nan"), True),  # collapse below half the best
        (0.5, 0.5, 0.9, float("nan"), False),  # NaN regulariser: the variant has none
        (2.3, 0.1, 0.3, float("nan"), False),  # never learnt: not a collapse
        (0.5, 0.9, 0.9, float("inf"), True),  # the penalty blew up
        (0.5, 0.9, 0.9, -0.4, False),
    ],
)
def test_divergence_rule(loss, accuracy, best, regularizer, diverged):
    row = {"train_loss": loss, "train_accuracy": accuracy, "regularizer": regularizer}
    assert warm_start._diverged(row, best) is diverged


def fit_tiny(dataset, state_path, **kwargs):
    """``fit`` of a fresh model on the 64 training images of ``tiny_dataset`` (lr 0.05)."""
    data = warm_start.DeviceData(dataset, torch.device("cpu"), channels_last=False)
    model = warm_start.build_model(CFG, data, 0)
    return warm_start.fit(
        model,
        data,
        np.arange(64),
        cfg=CFG,
        lr=0.05,
        weight_decay=0.0,
        epoch_seed=(0,),
        state_path=state_path,
        **kwargs,
    )


def test_fit_stops_once_train_accuracy_exceeds_the_target(tiny_dataset, tmp_path):
    rows = fit_tiny(tiny_dataset, tmp_path / "a.pt", max_epochs=5, stop_accuracy=0.0)
    assert len(rows) == 1  # any accuracy > 0 meets a target of 0
    rows = fit_tiny(tiny_dataset, tmp_path / "b.pt", max_epochs=3, stop_accuracy=1.0)
    assert len(rows) == 3  # accuracy can never exceed 1: runs to max_epochs


def test_fit_without_per_epoch_tests_tests_the_last_epoch_also_when_resumed(
    tiny_dataset, tmp_path, monkeypatch
):
    def fit(state, **kwargs):
        return fit_tiny(tiny_dataset, tmp_path / state, test_every_epoch=False, **kwargs)

    def tested(rows):
        return [math.isfinite(r["test_accuracy"]) for r in rows]

    stopped_early = fit("early.pt", max_epochs=5, stop_accuracy=0.0)
    assert tested(stopped_early) == [True]
    reference = fit("reference.pt", max_epochs=3, stop_accuracy=1.0)
    assert tested(reference) == [False, False, True]

    undo_kill = kill_in_epoch(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        fit("resumed.pt", max_epochs=3, stop_accuracy=1.0)
    undo_kill()
    resumed = fit("resumed.pt", max_epochs=3, stop_accuracy=1.0)
    assert tested(resumed) == [False, False, True]
    # repr: NaN equals NaN
    assert repr(without_wall_time(resumed)) == repr(without_wall_time(reference))
    # A rerun of a finished fit trains nothing and keeps the outcome.
    rerun = fit("resumed.pt", max_epochs=3, stop_accuracy=1.0)
    assert repr(rerun) == repr(resumed)


def reference_epoch(
    model, dataset, order, device, *, batch_size, lr, penalty=None, precision="float32"
):
    """One epoch the plain way (the paper's code): each image through PIL, ``ToTensor`` and
    ``Normalize``, the batch copied to the device, ``model(x)``, cross-entropy (plus a batch-NC1
    penalty), an SGD step. Returns the parameters after every step."""
    transform = transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize(dataset.mean.tolist(), dataset.std.tolist())]
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    model.train()
    steps = []
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size].numpy()
        x = torch.stack([transform(Image.fromarray(dataset.x_train[i, 0])) for i in batch])
        x, y = x.to(device), torch.as_tensor(dataset.y_train[batch], device=device)
        bf16 = precision == "bfloat16"
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            features = model.features(x)
            loss = F.cross_entropy(model.classifier(features).float(), y)
        if penalty is not None:
            loss = loss + penalty(batch_nc1(features, y))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        steps.append(parameter_values(model))
    return steps


@pytest.mark.parametrize(
    "device",
    [
        "cpu",
        # Runs where a GPU is: the CUDA path of the loop, bf16 autocast and channels_last.
        pytest.param(
            "cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")
        ),
    ],
)
@pytest.mark.parametrize(
    "variant, precision, channels_last",
    [
        ("plain", "float32", False),
        ("nc_reg", "float32", False),
        ("plain", "float32", True),
        ("plain", "bfloat16", False),
    ],
)
def test_train_epoch_matches_a_plain_pytorch_loop_step_by_step(
    tiny_dataset, variant, precision, channels_last, device
):
    device = torch.device(device)
    data = warm_start.DeviceData(tiny_dataset, device, channels_last=channels_last)
    model = warm_start.build_model(CFG, data, 0)
    reference = ResNet18(1, 4, CFG["width"]).to(device)
    reference.load_state_dict(model.state_dict())
    regularizer = warm_start.NCRegularizer(variant, CFG) if variant == "nc_reg" else None
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    steps = []
    optimizer.register_step_post_hook(lambda *_: steps.append(parameter_values(model)))
    indices = torch.randperm(64, generator=torch.Generator().manual_seed(1))[:48]  # a subset
    warm_start.train_epoch(
        model,
        optimizer,
        data,
        indices,
        batch_size=16,
        generator_seed=5,
        regularizer=regularizer,
        precision=precision,
    )
    order = indices[torch.randperm(48, generator=torch.Generator().manual_seed(5))]
    penalty = partial(paper_nc_penalty, **CFG["nc_reg"]) if variant == "nc_reg" else None
    expected = reference_epoch(
        reference,
        tiny_dataset,
        order,
        device,
        batch_size=16,
        lr=0.05,
        penalty=penalty,
        precision=precision,
    )
    assert len(steps) == len(expected) == 3
    # channels_last (and cuDNN's choice on a GPU) runs other convolution kernels: the same
    # sums in another order.
    other_kernels = channels_last or device.type == "cuda"
    tolerance = {"rtol": 1e-3, "atol": 1e-4} if other_kernels else {}
    for step, (ours, theirs) in enumerate(zip(steps, expected, strict=True)):
        for a, b in zip(ours, theirs, strict=True):
            torch.testing.assert_close(
                a, b, **tolerance, msg=lambda m, step=step: f"step {step + 1}: {m}"
            )
    for a, b in zip(model.buffers(), reference.buffers(), strict=True):
        torch.testing.assert_close(a, b, **tolerance)  # BatchNorm running statistics


def test_recalibrated_bn_holds_data_statistics_and_leaves_the_model(tiny_dataset, monkeypatch):
    monkeypatch.setattr(warm_start, "EVAL_BATCH", 16)
    data = warm_start.DeviceData(tiny_dataset, torch.device("cpu"), channels_last=False)
    model = warm_start.build_model(CFG, data, 0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    indices = torch.randperm(64, generator=torch.Generator().manual_seed(1))[:49]
    recalibrated = warm_start.recalibrated_bn(model, data, indices)

    # 49 images in batches of 13, 12, 12, 12.
    stem_conv, stem_bn = recalibrated.stem[0], recalibrated.stem[1]
    with torch.no_grad():
        batches = [stem_conv(data.batch(data.x_train[b])) for b in indices.tensor_split(4)]
    sizes = torch.tensor([len(b) for b in batches], dtype=torch.float32)
    variances = torch.stack([b.var((0, 2, 3), unbiased=True) for b in batches])
    torch.testing.assert_close(stem_bn.running_mean, torch.cat(batches).mean((0, 2, 3)))
    torch.testing.assert_close(stem_bn.running_var, sizes @ variances / sizes.sum())
    assert stem_bn.momentum == 0.1
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.training
    # 17 images: no batch of one image, whose 1x1 last feature map BatchNorm would reject.
    warm_start.recalibrated_bn(model, data, torch.arange(17))
    # The switch: without it, the model is evaluated as it is (the paper's code).
    assert warm_start.evaluation_model(model, data, indices, {"recalibrate_bn": False}) is model


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
    assert [r["epoch"] for r in log] == [1, 2, 3, 4]
    assert all(math.isfinite(r["batch_nc1"]) for r in log)
    assert not (tmp_path / "partial" / "nc_reg_s3").exists()


def test_resume_after_interruption_is_bitwise_identical(tiny_dataset, tmp_path, monkeypatch):
    reference = warmup(tmp_path, "reference", "nc_reg_stable")

    undo_kill = kill_in_epoch(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        warmup(tmp_path, "resumed", "nc_reg_stable")
    assert (tmp_path / "partial" / "nc_reg_stable_s3" / "state.pt").exists()
    undo_kill()
    resumed = warmup(tmp_path, "resumed", "nc_reg_stable")

    for (name_a, coords_a, arrays_a), (name_b, coords_b, arrays_b) in zip(
        read_store(reference / "features.h5"), read_store(resumed / "features.h5"), strict=True
    ):
        assert (name_a, coords_a) == (name_b, coords_b)
        for a, b in zip(arrays_a, arrays_b, strict=True):
            np.testing.assert_array_equal(a, b)
    for epoch in ("epoch0002.pt", "epoch0004.pt"):
        a = torch.load(reference / "ckpt" / epoch, weights_only=False)["model"]
        b = torch.load(resumed / "ckpt" / epoch, weights_only=False)["model"]
        assert all(torch.equal(a[k], b[k]) for k in a)
    resumed_log, reference_log = read_tsv(resumed / "log.tsv"), read_tsv(reference / "log.tsv")
    assert without_wall_time(resumed_log) == without_wall_time(reference_log)


def test_finetune_rows_for_checkpoint_fresh_and_diverged_marker(tiny_dataset, tmp_path):
    out = warmup(tmp_path, "run")
    common = dict(cfg=CFG, seed=3, partial_root=tmp_path / "partial", device="cpu")
    warm_start.run_finetune(
        "tiny.npz",
        variant="shrink_perturb",
        checkpoint_path=out / "ckpt" / "epoch0002.pt",
        out_path=tmp_path / "sp.tsv",
        **common,
    )
    warm_start.run_finetune(
        "tiny.npz", variant="fresh", checkpoint_path=None, out_path=tmp_path / "fresh.tsv", **common
    )
    torch.save({"epoch": 4, "diverged": True}, tmp_path / "marker.pt")
    warm_start.run_finetune(
        "tiny.npz",
        variant="nc_reg",
        checkpoint_path=tmp_path / "marker.pt",
        out_path=tmp_path / "diverged.tsv",
        **common,
    )
    (sp,), (fresh,), (diverged,) = (
        read_tsv(tmp_path / f) for f in ("sp.tsv", "fresh.tsv", "diverged.tsv")
    )
    assert (sp["variant"], sp["warmup_epoch"], fresh["warmup_epoch"]) == ("shrink_perturb", 2, 0)
    assert 1 <= sp["epochs"] <= 3 and 0.0 <= sp["test_accuracy"] <= 1.0
    assert diverged["diverged"] is True and diverged["epochs"] == 0
    assert diverged["test_accuracy"] is not None and math.isnan(diverged["test_accuracy"])


def test_partial_state_of_another_configuration_is_discarded(tmp_path):
    partial = warm_start._partial_dir(tmp_path, "run", {"lr": 0.1})
    (partial / "state.pt").write_text("old")
    assert (warm_start._partial_dir(tmp_path, "run", {"lr": 0.1}) / "state.pt").exists()
    assert not (warm_start._partial_dir(tmp_path, "run", {"lr": 0.2}) / "state.pt").exists()


def test_run_table_and_sliding_correlations(tmp_path):
    from ncplasticity.tsv import write_tsv
    from ncplasticity.warm_start_analysis import run_table, sliding_correlations

    epochs = [2, 4, 6, 8]
    tables = []
    for seed, slope in ((1, 1.0), (2, 2.0)):
        # NC1 falls and fine-tuned accuracy falls with it; the warm-up diverged at epoch 8.
        write_tsv(
            tmp_path / "m.tsv",
            [
                {
                    "snapshot": f"epoch{e:04d}",
                    "order": i,
                    "epoch": e,
                    "nc1": 10.0 - slope * e,
                    "nc4": 0.1,
                }
                for i, e in enumerate(epochs[:3])
            ],
        )
        write_tsv(
            tmp_path / "log.tsv",
            [{"epoch": e, "train_accuracy": 0.9, "diverged": e == 8} for e in range(1, 9)],
        )
        finetune = []
        for e in epochs:
            finetune.append(tmp_path / f"f{e}.tsv")
            write_tsv(
                finetune[-1],
                [
                    {
                        "variant": "plain",
                        "seed": seed,
                        "warmup_epoch": e,
                        "epochs": 3,
                        "test_accuracy": 0.9 - 0.01 * e,
                        "train_accuracy": 1.0,
                        "diverged": False,
                    }
                ],
            )
        write_tsv(
            tmp_path / "fresh.tsv",
            [
                {
                    "variant": "fresh",
                    "seed": seed,
                    "warmup_epoch": 0,
                    "test_accuracy": 0.95,
                    "diverged": False,
                }
            ],
        )
        tables.append(tmp_path / f"plain_s{seed}.tsv")
        run_table(
            tmp_path / "m.tsv", tmp_path / "log.tsv", finetune, tmp_path / "fresh.tsv", tables[-1]
        )
    rows = read_tsv(tables[0])
    assert [r["epoch"] for r in rows] == epochs
    assert rows[0]["gap_to_fresh"] == pytest.approx(0.95 - 0.88)
    assert rows[0]["nc1"] == 8.0 and rows[3]["nc1"] is None  # no snapshot after divergence
    assert [r["diverged"] for r in rows] == [False, False, False, True]

    sliding_correlations(tables, 6, tmp_path / "corr.tsv", metrics=["nc1"])
    (window_6, window_8) = read_tsv(tmp_path / "corr.tsv")
    assert (window_6["window_end"], window_6["n_seeds"]) == (6, 2)
    assert window_6["r_mean"] == pytest.approx(1.0) and window_6["r_std"] == pytest.approx(0.0)
    assert window_8["n_seeds"] == 0  # only two finite NC1 values in (2, 8]
