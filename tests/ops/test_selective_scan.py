"""The chunked PyTorch selective scan equals the sequential reference (outputs and every gradient)."""

import textwrap

import pytest
import torch

from mambaout.ops import scan_macs, selective_scan
from mambaout.ops.scan_reference import selective_scan_reference
from mambaout.ops.scan_torch import selective_scan_torch

NAMES = ["u", "delta", "A", "B", "C", "D", "z", "delta_bias"]


def make_inputs(
    b, d, L, n, groups=None, *, D=True, z=True, bias=True, dtype=torch.float32, seed=0, dscale=0.5, softplus=True
):
    """Fresh random inputs (never zeros), A = -exp(randn) < 0; without softplus, delta + bias > 0."""
    g = torch.Generator().manual_seed(seed)

    def rn(*s):
        return torch.randn(*s, generator=g, dtype=torch.float64).to(dtype)

    bc = (b, n, L) if groups is None else (b, groups, n, L)
    return {
        "u": rn(b, d, L),
        "delta": (torch.rand(b, d, L, generator=g, dtype=torch.float64) * dscale).to(dtype),
        "A": -torch.exp(rn(d, n)),
        "B": rn(*bc),
        "C": rn(*bc),
        "D": rn(d) if D else None,
        "z": rn(b, d, L) if z else None,
        "delta_bias": (0.5 * (rn(d) if softplus else rn(d).abs())) if bias else None,
    }


def run(fn, inp, softplus, last, seed=123, **kw):
    """Forward + backward of a random projection of the outputs; returns outputs and grads."""
    leaves = {k: (v.clone().requires_grad_(True) if v is not None else None) for k, v in inp.items()}
    res = fn(**leaves, delta_softplus=softplus, return_last_state=last, **kw)
    out, state = res if last else (res, None)
    g = torch.Generator().manual_seed(seed)
    loss = (out.double() * torch.randn(out.shape, generator=g, dtype=torch.float64)).sum()
    if state is not None:
        loss = loss + (state.double() * torch.randn(state.shape, generator=g, dtype=torch.float64)).sum()
    loss.backward()
    result = {"out": out.detach()}
    if state is not None:
        result["last_state"] = state.detach()
    for k, v in leaves.items():
        if v is not None:
            result["d" + k] = v.grad
    return result


def rel_err(x, ref):
    x, ref = x.double(), ref.double()
    den = ref.norm()
    if den == 0:
        return (x - ref).norm().item()
    return ((x - ref).norm() / den).item()


def as64(inp):
    return {k: (v.double() if v is not None else None) for k, v in inp.items()}


def assert_close_all(got, ref, tol):
    assert got.keys() == ref.keys()
    for k in ref:
        assert got[k] is not None, k
        assert torch.isfinite(got[k]).all(), f"{k} has NaN/inf"
        e = rel_err(got[k], ref[k])
        assert e <= tol, f"{k}: relative error {e:.2e} > {tol:.0e}"


CASES = [
    # (b, d, L, n, groups, D, z, bias, softplus, last, chunk_size)
    (2, 4, 1, 1, None, True, True, True, True, True, None),
    (2, 4, 7, 16, None, True, True, True, True, True, 3),
    (2, 4, 7, 16, None, False, False, False, False, False, None),
    (2, 8, 100, 16, 2, True, False, True, True, True, 32),
    (2, 8, 100, 1, 4, False, True, False, True, False, 1000),
    (1, 8, 257, 16, 4, True, True, True, False, True, 64),
    (2, 6, 257, 1, None, True, False, True, True, True, 1),
    (1, 4, 257, 16, 2, False, True, True, True, False, 256),
    (2, 4, 100, 16, None, True, True, False, False, True, 100),
]


@pytest.mark.parametrize(
    "case", CASES, ids=lambda c: "b{}d{}L{}n{}g{}_D{:d}z{:d}bias{:d}sp{:d}last{:d}_cs{}".format(*c)
)
def test_torch_matches_reference_fp32(case):
    b, d, L, n, groups, D, z, bias, sp, last, cs = case
    inp = make_inputs(b, d, L, n, groups, D=D, z=z, bias=bias, softplus=sp, seed=sum(map(hash, case)) % 10_000)
    ref = run(selective_scan_reference, as64(inp), sp, last)  # exact answer for these fp32 inputs
    got = run(selective_scan_torch, inp, sp, last, chunk_size=cs)
    assert got["out"].dtype == torch.float32
    assert_close_all(got, ref, 1e-5)
    ref32 = run(selective_scan_reference, inp, sp, last)  # and the fp32 reference itself
    assert_close_all(got, ref32, 1e-5)


