"""VMamba (v0 "vanilla" and v2) on the hierarchical macro.

* v0 (``vmamba_{tiny,small,base}``, d_state 16, no MLP): a VSS block is LN -> in_proj -> (x, z) ->
  3x3 depthwise conv -> SiLU -> SS2D cross-scan (4 directions, one grouped scan) -> cross-merge ->
  LayerNorm -> * SiLU(z) -> out_proj -> + residual. That is exactly :class:`GatedBlock` with act 'silu',
  expansion = ssm_ratio, conv_ratio = ssm_ratio (the whole value path is mixed, no identity part) and
  the 'conv_ssm' mixer (k 3, scan 'cross', out_norm). Macro: :class:`HierarchicalNet` with
  ``stem='patch'`` (4x4 patch embed + LN), ``downsample='merge'`` (patch merging: LN(4C) ->
  Linear(4C, 2C)) and ``head='linear'`` (LN -> mean -> Linear), i.e. :data:`.hierarchical.PATCH_MACRO`.
* v2 (``vmamba_tiny_s2l5``, ``vmamba_small_s2l15``, ``vmamba_base_s2l15``; forward type v05_noz,
  d_state 1): no z gate, so the block is :class:`VSSBlock`: x + SS2D(LN x), then x + MLP(LN x), where
  SS2D = in_proj -> 'conv_ssm' mixer (k 3 without bias, 'cross', out_norm) -> out_proj. Macro: MambaOut's
  own conv stem and 3x3 stride-2 conv downsampling (VMamba v2 = patchembed v2 / downsample v3) with
  the linear head (``stem='conv'``, ``downsample='conv'``, ``head='linear'``).

Differences from the official code (parameter effect < 0.1%): in_proj/out_proj of the gated (v0)
blocks carry biases (GatedBlock's fc1/fc2); LayerNorm eps 1e-6 everywhere.
"""

from __future__ import annotations

import math

import torch
from timm.layers import DropPath
from torch import nn

from ..registry import register_model
from .blocks import GatedBlock, LayerNorm
from .hierarchical import PATCH_MACRO, HierarchicalNet
from .vit import Mlp


class VSSBlock(nn.Module):
    """VMamba v2 block: x + DropPath(out_proj(SS2D(in_proj(LN x)))); x + DropPath(MLP(LN x)).

    SS2D is the 'conv_ssm' mixer (3x3 depthwise conv without bias -> SiLU -> cross-scan SSM -> merge ->
    LN); ``mixer_kwargs`` can change the scan (e.g. ``{'scan': 'atrous'}``). ``mlp_ratio=0``: no MLP.
    """

    def __init__(
        self,
        dim: int,
        ssm_ratio: float = 2.0,
        d_state: int = 1,
        mlp_ratio: float = 4.0,
        mixer: str = "conv_ssm",
        mixer_kwargs: dict | None = None,
        drop_path: float = 0.0,
    ):
        super().__init__()
        from .mixers import build_mixer

        inner = int(dim * ssm_ratio)
        kw = dict(
            kernel_size=3, scan="cross", d_state=d_state, dt_rank=math.ceil(dim / 16), out_norm=True, conv_bias=False
        )
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


def vmamba_v0(depths, dims, ssm_ratio: float = 2.0, d_state: int = 16, scan="cross", **kwargs) -> HierarchicalNet:
    """VMamba v0: gated blocks with the SS2D mixer on the whole value path, the patch macro (see module
    docstring); ``stem=``/``downsample=``/``head=`` override the macro."""
    mixer_kwargs = dict(kernel_size=3, scan=scan, d_state=d_state, dt_rank=1 / (16 * ssm_ratio), out_norm=True)
    block_kwargs = dict(
        mixer="conv_ssm", mixer_kwargs=mixer_kwargs, expansion_ratio=ssm_ratio, conv_ratio=ssm_ratio, act_layer="silu"
    )
    return HierarchicalNet(depths, dims, block=GatedBlock, block_kwargs=block_kwargs, **{**PATCH_MACRO, **kwargs})


def vmamba_v2(
    depths, dims, ssm_ratio: float = 2.0, d_state: int = 1, mlp_ratio: float = 4.0, scan="cross", **kwargs
) -> HierarchicalNet:
    """VMamba v2 (v05_noz): VSS blocks with an MLP, MambaOut's stem and conv downsampling, linear head
    (``head=`` overrides it)."""
    block_kwargs = dict(ssm_ratio=ssm_ratio, d_state=d_state, mlp_ratio=mlp_ratio, mixer_kwargs=dict(scan=scan))
    kwargs.setdefault("head", "linear")
    return HierarchicalNet(
        depths, dims, block=VSSBlock, block_kwargs=block_kwargs, stem="conv", downsample="conv", **kwargs
    )


def _dims(c):
    return (c, 2 * c, 4 * c, 8 * c)


_SRC = "VMamba repo (assets/performance.md); MambaOut paper: same figures"
_V0 = "VMamba repo, v0 row (MambaOut paper lists 22 / 44 / 75M)"


def _paper(params, macs, top1, source=_SRC):
    return dict(params=params, macs=macs, top1=top1, source=source)


@register_model("vmamba", _paper(23, 5.6, 82.2, _V0), dict(drop_path=0.2))
def vmamba_tiny(**kwargs):
    return vmamba_v0((2, 2, 9, 2), _dims(96), **kwargs)


@register_model("vmamba", _paper(44, 11.2, 83.5, _V0), dict(drop_path=0.3))
def vmamba_small(**kwargs):
    return vmamba_v0((2, 2, 27, 2), _dims(96), **kwargs)


@register_model("vmamba", _paper(76, 18.0, 83.7, _V0), dict(drop_path=0.5))
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
