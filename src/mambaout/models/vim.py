"""Vision Mamba (Vim) on the isotropic macro: ``vim_{tiny,small,base}``.

Layer = x + Mamba(Norm x) with Vim's bidirectional "v2" Mamba: in_proj D -> (x, z) of 2D each, then
forward and flipped-backward branches with their own causal conv1d (k 4), x_proj, dt_proj, A_log, D;
(forward + re-flipped backward) / 2 * SiLU(z) -> out_proj. As a GatedBlock: act 'silu', expansion 2,
conv_ratio 2, mixer 'bimamba' (dt_rank = ceil(D/16) = ceil(2D/32)). 24 layers, patch 16, d_state 16,
absolute position embedding, no MLP.

Differences from the official model: mean-pooled head without the middle class token (Vim's
``final_pool_type='mean'`` option; 196 instead of 197 tokens), LayerNorm instead of RMSNorm, biases on
in/out projections (GatedBlock's fc1/fc2).
"""

from __future__ import annotations

from ..registry import register_model
from .blocks import GatedBlock
from .isotropic import IsotropicNet


def vim(dim: int, depth: int = 24, d_state: int = 16, mixer: str = "bimamba", mixer_kwargs=None, **kwargs):
    mk = dict(d_state=d_state, dt_rank=1 / 32)
    mk.update(mixer_kwargs or {})
    block_kwargs = dict(mixer=mixer, mixer_kwargs=mk, expansion_ratio=2, conv_ratio=2, act_layer="silu")
    return IsotropicNet(depth, dim, GatedBlock, block_kwargs, patch_size=16, **kwargs)


def _paper(params, macs, top1, note=""):
    d = dict(params=params, top1=top1, source="Vim README / MambaOut paper" + note)
    if macs is not None:
        d["macs"] = macs
    return d


@register_model("vim", _paper(7, 1.5, 76.1, "; MACs from LocalMamba's README"), dict(drop_path=0.0))
def vim_tiny(**kwargs):
    return vim(192, **kwargs)


@register_model("vim", _paper(26, 5.1, 80.5, "; MACs from LocalMamba's README"), dict(drop_path=0.05))
def vim_small(**kwargs):
    return vim(384, **kwargs)


@register_model("vim", _paper(98, None, 81.9, "; no MACs published"), dict(drop_path=0.1))
def vim_base(**kwargs):
    return vim(768, **kwargs)
