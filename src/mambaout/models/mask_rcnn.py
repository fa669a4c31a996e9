"""Mask R-CNN (torchvision) with an FPN over any zoo backbone's four stages.

    image -> DenseBackbone (4 stages, LayerNorm each) -> FeaturePyramidNetwork (256 ch, + max-pool level)
          -> RPN -> RoI heads (box: 2-FC 1024; mask: 4 conv + deconv)

Labels are contiguous 1..K (0 = background), so ``num_classes = K + 1`` (COCO: 81, as mmdet's 80 + bg);
datasets keep the mapping back to the original category ids.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.ops import FeaturePyramidNetwork
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
    model = MaskRCNN(body, num_classes=classes, min_size=min_size, max_size=max_size, **rcnn_kwargs)
    if not masks:
        model.roi_heads.mask_roi_pool = None
        model.roi_heads.mask_head = None
        model.roi_heads.mask_predictor = None
    model.num_classes = num_classes
    return model


def has_masks(model) -> bool:
    return getattr(model.roi_heads, "mask_predictor", None) is not None
