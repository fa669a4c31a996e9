"""Fast pure-PyTorch selective scan (S6) for CPU and GPU, with a hand-written backward.

Algorithm
---------
The sequence is cut into *blocks* of ``chunk_size`` time steps; only one block's (B, D, T, N)
tensors exist at a time, so memory is bounded by ``chunk_size`` (chosen from a budget when not
given), not by L.  Inside a block the first-order recurrence ``h_t = a_t * h_{t-1} + x_t`` with
``a_t = exp(delta_t * A)`` and ``x_t = delta_t * B_t * u_t`` is solved by a two-level,
work-efficient scan:

1. the block is viewed as ``nc`` sub-chunks of ``q`` steps laid out as (q, ..., nc, N), so that
   each of the q sequential steps is one contiguous vectorised op over all sub-chunks at once
   (``x[k] += a[k] * x[k-1]; a[k] *= a[k-1]``);
2. the nc sub-chunk totals are chained sequentially (one op each);
3. one fix-up op adds ``cumprod(a) * carry`` everywhere.

That is about ``2q + nc`` small kernels per block (q ~ sqrt(T)) and O(1) passes over the block.
Only products of decay factors ``exp(delta*A)`` are formed -- no ``exp`` of a cumulative sum and
no division by a decay -- so it is as stable as the sequential loop for any L (a products'
underflow to 0 is the exact limit, never inf/NaN).

Autograd
--------
``_ChunkScanFn`` saves only its inputs and the state at each block boundary, (B, D, L/T, N), and
recomputes each block in the backward pass, walking the blocks in reverse.  The adjoint state
``g_t = dL/dh_t`` obeys ``g_t = C_t * dy_t + a_{t+1} * g_{t+1}``, solved with the same scan run
backwards.  Gradients reach every input (u, delta, A, B, C, D, z, delta_bias) and last_state.
delta_bias / softplus / D / z are plain autograd ops around the core function (all (B, D, L)-sized).

Inputs in fp16/bf16 are upcast to fp32; fp64 inputs run in fp64 (useful for tests).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ._common import check_scan_args, compute_dtype

# Elements of one (B, D, T, N) block tensor; the backward keeps about 8 of these alive.
_BUDGET_CPU = 1 << 20
_BUDGET_CUDA = 1 << 25


def _to_blk(x: torch.Tensor, t0: int, t1: int, nc: int, q: int) -> torch.Tensor:
    """(..., L) -> contiguous (q, ..., nc) for time steps [t0, t1), zero-padded to nc*q."""
    seg = x[..., t0:t1]
    pad = nc * q - (t1 - t0)
    if pad:
        seg = F.pad(seg, (0, pad))
    seg = seg.reshape(*seg.shape[:-1], nc, q)
    return seg.movedim(-1, 0).contiguous()


def _bc_blk(M: torch.Tensor, t0: int, t1: int, nc: int, q: int) -> torch.Tensor:
    """(b, G, N, L) -> contiguous (q, b, G, 1, nc, N)."""
    return _to_blk(M, t0, t1, nc, q).transpose(-1, -2).unsqueeze(3).contiguous()


def _from_blk(x: torch.Tensor, tb: int) -> torch.Tensor:
    """(q, ..., nc) -> (..., tb)."""
    x = x.movedim(0, -1)
    return x.reshape(*x.shape[:-2], -1)[..., :tb]


def _from_blk_n(x: torch.Tensor, tb: int) -> torch.Tensor:
    """(q, b, G, nc, N) -> (b, G, N, tb)."""
    x = x.permute(1, 2, 4, 3, 0)
    return x.reshape(*x.shape[:-2], -1)[..., :tb]


def _scan_(a: torch.Tensor, la: torch.Tensor, x: torch.Tensor, h0: torch.Tensor, reverse: bool = False) -> torch.Tensor:
    """In-place two-level scan of ``h = a * h_prev + x`` over the time layout (q, ..., nc, N).

    ``a`` holds the decays and ``la`` their logs (``la`` is consumed).  Forward: ``x`` becomes
    ``h_t`` given the state ``h0`` before the block; returns the final state.  Reverse
    (``h_t = x_t + a_t * h_{t+1}``, ``h0`` = value after the block): returns h at the first step.

    The cumulative decay of each sub-chunk is ``exp(cumsum(log a))`` (a sum of non-positive terms
    for delta >= 0, so <= 1): unlike a running product of factors close to 1, whose fp32 roundings
    drop the second-order terms, it stays accurate for tiny steps.
    """
    q = a.shape[0]
    if not reverse:
        for k in range(1, q):
            x[k].addcmul_(a[k], x[k - 1])
        acum = la.cumsum_(0).exp_()
        a_tot, x_tot = acum[q - 1], x[q - 1]
    else:
        for k in range(q - 2, -1, -1):
            x[k].addcmul_(a[k], x[k + 1])
        acum = la.flip(0).cumsum_(0).exp_().flip(0)
        a_tot, x_tot = acum[0], x[0]
    nc = a_tot.shape[-2]
    if nc == 1:
        carry = h0.unsqueeze(-2)
        h = torch.addcmul(x_tot[..., 0, :], a_tot[..., 0, :], h0)
    else:
        carry = torch.empty_like(a_tot)  # state entering each sub-chunk
        h = h0
        order = range(nc) if not reverse else range(nc - 1, -1, -1)
        for c in order:
            carry[..., c, :] = h
            h = torch.addcmul(x_tot[..., c, :], a_tot[..., c, :], h)
    x.addcmul_(acum, carry.unsqueeze(0))
    return h


def _mul_prev(a: torch.Tensor, x: torch.Tensor, first: torch.Tensor) -> torch.Tensor:
    """``a_t * x_{t-1}`` in the (q, ..., nc, N) layout; ``first`` is x before the block start."""
    y = torch.empty_like(x)
    torch.mul(a[1:], x[:-1], out=y[1:])
    torch.mul(a[0, ..., 1:, :], x[-1, ..., :-1, :], out=y[0, ..., 1:, :])
    torch.mul(a[0, ..., 0, :], first, out=y[0, ..., 0, :])
    return y


def _shift_next(x: torch.Tensor, last) -> torch.Tensor:
    """Value at time t+1 in the (q, ..., nc, N) layout; ``last`` fills t = block end."""
    y = torch.empty_like(x)
    y[:-1] = x[1:]
    y[-1, ..., :-1, :] = x[0, ..., 1:, :]
    y[-1, ..., -1, :] = last
    return y


def _plan(L: int, T: int, sub: int | None):
    """Yield (t0, t1, nc, q) for blocks of T steps."""
    for t0 in range(0, L, T):
        t1 = min(L, t0 + T)
        tb = t1 - t0
        q = sub if sub is not None else max(1, int(math.ceil(math.sqrt(tb))))
        q = max(1, min(q, tb))
        nc = -(-tb // q)
        yield t0, t1, nc, q


class _ChunkScanFn(torch.autograd.Function):
    """Core scan on grouped layout: u, delta (b, G, Dg, L); A (G, Dg, N); B, C (b, G, N, L).

    Returns y (b, G, Dg, L) = sum_n C h and the last state (b, G, Dg, N).
    """

    @staticmethod
    def forward(ctx, u, delta, A, Bm, Cm, T, sub):
        b, G, Dg, L = u.shape
        N = A.shape[-1]
        Ab = A[:, :, None, :]
        h = u.new_zeros(b, G, Dg, N)
        y = u.new_empty(b, G, Dg, L)
        states = []
        for t0, t1, nc, q in _plan(L, T, sub):
            states.append(h)
            dl = _to_blk(delta, t0, t1, nc, q)  # (q, b, G, Dg, nc)
            ul = _to_blk(u, t0, t1, nc, q)
            la = dl.unsqueeze(-1) * Ab  # log decays, (q, b, G, Dg, nc, N)
            a = torch.exp(la)
            x = (dl * ul).unsqueeze(-1) * _bc_blk(Bm, t0, t1, nc, q)
            h = _scan_(a, la, x, h)
            del a, la
            yl = x.mul_(_bc_blk(Cm, t0, t1, nc, q)).sum(-1)
            y[..., t0:t1] = _from_blk(yl, t1 - t0)
        ctx.T, ctx.sub = T, sub
        ctx.save_for_backward(u, delta, A, Bm, Cm, torch.stack(states) if states else h[None])
        return y, h

    @staticmethod
    def backward(ctx, dy, dlast):
        u, delta, A, Bm, Cm, states = ctx.saved_tensors
        b, G, Dg, L = u.shape
        N = A.shape[-1]
        Ab = A[:, :, None, :]
        du = torch.empty_like(u)
        ddelta = torch.empty_like(u)
        dA = torch.zeros_like(A)
        dB = torch.empty_like(Bm)
        dC = torch.empty_like(Cm)
        if dy is None:
            dy = torch.zeros_like(u)
        # carry p = a_{t+1} * g_{t+1} entering a block from the right (dlast for the final block)
        p = dlast.to(u.dtype) if dlast is not None else u.new_zeros(b, G, Dg, N)
        blocks = list(_plan(L, ctx.T, ctx.sub))
        for i in range(len(blocks) - 1, -1, -1):
            t0, t1, nc, q = blocks[i]
            tb = t1 - t0
            h0 = states[i]
            dl = _to_blk(delta, t0, t1, nc, q)
            ul = _to_blk(u, t0, t1, nc, q)
            Bl = _bc_blk(Bm, t0, t1, nc, q)
            Cl = _bc_blk(Cm, t0, t1, nc, q)
            dyl = _to_blk(dy, t0, t1, nc, q)
            la = dl.unsqueeze(-1) * Ab
            a = torch.exp(la)
            dul_ = dl * ul
            hs = dul_.unsqueeze(-1) * Bl
            lalpha = _shift_next(la, 0.0)
            _scan_(a, la, hs, h0)  # hs <- states h_t
            del la
            ah = _mul_prev(a, hs, h0)  # a_t * h_{t-1}
            dC_blk = hs.mul_(dyl.unsqueeze(-1)).sum(3)
            del hs
            alpha = _shift_next(a, 1.0)
            a0 = a[0, ..., 0, :].clone()
            del a
            g = dyl.unsqueeze(-1) * Cl
            _scan_(alpha, lalpha, g, p, reverse=True)  # g <- dL/dh_t
            del alpha, lalpha
            p = a0 * g[0, ..., 0, :]
            ga = ah.mul_(g)  # dL/d(delta*A)
            ddl = (ga * Ab).sum(-1)
            dA += ga.mul_(dl.unsqueeze(-1)).sum((0, 1, 4))
            del ga
            gB = (g * Bl).sum(-1)
            ddl += ul * gB
            dBl = g.mul_(dul_.unsqueeze(-1)).sum(3)
            du[..., t0:t1] = _from_blk(dl * gB, tb)
            ddelta[..., t0:t1] = _from_blk(ddl, tb)
            dB[..., t0:t1] = _from_blk_n(dBl, tb)
            dC[..., t0:t1] = _from_blk_n(dC_blk, tb)
        return du, ddelta, dA, dB, dC, None, None


def selective_scan_torch(
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
    chunk_size: int | None = None,
    sub_chunk: int | None = None,
):
    """Chunked, memory-bounded S6 scan in pure PyTorch (see module docstring); same API as the reference.

    ``chunk_size``: time steps per block (bounds memory at O(B*D*chunk_size*N)); default from a
    budget of 2**20 (CPU) / 2**25 (CUDA) elements per block tensor.  ``sub_chunk``: sub-chunk
    length q inside a block (default ~sqrt(block)).  last_state is differentiable here.
    """
    shp = check_scan_args(u, delta, A, B, C, D, z, delta_bias)
    bsz, dim, L, N, G = shp
    cd = compute_dtype(u, delta, A, B, C, D, z, delta_bias)
    uf = u.to(cd)
    df = delta.to(cd)
    if delta_bias is not None:
        df = df + delta_bias.to(cd)[:, None]
    if delta_softplus:
        df = F.softplus(df)
    if L == 0:
        y = uf.new_zeros(uf.shape)
        last = uf.new_zeros(bsz, dim, N)
    else:
        if chunk_size is None:
            budget = _BUDGET_CUDA if uf.is_cuda else _BUDGET_CPU
            chunk_size = max(16, budget // max(1, bsz * dim * N))
        T = max(1, min(int(chunk_size), L))
        Bg = B.to(cd) if B.dim() == 4 else B.to(cd).unsqueeze(1)
        Cg = C.to(cd) if C.dim() == 4 else C.to(cd).unsqueeze(1)
        y, last = _ChunkScanFn.apply(
            uf.reshape(bsz, G, dim // G, L),
            df.reshape(bsz, G, dim // G, L),
            A.to(cd).reshape(G, dim // G, N),
            Bg.contiguous(),
            Cg.contiguous(),
            T,
            sub_chunk,
        )
        y = y.reshape(bsz, dim, L)
        last = last.reshape(bsz, dim, N)
    if D is not None:
        y = y + uf * D.to(cd)[:, None]
    if z is not None:
        y = y * F.silu(z.to(cd))
    out = y.to(u.dtype)
    return (out, last) if return_last_state else out
