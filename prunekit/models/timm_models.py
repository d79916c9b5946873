"""Any timm model as ``timm:<name>``, built with ``pretrained=False`` (nothing is downloaded).

For small inputs (≤ 64 px, e.g. CIFAR) the stem is adapted where the
architecture allows: a ResNet-style 7×7/2 conv + max-pool becomes a 3×3/1 conv
with no pool; a single 3×3/2 stem conv (EfficientNet, MobileNet, RegNet) gets
stride 1; other stems (patchify, multi-branch) are left as they are.
What was done is kept in ``model.prunekit_stem`` and shown in the run log.
"""
from __future__ import annotations

import torch.nn as nn


def adapt_stem(model: nn.Module) -> str:
    conv1, pool = getattr(model, "conv1", None), getattr(model, "maxpool", None)
    if isinstance(conv1, nn.Conv2d) and conv1.stride != (1, 1) and pool is not None:
        model.conv1 = nn.Conv2d(conv1.in_channels, conv1.out_channels, 3, 1, 1, bias=conv1.bias is not None)
        model.maxpool = nn.Identity()
        return "conv1 7x7/2 + max-pool -> 3x3/1, no pool"
    stem = getattr(model, "conv_stem", None)  # EfficientNet, MobileNet
    if stem is None and isinstance(getattr(getattr(model, "stem", None), "conv", None), nn.Conv2d):
        stem = model.stem.conv  # RegNet-style ConvNormAct stem
    if isinstance(stem, nn.Conv2d) and max(stem.kernel_size) <= 3 and stem.stride != (1, 1):
        old, stem.stride = stem.stride, (1, 1)
        return f"stem conv stride {old} -> 1"
    return "stem unchanged"


class TimmModels:
    def list_names(self) -> list[str]:
        import timm

        return [f"timm:{n}" for n in timm.list_models()]

    def resolve(self, name: str):
        import timm

        arch = name.split(":", 1)[1]
        if arch not in timm.list_models():
            return None

        def factory(num_classes: int = 10, in_channels: int = 3, image_size: int = 32,
                    small_input: bool | None = None) -> nn.Module:
            model = timm.create_model(arch, pretrained=False, num_classes=num_classes, in_chans=in_channels)
            small = image_size <= 64 if small_input is None else small_input
            model.prunekit_stem = adapt_stem(model) if small else "stem unchanged"
            return model

        factory.__doc__ = f"timm {arch} (random init)"
        return factory


provider = TimmModels()
