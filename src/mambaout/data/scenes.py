"""Fashion-MNIST scenes: dense data of real pixels whose side S can be swept (docs/scenes.md).

A scene is an S x S canvas with K items cut from real Fashion-MNIST images (training scenes from the train
split, test scenes from the test split, never mixed), each scaled to a side in ``item_size`` and placed so
that every item keeps at least ``1 - max_overlap`` of its silhouette visible. The background is a clutter
of other items of the same split, pasted at low contrast and blurred, plus noise. Instance masks are the
visible silhouettes, boxes come from the masks, the semantic mask holds 0 = background, 1..10 = class + 1.

Variants:
  local    every item is labelled with its own class.
  context  item 0 (the marker) sits in a framed cell in a random corner; every item is labelled with the
           marker's class, and no other item comes within Chebyshev distance ``context_distance`` (d) of
           the cell. Everything outside the cell is drawn independently of the marker's class, which is
           uniform over the 10 classes, so a predictor that sees only pixels within distance r < d of a
           non-marker item pixel cannot beat 1/10 expected accuracy on those pixels (the card's bound).

Each scene is a function of (seed, split, index) alone. ``write_scenes`` writes the COCO and ADE20K-style
layouts with :mod:`.dense_layout` and a dataset card.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image, ImageFilter

from ..errors import DatasetError, UsageError
from .dense_layout import MAX_SIDE, coco_annotation, coco_image, write_ade_pair, write_coco_json
from .fashion_mnist import CLASSES, FashionMNIST, default_fashion_mnist_dir

STRIDE = 32  # the dense models' output stride: S must divide by it
SPLITS = {"training": "train", "validation": "test"}  # scene split -> Fashion-MNIST split (never mixed)
SILHOUETTE = 16  # an item pixel belongs to the silhouette when its grey value (0..255) is above this
FRAME = 2  # marker frame width (px)
FRAME_RGB = (255, 215, 0)
OCCUPANCY = 0.2  # default K: items cover about this share of the free canvas
PLACE_TRIES = 2000  # random positions tried per item (uniform over the allowed ones)
VARIANTS = ("local", "context")


@dataclass
class SceneSpec:
    size: int = 256
    items: int | None = None  # K (None: from OCCUPANCY)
    item_size: tuple[int, int] | None = None  # item side range in px (None: S/8..S/4, at most 32..64)
    max_overlap: float = 0.2  # the most of an item's silhouette later items may cover
    variant: str = "local"
    context_distance: int | None = None  # d (None: S // 4)

    def __post_init__(self):
        s = self.size
        if s < 2 * STRIDE or s % STRIDE:
            raise UsageError(f"scene size S={s} must be a multiple of the models' stride {STRIDE} and >= {2 * STRIDE}")
        if s > MAX_SIDE:
            raise UsageError(f"scene size S={s} is over the generators' limit of {MAX_SIDE} px")
        if self.variant not in VARIANTS:
            raise UsageError(f"unknown scene variant {self.variant!r}; known: {', '.join(VARIANTS)}")
        if self.variant != "context" and self.context_distance is not None:
            raise UsageError("a context distance applies to the context variant only (--variant context)")
        if not 0 <= self.max_overlap < 1:
            raise UsageError(f"max overlap must be in [0, 1), got {self.max_overlap}")
        if self.item_size is None:
            self.item_size = (max(12, min(32, s // 8)), max(16, min(64, s // 4)))
        lo, hi = (int(v) for v in self.item_size)
        if not 8 <= lo <= hi <= s // 2:
            raise UsageError(f"item size {lo}..{hi} px: need 8 <= min <= max <= S/2 = {s // 2}")
        self.item_size = (lo, hi)
        if self.variant == "context":
            self.context_distance = s // 4 if self.context_distance is None else int(self.context_distance)
            if self.context_distance < 1 or self.zone_side() >= s:
                raise UsageError(
                    f"context distance {self.context_distance} px leaves no room for items in S={s} "
                    f"(marker cell {self.cell_side()} px + distance must stay under S)"
                )
        free = self.free_area()
        mean_area = ((lo + hi) / 2) ** 2
        cap = max(0, int(0.5 * free / mean_area)) + (1 if self.variant == "context" else 0)
        if self.items is None:
            self.items = max(2 if self.variant == "context" else 1, round(OCCUPANCY * free / mean_area))
        if self.items < (2 if self.variant == "context" else 1):
            raise UsageError(f"K={self.items} items: need at least {2 if self.variant == 'context' else 1}")
        if self.items > cap:
            raise UsageError(
                f"K={self.items} items of side {lo}..{hi} px are too many for S={s} "
                f"({self.variant}): at most {cap} fit (half the free area)"
            )

    def cell_side(self) -> int:
        return self.item_size[1] + 2 * (FRAME + 1)

    def zone_side(self) -> int:
        return self.cell_side() + (self.context_distance or 0)

    def free_area(self) -> int:
        """Canvas area where (non-marker) items may lie."""
        return self.size**2 - (self.zone_side() ** 2 if self.variant == "context" else 0)


@dataclass
class Scene:
    image: np.ndarray  # (S, S, 3) uint8
    semantic: np.ndarray  # (S, S) uint8: 0 background, c + 1 for the label class c
    masks: list[np.ndarray]  # visible silhouettes (bool, S x S), one per item
    labels: list[int]  # the label class of each item (0..9)
    classes: list[int]  # each item's own Fashion-MNIST class
    sources: list[int]  # each item's index in its Fashion-MNIST split
    marker: int | None  # index of the marker item (context variant)
    cell: tuple[int, int, int, int] | None  # marker cell (x0, y0, x1, y1), exclusive ends


class ItemPool:
    """One Fashion-MNIST split, indexed by class, for drawing items and clutter (``ItemPool.of``: one per
    folder and split, read once a process)."""

    _cache: dict = {}

    @classmethod
    def of(cls, root: str | None, split: str) -> ItemPool:
        key = (os.path.abspath(root or default_fashion_mnist_dir()), split)
        if key not in cls._cache:
            cls._cache[key] = cls(root, split)
        return cls._cache[key]

    def __init__(self, root: str | None, split: str):
        ds = FashionMNIST(root, split)
        self.split, self.images, self.targets = split, ds.images, ds.targets.numpy()
        self.by_class = [np.flatnonzero(self.targets == c) for c in range(len(CLASSES))]
        missing = [CLASSES[c] for c, ix in enumerate(self.by_class) if not len(ix)]
        if missing:
            raise DatasetError(f"Fashion-MNIST {split} split has no image of class {', '.join(missing)}")

    def draw(self, rng: np.random.Generator, cls: int) -> int:
        ix = self.by_class[cls]
        return int(ix[rng.integers(len(ix))])


def _scaled(img: np.ndarray, side: int) -> np.ndarray:
    return np.asarray(Image.fromarray(img).resize((side, side), Image.BILINEAR), np.float32)


def _background(rng: np.random.Generator, pool: ItemPool, spec: SceneSpec) -> np.ndarray:
    """Low-contrast clutter of blurred items of the same split over a tinted grey, plus noise."""
    s, (lo, hi) = spec.size, spec.item_size
    layer = np.zeros((s, s), np.float32)
    for _ in range(max(1, round(s * s / (hi * hi)))):
        side = int(rng.integers(lo, hi + 1))
        patch = _scaled(pool.images[int(rng.integers(len(pool.images)))], side)
        y, x = (int(v) for v in rng.integers(-side // 2, s - side // 2, 2))
        ys, xs = slice(max(y, 0), min(y + side, s)), slice(max(x, 0), min(x + side, s))
        sub = patch[ys.start - y : ys.stop - y, xs.start - x : xs.stop - x]
        layer[ys, xs] = np.maximum(layer[ys, xs], sub)
    blur = np.asarray(Image.fromarray(layer.astype(np.uint8)).filter(ImageFilter.GaussianBlur(lo / 6)), np.float32)
    base = rng.uniform(40, 110) * rng.uniform(0.8, 1.0, 3)
    img = base + 0.35 * blur[..., None] * rng.uniform(0.7, 1.0, 3) + rng.normal(0, 6, (s, s, 3))
    return img


def _outside(ii: np.ndarray, y: int, x: int, side: int) -> bool:
    """The side x side square at (y, x) holds no forbidden pixel (``ii``: integral image of the forbidden map)."""
    return ii[y + side, x + side] - ii[y, x + side] - ii[y + side, x] + ii[y, x] == 0


def make_scene(pool: ItemPool, spec: SceneSpec, seed: int, index: int) -> Scene:
    """Scene ``index`` of ``pool``'s split, a function of (seed, split, index) only."""
    rng = np.random.default_rng([seed, 0 if pool.split == "train" else 1, index])
    s, (lo, hi) = spec.size, spec.item_size
    canvas = _background(rng, pool, spec)
    owner = np.full((s, s), -1, np.int32)  # which item each pixel shows
    areas, visible, classes, sources = [], [], [], []  # silhouette and visible pixels per item
    allowed = np.ones((s, s), bool)
    cell = marker = None
    if spec.variant == "context":  # the marker's cell in a random corner; items stay d away from it
        c, z = spec.cell_side(), spec.zone_side()
        cy, cx = (0 if rng.integers(2) == 0 else s - c for _ in range(2))
        cell = (cx, cy, cx + c, cy + c)
        zy, zx = (0 if cy == 0 else s - z), (0 if cx == 0 else s - z)
        allowed[zy : zy + z, zx : zx + z] = False
        marker = 0
    forbidden = np.pad(np.cumsum(np.cumsum(~allowed, 0, dtype=np.int64), 1), ((1, 0), (1, 0)))
    for k in range(spec.items):
        cls = int(rng.integers(len(CLASSES)))  # uniform classes, independent of everything else
        src = pool.draw(rng, cls)
        side = int(rng.integers(lo, hi + 1))
        item = _scaled(pool.images[src], side)
        sil = item > SILHOUETTE
        if k == marker:  # inside the cell, within the frame
            m = FRAME + 1
            y = cell[1] + m + int(rng.integers(hi - side + 1))
            x = cell[0] + m + int(rng.integers(hi - side + 1))
        else:
            for _ in range(PLACE_TRIES):
                y, x = (int(v) for v in rng.integers(0, s - side + 1, 2))
                if not _outside(forbidden, y, x, side):
                    continue
                covered = np.bincount(owner[y : y + side, x : x + side][sil] + 1, minlength=k + 1)[1:]
                if all(visible[j] - covered[j] >= (1 - spec.max_overlap) * areas[j] for j in np.flatnonzero(covered)):
                    break
            else:
                raise DatasetError(
                    f"could not place item {k + 1} of K={spec.items} in S={s} within max overlap "
                    f"{spec.max_overlap}: use fewer items (--items) or smaller ones (--item-size)"
                )
            for j in np.flatnonzero(covered):
                visible[j] -= int(covered[j])
        tint = rng.uniform(0.6, 1.0, 3)
        region = canvas[y : y + side, x : x + side]
        region[sil] = item[sil][:, None] * tint
        owner[y : y + side, x : x + side][sil] = k
        areas.append(int(sil.sum()))
        visible.append(areas[-1])
        classes.append(cls)
        sources.append(src)
    if cell is not None:  # the frame: drawn last, on the cell's border (no item pixel lies there)
        x0, y0, x1, y1 = cell
        frame = np.zeros((s, s), bool)
        frame[y0:y1, x0:x1] = True
        frame[y0 + FRAME : y1 - FRAME, x0 + FRAME : x1 - FRAME] = False
        canvas[frame] = FRAME_RGB
    labels = [classes[marker]] * len(classes) if marker is not None else list(classes)
    masks = [owner == k for k in range(len(classes))]
    semantic = np.zeros((s, s), np.uint8)
    for k, m in enumerate(masks):
        semantic[m] = labels[k] + 1
    image = np.clip(canvas, 0, 255).astype(np.uint8)
    return Scene(image, semantic, masks, labels, classes, sources, marker, cell)


