"""Every model family under torch.compile(fullgraph=True) and torch.export: no graph break, eager's numbers.

Tiny configurations (tiny_zoo.py), CPU, where the scan traces as its recursive-doubling formulation.  Parity runs
through backend="aot_eager" (dynamo's graph and AOTAutograd, no C++ compiler); one test runs inductor on the SSM
mixer.  Families beyond MambaOut and the raster-scan Mamba pair are marked slow (several seconds each).
"""

import pytest
import torch
from tiny_zoo import SCAN_FAMILY, TINY, build

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = {"mambaout_test", "mamba"}
PARAMS = [pytest.param(n, marks=() if n in FAST else pytest.mark.slow) for n in TINY]
TOL = 1e-4


def _input(batch=2, size=64):
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(1))


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    yield
    torch._dynamo.reset()


@pytest.mark.parametrize("name", PARAMS)
def test_compile_fullgraph_and_export_match_eager(name):
    model, x = build(name), _input()
    with torch.no_grad():
        ref = model(x)
        compiled = torch.compile(model, fullgraph=True, backend="aot_eager")(x)  # a graph break raises here
        exported = torch.export.export(model, (x,)).module()(x)
    assert (compiled - ref).abs().max() <= TOL
    assert (exported - ref).abs().max() <= TOL


def test_every_family_and_scan_order_is_covered():
    from mambaout.registry import list_models, model_info

    families = {model_info(n).family for n in list_models()}
    assert families == {
        "mambaout",
        "mamba",
        "vmamba",
        "vim",
        "localmamba",
        "plainmamba",
        "efficientvmamba",
        "hybrid",
        "vit",
    }
    assert set(SCAN_FAMILY.values()) <= set(TINY)


@pytest.mark.slow
def test_compile_training_step_matches_eager():
    """Forward and backward of a Mamba block (gated CNN + conv_ssm, cross scan) through the compiled graph: the
    doubling scan's autograd gives eager's gradients."""
    from mambaout.models.blocks import GatedBlock

    torch.manual_seed(0)
    block = GatedBlock(8, mixer="conv_ssm", mixer_kwargs=dict(kernel_size=3, scan="cross", d_state=4))
    x = torch.randn(2, 6, 5, 8)
    block(x).square().mean().backward()
    ref = {k: p.grad.clone() for k, p in block.named_parameters()}
    block.zero_grad()
    torch.compile(block, fullgraph=True, backend="aot_eager")(x).square().mean().backward()
    for k, p in block.named_parameters():
        assert (p.grad - ref[k]).abs().max() <= 1e-4 * max(1.0, ref[k].abs().max().item()), k


@pytest.mark.slow
def test_inductor_compiles_the_ssm_mixer():
    """One true inductor build (C++ on the CPU): a conv+SSM mixer with the cross scan."""
    from mambaout.models.ssm import ConvSSMMixer

    torch.manual_seed(0)
    mixer = ConvSSMMixer(8, kernel_size=3, scan="cross", d_state=4).eval()
    x = torch.randn(2, 6, 5, 8)
    with torch.no_grad():
        ref = mixer(x)
        got = torch.compile(mixer, fullgraph=True)(x)
    assert (got - ref).abs().max() <= TOL * max(1.0, ref.abs().max().item())
