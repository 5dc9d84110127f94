"""Regularisers among the continual interventions: ``l2``, ``l2_init``, ``shrink_perturb`` and
``nc_dial`` (see the package docstring for their two forms)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from numba import njit

from ncplasticity import interventions as hooks
from ncplasticity.continual.compiled import CompiledForm, draws, units
from ncplasticity.continual.interventions._registry import NON_NEGATIVE, REGISTRY
from ncplasticity.interventions import HookContext, Intervention, WeightDecay

# The noise table's random stream: np.random.default_rng([seed, _NOISE_STREAM]).
_NOISE_STREAM = 5
DIAL_MOMENTUM = 0.99  # running class means of nc_dial


def _squared_norm(arrays) -> float:
    return float(sum(np.square(np.asarray(a, dtype=np.float64)).sum() for a in arrays))


def _parameters(ctx: HookContext) -> list:
    return [p.detach().cpu().numpy() for p in ctx.model.parameters()]


def _initial_parameters(ctx: HookContext) -> list:
    if ctx.initial_parameters is None:
        raise ValueError("l2_init needs the run's initial parameters (ctx.initial_parameters)")
    return ctx.initial_parameters


@REGISTRY.register
class L2(WeightDecay):
    """SGD on loss + (λ/2)‖θ‖², i.e. weight decay λ (for Adam: L2 added to the gradient).
    Logs the penalty (λ/2)‖θ‖² at the task's end."""

    name = "l2"
    parameters = {"weight_decay": {**NON_NEGATIVE, "default": 1e-4}}

    def task_log(self, ctx):
        return {"l2_penalty": self.params["weight_decay"] / 2 * _squared_norm(_parameters(ctx))}


