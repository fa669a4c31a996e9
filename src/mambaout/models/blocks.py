"""Blocks shared by every model family: the gated block, stems, downsampling and heads.

Stems: :class:`Stem` (MambaOut's two 3x3 convs), :class:`PatchEmbed` / :class:`PatchEmbedStem` (p x p
patch conv, ViT / Swin / VMamba v0). Downsampling: :class:`Downsample` (3x3 stride-2 conv + LN) or
:class:`PatchMerging` (Swin / VMamba v0). Heads: :class:`MlpHead` (MambaOut) or :class:`LinearHead`
(LN -> mean -> Linear, VMamba / Swin).

Channels-last (B, H, W, C) throughout; every LayerNorm uses eps 1e-6 as in the official MambaOut.
Attribute names follow timm's MambaOut so state dicts match timm's layout key for key.
"""

from __future__ import annotations

from collections import OrderedDict
from functools import partial

import torch
from timm.layers import DropPath, LayerScale
from torch import nn

from ..ops.gated_triton import gated_dwconv, use_fused
from .mixers import DepthwiseConvMixer, MixerSpec, build_mixer

LayerNorm = partial(nn.LayerNorm, eps=1e-6)

_ACTS = {"gelu": nn.GELU, "silu": nn.SiLU, "relu": nn.ReLU}


def get_act(act) -> type:
    """Activation class from a name ('gelu', 'silu', 'relu') or a class."""
    if isinstance(act, str):
        if act not in _ACTS:
            raise ValueError(f"unknown activation {act!r}; known: {', '.join(_ACTS)}")
        return _ACTS[act]
    return act


class GatedBlock(nn.Module):
    """The Gated CNN block, with the token mixer of its conv branch left open.

        x -> LN -> fc1 -> split(g, i, c) -> fc2(act(g) * cat(i, mixer(c))) -> LayerScale -> DropPath -> + x

    g: gate (hidden channels), i: identity part (hidden - c), c: the part that is token-mixed
    (c = conv_ratio * dim; InceptionNeXt-style partial mixing). With ``mixer='dwconv'`` this is
    MambaOut's block; with a conv+SSM mixer it is the Mamba block ("Mamba = Gated CNN + SSM").

    ``fused`` (attribute, see :func:`set_fused`): with the depthwise-conv mixer and a GELU / SiLU / ReLU gate,
    ``act(g) * cat(i, conv(c))`` runs as one Triton op (:mod:`mambaout.ops.gated_triton`); None (default) lets
    ``use_fused`` decide (CUDA yes, CPU no, env ``MAMBAOUT_FUSED=0/1``), False: the reference ops, True: fused.
    """

    fused: bool | None = None

    def __init__(
        self,
        dim: int,
        mixer: MixerSpec = "dwconv",
        mixer_kwargs: dict | None = None,
        expansion_ratio: float = 8 / 3,
        conv_ratio: float = 1.0,
        act_layer="gelu",
        ls_init_value: float | None = None,
        drop_path: float = 0.0,
    ):
        super().__init__()
        hidden = int(expansion_ratio * dim)
        conv_channels = int(conv_ratio * dim)
        if not 0 < conv_channels <= hidden:
            raise ValueError(f"conv_ratio {conv_ratio} gives {conv_channels} mixed channels, outside (0, {hidden}]")
        self.norm = LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden * 2)
        self.act = get_act(act_layer)()
        self.split_indices = (hidden, hidden - conv_channels, conv_channels)
        self.conv = build_mixer(mixer, conv_channels, **(mixer_kwargs or {}))  # the token mixer
        self.fc2 = nn.Linear(hidden, dim)
        self.ls = LayerScale(dim, ls_init_value) if ls_init_value is not None else nn.Identity()
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop_path(self.ls(self.fc2(self.gate(self.fc1(self.norm(x)))))) + x

    def gate(self, h: torch.Tensor) -> torch.Tensor:
        """fc1's output -> fc2's input: ``act(g) * cat(i, mixer(c))``, one fused op when :attr:`fused` allows."""
        if self.fused is not False and use_fused(h, self.fused) and (act := self._fused_act()) is not None:
            conv = self.conv
            weight = conv.weight * conv.causal_mask if conv.causal else conv.weight
            return gated_dwconv(h, weight, conv.bias, self.split_indices[1], act)
        g, i, c = torch.split(h, self.split_indices, dim=-1)
        return self.act(g) * torch.cat((i, self.conv(c)), dim=-1)

    def _fused_act(self) -> str | None:
        """The fused kernels' name of this block's gate activation, or None if they cannot stand in for it."""
        if self.fused is False or type(self.conv) is not DepthwiseConvMixer or self.conv.kernel_size[0] % 2 == 0:
            return None
        a = self.act
        if type(a) is nn.GELU:
            return "gelu" if a.approximate == "none" else None
        return {nn.SiLU: "silu", nn.ReLU: "relu"}.get(type(a))


def set_fused(model: nn.Module, fused: bool | None) -> nn.Module:
    """Set every GatedBlock's ``fused`` switch (True, False, or None: automatic) and return the model."""
    for m in model.modules():
        if isinstance(m, GatedBlock):
            m.fused = fused
    return model


