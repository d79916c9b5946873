"""Image folders read as they train: ``--dataset folder:PATH``.

PATH holds ``train/<class>/*`` and ``val/<class>/*`` (or ``test/<class>/*``): ImageNet's layout and
that of the CIFAR-10 JPEG copy. Nothing of the images is held in memory: torchvision's
``ImageFolder`` lists the files, a ``DataLoader`` with worker processes decodes them, training gets
random-resized-crop + flip and evaluation resize + center-crop at ``--image-size`` (the model's own
default where timm has one, else 224), normalised with ImageNet's mean and std. Batches are
pinned on CUDA. Each epoch's order comes from the run's generator and each global batch is split
among the ranks as ``Batches`` does, so a run under torchrun shards the data and a resumed run
continues the same order.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from .data import batch_shards
from .errors import PrunekitError, first_line

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
EVAL_CROP = 0.875  # evaluation resizes the short side to size / 0.875, then crops the centre


def open_rgb(path: str):
    """PIL's RGB image of ``path``; an unreadable file is named in one line."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except (OSError, ValueError) as exc:  # PIL's UnidentifiedImageError and truncated files are OSErrors
        raise PrunekitError(
            f"{path} is not a readable image ({first_line(exc)}); remove or replace it, then run "
            f"again (finished epochs are kept: --resume)"
        ) from None


class ShardedBatchSampler:
    """This rank's indices of each global batch of a shuffled (or plain) order, one list per batch."""

    def __init__(
        self, n: int, batch_size: int, *, shuffle: bool, generator: torch.Generator, shard: tuple[int, int] = (0, 1)
    ):
        self.n, self.batch_size, self.shuffle, self.generator, self.shard = n, batch_size, shuffle, generator, shard

    def __len__(self) -> int:
        return (self.n + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[list[int]]:
        order = torch.randperm(self.n, generator=self.generator) if self.shuffle else torch.arange(self.n)
        for span, mine in batch_shards(self.n, self.batch_size, self.shard):
            yield order[span][mine].tolist()


class FolderBatches:
    """Decoded, transformed batches of one split, moved to ``device``."""

    def __init__(
        self,
        dataset,
        batch_size: int,
        *,
        device: torch.device,
        workers: int,
        shuffle: bool,
        generator: torch.Generator,
        channels_last: bool,
        shard: tuple[int, int],
    ):
        self.sampler = ShardedBatchSampler(len(dataset), batch_size, shuffle=shuffle, generator=generator, shard=shard)
        self.dataset, self.device, self.workers, self.channels_last = dataset, device, workers, channels_last
        self.generator = generator

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self):
        seed = int(torch.randint(0, 2**62, (1,), generator=self.generator))  # the workers' augmentation stream
        loader = DataLoader(
            self.dataset,
            batch_sampler=self.sampler,
            num_workers=self.workers,
            pin_memory=self.device.type == "cuda",
            generator=torch.Generator().manual_seed(seed),
            persistent_workers=False,
        )
        try:
            for xb, yb in loader:
                xb = xb.to(self.device, non_blocking=True)
                if self.channels_last:
                    xb = xb.contiguous(memory_format=torch.channels_last)
                yield xb, yb.to(self.device, non_blocking=True)
        except PrunekitError:
            raise
        except Exception as exc:  # noqa: BLE001 - a worker's error arrives wrapped, with its traceback as text
            lines = [line for line in str(exc).splitlines() if line.strip()]
            last = lines[-1] if lines else type(exc).__name__
            prefix = "prunekit.errors.PrunekitError: "
            if last.startswith(prefix):
                raise PrunekitError(last[len(prefix) :]) from None
            raise


