"""UperNet written to mmsegmentation's UPerHead / FCNHead semantics, and the segmentor around it.

Every conv unit is conv (no bias) + BN + ReLU (SyncBN under DDP via ``convert_sync_batchnorm``).
UPerHead: PPM (pool scales 1/2/3/6) on the stride-32 map -> 3x3 unit to 512; 1x1 laterals to 512 on
stages 1-3; top-down add; a 3x3 unit per finer level; upsample all to stride 4, concat (4x512), 3x3
fuse unit to 512, dropout 0.1, 1x1 classifier. FCN auxiliary head: stage 3, one 3x3 unit to 256,
dropout 0.1, 1x1 classifier, loss weight 0.4 (training only). Upsampling is bilinear, align_corners=False.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .dense_backbone import DenseBackbone

IGNORE_INDEX = 255


class ConvUnit(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int = 1):
        super().__init__(
            nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
        )


def _resize(x: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class PPM(nn.Module):
    def __init__(self, cin: int, channels: int, scales: Sequence[int] = (1, 2, 3, 6)):
        super().__init__()
        self.scales = tuple(scales)
        self.branches = nn.ModuleList(
            [nn.Sequential(nn.AdaptiveAvgPool2d(s), ConvUnit(cin, channels, 1)) for s in self.scales]
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [_resize(b(x), x.shape[-2:]) for b in self.branches]


class UPerHead(nn.Module):
    def __init__(
        self,
        in_channels: Sequence[int],
        num_classes: int,
        channels: int = 512,
        pool_scales: Sequence[int] = (1, 2, 3, 6),
        dropout: float = 0.1,
    ):
        super().__init__()
        in_channels = list(in_channels)
        self.ppm = PPM(in_channels[-1], channels, pool_scales)
        self.bottleneck = ConvUnit(in_channels[-1] + len(pool_scales) * channels, channels, 3)
        self.lateral_convs = nn.ModuleList([ConvUnit(c, channels, 1) for c in in_channels[:-1]])
        self.fpn_convs = nn.ModuleList([ConvUnit(channels, channels, 3) for _ in in_channels[:-1]])
        self.fpn_bottleneck = ConvUnit(len(in_channels) * channels, channels, 3)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        top = feats[-1]
        laterals = [conv(f) for conv, f in zip(self.lateral_convs, feats[:-1])]
        laterals.append(self.bottleneck(torch.cat([top, *self.ppm(top)], dim=1)))
        for i in range(len(laterals) - 1, 0, -1):  # top-down path
            laterals[i - 1] = laterals[i - 1] + _resize(laterals[i], laterals[i - 1].shape[-2:])
        outs = [conv(lat) for conv, lat in zip(self.fpn_convs, laterals[:-1])] + [laterals[-1]]
        size = outs[0].shape[-2:]
        outs = [outs[0]] + [_resize(o, size) for o in outs[1:]]
        return self.conv_seg(self.dropout(self.fpn_bottleneck(torch.cat(outs, dim=1))))


class FCNHead(nn.Module):
    """mmseg FCNHead with num_convs=1, concat_input=False."""

    def __init__(self, in_channels: int, num_classes: int, channels: int = 256, dropout: float = 0.1):
        super().__init__()
        self.convs = ConvUnit(in_channels, channels, 3)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_seg(self.dropout(self.convs(x)))


class UperNet(nn.Module):
    """Backbone + UPerHead (+ FCN auxiliary head on stage 3).

    ``forward(x)`` returns logits at the input size (eval), or a dict with ``'loss'`` when ``target`` is given.
    """

    def __init__(
        self,
        backbone: DenseBackbone,
        num_classes: int,
        channels: int = 512,
        aux_channels: int = 256,
        aux_weight: float = 0.4,
        aux: bool = True,
        ignore_index: int = IGNORE_INDEX,
    ):
        super().__init__()
        self.backbone = backbone
        self.num_classes = num_classes
        self.decode_head = UPerHead(backbone.channels, num_classes, channels)
        self.auxiliary_head = FCNHead(backbone.channels[2], num_classes, aux_channels) if aux else None
        self.aux_weight = aux_weight
        self.ignore_index = ignore_index
        self.size_divisor = backbone.size_divisor

    def forward(self, x: torch.Tensor, target: torch.Tensor | None = None):
        feats = self.backbone(x)
        logits = self.decode_head(feats)
        if target is None:
            return _resize(logits, x.shape[-2:])
        return self.losses(logits, feats, target)

    def losses(self, logits, feats, target) -> dict[str, torch.Tensor]:
        size = target.shape[-2:]
        loss = {"loss_seg": F.cross_entropy(_resize(logits, size), target, ignore_index=self.ignore_index)}
        if self.auxiliary_head is not None and self.training:
            aux = self.auxiliary_head(feats[2])
            loss["loss_aux"] = self.aux_weight * F.cross_entropy(
                _resize(aux, size), target, ignore_index=self.ignore_index
            )
        loss["loss"] = sum(loss.values())
        return loss


def build_upernet(
    backbone_name: str,
    num_classes: int = 150,
    drop_path_rate: float = 0.0,
    pretrained: str | None = None,
    channels: int = 512,
    aux_channels: int = 256,
    aux_weight: float = 0.4,
    aux: bool = True,
    stage_norm: bool = True,
) -> UperNet:
    backbone = DenseBackbone(backbone_name, drop_path_rate=drop_path_rate, pretrained=pretrained, stage_norm=stage_norm)
    model = UperNet(backbone, num_classes, channels, aux_channels, aux_weight, aux)
    model.backbone_name = backbone_name
    return model


# --- inference ------------------------------------------------------------------------------------


def _pad_to(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    ph, pw = max(h - x.shape[-2], 0), max(w - x.shape[-1], 0)
    return F.pad(x, (0, pw, 0, ph)) if ph or pw else x


def _forward_padded(model, x: torch.Tensor) -> torch.Tensor:
    """Logits for x of any size: pad to the size divisor, predict, crop."""
    d = getattr(model, "size_divisor", 32)
    h, w = x.shape[-2:]
    hp, wp = -(-h // d) * d, -(-w // d) * d
    return model(_pad_to(x, hp, wp))[..., :h, :w]


@torch.no_grad()
def slide_inference(
    model, x: torch.Tensor, crop: Sequence[int] = (512, 512), stride: Sequence[int] = (341, 341)
) -> torch.Tensor:
    """mmseg 'slide' mode: overlapping crop windows, logits averaged where they overlap."""
    ch, cw = crop
    sh, sw = stride
    b, _, h, w = x.shape
    gh = max(h - ch + sh - 1, 0) // sh + 1
    gw = max(w - cw + sw - 1, 0) // sw + 1
    out = None
    count = x.new_zeros((b, 1, h, w))
    for i in range(gh):
        for j in range(gw):
            y1, x1 = i * sh, j * sw
            y2, x2 = min(y1 + ch, h), min(x1 + cw, w)
            y1, x1 = max(y2 - ch, 0), max(x2 - cw, 0)
            logit = _forward_padded(model, x[:, :, y1:y2, x1:x2])
            if out is None:
                out = x.new_zeros((b, logit.shape[1], h, w))
            out[:, :, y1:y2, x1:x2] += logit
            count[:, :, y1:y2, x1:x2] += 1
    return out / count


@torch.no_grad()
def predict_logits(
    model,
    x: torch.Tensor,
    mode: str = "slide",
    crop=(512, 512),
    stride=(341, 341),
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
) -> torch.Tensor:
    """Softmax scores at x's size; several ``scales`` and/or ``flip`` average the softmax (mmseg's aug test)."""
    h, w = x.shape[-2:]
    total = None
    for s in scales:
        xs = x if s == 1.0 else F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False)
        for flipped in (False, True) if flip else (False,):
            xi = xs.flip(-1) if flipped else xs
            logit = slide_inference(model, xi, crop, stride) if mode == "slide" else _forward_padded(model, xi)
            logit = logit.flip(-1) if flipped else logit
            prob = _resize(logit, (h, w)).softmax(1)
            total = prob if total is None else total + prob
    return total
