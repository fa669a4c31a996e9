"""Attention mixer, transformer block and the DeiT-like ViTs (patch 16) on the isotropic macro.

``causal=True`` makes every token attend only to itself and the tokens before it in raster order
(``F.scaled_dot_product_attention(is_causal=True)``): the MambaOut paper's causal-mode experiment,
where ViT-S in causal mode loses accuracy — evidence that image classification does not want the
causal token mixing that a recurrent SSM imposes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import DropPath
from torch import nn

from ..registry import register_model
from .blocks import LayerNorm, get_act
from .isotropic import IsotropicNet
from .mixers import register_mixer


@register_mixer("attention")
class AttentionMixer(nn.Module):
    """Multi-head self-attention over all H*W tokens of a (B, H, W, C) map.

    ``num_heads`` or ``head_dim`` (default 32 per head when neither is given) sets the heads.
    ``causal``: raster-order causal mask.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = None,
        head_dim: int = 32,
        causal: bool = False,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
    ):
        super().__init__()
        self.num_heads = num_heads or max(dim // head_dim, 1)
        if dim % self.num_heads:
            raise ValueError(f"dim {dim} is not divisible by {self.num_heads} heads")
        self.causal, self.attn_drop = causal, attn_drop
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, H, W, C = x.shape
        qkv = self.qkv(x.reshape(B, H * W, C)).view(B, H * W, 3, self.num_heads, C // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=self.causal, dropout_p=self.attn_drop if self.training else 0.0
        )
        return self.proj(y.transpose(1, 2).reshape(B, H, W, C))

    def extra_repr(self) -> str:
        return f"heads={self.num_heads}, causal={self.causal}"


class Mlp(nn.Module):
    """Linear -> act -> Linear (channels-last)."""

    def __init__(self, dim: int, hidden: int, act_layer="gelu"):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = get_act(act_layer)()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class TransformerBlock(nn.Module):
    """Pre-norm transformer block: x + attn(LN x); x + MLP(LN x) (DeiT)."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        causal: bool = False,
        qkv_bias: bool = True,
        act_layer="gelu",
        drop_path: float = 0.0,
    ):
        super().__init__()
        self.norm1 = LayerNorm(dim)
        self.attn = AttentionMixer(dim, num_heads=num_heads, causal=causal, qkv_bias=qkv_bias)
        self.norm2 = LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def vit(
    depth: int, dim: int, num_heads: int, causal: bool = False, mlp_ratio: float = 4.0, patch_size: int = 16, **kwargs
) -> IsotropicNet:
    """A DeiT-style ViT on the isotropic macro (mean-pooled, no class token)."""
    return IsotropicNet(
        depth,
        dim,
        TransformerBlock,
        dict(num_heads=num_heads, mlp_ratio=mlp_ratio, causal=causal),
        patch_size=patch_size,
        **kwargs,
    )


def _paper(params, macs, top1):
    return dict(params=params, macs=macs, top1=top1, source="DeiT paper (as listed in the MambaOut paper)")


@register_model("vit", _paper(5.7, 1.3, 72.2), dict(drop_path=0.0))
def vit_tiny(causal: bool = False, **kwargs):
    return vit(12, 192, 3, causal=causal, **kwargs)


@register_model("vit", _paper(22.1, 4.6, 79.8), dict(drop_path=0.1))
def vit_small(causal: bool = False, **kwargs):
    return vit(12, 384, 6, causal=causal, **kwargs)


@register_model("vit", _paper(86.6, 17.5, 81.8), dict(drop_path=0.1))
def vit_base(causal: bool = False, **kwargs):
    return vit(12, 768, 12, causal=causal, **kwargs)
