"""The tm and tmw forward kernels in the Triton interpreter (CPU).

Runs in a subprocess with TRITON_INTERPRET=1, compares against selective_scan_reference (fp32, relative max error
< 1e-5): L not a multiple of block_t, grouped B/C, N = 16 and N = 5, with/without D/z/bias, return_last_state, and
the autograd forward (tmw at its own or the default backward's block_t) feeding the default backward; tmw with and
without prefetch.
"""

import pytest

SCRIPT = r"""
import torch
from mambaout.ops.scan_triton import TileConfig, launch, selective_scan_triton
from mambaout.ops.scan_reference import selective_scan_reference
launch._POISON = True
torch.manual_seed(0)
def rel(a, b):
    return ((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-30)).item()
worst = 0.0
CASES = [  # b, d, L, n, groups, sweep tuple (block_d, block_t, warps, layout[, n_lanes][, flags]), opt
    (2, 8, 37, 16, 1, (8, 8, 1, "tmw", 4), True),
    (1, 8, 21, 5, 2, (4, 4, 1, "tmw", 8), False),
    (2, 16, 19, 16, 2, (16, 8, 2, "tmw", 4), True),
    (1, 4, 9, 16, 1, (2, 4, 1, "tmw", 16), False),
    (1, 8, 35, 16, 1, (4, 16, 1, "tmw", 8), True),
    (2, 8, 37, 16, 1, (8, 16, 1, "tmw", 4, "prefetch"), True),
    (1, 16, 21, 5, 2, (16, 8, 1, "tmw", 2, "prefetch"), False),
    (2, 16, 32, 16, 2, (8, 16, 1, "tmw", 4, "prefetch"), True),  # every tile full: the prefetch past the end is masked
    (2, 8, 37, 16, 2, (8, 16, 4, "tm"), True),
    (1, 8, 21, 5, 1, (8, 16, 4, "tm"), False),
]
for b, d, L, n, G, c, opt in CASES:
    u = torch.randn(b, d, L); dl = torch.rand(b, d, L) * 0.5 - 1.0
    A = -torch.rand(d, n) * 2 - 0.1
    Bm = torch.randn(b, G, n, L); Cm = torch.randn(b, G, n, L)
    Dv = torch.randn(d) if opt else None
    z = torch.randn(b, d, L) if opt else None
    bias = torch.randn(d) * 0.1 if opt else None
    cfg = TileConfig.from_tuple(c)
    ref, rl = selective_scan_reference(u, dl, A, Bm, Cm, Dv, z, bias, delta_softplus=True, return_last_state=True)
    out, last = selective_scan_triton(u, dl, A, Bm, Cm, Dv, z, bias, delta_softplus=True, return_last_state=True,
                                      fwd_config=cfg)
    e = max(rel(out, ref), rel(last, rl))
    out2 = selective_scan_triton(u, dl, A, Bm, Cm, Dv, z, bias, delta_softplus=True, fwd_config=cfg)
    e = max(e, rel(out2, ref))
    # autograd: this forward (at the default backward's BLOCK_T) feeding the default backward
    ts = [t.clone().requires_grad_() for t in (u, dl, Bm, Cm)]
    o = selective_scan_triton(ts[0], ts[1], A, ts[2], ts[3], Dv, z, bias, delta_softplus=True, fwd_config=cfg)
    w = torch.randn_like(o)
    (o * w).sum().backward()
    rs = [t.clone().requires_grad_() for t in (u, dl, Bm, Cm)]
    r = selective_scan_reference(rs[0], rs[1], A, rs[2], rs[3], Dv, z, bias, delta_softplus=True)
    (r * w).sum().backward()
    eg = max(rel(x.grad, y.grad) for x, y in zip(ts, rs))
    e = max(e, rel(o, r))
    assert eg < 1e-4, (c, eg)
    print(b, d, L, n, G, c, opt, "fwd", e, "grad", eg)
    worst = max(worst, e)
assert worst < 1e-5, worst
print("WORST", worst)
"""


@pytest.mark.slow
def test_forward_kernels_in_interpreter(run_triton_interpreted):
    run_triton_interpreted(SCRIPT)
