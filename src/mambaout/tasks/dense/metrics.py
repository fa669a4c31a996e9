"""Metrics: mIoU from a dataset-level confusion matrix, and COCO box/mask AP (pycocotools).

mIoU (mmseg's IoUMetric): accumulate one confusion matrix over all evaluation images, skipping pixels
labelled ``ignore_index``; IoU_c = TP / (TP + FP + FN) over the whole set; mIoU = the NaN-aware mean over
classes, so a class absent from both predictions and labels is left out (not counted as 0 or 1).
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Iterable

import numpy as np
import torch

from ...data.files import IGNORE_INDEX
from ...errors import DependencyError


class ConfusionMatrix:
    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX):
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.mat = torch.zeros(num_classes, num_classes, dtype=torch.int64)  # rows: label, cols: prediction

    def update(self, pred: torch.Tensor, target: torch.Tensor):
        pred, target = pred.reshape(-1).to("cpu", torch.int64), target.reshape(-1).to("cpu", torch.int64)
        if pred.shape != target.shape:
            raise ValueError(f"prediction has {pred.numel()} pixels, label {target.numel()}")
        keep = target != self.ignore_index
        pred, target = pred[keep], target[keep]
        if len(target) and (target.min() < 0 or target.max() >= self.num_classes):
            raise ValueError(f"label values outside 0..{self.num_classes - 1} (and {self.ignore_index})")
        n = self.num_classes
        self.mat += torch.bincount(target * n + pred.clamp(0, n - 1), minlength=n * n).reshape(n, n)
        return self

    def all_reduce(self):
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            backend = torch.distributed.get_backend()
            t = self.mat.cuda() if backend == "nccl" else self.mat.clone()
            torch.distributed.all_reduce(t)
            self.mat = t.cpu()
        return self

    def compute(self) -> dict[str, object]:
        m = self.mat.double()
        tp = m.diag()
        union = m.sum(0) + m.sum(1) - tp
        gt = m.sum(1)
        iou = torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, float("nan")))
        acc = torch.where(gt > 0, tp / gt.clamp(min=1), torch.full_like(tp, float("nan")))
        total = m.sum()
        return dict(
            mIoU=float(np.nanmean(iou.numpy())) if (~torch.isnan(iou)).any() else float("nan"),
            mAcc=float(np.nanmean(acc.numpy())) if (~torch.isnan(acc)).any() else float("nan"),
            aAcc=float(tp.sum() / total) if total > 0 else float("nan"),
            IoU=[None if math.isnan(v) else v for v in iou.tolist()],
        )


def miou(
    preds: Iterable[torch.Tensor], targets: Iterable[torch.Tensor], num_classes: int, ignore_index: int = IGNORE_INDEX
) -> float:
    cm = ConfusionMatrix(num_classes, ignore_index)
    for p, t in zip(preds, targets):
        cm.update(p, t)
    return cm.compute()["mIoU"]


# --- COCO AP --------------------------------------------------------------------------------------

COCO_STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def _require_pycocotools():
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        raise DependencyError("COCO AP needs pycocotools (pip install pycocotools)") from None
    return COCO, COCOeval


def predictions_to_coco(
    outputs: list[dict], image_ids: list, label_to_cat: dict[int, int], mask_threshold: float = 0.5
) -> list[dict]:
    """torchvision detector outputs (on the original image size) -> COCO result dicts (bbox [+ RLE])."""
    from ...data.masks import encode_mask

    results = []
    for out, img_id in zip(outputs, image_ids):
        boxes = out["boxes"].detach().cpu().float()
        scores, labels = out["scores"].detach().cpu().tolist(), out["labels"].detach().cpu().tolist()
        masks = out.get("masks")
        if masks is not None:
            masks = (masks.detach().cpu()[:, 0] > mask_threshold).numpy() if masks.ndim == 4 else masks.cpu().numpy()
        for k, (b, s, lab) in enumerate(zip(boxes.tolist(), scores, labels)):
            r = dict(
                image_id=img_id,
                category_id=int(label_to_cat.get(int(lab), lab)),
                bbox=[b[0], b[1], b[2] - b[0], b[3] - b[1]],
                score=float(s),
            )
            if masks is not None:
                r["segmentation"] = encode_mask(masks[k])
            results.append(r)
    return results


def _gt_objects(gt: dict, iou_type: str) -> list[dict]:
    """The ground truth's objects by the reader's rules (data/detection.py), which it skips but pycocotools
    would fail on: an object without a usable box (or image) is left out; for mask AP an object without a
    usable mask (none, malformed, empty) becomes an ignore region -- its box, as a crowd object -- so a
    prediction on it is neither a hit nor a false positive."""
    from ...data.detection import _clip_box, coco_image_size, object_area
    from ...data.masks import MaskFormatError, decode_segmentation

    sizes = {}
    for im in gt.get("images", []) or []:
        if isinstance(im, dict) and all(k in im for k in ("id", "height", "width")) and isinstance(im["id"], int | str):
            size = coco_image_size(im)
            if not isinstance(size, str):
                sizes[im["id"]] = size
    out = []
    for i, a in enumerate(gt.get("annotations", []) or []):
        if not isinstance(a, dict) or not all(k in a for k in ("bbox", "category_id", "image_id")):
            continue
        if not isinstance(a["image_id"], int | str) or a["image_id"] not in sizes:
            continue
        w, h = sizes[a["image_id"]]
        if isinstance(_clip_box(a["bbox"], w, h), str):
            continue
        x, y, bw, bh = (float(v) for v in a["bbox"])
        obj = dict(a, id=a.get("id", i + 1), area=object_area(a, bw * bh), iscrowd=int(bool(a.get("iscrowd", 0))))
        if iou_type == "segm":
            try:
                usable = bool(decode_segmentation(a["segmentation"], h, w).any())
            except (KeyError, MaskFormatError, TypeError, ValueError):
                usable = False
            if not usable:
                obj.update(segmentation=[[x, y, x + bw, y, x + bw, y + bh, x, y + bh]], iscrowd=1)
        out.append(obj)
    return out


def coco_evaluate(gt: dict, results: list[dict], iou_types=("bbox", "segm"), verbose: bool = False) -> dict[str, dict]:
    """COCOeval over a COCO ground-truth dict and result dicts; returns {iou_type: {AP, AP50, ...}} in [0, 1].

    No result at all gives AP 0 (pycocotools would refuse an empty result list).
    """
    COCO, COCOeval = _require_pycocotools()
    out = {}
    sink = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
    with sink:
        for iou_type in iou_types:
            coco_gt = COCO()
            coco_gt.dataset = dict(gt, info=gt.get("info", {}), licenses=gt.get("licenses", []))
            coco_gt.dataset["annotations"] = _gt_objects(gt, iou_type)
            coco_gt.createIndex()
            res = [r for r in results if iou_type == "bbox" or "segmentation" in r]
            if not res:
                out[iou_type] = {k: 0.0 for k in COCO_STAT_NAMES}
                continue
            res = [dict(r) for r in res]
            for r in res:  # bbox: areas from boxes; segm: areas and boxes from the masks
                r.pop("segmentation" if iou_type == "bbox" else "bbox", None)
            coco_dt = coco_gt.loadRes(res)
            ev = COCOeval(coco_gt, coco_dt, iou_type)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
            out[iou_type] = {
                k: max(float(v), 0.0) if v != -1 else float("nan") for k, v in zip(COCO_STAT_NAMES, ev.stats)
            }
    return out
