"""The continual intervention registry (hooks: :mod:`ncplasticity.interventions`; the
definitions and defaults are DESIGN §3b's).

Each intervention that acts on every step has two forms of one update: ``kernel_options``,
which switches it on in the compiled batch-1 loop (:mod:`.kernel`), and the plain PyTorch hooks
(``loss``, ``after_step``, optimiser options) that the autograd loop runs — for larger batches,
and as the reference the compiled form is checked against step by step. Random draws (fresh
weights, noise) come from the kernel's counter-based functions in both forms. Interventions
that act only at task boundaries run as hooks around either loop.

Every intervention says what it did in its task's log row (``task_log``). torch and numba are
imported inside the hooks: the workflow reads this registry while planning.
"""

from __future__ import annotations

import numpy as np

from ncplasticity import interventions as hooks
from ncplasticity.interventions import HookContext, Intervention, WeightDecay

REGISTRY = hooks.Registry(
    "continual",
    phases=("train",),
    hooks=(
        "optimizer_options",
        "loss",
        "after_step",
        "on_every",
        "on_task_start",
        "on_epoch_end",
        "task_log",
    ),
)

_NON_NEGATIVE = {"type": "number", "minimum": 0}


_POSITIVE_INT = {"type": "integer", "minimum": 1}
# The noise table's random stream: np.random.default_rng([seed, _NOISE_STREAM]).
_NOISE_STREAM = 5


def _squared_norm(arrays) -> float:
    return float(sum(np.square(np.asarray(a, dtype=np.float64)).sum() for a in arrays))


def _parameters(ctx: HookContext) -> list:
    return [p.detach().cpu().numpy() for p in ctx.model.parameters()]


def _initial_parameters(ctx: HookContext) -> list:
    try:
        return ctx.extra["initial_parameters"]
    except KeyError:
        raise ValueError(
            "l2_init needs the run's initial parameters (ctx.extra['initial_parameters'])"
        ) from None


@REGISTRY.register
class L2(WeightDecay):
    """SGD on loss + (λ/2)‖θ‖², i.e. weight decay λ (for Adam: L2 added to the gradient).
    Logs the penalty (λ/2)‖θ‖² at the task's end."""

    name = "l2"
    parameters = {"weight_decay": {**_NON_NEGATIVE, "default": 1e-4}}

    def task_log(self, ctx):
        return {"l2_penalty": self.params["weight_decay"] / 2 * _squared_norm(_parameters(ctx))}


@REGISTRY.register
class L2Init(Intervention):
    """Regenerative regularisation (Kumar et al. 2023): loss + λ‖θ − θ₀‖², θ₀ the run's initial
    parameters. Logs the penalty at the task's end."""

    name = "l2_init"
    parameters = {"weight_decay": {**_NON_NEGATIVE, "default": 1e-4}}

    def kernel_options(self, ctx):
        from ncplasticity.continual.online_sgd import flatten

        return {"init_decay": self.params["weight_decay"]}, {
            "init_params": flatten(ctx.model, _initial_parameters(ctx))
        }

    def loss(self, ctx, features, logits, targets):
        import torch

        initial = [torch.from_numpy(np.asarray(a)) for a in _initial_parameters(ctx)]
        return self.params["weight_decay"] * sum(
            (p - p0.to(p.device)).square().sum()
            for p, p0 in zip(ctx.model.parameters(), initial, strict=True)
        )

    def task_log(self, ctx):
        distance = [
            p - p0 for p, p0 in zip(_parameters(ctx), _initial_parameters(ctx), strict=True)
        ]
        return {"l2_init_penalty": self.params["weight_decay"] * _squared_norm(distance)}


@REGISTRY.register
class ShrinkPerturb(Intervention):
    """Shrink & perturb in one of two forms.

    ``every: task`` (Ash & Adams): at the start of every task after the first,
    θ ← shrink·θ + perturb·θ_fresh, θ_fresh a new initialisation seeded by (seed, task); logs
    ``shrink_perturb_applied``.
    ``every: step`` (Dohare et al.): every step, weight decay ``weight_decay`` in the optimiser
    and then Gaussian noise of std ``noise_std`` on every parameter; logs the task's
    ``shrink_perturb_noise`` (the std of the noise summed over its steps). The noise of step t
    for flat parameter p is ``table[(offset_t + p) mod T]``: a table of T = 2²² standard
    normals drawn once per run and an offset hashed from (seed, t) (:mod:`.kernel`), so the
    compiled and the reference loop add the same numbers; each step's noise is exactly
    N(0, σ²) per parameter, and steps sample the table at independent offsets.
    """

    name = "shrink_perturb"
    parameters = {
        "shrink": {**_NON_NEGATIVE, "default": 0.6},
        "perturb": {**_NON_NEGATIVE, "default": 0.01},
        "every": {"enum": ["task", "step"], "default": "task"},
        "weight_decay": {**_NON_NEGATIVE, "default": 1e-4},
        "noise_std": {**_NON_NEGATIVE, "default": 1e-5},
    }

    def __init__(self, **params):
        super().__init__(**params)
        self.every = None  # not a period in steps: the form
        self.step_form = self.params["every"] == "step"
        self.applied = 0
        self.task_start = 0
        self._table = None

    def optimizer_options(self):
        return {"weight_decay": self.params["weight_decay"]} if self.step_form else {}

    def on_task_start(self, ctx: HookContext) -> None:
        self.task_start = ctx.step
        if ctx.task > 0 and not self.step_form:
            hooks.shrink_and_perturb(
                ctx.model, ctx.fresh_model(0), self.params["shrink"], self.params["perturb"]
            )
            self.applied += 1

    def noise_table(self, seed: int) -> np.ndarray:
        from ncplasticity.continual import kernel

        if self._table is None or self._table[0] != seed:
            rng = np.random.default_rng([seed, _NOISE_STREAM])
            self._table = (seed, rng.standard_normal(kernel.NOISE_TABLE_SIZE, dtype=np.float32))
        return self._table[1]

    def kernel_options(self, ctx):
        if not self.step_form:
            return {}, {}
        return {"noise_std": self.params["noise_std"]}, {"noise_table": self.noise_table(ctx.seed)}

    def after_step(self, ctx, hidden, targets):
        if not self.step_form:
            return
        import torch

        from ncplasticity.continual import kernel
        from ncplasticity.continual.online_sgd import unflatten

        table = self.noise_table(ctx.seed)
        size = sum(p.numel() for p in ctx.model.parameters())
        offset = kernel.noise_offset(ctx.seed, ctx.step, len(table))
        noise = table[(offset + np.arange(size)) % len(table)]
        std = self.params["noise_std"]
        with torch.no_grad():
            for p, n in zip(ctx.model.parameters(), unflatten(ctx.model, noise), strict=True):
                p.add_(torch.from_numpy(n).to(p.device), alpha=std)

    def task_log(self, ctx):
        if self.step_form:
            std = self.params["noise_std"]
            return {"shrink_perturb_noise": std * np.sqrt(ctx.step - self.task_start)}
        applied, self.applied = self.applied, 0
        return {"shrink_perturb_applied": applied}

    def state_dict(self):
        return {"applied": self.applied, "task_start": self.task_start}

    def load_state_dict(self, state):
        self.applied, self.task_start = state["applied"], state["task_start"]


