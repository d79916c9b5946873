"""Streamed image folders (``--dataset folder:PATH``): layout, transforms, sharding and bad input."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import run_cli
from PIL import Image

from prunekit.errors import PrunekitError
from prunekit.folders import FolderData, ShardedBatchSampler
from prunekit.models.timm_models import default_image_size

CLASSES = ["cat", "dog", "emu"]


def make_folder(root: Path, test_split: str = "val", per_class: tuple[int, int] = (6, 3)) -> Path:
    """JPEGs of several sizes (the transforms must bring them to one) in train/ and ``test_split``/."""
    rng = np.random.default_rng(0)
    for split, n in (("train", per_class[0]), (test_split, per_class[1])):
        for c, name in enumerate(CLASSES):
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                h, w = 20 + 4 * i, 28 - 2 * i
                pixels = (rng.integers(0, 60, (h, w, 3)) + 60 * c).astype(np.uint8)
                Image.fromarray(pixels).save(root / split / name / f"{i}.jpg")
    return root


def test_folder_run_trains_streams_and_records(tmp_path, capsys):
    data = make_folder(tmp_path / "imgs", test_split="test")
    code, out, err = run_cli(
        [
            "run",
            "--method",
            "standard",
            "--model",
            "c2_8",
            "--dataset",
            f"folder:{data}",
            "--image-size",
            "16",
            "--workers",
            "1",
            "--epochs",
            "2",
            "--batch-size",
            "6",
            "--lr",
            "0.05",
            "--quiet",
            "--out",
            str(tmp_path / "runs"),
            "--name",
            "f",
        ],
        capsys,
    )
    assert code == 0, out + err
    summary = json.loads((tmp_path / "runs" / "f" / "summary.json").read_text())
    assert summary["data_source"].endswith("(streamed)")
    rows = [json.loads(line) for line in (tmp_path / "runs" / "f" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(0.0 <= r["test_acc"] <= 1.0 for r in rows)
    config = json.loads((tmp_path / "runs" / "f" / "config.json").read_text())
    assert config["image_size"] == 16 and config["workers"] == 1


def test_train_and_eval_transforms_give_the_image_size(tmp_path):
    data = FolderData(make_folder(tmp_path / "imgs"), image_size=12, workers=0)
    assert data.classes == CLASSES and data.shape == (3, 12, 12) and data.train_size == 18
    for split in ("train", "test"):
        xb, yb = next(
            iter(data.batches(split, 4, device=torch.device("cpu"), generator=torch.Generator().manual_seed(0)))
        )
        assert xb.shape == (4, 3, 12, 12) and xb.dtype == torch.float32 and yb.dtype == torch.long
        assert -3 < float(xb.mean()) < 3  # normalised, not 0..255


def test_same_generator_same_batches_and_shards_partition_each_batch():
    whole = list(ShardedBatchSampler(10, 4, shuffle=True, generator=torch.Generator().manual_seed(1)))
    again = list(ShardedBatchSampler(10, 4, shuffle=True, generator=torch.Generator().manual_seed(1)))
    assert whole == again and sorted(i for b in whole for i in b) == list(range(10))
    parts = [
        list(ShardedBatchSampler(10, 4, shuffle=True, generator=torch.Generator().manual_seed(1), shard=(r, 2)))
        for r in (0, 1)
    ]
    assert [p0 + p1 for p0, p1 in zip(*parts)] == whole


@pytest.mark.parametrize(
    "damage, message",
    [
        ("bad_image", "is not a readable image"),
        ("class_missing", "train and val have different classes (in one only: emu)"),
        ("no_test_split", "must hold train/<class>/* and val/<class>/* (or test/<class>/*)"),
        ("empty_class", "each split needs <class>/<image> files"),
    ],
)
def test_bad_folders_get_one_line_before_training(tmp_path, capsys, damage, message):
    data = make_folder(tmp_path / "imgs")
    if damage == "bad_image":
        (data / "val" / "dog" / "1.jpg").write_bytes(b"not a jpeg at all")
        message = f"{data / 'val' / 'dog' / '1.jpg'} " + message
    elif damage == "class_missing":
        for f in (data / "val" / "emu").iterdir():
            f.unlink()
        (data / "val" / "emu").rmdir()
    elif damage == "no_test_split":
        (data / "val").rename(data / "validation")
    elif damage == "empty_class":
        for f in (data / "train" / "cat").iterdir():
            f.unlink()
    code, out, err = run_cli(
        [
            "run",
            "--model",
            "c2_8",
            "--dataset",
            f"folder:{data}",
            "--image-size",
            "16",
            "--workers",
            "0",
            "--epochs",
            "1",
            "--quiet",
            "--out",
            str(tmp_path / "runs"),
        ],
        capsys,
    )
    text = " ".join((out + err).split())
    assert code == 2 and message in text and "Traceback" not in text
    assert not (tmp_path / "runs").exists()  # nothing written


def test_unreadable_image_found_while_decoding_names_the_file(tmp_path):
    """A file whose header opens but whose data is cut short fails in a worker: one line naming it."""
    data = make_folder(tmp_path / "imgs")
    victim = data / "train" / "cat" / "2.jpg"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (200, 200, 3)).astype(np.uint8)).save(victim)
    victim.write_bytes(victim.read_bytes()[:20_000])  # of ~60 KB: the header is whole, the scan data is not
    folder = FolderData(data, image_size=12, workers=1)
    folder.check_images()  # the header alone is fine
    with pytest.raises(PrunekitError, match=f"{victim} is not a readable image"):
        for _ in folder.batches("train", 18, device=torch.device("cpu")):
            pass


def test_image_size_defaults_to_the_timm_models_own():
    assert default_image_size("timm:resnet18") == 224
    assert default_image_size("c3_32") is None
