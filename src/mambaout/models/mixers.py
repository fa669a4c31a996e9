"""Token mixers for the conv branch of the gated block.

A token mixer maps a channels-last map (B, H, W, C) to a map of the same shape. The gated block
(`blocks.GatedBlock`) is the same for every family; the mixer on its conv branch decides which model
it is: a depthwise conv gives MambaOut's Gated CNN block, a conv followed by an SSM gives the Mamba
block. New mixers register a name here so presets and model configs can refer to them by string.
"""
from __future__ import annotations

from typing import Callable, Dict, Union

import torch
from torch import nn

_MIXERS: Dict[str, Callable[..., nn.Module]] = {}

MixerSpec = Union[str, dict, Callable[..., nn.Module]]


def register_mixer(name: str):
    """Class decorator: make a mixer buildable by name (`build_mixer('name', dim, **kw)`)."""

    def wrap(cls):
        if name in _MIXERS:
            raise ValueError(f"token mixer {name!r} is registered twice")
        _MIXERS[name] = cls
        return cls

    return wrap


def list_mixers():
    return sorted(_MIXERS)


def build_mixer(spec: MixerSpec, dim: int, **kwargs) -> nn.Module:
    """Build a mixer from a name, a dict ``{'type': name, **options}`` or a callable ``f(dim, **kw)``."""
    if callable(spec) and not isinstance(spec, str):
        return spec(dim, **kwargs)
    if isinstance(spec, dict):
        spec = dict(spec)
        name = spec.pop("type")
        kwargs = {**spec, **kwargs}
    else:
        name = spec
    if name not in _MIXERS:
        raise ValueError(f"unknown token mixer {name!r}; known: {', '.join(list_mixers())}")
    return _MIXERS[name](dim, **kwargs)


@register_mixer("dwconv")
class DepthwiseConvMixer(nn.Conv2d):
    """MambaOut's token mixer: a k x k depthwise conv (with bias) applied to a channels-last map.

    It subclasses Conv2d so its parameters are ``weight``/``bias`` directly under the block's ``conv``
    attribute, which keeps state dicts identical to the official/timm MambaOut layout.
    ``causal=True`` zeroes the kernel taps after the centre in raster order (a token sees only the rows
    above and the pixels to its left), for the paper's causal-mixing experiments.
    """

    def __init__(self, dim: int, kernel_size: int = 7, causal: bool = False):
        super().__init__(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.causal = causal
        if causal:
            mask = torch.ones(kernel_size, kernel_size)
            centre = kernel_size // 2
            mask[centre, centre + 1:] = 0
            mask[centre + 1:, :] = 0
            self.register_buffer("causal_mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight * self.causal_mask if self.causal else self.weight
        x = x.permute(0, 3, 1, 2)
        x = self._conv_forward(x, weight, self.bias)
        return x.permute(0, 2, 3, 1)


@register_mixer("identity")
class IdentityMixer(nn.Identity):
    """No token mixing at all: the gated block degenerates to a gated MLP (an ablation baseline)."""

    def __init__(self, dim: int):
        super().__init__()
