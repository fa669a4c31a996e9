"""The plain (isotropic) macro-architecture: ViT/DeiT, Vim, LocalVim, PlainMamba.

patch embed (stride p) -> + absolute position embedding -> N blocks at one resolution -> LayerNorm ->
global average pool -> Linear. Tokens stay a channels-last map (B, H/p, W/p, C) so every token mixer
of :mod:`.mixers` works unchanged. There is no class token: the head averages the tokens (Vim's
``final_pool_type='mean'``; DeiT's class token is left out, see docs/models_ssm.md).

Dense features (``features_only=True``): the outputs of 4 evenly spaced blocks (after blocks
depth/4, depth/2, 3·depth/4 and the last; the last one is final-normed) are resampled without
parameters to strides 4/8/16/32 for p = 16 (bilinear x4, bilinear x2, identity, 2x2 max-pool), as in
ViTDet's simple feature pyramid minus its convs. ``feature_info`` reports those strides.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..errors import InputError
from .blocks import LayerNorm, PatchEmbed, init_model, linear_classifier

FEATURE_STRIDES = (4, 8, 16, 32)


class IsotropicNet(nn.Module):
    """Plain network of ``depth`` blocks at width ``dim``.

    Args:
        block: block factory called as ``block(dim, drop_path=rate, **kwargs)``; ``block_kwargs`` is a
            dict or one dict per block (e.g. LocalMamba's per-layer scan directions).
        patch_embed: module factory ``f(in_chans, dim)`` replacing the default p x p conv (its total
            stride must be ``patch_size``).
        img_size: size the position embedding is laid out for (resized bicubically for other sizes).
        extra_blocks: optional ``{index: factory(dim)}`` modules run right after block ``index``
            (PlainMamba-L1's depthwise conv after layer 0).
    """

    def __init__(
        self,
        depth: int,
        dim: int,
        block: Callable[..., nn.Module],
        block_kwargs: dict | Sequence[dict] | None = None,
        patch_size: int = 16,
        img_size: int = 224,
        in_chans: int = 3,
        num_classes: int = 1000,
        pos_embed: bool = True,
        patch_embed: Callable[..., nn.Module] | None = None,
        extra_blocks: dict | None = None,
        drop_path_rate: float = 0.0,
        drop_rate: float = 0.0,
        features_only: bool = False,
        out_indices: Sequence[int] = (0, 1, 2, 3),
        feature_format: str = "NCHW",
    ):
        super().__init__()
        if feature_format not in ("NCHW", "NHWC"):
            raise ValueError(f"feature_format must be 'NCHW' or 'NHWC', got {feature_format!r}")
        kw = block_kwargs or {}
        kws = list(kw) if isinstance(kw, (list, tuple)) else [kw] * depth
        if len(kws) != depth:
            raise ValueError(f"block_kwargs: expected {depth} per-block dicts, got {len(kws)}")
        self.num_classes, self.in_chans, self.patch_size = num_classes, in_chans, patch_size
        self.dim = self.num_features = dim
        self.depth = depth
        self.features_only, self.out_indices, self.feature_format = features_only, tuple(out_indices), feature_format
        self.size_divisor = patch_size
        self.grad_checkpointing = False

        if patch_embed is not None:
            self.patch_embed = patch_embed(in_chans, dim)
        else:
            self.patch_embed = PatchEmbed(in_chans, dim, patch_size)
        self.grid = (img_size // patch_size, img_size // patch_size)
        self.pos_embed = nn.Parameter(torch.zeros(1, *self.grid, dim)) if pos_embed else None
        self.pos_drop = nn.Dropout(drop_rate)
        rates = [drop_path_rate * j / max(depth - 1, 1) for j in range(depth)]
        self.blocks = nn.Sequential(*[block(dim, drop_path=rates[j], **kws[j]) for j in range(depth)])
        self.extra = nn.ModuleDict({str(k): f(dim) for k, f in (extra_blocks or {}).items()})
        self.norm = LayerNorm(dim)
        self.feature_blocks = sorted({max(depth * (i + 1) // 4 - 1, 0) for i in range(4)})
        if len(self.feature_blocks) != 4:
            raise ValueError(f"features need depth >= 4, got {depth}")
        self.feature_info = [
            dict(num_chs=dim, reduction=s, module=f"blocks.{b}") for s, b in zip(FEATURE_STRIDES, self.feature_blocks)
        ]
        # What the blocks actually mix (for the long-sequence analysis): one grid at the patch stride.
        self.token_stages = [dict(num_chs=dim, reduction=patch_size, module="blocks")]
        if features_only:
            self.head_drop, self.head = None, None
        else:
            self.head_drop = nn.Dropout(drop_rate)
            self.head = linear_classifier(dim, num_classes)

        def init_pos_embed():
            if self.pos_embed is not None:
                nn.init.trunc_normal_(self.pos_embed, std=0.02)

        init_model(self, init_pos_embed)

    # --- timm-style API ---------------------------------------------------------------------------
    def set_grad_checkpointing(self, enable: bool = True):
        self.grad_checkpointing = enable

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int):
        if self.features_only:
            raise RuntimeError("a features_only model has no classifier")
        self.num_classes = num_classes
        self.head = linear_classifier(self.dim, num_classes)

    def check_input(self, x: torch.Tensor):
        if x.ndim != 4 or x.shape[1] != self.in_chans:
            raise InputError(f"expected input of shape (B, {self.in_chans}, H, W), got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        if h % self.size_divisor or w % self.size_divisor:
            raise InputError(f"input size {h}x{w} is not divisible by the patch size {self.size_divisor}")

    def _pos(self, h: int, w: int) -> torch.Tensor:
        pos = self.pos_embed
        if (h, w) != self.grid:
            pos = F.interpolate(pos.permute(0, 3, 1, 2), size=(h, w), mode="bicubic", align_corners=False).permute(
                0, 2, 3, 1
            )
        return pos

    def forward_blocks(self, x: torch.Tensor, collect: Sequence[int] = ()) -> tuple:
        """Run embed + blocks; returns (final normed map, [maps after the blocks in ``collect``])."""
        self.check_input(x)
        x = self.patch_embed(x)
        if self.pos_embed is not None:
            x = x + self._pos(x.shape[1], x.shape[2])
        x = self.pos_drop(x)
        outs = []
        for j, blk in enumerate(self.blocks):
            if self.grad_checkpointing and torch.is_grad_enabled():
                x = checkpoint(blk, x, use_reentrant=False)
            else:
                x = blk(x)
            if str(j) in self.extra:
                x = self.extra[str(j)](x)
            if j in collect:
                outs.append(x)
        x = self.norm(x)
        if collect and collect[-1] == self.depth - 1:
            outs[-1] = x
        return x, outs

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Final normed token map (B, H/p, W/p, C), channels-last."""
        return self.forward_blocks(x)[0]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(x.mean((1, 2)))
        return x if pre_logits else self.head(x)

    def _resample(self, f: torch.Tensor, stride: int) -> torch.Tensor:
        """NCHW map at stride p -> stride ``stride`` without parameters."""
        p = self.patch_size
        if stride < p:
            return F.interpolate(f, scale_factor=p // stride, mode="bilinear", align_corners=False)
        if stride > p:
            k = stride // p
            return F.max_pool2d(f, k, k, ceil_mode=True)
        return f

    def forward(self, x: torch.Tensor):
        if not self.features_only:
            return self.forward_head(self.forward_features(x))
        _, outs = self.forward_blocks(x, self.feature_blocks)
        feats = []
        for i in self.out_indices:
            f = self._resample(outs[i].permute(0, 3, 1, 2), FEATURE_STRIDES[i])
            feats.append(f.contiguous() if self.feature_format == "NCHW" else f.permute(0, 2, 3, 1))
        return feats
