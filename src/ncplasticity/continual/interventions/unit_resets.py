"""Unit resets among the continual interventions: ``redo`` and ``cbp`` (continual backprop),
with their plain PyTorch form of a unit's reset (see the package docstring for the two forms)."""

from __future__ import annotations

import numpy as np
from numba import njit

from ncplasticity.continual.compiled import CompiledForm, draws, units
from ncplasticity.continual.interventions._registry import NON_NEGATIVE, REGISTRY
from ncplasticity.interventions import HookContext, Intervention

_POSITIVE_INT = {"type": "integer", "minimum": 1}
# continual backprop's replacement counter may sit a rounding error below a whole unit (e.g.
# 0.9 + 0.1); the slack makes both forms replace at the same step.
CBP_SLACK = 1e-9


def _hidden_and_next(model, hidden: int):
    """(hidden layer ``hidden``'s Linear, the Linear that reads its output)."""
    layers = [*model.hidden, model.classifier]
    return layers[hidden], layers[hidden + 1]


def _reset_unit_torch(ctx: HookContext, hidden: int, unit: int, step: int) -> None:
    """The plain PyTorch form of ``compiled.units.reset_unit``: fresh Kaiming-uniform incoming
    weights (the compiled loop's draws for this event), zero bias, zero outgoing weights, zero
    Adam moments of those weights."""
    import torch

    layer, following = _hidden_and_next(ctx.model, hidden)
    fan_in = layer.weight.shape[1]
    fresh = np.empty(fan_in, np.float32)
    key = np.uint64(draws.event_key(ctx.seed, step, hidden, unit))
    draws.fresh_weights(key, np.sqrt(6.0 / fan_in), fresh)
    with torch.no_grad():
        layer.weight[unit] = torch.from_numpy(fresh).to(layer.weight.device)
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
        self.settings = np.array([self.params["every"], self.params["tau"]], np.float64)

    def compiled_form(self, ctx):
        self._ensure(ctx)
        state = (self.settings, self.units["redo_sum"], self.count)
        return CompiledForm(state=state, after_step=_redo_after_step)

    def after_step(self, ctx, hidden, targets):
        self._ensure(ctx)
        for index, h in enumerate(hidden):
            self._layer(ctx, "redo_sum", index)[:] += h.abs().sum(0).double().cpu().numpy()
        if (ctx.step + 1) % self.params["every"]:
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
        self.settings = np.array(
            [self.params[k] for k in ("replacement_rate", "maturity", "decay")], np.float64
        )

    def _ensure(self, ctx):
        super()._ensure(ctx)
        if self.counter is None:
            self.counter = np.zeros(len(ctx.model.hidden))

    def compiled_form(self, ctx):
        self._ensure(ctx)
        rows = tuple(self.units[row] for row in self._rows)
        state = (self.settings, *rows, self.counter, self.count)
        return CompiledForm(state=state, after_step=_cbp_after_step)

    def after_step(self, ctx, hidden, targets):
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
            count = int(self.counter[index] + CBP_SLACK)
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


# --- compiled forms (numba; ncplasticity.continual.compiled.CompiledForm) ---


@njit(cache=True, error_model="numpy")
def _redo_after_step(state, net, acts, label, seed, step):
    """ReDo: the step's activations add to each unit's sum; after every period the units whose
    score E|h_i| / mean_k E|h_k| is ≤ τ are reset (a layer without any activation is reset
    whole) and the sums restart."""
    settings, sums, resets = state
    layers = units.hidden_layers(net)
    for hidden in range(layers):
        start = units.first_unit(net, hidden)
        h = units.output(net, acts, hidden)
        for k in range(h.shape[0]):
            sums[start + k] += h[k]
    if (step + 1) % np.int64(settings[0]) != 0:
        return
    tau = settings[1]
    for hidden in range(layers):
        start = units.first_unit(net, hidden)
        layer_sums = sums[start : start + units.width(net, hidden)]
        mean = layer_sums.mean()
        for unit in range(layer_sums.shape[0]):
            if mean == 0 or layer_sums[unit] / mean <= tau:
                units.reset_unit(net, hidden, unit, draws.event_key(seed, step, hidden, unit))
                resets[0] += 1
        layer_sums[:] = 0


# No fastmath: a contracted counter update would replace at other steps.
@njit(cache=True, error_model="numpy")
def _cbp_after_step(state, net, acts, label, seed, step):
    """Continual backprop (Dohare et al. 2024, ``lop/algos/gnt.py``, utility
    'adaptable_contribution', accumulated replacement counts) after the step."""
    settings, util_all, age_all, mean_all, counter, replaced = state
    rate, maturity, decay = settings[0], settings[1], settings[2]
    # From this age on, 1 − decay**age rounds to exactly 1.0 (decay**age ≤ 2⁻⁵⁴): skipping
    # the pow for the (mostly old) units changes no bit and made a cbp run's tasks 12 % faster.
    settled = np.ceil(np.log(2.0**-54) / np.log(decay))  # decay is in (0, 1)
    while decay**settled > 2.0**-54:
        settled += 1
    for hidden in range(units.hidden_layers(net)):
        n_in = units.fan_in(net, hidden)
        n = units.width(net, hidden)
        incoming = units.incoming(net, hidden)
        in_mag = np.zeros(n, np.float32)
        for i in range(n_in):
            row = incoming[i * n : (i + 1) * n]
            for u in range(n):
                in_mag[u] += abs(row[u])
        start = units.first_unit(net, hidden)
        util = util_all[start : start + n]
        age = age_all[start : start + n]
        mean = mean_all[start : start + n]
        h = units.output(net, acts, hidden)
        corrected = np.empty(n)  # bias-corrected utility
        mean_act = np.empty(n)  # bias-corrected mean activation
        eligible = 0
        for u in range(n):
            outgoing = units.outgoing(net, hidden, u)
            n_next = outgoing.shape[0]
            out_mag = 0.0
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
            eligible += age[u] > maturity
        if eligible == 0:
            continue
        counter[hidden] += rate * eligible
        count = int(counter[hidden] + CBP_SLACK)
        counter[hidden] -= count
        bias = units.next_bias(net, hidden)
        for _ in range(min(count, eligible)):
            lowest = -1
            for u in range(n):
                if age[u] > maturity and (lowest < 0 or corrected[u] < corrected[lowest]):
                    lowest = u
            # Its mean contribution moves into the next layer's bias (Dohare et al.'s intent;
            # their code zeroes the mean before reading it), then the unit is fresh.
            outgoing = units.outgoing(net, hidden, lowest)
            for k in range(outgoing.shape[0]):
                bias[k] += outgoing[k] * mean_act[lowest]
            key = draws.event_key(seed, step, hidden, lowest)
            units.reset_unit(net, hidden, lowest, key)
            util[lowest] = 0
            mean[lowest] = 0
            age[lowest] = 0
            replaced[0] += 1
