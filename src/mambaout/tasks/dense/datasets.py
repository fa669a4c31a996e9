"""Detection and segmentation datasets in their real on-disk formats.

Detection: COCO ``instances_*.json`` (polygons and RLE, crowd objects) and Pascal VOC XML.
Segmentation: ADE20K (``ADEChallengeData2016``, reduce-zero-label), Pascal VOC 2012 (palette PNGs read as
indices, 255 ignored) and Cityscapes (``*_gtFine_labelIds.png`` mapped to the 19 trainIds).

Malformed annotations never reach the model: an object with missing keys, a box outside the image or
degenerate, an empty/degenerate/unreadable mask or an unknown category is skipped and counted in
``dataset.skipped`` (a Counter, logged once); a file that cannot be used at all (unreadable JSON/XML,
missing image, label values out of range, a VOC mask that is not a palette PNG) raises
:class:`DatasetError` naming the file.
"""
from __future__ import annotations

import json
import logging
import math
import os
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from typing import Callable, List, Optional, Sequence

import numpy as np
import torch
from PIL import Image

from ...errors import DatasetError
from .masks import MaskFormatError, decode_segmentation

log = logging.getLogger("mambaout")

IGNORE_INDEX = 255


def _load_image(path: str) -> Image.Image:
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


def _report(name: str, path: str, skipped: Counter):
    if skipped:
        log.warning("%s %s: skipped %s", name, path, ", ".join(f"{v} {k}" for k, v in sorted(skipped.items())))


# --- detection ------------------------------------------------------------------------------------

def _clip_box(bbox, w: int, h: int):
    """COCO [x, y, w, h] -> clipped xyxy, or a reason string when unusable."""
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
        return "malformed_box"
    try:
        x, y, bw, bh = (float(v) for v in bbox)
    except (TypeError, ValueError):
        return "malformed_box"
    if not all(math.isfinite(v) for v in (x, y, bw, bh)) or bw <= 0 or bh <= 0:
        return "degenerate_box"
    x1, y1, x2, y2 = max(x, 0.0), max(y, 0.0), min(x + bw, float(w)), min(y + bh, float(h))
    if x2 - x1 < 1e-3 or y2 - y1 < 1e-3:
        return "box_outside_image"
    return [x1, y1, x2, y2]


class CocoInstances(torch.utils.data.Dataset):
    """COCO instance segmentation from ``instances_*.json``.

    Items: ``(image (3,H,W) float in [0,1], target)`` with target keys boxes (xyxy), labels (1..K,
    contiguous), masks (uint8 N,H,W; only when ``masks``), image_id, iscrowd, area.
    ``train=True`` drops crowd objects and images left without objects. ``label_to_cat`` maps the
    contiguous labels back to the json's category ids (used by the evaluator).
    """

    def __init__(self, image_dir: str, ann_file: str, train: bool = True, transforms: Optional[Callable] = None,
                 masks: bool = True, categories: Optional[Sequence[int]] = None):
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
        cat_ids = sorted(int(c["id"]) for c in data["categories"] if isinstance(c, dict) and "id" in c)
        if categories is not None:
            cat_ids = [int(c) for c in categories]
        if not cat_ids:
            raise DatasetError("no categories", self.ann_file)
        self.cat_to_label = {c: i + 1 for i, c in enumerate(cat_ids)}
        self.label_to_cat = {v: k for k, v in self.cat_to_label.items()}
        names = {int(c["id"]): str(c.get("name", c["id"])) for c in data["categories"] if isinstance(c, dict) and "id" in c}
        self.class_names = [names.get(c, str(c)) for c in cat_ids]
        self.num_classes = len(cat_ids) + 1
        self.coco_gt = data  # the original annotations, evaluated against as they are

        images = {}
        for im in data["images"]:
            if not isinstance(im, dict) or not all(k in im for k in ("id", "file_name", "width", "height")):
                self.skipped["image_missing_keys"] += 1
                continue
            images[im["id"]] = im
        anns = defaultdict(list)
        for a in data.get("annotations", []) or []:
            if not isinstance(a, dict) or not all(k in a for k in ("image_id", "bbox", "category_id")):
                self.skipped["missing_keys"] += 1
                continue
            if a["image_id"] not in images:
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
        _report("COCO", self.ann_file, self.skipped)

    def _valid_objects(self, im: dict, anns: List[dict]) -> List[dict]:
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
            box = _clip_box(a["bbox"], w, h)
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
            out.append(dict(box=box, label=label, seg=a.get("segmentation"), crowd=crowd,
                            area=float(a.get("area", (box[2] - box[0]) * (box[3] - box[1])))))
        return out

    def __len__(self):
        return len(self.records)

    def aspect_ratios(self) -> List[float]:
        return [float(im["width"]) / float(im["height"]) for im, _ in self.records]

    def __getitem__(self, idx: int):
        im, objs = self.records[idx]
        path = os.path.join(self.image_dir, im["file_name"])
        img = _load_image(path)
        w, h = int(im["width"]), int(im["height"])
        if img.size != (w, h):
            raise DatasetError(f"image is {img.size[0]}x{img.size[1]} but the annotations say {w}x{h}", path)
        target = dict(
            boxes=torch.tensor([o["box"] for o in objs], dtype=torch.float32).reshape(-1, 4),
            labels=torch.tensor([o["label"] for o in objs], dtype=torch.int64),
            image_id=im["id"], iscrowd=torch.tensor([int(o["crowd"]) for o in objs], dtype=torch.int64),
            area=torch.tensor([o["area"] for o in objs], dtype=torch.float32),
        )
        if self.masks:
            ms = [decode_segmentation(o["seg"], h, w) for o in objs]
            target["masks"] = torch.from_numpy(np.stack(ms)) if ms else torch.zeros((0, h, w), dtype=torch.uint8)
        image = image_to_tensor(img)
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target


VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor")


class VOCDetection(torch.utils.data.Dataset):
    """Pascal VOC XML boxes (``VOCdevkit/VOC20xx/{Annotations,JPEGImages,ImageSets/Main}``); no masks.

    Difficult objects are dropped for training and kept as crowd (ignored) for evaluation.
    ``coco_gt`` is the split converted to COCO json, so the same COCO evaluator applies.
    """

    def __init__(self, root: str, split: str = "train", train: bool = True, transforms: Optional[Callable] = None,
                 classes: Sequence[str] = VOC_CLASSES):
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
                annotations.append(dict(id=len(annotations) + 1, image_id=n, category_id=label, iscrowd=int(difficult),
                                        bbox=[box[0], box[1], bw, bh], area=bw * bh))
            if train and not objs:
                self.skipped["empty_image"] += 1
                continue
            im = dict(id=n, file_name=os.path.join("JPEGImages", f"{img_id}.jpg"), width=w, height=h)
            images.append(im)
            self.records.append((im, objs))
        self.coco_gt = dict(images=images, annotations=annotations,
                            categories=[dict(id=i + 1, name=c) for i, c in enumerate(classes)])
        _report("VOC", self.root, self.skipped)

    def __len__(self):
        return len(self.records)

    def aspect_ratios(self) -> List[float]:
        return [im["width"] / im["height"] for im, _ in self.records]

    def __getitem__(self, idx):
        im, objs = self.records[idx]
        path = os.path.join(self.root, im["file_name"])
        img = _load_image(path)
        target = dict(boxes=torch.tensor([o["box"] for o in objs], dtype=torch.float32).reshape(-1, 4),
                      labels=torch.tensor([o["label"] for o in objs], dtype=torch.int64), image_id=im["id"],
                      iscrowd=torch.tensor([int(o["crowd"]) for o in objs], dtype=torch.int64))
        image = image_to_tensor(img)
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target


def detection_collate(batch):
    return tuple(zip(*batch))


