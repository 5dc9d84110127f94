"""The training loop of warm starting; the jobs built on it are tested in test_warm_start."""

import math
from contextlib import nullcontext
from functools import partial

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from test_warm_start import (
    INTERVENTIONS,
    SETTINGS,
    kill_in_epoch,
    make_tiny_dataset,
    parameter_values,
    without_wall_time,
)
from torchvision import transforms

from ncplasticity.interventions import HookContext
from ncplasticity.jobs import ResumableJob
from ncplasticity.nc_penalties import batch_nc1, paper_nc_penalty
from ncplasticity.networks import ResNet18
from ncplasticity.optim import SGD
from ncplasticity.warm_start import job, loop
from ncplasticity.warm_start.interventions import REGISTRY


@pytest.fixture
def tiny_dataset():
    return make_tiny_dataset()


@pytest.mark.parametrize(
    ("loss", "regularizer", "nan_parameter", "diverged"),
    [
        (float("nan"), float("nan"), False, True),
        (float("inf"), float("nan"), False, True),
        (0.5, float("nan"), False, False),  # NaN regulariser: the variant has none
        (0.5, float("inf"), False, True),  # the penalty blew up
        (0.5, -0.4, False, False),
        (0.5, -0.4, True, True),  # a parameter turned NaN
    ],
)
def test_divergence_rule(loss, regularizer, nan_parameter, diverged):
    model = ResNet18(1, 4, 2)
    if nan_parameter:
        with torch.no_grad():
            model.classifier.bias[1] = math.nan
    row = {"train_loss": loss, "train_accuracy": 0.1, "regularizer": regularizer}
    assert loop._diverged(row, model) is diverged


@pytest.mark.parametrize(
    ("accuracy", "best", "collapsed"),
    [
        (0.2, 0.9, True),  # below half the best
        (0.5, 0.9, False),
        (0.1, 0.3, False),  # never learnt: not a collapse
    ],
)
def test_collapse_rule(accuracy, best, collapsed):
    assert loop._collapsed({"train_accuracy": accuracy}, best) is collapsed


def fit_tiny(dataset, partial_dir, interventions=(), **kwargs):
    """``fit`` of a fresh model on the 64 training images of ``tiny_dataset`` (lr 0.05);
    returns the rows and the model."""
    data = loop.DeviceData(dataset, torch.device("cpu"), channels_last=False)
    model = job.build_model(SETTINGS, data, 0)
    rows = loop.fit(
        model,
        data,
        np.arange(64),
        settings=SETTINGS,
        seed=0,
        phase=loop.FINETUNE,
        job=ResumableJob(partial_dir, {"test": str(partial_dir)}),
        interventions=interventions,
        **kwargs,
    )
    return rows, model


def test_fit_stops_once_train_accuracy_exceeds_the_target(tiny_dataset, tmp_path):
    rows, _ = fit_tiny(tiny_dataset, tmp_path / "a", max_epochs=5, stop_accuracy=0.0)
    assert len(rows) == 1  # any accuracy > 0 meets a target of 0
    rows, _ = fit_tiny(tiny_dataset, tmp_path / "b", max_epochs=3, stop_accuracy=1.0)
    assert len(rows) == 3  # accuracy can never exceed 1: runs to max_epochs


