"""LocalMamba: ``localvim_{tiny,small}`` (isotropic) and ``localvmamba_{tiny,small}`` (hierarchical).

Each layer scans 4 directions chosen from h, v, w2, w7 and their flips; every direction has its own
causal conv1d, x_proj, dt_proj, A_log and D (one grouped scan), in_proj/out_proj are shared, and one
SE-style channel gate (BiAttn, reduction 1/8) is applied to each re-aligned branch before the branches
are summed: the 'multiscan' mixer inside a GatedBlock (act 'silu', expansion 2, conv_ratio 2).

Directions: the official models hard-code per-layer lists found by their search; those lists are not
reproduced here. The default is the same 4 directions in every layer (h, h_flip, w7, w7_flip, i.e.
``scan='local'``); ``scan=`` takes a preset, a direction list, or a list of per-layer direction lists
(isotropic) / per-stage lists (hierarchical). Params and MACs do not depend on the choice.

Approximations: the SiLU(z) gate is applied after the branch sum (official: inside each branch,
before BiAttn); LocalVim's RoPE and middle class token are omitted (mean-pooled head);
LocalVMamba's blocks sit in our VMamba v0 macro (HierarchicalNet with ``PATCH_MACRO``: patch embed,
patch merging, linear head).
"""

from __future__ import annotations

from ..registry import register_model
from .blocks import GatedBlock
from .hierarchical import PATCH_MACRO, HierarchicalNet
from .isotropic import IsotropicNet


def _block_kwargs(scan, d_state, dt_rank):
    return dict(
        mixer="multiscan",
        mixer_kwargs=dict(scan=scan, d_state=d_state, dt_rank=dt_rank),
        expansion_ratio=2,
        conv_ratio=2,
        act_layer="silu",
    )


def _per(scan, n):
    """One scan spec per layer/stage: a list of lists is taken as per-layer, anything else repeated."""
    if isinstance(scan, (list, tuple)) and scan and isinstance(scan[0], (list, tuple)):
        if len(scan) != n:
            raise ValueError(f"expected {n} per-layer scan lists, got {len(scan)}")
        return list(scan)
    return [scan] * n


def localvim(dim: int, depth: int = 20, scan="local", d_state: int = 16, **kwargs):
    bk = [_block_kwargs(s, d_state, 1 / 32) for s in _per(scan, depth)]
    return IsotropicNet(depth, dim, GatedBlock, bk, patch_size=16, **kwargs)


def localvmamba(depths, dims, scan="local", d_state: int = 16, **kwargs):
    bk = [_block_kwargs(s, d_state, 1 / 32) for s in _per(scan, len(depths))]
    return HierarchicalNet(depths, dims, block=GatedBlock, block_kwargs=bk, **{**PATCH_MACRO, **kwargs})


_SRC = "LocalMamba README / MambaOut paper"


@register_model("localmamba", dict(params=8, macs=1.5, top1=76.2, source=_SRC), dict(drop_path=0.1))
def localvim_tiny(**kwargs):
    return localvim(192, **kwargs)


@register_model("localmamba", dict(params=28, macs=4.8, top1=81.2, source=_SRC), dict(drop_path=0.1))
def localvim_small(**kwargs):
    return localvim(384, **kwargs)


@register_model("localmamba", dict(params=26, macs=5.7, top1=82.7, source=_SRC), dict(drop_path=0.2))
def localvmamba_tiny(**kwargs):
    return localvmamba((2, 2, 9, 2), (96, 192, 384, 768), **kwargs)


@register_model("localmamba", dict(params=50, macs=11.4, top1=83.7, source=_SRC), dict(drop_path=0.3))
def localvmamba_small(**kwargs):
    return localvmamba((2, 2, 27, 2), (96, 192, 384, 768), **kwargs)
