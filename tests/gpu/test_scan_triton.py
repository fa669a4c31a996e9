"""Triton selective scan == sequential reference on CUDA (forward and every input's gradient).

Skips without CUDA/triton.  Outputs are poisoned with NaN before each kernel runs (scan_triton.launch._POISON),
inputs are fresh random tensors, and the reference runs in float64 on the same (rounded) inputs.
"""

import pytest
import torch

from mambaout.ops import scan_triton, selective_scan
from mambaout.ops.scan_reference import selective_scan_reference
from mambaout.ops.scan_torch import selective_scan_torch
from mambaout.ops.scan_triton import TileConfig, launch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not scan_triton.available(), reason="needs CUDA and triton"),
]


@pytest.fixture(autouse=True)
def _poison(monkeypatch):
    monkeypatch.setattr(launch, "_POISON", True)


def make(b, d, L, n, groups, D, z, bias, dtype, seed, softplus=True):
    g = torch.Generator(device="cuda").manual_seed(seed)
    kw = dict(device="cuda", generator=g)
    bc = (b, n, L) if groups is None else (b, groups, n, L)
    inp = {
        "u": torch.randn(b, d, L, **kw),
        "delta": torch.rand(b, d, L, **kw) * 0.5,
        "A": -torch.exp(torch.randn(d, n, **kw)),
        "B": torch.randn(*bc, **kw),
        "C": torch.randn(*bc, **kw),
        "D": torch.randn(d, **kw) if D else None,
        "z": torch.randn(b, d, L, **kw) if z else None,
        "delta_bias": (torch.randn(d, **kw) * 0.5 if softplus else torch.rand(d, **kw) * 0.5) if bias else None,
    }
    # A, D, delta_bias stay fp32 (parameters); activations in the test dtype
    for k in ("u", "delta", "B", "C", "z"):
        if inp[k] is not None:
            inp[k] = inp[k].to(dtype)
    return inp


def run(fn, inp, softplus, last, dout_seed=7, **kw):
    leaves = {k: (v.clone().requires_grad_(True) if v is not None else None) for k, v in inp.items()}
    res = fn(**leaves, delta_softplus=softplus, return_last_state=last, **kw)
    out, state = res if last else (res, None)
    g = torch.Generator(device="cuda").manual_seed(dout_seed)
    w = torch.randn(out.shape, device="cuda", generator=g, dtype=torch.float64)
    (out.double() * w).sum().backward()
    r = {"out": out.detach()}
    if state is not None:
        r["last_state"] = state.detach()
    r.update({"d" + k: v.grad for k, v in leaves.items() if v is not None})
    return r


def as64(inp):
    return {k: (v.double() if v is not None else None) for k, v in inp.items()}


def rel(x, y):
    x, y = x.double(), y.double()
    n = y.norm().item()
    return (x - y).norm().item() / (n if n > 0 else 1.0)


CASES = [
    # b, d, L, n, groups, D, z, bias, softplus, last
    (2, 16, 1, 1, None, True, True, True, True, True),
    (2, 16, 100, 16, None, True, True, True, True, True),
    (2, 24, 100, 16, 4, False, False, False, False, False),
    (1, 32, 100, 64, 2, True, False, True, True, True),
    (1, 8, 3136, 16, None, True, False, True, True, True),
    (1, 8, 5000, 1, 2, True, True, True, True, False),
    (2, 40, 197, 1, None, False, True, False, True, True),
    (1, 4, 77, 256, None, True, True, True, True, True),
    # the L >= 1024 d_state 16 forward runs two-warp programs of 16 channels; groups of 16 and of 8 channels
    # (the second narrows the tile to one warp)
    (2, 48, 1100, 16, 3, True, True, True, True, True),
    (1, 24, 1030, 16, 3, True, True, False, True, True),
]


def _id(c):
    return "b{}d{}L{}n{}g{}_D{:d}z{:d}bias{:d}sp{:d}last{:d}".format(*c)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("case", CASES, ids=_id)
def test_triton_matches_reference(case, dtype):
    b, d, L, n, groups, D, z, bias, sp, last = case
    inp = make(b, d, L, n, groups, D, z, bias, dtype, seed=1000 + sum(case[:4]), softplus=sp)
    got = run(scan_triton.selective_scan_triton, inp, sp, last)
    ref = run(selective_scan_reference, as64(inp), sp, last)
    tol = 1e-4 if dtype == torch.float32 else 1e-2
    assert got["out"].dtype == dtype
    for k in ref:
        assert torch.isfinite(got[k]).all(), f"{k}: NaN/inf (unwritten element?)"
        e = rel(got[k], ref[k])
        assert e <= tol, f"{k}: relative error {e:.2e} > {tol:.0e}"


