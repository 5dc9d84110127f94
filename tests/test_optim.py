"""ncplasticity.optim.SGD: torch.optim.SGD's update bit for bit, without torch._dynamo."""

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from ncplasticity.networks import MLP, ResNet18
from ncplasticity.optim import SGD


def _train(model, optimizer, steps=25, seed=0):
    generator = torch.Generator().manual_seed(seed)
    shape = (8, 1, 12, 12) if isinstance(model, ResNet18) else (8, 20)
    for _ in range(steps):
        x = torch.randn(shape, generator=generator)
        y = torch.randint(0, 10, (8,), generator=generator)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


@pytest.mark.parametrize(
    "options", [{}, {"weight_decay": 0.01}, {"momentum": 0.9, "weight_decay": 0.01}]
)
@pytest.mark.parametrize("network", ["mlp", "resnet"])
def test_weights_equal_torch_sgd_bit_for_bit(network, options):
    def build():
        torch.manual_seed(3)
        return MLP(20, [16, 16], 10) if network == "mlp" else ResNet18(1, 10, 2)

    ours, theirs = build(), build()
    _train(ours, SGD(ours.parameters(), lr=0.1, **options))
    _train(theirs, torch.optim.SGD(theirs.parameters(), lr=0.1, **options))
    for a, b in zip(ours.state_dict().values(), theirs.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_zero_grad_keeps_or_drops_the_gradients():
    model = MLP(20, [16], 10)
    optimizer = SGD(model.parameters(), lr=0.1)
    F.cross_entropy(model(torch.randn(4, 20)), torch.tensor([0, 1, 2, 3])).backward()
    optimizer.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.any() for p in model.parameters())
    optimizer.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    optimizer.step()  # no gradients: nothing moves, nothing fails


def test_a_resumed_optimiser_continues_bit_for_bit_and_reads_torch_sgd_states():
    torch.manual_seed(3)
    model = MLP(20, [16], 10)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    options = {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.02}
    through = SGD(model.parameters(), **options)
    _train(model, through, steps=10, seed=1)
    _train(model, through, steps=10, seed=2)
    expected = [p.clone() for p in model.parameters()]

    for saved_by in (SGD, torch.optim.SGD):
        model.load_state_dict(start)
        first = saved_by(model.parameters(), **options)
        _train(model, first, steps=10, seed=1)
        resumed = SGD(model.parameters(), lr=1.0)  # settings and buffers come from the state
        resumed.load_state_dict(first.state_dict())
        assert resumed.param_groups[0]["momentum"] == 0.9
        _train(model, resumed, steps=10, seed=2)
        for a, b in zip(model.parameters(), expected, strict=True):
            assert torch.equal(a, b), saved_by

    with pytest.raises(ValueError, match="3 parameters, this optimiser 4"):
        resumed.load_state_dict({"param_groups": [{"params": [0, 1, 2], "lr": 1.0}]})


def test_training_with_it_does_not_import_torch_dynamo():
    # What the class is for: any torch.optim optimiser imports torch._dynamo (2.5-3 s).
    script = (
        "import sys, torch\n"
        "from ncplasticity.networks import MLP\n"
        "from ncplasticity.optim import SGD\n"
        "model = MLP(20, [16], 10)\n"
        "optimizer = SGD(model.parameters(), lr=0.1, weight_decay=0.01)\n"
        "model(torch.randn(4, 20)).sum().backward()\n"
        "optimizer.step(); optimizer.zero_grad(); optimizer.state_dict()\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
