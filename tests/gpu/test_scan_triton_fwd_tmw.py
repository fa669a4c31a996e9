"""Forward kernels on CUDA (fp32 and bf16 vs the float64 reference): tm with the opaque 16-bit upcast and tmw with
and without prefetch (inference and under autograd, feeding the default backward)."""

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
    TileConfig("tm", 8, 16, 4),
    TileConfig("tmw", 8, 8, 1, n_lanes=4),
    TileConfig("tmw", 4, 16, 1, n_lanes=8),
    TileConfig("tmw", 32, 8, 4, n_lanes=4),
    TileConfig("tmw", 16, 8, 1, n_lanes=2),
    # the next tile's loads issued early
    TileConfig("tmw", 4, 16, 1, n_lanes=8, prefetch=True),
    TileConfig("tmw", 8, 16, 1, n_lanes=4, prefetch=True),
    TileConfig("tmw", 16, 8, 1, n_lanes=2, prefetch=True),  # the default below L = 1024
    TileConfig("tmw", 32, 8, 4, n_lanes=4, prefetch=True),
    TileConfig("tmw", 16, 16, 2, n_lanes=4, prefetch=True),  # the default from L = 1024
]
SHAPES = [
    (2, 64, 333, 16, None),
    (2, 48, 100, 16, 2),
    (1, 40, 197, 5, None),
    (2, 64, 320, 16, 2),
]  # 320: every tile full


@pytest.fixture(autouse=True)
def _poison(monkeypatch):
    monkeypatch.setattr(launch, "_POISON", True)


def rel(x, y):
    x, y = x.double(), y.double()
    return (x - y).norm().item() / max(y.norm().item(), 1e-30)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(
    "cfg", CFGS, ids=lambda c: f"{c.layout}{c.block_d}x{c.block_t}x{c.warps}{'pf' if c.prefetch else ''}"
)
@pytest.mark.parametrize("grad", [False, True])
def test_forward_tiles(dtype, shape, cfg, grad):
    b, d, L, n, g = shape
    gen = torch.Generator(device="cuda").manual_seed(0)
    kw = dict(device="cuda", generator=gen)
    bc = (b, n, L) if g is None else (b, g, n, L)
    u = torch.randn(b, d, L, **kw).to(dtype)
    dl = (torch.rand(b, d, L, **kw) * 0.5).to(dtype)
    A = -torch.exp(torch.randn(d, n, **kw))
    Bm = torch.randn(*bc, **kw).to(dtype)
    Cm = torch.randn(*bc, **kw).to(dtype)
    Dv = torch.randn(d, **kw)
    z = torch.randn(b, d, L, **kw).to(dtype)
    bias = torch.randn(d, **kw) * 0.5
    leaves = [t.clone().requires_grad_(grad) for t in (u, dl, Bm, Cm)]
    out, last = scan_triton.selective_scan_triton(
        leaves[0],
        leaves[1],
        A,
        leaves[2],
        leaves[3],
        Dv,
        z,
        bias,
        delta_softplus=True,
        return_last_state=True,
        fwd_config=cfg,
    )
    ref, rlast = selective_scan_reference(
        u.double(),
        dl.double(),
        A.double(),
        Bm.double(),
        Cm.double(),
        Dv.double(),
        z.double(),
        bias.double(),
        delta_softplus=True,
        return_last_state=True,
    )
    tol = 1e-5 if dtype == torch.float32 else 1e-2
    assert rel(out, ref) < tol
    assert rel(last, rlast) < (1e-5 if dtype == torch.float32 else 1e-3)
    if grad:
        rl = [t.double().requires_grad_() for t in (u, dl, Bm, Cm)]
        r = selective_scan_reference(
            rl[0], rl[1], A.double(), rl[2], rl[3], Dv.double(), z.double(), bias.double(), delta_softplus=True
        )
        w = torch.randn(out.shape, device="cuda", generator=gen, dtype=torch.float64)
        (out.double() * w).sum().backward()
        (r * w).sum().backward()
        for x, y in zip(leaves, rl):
            assert rel(x.grad, y.grad) < (1e-4 if dtype == torch.float32 else 3e-2)
