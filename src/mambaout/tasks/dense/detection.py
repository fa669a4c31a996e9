"""The detection head of a dense run: COCO/VOC data, Mask R-CNN's losses, COCO box/mask AP (+ VOC mAP@0.5)."""

from __future__ import annotations

import os

import torch
from torch.utils.data import DataLoader

from ...data.check import checked
from ...data.dense_transforms import detection_transforms
from ...data.detection import CocoInstances, VOCDetection, aspect_groups, detection_collate
from ...data.sampler import ShardedEvalSampler
from ...engine import distributed
from ...engine.precision import autocast
from ...engine.progress import progress
from .config import DetectionTask
from .metrics import coco_evaluate, predictions_to_coco
from .voc_map import voc_map

MAIN_METRIC = "bbox_AP"
collate = detection_collate
group_ids = aspect_groups  # batches of one aspect-ratio group (landscape / portrait), as mmdet and torchvision


def datasets(sec: DetectionTask, seed: int):
    """(train, val) datasets in the on-disk format of ``sec.data``."""
    d = sec.data
    out = []
    for split, train in (("train", True), ("val", False)):
        tf = detection_transforms(train, d.hflip)
        if d.format == "coco":
            out.append(
                CocoInstances(
                    os.path.join(d.root, getattr(d, f"{split}_images")),
                    os.path.join(d.root, getattr(d, f"{split}_ann")),
                    train=train,
                    transforms=tf,
                    masks=sec.head.masks,
                )
            )
        else:
            out.append(VOCDetection(d.root, getattr(d, f"{split}_split"), train=train, transforms=tf))
        checked(
            out[-1], f"detection {split}", d.num_workers, "error", distributed.is_main(), distributed.broadcast_object
        )
    return tuple(out)


def head_kwargs(sec: DetectionTask) -> dict:
    h = sec.head
    return dict(num_classes=sec.num_classes, masks=h.masks, min_size=h.min_size, max_size=h.max_size, **h.rcnn)


def to_device(batch, device):
    images, targets = batch
    images = [im.to(device, non_blocking=True) for im in images]
    targets = [
        {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in t.items()} for t in targets
    ]
    return images, targets


@torch.no_grad()
def evaluate(
    model,
    dataset,
    device,
    batch_size: int = 1,
    amp=None,
    iou_types=("bbox", "segm"),
    quiet: bool = True,
    voc_mode: str | None = None,
) -> dict[str, float]:
    """COCO box (and mask) AP over ``dataset`` (sharded over ranks; rank 0 runs COCOeval; all get the result);
    with ``voc_mode`` ('11points' / 'area') also ``voc_mAP``, VOC mAP@0.5 (:mod:`.voc_map`)."""
    model.eval()
    sampler = ShardedEvalSampler(len(dataset), distributed.world_size(), distributed.rank())
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, collate_fn=detection_collate)
    results = []
    for images, targets in progress(loader, desc="eval", quiet=quiet):
        with autocast(device, amp):
            outs = model([im.to(device) for im in images])
        outs = [{k: v.float() if v.is_floating_point() else v for k, v in o.items()} for o in outs]
        results += predictions_to_coco(outs, [t["image_id"] for t in targets], dataset.label_to_cat)
    if distributed.is_dist():
        gathered = [None] * distributed.world_size()
        torch.distributed.all_gather_object(gathered, results)
        results = [r for part in gathered for r in part]
    types = [t for t in iou_types if t == "bbox" or getattr(dataset, "masks", False)]
    metrics = None
    if distributed.is_main():
        res = coco_evaluate(dataset.coco_gt, results, types)
        metrics = {f"{t}_{k}": v for t, stats in res.items() for k, v in stats.items()}
        if voc_mode is not None:
            metrics["voc_mAP"] = voc_map(dataset.coco_gt, results, 0.5, voc_mode)["mAP"]
    return distributed.broadcast_object(metrics)


def evaluate_task(model, dataset, sec: DetectionTask, run, multi_scale: bool = False) -> dict[str, float]:
    """``model``: the run's MultiTaskModel."""
    e = sec.eval
    return evaluate(
        model.heads["detection"], dataset, run.device, e.batch_size, run.amp, e.iou_types, run.quiet, e.voc_mode
    )