def scene_paths(root: str) -> dict:
    """Where :func:`write_scenes` puts each part (relative to ``root``)."""
    return {
        split: dict(images=f"images/{split}", ann=f"annotations/instances_{split}.json", labels=f"annotations/{split}")
        for split in SPLITS
    }


def write_scenes(
    root: str, spec: SceneSpec, n_train: int, n_val: int, seed: int = 0, fashion_root: str | None = None
) -> dict:
    """Write ``n_train`` training and ``n_val`` validation scenes under ``root`` in both layouts; returns the
    card (also written as ``root/card.json`` and ``root/CARD.md``)."""
    if n_train < 1 or n_val < 1:
        raise UsageError(f"need at least one training and one validation scene, got {n_train} and {n_val}")
    counts = {}
    for split, n in (("training", n_train), ("validation", n_val)):
        pool = ItemPool.of(fashion_root, SPLITS[split])
        images, anns = [], []
        inst = np.zeros(len(CLASSES), np.int64)
        pix = np.zeros(len(CLASSES) + 1, np.int64)
        for i in range(n):
            sc = make_scene(pool, spec, seed, i)
            name = write_ade_pair(root, split, f"scene_{i:06d}", Image.fromarray(sc.image), sc.semantic, ".png")
            images.append(coco_image(i + 1, name, spec.size, spec.size))
            for k, m in enumerate(sc.masks):
                extra = dict(own_class=sc.classes[k], source_index=sc.sources[k], marker=int(k == sc.marker))
                anns.append(coco_annotation(len(anns) + 1, i + 1, sc.labels[k] + 1, m, **extra))
                inst[sc.labels[k]] += 1
            pix += np.bincount(sc.semantic.ravel(), minlength=len(CLASSES) + 1)
        write_coco_json(os.path.join(root, scene_paths(root)[split]["ann"]), images, anns, CLASSES)
        counts[split] = dict(
            scenes=n,
            fashion_mnist_split=SPLITS[split],
            items=int(inst.sum()),
            instances_per_class={CLASSES[c]: int(v) for c, v in enumerate(inst)},
            pixel_share={n_: float(v / pix.sum()) for n_, v in zip(("background",) + CLASSES, pix)},
        )
    card = dict(
        name="Fashion-MNIST scenes",
        spec=asdict(spec),
        seed=seed,
        fashion_mnist=os.path.abspath(fashion_root or default_fashion_mnist_dir()),
        classes=list(CLASSES),
        semantic_values="0 = background, c + 1 = class c (reduce_zero_label: false, 11 classes)",
        coco_categories="1..10 = the classes in order",
        layout=scene_paths(root),
        splits=counts,
        bound=context_bound(spec),
    )
    with open(os.path.join(root, "card.json"), "w") as f:
        json.dump(card, f, indent=2)
    with open(os.path.join(root, "CARD.md"), "w") as f:
        f.write(card_markdown(card))
    return card


