"""The paper's networks: the Permuted-MNIST MLP and the CIFAR-style ResNet-18.

Both expose ``features(x)`` (penultimate representation) and ``classifier`` (the last
``nn.Linear``), which is what the feature store records.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class MLP(nn.Module):
    """784 -> hidden... -> classes with ReLU after each hidden layer (after a LayerNorm with
    ``layer_norm``).

    As in the paper's code: Kaiming-uniform weights, with the ReLU gain √2 for the hidden
    layers and gain 1 for the output layer; zero biases.
    Penultimate features are the output of the last hidden ReLU.
    """

    def __init__(
        self,
        in_features: int = 784,
        hidden_sizes=(100, 100, 100),
        num_classes: int = 10,
        layer_norm: bool = False,
    ):
        super().__init__()
        sizes = [in_features, *hidden_sizes]
        self.layer_norm = layer_norm
        self.hidden = nn.ModuleList(
            nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(b) for b in hidden_sizes) if layer_norm else None
        self.classifier = nn.Linear(sizes[-1], num_classes)
        for layer in self.hidden:
            nn.init.kaiming_uniform_(layer.weight, nonlinearity="relu")
            nn.init.zeros_(layer.bias)
        # The output layer has no ReLU after it: gain 1, as the paper's code
        # (kaiming_uniform_(nonlinearity="linear")).
        nn.init.kaiming_uniform_(self.classifier.weight, nonlinearity="linear")
        nn.init.zeros_(self.classifier.bias)

    def pre_and_post_activations(
        self, x: torch.Tensor
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """(pre-activations, activations) of every hidden layer, first to last, in one forward
        pass: each layer's ``nn.Linear`` output (before any LayerNorm and the ReLU) and its
        ReLU output (the last is ``features(x)``)."""
        pre, post = [], []
        h = x.flatten(1)
        for i, layer in enumerate(self.hidden):
            z = layer(h)
            h = torch.relu(self.norms[i](z) if self.layer_norm else z)
            pre.append(z)
            post.append(h)
        return pre, post

    def hidden_activations(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Output of every hidden ReLU, first to last (the last is ``features(x)``)."""
        return self.pre_and_post_activations(x)[1]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.hidden_activations(x)[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """CIFAR-style ResNet-18 as in the paper's code: 3x3 stride-1 stem, then a 3x3 stride-2
    max-pool, four stages of two basic blocks, global average pooling.

    ``width`` is the first stage's channel count (64 in the paper); the penultimate
    features are ``8 * width`` wide (512 in the paper).
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 10, width: int = 64):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, 1, 1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )
        layers, in_planes = [], width
        for i, stride in enumerate([1, 2, 2, 2]):
            planes = width * 2**i
            layers += [BasicBlock(in_planes, planes, stride), BasicBlock(planes, planes, 1)]
            in_planes = planes
        self.layers = nn.Sequential(*layers)
        self.feature_dim = in_planes
        self.classifier = nn.Linear(in_planes, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(nn.functional.adaptive_avg_pool2d(self.layers(self.stem(x)), 1), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def parameter_arrays(model: nn.Module) -> list[np.ndarray]:
    """The parameters as float32 numpy arrays (copies), in ``model.parameters()`` order: what
    plasticity measures read (e.g. the distance from the initial weights)."""
    return [p.detach().float().cpu().numpy().copy() for p in model.parameters()]
