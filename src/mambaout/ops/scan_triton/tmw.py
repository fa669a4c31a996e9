"""Layout "tmw" (time-major, warp-local): the forward and backward for 3 <= d_state <= 16, the backward above.

Tiles [BLOCK_T, NI, BLOCK_D, NL] with n = ni * NL + nl.  Triton's default layout puts NL (the fastest axis) and
then BLOCK_D on the 32 lanes and keeps BLOCK_T and NI inside the thread, so with BLOCK_D * NL = 32 lanes a warp:

* both scans over time are sequential in-thread loops (no shuffles), as are the extraction of the carried state
  and the sums over time for dA, dD and d(delta_bias);
* the sums over n (y, g.B, g.(A a h)) are NI-fold in-thread, then log2(NL) shuffles;
* the sums over d (dB, dC) are log2(BLOCK_D) shuffles inside the warp, never across warps, so a one-warp program
  needs no shared-memory reduction.

The carried state enters the first step of a tile (x_0 += a_0 h), so the scan's state component is h_t itself.
"""

from __future__ import annotations

import triton
import triton.language as tl

from .tiles import bc_row, combine, f32_opaque, prep_delta, put_bc, sigmoid, softplus


@triton.jit
def _tmw_setup(A_ptr, D_ptr, bias_ptr, L, DIM, N, G, DPG, BLOCK_D: tl.constexpr, NI: tl.constexpr,
               NL: tl.constexpr, HAS_D: tl.constexpr, HAS_BIAS: tl.constexpr):  # fmt: skip
    """The layout's prologue, shared by forward and backward: this program's channels, the state-shaped
    [NI, BD, NL] indices (saved states, A, dA), A as [1, NI, BD, NL], D and delta_bias as [1, BD] (zeros when
    absent), and the row bases of the [BT, BD] operands and the [1, NI, NL] B/C rows."""
    pid_d = tl.program_id(0)
    pid_b = tl.program_id(1).to(tl.int64)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    mask_d = offs_d < DIM
    n3 = tl.arange(0, NI)[:, None, None] * NL + tl.arange(0, NL)[None, None, :]  # [NI, 1, NL]
    d3 = offs_d[None, :, None]
    m_dn = (n3 < N) & mask_d[None, :, None]
    grp = (pid_d * BLOCK_D) // DPG
    A = tl.load(A_ptr + d3 * N + n3, mask=m_dn, other=0.0).to(tl.float32)[None]
    Dv = tl.zeros([1, BLOCK_D], dtype=tl.float32)
    if HAS_D:
        Dv = tl.load(D_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)[None, :]
    bias = tl.zeros([1, BLOCK_D], dtype=tl.float32)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)[None, :]
    base_x = pid_b * DIM * L + offs_d[None, :].to(tl.int64) * L
    n_bc = tl.arange(0, NI)[None, :, None] * NL + tl.arange(0, NL)[None, None, :]  # [1, NI, NL]
    base_bc = (pid_b * G + grp) * N * L + n_bc.to(tl.int64) * L
    return pid_d, pid_b, offs_d, mask_d, n3, d3, m_dn, grp, A, Dv, bias, base_x, n_bc, n_bc < N, base_bc


@triton.jit
def _tmw_fwd_load(u_ptr, dt_ptr, z_ptr, B_ptr, C_ptr, it, L, base_x, base_bc, mask_d, m_nbc, tt,
                  BLOCK_T: tl.constexpr, HAS_Z: tl.constexpr):  # fmt: skip
    """The raw (input-dtype) tiles of forward tile ``it``: u, delta, z ([BT, BD]; u when there is no z) and
    B, C ([BT, NI, NL]); zero past the end of the sequence."""
    offs_t = it * BLOCK_T + tt
    mask_t = offs_t < L
    m_x = mask_t[:, None] & mask_d[None, :]
    px = base_x + offs_t[:, None]
    u = tl.load(u_ptr + px, mask=m_x, other=0.0)
    dt = tl.load(dt_ptr + px, mask=m_x, other=0.0)
    zt = u
    if HAS_Z:
        zt = tl.load(z_ptr + px, mask=m_x, other=0.0)
    pbc = base_bc + offs_t[:, None, None]
    m_bc = mask_t[:, None, None] & m_nbc
    return u, dt, zt, tl.load(B_ptr + pbc, mask=m_bc, other=0.0), tl.load(C_ptr + pbc, mask=m_bc, other=0.0)


