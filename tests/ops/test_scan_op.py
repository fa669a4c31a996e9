"""The Triton scan as the ``mambaout::selective_scan`` operator: one graph node forward and backward, fake shapes
that match the kernels', and (in the Triton interpreter, slow) the op's results, gradients and opcheck."""

import textwrap

import pytest
import torch
from test_selective_scan import make_inputs

pytest.importorskip("triton")

from mambaout.ops.scan_triton import launch  # noqa: E402


def test_op_is_one_node_forward_and_backward(monkeypatch):
    """Traced with fake tensors (no kernel runs): the scan and its gradient are one op each."""
    from torch.fx.experimental.proxy_tensor import make_fx

    from mambaout.ops.scan_triton import selective_scan_triton

    monkeypatch.setattr(launch, "_interpreting", lambda: True)  # lets CPU tensors through the device check
    inp = make_inputs(2, 8, 21, 4, 2, seed=5)

    def step(u, delta, A, B, C, D, z, bias):
        out, last = selective_scan_triton(u, delta, A, B, C, D, z, bias, delta_softplus=True, return_last_state=True)
        return (out, last, *torch.autograd.grad(out.sum(), (u, delta, A, B, C)))

    args = [inp[k].clone().requires_grad_() for k in ("u", "delta", "A", "B", "C")]
    gm = make_fx(step, tracing_mode="fake")(*args, inp["D"], inp["z"], inp["delta_bias"])
    targets = [str(n.target) for n in gm.graph.nodes if n.op == "call_function"]
    assert targets.count("mambaout.selective_scan.default") == 1
    assert targets.count("mambaout.selective_scan_backward.default") == 1
    shapes = [tuple(n.meta["val"].shape) for n in gm.graph.nodes if n.op == "output" for n in n.args[0]]
    assert shapes == [(2, 8, 21), (2, 8, 4), (2, 8, 21), (2, 8, 21), (8, 4), (2, 2, 4, 21), (2, 2, 4, 21)]


INTERP_SCRIPT = textwrap.dedent(
    """
    import torch
    from test_selective_scan import as64, make_inputs, rel_err, run
    from mambaout.ops.scan_reference import selective_scan_reference
    from mambaout.ops.scan_triton import selective_scan_triton
    inp = make_inputs(1, 4, 13, 4, 2, seed=5)
    ref = run(selective_scan_reference, as64(inp), True, False)
    got = run(selective_scan_triton, inp, True, False)  # no tile configs: through the op
    worst = max(rel_err(got[k], ref[k]) for k in ref)
    assert worst < 1e-5, worst
    leaves = [inp[k].clone().requires_grad_() for k in ("u", "delta", "A", "B", "C")]
    args = (*leaves, inp["D"], inp["z"], inp["delta_bias"], True, True, True)
    checks = ("test_schema", "test_autograd_registration", "test_faketensor")
    res = torch.library.opcheck(torch.ops.mambaout.selective_scan.default, args, test_utils=checks)
    assert set(res.values()) == {"SUCCESS"}, res
    f = torch.compile(lambda *t: selective_scan_triton(*t, inp["D"], inp["z"], inp["delta_bias"], delta_softplus=True),
                      fullgraph=True, backend="aot_eager")
    out = f(*leaves)
    g = torch.autograd.grad(out.sum(), leaves)
    worst = max(worst, rel_err(out, ref["out"]), rel_err(g[0], ref["du"]))
    print("WORST", worst)
    """
)


@pytest.mark.slow
def test_op_in_interpreter(run_triton_interpreted):
    """The op's kernels in TRITON_INTERPRET=1: results and gradients, opcheck, torch.compile(fullgraph=True)."""
    run_triton_interpreted(INTERP_SCRIPT)
