"""The MambaOut family: the hierarchical net with the plain gated block (depthwise-conv mixer).

Names and configurations follow timm (``mambaout_*``), so weights and state dicts are interchangeable.
Paper figures: MambaOut paper / official README (params M, MACs G, ImageNet top-1 at 224);
``_rw`` rows: timm model cards (no MACs published).
"""

from __future__ import annotations

from ..registry import register_model
from .blocks import GatedBlock
from .hierarchical import HierarchicalNet

TINY_DEPTHS, SMALL_DEPTHS = (3, 3, 9, 3), (3, 4, 27, 3)
FEMTO_DIMS, TINY_DIMS, BASE_DIMS = (48, 96, 192, 288), (96, 192, 384, 576), (128, 256, 512, 768)

# timm's "_rw" recipe options: no stem mid-norm, norm-first downsampling, layer scale, norm-MLP head.
RW_OPTIONS = dict(stem_mid_norm=False, downsample_norm_first=True, head_hidden_norm=False, ls_init_value=1e-6)


def gated_net(
    depths,
    dims,
    mixer="dwconv",
    mixer_kwargs=None,
    expansion_ratio=8 / 3,
    conv_ratio=1.0,
    act_layer="gelu",
    ls_init_value=None,
    **kwargs,
) -> HierarchicalNet:
    """A hierarchical net of gated blocks; ``mixer`` picks the token mixer of every block
    (a list gives one per stage). MambaOut is ``mixer='dwconv'``."""
    mixers = mixer if isinstance(mixer, (list, tuple)) else [mixer] * len(depths)
    block_kwargs = [
        dict(
            mixer=m,
            mixer_kwargs=mixer_kwargs,
            expansion_ratio=expansion_ratio,
            conv_ratio=conv_ratio,
            act_layer=act_layer,
            ls_init_value=ls_init_value,
        )
        for m in mixers
    ]
    kwargs.setdefault("stem_act", act_layer)
    return HierarchicalNet(depths, dims, block=GatedBlock, block_kwargs=block_kwargs, **kwargs)


def _rw(kwargs, **defaults):
    """timm's _rw options, then the variant's defaults, then the caller's overrides."""
    return {**RW_OPTIONS, **defaults, **kwargs}


def _paper(params, macs=None, top1=None, source="MambaOut paper / official README", macs_fvcore=None):
    """Reported figures; ``macs_fvcore``: fvcore's unrounded total (the paper prints one decimal)."""
    fields = dict(params=params, macs=macs, top1=top1, source=source, macs_fvcore=macs_fvcore)
    return {k: v for k, v in fields.items() if v is not None}


_TIMM_CARD = "timm model card"
# how the released weights are evaluated (timm's pretrained configs): bicubic, no crop at 224, also at 288;
# timm's sw_e500 _rw weights crop 0.95
EVAL, EVAL_RW = dict(crop_pct=1.0, test_input_size=288), dict(crop_pct=0.95, test_input_size=288)


@register_model("mambaout", _paper(7.305, 1.2, 78.9, macs_fvcore=1.16), dict(drop_path=0.025), data=EVAL)
def mambaout_femto(**kwargs):
    return gated_net(TINY_DEPTHS, FEMTO_DIMS, **kwargs)


@register_model("mambaout", _paper(9.141, 1.5, 80.0, macs_fvcore=1.52), dict(drop_path=0.025), data=EVAL)
def mambaout_kobe(**kwargs):
    return gated_net((3, 3, 15, 3), FEMTO_DIMS, **kwargs)


@register_model("mambaout", _paper(26.545, 4.5, 82.7, macs_fvcore=4.486), dict(drop_path=0.2), data=EVAL)
def mambaout_tiny(**kwargs):
    return gated_net(TINY_DEPTHS, TINY_DIMS, **kwargs)


@register_model("mambaout", _paper(48.488, 9.0, 84.1, macs_fvcore=8.96), dict(drop_path=0.4), data=EVAL)
def mambaout_small(**kwargs):
    return gated_net(SMALL_DEPTHS, TINY_DIMS, **kwargs)


@register_model("mambaout", _paper(84.813, 15.8, 84.2, macs_fvcore=15.83), dict(drop_path=0.6), data=EVAL)
def mambaout_base(**kwargs):
    return gated_net(SMALL_DEPTHS, BASE_DIMS, **kwargs)


@register_model("mambaout", _paper(48.50, top1=84.04, source=_TIMM_CARD), dict(drop_path=0.4), data=EVAL)
def mambaout_small_rw(**kwargs):
    return gated_net(SMALL_DEPTHS, TINY_DIMS, **_rw(kwargs))


@register_model("mambaout", _paper(88.83, top1=84.36, source=_TIMM_CARD), dict(drop_path=0.6), data=EVAL_RW)
def mambaout_base_short_rw(**kwargs):
    return gated_net((3, 3, 25, 3), BASE_DIMS, **_rw(kwargs, expansion_ratio=3.0, conv_ratio=1.25))


@register_model("mambaout", _paper(86.48, top1=84.44, source=_TIMM_CARD), dict(drop_path=0.6), data=EVAL_RW)
def mambaout_base_tall_rw(**kwargs):
    return gated_net((3, 4, 30, 3), BASE_DIMS, **_rw(kwargs, expansion_ratio=2.5, conv_ratio=1.25))


@register_model("mambaout", _paper(94.45, top1=84.45, source=_TIMM_CARD), dict(drop_path=0.6), data=EVAL_RW)
def mambaout_base_wide_rw(**kwargs):
    return gated_net(SMALL_DEPTHS, BASE_DIMS, **_rw(kwargs, expansion_ratio=3.0, conv_ratio=1.5, act_layer="silu"))


@register_model(
    "mambaout", _paper(101.66, top1=86.64, source=_TIMM_CARD + " (in12k pre-training)"), dict(drop_path=0.6), data=EVAL
)
def mambaout_base_plus_rw(**kwargs):
    return gated_net((3, 4, 30, 3), BASE_DIMS, **_rw(kwargs, expansion_ratio=3.0, conv_ratio=1.5, act_layer="silu"))


@register_model("mambaout", train=dict(drop_path=0.0), input_size=64)
def mambaout_test(**kwargs):
    """A tiny variant for tests and quick experiments (timm's test_mambaout configuration)."""
    return gated_net(
        (1, 1, 3, 1), (16, 32, 48, 64), **_rw(kwargs, expansion_ratio=3, act_layer="silu", ls_init_value=1e-4)
    )