class Stem(nn.Module):
    """Two 3x3 stride-2 convs (overall stride 4): conv -> [LN] -> act -> conv -> LN. NCHW in, NHWC out."""

    def __init__(self, in_chans: int, out_chs: int, mid_norm: bool = True, act_layer="gelu", stride: int = 4):
        super().__init__()
        if stride not in (1, 2, 4):
            raise ValueError(f"stem stride must be 1, 2 or 4, got {stride}")
        s1, s2 = {4: (2, 2), 2: (2, 1), 1: (1, 1)}[stride]
        self.conv1 = nn.Conv2d(in_chans, out_chs // 2, 3, stride=s1, padding=1)
        self.norm1 = LayerNorm(out_chs // 2) if mid_norm else None
        self.act = get_act(act_layer)()
        self.conv2 = nn.Conv2d(out_chs // 2, out_chs, 3, stride=s2, padding=1)
        self.norm2 = LayerNorm(out_chs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        if self.norm1 is not None:
            x = self.norm1(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        x = self.conv2(self.act(x))
        return self.norm2(x.permute(0, 2, 3, 1))


class Downsample(nn.Module):
    """3x3 stride-2 conv, then LN (official MambaOut); ``norm_first=True``: LN on the input first (timm _rw)."""

    def __init__(self, in_chs: int, out_chs: int, norm_first: bool = False):
        super().__init__()
        self.norm_first = norm_first
        if norm_first:
            self.norm = LayerNorm(in_chs)
        self.conv = nn.Conv2d(in_chs, out_chs, 3, stride=2, padding=1)
        if not norm_first:
            self.norm = LayerNorm(out_chs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.norm_first:
            x = self.norm(x)
        x = self.conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return x if self.norm_first else self.norm(x)


class PatchEmbed(nn.Module):
    """Non-overlapping p x p stride-p conv (ViT); NCHW in, NHWC out; optional LayerNorm."""

    def __init__(self, in_chans: int, dim: int, patch_size: int = 16, norm: bool = False):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, patch_size, stride=patch_size)
        self.norm = LayerNorm(dim) if norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x).permute(0, 2, 3, 1))


class PatchEmbedStem(PatchEmbed):
    """p x p stride-p conv -> LN (Swin / VMamba v0 stem, p = 4). NCHW in, NHWC out."""

    def __init__(self, in_chans: int, dim: int, patch_size: int = 4):
        super().__init__(in_chans, dim, patch_size, norm=True)


class PatchMerging(nn.Module):
    """2x2 neighbourhood concat -> LN(4C) -> Linear(4C, out, no bias) (Swin / VMamba v0). NHWC.

    Odd H or W is zero-padded to even first.
    """

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


def linear_classifier(in_features: int, num_classes: int) -> nn.Module:
    """Linear(in_features, num_classes), or Identity when ``num_classes`` is 0 (no classifier)."""
    return nn.Linear(in_features, num_classes) if num_classes > 0 else nn.Identity()


class MlpHead(nn.Module):
    """pool -> LN -> Linear(C, ratio*C) -> act -> [LN] -> dropout -> Linear(ratio*C, classes).

    ``hidden_norm=True`` is MambaOut's head; ``False`` is timm's norm-MLP head used by the _rw models.
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        mlp_ratio: float = 4,
        hidden_norm: bool = True,
        act_layer="gelu",
        drop_rate: float = 0.0,
    ):
        super().__init__()
        hidden = int(mlp_ratio * in_features)
        self.norm = LayerNorm(in_features)
        layers = [("fc", nn.Linear(in_features, hidden)), ("act", get_act(act_layer)())]
        if hidden_norm:
            layers.append(("norm", LayerNorm(hidden)))
        self.pre_logits = nn.Sequential(OrderedDict(layers))
        self.num_features = hidden
        self.head_dropout = nn.Dropout(drop_rate)
        self.fc = linear_classifier(hidden, num_classes)

    def reset(self, num_classes: int):
        self.fc = linear_classifier(self.num_features, num_classes)

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.pre_logits(self.norm(x.mean((1, 2))))
        x = self.head_dropout(x)
        return x if pre_logits else self.fc(x)


class LinearHead(nn.Module):
    """LN -> global mean -> dropout -> Linear (VMamba / Swin head). Same API as ``MlpHead``."""

    def __init__(self, in_features: int, num_classes: int, drop_rate: float = 0.0):
        super().__init__()
        self.num_features = in_features
        self.norm = LayerNorm(in_features)
        self.head_dropout = nn.Dropout(drop_rate)
        self.fc = linear_classifier(in_features, num_classes)

    def reset(self, num_classes: int):
        self.fc = linear_classifier(self.num_features, num_classes)

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_dropout(self.norm(x).mean((1, 2)))
        return x if pre_logits else self.fc(x)


def init_weights(m: nn.Module):
    """Official MambaOut init: trunc-normal(0.02) conv/linear weights, zero biases; norms keep defaults."""
    if isinstance(m, (nn.Conv2d, nn.Linear, nn.Conv1d)):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def init_model(model: nn.Module, extra_init=None):
    """Initialise a whole network: the generic init on every conv/linear, then ``extra_init()`` (e.g. position
    embeddings), then each submodule's own ``post_init()`` (SSM dt/A/D), which must win over the generic init."""
    model.apply(init_weights)
    if extra_init is not None:
        extra_init()
    for m in model.modules():
        if m is not model and hasattr(m, "post_init"):
            m.post_init()
