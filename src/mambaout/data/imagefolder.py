"""ImageFolder that survives real-world files.

Layout: ``<root>/<split>/<class>/<image>`` (ImageNet: ``train/n01440764/*.JPEG``, ``val/n01440764/*``).
Images are converted to RGB (or L): grayscale, CMYK, RGBA/LA (composited on white), palette and
16-bit/32-bit integer or float images all load. An unreadable (corrupt/truncated) file is skipped: the
sample is replaced by the next readable one, its path is logged once and appended to ``bad_files_log``
(one path a line; works across DataLoader workers) and counted in ``bad_files``.

The scan follows symlinks but not a symlink loop, and takes only regular files: a FIFO named ``x.jpg`` would
block the worker that opens it forever. Each is skipped with one warning. A split with fewer than two classes
that hold images is refused; an empty class folder is a warning (the class is never seen).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageFile

from ..errors import DatasetError
from .files import open_image

log = logging.getLogger("mambaout")
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif")


def load_image(path: str, mode: str = "RGB") -> Image.Image:
    """Open and fully decode ``path`` as ``mode`` ('RGB' or 'L'); raises OSError/ValueError if unreadable."""
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    with open_image(path) as img:
        img.load()
        return convert_image(img, mode)


def convert_image(img: Image.Image, mode: str = "RGB") -> Image.Image:
    """A decoded image as ``mode``: 16/32-bit integer and float images scaled to 8 bits, transparency
    composited on white (CMYK, palette and grayscale convert as Pillow does)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if img.mode.startswith("I;16") else max(float(arr.max()), 1.0)
        img = Image.fromarray(np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8))
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return img.convert(mode)


def _scan(top: str, special: list[str], loops: list[str]) -> list[tuple[str, list[str]]]:
    """(folder, sorted image names) under ``top``, sorted by folder (``sorted(os.walk(top, followlinks=True))``'s
    order), without special files (appended to ``special``) or symlinks back to an ancestor (to ``loops``)."""
    found = []

    def visit(path: str, ancestors: frozenset):
        try:
            entries = list(os.scandir(path))
        except OSError:  # unreadable folder: skipped, as os.walk did
            return
        names = []
        for e in entries:
            if e.is_dir():  # follows symlinks
                try:
                    st = e.stat()
                except OSError:
                    continue
                if (st.st_dev, st.st_ino) in ancestors:
                    loops.append(e.path)
                else:
                    visit(e.path, ancestors | {(st.st_dev, st.st_ino)})
            elif e.name.lower().endswith(IMG_EXTENSIONS):
                # a broken symlink stays a sample: it is reported as unreadable when read, as any bad file
                if e.is_file() or (e.is_symlink() and not os.path.exists(e.path)):
                    names.append(e.name)
                else:
                    special.append(e.path)
        found.append((path, sorted(names)))

    st = os.stat(top)
    visit(top, frozenset({(st.st_dev, st.st_ino)}))
    return sorted(found)