def test_fit_without_per_epoch_tests_tests_the_last_epoch_also_when_resumed(
    tiny_dataset, tmp_path, monkeypatch
):
    def fit(partial, **kwargs):
        rows, _ = fit_tiny(tiny_dataset, tmp_path / partial, test_every_epoch=False, **kwargs)
        return rows

    def tested(rows):
        return [math.isfinite(r["test_accuracy"]) for r in rows]

    stopped_early = fit("early", max_epochs=5, stop_accuracy=0.0)
    assert tested(stopped_early) == [True]
    reference = fit("reference", max_epochs=3, stop_accuracy=1.0)
    assert tested(reference) == [False, False, True]

    undo_kill = kill_in_epoch(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        fit("resumed", max_epochs=3, stop_accuracy=1.0)
    undo_kill()
    resumed = fit("resumed", max_epochs=3, stop_accuracy=1.0)
    assert tested(resumed) == [False, False, True]
    # repr: NaN equals NaN
    assert repr(without_wall_time(resumed)) == repr(without_wall_time(reference))
    # A rerun of a finished fit trains nothing and keeps the outcome.
    rerun = fit("resumed", max_epochs=3, stop_accuracy=1.0)
    assert repr(rerun) == repr(resumed)


def test_fit_resume_restores_optimizer_and_intervention_state(
    tiny_dataset, tmp_path, monkeypatch, epoch_counter
):
    def fit(partial):
        counter = epoch_counter()
        rows, model = fit_tiny(tiny_dataset, tmp_path / partial, [counter], max_epochs=3)
        return rows, model, counter

    reference_rows, reference_model, reference_counter = fit("reference")
    assert reference_counter.count == 3
    # The interventions' options reach the optimiser, their loss terms the log.
    assert all(math.isfinite(r["regularizer"]) and r["regularizer"] > 0 for r in reference_rows)
    assert all(math.isnan(r["batch_nc1"]) for r in reference_rows)  # no NC regulariser

    undo_kill = kill_in_epoch(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        fit("resumed")
    undo_kill()
    epoch_counter.calls = []
    rows, model, counter = fit("resumed")
    assert epoch_counter.calls == [(3, 3)]  # the count of epochs 1-2 came back
    assert repr(without_wall_time(rows)) == repr(without_wall_time(reference_rows))
    # Bitwise: momentum buffers restored (a fresh momentum would change epoch 3).
    for a, b in zip(model.parameters(), reference_model.parameters(), strict=True):
        assert torch.equal(a, b)


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


def test_bfloat16_epoch_on_a_cpu_is_reproducible(tiny_dataset):
    """Two bfloat16 epochs from the same state give the same parameters: with oneDNN's AMX
    kernels (Intel Xeon from Sapphire Rapids) a convolution's weight gradient had entries of
    ~1e28 in some runs and not in others."""
    data = loop.DeviceData(tiny_dataset, torch.device("cpu"), channels_last=False)
    indices = torch.randperm(64, generator=torch.Generator().manual_seed(1))[:48]
    runs = []
    for _ in range(4):
        model = job.build_model(SETTINGS, data, 0)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
        loop.train_epoch(
            model, optimizer, data, indices, batch_size=16, generator_seed=5, precision="bfloat16"
        )
        runs.append(parameter_values(model))
    for run in runs[1:]:
        for a, b in zip(runs[0], run, strict=True):
            assert torch.equal(a, b)
    assert all(float(p.abs().max()) < 100 for p in runs[0])


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
    tiny_dataset, variant, precision, channels_last, device, monkeypatch
):
    device = torch.device(device)
    # On a GPU, float32 convolutions run in TF32 by default and cuDNN picks its algorithms by
    # timing: both change the sums between two runs of the same step. Compare at full float32
    # with deterministic algorithms (what remains is summation order, as with channels_last).
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    data = loop.DeviceData(tiny_dataset, device, channels_last=channels_last)
    model = job.build_model(SETTINGS, data, 0)
    reference = ResNet18(1, 4, SETTINGS["width"]).to(device)
    reference.load_state_dict(model.state_dict())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    steps = []
    optimizer.register_step_post_hook(lambda *_: steps.append(parameter_values(model)))
    indices = torch.randperm(64, generator=torch.Generator().manual_seed(1))[:48]  # a subset
    row = loop.train_epoch(
        model,
        optimizer,
        data,
        indices,
        batch_size=16,
        generator_seed=5,
        interventions=REGISTRY.build(INTERVENTIONS[variant]),
        ctx=HookContext(model=model, optimizer=optimizer),
        precision=precision,
    )
    # The penalty and batch NC1 columns: logged for the NC regulariser, NaN without one.
    assert math.isfinite(row["batch_nc1"]) is math.isfinite(row["regularizer"])
    assert math.isfinite(row["regularizer"]) is (variant == "nc_reg")
    order = indices[torch.randperm(48, generator=torch.Generator().manual_seed(5))]
    nc_reg = INTERVENTIONS["nc_reg"][0]
    penalty = (
        partial(paper_nc_penalty, lam=nc_reg["lam"], cap=nc_reg["cap"])
        if variant == "nc_reg"
        else None
    )
    # bfloat16 on a CPU trains without oneDNN (its AMX kernels returned garbage gradients),
    # so the plain loop runs without it too.
    cpu_bfloat16 = precision == "bfloat16" and device.type == "cpu"
    with loop._without_onednn() if cpu_bfloat16 else nullcontext():
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


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")
@pytest.mark.parametrize("precision, channels_last", [("float32", False), ("bfloat16", True)])
# torch's SGD and ours (what the warm-start jobs run), whose foreach update is captured too.
@pytest.mark.parametrize("optimizer_class", [torch.optim.SGD, SGD])
def test_a_cuda_graph_replays_the_plain_steps(
    tiny_dataset, precision, channels_last, optimizer_class, monkeypatch
):
    """The step recorded as a CUDA graph and replayed gives the updates of the loop run step
    by step (the same kernels on the same memory: equal to the last bit with deterministic
    cuDNN; that loop is checked against the plain PyTorch loop above), with momentum, over two
    epochs, each with 3 warm-up steps, a capture, 2 replays and a last smaller batch."""
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    device = torch.device("cuda")
    data = loop.DeviceData(tiny_dataset, device, channels_last=channels_last)
    indices = torch.randperm(64, generator=torch.Generator().manual_seed(1))[:46]
    runs = {}
    for graphed in (False, True):
        model = job.build_model(SETTINGS, data, 0)
        optimizer = optimizer_class(model.parameters(), lr=0.05, momentum=0.9)
        rows = [
            loop.train_epoch(
                model,
                optimizer,
                data,
                indices,
                batch_size=8,
                generator_seed=epoch,
                precision=precision,
                cuda_graph=graphed,
            )
            for epoch in (1, 2)
        ]
        runs[graphed] = rows, [p.detach().clone() for p in model.parameters()], model
    plain_rows, plain_weights, plain_model = runs[False]
    graph_rows, graph_weights, graph_model = runs[True]
    assert graph_rows == plain_rows
    for a, b in zip(graph_weights, plain_weights, strict=True):
        assert torch.equal(a, b)
    for a, b in zip(graph_model.buffers(), plain_model.buffers(), strict=True):
        assert torch.equal(a, b)  # BatchNorm statistics, updated inside the graph too


def test_recalibrated_bn_holds_data_statistics_and_leaves_the_model(tiny_dataset, monkeypatch):
    monkeypatch.setattr(loop, "EVAL_BATCH", 16)
    data = loop.DeviceData(tiny_dataset, torch.device("cpu"), channels_last=False)
    model = job.build_model(SETTINGS, data, 0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    indices = torch.randperm(64, generator=torch.Generator().manual_seed(1))[:49]
    recalibrated = loop.recalibrated_bn(model, data, indices)

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
    loop.recalibrated_bn(model, data, torch.arange(17))
    # The switch: without it, the model is evaluated as it is (the paper's code).
    assert loop.evaluation_model(model, data, indices, {"recalibrate_bn": False}) is model
