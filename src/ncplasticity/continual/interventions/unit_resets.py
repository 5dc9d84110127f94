"""Unit resets among the continual interventions: ``redo`` and ``cbp`` (continual backprop),
with their plain PyTorch form of a unit's reset (see the package docstring for the two forms)."""

from __future__ import annotations

import numpy as np

from ncplasticity.continual.interventions._registry import NON_NEGATIVE, REGISTRY
from ncplasticity.interventions import HookContext, Intervention

_POSITIVE_INT = {"type": "integer", "minimum": 1}


def _hidden_and_next(model, hidden: int):
    """(hidden layer ``hidden``'s Linear, the Linear that reads its output)."""
    layers = [*model.hidden, model.classifier]
    return layers[hidden], layers[hidden + 1]


def _reset_unit_torch(ctx: HookContext, hidden: int, unit: int, step: int) -> None:
    """The plain PyTorch form of ``kernel_events.reset_unit``: fresh Kaiming-uniform incoming
    weights (the compiled loop's draws for this event), zero bias, zero outgoing weights, zero
    Adam moments of those weights."""
    import torch

    from ncplasticity.continual import kernel_events

    layer, following = _hidden_and_next(ctx.model, hidden)
    fan_in = layer.weight.shape[1]
    draws = np.empty(fan_in, np.float32)
    key = np.uint64(kernel_events.event_key(ctx.seed, step, hidden, unit))
    kernel_events.fresh_weights(key, np.sqrt(6.0 / fan_in), draws)
    with torch.no_grad():
        layer.weight[unit] = torch.from_numpy(draws).to(layer.weight.device)
        layer.bias[unit] = 0
        following.weight[:, unit] = 0
    state = ctx.optimizer.state if ctx.optimizer is not None else {}
    for param, index in ((layer.weight, unit), (layer.bias, unit), (following.weight, None)):
        for key in ("exp_avg", "exp_avg_sq"):
            if key in state.get(param, {}):
                if index is None:
                    state[param][key][:, unit] = 0
                else:
                    state[param][key][index] = 0


class _UnitState(Intervention):
    """Per-hidden-unit state over all hidden layers, concatenated (float64)."""

    _rows: tuple[str, ...] = ()

    def __init__(self, **params):
        super().__init__(**params)
        self.units: dict[str, np.ndarray] = {}
        self.count = np.zeros(1, np.int64)

    def _ensure(self, ctx):
        if not self.units:
            total = sum(layer.out_features for layer in ctx.model.hidden)
            self.units = {row: np.zeros(total) for row in self._rows}

    def _layer(self, ctx, row: str, hidden: int) -> np.ndarray:
        start = sum(layer.out_features for layer in ctx.model.hidden[:hidden])
        return self.units[row][start : start + ctx.model.hidden[hidden].out_features]

    def state_dict(self):
        return {"units": dict(self.units), "count": self.count.copy()}

    def load_state_dict(self, state):
        self.units = {k: np.asarray(v) for k, v in state["units"].items()}
        self.count[:] = state["count"]


@REGISTRY.register
class Redo(_UnitState):
    """ReDo (Sokar et al. 2023): after every ``every`` steps, each hidden unit's score
    s_i = E|h_i| / mean_k E|h_k| over its layer (expectation over those steps' samples); units
    with s_i ≤ tau get fresh incoming weights (the initial distribution), zero bias, zero
    outgoing weights and zero Adam moments. Logs ``redo_resets`` per task."""

    name = "redo"
    parameters = {
        "tau": {**NON_NEGATIVE, "default": 0.025},
        "every": {**_POSITIVE_INT, "default": 1000},
    }
    _rows = ("redo_sum",)

    def __init__(self, **params):
        super().__init__(**params)
        self.period = self.params["every"]
        self.every = None  # acts inside the step loop, not through on_every

    def kernel_options(self, ctx):
        self._ensure(ctx)
        options = {"redo_every": self.period, "redo_tau": self.params["tau"]}
        return options, {"redo_sum": self.units["redo_sum"], "redo_resets": self.count}

    def after_step(self, ctx, hidden, targets):
        self._ensure(ctx)
        for index, h in enumerate(hidden):
            self._layer(ctx, "redo_sum", index)[:] += h.abs().sum(0).double().cpu().numpy()
        if (ctx.step + 1) % self.period:
            return
        tau = self.params["tau"]
        for index in range(len(hidden)):
            sums = self._layer(ctx, "redo_sum", index)
            mean = sums.mean()
            for unit in range(len(sums)):
                if mean == 0 or sums[unit] / mean <= tau:
                    _reset_unit_torch(ctx, index, unit, ctx.step)
                    self.count[0] += 1
            sums[:] = 0

    def task_log(self, ctx):
        resets, self.count[0] = int(self.count[0]), 0
        return {"redo_resets": resets}


