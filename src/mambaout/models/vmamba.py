"""VMamba (v0 "vanilla" and v2) on the hierarchical macro, plus the pieces VMamba-style nets share.

* v0 (``vmamba_{tiny,small,base}``, d_state 16, no MLP): a VSS block is LN -> in_proj -> (x, z) ->
  3x3 depthwise conv -> SiLU -> SS2D cross-scan (4 directions, one grouped scan) -> cross-merge ->
  LayerNorm -> * SiLU(z) -> out_proj -> + residual. That is exactly :class:`GatedBlock` with act 'silu',
  expansion = ssm_ratio, conv_ratio = ssm_ratio (the whole value path is mixed, no identity part) and
  the 'conv_ssm' mixer (k 3, scan 'cross', out_norm). Macro: 4x4 patch embed + LN, patch-merging
  downsampling (LN(4C) -> Linear(4C, 2C)), LN -> mean -> Linear head.
* v2 (``vmamba_tiny_s2l5``, ``vmamba_small_s2l15``, ``vmamba_base_s2l15``; forward type v05_noz,
  d_state 1): no z gate, so the block is :class:`VSSBlock`: x + SS2D(LN x), then x + MLP(LN x), where
  SS2D = in_proj -> 'conv_ssm' mixer (k 3 without bias, 'cross', out_norm) -> out_proj. Macro: MambaOut's
  own conv stem and 3x3 stride-2 conv downsampling (VMamba v2 = patchembed v2 / downsample v3) with
  the linear head.

Differences from the official code (parameter effect < 0.1%): in_proj/out_proj of the gated (v0)
blocks carry biases (GatedBlock's fc1/fc2); LayerNorm eps 1e-6 everywhere.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from timm.layers import DropPath
from torch import nn

from ..registry import register_model
from .blocks import GatedBlock, LayerNorm, init_weights
from .hierarchical import HierarchicalNet
from .vit import Mlp


class PatchEmbedStem(nn.Module):
    """p x p stride-p conv -> LN (VMamba v0 / Swin). NCHW in, NHWC out."""

    def __init__(self, in_chans: int, dim: int, patch_size: int = 4):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, patch_size, stride=patch_size)
        self.norm = LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x).permute(0, 2, 3, 1))


class PatchMerging(nn.Module):
    """2x2 neighbourhood concat -> LN(4C) -> Linear(4C, out, no bias) (Swin/VMamba v0). NHWC."""

    def __init__(self, in_chs: int, out_chs: int):
        super().__init__()
        self.norm = LayerNorm(4 * in_chs)
        self.reduction = nn.Linear(4 * in_chs, out_chs, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        H, W = x.shape[1], x.shape[2]
        if H % 2 or W % 2:
            x = nn.functional.pad(x, (0, 0, 0, W % 2, 0, H % 2))
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        return self.reduction(self.norm(x))


class LinearHead(nn.Module):
    """LN -> global mean -> dropout -> Linear (VMamba / Swin head). Same API as ``MlpHead``."""

    def __init__(self, in_features: int, num_classes: int, drop_rate: float = 0.0):
        super().__init__()
        self.num_features = in_features
        self.norm = LayerNorm(in_features)
        self.head_dropout = nn.Dropout(drop_rate)
        self.fc = nn.Linear(in_features, num_classes) if num_classes > 0 else nn.Identity()

    def reset(self, num_classes: int):
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_dropout(self.norm(x).mean((1, 2)))
        return x if pre_logits else self.fc(x)


class VSSMNet(HierarchicalNet):
    """HierarchicalNet with the macro options VMamba-style papers use.

    stem: 'conv' (MambaOut/VMamba v2 two-conv stem) or 'patch' (4x4 conv + LN).
    downsample: 'conv' (3x3 stride-2 conv + LN) or 'merge' (patch merging).
    head: 'linear' (LN -> mean -> Linear) or 'mlp' (MambaOut's MLP head).
    The replaced modules get the generic init; everything else is HierarchicalNet's.
    """

    def __init__(self, *args, stem: str = "conv", downsample: str = "conv", head: str = "linear", **kwargs):
        for name, value, ok in (("stem", stem, ("conv", "patch")), ("downsample", downsample, ("conv", "merge")),
                                ("head", head, ("linear", "mlp"))):
            if value not in ok:
                raise ValueError(f"{name} must be one of {ok}, got {value!r}")
        super().__init__(*args, **kwargs)
        dims = self.dims
        if stem == "patch":
            self.stem = PatchEmbedStem(self.in_chans, dims[0], 4)
            self.stem.apply(init_weights)
        if downsample == "merge":
            for i in range(1, len(dims)):
                self.stages[i].downsample = PatchMerging(dims[i - 1], dims[i])
                self.stages[i].downsample.apply(init_weights)
        if head == "linear" and self.head is not None:
            self.head = LinearHead(dims[-1], self.num_classes, drop_rate=kwargs.get("drop_rate", 0.0))
            self.head.apply(init_weights)


class VSSBlock(nn.Module):
    """VMamba v2 block: x + DropPath(out_proj(SS2D(in_proj(LN x)))); x + DropPath(MLP(LN x)).

    SS2D is the 'conv_ssm' mixer (3x3 depthwise conv without bias -> SiLU -> cross-scan SSM -> merge ->
    LN); ``mixer_kwargs`` can change the scan (e.g. ``{'scan': 'atrous'}``). ``mlp_ratio=0``: no MLP.
    """

    def __init__(self, dim: int, ssm_ratio: float = 2.0, d_state: int = 1, mlp_ratio: float = 4.0,
                 mixer: str = "conv_ssm", mixer_kwargs: Optional[dict] = None, drop_path: float = 0.0):
        super().__init__()
        from .mixers import build_mixer

        inner = int(dim * ssm_ratio)
        kw = dict(kernel_size=3, scan="cross", d_state=d_state, dt_rank=math.ceil(dim / 16), out_norm=True,
                  conv_bias=False)
        kw.update(mixer_kwargs or {})
        self.norm = LayerNorm(dim)
        self.in_proj = nn.Linear(dim, inner, bias=False)
        self.op = build_mixer(mixer, inner, **kw)
        self.out_proj = nn.Linear(inner, dim, bias=False)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        if mlp_ratio > 0:
            self.norm2 = LayerNorm(dim)
            self.mlp = Mlp(dim, int(dim * mlp_ratio))
        else:
            self.mlp = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.out_proj(self.op(self.in_proj(self.norm(x)))))
        if self.mlp is not None:
            x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x


def vmamba_v0(depths, dims, ssm_ratio: float = 2.0, d_state: int = 16, scan="cross", **kwargs) -> VSSMNet:
    """VMamba v0: gated blocks with the SS2D mixer on the whole value path (see module docstring)."""
    mixer_kwargs = dict(kernel_size=3, scan=scan, d_state=d_state, dt_rank=1 / (16 * ssm_ratio), out_norm=True)
    block_kwargs = dict(mixer="conv_ssm", mixer_kwargs=mixer_kwargs, expansion_ratio=ssm_ratio,
                        conv_ratio=ssm_ratio, act_layer="silu")
    kwargs.setdefault("stem", "patch")
    kwargs.setdefault("downsample", "merge")
    return VSSMNet(depths, dims, block=GatedBlock, block_kwargs=block_kwargs, **kwargs)


def vmamba_v2(depths, dims, ssm_ratio: float = 2.0, d_state: int = 1, mlp_ratio: float = 4.0, scan="cross",
              **kwargs) -> VSSMNet:
    """VMamba v2 (v05_noz): VSS blocks with an MLP, MambaOut's stem and conv downsampling."""
    block_kwargs = dict(ssm_ratio=ssm_ratio, d_state=d_state, mlp_ratio=mlp_ratio, mixer_kwargs=dict(scan=scan))
    return VSSMNet(depths, dims, block=VSSBlock, block_kwargs=block_kwargs, stem="conv", downsample="conv", **kwargs)


def _dims(c):
    return (c, 2 * c, 4 * c, 8 * c)


_SRC = "VMamba repo (assets/performance.md); MambaOut paper: same figures"
_V0 = "VMamba repo, v0 row (MambaOut paper lists 22 / 44 / 75M)"


def _paper(params, macs, top1, source=_SRC):
    return dict(params=params, macs=macs, top1=top1, source=source)


@register_model("vmamba", _paper(23, 5.6, 82.2, _V0),
                dict(drop_path=0.2))
def vmamba_tiny(**kwargs):
    return vmamba_v0((2, 2, 9, 2), _dims(96), **kwargs)


@register_model("vmamba", _paper(44, 11.2, 83.5, _V0),
                dict(drop_path=0.3))
def vmamba_small(**kwargs):
    return vmamba_v0((2, 2, 27, 2), _dims(96), **kwargs)


@register_model("vmamba", _paper(76, 18.0, 83.7, _V0),
                dict(drop_path=0.5))
def vmamba_base(**kwargs):
    return vmamba_v0((2, 2, 27, 2), _dims(128), **kwargs)


@register_model("vmamba", _paper(31, 4.9, 82.5), dict(drop_path=0.2))
def vmamba_tiny_s2l5(**kwargs):
    return vmamba_v2((2, 2, 5, 2), _dims(96), **kwargs)


@register_model("vmamba", _paper(50, 8.7, 83.6), dict(drop_path=0.3))
def vmamba_small_s2l15(**kwargs):
    return vmamba_v2((2, 2, 15, 2), _dims(96), **kwargs)


@register_model("vmamba", _paper(89, 15.4, 83.9), dict(drop_path=0.6))
def vmamba_base_s2l15(**kwargs):
    return vmamba_v2((2, 2, 15, 2), _dims(128), **kwargs)
