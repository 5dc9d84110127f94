"""One compiled step loop per combination of compiled forms, cached on disk.

numba compiles a function that calls another with that callee built in, and caches a
function by its source file: a step loop that called functions passed as arguments would be
compiled anew in every job (~20 s; numba cannot cache first-class functions). So each
combination of ``feature_gradient`` and ``after_step`` functions gets its own copy of
:mod:`.kernel` whose hook block calls exactly those functions, written under a name that hashes
the copy's source and the sources it compiles in (every module of this wing and the modules
defining the functions): numba's cache of that file is then valid for as long as the name is,
and a change anywhere compiles a fresh copy.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from ncplasticity.continual.compiled.form import CompiledForm

_HERE = Path(__file__).parent
_BLOCK_START, _BLOCK_END = "# <hooks>", "# </hooks>"
_BY_FUNCTIONS: dict[tuple, Callable] = {}


def run_steps_for(forms: Sequence[CompiledForm]) -> Callable:
    """The step loop that calls the functions of ``forms`` (the forms with functions, in
    order: ``states[i]`` is the i-th one's state)."""
    with_functions = [form for form in forms if form.has_functions]
    functions = tuple((form.feature_gradient, form.after_step) for form in with_functions)
    if functions not in _BY_FUNCTIONS:  # sources read and hashed once per process
        _BY_FUNCTIONS[functions] = _specialised(with_functions)
    return _BY_FUNCTIONS[functions]


def _specialised(with_functions: Sequence[CompiledForm]) -> Callable:
    block = _hook_block(with_functions)
    sources = [(_HERE / "kernel.py").read_text(), block]
    sources += [path.read_text() for path in sorted(_HERE.glob("*.py"))]
    for form in with_functions:
        for function in (form.feature_gradient, form.after_step):
            if function is not None:
                sources.append(Path(sys.modules[_origin(function)[0]].__file__).read_text())
    digest = hashlib.sha256("\0".join(sources).encode()).hexdigest()[:20]
    return _load(digest, _specialised_source(block)).run_steps


def _origin(function: Callable) -> tuple[str, str]:
    """(module, name) of a module-level ``@njit`` function, which the copy imports."""
    python = getattr(function, "py_func", None)
    if python is None:
        raise TypeError(f"compiled form: {function!r} is not an @njit function")
    if "<locals>" in python.__qualname__ or python.__module__ not in sys.modules:
        raise TypeError(
            f"compiled form: {python.__module__}.{python.__qualname__} must be defined at "
            "module level of an importable module (the compiled step imports it)"
        )
    return python.__module__, python.__qualname__


def _hook_block(forms: Sequence[CompiledForm]) -> str:
    imports, gradient_calls, after_calls = [], [], []
    for index, form in enumerate(forms):
        if form.feature_gradient is not None:
            module, name = _origin(form.feature_gradient)
            imports.append(f"from {module} import {name} as _feature_gradient_{index}")
            gradient_calls.append(f"    _feature_gradient_{index}(states[{index}], h, label, d_h)")
        if form.after_step is not None:
            module, name = _origin(form.after_step)
            imports.append(f"from {module} import {name} as _after_step_{index}")
            after_calls.append(
                f"    _after_step_{index}(states[{index}], net, acts, label, seed, step)"
            )
    return "\n".join(
        [
            *imports,
            f"HAS_FEATURE_GRADIENT = {bool(gradient_calls)}",
            f"HAS_AFTER_STEP = {bool(after_calls)}",
            "",
            "",
            '@njit(cache=True, error_model="numpy")',
            "def feature_gradient(states, h, label, d_h):",
            *(gradient_calls or ["    pass"]),
            "",
            "",
            '@njit(cache=True, error_model="numpy")',
            "def after_step(states, net, acts, label, seed, step):",
            *(after_calls or ["    pass"]),
            "",
        ]
    )


def _specialised_source(block: str) -> str:
    template = (_HERE / "kernel.py").read_text()
    start = template.index(_BLOCK_START)
    end = template.index(_BLOCK_END) + len(_BLOCK_END)
    return template[:start] + block + template[end:]


def cache_dir() -> Path:
    """Where the specialised copies live: beside numba's cache when ``NUMBA_CACHE_DIR`` is
    set, else in the user's cache directory (a temporary one when that is not writable)."""
    base = os.environ.get("NUMBA_CACHE_DIR") or os.environ.get("XDG_CACHE_HOME")
    base = Path(base) if base else Path.home() / ".cache"
    path = base / "ncplasticity" / "kernels"
    try:
        path.mkdir(parents=True, exist_ok=True)
        return path
    except OSError:
        path = Path(tempfile.gettempdir()) / f"ncplasticity-kernels-{os.getuid()}"
        path.mkdir(parents=True, exist_ok=True)
        return path


def _load(digest: str, source: str):
    path = cache_dir() / f"kernel_{digest}.py"
    if not path.exists() or path.read_text() != source:
        # Written whole, then renamed: jobs starting together never read half a file.
        fd, partial = tempfile.mkstemp(dir=path.parent, suffix=".partial")
        with os.fdopen(fd, "w") as out:
            out.write(source)
        os.replace(partial, path)
    name = f"ncplasticity_kernel_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