@REGISTRY.register
class L2Init(Intervention):
    """Regenerative regularisation (Kumar et al. 2023): loss + λ‖θ − θ₀‖², θ₀ the run's initial
    parameters. Logs the penalty at the task's end."""

    name = "l2_init"
    parameters = {"weight_decay": {**NON_NEGATIVE, "default": 1e-4}}

    def compiled_form(self, ctx):
        return CompiledForm(decay_to_initial=self.params["weight_decay"])

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
    normals drawn once per run and an offset hashed from (seed, t)
    (:mod:`ncplasticity.continual.compiled.draws`), so the compiled and the reference loop add
    the same numbers; each step's noise is exactly N(0, σ²) per parameter, and steps sample the
    table at independent offsets.
    """

    name = "shrink_perturb"
    parameters = {
        "shrink": {**NON_NEGATIVE, "default": 0.6},
        "perturb": {**NON_NEGATIVE, "default": 0.01},
        "every": {"enum": ["task", "step"], "default": "task"},
        "weight_decay": {**NON_NEGATIVE, "default": 1e-4},
        "noise_std": {**NON_NEGATIVE, "default": 1e-5},
    }

    def __init__(self, **params):
        super().__init__(**params)
        self.step_form = self.params["every"] == "step"
        self.applied = 0
        self.task_start = 0
        self._table = None
        self._noise_std = np.array([self.params["noise_std"]])

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
        if self._table is None or self._table[0] != seed:
            rng = np.random.default_rng([seed, _NOISE_STREAM])
            self._table = (
                seed,
                rng.standard_normal(draws.NOISE_TABLE_SIZE, dtype=np.float32),
            )
        return self._table[1]

    def compiled_form(self, ctx):
        if not self.step_form:
            return None
        state = (self._noise_std, self.noise_table(ctx.seed))
        return CompiledForm(state=state, after_step=_add_step_noise)

    def after_step(self, ctx, hidden, targets):
        if not self.step_form:
            return
        import torch

        from ncplasticity.continual.compiled.flat_parameters import unflatten

        table = self.noise_table(ctx.seed)
        size = sum(p.numel() for p in ctx.model.parameters())
        offset = draws.noise_offset(ctx.seed, ctx.step, len(table))
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


class RunningClassMeans(Intervention):
    """The base of penalties on the penultimate features against the running mean of each class
    (not differentiated): the means' plain PyTorch update, the task's mean term in the log
    column ``penalty_column``, and the state a resume needs. A subclass sets the means'
    ``mean_dtype`` and ``momentum``; ``penalty`` is (sum of the term, steps or samples)."""

    penalty_column: ClassVar[str]
    mean_dtype: ClassVar[type] = np.float32

    def __init__(self, **params):
        super().__init__(**params)
        self.mean = None  # uncorrected running means [classes, width]
        self.count = None
        self.penalty = np.zeros(2)

    @property
    def momentum(self) -> float:
        raise NotImplementedError

    def _ensure(self, ctx):
        if self.mean is None:
            classes, width = ctx.model.classifier.weight.shape
            self.mean = np.zeros((classes, width), self.mean_dtype)
            self.count = np.zeros(classes, np.int64)

    def after_step(self, ctx, hidden, targets):
        momentum = self.momentum
        features = hidden[-1].cpu().numpy().astype(self.mean_dtype, copy=False)
        for h, label in zip(features, targets.cpu().numpy(), strict=True):
            self.mean[label] = momentum * self.mean[label] + (1 - momentum) * h
            self.count[label] += 1

    def task_log(self, ctx):
        total, steps = self.penalty
        self.penalty[:] = 0
        return {self.penalty_column: total / steps if steps else float("nan")}

    def state_dict(self):
        return {"mean": self.mean, "count": self.count, "penalty": self.penalty.copy()}

    def load_state_dict(self, state):
        if state["mean"] is not None:  # None: saved before the first step
            self.mean = np.asarray(state["mean"], self.mean_dtype)
            self.count = np.asarray(state["count"], np.int64)
        self.penalty[:] = state["penalty"]


@REGISTRY.register
class NCDial(RunningClassMeans):
    """A signed dial on within-class variability of the penultimate features h at any batch
    size (ours): loss + strength·r/(1 + r), r = ‖h − μ_c‖² / ‖μ_c‖², μ_c the bias-corrected
    running mean (momentum 0.99, not differentiated) of the sample's class. strength > 0 pulls
    each sample toward its class mean (collapse), < 0 pushes it away; the term is bounded and
    its gradient vanishes as r grows, so spreading cannot diverge. Logs ``nc_dial_penalty``,
    the task's mean term.

    Kept for reproducibility, not a manipulation of NC1: ‖μ_c‖ is the class mean's distance
    from the origin, not class separation, so a class-agnostic collapse (every feature shrunk)
    satisfies it and positive strengths kill the features. ``nc_target`` is the manipulation."""

    name = "nc_dial"
    nc_metric = "nc1"
    parameters = {"strength": {"type": "number", "default": 1.0}}
    penalty_column = "nc_dial_penalty"
    momentum = DIAL_MOMENTUM

    def __init__(self, **params):
        super().__init__(**params)
        self.strength = np.array([self.params["strength"]])

    def compiled_form(self, ctx):
        self._ensure(ctx)
        state = (self.strength, self.mean, self.count, self.penalty)
        return CompiledForm(
            state=state, feature_gradient=_dial_gradient, after_step=_dial_class_mean
        )

    def loss(self, ctx, features, logits, targets):
        import torch

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


# --- compiled forms (numba; ncplasticity.continual.compiled.CompiledForm) ---


@njit(cache=True, fastmath=units.FASTMATH, error_model="numpy")
def _add_step_noise(state, net, acts, label, seed, step):
    """shrink_perturb's step form: params[p] += std · table[(offset + p) mod len(table)], in
    row views (a computed index would keep LLVM from vectorising)."""
    settings, table = state
    params = units.parameters(net)
    std = np.float32(settings[0])
    offset = draws.noise_offset(seed, step, table.shape[0])
    n = params.shape[0]
    first = min(n, table.shape[0] - offset)
    head = params[:first]
    source = table[offset : offset + first]
    for p in range(first):
        head[p] += std * source[p]
    done = first
    while done < n:  # wrap around the table
        chunk = min(n - done, table.shape[0])
        part = params[done : done + chunk]
        for p in range(chunk):
            part[p] += std * table[p]
        done += chunk


@njit(cache=True, fastmath=units.FASTMATH, error_model="numpy")
def _dial_gradient(state, h, label, d_h):
    """nc_dial: adds the gradient of strength·r/(1 + r), r = ‖h − μ_c‖² / ‖μ_c‖² (μ_c the
    bias-corrected running mean of the sample's class, not differentiated), to ``d_h`` where
    the ReLU is active, and the term to the task's penalty. Its gradient is bounded (it
    vanishes as r grows), so a negative strength spreads the class without diverging."""
    settings, mean, count, penalty = state
    penalty[1] += 1
    if count[label] == 0:
        return
    strength = np.float32(settings[0])
    correction = 1.0 - DIAL_MOMENTUM ** count[label]
    mu_sq = 0.0
    dist = 0.0
    for k in range(h.shape[0]):
        mu = mean[label, k] / correction
        mu_sq += mu * mu
        dist += (h[k] - mu) ** 2
    mu_sq += 1e-12
    r = dist / mu_sq
    coef = np.float32(strength * 2.0 / ((1.0 + r) ** 2 * mu_sq))
    for k in range(h.shape[0]):
        if h[k] != 0:
            d_h[k] += coef * (h[k] - np.float32(mean[label, k] / correction))
    penalty[0] += strength * r / (1.0 + r)


@njit(cache=True, fastmath=units.FASTMATH, error_model="numpy")
def _dial_class_mean(state, net, acts, label, seed, step):
    """nc_dial's running mean of the sample's class takes the step's penultimate features."""
    settings, mean, count, penalty = state
    h = units.output(net, acts, units.hidden_layers(net) - 1)
    for k in range(h.shape[0]):
        mean[label, k] = DIAL_MOMENTUM * mean[label, k] + (1 - DIAL_MOMENTUM) * h[k]
    count[label] += 1
