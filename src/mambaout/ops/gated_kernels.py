"""Triton kernels of the fused gate of the Gated CNN block (imported only when triton is; see :mod:`.gated_triton`).

Layout: ``h`` is fc1's output, channels-last (B, H, W, 2*HD) = [g (HD) | i (N_ID) | c (HD - N_ID)]; the value
channel j of the gate product is ``h[..., HD + j]``, token-mixed by the depthwise conv when ``j >= N_ID``.
Conv weights arrive transposed as (K*K, NC) fp32 so that one tap's weights are contiguous over channels.
A program owns a BLOCK_H x BLOCK_W pixel tile (flattened) of one image and BLOCK_C channels; the 49 shifted loads of
the conv are served by L1/L2, so HBM sees each input about once.
"""

import triton
import triton.language as tl

GELU, SILU, RELU = 0, 1, 2  # the ACT codes


@triton.jit
def _act_and_grad(x, ACT: tl.constexpr):
    """(act(x), act'(x)) in fp32; GELU is the exact (erf) one, as nn.GELU()."""
    if ACT == 0:
        cdf = 0.5 * (1.0 + tl.math.erf(x * 0.7071067811865476))
        return x * cdf, cdf + x * tl.exp(-0.5 * x * x) * 0.3989422804014327
    elif ACT == 1:
        s = tl.sigmoid(x)
        return x * s, s * (1.0 + x * (1.0 - s))
    else:
        pos = x > 0.0
        return tl.where(pos, x, 0.0), tl.where(pos, 1.0, 0.0)


@triton.jit
def _tile(N_WT, N_HT, BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr):
    """(image index, pixel rows, pixel columns) of this program's spatial tile."""
    pid = tl.program_id(0)
    wt = pid % N_WT
    t = pid // N_WT
    offs = tl.arange(0, BLOCK_H * BLOCK_W)
    return t // N_HT, (t % N_HT) * BLOCK_H + offs // BLOCK_W, wt * BLOCK_W + offs % BLOCK_W


@triton.jit
def _channel_mask(cm, EVEN_C: tl.constexpr, BLOCK_C: tl.constexpr):
    """The tap loads' channel predicate: a constant when the channel blocks tile the channels exactly."""
    if EVEN_C:
        return tl.full([BLOCK_C], 1, tl.int1)
    else:
        return cm


