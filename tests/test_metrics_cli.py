"""The metrics command line and the `nc_metrics` rule: streamed results equal in-memory ones."""

import functools
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from table_rows import read_rows

from ncplasticity import features as store
from ncplasticity.features import FeatureReader, FeatureWriter
from ncplasticity.nc import METRIC_KEYS, collapse_metrics, main, streaming_collapse_metrics

REPO = Path(__file__).resolve().parents[1]


def write_run(path, dtype="float32", snapshots=3, nan_in=None):
    rng = np.random.default_rng(0)
    means = rng.normal(size=(5, 16)) * 3
    with FeatureWriter(
        path, experiment="warm_start", run_id="plain_seed7", seed=7, config={}, feature_dtype=dtype
    ) as w:
        for epoch in range(snapshots):
            labels = rng.permutation(np.arange(1000) % 5)
            features = 50.0 + means[labels] + rng.normal(size=(1000, 16)) / (epoch + 1)
            if epoch == nan_in:
                features[17, 3] = np.nan
            coords = {"epoch": 5 * epoch, "phase": "warmup"} | ({"lam": 0.05} if epoch else {})
            w.add_snapshot(f"epoch{5 * epoch:04d}", features, labels, means, np.zeros(5), **coords)


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_streaming_cli_matches_in_memory_metrics(tmp_path, monkeypatch, dtype):
    # Small storage chunks and read blocks, so the file is streamed in many pieces.
    monkeypatch.setattr(store, "_CHUNK_BYTES", 2048)
    monkeypatch.setattr(store, "_READ_ELEMENTS", 4096)
    path = tmp_path / "run.h5"
    write_run(path, dtype)
    assert main([str(path), "-o", str(tmp_path / "m.tsv")]) == 0
    rows = read_rows(tmp_path / "m.tsv")
    header = (tmp_path / "m.tsv").read_text().splitlines()[0].split("\t")
    assert header == ["snapshot", "order", "epoch", "phase", "lam", "n", "d", "c", *METRIC_KEYS]
    assert [row["snapshot"] for row in rows] == ["epoch0000", "epoch0005", "epoch0010"]
    assert math.isnan(rows[0]["lam"]) and rows[1]["lam"] == 0.05
    assert (rows[2]["order"], rows[2]["epoch"], rows[2]["n"], rows[2]["d"], rows[2]["c"]) == (
        2,
        10,
        1000,
        16,
        5,
    )
    with FeatureReader(path) as reader:
        for row in rows:
            expected = collapse_metrics(*reader.read(row["snapshot"]))
            for key in METRIC_KEYS:
                assert row[key] == pytest.approx(expected[key], rel=1e-9), key
    assert rows[0]["nc1"] > rows[2]["nc1"] > 0  # noise shrinks epoch by epoch


def test_a_snapshot_of_one_block_is_read_once_with_the_streamed_values(tmp_path, monkeypatch):
    """Every continual probe fits one read block: both passes reuse one read, and the metrics
    equal, bit for bit, those of the two passes each reading it."""
    path = tmp_path / "run.h5"
    write_run(path)
    reads = []
    iter_chunks = FeatureReader.iter_chunks

    def counted(self, name):
        reads.append(name)
        return iter_chunks(self, name)

    monkeypatch.setattr(FeatureReader, "iter_chunks", counted)
    assert main([str(path), "-o", str(tmp_path / "m.tsv")]) == 0
    rows = read_rows(tmp_path / "m.tsv")
    assert reads == [row["snapshot"] for row in rows]  # once each
    with FeatureReader(path) as reader:
        for row in rows:
            weight, bias = reader.read_classifier(row["snapshot"])
            chunks = functools.partial(iter_chunks, reader, row["snapshot"])
            expected = streaming_collapse_metrics(chunks, weight, bias)
            assert {key: row[key] for key in METRIC_KEYS} == expected


def test_cli_writes_to_standard_output_with_dash(tmp_path):
    path = tmp_path / "run.h5"
    write_run(path)
    assert main([str(path), "-o", str(tmp_path / "m.tsv")]) == 0
    result = subprocess.run(
        [sys.executable, "-m", "ncplasticity.nc", str(path), "-o", "-"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout == (tmp_path / "m.tsv").read_text()
    assert "wrote 3 snapshots to stdout" in result.stderr
    assert not (tmp_path / "-").exists()


def test_non_finite_snapshot_gets_nan_metrics_and_a_warning(tmp_path, caplog):
    path = tmp_path / "run.h5"
    write_run(path, nan_in=1)
    main([str(path), "-o", str(tmp_path / "m.tsv")])
    rows = read_rows(tmp_path / "m.tsv")
    assert all(math.isnan(rows[1][key]) for key in METRIC_KEYS)
    assert math.isfinite(rows[0]["nc1"]) and math.isfinite(rows[2]["nc1"])
    assert "epoch0005: features contain NaN or inf (first at sample 17)" in caplog.text


def test_cli_errors_name_the_file_and_exit_nonzero(tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_text("no")
    result = subprocess.run(
        [sys.executable, "-m", "ncplasticity.nc", str(bad), "-o", str(tmp_path / "m.tsv")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert f"error: {bad} is not a readable HDF5 feature store" in result.stderr
    assert not (tmp_path / "m.tsv").exists()


def test_cli_never_imports_torch(tmp_path):
    path = tmp_path / "run.h5"
    write_run(path, snapshots=1)
    code = (
        "import sys, runpy; sys.argv = ['nc', sys.argv[1], '-o', sys.argv[2]]\n"
        "try:\n    runpy.run_module('ncplasticity.nc', run_name='__main__')\n"
        "except SystemExit as exit:\n    assert exit.code == 0\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code, str(path), str(tmp_path / "m.tsv")], check=True)
    assert len(read_rows(tmp_path / "m.tsv")) == 1


@pytest.mark.slow
def test_nc_metrics_rule_through_snakemake(tmp_path):
    features = tmp_path / "results/warm_start/features/plain_seed7.h5"
    features.parent.mkdir(parents=True)
    write_run(features)
    target = "results/warm_start/metrics/plain_seed7.tsv"
    subprocess.run(
        [shutil.which("snakemake") or "snakemake", target, "--cores", "1"]
        + ["--snakefile", str(REPO / "Snakefile"), "-d", str(tmp_path)]
        + ["--configfile", str(REPO / "configs/smoke.yaml")],
        check=True,
        capture_output=True,
    )
    rows = read_rows(tmp_path / target)
    assert [row["order"] for row in rows] == [0, 1, 2]
    log = (tmp_path / "results/logs/nc_metrics/warm_start/plain_seed7.log").read_text()
    assert "wrote 3 snapshots" in log
