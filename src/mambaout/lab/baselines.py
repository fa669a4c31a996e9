"""Sequence baselines that separate the SSM from its receptive field (issue #17), as lab mixers.

Every baseline is a token mixer for the same GatedBlock stack as the Gated CNN and the SSM pair, so a
stack differs from "Gated CNN + SSM" only in what mixes tokens:

``lab_causal_conv1d`` (kernel K)  the Gated CNN's own mixer (:mod:`.mixers`); with a long kernel it is the
                                   "long causal conv" baseline.
``lab_dilated_conv1d``             a stack of causal depthwise convs (kernel k, dilations 1, k, k^2, ...,
                                   SiLU after each): one mixer reaches (k-1) * sum(dilations) tokens back.
``lab_conv_attention``             the ``mamba1d`` mixer with its SSM swapped for causal softmax attention:
                                   causal conv1d (kernel k) + SiLU, then causal SDPA (the zoo's
                                   ``attention`` mixer with ``causal=True``) over the whole prefix.

:func:`seq_reach` says how many tokens back a stack of ``depth`` blocks sees (None: the whole prefix);
the tests check it against gradients.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..models.blocks import get_act
from ..models.mixers import register_mixer
from ..models.vit import AttentionMixer


def dilations_for(length: int, kernel_size: int) -> list[int]:
    """Dilations 1, k, k^2, ... until one mixer reaches ``length - 1`` tokens back (at least one conv)."""
    if kernel_size < 2:
        raise ValueError(f"a dilated stack needs kernel_size >= 2, got {kernel_size}")
    dil, reach = [1], kernel_size - 1
    while reach < length - 1:
        dil.append(dil[-1] * kernel_size)
        reach += (kernel_size - 1) * dil[-1]
    return dil


def long_kernel_for(length: int, depth: int) -> int:
    """The smallest kernel K with depth * (K - 1) >= length - 1: a conv stack that sees the whole prefix."""
    return max(2, math.ceil((length - 1) / depth) + 1)


@register_mixer("lab_dilated_conv1d")
class DilatedCausalConv1dMixer(nn.Module):
    """Causal depthwise convs with growing dilation over the raster sequence of a (B, H, W, C) map."""

    def __init__(self, dim: int, kernel_size: int = 4, dilations=(1, 4, 16, 64), act_layer="silu"):
        super().__init__()
        self.kernel_size, self.dilations = kernel_size, tuple(int(d) for d in dilations)
        self.convs = nn.ModuleList(nn.Conv1d(dim, dim, kernel_size, dilation=d, groups=dim) for d in self.dilations)
        self.act = get_act(act_layer)()

    @property
    def reach(self) -> int:
        return (self.kernel_size - 1) * sum(self.dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, H, W, C = x.shape
        seq = x.reshape(B, H * W, C).transpose(1, 2)
        for conv, d in zip(self.convs, self.dilations):
            seq = self.act(conv(F.pad(seq, ((self.kernel_size - 1) * d, 0))))
        return seq.transpose(1, 2).reshape(B, H, W, C)

    def extra_repr(self) -> str:
        return f"causal, k={self.kernel_size}, dilations={list(self.dilations)}, reach={self.reach}"


@register_mixer("lab_conv_attention")
class ConvAttentionMixer(nn.Module):
    """``mamba1d`` with attention in place of the SSM: causal conv1d + SiLU, then causal multi-head SDPA."""

    def __init__(self, dim: int, d_conv: int = 4, num_heads: int = 2, act_layer="silu"):
        super().__init__()
        from .mixers import CausalConv1dMixer

        self.conv = CausalConv1dMixer(dim, d_conv, act_layer)
        self.attn = AttentionMixer(dim, num_heads=num_heads, causal=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(self.conv(x))


def seq_reach(kind: str, spec: dict, length: int) -> int | None:
    """Tokens back that output t of a ``kind`` stack depends on (None: every earlier token)."""
    depth, k = spec["depth"], spec.get("kernel_size", 4)
    if kind == "gated_cnn":
        return depth * (k - 1)
    if kind == "long_conv":
        return depth * (spec.get("long_kernel") or long_kernel_for(length, depth)) - depth
    if kind == "dilated_conv":
        dil = spec.get("dilations") or dilations_for(length, k)
        return depth * (k - 1) * sum(dil)
    return None  # ssm, attention: the whole prefix


def reach_text(reach: int | None, length: int) -> str:
    if reach is None or reach >= length - 1:
        return f"all {length - 1}" if reach is None else f"{reach} (≥ all {length - 1})"
    return str(reach)
