"""MambaOut + SSM pairs: ``mamba_{femto,kobe,tiny,small,base}``, MambaOut's network with the SSM put back.

MambaOut's thesis is "Mamba block = Gated CNN block + SSM". These models put the SSM back: every
block is MambaOut's GatedBlock with the 'conv_ssm' mixer (the same 7x7 depthwise conv with bias, then
SiLU and a selective SSM, d_state 16, dt_rank ceil(c/16), on the c = conv_ratio*C mixed channels).
Stem, stages, widths, gate (GELU), head and init are MambaOut's, so ``mamba_tiny``'s state dict is
``mambaout_tiny``'s plus ``*.conv.ssm.*`` (tested).

Scan order: ``scan='raster'`` by default — a single row-major sequence, i.e. the 1-D Mamba of the
paper's "Mamba = Gated CNN + SSM" argument (causal along the raster order except for the conv's
receptive field). Any order of :mod:`.scans` can be passed (``scan='cross'`` for VMamba's 4 directions,
'bidirectional', 'zigzag', 'local', 'atrous', or a list of direction names); K directions give K
parameter sets and one grouped scan.
"""

from __future__ import annotations

from ..registry import register_model
from .mambaout import BASE_DIMS, FEMTO_DIMS, SMALL_DEPTHS, TINY_DEPTHS, TINY_DIMS, gated_net

_NO_PAPER = dict(source="no published figure: this project's MambaOut + SSM pair")


def mamba_net(depths, dims, scan="raster", d_state: int = 16, dt_rank="auto", kernel_size: int = 7, **kwargs):
    """MambaOut's gated net with the conv + SSM mixer."""
    mixer_kwargs = dict(kernel_size=kernel_size, scan=scan, d_state=d_state, dt_rank=dt_rank)
    return gated_net(depths, dims, mixer="conv_ssm", mixer_kwargs=mixer_kwargs, **kwargs)


@register_model("mamba", _NO_PAPER, dict(drop_path=0.025))
def mamba_femto(**kwargs):
    return mamba_net(TINY_DEPTHS, FEMTO_DIMS, **kwargs)


@register_model("mamba", _NO_PAPER, dict(drop_path=0.025))
def mamba_kobe(**kwargs):
    return mamba_net((3, 3, 15, 3), FEMTO_DIMS, **kwargs)


@register_model("mamba", _NO_PAPER, dict(drop_path=0.2))
def mamba_tiny(**kwargs):
    return mamba_net(TINY_DEPTHS, TINY_DIMS, **kwargs)


@register_model("mamba", _NO_PAPER, dict(drop_path=0.4))
def mamba_small(**kwargs):
    return mamba_net(SMALL_DEPTHS, TINY_DIMS, **kwargs)


@register_model("mamba", _NO_PAPER, dict(drop_path=0.6))
def mamba_base(**kwargs):
    return mamba_net(SMALL_DEPTHS, BASE_DIMS, **kwargs)
