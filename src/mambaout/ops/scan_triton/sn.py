"""Layout "sn" (small d_state <= 2): forward and backward on 2-D tiles [BLOCK_D, BLOCK_T], one per state index.

At d_state 1 there are only B*D chains, so time has to cross lanes for parallelism: Triton's load layout gives each
thread 4 (fp32) or 8 (bf16) contiguous steps (one vector load) with the 32 lanes along time and the warps over
channels, so the scans are in-thread plus one warp scan, never across warps (keep BLOCK_T <= 32 x the vector
width).  The reverse (adjoint) scan is a forward scan in flipped time: Triton lowers ``reverse=True`` across lanes
to 17.5 shuffles per element, a flip with ``tl.gather`` to one shuffle per value (5.5 in all, sm_90).  The flip of
the decays also shifts them by one step (the adjoint needs a_{t+1}), so the backward needs no second, misaligned
load of delta.
"""

from __future__ import annotations

import triton
import triton.language as tl

from .tiles import bc_row, combine, prep_delta, put_bc


@triton.jit
def _sn_setup(A_ptr, D_ptr, bias_ptr, L, DIM, N, G, DPG, BLOCK_D: tl.constexpr, NP: tl.constexpr,
              HAS_D: tl.constexpr, HAS_BIAS: tl.constexpr, LOG2_A: tl.constexpr):  # fmt: skip
    """The layout's prologue, shared by forward and backward: this program's channels and group, A's columns as
    [BD, 1] (times log2(e) with LOG2_A, the forward's exp2 operand; A1 is A0 at NP = 1), D and delta_bias as
    [BD, 1] (zeros when absent), and the row bases of the [BD, BT] operands and of B/C."""
    pid_d = tl.program_id(0)
    pid_b = tl.program_id(1).to(tl.int64)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    mask_d = offs_d < DIM
    grp = (pid_d * BLOCK_D) // DPG
    A0 = tl.load(A_ptr + offs_d * N, mask=mask_d, other=0.0).to(tl.float32)[:, None]
    if LOG2_A:
        A0 = A0 * 1.4426950408889634
    A1 = A0
    if NP == 2:
        A1 = tl.load(A_ptr + offs_d * N + 1, mask=mask_d, other=0.0).to(tl.float32)[:, None]
        if LOG2_A:
            A1 = A1 * 1.4426950408889634
    Dv = tl.zeros([BLOCK_D, 1], dtype=tl.float32)
    if HAS_D:
        Dv = tl.load(D_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)[:, None]
    bias = tl.zeros([BLOCK_D, 1], dtype=tl.float32)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)[:, None]
    base_x = pid_b * DIM * L + offs_d[:, None].to(tl.int64) * L
    base_bc = (pid_b * G + grp) * N * L
    return pid_d, pid_b, offs_d, mask_d, grp, A0, A1, Dv, bias, base_x, base_bc


@triton.jit
def _sn_tile(u_ptr, dt_ptr, base_x, mask_d, it, L, tt, BLOCK_T: tl.constexpr):
    # tile it's time offsets, masks and [BD, BT] row pointers, and its u and delta in fp32 (zero past the end)
    offs_t = it * BLOCK_T + tt
    mask_t = offs_t < L
    m_x = mask_d[:, None] & mask_t[None, :]
    px = base_x + offs_t[None, :]
    u = tl.load(u_ptr + px, mask=m_x, other=0.0).to(tl.float32)
    dt = tl.load(dt_ptr + px, mask=m_x, other=0.0).to(tl.float32)
    return offs_t, mask_t, m_x, px, u, dt


@triton.jit
def _sn_state(dt, dtu, A2n, Bn, h0, first):
    # states of one n over the tile; the carried-in state enters the first step (x_0 += a_0 h0)
    a = tl.exp2(dt * A2n)
    x = dtu * Bn
    _, hs = tl.associative_scan((a, x + tl.where(first, a * h0[:, None], 0.0)), 1, combine)
    return a, x, hs


@triton.jit
def _sn_adjoint(a, x, hs, Cn, dy, dtu, c, rev, rev1, first, pdb, pdc, mt, ATOMIC_BC: tl.constexpr):
    # g_t = C_t dy_t + a_{t+1} g_{t+1}: a forward scan over r = BT-1-t, decays gathered from
    # index BT-r (mod BT; the first one is unused), the later tile's a_0 g_0 (c) entering at r = 0
    put_bc(pdc, tl.sum(hs * dy, axis=0), mt, ATOMIC_BC)
    beta = tl.gather(Cn * dy, rev, 1) + tl.where(first, c[:, None], 0.0)
    _, g = tl.associative_scan((tl.gather(a, rev1, 1), beta), 1, combine)
    g = tl.gather(g, rev, 1)
    put_bc(pdb, tl.sum(g * dtu, axis=0), mt, ATOMIC_BC)
    return g, g * (hs - x), tl.sum(tl.where(first, a * g, 0.0), axis=1)


