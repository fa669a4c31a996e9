"""Semantic-segmentation datasets in their real on-disk formats: ADE20K (``ADEChallengeData2016``,
reduce-zero-label), Pascal VOC 2012 (palette PNGs read as indices, 255 ignored) and Cityscapes
(``*_gtFine_labelIds.png`` mapped to the 19 trainIds).

Label values out of range raise :class:`DatasetError` naming the file (or, with ``on_bad_label='ignore'``,
become 255 and are counted in ``dataset.skipped``); a VOC mask that is not a palette PNG is refused.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence

import numpy as np
import torch

from ..errors import DatasetError
from .detection import VOC_CLASSES
from .files import IGNORE_INDEX, image_size, image_to_tensor, load_label, load_rgb


class SegmentationDataset(torch.utils.data.Dataset):
    """(image path, label path) pairs; items are ``(image (3,H,W) float [0,1], label (H,W) int64)``.

    Labels are mapped to training ids in ``map_label`` (subclasses); values outside 0..num_classes-1 other
    than 255 raise :class:`DatasetError` naming the file (``on_bad_label='ignore'`` maps them to 255 instead
    and counts them in ``skipped['out_of_range_pixels']``).
    """

    num_classes: int = 0
    class_names: Sequence[str] = ()
    palette_labels: bool | None = None

    def __init__(self, pairs, transforms=None, on_bad_label: str = "error", root: str = ""):
        if on_bad_label not in ("error", "ignore"):
            raise ValueError("on_bad_label must be 'error' or 'ignore'")
        self.pairs, self.transforms, self.on_bad_label = list(pairs), transforms, on_bad_label
        self.skipped: Counter = Counter()
        if not self.pairs:
            raise DatasetError("no images found", root or ".")

    def __len__(self):
        return len(self.pairs)

    def map_label(self, lab: np.ndarray) -> np.ndarray:
        return lab

    def read_label(self, idx: int, size: tuple[int, int]):
        """(label mapped to training ids, mask of its out-of-range pixels, their raw values) for an image of
        ``size`` (w, h); a missing, unreadable or wrongly sized label file raises :class:`DatasetError`."""
        lab_path = self.pairs[idx][1]
        raw = load_label(lab_path, self.palette_labels)
        lab = self.map_label(raw)
        if lab.shape != (size[1], size[0]):
            raise DatasetError(f"label is {lab.shape[1]}x{lab.shape[0]} but the image is {size[0]}x{size[1]}", lab_path)
        bad = (lab != IGNORE_INDEX) & ((lab < 0) | (lab >= self.num_classes))
        return lab, bad, (np.unique(raw[bad]).tolist()[:8] if bad.any() else [])

    def out_of_range(self, values) -> str:
        return (
            f"label values {values} out of range for {self.num_classes} classes "
            f"(valid: 0..{self.num_classes - 1} and {IGNORE_INDEX})"
        )

    def check_item(self, idx: int) -> tuple[str, int] | None:
        """("label path: why", out-of-range pixels) of item ``idx``, or None; :class:`DatasetError` if the image
        (its header) or the label cannot be used (see :mod:`.check`)."""
        img_path, lab_path = self.pairs[idx]
        _, bad, values = self.read_label(idx, image_size(img_path))
        return (f"{lab_path}: {self.out_of_range(values)}", int(bad.sum())) if values else None

    def load(self, idx: int):
        img_path, lab_path = self.pairs[idx]
        img = load_rgb(img_path)
        lab, bad, values = self.read_label(idx, img.size)
        if values:
            if self.on_bad_label == "error":
                raise DatasetError(self.out_of_range(values), lab_path)
            self.skipped["out_of_range_pixels"] += int(bad.sum())
            lab = np.where(bad, IGNORE_INDEX, lab)
        return image_to_tensor(img), torch.from_numpy(lab.astype(np.int64))

    def __getitem__(self, idx: int):
        image, label = self.load(idx)
        if self.transforms is not None:
            image, label = self.transforms(image, label)
        return image, label


ADE20K_NUM_CLASSES = 150


# ADE20K's 150 classes in label order (1..150 in the files, 0..149 after reduce-zero-label), as mmseg's
# ADE20KDataset names them.
ADE20K_CLASSES = (
    "wall",
    "building",
    "sky",
    "floor",
    "tree",
    "ceiling",
    "road",
    "bed",
    "windowpane",
    "grass",
    "cabinet",
    "sidewalk",
    "person",
    "earth",
    "door",
    "table",
    "mountain",
    "plant",
    "curtain",
    "chair",
    "car",
    "water",
    "painting",
    "sofa",
    "shelf",
    "house",
    "sea",
    "mirror",
    "rug",
    "field",
    "armchair",
    "seat",
    "fence",
    "desk",
    "rock",
    "wardrobe",
    "lamp",
    "bathtub",
    "railing",
    "cushion",
    "base",
    "box",
    "column",
    "signboard",
    "chest of drawers",
    "counter",
    "sand",
    "sink",
    "skyscraper",
    "fireplace",
    "refrigerator",
    "grandstand",
    "path",
    "stairs",
    "runway",
    "case",
    "pool table",
    "pillow",
    "screen door",
    "stairway",
    "river",
    "bridge",
    "bookcase",
    "blind",
    "coffee table",
    "toilet",
    "flower",
    "book",
    "hill",
    "bench",
    "countertop",
    "stove",
    "palm",
    "kitchen island",
    "computer",
    "swivel chair",
    "boat",
    "bar",
    "arcade machine",
    "hovel",
    "bus",
    "towel",
    "light",
    "truck",
    "tower",
    "chandelier",
    "awning",
    "streetlight",
    "booth",
    "television receiver",
    "airplane",
    "dirt track",
    "apparel",
    "pole",
    "land",
    "bannister",
    "escalator",
    "ottoman",
    "bottle",
    "buffet",
    "poster",
    "stage",
    "van",
    "ship",
    "fountain",
    "conveyer belt",
    "canopy",
    "washer",
    "plaything",
    "swimming pool",
    "stool",
    "barrel",
    "basket",
    "waterfall",
    "tent",
    "bag",
    "minibike",
    "cradle",
    "oven",
    "ball",
    "food",
    "step",
    "tank",
    "trade name",
    "microwave",
    "pot",
    "animal",
    "bicycle",
    "lake",
    "dishwasher",
    "screen",
    "blanket",
    "sculpture",
    "hood",
    "sconce",
    "vase",
    "traffic light",
    "tray",
    "ashcan",
    "fan",
    "pier",
    "crt screen",
    "plate",
    "monitor",
    "bulletin board",
    "shower",
    "radiator",
    "glass",
    "clock",
    "flag",
)


class ADE20K(SegmentationDataset):
    """``ADEChallengeData2016/{images,annotations}/{training,validation}``; reduce-zero-label (0 -> 255, k -> k-1)."""

    num_classes = ADE20K_NUM_CLASSES

    def __init__(
        self,
        root: str,
        split: str = "training",
        transforms=None,
        on_bad_label: str = "error",
        reduce_zero_label: bool = True,
        num_classes: int = ADE20K_NUM_CLASSES,
    ):
        self.reduce_zero_label, self.num_classes = reduce_zero_label, num_classes
        # the real names for the 150-class set; a set of another size (generated data) is named by index
        self.class_names = (
            list(ADE20K_CLASSES) if num_classes == len(ADE20K_CLASSES) else [str(i) for i in range(num_classes)]
        )
        img_dir, ann_dir = os.path.join(root, "images", split), os.path.join(root, "annotations", split)
        if not os.path.isdir(img_dir):
            raise DatasetError("image folder not found (expected the ADEChallengeData2016 layout)", img_dir)
        pairs = []
        for name in sorted(os.listdir(img_dir)):
            stem, ext = os.path.splitext(name)
            if ext.lower() not in (".jpg", ".jpeg", ".png"):
                continue
            lab = os.path.join(ann_dir, stem + ".png")
            if not os.path.isfile(lab):
                raise DatasetError("annotation for this image not found", lab)
            pairs.append((os.path.join(img_dir, name), lab))
        super().__init__(pairs, transforms, on_bad_label, root)

    def map_label(self, lab):
        if self.reduce_zero_label:
            lab = lab.copy()
            zero = lab == 0
            lab = lab - 1
            lab[zero] = IGNORE_INDEX
            lab[lab == IGNORE_INDEX - 1] = IGNORE_INDEX  # 255 stays ignored (mmseg: 255 -> 254 -> 255)
        return lab


VOC_SEG_CLASSES = ("background",) + VOC_CLASSES


class VOCSegmentation(SegmentationDataset):
    """``VOC2012/{JPEGImages,SegmentationClass,ImageSets/Segmentation/<split>.txt}``; palette PNGs as indices."""

    num_classes = 21
    class_names = VOC_SEG_CLASSES
    palette_labels = True

    def __init__(self, root: str, split: str = "train", transforms=None, on_bad_label: str = "error"):
        split_file = os.path.join(root, "ImageSets", "Segmentation", f"{split}.txt")
        if not os.path.isfile(split_file):
            raise DatasetError("split list not found", split_file)
        with open(split_file) as f:
            ids = [line.strip() for line in f if line.strip()]
        pairs = [
            (os.path.join(root, "JPEGImages", i + ".jpg"), os.path.join(root, "SegmentationClass", i + ".png"))
            for i in ids
        ]
        super().__init__(pairs, transforms, on_bad_label, root)


# Cityscapes labelId -> trainId (the 19 evaluated classes; everything else -> 255), from the
# official label table (cityscapesscripts/helpers/labels.py).
CITYSCAPES_ID_TO_TRAINID = {
    7: 0,
    8: 1,
    11: 2,
    12: 3,
    13: 4,
    17: 5,
    19: 6,
    20: 7,
    21: 8,
    22: 9,
    23: 10,
    24: 11,
    25: 12,
    26: 13,
    27: 14,
    28: 15,
    31: 16,
    32: 17,
    33: 18,
}
CITYSCAPES_CLASSES = (
    "road",
    "sidewalk",
    "building",
    "wall",
    "fence",
    "pole",
    "traffic light",
    "traffic sign",
    "vegetation",
    "terrain",
    "sky",
    "person",
    "rider",
    "car",
    "truck",
    "bus",
    "train",
    "motorcycle",
    "bicycle",
)


class Cityscapes(SegmentationDataset):
    """``leftImg8bit/<split>/<city>/*_leftImg8bit.png`` + ``gtFine/<split>/<city>/*_gtFine_labelIds.png``."""

    num_classes = 19
    class_names = CITYSCAPES_CLASSES

    def __init__(self, root: str, split: str = "train", transforms=None, on_bad_label: str = "error"):
        img_root = os.path.join(root, "leftImg8bit", split)
        if not os.path.isdir(img_root):
            raise DatasetError("image folder not found (expected the Cityscapes layout)", img_root)
        pairs = []
        for city in sorted(os.listdir(img_root)):
            if not os.path.isdir(os.path.join(img_root, city)):  # a stray file (README, .DS_Store) is no city
                continue
            for name in sorted(os.listdir(os.path.join(img_root, city))):
                if not name.endswith("_leftImg8bit.png"):
                    continue
                stem = name[: -len("_leftImg8bit.png")]
                lab = os.path.join(root, "gtFine", split, city, stem + "_gtFine_labelIds.png")
                if not os.path.isfile(lab):
                    raise DatasetError("annotation for this image not found", lab)
                pairs.append((os.path.join(img_root, city, name), lab))
        super().__init__(pairs, transforms, on_bad_label, root)
        # raw ids 0..33 (unevaluated ones -> 255) and 255 are valid; anything else is reported as out of range
        self._lut = np.full(256, -1, dtype=np.int64)
        self._lut[:34] = IGNORE_INDEX
        self._lut[IGNORE_INDEX] = IGNORE_INDEX
        for k, v in CITYSCAPES_ID_TO_TRAINID.items():
            self._lut[k] = v

    def map_label(self, lab):
        inside = (lab >= 0) & (lab <= 255)
        return np.where(inside, self._lut[np.clip(lab, 0, 255)], -1)
