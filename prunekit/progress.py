"""Rich progress for a run: an epoch bar, a batch bar with live loss/accuracy, ETA."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .callbacks import Callback


class RichProgress(Callback):
    def __init__(self, console: Console, cfg, quiet: bool = False):
        self.console = console
        self.cfg = cfg
        self.quiet = quiet or not console.is_terminal
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=console,
            disable=self.quiet,
        )
        self._loss = self._acc = 0.0
        self._n = 0

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def run_start(self, run) -> None:
        self.epochs = self.progress.add_task("epochs", total=self.cfg.epochs, completed=run.epoch, info="")
        self.batches = self.progress.add_task("batches", total=1, info="")
        self.console.log(
            f"{run.path}: {self.cfg.method} on {self.cfg.model}/{self.cfg.dataset}, "
            f"{len(run.groups)} filter groups, device {run.device}, {self.cfg.precision}"
            + (
                f"; {run.world.size} ranks x {self.cfg.batch_size // run.world.size} = global batch "
                f"{self.cfg.batch_size}, images/s over all ranks"
                if run.world.distributed
                else ""
            )
            + (f"; stem: {run.model.prunekit_stem}" if hasattr(run.model, "prunekit_stem") else "")
            + (f"; excluded: {'; '.join(run.groups.excluded)}" if run.groups.excluded else "")
        )

    def warning(self, run, message: str) -> None:
        self.console.print(f"[yellow]warning:[/yellow] {escape(message)}", highlight=False, soft_wrap=True)

    def epoch_start(self, run, epoch: int, batches: int) -> None:
        self._loss = self._acc = 0.0
        self._n = 0
        self.progress.reset(self.batches, total=batches, description=f"epoch {epoch + 1}", info="")

    def batch_end(self, run, loss, acc) -> None:
        if self.quiet:
            return
        loss, acc = float(loss), float(acc)
        self._n += 1
        self._loss += (loss - self._loss) / self._n
        self._acc += (acc - self._acc) / self._n
        self.progress.update(self.batches, advance=1, info=f"loss {self._loss:.3f} acc {self._acc:.3f}")

    def event(self, run, record: dict) -> None:
        if record["event"] == "drop":
            counts = ", ".join(f"{k} {len(v)}" for k, v in record["dropped"].items() if v)
            extra = ""
            if record.get("counts"):  # a cost target: what export would keep
                extra += f"; kept {record['counts'][record['metric']]:,} {record['metric']}"
            if record.get("test_acc_after") is not None:
                extra += (
                    f"; test acc {record['test_acc_before']:.4f} -> {record['test_acc_after']:.4f} before fine-tuning"
                )
            self.console.log(f"epoch {record['epoch'] + 1}: dropped {counts}{extra}")
        else:
            n = sum(len(v) for v in record["restored"].values())
            self.console.log(f"epoch {record['epoch'] + 1}: restored {n} filters")

    def epoch_end(self, run, record: dict) -> None:
        self.progress.update(self.epochs, completed=record["epoch"], info=f"test {record['test_acc']:.4f}")
        self.console.log(
            f"epoch {record['epoch']}/{self.cfg.epochs} train loss {record['train_loss']:.4f} "
            f"acc {record['train_acc']:.4f} | test loss {record['test_loss']:.4f} acc {record['test_acc']:.4f} "
            f"| {record['seconds']:.1f}s {record['images_per_s']:.0f} img/s"
        )
