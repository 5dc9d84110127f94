"""The continual MLP's parameters as one flat float32 vector in the compiled loop's layout
(:func:`.forward.layout`: each layer's weight transposed to [in, out], its bias, then
its LayerNorm weight and bias) and back."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ncplasticity.continual.compiled import forward
from ncplasticity.networks import MLP


def _slots(model: MLP) -> list[tuple[torch.Tensor, int, bool]]:
    """(parameter, offset in the flat vector, stored transposed) for every parameter of the
    MLP, in ``model.parameters()`` order."""
    layers = [*model.hidden, model.classifier]
    offs, _ = forward.layout(layer_sizes(model), model.layer_norm)
    where = {}
    for index, layer in enumerate(layers):
        where[id(layer.weight)] = (offs[0, index], True)
        where[id(layer.bias)] = (offs[1, index], False)
        if model.layer_norm and index < len(model.hidden):
            where[id(model.norms[index].weight)] = (offs[2, index], False)
            where[id(model.norms[index].bias)] = (offs[3, index], False)
    return [(p, *where[id(p)]) for p in model.parameters()]


def layer_sizes(model: MLP) -> np.ndarray:
    layers = [*model.hidden, model.classifier]
    return np.array([layers[0].in_features] + [layer.out_features for layer in layers], np.int64)


def flatten(model: MLP, arrays: Sequence | None = None) -> np.ndarray:
    """``arrays`` (one per parameter, ``model.parameters()`` order; default the parameters
    themselves) as one flat float32 vector in the compiled layout."""
    slots = _slots(model)
    if arrays is None:
        arrays = [p.detach().cpu().numpy() for p, _, _ in slots]
    flat = np.empty(sum(p.numel() for p, _, _ in slots), np.float32)
    for (p, start, transposed), array in zip(slots, arrays, strict=True):
        array = np.asarray(array, dtype=np.float32)
        source = array.T if transposed else array
        flat[start : start + p.numel()].reshape(source.shape)[...] = source  # one copy
    return flat


def unflatten(model: MLP, flat: np.ndarray) -> list[np.ndarray]:
    """The inverse of :func:`flatten`: one array per parameter, ``model.parameters()`` order."""
    return [np.ascontiguousarray(view) for view in _views(model, flat)]


def _views(model: MLP, flat: np.ndarray) -> list[np.ndarray]:
    """Each parameter's part of ``flat`` as a view in the parameter's shape."""
    views = []
    for p, start, transposed in _slots(model):
        shape = tuple(p.shape)[::-1] if transposed else tuple(p.shape)
        part = flat[start : start + p.numel()].reshape(shape)
        views.append(part.T if transposed else part)
    return views


def flat_parameters(model: MLP) -> tuple[np.ndarray, np.ndarray]:
    """The MLP's parameters as (flat float32 array, layer sizes) in the compiled layout."""
    return flatten(model), layer_sizes(model)


def load_flat_parameters(model: MLP, params: np.ndarray) -> None:
    """Write a flat array from :func:`flat_parameters` back into the MLP."""
    with torch.no_grad():  # a strided copy from the views: one pass over the weights
        for p, view in zip(model.parameters(), _views(model, params), strict=True):
            p.copy_(torch.from_numpy(view))
