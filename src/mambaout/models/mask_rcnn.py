"""Mask R-CNN (torchvision) with an FPN over any zoo backbone's four stages.

    image -> DenseBackbone (4 stages, LayerNorm each) -> FeaturePyramidNetwork (256 ch, + max-pool level)
          -> RPN -> RoI heads (box: 2-FC 1024; mask: 4 conv + deconv)

Labels are contiguous 1..K (0 = background), so ``num_classes = K + 1`` (COCO: 81, as mmdet's 80 + bg);
datasets keep the mapping back to the original category ids.

Where torchvision's defaults differ from mmdet's Mask R-CNN 1x, :func:`mask_rcnn_on` follows mmdet:
initialisation (:func:`init_mmdet`), the RPN assigner's low-quality floor (:class:`MaxIoUMatcher`) and the
mask targets (:class:`MmdetRoIHeads`: per-RoI crop-and-resize of the bitmap masks, aligned, binarised).
"""

from __future__ import annotations

from collections import OrderedDict
from contextlib import contextmanager

import torch
from torch import nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection import roi_heads as tv_roi_heads
from torchvision.models.detection._utils import Matcher
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.ops import FeaturePyramidNetwork, roi_align
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from .dense_backbone import DenseBackbone


class BackboneFPN(nn.Module):
    """DenseBackbone + FPN; returns the ordered dict torchvision's detectors expect ('0'..'3', 'pool')."""

    def __init__(self, backbone: DenseBackbone, out_channels: int = 256):
        super().__init__()
        self.body = backbone
        self.fpn = FeaturePyramidNetwork(backbone.channels, out_channels, extra_blocks=LastLevelMaxPool())
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        feats = self.body(x)
        return self.fpn(OrderedDict((str(i), f) for i, f in enumerate(feats)))


class MaxIoUMatcher(Matcher):
    """mmdet's ``MaxIoUAssigner`` on torchvision's Matcher: IoU >= ``high`` positive, < ``low`` negative, between
    ignored; with ``min_pos_iou`` each ground truth whose best IoU is >= ``min_pos_iou`` also takes every anchor
    at that best IoU (ties included; ``gt_max_assign_all``), later ground truths winning, as mmdet's loop.
    torchvision's own low-quality matching has no floor (a box whose best anchor has IoU 0.05 still gets it)
    and hands such an anchor to its own best ground truth rather than to the box it is best for."""

    def __init__(self, high: float, low: float, min_pos_iou: float):
        super().__init__(high, low, allow_low_quality_matches=False)
        self.min_pos_iou = min_pos_iou

    def __call__(self, match_quality_matrix: torch.Tensor) -> torch.Tensor:
        matches = super().__call__(match_quality_matrix)
        if match_quality_matrix.numel() == 0:
            return matches
        best = match_quality_matrix.max(dim=1, keepdim=True).values  # per ground truth
        takes = (match_quality_matrix == best) & (best >= self.min_pos_iou)  # (gt, anchor)
        order = torch.arange(1, takes.shape[0] + 1, device=takes.device)[:, None]
        last = (takes * order).max(dim=0).values  # the last ground truth taking each anchor, 1-based; 0: none
        return torch.where(last > 0, last - 1, matches)


def mmdet_mask_targets(gt_masks, boxes, matched_idxs, size: int) -> torch.Tensor:
    """mmdet's ``BitmapMasks.crop_and_resize`` (binarize=True): each positive RoI's ground-truth mask (at the
    network's input scale) cropped by the RoI and resized to ``size`` x ``size`` with RoIAlign (aligned=True,
    sampling ratio 0 = adaptive), then thresholded at 0.5. torchvision's ``project_masks_on_boxes`` uses
    aligned=False, sampling 2 and keeps the soft values."""
    rois = torch.cat([matched_idxs.to(boxes)[:, None], boxes], dim=1)
    soft = roi_align(gt_masks[:, None].to(rois), rois, (size, size), 1.0, sampling_ratio=0, aligned=True)[:, 0]
    return (soft >= 0.5).to(soft.dtype)


@contextmanager
def _mask_targets(fn):
    """torchvision's ``maskrcnn_loss`` reads ``project_masks_on_boxes`` from its module: swap it for the call."""
    saved = tv_roi_heads.project_masks_on_boxes
    tv_roi_heads.project_masks_on_boxes = fn
    try:
        yield
    finally:
        tv_roi_heads.project_masks_on_boxes = saved


class MmdetRoIHeads(RoIHeads):
    """torchvision's RoI heads with mmdet's mask targets (:func:`mmdet_mask_targets`) during training."""

    def forward(self, features, proposals, image_shapes, targets=None):
        if not (self.training and self.has_mask()):
            return super().forward(features, proposals, image_shapes, targets)
        with _mask_targets(mmdet_mask_targets):
            return super().forward(features, proposals, image_shapes, targets)


