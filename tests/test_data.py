"""Dataset import, in-memory batches and batched augmentation."""

import tarfile
from pathlib import Path

import pytest
import torch
from PIL import Image

from prunekit.data import Batches, import_image_folder, load_cached, synthetic
from prunekit.errors import PrunekitError

SHARED_CIFAR = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "cifar10-jpeg.tar.gz"


def _write_folder(root: Path, classes=("cat", "dog"), n=3):
    g = torch.Generator().manual_seed(0)
    images = {}
    for split in ("train", "test"):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                img = torch.randint(0, 256, (3, 4, 4), dtype=torch.uint8, generator=g)
                Image.fromarray(img.permute(1, 2, 0).numpy()).save(root / split / c / f"{i}.png")
                images[(split, c, i)] = img
    return images


def test_import_folder_and_tarball(tmp_path):
    src = tmp_path / "src"
    images = _write_folder(src)
    dest = import_image_folder(src, "custom", tmp_path / "cache")
    d = load_cached("custom", dest.parent)
    assert d["classes"] == ["cat", "dog"]
    assert d["train_x"].shape == (6, 3, 4, 4) and d["train_x"].dtype == torch.uint8
    assert d["train_y"].tolist() == [0, 0, 0, 1, 1, 1]
    assert torch.equal(d["test_x"][4], images[("test", "dog", 1)])  # lossless PNG round trip
    with pytest.raises(PrunekitError, match="already exists"):
        import_image_folder(src, "custom", tmp_path / "cache")
    tar_path = tmp_path / "copy.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tar:
        tar.add(src, arcname="export")
    dest2 = import_image_folder(tar_path, "custom2", tmp_path / "cache")
    d2 = load_cached("custom2", dest2.parent)
    assert torch.equal(d2["train_x"], d["train_x"]) and torch.equal(d2["test_y"], d["test_y"])


def test_import_rejects_wrong_layouts(tmp_path):
    src = tmp_path / "src"
    _write_folder(src, classes=("a", "b", "c"))
    with pytest.raises(PrunekitError, match="cifar10 has 10 classes"):
        import_image_folder(src, "cifar10", tmp_path / "cache")
    with pytest.raises(PrunekitError, match="does not exist"):
        import_image_folder(tmp_path / "missing", "cifar10", tmp_path / "cache")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PrunekitError, match="train/<class>"):
        import_image_folder(tmp_path / "empty", "cifar10", tmp_path / "cache")


def test_import_skips_hidden_files_and_names_a_file_that_is_no_image(tmp_path):
    src = tmp_path / "src"
    _write_folder(src)
    (src / "train" / "cat" / "._0.png").write_bytes(b"\x00\x05\x16\x07 macOS metadata")  # skipped
    dest = import_image_folder(src, "custom", tmp_path / "cache")
    assert load_cached("custom", dest.parent)["train_x"].shape[0] == 6
    (src / "test" / "dog" / "9.png").write_bytes(b"not a png")
    with pytest.raises(PrunekitError, match=r"test/dog/9\.png is not a readable image"):
        import_image_folder(src, "custom2", tmp_path / "cache")
    assert not (dest.parent / "custom2.pt").exists()  # nothing half-written


def test_import_of_a_cut_short_archive_is_one_clear_error(tmp_path):
    src = tmp_path / "src"
    _write_folder(src)
    tar_path = tmp_path / "copy.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tar:
        tar.add(src, arcname="export")
    tar_path.write_bytes(tar_path.read_bytes()[:-200])
    with pytest.raises(PrunekitError, match="damaged or cut short"):
        import_image_folder(tar_path, "custom", tmp_path / "cache")


