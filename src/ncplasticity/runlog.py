"""Send a job's Python logging, stdout and stderr to its log file."""

from __future__ import annotations

import logging
import os
import sys


def log_to_file(path: str | os.PathLike) -> None:
    """Route logging (INFO and above), ``print`` output and tracebacks to ``path``."""
    stream = open(path, "a", buffering=1)  # noqa: SIM115 - lives as long as the job
    # File descriptors too, so output of compiled code (numba, HDF5, torch) lands there as well.
    os.dup2(stream.fileno(), 1)
    os.dup2(stream.fileno(), 2)
    sys.stdout = sys.stderr = stream
    logging.basicConfig(
        stream=stream,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
