import pytest
import torch
import torch.nn as nn


class TinyBNNet(nn.Module):
    """conv-BN-ReLU x2 with a residual add, then a Linear: small enough for fast tests."""

    def __init__(self, width: int = 8, classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, width, 3, padding=1)
        self.bn3 = nn.BatchNorm2d(width)
        self.fc = nn.Linear(width * 8 * 8, classes)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)) + x)
        x = torch.relu(self.bn3(self.conv3(x)))
        return self.fc(torch.flatten(x, 1))


@pytest.fixture
def tiny_bn():
    torch.manual_seed(0)
    return TinyBNNet()


@pytest.fixture
def example8():
    return torch.randn(2, 3, 8, 8)
