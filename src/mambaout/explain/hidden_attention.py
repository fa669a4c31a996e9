"""The hidden attention of selective SSMs (Ali, Zimerman & Wolf, "The Hidden Attention of Mamba Models",
2024), and the same kind of map for the mixers without an SSM (a conv kernel's footprint, ViT attention).

A selective scan with input-dependent Δ_t, B_t, C_t and diagonal A (``mambaout.ops``, per channel d)::

    h_t = exp(Δ_t A) h_{t-1} + Δ_t B_t u_t,      y_t = C_t · h_t + D u_t

unrolls into ``y_t = Σ_{s<=t} α[t, s] u_s + D u_t`` with::

    α[t, s] = Σ_n C_t[n] · exp(A[n] · (S_t - S_s)) · Δ_s B_s[n],     S_t = Δ_1 + ... + Δ_t

(the product of the decays Π_{k=s+1..t} exp(Δ_k A) is one exponential of a difference of cumulative sums,
never above 1 since A < 0: stable in log space). The discretisation is the project's reference scan
(``ops/scan_reference.py``, mamba_ssm's ``selective_scan_ref``): B is multiplied by Δ (Euler), not ZOH.
α is the SSM's own mixing of its input u (the sequence after the block's conv and activation); D (the
skip, α's diagonal is without it), out_norm, channel gates and the SiLU(z) gate are outside it.

``ssm_attention`` reads one block's scan inputs during a forward pass (``SelectiveSSM.scan_inputs`` on the
arguments recorded by a forward pre-hook), computes the row α[t_query, :] of every scan direction, puts it
back at the 2-D positions of the block's feature map (``models.scans.direction_indices``, the same
permutation the mixer gathers with), scales it as the mixer's merge does (1/K for 'mean') and averages it
over channels: mean of |α| by default (how much the query draws from each cell, whatever the sign), the
signed mean with ``signed=True``. ``.maps`` holds one map per direction and their sum, upsampled (nearest)
to the input size. The methods are implemented here (no grad-cam dependency).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UsageError
from ..models import scans
from ..models.mixers import DepthwiseConvMixer
from ..models.ssm import ConvSSMMixer, SeqScanMixer
from ..models.vit import AttentionMixer
from .inputs import pick

SSM_MIXERS = (ConvSSMMixer, SeqScanMixer)

__all__ = [
    "AttentionResult",
    "SSMCapture",
    "capture_ssm",
    "footprint",
    "has_ssm",
    "hidden_attention_matrix",
    "mixing_map",
    "pixel_attention",
    "ssm_attention",
]


# --- the matrix ------------------------------------------------------------------------------------------


def _expand_groups(M: torch.Tensor, dim: int) -> torch.Tensor:
    """(b, N, L) -> (b, 1, N, L); (b, G, N, L) -> (b, dim, N, L), group g serving dim/G channels."""
    return M.unsqueeze(1) if M.dim() == 3 else M.repeat_interleave(dim // M.shape[1], dim=1)


def hidden_attention_matrix(
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    rows: Sequence[int] | None = None,
) -> torch.Tensor:
    """α of a selective scan: (batch, d, L, L), lower-triangular (α[t, s] = 0 for s > t).

    ``delta``: the effective step (batch, d, L), i.e. after delta_bias and softplus; ``A`` (d, N);
    ``B``, ``C`` (batch, N, L) or grouped (batch, G, N, L), as ``ops.selective_scan`` takes them.
    ``rows``: only these query steps t -> (batch, d, len(rows), L) (a full matrix of a large map does not
    fit in memory). Computed in fp64 when any input is fp64, else fp32; the loop runs over the state.
    """
    dt = torch.float64 if any(t.dtype == torch.float64 for t in (delta, A, B, C)) else torch.float32
    delta, A = delta.to(dt), A.to(dt)
    b, d, L = delta.shape
    Bx, Cx = _expand_groups(B.to(dt), d), _expand_groups(C.to(dt), d)  # (b, d|1, N, L)
    t = torch.arange(L, device=delta.device) if rows is None else torch.as_tensor(rows, device=delta.device)
    S = delta.cumsum(-1)
    gap = S[..., t, None] - S[..., None, :]  # (b, d, T, L): Σ_{k=s+1..t} Δ_k where s <= t
    causal = torch.arange(L, device=delta.device)[None, :] <= t[:, None]  # (T, L)
    gap = gap.clamp_min(0)  # s > t is masked below; clamping keeps exp() finite there
    alpha = delta.new_zeros(b, d, t.numel(), L)
    for n in range(A.shape[1]):
        decay = torch.exp(A[:, n, None, None] * gap)
        alpha += Cx[:, :, n, t, None] * decay * (delta * Bx[:, :, n])[:, :, None, :]
    return alpha * causal


# --- reading a block's scan ------------------------------------------------------------------------------


class _Stop(Exception):
    """Ends the forward pass once the block of interest has run."""


@dataclass
class SSMCapture:
    """One SSM mixer's scan on one forward pass: its feature map size and ``selective_scan`` arguments."""

    mixer: nn.Module
    H: int
    W: int
    scan: dict  # SelectiveSSM.scan_inputs: u, delta, A, B, C, D, delta_bias, delta_softplus
    output: torch.Tensor  # the SSM's output (B, K, d, L), before merge, norm and gate

    @property
    def directions(self) -> tuple[str, ...]:
        return tuple(self.mixer.directions)

    def padded_size(self) -> tuple[int, int]:
        """The atrous scans pad an odd map to even (``scans.cross_scan``)."""
        if scans.is_atrous(self.directions):
            return self.H + self.H % 2, self.W + self.W % 2
        return self.H, self.W

    def direction(self, k: int) -> dict:
        """Direction k's own scan: u and the effective Δ (b, d, L), A (d, N), B, C (b, N, L), D (d,)."""
        s, d = self.scan, self.mixer.ssm.dim
        ch = slice(k * d, (k + 1) * d)
        delta = s["delta"][:, ch] + s["delta_bias"][ch, None].to(s["delta"].dtype)
        if s["delta_softplus"]:
            delta = F.softplus(delta)
        B, C = (s["B"], s["C"]) if s["B"].dim() == 3 else (s["B"][:, k], s["C"][:, k])
        return dict(u=s["u"][:, ch], delta=delta, A=s["A"][ch], B=B, C=C, D=s["D"][ch])


