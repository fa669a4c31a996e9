"""Fused Triton selective scan (S6) for CUDA: forward and backward kernels.

Design
------
* Layouts (chosen per N, L and dtype by :func:`default_config`; every version's reasoning, prediction and H100
  measurement is in docs/notes/scan_kernel.md):
  - "dm" tiles [BLOCK_D, NP, BLOCK_T] (v1; time over lanes, scans cost shuffles) and "tm" tiles
    [BLOCK_T, BLOCK_D, NP] (v2; each thread scans whole time columns of its (d, n) pairs in-thread).
  - "tmw" tiles [BLOCK_T, NI, BLOCK_D, NL] with N = NI x NL (v4 backward, v6a forward; the default for
    4 <= N <= 16): one warp holds the whole (d, n) block, so scans and sums over time stay in-thread, sums over
    n are mostly in-thread and sums over d stay in the warp.  Its loads are issued a tile ahead (PREFETCH: v6b in
    the backward for 16-bit inputs, v8 in the forward, which was waiting on its loads).
  - "sn" (small N, d_state <= 2, v5): 2-D tiles [BLOCK_D, BLOCK_T] per n, lanes along time with a vector of
    contiguous steps per thread; the adjoint scan runs forward over time flipped with ``tl.gather``.
* One program per (block of ``BLOCK_D`` channels, batch element).  It walks the sequence in tiles of
  ``BLOCK_T`` time steps; the state tile h (fp32) lives in registers and is carried from tile to tile.  Inside a
  tile the recurrence ``h_t = a_t h_{t-1} + x_t`` is solved with ``tl.associative_scan`` over the time axis with
  the combine (a1, b1), (a2, b2) -> (a1 a2, a2 b1 + b2); the carried state enters as x_0 += a_0 h.  Only
  products of decays exp(delta*A) <= 1 appear, so long sequences are stable.  The (B, D, L, N) state never
  touches HBM.
* N (d_state) is padded to a power of two ``NP`` (masked; padded rows have A = 0, B = C = 0 and stay
  zero).  L is arbitrary (masked tail: delta = 0, so a = 1 and x = 0 there).  Grouped B/C
  (B, G, N, L): a channel block never straddles a group (BLOCK_D divides D/G).
* D, z (SiLU gate), delta_bias and softplus are fused; the kernel reads u, delta, B, C, z once and
  writes y once.
* Training: the forward additionally stores the state at the start of each backward tile, (B, L/BLOCK_T, D, N)
  fp32 (a tmw forward with a longer tile stores the states inside it, v7).  The backward walks the tiles in
  reverse, recomputes the tile's states from the stored one, and runs a reverse scan for the adjoint
  g_t = dLoss/dh_t: ``g_t = C_t dy_t + a_{t+1} g_{t+1}``.  a_t h_{t-1} is formed as h_t - x_t.
* dB and dC (sums over channels) are reduced over each program's channel block, then added with fp32 atomic adds
  into the (B, G, N, L) result while at most 256 channel blocks share a group (more contend in L2) (v7; v1's
  atomics were contended because each program held two channels, and v3-v6 wrote per-block partials
  (B, D/BLOCK_D, N, L) that torch summed afterwards: 35 us of bytes and a sum per call at the benchmark shapes,
  and a penalty on small channel blocks).
  Under ``torch.use_deterministic_algorithms(True)`` the partials are used again, so dB and dC are bitwise
  reproducible.  dA, dD and d(delta_bias) are accumulated in registers over time and added with
  ``tl.atomic_add`` once per program (their fp32 summation order is nondeterministic either way).
* ``last_state`` (fp32) is returned without gradient (marked non-differentiable), as in mamba_ssm's
  fused kernel.  Use the PyTorch backend if a gradient through last_state is needed.

Importing this module never fails: without triton or a GPU, :func:`available` returns False.
"""

from __future__ import annotations

from typing import Optional

import torch

from ._common import check_scan_args

try:  # pragma: no cover - depends on the environment
    import triton
    import triton.language as tl

    _HAVE_TRITON = True
except Exception:  # ImportError, or a broken install
    triton = None
    tl = None
    _HAVE_TRITON = False


def available() -> bool:
    """True when triton imports and a CUDA device is present (the kernels can run)."""
    if not _HAVE_TRITON:
        return False
    try:
        return torch.cuda.is_available()
    except Exception:  # pragma: no cover
        return False


_LOG2E = 1.4426950408889634

# Tests set this to fill every output buffer with NaN before the kernels run, so an element the
# kernels fail to write shows up.
_POISON = False


def _out_like(t: torch.Tensor, *shape, dtype=None) -> torch.Tensor:
    x = torch.empty(shape or t.shape, device=t.device, dtype=dtype or t.dtype)
    if _POISON:
        x.fill_(float("nan"))
    return x

