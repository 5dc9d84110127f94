"""The continual MLP's parameters as one flat float32 vector in the compiled loop's layout
(:func:`.forward.layout`: each layer's weight transposed to [in, out], its bias, then
its LayerNorm weight and bias) and back."""

from __future__ import annotations

import weakref
from collections.abc import Sequence

import numpy as np
import torch

from ncplasticity.continual.compiled import forward
from ncplasticity.networks import MLP


class Plan:
    """Where each parameter of one MLP lives in the flat vector: its layer sizes, the offsets
    of :func:`.forward.layout`, the flat length, and per parameter (in ``model.parameters()``
    order) its start and whether it is stored transposed. It keeps one flat vector of its own
    with each parameter's view into it, which :meth:`gather` and :meth:`scatter` reuse."""

    def __init__(self, model: MLP, parameters: tuple[torch.nn.Parameter, ...]):
        layers = [*model.hidden, model.classifier]
        self.parameters = parameters
        self.shapes = tuple(tuple(p.shape) for p in parameters)
        self.sizes = np.array(
            [layers[0].in_features] + [layer.out_features for layer in layers], np.int64
        )
        self.offsets, self.length = forward.layout(self.sizes, model.layer_norm)
        where = {}
        for index, layer in enumerate(layers):
            where[id(layer.weight)] = (int(self.offsets[0, index]), True)
            where[id(layer.bias)] = (int(self.offsets[1, index]), False)
            if model.layer_norm and index < len(model.hidden):
                where[id(model.norms[index].weight)] = (int(self.offsets[2, index]), False)
                where[id(model.norms[index].bias)] = (int(self.offsets[3, index]), False)
        self.slots = tuple(where[id(p)] for p in parameters)
        self._buffer = np.empty(self.length, np.float32)
        self._views = self.views(self._buffer)
        self._tensors = [torch.from_numpy(view) for view in self._views]

    def describes(self, parameters: tuple) -> bool:
        return len(parameters) == len(self.parameters) and all(
            p is q and tuple(p.shape) == shape
            for p, q, shape in zip(parameters, self.parameters, self.shapes, strict=True)
        )

    def views(self, flat: np.ndarray) -> list[np.ndarray]:
        """Each parameter's part of ``flat`` as a view in the parameter's shape."""
        views = []
        for shape, (start, transposed) in zip(self.shapes, self.slots, strict=True):
            part = flat[start : start + int(np.prod(shape))]
            views.append(part.reshape(shape[::-1]).T if transposed else part.reshape(shape))
        return views

    def gather(self) -> np.ndarray:
        """The parameters copied into the plan's own flat vector (returned; the next call
        overwrites it)."""
        for view, p in zip(self._views, self.parameters, strict=True):
            view[...] = p.detach().cpu().numpy()
        return self._buffer

    def scatter(self, flat: np.ndarray) -> None:
        """``flat`` (the plan's own vector or any other in its layout) copied into the
        parameters."""
        own = flat is self._buffer
        sources = self._tensors if own else [torch.from_numpy(v) for v in self.views(flat)]
        with torch.no_grad():  # a strided copy from the views: one pass over the weights
            for p, source in zip(self.parameters, sources, strict=True):
                p.copy_(source)


# One plan per model, made again when its parameters are replaced or reshaped: a job calls
# the compiled loop once a chunk of steps, and rebuilding the layout and the views at every
# call cost more than the copies themselves (~0.2 ms of a 0.6 ms call).
_PLANS: weakref.WeakKeyDictionary[MLP, Plan] = weakref.WeakKeyDictionary()


def plan(model: MLP) -> Plan:
    """The model's :class:`Plan` (cached while its parameters stay the same objects)."""
    parameters = tuple(model.parameters())
    cached = _PLANS.get(model)
    if cached is None or not cached.describes(parameters):
        cached = _PLANS[model] = Plan(model, parameters)
    return cached


def flatten(model: MLP, arrays: Sequence | None = None) -> np.ndarray:
    """``arrays`` (one per parameter, ``model.parameters()`` order; default the parameters
    themselves) as a new flat float32 vector in the compiled layout."""
    layout = plan(model)
    if arrays is None:
        return layout.gather().copy()
    flat = np.empty(layout.length, np.float32)
    for view, array in zip(layout.views(flat), arrays, strict=True):
        view[...] = array  # one (strided) copy
    return flat


def unflatten(model: MLP, flat: np.ndarray) -> list[np.ndarray]:
    """The inverse of :func:`flatten`: one array per parameter, ``model.parameters()`` order."""
    return [np.ascontiguousarray(view) for view in plan(model).views(flat)]


def flat_parameters(model: MLP) -> tuple[np.ndarray, np.ndarray]:
    """The MLP's parameters as (flat float32 array, layer sizes) in the compiled layout."""
    return flatten(model), plan(model).sizes


def load_flat_parameters(model: MLP, params: np.ndarray) -> None:
    """Write a flat array from :func:`flat_parameters` back into the MLP."""
    plan(model).scatter(params)