def _to_batch(model: nn.Module, image) -> torch.Tensor:
    x = torch.as_tensor(image)
    if x.dim() == 3:
        x = x[None]
    if x.dim() != 4 or x.shape[0] != 1:
        raise UsageError(f"explain one image at a time: expected (C, H, W) or (1, C, H, W), got {tuple(x.shape)}")
    p = next(model.parameters())
    return x.to(device=p.device, dtype=p.dtype)


@torch.no_grad()
def _run_until(model: nn.Module, x: torch.Tensor, module: nn.Module, on_input=None, on_output=None) -> None:
    """Forward ``x`` with hooks on ``module``; stop right after it ran (the later layers are not needed)."""
    handles = []
    if on_input is not None:

        def seen(m, args):
            on_input(args)  # returns None: a pre-hook's return value would replace the arguments

        handles.append(module.register_forward_pre_hook(seen))

    def done(m, args, out):
        if on_output is not None:
            on_output(out)
        raise _Stop

    handles.append(module.register_forward_hook(done))
    was_training = model.training
    model.eval()
    try:
        model(x)
    except _Stop:
        return
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    raise UsageError("the chosen block did not run in the model's forward pass")


def capture_ssm(model: nn.Module, image, mixer: nn.Module) -> SSMCapture:
    """Run ``image`` through ``model`` and record the scan of ``mixer`` (a conv_ssm/mamba1d/bimamba/multiscan).

    ``model`` may be the mixer itself (``image`` then a channels-last (1, H, W, C) map). The forward pass
    stops right after the mixer's SSM.
    """
    rec = {}
    # the mixer's input gives the map size; the SSM's input gives the scan
    hook = mixer.register_forward_pre_hook(lambda m, args: rec.update(hw=args[0].shape[1:3]))
    try:
        _run_until(
            model,
            _to_batch(model, image),
            mixer.ssm,
            on_input=lambda args: rec.update(args=args),
            on_output=lambda out: rec.update(out=out),
        )
    finally:
        hook.remove()
    with torch.no_grad():
        scan = mixer.ssm.scan_inputs(*rec["args"])
    H, W = (int(v) for v in rec["hw"])
    return SSMCapture(mixer, H, W, scan, rec["out"])


