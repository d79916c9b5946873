"""Component registry fed by Python entry points.

First-party plugins and third-party packages register the same way: an entry
point in one of the groups below, pointing at a class (rankers,
reinitializers, schedules), a :class:`~prunekit.interfaces.Method`, a model
factory, or a dataset loader. A plugin that fails to import is recorded with
its error and reported by ``prunekit list``; it never breaks the CLI.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from .errors import unknown_name

KINDS = ("rankers", "reinitializers", "schedules", "methods", "models", "datasets")
GROUP_PREFIX = "prunekit."


@dataclass
class Entry:
    name: str
    kind: str
    target: str  # "module:attr" as declared
    package: str  # distribution that registered it
    _loaded: Any = None
    error: str | None = None

    def load(self) -> Any:
        if self._loaded is None:
            self._loaded = self._load_target()
        return self._loaded

    def _load_target(self):
        raise NotImplementedError


@dataclass
class _EntryPointEntry(Entry):
    ep: Any = None

    def _load_target(self):
        return self.ep.load()


@dataclass
class _ObjectEntry(Entry):
    obj: Any = None

    def _load_target(self):
        return self.obj


@dataclass
class Registry:
    """All registered components, keyed by kind then name."""

    entries: dict[str, dict[str, Entry]] = field(default_factory=lambda: {k: {} for k in KINDS})
    _discovered: bool = False

    def discover(self) -> None:
        if self._discovered:
            return
        self._discovered = True
        for kind in KINDS:
            for ep in entry_points(group=GROUP_PREFIX + kind):
                dist = ep.dist.name if ep.dist is not None else "?"
                self.entries[kind].setdefault(ep.name, _EntryPointEntry(ep.name, kind, ep.value, dist, ep=ep))

    def add(self, kind: str, name: str, obj: Any, package: str = "<runtime>") -> None:
        """Register an object directly (tests, notebooks)."""
        self.entries[kind][name] = _ObjectEntry(name, kind, repr(obj), package, obj=obj)

    def names(self, kind: str, pattern: str | None = None) -> list[str]:
        self.discover()
        names = sorted(self.entries[kind])
        if pattern:  # expand providers (timm has ~1,000 names) only when asked
            names += [n for n in self._dynamic_names(kind) if n not in names]
            names = [
                n for n in names if fnmatch.fnmatchcase(n, pattern) and "*" not in n
            ]  # not the providers' own patterns
        return names

    def _dynamic_names(self, kind: str) -> list[str]:
        """Names offered by pattern providers (entries named like ``timm:*`` or ``c*_*``)."""
        out = []
        for entry in self._providers(kind).values():
            try:
                out.extend(entry.load().list_names())
            except Exception:  # noqa: BLE001 - a broken provider is reported by `list`
                pass
        return out

    def _providers(self, kind: str) -> dict[str, Entry]:
        return {n: e for n, e in self.entries[kind].items() if "*" in n}

    def get(self, kind: str, name: str) -> Any:
        """Load the component ``name`` of ``kind``; unknown names raise a clear error."""
        self.discover()
        entry = self.entries[kind].get(name)
        if entry is None or "*" in name:
            for pattern, provider in self._providers(kind).items():
                if fnmatch.fnmatchcase(name, pattern) and "*" not in name:
                    resolved = _load_or_fail(provider, kind).resolve(name)
                    if resolved is not None:
                        return resolved
            raise unknown_name(kind.rstrip("s"), name, self.names(kind))
        return _load_or_fail(entry, kind)

    def report(self, kind: str) -> list[Entry]:
        """Every entry of ``kind`` with load errors filled in (for `prunekit list`)."""
        self.discover()
        out = []
        for name in sorted(self.entries[kind]):
            entry = self.entries[kind][name]
            try:
                entry.load()
            except Exception as exc:  # noqa: BLE001 - reported, never raised
                entry.error = f"{type(exc).__name__}: {exc}"
            out.append(entry)
        return out


def _load_or_fail(entry: Entry, kind: str) -> Any:
    from .errors import PrunekitError

    try:
        return entry.load()
    except Exception as exc:  # noqa: BLE001
        raise PrunekitError(
            f"the {kind.rstrip('s')} {entry.name!r} from package {entry.package!r} failed to load "
            f"({type(exc).__name__}: {exc}); fix or uninstall that package"
        ) from None


REGISTRY = Registry()


def get(kind: str, name: str) -> Any:
    return REGISTRY.get(kind, name)


def names(kind: str, pattern: str | None = None) -> list[str]:
    return REGISTRY.names(kind, pattern)


def register(kind: str, name: str) -> Callable[[Any], Any]:
    """Decorator to register an object at runtime (entry points are preferred)."""

    def deco(obj):
        REGISTRY.add(kind, name, obj)
        return obj

    return deco
