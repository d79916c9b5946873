"""Any timm model as ``timm:<name>``: random init, or timm's published weights with ``--pretrained``.

For small inputs (≤ 64 px, e.g. CIFAR) the stem is adapted where the
architecture allows: a ResNet-style 7×7/2 conv + max-pool becomes a 3×3/1 conv
with no pool; a single 3×3/2 stem conv (EfficientNet, MobileNet, RegNet) gets
stride 1; other stems (patchify, multi-branch) are left as they are.
What was done is kept in ``model.prunekit_stem`` and shown in the run log; a replaced stem conv
starts from random weights even with ``--pretrained``.
"""

from __future__ import annotations

from pathlib import Path

import torch.nn as nn

from ..errors import PrunekitError, first_line


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


def create(arch: str, num_classes: int, in_channels: int, pretrained: str | None) -> nn.Module:
    """``timm.create_model``; ``pretrained``: None (random init), ``"cache"`` (timm's published weights,
    from the local Hugging Face cache or downloaded) or the path of a weights file. A classifier of
    another size than the weights' is left at its random init, as timm does."""
    import timm

    if not pretrained:
        return timm.create_model(arch, pretrained=False, num_classes=num_classes, in_chans=in_channels)
    overlay = {} if pretrained == "cache" else {"pretrained_cfg_overlay": {"file": str(pretrained)}}
    if overlay and not Path(pretrained).is_file():
        raise PrunekitError(
            f"--pretrained {pretrained}: no such file; give timm weights (.safetensors/.pth) or "
            f"--pretrained alone for the local cache"
        )
    try:
        return timm.create_model(arch, pretrained=True, num_classes=num_classes, in_chans=in_channels, **overlay)
    except Exception as exc:  # noqa: BLE001 - hub, network and file errors alike
        where = "the local Hugging Face cache and cannot be downloaded" if not overlay else str(pretrained)
        raise PrunekitError(
            f"cannot load timm's weights for {arch} from {where} ({first_line(exc)}); on a machine with internet run "
            f"once with --pretrained to fill the cache, or pass the weights file: --pretrained PATH"
        ) from None


def default_image_size(model: str) -> int | None:
    """The input size timm's config gives ``timm:<arch>`` (e.g. 224), or None for other models."""
    if not model.startswith("timm:"):
        return None
    import timm

    try:
        cfg = timm.models.get_pretrained_cfg(model.split(":", 1)[1])
    except Exception:  # noqa: BLE001 - a model without a registered config
        return None
    size = getattr(cfg, "input_size", None) if cfg is not None else None
    return int(size[-1]) if size else None


class TimmModels:
    """Any of timm's ~1,300 models, random init or timm's weights with --pretrained; for inputs of 64 px
    or less the stem is adapted (see `prunekit list --models 'timm:*'` for the names)."""

    example = "timm:resnet18"

    def list_names(self) -> list[str]:
        import timm

        return [f"timm:{n}" for n in timm.list_models()]

    def resolve(self, name: str):
        import timm

        arch = name.split(":", 1)[1]
        if arch not in timm.list_models():
            return None

        def factory(
            num_classes: int = 10,
            in_channels: int = 3,
            image_size: int = 32,
            small_input: bool | None = None,
            pretrained: str | None = None,
        ) -> nn.Module:
            model = create(arch, num_classes, in_channels, pretrained)
            small = image_size <= 64 if small_input is None else small_input
            model.prunekit_stem = adapt_stem(model) if small else "stem unchanged"
            return model

        factory.__doc__ = f"timm {arch} (random init)"
        return factory


provider = TimmModels()