def context_bound(spec: SceneSpec) -> dict | None:
    """The context variant's guarantee (None for the local variant)."""
    if spec.variant != "context":
        return None
    d = spec.context_distance
    return dict(
        distance_px=d,
        max_accuracy=1 / len(CLASSES),
        statement=(
            f"Every non-marker item pixel is at Chebyshev distance >= {d} px from the marker's cell. A "
            f"predictor whose output at a pixel depends only on input pixels within distance r < {d} px of it "
            f"(receptive-field radius under {d} px) sees nothing that depends on the marker's class, which is "
            f"uniform over {len(CLASSES)} classes; its expected accuracy on non-marker item pixels is therefore "
            f"at most 1/{len(CLASSES)} = {1 / len(CLASSES):.2f}."
        ),
    )


def card_markdown(card: dict) -> str:
    spec = card["spec"]
    lines = [
        f"# {card['name']} ({spec['variant']} variant)\n",
        f"S = {spec['size']} px, K = {spec['items']} items a scene, item side {spec['item_size'][0]}.."
        f"{spec['item_size'][1]} px, max overlap {spec['max_overlap']}, seed {card['seed']}.",
        f"Source: Fashion-MNIST IDX files in `{card['fashion_mnist']}`.",
        f"Semantic masks: {card['semantic_values']}; COCO categories {card['coco_categories']}.\n",
        "| split | scenes | items | from Fashion-MNIST | background pixels |",
        "|---|---|---|---|---|",
    ]
    for split, c in card["splits"].items():
        lines.append(
            f"| {split} | {c['scenes']} | {c['items']} | {c['fashion_mnist_split']} | "
            f"{c['pixel_share']['background']:.1%} |"
        )
    lines += ["", "| class | " + " | ".join(card["splits"]) + " |", "|---|" + "---|" * len(card["splits"])]
    for name in card["classes"]:
        lines.append(
            f"| {name} | " + " | ".join(str(c["instances_per_class"][name]) for c in card["splits"].values()) + " |"
        )
    if card.get("bound"):
        lines += ["", "## Context bound", "", card["bound"]["statement"]]
    return "\n".join(lines) + "\n"
