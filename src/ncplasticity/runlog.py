"""Send a job's Python logging, stdout and stderr to its log file."""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
from pathlib import Path

# A training job's copy of its log lines, in its in-progress directory.
KEPT_LOG = "job.log"


class _KeptLog(logging.handlers.WatchedFileHandler):
    """Log lines also written to the job's in-progress directory, which Snakemake leaves alone
    (it deletes a job's log before rerunning it). Follows the directory being discarded and
    made anew (state of other settings); silent once the finished job has removed it."""

    def emit(self, record):
        if Path(self.baseFilename).parent.is_dir():
            super().emit(record)


def log_to_file(path: str | os.PathLike, partial_dir: str | os.PathLike | None = None) -> None:
    """Route logging (INFO and above), ``print`` output and tracebacks to ``path``.

    With ``partial_dir`` (a resumable training job's in-progress directory): the lines of the
    earlier attempts kept there are written back first, so a resumed job's log holds the lines
    from before the kill, and the logging of this attempt is kept there too.
    """
    stream = open(path, "a", buffering=1)  # noqa: SIM115 - lives as long as the job
    # File descriptors too, so output of compiled code (numba, HDF5, torch) lands there as well.
    os.dup2(stream.fileno(), 1)
    os.dup2(stream.fileno(), 2)
    sys.stdout = sys.stderr = stream
    handlers = [logging.StreamHandler(stream)]
    if partial_dir is not None:
        kept = Path(partial_dir) / KEPT_LOG
        if kept.exists():
            stream.write(kept.read_text())
        kept.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(_KeptLog(kept))
    logging.basicConfig(
        handlers=handlers,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