@pytest.mark.parametrize("cs,sub", [(5, None), (16, 4), (300, 7), (None, None), (64, 1), (1000, 64)])
def test_torch_matches_reference_fp64_chunkings(cs, sub):
    inp = make_inputs(2, 8, 201, 16, 2, dtype=torch.float64, seed=cs or 7)
    ref = run(selective_scan_reference, inp, True, True)
    got = run(selective_scan_torch, inp, True, True, chunk_size=cs, sub_chunk=sub)
    assert got["out"].dtype == torch.float64
    assert_close_all(got, ref, 1e-12)


def test_long_sequence_stable():
    # L = 4096 with large steps and strongly decaying A: no exp of a growing sum, so no inf/NaN.
    inp = make_inputs(1, 4, 4096, 8, D=True, z=True, bias=True, seed=5, dscale=10.0)
    inp["A"] = -torch.exp(torch.randn(4, 8) + 2.0)
    got = run(selective_scan_torch, inp, True, True)
    for k, v in got.items():
        assert torch.isfinite(v).all(), k
    ref = run(selective_scan_reference, as64(inp), True, True)
    assert_close_all(got, ref, 1e-5)


def test_long_sequence_tiny_steps_stable():
    # near-zero steps (state barely decays over 4096 steps): products stay in range
    inp = make_inputs(1, 4, 4096, 4, seed=6, dscale=1e-4, bias=False, softplus=False)
    got = run(selective_scan_torch, inp, False, True, chunk_size=512)
    ref = run(selective_scan_reference, as64(inp), False, True)
    assert_close_all(got, ref, 1e-5)


def test_bf16_and_fp16_inputs():
    for dt in (torch.bfloat16, torch.float16):
        inp = make_inputs(2, 8, 50, 16, 2, dtype=dt, seed=11)
        out, last = selective_scan_torch(**inp, delta_softplus=True, return_last_state=True)
        assert out.dtype == dt and last.dtype == torch.float32
        ref_in = {k: (v.float() if v is not None else None) for k, v in inp.items()}
        ref, ref_last = selective_scan_reference(**ref_in, delta_softplus=True, return_last_state=True)
        assert rel_err(out, ref) < 1e-2
        assert rel_err(last, ref_last) < 1e-5  # state is fp32 on the same (rounded) inputs
        got = run(selective_scan_torch, inp, True, False)
        assert got["du"].dtype == dt and got["dA"].dtype == dt
        assert all(torch.isfinite(v.float()).all() for v in got.values())


def test_public_dispatch_cpu():
    inp = make_inputs(2, 4, 33, 4, seed=3)
    a = selective_scan(**inp, delta_softplus=True)  # auto -> torch on CPU
    b = selective_scan(**inp, delta_softplus=True, backend="reference")
    c = selective_scan(**inp, delta_softplus=True, backend="torch")
    assert rel_err(a, b) < 1e-5 and torch.equal(a, c)
    with pytest.raises(ValueError, match="unknown backend"):
        selective_scan(**inp, backend="cuda-magic")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="triton"):
            selective_scan(**inp, backend="triton")
    try:
        import mamba_ssm  # noqa: F401
    except Exception:
        with pytest.raises(RuntimeError, match="mamba_ssm"):
            selective_scan(**inp, backend="mamba_ssm")


def test_meta_device_shapes():
    inp = make_inputs(2, 4, 9, 4, seed=4)
    meta = {k: (v.to("meta") if v is not None else None) for k, v in inp.items()}
    out, last = selective_scan(**meta, return_last_state=True)
    assert out.shape == (2, 4, 9) and out.device.type == "meta" and last.shape == (2, 4, 4)


