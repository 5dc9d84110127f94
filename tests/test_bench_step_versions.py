"""benchmarks/bench_step_versions.py copies the package at a revision under a name of its own:
the copy must import beside the installed package and share nothing with it."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    # As when run as a script: the benchmarks' folder is on the path (it imports its sibling).
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        spec = importlib.util.spec_from_file_location(
            "bench_step_versions", REPO / "benchmarks" / "bench_step_versions.py"
        )
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    return module


@pytest.mark.parametrize("revision", ["HEAD", "WORKTREE"])
def test_package_copy_is_renamed_and_importable(bench, revision, tmp_path, monkeypatch):
    alias = f"ncp_copy_{revision.lower()}"
    bench.package_copy(revision, alias, tmp_path)
    sources = list((tmp_path / alias).rglob("*.py"))
    assert (tmp_path / alias / "continual" / "compiled" / "kernel.py") in sources
    for path in sources:
        assert not re.search(r"\bncplasticity\b", path.read_text()), path
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        mlp, train_epoch = bench.load_version(alias)
        assert mlp.__module__ == f"{alias}.networks"
        assert train_epoch.__module__ == f"{alias}.continual.loop"
    finally:
        for name in [m for m in sys.modules if m == alias or m.startswith(f"{alias}.")]:
            del sys.modules[name]
