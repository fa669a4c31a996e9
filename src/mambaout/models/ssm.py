"""The selective-SSM core and the SSM token mixers built on it.

``SelectiveSSM`` is Mamba's S6 layer without the in/out projections, the conv and the gate (those
belong to the block): x_proj -> (dt_low, B, C), dt_proj (low rank, Mamba's dt init with an
inverse-softplus bias passed as ``delta_bias``), A = -exp(A_log) with S4D-real init log(1..N), D = 1,
then ``mambaout.ops.selective_scan(..., delta_softplus=True)``. It scans K directions at once: the
parameters of each direction are stacked (VMamba's layout: ``x_proj_weight`` (K, R+2N, d),
``dt_proj_weight`` (K, d, R), ``dt_proj_bias`` (K, d), ``A_log`` (K*d, N), ``D`` (K*d)) and the K
sequences go through one grouped scan over (B, K*d, L) with B/C of shape (B, K, N, L).

Mixers (channels-last (B, H, W, C) -> same shape; register names in :mod:`.mixers`):

``conv_ssm``   MambaOut's k x k depthwise conv, act, then the SSM over a scan order (``scan=``, see
               :mod:`.scans`). Holds ``weight``/``bias`` exactly like the 'dwconv' mixer, so a gated
               block with this mixer has MambaOut's state dict plus ``conv.ssm.*``. Also the mixer of
               VMamba (k 3, scan 'cross', out_norm), PlainMamba (k 7, 'zigzag', shared SSM + direction
               biases) and EfficientVMamba (k 3, 'atrous'). ``causal=True`` (raster scan only): the
               kernel mask of ``dwconv(causal=True)``, so the whole mixer is causal in raster order.
``mamba1d``    Mamba on the raster sequence: causal depthwise conv1d (k 4) + SiLU + SSM. Causal.
``bimamba``    Vim: forward and flipped branches, each with its own conv1d/x_proj/dt_proj/A/D; the
               re-aligned outputs are averaged.
``multiscan``  LocalMamba: any directions (default h, h_flip, w7, w7_flip), own conv1d + SSM per
               direction, one shared SE-style channel gate (BiAttn) applied to each branch, summed.

Init: the generic trunc-normal init of the network does not touch these raw parameters; the special
init lives in ``post_init()`` (HierarchicalNet/IsotropicNet call it after the generic init).
``A_log`` and ``D`` carry ``_no_weight_decay = True``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..ops import selective_scan
from . import scans
from .blocks import LayerNorm, get_act
from .mixers import DepthwiseConvMixer, register_mixer


def resolve_dt_rank(dt_rank: int | float | str, dim: int) -> int:
    """'auto' -> ceil(dim / 16); a float in (0, 1) -> ceil(dim * value); an int -> itself."""
    if dt_rank == "auto":
        return math.ceil(dim / 16)
    if isinstance(dt_rank, float):
        if not 0 < dt_rank < 1:
            raise ValueError(f"a fractional dt_rank must be in (0, 1), got {dt_rank}")
        return max(1, math.ceil(dim * dt_rank - 1e-9))
    return int(dt_rank)


class SelectiveSSM(nn.Module):
    """S6 over K directions at once: (B, K, d, L) sequences -> (B, K, d, L).

    Args:
        dim: channels d of each sequence.
        d_state: N. dt_rank: R ('auto' = ceil(d/16), or see :func:`resolve_dt_rank`).
        num_dirs: K directions scanned together (one grouped scan).
        share: one parameter set for all K directions (PlainMamba) instead of one per direction.
        dir_bias: PlainMamba's direction-aware parameters: a learned (5, N) table of biases added to B,
            indexed per step by the move that reached the token (start/jump, right, left, up, down);
            ``forward`` then needs ``move_codes`` (K, L) from :func:`scans.move_codes`.
    """

    def __init__(
        self,
        dim: int,
        d_state: int = 16,
        dt_rank: int | float | str = "auto",
        num_dirs: int = 1,
        share: bool = False,
        dir_bias: bool = False,
        dt_min: float = 1e-3,
        dt_max: float = 0.1,
        dt_init_floor: float = 1e-4,
        dt_scale: float = 1.0,
    ):
        super().__init__()
        self.dim, self.d_state, self.num_dirs, self.share = dim, d_state, num_dirs, share
        self.dt_rank = resolve_dt_rank(dt_rank, dim)
        self.dt_min, self.dt_max, self.dt_init_floor, self.dt_scale = dt_min, dt_max, dt_init_floor, dt_scale
        P = 1 if share else num_dirs
        R, N = self.dt_rank, d_state
        self.x_proj_weight = nn.Parameter(torch.empty(P, R + 2 * N, dim))
        self.dt_proj_weight = nn.Parameter(torch.empty(P, dim, R))
        self.dt_proj_bias = nn.Parameter(torch.empty(P, dim))
        self.A_log = nn.Parameter(torch.empty(P * dim, N))
        self.D = nn.Parameter(torch.empty(P * dim))
        self.A_log._no_weight_decay = True
        self.D._no_weight_decay = True
        self.dir_bias = nn.Parameter(torch.zeros(5, N)) if dir_bias else None
        self.post_init()

    @torch.no_grad()
    def post_init(self):
        """Mamba's init: x_proj like nn.Linear, dt_proj weight U(+-R^-0.5 * dt_scale), dt bias =
        softplus^-1(dt) with dt log-uniform in [dt_min, dt_max] (floored), A_log = log(1..N), D = 1."""
        dev = self.A_log.device
        bound = 1 / math.sqrt(self.dim)
        self.x_proj_weight.uniform_(-bound, bound)
        std = self.dt_rank**-0.5 * self.dt_scale
        self.dt_proj_weight.uniform_(-std, std)
        if dev.type != "meta":
            dt = torch.exp(
                torch.rand(self.dt_proj_bias.shape, device=dev) * (math.log(self.dt_max) - math.log(self.dt_min))
                + math.log(self.dt_min)
            )
            dt = dt.clamp(min=self.dt_init_floor)
            self.dt_proj_bias.copy_(dt + torch.log(-torch.expm1(-dt)))
            A = torch.arange(1, self.d_state + 1, dtype=torch.float32, device=dev)
            self.A_log.copy_(torch.log(A).expand_as(self.A_log))
            self.D.fill_(1.0)
        if self.dir_bias is not None:
            nn.init.trunc_normal_(self.dir_bias, std=0.02)

    def _expand(self, t: torch.Tensor) -> torch.Tensor:
        """A parameter stacked per direction on dim 0; the single shared set -> K (broadcast) copies."""
        if not self.share or self.num_dirs == 1:
            return t
        return t.expand(self.num_dirs, *t.shape[1:])

    def scan_inputs(self, xs: torch.Tensor, move_codes: torch.Tensor | None = None) -> dict:
        """The keyword arguments of the one grouped ``selective_scan`` call for (B, K, d, L) sequences
        (u, delta, A, B, C, D, delta_bias, delta_softplus). ``forward`` scans exactly these; explanation
        code (hidden attention) reads them without repeating the projections."""
        Bsz, K, d, L = xs.shape
        if K != self.num_dirs or d != self.dim:
            raise ValueError(f"SelectiveSSM built for (K={self.num_dirs}, d={self.dim}), got {tuple(xs.shape)}")
        R, N = self.dt_rank, self.d_state
        x_proj = self._expand(self.x_proj_weight)
        x_dbl = torch.einsum("bkdl,kcd->bkcl", xs, x_proj)
        dts, Bs, Cs = torch.split(x_dbl, [R, N, N], dim=2)
        dts = torch.einsum("bkrl,kdr->bkdl", dts, self._expand(self.dt_proj_weight))
        if self.dir_bias is not None:
            if move_codes is None:
                raise ValueError("SelectiveSSM(dir_bias=True) needs the scan's move codes")
            Bs = Bs + self.dir_bias[move_codes].permute(0, 2, 1).unsqueeze(0).to(Bs.dtype)  # (1, K, N, L)
        A = -torch.exp(self._expand(self.A_log.view(-1, d, N)).reshape(K * d, N).float())
        D = self._expand(self.D.view(-1, d)).reshape(K * d).float()
        delta_bias = self._expand(self.dt_proj_bias).reshape(K * d).float()
        if K == 1:
            Bs, Cs = Bs[:, 0], Cs[:, 0]
        return dict(
            u=xs.reshape(Bsz, K * d, L),
            delta=dts.reshape(Bsz, K * d, L),
            A=A,
            B=Bs.contiguous(),
            C=Cs.contiguous(),
            D=D,
            delta_bias=delta_bias,
            delta_softplus=True,
        )

    def forward(self, xs: torch.Tensor, move_codes: torch.Tensor | None = None) -> torch.Tensor:
        return selective_scan(**self.scan_inputs(xs, move_codes)).view(xs.shape)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, d_state={self.d_state}, dt_rank={self.dt_rank}, num_dirs={self.num_dirs}" + (
            ", shared" if self.share else ""
        )


@register_mixer("conv_ssm")
class ConvSSMMixer(DepthwiseConvMixer):
    """k x k depthwise conv (MambaOut's mixer) -> act -> SSM over ``scan`` -> merge [-> LayerNorm].

    This is "Gated CNN + SSM": a GatedBlock with this mixer is a Mamba-style block whose conv is 2-D.
    ``scan``: a preset or direction list of :mod:`.scans` (default 'raster'). ``out_norm``: LayerNorm
    after the merge (VMamba's SS2D). ``share_ssm``/``dir_bias``: PlainMamba's shared parameters with
    direction-aware B biases. ``conv_bias=False``: no conv bias (VMamba v2). ``causal=True``: the conv
    kernel is masked as in ``dwconv(causal=True)`` (non-persistent buffer, state dict unchanged); with
    the raster scan (required) the whole mixer then sees only the current and earlier tokens.
    """

    def __init__(
        self,
        dim: int,
        kernel_size: int = 7,
        scan: scans.ScanSpec = "raster",
        d_state: int = 16,
        dt_rank: int | float | str = "auto",
        act_layer="silu",
        out_norm: bool = False,
        share_ssm: bool = False,
        dir_bias: bool = False,
        conv_bias: bool = True,
        merge: str = "sum",
        causal: bool = False,
    ):
        super().__init__(dim, kernel_size, causal=causal)
        if not conv_bias:
            self.register_parameter("bias", None)
        if merge not in ("sum", "mean"):
            raise ValueError(f"merge must be 'sum' or 'mean', got {merge!r}")
        self.directions = scans.resolve(scan)
        if causal and set(self.directions) != {"h"}:
            raise ValueError(
                f"conv_ssm(causal=True) needs the raster scan ('raster' / 'h'); scan "
                f"{','.join(self.directions)} reads later tokens before earlier ones"
            )
        self.merge = merge
        self.ssm_act = get_act(act_layer)()
        self.ssm = SelectiveSSM(
            dim, d_state, dt_rank, num_dirs=len(self.directions), share=share_ssm, dir_bias=dir_bias
        )
        self.out_norm = LayerNorm(dim) if out_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_nchw(x)  # (B, C, H, W)
        xs, ctx = scans.cross_scan(self.ssm_act(x), self.directions)
        codes = scans.move_codes(ctx, x.device) if self.ssm.dir_bias is not None else None
        y = scans.cross_merge(self.ssm(xs, codes), ctx)
        if self.merge == "mean":
            y = y / len(self.directions)
        y = y.permute(0, 2, 3, 1)
        return self.out_norm(y) if self.out_norm is not None else y

    def extra_repr(self) -> str:
        return super().extra_repr() + f", scan={','.join(self.directions)}"


class ChannelGate(nn.Module):
    """LocalMamba's BiAttn (channel part): x * sigmoid(W2 act(W1 mean_L(LN x))). Input (B, L, C)."""

    def __init__(self, dim: int, ratio: float = 0.125, act_layer="gelu"):
        super().__init__()
        hidden = int(dim * ratio)
        self.norm = nn.LayerNorm(dim)
        self.global_reduce = nn.Linear(dim, hidden)
        self.act = get_act(act_layer)()
        self.channel_select = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.act(self.global_reduce(self.norm(x).mean(1, keepdim=True)))
        return x * torch.sigmoid(self.channel_select(g))


class SeqScanMixer(nn.Module):
    """Mamba-1 style mixing over K scan directions: per-direction causal depthwise conv1d (kernel
    ``d_conv``, padding d_conv-1 cropped to L) + SiLU + per-direction SSM; outputs re-aligned and merged.

    One grouped Conv1d over the K*C stacked sequences gives every direction its own conv; one grouped
    scan gives every direction its own x_proj/dt_proj/A/D. ``channel_gate``: LocalMamba's shared BiAttn
    applied to each re-aligned branch before summing.
    """

    def __init__(
        self,
        dim: int,
        scan: scans.ScanSpec = "raster",
        d_state: int = 16,
        dt_rank: int | float | str = "auto",
        d_conv: int = 4,
        merge: str = "sum",
        channel_gate: bool = False,
        act_layer="silu",
    ):
        super().__init__()
        if merge not in ("sum", "mean"):
            raise ValueError(f"merge must be 'sum' or 'mean', got {merge!r}")
        self.directions = scans.resolve(scan)
        K = len(self.directions)
        self.merge, self.d_conv = merge, d_conv
        self.conv1d = nn.Conv1d(K * dim, K * dim, d_conv, padding=d_conv - 1, groups=K * dim)
        self.act = get_act(act_layer)()
        self.ssm = SelectiveSSM(dim, d_state, dt_rank, num_dirs=K)
        self.gate = ChannelGate(dim) if channel_gate else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        Bsz, H, W, C = x.shape
        xs, ctx = scans.cross_scan(x.permute(0, 3, 1, 2), self.directions)  # (B, K, C, L)
        K, L = xs.shape[1], xs.shape[-1]
        xs = self.act(self.conv1d(xs.reshape(Bsz, K * C, L))[..., :L]).view(Bsz, K, C, L)
        ys = self.ssm(xs)
        if self.gate is not None:
            ys = torch.stack([self.gate(y.transpose(1, 2)).transpose(1, 2) for y in self._realigned(ys, ctx)], 1)
            y = ys.sum(1).view(Bsz, C, H, W)
        else:
            y = scans.cross_merge(ys, ctx)
        if self.merge == "mean":
            y = y / K
        return y.permute(0, 2, 3, 1)

    @staticmethod
    def _realigned(ys: torch.Tensor, ctx: tuple):
        """Each direction's output back in raster order, (B, C, H*W) each (full-permutation scans)."""
        dirs, H, W, _, _ = ctx
        for k, d in enumerate(dirs):
            yield scans.cross_merge(ys[:, k : k + 1], ((d,), H, W, H, W)).flatten(2)


@register_mixer("mamba1d")
class Mamba1DMixer(SeqScanMixer):
    """Mamba over the raster sequence (``scan='raster'``): causal in raster order."""

    def __init__(self, dim: int, scan: scans.ScanSpec = "raster", **kwargs):
        super().__init__(dim, scan=scan, **kwargs)


@register_mixer("bimamba")
class BiMambaMixer(SeqScanMixer):
    """Vim's bidirectional Mamba ("v2"): forward + flipped branch with separate conv/SSM parameters,
    outputs averaged (Vim's ``if_devide_out``)."""

    def __init__(self, dim: int, scan: scans.ScanSpec = "bidirectional", merge: str = "mean", **kwargs):
        super().__init__(dim, scan=scan, merge=merge, **kwargs)


@register_mixer("multiscan")
class MultiScanMixer(SeqScanMixer):
    """LocalMamba's multi-direction Mamba: 4 directions (default h, h_flip, w7, w7_flip), own conv1d
    and SSM each, a shared channel gate per branch, branches summed."""

    def __init__(self, dim: int, scan: scans.ScanSpec = "local", channel_gate: bool = True, **kwargs):
        super().__init__(dim, scan=scan, channel_gate=channel_gate, **kwargs)
