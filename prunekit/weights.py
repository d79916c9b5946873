"""A run's model with its starting weights: random, a model's published weights
(``--pretrained``), or those of a finished run, an export or a state_dict file (``--init-from``)."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import torch
import torch.nn as nn

from . import registry
from .errors import PrunekitError, first_line


def build_with_weights(cfg, num_classes: int, shape: tuple[int, int, int]) -> nn.Module:
    factory = registry.get("models", cfg.model)
    c, h, _ = shape
    kwargs = {}
    if cfg.pretrained:
        if "pretrained" not in inspect.signature(factory).parameters:
            raise PrunekitError(
                f"model {cfg.model} has no published weights to load (--pretrained is for timm models); "
                f"start from your own with --init-from FILE"
            )
        kwargs["pretrained"] = cfg.pretrained
    model = factory(num_classes=num_classes, in_channels=c, image_size=h, **kwargs)
    if cfg.init_from:
        model = init_from(model, cfg, torch.zeros((1,) + tuple(shape)))
    return model


def init_from(model: nn.Module, cfg, example: torch.Tensor) -> nn.Module:
    """``model`` with the weights at ``cfg.init_from``: a run folder (its last checkpoint), a folder
    written by ``prunekit export`` (the model is cut to the export's shape first) or a state_dict file."""
    path = Path(cfg.init_from)
    if path.is_dir() and (path / "pruned.pt").exists():
        from .export import apply_pruned, read_pruned

        record = read_pruned(path)
        source = record["config"]
        if source.get("model") != cfg.model:
            raise PrunekitError(
                f"{path} is an export of model {source.get('model')}, not {cfg.model}; "
                f"run with --model {source.get('model')}"
            )
        return apply_pruned(
            model,
            record,
            example,
            exclude=source.get("exclude", []),
            exclude_first=bool(source.get("exclude_first", False)),
        )
    if path.is_dir():
        ckpt = path / "checkpoint.pt"
        if not ckpt.exists():
            raise PrunekitError(
                f"{path} holds no checkpoint.pt (nor an export's pruned.pt); give a finished run's "
                f"folder, an export folder or a state_dict file"
            )
        saved = json.loads((path / "config.json").read_text()).get("model") if (path / "config.json").exists() else None
        if saved is not None and saved != cfg.model:
            raise PrunekitError(f"{path} trained model {saved}, not {cfg.model}; run with --model {saved}")
        state = _load(ckpt)["model"]
    elif path.is_file():
        state = _load(path)
        for key in ("model", "state_dict"):  # a checkpoint that wraps its state_dict
            if isinstance(state, dict) and isinstance(state.get(key), dict):
                state = state[key]
    else:
        raise PrunekitError(
            f"--init-from {path}: no such file or folder; give a run folder, an export folder or a state_dict file"
        )
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise PrunekitError(
            f"the weights in {path} do not fit model {cfg.model} ({first_line(exc)}); give weights "
            f"of the same architecture and number of classes"
        ) from None
    return model


def _load(path: Path):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unreadable or not a torch file
        raise PrunekitError(
            f"cannot read weights from {path} ({first_line(exc)}); give a file written by "
            f"torch.save(model.state_dict(), ...)"
        ) from None
