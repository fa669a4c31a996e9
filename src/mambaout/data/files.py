"""Reading the image and label files of the detection and segmentation datasets.

Every error names the file; a dataset that skips malformed annotations reports what it skipped once.
"""

from __future__ import annotations

import logging
import os
from collections import Counter

import numpy as np
import torch
from PIL import Image

from ..errors import DatasetError

log = logging.getLogger("mambaout")

IGNORE_INDEX = 255  # label value of pixels that no loss or metric counts


def load_rgb(path: str) -> Image.Image:
    if not os.path.isfile(path):
        raise DatasetError("image file not found", path)
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except OSError as e:
        raise DatasetError(f"unreadable image ({e})", path) from None


def image_to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL RGB -> float (3, H, W) in [0, 1]."""
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).float().div_(255)


def report_skipped(name: str, path: str, skipped: Counter):
    if skipped:
        log.warning("%s %s: skipped %s", name, path, ", ".join(f"{v} {k}" for k, v in sorted(skipped.items())))


def load_label(path: str, palette: bool | None = None) -> np.ndarray:
    if not os.path.isfile(path):
        raise DatasetError("label file not found", path)
    try:
        with Image.open(path) as lab:
            if palette and lab.mode != "P":
                raise DatasetError(f"expected a palette (mode 'P') PNG of class indices, got mode {lab.mode!r}", path)
            if lab.mode not in ("P", "L", "I", "I;16"):
                raise DatasetError(f"expected a single-channel label PNG, got mode {lab.mode!r}", path)
            return np.asarray(lab).astype(np.int64)
    except OSError as e:
        raise DatasetError(f"unreadable label image ({e})", path) from None