class FolderData:
    """An image-folder dataset, streamed; the same attributes the engine reads of ``ImageData``."""

    streamed = True

    def __init__(self, root: Path, image_size: int = 224, workers: int | None = None):
        from torchvision import datasets

        self.root = Path(root)
        self.name = f"folder:{root}"
        self.image_size = image_size
        self.workers = min(8, os.cpu_count() or 1) if workers is None else workers
        splits = self._splits()
        self.mean, self.std = IMAGENET_MEAN, IMAGENET_STD
        try:
            self.train = datasets.ImageFolder(
                str(splits["train"]), transform=self._transform(train=True), loader=open_rgb
            )
            self.test = datasets.ImageFolder(
                str(splits["test"]), transform=self._transform(train=False), loader=open_rgb
            )
        except FileNotFoundError as exc:  # a split with no class folders or no images
            raise PrunekitError(f"{self.root}: {first_line(exc)}; each split needs <class>/<image> files") from None
        if self.train.classes != self.test.classes:
            missing = sorted(set(self.train.classes) ^ set(self.test.classes))
            raise PrunekitError(
                f"{self.root}: train and {splits['test'].name} have different classes (in one only: "
                f"{', '.join(missing[:5])}{'...' if len(missing) > 5 else ''}); give both splits the "
                f"same class folders"
            )
        self.classes = self.train.classes
        self.source = f"image folder {self.root} (streamed)"

    def _splits(self) -> dict[str, Path]:
        if not self.root.is_dir():
            raise PrunekitError(
                f"folder:{self.root}: no such folder; give a folder with train/<class>/* and "
                f"val/<class>/* (or test/<class>/*)"
            )
        test = next((self.root / s for s in ("val", "test") if (self.root / s).is_dir()), None)
        if not (self.root / "train").is_dir() or test is None:
            raise PrunekitError(
                f"folder:{self.root} must hold train/<class>/* and val/<class>/* (or test/<class>/*); "
                f"found {', '.join(sorted(p.name for p in self.root.iterdir())) or 'nothing'}"
            )
        return {"train": self.root / "train", "test": test}

    def _transform(self, train: bool):
        from torchvision.transforms import v2

        size = self.image_size
        steps = (
            [v2.RandomResizedCrop(size, antialias=True), v2.RandomHorizontalFlip()]
            if train
            else [v2.Resize(int(round(size / EVAL_CROP)), antialias=True), v2.CenterCrop(size)]
        )
        return v2.Compose(
            [v2.PILToTensor(), *steps, v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
        )

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (3, self.image_size, self.image_size)

    @property
    def train_size(self) -> int:
        return len(self.train)

    def check_images(self, threads: int = 8) -> None:
        """Open every image's header (no decoding) before training: the first unreadable file, in one line."""
        from PIL import Image

        def check(path: str) -> str | None:
            try:
                with Image.open(path):
                    return None
            except (OSError, ValueError) as exc:
                return f"{path} is not a readable image ({first_line(exc)}); remove or replace it"

        files = [p for p, _ in self.train.samples] + [p for p, _ in self.test.samples]
        with ThreadPoolExecutor(threads) as pool:
            for problem in pool.map(check, files, chunksize=256):
                if problem:
                    raise PrunekitError(problem)

    def batches(
        self,
        split: str,
        batch_size: int,
        *,
        device: torch.device,
        shuffle: bool = False,
        augment: bool = False,
        generator: torch.Generator | None = None,
        channels_last: bool = False,
        shard: tuple[int, int] = (0, 1),
    ) -> FolderBatches:
        """``augment`` is implied for the training split (random-resized-crop + flip), as timm trains."""
        dataset = self.train if split == "train" else self.test
        return FolderBatches(
            dataset,
            batch_size,
            device=device,
            workers=self.workers,
            shuffle=shuffle,
            generator=generator or torch.Generator(),
            channels_last=channels_last,
            shard=shard,
        )


class FolderProvider:
    """Your own images: train/<class>/* and val/ (or test/)<class>/* under PATH, streamed through DataLoader
    workers at --image-size (see docs/scale-out.md)."""

    example = "folder:/data/imagenet"

    def list_names(self) -> list[str]:
        return []

    def resolve(self, name: str):
        path = Path(name.split(":", 1)[1]).expanduser()

        def load(root: Path | None = None, image_size: int | None = None, workers: int | None = None) -> FolderData:
            return FolderData(path, image_size or 224, workers)

        load.__doc__ = f"image folder {path}, streamed"
        return load


provider = FolderProvider()
