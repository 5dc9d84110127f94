"""The software a job ran with: Python and the versions of the packages that decide its
numbers, the git commit of the checkout the package was imported from, the CPU model and
whether the job ran ``portable`` (:mod:`ncplasticity.portable`): without it, its numbers are
bitwise only on that CPU model. Feature files keep it beside their resolved settings (root
attribute ``software``) and every job's log has it as its first line of the attempt, so a
result can be traced to the code that made it.

Never fails: a package that is not installed is ``None``, and so is the commit where the
package is not in a git checkout or git is not installed.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("torch", "numpy", "numba", "snakemake", "ncplasticity")
# git answers in milliseconds; a hung one (e.g. a stalled network file system) must not hold a job.
_GIT_TIMEOUT_S = 10


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str | None:
    """Output of a git command run in this package's directory; None when it fails."""
    try:
        result = subprocess.run(
            ["git", *args],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def _git_commit() -> str | None:
    """HEAD of the git checkout this package's source belongs to (an editable install), or
    None. The package's own files must be tracked there: an installed copy that merely sits
    inside some other checkout (e.g. a virtual environment in a project) has no commit."""
    if _git("ls-files", "--error-unmatch", "__init__.py") is None:
        return None
    return _git("rev-parse", "HEAD") or None


def _cpu_model() -> str | None:
    """The CPU's model name (Linux), else what ``platform`` knows, else None."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


@functools.cache
def software_manifest() -> dict[str, str | bool | None]:
    """``{"python": …, "torch": …, "numpy": …, "numba": …, "snakemake": …, "ncplasticity": …,
    "git_commit": …, "cpu": …, "portable": …}`` (computed once per process)."""
    from ncplasticity.portable import ENVIRONMENT

    return {
        "python": platform.python_version(),
        **{package: _version(package) for package in PACKAGES},
        "git_commit": _git_commit(),
        "cpu": _cpu_model(),
        "portable": all(os.environ.get(k) == v for k, v in ENVIRONMENT.items()),
    }


def manifest_json() -> str:
    """The manifest as one line of JSON, in its fixed key order."""
    return json.dumps(software_manifest())