@pytest.mark.skipif(not SHARED_CIFAR.exists(), reason="the offline CIFAR-10 JPEG copy is not beside this checkout")
def test_import_real_cifar10_copy(tmp_path):
    dest = import_image_folder(SHARED_CIFAR, "cifar10", tmp_path)
    d = load_cached("cifar10", dest.parent)
    assert d["train_x"].shape == (50000, 3, 32, 32) and d["test_x"].shape == (10000, 3, 32, 32)
    assert torch.bincount(d["train_y"]).tolist() == [5000] * 10
    assert d["classes"][0] == "airplane" and d["classes"][-1] == "truck"
    assert 100 < d["train_x"].float().mean() < 140  # real photos, not noise or blanks


def test_batches_normalise_and_cover_the_set():
    data = synthetic(n_train=100, n_test=10)
    b = Batches(
        data.train_x,
        data.train_y,
        32,
        data.mean,
        data.std,
        device=torch.device("cpu"),
        shuffle=True,
        generator=torch.Generator().manual_seed(0),
    )
    seen = torch.cat([y for _, y in b])
    assert len(b) == 4 and sorted(seen.tolist()) == sorted(data.train_y.tolist())
    x, _ = next(iter(Batches(data.train_x, data.train_y, 100, data.mean, data.std, device=torch.device("cpu"))))
    expected = (data.train_x.float() / 255 - 0.5) / 0.25
    assert torch.allclose(x, expected, atol=1e-5)


def test_augmentation_is_a_padded_crop_or_its_mirror():
    x = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8)
    b = Batches(
        x,
        torch.zeros(64, dtype=torch.long),
        64,
        (0, 0, 0),
        (1 / 255,) * 3,
        device=torch.device("cpu"),
        augment=True,
        pad=2,
        generator=torch.Generator().manual_seed(0),
    )
    out, _ = next(iter(b))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2)).float()
    flips = 0
    for i in range(64):
        windows = [padded[i, :, dy : dy + 8, dx : dx + 8] for dy in range(5) for dx in range(5)]
        plain = any(torch.equal(out[i], w) for w in windows)
        mirrored = any(torch.equal(out[i], w.flip(2)) for w in windows)
        assert plain or mirrored
        flips += mirrored and not plain
    assert 10 < flips < 54  # about half are mirrored
    again, _ = next(
        iter(
            Batches(
                x,
                torch.zeros(64, dtype=torch.long),
                64,
                (0, 0, 0),
                (1 / 255,) * 3,
                device=torch.device("cpu"),
                augment=True,
                pad=2,
                generator=torch.Generator().manual_seed(0),
            )
        )
    )
    assert torch.equal(out, again)  # same seed, same augmentation


def test_an_epochs_random_numbers_come_in_the_order_runs_have_always_drawn_them():
    """Shuffle, then per batch the crop offsets and the flips: a run resumed by a newer prunekit continues the
    stream its earlier epochs drew from (the last batch is short)."""
    n, size, pad = 70, 32, 2
    x = torch.randint(0, 256, (n, 3, 6, 6), dtype=torch.uint8)
    b = Batches(
        x,
        torch.arange(n),
        size,
        (0, 0, 0),
        (1 / 255,) * 3,
        device=torch.device("cpu"),
        shuffle=True,
        augment=True,
        pad=pad,
        generator=torch.Generator().manual_seed(3),
    )
    got = list(b)
    gen = torch.Generator().manual_seed(3)
    order = torch.randperm(n, generator=gen)
    padded = torch.nn.functional.pad(x, (pad,) * 4).float()
    for (xb, yb), start in zip(got, range(0, n, size), strict=True):
        idx = order[start : start + size]
        shift = torch.randint(0, 2 * pad + 1, (2, len(idx)), generator=gen)
        flip = torch.rand(len(idx), generator=gen) < 0.5
        assert torch.equal(yb, idx)
        for i, j in enumerate(idx.tolist()):
            window = padded[j, :, shift[0, i] : shift[0, i] + 6, shift[1, i] : shift[1, i] + 6]
            assert torch.equal(xb[i], window.flip(2) if flip[i] else window)
