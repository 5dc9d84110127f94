"""The compiled loop's flat parameter layout and its forward pass (numba, no torch): each
layer's weight transposed to [in, out], its bias, then its LayerNorm weight and bias. The
step's functions are compiled without reference counting (``_nrt=False``), as the step loop
that calls them (:func:`.kernel._steps`)."""

from __future__ import annotations

import numpy as np
from numba import njit

from ncplasticity.continual.compiled.constants import FASTMATH
from ncplasticity.continual.compiled.rows import accumulate_rows

LN_EPS = 1e-5  # torch.nn.LayerNorm's default


def layout(sizes, layer_norm: bool) -> tuple[np.ndarray, int]:
    """Offsets [4, layers] of each layer's W^T ([in, out]), bias, LayerNorm weight and bias
    (-1 where absent) in the flat parameter vector, and its length."""
    n_layers = len(sizes) - 1
    offs = -np.ones((4, n_layers), np.int64)
    pos = 0
    for layer in range(n_layers):
        offs[0, layer] = pos
        pos += sizes[layer] * sizes[layer + 1]
        offs[1, layer] = pos
        pos += sizes[layer + 1]
        if layer_norm and layer < n_layers - 1:
            offs[2, layer] = pos
            offs[3, layer] = pos + sizes[layer + 1]
            pos += 2 * sizes[layer + 1]
    return offs, pos


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def forward(params, sizes, offs, layer_norm, acts, a_off, zhat, rstd, active, n_active):
    """Forward pass from ``acts[:sizes[0]]`` (the input, whose nonzero entries are listed in
    ``active[:n_active[0]]``); fills every layer's output (post-ReLU for hidden layers, logits
    last), the LayerNorm intermediates and the other layers' nonzero-input lists."""
    n_layers = sizes.shape[0] - 1
    for layer in range(n_layers):
        n_in = sizes[layer]
        n_out = sizes[layer + 1]
        a_in = acts[a_off[layer] : a_off[layer] + n_in]
        a_out = acts[a_off[layer + 1] : a_off[layer + 1] + n_out]
        bias = params[offs[1, layer] : offs[1, layer] + n_out]
        nz = active[a_off[layer] : a_off[layer] + n_in]
        count = n_active[layer]
        if layer > 0:  # indices of the nonzero inputs, gathered without branches
            count = 0
            for i in range(n_in):
                nz[count] = i
                count += a_in[i] != 0
            n_active[layer] = count
        for o in range(n_out):
            a_out[o] = bias[o]
        accumulate_rows(a_out, params, offs[0, layer], nz, count, a_in)
        if layer == n_layers - 1:
            break
        if layer_norm:
            mean = np.float32(0.0)
            for o in range(n_out):
                mean += a_out[o]
            mean /= n_out
            var = np.float32(0.0)
            for o in range(n_out):
                var += (a_out[o] - mean) ** 2
            var /= n_out
            r = np.float32(1.0 / np.sqrt(var + LN_EPS))
            rstd[layer] = r
            z = zhat[a_off[layer + 1] : a_off[layer + 1] + n_out]
            gamma = params[offs[2, layer] : offs[2, layer] + n_out]
            beta = params[offs[3, layer] : offs[3, layer] + n_out]
            for o in range(n_out):
                z[o] = (a_out[o] - mean) * r
                a_out[o] = z[o] * gamma[o] + beta[o]
        for o in range(n_out):
            if a_out[o] < 0:
                a_out[o] = 0


@njit(cache=True, error_model="numpy", _nrt=False)
def cross_entropy(logits, label, exps):
    """(prediction = first maximal logit as torch.argmax, loss, Σ exps), ``exps`` the float64
    exp(logit − max logit) of each class (the softmax is exps / Σ exps)."""
    best = 0
    for c in range(1, logits.shape[0]):
        if logits[c] > logits[best]:
            best = c
    top = logits[best]
    total = 0.0
    for c in range(logits.shape[0]):
        exps[c] = np.exp(np.float64(logits[c] - top))
        total += exps[c]
    return best, np.float32(np.log(total) - (logits[label] - top)), total


@njit(cache=True)
def _nonzero_counts(x):
    counts = np.zeros(x.shape[0], np.int64)
    for r in range(x.shape[0]):
        row = x[r]
        n = 0
        for c in range(row.shape[0]):
            n += row[c] != 0
        counts[r] = n
    return counts


@njit(cache=True)
def _fill_sparse_rows(x, start, pixel, value):
    for r in range(x.shape[0]):
        row = x[r]
        e = start[r]
        for c in range(row.shape[0]):
            if row[c] != 0:
                pixel[e] = c
                value[e] = row[c]
                e += 1


def sparse_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``x`` [N, D] in compressed rows: (start [N + 1], pixel, value), row r's nonzero entries
    being ``value[start[r]:start[r + 1]]`` at columns ``pixel[...]``, in column order. MNIST's
    digits are a fifth nonzero: the compiled step reads those instead of gathering and scanning
    every pixel of the permuted image."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    start = np.zeros(x.shape[0] + 1, np.int64)
    np.cumsum(_nonzero_counts(x), out=start[1:])
    pixel = np.empty(start[-1], np.int32)
    value = np.empty(start[-1], np.float32)
    _fill_sparse_rows(x, start, pixel, value)
    return start, pixel, value


@njit(cache=True)
def _gather(x, rows, columns):
    out = np.empty((rows.shape[0], columns.shape[0]), x.dtype)
    for r in range(rows.shape[0]):
        source = x[rows[r]]
        target = out[r]
        for c in range(columns.shape[0]):
            target[c] = source[columns[c]]
    return out


def task_inputs(x: np.ndarray, permutation: np.ndarray, rows=None) -> np.ndarray:
    """``x[rows][:, permutation]`` (all rows when ``rows`` is None), C-contiguous: a task's
    inputs in its pixel order. For 1,000 MNIST images numpy's fancy indexing along the second
    axis took 2-3 ms here, this 0.6 ms; a task gathers its probe and its test split."""
    rows = np.arange(len(x)) if rows is None else np.asarray(rows, dtype=np.int64)
    columns = np.asarray(permutation, dtype=np.int64)
    for index, size in ((rows, x.shape[0]), (columns, x.shape[1])):
        if index.size and (index.min() < 0 or index.max() >= size):  # compiled: unchecked
            raise IndexError(f"task_inputs: index out of range 0..{size - 1}")
    return _gather(np.ascontiguousarray(x), rows, columns)
