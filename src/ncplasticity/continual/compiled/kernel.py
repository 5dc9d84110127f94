"""The compiled batch-1 training step of the continual MLP (numba, no torch): the template
that :mod:`.specialise` copies once per combination of compiled forms.

One call runs a stretch of online steps over preallocated float32 buffers, in this order, which
is also the order of the plain PyTorch reference loop (``continual.loop.train_epoch_autograd``
with the interventions' hooks):

1. forward (LayerNorm before each hidden ReLU with ``H_LAYER_NORM``), the prediction and the
   cross-entropy of the sample (recorded before the update);
2. backward of cross-entropy, + the compiled forms' ``feature_gradient`` terms on the
   penultimate features, + the decay toward the initial parameters 2λ(θ − θ₀) (``l2_init``);
   the gradient's norm is recorded;
3. the optimiser step: SGD or Adam (as ``torch.optim``), with weight decay ``H_WEIGHT_DECAY``
   added to the gradient;
4. the compiled forms' ``after_step`` functions, in the order of the run's interventions;
5. every ``H_PLASTICITY_EVERY``-th step (global count), the loss of the same sample under the
   new parameters, for per-step plasticity.

Plain SGD (no Adam, weight decay or l2_init) touches only the weight rows of nonzero inputs
(blank pixels, inactive ReLUs): a few microseconds a step, most of it moving those rows between
L2 and L1. The loop runs without numba's reference counting where no hook needs it
(:func:`_steps`). The parameter layout and the forward pass live in :mod:`.forward`, the passes
over weight rows in :mod:`.rows`, the optimiser steps in :mod:`.optimizer`, the slots of ``hp``
and ``counters`` in :mod:`.constants`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ncplasticity.continual.compiled.constants import (
    C_ADAM_STEP,
    C_SEED,
    C_STEP,
    FASTMATH,
    H_ADAM,
    H_BETA1,
    H_BETA2,
    H_EPS,
    H_INIT_DECAY,
    H_LAYER_NORM,
    H_LR,
    H_PLASTICITY_EVERY,
    H_WEIGHT_DECAY,
)
from ncplasticity.continual.compiled.forward import cross_entropy, forward
from ncplasticity.continual.compiled.optimizer import adam_block, decay_block, update
from ncplasticity.continual.compiled.rows import dot_update_rows, prefetch, update_rows

# <hooks> Each specialised copy replaces this block with calls of its compiled forms'
# functions, states[i] being the i-th form's state (.specialise); this copy has none.
HAS_FEATURE_GRADIENT = False
HAS_AFTER_STEP = False


@njit(cache=True, error_model="numpy")
def feature_gradient(states, h, label, d_h):
    pass


@njit(cache=True, error_model="numpy")
def after_step(states, net, acts, label, seed, step):
    pass


# </hooks>


@njit(cache=True, error_model="numpy")
def run_steps(*arguments):
    """Batch-1 steps; ``arguments`` are (params, init_params, opt_m, opt_v, sizes, offs, hp,
    counters, states, x_start, x_pixel, x_value, y, order, inverse, correct, loss, grad_norm,
    plasticity). The steps run over ``order`` (see the module docstring); every state array
    (the compiled forms' ``states`` included) is updated in place. Sample ``i``'s nonzero inputs
    are ``x_value[x_start[i]:x_start[i + 1]]`` at pixels ``x_pixel[...]``
    (:func:`.forward.sparse_rows`), which go to the network's inputs ``inverse[pixel]`` (the
    task's pixel order).
    ``plasticity[s]`` is NaN where the step was not measured."""
    sizes, hp = arguments[4], arguments[6]
    n_layers = sizes.shape[0] - 1
    a_off = np.empty(n_layers + 1, np.int64)  # acts[a_off[l]:] = input of layer l; last = logits
    apos = 0
    widest = 0
    for layer in range(n_layers):
        a_off[layer] = apos
        apos += sizes[layer]
        widest = max(widest, sizes[layer + 1])
    a_off[n_layers] = apos
    acts = np.zeros(apos + sizes[n_layers], np.float32)
    delta = np.zeros(max(widest, sizes[0]), np.float32)
    scratch = (
        a_off,
        acts,
        np.zeros_like(acts),  # zhat
        np.zeros(n_layers, np.float32),  # rstd
        np.zeros_like(acts),  # the step's forward, kept for the per-step statistics
        delta,
        np.zeros(sizes[n_layers], np.float64),  # exps
        np.zeros_like(delta),  # delta_prev
        np.zeros_like(delta),  # grow
        np.zeros_like(delta),  # dy
        np.zeros(np.max(sizes[:-1] * sizes[1:]) if hp[H_ADAM] != 0 else 0, np.float32),
        np.zeros(apos, np.int64),  # active
        np.zeros(n_layers, np.int64),  # n_active
        np.zeros(8, np.float32),  # scalars
    )
    _steps(arguments, scratch)


# Without numba's reference counting (NRT) unless a hook needs it (hooks may allocate): every
# slice of an array would otherwise increment and decrement its owner's count with locked
# instructions, each of which waits for the step's pending stores; that was a tenth of a plain
# SGD step. Nothing else here allocates (run_steps does).
@njit(
    cache=True,
    fastmath=FASTMATH,
    error_model="numpy",
    _nrt=HAS_FEATURE_GRADIENT or HAS_AFTER_STEP,
)
def _steps(arguments, scratch):
    """:func:`run_steps`' loop, over the buffers it allocated (``scratch``)."""
    (
        params,
        init_params,
        opt_m,
        opt_v,
        sizes,
        offs,
        hp,
        counters,
        states,
        x_start,
        x_pixel,
        x_value,
        y,
        order,
        inverse,
        correct,
        loss,
        grad_norm,
        plasticity,
    ) = arguments
    (
        a_off,
        acts,
        zhat,
        rstd,
        step_acts,
        delta,
        exps,
        delta_prev,
        grow,
        dy,
        wgrad,
        active,
        n_active,
        scalars,
    ) = scratch
    n_layers = sizes.shape[0] - 1
    layer_norm = hp[H_LAYER_NORM] != 0
    n_classes = sizes[n_layers]
    net = (params, opt_m, opt_v, sizes, offs, a_off)  # what after_step may read (.units)
    dense = hp[H_WEIGHT_DECAY] != 0 or hp[H_INIT_DECAY] != 0  # SGD with decay terms
    scalars[0] = hp[H_LR]
    scalars[1] = hp[H_WEIGHT_DECAY]
    scalars[2] = 2 * hp[H_INIT_DECAY]
    scalars[5] = 1.0 - hp[H_BETA1]
    scalars[6] = hp[H_BETA2]
    scalars[7] = hp[H_EPS]
    seed = counters[C_SEED]
    plasticity_every = np.int64(hp[H_PLASTICITY_EVERY])

    for s in range(order.shape[0]):
        step = counters[C_STEP]
        sample = order[s]
        label = y[sample]
        # The input: zeros but for the sample's nonzero pixels, which also list layer 0's
        # active inputs (in the sample's pixel order: no scan of the whole input).
        if s + 1 < order.shape[0]:  # the next sample's pixels, from anywhere in a task's data
            following = order[s + 1]
            for e in range(x_start[following], x_start[following + 1], 16):
                prefetch(x_pixel, e)
                prefetch(x_value, e)
        for k in range(sizes[0]):
            acts[k] = 0
        count = 0
        # Unsigned indices: numba checks a signed one for wraparound, a branch on every pixel.
        for e in range(np.uint64(x_start[sample]), np.uint64(x_start[sample + 1])):
            k = inverse[np.uint64(x_pixel[e])]
            acts[np.uint64(k)] = x_value[e]
            active[count] = k
            count += 1
        n_active[0] = count
        forward(params, sizes, offs, layer_norm, acts, a_off, zhat, rstd, active, n_active)
        logits = acts[a_off[n_layers] :]
        best, ce, total = cross_entropy(logits, label, exps)
        correct[s] = best == label
        loss[s] = ce
        for c in range(n_classes):
            delta[c] = np.float32(exps[c] / total - (1.0 if c == label else 0.0))
        measured = plasticity_every > 0 and step % plasticity_every == 0
        if HAS_AFTER_STEP or measured:  # the step's forward, read after the update
            # Copied in loops: a slice assignment needs reference counting.
            for k in range(acts.shape[0]):
                step_acts[k] = acts[k]

        if hp[H_ADAM] != 0:
            counters[C_ADAM_STEP] += 1
            t = counters[C_ADAM_STEP]
            scalars[3] = hp[H_LR] / (1.0 - hp[H_BETA1] ** t)
            scalars[4] = np.sqrt(1.0 - hp[H_BETA2] ** t)

        # Backward and update, layer by layer from the top: the input gradient of a layer is
        # taken with its old weights, then the layer steps.
        sq = np.float32(0.0)
        for layer in range(n_layers - 1, -1, -1):
            n_in = sizes[layer]
            n_out = sizes[layer + 1]
            a_in = acts[a_off[layer] : a_off[layer] + n_in]
            d_out = delta[:n_out]
            nz = active[a_off[layer] : a_off[layer] + n_in]
            w = offs[0, layer]
            # Plain SGD below the top: the input gradient and the update in one pass over each
            # touched row (read once, written once), the gradient from the old weights.
            fused = layer > 0 and hp[H_ADAM] == 0 and not dense and not HAS_FEATURE_GRADIENT
            if layer > 0:
                for i in range(n_in):
                    delta_prev[i] = 0
            if layer > 0 and not fused:
                for k in range(n_active[layer]):
                    i = nz[k]
                    row = params[w + i * n_out : w + (i + 1) * n_out]
                    g = np.float32(0.0)
                    for o in range(n_out):
                        g += row[o] * d_out[o]
                    delta_prev[i] = g
                if HAS_FEATURE_GRADIENT and layer == n_layers - 1:
                    feature_gradient(states, a_in, label, delta_prev)
            if hp[H_ADAM] != 0:
                sq += adam_block(
                    params,
                    opt_m,
                    opt_v,
                    init_params,
                    w,
                    a_in,
                    d_out,
                    n_in,
                    n_out,
                    scalars,
                    wgrad,
                )
            else:
                # SGD: the decay terms touch every weight of the layer in one flat pass, the
                # loss gradient a_i·d_o only the rows of nonzero inputs.
                lr = scalars[0]
                if dense:
                    if scalars[2] != 0:  # ‖g‖² gets 2·<a·d, 2λ(θ − θ₀)> (old θ)
                        cross = np.float32(0.0)
                        for k in range(n_active[layer]):
                            i = nz[k]
                            v = a_in[i]
                            row = params[w + i * n_out : w + (i + 1) * n_out]
                            row0 = init_params[w + i * n_out : w + (i + 1) * n_out]
                            for o in range(n_out):
                                cross += v * d_out[o] * (row[o] - row0[o])
                        sq += 2 * scalars[2] * cross
                    sq += decay_block(params, init_params, w, n_in * n_out, scalars)
                norm_in = np.float32(0.0)
                for i in range(n_in):  # inactive inputs are 0: one contiguous pass, no gather
                    norm_in += a_in[i] * a_in[i]
                if fused:
                    dot_update_rows(params, w, nz, n_active[layer], a_in, -lr, d_out, delta_prev)
                else:
                    update_rows(params, w, nz, n_active[layer], a_in, -lr, d_out)
                norm_out = np.float32(0.0)
                for o in range(n_out):
                    norm_out += d_out[o] * d_out[o]
                sq += norm_in * norm_out
            for o in range(n_out):
                grow[o] = d_out[o]
            sq += update(
                params, offs[1, layer], grow, n_out, hp, scalars, opt_m, opt_v, init_params
            )
            if layer == 0:
                break
            # delta_prev is the gradient of the ReLU output (zero where it is inactive); the
            # gradient of the layer below's output z: through LayerNorm, or as it is.
            d_below = delta_prev[: sizes[layer]]
            if layer_norm:
                below = layer - 1
                n = sizes[layer]
                z = zhat[a_off[layer] : a_off[layer] + n]
                gamma = params[offs[2, below] : offs[2, below] + n]
                mean_dz = np.float32(0.0)
                mean_dzz = np.float32(0.0)
                for o in range(n):
                    dy[o] = d_below[o]
                    mean_dz += dy[o] * gamma[o]
                    mean_dzz += dy[o] * gamma[o] * z[o]
                mean_dz /= n
                mean_dzz /= n
                r = rstd[below]
                for o in range(n):
                    d_below[o] = r * (dy[o] * gamma[o] - mean_dz - z[o] * mean_dzz)
                    grow[o] = dy[o] * z[o]
                sq += update(
                    params, offs[2, below], grow, n, hp, scalars, opt_m, opt_v, init_params
                )
                for o in range(n):
                    grow[o] = dy[o]
                sq += update(
                    params, offs[3, below], grow, n, hp, scalars, opt_m, opt_v, init_params
                )
            delta, delta_prev = delta_prev, delta
        grad_norm[s] = np.sqrt(sq)

        if HAS_AFTER_STEP:
            after_step(states, net, step_acts, label, seed, step)
        if measured:
            for k in range(acts.shape[0]):
                acts[k] = step_acts[k]
            forward(params, sizes, offs, layer_norm, acts, a_off, zhat, rstd, active, n_active)
            after = cross_entropy(acts[a_off[n_layers] :], label, exps)[1]
            plasticity[s] = min(max(1.0 - after / ce, 0.0), 1.0) if ce > 0 else 0.0
        else:
            plasticity[s] = np.nan
        counters[C_STEP] += 1
