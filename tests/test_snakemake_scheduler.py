"""The scheduler patch: one pending wake-up of Snakemake's scheduling loop at a time, and the
chain of wake-ups never breaks."""

import importlib.util
import threading
import time
from pathlib import Path
from types import SimpleNamespace

from snakemake.scheduling.job_scheduler import JobScheduler

PATCH = Path(__file__).resolve().parents[1] / "workflow/lib/snakemake_scheduler.py"
_spec = importlib.util.spec_from_file_location("snakemake_scheduler", PATCH)
snakemake_scheduler = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(snakemake_scheduler)


def _wakeups(scheduler) -> int:
    count = 0
    while scheduler._open_jobs.acquire(blocking=False):
        count += 1
    return count


def test_requests_while_one_is_pending_are_dropped_and_the_chain_goes_on():
    scheduler = SimpleNamespace(_open_jobs=threading.Semaphore(0))
    threads_before = threading.active_count()
    for _ in range(50):  # fifty passes of the loop, e.g. fifty finished jobs
        snakemake_scheduler.schedule_reevaluation(scheduler, 0.2)
    assert threading.active_count() == threads_before + 1
    timers = [t for t in threading.enumerate() if isinstance(t, threading.Timer)]
    assert timers and all(t.daemon for t in timers)  # never holds Snakemake's exit
    time.sleep(0.5)
    assert _wakeups(scheduler) == 1
    # The pass that wake-up caused asks again: a new wake-up is armed (the chain goes on).
    snakemake_scheduler.schedule_reevaluation(scheduler, 0.05)
    time.sleep(0.3)
    assert _wakeups(scheduler) == 1


def test_the_snakefile_installs_it_on_snakemakes_scheduler():
    assert snakemake_scheduler.install()
    assert JobScheduler._schedule_reevalutation is snakemake_scheduler.schedule_reevaluation


def test_the_snakefile_loads_it_from_workflow_lib_and_no_package_module_imports_snakemake():
    snakefile = (PATCH.parents[2] / "Snakefile").read_text()
    assert "workflow/lib/snakemake_scheduler.py" in snakefile and "install()" in snakefile
    package = PATCH.parents[2] / "src/ncplasticity"
    importers = [
        path.relative_to(package)
        for path in package.rglob("*.py")
        if "import snakemake" in path.read_text() or "from snakemake" in path.read_text()
    ]
    assert importers == []
