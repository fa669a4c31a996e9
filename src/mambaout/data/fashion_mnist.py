"""Fashion-MNIST read straight from its IDX files (``.gz`` or uncompressed).

Default folder: ``$MAMBAOUT_FASHION_MNIST`` or ``/usr/share/datasets/fashion-mnist`` (Debian's
``dataset-fashion-mnist`` package). Expected files: ``train-images-idx3-ubyte[.gz]``,
``train-labels-idx1-ubyte[.gz]``, ``t10k-images-idx3-ubyte[.gz]``, ``t10k-labels-idx1-ubyte[.gz]``.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..errors import DatasetError

CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
MEAN, STD = 0.2860, 0.3530
ENV_VAR = "MAMBAOUT_FASHION_MNIST"
SYSTEM_DIR = "/usr/share/datasets/fashion-mnist"


def default_fashion_mnist_dir() -> str:
    return os.environ.get(ENV_VAR) or SYSTEM_DIR


def _find(root: str, stem: str) -> str:
    for name in (stem, stem + ".gz"):
        path = os.path.join(root, name)
        if os.path.isfile(path):
            return path
    raise DatasetError(
        f"Fashion-MNIST: {stem}[.gz] not found in {root!r} (expected the 4 IDX files "
        f"train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
        f"t10k-labels-idx1-ubyte, optionally .gz; set --data-root or ${ENV_VAR})"
    )


def read_idx(path: str) -> np.ndarray:
    """An IDX array (magic: 0 0 dtype ndim, big-endian dims); unsigned-byte data only, as in MNIST."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise DatasetError(f"cannot read IDX file {path!r}: {e}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DatasetError(f"{path!r} is not an unsigned-byte IDX file")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    count = int(np.prod(dims))
    if len(data) - offset != count:
        raise DatasetError(f"{path!r} is truncated or corrupt ({len(data) - offset} bytes of data, expected {count})")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(dims)


def write_idx(path: str, array) -> None:
    """Write an unsigned-byte IDX file (gzip-compressed when ``path`` ends in .gz): the inverse of read_idx,
    for converting other data to this layout and for tests."""
    array = np.asarray(array)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


class FashionMNIST(Dataset):
    """split: 'train' (60k) or 'test' (10k); items are (PIL 'L' image or transform(image), label)."""

    classes = CLASSES

    def __init__(
        self, root: str | None = None, split: str = "train", transform: Callable | None = None, rgb: bool = False
    ):
        root = root or default_fashion_mnist_dir()
        if not os.path.isdir(root):
            state = "is a file, not a folder" if os.path.exists(root) else "does not exist"
            raise DatasetError(
                f"Fashion-MNIST folder {root!r} {state} (install Debian's "
                f"dataset-fashion-mnist, or pass --data-root / set ${ENV_VAR})"
            )
        prefix = {"train": "train", "test": "t10k", "val": "t10k"}.get(split)
        if prefix is None:
            raise DatasetError(f"Fashion-MNIST split must be 'train' or 'test', got {split!r}")
        self.images = read_idx(_find(root, f"{prefix}-images-idx3-ubyte"))
        self.targets = torch.from_numpy(read_idx(_find(root, f"{prefix}-labels-idx1-ubyte")).astype(np.int64))
        if self.images.ndim != 3 or len(self.images) != len(self.targets):
            raise DatasetError(
                f"Fashion-MNIST in {root!r}: images {self.images.shape} and labels "
                f"{tuple(self.targets.shape)} do not match"
            )
        self.transform, self.rgb = transform, rgb
        self.num_classes = len(CLASSES)

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        img = Image.fromarray(self.images[i])  # uint8 H x W -> mode 'L'
        if self.rgb:
            img = img.convert("RGB")
        if self.transform is not None:
            img = self.transform(img)
        return img, int(self.targets[i])
