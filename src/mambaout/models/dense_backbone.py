"""A zoo backbone as a dense-prediction trunk: four NCHW maps (strides 4/8/16/32), a LayerNorm on each.

The MambaOut authors add a LayerNorm on every stage output for detection and segmentation
(yuweihao/MambaOut #251); ``stage_norm=False`` drops it. A classification checkpoint (ours, timm's or
the official release) loads into the trunk: its classifier/head keys are dropped first.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import torch
from torch import nn

from ..errors import CheckpointError
from ..registry import create_model
from ..weights import load_state_dict_into, read_state_dict, to_native

log = logging.getLogger("mambaout")

# Keys of a classification checkpoint that a features_only trunk has no place for.
_HEAD_PREFIXES = ("head.", "fc.", "classifier.", "norm_pre.")


class ChannelsFirstLayerNorm(nn.LayerNorm):
    """LayerNorm over C of an NCHW map (eps 1e-6 as the backbone's)."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__(dim, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class DenseBackbone(nn.Module):
    """``forward(x) -> [C1, C2, C3, C4]`` (NCHW), each normalised by its own LayerNorm.

    Attributes: ``channels`` (per output), ``strides``, ``size_divisor`` (input sides must divide by it).
    """

    def __init__(
        self,
        name: str,
        drop_path_rate: float = 0.0,
        out_indices: Sequence[int] = (0, 1, 2, 3),
        stage_norm: bool = True,
        pretrained: str | None = None,
        **model_kwargs,
    ):
        super().__init__()
        self.name = name
        self.body = create_model(
            name,
            features_only=True,
            out_indices=tuple(out_indices),
            feature_format="NCHW",
            drop_path_rate=drop_path_rate,
            **model_kwargs,
        )
        info = self.body.feature_info
        info = [info[i] for i in out_indices] if len(info) != len(out_indices) else info
        self.channels: list[int] = [int(f["num_chs"]) for f in info]
        self.strides: list[int] = [int(f["reduction"]) for f in info]
        self.size_divisor = int(getattr(self.body, "size_divisor", max(self.strides)))
        self.norms = nn.ModuleList([ChannelsFirstLayerNorm(c) if stage_norm else nn.Identity() for c in self.channels])
        if pretrained:
            load_backbone_checkpoint(self, pretrained)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [norm(f) for norm, f in zip(self.norms, self.body(x))]


def strip_head(state_dict) -> dict:
    """A classification state dict without its classifier (and any pre-logits head)."""
    native = to_native(state_dict)
    return {k: v for k, v in native.items() if not k.startswith(_HEAD_PREFIXES)}


def load_backbone_checkpoint(backbone: DenseBackbone, path: str) -> DenseBackbone:
    """Load a classification checkpoint (or a trunk-only one) into ``backbone.body``.

    Also accepts a whole dense-model checkpoint whose keys start with ``backbone.body.``.
    """
    path = os.fspath(path)
    state = read_state_dict(path)
    for prefix in ("backbone.body.", "body."):
        if any(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            break
    n_all = len(to_native(state))
    state = strip_head(state)
    if not state:
        raise CheckpointError(f"checkpoint {path!r}: no backbone weights left after dropping the classifier")
    load_state_dict_into(backbone.body, state, source=f"checkpoint {path!r}")  # every trunk key, shapes checked
    log.info(
        "loaded backbone weights from %s: %d tensors, every one of the trunk's; %d classifier tensors dropped",
        path,
        len(state),
        n_all - len(state),
    )
    return backbone
