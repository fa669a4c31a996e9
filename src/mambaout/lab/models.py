"""Small models for the lab, built from the zoo's parts, and parameter matching.

Image models (1-channel 32x32 input, 10 classes) -- every ``spec`` is a mapping from a preset:

``mambaout``  the hierarchical gated net with the 'dwconv' mixer (``causal`` masks the kernel).
``mamba``     the same net with the conv + SSM mixer ('conv_ssm'; ``scan``: 'raster' by default, 'cross' is
              VMamba's four-direction scan); ``causal`` masks the kernel too (``conv_ssm(causal=True)``,
              raster scan, so the whole mixer is causal). ``visible_scan`` (e.g. 'bidirectional') is the
              scan of the fully-visible arm only; ``share_ssm`` gives every direction one SSM parameter
              set, so a bidirectional fully-visible arm has the causal arm's exact state dict.
``vit``       the DeiT-style ViT (mean-pooled) with ``causal`` attention or not.
``vim``       Vim-style isotropic net of GatedBlocks with the 'bimamba' mixer: scan (h, h_flip), fully
              visible; ``causal``: scan (h, h) -- two forward branches, the same parameter count.

Sequence models: :class:`SeqNet`, an embedding, a stack of the shared GatedBlock on a (B, 1, L, C) map
(so 1-D mixers read the sequence in order) and a head on the last token or on every token. Kinds:
``gated_cnn`` (causal conv1d, kernel k), ``ssm`` (+ the SSM: ``mamba1d``) and the receptive-field
baselines of :mod:`.baselines`: ``long_conv``, ``dilated_conv``, ``attention``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from ..errors import LabError
from ..models import scans
from ..models.blocks import GatedBlock, LayerNorm, init_model
from ..models.isotropic import IsotropicNet
from ..models.mambaout import gated_net
from ..models.vit import vit
from . import baselines as _lab_baselines  # noqa: F401  (registers the lab's baseline mixers)
from . import mixers as _lab_mixers  # noqa: F401  (registers the lab's mixers)

IMAGE_KINDS = ("mambaout", "mamba", "vit", "vim")
SEQ_KINDS = ("gated_cnn", "ssm", "long_conv", "dilated_conv", "attention")


def param_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _scaled(dims: Sequence[int], scale: float) -> list:
    return [max(1, round(d * scale)) for d in dims]


def build_image_model(
    spec: dict,
    width: int | None = None,
    causal: bool = False,
    img_size: int = 32,
    in_chans: int = 1,
    num_classes: int = 10,
) -> nn.Module:
    """An image classifier from a preset spec; ``width`` overrides its token width (ViT/Vim) or scales
    every stage width of the hierarchical models (a float factor)."""
    spec = dict(spec)
    kind = spec.pop("kind", None)
    if kind in ("mambaout", "mamba"):
        dims = list(spec["dims"])
        dims = _scaled(dims, width) if width else dims
        common = dict(
            in_chans=in_chans,
            num_classes=num_classes,
            stem_stride=spec.get("stem_stride", 4),
            drop_path_rate=spec.get("drop_path", 0.0),
        )
        mk = dict(kernel_size=spec.get("kernel_size", 7), causal=causal)
        if kind == "mambaout":
            mixer = spec.get("mixer", "dwconv")  # "identity": the blocks mix no tokens (a control)
            mk = mk if mixer == "dwconv" else {}
        else:
            mixer = "conv_ssm"
            scan = spec.get("scan", "raster") if causal else spec.get("visible_scan", spec.get("scan", "raster"))
            mk.update(scan=scan, d_state=spec.get("d_state", 16), share_ssm=bool(spec.get("share_ssm", False)))
            if len(scans.resolve(scan)) > 1:
                mk["merge"] = "mean"  # directions averaged: the one-direction model's output scale
        return gated_net(spec["depths"], dims, mixer=mixer, mixer_kwargs=mk, **common)
    if kind == "vit":
        dim = width or spec["dim"]
        heads = spec.get("num_heads") or max(dim // spec.get("head_dim", 32), 1)
        return vit(
            spec["depth"],
            dim,
            heads,
            causal=causal,
            patch_size=spec.get("patch_size", 4),
            img_size=img_size,
            in_chans=in_chans,
            num_classes=num_classes,
            drop_path_rate=spec.get("drop_path", 0.0),
        )
    if kind == "vim":
        dim = width or spec["dim"]
        mk = dict(d_state=spec.get("d_state", 16), dt_rank=1 / 32, scan=("h", "h") if causal else ("h", "h_flip"))
        bk = dict(mixer="bimamba", mixer_kwargs=mk, expansion_ratio=2, conv_ratio=2, act_layer="silu")
        return IsotropicNet(
            spec["depth"],
            dim,
            GatedBlock,
            bk,
            patch_size=spec.get("patch_size", 4),
            img_size=img_size,
            in_chans=in_chans,
            num_classes=num_classes,
            drop_path_rate=spec.get("drop_path", 0.0),
        )
    raise LabError(f"unknown image model kind {kind!r}; known: {', '.join(IMAGE_KINDS)}")


class SeqNet(nn.Module):
    """Embedding -> ``depth`` GatedBlocks on a (B, 1, L, C) map -> LayerNorm -> head.

    ``vocab``: token ids in (embedding table) when > 0, else real values (B, L, in_features) through a
    Linear. ``readout``: 'last' (one logit vector from the last step: sequential classification) or
    'all' (logits at every step: autoregressive / copying tasks).
    """

    def __init__(
        self,
        dim: int,
        depth: int,
        mixer: str,
        mixer_kwargs: dict | None,
        num_outputs: int,
        vocab: int = 0,
        in_features: int = 1,
        readout: str = "last",
        expansion_ratio: float = 2,
        conv_ratio: float = 2,
        act_layer="silu",
    ):
        super().__init__()
        if readout not in ("last", "all"):
            raise LabError(f"readout must be 'last' or 'all', got {readout!r}")
        self.readout = readout
        self.embed = nn.Embedding(vocab, dim) if vocab > 0 else nn.Linear(in_features, dim)
        self.blocks = nn.Sequential(
            *[
                GatedBlock(
                    dim,
                    mixer=mixer,
                    mixer_kwargs=mixer_kwargs,
                    expansion_ratio=expansion_ratio,
                    conv_ratio=conv_ratio,
                    act_layer=act_layer,
                )
                for _ in range(depth)
            ]
        )
        self.norm = LayerNorm(dim)
        self.head = nn.Linear(dim, num_outputs)

        def init_embedding():
            if isinstance(self.embed, nn.Embedding):
                nn.init.normal_(self.embed.weight, std=0.02)

        init_model(self, init_embedding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x)  # (B, L, C)
        x = self.blocks(x.unsqueeze(1)).squeeze(1)
        if self.readout == "last":
            x = x[:, -1]
        return self.head(self.norm(x))


def build_seq_model(
    spec: dict,
    kind: str,
    width: int | None = None,
    num_outputs: int = 10,
    vocab: int = 0,
    readout: str = "last",
    length: int | None = None,
) -> nn.Module:
    """``kind`` 'gated_cnn' (causal conv1d mixer), 'ssm' (causal conv1d + SSM: the 'mamba1d' mixer) or a
    baseline: 'long_conv' (causal conv1d with ``spec['long_kernel']``, default: the stack sees the whole
    ``length``), 'dilated_conv' (``spec['dilations']``, default 1, k, k^2.. up to ``length``),
    'attention' (causal conv1d + causal SDPA with ``spec['num_heads']`` heads, default 2)."""
    from .baselines import dilations_for, long_kernel_for

    dim = width or spec["dim"]
    k = spec.get("kernel_size", 4)
    if (
        kind in ("long_conv", "dilated_conv")
        and length is None
        and not spec.get("long_kernel" if kind == "long_conv" else "dilations")
    ):
        raise LabError(f"sequence model {kind!r} needs the sequence length (or an explicit kernel / dilations)")
    if kind == "gated_cnn":
        mixer, mk = "lab_causal_conv1d", dict(kernel_size=k)
    elif kind == "ssm":
        mixer, mk = "mamba1d", dict(d_conv=k, d_state=spec.get("d_state", 16))
    elif kind == "long_conv":
        mixer, mk = (
            "lab_causal_conv1d",
            dict(kernel_size=spec.get("long_kernel") or long_kernel_for(length, spec["depth"])),
        )
    elif kind == "dilated_conv":
        mixer, mk = (
            "lab_dilated_conv1d",
            dict(kernel_size=k, dilations=spec.get("dilations") or dilations_for(length, k)),
        )
    elif kind == "attention":
        heads = spec.get("num_heads", 2)
        mixer, mk = "lab_conv_attention", dict(d_conv=k, num_heads=heads)
        if (2 * dim) % heads:  # the mixed channels (conv_ratio 2: 2 * dim) split evenly into heads
            dim = max(heads, (2 * dim) // heads * heads // 2)
    else:
        raise LabError(f"unknown sequence model kind {kind!r}; known: {', '.join(SEQ_KINDS)}")
    return SeqNet(dim, spec["depth"], mixer, mk, num_outputs, vocab=vocab, readout=readout)


def match_width(
    build: Callable[[int], nn.Module],
    target: int,
    start: int = 1,
    step: int = 1,
    tolerance: float = 0.05,
    span: float = 2.0,
    candidates=None,
) -> dict[str, int]:
    """The width w (multiple of ``step`` around ``start``, or one of ``candidates``) whose model's
    parameter count is closest to ``target``.

    Builds on the meta device (instant). Raises LabError when the best is off by more than ``tolerance``.
    """
    best = None
    if candidates is None:
        lo = max(step, int(start / span) // step * step)
        candidates = range(lo, int(start * span) + 1, step)
    with torch.device("meta"):
        for w in candidates:
            n = param_count(build(w))
            if best is None or abs(n - target) < abs(best[1] - target):
                best = (w, n)
    w, n = best
    if abs(n - target) > tolerance * target:
        raise LabError(f"cannot match {target} parameters within {tolerance:.0%}: best width {w} gives {n}")
    return dict(width=w, params=n)


def assert_matched(counts: dict[str, int], tolerance: float = 0.05) -> float:
    """Assert every count is within ``tolerance`` of the largest; returns the largest relative gap."""
    ref = max(counts.values())
    gap = max(abs(ref - n) / ref for n in counts.values())
    if gap > tolerance:
        raise LabError(f"parameter counts differ by {gap:.1%} (> {tolerance:.0%}): {counts}")
    return gap