def test_dispatch_auto_uses_triton_and_matches_torch():
    inp = make(2, 32, 300, 16, 2, True, True, True, torch.float32, seed=5)
    a = selective_scan(**inp, delta_softplus=True)  # auto -> triton on CUDA
    b = selective_scan(**inp, delta_softplus=True, backend="torch")
    assert rel(a, b) < 1e-5


def _tmw(bd, bt, nl, nw):
    return TileConfig("tmw", bd, bt, nw, n_lanes=nl)


# (forward, backward) tiles; None: the default
TILE_CONFIGS = {
    16: (
        (TileConfig("tm", 1, 16, 4), None),  # tm forward (autograd: at the backward's block_t)
        (TileConfig("tm", 8, 128, 8), _tmw(8, 8, 8, 2)),
        (_tmw(8, 4, 4, 1), _tmw(8, 4, 4, 1)),
        (_tmw(4, 8, 8, 1), _tmw(4, 8, 8, 1)),
        (_tmw(8, 8, 8, 2), _tmw(8, 8, 8, 2)),
        (_tmw(32, 4, 4, 4), _tmw(32, 4, 4, 4)),
        (_tmw(8, 2, 4, 1), _tmw(8, 2, 4, 1)),
    ),
    1: (
        (TileConfig("tm", 16, 64, 4), _tmw(32, 8, 1, 1)),
        (_tmw(32, 8, 1, 1), _tmw(32, 8, 1, 1)),
        (_tmw(32, 32, 1, 1), _tmw(32, 32, 1, 1)),
        (_tmw(128, 8, 1, 4), _tmw(128, 8, 1, 4)),
        (TileConfig("sn", 4, 128, 1),) * 2,
        (TileConfig("sn", 2, 256, 1),) * 2,
        (TileConfig("sn", 8, 128, 4),) * 2,
    ),
    2: (
        (TileConfig("tm", 16, 64, 4), _tmw(16, 8, 2, 1)),
        (TileConfig("sn", 4, 128, 1),) * 2,
        (TileConfig("sn", 2, 256, 1),) * 2,
    ),
}


@pytest.mark.parametrize("n", [16, 1, 2])
def test_tile_configs_agree(n):
    inp = make(2, 256, 333, n, 4, True, True, True, torch.float32, seed=9)
    ref = run(selective_scan_torch, inp, True, True)
    for fwd, bwd in TILE_CONFIGS[n]:
        got = run(scan_triton.selective_scan_triton, inp, True, True, fwd_config=fwd, bwd_config=bwd)
        for k in ref:
            assert rel(got[k], ref[k]) < 1e-4, (fwd, bwd, k)


@pytest.mark.parametrize("n", [1, 2])
def test_sn_bf16_matches_reference(n):
    # "sn": bf16 loads give its tiles another register layout (8 steps a thread, 16 lanes) than fp32
    inp = make(2, 64, 333, n, 2, True, True, True, torch.bfloat16, seed=11)
    ref = run(selective_scan_reference, as64(inp), True, True)
    for fwd, bwd in TILE_CONFIGS[2]:
        if fwd.layout != "sn":
            continue
        got = run(scan_triton.selective_scan_triton, inp, True, True, fwd_config=fwd, bwd_config=bwd)
        for k in ref:
            assert rel(got[k], ref[k]) <= 1e-2, (fwd, k)


def test_large_steps_long_sequence_finite():
    inp = make(1, 16, 4096, 16, None, True, True, True, torch.float32, seed=3)
    inp["delta"] = inp["delta"] * 20
    got = run(scan_triton.selective_scan_triton, inp, True, True)
    for k, v in got.items():
        assert torch.isfinite(v).all(), k
    ref = run(selective_scan_torch, as64(inp), True, True)
    for k in ref:
        assert rel(got[k], ref[k]) < 1e-4, k


@pytest.mark.parametrize("n", [16, 1])
def test_deterministic_mode_sums_partials(n):
    # dB/dC are atomic adds by default; under torch.use_deterministic_algorithms the backward writes
    # per-program partials and sums them: bitwise reproducible, and equal to the atomic result up to rounding
    inp = make(2, 64, 300, n, 2, True, True, True, torch.float32, seed=13)
    fast = run(scan_triton.selective_scan_triton, inp, True, True)
    prev = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        a = run(scan_triton.selective_scan_triton, inp, True, True)
        b = run(scan_triton.selective_scan_triton, inp, True, True)
    finally:
        torch.use_deterministic_algorithms(prev)
    for k in ("dB", "dC"):
        assert torch.equal(a[k], b[k]), k
        assert rel(a[k], fast[k]) < 1e-5, k


def test_many_channel_blocks_match_torch():
    # with > 256 channel blocks per group the backward switches from atomic adds to partials (contention)
    inp = make(2, 4096, 50, 1, 4, True, True, True, torch.float32, seed=17)
    got = run(scan_triton.selective_scan_triton, inp, True, True)
    ref = run(selective_scan_torch, inp, True, True)
    for k in ref:
        assert rel(got[k], ref[k]) < 1e-4, k