class GroupedBatchSampler(torch.utils.data.Sampler):
    """Batches whose images share an aspect-ratio group (landscape vs portrait), as mmdet/torchvision do.

    Wraps any index sampler (e.g. the engine's EpochSampler); leftovers of the groups are batched together
    at the end of the epoch, so a rank yields exactly ceil(n / batch_size) batches whatever the grouping
    (every rank the same count under DDP when the sampler gives every rank the same number of samples).
    """

    def __init__(self, sampler, group_ids: Sequence[int], batch_size: int, drop_last: bool = False):
        self.sampler, self.group_ids, self.batch_size, self.drop_last = sampler, list(group_ids), batch_size, drop_last

    def __iter__(self):
        buffers = defaultdict(list)
        for idx in self.sampler:  # plain indices or (index, seed) pairs from the engine's EpochSampler
            g = self.group_ids[idx[0] if isinstance(idx, (tuple, list)) else idx]
            buffers[g].append(idx)
            if len(buffers[g]) == self.batch_size:
                yield buffers[g]
                buffers[g] = []
        if not self.drop_last:
            rest = [i for g in sorted(buffers) for i in buffers[g]]
            for i in range(0, len(rest), self.batch_size):
                yield rest[i:i + self.batch_size]

    def __len__(self):
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


def aspect_groups(dataset) -> List[int]:
    return [int(r >= 1.0) for r in dataset.aspect_ratios()]


# --- segmentation ---------------------------------------------------------------------------------

def _load_label(path: str, palette: Optional[bool] = None) -> np.ndarray:
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


class SegmentationDataset(torch.utils.data.Dataset):
    """(image path, label path) pairs; items are ``(image (3,H,W) float [0,1], label (H,W) int64)``.

    Labels are mapped to training ids in ``map_label`` (subclasses); values outside 0..num_classes-1 other
    than 255 raise :class:`DatasetError` naming the file (``on_bad_label='ignore'`` maps them to 255 instead
    and counts them in ``skipped['out_of_range_pixels']``).
    """

    num_classes: int = 0
    class_names: Sequence[str] = ()
    palette_labels: Optional[bool] = None

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

    def load(self, idx: int):
        img_path, lab_path = self.pairs[idx]
        img = _load_image(img_path)
        raw = _load_label(lab_path, self.palette_labels)
        lab = self.map_label(raw)
        if lab.shape != (img.size[1], img.size[0]):
            raise DatasetError(f"label is {lab.shape[1]}x{lab.shape[0]} but the image is "
                                         f"{img.size[0]}x{img.size[1]}", lab_path)
        bad = (lab != IGNORE_INDEX) & ((lab < 0) | (lab >= self.num_classes))
        if bad.any():
            if self.on_bad_label == "error":
                vals = np.unique(raw[bad]).tolist()[:8]
                raise DatasetError(f"label values {vals} out of range for {self.num_classes} classes "
                                             f"(valid: 0..{self.num_classes - 1} and {IGNORE_INDEX})", lab_path)
            self.skipped["out_of_range_pixels"] += int(bad.sum())
            lab = np.where(bad, IGNORE_INDEX, lab)
        return image_to_tensor(img), torch.from_numpy(lab.astype(np.int64))

    def __getitem__(self, idx: int):
        image, label = self.load(idx)
        if self.transforms is not None:
            image, label = self.transforms(image, label)
        return image, label


ADE20K_NUM_CLASSES = 150


class ADE20K(SegmentationDataset):
    """``ADEChallengeData2016/{images,annotations}/{training,validation}``; reduce-zero-label (0 -> 255, k -> k-1)."""

    num_classes = ADE20K_NUM_CLASSES

    def __init__(self, root: str, split: str = "training", transforms=None, on_bad_label: str = "error",
                 reduce_zero_label: bool = True, num_classes: int = ADE20K_NUM_CLASSES):
        self.reduce_zero_label, self.num_classes = reduce_zero_label, num_classes
        self.class_names = [str(i) for i in range(num_classes)]
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
        pairs = [(os.path.join(root, "JPEGImages", i + ".jpg"), os.path.join(root, "SegmentationClass", i + ".png"))
                 for i in ids]
        super().__init__(pairs, transforms, on_bad_label, root)


# Cityscapes labelId -> trainId (the 19 evaluated classes; everything else -> 255), from the
# official label table (cityscapesscripts/helpers/labels.py).
CITYSCAPES_ID_TO_TRAINID = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11,
                            25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}
CITYSCAPES_CLASSES = ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
                      "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle",
                      "bicycle")


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
