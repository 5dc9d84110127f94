"""A continual job's peak memory does not grow with its tasks (issue 27, deliverable 5).

Without :func:`ncplasticity.jobs.return_freed_arrays`, glibc's malloc kept every task's freed
probe arrays in its heaps: this very job (25 tasks of 4,000 digits, a probe of all of them, the
paper's 100-100-100 network) grew by ~4 MB a task (~100 MB from task 5 to task 25; with it
~1.5 MB), and at 60,000 digits a task by ~137 MB a task.
"""

import json
import platform
import subprocess
import sys

import pytest

from ncplasticity.continual.study import memory_mb

# Runs the job in a process of its own (its peak is its own), printing the peak resident
# memory (KiB) after each task's measures.
JOB = """
import json, resource, sys
import ncplasticity.continual.job as job

peaks, task_row = [], job.task_row

def measured(*args, **kwargs):
    row = task_row(*args, **kwargs)
    peaks.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return row

job.task_row = measured
settings, dataset, out = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
job.train_run(settings, 1, "plain_s1", dataset, f"{out}/f.h5", f"{out}/log.tsv", f"{out}/partial")
print(json.dumps(peaks))
"""
SETTINGS = {
    "dataset": "mnist5k",
    "examples_per_task": None,  # all 4,000
    "num_tasks": 25,
    "probe_size": None,  # all of them
    "feature_dtype": "float16",
    "network": {"hidden_sizes": [100, 100, 100], "layer_norm": False},
    "optimizer": {"name": "sgd", "lr": 0.01, "batch_size": 1},
    "scenario": {"name": "permuted_pixels", "fraction": 1.0},
    "schedule": {"first_task": {"epochs": 1}, "epochs_per_task": 1},
    "interventions": [],
}
# Allowance for what legitimately accumulates (the log's rows, HDF5 metadata): ~0.1 MB a task.
MARGIN_KIB = 10 * 1024


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the bound is set for glibc")
def test_peak_memory_does_not_grow_with_the_tasks(dataset, tmp_path):
    finished = subprocess.run(
        [sys.executable, "-c", JOB, json.dumps(SETTINGS), str(dataset), str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    peaks = json.loads(finished.stdout.strip().splitlines()[-1])
    assert len(peaks) == SETTINGS["num_tasks"]
    grown = peaks[-1] - peaks[4]
    assert grown <= MARGIN_KIB, f"peak grew by {grown / 1024:.1f} MiB from task 5 to task 25"
    assert peaks[-1] / 1024 <= memory_mb(SETTINGS)  # the rule's mem_mb covers it