@triton.jit
def _gate_kernel(
    h_ptr,
    w_ptr,
    b_ptr,
    y_ptr,  # forward: act(g) * cat(i, conv(c)), (B, H, W, HD)
    dy_ptr,  # backward: the incoming gradient (B, H, W, HD)
    dh_ptr,  # backward: writes d g and d i into dh (B, H, W, 2*HD)
    e_ptr,  # backward: d conv-output = dy * act(g) on the conv channels, (B, H, W, NC)
    H,
    W,
    HD,
    N_ID,
    NC,
    N_WT,
    N_HT,
    K: tl.constexpr,
    ACT: tl.constexpr,
    BACKWARD: tl.constexpr,
    EVEN_C: tl.constexpr,  # BLOCK_C divides HD and NC
    BLOCK_H: tl.constexpr,
    BLOCK_W: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    b, ph, pw = _tile(N_WT, N_HT, BLOCK_H, BLOCK_W)
    ch = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    pm = (ph < H) & (pw < W)
    cm = ch < HD
    m = pm[:, None] & cm[None, :]
    C2 = 2 * HD
    pix = ((b * H + ph) * W + pw).to(tl.int64)
    base = pix[:, None] * C2 + ch[None, :]
    g = tl.load(h_ptr + base, mask=m, other=0.0).to(tl.float32)
    v = tl.load(h_ptr + base + HD, mask=m, other=0.0).to(tl.float32)
    is_conv = cm & (ch >= N_ID)
    if tl.program_id(1) * BLOCK_C + BLOCK_C > N_ID:  # this channel block holds conv channels: v = conv(c) there
        wc = ch - N_ID
        acc = tl.zeros([BLOCK_H * BLOCK_W, BLOCK_C], tl.float32)
        acc += tl.load(b_ptr + wc, mask=is_conv, other=0.0)[None, :]
        c_ptr = h_ptr + base + HD  # the centre tap; each tap is a scalar shift of it
        tap_cm = _channel_mask(cm, EVEN_C, BLOCK_C)
        for ty in range(K):  # a runtime loop: unrolling all K*K taps hoists every load and spills
            hh = ph + (ty - K // 2)
            row_ok = pm & (hh >= 0) & (hh < H)
            for tx in tl.static_range(K):
                ww = pw + (tx - K // 2)
                ok = row_ok & (ww >= 0) & (ww < W)
                # masked by pixel and channel bound only (a mask constant along channels keeps the loads
                # vectorised); identity lanes read i here and meet a zero weight
                shift = ((ty - K // 2) * W + (tx - K // 2)) * C2
                x = tl.load(c_ptr + shift, mask=ok[:, None] & tap_cm[None, :], other=0.0)
                wk = tl.load(w_ptr + (ty * K + tx) * NC + wc, mask=is_conv, other=0.0)
                acc += x.to(tl.float32) * wk[None, :]
        v = tl.where(is_conv[None, :], acc, v)
    a, da = _act_and_grad(g, ACT)
    if BACKWARD:
        dy = tl.load(dy_ptr + pix[:, None] * HD + ch[None, :], mask=m, other=0.0).to(tl.float32)
        tl.store(dh_ptr + base, (dy * v * da).to(dh_ptr.dtype.element_ty), mask=m)
        dv = dy * a
        tl.store(dh_ptr + base + HD, dv.to(dh_ptr.dtype.element_ty), mask=m & (ch < N_ID)[None, :])
        e_off = pix[:, None] * NC + (ch - N_ID)[None, :]
        tl.store(e_ptr + e_off, dv.to(e_ptr.dtype.element_ty), mask=m & is_conv[None, :])
    else:
        tl.store(y_ptr + pix[:, None] * HD + ch[None, :], (a * v).to(y_ptr.dtype.element_ty), mask=m)


@triton.jit
def _dconv_kernel(
    e_ptr,  # d conv-output (B, H, W, NC)
    h_ptr,  # fc1 output; the conv input c is h[..., HD + N_ID:]
    w_ptr,  # (K*K, NC) fp32
    dh_ptr,  # writes d c into dh[..., HD + N_ID:]
    part_ptr,  # (n spatial tiles, K*K + 1, NC) fp32: per-tile d weight (rows 0..K*K-1) and d bias (row K*K)
    H,
    W,
    HD,
    N_ID,
    NC,
    N_WT,
    N_HT,
    K: tl.constexpr,
    EVEN_C: tl.constexpr,
    BLOCK_H: tl.constexpr,
    BLOCK_W: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    """d c = conv_transpose(e) and the per-tile partial sums of d weight, d bias (torch adds the tiles up: the
    result is deterministic, no atomics).  d w[k] = sum_q e[q - off_k] c[q]: the same shifted e tile as d c's."""
    b, ph, pw = _tile(N_WT, N_HT, BLOCK_H, BLOCK_W)
    ch = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    pm = (ph < H) & (pw < W)
    cm = ch < NC
    m = pm[:, None] & cm[None, :]
    C2 = 2 * HD
    pix = ((b * H + ph) * W + pw).to(tl.int64)
    c_off = pix[:, None] * C2 + (HD + N_ID) + ch[None, :]
    cq = tl.load(h_ptr + c_off, mask=m, other=0.0).to(tl.float32)
    acc = tl.zeros([BLOCK_H * BLOCK_W, BLOCK_C], tl.float32)
    part = part_ptr + tl.program_id(0).to(tl.int64) * (K * K + 1) * NC + ch
    e_ptr0 = e_ptr + pix[:, None] * NC + ch[None, :]
    tap_cm = _channel_mask(cm, EVEN_C, BLOCK_C)
    for ty in range(K):  # a runtime loop: unrolling all K*K taps hoists every load and spills
        hh = ph - (ty - K // 2)
        row_ok = pm & (hh >= 0) & (hh < H)
        for tx in tl.static_range(K):
            ww = pw - (tx - K // 2)
            ok = row_ok & (ww >= 0) & (ww < W)
            shift = ((ty - K // 2) * W + (tx - K // 2)) * NC
            es = tl.load(e_ptr0 - shift, mask=ok[:, None] & tap_cm[None, :], other=0.0).to(tl.float32)
            wk = tl.load(w_ptr + (ty * K + tx) * NC + ch, mask=cm, other=0.0)
            acc += es * wk[None, :]
            tl.store(part + (ty * K + tx) * NC, tl.sum(es * cq, axis=0), mask=cm)
    e = tl.load(e_ptr + pix[:, None] * NC + ch[None, :], mask=m, other=0.0).to(tl.float32)  # an L1 hit
    tl.store(part + K * K * NC, tl.sum(e, axis=0), mask=cm)
    tl.store(dh_ptr + c_off, acc.to(dh_ptr.dtype.element_ty), mask=m)
