"""Permanent schedules: drop filters for good (never restore), then fine-tune.

Each drop is a cumulative ``Drop(keep=..., metric=...)``: the engine drops until the model that
``prunekit export`` would produce keeps at most that fraction of the dense model's filters, MACs or
parameters. ``target`` is the fraction kept at the end.

* ``oneshot``: one drop to ``target`` at epoch ``at``.
* ``iterative``: ``steps`` drops spread evenly over [start, end], keeps compounding geometrically.
* ``gradual``: Zhu & Gupta's (2017) cubic ramp of the pruned fraction over [start, end].

``end`` defaults, for both ramps, to halfway between ``start`` and the end of the run, so that at
least as many epochs are left to fine-tune as were spent dropping.
"""

from __future__ import annotations

from typing import Literal

from prunekit import Drop, PrunekitError, Schedule
from prunekit.interfaces import METRICS


def _epoch(key: str, value, allow_none: bool = False, minimum: int = 0) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        what = "a positive" if minimum > 0 else "a non-negative"
        unset = " or unset" if allow_none else ""
        raise PrunekitError(f"{key} must be {what} whole number of epochs{unset}, got {value!r}")


class _Permanent(Schedule):
    """Shared options of the permanent schedules: what to keep, measured how."""

    option_help = {
        "target": "Permanent schedules: fraction of the dense model to keep at the end, in (0, 1).",
        "metric": "What target counts: filters, macs or params (--target-macs/--target-params set both).",
        "at": "oneshot: the epoch of the drop.",
        "steps": "iterative: number of drops.",
        "start": "iterative/gradual: epoch of the first drop.",
        "end": "iterative/gradual: epoch of the last.",
        "frequency": "gradual: epochs between drops.",
    }

    def __init__(self, target: float = 0.5, metric: Literal["filters", "macs", "params"] = "filters"):
        if isinstance(target, bool) or not isinstance(target, (int, float)) or not 0.0 < target < 1.0:
            raise PrunekitError(
                f"target is the fraction of the dense model to keep and must be in (0, 1), got {target!r}; "
                f"e.g. 0.3 keeps 30 %"
            )
        if metric not in METRICS:
            raise PrunekitError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
        self.target = float(target)
        self.metric = metric

    def plan(self, epochs: int) -> dict[int, float]:
        """Epoch -> cumulative keep fraction of each drop in a run of ``epochs``."""
        raise NotImplementedError

    def events(self, epoch: int, epochs: int):
        keep = self.plan(epochs).get(epoch)
        return [] if keep is None else [Drop(keep=keep, metric=self.metric)]


class OneShot(_Permanent):
    """Drop to `target` once at epoch `at`, then fine-tune to the end (never restores)."""

    def __init__(self, at: int = 0, **base):
        super().__init__(**base)
        _epoch("at", at)
        self.at = at

    def validate(self, epochs: int) -> None:
        if self.at >= epochs:
            raise PrunekitError(
                f"at={self.at} is past the run's last epoch (epochs={epochs}, so at must be 0..{epochs - 1}); "
                f"lower at (--set at=N) or raise --epochs"
            )

    def plan(self, epochs: int) -> dict[int, float]:
        return {self.at: self.target} if self.at < epochs else {}


