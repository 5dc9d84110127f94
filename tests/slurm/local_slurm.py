"""A single-node SLURM (munge, slurmctld, slurmd) on localhost, for the cluster test.

Needs root and the Debian packages `slurm-wlm` and `munge`.  The configuration goes to
/etc/slurm/ (where every SLURM command and job step looks for it); spool, logs and pid files
go to a fresh state directory.  Only daemons started here are stopped here, by their pid.
There is one such SLURM per machine: :func:`running` holds a lock while a test session uses
it, so a second session waits for the first instead of stopping its daemons.

By hand:  python tests/slurm/local_slurm.py up   |   python tests/slurm/local_slurm.py down
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONF_DIR = Path("/etc/slurm")
# Marks the configuration files as ours, so a real cluster's files are never overwritten.
MARKER = "written by tests/slurm/local_slurm.py"
STATE_DIR = Path("/var/tmp/ncplasticity-slurm")
# Outside STATE_DIR, which every start empties.
LOCK_FILE = Path("/var/tmp/ncplasticity-slurm.lock")
MUNGE_RUN_DIR = Path("/run/munge")
REQUIRED_PROGRAMS = ("munged", "munge", "slurmctld", "slurmd", "sinfo", "sbatch", "squeue")
# Placeholder GPUs on the node; enough for every concurrently running ResNet job.
NUM_GPUS = 4


def why_unavailable() -> str | None:
    """None when a local SLURM can be started here, else the reason it cannot."""
    if os.geteuid() != 0:
        return "starting slurmctld/slurmd/munged needs root"
    missing = [p for p in REQUIRED_PROGRAMS if shutil.which(p) is None]
    if missing:
        return (
            f"programs {', '.join(missing)} not found "
            "(apt-get install -y slurm-wlm munge; .ci/run does this)"
        )
    conf = CONF_DIR / "slurm.conf"
    if conf.exists() and MARKER not in conf.read_text():
        return f"{conf} belongs to another SLURM installation; not overwriting it"
    return None


def _run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, check=check)


def _munge_works() -> bool:
    encoded = _run("munge", "-n", check=False)
    if encoded.returncode != 0:
        return False
    decoded = subprocess.run(["unmunge"], input=encoded.stdout, capture_output=True, text=True)
    return decoded.returncode == 0


def _start_munged() -> bool:
    """Start munged unless one already answers; True when it was started here."""
    if _munge_works():
        return False
    MUNGE_RUN_DIR.mkdir(parents=True, exist_ok=True)
    shutil.chown(MUNGE_RUN_DIR, "munge", "munge")
    _run("runuser", "-u", "munge", "--", "munged")
    _wait_for(_munge_works, 20, "munged to answer")
    return True


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"local SLURM: timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)


def _memory_mb() -> int:
    with open("/proc/meminfo") as meminfo:
        total_kb = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal"))
    return total_kb // 1024


def _write_config(state_dir: Path) -> None:
    values = {
        "state": state_dir,
        "ctld_port": 6817,
        "slurmd_port": 6818,
        "cpus": os.cpu_count(),
        "memory_mb": _memory_mb(),
        "gpus": NUM_GPUS,
        "last_gpu": NUM_GPUS - 1,
    }
    for index in range(NUM_GPUS):
        (state_dir / f"gpu{index}").touch()
    CONF_DIR.mkdir(parents=True, exist_ok=True)
    for name in ("slurm.conf", "gres.conf"):
        template = (HERE / f"{name}.template").read_text()
        (CONF_DIR / name).write_text(template.format(**values))


def _node_state() -> str:
    result = _run("sinfo", "--noheader", "--Node", "--format=%t", check=False)
    return result.stdout.strip() if result.returncode == 0 else ""


def start(timeout: float = 60) -> None:
    """Bring up munge, slurmctld and slurmd; return once the node is idle."""
    reason = why_unavailable()
    if reason:
        raise RuntimeError(f"local SLURM cannot start: {reason}")
    stop()
    shutil.rmtree(STATE_DIR, ignore_errors=True)
    (STATE_DIR / "ctld").mkdir(parents=True)
    (STATE_DIR / "d").mkdir()
    started_munged = _start_munged()
    (STATE_DIR / "munged.started").write_text("1" if started_munged else "0")
    _write_config(STATE_DIR)
    # -c: start from a clean state (no jobs of an earlier session).
    _run("slurmctld", "-c")
    _run("slurmd", "-N", "localhost")
    try:
        _wait_for(lambda: _node_state() == "idle", timeout, "node localhost to become idle")
    except RuntimeError as error:
        logs = "\n".join(
            f"--- {log}\n{log.read_text()[-3000:]}"
            for log in (STATE_DIR / "slurmctld.log", STATE_DIR / "slurmd.log")
            if log.exists()
        )
        stop()
        raise RuntimeError(f"{error}\n{logs}") from None


@contextmanager
def running(wait: float = 1200):
    """The local SLURM, started and stopped around the block, used by one session at a time:
    waits up to ``wait`` seconds for another session's block to end."""
    with open(LOCK_FILE, "w") as lock:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"local SLURM: another session has held {LOCK_FILE} for over "
                        f"{wait:.0f} s; is a test run still using it?"
                    ) from None
                time.sleep(1)
        start()
        try:
            yield
        finally:
            stop()


def _stop_pidfile(pidfile: Path, timeout: float = 20) -> None:
    if not pidfile.exists():
        return
    pid = int(pidfile.read_text().split()[0])
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)


def stop() -> None:
    """Cancel remaining jobs and stop the daemons started by `start`; remove our config."""
    try:
        if shutil.which("scancel") and _node_state():
            _run("scancel", "--full", "--user", "root", check=False)
            _wait_for(
                lambda: not _run("squeue", "--noheader", check=False).stdout.strip(), 30, "jobs"
            )
    finally:
        _stop_daemons()


def _stop_daemons() -> None:
    _stop_pidfile(STATE_DIR / "slurmd.pid")
    _stop_pidfile(STATE_DIR / "slurmctld.pid")
    munged_flag = STATE_DIR / "munged.started"
    if munged_flag.exists() and munged_flag.read_text() == "1":
        _stop_pidfile(MUNGE_RUN_DIR / "munged.pid")
        munged_flag.write_text("0")
    for name in ("slurm.conf", "gres.conf"):
        path = CONF_DIR / name
        if path.exists() and MARKER in path.read_text():
            path.unlink()


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in ("up", "down"):
        sys.exit("usage: local_slurm.py up|down")
    if sys.argv[1] == "up":
        start()
        print(f"local SLURM is up; logs and spool in {STATE_DIR}")
    else:
        stop()
