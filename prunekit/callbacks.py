"""The hooks a ``Run`` calls (engine.py): persistence and progress bars are callbacks."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from .engine import Run


class Callback:
    """Hooks into a ``Run``, each given the run first; all do nothing unless overridden. Persistence
    (``recorder.Recorder``, ``bench.warmup.WarmupKeeper``) and the CLI's progress bars are callbacks.
    ``epoch_end`` comes after ``run.epoch`` counts the finished epoch. The summary is ``start_run``'s
    return value (and the Recorder's ``summary`` after its ``run_end``)."""

    def run_start(self, run: Run) -> None: ...
    def epoch_start(self, run: Run, epoch: int, batches: int) -> None: ...
    def batch_end(self, run: Run, loss: torch.Tensor, acc: torch.Tensor) -> None: ...
    def event(self, run: Run, record: dict) -> None: ...
    def epoch_end(self, run: Run, record: dict) -> None: ...
    def run_end(self, run: Run) -> None: ...
    def warning(self, run: Run, message: str) -> None: ...