@torch.no_grad()
def pixel_attention(cap: SSMCapture, cells: Sequence[int] | None = None) -> dict[str, torch.Tensor]:
    """α of every direction at 2-D positions: name -> (b, d, Q, H*W), rows = query cells (raster index
    ``r * W + c`` of the block's map; all cells by default), columns = source cells, scaled by the merge.

    A direction that does not visit a query cell (an atrous sub-grid) has a zero row for it.
    """
    Hp, Wp = cap.padded_size()
    cells = list(range(cap.H * cap.W)) if cells is None else [int(c) for c in cells]
    padded = torch.tensor([c // cap.W * Wp + c % cap.W for c in cells], dtype=torch.long)
    scale = 1 / len(cap.directions) if cap.mixer.merge == "mean" else 1.0
    out = {}
    for k, name in enumerate(cap.directions):
        idx = scans.direction_indices(name, Hp, Wp)  # scan step -> padded raster position
        step = torch.full((Hp * Wp,), -1, dtype=torch.long)
        step[idx] = torch.arange(idx.numel())
        t = step[padded]
        s = cap.direction(k)
        b, d = s["u"].shape[:2]
        grid = s["delta"].new_zeros(b, d, len(cells), Hp * Wp, dtype=torch.float64)
        seen = (t >= 0).nonzero().flatten()
        if seen.numel():
            alpha = hidden_attention_matrix(
                s["delta"].double(), s["A"].double(), s["B"].double(), s["C"].double(), rows=t[seen].tolist()
            )
            dev = grid.device
            grid[:, :, seen.to(dev)[:, None], idx.to(dev)[None, :]] = alpha * scale
        grid = grid.view(b, d, len(cells), Hp, Wp)[..., : cap.H, : cap.W]
        out[name] = grid.reshape(b, d, len(cells), cap.H * cap.W)
    return out


# --- choosing a block ------------------------------------------------------------------------------------


def _stages(model: nn.Module) -> list[Sequence[nn.Module]]:
    """Blocks per stage: a hierarchical net's stages, an isotropic net's one stage of blocks."""
    if isinstance(getattr(model, "stages", None), nn.Module):
        return [getattr(s, "blocks", s) for s in model.stages]
    if isinstance(getattr(model, "blocks", None), nn.Module):
        return [model.blocks]
    inner = getattr(model, "backbone", None) or getattr(model, "trunk", None)
    if isinstance(inner, nn.Module):
        return _stages(inner)
    raise UsageError(f"{type(model).__name__} has no stages or blocks to explain")


def _block(model: nn.Module, stage: int, block: int) -> tuple[nn.Module, int, int]:
    stages = _stages(model)
    si = pick(stage, len(stages))
    blocks = list(stages[si])
    bi = pick(block, len(blocks), "block", f"stage {si}")
    return blocks[bi], si, bi


def _find(module: nn.Module, kinds: tuple) -> nn.Module | None:
    return next((m for m in module.modules() if isinstance(m, kinds)), None)


def _where(model: nn.Module, kinds: tuple) -> list[int]:
    return [i for i, blocks in enumerate(_stages(model)) if any(_find(b, kinds) for b in blocks)]


def _query(x: torch.Tensor, query) -> tuple[int, int]:
    H, W = x.shape[-2:]
    try:
        qy, qx = (int(v) for v in query)
    except (TypeError, ValueError):
        raise UsageError(f"a query is two integers (y, x), got {query!r}") from None
    if not (0 <= qy < H and 0 <= qx < W):
        raise UsageError(f"query ({qy}, {qx}) is outside the {H}x{W} image (y in 0..{H - 1}, x in 0..{W - 1})")
    return qy, qx


def _upsample(grid: torch.Tensor, H: int, W: int) -> np.ndarray:
    """(h, w) -> (H, W), nearest: input pixel (y, x) shows cell (y*h//H, x*w//W), the query's own mapping."""
    up = F.interpolate(grid[None, None].double(), size=(H, W), mode="nearest")[0, 0]
    return up.cpu().numpy()


# --- results ---------------------------------------------------------------------------------------------


@dataclass
class AttentionResult:
    """Maps of how much the output at ``query`` draws from each input pixel.

    ``maps``: name -> (H, W) at input resolution (one per scan direction and "sum"; "kernel"/"attention"
    and "sum" for ``footprint``); ``feature_maps``: the same at the block's feature-map resolution;
    ``query``: (y, x) in input pixels; ``cell``: its (row, col) on the feature map.
    """

    maps: dict[str, np.ndarray]
    query: tuple[int, int]
    cell: tuple[int, int]
    feature_maps: dict[str, np.ndarray]
    kind: str  # "ssm", "conv" or "attention"
    stage: int
    block: int
    signed: bool = False
    info: dict = field(default_factory=dict)

    def save_png(self, path: str, image) -> None:
        """The input with the query marked, then one panel per map (overlaid on the input); Agg backend."""
        from matplotlib.figure import Figure

        img = torch.as_tensor(image).detach().float().cpu()
        img = img[0] if img.dim() == 4 else img
        shape = next(iter(self.maps.values())).shape
        if img.dim() != 3 or tuple(img.shape[-2:]) != shape:
            raise UsageError(f"save_png needs the explained {shape[0]}x{shape[1]} image, got {tuple(img.shape)}")
        img = img[:3].permute(1, 2, 0) if img.shape[0] >= 3 else img.mean(0)
        img = ((img - img.min()) / (img.max() - img.min()).clamp_min(1e-12)).numpy()
        gray = dict(cmap="gray") if img.ndim == 2 else {}
        n = 1 + len(self.maps)
        fig = Figure(figsize=(2.6 * n, 2.9))
        axes = fig.subplots(1, n, squeeze=False)[0]
        axes[0].imshow(img, **gray)
        axes[0].set_title(f"input, query {self.query}", fontsize=8)
        for ax, (name, m) in zip(axes[1:], self.maps.items()):
            ax.imshow(img, **gray, alpha=0.35)
            if self.signed:
                lim = float(np.abs(m).max()) or 1.0
                ax.imshow(m, cmap="RdBu_r", vmin=-lim, vmax=lim, alpha=0.75)
            else:
                ax.imshow(m, cmap="magma", alpha=0.75)
            ax.set_title(name, fontsize=8)
        for ax in axes:
            ax.plot([self.query[1]], [self.query[0]], marker="+", color="cyan", markersize=10, mew=2)
            ax.set_xticks([])
            ax.set_yticks([])
        fig.suptitle(f"{self.kind}: stage {self.stage}, block {self.block}", fontsize=9)
        fig.tight_layout()
        fig.savefig(path, dpi=100)


@torch.no_grad()
def ssm_attention(
    model: nn.Module, image, query: tuple[int, int], stage: int = -1, block: int = -1, *, signed: bool = False
) -> AttentionResult:
    """The hidden attention of one block's SSM for the query pixel (see the module docstring)."""
    x = _to_batch(model, image)
    qy, qx = _query(x, query)
    if not _where(model, SSM_MIXERS):
        raise UsageError(
            f"{type(model).__name__} has no SSM layers: ssm-attention needs a Mamba-style model "
            "(footprint explains conv and attention mixers)"
        )
    blk, si, bi = _block(model, stage, block)
    mixer = _find(blk, SSM_MIXERS)
    if mixer is None:
        have = ", ".join(map(str, _where(model, SSM_MIXERS)))
        raise UsageError(f"stage {si} block {bi} has no SSM layer (stages with SSM layers: {have})")
    cap = capture_ssm(model, x, mixer)
    H, W = x.shape[-2:]
    cell = (qy * cap.H // H, qx * cap.W // W)
    rows = pixel_attention(cap, [cell[0] * cap.W + cell[1]])
    feature, maps = {}, {}
    for name, a in rows.items():
        a = a[0, :, 0]  # (d, H*W)
        feature[name] = (a if signed else a.abs()).mean(0).view(cap.H, cap.W)
    feature["sum"] = torch.stack(list(feature.values())).sum(0)
    for name, g in feature.items():
        maps[name] = _upsample(g, H, W)
    info = dict(mixer=type(mixer).__name__, directions=list(cap.directions), feature_size=[cap.H, cap.W])
    return AttentionResult(
        maps, (qy, qx), cell, {k: v.cpu().numpy() for k, v in feature.items()}, "ssm", si, bi, signed, info
    )


@torch.no_grad()
def footprint(model: nn.Module, image, query: tuple[int, int], stage: int = -1, block: int = -1) -> AttentionResult:
    """The conv or attention counterpart of :func:`ssm_attention` for one block.

    A depthwise conv mixer (MambaOut's, also the conv in front of a conv_ssm): |kernel| summed over
    channels, centred on the query's cell (the taps that fall off the map are dropped; a causal kernel
    keeps its mask). An attention mixer (ViT): the query token's softmax row, averaged over heads.
    """
    x = _to_batch(model, image)
    qy, qx = _query(x, query)
    kinds = (AttentionMixer, DepthwiseConvMixer)
    blk, si, bi = _block(model, stage, block)
    mixer = _find(blk, (AttentionMixer,))
    if mixer is None:  # attention first: a hybrid block may hold both
        mixer = _find(blk, (DepthwiseConvMixer,))
    if mixer is None:
        have = ", ".join(map(str, _where(model, kinds))) or "none"
        raise UsageError(
            f"stage {si} block {bi} has neither a depthwise-conv nor an attention mixer (stages with one: {have})"
        )
    rec = {}
    _run_until(model, x, mixer, on_input=lambda args: rec.update(x=args[0]))
    tokens = rec["x"]  # (1, h, w, C) channels-last
    h, w = tokens.shape[1:3]
    H, W = x.shape[-2:]
    cell = (qy * h // H, qx * w // W)
    with torch.no_grad():
        if isinstance(mixer, AttentionMixer):
            kind, name = "attention", "attention"
            grid = _attention_row(mixer, tokens, cell[0] * w + cell[1]).view(h, w)
        else:
            kind, name = "conv", "kernel"
            grid = _kernel_footprint(mixer, h, w, cell)
    feature = {name: grid.double(), "sum": grid.double()}
    maps = {k: _upsample(v, H, W) for k, v in feature.items()}
    info = dict(mixer=type(mixer).__name__, feature_size=[h, w])
    return AttentionResult(
        maps, (qy, qx), cell, {k: v.cpu().numpy() for k, v in feature.items()}, kind, si, bi, info=info
    )


def has_ssm(model: nn.Module) -> bool:
    from ..models.ssm import SelectiveSSM

    return any(isinstance(m, SelectiveSSM) for m in model.modules())


def mixing_map(model: nn.Module, image, query: tuple[int, int], stage: int = -1, block: int = -1) -> AttentionResult:
    """What one block mixes into the query pixel: the SSM's hidden attention where the model has SSM layers,
    else its conv kernel's or attention's footprint (how MambaOut and its SSM pair are compared)."""
    explain = ssm_attention if has_ssm(model) else footprint
    return explain(model, image, query, stage, block)


def _kernel_footprint(conv: DepthwiseConvMixer, h: int, w: int, cell: tuple[int, int]) -> torch.Tensor:
    weight = conv.weight * conv.causal_mask if conv.causal else conv.weight
    taps = weight.detach().abs().sum((0, 1))  # (k, k)
    k, pad = taps.shape[0], conv.padding[0]
    grid = taps.new_zeros(h, w)
    # cross-correlation: output (r, c) reads input (r + i - pad, c + j - pad) with tap (i, j)
    r0, c0 = cell[0] - pad, cell[1] - pad
    ys, xs = slice(max(r0, 0), min(r0 + k, h)), slice(max(c0, 0), min(c0 + k, w))
    grid[ys, xs] = taps[ys.start - r0 : ys.stop - r0, xs.start - c0 : xs.stop - c0]
    return grid


def _attention_row(attn: AttentionMixer, tokens: torch.Tensor, t: int) -> torch.Tensor:
    """Softmax(q_t k^T / sqrt(head_dim)) of token t, mean over heads (as ``AttentionMixer.forward``)."""
    B, H, W, C = tokens.shape
    L, heads = H * W, attn.num_heads
    qkv = attn.qkv(tokens.reshape(B, L, C)).view(B, L, 3, heads, C // heads)
    q, k = qkv[0, t, 0], qkv[0, :, 1]  # (heads, hd), (L, heads, hd)
    logits = torch.einsum("hd,lhd->hl", q, k) * (C // heads) ** -0.5
    if attn.causal:
        logits[:, t + 1 :] = float("-inf")
    return logits.softmax(-1).mean(0)
