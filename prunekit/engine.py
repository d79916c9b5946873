"""The training engine: drives any Ranker / Reinitializer / Schedule over filter groups.

It knows the interfaces, never a method by name. Each epoch: apply the
schedule's events (drop = rank + select + mask; restore = reinit + release, both
through the ``Pruner``), train with masks held after every optimizer step,
evaluate. ``Run`` only trains; what a run leaves on disk (records, checkpoints,
summary) is written by callbacks: ``recorder.Recorder``, which ``start_run``
installs, and for a grid's cell ``bench.warmup.WarmupKeeper``, which bench adds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import distributed, registry
from .callbacks import Callback
from .config import RunConfig
from .data import ImageData, data_dir
from .device import configure_cuda, resolve_device
from .errors import PrunekitError, first_line
from .groups import GroupSet
from .interfaces import Drop, Ranker, Reinitializer, Restore, Schedule
from .pruner import Pruner
from .recorder import Recorder
from .records import CHECKPOINT, WARMUP, RunDir


def load_data(cfg: RunConfig) -> ImageData:
    """The dataset of ``cfg``; a streamed one (``folder:PATH``) also gets the image size and workers."""
    loader = registry.get("datasets", cfg.dataset)
    if not cfg.dataset.startswith("folder:"):
        return loader(data_dir(cfg.data_dir))
    from .models.timm_models import default_image_size

    data = loader(image_size=cfg.image_size or default_image_size(cfg.model) or 224, workers=cfg.workers)
    data.check_images()
    return data


def build_model(cfg: RunConfig, data: ImageData) -> nn.Module:
    """The model of ``cfg``, with its starting weights (``--pretrained``, ``--init-from``)."""
    from .weights import build_with_weights

    return build_with_weights(cfg, data.num_classes, data.shape)


def make_optimizer(cfg: RunConfig, model: nn.Module) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay
        )
    return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def make_lr_schedule(cfg: RunConfig, optimizer) -> torch.optim.lr_scheduler.LRScheduler:
    if cfg.lr_schedule == "step":
        half = max(1, cfg.epochs // 2)  # at least one epoch at each rate, however short the run
        milestones = cfg.lr_milestones or [half, max(half + 1, cfg.epochs * 3 // 4)]
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, gamma=cfg.lr_gamma)
    if cfg.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)


def build_component(kind: str, name: str | None, args: dict):
    if name is None:
        return None
    return registry.get(kind + "s", name).build(f"{kind} {name!r}", **args)


@dataclass
class EpochStats:
    loss: float
    acc: float
    images: int
    seconds: float


class Run:
    """One training run of a resolved config: the model, its pruner, and the loop. It writes nothing;
    its callbacks do (see ``start_run``)."""

    def __init__(self, cfg: RunConfig, callbacks: Sequence[Callback] = (), data: ImageData | None = None):
        self.cfg = cfg
        self.path = Path(cfg.out) / cfg.run_name  # where its records go, for messages
        self.callbacks = list(callbacks)
        self.world = distributed.world()
        self.device = resolve_device(cfg.device)
        if self.world.distributed and self.device.type == "cuda":
            self.device = torch.device("cuda", self.world.local_rank)
        if self.device.type == "cuda":
            configure_cuda()
        self.data = data if data is not None else load_data(cfg)
        torch.manual_seed(cfg.seed)
        self.model = build_model(cfg, self.data)
        example = torch.zeros((1,) + self.data.shape)
        with torch.random.fork_rng(devices=[]):  # a component drawing random numbers when built must not
            # change the training stream: runs that differ only in components share their warm-up
            self.schedule: Schedule = build_component("schedule", cfg.schedule, cfg.schedule_args)
            self.ranker: Ranker | None = build_component("ranker", cfg.ranker, cfg.ranker_args)
            self.reinitializer: Reinitializer | None = build_component(
                "reinitializer", cfg.reinitializer, cfg.reinitializer_args
            )
        self.pruner = Pruner(
            self.model,
            example,
            self.ranker,
            self.reinitializer,
            exclude=cfg.exclude,
            exclude_first=cfg.exclude_first,
            graph_timeout=cfg.graph_timeout,
        )
        self.groups: GroupSet = self.pruner.groups
        self.masks = self.pruner.masks
        self.permanent = self.schedule.permanent(cfg.epochs)
        for _, ev in self.schedule.timeline(cfg.epochs):  # a target out of reach is refused before training
            if isinstance(ev, Drop) and ev.keep is not None and self.ranker is not None:
                self.pruner.check_target(ev.keep, ev.metric)
        self.model.to(self.device)
        if cfg.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.net = self.model  # what training calls: the model, or DDP around it under torchrun
        if self.world.distributed:
            self.net = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        self.optimizer = make_optimizer(cfg, self.model)
        self.lr_schedule = make_lr_schedule(cfg, self.optimizer)
        self.data_gen = torch.Generator().manual_seed(cfg.seed)
        shard = (self.world.rank, self.world.size)
        self.train_batches = self.data.batches(
            "train",
            cfg.batch_size,
            device=self.device,
            shuffle=True,
            augment=cfg.augment,
            generator=self.data_gen,
            channels_last=cfg.channels_last,
            shard=shard,
        )
        self.test_batches = self.data.batches(
            "test", cfg.eval_batch_size, device=self.device, channels_last=cfg.channels_last, shard=shard
        )
        self.amp_dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[cfg.precision]
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.precision == "fp16")
        self.epoch = 0
        self.best_acc = 0.0
        self.elapsed = 0.0
        self.first_event = self.schedule.first_event(cfg.epochs)  # the state then is kept (see bench/warmup.py)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        return {
            "epoch": self.epoch,
            "best_acc": self.best_acc,
            "elapsed": self.elapsed,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "lr_schedule": self.lr_schedule.state_dict(),
            "scaler": self.scaler.state_dict(),
            "masks": self.masks.state_dict(),
            "data_gen": self.data_gen.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
        }

    def load_state_dict(self, state: dict) -> None:
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.lr_schedule.load_state_dict(state["lr_schedule"])
            self.scaler.load_state_dict(state["scaler"])
            self.masks.load_state_dict(state["masks"])
            self.data_gen.set_state(state["data_gen"])
            torch.set_rng_state(state["torch_rng"])
            if self.device.type == "cuda" and isinstance(state.get("cuda_rng"), torch.Tensor):
                torch.cuda.set_rng_state(state["cuda_rng"], self.device)  # this run's GPU only: the machine
                # that resumes it may see fewer GPUs
            self.epoch, self.best_acc, self.elapsed = (
                int(state["epoch"]),
                float(state["best_acc"]),
                float(state["elapsed"]),
            )
        except (KeyError, RuntimeError, ValueError) as exc:
            raise PrunekitError(
                f"checkpoint in {self.path} does not match this run's config ({first_line(exc)}); "
                f"start a new run with --overwrite or another --name"
            ) from None
        self.masks.hold(self.optimizer)

    def notify(self, hook: str, *args) -> None:
        """Call ``hook`` of every callback, in order, with this run first."""
        for callback in self.callbacks:
            getattr(callback, hook)(self, *args)

    def warn(self, message: str) -> None:
        self.notify("warning", message)

    # ------------------------------------------------------------------ events
    def event_generator(self, epoch: int, salt: int) -> torch.Generator:
        return torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + epoch * 101 + salt)

    def rank_batches(self, epoch: int):
        def batches(n: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
            src = self.data.batches(
                "train",
                self.cfg.batch_size,
                device=self.device,
                shuffle=True,
                generator=self.event_generator(epoch, 7),
                channels_last=self.cfg.channels_last,
            )
            for i, batch in enumerate(src):
                if i >= n:
                    break
                yield batch

        return batches

    def drop(self, epoch: int, event: Drop) -> dict:
        if self.ranker is None:
            raise PrunekitError(
                f"schedule {self.cfg.schedule!r} drops filters but method {self.cfg.method!r} has no ranker"
            )
        before = self.evaluate()[1] if self.permanent else None
        record = {
            "epoch": epoch,
            **self.pruner.drop(
                event.ratio,
                keep=event.keep,
                metric=event.metric,
                optimizer=self.optimizer,
                batches=self.rank_batches(epoch),
                generator=self.event_generator(epoch, 1),
            ),
        }
        if self.permanent:  # what the drop cost before any fine-tuning
            record.update(test_acc_before=before, test_acc_after=self.evaluate()[1])
        return record

    def restore(self, epoch: int) -> dict:
        if self.reinitializer is None:
            raise PrunekitError(
                f"schedule {self.cfg.schedule!r} restores filters but method {self.cfg.method!r} has no reinitializer"
            )
        return {"epoch": epoch, **self.pruner.restore(self.optimizer, self.event_generator(epoch, 2))}

    def apply_events(self, epoch: int) -> None:
        for ev in self.schedule.events(epoch, self.cfg.epochs):
            if isinstance(ev, Drop):
                record = self.drop(epoch, ev)
            elif isinstance(ev, Restore):
                record = self.restore(epoch)
            else:
                raise PrunekitError(f"schedule {self.cfg.schedule!r} emitted an unknown event {ev!r}")
            if not distributed.broadcast_from_main(self.world, self.model, self.masks, self.optimizer):
                self.warn(
                    f"epoch {epoch + 1}: the ranks' {record['event']} did not agree bitwise (a kernel "
                    f"that is not reproducible); every rank now holds rank 0's result"
                )
            self.notify("event", record)

    # ------------------------------------------------------------------ loops
    def autocast(self):
        return torch.autocast(
            self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None
        )

    def train_epoch(self) -> EpochStats:
        self.model.train()
        total_loss = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        seen = 0
        hold = self.masks.any_dropped
        t0 = time.perf_counter()
        for xb, yb in self.train_batches:
            with self.autocast():
                out = self.net(xb)
                loss = F.cross_entropy(out, yb)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            if hold:
                self.masks.hold(self.optimizer)
            n = len(yb)
            batch_correct = (out.argmax(1) == yb).sum()
            total_loss += loss.detach() * n
            correct += batch_correct
            seen += n
            self.notify("batch_end", loss.detach(), batch_correct / n)
        loss_sum = float(total_loss)  # waits for the device (CUDA runs ahead), so the time covers all the work
        seconds = time.perf_counter() - t0
        loss_sum, correct, seen = self.world.sum([loss_sum, float(correct), seen], self.device)  # all ranks'
        if not math.isfinite(loss_sum):
            raise PrunekitError("training diverged (loss is not finite); lower --lr or use --precision fp32")
        return EpochStats(loss_sum / seen, correct / seen, int(seen), seconds)

    @torch.no_grad()
    def evaluate(self) -> tuple[float, float]:
        self.model.eval()
        total_loss, correct, seen = 0.0, 0, 0
        for xb, yb in self.test_batches:
            with self.autocast():
                out = self.model(xb)
            total_loss += float(F.cross_entropy(out.float(), yb, reduction="sum"))
            correct += int((out.argmax(1) == yb).sum())
            seen += len(yb)
        total_loss, correct, seen = self.world.sum([total_loss, correct, seen], self.device)  # all ranks' shares
        return total_loss / seen, correct / seen

    def run(self) -> None:
        """Train from ``self.epoch`` to the last epoch."""
        self.notify("run_start")
        while self.epoch < self.cfg.epochs:
            epoch = self.epoch
            t0 = time.perf_counter()
            self.apply_events(epoch)
            lr = self.optimizer.param_groups[0]["lr"]
            self.notify("epoch_start", epoch, len(self.train_batches))
            stats = self.train_epoch()
            self.lr_schedule.step()
            test_loss, test_acc = self.evaluate()
            self.best_acc = max(self.best_acc, test_acc)
            self.elapsed += time.perf_counter() - t0
            record = {
                "epoch": epoch + 1,
                "lr": lr,
                "train_loss": stats.loss,
                "train_acc": stats.acc,
                "test_loss": test_loss,
                "test_acc": test_acc,
                "seconds": time.perf_counter() - t0,
                "train_seconds": stats.seconds,
                "images_per_s": stats.images / stats.seconds,
                "dropped": self.masks.fractions(),
                **{k: v for k, v in self.pruner.counts().items() if k != "filters"},  # the exported shape's; the
                # filter count depends on which groups a run spares, so warm-up records shared across runs leave it out
            }
            self.epoch = epoch + 1
            self.notify("epoch_end", record)
        self.notify("run_end")

    def facts(self) -> dict:
        """What this run is and what its model has become: settings, size, cost, speed and (a permanent
        run) compression. The record keeper adds what the records say (see ``recorder.summarize``)."""
        params = sum(p.numel() for p in self.model.parameters())
        nonzero = sum(int((p != 0).sum()) for p in self.model.parameters())
        return {
            "method": self.cfg.method,
            "model": self.cfg.model,
            "dataset": self.cfg.dataset,
            "data_source": self.data.source,
            "seed": self.cfg.seed,
            "epochs": self.cfg.epochs,
            "best_test_acc": self.best_acc,
            "wall_seconds": self.elapsed,
            "params": params,
            "nonzero_params": nonzero,
            "device": str(self.device),
            "precision": self.cfg.precision,
            "macs": self.pruner.cost.dense["macs"],
            "export": self.pruner.counts(),
            **({"compression": self.compression()} if self.permanent else {}),
        }

    def compression(self) -> dict:
        """A permanent run's result: what export would remove and the latency of the exported model
        against the dense one (batch 64, this device)."""
        from .export import speed

        dense, now = self.pruner.cost.dense, self.pruner.counts()
        example = torch.randn((64,) + self.data.shape, device=self.device)
        with torch.random.fork_rng(devices=[]):
            small = self.pruner.export()
        timed = speed(self.model, small, example, 10)
        times = {"dense": timed["dense_ms"], "pruned": timed["pruned_ms"]}
        return {
            "dense": dense,
            "pruned": now,
            "keep": {k: now[k] / dense[k] for k in now if dense[k]},
            "removed": {g.name: int(d.sum()) for g, d in zip(self.groups, self.masks.dropped)},
            "sizes": {g.name: g.size for g in self.groups},
            "latency_ms_b64": times,
            "speedup_b64": times["dense"] / times["pruned"],
        }


def start_run(
    cfg: RunConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    callbacks: Sequence[Callback] | Callback = (),
    data: ImageData | None = None,
) -> dict:
    """Create (or resume) the run directory for ``cfg`` and train to the end; returns the summary. The
    run's records are kept by a ``Recorder``, called before ``callbacks``. Under torchrun every rank
    calls this; rank 0 alone records, and returns the summary (the others return ``{}``)."""
    import contextlib
    from dataclasses import replace

    world = distributed.setup(cfg.device)
    distributed.check_batch(cfg.batch_size, world)
    run_dir = RunDir(Path(cfg.out) / cfg.run_name)
    recorder = Recorder(run_dir, resume=resume)
    callbacks = [callbacks] if isinstance(callbacks, Callback) else list(callbacks)
    hooks = [recorder, *callbacks] if world.main else callbacks
    lock = run_dir.training_lock if world.main else contextlib.nullcontext
    try:
        if resume:
            if cfg.world_size != world.size:
                raise PrunekitError(
                    f"{run_dir.path} was trained by {cfg.world_size} rank(s) and is resumed by {world.size}; the data "
                    f"order and the numbers depend on it: resume with `torchrun --nproc-per-node {cfg.world_size}` "
                    f"(or without torchrun for 1)"
                )
            with lock():
                state, source = run_dir.resume_state()
                run = Run(cfg, hooks, data)
                if state is not None:
                    run.load_state_dict(state)
                if source == WARMUP:
                    run.warn(
                        f"no {CHECKPOINT} in {run_dir.path}: continues from its kept warm-up after epoch {run.epoch}"
                    )
                run.run()
                return recorder.summary if world.main else {}
        if world.distributed:  # one process keeps the config it always had
            cfg = replace(cfg, world_size=world.size, rank_batch_size=cfg.batch_size // world.size)
        if run_dir.has_files() and not overwrite:
            run_dir.create(overwrite)  # raises the clear "already exists" error before any work
        run = Run(cfg, hooks, data)  # data and model errors surface before anything is written
        with lock():
            if world.main:
                run_dir.create(overwrite)
                run_dir.write_config(cfg.to_dict())
            world.barrier()
            run.run()
            return recorder.summary if world.main else {}
    except RuntimeError as exc:  # torch's DistError is one; gloo reports a lost peer as a plain RuntimeError
        if not world.distributed or not _lost_peer(exc):
            raise
        raise PrunekitError(
            f"rank {world.rank}: lost contact with the other ranks ({first_line(exc, 100)}): one of them stopped; "
            f"finished epochs are kept in {run_dir.path}: continue with `torchrun --nproc-per-node {world.size} "
            f"-m prunekit run --resume {run_dir.path}`"
        ) from None


def _lost_peer(exc: RuntimeError) -> bool:
    """Whether a collective failed because another rank went away (not a bug of this one)."""
    import torch.distributed as tdist

    if isinstance(exc, getattr(tdist, "DistError", ())):
        return True
    text = str(exc)
    return any(k in text for k in ("Connection closed by peer", "Connection reset", "gloo", "NCCL", "Broken pipe"))
