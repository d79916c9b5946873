"""CIFAR ResNets (He et al. 2016, §4.2): 3 stages of 16/32/64 channels, 6n+2 layers.

Shortcuts that change shape use a 1×1 conv + BatchNorm projection, so that
channel coupling is visible to the dependency graph (the zero-padding variant
hides it inside a functional pad).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    def __init__(self, depth: int, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError("CIFAR ResNet depth must be 6n+2")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        blocks, cin = [], 16
        for stage, cout in enumerate((16, 32, 64)):
            for i in range(n):
                blocks.append(BasicBlock(cin, cout, 2 if stage > 0 and i == 0 else 1))
                cin = cout
        self.layers = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                self.prunekit_init(m, m.weight, None)

    @staticmethod
    @torch.no_grad()
    def prunekit_init(module: nn.Module, weight: torch.Tensor, generator: torch.Generator | None) -> bool:
        """This network's init, also for filters that return after a drop: He-normal (fan-out) convs,
        PyTorch's default elsewhere."""
        if not isinstance(module, nn.Conv2d):
            return False
        nn.init.kaiming_normal_(weight, mode="fan_out", nonlinearity="relu", generator=generator)
        return True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layers(x)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


def _factory(depth: int):
    def build(num_classes: int = 10, in_channels: int = 3, image_size: int = 32) -> CifarResNet:
        return CifarResNet(depth, num_classes, in_channels)

    build.__doc__ = f"CIFAR ResNet-{depth} (16/32/64 channels, projection shortcuts)."
    build.__name__ = f"resnet{depth}"
    return build


resnet20 = _factory(20)
resnet32 = _factory(32)
resnet56 = _factory(56)
resnet110 = _factory(110)
