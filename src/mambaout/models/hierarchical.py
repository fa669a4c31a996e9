"""The hierarchical 4-stage macro-architecture (MambaOut, Mamba pairs, VMamba-style, hybrids).

stem (stride 4) -> stage 1 -> [downsample -> stage i] x 3 -> head. Each stage is a stack of blocks
built by a per-stage block factory, so a hybrid is just a different factory for the late stages.
Feature maps: strides 4/8/16/32, channels ``dims``.
"""
from __future__ import annotations

from typing import Callable, List, Optional, Sequence, Union

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..errors import InputError
from .blocks import Downsample, GatedBlock, MlpHead, Stem, init_model

BlockFactory = Callable[..., nn.Module]


def _per_stage(value, n: int, what: str) -> list:
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"{what}: expected {n} per-stage values, got {len(value)}")
        return list(value)
    return [value] * n


class Stage(nn.Module):
    def __init__(self, downsample: nn.Module, blocks: List[nn.Module]):
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
        stem_mid_norm: LayerNorm between the two stem convs (official: True; timm _rw: False).
        downsample_norm_first: LN before the stride-2 conv (timm _rw) instead of after (official).
        head_hidden_norm: MambaOut's MLP head (LN after the hidden layer) vs timm's norm-MLP head.
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
        block: Union[BlockFactory, Sequence[BlockFactory]] = GatedBlock,
        block_kwargs: Union[dict, Sequence[dict], None] = None,
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
        blocks_fn = _per_stage(block, n, "block")
        kwargs_per_stage = _per_stage(block_kwargs or {}, n, "block_kwargs")
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.dims = tuple(dims)
        self.features_only = features_only
        self.out_indices = tuple(out_indices)
        self.feature_format = feature_format
        self.size_divisor = stem_stride * 2 ** (n - 1)

        self.stem = Stem(in_chans, dims[0], mid_norm=stem_mid_norm, act_layer=stem_act, stride=stem_stride)
        total = sum(depths)
        rates = [drop_path_rate * j / max(total - 1, 1) for j in range(total)]  # linear over all blocks
        self.stages = nn.Sequential()
        self.feature_info = []
        prev, cursor, stride = dims[0], 0, stem_stride
        for i in range(n):
            if i > 0:
                downsample = Downsample(prev, dims[i], norm_first=downsample_norm_first)
                stride *= 2
            else:
                downsample = nn.Identity()
            stage_blocks = [blocks_fn[i](dims[i], drop_path=rates[cursor + j], **kwargs_per_stage[i])
                            for j in range(depths[i])]
            self.stages.append(Stage(downsample, stage_blocks))
            self.feature_info.append(dict(num_chs=dims[i], reduction=stride, module=f"stages.{i}"))
            prev, cursor = dims[i], cursor + depths[i]
        self.num_features = prev
        if features_only:
            self.head = None
        else:
            self.head = MlpHead(prev, num_classes, mlp_ratio=head_mlp_ratio, hidden_norm=head_hidden_norm,
                                act_layer=head_act, drop_rate=drop_rate)
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
            raise InputError(
                f"input size {h}x{w} is not divisible by {self.size_divisor} (the network's total stride)")

    def forward_stages(self, x: torch.Tensor) -> List[torch.Tensor]:
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
