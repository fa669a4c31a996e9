"""v9: ``_exp2_fma`` (2**x on the FMA pipe: round-to-nearest trick, degree-5 polynomial, exponent add) against
torch.exp2 in float64, in the Triton interpreter (CPU): relative error within a few fp32 ulps from -126 to 0,
exactly 1 at 0, clamped at 2**-126 below -126 (the scan only needs x <= 0: x = delta * A * log2(e))."""

SCRIPT = r"""
import torch
import triton
import triton.language as tl
from mambaout.ops.scan_triton import _exp2_fma

@triton.jit
def k(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = offs < n
    tl.store(y_ptr + offs, _exp2_fma(tl.load(x_ptr + offs, mask=m, other=0.0)), mask=m)

x = torch.cat([-torch.rand(20000) * 126, -torch.rand(5000) * 2, -torch.rand(2000) * 1e-4,
               torch.tensor([0.0, -0.0, -0.5, -1.5, -125.9, -126.0, -126.5, -150.0, -1e30, -1e-30])]).float()
y = torch.empty_like(x)
k[(triton.cdiv(x.numel(), 1024),)](x, y, x.numel(), BLOCK=1024)
ref = torch.exp2(x.double().clamp_min(-126.0))
rel = ((y.double() - ref).abs() / ref).max().item()
assert rel < 3e-7, rel
assert y[x == 0].eq(1.0).all()
assert y[x <= -126].eq(2.0 ** -126).all()
mean = ((y.double() - ref) / ref)[(x > -1e-2)].mean().item()  # no drift where decays sit near 1
assert abs(mean) < 3e-8, mean
print("WORST", rel, "mean near 0", mean)
"""


def test_exp2_fma_accuracy_in_interpreter(run_triton_interpreted):
    run_triton_interpreted(SCRIPT)