@triton.jit
def _fold_t(x, BD: tl.constexpr, BT: tl.constexpr):
    # [BD, BT] -> [BD, BT/4]: sums groups of 4 contiguous steps, which one thread holds (vector loads)
    return tl.sum(tl.reshape(x, [BD, BT // 4, 4]), axis=2)


@triton.jit
def _scan_fwd_kernel_sn(
    u_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr,
    out_ptr, last_ptr, states_ptr,
    L, DIM, N, G, DPG, NT,
    BLOCK_D: tl.constexpr, NP: tl.constexpr, BLOCK_T: tl.constexpr,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    SAVE_STATES: tl.constexpr, STORE_LAST: tl.constexpr,
):  # fmt: skip
    pid_d, pid_b, offs_d, mask_d, grp, A20, A21, Dv, bias, base_x, base_bc = _sn_setup(
        A_ptr, D_ptr, bias_ptr, L, DIM, N, G, DPG, BLOCK_D, NP, HAS_D, HAS_BIAS, True)  # fmt: skip
    tt = tl.arange(0, BLOCK_T)
    first = (tt == 0)[None, :]
    last = (tt == BLOCK_T - 1)[None, :]
    h0 = tl.zeros([BLOCK_D], dtype=tl.float32)
    h1 = tl.zeros([BLOCK_D], dtype=tl.float32)
    for it in range(0, NT):
        offs_t, mask_t, m_x, px, u, dt = _sn_tile(u_ptr, dt_ptr, base_x, mask_d, it, L, tt, BLOCK_T)
        _, dt = prep_delta(dt, bias, m_x, HAS_BIAS, SOFTPLUS)
        dtu = dt * u
        if SAVE_STATES:
            sp = states_ptr + ((pid_b * NT + it) * DIM + offs_d) * N
            tl.store(sp, h0, mask=mask_d)
            if NP == 2:
                tl.store(sp + 1, h1, mask=mask_d)
        pbc = base_bc + offs_t
        Bn = tl.load(B_ptr + pbc, mask=mask_t, other=0.0).to(tl.float32)[None, :]
        Cn = tl.load(C_ptr + pbc, mask=mask_t, other=0.0).to(tl.float32)[None, :]
        _, _, hs = _sn_state(dt, dtu, A20, Bn, h0, first)
        y = hs * Cn
        h0 = tl.sum(tl.where(last, hs, 0.0), axis=1)
        if NP == 2:
            Bn = tl.load(B_ptr + pbc + L, mask=mask_t, other=0.0).to(tl.float32)[None, :]
            Cn = tl.load(C_ptr + pbc + L, mask=mask_t, other=0.0).to(tl.float32)[None, :]
            _, _, hs = _sn_state(dt, dtu, A21, Bn, h1, first)
            y += hs * Cn
            h1 = tl.sum(tl.where(last, hs, 0.0), axis=1)
        if HAS_D:
            y += Dv * u
        if HAS_Z:
            zt = tl.load(z_ptr + px, mask=m_x, other=0.0).to(tl.float32)
            y = y * (zt * tl.sigmoid(zt))
        tl.store(out_ptr + px, y.to(out_ptr.dtype.element_ty), mask=m_x)
    if STORE_LAST:
        tl.store(last_ptr + (pid_b * DIM + offs_d) * N, h0, mask=mask_d)
        if NP == 2:
            tl.store(last_ptr + (pid_b * DIM + offs_d) * N + 1, h1, mask=mask_d)


@triton.jit
def _scan_bwd_kernel_sn(
    u_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, dout_ptr, states_ptr,
    du_ptr, ddt_ptr, dA_ptr, dB_ptr, dC_ptr, dD_ptr, dz_ptr, dbias_ptr,
    L, DIM, N, G, DPG, NT, NDB,
    BLOCK_D: tl.constexpr, NP: tl.constexpr, BLOCK_T: tl.constexpr,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    ATOMIC_BC: tl.constexpr = False,
):  # fmt: skip
    pid_d, pid_b, offs_d, mask_d, grp, A0, A1, Dv, bias, base_x, base_bc = _sn_setup(
        A_ptr, D_ptr, bias_ptr, L, DIM, N, G, DPG, BLOCK_D, NP, HAS_D, HAS_BIAS, False)  # fmt: skip
    base_p = bc_row(pid_b, pid_d, grp, G, NDB, ATOMIC_BC) * N * L
    tt = tl.arange(0, BLOCK_T)
    first = (tt == 0)[None, :]
    zi = tl.zeros([BLOCK_D, BLOCK_T], dtype=tl.int32)
    rev = (BLOCK_T - 1 - tt)[None, :] + zi
    rev1 = ((BLOCK_T - tt) % BLOCK_T)[None, :] + zi
    c0 = tl.zeros([BLOCK_D], dtype=tl.float32)
    c1 = tl.zeros([BLOCK_D], dtype=tl.float32)
    # sums over time: in-thread per tile (_fold_t), across lanes once at the end
    dA0 = tl.zeros([BLOCK_D, BLOCK_T // 4], dtype=tl.float32)
    dA1 = tl.zeros([BLOCK_D, BLOCK_T // 4], dtype=tl.float32)
    dD_acc = tl.zeros([BLOCK_D, BLOCK_T // 4], dtype=tl.float32)
    dbias_acc = tl.zeros([BLOCK_D, BLOCK_T // 4], dtype=tl.float32)
    for i in range(0, NT):
        it = NT - 1 - i
        offs_t, mask_t, m_x, px, u, dt = _sn_tile(u_ptr, dt_ptr, base_x, mask_d, it, L, tt, BLOCK_T)
        dout = tl.load(dout_ptr + px, mask=m_x, other=0.0).to(tl.float32)
        dt_pre, dt = prep_delta(dt, bias, m_x, HAS_BIAS, SOFTPLUS)
        dtu = dt * u
        sp = states_ptr + ((pid_b * NT + it) * DIM + offs_d) * N
        pbc = base_bc + offs_t
        B0 = tl.load(B_ptr + pbc, mask=mask_t, other=0.0).to(tl.float32)[None, :]
        C0 = tl.load(C_ptr + pbc, mask=mask_t, other=0.0).to(tl.float32)[None, :]
        a0, x0, hs0 = _sn_state(dt, dtu, A0 * 1.4426950408889634, B0, tl.load(sp, mask=mask_d, other=0.0), first)
        y = hs0 * C0
        if NP == 2:
            B1 = tl.load(B_ptr + pbc + L, mask=mask_t, other=0.0).to(tl.float32)[None, :]
            C1 = tl.load(C_ptr + pbc + L, mask=mask_t, other=0.0).to(tl.float32)[None, :]
            a1, x1, hs1 = _sn_state(
                dt, dtu, A1 * 1.4426950408889634, B1, tl.load(sp + 1, mask=mask_d, other=0.0), first
            )
            y += hs1 * C1
        if HAS_D:
            y += Dv * u
        if HAS_Z:
            zt = tl.load(z_ptr + px, mask=m_x, other=0.0).to(tl.float32)
            sz = tl.sigmoid(zt)
            dz = dout * y * sz * (1.0 + zt * (1.0 - sz))
            tl.store(dz_ptr + px, dz.to(dz_ptr.dtype.element_ty), mask=m_x)
            dy = dout * zt * sz
        else:
            dy = dout
        pp = base_p + offs_t
        g, ga, c0 = _sn_adjoint(
            a0, x0, hs0, C0, dy, dtu, c0, rev, rev1, first, dB_ptr + pp, dC_ptr + pp, mask_t, ATOMIC_BC
        )
        dA0 += _fold_t(ga * dt, BLOCK_D, BLOCK_T)
        gB = g * B0
        ddt = ga * A0
        if NP == 2:
            g, ga, c1 = _sn_adjoint(
                a1, x1, hs1, C1, dy, dtu, c1, rev, rev1, first, dB_ptr + pp + L, dC_ptr + pp + L, mask_t, ATOMIC_BC
            )
            dA1 += _fold_t(ga * dt, BLOCK_D, BLOCK_T)
            gB += g * B1
            ddt += ga * A1
        ddt += u * gB
        du = dt * gB
        if HAS_D:
            du += Dv * dy
            dD_acc += _fold_t(dy * u, BLOCK_D, BLOCK_T)
        if SOFTPLUS:
            ddt = ddt * tl.sigmoid(dt_pre)
        if HAS_BIAS:
            dbias_acc += _fold_t(tl.where(m_x, ddt, 0.0), BLOCK_D, BLOCK_T)
        tl.store(du_ptr + px, du.to(du_ptr.dtype.element_ty), mask=m_x)
        tl.store(ddt_ptr + px, ddt.to(ddt_ptr.dtype.element_ty), mask=m_x)
    tl.atomic_add(dA_ptr + offs_d * N, tl.sum(dA0, axis=1), mask=mask_d)
    if NP == 2:
        tl.atomic_add(dA_ptr + offs_d * N + 1, tl.sum(dA1, axis=1), mask=mask_d)
    if HAS_D:
        tl.atomic_add(dD_ptr + offs_d, tl.sum(dD_acc, axis=1), mask=mask_d)
    if HAS_BIAS:
        tl.atomic_add(dbias_ptr + offs_d, tl.sum(dbias_acc, axis=1), mask=mask_d)
