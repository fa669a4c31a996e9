"""Writers for the two on-disk dense layouts the readers load: COCO instances (JSON + image folder) and
ADE20K-style semantic masks (``images/<split>/`` + ``annotations/<split>/<stem>.png``, one label value a
pixel). One piece of code for every generated set (``shapes``, ``scenes``), so what they write is what
:class:`~.detection.CocoInstances` and :class:`~.segmentation.ADE20K` read.
"""

from __future__ import annotations

import json
import os

import numpy as np
from PIL import Image

# The largest image side the generators write: ADE20K's and Cityscapes' images are at most 2048 px wide, so
# this leaves room for sweeps while a typo (20000) is refused before minutes of drawing and GBs of PNGs.
MAX_SIDE = 8192


def _span(flags: np.ndarray) -> tuple[int, int]:
    idx = np.flatnonzero(flags)
    return int(idx[0]), int(idx[-1]) + 1


def rle_counts(mask: np.ndarray) -> dict:
    """Uncompressed COCO RLE of a (h, w) mask: run lengths in column-major order, starting with a 0-run
    (readable without pycocotools). Only the columns the mask touches are scanned (scenes of 1024^2 px)."""
    mask = np.asarray(mask, bool)
    h, w = mask.shape
    cols = mask.any(0)
    if not cols.any():
        return {"size": [h, w], "counts": [h * w]}
    c0, c1 = _span(cols)
    flat = mask[:, c0:c1].T.reshape(-1)
    edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    counts = np.diff(np.concatenate([[0], edges, [flat.size]])).tolist()
    if flat[0]:
        counts = [0] + counts
    counts[0] += c0 * h  # the untouched columns: zeros before and after
    if flat[-1]:
        counts.append((w - c1) * h)
    else:
        counts[-1] += (w - c1) * h
    if counts[-1] == 0:
        counts.pop()
    return {"size": [h, w], "counts": [int(c) for c in counts]}


def coco_annotation(ann_id: int, image_id: int, category_id: int, mask: np.ndarray, segmentation=None, **extra):
    """One COCO object: box and area from ``mask`` (its visible pixels); ``segmentation`` defaults to the
    mask's uncompressed RLE. ``extra`` keys are kept (readers ignore keys they do not know)."""
    mask = np.asarray(mask, bool)
    (x0, x1), (y0, y1) = _span(mask.any(0)), _span(mask.any(1))
    return dict(
        id=int(ann_id),
        image_id=int(image_id),
        category_id=int(category_id),
        iscrowd=0,
        bbox=[float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
        area=float(np.count_nonzero(mask[y0:y1, x0:x1])),
        segmentation=rle_counts(mask) if segmentation is None else segmentation,
        **extra,
    )


def coco_image(image_id: int, file_name: str, height: int, width: int) -> dict:
    return dict(id=int(image_id), file_name=file_name, width=int(width), height=int(height))


def write_coco_json(path: str, images: list[dict], annotations: list[dict], category_names) -> str:
    """``instances_*.json`` with categories 1..K named in order."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    cats = [dict(id=k + 1, name=str(n)) for k, n in enumerate(category_names)]
    with open(path, "w") as f:
        json.dump(dict(images=images, annotations=annotations, categories=cats), f)
    return path


def write_ade_pair(root: str, split: str, stem: str, image: Image.Image, label: np.ndarray, ext: str = ".jpg") -> str:
    """``root/images/<split>/<stem><ext>`` and its label ``root/annotations/<split>/<stem>.png`` (uint8 values);
    returns the image's file name."""
    for sub in ("images", "annotations"):
        os.makedirs(os.path.join(root, sub, split), exist_ok=True)
    name = stem + ext
    image = image.convert("RGB")
    if ext.lower() in (".jpg", ".jpeg"):
        image.save(os.path.join(root, "images", split, name), quality=95)
    else:  # fast, lossless: large generated sets are written often and read once
        image.save(os.path.join(root, "images", split, name), compress_level=1)
    Image.fromarray(np.asarray(label, np.uint8), mode="L").save(os.path.join(root, "annotations", split, stem + ".png"))
    return name
