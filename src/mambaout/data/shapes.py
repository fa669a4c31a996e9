"""Generated datasets written in the real on-disk formats, for smoke runs and tests.

``write_coco_shapes``: images with 1-3 coloured shapes (rectangle, ellipse, triangle) on a noisy
background, COCO ``instances_{train,val}.json`` with polygon masks (ellipses as polygons, some
rectangles as uncompressed RLE). ``write_ade_shapes``: the same kind of images in the
``ADEChallengeData2016`` layout, label 0 = background "other" (ignored after reduce-zero-label),
1..K = shape classes.
"""

from __future__ import annotations

import math
import os
import random

import numpy as np
from PIL import Image, ImageDraw

from .dense_layout import coco_annotation, coco_image, rle_counts, write_ade_pair, write_coco_json

SHAPES = ("rectangle", "ellipse", "triangle")
COLORS = ((220, 40, 40), (40, 200, 60), (50, 80, 230))


def _polygon(kind: str, x0, y0, x1, y1):
    if kind == "rectangle":
        return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    if kind == "triangle":
        return [((x0 + x1) / 2, y0), (x1, y1), (x0, y1)]
    cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
    return [(cx + rx * math.cos(a), cy + ry * math.sin(a)) for a in np.linspace(0, 2 * math.pi, 24, endpoint=False)]


_rle = rle_counts  # the shared writer's encoder (kept under its old name)


def _scene(rng: random.Random, size: tuple[int, int], max_objects: int = 3):
    h, w = size
    base = np.array([rng.randint(90, 160)] * 3, dtype=np.float32)
    img = np.clip(base + np.random.default_rng(rng.randint(0, 2**31)).normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)
    pil = Image.fromarray(img)
    draw = ImageDraw.Draw(pil)
    objects, occupied = [], np.zeros((h, w), bool)
    for _ in range(rng.randint(1, max_objects)):
        for _try in range(20):
            bw, bh = rng.randint(w // 5, w // 2), rng.randint(h // 5, h // 2)
            x0, y0 = rng.randint(0, w - bw - 1), rng.randint(0, h - bh - 1)
            if not occupied[y0 : y0 + bh, x0 : x0 + bw].any():
                break
        else:
            continue
        k = rng.randrange(len(SHAPES))
        poly = _polygon(SHAPES[k], x0, y0, x0 + bw, y0 + bh)
        draw.polygon(poly, fill=COLORS[k])
        m = Image.new("L", (w, h), 0)
        ImageDraw.Draw(m).polygon(poly, fill=1)
        mask = np.asarray(m, dtype=np.uint8)
        if not mask.any():
            continue
        occupied |= mask.astype(bool)
        objects.append((k, poly, mask))
    return pil, objects


def write_coco_shapes(root: str, n_train: int = 200, n_val: int = 50, size=(128, 128), seed: int = 0) -> str:
    """Write ``root/{train,val}/*.png`` and ``root/annotations/instances_{train,val}.json``; returns root."""
    rng = random.Random(seed)
    os.makedirs(os.path.join(root, "annotations"), exist_ok=True)
    for split, n in (("train", n_train), ("val", n_val)):
        os.makedirs(os.path.join(root, split), exist_ok=True)
        images, anns = [], []
        for i in range(n):
            pil, objects = _scene(rng, size)
            name = f"{i:06d}.png"
            pil.save(os.path.join(root, split, name))
            images.append(coco_image(i + 1, name, *size))
            for k, poly, mask in objects:
                seg = (
                    None if (SHAPES[k] == "rectangle" and rng.random() < 0.5) else [[float(c) for p in poly for c in p]]
                )
                anns.append(coco_annotation(len(anns) + 1, i + 1, k + 1, mask, seg))
        write_coco_json(os.path.join(root, "annotations", f"instances_{split}.json"), images, anns, SHAPES)
    return root


def write_ade_shapes(root: str, n_train: int = 200, n_val: int = 50, size=(128, 128), seed: int = 0) -> str:
    """Write an ``ADEChallengeData2016``-layout set (3 classes after reduce-zero-label); returns root."""
    rng = random.Random(seed)
    for split, n in (("training", n_train), ("validation", n_val)):
        for i in range(n):
            pil, objects = _scene(rng, size)
            label = np.zeros(size, np.uint8)
            for k, _, mask in objects:
                label[mask.astype(bool)] = k + 1
            write_ade_pair(root, split, f"ADE_{i:06d}", pil, label)
    return root
