"""v6b: the tmw backward with register double-buffering of the next tile's loads (``PREFETCH``),
checked against the sequential reference in the Triton interpreter (CPU, TRITON_INTERPRET=1)."""

import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import torch
    from mambaout.ops.scan_reference import selective_scan_reference as ref
    from mambaout.ops import scan_triton
    from mambaout.ops.scan_triton import selective_scan_triton as tri
    scan_triton._POISON = True  # unwritten outputs would show up as NaN
    torch.manual_seed(0)
    # (b, d, L, n, groups, softplus, (has_D, has_z, has_bias)); L never a multiple of BLOCK_T
    cases = [(2, 8, 37, 16, None, True, (1, 1, 1)), (2, 8, 42, 5, 2, False, (0, 0, 0)),
             (1, 16, 23, 16, 2, True, (1, 0, 1)), (2, 4, 1, 16, None, True, (0, 1, 0)),
             (1, 8, 9, 5, None, False, (1, 1, 0))]
    cfgs = [dict(BLOCK_D=bd, BLOCK_T=bt, N_LANES=nl, num_warps=nw, layout="tmw", PREFETCH=pf)
            for bd, bt, nl, nw in ((8, 4, 4, 1), (4, 8, 8, 1), (16, 4, 4, 2), (4, 2, 2, 1))
            for pf in (True, False)]
    worst = 0.0
    for b, d, L, n, G, sp, (hd, hz, hb) in cases:
        bc = (b, n, L) if G is None else (b, G, n, L)
        inp = dict(u=torch.randn(b, d, L), delta=torch.rand(b, d, L) * 0.5, A=-torch.exp(torch.randn(d, n)),
                   B=torch.randn(*bc), C=torch.randn(*bc), D=torch.randn(d) if hd else None,
                   z=torch.randn(b, d, L) if hz else None, delta_bias=torch.randn(d) * 0.5 if hb else None)
        w = torch.randn(b, d, L)
        res = []
        for fn, kw in [(ref, {})] + [(tri, dict(bwd_config=c)) for c in cfgs]:
            lv = {k: (v.clone().requires_grad_(True) if v is not None else None) for k, v in inp.items()}
            out, last = fn(**lv, delta_softplus=sp, return_last_state=True, **kw)
            (out * w).sum().backward()
            res.append([out, last] + [v.grad for v in lv.values() if v is not None])
        for k, other in enumerate(res[1:]):
            for x, y in zip(other, res[0]):
                assert not torch.isnan(x).any(), (b, d, L, n, cfgs[k])
                den = y.norm().item()
                e = (x - y).norm().item() / (den if den > 0 else 1.0)
                assert e < 1e-5, (e, b, d, L, n, cfgs[k])
                worst = max(worst, e)
    print("WORST", worst)
    """
)


@pytest.mark.slow
def test_tmw_prefetch_backward_in_interpreter(run_triton_interpreted):
    run_triton_interpreted(SCRIPT)