@pytest.mark.parametrize(
    "change,match",
    [
        (dict(u=torch.randn(2, 4)), "u must have shape"),
        (dict(delta=torch.rand(2, 4, 8)), "delta must have"),
        (dict(A=-torch.rand(3, 4)), "A must have shape"),
        (dict(B=torch.randn(2, 5, 9)), "B has shape"),
        (dict(C=torch.randn(2, 4)), "C must have shape"),
        (dict(B=torch.randn(2, 3, 4, 9), C=torch.randn(2, 3, 4, 9)), "groups, which must divide"),
        (dict(B=torch.randn(2, 2, 4, 9)), "both be grouped"),
        (dict(D=torch.randn(3)), "D must have shape"),
        (dict(delta_bias=torch.randn(4, 1)), "delta_bias must have shape"),
        (dict(z=torch.randn(2, 4, 8)), "z must have"),
    ],
)
def test_shape_errors(change, match):
    inp = make_inputs(2, 4, 9, 4, seed=1)
    inp.update(change)
    for fn in (selective_scan, selective_scan_torch, selective_scan_reference):
        with pytest.raises(ValueError, match=match):
            fn(**inp)


def test_scan_macs_convention():
    assert scan_macs(2, 3136, 192, 16, with_D=False) == 9 * 2 * 3136 * 192 * 16
    assert scan_macs(1, 10, 4, 2) == 9 * 80 + 40
    assert scan_macs(1, 10, 4, 2, with_D=True, with_z=True) == 9 * 80 + 80


def test_counted_op_hook(monkeypatch):
    import contextlib

    import mambaout.ops as ops

    seen = []

    @contextlib.contextmanager
    def fake(macs, name="custom"):
        seen.append((macs, name))
        yield

    monkeypatch.setattr(ops, "counted_op", fake)
    inp = make_inputs(2, 4, 9, 4, z=False, seed=2)
    selective_scan(**inp)
    assert seen == [(scan_macs(2, 9, 4, 4, with_D=True, with_z=False), "selective_scan")]


TRITON_INTERP_SCRIPT = textwrap.dedent(
    """
    from scan_interp_check import compare_to_reference
    from mambaout.ops.scan_triton import TileConfig as T
    cases = [(2, 4, 1, 1, None, True, (1, 1, 1)), (2, 4, 37, 16, None, True, (1, 1, 1)),
             (2, 8, 42, 5, 2, False, (0, 0, 0)), (1, 8, 35, 1, 4, True, (1, 0, 1)),
             (2, 8, 150, 2, 2, False, (0, 1, 0))]

    # atomic_bc False: dB/dC as per-program partials (the deterministic path), True: atomic adds
    def variants(n):
        return [  # the tm forward (d_state > 16 by default) feeding a tmw backward of the same block_t
            dict(fwd_config=T("tm", 2, 16, 4), bwd_config=T("tmw", 8, 16, 1, n_lanes=4, atomic_bc=True)),
        ] + [  # tmw backward: n over lanes x in-thread; block_t 4, 8 and 64 (the time flip's deepest level; L is
            # not a multiple of any)
            dict(bwd_config=T("tmw", bd, bt, nw, n_lanes=nl, atomic_bc=bt != 8))
            for bd, bt, nl, nw in ((8, 4, 4, 1), (4, 8, 2, 2), (4, 64, 1, 1))
        ] + ([  # a tmw forward with a 16-step tile saving the states of the backward's 4-step tiles
            dict(fwd_config=T("tmw", 4, 16, 1, n_lanes=8), bwd_config=T("tmw", 8, 4, 1, n_lanes=4)),
        ] if n > 2 else []) + ([  # "sn" (d_state <= 2): backward alone (the autograd forward follows it), both
            # with their own tiles, and an sn forward's saved states feeding a tmw backward
            dict(bwd_config=T("sn", 2, 32, 1, atomic_bc=False)),
            dict(fwd_config=T("sn", 4, 16, 2), bwd_config=T("sn", 4, 128, 2)),
            dict(fwd_config=T("sn", 2, 16, 1), bwd_config=T("tmw", 32, 16, 1, n_lanes=1)),
        ] if n <= 2 else [])

    compare_to_reference(cases, variants)
    """
)


@pytest.mark.slow
def test_triton_kernels_in_interpreter(run_triton_interpreted):
    """Runs the Triton kernels' logic on the CPU through TRITON_INTERPRET=1 (a subprocess)."""
    run_triton_interpreted(TRITON_INTERP_SCRIPT)
