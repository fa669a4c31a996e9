"""Selective-scan forward in Gluon (Triton's explicit-layout dialect): the "gl" layout (v8).

Why: the tmw forward (scan_triton.py) is limited by the L1/shared-memory pipe, not by DRAM or instructions (v7
profile, docs/notes/scan_kernel.md): plain ``tl`` loads every tile in its own coalesced layout, then converts u,
delta, B, C, z (and y back) through shared memory into the slices of the [BLOCK_T, BLOCK_D, N] state tile.  Gluon
lets the loads land in the compute layout itself, so there is no conversion at all:

* state tile [BLOCK_T, BLOCK_D, NP], layout P: the BLOCK_T steps and NI = NP / NL state indices in-thread, NL lanes
  over n and 32 / NL lanes over channels, warps over channels (n = lane_n * NI + i);
* u, delta, z, y are [BLOCK_T, BLOCK_D] slices of P: each thread loads its channel's BLOCK_T contiguous steps
  (vector loads; the NL lanes of a channel read the same addresses, which the load unit broadcasts);
* B, C are [BLOCK_T, NP] slices: each thread loads its NI rows of BLOCK_T steps, the channel lanes broadcast;
* the scan over time is in-thread; y's sum over n is NI-fold in-thread plus log2(NL) shuffles.

The price is that the elementwise work on [BLOCK_T, BLOCK_D] tiles (bias, softplus, the z gate) is repeated on the
NL lanes that share a channel.  Same arguments, numerics and saved-state contract as ``_scan_fwd_kernel_tmw``
(states every SAVE_T steps, (B, cdiv(L, SAVE_T), D, N) fp32), so any backward can follow it.

Gluon has no interpreter: this kernel is tested on a GPU only (tests/gpu/), and ``available()`` is False when
triton has no gluon (older releases) or under TRITON_INTERPRET.
"""

from __future__ import annotations

import os

try:  # pragma: no cover - depends on the environment
    from triton.experimental import gluon
    from triton.experimental.gluon import language as gl

    _HAVE_GLUON = True
except Exception:  # ImportError, or a triton without gluon
    gluon = None
    gl = None
    _HAVE_GLUON = False


def available() -> bool:
    """True when the gluon kernel can be compiled here (triton with gluon, not interpreting)."""
    return _HAVE_GLUON and os.environ.get("TRITON_INTERPRET", "0") != "1"


