"""The hierarchical 4-stage macro-architecture (MambaOut, Mamba pairs, VMamba-style, hybrids).

stem (stride 4) -> stage 1 -> [downsample -> stage i] x 3 -> head. Each stage is a stack of blocks
built by a per-stage block factory, so a hybrid is just a different factory for the late stages.
Feature maps: strides 4/8/16/32, channels ``dims``.

The stem, downsampling and head are options: MambaOut's (``stem='conv'``, ``downsample='conv'``,
``head='mlp'``, the defaults) or Swin / VMamba v0's (``'patch'``, ``'merge'``, ``'linear'``;
:data:`PATCH_MACRO`). VMamba v2 mixes them (conv stem and downsampling, linear head).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..errors import InputError
from .blocks import Downsample, GatedBlock, LinearHead, MlpHead, PatchEmbedStem, PatchMerging, Stem, init_model

BlockFactory = Callable[..., nn.Module]

STEMS, DOWNSAMPLES, HEADS = ("conv", "patch"), ("conv", "merge"), ("mlp", "linear")

# Swin / VMamba v0 macro: 4x4 patch embed + LN, patch-merging downsampling, LN -> mean -> Linear head.
PATCH_MACRO = dict(stem="patch", downsample="merge", head="linear")


def _check_choice(what: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"HierarchicalNet: {what} must be one of {', '.join(map(repr, choices))}, got {value!r}")


def _per_stage(value, n: int, what: str) -> list:
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"{what}: expected {n} per-stage values, got {len(value)}")
        return list(value)
    return [value] * n


class Stage(nn.Module):
    def __init__(self, downsample: nn.Module, blocks: list[nn.Module]):
        super().__init__()
        self.downsample = downsample
        self.blocks = nn.Sequential(*blocks)
        self.grad_checkpointing = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.downsample(x)
        if self.grad_checkpointing and torch.is_grad_enabled():
            for block in self.blocks:
                x = checkpoint(block, x, use_reentrant=False)
            return x
        return self.blocks(x)


class HierarchicalNet(nn.Module):
    """A 4-stage channels-last network; every family here is a configuration of it.

    Args:
        depths, dims: blocks and channels per stage.
        block: block class/factory, or one per stage (default: the gated block). It is called as
            ``block(dim, drop_path=rate, **block_kwargs[stage])``.
        block_kwargs: dict, or one dict per stage (e.g. ``{'mixer': 'dwconv', 'act_layer': 'silu'}``).
        stem: 'conv' (MambaOut's two 3x3 convs, :class:`Stem`) or 'patch' (``stem_stride`` x
            ``stem_stride`` patch conv + LN, :class:`PatchEmbedStem`; Swin / VMamba v0).
        downsample: 'conv' (3x3 stride-2 conv + LN, :class:`Downsample`) or 'merge'
            (:class:`PatchMerging`: 2x2 concat -> LN -> Linear; Swin / VMamba v0).
        head: 'mlp' (:class:`MlpHead`, MambaOut) or 'linear' (:class:`LinearHead`: LN -> mean ->
            Linear; VMamba / Swin).
        stem_act, stem_mid_norm: the conv stem's activation and its LayerNorm between the two convs
            (official: True; timm _rw: False). Not used by the patch stem.
        downsample_norm_first: LN before the stride-2 conv (timm _rw) instead of after (official);
            'conv' downsampling only.
        head_hidden_norm, head_act, head_mlp_ratio: the MLP head's options (``head_hidden_norm``:
            MambaOut's head with LN after the hidden layer vs timm's norm-MLP head); 'mlp' only.
        features_only: forward returns the 4 stage maps (list) instead of logits; no head is built.
        out_indices: which stages features_only returns.
        feature_format: 'NCHW' (default, what detection/segmentation heads expect) or 'NHWC'.
    """

    def __init__(
        self,
        depths: Sequence[int] = (3, 3, 9, 3),
        dims: Sequence[int] = (96, 192, 384, 576),
        num_classes: int = 1000,
        in_chans: int = 3,
        block: BlockFactory | Sequence[BlockFactory] = GatedBlock,
        block_kwargs: dict | Sequence[dict] | None = None,
        stem: str = "conv",
        downsample: str = "conv",
        head: str = "mlp",
        stem_act="gelu",
        stem_mid_norm: bool = True,
        stem_stride: int = 4,
        downsample_norm_first: bool = False,
        head_hidden_norm: bool = True,
        head_act="gelu",
        head_mlp_ratio: float = 4,
        drop_path_rate: float = 0.0,
        drop_rate: float = 0.0,
        features_only: bool = False,
        out_indices: Sequence[int] = (0, 1, 2, 3),
        feature_format: str = "NCHW",
    ):
        super().__init__()
        n = len(depths)
        if len(dims) != n:
            raise ValueError(f"depths has {n} stages but dims has {len(dims)}")
        if feature_format not in ("NCHW", "NHWC"):
            raise ValueError(f"feature_format must be 'NCHW' or 'NHWC', got {feature_format!r}")
        _check_choice("stem", stem, STEMS)
        _check_choice("downsample", downsample, DOWNSAMPLES)
        _check_choice("head", head, HEADS)
        blocks_fn = _per_stage(block, n, "block")
        kwargs_per_stage = _per_stage(block_kwargs or {}, n, "block_kwargs")
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.dims = tuple(dims)
        self.features_only = features_only
        self.out_indices = tuple(out_indices)
        self.feature_format = feature_format
        self.size_divisor = stem_stride * 2 ** (n - 1)

        if stem == "patch":
            self.stem = PatchEmbedStem(in_chans, dims[0], patch_size=stem_stride)
        else:
            self.stem = Stem(in_chans, dims[0], mid_norm=stem_mid_norm, act_layer=stem_act, stride=stem_stride)
        total = sum(depths)
        rates = [drop_path_rate * j / max(total - 1, 1) for j in range(total)]  # linear over all blocks
        self.stages = nn.Sequential()
        self.feature_info = []
        prev, cursor, stride = dims[0], 0, stem_stride
        for i in range(n):
            if i == 0:
                down = nn.Identity()
            else:
                stride *= 2
                if downsample == "merge":
                    down = PatchMerging(prev, dims[i])
                else:
                    down = Downsample(prev, dims[i], norm_first=downsample_norm_first)
            stage_blocks = [
                blocks_fn[i](dims[i], drop_path=rates[cursor + j], **kwargs_per_stage[i]) for j in range(depths[i])
            ]
            self.stages.append(Stage(down, stage_blocks))
            self.feature_info.append(dict(num_chs=dims[i], reduction=stride, module=f"stages.{i}"))
            prev, cursor = dims[i], cursor + depths[i]
        self.num_features = prev
        if features_only:
            self.head = None
        elif head == "linear":
            self.head = LinearHead(prev, num_classes, drop_rate=drop_rate)
        else:
            self.head = MlpHead(
                prev,
                num_classes,
                mlp_ratio=head_mlp_ratio,
                hidden_norm=head_hidden_norm,
                act_layer=head_act,
                drop_rate=drop_rate,
            )
        init_model(self)

    # --- API shared with timm -------------------------------------------------------------------
    def set_grad_checkpointing(self, enable: bool = True):
        for stage in self.stages:
            stage.grad_checkpointing = enable

    def get_classifier(self) -> nn.Module:
        return self.head.fc

    def reset_classifier(self, num_classes: int):
        if self.head is None:
            raise RuntimeError("a features_only model has no classifier")
        self.num_classes = num_classes
        self.head.reset(num_classes)

    def check_input(self, x: torch.Tensor):
        if x.ndim != 4 or x.shape[1] != self.in_chans:
            raise InputError(f"expected input of shape (B, {self.in_chans}, H, W), got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        if h % self.size_divisor or w % self.size_divisor:
            raise InputError(f"input size {h}x{w} is not divisible by {self.size_divisor} (the network's total stride)")

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """All stage outputs, channels-last."""
        self.check_input(x)
        x = self.stem(x)
        outs = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return outs

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Unpooled last-stage map (B, H/32, W/32, C), channels-last (as timm)."""
        return self.forward_stages(x)[-1]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor):
        if self.features_only:
            feats = self.forward_stages(x)
            feats = [feats[i] for i in self.out_indices]
            if self.feature_format == "NCHW":
                feats = [f.permute(0, 3, 1, 2).contiguous() for f in feats]
            return feats
        return self.forward_head(self.forward_features(x))
