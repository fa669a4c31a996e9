"""Params and MACs (fvcore convention, :mod:`mambaout.analysis.macs`) of whole detectors and segmentors.

Conventions (see docs/dense.md):

- segmentation: UperNet in inference (decode head only, as mmseg's ``get_flops``) on a 512x2048 input;
- detection: Mask R-CNN on an 800x1280 input, counted piecewise on the meta device as mmdet 2.x's
  ``forward_dummy`` does: backbone + FPN + RPN head over all levels, then the box head on a fixed
  ``box_rois`` (1000) RoIs and the mask head on ``mask_rois`` (100) RoIs. RoIAlign, NMS and anchor
  decoding are free under fvcore's rules. ``mode='cpu'`` instead runs the real end-to-end eval forward
  on CPU (random weights, real proposal/detection counts) and counts whatever executes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ...analysis.macs import MacCounter
from ...errors import InputError
from ...registry import model_info

PAPER = {
    # backbone: (params M, GMACs) from the MambaOut paper's COCO (800x1280) and ADE20K (512x2048) tables
    "detection": {"mambaout_tiny": (43, 262), "mambaout_small": (65, 354), "mambaout_base": (100, 495)},
    "segmentation": {"mambaout_tiny": (54, 938), "mambaout_small": (76, 1032), "mambaout_base": (112, 1178)},
}
DEFAULT_SIZE = {"detection": (800, 1280), "segmentation": (512, 2048)}
DEFAULT_CLASSES = {"detection": 81, "segmentation": 150}


def _params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def build_dense(backbone_name: str, task: str, num_classes: int | None = None, device="meta", **kwargs):
    from ...models.mask_rcnn import build_mask_rcnn
    from ...models.upernet import build_upernet

    num_classes = num_classes or DEFAULT_CLASSES[task]
    with torch.device(device):
        if task == "detection":
            return build_mask_rcnn(backbone_name, num_classes=num_classes, **kwargs)
        return build_upernet(backbone_name, num_classes=num_classes, **kwargs)


def _detection_meta(model, h: int, w: int, box_rois: int, mask_rois: int) -> MacCounter:
    parts = {}
    model.eval()
    x = torch.empty(1, 3, h, w, device="meta")
    with torch.no_grad():
        with MacCounter() as c:
            feats = model.backbone(x)
        parts["backbone_fpn"] = c.total
        with MacCounter() as c:
            model.rpn.head(list(feats.values()))
        parts["rpn_head"] = c.total
        rh = model.roi_heads
        pooled = rh.box_roi_pool.output_size
        pooled = (pooled, pooled) if isinstance(pooled, int) else tuple(pooled)
        with MacCounter() as c:
            rh.box_predictor(rh.box_head(torch.empty(box_rois, model.backbone.out_channels, *pooled, device="meta")))
        parts["box_head"] = c.total
        if rh.mask_head is not None:
            ms = rh.mask_roi_pool.output_size
            ms = (ms, ms) if isinstance(ms, int) else tuple(ms)
            with MacCounter() as c:
                rh.mask_predictor(rh.mask_head(torch.empty(mask_rois, model.backbone.out_channels, *ms, device="meta")))
            parts["mask_head"] = c.total
        with MacCounter() as c:  # the backbone alone (already inside backbone_fpn)
            model.backbone.body(x)
        backbone_only = c.total
    total = MacCounter()
    for k, v in parts.items():
        total.add(k, v)
    total.backbone_only = backbone_only
    return total


def _detection_cpu(model, h: int, w: int) -> MacCounter:
    model.eval()
    # feed a pre-sized image: the internal transform then keeps it (min_size = shorter side)
    model.transform.min_size = (min(h, w),)
    model.transform.max_size = max(h, w)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, h, w, generator=g)
    with torch.no_grad(), MacCounter() as c:
        model([x])
    return c


def dense_complexity(
    backbone_name: str,
    task: str = "detection",
    img_size: Sequence[int] | None = None,
    num_classes: int | None = None,
    mode: str = "meta",
    box_rois: int = 1000,
    mask_rois: int = 100,
) -> dict:
    """Params (M) and GMACs of Mask R-CNN ('detection') or UperNet ('segmentation') on ``backbone_name``."""
    if task not in DEFAULT_SIZE:
        raise InputError(f"task must be 'detection' or 'segmentation', got {task!r}")
    if mode not in ("meta", "cpu"):
        raise InputError(f"mode must be 'meta' or 'cpu', got {mode!r}")
    model_info(backbone_name)  # raises a clear error for an unknown name
    h, w = tuple(img_size) if img_size else DEFAULT_SIZE[task]
    device = "cpu" if mode == "cpu" else "meta"
    model = build_dense(backbone_name, task, num_classes, device=device)
    d = model.backbone.body.size_divisor if task == "detection" else model.size_divisor
    if h % d or w % d:
        raise InputError(f"--img-size {h}x{w}: both sides must be multiples of {d}")
    params = _params(model)
    backbone_params = _params(model.backbone.body if task == "detection" else model.backbone)
    by_part = {}
    if task == "detection":
        counter = _detection_meta(model, h, w, box_rois, mask_rois) if mode == "meta" else _detection_cpu(model, h, w)
        if mode == "meta":
            by_part = {k: v / 1e9 for k, v in counter.by_op.items()}
            by_part["backbone_only"] = counter.backbone_only / 1e9
    else:
        model.eval()
        x = torch.empty(1, 3, h, w, device=device)
        with torch.no_grad():
            with MacCounter() as bc:
                feats = model.backbone(x)
            with MacCounter() as counter:
                model(x)
        by_part = {"backbone": bc.total / 1e9, "decode_head": (counter.total - bc.total) / 1e9}
        del feats
    paper = PAPER[task].get(backbone_name)
    return dict(
        backbone=backbone_name,
        task=task,
        model="Mask R-CNN + FPN" if task == "detection" else "UperNet",
        height=h,
        width=w,
        num_classes=num_classes or DEFAULT_CLASSES[task],
        mode=mode,
        params_m=params / 1e6,
        backbone_params_m=backbone_params / 1e6,
        macs_g=counter.total / 1e9,
        macs_by_part_g=by_part,
        convention=(
            f"meta: backbone+FPN+RPN head, box head on {box_rois} RoIs, mask head on {mask_rois} RoIs"
            if task == "detection" and mode == "meta"
            else "cpu: real end-to-end eval forward"
            if task == "detection"
            else "inference forward (decode head only, no auxiliary head)"
        ),
        paper=dict(params_m=paper[0], macs_g=paper[1]) if paper else None,
    )
