"""A job's log: its Python logging, stdout and stderr sent to its log file, opened by the line
naming the software it runs with (:mod:`ncplasticity.provenance`), and the format of its
progress lines (position, rate and remaining time)."""

from __future__ import annotations

import logging
import logging.handlers
import os
import resource
import sys
from pathlib import Path

from ncplasticity.provenance import manifest_json

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
    logging.getLogger(__name__).info("software %s", manifest_json())


def finished_line(job: str, seconds: float) -> str:
    """A job's last line: its wall time (from ``seconds``, which the caller starts when the job
    starts its work) and peak memory (resident set, this process): what a Snakemake
    ``benchmark:`` file would record, without the sampling, which reads /proc/<pid>/smaps_rollup
    twice a second over a job's first 15 s, 35-55 ms of Snakemake's CPU each time for a process
    that holds torch."""
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return f"{job}: finished in {duration(seconds)}, peak memory {peak_mb:.0f} MB"


def duration(seconds: float) -> str:
    """A rounded duration: ``42 s``, ``17 min``, ``1 h 01 min``."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def progress_line(
    job: str,
    step: str,
    done: int,
    total: int,
    seconds_per: float,
    unit: str,
    *,
    at_most: bool = False,
) -> str:
    """A job's progress: ``{job}: {step} {done}/{total}, {seconds_per} s/{unit}, eta {…}``.

    ``at_most``: the job may stop before ``total`` (e.g. at a target accuracy), so the total and
    the remaining time are upper bounds, written ``≤``. E.g. ``continual redo_s2: task 57/150,
    3.1 s/task, eta 5 min`` or ``warm_start plain_s7 from epoch 20: fine-tune epoch 3/≤100,
    41.2 s/epoch, eta ≤1 h 07 min``.
    """
    bound = "≤" if at_most else ""
    rate = f"{seconds_per:.0f}" if seconds_per >= 100 else f"{seconds_per:.3g}"
    remaining = seconds_per * max(total - done, 0)
    return f"{job}: {step} {done}/{bound}{total}, {rate} s/{unit}, eta {bound}{duration(remaining)}"
