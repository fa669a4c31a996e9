"""Pascal VOC mAP at IoU 0.5, as mmdet's ``eval_map`` scores VOC (``tpfp_default`` + ``average_precision``).

Per class: detections of all images sorted by score; each is matched to the ground-truth box of its image it
overlaps most (difficult ones included). IoU >= 0.5 with a difficult box: neither a hit nor a false positive;
with a box not yet taken: a hit (the box is taken); otherwise a false positive. Recall counts the non-difficult
boxes. AP: ``"11points"`` (VOC2007: mean over recall 0, 0.1, ..., 1 of the best precision at recall >= r) or
``"area"`` (VOC2010+: area under the precision envelope). mAP: the mean over classes with ground truth.

Boxes are continuous pixel coordinates; the VOC reader turns the 1-based inclusive XML boxes into them
(x1 - 1, x2), so a ground-truth box's width is mmdet's legacy ``x2 - x1 + 1``. Inputs are the COCO-form ground
truth (difficult = ``iscrowd``) and result dicts that :mod:`.metrics` uses for COCO AP.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

MODES = ("11points", "area")


def average_precision(recall: np.ndarray, precision: np.ndarray, mode: str = "area") -> float:
    """AP of one class from its cumulative recall / precision (detections by descending score)."""
    if mode == "11points":
        return float(
            sum((precision[recall >= t].max() if (recall >= t).any() else 0.0) for t in np.linspace(0, 1, 11)) / 11
        )
    if mode != "area":
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]  # the precision envelope
    step = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[step + 1] - mrec[step]) * mpre[step + 1]))


def _iou(box: np.ndarray, gts: np.ndarray) -> np.ndarray:
    """IoU of one xyxy box with (n, 4) xyxy boxes."""
    ix = np.clip(np.minimum(box[2], gts[:, 2]) - np.maximum(box[0], gts[:, 0]), 0, None)
    iy = np.clip(np.minimum(box[3], gts[:, 3]) - np.maximum(box[1], gts[:, 1]), 0, None)
    inter = ix * iy
    area = (box[2] - box[0]) * (box[3] - box[1]) + (gts[:, 2] - gts[:, 0]) * (gts[:, 3] - gts[:, 1]) - inter
    return inter / np.maximum(area, np.finfo(np.float64).eps)


def voc_map(gt: dict, results: list[dict], iou_thr: float = 0.5, mode: str = "11points") -> dict:
    """{"mAP": float, "AP": {category_id: AP or None (no ground truth)}} for COCO-form ``gt`` and ``results``."""
    from .metrics import _gt_objects

    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    xyxy = lambda b: np.array([b[0], b[1], b[0] + b[2], b[1] + b[3]], dtype=np.float64)  # noqa: E731
    gts = defaultdict(list)  # (category, image) -> [(box, difficult)]
    for a in _gt_objects(gt, "bbox"):
        gts[(a["category_id"], a["image_id"])].append((xyxy(a["bbox"]), bool(a["iscrowd"])))
    dets = defaultdict(list)  # category -> [(score, image, box)]
    for r in results:
        dets[r["category_id"]].append((float(r["score"]), r["image_id"], xyxy(r["bbox"])))
    aps = {}
    for cat in [c["id"] for c in gt.get("categories", [])]:
        n_gt = sum(not d for (c, _), objs in gts.items() if c == cat for _, d in objs)
        if n_gt == 0:
            aps[cat] = None
            continue
        taken = {key: np.zeros(len(objs), bool) for key, objs in gts.items() if key[0] == cat}
        tp, fp = [], []
        for _, img, box in sorted(dets.get(cat, []), key=lambda d: -d[0]):
            objs = gts.get((cat, img), [])
            ious = _iou(box, np.stack([b for b, _ in objs])) if objs else np.zeros(0)
            j = int(ious.argmax()) if len(ious) else -1
            matched = j >= 0 and ious[j] >= iou_thr
            if matched and objs[j][1]:
                continue  # its best box is difficult: ignored
            hit = matched and not taken[(cat, img)][j]
            if hit:
                taken[(cat, img)][j] = True
            tp.append(hit)
            fp.append(not hit)
        tp_c, fp_c = np.cumsum(tp, dtype=np.float64), np.cumsum(fp, dtype=np.float64)
        recall = tp_c / n_gt
        precision = tp_c / np.maximum(tp_c + fp_c, np.finfo(np.float64).eps)
        aps[cat] = average_precision(recall, precision, mode)
    scored = [v for v in aps.values() if v is not None]
    return {"mAP": float(np.mean(scored)) if scored else 0.0, "AP": aps}
