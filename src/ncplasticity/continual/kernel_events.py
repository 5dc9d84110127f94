"""The interventions' compiled events and the counter-based random draws both loops share.

The events the step loop (:func:`.kernel.run_steps`) applies to single units or to every
parameter after a step: the ``nc_dial`` gradient, the step form of shrink & perturb's noise,
ReDo's resets and continual backprop's replacements. Their random numbers (a reset unit's fresh
weights, where a step's noise starts in the noise table) come from counter-based functions of
(seed, step, layer, unit) that the plain PyTorch reference loop calls too
(:mod:`ncplasticity.continual.interventions`), so both loops draw the same numbers.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ncplasticity.continual.kernel_constants import (
    FASTMATH,
    H_CBP_DECAY,
    H_CBP_MATURITY,
    H_CBP_RATE,
    H_REDO_TAU,
    U_CBP_AGE,
    U_CBP_MEAN,
    U_CBP_UTIL,
    U_REDO_SUM,
)

DIAL_MOMENTUM = 0.99  # running class means of nc_dial
NOISE_TABLE_SIZE = 1 << 22
# continual backprop's replacement counter may sit a rounding error below a whole unit (e.g.
# 0.9 + 0.1); the slack makes every implementation replace at the same step.
CBP_SLACK = 1e-9


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


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def dial_gradient(h, label, strength, dial_mean, dial_count, d_h):
    """nc_dial: adds the gradient of strength·r/(1 + r), r = ‖h − μ_c‖² / ‖μ_c‖² (μ_c the
    bias-corrected running mean of the sample's class, not differentiated), to ``d_h`` where
    the ReLU is active; returns the penalty. Its gradient is bounded (it vanishes as r grows),
    so a negative strength spreads the class without diverging."""
    count = dial_count[label]
    if count == 0:
        return 0.0
    correction = 1.0 - DIAL_MOMENTUM**count
    mu_sq = 0.0
    dist = 0.0
    for k in range(h.shape[0]):
        mu = dial_mean[label, k] / correction
        mu_sq += mu * mu
        dist += (h[k] - mu) ** 2
    mu_sq += 1e-12
    r = dist / mu_sq
    coef = np.float32(strength * 2.0 / ((1.0 + r) ** 2 * mu_sq))
    for k in range(h.shape[0]):
        if h[k] != 0:
            d_h[k] += coef * (h[k] - np.float32(dial_mean[label, k] / correction))
    return strength * r / (1.0 + r)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def add_noise(params, table, std, offset):
    """params[p] += std · table[(offset + p) mod len(table)] (row views, as in
    kernel_optimizer.adam_block)."""
    n = params.shape[0]
    first = min(n, table.shape[0] - offset)
    head = params[:first]
    source = table[offset : offset + first]
    for p in range(first):
        head[p] += std * source[p]
    done = first
    while done < n:  # wrap around the table
        chunk = min(n - done, table.shape[0])
        part = params[done : done + chunk]
        for p in range(chunk):
            part[p] += std * table[p]
        done += chunk


@njit(cache=True, error_model="numpy")
def reset_unit(params, opt_m, opt_v, sizes, offs, hidden, unit, key, fresh):
    """Unit ``unit`` of hidden layer ``hidden`` gets fresh incoming weights (Kaiming-uniform,
    drawn from ``key``), zero bias and zero outgoing weights; the optimiser state of those
    weights is zeroed."""
    n_in = sizes[hidden]
    n = sizes[hidden + 1]
    n_next = sizes[hidden + 2]
    draws = fresh[:n_in]
    fresh_weights(key, np.sqrt(6.0 / n_in), draws)
    adam = opt_m.shape[0] > 0
    for i in range(n_in):
        p = offs[0, hidden] + i * n + unit
        params[p] = draws[i]
        if adam:
            opt_m[p] = 0
            opt_v[p] = 0
    p = offs[1, hidden] + unit
    params[p] = 0
    if adam:
        opt_m[p] = 0
        opt_v[p] = 0
    start = offs[0, hidden + 1] + unit * n_next
    for k in range(n_next):
        params[start + k] = 0
        if adam:
            opt_m[start + k] = 0
            opt_v[start + k] = 0


@njit(cache=True, error_model="numpy")
def redo(params, opt_m, opt_v, sizes, offs, hp, units, u_off, seed, step, fresh):
    """ReDo: units whose score E|h_i| / mean_k E|h_k| over the last period is ≤ τ are reset
    (a layer without any activation is reset whole); the activation sums restart."""
    resets = 0
    tau = hp[H_REDO_TAU]
    for hidden in range(sizes.shape[0] - 2):
        n = sizes[hidden + 1]
        sums = units[U_REDO_SUM, u_off[hidden] : u_off[hidden] + n]
        mean = sums.mean()
        for unit in range(n):
            if mean == 0 or sums[unit] / mean <= tau:
                key = event_key(seed, step, hidden, unit)
                reset_unit(params, opt_m, opt_v, sizes, offs, hidden, unit, key, fresh)
                resets += 1
        sums[:] = 0
    return resets


@njit(
    cache=True, error_model="numpy"
)  # no fastmath: a contracted counter update would replace at other steps
def continual_backprop(
    params, opt_m, opt_v, sizes, offs, hp, units, u_off, counter, acts, a_off, seed, step, fresh
):
    """Continual backprop (Dohare et al. 2024, ``lop/algos/gnt.py``, utility
    'adaptable_contribution', accumulated replacement counts) after the step; returns the
    number of units replaced."""
    decay = hp[H_CBP_DECAY]
    # From this age on, 1 − decay**age rounds to exactly 1.0 (decay**age ≤ 2⁻⁵⁴): skipping
    # the pow for the (mostly old) units changes no bit and made a cbp run's tasks 12 % faster.
    settled = np.ceil(np.log(2.0**-54) / np.log(decay))  # decay is in (0, 1)
    while decay**settled > 2.0**-54:
        settled += 1
    replaced = 0
    for hidden in range(sizes.shape[0] - 2):
        n_in = sizes[hidden]
        n = sizes[hidden + 1]
        n_next = sizes[hidden + 2]
        in_mag = np.zeros(n, np.float32)
        w_in = offs[0, hidden]
        for i in range(n_in):
            row = params[w_in + i * n : w_in + (i + 1) * n]
            for u in range(n):
                in_mag[u] += abs(row[u])
        util = units[U_CBP_UTIL, u_off[hidden] : u_off[hidden] + n]
        age = units[U_CBP_AGE, u_off[hidden] : u_off[hidden] + n]
        mean = units[U_CBP_MEAN, u_off[hidden] : u_off[hidden] + n]
        h = acts[a_off[hidden + 1] : a_off[hidden + 1] + n]
        corrected = np.empty(n)  # bias-corrected utility
        mean_act = np.empty(n)  # bias-corrected mean activation
        eligible = 0
        w_out = offs[0, hidden + 1]
        for u in range(n):
            out_mag = 0.0
            outgoing = params[w_out + u * n_next : w_out + (u + 1) * n_next]
            for k in range(n_next):
                out_mag += abs(outgoing[k])
            age[u] += 1
            util[u] *= decay
            correction = 1.0 - decay ** age[u] if age[u] < settled else 1.0
            mean[u] = decay * mean[u] + (1 - decay) * h[u]
            mean_act[u] = mean[u] / correction
            magnitude_in = in_mag[u] / n_in
            contribution = (out_mag / n_next) * abs(h[u] - mean_act[u])
            util[u] += (1 - decay) * (contribution / magnitude_in if magnitude_in > 0 else 0.0)
            corrected[u] = util[u] / correction
            eligible += age[u] > hp[H_CBP_MATURITY]
        if eligible == 0:
            continue
        counter[hidden] += hp[H_CBP_RATE] * eligible
        count = int(counter[hidden] + CBP_SLACK)
        counter[hidden] -= count
        bias_next = offs[1, hidden + 1]
        for _ in range(min(count, eligible)):
            lowest = -1
            for u in range(n):
                if age[u] > hp[H_CBP_MATURITY] and (lowest < 0 or corrected[u] < corrected[lowest]):
                    lowest = u
            # Its mean contribution moves into the next layer's bias (Dohare et al.'s intent;
            # their code zeroes the mean before reading it), then the unit is fresh.
            for k in range(n_next):
                params[bias_next + k] += params[w_out + lowest * n_next + k] * mean_act[lowest]
            key = event_key(seed, step, hidden, lowest)
            reset_unit(params, opt_m, opt_v, sizes, offs, hidden, lowest, key, fresh)
            util[lowest] = 0
            mean[lowest] = 0
            age[lowest] = 0
            replaced += 1
    return replaced
