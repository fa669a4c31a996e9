"""Token mixers for the conv branch of the gated block.

A token mixer maps a channels-last map (B, H, W, C) to a map of the same shape. The gated block
(`blocks.GatedBlock`) is the same for every family; the mixer on its conv branch decides which model
it is: a depthwise conv gives MambaOut's Gated CNN block, a conv followed by an SSM gives the Mamba
block. New mixers register a name here so presets and model configs can refer to them by string.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

_MIXERS: dict[str, Callable[..., nn.Module]] = {}

MixerSpec = str | dict | Callable[..., nn.Module]


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


def causal_kernel_mask(kernel_size: int) -> torch.Tensor:
    """k x k mask of the taps at or before the centre in raster order: the centre row up to the centre
    and every row above it (a token sees the rows above and the pixels to its left, itself included)."""
    mask = torch.ones(kernel_size, kernel_size)
    centre = kernel_size // 2
    mask[centre, centre + 1 :] = 0
    mask[centre + 1 :, :] = 0
    return mask


@register_mixer("dwconv")
class DepthwiseConvMixer(nn.Conv2d):
    """MambaOut's token mixer: a k x k depthwise conv (with bias) applied to a channels-last map.

    It subclasses Conv2d so its parameters are ``weight``/``bias`` directly under the block's ``conv``
    attribute, which keeps state dicts identical to the official/timm MambaOut layout.
    ``causal=True`` multiplies the kernel by :func:`causal_kernel_mask` (a non-persistent buffer, so the
    state dict is unchanged): a token sees only the rows above and the pixels to its left, for the
    paper's causal-mixing experiments.
    """

    def __init__(self, dim: int, kernel_size: int = 7, causal: bool = False):
        super().__init__(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.causal = causal
        if causal:
            self.register_buffer("causal_mask", causal_kernel_mask(kernel_size), persistent=False)

    def conv_nchw(self, x: torch.Tensor) -> torch.Tensor:
        """The (masked) depthwise conv of a channels-last map, returned channels-first (B, C, H, W)."""
        weight = self.weight * self.causal_mask if self.causal else self.weight
        return self._conv_forward(x.permute(0, 3, 1, 2), weight, self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_nchw(x).permute(0, 2, 3, 1)

    def extra_repr(self) -> str:
        return super().extra_repr() + (", causal" if self.causal else "")


@register_mixer("identity")
class IdentityMixer(nn.Identity):
    """No token mixing at all: the gated block degenerates to a gated MLP (an ablation baseline)."""

    def __init__(self, dim: int):
        super().__init__()
