"""Run configuration: defaults, a method's recipe, a config file and CLI overrides,
resolved into one flat record with every value written out."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import registry
from .errors import PrunekitError

COMPONENTS = ("ranker", "reinitializer", "schedule")
CHOICES = {
    "optimizer": ("sgd", "adamw"),
    "lr_schedule": ("constant", "step", "cosine"),
    "device": ("auto", "cpu", "cuda"),
    "precision": ("fp32", "bf16", "fp16"),
}


@dataclass
class RunConfig:
    model: str = "c3_32"
    dataset: str = "cifar10"
    method: str = "standard"
    ranker: str | None = None
    reinitializer: str | None = None
    schedule: str | None = None
    ranker_args: dict = field(default_factory=dict)
    reinitializer_args: dict = field(default_factory=dict)
    schedule_args: dict = field(default_factory=dict)
    epochs: int = 100
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    lr_schedule: str = "constant"
    lr_milestones: list = field(default_factory=list)  # epochs for "step"; empty = 50 % and 75 %
    lr_gamma: float = 0.1
    augment: bool = False
    seed: int = 0
    device: str = "auto"
    precision: str = "fp32"
    channels_last: bool = False
    data_dir: str | None = None
    exclude: list = field(default_factory=list)
    exclude_first: bool = False
    eval_batch_size: int = 1000
    out: str = "runs"
    name: str | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def run_name(self) -> str:
        if self.name:
            return self.name
        return f"{self.method}_{self.model}_{self.dataset}_seed{self.seed}".replace(":", "-").replace("/", "-")


FIELDS = {f.name for f in dataclasses.fields(RunConfig)}


def read_config_file(path: str | Path) -> dict:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise PrunekitError(f"cannot read config file {path} ({exc.strerror}); give a readable .yaml or .json file") from None
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:  # noqa: BLE001 - any parse error
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PrunekitError(f"cannot parse config file {path} ({first}); it must be a YAML or JSON mapping") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PrunekitError(f"config file {path} must hold a mapping of option: value, not a {type(data).__name__}")
    return data


def parse_value(text: str) -> Any:
    """``--set`` values: YAML scalars and lists (0.3, true, [a, b], layer)."""
    import yaml

    try:
        return yaml.safe_load(text)
    except Exception:  # noqa: BLE001
        return text


def component_class(kind: str, name: str):
    return registry.get(kind + "s", name)


def resolve(values: dict, overrides: dict | None = None, optional: frozenset = frozenset()) -> RunConfig:
    """Build a validated RunConfig from config-file ``values`` then ``overrides``.

    Keys may be top-level fields, ``<component>.<option>`` or a bare component
    option (routed to the one component that takes it). Component options named
    in ``optional`` are dropped, not refused, when this run's components do not
    take them (a grid's shared options, e.g. ``s1`` beside ``standard``)."""
    merged: dict[str, Any] = {}
    routed: dict[str, dict] = {k: {} for k in COMPONENTS}
    for source in (values, overrides or {}):
        for key, value in source.items():
            _place(key, value, merged, routed)
    unknown = [k for k in merged if k not in FIELDS]
    if unknown:
        raise PrunekitError(
            f"unknown config key(s) {', '.join(sorted(unknown))}; valid: {', '.join(sorted(FIELDS))}, "
            f"or an option of the ranker/reinitializer/schedule (see `prunekit list --options`)"
        )
    cfg = RunConfig(**merged)
    method = registry.get("methods", cfg.method)
    for kind in COMPONENTS:
        if getattr(cfg, kind) is None:
            setattr(cfg, kind, getattr(method, kind))
    pending = {k: dict(getattr(cfg, f"{k}_args") or {}) for k in COMPONENTS}
    for kind in COMPONENTS:
        explicit = routed[kind].pop("__explicit__", {})
        if getattr(cfg, kind) is None or not explicit:
            explicit = {k: v for k, v in explicit.items() if f"{kind}.{k}" not in optional}
        else:
            takes = component_class(kind, getattr(cfg, kind)).options()
            explicit = {k: v for k, v in explicit.items() if k in takes or f"{kind}.{k}" not in optional}
        pending[kind].update(explicit)
    bare = {}
    for kind in COMPONENTS:
        bare.update(routed[kind])
    for key, value in bare.items():
        takers = [k for k in COMPONENTS if getattr(cfg, k) and key in component_class(k, getattr(cfg, k)).options()]
        if not takers and key in optional:
            continue
        if not takers:
            comps = ", ".join(f"{k} {getattr(cfg, k)}" for k in COMPONENTS if getattr(cfg, k))
            raise PrunekitError(
                f"no component of this run takes option {key!r}; valid: the config keys "
                f"{', '.join(sorted(FIELDS))}, or an option of {comps}: "
                f"{', '.join(sorted(_all_options(cfg))) or '(none)'} (see `prunekit list --options`)"
            )
        if len(takers) > 1:
            raise PrunekitError(f"option {key!r} is ambiguous ({', '.join(takers)}); write it as {takers[0]}.{key}")
        pending[takers[0]][key] = value
    for kind in COMPONENTS:
        name = getattr(cfg, kind)
        if name is None:
            if pending[kind]:
                raise PrunekitError(f"method {cfg.method} has no {kind}, so {kind} options {sorted(pending[kind])} do not apply")
            setattr(cfg, f"{kind}_args", {})
            continue
        cls = component_class(kind, name)
        args = {**cls.options(), **method.defaults.get(kind, {}), **pending[kind]}
        cls.build(f"{kind} {name!r}", **args)  # validates names and values
        setattr(cfg, f"{kind}_args", args)
    _validate(cfg)
    return cfg


def component_keys(values: dict) -> set[str]:
    """The keys of ``values`` that are component options (bare or dotted), not run fields."""
    return {k.replace("-", "_") for k in values if k.replace("-", "_") not in FIELDS}


def _place(key: str, value: Any, merged: dict, routed: dict) -> None:
    key = key.replace("-", "_")
    if "." in key:
        kind, _, opt = key.partition(".")
        if kind not in COMPONENTS:
            raise PrunekitError(f"unknown config key {key!r}; dotted keys start with one of {', '.join(COMPONENTS)}")
        routed[kind].setdefault("__explicit__", {})[opt] = value
    elif key in FIELDS:
        merged[key] = value
    else:
        routed["ranker"][key] = value  # bare component option, routed once components are known


def _all_options(cfg: RunConfig) -> set[str]:
    out = set()
    for k in COMPONENTS:
        if getattr(cfg, k):
            out |= set(component_class(k, getattr(cfg, k)).options())
    return out


def _validate(cfg: RunConfig) -> None:
    for key, valid in CHOICES.items():
        if getattr(cfg, key) not in valid:
            raise PrunekitError(f"{key} must be one of {', '.join(valid)}, got {getattr(cfg, key)!r}")
    for key in ("epochs", "batch_size", "eval_batch_size"):
        value = getattr(cfg, key)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise PrunekitError(f"{key} must be a positive integer, got {value!r}")
    if not isinstance(cfg.lr, (int, float)) or cfg.lr <= 0:
        raise PrunekitError(f"lr must be a positive number, got {cfg.lr!r}")
    for key in ("momentum", "weight_decay"):
        if not isinstance(getattr(cfg, key), (int, float)) or getattr(cfg, key) < 0:
            raise PrunekitError(f"{key} must be a number ≥ 0, got {getattr(cfg, key)!r}")
    if cfg.nesterov and cfg.momentum <= 0:
        raise PrunekitError("nesterov needs momentum > 0; add --momentum 0.9 or drop --nesterov")
    registry.get("models", cfg.model)
    registry.get("datasets", cfg.dataset)
    schedule = component_class("schedule", cfg.schedule).build(f"schedule {cfg.schedule!r}", **cfg.schedule_args)
    schedule.validate(cfg.epochs)
