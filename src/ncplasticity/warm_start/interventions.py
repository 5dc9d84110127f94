"""The warm-start intervention registry (hooks: :mod:`ncplasticity.interventions`).

``phase`` says where an intervention acts: ``warmup`` (loss terms, optimiser options) or
``finetune`` (``before_finetune``: applied to each warm-up checkpoint before it is fine-tuned).
torch is imported inside the hooks: the workflow reads this registry while planning.
"""

from __future__ import annotations

from ncplasticity import interventions as hooks
from ncplasticity.interventions import HookContext, Intervention, WeightDecay
from ncplasticity.registry import Registry

REGISTRY = Registry(
    "warm_start",
    kind="intervention",
    phases=("warmup", "finetune"),
    hooks=("optimizer_options", "loss", "on_epoch_end", "before_finetune"),
)

_NON_NEGATIVE = {"type": "number", "minimum": 0}


class _BatchNC1Penalty(Intervention):
    """Shared by the NC1 regularisers: the penalty of the mini-batch's NC1 (computed with
    gradients on its penultimate features). Logs the batch NC1 through ``ctx.extra``."""

    phase = "warmup"

    def penalty(self, nc1):
        raise NotImplementedError

    def loss(self, ctx: HookContext, features, logits, targets):
        from ncplasticity.nc_penalties import batch_nc1

        nc1 = batch_nc1(features, targets)
        ctx.extra["batch_nc1"] = nc1
        if not nc1.requires_grad:  # fewer than two classes in the batch: NC1 undefined
            return features.new_zeros(())
        return self.penalty(nc1)


@REGISTRY.register
class NCReg(_BatchNC1Penalty):
    """The paper's regulariser: loss − λ·min(NC1_batch, cap). It destabilises training."""

    name = "nc_reg"
    nc_metric = "nc1"
    parameters = {
        "lam": {**_NON_NEGATIVE, "default": 0.05},
        "cap": {"type": "number", "exclusiveMinimum": 0, "default": 200},
    }

    def penalty(self, nc1):
        from ncplasticity.nc_penalties import paper_nc_penalty

        return paper_nc_penalty(nc1, self.params["lam"], self.params["cap"])


@REGISTRY.register
class NCRegStable(_BatchNC1Penalty):
    """Ours: λ·max(0, log(target) − log NC1_batch), pulls batch NC1 back up to ``target``."""

    name = "nc_reg_stable"
    nc_metric = "nc1"
    parameters = {
        "lam": _NON_NEGATIVE,
        "target": {"type": "number", "exclusiveMinimum": 0},
    }
    required = ("lam", "target")

    def penalty(self, nc1):
        from ncplasticity.nc_penalties import stable_nc_penalty

        return stable_nc_penalty(nc1, self.params["lam"], self.params["target"])


class _SignedCollapsePenalty(Intervention):
    """Shared by the NC2 and NC3 regularisers: strength · distance, a bounded distance from the
    collapse geometry (see :mod:`ncplasticity.nc_penalties`). A positive strength pulls toward
    it, a negative one pushes away; as the distance is bounded (by ``bound``) and invariant to
    the scale of the weights and features, the term lies in [−|strength|·bound, |strength|·bound]
    and a push cannot diverge by inflating a norm."""

    phase = "warmup"
    bound: float

    def distance(self, ctx: HookContext, features, targets):
        raise NotImplementedError

    def loss(self, ctx: HookContext, features, logits, targets):
        strength = self.params.get("strength", self.parameters["strength"]["default"])
        return strength * self.distance(ctx, features, targets)


@REGISTRY.register
class NC2Reg(_SignedCollapsePenalty):
    """strength · ‖G/‖G‖_F − E‖_F, G = WWᵀ of the classifier, E the simplex ETF's unit-norm
    Gram matrix (the paper's NC2, ``nc2_etf_weights``); the distance lies in [0, √2]. It acts
    on the classifier only. Default config (6 epochs): strength ±1 moves ``nc2_etf_weights``
    from 0.41-0.44 to 0.014 / 1.20, test accuracy unchanged."""

    name = "nc2_reg"
    nc_metric = "nc2_etf_weights"
    parameters = {"strength": {"type": "number", "default": 1.0}}
    bound = 2**0.5

    def distance(self, ctx: HookContext, features, targets):
        from ncplasticity.nc_penalties import nc2_etf_distance

        return nc2_etf_distance(ctx.model.classifier.weight)


@REGISTRY.register
class NC3Reg(_SignedCollapsePenalty):
    """strength · ‖W/‖W‖_F − M̃/‖M̃‖_F‖_F² (self-duality, ``nc3``) with M̃ the centred class
    means of the mini-batch's penultimate features over the classes present and W the
    classifier's rows of those classes; the distance lies in [0, 4] (0 with one class).

    Bounded, a push can still outweigh the cross-entropy: its best is W = −M̃ (distance 4), a
    classifier anti-aligned with the class means, i.e. accuracy below chance. Default config
    (6 epochs): strength 0.1 / −0.1 moves ``nc3`` from 0.20-0.24 to 0.14 / 0.32-0.40 at plain
    accuracy; −0.2 is still fine, −0.3 already drives training accuracy to 0.02."""

    name = "nc3_reg"
    nc_metric = "nc3"
    parameters = {"strength": {"type": "number", "default": 0.1}}
    bound = 4.0

    def distance(self, ctx: HookContext, features, targets):
        from ncplasticity.nc_penalties import nc3_self_duality

        return nc3_self_duality(ctx.model.classifier.weight, features, targets)


@REGISTRY.register
class L2(WeightDecay):
    """L2 weight decay during warm-up: SGD on loss + (λ/2)‖θ‖²."""

    name = "l2"
    phase = "warmup"
    parameters = {"weight_decay": {**_NON_NEGATIVE, "default": 0.0005}}


@REGISTRY.register
class ShrinkPerturb(Intervention):
    """Shrink & perturb (Ash & Adams) of each checkpoint before fine-tuning:
    θ ← shrink·θ + perturb·θ_fresh; BatchNorm running statistics are kept."""

    name = "shrink_perturb"
    phase = "finetune"
    parameters = {
        "shrink": {**_NON_NEGATIVE, "default": 0.6},
        "perturb": {**_NON_NEGATIVE, "default": 0.01},
    }

    def before_finetune(self, ctx: HookContext) -> None:
        hooks.shrink_and_perturb(
            ctx.model, ctx.fresh_model(0), self.params["shrink"], self.params["perturb"]
        )