class RobustImageFolder:
    def __init__(
        self,
        root: str,
        split: str | None = "train",
        transform: Callable | None = None,
        mode: str = "RGB",
        bad_files_log: str | None = None,
        classes: list[str] | None = None,
        training: bool = False,
    ):
        """classes: the training set's class names (a validation set must have the same folders).
        training: the set trains a model, so at least two of its classes must hold images."""
        folder = os.path.join(root, split) if split else root
        if not os.path.isdir(root):
            raise DatasetError(
                f"data root {root!r} does not exist (expected an ImageFolder layout: "
                f"<root>/train/<class>/*.jpg and <root>/val/<class>/*.jpg)"
            )
        if not os.path.isdir(folder):
            raise DatasetError(f"data root {root!r} has no {split!r} folder (expected <root>/{split}/<class>/*.jpg)")
        found = sorted(d.name for d in os.scandir(folder) if d.is_dir())
        if not found:
            raise DatasetError(f"{folder!r} holds no class folders (expected {folder}/<class>/*.jpg)")
        self.classes = classes or found
        if classes is not None and sorted(found) != sorted(classes):
            missing = sorted(set(classes) - set(found))
            extra = sorted(set(found) - set(classes))
            raise DatasetError(
                f"{folder!r}: class folders differ from the training set's (missing {missing[:3]}, extra {extra[:3]})"
            )
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        self.samples: list[tuple[str, int]] = []
        special, loops, empty = [], [], []
        for c in self.classes:
            n = len(self.samples)
            for dirpath, names in _scan(os.path.join(folder, c), special, loops):
                self.samples += [(os.path.join(dirpath, name), self.class_to_idx[c]) for name in names]
            if len(self.samples) == n:
                empty.append(c)
        if special:
            log.warning(
                "%s: skipped %d special files with image names (FIFOs, sockets, devices; e.g. %s): only regular "
                "files are read",
                folder,
                len(special),
                special[0],
            )
        if loops:
            log.warning(
                "%s: %d symlinks point back to a folder that contains them (e.g. %s): not followed, so no image is "
                "read twice",
                folder,
                len(loops),
                loops[0],
            )
        if not self.samples:
            raise DatasetError(f"{folder!r}: no images found (extensions {', '.join(IMG_EXTENSIONS)})")
        held = [c for c in self.classes if c not in empty]
        if len(self.classes) < 2 or (training and len(held) < 2):  # one class: nothing to tell apart
            raise DatasetError(
                f"{folder!r}: only {len(held)} class folder holds images ({held[0]!r}): a classifier needs at least "
                f"2 (one folder per class: {folder}/<class>/*.jpg)"
            )
        if empty:
            log.warning(
                "%s: %s no images (%s): %s",
                folder,
                f"{len(empty)} class folders hold" if len(empty) > 1 else "1 class folder holds",
                ", ".join(empty[:5]) + (", ..." if len(empty) > 5 else ""),
                "the model keeps an output for each but never learns them"
                if training
                else "they are not measured (0 images each)",
            )
        self.targets = [t for _, t in self.samples]
        self.num_classes = len(self.classes)
        self.transform, self.mode, self.bad_files_log = transform, mode, bad_files_log
        self._bad = set()

    def __len__(self):
        return len(self.samples)

    def _mark_bad(self, path: str, err: Exception):
        if path in self._bad:
            return
        self._bad.add(path)
        log.warning(
            "skipping unreadable image %s (%s)",
            path,
            str(err).splitlines()[0][:120] if str(err) else type(err).__name__,
        )
        if self.bad_files_log:
            with open(self.bad_files_log, "a") as f:  # O_APPEND: whole short lines from several workers
                f.write(path + "\n")

    @property
    def bad_files(self) -> list[str]:
        """Unreadable files met so far (read from the shared log when there is one, so workers count too)."""
        found = set(self._bad)
        if self.bad_files_log and os.path.isfile(self.bad_files_log):
            with open(self.bad_files_log) as f:
                found |= {line.strip() for line in f if line.strip()}
        return sorted(found)

    def verify(self) -> int:
        """Decode every file now and drop the unreadable ones; returns how many were dropped."""
        good = []
        for path, target in self.samples:
            try:
                load_image(path, self.mode)
                good.append((path, target))
            except Exception as e:  # noqa: BLE001  (PIL raises many types)
                self._mark_bad(path, e)
        dropped = len(self.samples) - len(good)
        self.samples, self.targets = good, [t for _, t in good]
        return dropped

    def __getitem__(self, index: int):
        for k in range(len(self.samples)):
            path, target = self.samples[(index + k) % len(self.samples)]
            try:
                img = load_image(path, self.mode)
            except Exception as e:  # noqa: BLE001
                self._mark_bad(path, e)
                continue
            if self.transform is not None:
                img = self.transform(img)
            return img, target
        raise DatasetError("no readable image left in the dataset")
