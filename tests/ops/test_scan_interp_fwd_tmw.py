"""v6a forward kernels (tm with the opaque 16-bit upcast, new "tmw" forward) in the Triton interpreter (CPU).

Runs in a subprocess with TRITON_INTERPRET=1, compares against selective_scan_reference (fp32, relative max error
< 1e-5): L not a multiple of BLOCK_T, grouped B/C, N = 16 and N = 5, with/without D/z/bias, return_last_state, and
the autograd forward (tmw, at the default backward's BLOCK_T) feeding the default backward; v8's prefetching tmw.
"""

import pytest

SCRIPT = r"""
import torch
from mambaout.ops.scan_triton import selective_scan_triton
from mambaout.ops.scan_reference import selective_scan_reference
import mambaout.ops.scan_triton as S
S._POISON = True
torch.manual_seed(0)
def rel(a, b):
    return ((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-30)).item()
worst = 0.0
CASES = [  # b, d, L, n, groups, (BLOCK_D, BLOCK_T, warps, layout, N_LANES), opt
    (2, 8, 37, 16, 1, (8, 8, 1, "tmw", 4), True),
    (1, 8, 21, 5, 2, (4, 4, 1, "tmw", 8), False),
    (2, 16, 19, 16, 2, (16, 8, 2, "tmw", 4), True),
    (1, 4, 9, 16, 1, (2, 4, 1, "tmw", 16), False),
    (1, 8, 35, 16, 1, (4, 16, 1, "tmw", 8), True),
    (2, 8, 37, 16, 1, (8, 16, 1, "tmw", 4, "prefetch"), True),  # v8: next tile's loads issued early
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
    cfg = {"BLOCK_D": c[0], "BLOCK_T": c[1], "num_warps": c[2], "layout": c[3]}
    if len(c) > 4:
        cfg["N_LANES"] = c[4]
    cfg["PREFETCH"] = "prefetch" in c
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
def test_v6a_forward_kernels_in_interpreter(run_triton_interpreted):
    run_triton_interpreted(SCRIPT)
