"""EfficientVMamba ``efficientvmamba_{tiny,small,base}`` on the hierarchical macro.

Stages 1-2: EVSS blocks, x + DropPath(SE(ES2D(LN x)) + SE(conv(LN x))), where ES2D is SS2D with the
atrous (step-2) scan: in_proj -> (x, z), 3x3 depthwise conv + SiLU, the 'conv_ssm' mixer with
``scan='atrous'`` (4 disjoint stride-2 sub-grids, total length L, one grouped scan), LayerNorm,
* SiLU(z), out_proj; the conv branch is 3x3 depthwise conv + BN + GELU + 1x1 conv; SE is one shared
BiAttn-style channel gate. No MLP (mlp_ratio 0). Stages 3-4: MobileNetV2 inverted residuals (expand 4,
SE 0.125 of the expanded width). Patch-4 embed, patch-merging downsampling, linear head
(HierarchicalNet with ``PATCH_MACRO``), d_state 16.

Inverted residuals as in the authors' toolbox (``lib/models/operations.py``): ReLU, sigmoid SE gate,
SE width int(0.125 * expanded width).
"""

from __future__ import annotations

import math

import torch
from timm.layers import DropPath
from torch import nn

from ..registry import register_model
from .blocks import LayerNorm
from .hierarchical import PATCH_MACRO, HierarchicalNet
from .mixers import build_mixer
from .ssm import ChannelGate


class EVSSBlock(nn.Module):
    """EfficientVMamba's EVSS block (see module docstring). Channels-last."""

    def __init__(self, dim: int, ssm_ratio: float = 2.0, d_state: int = 16, scan="atrous", drop_path: float = 0.0):
        super().__init__()
        inner = int(dim * ssm_ratio)
        self.norm = LayerNorm(dim)
        self.in_proj = nn.Linear(dim, 2 * inner, bias=False)
        self.op = build_mixer(
            "conv_ssm", inner, kernel_size=3, scan=scan, d_state=d_state, dt_rank=math.ceil(dim / 16), out_norm=True
        )
        self.act = nn.SiLU()
        self.out_proj = nn.Linear(inner, dim, bias=False)
        self.conv_branch = nn.Sequential(
            nn.Conv2d(dim, dim, 3, padding=1, groups=dim), nn.BatchNorm2d(dim), nn.GELU(), nn.Conv2d(dim, dim, 1)
        )
        self.se = ChannelGate(dim)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def _gate(self, x):
        B, H, W, C = x.shape
        return self.se(x.reshape(B, H * W, C)).view(B, H, W, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        v, z = self.in_proj(h).chunk(2, dim=-1)
        y_ssm = self.out_proj(self.op(v) * self.act(z))
        y_conv = self.conv_branch(h.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return x + self.drop_path(self._gate(y_ssm) + self._gate(y_conv))


class InvertedResidual(nn.Module):
    """MobileNetV2 block with SE: 1x1 expand + BN + act, 3x3 dw + BN + act, SE, 1x1 project + BN; residual.
    Channels-last in and out (NCHW inside)."""

    def __init__(self, dim: int, expand_ratio: float = 4.0, se_ratio: float = 0.125, drop_path: float = 0.0):
        super().__init__()
        hidden = int(dim * expand_ratio)
        se = max(1, int(hidden * se_ratio))
        self.conv_pw = nn.Conv2d(dim, hidden, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(hidden)
        self.conv_dw = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden, bias=False)
        self.bn2 = nn.BatchNorm2d(hidden)
        self.act = nn.ReLU()
        self.se_reduce = nn.Conv2d(hidden, se, 1)
        self.se_expand = nn.Conv2d(se, hidden, 1)
        self.conv_pwl = nn.Conv2d(hidden, dim, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(dim)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.permute(0, 3, 1, 2)
        h = self.act(self.bn1(self.conv_pw(h)))
        h = self.act(self.bn2(self.conv_dw(h)))
        s = self.se_expand(self.act(self.se_reduce(h.mean((2, 3), keepdim=True))))
        h = self.bn3(self.conv_pwl(h * torch.sigmoid(s)))
        return x + self.drop_path(h.permute(0, 2, 3, 1))


def efficientvmamba(depths, dims, ssm_ratio: float = 2.0, d_state: int = 16, scan="atrous", **kwargs):
    blocks = [EVSSBlock, EVSSBlock, InvertedResidual, InvertedResidual]
    evss = dict(ssm_ratio=ssm_ratio, d_state=d_state, scan=scan)
    block_kwargs = [evss, evss, {}, {}]
    return HierarchicalNet(depths, dims, block=blocks, block_kwargs=block_kwargs, **{**PATCH_MACRO, **kwargs})


def _dims(c):
    return (c, 2 * c, 4 * c, 8 * c)


_SRC = "EfficientVMamba README / MambaOut paper"


@register_model("efficientvmamba", dict(params=6, macs=0.8, top1=76.5, source=_SRC), dict(drop_path=0.2))
def efficientvmamba_tiny(**kwargs):
    return efficientvmamba((2, 2, 4, 2), _dims(48), **kwargs)


@register_model("efficientvmamba", dict(params=11, macs=1.3, top1=78.7, source=_SRC), dict(drop_path=0.2))
def efficientvmamba_small(**kwargs):
    return efficientvmamba((2, 2, 4, 2), _dims(64), **kwargs)


@register_model("efficientvmamba", dict(params=33, macs=4.0, top1=81.8, source=_SRC), dict(drop_path=0.3))
def efficientvmamba_base(**kwargs):
    return efficientvmamba((2, 2, 9, 2), _dims(96), **kwargs)
