"""Layout "tm": the forward for d_state > 16, time-major tiles [BLOCK_T, BLOCK_D, NP].

Time is the slowest tile axis, so Triton's default layout gives each thread whole time columns of its (d, n) pairs:
the scan along axis 0 runs inside a thread, and only the sum over n for y crosses lanes.  Beyond d_state 16 the
warp-local tmw tile would hold too many states a thread; here BLOCK_D * NP = 128 pairs fill 4 warps.
"""

from __future__ import annotations

import triton
import triton.language as tl

from .tiles import combine, f32_opaque, prep_delta


@triton.jit
def _scan_fwd_kernel_tm(
    u_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr,
    out_ptr, last_ptr, states_ptr,
    L, DIM, N, G, DPG, NT,
    BLOCK_D: tl.constexpr, NP: tl.constexpr, BLOCK_T: tl.constexpr,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    SAVE_STATES: tl.constexpr, STORE_LAST: tl.constexpr, ASM: tl.constexpr = False,
):  # fmt: skip
    pid_d = tl.program_id(0)
    pid_b = tl.program_id(1).to(tl.int64)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    mask_d = offs_d < DIM
    offs_n = tl.arange(0, NP)
    mask_n = offs_n < N
    mask_dn = mask_d[:, None] & mask_n[None, :]
    grp = (pid_d * BLOCK_D) // DPG
    A2 = tl.load(A_ptr + offs_d[:, None] * N + offs_n[None, :], mask=mask_dn, other=0.0).to(tl.float32) * 1.4426950408889634  # fmt: skip
    if HAS_D:
        Dv = tl.load(D_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    bias = 0.0  # unused without delta_bias (prep_delta)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)[None, :]
    base_x = pid_b * DIM * L + offs_d[None, :].to(tl.int64) * L  # [1, BD]
    base_bc = (pid_b * G + grp) * N * L + offs_n[None, :].to(tl.int64) * L  # [1, NP]
    tt = tl.arange(0, BLOCK_T)
    h = tl.zeros([BLOCK_D, NP], dtype=tl.float32)
    for it in range(0, NT):
        offs_t = it * BLOCK_T + tt
        mask_t = offs_t < L
        m_x = mask_t[:, None] & mask_d[None, :]
        m_bc = mask_t[:, None] & mask_n[None, :]
        u = f32_opaque(tl.load(u_ptr + base_x + offs_t[:, None], mask=m_x, other=0.0), ASM)  # [BT, BD]
        dt = f32_opaque(tl.load(dt_ptr + base_x + offs_t[:, None], mask=m_x, other=0.0), ASM)
        Bt = f32_opaque(tl.load(B_ptr + base_bc + offs_t[:, None], mask=m_bc, other=0.0), ASM)  # [BT, NP]
        Ct = f32_opaque(tl.load(C_ptr + base_bc + offs_t[:, None], mask=m_bc, other=0.0), ASM)
        _, dt = prep_delta(dt, bias, m_x, HAS_BIAS, SOFTPLUS)
        a = tl.exp2(dt[:, :, None] * A2[None, :, :])  # [BT, BD, NP]
        x = (dt * u)[:, :, None] * Bt[:, None, :]
        aS, xS = tl.associative_scan((a, x), 0, combine)
        hs = aS * h[None, :, :] + xS
        y = tl.sum(hs * Ct[:, None, :], axis=2)  # [BT, BD]
        if SAVE_STATES:
            sp = states_ptr + ((pid_b * NT + it) * DIM + offs_d[:, None]) * N + offs_n[None, :]
            tl.store(sp, h, mask=mask_dn)
        h = tl.sum(tl.where((tt == BLOCK_T - 1)[:, None, None], hs, 0.0), axis=0)
        if HAS_D:
            y += Dv[None, :] * u
        if HAS_Z:
            zt = f32_opaque(tl.load(z_ptr + base_x + offs_t[:, None], mask=m_x, other=0.0), ASM)
            y = y * (zt * tl.sigmoid(zt))
        tl.store(out_ptr + base_x + offs_t[:, None], y.to(out_ptr.dtype.element_ty), mask=m_x)
    if STORE_LAST:
        lp = last_ptr + (pid_b * DIM + offs_d[:, None]) * N + offs_n[None, :]
        tl.store(lp, h, mask=mask_dn)
