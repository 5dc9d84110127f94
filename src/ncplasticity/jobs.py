"""The resumable-job helper every training job uses (both experiments).

A job works under ``results/<experiment>/partial/<name>/`` (not a declared output, so
Snakemake never deletes it) and only at the end puts its files where the rule declares them.
Its state is model + optimiser state + intervention states + the rows written so far + the
RNG positions (+ whatever the job adds), saved atomically; its identity is a hash of the
resolved run settings (and whatever else the job's outcome depends on). State left by a job
with another identity is discarded, never resumed.
"""

from __future__ import annotations

import logging
import os
import pickle
import shutil
import socket
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from ncplasticity.runlog import KEPT_LOG
from ncplasticity.study import settings_hash

log = logging.getLogger(__name__)

# A test hook, inert when unset: naming a file, it holds a job right after the save of its first
# finished unit (task, epoch): the job creates the file and waits while it exists. A test then
# acts on a job at a known point (kills it mid-run) however fast the machine is, and releases it
# by removing the file.
HOLD_FILE_ENV = "NCPLASTICITY_TEST_HOLD_FILE"
_HOLD_POLL_S = 0.05


def resolve_device(device: str):
    """``auto`` = CUDA when available, else the CPU; ``cuda`` = CUDA or an immediate error that
    names the node (a GPU job on a node without a usable CUDA would otherwise crawl on the CPU
    for its whole time limit); ``cpu`` = the CPU."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(
            f"device {device!r} requested but CUDA is not usable on node "
            f"{socket.gethostname()}: torch {torch.__version__} (built for CUDA "
            f"{torch.version.cuda or 'none'}) sees {torch.cuda.device_count()} GPU(s); "
            "run on a GPU node, or set `device: cpu` to train on the CPU"
        )
    return torch.device(device)


# glibc's mallopt parameter M_MMAP_THRESHOLD (malloc.h), and the value set: its default.
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 128 << 10


def return_freed_arrays(threshold: int = MMAP_THRESHOLD) -> bool:
    """Have glibc's malloc serve every block of ``threshold`` bytes or more by ``mmap``, so
    that a freed array goes back to the system at once; True where set (glibc), else False.

    glibc starts at this threshold but raises it (up to 32 MiB) whenever a mapped block is
    freed, and from then on serves blocks below it from its heaps, which keep freed memory. A
    continual job allocates and frees the same large arrays every task (probe inputs,
    activations and their float64 copies), and the heaps kept growing: at 60,000 digits a task
    (probe of all) the job's resident memory rose by ~137 MB a task, with no live object
    growing (tracemalloc) and all of it released by ``malloc_trim``. Setting the threshold also
    turns the raising off, and the job's peak stays flat (1.66 GB from task 1 to 8 there).
    """
    import ctypes

    try:
        libc = ctypes.CDLL(None)
        # glibc only (elsewhere mallopt may be absent, or take other parameters).
        if not hasattr(libc, "gnu_get_libc_version"):
            return False
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, int(threshold)))
    except (OSError, AttributeError):
        return False


def save_atomic(obj, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary name, then rename: a kill leaves the old file or the new."""
    import torch

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def publish(files: Iterable[tuple[str | os.PathLike, str | os.PathLike]], partial_dir) -> None:
    """Put each finished (source, target) file in place, then remove ``partial_dir`` (and the
    folders above it that this leaves empty).

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
    try:  # the last job to finish removes the emptied partial/ folders above its own
        os.removedirs(Path(partial_dir).parent)
    except OSError:
        pass


# State entries that load() puts back into their objects instead of returning.
_RESTORED = ("identity", "model", "optimizer", "interventions", "torch_rng")


class ResumableJob:
    """The in-progress directory and saved state of one job.

    ``identity`` (JSON-serialisable) decides whether saved state may be resumed; the state
    file holds ``model``, ``optimizer``, ``interventions``, ``rows`` (one per ``unit``, e.g.
    task or epoch), the torch RNG state and any extra entries the job passes to :meth:`save`.
    """

    def __init__(self, partial_dir: str | os.PathLike, identity: Mapping, unit: str = "row"):
        self.dir = Path(partial_dir)
        self.unit = unit
        self.identity = settings_hash(identity)
        identity_path = self.dir / "identity.txt"
        # The directory may already hold this attempt's own log (runlog.log_to_file): only
        # state or an identity of other settings is discarded.
        left_state = self.dir.exists() and any(p.name != KEPT_LOG for p in self.dir.iterdir())
        if left_state and (
            not identity_path.exists() or identity_path.read_text() != self.identity
        ):
            log.warning("discarding %s: left by a job with other settings", self.dir)
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        identity_path.write_text(self.identity)
        self.state_path = self.dir / "state.pt"
        self._hold_file = os.environ.get(HOLD_FILE_ENV)
        if not self.resuming:
            log.info("started; in-progress state in %s", self.dir)

    @property
    def resuming(self) -> bool:
        return self.state_path.exists()

    def save(self, *, model, optimizer=None, interventions=(), rows=(), **extra) -> None:
        import torch

        save_atomic(
            {
                "identity": self.identity,
                "model": model.state_dict(),
                "optimizer": None if optimizer is None else optimizer.state_dict(),
                "interventions": [i.state_dict() for i in interventions],
                # One bytes object: torch.save's pickler calls back into Python for every
                # object, which made 150 rows of 25 values 4 ms of every task's save.
                "rows": pickle.dumps(list(rows)),
                "torch_rng": torch.get_rng_state(),
                **extra,
            },
            self.state_path,
        )
        if self._hold_file and rows:
            self._hold(len(rows))

    def _hold(self, done: int) -> None:
        """Wait while the hold file exists (see :data:`HOLD_FILE_ENV`); once per attempt."""
        hold_file, self._hold_file = Path(self._hold_file), None
        hold_file.touch()
        log.info("held after saving %s %d: waiting until %s is removed", self.unit, done, hold_file)
        while hold_file.exists():
            time.sleep(_HOLD_POLL_S)

    def load(self, *, model, optimizer=None, interventions=(), map_location="cpu") -> dict | None:
        """Restore model, optimiser, interventions and the torch RNG from the saved state;
        return the state (``rows`` and the extras), or None when there is none."""
        import torch

        if not self.resuming:
            return None
        state = torch.load(self.state_path, map_location=map_location, weights_only=False)
        model.load_state_dict(state["model"])
        if optimizer is not None and state["optimizer"] is not None:
            optimizer.load_state_dict(state["optimizer"])
        interventions = list(interventions)
        if len(state["interventions"]) != len(interventions):
            raise ValueError(f"{self.state_path}: saved intervention states do not match")
        for intervention, saved in zip(interventions, state["interventions"], strict=True):
            intervention.load_state_dict(saved)
        torch.set_rng_state(state["torch_rng"].cpu())
        if isinstance(state["rows"], bytes):  # earlier versions saved the list itself
            state["rows"] = pickle.loads(state["rows"])
        log.info(
            "resumed at %s %d (state of %d done, from %s)",
            self.unit,
            len(state["rows"]) + 1,
            len(state["rows"]),
            self.state_path,
        )
        return {k: v for k, v in state.items() if k not in _RESTORED}

    def publish(self, files: Iterable[tuple[str | os.PathLike, str | os.PathLike]]) -> None:
        publish(files, self.dir)
