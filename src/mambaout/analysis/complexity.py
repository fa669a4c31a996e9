"""Params, MACs and per-stage sequence lengths of a model."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..registry import create_model, model_info
from .long_sequence import threshold
from .macs import count_macs


def build_meta(name: str, **kwargs) -> torch.nn.Module:
    """Build a registered model on the meta device: shapes only, instant even for large models."""
    with torch.device("meta"):
        return create_model(name, **kwargs)


def param_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def stage_tokens(model, height: int, width: int) -> list:
    """Per-stage token count L, width D and the paper's ratio L / 6D of the sequences the blocks mix
    (``model.token_stages`` where a model defines it, e.g. plain ViT/Vim: one grid at the patch stride;
    else its ``feature_info``)."""
    rows = []
    for i, info in enumerate(getattr(model, "token_stages", None) or getattr(model, "feature_info", [])):
        h, w = height // info["reduction"], width // info["reduction"]
        L, D = h * w, info["num_chs"]
        rows.append(dict(stage=i + 1, height=h, width=w, tokens=L, dim=D, tau=threshold(D), ratio=L / threshold(D)))
    return rows


def complexity(
    name: str, img_size: Sequence[int] = (224, 224), model: torch.nn.Module | None = None, **model_kwargs
) -> dict:
    """Params (M), MACs (G, fvcore convention) and per-stage L, D, L/(6D) at ``img_size`` (H, W)."""
    info = model_info(name)
    model = model if model is not None else build_meta(name, **model_kwargs)
    h, w = img_size
    if hasattr(model, "check_input"):
        model.check_input(torch.empty(1, getattr(model, "in_chans", 3), h, w, device="meta"))
    counter = count_macs(model, (h, w), device="meta")
    return dict(
        model=name,
        family=info.family,
        height=h,
        width=w,
        params_m=param_count(model) / 1e6,
        macs_g=counter.total / 1e9,
        macs_by_op_g={k: v / 1e9 for k, v in sorted(counter.by_op.items())},
        stages=stage_tokens(model, h, w),
        paper=info.paper,
    )
