"""The resumable-job helper and device resolution."""

import logging
import socket
import subprocess
import sys
import threading
import time

import pytest
import torch

from ncplasticity.jobs import HOLD_FILE_ENV, ResumableJob, resolve_device
from ncplasticity.networks import MLP
from ncplasticity.provenance import manifest_json
from ncplasticity.runlog import KEPT_LOG


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a usable GPU")
def test_a_required_gpu_that_is_missing_fails_at_once_naming_the_node():
    with pytest.raises(RuntimeError, match=f"not usable on node {socket.gethostname()}"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"
    assert resolve_device("cpu").type == "cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")
def test_a_gpu_state_resumes_on_the_cpu(tmp_path):
    """Where a GPU is: ``auto`` and ``cuda`` give it, and a state saved from the GPU loads
    onto the CPU (``map_location``), as a continual job's state always must."""
    assert resolve_device("auto").type == resolve_device("cuda").type == "cuda"
    model = MLP(4, [3], 2).cuda()
    ResumableJob(tmp_path / "run", {"seed": 1}).save(model=model, rows=[], task=1)
    cpu_model = MLP(4, [3], 2)
    ResumableJob(tmp_path / "run", {"seed": 1}).load(model=cpu_model)
    for a, b in zip(cpu_model.parameters(), model.parameters(), strict=True):
        assert a.device.type == "cpu"
        torch.testing.assert_close(a, b.cpu())


def test_state_is_resumed_only_with_the_same_identity(tmp_path):
    model = MLP(4, [3], 2)
    job = ResumableJob(tmp_path / "run", {"settings": {"lr": 0.1}, "seed": 1})
    job.save(model=model, rows=[{"task": 0}], task=1)
    resumed = ResumableJob(tmp_path / "run", {"seed": 1, "settings": {"lr": 0.1}})
    assert resumed.resuming
    state = resumed.load(model=MLP(4, [3], 2))
    assert state["rows"] == [{"task": 0}] and state["task"] == 1
    other = ResumableJob(tmp_path / "run", {"settings": {"lr": 0.2}, "seed": 1})
    assert not other.resuming and other.load(model=model) is None


def test_a_fresh_job_keeps_its_own_log_and_warns_of_nothing(tmp_path, caplog):
    partial = tmp_path / "run"
    partial.mkdir()
    (partial / KEPT_LOG).write_text("this attempt's first line\n")
    with caplog.at_level(logging.WARNING):
        ResumableJob(partial, {"seed": 1})
    assert not caplog.records
    assert (partial / KEPT_LOG).read_text() == "this attempt's first line\n"


def test_a_rerun_job_log_starts_with_the_lines_of_the_killed_attempt(tmp_path):
    """Snakemake deletes a job's log before rerunning it; the lines kept in the in-progress
    directory come back first. Each attempt is its own process, as a job is."""
    log_path, partial = tmp_path / "job.log", tmp_path / "partial" / "run"

    def attempt(message):
        code = (
            "import logging; from ncplasticity.runlog import log_to_file; "
            f"log_to_file({str(log_path)!r}, {str(partial)!r}); logging.info({message!r})"
        )
        subprocess.run([sys.executable, "-c", code], check=True)

    attempt("task 1 of the first attempt")
    log_path.unlink()  # what Snakemake does before the rerun
    attempt("resumed at task 2")
    lines = log_path.read_text().splitlines()
    software = f"software {manifest_json()}"  # each attempt's first line: what it ran with
    assert [line.split(": ", 1)[1] for line in lines] == [
        software,
        "task 1 of the first attempt",
        software,
        "resumed at task 2",
    ]
    assert (partial / "job.log").read_text().splitlines() == lines


def test_the_hold_hook_holds_a_job_after_its_first_finished_unit_until_released(
    tmp_path, monkeypatch
):
    hold_file = tmp_path / "held"
    model = MLP(4, [3], 2)
    monkeypatch.delenv(HOLD_FILE_ENV, raising=False)
    ResumableJob(tmp_path / "unset", {"seed": 1}).save(model=model, rows=[{"task": 0}])
    assert not hold_file.exists()  # inert when unset

    monkeypatch.setenv(HOLD_FILE_ENV, str(hold_file))
    job = ResumableJob(tmp_path / "run", {"seed": 1}, unit="task")
    job.save(model=model)  # mid-unit (no finished row yet): not held
    assert not hold_file.exists()
    saving = threading.Thread(target=job.save, kwargs={"model": model, "rows": [{"task": 0}]})
    saving.start()
    deadline = time.monotonic() + 30
    while not hold_file.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert hold_file.exists() and job.resuming  # held, its checkpoint saved
    time.sleep(0.2)
    assert saving.is_alive()
    hold_file.unlink()  # the release
    saving.join(timeout=5)
    assert not saving.is_alive()
    job.save(model=model, rows=[{"task": 0}, {"task": 1}])  # once per attempt
    assert not hold_file.exists()
