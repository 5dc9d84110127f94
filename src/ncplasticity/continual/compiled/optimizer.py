"""The optimiser steps of the compiled continual kernel (numba): SGD with its decay terms
(weight decay, l2_init) and torch.optim.Adam's update, on a contiguous stretch of the flat
parameter vector or on a layer's rank-1 gradient a_in ⊗ d_out. Compiled without reference
counting (``_nrt=False``), as the step loop that calls them (:func:`.kernel._steps`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ncplasticity.continual.compiled.constants import FASTMATH, H_ADAM


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def update(params, start, grad, n, hp, scalars, opt_m, opt_v, init_params):
    """One optimiser step on ``params[start:start+n]`` with gradient ``grad[:n]`` (+ the
    l2_init term); returns the squared norm of the loss gradient (without weight decay).
    ``scalars`` = (lr, weight decay, 2·init decay, Adam step size, √bias correction 2,
    1 − β1, β2, eps)."""
    p = params[start : start + n]
    g = grad[:n]
    init2 = scalars[2]
    if init2 != 0:
        p0 = init_params[start : start + n]
        for o in range(n):
            g[o] += init2 * (p[o] - p0[o])
    if hp[H_ADAM] != 0:
        return adam(p, g, opt_m[start : start + n], opt_v[start : start + n], scalars)
    sq = np.float32(0.0)
    for o in range(n):
        sq += g[o] * g[o]
    lr = scalars[0]
    keep = np.float32(1.0) - lr * scalars[1]
    for o in range(n):
        p[o] = keep * p[o] - lr * g[o]
    return sq


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def adam(p, g, m, v, scalars):
    """torch.optim.Adam's step (L2 weight decay added to the gradient); returns ‖g‖² (before
    the weight decay)."""
    decay, step_size, bc2 = scalars[1], scalars[3], scalars[4]
    b1, b2, eps = scalars[5], scalars[6], scalars[7]
    inv_bc2 = np.float32(1.0) / bc2
    sq = np.float32(0.0)
    for o in range(p.shape[0]):
        grad = g[o]
        sq += grad * grad
        grad += decay * p[o]
        m[o] += b1 * (grad - m[o])
        v[o] = b2 * v[o] + (np.float32(1.0) - b2) * grad * grad
        p[o] -= step_size * m[o] / (np.sqrt(v[o]) * inv_bc2 + eps)
    return sq


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def decay_block(params, init_params, start, n, scalars):
    """SGD's decay terms on ``params[start:start+n]``: θ ← (1 − lr·wd)·θ − lr·2λ(θ − θ₀);
    returns ‖2λ(θ − θ₀)‖² (the l2_init term of the loss gradient)."""
    lr, init2 = scalars[0], scalars[2]
    keep = np.float32(1.0) - lr * scalars[1]
    p = params[start : start + n]
    sq = np.float32(0.0)
    if init2 != 0:
        p0 = init_params[start : start + n]
        for k in range(n):
            r = init2 * (p[k] - p0[k])
            sq += r * r
            p[k] = keep * p[k] - lr * r
    else:
        for k in range(n):
            p[k] *= keep
    return sq


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", _nrt=False)
def adam_block(params, opt_m, opt_v, init_params, start, a_in, d_out, n_in, n_out, scalars, grad):
    """Adam on a layer's W^T [n_in, n_out] at ``start`` with loss gradient a_in ⊗ d_out (+ the
    l2_init term), written to the scratch ``grad`` first so that the step is one flat loop
    (per-row loops of 100 weights cost a fifth more); returns the gradient's squared norm. The
    loops run over row views: numba checks a computed index for wraparound, and that branch
    keeps LLVM from vectorising."""
    init2 = scalars[2]
    n = n_in * n_out
    for i in range(n_in):
        a = a_in[i]
        lo = i * n_out
        g = grad[lo : lo + n_out]
        if init2 != 0:
            p = params[start + lo : start + lo + n_out]
            p0 = init_params[start + lo : start + lo + n_out]
            for o in range(n_out):
                g[o] = a * d_out[o] + init2 * (p[o] - p0[o])
        else:
            for o in range(n_out):
                g[o] = a * d_out[o]
    end = start + n
    return adam(params[start:end], grad[:n], opt_m[start:end], opt_v[start:end], scalars)
