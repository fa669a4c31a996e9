"""Detection datasets in their real on-disk formats: COCO ``instances_*.json`` (polygons and RLE, crowd
objects) and Pascal VOC XML. Items are ``(image (3,H,W) float [0,1], target dict)`` as torchvision's detectors
take them; labels are contiguous 1..K (0 = background) and ``label_to_cat`` maps them back.

Malformed annotations never reach the model: an object with missing keys, a box outside the image,
degenerate or under 1 px wide or high (mmdet's rule), an empty/degenerate/unreadable mask or an unknown category
is skipped and counted in ``dataset.skipped`` (a Counter, logged once); a file that cannot be used at all (unreadable JSON/XML, missing
image) raises :class:`DatasetError` naming the file.
"""

from __future__ import annotations

import json
import math
import os
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from ..errors import DatasetError
from .files import image_size, image_to_tensor, load_rgb, report_skipped
from .masks import MaskFormatError, decode_segmentation

MIN_GT_BOX_WH = 1.0  # mmdet's CocoDataset drops ground-truth boxes with w < 1 or h < 1 (px, as annotated)


def _clip_box(bbox, w: int, h: int, min_wh: float = 0.0):
    """COCO [x, y, w, h] -> clipped xyxy, or a reason string when unusable (``small_box``: the annotated width
    or height under ``min_wh``)."""
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
        return "malformed_box"
    try:
        x, y, bw, bh = (float(v) for v in bbox)
    except (TypeError, ValueError):
        return "malformed_box"
    if not all(math.isfinite(v) for v in (x, y, bw, bh)) or bw <= 0 or bh <= 0:
        return "degenerate_box"
    if bw < min_wh or bh < min_wh:
        return "small_box"
    x1, y1, x2, y2 = max(x, 0.0), max(y, 0.0), min(x + bw, float(w)), min(y + bh, float(h))
    if x2 - x1 < 1e-3 or y2 - y1 < 1e-3:
        return "box_outside_image"
    return [x1, y1, x2, y2]


def coco_image_size(im: dict) -> tuple[int, int] | str:
    """A COCO image entry's (width, height), or why it cannot be used. Sizes past twice Pillow's
    decompression-bomb limit are refused: no such file would be decoded, and pycocotools crashes (segfault)
    rasterising a polygon onto a 10^9 x 10^9 canvas."""
    try:
        w, h = int(im["width"]), int(im["height"])
    except (TypeError, ValueError):
        return "image_bad_size"
    if w <= 0 or h <= 0:
        return "image_bad_size"
    limit = Image.MAX_IMAGE_PIXELS
    return (w, h) if w * h <= (2 * limit if limit else 2**31 - 1) else "image_too_large"


def object_area(a: dict, fallback: float) -> float:
    """The object's ``area`` when it is a finite number >= 0, else ``fallback`` (its box's area)."""
    try:
        area = float(a.get("area", fallback))
    except (TypeError, ValueError):
        return float(fallback)
    return area if math.isfinite(area) and area >= 0 else float(fallback)


def _require_objects(records, n_objects: int, skipped: Counter, train: bool, path: str):
    """One line, not an empty data set failing later (training) or AP of nothing (evaluation)."""
    if any(objs for _, objs in records):
        return
    purpose = "nothing to train on" if train else "nothing to evaluate against"
    if not n_objects:
        raise DatasetError(f"no objects in the annotations: {purpose}", path)
    why = ", ".join(f"{v} {k}" for k, v in sorted(skipped.items()) if k != "empty_image")
    raise DatasetError(f"none of its {n_objects} objects can be used ({why}): {purpose}", path)


