"""Token mixers the lab needs that the model zoo does not register (distinct ``lab_*`` names).

``lab_causal_conv1d``   Gated CNN on a 1-D sequence: a causal depthwise conv1d (kernel k, left padding
                        k-1) over the raster order of the (B, H, W, C) map, then an activation. It is
                        the ``mamba1d`` mixer (causal conv1d + SiLU + SSM) with the SSM removed, so a
                        GatedBlock stack with it is "the same stack without the SSM".
``lab_causal_conv_ssm`` the ``conv_ssm`` mixer (k x k depthwise conv, act, SSM over a scan) with the
                        raster-causal kernel mask of ``dwconv(causal=True)``: with the default raster
                        scan the whole mixer sees only earlier tokens.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..models.blocks import get_act
from ..models.mixers import register_mixer
from ..models.ssm import ConvSSMMixer


def causal_kernel_mask(kernel_size: int) -> torch.Tensor:
    """k x k mask keeping the taps at or before the centre in raster order."""
    mask = torch.ones(kernel_size, kernel_size)
    c = kernel_size // 2
    mask[c, c + 1:] = 0
    mask[c + 1:, :] = 0
    return mask


@register_mixer("lab_causal_conv1d")
class CausalConv1dMixer(nn.Module):
    """Causal depthwise conv1d over the raster sequence of a (B, H, W, C) map (+ act)."""

    def __init__(self, dim: int, kernel_size: int = 4, act_layer="silu"):
        super().__init__()
        if kernel_size < 1:
            raise ValueError(f"kernel_size must be >= 1, got {kernel_size}")
        self.kernel_size = kernel_size
        self.conv1d = nn.Conv1d(dim, dim, kernel_size, groups=dim)
        self.act = get_act(act_layer)() if act_layer else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, H, W, C = x.shape
        seq = x.reshape(B, H * W, C).transpose(1, 2)
        seq = self.conv1d(F.pad(seq, (self.kernel_size - 1, 0)))
        return self.act(seq).transpose(1, 2).reshape(B, H, W, C)

    def extra_repr(self) -> str:
        return f"causal, k={self.kernel_size}"


@register_mixer("lab_causal_conv_ssm")
class CausalConvSSMMixer(ConvSSMMixer):
    """``conv_ssm`` whose depthwise kernel is masked to the raster-causal half (centre included)."""

    def __init__(self, dim: int, kernel_size: int = 7, **kwargs):
        super().__init__(dim, kernel_size=kernel_size, **kwargs)
        self.register_buffer("lab_causal_mask", causal_kernel_mask(kernel_size), persistent=False)

    def _conv_forward(self, input, weight, bias):
        return super()._conv_forward(input, weight * self.lab_causal_mask, bias)
