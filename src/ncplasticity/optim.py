"""SGD, the update of ``torch.optim.SGD(params, lr, momentum=μ, weight_decay=λ)``, without
importing ``torch._dynamo``.

In torch 2.14 every ``torch.optim`` optimiser imports ``torch._dynamo`` when it is built
(``add_param_group`` is wrapped in ``torch._disable_dynamo``, which imports it on first
call): 2.5–3 s of every training job's start-up (a fine-tune of the default run trains for
about 15 s). Nothing here uses ``torch.compile``, so the warm-start loop and the continual runs use
this class wherever SGD is the update; Adam stays ``torch.optim.Adam``.

The update is torch's own, operation for operation: ``g ← ∇ + λ·θ`` (when λ ≠ 0), the
momentum buffer (when μ ≠ 0), then ``θ ← θ − lr·g``, as ``torch._foreach_*`` calls (what
``torch.optim.SGD`` runs on a GPU; on the CPU they run the same operations tensor by tensor),
so the weights equal ``torch.optim.SGD``'s bit for bit (tests/test_optim.py).
``param_groups``, ``state``, ``zero_grad``, ``state_dict`` and ``load_state_dict`` follow
``torch.optim.Optimizer`` (one parameter group; the state dicts are interchangeable).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import torch


class SGD:
    """SGD over one parameter group: ``lr``, ``weight_decay`` (L2 added to the gradient) and
    ``momentum`` (torch's heavy ball, without dampening or Nesterov: the buffer starts as the
    first gradient, then b ← μ·b + g, and the step is −lr·b)."""

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        lr: float,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
    ):
        params = list(params)
        if not params:
            raise ValueError("ncplasticity.optim.SGD: empty parameter list")
        self.param_groups = [
            {
                "params": params,
                "lr": float(lr),
                "momentum": float(momentum),
                "dampening": 0.0,
                "weight_decay": float(weight_decay),
                "nesterov": False,
                "maximize": False,
            }
        ]
        self.state: defaultdict = defaultdict(dict)  # per parameter: "momentum_buffer"

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.param_groups[0]["params"]:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.detach_().zero_()

    @torch.no_grad()
    def step(self) -> None:
        group = self.param_groups[0]
        params = [p for p in group["params"] if p.grad is not None]
        if not params:
            return
        grads = [p.grad for p in params]
        if group["weight_decay"] != 0:
            grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
        if group["momentum"] != 0:
            buffers = [self.state[p].get("momentum_buffer") for p in params]
            if all(b is not None for b in buffers):
                torch._foreach_mul_(buffers, group["momentum"])
                torch._foreach_add_(buffers, grads)
            else:  # the first step: each buffer starts as the gradient
                for i, (p, g) in enumerate(zip(params, grads, strict=True)):
                    if buffers[i] is None:
                        buffers[i] = self.state[p]["momentum_buffer"] = g.detach().clone()
                    else:
                        buffers[i].mul_(group["momentum"]).add_(g)
            grads = buffers
        torch._foreach_add_(params, grads, alpha=-group["lr"])

    def state_dict(self) -> dict:
        """torch.optim's layout: parameters as their indices."""
        group = self.param_groups[0]
        state = {i: dict(self.state[p]) for i, p in enumerate(group["params"]) if p in self.state}
        indices = list(range(len(group["params"])))
        return {"state": state, "param_groups": [{**group, "params": indices}]}

    def load_state_dict(self, state: dict) -> None:
        (saved,) = state["param_groups"]
        group = self.param_groups[0]
        if len(saved["params"]) != len(group["params"]):
            raise ValueError(
                f"ncplasticity.optim.SGD: the saved state has {len(saved['params'])} parameters, "
                f"this optimiser {len(group['params'])}"
            )
        for key in ("lr", "momentum", "weight_decay"):
            group[key] = float(saved.get(key, 0.0))
        self.state.clear()
        for index, entries in state.get("state", {}).items():
            p = group["params"][int(index)]
            self.state[p] = {
                k: v.to(device=p.device, dtype=p.dtype) if torch.is_tensor(v) else v
                for k, v in entries.items()
            }
