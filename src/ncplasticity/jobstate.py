"""In-progress state of resumable training jobs: atomic saves, and publishing finished files.

A job works under ``results/<experiment>/partial/<run>/`` (not a declared output, so
Snakemake never deletes it) and only at the end puts its files where the rule declares them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path


def save_atomic(obj, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary name, then rename: a kill leaves the old file or the new."""
    import torch

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def publish(files: Iterable[tuple[str | os.PathLike, str | os.PathLike]], partial_dir) -> None:
    """Put each finished (source, target) file in place, then remove ``partial_dir``.

    Targets are hard links (copies where the file system has none), and the in-progress
    directory goes last: a job killed half-way through keeps every file there, and its rerun
    (whose half-published outputs Snakemake has removed) publishes them again.
    """
    for source, target in files:
        target = Path(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)
        try:
            os.link(source, target)
        except OSError:
            shutil.copy2(source, target)
    shutil.rmtree(partial_dir)
