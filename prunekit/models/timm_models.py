"""Any timm model as ``timm:<name>``, built with ``pretrained=False`` (no download)."""
from __future__ import annotations

import torch.nn as nn


class TimmModels:
    def list_names(self) -> list[str]:
        import timm

        return [f"timm:{n}" for n in timm.list_models()]

    def resolve(self, name: str):
        import timm

        arch = name.split(":", 1)[1]
        if arch not in timm.list_models():
            return None

        def factory(num_classes: int = 10, in_channels: int = 3, image_size: int = 32) -> nn.Module:
            return timm.create_model(arch, pretrained=False, num_classes=num_classes, in_chans=in_channels)

        factory.__doc__ = f"timm {arch} (random init)"
        return factory


provider = TimmModels()