def _hidden_and_next(model, hidden: int):
    """(hidden layer ``hidden``'s Linear, the Linear that reads its output)."""
    layers = [*model.hidden, model.classifier]
    return layers[hidden], layers[hidden + 1]


def _reset_unit_torch(ctx: HookContext, hidden: int, unit: int, step: int) -> None:
    """The plain PyTorch form of ``kernel.reset_unit``: fresh Kaiming-uniform incoming weights
    (the kernel's draws for this event), zero bias, zero outgoing weights, zero Adam moments of
    those weights."""
    import torch

    from ncplasticity.continual import kernel

    layer, following = _hidden_and_next(ctx.model, hidden)
    fan_in = layer.weight.shape[1]
    draws = np.empty(fan_in, np.float32)
    key = np.uint64(kernel.event_key(ctx.seed, step, hidden, unit))
    kernel.fresh_weights(key, np.sqrt(6.0 / fan_in), draws)
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
        "tau": {**_NON_NEGATIVE, "default": 0.025},
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
        "replacement_rate": {**_NON_NEGATIVE, "default": 1e-4},
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
        from ncplasticity.continual import kernel

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
            count = int(self.counter[index] + kernel.CBP_SLACK)
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


@REGISTRY.register
class NCDial(Intervention):
    """A signed dial on within-class variability of the penultimate features h at any batch
    size (ours): loss + strength·r/(1 + r), r = ‖h − μ_c‖² / ‖μ_c‖², μ_c the bias-corrected
    running mean (momentum 0.99, not differentiated) of the sample's class. strength > 0 pulls
    each sample toward its class mean (collapse), < 0 pushes it away; the term is bounded and
    its gradient vanishes as r grows, so spreading cannot diverge. Logs ``nc_dial_penalty``,
    the task's mean term."""

    name = "nc_dial"
    parameters = {"strength": {"type": "number", "default": 1.0}}

    def __init__(self, **params):
        super().__init__(**params)
        self.mean = None
        self.count = None
        self.penalty = np.zeros(2)  # (sum of the term, steps)

    def _ensure(self, ctx):
        if self.mean is None:
            classes, width = ctx.model.classifier.weight.shape
            self.mean = np.zeros((classes, width), np.float32)
            self.count = np.zeros(classes, np.int64)

    def kernel_options(self, ctx):
        self._ensure(ctx)
        arrays = {"dial_mean": self.mean, "dial_count": self.count, "dial_penalty": self.penalty}
        return {"dial": self.params["strength"]}, arrays

    def loss(self, ctx, features, logits, targets):
        import torch

        from ncplasticity.continual.kernel import DIAL_MOMENTUM

        self._ensure(ctx)
        labels = targets.cpu().numpy()
        seen = self.count[labels] > 0
        self.penalty[1] += len(labels)
        if not seen.any():
            return None
        correction = 1.0 - DIAL_MOMENTUM ** self.count[labels[seen]].astype(np.float64)
        mu = torch.from_numpy(self.mean[labels[seen]] / correction[:, None].astype(np.float32))
        h = features[torch.from_numpy(seen).to(features.device)]
        mu = mu.to(h.device)
        r = (h - mu).square().sum(1) / (mu.square().sum(1) + 1e-12)
        term = self.params["strength"] * r / (1 + r)
        self.penalty[0] += float(term.detach().sum())
        return term.sum() / len(labels)

    def after_step(self, ctx, hidden, targets):
        from ncplasticity.continual.kernel import DIAL_MOMENTUM

        features = hidden[-1].cpu().numpy()
        for h, label in zip(features, targets.cpu().numpy(), strict=True):
            self.mean[label] = DIAL_MOMENTUM * self.mean[label] + (1 - DIAL_MOMENTUM) * h
            self.count[label] += 1

    def task_log(self, ctx):
        total, steps = self.penalty
        self.penalty[:] = 0
        return {"nc_dial_penalty": total / steps if steps else float("nan")}

    def state_dict(self):
        return {"mean": self.mean, "count": self.count, "penalty": self.penalty.copy()}

    def load_state_dict(self, state):
        self.mean, self.count = state["mean"], state["count"]
        self.penalty[:] = state["penalty"]
