"""The output heads of a multi-head scenario (``task_incremental``): the network holds one
head, the run keeps the others, and a task's head is swapped in at its start."""

from __future__ import annotations

import torch


def zero_classifier(model) -> None:
    """A new head: the output layer's weight and bias set to zero (Dohare et al.)."""
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.zero_()


def switch_head(model, optimizer, heads: dict, head: int) -> None:
    """Make ``head`` the network's output layer. ``heads`` (saved with the run's state, so a
    resumed run swaps the same) holds ``"current"``, the head in the network, and every other
    head met so far: its weight, bias and their optimiser state. The head that leaves is stored
    there; the one that comes is taken from there, or is new: zero, with zero optimiser moments.
    Adam's step count is the run's for every head (the compiled loop keeps one count), so a
    head's bias correction is that of the run's step."""
    current = heads.get("current")
    if current == head:
        return
    parameters = {"weight": model.classifier.weight, "bias": model.classifier.bias}
    if current is not None:
        heads[current] = {
            name: (p.detach().clone(), _clone(optimizer.state.get(p, {})))
            for name, p in parameters.items()
        }
    stored = heads.pop(head, None)
    head_ids = {id(p) for p in parameters.values()}
    steps = [s["step"] for p, s in optimizer.state.items() if "step" in s and id(p) not in head_ids]
    with torch.no_grad():
        for name, p in parameters.items():
            value, state = (torch.zeros_like(p), {}) if stored is None else stored[name]
            p.copy_(value)
            optimizer.state.pop(p, None)
            if steps:  # Adam: moments travel with the head
                moments = {k: torch.zeros_like(p) for k in ("exp_avg", "exp_avg_sq")}
                optimizer.state[p] = {**moments, **state, "step": steps[0].clone()}
    heads["current"] = head


def _clone(state: dict) -> dict:
    return {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in state.items()}
