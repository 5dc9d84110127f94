"""One pending scheduler wake-up at a time in Snakemake 9's job scheduler.

With a job-rate limit (``--max-jobs-per-timespan``, always set: its default is 100/1s), every
pass of Snakemake's scheduling loop that finds jobs still waiting arms a ``threading.Timer`` to
wake the loop once the timespan has passed (``JobScheduler._schedule_reevalutation``, sic). A
pass woken by a timer arms the next one, and a pass woken by a finished job arms one more: each
job that finishes while others wait starts a chain of its own. Over the open-questions study
(462 jobs on 2 cores) 228 chains were alive after 229 finished jobs, waking the loop 46 times a
second, and Snakemake itself took a third of a core from the jobs, rising as jobs finished
(the extra passes are snakemake/snakemake pull request #3744, "Do not release lock when job
finished"; the code is ``JobScheduler.schedule`` and ``_schedule_reevalutation`` in
``snakemake/scheduling/job_scheduler.py``). The timers are also non-daemon threads, so
Snakemake waits for the last one before it exits.

:func:`install` replaces that method so that at most one wake-up is pending: a request while
one is armed is dropped, since the armed one wakes the loop and that pass asks again if jobs
still wait. The flag is cleared before the wake-up is delivered, so the pass it causes can
always arm the next one and the chain never breaks. The timer is a daemon thread. The Snakefile
loads this file by its path and calls :func:`install`; where Snakemake has no such method
(another version), nothing changes. It lives under ``workflow/`` because it is Snakemake glue:
no module of the ``ncplasticity`` package imports snakemake.
"""

from __future__ import annotations

import threading

_LOCK = threading.Lock()


def schedule_reevaluation(scheduler, delay: float) -> None:
    """Wake ``scheduler``'s loop (release its ``_open_jobs`` semaphore) after ``delay``
    seconds, unless a wake-up is already pending."""
    with _LOCK:
        if getattr(scheduler, "_ncplasticity_wakeup_pending", False):
            return
        scheduler._ncplasticity_wakeup_pending = True

    def wake():
        with _LOCK:
            scheduler._ncplasticity_wakeup_pending = False
        scheduler._open_jobs.release()

    timer = threading.Timer(delay, wake)
    timer.daemon = True
    timer.start()


def install() -> bool:
    """Patch Snakemake's job scheduler (idempotent); False where its internals differ."""
    try:
        from snakemake.scheduling.job_scheduler import JobScheduler
    except ImportError:
        return False
    if not hasattr(JobScheduler, "_schedule_reevalutation"):
        return False
    JobScheduler._schedule_reevalutation = schedule_reevaluation
    return True
