"""Command-line options that components declare: every registered ranker's, reinitializer's and
schedule's ``__init__`` options become ``--options`` of ``run`` and ``bench``, so the core names no
method's options and a third party's are on the command line as soon as its package is installed.
A value given goes to the run's component that takes that option (``config.resolve`` routes it).
"""

from __future__ import annotations

import types
import typing

import click

KINDS = ("rankers", "reinitializers", "schedules")


def _click_type(annotations: list):
    """One click type for an option that several components may share, or None (string)."""
    literals = [t for t in annotations if typing.get_origin(t) is typing.Literal]
    if annotations and len(literals) == len(annotations):
        return click.Choice(sorted({str(v) for t in literals for v in typing.get_args(t)}))
    plain = set()
    for t in annotations:
        union = typing.get_origin(t) in (typing.Union, types.UnionType)
        args = [a for a in typing.get_args(t) if a is not type(None)] if union else [t]
        plain.update(args)
    for candidate in (bool, int, float):
        if plain == {candidate} or (candidate is float and plain == {int, float}):
            return candidate
    return None


def component_params(taken: set[str]) -> list[click.Option]:
    """A click option for every option of every registered component, except names in ``taken``."""
    from . import registry

    seen: dict[str, dict] = {}
    for kind in KINDS:
        for entry in registry.REGISTRY.report(kind):
            if entry.error:
                continue
            cls = entry.load()
            if not hasattr(cls, "option_types"):
                continue
            helps, flags, defaults = cls.option_helps(), cls.option_flag_names(), cls.options()
            for name, annotation in cls.option_types().items():
                spec = seen.setdefault(name, {"types": [], "owners": [], "help": None, "flag": None, "defaults": set()})
                spec["types"].append(annotation)
                spec["owners"].append(f"{entry.name} ({kind[:-1]})")
                spec["help"] = spec["help"] or helps.get(name)
                spec["flag"] = spec["flag"] or flags.get(name)
                spec["defaults"].add(repr(defaults.get(name)))
    params = []
    for name in sorted(seen):
        if name in taken:
            continue
        spec = seen[name]
        kind = _click_type(spec["types"])
        flag = spec["flag"] or "--" + name.replace("_", "-")
        owners = ", ".join(spec["owners"][:4]) + (" ..." if len(spec["owners"]) > 4 else "")
        text = f"{spec['help'] + ' ' if spec['help'] else ''}[{owners}]"
        if kind is bool:
            params.append(click.Option([f"{flag}/--no-{flag[2:]}", name], default=None, help=text))
        else:
            params.append(click.Option([flag, name], type=kind, default=None, help=text))
    return params


class WithComponentOptions(click.Command):
    """A command whose options grow, on first use, by every registered component's options."""

    def _add_component_options(self) -> None:
        if not getattr(self, "_components_added", False):
            self._components_added = True
            self.params.extend(component_params({p.name for p in self.params}))

    def parse_args(self, ctx, args):
        self._add_component_options()
        return super().parse_args(ctx, args)

    def get_params(self, ctx):
        self._add_component_options()
        return super().get_params(ctx)
