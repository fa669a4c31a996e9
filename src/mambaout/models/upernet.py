"""UperNet written to mmsegmentation's UPerHead / FCNHead semantics, and the segmentor around it.

Every conv unit is conv (no bias) + BN + ReLU (SyncBN under DDP via ``convert_sync_batchnorm``).
UPerHead: PPM (pool scales 1/2/3/6) on the stride-32 map -> 3x3 unit to 512; 1x1 laterals to 512 on
stages 1-3; top-down add; a 3x3 unit per finer level; upsample all to stride 4, concat (4x512), 3x3
fuse unit to 512, dropout 0.1, 1x1 classifier. FCN auxiliary head: stage 3, one 3x3 unit to 256,
dropout 0.1, 1x1 classifier, loss weight 0.4 (training only). Upsampling is bilinear, align_corners=False.

Initialisation as mmcv/mmseg (:func:`init_head`): every unit's conv kaiming-normal (fan_out, relu; mmcv
``ConvModule``'s default), BN weight 1 / bias 0, the classifiers ``conv_seg`` N(0, 0.01) with bias 0
(mmseg ``BaseDecodeHead``'s ``init_cfg``). The backbone is left as built (random or pretrained).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .dense_backbone import DenseBackbone

IGNORE_INDEX = 255
log = logging.getLogger("mambaout")


class ConvUnit(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int = 1):
        super().__init__(
            nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
        )


def init_head(head: nn.Module) -> None:
    """mmseg's initialisation of a decode head: ConvModule convs kaiming (fan_out, relu, bias 0), norms 1/0,
    the classifier ``conv_seg`` normal std 0.01, bias 0."""
    for m in head.modules():
        if isinstance(m, ConvUnit):
            nn.init.kaiming_normal_(m[0].weight, mode="fan_out", nonlinearity="relu")
            nn.init.ones_(m[1].weight)
            nn.init.zeros_(m[1].bias)
    nn.init.normal_(head.conv_seg.weight, std=0.01)
    nn.init.zeros_(head.conv_seg.bias)


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
        init_head(self)

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
        init_head(self)

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
        avg_non_ignore: bool = False,
    ):
        super().__init__()
        self.backbone = backbone
        self.num_classes = num_classes
        self.decode_head = UPerHead(backbone.channels, num_classes, channels)
        self.auxiliary_head = FCNHead(backbone.channels[2], num_classes, aux_channels) if aux else None
        self.aux_weight = aux_weight
        self.ignore_index = ignore_index
        self.avg_non_ignore = avg_non_ignore
        self.size_divisor = backbone.size_divisor

    def forward(self, x: torch.Tensor, target: torch.Tensor | None = None):
        feats = self.backbone(x)
        logits = self.decode_head(feats)
        if target is None:
            return _resize(logits, x.shape[-2:])
        return self.losses(logits, feats, target)

    def seg_loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Pixel CE, ignored pixels contributing 0. mmseg's default (``avg_non_ignore=False``) divides the sum
        by the number of all pixels, ignored ones included; ``avg_non_ignore=True`` by the non-ignored ones."""
        if self.avg_non_ignore:
            return F.cross_entropy(logits, target, ignore_index=self.ignore_index)
        return F.cross_entropy(logits, target, ignore_index=self.ignore_index, reduction="none").mean()

    def losses(self, logits, feats, target) -> dict[str, torch.Tensor]:
        size = target.shape[-2:]
        loss = {"loss_seg": self.seg_loss(_resize(logits, size), target)}
        if self.auxiliary_head is not None and self.training:
            aux = self.auxiliary_head(feats[2])
            loss["loss_aux"] = self.aux_weight * self.seg_loss(_resize(aux, size), target)
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
    avg_non_ignore: bool = False,
) -> UperNet:
    backbone = DenseBackbone(backbone_name, drop_path_rate=drop_path_rate, pretrained=pretrained, stage_norm=stage_norm)
    model = UperNet(backbone, num_classes, channels, aux_channels, aux_weight, aux, avg_non_ignore=avg_non_ignore)
    model.backbone_name = backbone_name
    return model


# --- inference ------------------------------------------------------------------------------------
#
# Numerics: only the network's forward runs under autocast (``amp_dtype``); its logits are cast to fp32
# at once and every later step (window averaging, resizing, softmax, the sum over augmentations) runs in
# fp32 with autocast off, whatever the caller's context and device (CUDA and CPU autocast cast
# interpolate/softmax differently). A half-precision forward that overflows (inf/NaN logits) is run again
# in fp32 instead of letting NaN probabilities reach the argmax (NaN wins it: an all-NaN pixel is class 0).


