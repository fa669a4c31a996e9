"""Fused gate of the Gated CNN block: ``act(g) * cat(i, dwconv(c))`` from fc1's output in one Triton pass.

``gated_dwconv(h, weight, bias, n_id, act)`` takes fc1's channels-last output h (B, H, W, 2*HD), split as
g (HD) | i (n_id) | c (HD - n_id), and returns the input of fc2, (B, H, W, HD), in h's dtype (fp32 arithmetic).
``weight`` (NC, 1, K, K), ``bias`` (NC,) or None: the depthwise conv on c (K odd, zero padding K // 2).

It is the torch.library custom op ``mambaout::gated_dwconv`` (opaque to torch.compile, which fuses the LayerNorm,
residual and casts around it) with a registered backward, two kernels (:mod:`.gated_kernels`):

* the gate kernel recomputes conv(c) (nothing but y is saved besides h) and writes d g, d i and
  e = dy * act(g) on the conv channels;
* the transposed-conv kernel writes d c and per-tile partial sums of d weight / d bias, which torch adds up
  (deterministic, no atomics).

docs/notes/fused_gated_block.md has the design and the bytes-moved reasoning.  :func:`use_fused` is the policy the
block follows (env ``MAMBAOUT_FUSED``).  Importing this module never fails: without triton the op raises.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import torch

from .counting import active_counters

try:  # pragma: no cover - depends on the environment
    from . import gated_kernels as _k

    HAVE_TRITON = True
except Exception:  # ImportError, or a broken install
    HAVE_TRITON = False

ACTS = ("gelu", "silu", "relu")  # the activation codes of the kernels, in order

# Tests set this to fill every output buffer with NaN before the kernels run, so an unwritten element shows up.
_POISON = False


def _empty(*shape, like: torch.Tensor, dtype=None) -> torch.Tensor:
    x = torch.empty(*shape, device=like.device, dtype=dtype or like.dtype)
    return x.fill_(float("nan")) if _POISON else x


class GateConfig(NamedTuple):
    """Tile of one program: BLOCK_H x BLOCK_W pixels (powers of two) x BLOCK_C channels, and its warps."""

    block_h: int
    block_w: int
    block_c: int
    num_warps: int


def _pow2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


def default_config(height: int, width: int) -> GateConfig:
    """Up to 8 x 16 pixels x 32 channels, 8 elements per thread (16 warps for a full tile).  Enough pixels per tile
    that the per-tile d-weight partials stay below the size of e; 8 elements per thread keeps the seven loads in
    flight of one kernel row within ~100 registers (sm_90 ptxas: 92-108, no spills, 16 resident warps per SM).
    At 16 elements per thread the same kernels take 143-146 registers (8 warps per SM)."""
    bw = min(16, _pow2(width))
    bh = min(8, _pow2(height), max(1, 128 // bw))
    return GateConfig(bh, bw, 32, max(1, min(16, bh * bw * 32 // 256)))


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def can_run(t: torch.Tensor) -> bool:
    """True when the kernels can run on t's device: CUDA with triton, or CPU under TRITON_INTERPRET=1."""
    if not HAVE_TRITON:
        return False
    if t.is_cuda:
        return True
    return t.device.type == "cpu" and interpreting()


def use_fused(t: torch.Tensor, requested: bool | None = None) -> bool:
    """Whether a block should take the fused path for input t.

    ``requested`` False: never; True: always (raises if the kernels cannot run here); None (default): the
    environment decides: ``MAMBAOUT_FUSED=0`` never, ``=1`` wherever the kernels run (also CPU under the Triton
    interpreter), unset: on CUDA only, so CPU behaviour is the reference block.  Never while a MAC counter,
    ONNX export or TorchScript tracing is active (they must see the aten ops)."""
    if requested is False:
        return False
    env = os.environ.get("MAMBAOUT_FUSED", "")
    if requested is None and (env == "0" or (env != "1" and not t.is_cuda)):
        return False  # the common CPU case, decided before the costlier checks below (every block asks)
    # (under torch.compile no counter, export or tracer is active: skip the checks dynamo cannot trace)
    if not torch.compiler.is_compiling() and (
        active_counters() or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()
    ):
        return False
    if requested:
        if not can_run(t):
            raise RuntimeError(
                "fused gated block: needs triton and a CUDA tensor (or TRITON_INTERPRET=1 on CPU); "
                "use fused=False or MAMBAOUT_FUSED=0"
            )
        return True
    return can_run(t) if env == "1" else HAVE_TRITON  # env unset: t is a CUDA tensor here


