"""Run inside the Triton interpreter (see conftest.run_triton_interpreted): Triton scan variants against the
sequential reference, values and the gradients of every input."""

import torch

from mambaout.ops.scan_reference import selective_scan_reference as ref
from mambaout.ops.scan_triton import launch
from mambaout.ops.scan_triton import selective_scan_triton as tri


def compare_to_reference(cases, variants, tol=1e-5, seed=0):
    """``cases``: (b, d, L, n, groups or None, softplus, (has_D, has_z, has_bias)); ``variants(n)``: the
    ``selective_scan_triton`` keyword sets to run at d_state n.  Every output, last state and gradient must be
    within ``tol`` (relative L2) of the reference's; outputs start as NaN, so an unwritten element fails.
    Prints ``WORST`` and the largest error."""
    launch._POISON = True
    torch.manual_seed(seed)
    worst = 0.0
    for b, d, L, n, G, sp, (hd, hz, hb) in cases:
        bc = (b, n, L) if G is None else (b, G, n, L)
        inp = dict(
            u=torch.randn(b, d, L),
            delta=torch.rand(b, d, L) * 0.5,
            A=-torch.exp(torch.randn(d, n)),
            B=torch.randn(*bc),
            C=torch.randn(*bc),
            D=torch.randn(d) if hd else None,
            z=torch.randn(b, d, L) if hz else None,
            delta_bias=torch.randn(d) * 0.5 if hb else None,
        )
        w = torch.randn(b, d, L)
        res = []
        kws = variants(n)
        for fn, kw in [(ref, {})] + [(tri, k) for k in kws]:
            lv = {k: (v.clone().requires_grad_(True) if v is not None else None) for k, v in inp.items()}
            out, last = fn(**lv, delta_softplus=sp, return_last_state=True, **kw)
            (out * w).sum().backward()
            res.append([out, last] + [v.grad for v in lv.values() if v is not None])
        for kw, other in zip(kws, res[1:]):
            for x, y in zip(other, res[0]):
                den = y.norm().item()
                e = (x - y).norm().item() / (den if den > 0 else 1.0)
                assert e < tol, (e, (b, d, L, n, G), kw)  # NaN fails here too
                worst = max(worst, e)
    print("WORST", worst)
    return worst
