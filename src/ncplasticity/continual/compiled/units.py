"""What a compiled form's ``after_step`` may read and change of the network, without knowing
the flat layout: views of a hidden layer's output, incoming and outgoing weights and biases,
and a unit's reset. ``net`` is the tuple the step loop passes to every ``after_step`` (the flat
parameters, the optimiser's moments and the layout); hidden layers count from 0 (the first
hidden layer) and a layer's units are its outputs."""

from __future__ import annotations

import numpy as np
from numba import njit

from ncplasticity.continual.compiled.constants import FASTMATH
from ncplasticity.continual.compiled.draws import fresh_weights

__all__ = ["FASTMATH"]  # the flags of the step loop, for compiled forms that want them


@njit(cache=True, error_model="numpy")
def parameters(net):
    """Every parameter of the network as one flat vector (in the wing's order)."""
    return net[0]


@njit(cache=True, error_model="numpy")
def hidden_layers(net):
    """How many hidden layers the network has."""
    return net[3].shape[0] - 2


@njit(cache=True, error_model="numpy")
def width(net, hidden):
    """How many units hidden layer ``hidden`` has."""
    return net[3][hidden + 1]


@njit(cache=True, error_model="numpy")
def fan_in(net, hidden):
    """How many inputs each unit of hidden layer ``hidden`` reads."""
    return net[3][hidden]


@njit(cache=True, error_model="numpy")
def total_units(net):
    """How many hidden units the network has in all (per-unit state spans them, layer by
    layer from the first)."""
    return net[3][1:-1].sum()


@njit(cache=True, error_model="numpy")
def first_unit(net, hidden):
    """Where hidden layer ``hidden``'s units start in per-unit state over all hidden units."""
    return net[3][1 : hidden + 1].sum()


@njit(cache=True, error_model="numpy")
def output(net, acts, hidden):
    """Hidden layer ``hidden``'s post-ReLU output in the step's activations ``acts``; the
    penultimate features are ``output(net, acts, hidden_layers(net) - 1)``."""
    start = net[5][hidden + 1]
    return acts[start : start + net[3][hidden + 1]]


@njit(cache=True, error_model="numpy")
def incoming(net, hidden):
    """Hidden layer ``hidden``'s weights as a flat view [fan_in · width]: input i's weights to
    the layer's units are entries i·width … (i + 1)·width − 1."""
    n = net[3][hidden] * net[3][hidden + 1]
    start = net[4][0, hidden]
    return net[0][start : start + n]


@njit(cache=True, error_model="numpy")
def outgoing(net, hidden, unit):
    """The weights from unit ``unit`` of hidden layer ``hidden`` to the next layer's units."""
    n_next = net[3][hidden + 2]
    start = net[4][0, hidden + 1] + unit * n_next
    return net[0][start : start + n_next]


@njit(cache=True, error_model="numpy")
def next_bias(net, hidden):
    """The bias of the layer that reads hidden layer ``hidden``'s output."""
    start = net[4][1, hidden + 1]
    return net[0][start : start + net[3][hidden + 2]]


@njit(cache=True, error_model="numpy")
def reset_unit(net, hidden, unit, key):
    """Unit ``unit`` of hidden layer ``hidden`` gets fresh incoming weights (Kaiming-uniform,
    drawn from ``key``: :func:`.draws.event_key`), zero bias and zero outgoing weights; the
    optimiser's moments of those weights are zeroed."""
    params, opt_m, opt_v, sizes, offs = net[0], net[1], net[2], net[3], net[4]
    n_in = sizes[hidden]
    n = sizes[hidden + 1]
    n_next = sizes[hidden + 2]
    draws = np.empty(n_in, np.float32)
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
