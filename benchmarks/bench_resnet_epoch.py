"""Images per second of one warm-start training epoch: our loop vs a DataLoader loop.

Ours (``ncplasticity.warm_start.loop.train_epoch``): the dataset sits on the device as
uint8 and is normalised per batch. The reference is what the paper's code does: a
torchvision-style Dataset that turns each image into a PIL image, applies ``ToTensor`` and
``Normalize``, batched by a ``DataLoader`` (shuffle, batch 128) and copied to the device batch
by batch. Same ResNet-18, same SGD step, one run each after a warm-up epoch; prints the rates
and the ratios (on a GPU also ours with the step replayed as a CUDA graph, the workflow's
default there).

    python benchmarks/bench_resnet_epoch.py                       # mnist5k, width 8, CPU/auto
    python benchmarks/bench_resnet_epoch.py --dataset results/data/cifar10.npz --width 64 \
        --precision bfloat16 --channels-last --num-workers 4     # the paper's scale, on a GPU
    python benchmarks/bench_resnet_epoch.py --synthetic-cifar10 --width 64 ...  # no data there
"""

from __future__ import annotations

import argparse
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision import transforms

from ncplasticity.data import PreparedDataset, load_prepared, prepare_dataset
from ncplasticity.jobs import resolve_device
from ncplasticity.warm_start.job import build_model
from ncplasticity.warm_start.loop import DeviceData, train_epoch


class PILDataset(torch.utils.data.Dataset):
    """Images through PIL + torchvision transforms one at a time, like torchvision's CIFAR10."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, mean, std):
        self.images = images.transpose(0, 2, 3, 1)  # N, H, W, C as torchvision stores them
        self.labels = labels
        self.transform = transforms.Compose(
            [transforms.ToTensor(), transforms.Normalize(mean.tolist(), std.tolist())]
        )

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        image = self.images[i]
        image = Image.fromarray(image[:, :, 0] if image.shape[2] == 1 else image)
        return self.transform(image), int(self.labels[i])


def synthetic_cifar10(count: int = 50_000) -> PreparedDataset:
    """Random images shaped like CIFAR-10's training set (3x32x32 uint8, 10 classes): an
    epoch's cost does not depend on pixel values, so a machine without the data can measure."""
    rng = np.random.default_rng(0)
    return PreparedDataset(
        name="synthetic-cifar10",
        x_train=rng.integers(0, 256, (count, 3, 32, 32), dtype=np.uint8),
        y_train=rng.integers(0, 10, count),
        x_test=np.zeros((0, 3, 32, 32), np.uint8),
        y_test=np.zeros(0, np.int64),
        mean=np.full(3, 0.5, np.float32),
        std=np.full(3, 0.29, np.float32),
        num_classes=10,
    )


def dataloader_epoch(model, optimizer, loader, device, precision) -> None:
    model.train()
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bfloat16")
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with autocast:
            loss = F.cross_entropy(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def timed(device, run) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    run()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="results/data/mnist5k.npz")
    parser.add_argument(
        "--synthetic-cifar10",
        action="store_true",
        help="random CIFAR-10-shaped images (50,000) instead of --dataset",
    )
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--precision", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--channels-last", action="store_true")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    if args.synthetic_cifar10:
        dataset = synthetic_cifar10()
    else:
        if not Path(args.dataset).exists():
            prepare_dataset(Path(args.dataset).stem, "data", args.dataset)
        dataset = load_prepared(args.dataset)
    device = resolve_device(args.device)
    data = DeviceData(dataset, device, args.channels_last)
    cfg = {"width": args.width}
    n = len(dataset.y_train)
    print(
        f"{dataset.name}: {n} training images, ResNet-18 width {args.width}, {device}, "
        f"{args.threads} threads, {args.precision}, channels_last={args.channels_last}"
    )

    def ours(model, optimizer, epoch, cuda_graph=False):
        train_epoch(
            model,
            optimizer,
            data,
            torch.arange(n),
            batch_size=args.batch_size,
            generator_seed=epoch,
            precision=args.precision,
            cuda_graph=cuda_graph,
        )

    loader = torch.utils.data.DataLoader(
        PILDataset(dataset.x_train, dataset.y_train, dataset.mean, dataset.std),
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=args.num_workers,
        pin_memory=device.type == "cuda",
        persistent_workers=args.num_workers > 0,
    )

    def reference(model, optimizer, epoch):
        dataloader_epoch(model, optimizer, loader, device, args.precision)

    loops = {"ours (tensors on device)": ours}
    if device.type == "cuda":
        loops["ours, step as a CUDA graph"] = partial(ours, cuda_graph=True)
    loops["DataLoader + PIL transforms"] = reference
    rates = {}
    for name, run_epoch in loops.items():
        model = build_model(cfg, data, 0)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        run_epoch(model, optimizer, 0)  # warm-up: allocator, cuDNN autotuning, worker start
        seconds = timed(device, partial(run_epoch, model, optimizer, 1))
        rates[name] = n / seconds
        print(f"{name:>30}: {rates[name]:9.0f} images/s  ({seconds:.2f} s per epoch)")
    reference_rate = rates.pop("DataLoader + PIL transforms")
    for name, rate in rates.items():
        print(f"{'speed-up':>30}: {rate / reference_rate:9.2f}x  ({name})")


if __name__ == "__main__":
    main()
