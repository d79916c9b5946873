"""Built-in models (registered through the ``prunekit.models`` entry points)."""

from .cnn import VanillaCNN, VanillaCNNFamily, c3_32
from .resnet_cifar import CifarResNet, resnet20, resnet32, resnet56, resnet110

__all__ = ["VanillaCNN", "VanillaCNNFamily", "c3_32", "CifarResNet", "resnet20", "resnet32", "resnet56", "resnet110"]