def _default_end(start: int, epochs: int, least: int) -> int:
    """Halfway between ``start`` and the end of the run, but at least ``start + least``."""
    return start + max(least, (epochs - start) // 2)


class Iterative(_Permanent):
    """`steps` drops evenly from `start` to `end`, keeps compounding to `target`, then fine-tune (never restores).

    Drop i (1..steps) keeps target ** (i / steps) of the dense model, so each removes the same fraction of
    what is left and the last keeps exactly ``target``. ``end`` defaults to halfway between ``start`` and
    the end of the run (at least ``start + steps - 1``); two drops never share an epoch.
    """

    def __init__(self, steps: int = 3, start: int = 0, end: int | None = None, **base):
        super().__init__(**base)
        _epoch("steps", steps, minimum=1)
        _epoch("start", start)
        _epoch("end", end, allow_none=True)
        if end is not None and end < start:
            raise PrunekitError(f"end={end} comes before start={start}; the drops run from start to end")
        self.steps, self.start, self.end = steps, start, end

    def end_for(self, epochs: int) -> int:
        return self.end if self.end is not None else _default_end(self.start, epochs, self.steps - 1)

    def drop_epochs(self, epochs: int) -> list[int]:
        """The epochs of the drops: ``start`` first, ``end`` last, evenly spaced (rounded down) between."""
        end = self.end_for(epochs)
        if self.steps == 1:
            return [self.start]
        return [self.start + i * (end - self.start) // (self.steps - 1) for i in range(self.steps)]

    def keeps(self) -> list[float]:
        """Cumulative keep of drop i = target ** (i / steps): equal factors, the last exactly ``target``."""
        return [self.target ** (i / self.steps) if i < self.steps else self.target for i in range(1, self.steps + 1)]

    def validate(self, epochs: int) -> None:
        end = self.end_for(epochs)
        if self.steps > 1 and end - self.start < self.steps - 1:
            raise PrunekitError(
                f"steps={self.steps} drops between start={self.start} and end={end} would share epochs "
                f"(needs end - start >= steps - 1 = {self.steps - 1}); raise end or lower steps (--set end=N, --set steps=N)"
            )
        last = self.drop_epochs(epochs)[-1]
        if last >= epochs:
            what = "end" if self.end is not None and self.steps > 1 else "the last drop"
            raise PrunekitError(
                f"{what} falls at epoch {last}, past the run's last epoch (epochs={epochs}, so drops must fall in "
                f"0..{epochs - 1}); raise --epochs or lower start, end or steps (--set start=N ...)"
            )

    def plan(self, epochs: int) -> dict[int, float]:
        out: dict[int, float] = {}
        for epoch, keep in zip(self.drop_epochs(epochs), self.keeps()):
            if epoch < epochs:
                out[epoch] = min(keep, out.get(epoch, 1.0))  # only when invalid: validate refuses such a run
        return out


class Gradual(_Permanent):
    """Zhu & Gupta cubic ramp: drop every `frequency` epochs from `start` to `end`, then fine-tune (never restores).

    At t = start, start + frequency, ... and at ``end`` the pruned fraction is
    p_f (1 - (1 - (t - start)/(end - start))^3) with p_f = 1 - target, so most is dropped early, when
    there is most to spare, and ``end`` keeps exactly ``target``. ``end`` defaults to halfway between
    ``start`` and the end of the run.
    """

    def __init__(self, start: int = 0, end: int | None = None, frequency: int = 1, **base):
        super().__init__(**base)
        _epoch("start", start)
        _epoch("end", end, allow_none=True)
        _epoch("frequency", frequency, minimum=1)
        if end is not None and end <= start:
            raise PrunekitError(f"end={end} must come after start={start}; the ramp runs from start to end")
        self.start, self.end, self.frequency = start, end, frequency

    def end_for(self, epochs: int) -> int:
        return self.end if self.end is not None else _default_end(self.start, epochs, 1)

    def pruned(self, t: int, end: int) -> float:
        """Fraction pruned at epoch ``t``: p_f (1 - (1 - (t - start)/(end - start))^3), p_f = 1 - target."""
        progress = min(max((t - self.start) / (end - self.start), 0.0), 1.0)
        return (1.0 - self.target) * (1.0 - (1.0 - progress) ** 3)

    def validate(self, epochs: int) -> None:
        end = self.end_for(epochs)
        if end >= epochs:
            what = f"end={end}" if self.end is not None else f"start={self.start}"
            raise PrunekitError(
                f"{what} leaves no room for the ramp: it must end by epoch {epochs - 1} (epochs={epochs}); "
                f"raise --epochs or lower start or end (--set start=N, --set end=N)"
            )

    def plan(self, epochs: int) -> dict[int, float]:
        end = self.end_for(epochs)
        points = list(range(self.start, end, self.frequency)) + [end]  # end always: the target is reached
        out: dict[int, float] = {}
        last = 1.0
        for t in points:
            keep = self.target if t == end else 1.0 - self.pruned(t, end)
            if t < epochs and keep < last:
                out[t] = keep
                last = keep
        return out


__all__ = ["OneShot", "Iterative", "Gradual"]
