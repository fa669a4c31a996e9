"""The sequence baselines see exactly as far back as the report says (gradients), and stay matched."""

from __future__ import annotations

import pytest
import torch

from mambaout.lab.baselines import dilations_for, long_kernel_for, reach_text, seq_reach
from mambaout.lab.models import build_seq_model

L = 40


def _seen(kind, spec, t):
    """Input positions whose value changes output t (gradient of a real-valued input stack)."""
    torch.manual_seed(0)
    model = build_seq_model(spec, kind, None, 3, 0, "all", L).double()
    x = torch.randn(1, L, 1, dtype=torch.double, requires_grad=True)
    model(x)[0, t].sum().backward()
    return set((x.grad[0, :, 0].abs() > 0).nonzero().flatten().tolist())


@pytest.mark.parametrize(
    "kind, spec",
    [
        ("gated_cnn", dict(dim=8, depth=2, kernel_size=4)),  # 2 x 3 = 6 back
        ("long_conv", dict(dim=8, depth=2, long_kernel=9)),  # 2 x 8 = 16 back
        ("dilated_conv", dict(dim=8, depth=1, kernel_size=3, dilations=[1, 3])),  # 2 x (1 + 3) = 8 back
        ("dilated_conv", dict(dim=8, depth=2, kernel_size=2, dilations=[1, 2, 4])),  # 2 x 7 = 14 back
    ],
)
def test_conv_stack_reach_is_exact(kind, spec):
    reach = seq_reach(kind, spec, L)
    assert reach < L - 1
    for t in (reach + 5, L - 1):
        assert _seen(kind, spec, t) == set(range(t - reach, t + 1)), (kind, t)
    assert _seen(kind, spec, 2) == {0, 1, 2}  # the zero padding before the sequence is not an input


@pytest.mark.parametrize("kind", ["ssm", "attention", "long_conv", "dilated_conv"])
def test_full_reach_models_see_the_whole_prefix_and_nothing_after(kind):
    spec = dict(dim=8, depth=2, kernel_size=4, d_state=4, num_heads=2)
    reach = seq_reach(kind, spec, L)
    assert reach is None or reach >= L - 1
    t = 30
    assert _seen(kind, spec, t) == set(range(t + 1)), kind
    assert reach_text(reach, L).startswith("all") or "≥ all" in reach_text(reach, L)


def test_derived_kernels_and_dilations():
    assert long_kernel_for(196, 2) == 99 and 2 * (99 - 1) >= 195
    assert dilations_for(196, 4) == [1, 4, 16, 64] and 3 * (1 + 4 + 16 + 64) >= 195
    assert dilations_for(784, 4) == [1, 4, 16, 64, 256]


def test_long_conv_matched_by_kernel_keeps_full_reach():
    """The framing experiment lengthens the long kernel to match the SSM's parameters: reach only grows."""
    from mambaout.lab.framing import _seq_cells

    spec = dict(dim=16, depth=2, kernel_size=4, d_state=8, num_heads=2)
    cells = {
        c["label"]: c
        for c in _seq_cells(spec, ["gated_cnn", "long_conv", "dilated_conv", "attention", "ssm"], 10, 0, "last", 196)
    }
    target = cells["ssm"]["params"]
    for c in cells.values():
        assert abs(c["params"] - target) <= 0.05 * target, c["label"]
    assert cells["long_conv"]["reach"] >= 195 and cells["dilated_conv"]["reach"] >= 195
    assert cells["gated_cnn"]["reach"] == 6 and cells["ssm"]["reach"] is None