def init_mmdet(model: MaskRCNN) -> None:
    """mmdet's initialisation where torchvision's differs: FPN convs xavier-uniform, bias 0 (mmdet ``FPN``'s
    ``init_cfg``); the box head's shared FCs xavier-uniform, bias 0, ``fc_cls`` N(0, 0.01) and ``fc_reg``
    N(0, 0.001), bias 0 (``BBoxHead``/``ConvFCBBoxHead``); the mask head's deconv and logits bias 0 (their
    weights are kaiming-normal fan_out in both). The RPN head (N(0, 0.01), bias 0) and the mask convs
    (kaiming fan_out, bias 0) are mmdet's already. The backbone is not touched."""
    for m in model.backbone.fpn.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    heads = model.roi_heads
    for m in heads.box_head.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    for layer, std in ((heads.box_predictor.cls_score, 0.01), (heads.box_predictor.bbox_pred, 0.001)):
        nn.init.normal_(layer.weight, std=std)
        nn.init.zeros_(layer.bias)
    if heads.mask_predictor is not None:
        for m in heads.mask_predictor.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.zeros_(m.bias)


# mmdet's Mask R-CNN assigners: RPN 0.7 / 0.3 with low-quality matches from IoU 0.3; R-CNN 0.5 / 0.5 without
# them (torchvision's R-CNN matcher already is that).
RPN_MIN_POS_IOU = 0.3

# Reduced settings for tests and tiny images (few proposals, small resize).
SMALL_SETTINGS = dict(
    min_size=64,
    max_size=128,
    rpn_pre_nms_top_n_train=100,
    rpn_post_nms_top_n_train=50,
    rpn_pre_nms_top_n_test=100,
    rpn_post_nms_top_n_test=50,
    box_batch_size_per_image=64,
    rpn_batch_size_per_image=64,
    box_detections_per_img=20,
)


def build_mask_rcnn(
    backbone_name: str,
    num_classes: int = 81,
    drop_path_rate: float = 0.0,
    pretrained: str | None = None,
    stage_norm: bool = True,
    **kwargs,
) -> MaskRCNN:
    """Mask R-CNN on a zoo backbone; ``kwargs`` as :func:`mask_rcnn_on`."""
    backbone = DenseBackbone(backbone_name, drop_path_rate=drop_path_rate, pretrained=pretrained, stage_norm=stage_norm)
    model = mask_rcnn_on(backbone, num_classes, **kwargs)
    model.backbone_name = backbone_name
    return model


def mask_rcnn_on(
    backbone: DenseBackbone,
    num_classes: int,
    min_size: int = 800,
    max_size: int = 1333,
    masks: bool = True,
    fpn_channels: int = 256,
    box_channels: int = 1024,
    mask_channels: int = 256,
    **rcnn_kwargs,
) -> MaskRCNN:
    """Mask R-CNN (or Faster R-CNN with ``masks=False``) over an existing backbone module.

    ``rcnn_kwargs`` go to torchvision's MaskRCNN (e.g. ``rpn_post_nms_top_n_test``, ``box_detections_per_img``).
    ``fpn_channels`` / ``box_channels`` / ``mask_channels`` shrink the FPN, the 2-FC box head and the mask head
    (defaults = the standard 256 / 1024 / 256) for tests and tiny data.
    The image transform (resize shorter side ``min_size``, longer <= ``max_size``, ImageNet normalisation,
    pad to a multiple of 32) is torchvision's GeneralizedRCNNTransform.
    """
    body = BackboneFPN(backbone, fpn_channels)
    classes = num_classes
    if (fpn_channels, box_channels, mask_channels) != (256, 1024, 256):
        rcnn_kwargs.setdefault("box_head", TwoMLPHead(fpn_channels * 7 * 7, box_channels))
        rcnn_kwargs.setdefault("box_predictor", FastRCNNPredictor(box_channels, num_classes))
        rcnn_kwargs.setdefault("mask_head", MaskRCNNHeads(fpn_channels, [mask_channels] * 4, 1))
        rcnn_kwargs.setdefault("mask_predictor", MaskRCNNPredictor(mask_channels, mask_channels, num_classes))
        classes = None  # torchvision wants None once the predictors are given
    rcnn_kwargs.setdefault("size_divisible", max(32, backbone.size_divisor))
    # mmdet's train_cfg.rpn_proposal: 2000 per level before NMS, 1000 per image after (torchvision: 2000 / 2000)
    rcnn_kwargs.setdefault("rpn_post_nms_top_n_train", 1000)
    model = MaskRCNN(body, num_classes=classes, min_size=min_size, max_size=max_size, **rcnn_kwargs)
    tv = model.rpn.proposal_matcher  # rpn_fg_iou_thresh / rpn_bg_iou_thresh: 0.7 / 0.3 as mmdet by default
    model.rpn.proposal_matcher = MaxIoUMatcher(tv.high_threshold, tv.low_threshold, RPN_MIN_POS_IOU)
    model.roi_heads.__class__ = MmdetRoIHeads  # same state; only the mask targets' rule changes
    init_mmdet(model)
    if not masks:
        model.roi_heads.mask_roi_pool = None
        model.roi_heads.mask_head = None
        model.roi_heads.mask_predictor = None
    model.num_classes = num_classes
    return model


def has_masks(model) -> bool:
    return getattr(model.roi_heads, "mask_predictor", None) is not None
