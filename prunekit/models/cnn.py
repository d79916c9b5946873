"""The paper's vanilla CNNs: C^k(n) = k 3×3 conv layers of n filters, ReLU, one Linear.

``c3_32`` is RePr's C^3(32): conv 3→32→32→32 (3×3, padding 1, stride 1), ReLU
after each, no pooling, no BatchNorm, then Linear(32·32·32 → classes).
"""
from __future__ import annotations

import re

import torch
import torch.nn as nn

_NAME = re.compile(r"^c(\d+)_(\d+)$")


class VanillaCNN(nn.Module):
    def __init__(self, depth: int = 3, width: int = 32, num_classes: int = 10, in_channels: int = 3,
                 image_size: int = 32):
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(depth):
            layers += [nn.Conv2d(in_channels if i == 0 else width, width, 3, padding=1), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(width * image_size * image_size, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


def c3_32(num_classes: int = 10, in_channels: int = 3, image_size: int = 32) -> VanillaCNN:
    """C^3(32): RePr's three-layer, 32-filter CNN."""
    return VanillaCNN(3, 32, num_classes, in_channels, image_size)


class VanillaCNNFamily:
    """Provider for ``c{k}_{n}`` names (k conv layers of n filters)."""

    paper_names = ("c3_32", "c8_32", "c13_32", "c18_32")

    def list_names(self) -> list[str]:
        return list(self.paper_names)

    def resolve(self, name: str):
        m = _NAME.match(name)
        if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
            return None
        depth, width = int(m.group(1)), int(m.group(2))

        def factory(num_classes: int = 10, in_channels: int = 3, image_size: int = 32) -> VanillaCNN:
            return VanillaCNN(depth, width, num_classes, in_channels, image_size)

        factory.__doc__ = f"C^{depth}({width}): {depth} 3×3 conv layers of {width} filters."
        return factory


family = VanillaCNNFamily()
