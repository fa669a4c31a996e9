"""The segmentation head of a dense run: ADE20K/VOC/Cityscapes data, UperNet's losses, mIoU."""

from __future__ import annotations

import torch

from ...data.check import checked
from ...data.dense_transforms import segmentation_transforms
from ...data.sampler import ShardedEvalSampler
from ...data.segmentation import ADE20K, Cityscapes, VOCSegmentation
from ...engine import distributed
from ...engine.precision import AMP_DTYPES
from ...engine.progress import progress
from ...models.upernet import predict_logits
from .config import SegmentationTask
from .metrics import ConfusionMatrix

MAIN_METRIC = "mIoU"
MIN_BATCH = (2, "the PPM's 1x1 pooled BatchNorm cannot train on one value per channel (SyncBN across GPUs lifts this)")
collate = None
group_ids = None


def datasets(sec: SegmentationTask, seed: int):
    d = sec.data
    out = []
    for split, train in (("train", True), ("val", False)):
        tf = segmentation_transforms(
            train,
            crop_size=d.crop_size,
            scale=d.scale,
            ratio_range=d.ratio_range,
            cat_max_ratio=d.cat_max_ratio,
            flip_prob=d.hflip,
            photometric=d.photometric,
            test_scale=d.test_scale,
        )
        name = getattr(d, f"{split}_split")
        if d.format == "ade20k":
            out.append(
                ADE20K(
                    d.root, name, tf, d.on_bad_label, reduce_zero_label=d.reduce_zero_label, num_classes=d.num_classes
                )
            )
        elif d.format == "voc":
            out.append(VOCSegmentation(d.root, name, tf, d.on_bad_label))
        else:
            out.append(Cityscapes(d.root, name, tf, d.on_bad_label))
        checked(
            out[-1],
            f"segmentation {split}",
            d.num_workers,
            d.on_bad_label,
            distributed.is_main(),
            distributed.broadcast_object,
        )
    return tuple(out)


def head_kwargs(sec: SegmentationTask) -> dict:
    h = sec.head
    return dict(
        num_classes=sec.num_classes,
        channels=h.channels,
        aux_channels=h.aux_channels,
        aux_weight=h.aux_weight,
        aux=h.aux,
        avg_non_ignore=h.avg_non_ignore,
    )


def to_device(batch, device):
    images, labels = batch
    return images.to(device, non_blocking=True), labels.to(device, non_blocking=True)


@torch.no_grad()
def evaluate(
    model,
    dataset,
    device,
    num_classes: int,
    mode: str = "slide",
    crop=(512, 512),
    stride=(341, 341),
    scales=(1.0,),
    flip: bool = False,
    amp=None,
    quiet: bool = True,
) -> dict[str, float]:
    """mIoU / mAcc / aAcc from one confusion matrix over the dataset (all-reduced over ranks).

    Each image's prediction is the mean softmax (fp32) over ``scales`` x ``flip`` at the label's size
    (:func:`~mambaout.models.upernet.predict_logits`); ``amp`` ('bf16'/'fp16'/None) applies to the
    network's forward only."""
    model.eval()
    amp_dtype = AMP_DTYPES[amp] if amp else None
    cm = ConfusionMatrix(num_classes)
    sampler = ShardedEvalSampler(len(dataset), distributed.world_size(), distributed.rank())
    for i in progress(list(sampler), desc="eval", quiet=quiet):
        image, label = dataset[i]
        prob = predict_logits(
            model, image[None].to(device), mode, crop, stride, scales, flip, amp_dtype=amp_dtype, out_size=label.shape
        )
        cm.update(prob.argmax(1)[0], label)
    cm.all_reduce()
    out = cm.compute()
    out["IoU_per_class"] = out.pop("IoU")
    return out


def evaluate_task(model, dataset, sec: SegmentationTask, run, multi_scale: bool = False) -> dict[str, float]:
    """``model``: the run's MultiTaskModel; ``multi_scale``: mmseg's aug test (scales, flip)."""
    ev = sec.eval
    scales = ev.ms_scales if multi_scale else [1.0]
    return evaluate(
        model.heads["segmentation"],
        dataset,
        run.device,
        sec.num_classes,
        ev.mode,
        ev.crop,
        ev.stride,
        scales,
        bool(multi_scale and ev.ms_flip),
        run.amp,
        run.quiet,
    )
