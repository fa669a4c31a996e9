"""The autograd Function that launches the scan kernels, and :func:`selective_scan_triton`.

Importing this module never fails: without triton the kernel modules are not imported and :func:`available`
returns False.
"""

from __future__ import annotations

import dataclasses
import os

import torch

from .._common import check_scan_args
from .config import BWD_LAYOUTS, TileConfig, cdiv, default_config, fit_config, next_pow2, tmw_lanes

try:  # pragma: no cover - depends on the environment
    import triton  # noqa: F401

    HAVE_TRITON = True
except Exception:  # ImportError, or a broken install
    HAVE_TRITON = False

if HAVE_TRITON:
    from .sn import _scan_bwd_kernel_sn, _scan_fwd_kernel_sn
    from .tm import _scan_fwd_kernel_tm
    from .tmw import _scan_bwd_kernel_tmw, _scan_fwd_kernel_tmw

    FWD_KERNELS = {"tm": _scan_fwd_kernel_tm, "tmw": _scan_fwd_kernel_tmw, "sn": _scan_fwd_kernel_sn}
    BWD_KERNELS = {"tmw": _scan_bwd_kernel_tmw, "sn": _scan_bwd_kernel_sn}


def available() -> bool:
    """True when triton imports and a CUDA device is present (the kernels can run)."""
    if not HAVE_TRITON:
        return False
    try:
        return torch.cuda.is_available()
    except Exception:  # pragma: no cover
        return False


def _interpreting() -> bool:
    # the interpreter runs no inline asm: the kernels' ASM and FAST_EW paths stay off under it
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


# Tests set this to fill every output buffer with NaN before the kernels run, so an element the
# kernels fail to write shows up.
_POISON = False


def _out_like(t: torch.Tensor, *shape, dtype=None) -> torch.Tensor:
    x = torch.empty(shape or t.shape, device=t.device, dtype=dtype or t.dtype)
    if _POISON:
        x.fill_(float("nan"))
    return x


# compiler facts of the kernels last launched (registers, spills), for benchmarks and notes
last_kernel_info: dict = {}


def _record(name, kernel, cfg: TileConfig):
    try:
        last_kernel_info[name] = {
            **dataclasses.asdict(cfg),
            "n_regs": getattr(kernel, "n_regs", None),
            "n_spills": getattr(kernel, "n_spills", None),
            "shared": getattr(kernel, "shared", None),
        }
    except Exception:  # pragma: no cover
        pass


def _check_config(cfg, which: str) -> TileConfig:
    if cfg is not None and not isinstance(cfg, TileConfig):
        raise TypeError(f"selective_scan_triton: {which} must be a TileConfig or None, got {type(cfg).__name__}")
    if which == "bwd_config" and cfg is not None and cfg.layout not in BWD_LAYOUTS:
        raise ValueError(
            f"selective_scan_triton: layout {cfg.layout!r} has no backward kernel; choose one of {', '.join(BWD_LAYOUTS)}"
        )
    return cfg