if _HAVE_TRITON:

    @triton.jit
    def _combine(a1, b1, a2, b2):
        return a1 * a2, a2 * b1 + b2

    @triton.jit
    def _approx(x, OP: tl.constexpr):
        # one MUFU instruction (OP "ex2", "lg2" or "rcp", .approx.ftz.f32), compiled code only (inline asm)
        return tl.inline_asm_elementwise(OP + ".approx.ftz.f32 $0, $1;", "=r,r", [x], dtype=tl.float32,
                                         is_pure=True, pack=1)

    @triton.jit
    def _softplus(v, FAST: tl.constexpr = False):
        """Matches torch.nn.functional.softplus (threshold 20); exp(v) for very negative v.  FAST: MUFU ex2 and lg2
        instead of libdevice's exp and log (~20 instructions), compiled code only (v9)."""
        if FAST:
            e = _approx(v * 1.4426950408889634, "ex2")
            return tl.where(v > 20.0, v, tl.where(v < -15.0, e, _approx(1.0 + e, "lg2") * 0.6931471805599453))
        else:
            return tl.where(v > 20.0, v, tl.where(v < -15.0, tl.exp(v), tl.log(1.0 + tl.exp(v))))

    @triton.jit
    def _sigmoid(x, FAST: tl.constexpr = False):
        # FAST: MUFU ex2 and rcp instead of exp and a precise division, compiled code only (v9)
        if FAST:
            return _approx(1.0 + _approx(x * -1.4426950408889634, "ex2"), "rcp")
        else:
            return tl.sigmoid(x)

    @triton.jit
    def _delta(dt, bias, mask, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr):
        """delta as the recurrence uses it: + delta_bias, softplus, zero outside the tile (where the loads gave 0 but
        bias/softplus would not).  Also returns the value before the softplus (the backward's softplus' needs it)."""
        if HAS_BIAS:
            dt = dt + bias
        pre = dt
        if SOFTPLUS:
            dt = _softplus(dt)
        if HAS_BIAS or SOFTPLUS:
            dt = tl.where(mask, dt, 0.0)
        return pre, dt

    @triton.jit
    def _bc_row(pid_b, pid_d, grp, G, NDB, ATOMIC_BC: tl.constexpr):
        # dB, dC (sums over channels) go either straight into the (B, G, N, L) fp32 result with atomic adds
        # (ATOMIC_BC) or into this program's row of a partials buffer (B, NDB, N, L), summed by torch after
        # the kernel (deterministic: used under torch.use_deterministic_algorithms)
        if ATOMIC_BC:
            row = pid_b * G + grp
        else:
            row = pid_b * NDB + pid_d
        return row

    @triton.jit
    def _put_bc(ptr, val, mask, ATOMIC_BC: tl.constexpr):
        if ATOMIC_BC:
            tl.atomic_add(ptr, val, mask=mask, sem="relaxed")
        else:
            tl.store(ptr, val, mask=mask)

    @triton.jit
    def _scan_fwd_kernel(
        u_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr,
        out_ptr, last_ptr, states_ptr,
        L, DIM, N, G, DPG, NT,
        BLOCK_D: tl.constexpr, NP: tl.constexpr, BLOCK_T: tl.constexpr,
        HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
        SAVE_STATES: tl.constexpr, STORE_LAST: tl.constexpr,
    ):
        pid_d = tl.program_id(0)
        pid_b = tl.program_id(1).to(tl.int64)
        offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
        mask_d = offs_d < DIM
        offs_n = tl.arange(0, NP)
        mask_n = offs_n < N
        mask_dn = mask_d[:, None] & mask_n[None, :]
        grp = (pid_d * BLOCK_D) // DPG
        A2 = tl.load(A_ptr + offs_d[:, None] * N + offs_n[None, :], mask=mask_dn, other=0.0).to(tl.float32) * 1.4426950408889634
        if HAS_D:
            Dv = tl.load(D_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
        bias = 0.0  # unused without delta_bias (_delta)
        if HAS_BIAS:
            bias = tl.load(bias_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)[:, None]
        base_x = pid_b * DIM * L + offs_d[:, None].to(tl.int64) * L  # [BD, 1]
        base_bc = (pid_b * G + grp) * N * L + offs_n[:, None].to(tl.int64) * L  # [NP, 1]
        tt = tl.arange(0, BLOCK_T)
        h = tl.zeros([BLOCK_D, NP], dtype=tl.float32)
        for it in range(0, NT):
            offs_t = it * BLOCK_T + tt
            mask_t = offs_t < L
            m_x = mask_d[:, None] & mask_t[None, :]
            m_bc = mask_n[:, None] & mask_t[None, :]
            u = tl.load(u_ptr + base_x + offs_t[None, :], mask=m_x, other=0.0).to(tl.float32)
            dt = tl.load(dt_ptr + base_x + offs_t[None, :], mask=m_x, other=0.0).to(tl.float32)
            Bt = tl.load(B_ptr + base_bc + offs_t[None, :], mask=m_bc, other=0.0).to(tl.float32)
            Ct = tl.load(C_ptr + base_bc + offs_t[None, :], mask=m_bc, other=0.0).to(tl.float32)
            _, dt = _delta(dt, bias, m_x, HAS_BIAS, SOFTPLUS)
            a = tl.exp2(dt[:, None, :] * A2[:, :, None])  # [BD, NP, BT]
            x = (dt * u)[:, None, :] * Bt[None, :, :]
            aS, xS = tl.associative_scan((a, x), 2, _combine)
            hs = aS * h[:, :, None] + xS
            y = tl.sum(hs * Ct[None, :, :], axis=1)  # [BD, BT]
            if SAVE_STATES:
                sp = states_ptr + ((pid_b * NT + it) * DIM + offs_d[:, None]) * N + offs_n[None, :]
                tl.store(sp, h, mask=mask_dn)
            h = tl.sum(tl.where((tt == BLOCK_T - 1)[None, None, :], hs, 0.0), axis=2)
            if HAS_D:
                y += Dv[:, None] * u
            if HAS_Z:
                zt = tl.load(z_ptr + base_x + offs_t[None, :], mask=m_x, other=0.0).to(tl.float32)
                y = y * (zt * tl.sigmoid(zt))
            tl.store(out_ptr + base_x + offs_t[None, :], y.to(out_ptr.dtype.element_ty), mask=m_x)
        if STORE_LAST:
            lp = last_ptr + (pid_b * DIM + offs_d[:, None]) * N + offs_n[None, :]
            tl.store(lp, h, mask=mask_dn)

    @triton.jit
    def _scan_bwd_kernel(
        u_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, dout_ptr, states_ptr,
        du_ptr, ddt_ptr, dA_ptr, dB_ptr, dC_ptr, dD_ptr, dz_ptr, dbias_ptr,
        L, DIM, N, G, DPG, NT, NDB,
        BLOCK_D: tl.constexpr, NP: tl.constexpr, BLOCK_T: tl.constexpr,
        HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
        ATOMIC_BC: tl.constexpr = False,
    ):
        pid_d = tl.program_id(0)
        pid_b = tl.program_id(1).to(tl.int64)
        offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
        mask_d = offs_d < DIM
        offs_n = tl.arange(0, NP)
        mask_n = offs_n < N
        mask_dn = mask_d[:, None] & mask_n[None, :]
        grp = (pid_d * BLOCK_D) // DPG
        A = tl.load(A_ptr + offs_d[:, None] * N + offs_n[None, :], mask=mask_dn, other=0.0).to(tl.float32)
        A2 = A * 1.4426950408889634
        if HAS_D:
            Dv = tl.load(D_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
        if HAS_BIAS:
            bias = tl.load(bias_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
        base_x = pid_b * DIM * L + offs_d[:, None].to(tl.int64) * L
        base_bc = (pid_b * G + grp) * N * L + offs_n[:, None].to(tl.int64) * L
        base_p = _bc_row(pid_b, pid_d, grp, G, NDB, ATOMIC_BC) * N * L + offs_n[:, None].to(tl.int64) * L
        tt = tl.arange(0, BLOCK_T)
        gcarry = tl.zeros([BLOCK_D, NP], dtype=tl.float32)
        dA_acc = tl.zeros([BLOCK_D, NP], dtype=tl.float32)
        dD_acc = tl.zeros([BLOCK_D], dtype=tl.float32)
        dbias_acc = tl.zeros([BLOCK_D], dtype=tl.float32)
        for i in range(0, NT):
            it = NT - 1 - i
            offs_t = it * BLOCK_T + tt
            mask_t = offs_t < L
            m_x = mask_d[:, None] & mask_t[None, :]
            m_bc = mask_n[:, None] & mask_t[None, :]
            u = tl.load(u_ptr + base_x + offs_t[None, :], mask=m_x, other=0.0).to(tl.float32)
            dt_raw = tl.load(dt_ptr + base_x + offs_t[None, :], mask=m_x, other=0.0).to(tl.float32)
            # delta at t+1 (for a_{t+1} in the adjoint recurrence)
            m_nx = mask_d[:, None] & ((offs_t + 1) < L)[None, :]
            dtn = tl.load(dt_ptr + base_x + offs_t[None, :] + 1, mask=m_nx, other=0.0).to(tl.float32)
            Bt = tl.load(B_ptr + base_bc + offs_t[None, :], mask=m_bc, other=0.0).to(tl.float32)
            Ct = tl.load(C_ptr + base_bc + offs_t[None, :], mask=m_bc, other=0.0).to(tl.float32)
            dout = tl.load(dout_ptr + base_x + offs_t[None, :], mask=m_x, other=0.0).to(tl.float32)
            dt = dt_raw
            if HAS_BIAS:
                dt = dt + bias[:, None]
                dtn = dtn + bias[:, None]
            dt_pre = dt
            if SOFTPLUS:
                dt = _softplus(dt)
                dtn = _softplus(dtn)
            if HAS_BIAS or SOFTPLUS:
                dt = tl.where(m_x, dt, 0.0)
                dtn = tl.where(m_nx, dtn, 0.0)
            sp = states_ptr + ((pid_b * NT + it) * DIM + offs_d[:, None]) * N + offs_n[None, :]
            h0 = tl.load(sp, mask=mask_dn, other=0.0)
            # recompute the states of this tile
            a = tl.exp2(dt[:, None, :] * A2[:, :, None])
            dtu = dt * u
            x = dtu[:, None, :] * Bt[None, :, :]
            aS, xS = tl.associative_scan((a, x), 2, _combine)
            hs = aS * h0[:, :, None] + xS
            y = tl.sum(hs * Ct[None, :, :], axis=1)
            if HAS_D:
                y += Dv[:, None] * u
            if HAS_Z:
                zt = tl.load(z_ptr + base_x + offs_t[None, :], mask=m_x, other=0.0).to(tl.float32)
                sz = tl.sigmoid(zt)
                dz = dout * y * sz * (1.0 + zt * (1.0 - sz))
                tl.store(dz_ptr + base_x + offs_t[None, :], dz.to(dz_ptr.dtype.element_ty), mask=m_x)
                dy = dout * zt * sz
            else:
                dy = dout
            # dC_t[n] = sum_d dy_t[d] h_t[d, n]
            dC_part = tl.sum(hs * dy[:, None, :], axis=0)  # [NP, BT]
            _put_bc(dC_ptr + base_p + offs_t[None, :], dC_part, m_bc, ATOMIC_BC)
            # adjoint: g_t = C_t dy_t + a_{t+1} g_{t+1}
            alpha = tl.exp2(dtn[:, None, :] * A2[:, :, None])
            beta = Ct[None, :, :] * dy[:, None, :]
            alS, beS = tl.associative_scan((alpha, beta), 2, _combine, reverse=True)
            g = beS + alS * gcarry[:, :, None]
            gcarry = tl.sum(tl.where((tt == 0)[None, None, :], g, 0.0), axis=2)
            ga = g * (hs - x)  # dLoss/d(delta*A)
            dA_acc += tl.sum(ga * dt[:, None, :], axis=2)
            gB = tl.sum(g * Bt[None, :, :], axis=1)  # [BD, BT]
            ddt = tl.sum(ga * A[:, :, None], axis=1) + u * gB
            du = dt * gB
            if HAS_D:
                du += Dv[:, None] * dy
                dD_acc += tl.sum(dy * u, axis=1)
            dB_part = tl.sum(g * dtu[:, None, :], axis=0)  # [NP, BT]
            _put_bc(dB_ptr + base_p + offs_t[None, :], dB_part, m_bc, ATOMIC_BC)
            if SOFTPLUS:
                ddt = ddt * tl.sigmoid(dt_pre)
            if HAS_BIAS:
                dbias_acc += tl.sum(tl.where(m_x, ddt, 0.0), axis=1)
            tl.store(du_ptr + base_x + offs_t[None, :], du.to(du_ptr.dtype.element_ty), mask=m_x)
            tl.store(ddt_ptr + base_x + offs_t[None, :], ddt.to(ddt_ptr.dtype.element_ty), mask=m_x)
        tl.atomic_add(dA_ptr + offs_d[:, None] * N + offs_n[None, :], dA_acc, mask=mask_dn)
        if HAS_D:
            tl.atomic_add(dD_ptr + offs_d, dD_acc, mask=mask_d)
        if HAS_BIAS:
            tl.atomic_add(dbias_ptr + offs_d, dbias_acc, mask=mask_d)

    # ---------------------------------------------------------------------------------------------
    # Time-major variants: tiles are [BLOCK_T, BLOCK_D, NP] with time as the slowest axis, so that
    # Triton's default layout gives each thread whole time columns of its (d, n) pairs: the scan
    # along axis 0 runs sequentially inside a thread (no cross-lane shuffles); only the sum over n
    # for y (and over d for dB/dC in the backward) crosses lanes.
    # ---------------------------------------------------------------------------------------------

    @triton.jit
    def _scan_fwd_kernel_tm(
        u_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr,
        out_ptr, last_ptr, states_ptr,
        L, DIM, N, G, DPG, NT,
        BLOCK_D: tl.constexpr, NP: tl.constexpr, BLOCK_T: tl.constexpr,
        HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
        SAVE_STATES: tl.constexpr, STORE_LAST: tl.constexpr, ASM: tl.constexpr = False,
    ):
        pid_d = tl.program_id(0)
        pid_b = tl.program_id(1).to(tl.int64)
        offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
        mask_d = offs_d < DIM
        offs_n = tl.arange(0, NP)
        mask_n = offs_n < N
        mask_dn = mask_d[:, None] & mask_n[None, :]
        grp = (pid_d * BLOCK_D) // DPG
        A2 = tl.load(A_ptr + offs_d[:, None] * N + offs_n[None, :], mask=mask_dn, other=0.0).to(tl.float32) * 1.4426950408889634
        if HAS_D:
            Dv = tl.load(D_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
        bias = 0.0  # unused without delta_bias (_delta)
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
            u = _f32_opaque(tl.load(u_ptr + base_x + offs_t[:, None], mask=m_x, other=0.0), ASM)  # [BT, BD]
            dt = _f32_opaque(tl.load(dt_ptr + base_x + offs_t[:, None], mask=m_x, other=0.0), ASM)
            Bt = _f32_opaque(tl.load(B_ptr + base_bc + offs_t[:, None], mask=m_bc, other=0.0), ASM)  # [BT, NP]
            Ct = _f32_opaque(tl.load(C_ptr + base_bc + offs_t[:, None], mask=m_bc, other=0.0), ASM)
            _, dt = _delta(dt, bias, m_x, HAS_BIAS, SOFTPLUS)
            a = tl.exp2(dt[:, :, None] * A2[None, :, :])  # [BT, BD, NP]
            x = (dt * u)[:, :, None] * Bt[:, None, :]
            aS, xS = tl.associative_scan((a, x), 0, _combine)
            hs = aS * h[None, :, :] + xS
            y = tl.sum(hs * Ct[:, None, :], axis=2)  # [BT, BD]
            if SAVE_STATES:
                sp = states_ptr + ((pid_b * NT + it) * DIM + offs_d[:, None]) * N + offs_n[None, :]
                tl.store(sp, h, mask=mask_dn)
            h = tl.sum(tl.where((tt == BLOCK_T - 1)[:, None, None], hs, 0.0), axis=0)
            if HAS_D:
                y += Dv[None, :] * u
            if HAS_Z:
                zt = _f32_opaque(tl.load(z_ptr + base_x + offs_t[:, None], mask=m_x, other=0.0), ASM)
                y = y * (zt * tl.sigmoid(zt))
            tl.store(out_ptr + base_x + offs_t[:, None], y.to(out_ptr.dtype.element_ty), mask=m_x)
        if STORE_LAST:
            lp = last_ptr + (pid_b * DIM + offs_d[:, None]) * N + offs_n[None, :]
            tl.store(lp, h, mask=mask_dn)

    @triton.jit
    def _f32_opaque(x, ASM: tl.constexpr):
        """fp32 copy of a loaded tile.  For 16-bit inputs with ASM (compiled, not interpreted) the upcast is an
        inline-asm cvt, opaque to Triton's layout pass, so that Triton 3.6 cannot hoist the layout conversion
        (and the softplus/bias chain after it) above the upcast onto the 16-bit tile (v6a)."""
        if ASM and x.dtype == tl.bfloat16:
            return tl.inline_asm_elementwise("cvt.f32.bf16 $0, $1;", "=r,h", [x], dtype=tl.float32,
                                             is_pure=True, pack=1)
        elif ASM and x.dtype == tl.float16:
            return tl.inline_asm_elementwise("cvt.f32.f16 $0, $1;", "=r,h", [x], dtype=tl.float32,
                                             is_pure=True, pack=1)
        else:
            return x.to(tl.float32)

    @triton.jit
    def _tmw_setup(A_ptr, D_ptr, bias_ptr, L, DIM, N, G, DPG, BLOCK_D: tl.constexpr, NI: tl.constexpr,
                   NL: tl.constexpr, HAS_D: tl.constexpr, HAS_BIAS: tl.constexpr):
        """The tmw layout, shared by its forward and backward (n = ni * NL + nl): this program's channels, the
        state-shaped [NI, BD, NL] indices (saved states, A, dA), A as [1, NI, BD, NL], D and delta_bias as
        [1, BD] (zeros when absent), and the row bases of the [BT, BD] operands and the [1, NI, NL] B/C rows."""
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
                      BLOCK_T: tl.constexpr, HAS_Z: tl.constexpr):
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

    # v6a forward "tmw": tiles [BLOCK_T, NI, BLOCK_D, NL] as in the v4 backward (n = ni * NL + nl; NL and
    # BLOCK_D on lanes, BLOCK_T and NI in-thread).  The scan is an in-thread loop, the sum over n for y is
    # NI-fold in-thread and log2(NL) shuffles per (t, d).  The carried state enters as x_0 += a_0 * h, so
    # the scan's state component is h_t.  Same saved-state contract as the other forwards: (B, cdiv(L, SAVE_T),
    # D, N) fp32 at the starts of the backward's tiles (SAVE_T divides BLOCK_T; v7).
    @triton.jit
    def _scan_fwd_kernel_tmw(
        u_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr,
        out_ptr, last_ptr, states_ptr,
        L, DIM, N, G, DPG, NT,
        BLOCK_D: tl.constexpr, NP: tl.constexpr, BLOCK_T: tl.constexpr, NL: tl.constexpr, ASM: tl.constexpr,
        HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
        SAVE_STATES: tl.constexpr, STORE_LAST: tl.constexpr, SAVE_T: tl.constexpr, PREFETCH: tl.constexpr = False,
    ):
        NI: tl.constexpr = NP // NL
        NTS = tl.cdiv(L, SAVE_T)  # saved states every SAVE_T steps (the backward's tile, dividing BLOCK_T)
        pid_d, pid_b, offs_d, mask_d, n3, d3, m_dn, grp, A, Dv, bias, base_x, n_bc, m_nbc, base_bc = _tmw_setup(
            A_ptr, D_ptr, bias_ptr, L, DIM, N, G, DPG, BLOCK_D, NI, NL, HAS_D, HAS_BIAS)
        A2 = A * 1.4426950408889634
        tt = tl.arange(0, BLOCK_T)
        first = (tt == 0)[:, None, None, None]
        last_t = (tt == BLOCK_T - 1)[:, None, None, None]
        h = tl.zeros([NI, BLOCK_D, NL], dtype=tl.float32)
        if PREFETCH:  # v8: tile it+1's loads are issued before tile it's arithmetic (latency: ~12 warps/SM)
            u_n, dt_n, z_n, B_n, C_n = _tmw_fwd_load(u_ptr, dt_ptr, z_ptr, B_ptr, C_ptr, 0, L, base_x, base_bc,
                                                     mask_d, m_nbc, tt, BLOCK_T, HAS_Z)
        for it in range(0, NT):
            offs_t = it * BLOCK_T + tt
            mask_t = offs_t < L
            m_x = mask_t[:, None] & mask_d[None, :]
            px = base_x + offs_t[:, None]
            if PREFETCH:
                u_r, dt_r, z_r, B_r, C_r = u_n, dt_n, z_n, B_n, C_n
                u_n, dt_n, z_n, B_n, C_n = _tmw_fwd_load(u_ptr, dt_ptr, z_ptr, B_ptr, C_ptr, it + 1, L, base_x,
                                                         base_bc, mask_d, m_nbc, tt, BLOCK_T, HAS_Z)
            else:
                u_r, dt_r, z_r, B_r, C_r = _tmw_fwd_load(u_ptr, dt_ptr, z_ptr, B_ptr, C_ptr, it, L, base_x, base_bc,
                                                         mask_d, m_nbc, tt, BLOCK_T, HAS_Z)
            u = _f32_opaque(u_r, ASM)  # [BT, BD]
            dt = _f32_opaque(dt_r, ASM)
            Bt = _f32_opaque(B_r, ASM)[:, :, None, :]  # [BT, NI, 1, NL]
            Ct = _f32_opaque(C_r, ASM)[:, :, None, :]
            _, dt = _delta(dt, bias, m_x, HAS_BIAS, SOFTPLUS)
            if SAVE_STATES:
                sp = states_ptr + ((pid_b * NTS + it * (BLOCK_T // SAVE_T)) * DIM + d3) * N + n3
                tl.store(sp, h, mask=m_dn)
            a = tl.exp2(dt[:, None, :, None] * A2)  # [BT, NI, BD, NL]
            x = (dt * u)[:, None, :, None] * Bt
            _, hs = tl.associative_scan((a, x + tl.where(first, a * h[None], 0.0)), 0, _combine)
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
                zt = _f32_opaque(z_r, ASM)
                y = y * (zt * tl.sigmoid(zt))
            tl.store(out_ptr + px, y.to(out_ptr.dtype.element_ty), mask=m_x)
        if STORE_LAST:
            tl.store(last_ptr + (pid_b * DIM + d3) * N + n3, h, mask=m_dn)

    @triton.jit
    def _scan_bwd_kernel_tm(
        u_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, dout_ptr, states_ptr,
        du_ptr, ddt_ptr, dA_ptr, dB_ptr, dC_ptr, dD_ptr, dz_ptr, dbias_ptr,
        L, DIM, N, G, DPG, NT, NDB,
        BLOCK_D: tl.constexpr, NP: tl.constexpr, BLOCK_T: tl.constexpr,
        HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
        ATOMIC_BC: tl.constexpr = False,
    ):
        pid_d = tl.program_id(0)
        pid_b = tl.program_id(1).to(tl.int64)
        offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
        mask_d = offs_d < DIM
        offs_n = tl.arange(0, NP)
        mask_n = offs_n < N
        mask_dn = mask_d[:, None] & mask_n[None, :]
        grp = (pid_d * BLOCK_D) // DPG
        A = tl.load(A_ptr + offs_d[:, None] * N + offs_n[None, :], mask=mask_dn, other=0.0).to(tl.float32)
        A2 = A * 1.4426950408889634
        if HAS_D:
            Dv = tl.load(D_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
        if HAS_BIAS:
            bias = tl.load(bias_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
        base_x = pid_b * DIM * L + offs_d[None, :].to(tl.int64) * L
        base_bc = (pid_b * G + grp) * N * L + offs_n[None, :].to(tl.int64) * L
        base_p = _bc_row(pid_b, pid_d, grp, G, NDB, ATOMIC_BC) * N * L + offs_n[None, :].to(tl.int64) * L
        tt = tl.arange(0, BLOCK_T)
        gcarry = tl.zeros([BLOCK_D, NP], dtype=tl.float32)
        dA_acc = tl.zeros([BLOCK_D, NP], dtype=tl.float32)
        dD_acc = tl.zeros([BLOCK_D], dtype=tl.float32)
        dbias_acc = tl.zeros([BLOCK_D], dtype=tl.float32)
        for i in range(0, NT):
            it = NT - 1 - i
            offs_t = it * BLOCK_T + tt
            mask_t = offs_t < L
            m_x = mask_t[:, None] & mask_d[None, :]
            m_bc = mask_t[:, None] & mask_n[None, :]
            u = tl.load(u_ptr + base_x + offs_t[:, None], mask=m_x, other=0.0).to(tl.float32)
            dt_raw = tl.load(dt_ptr + base_x + offs_t[:, None], mask=m_x, other=0.0).to(tl.float32)
            m_nx = ((offs_t + 1) < L)[:, None] & mask_d[None, :]
            dtn = tl.load(dt_ptr + base_x + offs_t[:, None] + 1, mask=m_nx, other=0.0).to(tl.float32)
            Bt = tl.load(B_ptr + base_bc + offs_t[:, None], mask=m_bc, other=0.0).to(tl.float32)
            Ct = tl.load(C_ptr + base_bc + offs_t[:, None], mask=m_bc, other=0.0).to(tl.float32)
            dout = tl.load(dout_ptr + base_x + offs_t[:, None], mask=m_x, other=0.0).to(tl.float32)
            dt = dt_raw
            if HAS_BIAS:
                dt = dt + bias[None, :]
                dtn = dtn + bias[None, :]
            dt_pre = dt
            if SOFTPLUS:
                dt = _softplus(dt)
                dtn = _softplus(dtn)
            if HAS_BIAS or SOFTPLUS:
                dt = tl.where(m_x, dt, 0.0)
                dtn = tl.where(m_nx, dtn, 0.0)
            sp = states_ptr + ((pid_b * NT + it) * DIM + offs_d[:, None]) * N + offs_n[None, :]
            h0 = tl.load(sp, mask=mask_dn, other=0.0)
            a = tl.exp2(dt[:, :, None] * A2[None, :, :])  # [BT, BD, NP]
            dtu = dt * u
            x = dtu[:, :, None] * Bt[:, None, :]
            aS, xS = tl.associative_scan((a, x), 0, _combine)
            hs = aS * h0[None, :, :] + xS
            y = tl.sum(hs * Ct[:, None, :], axis=2)  # [BT, BD]
            if HAS_D:
                y += Dv[None, :] * u
            if HAS_Z:
                zt = tl.load(z_ptr + base_x + offs_t[:, None], mask=m_x, other=0.0).to(tl.float32)
                sz = tl.sigmoid(zt)
                dz = dout * y * sz * (1.0 + zt * (1.0 - sz))
                tl.store(dz_ptr + base_x + offs_t[:, None], dz.to(dz_ptr.dtype.element_ty), mask=m_x)
                dy = dout * zt * sz
            else:
                dy = dout
            dC_part = tl.sum(hs * dy[:, :, None], axis=1)  # [BT, NP]
            _put_bc(dC_ptr + base_p + offs_t[:, None], dC_part, m_bc, ATOMIC_BC)
            alpha = tl.exp2(dtn[:, :, None] * A2[None, :, :])
            beta = Ct[:, None, :] * dy[:, :, None]
            alS, beS = tl.associative_scan((alpha, beta), 0, _combine, reverse=True)
            g = beS + alS * gcarry[None, :, :]
            gcarry = tl.sum(tl.where((tt == 0)[:, None, None], g, 0.0), axis=0)
            ga = g * (hs - x)
            dA_acc += tl.sum(ga * dt[:, :, None], axis=0)
            gB = tl.sum(g * Bt[:, None, :], axis=2)  # [BT, BD]
            ddt = tl.sum(ga * A[None, :, :], axis=2) + u * gB
            du = dt * gB
            if HAS_D:
                du += Dv[None, :] * dy
                dD_acc += tl.sum(dy * u, axis=0)
            dB_part = tl.sum(g * dtu[:, :, None], axis=1)  # [BT, NP]
            _put_bc(dB_ptr + base_p + offs_t[:, None], dB_part, m_bc, ATOMIC_BC)
            if SOFTPLUS:
                ddt = ddt * tl.sigmoid(dt_pre)
            if HAS_BIAS:
                dbias_acc += tl.sum(tl.where(m_x, ddt, 0.0), axis=0)
            tl.store(du_ptr + base_x + offs_t[:, None], du.to(du_ptr.dtype.element_ty), mask=m_x)
            tl.store(ddt_ptr + base_x + offs_t[:, None], ddt.to(ddt_ptr.dtype.element_ty), mask=m_x)
        tl.atomic_add(dA_ptr + offs_d[:, None] * N + offs_n[None, :], dA_acc, mask=mask_dn)
        if HAS_D:
            tl.atomic_add(dD_ptr + offs_d, dD_acc, mask=mask_d)
        if HAS_BIAS:
            tl.atomic_add(dbias_ptr + offs_d, dbias_acc, mask=mask_d)

    # ---------------------------------------------------------------------------------------------
    # v4 backward, "tmw" (time-major, warp-local): tiles [BLOCK_T, NI, BLOCK_D, NL] with N split as
    # n = ni * NL + nl.  Triton's default layout puts NL (fastest axis) and then BLOCK_D on the 32
    # lanes and keeps BLOCK_T and NI inside the thread, so with num_warps = 1 and BLOCK_D * NL = 32:
    #   * both scans over time are sequential in-thread loops (no shuffles), as are the tile-carry
    #     extraction and the sums over time for dA, dD, d(delta_bias);
    #   * the three sums over n (y, g.B, g.(A a h)) are NI-fold in-thread, then log2(NL) shuffles;
    #   * the two sums over d (dB, dC partials) are log2(BLOCK_D) shuffles, never cross-warp;
    #   * each thread holds NI (d, n) chains, so a 1-warp program has no shared-memory reductions.
    # See docs/notes/scan_kernel.md, "v4".
    # ---------------------------------------------------------------------------------------------

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
                      base_x, base_bc, d3, n3, m_dn, mask_d, m_nbc, tt, BLOCK_T: tl.constexpr, HAS_Z: tl.constexpr):
        """v6b: the inputs of backward tile ``it`` of the tmw layout (all zero when it < 0): u, delta,
        delta at t+1, dout, z (u when there is no z), B, C ([BT, NI, 1, NL]) and the saved state h0."""
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

    @triton.jit
    def _scan_bwd_kernel_tmw(
        u_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, dout_ptr, states_ptr,
        du_ptr, ddt_ptr, dA_ptr, dB_ptr, dC_ptr, dD_ptr, dz_ptr, dbias_ptr,
        L, DIM, N, G, DPG, NT, NDB,
        BLOCK_D: tl.constexpr, NP: tl.constexpr, BLOCK_T: tl.constexpr, NL: tl.constexpr,
        HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
        PREFETCH: tl.constexpr = False, ATOMIC_BC: tl.constexpr = False, FAST_EW: tl.constexpr = False,
    ):
        NI: tl.constexpr = NP // NL
        pid_d, pid_b, offs_d, mask_d, n3, d3, m_dn, grp, A, Dv, bias, base_x, n_bc, m_nbc, base_bc = _tmw_setup(
            A_ptr, D_ptr, bias_ptr, L, DIM, N, G, DPG, BLOCK_D, NI, NL, HAS_D, HAS_BIAS)
        A2 = A * 1.4426950408889634
        base_p = _bc_row(pid_b, pid_d, grp, G, NDB, ATOMIC_BC) * N * L + n_bc.to(tl.int64) * L
        tt = tl.arange(0, BLOCK_T)
        first = (tt == 0)[:, None, None, None]
        gcarry = tl.zeros([NI, BLOCK_D, NL], dtype=tl.float32)
        dA_acc = tl.zeros([NI, BLOCK_D, NL], dtype=tl.float32)
        dD_acc = tl.zeros([BLOCK_D], dtype=tl.float32)
        dbias_acc = tl.zeros([BLOCK_D], dtype=tl.float32)
        if PREFETCH:  # v6b: the loads of tile it-1 are issued before tile it's arithmetic
            u_n, dt_n, dtn_n, dout_n, z_n, B_n, C_n, h0_n = _tmw_bwd_load(
                u_ptr, dt_ptr, dout_ptr, z_ptr, B_ptr, C_ptr, states_ptr, NT - 1, L, DIM, N, NT, pid_b,
                base_x, base_bc, d3, n3, m_dn, mask_d, m_nbc, tt, BLOCK_T, HAS_Z)
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
                    base_x, base_bc, d3, n3, m_dn, mask_d, m_nbc, tt, BLOCK_T, HAS_Z)
            else:
                u, dt, dtn, dout, zt, Bt, Ct, h0 = _tmw_bwd_load(
                    u_ptr, dt_ptr, dout_ptr, z_ptr, B_ptr, C_ptr, states_ptr, it, L, DIM, N, NT, pid_b,
                    base_x, base_bc, d3, n3, m_dn, mask_d, m_nbc, tt, BLOCK_T, HAS_Z)
            if HAS_BIAS:
                dt = dt + bias
                dtn = dtn + bias
            dt_pre = dt
            if SOFTPLUS:
                dt = _softplus(dt, FAST_EW)
                dtn = _softplus(dtn, FAST_EW)
            if HAS_BIAS or SOFTPLUS:
                dt = tl.where(m_x, dt, 0.0)
                dtn = tl.where(m_nx, dtn, 0.0)
            dt4 = dt[:, None, :, None]
            dtu = dt * u
            # recompute the tile's states; the first step absorbs the carried-in state, so the scan's
            # state component is h_t itself
            a = tl.exp2(dt4 * A2)  # [BT, NI, BD, NL]
            x = dtu[:, None, :, None] * Bt
            _, hs = tl.associative_scan((a, x + tl.where(first, a * h0[None], 0.0)), 0, _combine)
            y = tl.sum(tl.sum(hs * Ct, axis=1), axis=2)  # [BT, BD]
            if HAS_D:
                y += Dv * u
            if HAS_Z:
                sz = _sigmoid(zt, FAST_EW)
                dz = dout * y * sz * (1.0 + zt * (1.0 - sz))
                tl.store(dz_ptr + px, dz.to(dz_ptr.dtype.element_ty), mask=m_x)
                dy = dout * zt * sz
            else:
                dy = dout
            dy4 = dy[:, None, :, None]
            _put_bc(dC_ptr + base_p + offs_t[:, None, None], tl.sum(hs * dy4, axis=2), m_bc, ATOMIC_BC)
            # adjoint g_t = C_t dy_t + a_{t+1} g_{t+1}; the carry from the later tile enters at the
            # last step: a_{t+1} there is the next tile's first decay (alpha of the last row)
            alpha = tl.exp2(dtn[:, None, :, None] * A2)
            last = (tt == BLOCK_T - 1)[:, None, None, None]
            beta = Ct * dy4 + tl.where(last, alpha * gcarry[None], 0.0)
            # reverse scan as a forward scan on the time-flipped tile: Triton lowers reverse=True along
            # an in-thread axis with shuffles, while the flips below compile to register renaming
            _, g = tl.associative_scan((_flip_t(alpha, BLOCK_T), _flip_t(beta, BLOCK_T)), 0, _combine)
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
            _put_bc(dB_ptr + base_p + offs_t[:, None, None], tl.sum(g * dtu[:, None, :, None], axis=2), m_bc, ATOMIC_BC)
            if SOFTPLUS:
                ddt = ddt * _sigmoid(dt_pre, FAST_EW)
            if HAS_BIAS:
                dbias_acc += tl.sum(tl.where(m_x, ddt, 0.0), axis=0)
            tl.store(du_ptr + px, du.to(du_ptr.dtype.element_ty), mask=m_x)
            tl.store(ddt_ptr + px, ddt.to(ddt_ptr.dtype.element_ty), mask=m_x)
        tl.atomic_add(dA_ptr + d3 * N + n3, dA_acc, mask=m_dn)
        if HAS_D:
            tl.atomic_add(dD_ptr + offs_d, dD_acc, mask=mask_d)
        if HAS_BIAS:
            tl.atomic_add(dbias_ptr + offs_d, dbias_acc, mask=mask_d)

    # ---------------------------------------------------------------------------------------------
    # v5, "sn" (small N, N <= 2): 2-D tiles [BLOCK_D, BLOCK_T] per state index n, no n axis.  At N = 1
    # there are only B*D chains, so time has to cross lanes for parallelism: Triton's load layout
    # gives each thread 4 (fp32) or 8 (bf16) contiguous steps (one vector load) with the 32 lanes
    # along time and the warps over channels, so the scans are in-thread + one warp scan, never
    # cross-warp (keep BLOCK_T <= 32 x the vector width).  The reverse (adjoint) scan is a forward
    # scan in reversed time: Triton lowers ``reverse=True`` across lanes to 17.5 shuffles per
    # element, while a flip with ``tl.gather`` is one shuffle per value (5.5 in all, sm_90).  The
    # flip of the decays also shifts them by one step (the adjoint needs a_{t+1}), so the backward
    # needs no second, misaligned load of delta.  See docs/notes/scan_kernel.md, "v5".
    # ---------------------------------------------------------------------------------------------

    @triton.jit
    def _sn_state(dt, dtu, A2n, Bn, h0, first):
        # states of one n over the tile; the carried-in state enters the first step (x_0 += a_0 h0)
        a = tl.exp2(dt * A2n)
        x = dtu * Bn
        _, hs = tl.associative_scan((a, x + tl.where(first, a * h0[:, None], 0.0)), 1, _combine)
        return a, x, hs

    @triton.jit
    def _sn_adjoint(a, x, hs, Cn, dy, dtu, c, rev, rev1, first, pdb, pdc, mt, ATOMIC_BC: tl.constexpr):
        # g_t = C_t dy_t + a_{t+1} g_{t+1}: a forward scan over r = BT-1-t, decays gathered from
        # index BT-r (mod BT; the first one is unused), the later tile's a_0 g_0 (c) entering at r = 0
        _put_bc(pdc, tl.sum(hs * dy, axis=0), mt, ATOMIC_BC)
        beta = tl.gather(Cn * dy, rev, 1) + tl.where(first, c[:, None], 0.0)
        _, g = tl.associative_scan((tl.gather(a, rev1, 1), beta), 1, _combine)
        g = tl.gather(g, rev, 1)
        _put_bc(pdb, tl.sum(g * dtu, axis=0), mt, ATOMIC_BC)
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
    ):
        pid_d = tl.program_id(0)
        pid_b = tl.program_id(1).to(tl.int64)
        offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
        mask_d = offs_d < DIM
        grp = (pid_d * BLOCK_D) // DPG
        A20 = tl.load(A_ptr + offs_d * N, mask=mask_d, other=0.0).to(tl.float32)[:, None] * 1.4426950408889634
        if NP == 2:
            A21 = tl.load(A_ptr + offs_d * N + 1, mask=mask_d, other=0.0).to(tl.float32)[:, None] * 1.4426950408889634
        if HAS_D:
            Dv = tl.load(D_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)[:, None]
        bias = 0.0  # unused without delta_bias (_delta)
        if HAS_BIAS:
            bias = tl.load(bias_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)[:, None]
        base_x = pid_b * DIM * L + offs_d[:, None].to(tl.int64) * L
        base_bc = (pid_b * G + grp) * N * L
        tt = tl.arange(0, BLOCK_T)
        first = (tt == 0)[None, :]
        last = (tt == BLOCK_T - 1)[None, :]
        h0 = tl.zeros([BLOCK_D], dtype=tl.float32)
        h1 = tl.zeros([BLOCK_D], dtype=tl.float32)
        for it in range(0, NT):
            offs_t = it * BLOCK_T + tt
            mask_t = offs_t < L
            m_x = mask_d[:, None] & mask_t[None, :]
            px = base_x + offs_t[None, :]
            u = tl.load(u_ptr + px, mask=m_x, other=0.0).to(tl.float32)
            dt = tl.load(dt_ptr + px, mask=m_x, other=0.0).to(tl.float32)
            _, dt = _delta(dt, bias, m_x, HAS_BIAS, SOFTPLUS)
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
    ):
        pid_d = tl.program_id(0)
        pid_b = tl.program_id(1).to(tl.int64)
        offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
        mask_d = offs_d < DIM
        grp = (pid_d * BLOCK_D) // DPG
        A0 = tl.load(A_ptr + offs_d * N, mask=mask_d, other=0.0).to(tl.float32)[:, None]
        if NP == 2:
            A1 = tl.load(A_ptr + offs_d * N + 1, mask=mask_d, other=0.0).to(tl.float32)[:, None]
        if HAS_D:
            Dv = tl.load(D_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)[:, None]
        bias = 0.0  # unused without delta_bias (_delta)
        if HAS_BIAS:
            bias = tl.load(bias_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)[:, None]
        base_x = pid_b * DIM * L + offs_d[:, None].to(tl.int64) * L
        base_bc = (pid_b * G + grp) * N * L
        base_p = _bc_row(pid_b, pid_d, grp, G, NDB, ATOMIC_BC) * N * L
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
            offs_t = it * BLOCK_T + tt
            mask_t = offs_t < L
            m_x = mask_d[:, None] & mask_t[None, :]
            px = base_x + offs_t[None, :]
            u = tl.load(u_ptr + px, mask=m_x, other=0.0).to(tl.float32)
            dt = tl.load(dt_ptr + px, mask=m_x, other=0.0).to(tl.float32)
            dout = tl.load(dout_ptr + px, mask=m_x, other=0.0).to(tl.float32)
            dt_pre, dt = _delta(dt, bias, m_x, HAS_BIAS, SOFTPLUS)
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
                a1, x1, hs1 = _sn_state(dt, dtu, A1 * 1.4426950408889634, B1, tl.load(sp + 1, mask=mask_d, other=0.0), first)
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
            g, ga, c0 = _sn_adjoint(a0, x0, hs0, C0, dy, dtu, c0, rev, rev1, first, dB_ptr + pp, dC_ptr + pp, mask_t, ATOMIC_BC)
            dA0 += _fold_t(ga * dt, BLOCK_D, BLOCK_T)
            gB = g * B0
            ddt = ga * A0
            if NP == 2:
                g, ga, c1 = _sn_adjoint(a1, x1, hs1, C1, dy, dtu, c1, rev, rev1, first, dB_ptr + pp + L, dC_ptr + pp + L, mask_t, ATOMIC_BC)
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


def _cdiv(a: int, b: int) -> int:
    # host-side ceil division (triton.cdiv is a jit function: ~3 us a call on the host, five calls per f+b)
    return -(-a // b)


def _pow2_le(n: int) -> int:
    return 1 << (max(1, n).bit_length() - 1)


def _next_pow2(n: int) -> int:
    return 1 << max(0, (max(1, n) - 1).bit_length())


def default_config(dim: int, length: int, d_state: int, groups: int, backward: bool = False,
                   itemsize: int = 4) -> dict:
    """Tile configuration, from the H100 sweeps in docs/notes/scan_kernel.md.

    Forward, 4 <= N <= 16 (v6a, v8, v9): warp-local time-major tiles ("tmw"), each warp 32 // N_LANES channels
    x N_LANES lanes over n, the rest of n and the time steps in-thread, the next tile's loads issued early
    (PREFETCH: the forward was latency-bound); long sequences (L >= 1024, e.g. VMamba stage 1) 4 lanes, 16 steps,
    two warps a program (v9: they share B/C); short ones (e.g. Vim, L = 197) 2 lanes, 8 steps, one warp.  Both
    compile to 234-255 registers (no spills on Triton 3.6 and 3.8 at inference; fewer-register tiles were 6-23 %
    slower, notes "v8").  N > 16:
    time-major tiles ("tm"), BLOCK_D * NP = 128, every thread of 4 warps owns one (d, n) pair.
    Backward, N >= 4: the same warp-local layout ("tmw", v4), one warp a program; long sequences 4 channels
    x 8 lanes over n, 8 steps a tile; short ones 8 channels x 4 lanes, 4 steps; for 16-bit inputs the next
    tile's loads are issued early (PREFETCH, v6b; it costs fp32 tiles more registers than it saves time);
    at L >= 1024 softplus and the sigmoids are single MUFU approximations (FAST_EW, v9: -5 % f+b in fp32, fewer
    registers; in the forwards it was 12 % slower, notes "v9").
    dB, dC are summed with fp32 atomic adds (v7) while at most 256 channel blocks share a group, else (and
    under torch.use_deterministic_algorithms) from per-program partials.
    N <= 2 (v5): 2-D "sn" tiles [BLOCK_D, BLOCK_T], time over lanes, one warp a program; inference 2
    channels x 256 steps (N = 1) or 4 x 128 (N = 2), backward 2 x 128 (fp32; 16-bit inputs 2 x 256 at
    N = 1 and L >= 1024: a thread's 8 steps are one 16-byte load; fp32's 2 x 256 spills, and shorter sequences
    waste the long tile).
    With autograd on, the saved tile states must line up with the backward's tiles: a tmw forward keeps its
    own (longer) tile and saves the states inside it (v7), other forwards run with the backward's BLOCK_T.
    ``itemsize``: bytes per element of u.
    """
    NP = _next_pow2(d_state)
    if backward:
        if NP <= 2:
            steps = 256 if NP == 1 and itemsize <= 2 and length >= 1024 else 128
            cfg = {"BLOCK_D": 2, "BLOCK_T": steps, "num_warps": 1, "layout": "sn"}
        else:
            lanes, steps = (min(8, NP), 8) if length >= 1024 else (min(4, NP), 4)
            return {"BLOCK_D": 32 // lanes, "BLOCK_T": steps, "num_warps": 1, "layout": "tmw",
                    "N_LANES": lanes, "PREFETCH": itemsize <= 2, "FAST_EW": length >= 1024}
    elif NP <= 2:
        cfg = {"BLOCK_D": 2 * NP, "BLOCK_T": 256 // NP, "num_warps": 1, "layout": "sn"}
    elif NP <= 16:
        if length >= 1024:  # v9: two warps a program share their B/C loads (-4 % fp32, -6 % bf16 at VMamba)
            lanes, steps, warps = min(4, NP), 16, 2
        else:
            lanes, steps, warps = min(2, NP), 8, 1
        return {"BLOCK_D": 32 * warps // lanes, "BLOCK_T": steps, "num_warps": warps, "layout": "tmw",
                "N_LANES": lanes, "PREFETCH": True}
    else:
        cfg = {"BLOCK_D": max(1, 128 // NP), "BLOCK_T": 16, "num_warps": 4, "layout": "tm"}
    cfg["BLOCK_T"] = min(cfg["BLOCK_T"], max(16, _next_pow2(length)))
    return cfg


def _fix_config(cfg: dict, dim: int, length: int, groups: int) -> dict:
    cfg = dict(cfg)
    bd = _pow2_le(int(cfg["BLOCK_D"]))
    bd = min(bd, _next_pow2(dim))
    if groups > 1:
        dpg = dim // groups
        while dpg % bd:
            bd //= 2
    cfg["BLOCK_D"] = max(1, bd)
    # tmw holds BLOCK_T x NI (d, n) elements per thread, so it runs small tiles (4 or 8 steps)
    cfg["BLOCK_T"] = max(2 if cfg.get("layout") == "tmw" else 16, _pow2_le(int(cfg["BLOCK_T"])))
    cfg.setdefault("num_warps", 4)
    cfg.setdefault("layout", "tm")
    if cfg["layout"] == "tmw" and "N_LANES" in cfg:
        # a narrowed BLOCK_D (small dim or group) no longer fills the warps: drop the idle ones
        cfg["num_warps"] = max(1, min(int(cfg["num_warps"]), cfg["BLOCK_D"] * int(cfg["N_LANES"]) // 32))
    return cfg


# compiler facts of the kernels last launched (registers, spills), for benchmarks and notes
last_kernel_info: dict = {}


def _record(name, kernel, cfg):
    try:
        last_kernel_info[name] = {
            **cfg,
            "n_regs": getattr(kernel, "n_regs", None),
            "n_spills": getattr(kernel, "n_spills", None),
            "shared": getattr(kernel, "shared", None),
        }
    except Exception:  # pragma: no cover
        pass


class _TritonScanFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, Bm, Cm, Dv, z, bias, softplus, return_last, fwd_cfg, bwd_cfg):
        bsz, dim, L = u.shape
        N = A.shape[1]
        G = Bm.shape[1]
        ctx.ungrouped = False
        u = u.contiguous()
        delta = delta.contiguous()
        A = A.contiguous()
        Bm = Bm.contiguous()
        Cm = Cm.contiguous()
        z = z.contiguous() if z is not None else None
        Dv = Dv.contiguous() if Dv is not None else None
        bias = bias.contiguous() if bias is not None else None
        need_grad = any(ctx.needs_input_grad[:8])
        es = u.element_size()
        cfg = _fix_config(fwd_cfg or default_config(dim, L, N, G, itemsize=es), dim, L, G)
        if need_grad:
            # the backward recomputes each of its tiles from the state saved at the tile's start
            bcfg = _fix_config(bwd_cfg or default_config(dim, L, N, G, backward=True, itemsize=es), dim, L, G)
            if cfg["layout"] != "tmw" or cfg["BLOCK_T"] < bcfg["BLOCK_T"]:
                cfg["BLOCK_T"] = bcfg["BLOCK_T"]  # tmw can keep a longer tile and save states inside it
            if bcfg["layout"] == "sn" and cfg["layout"] != "sn":
                # sn's tiles are long (128-256 steps), which the dm/tm forwards would spill: run sn both ways
                cfg = dict(bcfg)
        if "sn" in (cfg["layout"], bcfg["layout"] if need_grad else None) and N > 2:
            raise ValueError(f"selective_scan_triton: layout 'sn' needs d_state <= 2, got {N}")
        BT = cfg["BLOCK_T"]
        NT = _cdiv(L, BT)
        save_t = bcfg["BLOCK_T"] if need_grad else BT  # the saved states line up with the backward's tiles
        out = _out_like(u)
        last = _out_like(u, bsz, dim, N, dtype=torch.float32) if return_last else out
        states = _out_like(u, bsz, _cdiv(L, save_t), dim, N, dtype=torch.float32) if need_grad else out
        grid = (_cdiv(dim, cfg["BLOCK_D"]), bsz)
        # every layout saves the same states ((B, cdiv(L, backward BLOCK_T), D, N) fp32 at the backward's tile starts),
        # so any forward feeds any backward
        kern = {"tm": _scan_fwd_kernel_tm, "tmw": _scan_fwd_kernel_tmw, "sn": _scan_fwd_kernel_sn}.get(
            cfg["layout"], _scan_fwd_kernel)
        ex = {}
        if cfg["layout"] in ("tm", "tmw"):  # v6a: opaque 16-bit upcast (see _f32_opaque); no inline asm when interpreted
            ex["ASM"] = not _interpreting()
        if cfg["layout"] == "tmw":  # NL lanes over n (N_LANES, default 32 // BLOCK_D, at most NP)
            ex["NL"] = min(_next_pow2(N), max(1, int(cfg.get("N_LANES", 32 // cfg["BLOCK_D"]))))
            ex["SAVE_T"] = save_t
            ex["PREFETCH"] = bool(cfg.get("PREFETCH", False))  # v8: next tile's loads issued early
        k = kern[grid](
            u, delta, A, Bm, Cm, Dv if Dv is not None else u, z if z is not None else u,
            bias if bias is not None else u, out, last, states,
            L, dim, N, G, dim // G, NT,
            BLOCK_D=cfg["BLOCK_D"], NP=_next_pow2(N), BLOCK_T=BT,
            HAS_D=Dv is not None, HAS_Z=z is not None, HAS_BIAS=bias is not None, SOFTPLUS=bool(softplus),
            SAVE_STATES=need_grad, STORE_LAST=bool(return_last),
            num_warps=cfg["num_warps"], **ex,
        )
        _record("fwd", k, cfg)
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
        u, delta, A, Bm, Cm, Dv, z, bias, states = ctx.saved_tensors
        bsz, dim, L = u.shape
        N = A.shape[1]
        G = Bm.shape[1]
        cfg = ctx.bcfg
        BT = cfg["BLOCK_T"]
        NT = states.shape[1]
        dout = dout.contiguous()
        du = _out_like(u)
        ddelta = _out_like(delta)
        dz = _out_like(z) if z is not None else None
        # dB, dC: atomic adds into fp32 sums, or (deterministic) per-program partials summed below.  Every channel
        # block of a group adds into the same rows: past ~256 blocks the adds serialize in L2 (H100, v7: 384 blocks
        # at L = 196 lost 7 %, 768 at L = 49 lost 55 % against the partials; 96-192 blocks won 12-25 %)
        ndb = _cdiv(dim, cfg["BLOCK_D"])  # channel blocks; a multiple of G (BLOCK_D divides D/G)
        atomic = bool(cfg.get("ATOMIC_BC", ndb // G <= 256)) and not torch.are_deterministic_algorithms_enabled()
        # everything summed with atomics shares one zero-filled buffer: one memset a call
        acc = torch.zeros(dim * (N + 2) + (2 * bsz * G * N * L if atomic else 0), device=u.device, dtype=torch.float32)
        dA = acc[: dim * N].view(dim, N)
        dD = acc[dim * N: dim * (N + 1)] if Dv is not None else None
        dbias = acc[dim * (N + 1): dim * (N + 2)] if bias is not None else None
        if atomic:
            part = acc[dim * (N + 2):].view(2, bsz, G, N, L)
        else:
            part = _out_like(u, 2, bsz, ndb, N, L, dtype=torch.float32)
        dBp, dCp = part[0], part[1]
        grid = (_cdiv(dim, cfg["BLOCK_D"]), bsz)
        NP = _next_pow2(N)
        extra = {}
        if cfg["layout"] == "tmw":
            kern = _scan_bwd_kernel_tmw
            extra["NL"] = min(NP, _pow2_le(int(cfg.get("N_LANES", 4))))
            # v6b: register double-buffering of the next tile's loads
            extra["PREFETCH"] = bool(cfg.get("PREFETCH", False))
            # v9: softplus and the sigmoids by MUFU approximations (inline asm: not when interpreted)
            extra["FAST_EW"] = bool(cfg.get("FAST_EW", False)) and not _interpreting()
        else:
            kern = {"tm": _scan_bwd_kernel_tm, "sn": _scan_bwd_kernel_sn}.get(cfg["layout"], _scan_bwd_kernel)
        k = kern[grid](
            u, delta, A, Bm, Cm, Dv if Dv is not None else u, z if z is not None else u,
            bias if bias is not None else u, dout, states,
            du, ddelta, dA, dBp, dCp, dD if dD is not None else dA, dz if dz is not None else du,
            dbias if dbias is not None else dA,
            L, dim, N, G, dim // G, NT, ndb,
            BLOCK_D=cfg["BLOCK_D"], NP=NP, BLOCK_T=BT,
            HAS_D=Dv is not None, HAS_Z=z is not None, HAS_BIAS=bias is not None, SOFTPLUS=ctx.softplus,
            ATOMIC_BC=atomic, num_warps=cfg["num_warps"], **extra,
        )
        _record("bwd", k, cfg)
        if not atomic:
            part = part.view(2, bsz, G, ndb // G, N, L).sum(3)
        dB, dC = part.to(Bm.dtype)
        return (
            du, ddelta, dA.to(A.dtype), dB, dC.to(Cm.dtype),
            dD.to(Dv.dtype) if dD is not None else None,
            dz,
            dbias.to(bias.dtype) if dbias is not None else None,
            None, None, None, None,
        )


def selective_scan_triton(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: Optional[torch.Tensor] = None,
    z: Optional[torch.Tensor] = None,
    delta_bias: Optional[torch.Tensor] = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
    *,
    fwd_config: Optional[dict] = None,
    bwd_config: Optional[dict] = None,
):
    """Fused Triton S6 scan (CUDA tensors). Inputs fp32/fp16/bf16; state in fp32; out in u's dtype.

    Gradients flow to u, delta, A, B, C, D, z, delta_bias; ``last_state`` (fp32) has none.
    ``fwd_config`` / ``bwd_config``: optional ``{"BLOCK_D", "BLOCK_T", "num_warps", "layout"}`` overrides
    (layout "tm", "dm", "sn" (d_state <= 2, v5), "tmw" with ``N_LANES``, lanes over n, default 4 in the
    backward and 32 // BLOCK_D in the forward; "tmw" also ``PREFETCH``, the next tile's loads issued early, and
    in the backward ``FAST_EW``, MUFU approximations of softplus and the sigmoids)
    (with autograd on, the forward uses the backward's BLOCK_T so the saved tile states line up).
    """
    if not _HAVE_TRITON:
        raise RuntimeError("selective_scan_triton: triton is not installed")
    shp = check_scan_args(u, delta, A, B, C, D, z, delta_bias)
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
    res = _TritonScanFn.apply(
        u, delta, A, Bm, Cm, D, z, delta_bias, delta_softplus, return_last_state, fwd_config, bwd_config
    )
    return res


def _interpreting() -> bool:
    import os

    return os.environ.get("TRITON_INTERPRET", "0") == "1"
