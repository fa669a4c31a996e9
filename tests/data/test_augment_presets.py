"""Every shipped classification preset's training augmentation, run on a few hundred varied real-looking files.

The ImageNet recipe's RandAugment (``rand-m9-mstd0.5-inc1``) draws each op's level from N(9, 0.5) clipped to
[0, 10]; 10 (2.3% of draws) asks Pillow to posterize to 0 bits, which Pillow 13 refuses. A second pass pins
every op's level at both ends of its range so that every extreme is met on every run, not by chance.
"""

from __future__ import annotations

import glob
import os

import numpy as np
import pytest
import torch
from PIL import Image
from timm.data.auto_augment import AugMixAugment, AutoAugment, RandAugment

from mambaout.tasks.classification import data
from mambaout.tasks.classification.task import build_mixup, resolve_config

PRESET_DIR = os.path.join(os.path.dirname(data.__file__), "..", "..", "presets", "classification")
PRESETS = sorted(os.path.splitext(os.path.basename(p))[0] for p in glob.glob(os.path.join(PRESET_DIR, "*.yaml")))
CLASSES = 3
BATCH = 16


def _content(rng, kind: int, h: int, w: int, c: int) -> np.ndarray:
    """uint8 (h, w, c): noise, a flat colour, a gradient, stripes, or smooth blobs."""
    if kind == 0:
        return rng.integers(0, 256, (h, w, c), dtype=np.uint8)
    if kind == 1:  # constant images: autocontrast/equalize have no range to stretch
        return np.full((h, w, c), rng.integers(0, 256, c), dtype=np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    if kind == 2:
        base = (xx / max(w - 1, 1) * 255 + yy / max(h - 1, 1) * 128) % 256
    elif kind == 3:
        base = ((xx // max(w // 8, 1) + yy // max(h // 8, 1)) % 2) * 255.0
    else:
        base = 127.5 + 127.5 * np.sin(xx / max(w, 1) * rng.uniform(2, 12)) * np.cos(yy / max(h, 1) * rng.uniform(2, 12))
    shift = rng.integers(0, 256, c)
    return ((base[..., None] + shift) % 256).astype(np.uint8)


def _save(rng, arr: np.ndarray, path_stem: str, k: int) -> None:
    """``arr`` (h, w, 3) saved in one of many modes and formats the loader converts."""
    rgb = Image.fromarray(arr)
    kind = k % 12
    if kind == 0:
        rgb.save(path_stem + ".jpg", quality=int(rng.integers(30, 95)))
    elif kind == 1:
        rgb.save(path_stem + ".png")
    elif kind == 2:
        rgb.convert("L").save(path_stem + ".jpg")
    elif kind == 3:
        alpha = rng.integers(0, 256, arr.shape[:2], dtype=np.uint8)
        Image.fromarray(np.dstack([arr, alpha])).save(path_stem + ".png")  # RGBA
    elif kind == 4:
        rgb.convert("P").save(path_stem + ".gif")
    elif kind == 5:
        p = rgb.convert("P")
        p.info["transparency"] = 0
        p.save(path_stem + ".png", transparency=0)
    elif kind == 6:
        rgb.convert("CMYK").save(path_stem + ".jpg")
    elif kind == 7:
        rgb.convert("CMYK").save(path_stem + ".tif")
    elif kind == 8:
        Image.fromarray(arr[..., 0].astype(np.uint16) * 257).save(path_stem + ".png")  # I;16
    elif kind == 9:
        Image.fromarray(arr[..., 1].astype(np.float32) / 3).save(path_stem + ".tif")  # F
    elif kind == 10:
        rgb.convert("LA").save(path_stem + ".png")
    else:
        rgb.convert("1").save(path_stem + ".bmp")


SIZES = [(1, 1), (1, 2), (2, 1), (3, 3), (1, 400), (400, 1), (5, 300), (300, 5), (17, 31), (64, 64), (120, 90)]
SIZES += [(224, 224), (333, 500), (500, 333)]


@pytest.fixture(scope="module")
def varied_folder(tmp_path_factory):
    """<root>/train/<class>/*: ~250 files of varied size, mode, format and content (+ scikit-learn's photos)."""
    root = tmp_path_factory.mktemp("varied")
    rng = np.random.default_rng(16)
    k = 0
    for c in range(CLASSES):
        os.makedirs(root / "train" / f"c{c}")
    for repeat in range(5):
        for h, w in SIZES:
            for kind in range(3 + repeat % 3):
                arr = _content(rng, (kind + repeat) % 5, h, w, 3)
                _save(rng, arr, str(root / "train" / f"c{k % CLASSES}" / f"im{k}"), k)
                k += 1
    for h, w in ((1200, 800), (64, 2000)):  # a few large ones
        _save(rng, _content(rng, 4, h, w, 3), str(root / "train" / "c0" / f"big{h}"), 1)
    try:
        from sklearn.datasets import load_sample_images

        for i, photo in enumerate(load_sample_images().images):
            for j in range(3):
                _save(rng, photo, str(root / "train" / f"c{j}" / f"photo{i}"), k)
                k += 1
    except ImportError:
        pass
    return root


def _cfg(preset: str, root, sets=()):
    cfg = resolve_config(preset, device="cpu")
    # the preset's augmentation on image files: its own data set may be in memory or generated
    cfg.data.dataset, cfg.data.root, cfg.data.num_classes = "imagefolder", str(root), CLASSES
    cfg.data.device_augment, cfg.data.holdout = False, 0
    cfg.data.train_subset = cfg.data.val_subset = None
    cfg.train.batch_size, cfg.train.accum_steps, cfg.data.num_workers = BATCH, 1, 0
    return cfg


def _augment_ops(transform):
    for t in transform.transforms:
        if isinstance(t, RandAugment | AugMixAugment):
            yield from t.ops
        elif isinstance(t, AutoAugment):
            yield from (op for sub in t.policy for op in sub)


def _one_epoch(cfg, uint8: bool):
    """Every batch of one epoch of the training stream (mixup/cutmix applied where configured)."""
    ds = data.build_dataset(cfg, "train", uint8=uint8)
    stream = data.train_stream(cfg, ds, 0, 1, False, torch.device("cpu") if uint8 else None)
    mixup = build_mixup(cfg)
    n = 0
    for _ in range(stream.batches_per_epoch):
        images, targets = data.to_device(*stream.next(), torch.device("cpu"))
        if mixup is not None:
            images, targets = mixup(images, targets)
            assert torch.allclose(targets.sum(1), torch.ones(len(targets)))
        size = cfg.data.img_size
        assert images.shape[1:] == (cfg.model.in_chans, size, size) and images.dtype == torch.float32
        assert torch.isfinite(images).all()
        n += len(images)
    stream.close()
    assert data.bad_files(ds) == []  # every generated file is readable
    return ds, n


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_augmentation_on_varied_images(preset, varied_folder, one_thread):
    n_files = sum(len(files) for _, _, files in os.walk(varied_folder / "train"))
    assert n_files >= 200
    for uint8 in (False, True):  # the CPU path, and the GPU-prefetch path's uint8 workers + normaliser
        cfg = _cfg(preset, varied_folder)
        _, n = _one_epoch(cfg, uint8)
        assert n >= n_files - BATCH
    # the extremes of every op: its level pinned at 0 and at the top, applied every time it is drawn
    cfg = _cfg(preset, varied_folder)
    if not cfg.aug.auto_augment:
        return
    ds = data.build_dataset(cfg, "train")
    ops = list(_augment_ops(ds.transform))
    assert ops, f"{cfg.aug.auto_augment}: no augmentation ops found in the transform"
    for level in ("top", 0):
        for op in ops:
            op.prob, op.magnitude_std = 1.0, 0
            op.magnitude = (op.magnitude_max or 10) if level == "top" else 0
        stream = data.train_stream(cfg, ds, 0, 1, False)
        for _ in range(stream.batches_per_epoch):
            images, _ = stream.next()
            assert torch.isfinite(images).all()


def test_posterize_keeps_pillow12_result():
    """Pillow <= 12 posterized 0 (or fewer) bits to all zeros; 1..7 bits keep the high bits; 8 is a no-op."""
    from mambaout.data.augment import posterize

    arr = np.arange(256, dtype=np.uint8).reshape(16, 16)
    for mode in ("L", "RGB"):
        img = Image.fromarray(arr).convert(mode)
        for bits in (0, -3):
            out = np.asarray(posterize(img, bits))
            assert out.shape == np.asarray(img).shape and not out.any()
        assert np.array_equal(np.asarray(posterize(img, 3)), np.asarray(img) & 0b11100000)
        assert posterize(img, 8) is img