def triton_forward(u, delta, A, Bm, Cm, Dv, z, bias, softplus, return_last, need_grad, fwd_cfg=None, bwd_cfg=None):
    """Launch the forward kernel on grouped B/C (b, G, N, L).  Returns ``(out, last, states, bcfg)``: ``last`` is
    ``out`` itself unless ``return_last``, ``states`` (what :func:`triton_backward` needs) is ``out`` unless
    ``need_grad``, and ``bcfg`` the backward's tiles (None without ``need_grad``)."""
    bsz, dim, L = u.shape
    N = A.shape[1]
    G = Bm.shape[1]
    u = u.contiguous()
    delta = delta.contiguous()
    A = A.contiguous()
    Bm = Bm.contiguous()
    Cm = Cm.contiguous()
    z = z.contiguous() if z is not None else None
    Dv = Dv.contiguous() if Dv is not None else None
    bias = bias.contiguous() if bias is not None else None
    es = u.element_size()
    cfg = fit_config(fwd_cfg or default_config(N, L, itemsize=es), dim, G)
    bcfg = None
    if need_grad:
        # The backward recomputes each of its tiles from the state saved at the tile's start, so the forward
        # saves states every backward BLOCK_T steps: tmw can keep a longer tile and save inside it, the
        # others run the backward's tile.
        bcfg = backward_config(N, L, es, dim, G, bwd_cfg)
        if cfg.layout != "tmw" or cfg.block_t < bcfg.block_t:
            cfg = cfg.replace(block_t=bcfg.block_t)
        if bcfg.layout == "sn" and cfg.layout != "sn":
            # sn's tiles are long (128-256 steps), which the other forwards would spill: run sn both ways
            cfg = bcfg
    if "sn" in (cfg.layout, bcfg.layout if need_grad else None) and N > 2:
        raise ValueError(f"selective_scan_triton: layout 'sn' needs d_state <= 2, got {N}")
    BT = cfg.block_t
    NT = cdiv(L, BT)
    save_t = bcfg.block_t if need_grad else BT
    out = _out_like(u)
    last = _out_like(u, bsz, dim, N, dtype=torch.float32) if return_last else out
    # every forward saves the same states, (B, cdiv(L, backward BLOCK_T), D, N) fp32 at the backward's tile
    # starts, so any forward feeds any backward
    states = _out_like(u, bsz, cdiv(L, save_t), dim, N, dtype=torch.float32) if need_grad else out
    grid = (cdiv(dim, cfg.block_d), bsz)
    ex = {}
    if cfg.layout in ("tm", "tmw"):
        ex["ASM"] = not _interpreting()
    if cfg.layout == "tmw":
        ex["NL"] = tmw_lanes(cfg, next_pow2(N), backward=False)
        ex["SAVE_T"] = save_t
        ex["PREFETCH"] = cfg.prefetch
    k = FWD_KERNELS[cfg.layout][grid](
        u, delta, A, Bm, Cm, Dv if Dv is not None else u, z if z is not None else u,
        bias if bias is not None else u, out, last, states,
        L, dim, N, G, dim // G, NT,
        BLOCK_D=cfg.block_d, NP=next_pow2(N), BLOCK_T=BT,
        HAS_D=Dv is not None, HAS_Z=z is not None, HAS_BIAS=bias is not None, SOFTPLUS=bool(softplus),
        SAVE_STATES=need_grad, STORE_LAST=bool(return_last),
        num_warps=cfg.warps, **ex,
    )  # fmt: skip
    _record("fwd", k, cfg)
    return out, last, states, bcfg


def backward_config(N: int, L: int, itemsize: int, dim: int, G: int, bwd_cfg=None) -> TileConfig:
    """The backward's tiles (the forward saves its states at their starts)."""
    return fit_config(bwd_cfg or default_config(N, L, backward=True, itemsize=itemsize), dim, G)


