import os

import numpy as np
import pytest
from PIL import Image

from mambaout.data import FashionMNIST, RobustImageFolder, SyntheticClassification, load_image
from mambaout.data.fashion_mnist import SYSTEM_DIR, write_idx
from mambaout.errors import DatasetError


def _idx(path, arr, gz):
    write_idx(path + (".gz" if gz else ""), arr)


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_idx(tmp_path, gz):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 6), ("t10k", 3)):
        _idx(str(tmp_path / f"{prefix}-images-idx3-ubyte"), rng.integers(0, 255, (n, 28, 28)), gz)
        _idx(str(tmp_path / f"{prefix}-labels-idx1-ubyte"), np.arange(n) % 10, gz)
    ds = FashionMNIST(str(tmp_path), "test")
    img, y = ds[2]
    assert len(ds) == 3 and img.size == (28, 28) and img.mode == "L" and y == 2
    assert FashionMNIST(str(tmp_path), "train", rgb=True)[0][0].mode == "RGB"


def test_fashion_mnist_errors(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        FashionMNIST(str(tmp_path / "nope"))
    with pytest.raises(DatasetError, match="train-images-idx3-ubyte"):
        FashionMNIST(str(tmp_path))
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + b"\x00" * 20)
    _idx(str(tmp_path / "train-labels-idx1-ubyte"), np.zeros(2), False)
    with pytest.raises(DatasetError, match="truncated"):
        FashionMNIST(str(tmp_path))


@pytest.mark.skipif(not os.path.isdir(SYSTEM_DIR), reason="dataset-fashion-mnist not installed")
def test_fashion_mnist_system_copy():
    assert len(FashionMNIST(split="train")) == 60000 and len(FashionMNIST(split="test")) == 10000


def _write_images(folder):
    os.makedirs(folder / "a")
    os.makedirs(folder / "b")
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(folder / "a" / "rgb.png")
    Image.fromarray(rgb[..., 0]).save(folder / "a" / "gray.png")
    Image.fromarray(rgb).convert("CMYK").save(folder / "a" / "cmyk.jpg")
    Image.fromarray(np.dstack([rgb, rgb[..., :1]])).save(folder / "b" / "rgba.png")
    Image.fromarray(rgb).convert("P").save(folder / "b" / "palette.png")
    Image.fromarray((rng.integers(0, 65535, (20, 20))).astype(np.uint16)).save(folder / "b" / "deep16.png")
    (folder / "b" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")


def test_imagefolder_modes_and_corrupt(tmp_path):
    _write_images(tmp_path / "train")
    for name in ("rgb.png", "gray.png", "cmyk.jpg"):
        assert load_image(str(tmp_path / "train" / "a" / name)).mode == "RGB"
    ds = RobustImageFolder(str(tmp_path), "train", bad_files_log=str(tmp_path / "bad.txt"))
    assert ds.classes == ["a", "b"] and len(ds) == 7
    items = [ds[i] for i in range(len(ds))]
    assert all(img.mode == "RGB" and img.size == (20, 20) for img, _ in items)
    assert ds.bad_files == [str(tmp_path / "train" / "b" / "corrupt.jpg")]
    assert ds.verify() == 1 and len(ds) == 6


def test_imagefolder_layout_errors(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        RobustImageFolder(str(tmp_path / "missing"))
    with pytest.raises(DatasetError, match="no 'val' folder"):
        RobustImageFolder(str(tmp_path), "val")
    os.makedirs(tmp_path / "train")
    with pytest.raises(DatasetError, match="no class folders"):
        RobustImageFolder(str(tmp_path), "train")


def test_synthetic_is_deterministic():
    a, b = SyntheticClassification(8, 4, 16, seed=1), SyntheticClassification(8, 4, 16, seed=1)
    assert (a[3][0] == b[3][0]).all() and a[3][1] == 3 and a[3][0].shape == (3, 16, 16)
    assert not (a[3][0] == SyntheticClassification(8, 4, 16, seed=1, split="val")[3][0]).all()
