"""HDF5 feature store: round trip, resume, crash safety, and files that are not feature stores."""

import json
import logging
import os
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

from ncplasticity import features as store
from ncplasticity.features import (
    FeatureReader,
    FeatureStoreError,
    FeatureWriter,
    SnapshotInfo,
    coordinate_columns,
)
from ncplasticity.provenance import software_manifest

CONFIG = {"lr": 0.01, "seeds": [1, 2]}


def snapshot(seed, n=300, d=20, c=4):
    rng = np.random.default_rng(seed)
    return (
        rng.normal(size=(n, d)).astype(np.float32) * 10,
        rng.integers(0, c, n),
        rng.normal(size=(c, d)),
        rng.normal(size=c),
    )


def writer(path, **kwargs):
    kwargs = {"experiment": "continual", "run_id": "r1", "seed": 3, "config": CONFIG} | kwargs
    return FeatureWriter(path, **kwargs)


def write_tasks(path, count, **kwargs):
    with writer(path, **kwargs) as w:
        for task in range(count):
            w.add_snapshot(f"task{task:04d}", *snapshot(task), task=task, phase="train")


@pytest.fixture
def small_chunks(monkeypatch):
    """Storage chunks of 640 bytes (8 or 16 rows) and read blocks of 48 rows, so every path
    crosses chunks."""
    monkeypatch.setattr(store, "_CHUNK_BYTES", 16 * 20 * 2)
    monkeypatch.setattr(store, "_READ_ELEMENTS", 3 * 16 * 20)


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_round_trip(tmp_path, small_chunks, dtype):
    path = tmp_path / "run.h5"
    with writer(path, feature_dtype=dtype) as w:
        w.add_snapshot("epoch0005", *snapshot(0), epoch=5, phase="warmup", split="train")
        w.add_snapshot("epoch0010", *snapshot(1), epoch=10, phase="warmup", split="train")
        assert w.num_snapshots == 2

    with FeatureReader(path) as r:
        software = json.loads(r.attrs.pop("software"))
        assert r.attrs == {
            "schema_version": 1,
            "experiment": "continual",
            "run_id": "r1",
            "seed": 3,
            "config": json.dumps(CONFIG, sort_keys=True),
        }
        assert software == software_manifest()
        coords = {"epoch": 10, "phase": "warmup", "split": "train"}
        assert r.snapshots()[1] == SnapshotInfo("epoch0010", 1, coords, 300, 20, 4)
        assert [info.name for info in r.snapshots()] == ["epoch0005", "epoch0010"]
        features, labels, weight, bias = r.read("epoch0010")
        expected = snapshot(1)
        assert features.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(features, expected[0].astype(dtype))
        np.testing.assert_array_equal(labels, expected[1])
        np.testing.assert_array_equal(weight, expected[2].astype(np.float32))
        np.testing.assert_array_equal(bias, expected[3].astype(np.float32))
        blocks = list(r.iter_chunks("epoch0010"))
        assert len(blocks) == 7  # 300 rows in blocks of 48
        np.testing.assert_array_equal(np.concatenate([b[0] for b in blocks]), features)
        np.testing.assert_array_equal(np.concatenate([b[1] for b in blocks]), labels)
        with pytest.raises(KeyError, match="epoch0015"):
            r.read("epoch0015")
    with h5py.File(path) as raw:  # the contract of DESIGN §4, read without our code
        dataset = raw["snapshots/epoch0005/features"]
        assert dataset.chunks == (640 // (20 * np.dtype(dtype).itemsize), 20)
        assert dataset.compression == "gzip"
        assert raw["snapshots/epoch0005"].attrs["order"] == 0


def test_config_may_be_given_as_json_text(tmp_path):
    write_tasks(tmp_path / "a.h5", 1, config=json.dumps(CONFIG))
    with FeatureReader(tmp_path / "a.h5") as r:
        assert json.loads(r.attrs["config"]) == CONFIG
    with pytest.raises(ValueError, match="JSON"):
        writer(tmp_path / "b.h5", config="{not json")


def test_resume_in_append_mode_and_truncate(tmp_path):
    path = tmp_path / "run.h5"
    write_tasks(path, 3)
    with writer(path, mode="a") as w:
        assert w.num_snapshots == 3
        w.truncate(2)  # the checkpoint was taken after two snapshots
        assert w.num_snapshots == 2
        w.add_snapshot("task0002", *snapshot(7), task=2)
        with pytest.raises(FeatureStoreError, match="holds 3"):
            w.truncate(4)
    with FeatureReader(path) as r:
        assert [(i.name, i.order) for i in r.snapshots()] == [
            ("task0000", 0),
            ("task0001", 1),
            ("task0002", 2),
        ]
        np.testing.assert_array_equal(r.read("task0002")[1], snapshot(7)[1])


@pytest.mark.parametrize(
    "change", [{"run_id": "r2"}, {"seed": 4}, {"experiment": "warm_start"}, {"config": {}}]
)
def test_resume_refuses_a_file_of_another_run(tmp_path, change):
    path = tmp_path / "run.h5"
    write_tasks(path, 1)
    with pytest.raises(FeatureStoreError, match=f"{path}.*{next(iter(change))}"):
        writer(path, mode="a", **change)


def test_resume_needs_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        writer(tmp_path / "missing.h5", mode="a")


def test_float16_overflow_is_stored_as_float32(tmp_path, caplog):
    path = tmp_path / "run.h5"
    features, labels, weight, bias = snapshot(0)
    features[0, 0] = 1e6
    with caplog.at_level(logging.WARNING), writer(path) as w:
        w.add_snapshot("task0000", features, labels, weight, bias)
    assert "overflows float16" in caplog.text
    with FeatureReader(path) as r:
        stored = r.read("task0000")[0]
    assert stored.dtype == np.float32 and stored[0, 0] == 1e6


@pytest.mark.parametrize(
    "args, message",
    [
        (lambda f, y, w, b: ("x/y", f, y, w, b), "invalid"),
        (lambda f, y, w, b: ("task0000", f, y, w, b), "duplicate"),
        (lambda f, y, w, b: ("s", f, y[1:], w, b), "labels"),
        (lambda f, y, w, b: ("s", f[:0], y[:0], w, b), "N, D > 0"),
        (lambda f, y, w, b: ("s", f, y, w[:, 1:], b), "weight"),
        (lambda f, y, w, b: ("s", f, y.astype(float), w, b), "integers"),
    ],
)
def test_add_snapshot_rejects_bad_input(tmp_path, args, message):
    with writer(tmp_path / "run.h5") as w:
        w.add_snapshot("task0000", *snapshot(0))
        with pytest.raises(ValueError, match=message):
            w.add_snapshot(*args(*snapshot(1)))
        with pytest.raises(ValueError, match="not a scalar"):
            w.add_snapshot("s", *snapshot(1), task=[1, 2])
        assert w.num_snapshots == 1


def test_write_failure_names_the_file_and_keeps_earlier_snapshots(tmp_path, monkeypatch):
    path = tmp_path / "run.h5"
    create_dataset = h5py.Group.create_dataset

    def failing(self, name, *args, **kwargs):
        if name == "weight":  # after the features of the snapshot were written
            raise OSError(28, "No space left on device")
        return create_dataset(self, name, *args, **kwargs)

    with writer(path) as w:
        w.add_snapshot("task0000", *snapshot(0), task=0)
        monkeypatch.setattr(h5py.Group, "create_dataset", failing)
        with pytest.raises(OSError, match=rf"{path}: writing snapshot 'task0001' failed"):
            w.add_snapshot("task0001", *snapshot(1), task=1)
        monkeypatch.undo()
        assert w.num_snapshots == 1
        w.add_snapshot("task0001", *snapshot(1), task=1)  # the half-written group is gone
    with FeatureReader(path) as r:
        assert [i.name for i in r.snapshots()] == ["task0000", "task0001"]
        np.testing.assert_array_equal(r.read("task0000")[1], snapshot(0)[1])


def test_killed_writer_leaves_earlier_snapshots_readable(tmp_path):
    path = tmp_path / "run.h5"
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from test_features import snapshot, writer
        w = writer({str(path)!r})
        for task in range(2):
            w.add_snapshot(f"task{{task:04d}}", *snapshot(task), task=task)
        os.kill(os.getpid(), signal.SIGKILL)  # no close, no atexit
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert result.returncode == -9, result.stderr.decode()
    with FeatureReader(path) as r:
        assert [i.name for i in r.snapshots()] == ["task0000", "task0001"]
        np.testing.assert_array_equal(r.read("task0001")[0], snapshot(1)[0].astype(np.float16))
    with writer(path, mode="a") as w:  # and the run can resume into it
        assert w.num_snapshots == 2


def test_half_written_snapshot_is_skipped_then_removed_on_resume(tmp_path, caplog):
    path = tmp_path / "run.h5"
    write_tasks(path, 2)
    with h5py.File(path, "a") as raw:  # a group whose `order` was never written
        raw["snapshots"].create_group("task0002").create_dataset("features", data=np.zeros((2, 2)))
    with caplog.at_level(logging.WARNING), FeatureReader(path) as r:
        assert [i.name for i in r.snapshots()] == ["task0000", "task0001"]
    assert "task0002" in caplog.text
    with writer(path, mode="a") as w:
        w.add_snapshot("task0002", *snapshot(2), task=2)
    with FeatureReader(path) as r:
        assert r.snapshots()[-1].order == 2


@pytest.mark.parametrize("keep", [0.5, 0.99])
def test_truncated_file_is_an_error_naming_it(tmp_path, keep):
    path = tmp_path / "run.h5"
    write_tasks(path, 3)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(FeatureStoreError, match=str(path)) as error:
        with FeatureReader(path) as r:
            for info in r.snapshots():
                r.read(info.name)
    # Snakemake would not rebuild it by itself (it exists): the message says how.
    assert f"Rebuild it with `snakemake --force {path}`" in str(error.value)


def test_foreign_files_are_errors_naming_them(tmp_path):
    text = tmp_path / "notes.h5"
    text.write_text("not HDF5 at all\n")
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as raw:
        raw["data"] = np.arange(3)
    future = tmp_path / "future.h5"
    write_tasks(future, 1)
    with h5py.File(future, "a") as raw:
        raw.attrs["schema_version"] = 2
    for path, message in [
        (text, "not a readable HDF5"),
        (other, "no schema_version"),
        (future, "schema_version 2"),
    ]:
        with pytest.raises(FeatureStoreError, match=f"{path}.*{message}"):
            FeatureReader(path)
    with pytest.raises(FileNotFoundError, match="absent.h5"):
        FeatureReader(tmp_path / "absent.h5")


def test_coordinate_columns_fixed_order_then_others():
    infos = [
        SnapshotInfo("a", 0, {"phase": "x", "lam": 0.1, "task": 1}, 1, 1, 2),
        SnapshotInfo("b", 1, {"epoch": 2, "width": 4}, 1, 1, 2),
    ]
    assert coordinate_columns(infos) == ["task", "epoch", "phase", "lam", "width"]
