"""The paper's vanilla CNNs: C^k(n) = k conv layers of n filters, ReLU, one Linear.

``c3_32`` is RePr's C^3(32): conv 3→32→32→32 (3×3, padding 1, stride 1), ReLU
after each, no pooling, no BatchNorm, then Linear(32·32·32 → classes).

Two pooled variants of the same family (issue #26, RePr in the paper's own regime):

* ``c{k}_{n}p``: a 2×2 max-pool (stride 2) after each conv's ReLU, 3×3 convs (padding 1).
  The paper's Figure 1 (92 % train / 73 % test after 100 epochs, no memorisation) most
  likely came from such a net; 32×32 images end as 4×4 maps after three convs.
* ``c{k}_{n}a``: the first author's own code: 5×5 convs (padding 2), each followed by
  ReLU and a 3×3 max-pool of stride 2 (padding 1); 32×32 images also end as 4×4 maps.

The Linear's input size follows from the image size (``pooled_size``). A 2×2 pool
halves the map rounding down, so ``c{k}_{n}p`` needs images of at least 2**k pixels;
the 3×3/2 pool never empties a map.
"""

from __future__ import annotations

import re

import torch
import torch.nn as nn

from ..errors import PrunekitError

_NAME = re.compile(r"^c(\d+)_(\d+)([pa]?)$")

# variant suffix -> (kernel size, padding, pool kernel, pool stride, pool padding); "" has no pool
VARIANTS = {
    "": (3, 1, None, None, None),
    "p": (3, 1, 2, 2, 0),
    "a": (5, 2, 3, 2, 1),
}
DESCRIPTIONS = {
    "": "3×3 conv layers, no pooling",
    "p": "3×3 conv layers, each followed by a 2×2 max-pool (the paper's net)",
    "a": "5×5 conv layers, each followed by a 3×3 stride-2 max-pool (the first author's code)",
}


def pooled_size(size: int, depth: int, variant: str = "") -> int:
    """Side of the feature maps after ``depth`` conv (+ pool) stages on ``size``-pixel images."""
    _, _, kernel, stride, padding = VARIANTS[variant]
    for _ in range(depth if kernel else 0):
        size = (size + 2 * padding - kernel) // stride + 1
    return size


class VanillaCNN(nn.Module):
    def __init__(
        self,
        depth: int = 3,
        width: int = 32,
        num_classes: int = 10,
        in_channels: int = 3,
        image_size: int = 32,
        variant: str = "",
    ):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(repr(v) for v in VARIANTS)}, got {variant!r}")
        conv_kernel, conv_padding, pool_kernel, pool_stride, pool_padding = VARIANTS[variant]
        side = pooled_size(image_size, depth, variant)
        if side < 1:
            raise PrunekitError(
                f"{depth} 2×2 max-pools leave nothing of {image_size}-pixel images; use fewer layers "
                f"(at most {max(image_size.bit_length() - 1, 0)}) or larger images"
            )
        layers: list[nn.Module] = []
        for i in range(depth):  # the unpooled net's modules and their order (hence its init draws) stay as they were
            layers += [
                nn.Conv2d(in_channels if i == 0 else width, width, conv_kernel, padding=conv_padding),
                nn.ReLU(inplace=True),
            ]
            if pool_kernel:
                layers.append(nn.MaxPool2d(pool_kernel, stride=pool_stride, padding=pool_padding))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(width * side * side, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


def c3_32(num_classes: int = 10, in_channels: int = 3, image_size: int = 32) -> VanillaCNN:
    """C^3(32): RePr's three-layer, 32-filter CNN."""
    return VanillaCNN(3, 32, num_classes, in_channels, image_size)


class VanillaCNNFamily:
    """Provider for ``c{k}_{n}`` names (k conv layers of n filters), and the pooled
    ``c{k}_{n}p`` (2×2 max-pools) and ``c{k}_{n}a`` (5×5 convs, 3×3/2 max-pools)."""

    example = "c3_32"
    paper_names = ("c3_32", "c8_32", "c13_32", "c18_32", "c3_32p", "c3_32a")

    def list_names(self) -> list[str]:
        return list(self.paper_names)

    def resolve(self, name: str):
        m = _NAME.match(name)
        if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
            return None
        depth, width, variant = int(m.group(1)), int(m.group(2)), m.group(3)

        def factory(num_classes: int = 10, in_channels: int = 3, image_size: int = 32) -> VanillaCNN:
            return VanillaCNN(depth, width, num_classes, in_channels, image_size, variant)

        factory.__doc__ = f"C^{depth}({width}): {depth} {DESCRIPTIONS[variant]}, {width} filters each."
        return factory


family = VanillaCNNFamily()
