import logging
import os
import socket

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


def _tiny_png(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.full((4, 4, 3), 100, np.uint8)).save(path)


def test_imagefolder_needs_two_classes_with_images(tmp_path):
    _tiny_png(str(tmp_path / "train" / "only" / "x.png"))
    with pytest.raises(DatasetError, match=r"only 1 class folder holds images \('only'\).*at least 2"):
        RobustImageFolder(str(tmp_path), "train")
    os.makedirs(tmp_path / "train" / "empty")  # a second folder, but without images: still one class to learn
    with pytest.raises(DatasetError, match="only 1 class folder holds images"):
        RobustImageFolder(str(tmp_path), "train", training=True)


@pytest.mark.parametrize("training", [True, False])
def test_imagefolder_empty_class_warns_once(tmp_path, caplog, training):
    for c in ("a", "b"):
        _tiny_png(str(tmp_path / "train" / c / "x.png"))
    os.makedirs(tmp_path / "train" / "c_empty")
    with caplog.at_level(logging.WARNING, logger="mambaout"):
        ds = RobustImageFolder(str(tmp_path), "train", training=training)
    assert ds.num_classes == 3 and len(ds) == 2
    warnings = [r.getMessage() for r in caplog.records if "no images (" in r.getMessage()]
    assert len(warnings) == 1 and "c_empty" in warnings[0]
    assert ("never learns them" if training else "not measured") in warnings[0]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_imagefolder_skips_special_files(tmp_path, caplog):
    """A FIFO named like an image would block the reader forever; a socket is no image either."""
    for c in ("a", "b"):
        _tiny_png(str(tmp_path / "train" / c / "x.png"))
    os.mkfifo(tmp_path / "train" / "a" / "fifo.jpg")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(tmp_path / "train" / "b" / "sock.png"))
        with caplog.at_level(logging.WARNING, logger="mambaout"):
            ds = RobustImageFolder(str(tmp_path), "train")
    finally:
        sock.close()
    assert sorted(os.path.basename(p) for p, _ in ds.samples) == ["x.png", "x.png"]
    assert [img.size for img, _ in (ds[0], ds[1])] == [(4, 4), (4, 4)]
    warnings = [r.getMessage() for r in caplog.records if "special files" in r.getMessage()]
    assert len(warnings) == 1 and "skipped 2 special files" in warnings[0]


def test_imagefolder_symlink_loop_is_not_followed(tmp_path, caplog):
    for c in ("a", "b"):
        _tiny_png(str(tmp_path / "train" / c / "x.png"))
    os.symlink("..", tmp_path / "train" / "a" / "up")  # a -> a/up -> train (holds a and b) -> ...
    os.symlink(str(tmp_path / "train" / "b"), tmp_path / "train" / "a" / "b_again")  # not a loop: followed
    with caplog.at_level(logging.WARNING, logger="mambaout"):
        ds = RobustImageFolder(str(tmp_path), "train")
    # a/x.png, a/b_again/x.png and, through a/up, train/b/x.png (a/up/a is a loop: not entered)
    assert sorted(os.path.relpath(p, tmp_path / "train") for p, _ in ds.samples) == [
        "a/b_again/x.png",
        "a/up/b/x.png",
        "a/x.png",
        "b/x.png",
    ]
    warnings = [r.getMessage() for r in caplog.records if "symlink" in r.getMessage()]
    assert len(warnings) == 1 and "not followed" in warnings[0]


def test_imagefolder_keeps_the_old_sample_order(tmp_path):
    """Run folders and resumed runs index samples by position: the scan lists them as os.walk did."""
    rng = np.random.default_rng(0)
    for k in range(30):
        parts = [f"c{k % 3}"] + [f"d{int(v)}" for v in rng.integers(0, 3, int(rng.integers(0, 3)))]
        _tiny_png(str(tmp_path.joinpath("train", *parts, f"{k % 7}_{k}.png")))
    ds = RobustImageFolder(str(tmp_path), "train")
    old = []
    for c in ds.classes:
        for dirpath, _, files in sorted(os.walk(tmp_path / "train" / c, followlinks=True)):
            old += [os.path.join(dirpath, n) for n in sorted(files)]
    assert [p for p, _ in ds.samples] == old
