"""Run the workflow through the real Snakemake CLI in scratch copies of the repository, and
compare what two runs wrote.  Shared by tests/test_workflow.py and tests/test_cluster.py, which
reuse one local run of configs/smoke.yaml per pytest session (2 shared cores: run it once)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np

REPO = Path(__file__).resolve().parents[2]
SMOKE_CONFIG = "configs/smoke.yaml"


def scratch_copy(dest: Path) -> Path:
    """Copy the working tree (tracked and untracked, not ignored: no results/, no .snakemake/)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return dest


def snakemake(workdir: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run `snakemake ARGS` in workdir; stdout and stderr together in `.stdout`."""
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )


def check_success(result: subprocess.CompletedProcess) -> None:
    if result.returncode != 0:
        raise AssertionError(
            f"`{' '.join(map(str, result.args[1:]))}` exited with {result.returncode}:\n"
            + result.stdout[-6000:]
        )


def local_smoke_run(tmp_path_factory) -> Path:
    """The scratch copy in which configs/smoke.yaml ran to completion with the local executor,
    once per pytest session whichever test module asks first."""
    workdir = tmp_path_factory.getbasetemp() / "smoke-local"
    done = workdir / ".smoke-run-complete"
    failed = workdir / ".smoke-run-failed"
    if failed.exists():
        raise AssertionError(
            f"the local smoke run failed earlier in this session:\n{failed.read_text()}"
        )
    if not done.exists():
        scratch_copy(workdir)
        result = snakemake(workdir, "--cores", "2", "--configfile", SMOKE_CONFIG)
        if result.returncode != 0:
            failed.write_text(result.stdout[-6000:])
        check_success(result)
        done.touch()
    return workdir


def result_files(workdir: Path, pattern: str) -> dict[str, Path]:
    """Files under results/ matching a glob pattern, keyed by their path relative to workdir."""
    return {
        str(path.relative_to(workdir)): path for path in sorted((workdir / "results").glob(pattern))
    }


def feature_files(workdir: Path) -> dict[str, Path]:
    return result_files(workdir, "*/features/*.h5")


def metrics_tables(workdir: Path) -> dict[str, Path]:
    return result_files(workdir, "*/metrics/*.tsv")


def _h5_contents(path: Path) -> dict[str, object]:
    """Every dataset's array and every snapshot's attributes (order and coordinates)."""
    contents = {}
    with h5py.File(path, "r") as file:

        def visit(name, item):
            if isinstance(item, h5py.Dataset):
                contents[name] = item[()]
            elif name.startswith("snapshots/"):
                contents[name + "@attrs"] = {
                    key: np.asarray(value).tolist() for key, value in item.attrs.items()
                }

        file.visititems(visit)
    return contents


def assert_same_features(expected: Path, actual: Path) -> None:
    """Same datasets, bit for bit (dtype included), and same snapshot attributes."""
    want, got = _h5_contents(expected), _h5_contents(actual)
    assert sorted(got) == sorted(want), f"{actual}: other datasets than {expected}"
    for name, value in want.items():
        if name.endswith("@attrs"):
            assert got[name] == value, f"{actual}: attributes of {name} differ from {expected}"
        else:
            assert got[name].dtype == value.dtype, f"{actual}: dtype of {name} differs"
            assert np.array_equal(got[name], value, equal_nan=value.dtype.kind == "f"), (
                f"{actual}: {name} differs from {expected}"
            )
