"""``nc_target``: holds the trace-ratio NC1 of the penultimate features near a target τ (ours,
DESIGN §3b), the causal manipulation of NC1 that ``nc_dial`` is not.

Per sample, with μ_c the bias-corrected running mean of the sample's class (momentum
``momentum``, not differentiated), μ_G the mean of the seen classes' μ_c and
s_B = mean_c ‖μ_c − μ_G‖² the between-class scatter over the seen classes,

    ρ = ‖h − μ_c‖² / s_B + ε,    term = λ · log cosh(log ρ − log τ),

ρ a one-sample estimate of ``nc1_trace_ratio`` (tr Σ_W / tr Σ_B). Its gradient with respect to
h is λ · tanh(log ρ − log τ) · 2(h − μ_c) / (‖h − μ_c‖² + ε·s_B): bounded in the log ratio, and
normalised by the between-class scatter, so shrinking every feature leaves ρ unchanged and
cannot satisfy it. ε (:data:`EPSILON`) keeps the log finite where a sample sits on its class
mean. The term is zero until the sample's class and at least one other have been seen.

The per-step ρ reads the features against running means that lag them (momentum 0.99: about a
hundred samples of the class), and the lag adds to ‖h − μ_c‖²: held at τ, the running ρ leaves
the probe's NC1 below it (about half of τ for targets above plain's NC1). So the term holds ρ at
a set point τ* that an integral controller moves after every task by the probe's measured
``nc1_trace_ratio`` N (the snapshot's, :meth:`on_probe`): log τ* += g·(log τ − log N), g
:data:`SETPOINT_GAIN`, τ* within a factor :data:`SETPOINT_RANGE` of τ; τ* starts at τ. The
instrument stays the assigned τ; τ* is how the run reaches it.
Logs ``nc_target_penalty`` (the task's mean term per sample) and ``nc_target_setpoint`` (τ* of
the task).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ncplasticity.continual.compiled import CompiledForm, units
from ncplasticity.continual.interventions._registry import NON_NEGATIVE, REGISTRY
from ncplasticity.continual.interventions.regularizers import RunningClassMeans

EPSILON = 1e-6  # added to ρ (a floor on ‖h − μ_c‖² of ε·s_B)
# The set point's controller: the share of the log error corrected after each task, and how
# far from the target the set point may go.
SETPOINT_GAIN = 0.5
SETPOINT_RANGE = 10.0
# The default strength λ. Measured with the set point's controller at the quick open-questions
# study's scale (configs/open_questions.yaml: 150 Permuted-MNIST tasks of 2,000 mnist5k digits,
# MLP 784-100×3-10, SGD lr 0.01; plain's median nc1_trace_ratio over tasks 10-149 0.5125;
# `python benchmarks/nc_target_doses.py`, seeds 1 and 2): the targets 0.7× and 1.4× plain's are
# held (achieved 0.99-1.00× and 0.95-0.96× of the target, online accuracy over tasks 1-20
# ≥ 0.94× plain's); 0.5× is held where the run survives (1.05×) but one seed of two turned
# degenerate: a pull toward the class means moves the active samples' units down while the
# ReLU's zeros get no gradient up, so units go dormant (0.75 of them) and the features die; 2×
# is reached only to 0.70× (the set point at its limit, 10×): the cross-entropy holds the
# classes together. At 1.0 the 0.5× target kills the features at once.
DEFAULT_STRENGTH = 0.3


@REGISTRY.register
class NCTarget(RunningClassMeans):
    """loss + λ·log cosh(log ρ − log τ), ρ = ‖h − μ_c‖² / s_B the sample's estimate of the
    trace-ratio NC1 of the penultimate features h (see the module docstring), at any batch
    size; holds ``nc1_trace_ratio`` near ``target`` τ while the network keeps learning. Logs
    ``nc_target_penalty``, the task's mean term."""

    name = "nc_target"
    nc_metric = "nc1_trace_ratio"
    parameters = {
        "target": {"type": "number", "exclusiveMinimum": 0},
        "strength": {**NON_NEGATIVE, "default": DEFAULT_STRENGTH},
        "momentum": {
            "type": "number",
            "exclusiveMinimum": 0,
            "exclusiveMaximum": 1,
            "default": 0.99,
        },
    }
    required = ("target",)
    penalty_column = "nc_target_penalty"
    mean_dtype = np.float64

    def __init__(self, **params):
        super().__init__(**params)
        p = self.params
        # The set point τ* (moved by on_probe), the strength and the momentum.
        self.settings = np.array([p["target"], p["strength"], p["momentum"]], np.float64)
        self.trained_setpoint = float(p["target"])
        self._scratch = None

    @property
    def momentum(self) -> float:
        return self.params["momentum"]

    def on_probe(self, ctx, features, labels, weight, bias):
        """Move the set point by the task's measured NC1 (the module docstring)."""
        from ncplasticity.nc import collapse_metrics

        achieved = collapse_metrics(features, labels, weight, bias)["nc1_trace_ratio"]
        self.trained_setpoint = float(self.settings[0])
        if not math.isfinite(achieved) or achieved <= 0:
            return
        target = self.params["target"]
        step = SETPOINT_GAIN * (math.log(target) - math.log(achieved))
        offset = math.log(self.settings[0] / target) + step
        self.settings[0] = target * math.exp(min(max(offset, 0.0), math.log(SETPOINT_RANGE)))

    def task_log(self, ctx):
        setpoint = self.trained_setpoint
        self.trained_setpoint = float(self.settings[0])
        return super().task_log(ctx) | {"nc_target_setpoint": setpoint}

    def state_dict(self):
        return super().state_dict() | {"setpoint": float(self.settings[0])}

    def _ensure(self, ctx):
        super()._ensure(ctx)
        if self._scratch is None or self._scratch.shape[0] != self.mean.shape[1]:
            self._scratch = np.zeros(self.mean.shape[1], np.float64)

    def _class_means(self) -> tuple[np.ndarray, float]:
        """(bias-corrected running means of every class, NaN rows for unseen ones; s_B over
        the seen classes, 0 with fewer than two)."""
        seen = self.count > 0
        means = np.full_like(self.mean, np.nan)
        correction = 1.0 - self.params["momentum"] ** self.count[seen].astype(np.float64)
        means[seen] = self.mean[seen] / correction[:, None]
        if seen.sum() < 2:
            return means, 0.0
        centred = means[seen] - means[seen].mean(0)
        return means, float(np.square(centred).sum(1).mean())

    def compiled_form(self, ctx):
        self._ensure(ctx)
        state = (self.settings, self.mean, self.count, self.penalty, self._scratch)
        return CompiledForm(
            state=state, feature_gradient=_target_gradient, after_step=_target_class_mean
        )

    def loss(self, ctx, features, logits, targets):
        import torch

        self._ensure(ctx)
        labels = targets.cpu().numpy()
        self.penalty[1] += len(labels)
        means, between = self._class_means()
        seen = self.count[labels] > 0
        if between <= 0 or not seen.any():
            return None
        h = features[torch.from_numpy(seen).to(features.device)].double()
        mu = torch.from_numpy(means[labels[seen]]).to(h.device)
        rho = (h - mu).square().sum(1) / between + EPSILON
        u = torch.log(rho) - math.log(self.settings[0])
        # log cosh u, written so that its gradient is tanh u exactly and it cannot overflow.
        a = u.abs()
        term = self.params["strength"] * (a + torch.log1p(torch.exp(-2 * a)) - math.log(2))
        self.penalty[0] += float(term.detach().sum())
        return (term.sum() / len(labels)).float()

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.settings[0] = self.trained_setpoint = state.get("setpoint", self.params["target"])
        self._scratch = None