class CocoInstances(torch.utils.data.Dataset):
    """COCO instance segmentation from ``instances_*.json``.

    Items: ``(image (3,H,W) float in [0,1], target)`` with target keys boxes (xyxy), labels (1..K,
    contiguous), masks (uint8 N,H,W; only when ``masks``), image_id, iscrowd, area.
    ``train=True`` drops crowd objects and images left without objects. ``label_to_cat`` maps the
    contiguous labels back to the json's category ids (used by the evaluator).
    """

    def __init__(
        self,
        image_dir: str,
        ann_file: str,
        train: bool = True,
        transforms: Callable | None = None,
        masks: bool = True,
        categories: Sequence[int] | None = None,
    ):
        self.image_dir, self.ann_file = os.fspath(image_dir), os.fspath(ann_file)
        self.train, self.transforms, self.masks = train, transforms, masks
        self.skipped: Counter = Counter()
        try:
            with open(self.ann_file) as f:
                data = json.load(f)
        except FileNotFoundError:
            raise DatasetError("annotation file not found", self.ann_file) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DatasetError(f"not valid JSON ({e})", self.ann_file) from None
        if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in ("images", "categories")):
            raise DatasetError("not a COCO instances file (needs 'images' and 'categories' lists)", self.ann_file)
        if not isinstance(data.get("annotations", []), list):
            raise DatasetError("not a COCO instances file ('annotations' must be a list)", self.ann_file)
        names = {}
        for c in data["categories"]:
            if isinstance(c, dict) and "id" in c:
                try:
                    names[int(c["id"])] = str(c.get("name", c["id"]))
                except (TypeError, ValueError):
                    raise DatasetError(f"category id {c['id']!r} is not an integer", self.ann_file) from None
        cat_ids = sorted(names) if categories is None else [int(c) for c in categories]
        if not cat_ids:
            raise DatasetError("no categories", self.ann_file)
        self.cat_to_label = {c: i + 1 for i, c in enumerate(cat_ids)}
        self.label_to_cat = {v: k for k, v in self.cat_to_label.items()}
        self.class_names = [names.get(c, str(c)) for c in cat_ids]
        self.num_classes = len(cat_ids) + 1
        self.coco_gt = data  # the original annotations, evaluated against as they are

        images = {}
        for im in data["images"]:
            if not isinstance(im, dict) or not all(k in im for k in ("id", "file_name", "width", "height")):
                self.skipped["image_missing_keys"] += 1
                continue
            if not isinstance(im["id"], int | str) or not isinstance(im["file_name"], str):
                self.skipped["image_bad_entry"] += 1
                continue
            size = coco_image_size(im)
            if isinstance(size, str):
                self.skipped[size] += 1
                continue
            images[im["id"]] = im
        anns = defaultdict(list)
        for a in data.get("annotations", []) or []:
            if not isinstance(a, dict) or not all(k in a for k in ("image_id", "bbox", "category_id")):
                self.skipped["missing_keys"] += 1
                continue
            if not isinstance(a["image_id"], int | str) or a["image_id"] not in images:
                self.skipped["unknown_image_id"] += 1
                continue
            anns[a["image_id"]].append(a)
        self.records = []
        for img_id, im in images.items():
            objs = self._valid_objects(im, anns.get(img_id, []))
            if train and not objs:
                self.skipped["empty_image"] += 1
                continue
            self.records.append((im, objs))
        report_skipped("COCO", self.ann_file, self.skipped)
        _require_objects(self.records, len(data.get("annotations", []) or []), self.skipped, train, self.ann_file)

    def _valid_objects(self, im: dict, anns: list[dict]) -> list[dict]:
        w, h = int(im["width"]), int(im["height"])
        out = []
        for a in anns:
            crowd = bool(a.get("iscrowd", 0))
            if crowd and self.train:
                self.skipped["crowd"] += 1
                continue
            try:
                label = self.cat_to_label.get(int(a["category_id"]))
            except (TypeError, ValueError):
                label = None
            if label is None:
                self.skipped["unknown_category"] += 1
                continue
            box = _clip_box(a["bbox"], w, h, MIN_GT_BOX_WH)
            if isinstance(box, str):
                self.skipped[box] += 1
                continue
            if self.masks:
                if "segmentation" not in a:
                    self.skipped["missing_mask"] += 1
                    continue
                try:  # decoded here once to validate; decoded again lazily in __getitem__
                    m = decode_segmentation(a["segmentation"], h, w)
                except (MaskFormatError, TypeError, ValueError, KeyError):
                    self.skipped["bad_mask"] += 1
                    continue
                if not m.any():
                    self.skipped["empty_mask"] += 1
                    continue
            out.append(
                dict(
                    box=box,
                    label=label,
                    seg=a.get("segmentation"),
                    crowd=crowd,
                    area=object_area(a, (box[2] - box[0]) * (box[3] - box[1])),
                )
            )
        return out

    def __len__(self):
        return len(self.records)

    def aspect_ratios(self) -> list[float]:
        return [float(im["width"]) / float(im["height"]) for im, _ in self.records]

    def _check_size(self, im: dict, size: tuple[int, int], path: str):
        w, h = int(im["width"]), int(im["height"])
        if size != (w, h):
            raise DatasetError(f"image is {size[0]}x{size[1]} but the annotations say {w}x{h}", path)

    def check_item(self, idx: int) -> None:
        """Raise :class:`DatasetError` if item ``idx``'s image is missing, unreadable or of another size
        (the header only: quick enough for a pass over the whole set, see :mod:`.check`)."""
        im = self.records[idx][0]
        path = os.path.join(self.image_dir, im["file_name"])
        self._check_size(im, image_size(path), path)

    def __getitem__(self, idx: int):
        im, objs = self.records[idx]
        path = os.path.join(self.image_dir, im["file_name"])
        img = load_rgb(path)
        w, h = int(im["width"]), int(im["height"])
        self._check_size(im, img.size, path)
        target = dict(
            boxes=torch.tensor([o["box"] for o in objs], dtype=torch.float32).reshape(-1, 4),
            labels=torch.tensor([o["label"] for o in objs], dtype=torch.int64),
            image_id=im["id"],
            iscrowd=torch.tensor([int(o["crowd"]) for o in objs], dtype=torch.int64),
            area=torch.tensor([o["area"] for o in objs], dtype=torch.float32),
        )
        if self.masks:
            ms = [decode_segmentation(o["seg"], h, w) for o in objs]
            target["masks"] = torch.from_numpy(np.stack(ms)) if ms else torch.zeros((0, h, w), dtype=torch.uint8)
        image = image_to_tensor(img)
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target


