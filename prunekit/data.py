"""Datasets held in memory as uint8 tensors, with batched tensor augmentation.

A dataset is cached as one ``<name>.pt`` file (uint8 images N×C×H×W, int64
labels, class names) in the data directory: ``--data-dir``, else
``$PRUNEKIT_DATA``, else ``~/.cache/prunekit``. CIFAR-10/100 come from
torchvision's downloader when online, or from ``prunekit data import`` of an
image-folder copy (``train/<class>/*``, ``test/<class>/*``, folder or .tar.gz).
"""

from __future__ import annotations

import io
import os
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from .errors import PrunekitError, first_line
from .records import atomic_save

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)


@dataclass
class ImageData:
    """A whole dataset in memory."""

    name: str
    train_x: torch.Tensor  # uint8 N×C×H×W
    train_y: torch.Tensor  # int64 N
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str = ""
    streamed = False

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
    ) -> Batches:
        """Batches of the ``"train"`` or ``"test"`` split (``FolderData`` has the same method)."""
        x, y = (self.train_x, self.train_y) if split == "train" else (self.test_x, self.test_y)
        return Batches(
            x,
            y,
            batch_size,
            self.mean,
            self.std,
            device=device,
            shuffle=shuffle,
            augment=augment,
            generator=generator,
            channels_last=channels_last,
            shard=shard,
        )

    @property
    def train_size(self) -> int:
        return len(self.train_y)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.train_x.shape[1:])  # type: ignore[return-value]


