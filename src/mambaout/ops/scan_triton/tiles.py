"""Jit helpers shared by the scan kernels of every layout (imported only where triton is)."""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def combine(a1, b1, a2, b2):
    # (a1, b1) then (a2, b2) of h -> a h + b: associative, so tl.associative_scan can solve the recurrence
    return a1 * a2, a2 * b1 + b2


@triton.jit
def approx(x, OP: tl.constexpr):
    # one MUFU instruction (OP "ex2", "lg2" or "rcp", .approx.ftz.f32); inline asm: compiled code only
    return tl.inline_asm_elementwise(
        OP + ".approx.ftz.f32 $0, $1;", "=r,r", [x], dtype=tl.float32, is_pure=True, pack=1
    )


@triton.jit
def softplus(v, FAST: tl.constexpr = False):
    """torch.nn.functional.softplus (threshold 20), exp(v) for very negative v (where log(1 + exp(v)) rounds to 0).
    FAST: MUFU ex2 and lg2 instead of libdevice's exp and log (~20 instructions); compiled code only."""
    if FAST:
        e = approx(v * 1.4426950408889634, "ex2")
        return tl.where(v > 20.0, v, tl.where(v < -15.0, e, approx(1.0 + e, "lg2") * 0.6931471805599453))
    else:
        return tl.where(v > 20.0, v, tl.where(v < -15.0, tl.exp(v), tl.log(1.0 + tl.exp(v))))


@triton.jit
def sigmoid(x, FAST: tl.constexpr = False):
    # FAST: MUFU ex2 and rcp instead of exp and a precise division; compiled code only
    if FAST:
        return approx(1.0 + approx(x * -1.4426950408889634, "ex2"), "rcp")
    else:
        return tl.sigmoid(x)


@triton.jit
def prep_delta(dt, bias, mask, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr):
    """delta as the recurrence uses it: + delta_bias, softplus, and zero outside the tile (the masked loads gave 0
    there, which bias and softplus would not keep, and delta = 0 makes a padded step the identity).  Also returns
    the value before the softplus, whose derivative the backward needs."""
    if HAS_BIAS:
        dt = dt + bias
    pre = dt
    if SOFTPLUS:
        dt = softplus(dt)
    if HAS_BIAS or SOFTPLUS:
        dt = tl.where(mask, dt, 0.0)
    return pre, dt


@triton.jit
def bc_row(pid_b, pid_d, grp, G, NDB, ATOMIC_BC: tl.constexpr):
    # dB, dC (sums over channels) go either straight into the (B, G, N, L) fp32 result with atomic adds
    # (ATOMIC_BC) or into this program's row of a partials buffer (B, NDB, N, L), summed by torch after
    # the kernel (deterministic: used under torch.use_deterministic_algorithms)
    if ATOMIC_BC:
        row = pid_b * G + grp
    else:
        row = pid_b * NDB + pid_d
    return row


@triton.jit
def put_bc(ptr, val, mask, ATOMIC_BC: tl.constexpr):
    if ATOMIC_BC:
        tl.atomic_add(ptr, val, mask=mask, sem="relaxed")
    else:
        tl.store(ptr, val, mask=mask)


@triton.jit
def f32_opaque(x, ASM: tl.constexpr):
    """fp32 copy of a loaded tile.  For 16-bit inputs with ASM (compiled, not interpreted) the upcast is an
    inline-asm cvt, opaque to Triton's layout pass: otherwise Triton 3.6 hoists the conversion into the 3-D tile's
    layout above the upcast, onto the 16-bit values, and the elementwise chain after it (bias, softplus, z gate)
    then runs replicated over the n-lanes, twice the instructions of fp32."""
    if ASM and x.dtype == tl.bfloat16:
        return tl.inline_asm_elementwise("cvt.f32.bf16 $0, $1;", "=r,h", [x], dtype=tl.float32, is_pure=True, pack=1)
    elif ASM and x.dtype == tl.float16:
        return tl.inline_asm_elementwise("cvt.f32.f16 $0, $1;", "=r,h", [x], dtype=tl.float32, is_pure=True, pack=1)
    else:
        return x.to(tl.float32)
