"""PlainMamba ``plainmamba_{l1,l2,l3}`` on the isotropic macro.

Layer = x + PlainMamba2D(LN x): in_proj (bias) -> (x, z) with expand 2, 7x7 depthwise conv (bias) +
SiLU, four zig-zag (snake) scans — rows from the top, rows from the bottom, columns from the left,
columns from the right — that share one set of SSM parameters plus PlainMamba's direction-aware B
biases (a 5 x N table indexed by the move reaching each token: start, right, left, up, down),
summed, * SiLU(z), out_proj (bias). As a GatedBlock: act 'silu', expansion 2, conv_ratio 2, mixer
'conv_ssm' (k 7, scan 'zigzag', share_ssm, dir_bias). No MLP. d_state 16, dt_rank ceil(D/16).

Patch embed (PlainMamba's ConvPatchEmbed): 7x7 stride-2 conv (3 -> 64, no bias) + BN + ReLU,
``num_convs`` x [3x3 conv 64 -> 64 (no bias) + BN + ReLU] at stride 2, then an 8x8 stride-8 conv to D:
total stride 16. L1 has one extra conv and a 3x3 depthwise conv + BN + GELU (no residual) after
layer 0; L2/L3 have two extra convs.

Not reproduced: the official code permutes u into scan order but leaves delta/B/C in raster order
(a quirk); here all scan inputs follow the scan order.

Params: PlainMamba's README counts the backbone without the classifier (our totals minus the head
give 7.36 / 25.76 / 50.51M against 7.3 / 25.7 / 50.5M); the metadata says so (``params_scope``).
"""

from __future__ import annotations

from torch import nn

from ..registry import register_model
from .blocks import GatedBlock
from .isotropic import IsotropicNet


class ConvPatchEmbed(nn.Module):
    """Conv stem of stride 16 (see module docstring). NCHW in, NHWC out."""

    def __init__(self, in_chans: int, dim: int, num_convs: int = 1, width: int = 64):
        super().__init__()
        layers = [nn.Conv2d(in_chans, width, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
        for _ in range(num_convs):
            layers += [nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
        self.stem = nn.Sequential(*layers)
        self.proj = nn.Conv2d(width, dim, 8, stride=8)

    def forward(self, x):
        return self.proj(self.stem(x)).permute(0, 2, 3, 1)


class DWConvBN(nn.Module):
    """GELU(BN(dwconv3x3(x))) without bias or residual, channels-last (PlainMamba-L1, after layer 0)."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim, bias=False)
        self.bn = nn.BatchNorm2d(dim)
        self.act = nn.GELU()

    def forward(self, x):
        return self.act(self.bn(self.conv(x.permute(0, 3, 1, 2)))).permute(0, 2, 3, 1)


def plainmamba(dim: int, depth: int, num_convs: int, dwconv_after=(), scan="zigzag", d_state: int = 16, **kwargs):
    mixer_kwargs = dict(kernel_size=7, scan=scan, d_state=d_state, dt_rank=1 / 32, share_ssm=True, dir_bias=True)
    block_kwargs = dict(mixer="conv_ssm", mixer_kwargs=mixer_kwargs, expansion_ratio=2, conv_ratio=2, act_layer="silu")
    return IsotropicNet(
        depth,
        dim,
        GatedBlock,
        block_kwargs,
        patch_size=16,
        patch_embed=lambda c, d: ConvPatchEmbed(c, d, num_convs),
        extra_blocks={i: DWConvBN for i in dwconv_after},
        **kwargs,
    )


def _paper(params, macs, top1):
    return dict(
        params=params,
        macs=macs,
        top1=top1,
        params_scope="backbone (no classifier)",
        source="PlainMamba README (params without the head, top-1); MACs from the MambaOut paper",
    )


@register_model("plainmamba", _paper(7.3, 3.0, 77.9), dict(drop_path=0.2))
def plainmamba_l1(**kwargs):
    return plainmamba(192, 24, 1, dwconv_after=(0,), **kwargs)


@register_model("plainmamba", _paper(25.7, 8.1, 81.6), dict(drop_path=0.3))
def plainmamba_l2(**kwargs):
    return plainmamba(384, 24, 2, **kwargs)


@register_model("plainmamba", _paper(50.5, 14.4, 82.3), dict(drop_path=0.5))
def plainmamba_l3(**kwargs):
    return plainmamba(448, 36, 2, **kwargs)