if _HAVE_GLUON:

    @gluon.jit
    def _combine(a1, b1, a2, b2):
        return a1 * a2, a2 * b1 + b2

    @gluon.jit
    def _ex2(x):
        # 2^x on the special-function unit, denormals flushed (gl.exp2 adds a range fix-up: 3 more instructions
        # for every (t, d, n) element; the decays exp(delta*A) <= 1 lose nothing that matters below 2^-126)
        return gl.inline_asm_elementwise("ex2.approx.ftz.f32 $0, $1;", "=r,r", [x], dtype=gl.float32,
                                         is_pure=True, pack=1)

    @gluon.jit
    def _lg2(x):
        return gl.inline_asm_elementwise("lg2.approx.ftz.f32 $0, $1;", "=r,r", [x], dtype=gl.float32,
                                         is_pure=True, pack=1)

    @gluon.jit
    def _rcp(x):
        return gl.inline_asm_elementwise("rcp.approx.ftz.f32 $0, $1;", "=r,r", [x], dtype=gl.float32,
                                         is_pure=True, pack=1)

    @gluon.jit
    def _softplus(v):
        # torch.nn.functional.softplus (threshold 20), as log(1 + exp(v)) like the tl kernels, but on the
        # special-function unit: in this layout every lane of a channel computes it (libdevice's logf is ~20
        # instructions, the whole tile's budget)
        return gl.where(v > 20.0, v, 0.6931471805599453 * _lg2(1.0 + _ex2(v * 1.4426950408889634)))

    @gluon.jit
    def _silu(z):
        return z * _rcp(1.0 + _ex2(z * -1.4426950408889634))

    @gluon.jit
    def _load_tile(u_ptr, dt_ptr, z_ptr, B_ptr, C_ptr, it, L, base_x, mask_d, t_x, base_bc, m_nbc, t_bc,
                   BLOCK_T: gl.constexpr, HAS_Z: gl.constexpr):
        """The raw (input-dtype) tiles of tile ``it``, each in its slice of the compute layout: u, delta, z
        ([BT, BD]; u when there is no z) and B, C ([BT, NP]); zero past the end of the sequence."""
        offs_t = it * BLOCK_T + t_x
        m_x = gl.expand_dims(offs_t < L, 1) & mask_d
        px = base_x + gl.expand_dims(offs_t, 1)
        u = gl.load(u_ptr + px, mask=m_x, other=0.0)
        dt = gl.load(dt_ptr + px, mask=m_x, other=0.0)
        zt = u
        if HAS_Z:
            zt = gl.load(z_ptr + px, mask=m_x, other=0.0)
        offs_tb = it * BLOCK_T + t_bc
        pbc = base_bc + gl.expand_dims(offs_tb, 1)
        m_bc = gl.expand_dims(offs_tb < L, 1) & m_nbc
        return u, dt, zt, gl.load(B_ptr + pbc, mask=m_bc, other=0.0), gl.load(C_ptr + pbc, mask=m_bc, other=0.0)

    @gluon.jit
    def _scan_fwd_kernel_gl(
        u_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr,
        out_ptr, last_ptr, states_ptr,
        L, DIM, N, G, DPG, NT,
        BLOCK_D: gl.constexpr, NP: gl.constexpr, BLOCK_T: gl.constexpr, NL: gl.constexpr,
        HAS_D: gl.constexpr, HAS_Z: gl.constexpr, HAS_BIAS: gl.constexpr, SOFTPLUS: gl.constexpr,
        SAVE_STATES: gl.constexpr, STORE_LAST: gl.constexpr, SAVE_T: gl.constexpr, PREFETCH: gl.constexpr = False,
    ):
        NI: gl.constexpr = NP // NL
        P: gl.constexpr = gl.BlockedLayout([BLOCK_T, 1, NI], [1, 32 // NL, NL], [1, gl.num_warps(), 1], [0, 2, 1])
        LX: gl.constexpr = gl.SliceLayout(2, P)  # [BT, BD]: u, delta, z, y
        LBC: gl.constexpr = gl.SliceLayout(1, P)  # [BT, NP]: B, C
        LS: gl.constexpr = gl.SliceLayout(0, P)  # [BD, NP]: the carried state, A
        pid_d = gl.program_id(0)
        pid_b = gl.program_id(1).to(gl.int64)
        grp = (pid_d * BLOCK_D) // DPG
        NTS = gl.cdiv(L, SAVE_T)

        # [BD, NP] state-shaped indices
        d_s = pid_d * BLOCK_D + gl.arange(0, BLOCK_D, layout=gl.SliceLayout(1, LS))
        n_s = gl.arange(0, NP, layout=gl.SliceLayout(0, LS))
        d_s2 = gl.expand_dims(d_s, 1)
        n_s2 = gl.expand_dims(n_s, 0)
        m_dn = (d_s2 < DIM) & (n_s2 < N)
        A2 = gl.load(A_ptr + d_s2 * N + n_s2, mask=m_dn, other=0.0).to(gl.float32) * 1.4426950408889634

        # [BT, BD] operand indices
        t_x = gl.arange(0, BLOCK_T, layout=gl.SliceLayout(1, LX))
        d_x = pid_d * BLOCK_D + gl.arange(0, BLOCK_D, layout=gl.SliceLayout(0, LX))
        mask_d = gl.expand_dims(d_x < DIM, 0)
        base_x = pid_b * DIM * L + gl.expand_dims(d_x, 0).to(gl.int64) * L
        if HAS_D:
            Dv = gl.expand_dims(gl.load(D_ptr + d_x, mask=d_x < DIM, other=0.0).to(gl.float32), 0)
        if HAS_BIAS:
            bias = gl.expand_dims(gl.load(bias_ptr + d_x, mask=d_x < DIM, other=0.0).to(gl.float32), 0)
        # [BT, NP] B/C indices
        t_bc = gl.arange(0, BLOCK_T, layout=gl.SliceLayout(1, LBC))
        n_bc = gl.expand_dims(gl.arange(0, NP, layout=gl.SliceLayout(0, LBC)), 0)
        base_bc = (pid_b * G + grp) * N * L + n_bc.to(gl.int64) * L
        m_nbc = n_bc < N
        # [BT, 1, 1] time masks in P
        t3 = gl.expand_dims(gl.expand_dims(t_x, 1), 2)
        first = t3 == 0
        last_t = t3 == BLOCK_T - 1

        h = gl.zeros([BLOCK_D, NP], gl.float32, layout=LS)
        if PREFETCH:  # tile it+1's loads are issued before tile it's arithmetic
            u_n, dt_n, z_n, B_n, C_n = _load_tile(u_ptr, dt_ptr, z_ptr, B_ptr, C_ptr, 0, L, base_x, mask_d, t_x,
                                                  base_bc, m_nbc, t_bc, BLOCK_T, HAS_Z)
        for it in range(0, NT):
            offs_t = it * BLOCK_T + t_x
            m_x = gl.expand_dims(offs_t < L, 1) & mask_d
            px = base_x + gl.expand_dims(offs_t, 1)
            if PREFETCH:
                u_r, dt_r, z_r, B_r, C_r = u_n, dt_n, z_n, B_n, C_n
                u_n, dt_n, z_n, B_n, C_n = _load_tile(u_ptr, dt_ptr, z_ptr, B_ptr, C_ptr, it + 1, L, base_x, mask_d,
                                                      t_x, base_bc, m_nbc, t_bc, BLOCK_T, HAS_Z)
            else:
                u_r, dt_r, z_r, B_r, C_r = _load_tile(u_ptr, dt_ptr, z_ptr, B_ptr, C_ptr, it, L, base_x, mask_d, t_x,
                                                      base_bc, m_nbc, t_bc, BLOCK_T, HAS_Z)
            u = u_r.to(gl.float32)
            dt = dt_r.to(gl.float32)
            Bt = gl.expand_dims(B_r.to(gl.float32), 1)  # [BT, 1, NP]
            Ct = gl.expand_dims(C_r.to(gl.float32), 1)
            if HAS_BIAS:
                dt = dt + bias
            if SOFTPLUS:
                dt = _softplus(dt)
            if HAS_BIAS or SOFTPLUS:
                dt = gl.where(m_x, dt, 0.0)
            if SAVE_STATES:
                sp = states_ptr + ((pid_b * NTS + it * (BLOCK_T // SAVE_T)) * DIM + d_s2) * N + n_s2
                gl.store(sp, h, mask=m_dn)
            a = _ex2(gl.expand_dims(dt, 2) * gl.expand_dims(A2, 0))  # [BT, BD, NP]
            x = gl.expand_dims(dt * u, 2) * Bt
            x = x + gl.where(first, a * gl.expand_dims(h, 0), 0.0)
            _, hs = gl.associative_scan((a, x), 0, _combine)
            if SAVE_STATES:  # the states inside the tile: a select along the in-thread time axis
                for j in gl.static_range(1, BLOCK_T // SAVE_T):
                    sj = it * (BLOCK_T // SAVE_T) + j
                    hj = gl.sum(gl.where(t3 == j * SAVE_T - 1, hs, 0.0), axis=0)
                    gl.store(sp + j * DIM * N, hj, mask=m_dn & (sj < NTS))
            y = gl.sum(hs * Ct, axis=2)  # [BT, BD]
            h = gl.sum(gl.where(last_t, hs, 0.0), axis=0)
            if HAS_D:
                y += Dv * u
            if HAS_Z:
                y = y * _silu(z_r.to(gl.float32))
            gl.store(out_ptr + px, y.to(out_ptr.dtype.element_ty), mask=m_x)
        if STORE_LAST:
            gl.store(last_ptr + (pid_b * DIM + d_s2) * N + n_s2, h, mask=m_dn)