def data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The data folder: ``--data-dir``, else $PRUNEKIT_DATA, else ~/.cache/prunekit."""
    env = os.environ.get("PRUNEKIT_DATA")
    if explicit:
        path, source = Path(explicit).expanduser(), "--data-dir"
    elif env:
        path, source = Path(env).expanduser(), "$PRUNEKIT_DATA"
    else:
        path, source = Path.home() / ".cache" / "prunekit", "the default data folder"
    if path.exists() and not path.is_dir():
        raise PrunekitError(
            f"{source} names {path}, which is a file, not a folder; give a folder (it is created "
            f"if missing; the file is left as it is)"
        )
    return path


# --------------------------------------------------------------------------- loaders (entry points)
_KEYS = {"train_x", "train_y", "test_x", "test_y", "classes"}


def load_cached(name: str, root: Path) -> dict | None:
    """The cached arrays of dataset ``name`` in ``root``, or None when it is not there."""
    path = root / f"{name}.pt"
    if not path.exists():
        return None
    try:
        d = torch.load(path, weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise PrunekitError(
            f"cannot read the cached dataset {path} ({first_line(exc)}); delete it and import or download again"
        ) from None
    if not isinstance(d, dict) or not _KEYS <= set(d):
        raise PrunekitError(f"{path} is not a prunekit dataset cache; delete it and import or download again")
    return d


def _torchvision_cifar(name: str, root: Path, download: bool) -> dict:
    import torchvision

    cls = {"cifar10": torchvision.datasets.CIFAR10, "cifar100": torchvision.datasets.CIFAR100}[name]
    tv_root = root / "torchvision"
    out = {}
    for split in ("train", "test"):
        ds = cls(str(tv_root), train=split == "train", download=download)
        out[f"{split}_x"] = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
        out[f"{split}_y"] = torch.as_tensor(ds.targets, dtype=torch.long)
        out["classes"] = list(ds.classes)
    out["source"] = f"torchvision {cls.__name__}"
    return out


def _cifar(name: str, root: Path, mean, std) -> ImageData:
    cached = load_cached(name, root)
    if cached is None:
        try:
            try:
                raw = _torchvision_cifar(name, root, download=False)
            except RuntimeError:
                raw = _torchvision_cifar(name, root, download=True)
        except Exception as exc:  # noqa: BLE001 - offline, DNS, HTTP: all mean "not here"
            raise PrunekitError(
                f"{name} is not in {root} and could not be downloaded ({first_line(exc, 120)}); "
                f"run `prunekit data import PATH --dataset {name}` with an image-folder copy "
                f"(train/<class>/*, test/<class>/*; a folder or .tar.gz), or point --data-dir/$PRUNEKIT_DATA at a "
                f"folder that has it"
            ) from None
        root.mkdir(parents=True, exist_ok=True)
        atomic_save(raw, root / f"{name}.pt")
        cached = raw
    return ImageData(name=name, mean=mean, std=std, **cached)


def cifar10(root: Path) -> ImageData:
    """CIFAR-10 (50,000 + 10,000 images of 32 px, 10 classes), held in memory; torchvision's download or
    `prunekit data import`."""
    return _cifar("cifar10", root, CIFAR_MEAN, CIFAR_STD)


def cifar100(root: Path) -> ImageData:
    """CIFAR-100 (50,000 + 10,000 images of 32 px, 100 classes), held in memory; torchvision's download or
    `prunekit data import`."""
    return _cifar("cifar100", root, CIFAR100_MEAN, CIFAR100_STD)


def synthetic(
    root: Path | None = None,
    n_train: int = 512,
    n_test: int = 256,
    num_classes: int = 10,
    size: int = 32,
    seed: int = 0,
) -> ImageData:
    """Learnable random data: each class is a fixed template plus noise (for tests)."""
    g = torch.Generator().manual_seed(seed)
    templates = torch.rand(num_classes, 3, size, size, generator=g)

    def make(n):
        y = torch.randint(0, num_classes, (n,), generator=g)
        x = 0.6 * templates[y] + 0.4 * torch.rand(n, 3, size, size, generator=g)
        return (x * 255).round().to(torch.uint8), y

    tx, ty = make(n_train)
    vx, vy = make(n_test)
    return ImageData(
        "synthetic",
        tx,
        ty,
        vx,
        vy,
        [f"class{i}" for i in range(num_classes)],
        (0.5, 0.5, 0.5),
        (0.25, 0.25, 0.25),
        source=f"synthetic seed={seed}",
    )


# --------------------------------------------------------------------------- import
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm")


def import_image_folder(src: str | os.PathLike, dataset: str, root: Path, overwrite: bool = False) -> Path:
    """Decode an image-folder copy (train/<class>/*, test/<class>/*) into ``root/<dataset>.pt``."""
    src = Path(src)
    dest = root / f"{dataset}.pt"
    if dest.exists() and not overwrite:
        raise PrunekitError(f"{dest} already exists; pass --overwrite to replace it")
    if not src.exists():
        raise PrunekitError(f"{src} does not exist; give a folder or .tar.gz with train/<class>/* and test/<class>/*")
    files: dict[str, dict[str, list[bytes]]] = {"train": {}, "test": {}}
    for rel, read in _walk(src):
        parts = Path(rel).parts
        if len(parts) < 3 or parts[-3] not in files or not parts[-1].lower().endswith(_IMAGE_SUFFIXES):
            continue
        if parts[-1].startswith("."):  # hidden files, e.g. the "._name.jpg" metadata macOS adds to archives
            continue
        files[parts[-3]].setdefault(parts[-2], []).append((parts[-1], read))
    classes = sorted(files["train"])
    if not classes or sorted(files["test"]) != classes:
        raise PrunekitError(
            f"{src} must hold train/<class>/* and test/<class>/* with the same classes; found train: "
            f"{classes or 'none'}, test: {sorted(files['test']) or 'none'}"
        )
    expected = {"cifar10": 10, "cifar100": 100}.get(dataset)
    if expected and len(classes) != expected:
        raise PrunekitError(f"{dataset} has {expected} classes but {src} has {len(classes)}")
    out: dict = {"classes": classes, "source": f"image folder {src.name}"}
    for split, by_class in files.items():
        xs, ys = [], []
        for label, cname in enumerate(classes):
            for name, read in sorted(by_class[cname], key=lambda t: t[0]):
                try:
                    xs.append(_decode_rgb(read()))
                except OSError as exc:  # PIL's "cannot identify image file" is an OSError
                    raise PrunekitError(
                        f"{src}: {split}/{cname}/{name} is not a readable image ({first_line(exc)}); "
                        f"remove or replace it, then import again"
                    ) from None
                ys.append(label)
        shapes = {tuple(x.shape) for x in xs}
        if len(shapes) != 1:
            raise PrunekitError(f"images in {src}/{split} differ in size ({sorted(shapes)[:3]}...); resize them first")
        out[f"{split}_x"] = torch.stack(xs)
        out[f"{split}_y"] = torch.as_tensor(ys, dtype=torch.long)
    root.mkdir(parents=True, exist_ok=True)
    atomic_save(out, dest)
    return dest


def _decode_rgb(blob: bytes) -> torch.Tensor:
    import numpy as np
    from PIL import Image

    with Image.open(io.BytesIO(blob)) as img:
        return torch.from_numpy(np.asarray(img.convert("RGB")).copy()).permute(2, 0, 1).contiguous()


def _walk(src: Path):
    """(relative path, reader) for every file of a folder or a tar archive."""
    if src.is_dir():
        for path in sorted(src.rglob("*")):
            if path.is_file():
                yield str(path.relative_to(src)), path.read_bytes
        return
    try:
        tar = tarfile.open(src)
    except (tarfile.TarError, OSError) as exc:
        raise PrunekitError(
            f"cannot open {src} as a folder or tar archive ({first_line(exc)}); give the folder or its .tar(.gz)"
        ) from None
    try:
        with tar:
            members = [m for m in tar.getmembers() if m.isfile()]
            blobs = {m.name: tar.extractfile(m).read() for m in members}
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise PrunekitError(
            f"cannot read {src}: the archive is damaged or cut short ({first_line(exc) or type(exc).__name__}); "
            f"copy or download it again"
        ) from None
    for name, blob in sorted(blobs.items()):
        yield name, (lambda b=blob: b)


# --------------------------------------------------------------------------- batches
def batch_shards(n: int, batch_size: int, shard: tuple[int, int]) -> Iterator[tuple[slice, torch.Tensor | slice]]:
    """Each global batch of an order of ``n`` items (its span) and this rank's positions within it: the
    batch split among ``shard = (rank, ranks)`` as evenly as it goes. A last batch smaller than the
    number of ranks is left out on all of them. ``Batches`` and the streamed folders' sampler both
    shard this way, so N ranks see what one process sees."""
    rank, ranks = shard
    for start in range(0, n, batch_size):
        size = min(batch_size, n - start)
        if ranks == 1:
            yield slice(start, start + size), slice(None)
        elif size >= ranks:
            yield slice(start, start + size), torch.arange(size).tensor_split(ranks)[rank]


class Batches:
    """Shuffled, augmented, normalised batches from uint8 tensors kept on ``device``.

    Augmentation (random crop with ``pad`` zero padding, horizontal flip) is done
    for the whole batch with tensor ops; the random numbers come from
    ``generator`` so a run is reproducible and resumable. With ``shard=(rank, ranks)``
    each batch of the shared order is split among the ranks and this one yields its part
    (the same order and draws on every rank, so N ranks see what one process sees); a last
    batch smaller than the number of ranks is left out on all of them.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        mean,
        std,
        *,
        device: torch.device,
        shuffle: bool = False,
        augment: bool = False,
        pad: int = 4,
        generator: torch.Generator | None = None,
        channels_last: bool = False,
        shard: tuple[int, int] = (0, 1),
    ):
        self.x = x.to(device)
        self.shard = shard
        self.y = y.to(device)
        self.batch_size = batch_size
        self.shuffle, self.augment, self.pad = shuffle, augment, pad
        self.generator = generator or torch.Generator()
        self.device = device
        self.channels_last = channels_last
        c = x.shape[1]
        self.mean = torch.as_tensor(mean[:c], device=device).view(1, c, 1, 1) * 255
        self.std = torch.as_tensor(std[:c], device=device).view(1, c, 1, 1) * 255

    def __len__(self) -> int:
        return (len(self.x) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.x)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        starts = range(0, n, self.batch_size)
        if self.augment:  # drawn batch by batch, in the order a run always drew them, and copied once: on a
            # GPU, each copy from pageable memory waits for the work queued before it
            draws = [self._draw(min(self.batch_size, n - start)) for start in starts]
            shifts = torch.cat([shift for shift, _ in draws], 1).to(self.device)
            flips = torch.cat([flip for _, flip in draws]).to(self.device)
        order = order.to(self.device)
        for span, mine in batch_shards(n, self.batch_size, self.shard):
            if isinstance(mine, torch.Tensor):
                mine = mine.to(self.device)
            idx = order[span][mine]
            xb = self.x[idx]
            if self.augment:
                xb = self._augment(xb, shifts[:, span][:, mine], flips[span][mine])
            xb = (xb.float() - self.mean) / self.std
            if self.channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            yield xb, self.y[idx]

    def _draw(self, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One batch's crop offsets (rows, columns) and flips."""
        shift = torch.randint(0, 2 * self.pad + 1, (2, b), generator=self.generator)
        return shift, torch.rand(b, generator=self.generator) < 0.5

    def _augment(self, xb: torch.Tensor, shift: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
        b, c, h, w = xb.shape
        p = self.pad
        padded = F.pad(xb, (p, p, p, p))
        rows = (shift[0][:, None] + torch.arange(h, device=self.device))[:, None, :, None]
        cols = torch.arange(w, device=self.device).expand(b, w)
        cols = torch.where(flip[:, None], cols.flip(1), cols) + shift[1][:, None]
        return padded[
            torch.arange(b, device=self.device)[:, None, None, None],
            torch.arange(c, device=self.device)[None, :, None, None],
            rows,
            cols[:, None, None, :],
        ]
