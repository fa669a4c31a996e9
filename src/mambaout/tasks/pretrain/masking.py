"""Patch masks and the sparse (FCMAE-style) encoder: a hierarchical net that never reads masked positions.

A mask is drawn on the grid of ``patch`` x ``patch`` image patches (``patch`` a multiple of the network's total
stride, so every token of every stage lies inside one patch): ``True`` = hidden. :func:`sparse_encoder` installs
hooks for one forward pass so the network behaves like a sparse network on the visible tokens only (ConvNeXt
V2's dense equivalent of submanifold sparse convolution), mixer by mixer:

* stem and downsampling convs (``nn.Conv2d`` outside the token mixers): their input is multiplied by the
  visible mask at its resolution. A visible output reads zeros where a neighbour is hidden, never its value.
  Patch merging and the patch stem only combine positions of one patch: nothing to do.
* ``dwconv`` (MambaOut), the conv of ``conv_ssm``: the mixer's input and output are masked.
* the SSM of ``conv_ssm`` (raster, cross-scan, zig-zag ...) and of ``multiscan`` (LocalMamba's windows):
  each scan sequence is cut at the hidden steps by setting Delta = 0 and u = 0 there, so
  h_t = exp(0 * A) h_{t-1} + 0 * B_t u_t = h_{t-1} exactly: the state passes hidden steps unchanged, as if
  they were removed from the sequence. (u = 0 alone would also keep the hidden content out, but the state
  would still decay by exp(softplus(bias) A) at every hidden step.)
* ``multiscan``'s causal conv1d along the scan reads the masked (zero) input; its channel gate averages
  over visible tokens only.
* per-token layers (LayerNorm, Linear, activations, the MLP, LayerScale) cannot mix positions.

Any other module that mixes positions (attention, the inverted-residual blocks of EfficientVMamba) is
refused: :func:`check_sparse_support` names it.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from timm.layers import DropPath, LayerScale
from torch import nn

from ...errors import UsageError
from ...models import scans
from ...models.blocks import (
    Downsample,
    GatedBlock,
    LinearHead,
    MlpHead,
    PatchEmbedStem,
    PatchMerging,
    Stem,
)
from ...models.hierarchical import HierarchicalNet, Stage
from ...models.mixers import DepthwiseConvMixer, IdentityMixer
from ...models.ssm import ChannelGate, ConvSSMMixer, SelectiveSSM, SeqScanMixer
from ...models.vit import Mlp
from ...models.vmamba import VSSBlock
from ...ops import selective_scan


def random_mask(batch: int, grid: tuple[int, int], ratio: float, device=None, generator=None) -> torch.Tensor:
    """(B, 1, gh, gw) bool, True = hidden: exactly round(ratio * gh * gw) patches per image (at least one
    hidden and one visible), chosen uniformly (SimMIM / MAE)."""
    gh, gw = grid
    n = gh * gw
    k = min(max(1, round(ratio * n)), n - 1)
    noise = torch.rand(batch, n, device=device, generator=generator)
    hidden = noise.argsort(1)[:, :k]
    mask = torch.zeros(batch, n, dtype=torch.bool, device=device)
    mask.scatter_(1, hidden, True)
    return mask.view(batch, 1, gh, gw)


def at(mask: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The (B, 1, gh, gw) patch mask at a resolution h x w (multiples of the grid), same dtype."""
    gh, gw = mask.shape[-2:]
    if h % gh or w % gw:
        raise ValueError(f"a {h}x{w} map does not split into the mask's {gh}x{gw} patches")
    return mask.repeat_interleave(h // gh, 2).repeat_interleave(w // gw, 3)


# Modules that mix no positions, or whose mixing sparse_encoder handles.
_PER_TOKEN = (nn.Linear, nn.LayerNorm, nn.GELU, nn.SiLU, nn.ReLU, nn.Identity, nn.Dropout, DropPath, LayerScale)
_CONTAINERS = (HierarchicalNet, Stage, nn.Sequential, GatedBlock, VSSBlock, Mlp, Stem, Downsample, MlpHead, LinearHead)
_HANDLED = (nn.Conv2d, nn.Conv1d, PatchMerging, PatchEmbedStem, SelectiveSSM, ChannelGate, SeqScanMixer, IdentityMixer)


def check_sparse_support(model: nn.Module, name: str = "the model") -> None:
    """UsageError naming the first module the sparse encoder cannot keep from reading hidden tokens."""
    if not isinstance(model, HierarchicalNet):
        raise UsageError(
            f"pretrain: {name} is not a hierarchical model ({type(model).__name__}); SimMIM and FCMAE here "
            "support the hierarchical zoo (mambaout_*, mamba_*, vmamba_*, localvmamba_*)"
        )
    for path, m in model.named_modules():
        if type(m) in _PER_TOKEN + _CONTAINERS or isinstance(m, _HANDLED):
            continue
        raise UsageError(
            f"pretrain --method fcmae: {name} has {path} ({type(m).__name__}), which mixes positions in a way "
            "the sparse encoder cannot mask; FCMAE supports the dwconv, conv_ssm and multiscan mixers "
            "(use --method simmim for this model)"
        )


def _skip_ssm(ssm: SelectiveSSM, keep_seq: torch.Tensor):
    """SelectiveSSM.forward with Delta = 0 and u = 0 at hidden steps (``keep_seq`` (B, K, 1, L), 1 = visible)."""

    def forward(xs, move_codes=None):
        kw = ssm.scan_inputs(xs, move_codes)
        b, k, d, n = xs.shape
        keep = keep_seq.to(xs.dtype).expand(b, k, d, n).reshape(b, k * d, n)
        delta = F.softplus(kw["delta"] + kw["delta_bias"][:, None].to(kw["delta"].dtype))
        kw.update(u=kw["u"] * keep, delta=delta * keep.to(delta.dtype), delta_bias=None, delta_softplus=False)
        return selective_scan(**kw).view(xs.shape)

    return forward


def _masked_gate(gate: ChannelGate, keep_flat: torch.Tensor):
    """ChannelGate.forward whose mean runs over visible tokens only (``keep_flat`` (B, L, 1))."""

    def forward(x):
        k = keep_flat.to(x.dtype)
        mean = (gate.norm(x) * k).sum(1, keepdim=True) / k.sum(1, keepdim=True).clamp(min=1)
        return x * torch.sigmoid(gate.channel_select(gate.act(gate.global_reduce(mean))))

    return forward


@contextlib.contextmanager
def sparse_encoder(model: nn.Module, mask: torch.Tensor):
    """Within the block, ``model``'s forward passes read no hidden position (``mask`` (B, 1, gh, gw), True =
    hidden); see the module docstring. Outputs at hidden positions are meaningless (zero after a mixer)."""
    check_sparse_support(model)
    keep = (~mask.bool()).float()
    handles, patched = [], []

    def keep_nchw(x):
        return at(keep, x.shape[-2], x.shape[-1]).to(x.dtype)

    def keep_nhwc(x):
        return at(keep, x.shape[1], x.shape[2]).permute(0, 2, 3, 1).to(x.dtype)

    def conv_in(module, args):
        return (args[0] * keep_nchw(args[0]),) + tuple(args[1:])

    def mixer_in(module, args):
        x = args[0]
        k = keep_nhwc(x)
        scan_owner = module if isinstance(module, (ConvSSMMixer, SeqScanMixer)) else None
        if scan_owner is not None:
            k4 = k.permute(0, 3, 1, 2)
            seq, _ = scans.cross_scan(k4, scan_owner.directions)  # (B, K, 1, L) in each scan's order
            module.ssm.forward = _skip_ssm(module.ssm, seq)
            if getattr(module, "gate", None) is not None:
                module.gate.forward = _masked_gate(module.gate, k4.flatten(2).transpose(1, 2))
        return (x * k,) + tuple(args[1:])

    def mixer_out(module, args, out):
        return out * keep_nhwc(out)

    mixers = [m for m in model.modules() if isinstance(m, (DepthwiseConvMixer, SeqScanMixer))]
    inside = {id(c) for m in mixers for c in m.modules()}
    try:
        for m in model.modules():
            if isinstance(m, nn.Conv2d) and id(m) not in inside:
                handles.append(m.register_forward_pre_hook(conv_in))
        for m in mixers:
            handles.append(m.register_forward_pre_hook(mixer_in))
            handles.append(m.register_forward_hook(mixer_out))
            patched += [m.ssm] if hasattr(m, "ssm") else []
            patched += [m.gate] if getattr(m, "gate", None) is not None else []
        yield model
    finally:
        for h in handles:
            h.remove()
        for m in patched:  # back to the class's forward
            m.__dict__.pop("forward", None)
