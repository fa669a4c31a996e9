"""Reading the image and label files of the detection and segmentation datasets.

Every error names the file; a dataset that skips malformed annotations reports what it skipped once.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from collections import Counter

import numpy as np
import torch
from PIL import Image

from ..errors import DatasetError

log = logging.getLogger("mambaout")

IGNORE_INDEX = 255  # label value of pixels that no loss or metric counts


_bomb_warned: set[str] = set()  # paths whose size warning this process has logged
_filters = threading.Lock()  # warnings.catch_warnings swaps process-wide filters: one thread at a time


def open_image(path: str) -> Image.Image:
    """``Image.open`` with Pillow's decompression-bomb guard as one line: over twice ``Image.MAX_IMAGE_PIXELS``
    a :class:`DatasetError` (Pillow raises its own error, no ``OSError``); over once a warning logged once per
    path and process, instead of Python's two-line ``DecompressionBombWarning`` on every read. Only the
    header is read here (fast); decoding happens on ``load``/``convert``, outside the lock."""
    with _filters, warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            return Image.open(path)
        except Image.DecompressionBombError as e:
            raise DatasetError(f"not decoded: {e}", path) from None
        except Image.DecompressionBombWarning as e:
            if path not in _bomb_warned:
                _bomb_warned.add(path)
                log.warning("%s: %s; decoded anyway (refused above twice the limit)", path, e)
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(path)


def image_size(path: str) -> tuple[int, int]:
    """(width, height) from the file's header; errors as :func:`load_rgb`'s."""
    if not os.path.isfile(path):
        raise DatasetError("image file not found", path)
    try:
        with open_image(path) as img:
            return img.size
    except (OSError, ValueError, SyntaxError) as e:
        raise DatasetError(f"unreadable image ({e})", path) from None


def load_rgb(path: str) -> Image.Image:
    if not os.path.isfile(path):
        raise DatasetError("image file not found", path)
    try:
        with open_image(path) as img:
            return img.convert("RGB")
    except (OSError, ValueError, SyntaxError) as e:  # PIL's decoders raise all three
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
        with open_image(path) as lab:
            if palette and lab.mode != "P":
                raise DatasetError(f"expected a palette (mode 'P') PNG of class indices, got mode {lab.mode!r}", path)
            if lab.mode not in ("P", "L", "I", "I;16"):
                raise DatasetError(f"expected a single-channel label PNG, got mode {lab.mode!r}", path)
            return np.asarray(lab).astype(np.int64)
    except (OSError, ValueError, SyntaxError) as e:
        raise DatasetError(f"unreadable label image ({e})", path) from None
