"""The ``portable`` switch: the same features on any x86-64 CPU, given the same code, config,
seed and package versions.

Without it a run is bitwise reproducible only on the CPU model that made it: numba compiles the
training step for the host (AVX2 here, AVX-512 elsewhere: other vector widths, so other
summation orders under fastmath), and MKL (torch's BLAS), ATen's kernels, numpy's ufuncs and
OpenBLAS (numpy's BLAS) each pick code paths by the CPU they find. Batch-1 SGD is chaotic, so a
last-bit difference grows into another trajectory within a few tasks. Under ``portable`` every
one of them is pinned to a baseline every x86-64-v2 CPU runs, through the environment of each
job, which those libraries read when they load (a job imports none of them before).
The cost in speed: docs/performance.md.
"""

from __future__ import annotations

# Each variable, and why.
ENVIRONMENT = {
    # numba: code for the baseline x86-64 target (SSE2, no FMA) instead of the host CPU.
    "NUMBA_CPU_NAME": "generic",
    # MKL's conditional numerical reproducibility: the code path every x86 CPU runs.
    "MKL_CBWR": "COMPATIBLE",
    # ATen's vectorised kernels: the build's default (baseline) versions, not AVX2/AVX-512.
    "ATEN_CPU_CAPABILITY": "default",
    # oneDNN (some torch CPU ops): no ISA above SSE4.1.
    "ONEDNN_MAX_CPU_ISA": "SSE41",
    # numpy's ufunc loops: its baseline (x86-64-v2), no dispatch to AVX2/AVX-512 versions.
    "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR",
    # numpy's OpenBLAS: the Nehalem (SSE4.2) kernels on every CPU, on one thread (a threaded
    # reduction's order depends on the thread count).
    "OPENBLAS_CORETYPE": "Nehalem",
    "OPENBLAS_NUM_THREADS": "1",
}


def environment(config: dict) -> dict[str, str]:
    """The variables a job's environment gets under this configuration (none unless
    ``portable`` is true)."""
    return dict(ENVIRONMENT) if config.get("portable", False) else {}