@REGISTRY.register
class ContinualBackprop(_UnitState):
    """Continual backprop (Dohare et al. 2024, ``lop/algos/gnt.py``): per hidden unit a
    utility u ← η·u + (1 − η)·|h − f̂|·mean_k|w_out,k| / mean_j|w_in,j| (their
    'adaptable_contribution'; η = ``decay``, f̂ the bias-corrected running mean of h) and an
    age; units older than ``maturity`` are eligible; each step adds ``replacement_rate`` ×
    eligible units to a counter per layer, and each whole unit in it replaces the eligible
    unit of lowest bias-corrected utility: its mean contribution f̂·w_out moves into the next
    layer's bias, then fresh incoming weights, zero outgoing weights, utility and age reset.
    Adam's moments of the unit's weights are zeroed (the step count is global in torch's Adam,
    where Dohare's AdamGnT keeps one per weight). Logs ``cbp_replaced`` per task."""

    name = "cbp"
    parameters = {
        "replacement_rate": {**NON_NEGATIVE, "default": 1e-4},
        "maturity": {**_POSITIVE_INT, "default": 100},
        "decay": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1, "default": 0.99},
    }
    _rows = ("cbp_util", "cbp_age", "cbp_mean")

    def __init__(self, **params):
        super().__init__(**params)
        self.counter = None

    def _ensure(self, ctx):
        super()._ensure(ctx)
        if self.counter is None:
            self.counter = np.zeros(len(ctx.model.hidden))

    def kernel_options(self, ctx):
        self._ensure(ctx)
        options = {
            "cbp_rate": self.params["replacement_rate"],
            "cbp_maturity": self.params["maturity"],
            "cbp_decay": self.params["decay"],
        }
        return options, {**self.units, "cbp_counter": self.counter, "cbp_replaced": self.count}

    def after_step(self, ctx, hidden, targets):
        from ncplasticity.continual import kernel_events

        self._ensure(ctx)
        decay = self.params["decay"]
        maturity = self.params["maturity"]
        for index, h in enumerate(hidden):
            layer, following = _hidden_and_next(ctx.model, index)
            in_mag = layer.weight.detach().abs().mean(1).cpu().numpy()
            out_mag = following.weight.detach().abs().mean(0).double().cpu().numpy()
            h = h.mean(0).double().cpu().numpy()
            util = self._layer(ctx, "cbp_util", index)
            age = self._layer(ctx, "cbp_age", index)
            mean = self._layer(ctx, "cbp_mean", index)
            age += 1
            util *= decay
            correction = 1 - decay**age
            mean[:] = decay * mean + (1 - decay) * h
            mean_act = mean / correction
            safe = np.where(in_mag > 0, in_mag, 1.0)
            util += (1 - decay) * np.where(in_mag > 0, out_mag * np.abs(h - mean_act) / safe, 0)
            corrected = util / correction
            eligible = age > maturity
            if not eligible.any():
                continue
            self.counter[index] += self.params["replacement_rate"] * eligible.sum()
            count = int(self.counter[index] + kernel_events.CBP_SLACK)
            self.counter[index] -= count
            for _ in range(min(count, int(eligible.sum()))):
                unit = int(np.flatnonzero(age > maturity)[np.argmin(corrected[age > maturity])])
                self._move_contribution(following, unit, mean_act[unit])
                _reset_unit_torch(ctx, index, unit, ctx.step)
                util[unit] = mean[unit] = age[unit] = 0
                self.count[0] += 1

    @staticmethod
    def _move_contribution(following, unit: int, mean_activation: float) -> None:
        import torch

        with torch.no_grad():
            following.bias += following.weight[:, unit] * float(mean_activation)

    def state_dict(self):
        return {**super().state_dict(), "counter": self.counter}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.counter = state["counter"]

    def task_log(self, ctx):
        replaced, self.count[0] = int(self.count[0]), 0
        return {"cbp_replaced": replaced}
