"""tmw backward with the next tile's loads prefetched (prefetch) and with MUFU elementwise (fast_ew) == reference
on CUDA."""

import pytest
import torch

from mambaout.ops import scan_triton
from mambaout.ops.scan_reference import selective_scan_reference
from mambaout.ops.scan_triton import TileConfig, launch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not scan_triton.available(), reason="needs CUDA and triton"),
]

CFGS = [
    TileConfig("tmw", bd, bt, nw, n_lanes=nl, prefetch=True)
    for bd, bt, nl, nw in ((8, 4, 4, 1), (16, 4, 4, 2), (4, 8, 8, 1))
]
# softplus and the sigmoids by MUFU approximations (the default at L >= 1024)
CFGS += [
    TileConfig("tmw", 4, 8, 1, n_lanes=8, fast_ew=True),
    TileConfig("tmw", 8, 4, 1, n_lanes=4, prefetch=True, fast_ew=True),
]


@pytest.fixture(autouse=True)
def _poison(monkeypatch):
    monkeypatch.setattr(launch, "_POISON", True)


@pytest.mark.parametrize(
    "cfg", CFGS, ids=lambda c: f"{c.block_d}-{c.block_t}-{c.warps}-{c.n_lanes}{'-fast' if c.fast_ew else ''}"
)
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-4), (torch.bfloat16, 2e-2)])
@pytest.mark.parametrize(
    "b,d,L,n,groups,extras", [(2, 64, 197, 16, None, True), (2, 32, 77, 5, 2, False), (1, 32, 300, 16, 2, True)]
)
def test_prefetch_bwd_matches_reference(cfg, dtype, tol, b, d, L, n, groups, extras):
    g = torch.Generator(device="cuda").manual_seed(7)
    kw = dict(device="cuda", generator=g)
    bc = (b, n, L) if groups is None else (b, groups, n, L)
    inp = dict(
        u=torch.randn(b, d, L, **kw),
        delta=torch.rand(b, d, L, **kw) * 0.5,
        A=-torch.exp(torch.randn(d, n, **kw)),
        B=torch.randn(*bc, **kw),
        C=torch.randn(*bc, **kw),
        D=torch.randn(d, **kw) if extras else None,
        z=torch.randn(b, d, L, **kw) if extras else None,
        delta_bias=torch.randn(d, **kw) * 0.5 if extras else None,
    )
    inp = {k: (v.to(dtype) if v is not None and k not in ("A", "D", "delta_bias") else v) for k, v in inp.items()}
    w = torch.randn(b, d, L, **kw)
    res = []
    for fn, dt, kwargs in (
        (selective_scan_reference, torch.float64, {}),
        (scan_triton.selective_scan_triton, None, dict(bwd_config=cfg)),
    ):
        lv = {
            k: (v.detach().to(dt or v.dtype).clone().requires_grad_(True) if v is not None else None)
            for k, v in inp.items()
        }
        out = fn(**lv, delta_softplus=True, **kwargs)
        (out.double() * w.double()).sum().backward()
        res.append([out] + [v.grad for v in lv.values() if v is not None])
    for name, x, y in zip(["out"] + [k for k, v in inp.items() if v is not None], res[1], res[0]):
        assert not torch.isnan(x).any(), name
        e = ((x.double() - y).norm() / y.norm().clamp_min(1e-30)).item()
        assert e < tol, (name, e)
