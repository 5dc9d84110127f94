"""The software manifest of feature files and job logs: what it names, and that it never fails."""

import json
import os
import subprocess
import sys

from ncplasticity import provenance
from ncplasticity.features import FeatureReader, FeatureWriter


def test_the_manifest_names_python_the_packages_and_the_commit():
    manifest = provenance.software_manifest()
    assert list(manifest) == ["python", *provenance.PACKAGES, "git_commit", "cpu", "portable"]
    assert manifest["portable"] is False  # the tests' own environment pins nothing
    assert manifest["python"] == ".".join(map(str, sys.version_info[:3]))
    assert manifest["ncplasticity"] and manifest["numpy"]
    commit = manifest["git_commit"]
    assert commit is None or (len(commit) == 40 and int(commit, 16) >= 0)
    assert json.loads(provenance.manifest_json()) == manifest


def test_without_git_or_a_package_the_manifest_says_none(monkeypatch):
    monkeypatch.setenv("PATH", "")  # no git to run
    assert provenance._git_commit() is None
    assert provenance._version("no-such-package-of-ncplasticity") is None


def test_a_feature_file_keeps_the_manifest_of_the_software_that_created_it(tmp_path):
    path = tmp_path / "run.h5"
    with FeatureWriter(path, experiment="continual", run_id="r", seed=1, config={}) as writer:
        writer.add_snapshot("task0000", [[1.0], [2.0]], [0, 1], [[1.0], [1.0]], [0.0, 0.0])
    with FeatureReader(path) as reader:
        assert json.loads(reader.attrs["software"]) == provenance.software_manifest()


def test_every_job_log_opens_with_the_manifest(tmp_path):
    log_path = tmp_path / "job.log"
    code = f"from ncplasticity.runlog import log_to_file; log_to_file({str(log_path)!r})"
    env = {**os.environ, "PATH": ""}  # git absent: the job still runs and logs
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    (line,) = log_path.read_text().splitlines()
    assert line.split(": ", 1)[1].startswith('software {"python": ')
    assert json.loads(line.split("software ", 1)[1])["git_commit"] is None