VOC_CLASSES = (
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)


class VOCDetection(torch.utils.data.Dataset):
    """Pascal VOC XML boxes (``VOCdevkit/VOC20xx/{Annotations,JPEGImages,ImageSets/Main}``); no masks.

    Difficult objects are dropped for training and kept as crowd (ignored) for evaluation.
    ``coco_gt`` is the split converted to COCO json, so the same COCO evaluator applies.
    """

    def __init__(
        self,
        root: str,
        split: str = "train",
        train: bool = True,
        transforms: Callable | None = None,
        classes: Sequence[str] = VOC_CLASSES,
    ):
        self.root, self.train, self.transforms = os.fspath(root), train, transforms
        self.masks = False
        self.skipped: Counter = Counter()
        self.class_names = list(classes)
        self.cat_to_label = {i + 1: i + 1 for i in range(len(classes))}
        self.label_to_cat = dict(self.cat_to_label)
        self.num_classes = len(classes) + 1
        split_file = os.path.join(self.root, "ImageSets", "Main", f"{split}.txt")
        if not os.path.isfile(split_file):
            raise DatasetError("split list not found", split_file)
        with open(split_file) as f:
            ids = [line.split()[0] for line in f if line.strip()]
        name_to_label = {n: i + 1 for i, n in enumerate(classes)}
        self.records = []
        images, annotations = [], []
        n_objects = 0
        for n, img_id in enumerate(ids):
            xml_path = os.path.join(self.root, "Annotations", f"{img_id}.xml")
            try:
                tree = ET.parse(xml_path).getroot()
                size = tree.find("size")
                w, h = int(size.findtext("width")), int(size.findtext("height"))
            except FileNotFoundError:
                raise DatasetError("annotation file not found", xml_path) from None
            except (ET.ParseError, AttributeError, TypeError, ValueError) as e:
                raise DatasetError(f"malformed VOC XML ({e})", xml_path) from None
            objs = []
            for obj in tree.findall("object"):
                n_objects += 1
                label = name_to_label.get((obj.findtext("name") or "").strip())
                if label is None:
                    self.skipped["unknown_category"] += 1
                    continue
                bb = obj.find("bndbox")
                try:
                    x1, y1, x2, y2 = (float(bb.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
                except (AttributeError, TypeError, ValueError):
                    self.skipped["missing_keys"] += 1
                    continue
                box = _clip_box([x1 - 1, y1 - 1, x2 - x1 + 1, y2 - y1 + 1], w, h)  # VOC is 1-based, inclusive
                if isinstance(box, str):
                    self.skipped[box] += 1
                    continue
                difficult = (obj.findtext("difficult") or "0").strip() == "1"
                if difficult and train:
                    self.skipped["difficult"] += 1
                    continue
                objs.append(dict(box=box, label=label, crowd=difficult))
                bw, bh = box[2] - box[0], box[3] - box[1]
                annotations.append(
                    dict(
                        id=len(annotations) + 1,
                        image_id=n,
                        category_id=label,
                        iscrowd=int(difficult),
                        bbox=[box[0], box[1], bw, bh],
                        area=bw * bh,
                    )
                )
            if train and not objs:
                self.skipped["empty_image"] += 1
                continue
            im = dict(id=n, file_name=os.path.join("JPEGImages", f"{img_id}.jpg"), width=w, height=h)
            images.append(im)
            self.records.append((im, objs))
        _require_objects(self.records, n_objects, self.skipped, train, split_file)
        self.coco_gt = dict(
            images=images, annotations=annotations, categories=[dict(id=i + 1, name=c) for i, c in enumerate(classes)]
        )
        report_skipped("VOC", self.root, self.skipped)

    def __len__(self):
        return len(self.records)

    def aspect_ratios(self) -> list[float]:
        return [im["width"] / im["height"] for im, _ in self.records]

    def check_item(self, idx: int) -> None:
        """Raise :class:`DatasetError` if item ``idx``'s image is missing or unreadable (header only)."""
        image_size(os.path.join(self.root, self.records[idx][0]["file_name"]))

    def __getitem__(self, idx):
        im, objs = self.records[idx]
        path = os.path.join(self.root, im["file_name"])
        img = load_rgb(path)
        target = dict(
            boxes=torch.tensor([o["box"] for o in objs], dtype=torch.float32).reshape(-1, 4),
            labels=torch.tensor([o["label"] for o in objs], dtype=torch.int64),
            image_id=im["id"],
            iscrowd=torch.tensor([int(o["crowd"]) for o in objs], dtype=torch.int64),
        )
        image = image_to_tensor(img)
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target


def detection_collate(batch):
    return tuple(zip(*batch))


def aspect_groups(dataset) -> list[int]:
    return [int(r >= 1.0) for r in dataset.aspect_ratios()]
