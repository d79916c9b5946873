"""Run configuration: defaults, a method's recipe, a config file and CLI overrides,
resolved into one flat record with every value written out."""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import registry
from .errors import PrunekitError, first_line

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
    lr_milestones: list = field(default_factory=list)  # epochs for "step"; empty = 50 % and 75 % (at least 1 and 2)
    lr_gamma: float = 0.1
    augment: bool = False
    seed: int = 0
    device: str = "auto"
    precision: str = "fp32"
    channels_last: bool = False
    data_dir: str | None = None
    image_size: int | None = None  # streamed image folders: crop size (None: the model's default, else 224)
    workers: int | None = None  # streamed image folders: DataLoader worker processes per rank
    init_from: str | None = None  # a run folder, an export folder or a state_dict file
    pretrained: str | None = None  # timm models: "cache" or a weights file
    exclude: list = field(default_factory=list)
    exclude_first: bool = False
    graph_timeout: float | None = 60.0  # seconds torch-pruning may take to build the filter groups
    eval_batch_size: int = 1000
    world_size: int = 1  # ranks that train the run (torchrun); set by the run, not an option
    rank_batch_size: int | None = None  # under torchrun: each rank's share of batch_size (the global batch)
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
        raise PrunekitError(
            f"cannot read config file {path} ({exc.strerror}); give a readable .yaml or .json file"
        ) from None
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            data = _yaml_load(text)
    except Exception as exc:  # noqa: BLE001 - any parse error
        raise PrunekitError(
            f"cannot parse config file {path} ({first_line(exc)}); it must be a YAML or JSON mapping"
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PrunekitError(f"config file {path} must hold a mapping of option: value, not a {type(data).__name__}")
    return data


def split_set(pair: str, usage: str, example: str) -> tuple[str, str]:
    """One ``--set`` option: its key (dashes read as underscores, as in config files) and its value's text."""
    key, sep, value = pair.partition("=")
    key = key.strip().replace("-", "_")
    if not sep or not key:
        raise PrunekitError(f"--set takes {usage}, got {pair!r}; e.g. --set {example}")
    return key, value.strip()


def typed_value(key: str, text: str) -> Any:
    """A name is the text typed (2024-11-30 and 0755 stay as written); anything else a YAML value."""
    return text if key in NAME_FIELDS else parse_value(text)


def parse_value(text: str) -> Any:
    """``--set`` values: YAML scalars and lists (0.3, 1e-3, true, [a, b], layer)."""
    try:
        return _yaml_load(text)
    except Exception:  # noqa: BLE001
        return text


# YAML 1.1 (PyYAML's) reads 1e-3 as a string: it wants a dot in a float. Read it as a number.
_EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")


@functools.cache
def _yaml_loader():
    """PyYAML's SafeLoader that also reads exponent floats; built once."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver("tag:yaml.org,2002:float", _EXPONENT_FLOAT, list("-+0123456789."))
    return Loader


def _yaml_load(text: str) -> Any:
    import yaml

    return yaml.load(text, Loader=_yaml_loader())  # noqa: S506 - a SafeLoader


def component_class(kind: str, name: str):
    return registry.get(kind + "s", name)


# fields that hold names or paths (None where the field may be unset)
NAME_FIELDS = (
    "model",
    "dataset",
    "method",
    "ranker",
    "reinitializer",
    "schedule",
    "optimizer",
    "device",
    "precision",
    "lr_schedule",
    "data_dir",
    "out",
    "name",
    "init_from",
    "pretrained",
)


def resolve(values: dict, overrides: dict | None = None, optional: frozenset = frozenset()) -> RunConfig:
    """Build a validated RunConfig from config-file ``values`` then ``overrides`` (later wins).

    Keys may be run fields, ``<component>.<option>`` or a bare component option
    (routed to the one component of this run that takes it). Component options
    named in ``optional`` are dropped, not refused, when this run's components do
    not take them (a grid's shared options, e.g. ``s1`` beside a method with no cycle)."""
    sources = [{k.replace("-", "_"): v for k, v in src.items()} for src in (values, overrides or {})]
    cfg = RunConfig(**{k: v for src in sources for k, v in src.items() if k in FIELDS})
    for key in NAME_FIELDS:  # `name: 7` in a config file is a name, not a number
        value = getattr(cfg, key)
        if isinstance(value, (int, float, datetime.date)) and not isinstance(value, bool):
            setattr(cfg, key, str(value))  # as a config file's YAML read it: 2024-11-30 stays, 0755 is 493
        elif value is not None and not isinstance(value, str):
            raise PrunekitError(f"{key} must be a name, got {value!r}")
    method = registry.get("methods", cfg.method)
    for kind in COMPONENTS:
        if getattr(cfg, kind) is None:
            setattr(cfg, kind, getattr(method, kind))
    classes = {k: component_class(k, getattr(cfg, k)) for k in COMPONENTS if getattr(cfg, k)}
    takes = {k: set(c.options()) for k, c in classes.items()}
    pending = {k: dict(getattr(cfg, f"{k}_args") or {}) for k in COMPONENTS}
    for src in sources:  # in order, so the CLI beats the file whatever the key's spelling
        for key, value in src.items():
            if key in FIELDS:
                continue
            kind, _, opt = key.rpartition(".")
            if kind and kind not in COMPONENTS:
                raise PrunekitError(
                    f"unknown config key {key!r}; dotted keys start with one of {', '.join(COMPONENTS)}"
                )
            takers = [kind] if kind else [k for k in takes if opt in takes[k]]
            applies = (kind in takes and opt in takes[kind]) if kind else bool(takers)
            if key in optional and not applies:
                continue
            if kind and kind not in takes:
                raise PrunekitError(f"method {cfg.method} has no {kind}, so option {key!r} does not apply")
            if not takers:
                comps = ", ".join(f"{k} {getattr(cfg, k)}" for k in takes)
                opts = sorted(set().union(*takes.values())) if takes else []
                raise PrunekitError(
                    f"no component of this run takes option {key!r}; valid: the config keys "
                    f"{', '.join(sorted(FIELDS))}, or an option of {comps or 'no component'}: "
                    f"{', '.join(opts) or '(none)'} (see `prunekit list --options`)"
                )
            if len(takers) > 1:
                raise PrunekitError(f"option {key!r} is ambiguous ({', '.join(takers)}); write it as {takers[0]}.{key}")
            pending[takers[0]][opt] = value
    for kind in COMPONENTS:
        if kind not in classes:
            setattr(cfg, f"{kind}_args", {})
            continue
        own = method.defaults.get(kind, {}) if getattr(cfg, kind) == getattr(method, kind) else {}
        args = {**classes[kind].options(), **own, **pending[kind]}
        classes[kind].build(f"{kind} {getattr(cfg, kind)!r}", **args)  # validates names and values
        setattr(cfg, f"{kind}_args", args)
    _validate(cfg)
    return cfg


def as_resolved_now(saved: dict) -> dict:
    """A saved run's config as this version resolves it, for comparing with a new one: run fields and
    component options added since it was saved take their defaults (a new option must default to the
    behaviour the code had without it). A config this version cannot resolve is returned as saved."""
    try:
        return resolve(saved).to_dict()
    except PrunekitError:
        return saved


def component_keys(values: dict) -> set[str]:
    """The keys of ``values`` that are component options (bare or dotted), not run fields."""
    return {k.replace("-", "_") for k in values if k.replace("-", "_") not in FIELDS}


def unsafe_name(name: str) -> str | None:
    """Why ``name`` cannot be a run folder inside the output folder (None when it can)."""
    if not name or name in (".", ".."):
        return "it names no folder of its own"
    if "/" in name or "\\" in name or "\0" in name:
        return "it holds a path separator"
    if name.startswith("~"):
        return "it starts with ~"
    return None


def _validate(cfg: RunConfig) -> None:
    if cfg.name is not None and (why := unsafe_name(cfg.name)):
        raise PrunekitError(
            f"--name {cfg.name!r} cannot be a run folder ({why}); give a plain folder name, "
            f"created inside --out {cfg.out}"
        )
    for key, valid in CHOICES.items():
        if getattr(cfg, key) not in valid:
            raise PrunekitError(f"{key} must be one of {', '.join(valid)}, got {getattr(cfg, key)!r}")
    for key in ("epochs", "batch_size", "eval_batch_size", "seed"):
        value = getattr(cfg, key)
        least = 0 if key == "seed" else 1
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise PrunekitError(
                f"{key} must be a {'non-negative' if least == 0 else 'positive'} integer, got {value!r}"
            )
    for key, least in (("lr", None), ("lr_gamma", None), ("momentum", 0), ("weight_decay", 0)):
        value = getattr(cfg, key)
        bad = isinstance(value, bool) or not isinstance(value, (int, float))
        if bad or (value <= 0 if least is None else value < least):
            raise PrunekitError(
                f"{key} must be a {'positive number' if least is None else 'number ≥ 0'}, got {value!r}"
            )
    for key in ("nesterov", "augment", "channels_last", "exclude_first"):
        if not isinstance(getattr(cfg, key), bool):
            raise PrunekitError(f"{key} must be true or false, got {getattr(cfg, key)!r}")
    if isinstance(cfg.exclude, str):
        cfg.exclude = [cfg.exclude]
    if not isinstance(cfg.exclude, list) or not all(isinstance(p, str) for p in cfg.exclude):
        raise PrunekitError(f"exclude must be a list of module-name patterns, got {cfg.exclude!r}")
    if not isinstance(cfg.lr_milestones, list) or not all(isinstance(m, int) and m > 0 for m in cfg.lr_milestones):
        raise PrunekitError(f"lr_milestones must be a list of positive epochs, got {cfg.lr_milestones!r}")
    bad = isinstance(cfg.graph_timeout, bool) or not isinstance(cfg.graph_timeout, (int, float, type(None)))
    if bad or (cfg.graph_timeout is not None and cfg.graph_timeout <= 0):
        raise PrunekitError(f"graph_timeout must be a positive number of seconds, got {cfg.graph_timeout!r}")
    if cfg.nesterov and cfg.momentum <= 0:
        raise PrunekitError("nesterov needs momentum > 0; add --momentum 0.9 or drop --nesterov")
    if cfg.optimizer == "adamw" and (cfg.momentum or cfg.nesterov):
        raise PrunekitError("momentum/nesterov apply to sgd only; drop them or use --optimizer sgd")
    registry.get("models", cfg.model)
    registry.get("datasets", cfg.dataset)
    if cfg.init_from and not Path(cfg.init_from).exists():
        raise PrunekitError(
            f"--init-from {cfg.init_from}: no such file or folder; give a finished run's folder, an "
            f"export folder or a state_dict file"
        )
    schedule = component_class("schedule", cfg.schedule).build(f"schedule {cfg.schedule!r}", **cfg.schedule_args)
    schedule.validate(cfg.epochs)
    events = {type(ev).__name__ for _, ev in schedule.timeline(cfg.epochs)}
    for event, kind, flag in (("Drop", "ranker", "--ranker"), ("Restore", "reinitializer", "--reinit")):
        if event in events and getattr(cfg, kind) is None:
            raise PrunekitError(
                f"schedule {cfg.schedule!r} has {event.lower()} events but method {cfg.method!r} "
                f"has no {kind}; add {flag} NAME"
            )
