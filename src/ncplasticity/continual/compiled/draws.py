"""Counter-based random draws that the compiled forms and their plain PyTorch references both
call, so that both loops draw the same numbers: a random key per event (a unit's reset at a
step) from (seed, step, layer, unit), uniform draws from a key, and where a step's noise starts
in a shared table of normals."""

from __future__ import annotations

import numpy as np
from numba import njit

NOISE_TABLE_SIZE = 1 << 22


@njit(cache=True, error_model="numpy")
def _mix(z):
    """splitmix64's finaliser: a bijective 64-bit hash."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(cache=True, error_model="numpy")
def event_key(seed, step, layer, unit):
    """The random key of one event (a unit's reset at a step)."""
    z = _mix(np.uint64(seed) + np.uint64(0x9E3779B97F4A7C15))
    z = _mix(z ^ np.uint64(step))
    return _mix(z ^ np.uint64(layer * 1_000_003 + unit))


@njit(cache=True, error_model="numpy")
def fresh_weights(key, bound, out):
    """``out[j]`` ~ U(−bound, bound), the j-th draw of ``key`` (Kaiming-uniform when bound =
    gain·√(3/fan_in))."""
    for j in range(out.shape[0]):
        bits = _mix(key + np.uint64(j)) >> np.uint64(11)
        out[j] = np.float32(bound * (2.0 * (np.float64(bits) * 2.0**-53) - 1.0))


@njit(cache=True, error_model="numpy")
def noise_offset(seed, step, table_size):
    """Where step ``step``'s noise starts in the noise table (parameter p takes entry
    (offset + p) mod table size)."""
    return np.int64(_mix(event_key(seed, step, 0, 0) ^ np.uint64(0x5851F42D4C957F2D)) % table_size)
