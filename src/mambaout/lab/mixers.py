"""Token mixers the lab needs that the model zoo does not register (distinct ``lab_*`` names).

``lab_causal_conv1d``   Gated CNN on a 1-D sequence: a causal depthwise conv1d (kernel k, left padding
                        k-1) over the raster order of the (B, H, W, C) map, then an activation. It is
                        the ``mamba1d`` mixer (causal conv1d + SiLU + SSM) with the SSM removed, so a
                        GatedBlock stack with it is "the same stack without the SSM".

The causal 2-D mixers are the zoo's own: ``dwconv(causal=True)`` and ``conv_ssm(causal=True)`` (both
use :func:`mambaout.models.mixers.causal_kernel_mask`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..models.blocks import get_act
from ..models.mixers import register_mixer


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