def _grid(h: torch.Tensor, cfg: GateConfig, channels: int):
    B, H, W = h.shape[:3]
    n_wt, n_ht = -(-W // cfg.block_w), -(-H // cfg.block_h)
    return (B * n_ht * n_wt, -(-channels // cfg.block_c)), n_wt, n_ht


def _config(h: torch.Tensor, tile: list[int]) -> GateConfig:
    return GateConfig(*tile) if tile else default_config(h.shape[1], h.shape[2])


def _even(hd: int, nc: int, cfg: GateConfig) -> bool:
    return hd % cfg.block_c == 0 and nc % cfg.block_c == 0


def _weight_taps(weight: torch.Tensor) -> torch.Tensor:
    """(NC, 1, K, K) -> (K*K, NC) fp32, contiguous: one tap's weights are contiguous over channels."""
    return weight.detach().reshape(weight.shape[0], -1).t().float().contiguous()


def _check(h: torch.Tensor, weight: torch.Tensor, n_id: int, act: str):
    if h.dim() != 4 or h.shape[-1] % 2:
        raise ValueError(f"gated_dwconv: h must be (B, H, W, 2*hidden), got {tuple(h.shape)}")
    hd, k = h.shape[-1] // 2, weight.shape[-1]
    if weight.dim() != 4 or weight.shape[1] != 1 or weight.shape[2] != k or k % 2 == 0:
        raise ValueError(f"gated_dwconv: weight must be (channels, 1, K, K) with K odd, got {tuple(weight.shape)}")
    if not 0 <= n_id < hd or weight.shape[0] != hd - n_id:
        raise ValueError(f"gated_dwconv: {weight.shape[0]} conv channels + n_id {n_id} must equal hidden {hd}")
    if act not in ACTS:
        raise ValueError(f"gated_dwconv: act must be one of {ACTS}, got {act!r}")
    if not HAVE_TRITON:
        raise RuntimeError("gated_dwconv: needs triton")


@torch.library.custom_op("mambaout::gated_dwconv", mutates_args=())
def _gated_dwconv_op(
    h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, n_id: int, act: str, tile: list[int]
) -> torch.Tensor:
    _check(h, weight, n_id, act)
    h = h.contiguous()
    B, H, W, C2 = h.shape
    hd, nc, k = C2 // 2, weight.shape[0], weight.shape[-1]
    cfg = _config(h, tile)
    wt = _weight_taps(weight)
    bv = bias.detach().float().contiguous() if bias is not None else torch.zeros(nc, device=h.device)
    y = _empty(B, H, W, hd, like=h)
    grid, n_wt, n_ht = _grid(h, cfg, hd)
    # (dy, dh, e unused in the forward: y stands in for the pointers)
    _k._gate_kernel[grid](
        h, wt, bv, y, y, y, y, H, W, hd, n_id, nc, n_wt, n_ht,
        K=k, ACT=ACTS.index(act), BACKWARD=False, EVEN_C=_even(hd, nc, cfg),
        BLOCK_H=cfg.block_h, BLOCK_W=cfg.block_w, BLOCK_C=cfg.block_c, num_warps=cfg.num_warps,
    )  # fmt: skip
    return y


@_gated_dwconv_op.register_fake
def _(h, weight, bias, n_id, act, tile):
    return h.new_empty(*h.shape[:3], h.shape[-1] // 2)


@torch.library.custom_op("mambaout::gated_dwconv_backward", mutates_args=())
def _gated_dwconv_bwd_op(
    dy: torch.Tensor, h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, n_id: int, act: str,
    tile: list[int],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    _check(h, weight, n_id, act)
    h, dy = h.contiguous(), dy.contiguous().to(h.dtype)
    B, H, W, C2 = h.shape
    hd, nc, k = C2 // 2, weight.shape[0], weight.shape[-1]
    cfg = _config(h, tile)
    wt = _weight_taps(weight)
    bv = bias.detach().float().contiguous() if bias is not None else torch.zeros(nc, device=h.device)
    dh = _empty(*h.shape, like=h)
    e = _empty(B, H, W, nc, like=h)
    grid, n_wt, n_ht = _grid(h, cfg, hd)
    _k._gate_kernel[grid](
        h, wt, bv, dh, dy, dh, e, H, W, hd, n_id, nc, n_wt, n_ht,
        K=k, ACT=ACTS.index(act), BACKWARD=True, EVEN_C=_even(hd, nc, cfg),
        BLOCK_H=cfg.block_h, BLOCK_W=cfg.block_w, BLOCK_C=cfg.block_c, num_warps=cfg.num_warps,
    )  # fmt: skip
    grid, n_wt, n_ht = _grid(h, cfg, nc)
    part = _empty(grid[0], k * k + 1, nc, like=h, dtype=torch.float32)
    _k._dconv_kernel[grid](
        e, h, wt, dh, part, H, W, hd, n_id, nc, n_wt, n_ht,
        K=k, EVEN_C=_even(hd, nc, cfg), BLOCK_H=cfg.block_h, BLOCK_W=cfg.block_w, BLOCK_C=cfg.block_c, num_warps=cfg.num_warps,
    )  # fmt: skip
    red = part.sum(0)
    dw = red[: k * k].t().reshape(weight.shape).to(weight.dtype, memory_format=torch.contiguous_format, copy=True)
    db = red[k * k].to(weight.dtype, copy=True)  # copies: a custom op's outputs must not alias
    return dh, dw, db


@_gated_dwconv_bwd_op.register_fake
def _(dy, h, weight, bias, n_id, act, tile):
    return torch.empty_like(h), torch.empty_like(weight), weight.new_empty(weight.shape[0])


def _setup_context(ctx, inputs, output):
    h, weight, bias, n_id, act, tile = inputs
    ctx.save_for_backward(h, weight, bias)
    ctx.args = (n_id, act, tile)


def _backward(ctx, dy):
    h, weight, bias = ctx.saved_tensors
    dh, dw, db = _gated_dwconv_bwd_op(dy, h, weight, bias, *ctx.args)
    return dh, dw, (db if bias is not None else None), None, None, None


_gated_dwconv_op.register_autograd(_backward, setup_context=_setup_context)


def gated_dwconv(
    h: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    n_id: int,
    act: str = "gelu",
    config: GateConfig | None = None,
) -> torch.Tensor:
    """``act(g) * cat(i, dwconv(c))`` with (g, i, c) = split(h, (HD, n_id, HD - n_id)); see the module docstring."""
    return _gated_dwconv_op(h, weight, bias, int(n_id), act, list(config) if config is not None else [])