# The saved states ((B, cdiv(L, SAVE_T), D, N) fp32) fall every SAVE_T steps, on the backward's tile starts, not on
# this kernel's own: a longer forward tile than the backward's saves the states inside it (SAVE_T divides BLOCK_T).
@triton.jit
def _scan_fwd_kernel_tmw(
    u_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr,
    out_ptr, last_ptr, states_ptr,
    L, DIM, N, G, DPG, NT,
    BLOCK_D: tl.constexpr, NP: tl.constexpr, BLOCK_T: tl.constexpr, NL: tl.constexpr, ASM: tl.constexpr,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    SAVE_STATES: tl.constexpr, STORE_LAST: tl.constexpr, SAVE_T: tl.constexpr, PREFETCH: tl.constexpr = False,
):  # fmt: skip
    NI: tl.constexpr = NP // NL
    NTS = tl.cdiv(L, SAVE_T)
    pid_d, pid_b, offs_d, mask_d, n3, d3, m_dn, grp, A, Dv, bias, base_x, n_bc, m_nbc, base_bc = _tmw_setup(
        A_ptr, D_ptr, bias_ptr, L, DIM, N, G, DPG, BLOCK_D, NI, NL, HAS_D, HAS_BIAS
    )
    A2 = A * 1.4426950408889634
    tt = tl.arange(0, BLOCK_T)
    first = (tt == 0)[:, None, None, None]
    last_t = (tt == BLOCK_T - 1)[:, None, None, None]
    h = tl.zeros([NI, BLOCK_D, NL], dtype=tl.float32)
    if PREFETCH:  # tile it+1's loads are issued before tile it's arithmetic: too few warps a SM to hide their latency
        u_n, dt_n, z_n, B_n, C_n = _tmw_fwd_load(
            u_ptr, dt_ptr, z_ptr, B_ptr, C_ptr, 0, L, base_x, base_bc, mask_d, m_nbc, tt, BLOCK_T, HAS_Z
        )
    for it in range(0, NT):
        offs_t = it * BLOCK_T + tt
        mask_t = offs_t < L
        m_x = mask_t[:, None] & mask_d[None, :]
        px = base_x + offs_t[:, None]
        if PREFETCH:
            u_r, dt_r, z_r, B_r, C_r = u_n, dt_n, z_n, B_n, C_n
            u_n, dt_n, z_n, B_n, C_n = _tmw_fwd_load(
                u_ptr, dt_ptr, z_ptr, B_ptr, C_ptr, it + 1, L, base_x, base_bc, mask_d, m_nbc, tt, BLOCK_T, HAS_Z
            )
        else:
            u_r, dt_r, z_r, B_r, C_r = _tmw_fwd_load(
                u_ptr, dt_ptr, z_ptr, B_ptr, C_ptr, it, L, base_x, base_bc, mask_d, m_nbc, tt, BLOCK_T, HAS_Z
            )
        u = f32_opaque(u_r, ASM)  # [BT, BD]
        dt = f32_opaque(dt_r, ASM)
        Bt = f32_opaque(B_r, ASM)[:, :, None, :]  # [BT, NI, 1, NL]
        Ct = f32_opaque(C_r, ASM)[:, :, None, :]
        _, dt = prep_delta(dt, bias, m_x, HAS_BIAS, SOFTPLUS)
        if SAVE_STATES:
            sp = states_ptr + ((pid_b * NTS + it * (BLOCK_T // SAVE_T)) * DIM + d3) * N + n3
            tl.store(sp, h, mask=m_dn)
        a = tl.exp2(dt[:, None, :, None] * A2)  # [BT, NI, BD, NL]
        x = (dt * u)[:, None, :, None] * Bt
        _, hs = tl.associative_scan((a, x + tl.where(first, a * h[None], 0.0)), 0, combine)
        if SAVE_STATES:  # the states inside the tile: a select along the in-thread time axis
            for j in tl.static_range(1, BLOCK_T // SAVE_T):
                sj = it * (BLOCK_T // SAVE_T) + j
                hj = tl.sum(tl.where((tt == j * SAVE_T - 1)[:, None, None, None], hs, 0.0), axis=0)
                tl.store(sp + j * DIM * N, hj, mask=m_dn & (sj < NTS))
        y = tl.sum(tl.sum(hs * Ct, axis=1), axis=2)  # [BT, BD]
        h = tl.sum(tl.where(last_t, hs, 0.0), axis=0)
        if HAS_D:
            y += Dv * u
        if HAS_Z:
            zt = f32_opaque(z_r, ASM)
            y = y * (zt * tl.sigmoid(zt))
        tl.store(out_ptr + px, y.to(out_ptr.dtype.element_ty), mask=m_x)
    if STORE_LAST:
        tl.store(last_ptr + (pid_b * DIM + d3) * N + n3, h, mask=m_dn)


@triton.jit
def _flip_t(x, BT: tl.constexpr):
    """x[::-1] along axis 0 of a [BT, P, Q, R] tile (exact: swaps bit patterns pairwise by xor).
    BT: a power of two up to 1024."""
    shp: tl.constexpr = x.shape
    y = x.to(tl.int32, bitcast=True)
    for i in tl.static_range(10):
        if (2 << i) <= BT:
            y = tl.reshape(y, [BT // (2 << i), 2, 1 << i, shp[1], shp[2], shp[3]])
            y = y ^ tl.xor_sum(y, 1, keep_dims=True)
    return tl.reshape(y, shp).to(tl.float32, bitcast=True)


@triton.jit
def _tmw_bwd_load(u_ptr, dt_ptr, dout_ptr, z_ptr, B_ptr, C_ptr, states_ptr, it, L, DIM, N, NT, pid_b,
                  base_x, base_bc, d3, n3, m_dn, mask_d, m_nbc, tt, BLOCK_T: tl.constexpr, HAS_Z: tl.constexpr):  # fmt: skip
    """The inputs of backward tile ``it`` (all zero when it < 0): u, delta, delta at t+1, dout, z (u when there is
    no z), B, C ([BT, NI, 1, NL]) and the saved state h0."""
    offs_t = it * BLOCK_T + tt
    mask_t = (offs_t < L) & (it >= 0)
    m_x = mask_t[:, None] & mask_d[None, :]
    m_nx = ((offs_t + 1) < L)[:, None] & mask_d[None, :] & (it >= 0)
    m_bc = mask_t[:, None, None] & m_nbc
    px = base_x + offs_t[:, None]
    u = tl.load(u_ptr + px, mask=m_x, other=0.0).to(tl.float32)  # [BT, BD]
    dt = tl.load(dt_ptr + px, mask=m_x, other=0.0).to(tl.float32)
    dtn = tl.load(dt_ptr + px + 1, mask=m_nx, other=0.0).to(tl.float32)
    dout = tl.load(dout_ptr + px, mask=m_x, other=0.0).to(tl.float32)
    if HAS_Z:
        zt = tl.load(z_ptr + px, mask=m_x, other=0.0).to(tl.float32)
    else:
        zt = u
    pbc = base_bc + offs_t[:, None, None]
    Bt = tl.load(B_ptr + pbc, mask=m_bc, other=0.0).to(tl.float32)[:, :, None, :]  # [BT, NI, 1, NL]
    Ct = tl.load(C_ptr + pbc, mask=m_bc, other=0.0).to(tl.float32)[:, :, None, :]
    sp = states_ptr + ((pid_b * NT + it) * DIM + d3) * N + n3
    h0 = tl.load(sp, mask=m_dn & (it >= 0), other=0.0)
    return u, dt, dtn, dout, zt, Bt, Ct, h0


# delta is prepared here at t and t+1 interleaved, not by prep_delta: one helper call per tensor changes this
# kernel's SASS, and the interleaved form is the one that was timed.
@triton.jit
def _scan_bwd_kernel_tmw(
    u_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, dout_ptr, states_ptr,
    du_ptr, ddt_ptr, dA_ptr, dB_ptr, dC_ptr, dD_ptr, dz_ptr, dbias_ptr,
    L, DIM, N, G, DPG, NT, NDB,
    BLOCK_D: tl.constexpr, NP: tl.constexpr, BLOCK_T: tl.constexpr, NL: tl.constexpr,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    PREFETCH: tl.constexpr = False, ATOMIC_BC: tl.constexpr = False, FAST_EW: tl.constexpr = False,
):  # fmt: skip
    NI: tl.constexpr = NP // NL
    pid_d, pid_b, offs_d, mask_d, n3, d3, m_dn, grp, A, Dv, bias, base_x, n_bc, m_nbc, base_bc = _tmw_setup(
        A_ptr, D_ptr, bias_ptr, L, DIM, N, G, DPG, BLOCK_D, NI, NL, HAS_D, HAS_BIAS
    )
    A2 = A * 1.4426950408889634
    base_p = bc_row(pid_b, pid_d, grp, G, NDB, ATOMIC_BC) * N * L + n_bc.to(tl.int64) * L
    tt = tl.arange(0, BLOCK_T)
    first = (tt == 0)[:, None, None, None]
    gcarry = tl.zeros([NI, BLOCK_D, NL], dtype=tl.float32)
    dA_acc = tl.zeros([NI, BLOCK_D, NL], dtype=tl.float32)
    dD_acc = tl.zeros([BLOCK_D], dtype=tl.float32)
    dbias_acc = tl.zeros([BLOCK_D], dtype=tl.float32)
    if PREFETCH:  # register double-buffering: the loads of tile it-1 are issued before tile it's arithmetic
        u_n, dt_n, dtn_n, dout_n, z_n, B_n, C_n, h0_n = _tmw_bwd_load(
            u_ptr, dt_ptr, dout_ptr, z_ptr, B_ptr, C_ptr, states_ptr, NT - 1, L, DIM, N, NT, pid_b,
            base_x, base_bc, d3, n3, m_dn, mask_d, m_nbc, tt, BLOCK_T, HAS_Z)  # fmt: skip
    for i in range(0, NT):
        it = NT - 1 - i
        offs_t = it * BLOCK_T + tt
        mask_t = offs_t < L
        m_x = mask_t[:, None] & mask_d[None, :]
        m_nx = ((offs_t + 1) < L)[:, None] & mask_d[None, :]
        m_bc = mask_t[:, None, None] & m_nbc
        px = base_x + offs_t[:, None]
        if PREFETCH:
            u = u_n
            dt = dt_n
            dtn = dtn_n
            dout = dout_n
            zt = z_n
            Bt = B_n
            Ct = C_n
            h0 = h0_n
            u_n, dt_n, dtn_n, dout_n, z_n, B_n, C_n, h0_n = _tmw_bwd_load(
                u_ptr, dt_ptr, dout_ptr, z_ptr, B_ptr, C_ptr, states_ptr, it - 1, L, DIM, N, NT, pid_b,
                base_x, base_bc, d3, n3, m_dn, mask_d, m_nbc, tt, BLOCK_T, HAS_Z)  # fmt: skip
        else:
            u, dt, dtn, dout, zt, Bt, Ct, h0 = _tmw_bwd_load(
                u_ptr, dt_ptr, dout_ptr, z_ptr, B_ptr, C_ptr, states_ptr, it, L, DIM, N, NT, pid_b,
                base_x, base_bc, d3, n3, m_dn, mask_d, m_nbc, tt, BLOCK_T, HAS_Z)  # fmt: skip
        if HAS_BIAS:
            dt = dt + bias
            dtn = dtn + bias
        dt_pre = dt
        if SOFTPLUS:
            dt = softplus(dt, FAST_EW)
            dtn = softplus(dtn, FAST_EW)
        if HAS_BIAS or SOFTPLUS:
            dt = tl.where(m_x, dt, 0.0)
            dtn = tl.where(m_nx, dtn, 0.0)
        dt4 = dt[:, None, :, None]
        dtu = dt * u
        # recompute the tile's states from the saved one
        a = tl.exp2(dt4 * A2)  # [BT, NI, BD, NL]
        x = dtu[:, None, :, None] * Bt
        _, hs = tl.associative_scan((a, x + tl.where(first, a * h0[None], 0.0)), 0, combine)
        y = tl.sum(tl.sum(hs * Ct, axis=1), axis=2)  # [BT, BD]
        if HAS_D:
            y += Dv * u
        if HAS_Z:
            sz = sigmoid(zt, FAST_EW)
            dz = dout * y * sz * (1.0 + zt * (1.0 - sz))
            tl.store(dz_ptr + px, dz.to(dz_ptr.dtype.element_ty), mask=m_x)
            dy = dout * zt * sz
        else:
            dy = dout
        dy4 = dy[:, None, :, None]
        put_bc(dC_ptr + base_p + offs_t[:, None, None], tl.sum(hs * dy4, axis=2), m_bc, ATOMIC_BC)
        # adjoint g_t = C_t dy_t + a_{t+1} g_{t+1}; the carry from the later tile enters at the
        # last step: a_{t+1} there is the next tile's first decay (alpha of the last row)
        alpha = tl.exp2(dtn[:, None, :, None] * A2)
        last = (tt == BLOCK_T - 1)[:, None, None, None]
        beta = Ct * dy4 + tl.where(last, alpha * gcarry[None], 0.0)
        # reverse scan as a forward scan on the time-flipped tile: Triton lowers reverse=True along
        # an in-thread axis with shuffles, while the flips below compile to register renaming
        _, g = tl.associative_scan((_flip_t(alpha, BLOCK_T), _flip_t(beta, BLOCK_T)), 0, combine)
        g = _flip_t(g, BLOCK_T)
        gcarry = tl.sum(tl.where(first, g, 0.0), axis=0)
        ga = g * (hs - x)  # dLoss/d(delta*A) = g_t a_t h_{t-1}
        dA_acc += tl.sum(ga * dt4, axis=0)
        gB = tl.sum(tl.sum(g * Bt, axis=1), axis=2)  # [BT, BD]
        ddt = tl.sum(tl.sum(ga * A, axis=1), axis=2) + u * gB
        du = dt * gB
        if HAS_D:
            du += Dv * dy
            dD_acc += tl.sum(dy * u, axis=0)
        put_bc(dB_ptr + base_p + offs_t[:, None, None], tl.sum(g * dtu[:, None, :, None], axis=2), m_bc, ATOMIC_BC)
        if SOFTPLUS:
            ddt = ddt * sigmoid(dt_pre, FAST_EW)
        if HAS_BIAS:
            dbias_acc += tl.sum(tl.where(m_x, ddt, 0.0), axis=0)
        tl.store(du_ptr + px, du.to(du_ptr.dtype.element_ty), mask=m_x)
        tl.store(ddt_ptr + px, ddt.to(ddt_ptr.dtype.element_ty), mask=m_x)
    tl.atomic_add(dA_ptr + d3 * N + n3, dA_acc, mask=m_dn)
    if HAS_D:
        tl.atomic_add(dD_ptr + offs_d, dD_acc, mask=mask_d)
    if HAS_BIAS:
        tl.atomic_add(dbias_ptr + offs_d, dbias_acc, mask=mask_d)