def triton_backward(u, delta, A, Bm, Cm, Dv, z, bias, states, dout, softplus, cfg: TileConfig):
    """Launch the backward kernel; returns (du, ddelta, dA, dB, dC, dD, dz, dbias), None for absent inputs."""
    u, delta, A, Bm, Cm, Dv, z, bias = (
        t.contiguous() if t is not None else None for t in (u, delta, A, Bm, Cm, Dv, z, bias)
    )
    bsz, dim, L = u.shape
    N = A.shape[1]
    G = Bm.shape[1]
    NT = states.shape[1]
    dout = dout.contiguous()
    du = _out_like(u)
    ddelta = _out_like(delta)
    dz = _out_like(z) if z is not None else None
    # dB, dC: atomic adds into fp32 sums, or (deterministic) per-program partials summed below.  Every channel
    # block of a group adds into the same rows, and past ~256 blocks a group the adds serialize in L2 (H100:
    # slower than the partials there, faster below)
    ndb = cdiv(dim, cfg.block_d)  # channel blocks; a multiple of G (block_d divides D/G)
    atomic = cfg.atomic_bc if cfg.atomic_bc is not None else ndb // G <= 256
    atomic = atomic and not torch.are_deterministic_algorithms_enabled()
    # everything summed with atomics shares one zero-filled buffer: one memset a call
    acc = torch.zeros(dim * (N + 2) + (2 * bsz * G * N * L if atomic else 0), device=u.device, dtype=torch.float32)
    dA = acc[: dim * N].view(dim, N)
    dD = acc[dim * N : dim * (N + 1)] if Dv is not None else None
    dbias = acc[dim * (N + 1) : dim * (N + 2)] if bias is not None else None
    if atomic:
        part = acc[dim * (N + 2) :].view(2, bsz, G, N, L)
    else:
        part = _out_like(u, 2, bsz, ndb, N, L, dtype=torch.float32)
    dBp, dCp = part[0], part[1]
    grid = (cdiv(dim, cfg.block_d), bsz)
    NP = next_pow2(N)
    ex = {}
    if cfg.layout == "tmw":
        ex["NL"] = tmw_lanes(cfg, NP, backward=True)
        ex["PREFETCH"] = cfg.prefetch
        ex["FAST_EW"] = cfg.fast_ew and not _interpreting()
    k = BWD_KERNELS[cfg.layout][grid](
        u, delta, A, Bm, Cm, Dv if Dv is not None else u, z if z is not None else u,
        bias if bias is not None else u, dout, states,
        du, ddelta, dA, dBp, dCp, dD if dD is not None else dA, dz if dz is not None else du,
        dbias if dbias is not None else dA,
        L, dim, N, G, dim // G, NT, ndb,
        BLOCK_D=cfg.block_d, NP=NP, BLOCK_T=cfg.block_t,
        HAS_D=Dv is not None, HAS_Z=z is not None, HAS_BIAS=bias is not None, SOFTPLUS=bool(softplus),
        ATOMIC_BC=atomic, num_warps=cfg.warps, **ex,
    )  # fmt: skip
    _record("bwd", k, cfg)
    if not atomic:
        part = part.view(2, bsz, G, ndb // G, N, L).sum(3)
    dB, dC = part.to(Bm.dtype)
    return (
        du, ddelta, dA.to(A.dtype), dB, dC.to(Cm.dtype),
        dD.to(Dv.dtype) if dD is not None else None,
        dz,
        dbias.to(bias.dtype) if bias is not None else None,
    )  # fmt: skip


class _TritonScanFn(torch.autograd.Function):
    """Autograd around the kernels for explicit tile configs; :mod:`.op` is the same as a torch.library op."""

    @staticmethod
    def forward(ctx, u, delta, A, Bm, Cm, Dv, z, bias, softplus, return_last, fwd_cfg, bwd_cfg):
        need_grad = any(ctx.needs_input_grad[:8])
        out, last, states, bcfg = triton_forward(
            u, delta, A, Bm, Cm, Dv, z, bias, softplus, return_last, need_grad, fwd_cfg, bwd_cfg
        )
        if need_grad:
            ctx.save_for_backward(u, delta, A, Bm, Cm, Dv, z, bias, states)
            ctx.softplus = bool(softplus)
            ctx.bcfg = bcfg
        if return_last:
            ctx.mark_non_differentiable(last)
            return out, last
        return out

    @staticmethod
    def backward(ctx, dout, *unused):
        grads = triton_backward(*ctx.saved_tensors, dout, ctx.softplus, ctx.bcfg)
        return (*grads, None, None, None, None)


def selective_scan_triton(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
    *,
    fwd_config: TileConfig | None = None,
    bwd_config: TileConfig | None = None,
):
    """Fused Triton S6 scan (CUDA tensors). Inputs fp32/fp16/bf16; state in fp32; out in u's dtype.

    Gradients flow to u, delta, A, B, C, D, z, delta_bias; ``last_state`` (fp32) has none.
    ``fwd_config`` / ``bwd_config``: :class:`TileConfig` overrides of :func:`default_config`'s tiles (the backward
    has layouts "tmw" and "sn" only); without either the call goes through the ``mambaout::selective_scan``
    operator (:mod:`.op`), with them through an autograd Function.  With autograd on, a forward other than tmw runs with the backward's
    block_t so the saved tile states line up, and an sn backward makes the forward sn too.
    """
    if not HAVE_TRITON:
        raise RuntimeError("selective_scan_triton: triton is not installed")
    shp = check_scan_args(u, delta, A, B, C, D, z, delta_bias)
    _check_config(fwd_config, "fwd_config")
    _check_config(bwd_config, "bwd_config")
    if not (u.is_cuda or _interpreting()):
        raise RuntimeError("selective_scan_triton: inputs must be CUDA tensors (use backend='torch' on CPU)")
    if shp.d_state > 256:
        raise ValueError(f"selective_scan_triton: d_state={shp.d_state} > 256 is not supported")
    if u.dtype == torch.float64:
        raise ValueError("selective_scan_triton: float64 is not supported (use backend='torch')")
    bsz, dim, L, N, G = shp
    Bm = B if B.dim() == 4 else B.unsqueeze(1)
    Cm = C if C.dim() == 4 else C.unsqueeze(1)
    if L == 0:
        out = torch.zeros_like(u)
        last = torch.zeros(bsz, dim, N, device=u.device, dtype=torch.float32)
        return (out, last) if return_last_state else out
    if fwd_config is None and bwd_config is None:  # the torch.library op: one node for torch.compile / export
        from .op import run_op

        return run_op(u, delta, A, Bm, Cm, D, z, delta_bias, delta_softplus, return_last_state)
    return _TritonScanFn.apply(
        u, delta, A, Bm, Cm, D, z, delta_bias, delta_softplus, return_last_state, fwd_config, bwd_config
    )