def aug_size(h: int, w: int, ratio: float) -> tuple[int, int]:
    """The input size at test ratio ``ratio``: mmcv's keep-ratio rescale rounds (``int(x * r + 0.5)``)."""
    return max(int(h * ratio + 0.5), 1), max(int(w * ratio + 0.5), 1)


def _autocast(device_type: str, amp_dtype: torch.dtype | None):
    if amp_dtype is None:
        return torch.autocast(device_type, enabled=False)
    return torch.autocast(device_type, dtype=amp_dtype)


def _pad_to(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    ph, pw = max(h - x.shape[-2], 0), max(w - x.shape[-1], 0)
    return F.pad(x, (0, pw, 0, ph)) if ph or pw else x


def _forward_padded(model, x: torch.Tensor, amp_dtype: torch.dtype | None = None) -> torch.Tensor:
    """fp32 logits for x of any size: pad (bottom/right, zeros) to the size divisor, predict, crop the padding off.

    The forward runs under autocast to ``amp_dtype`` (None: fp32); non-finite half-precision logits are
    recomputed in fp32 (with a warning)."""
    d = getattr(model, "size_divisor", 32)
    h, w = x.shape[-2:]
    hp, wp = -(-h // d) * d, -(-w // d) * d
    xp = _pad_to(x, hp, wp)
    with _autocast(x.device.type, amp_dtype):
        logit = model(xp)
    logit = logit[..., :h, :w].float()
    if amp_dtype is not None and not bool(torch.isfinite(logit).all()):
        log.warning("non-finite %s logits on a %dx%d input: recomputed in fp32", amp_dtype, hp, wp)
        with _autocast(x.device.type, None):
            logit = model(xp.float())[..., :h, :w].float()
    return logit


@torch.no_grad()
def slide_inference(
    model,
    x: torch.Tensor,
    crop: Sequence[int] = (512, 512),
    stride: Sequence[int] = (341, 341),
    amp_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """mmseg 'slide' mode: overlapping crop windows, fp32 logits averaged where they overlap."""
    ch, cw = crop
    sh, sw = stride
    b, _, h, w = x.shape
    gh = max(h - ch + sh - 1, 0) // sh + 1
    gw = max(w - cw + sw - 1, 0) // sw + 1
    out = None
    count = torch.zeros((b, 1, h, w), dtype=torch.float32, device=x.device)
    for i in range(gh):
        for j in range(gw):
            y1, x1 = i * sh, j * sw
            y2, x2 = min(y1 + ch, h), min(x1 + cw, w)
            y1, x1 = max(y2 - ch, 0), max(x2 - cw, 0)
            logit = _forward_padded(model, x[:, :, y1:y2, x1:x2], amp_dtype)
            if out is None:
                out = torch.zeros((b, logit.shape[1], h, w), dtype=torch.float32, device=x.device)
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
    amp_dtype: torch.dtype | None = None,
    out_size: Sequence[int] | None = None,
) -> torch.Tensor:
    """Mean softmax probabilities (fp32) at ``out_size`` (default x's size) over ``scales`` x ``flip``.

    mmseg's aug test: for each ratio the image is resized (bilinear, keep ratio, sizes rounded as mmcv) and
    predicted ('slide' windows or 'whole', each window padded to the size divisor and cropped back); a
    flipped prediction is flipped back; each prediction's logits are resized to ``out_size`` and soft-maxed
    there, and the probabilities are averaged. Only the forward runs under ``amp_dtype`` autocast.
    """
    h, w = x.shape[-2:]
    out_size = (h, w) if out_size is None else (int(out_size[0]), int(out_size[1]))
    device_type = x.device.type
    x = x.float()
    total, n = None, 0
    for s in scales:
        size = aug_size(h, w, s)
        with _autocast(device_type, None):
            xs = x if size == (h, w) else F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        for flipped in (False, True) if flip else (False,):
            xi = xs.flip(-1) if flipped else xs
            if mode == "slide":
                logit = slide_inference(model, xi, crop, stride, amp_dtype)
            else:
                logit = _forward_padded(model, xi, amp_dtype)
            with _autocast(device_type, None):
                logit = logit.flip(-1) if flipped else logit
                if tuple(logit.shape[-2:]) != out_size:
                    logit = _resize(logit, out_size)
                prob = logit.float().softmax(1)
            total = prob if total is None else total.add_(prob)
            n += 1
    return total / n