# --- compiled form (numba; ncplasticity.continual.compiled.CompiledForm) ---


@njit(cache=True, fastmath=units.FASTMATH, error_model="numpy")
def _target_gradient(state, h, label, d_h):
    """Adds the gradient of λ·log cosh(log ρ − log τ) to ``d_h`` where the ReLU is active,
    and the term to the task's penalty (the module docstring)."""
    settings, mean, count, penalty, global_mean = state
    penalty[1] += 1
    if count[label] == 0:
        return
    setpoint, strength, momentum = settings[0], settings[1], settings[2]
    classes, width = mean.shape
    seen = 0
    global_mean[:] = 0.0
    for c in range(classes):
        if count[c] > 0:
            seen += 1
            correction = 1.0 - momentum ** count[c]
            for k in range(width):
                global_mean[k] += mean[c, k] / correction
    if seen < 2:
        return
    for k in range(width):
        global_mean[k] /= seen
    between = 0.0
    for c in range(classes):
        if count[c] > 0:
            correction = 1.0 - momentum ** count[c]
            for k in range(width):
                between += (mean[c, k] / correction - global_mean[k]) ** 2
    between /= seen
    if between <= 0:
        return
    correction = 1.0 - momentum ** count[label]
    dist = 0.0
    for k in range(width):
        dist += (h[k] - mean[label, k] / correction) ** 2
    u = np.log(dist / between + EPSILON) - np.log(setpoint)
    coef = strength * np.tanh(u) * 2.0 / (dist + EPSILON * between)
    for k in range(width):
        if h[k] != 0:
            d_h[k] += np.float32(coef * (h[k] - mean[label, k] / correction))
    a = abs(u)
    penalty[0] += strength * (a + np.log1p(np.exp(-2.0 * a)) - np.log(2.0))


@njit(cache=True, fastmath=units.FASTMATH, error_model="numpy")
def _target_class_mean(state, net, acts, label, seed, step):
    """The running mean of the sample's class takes the step's penultimate features."""
    settings, mean, count, penalty, global_mean = state
    momentum = settings[2]
    h = units.output(net, acts, units.hidden_layers(net) - 1)
    for k in range(h.shape[0]):
        mean[label, k] = momentum * mean[label, k] + (1 - momentum) * h[k]
    count[label] += 1
