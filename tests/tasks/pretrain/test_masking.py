"""FCMAE's sparse encoder reads no hidden position, for every mixer type (exact, fp64); SimMIM's loss sees
hidden pixels only; masks and the family checks."""

from __future__ import annotations

import pytest
import torch

from mambaout.errors import UsageError
from mambaout.models.blocks import GatedBlock
from mambaout.models.hierarchical import PATCH_MACRO, HierarchicalNet
from mambaout.models.mambaout import gated_net
from mambaout.models.vmamba import VSSBlock
from mambaout.registry import create_model
from mambaout.tasks.pretrain.decoders import MaskedImageModel, masked_loss
from mambaout.tasks.pretrain.masking import at, random_mask, sparse_encoder

DIMS, DEPTHS = (8, 8, 8), (1, 1, 1)  # 3 stages at stem stride 1: total stride 4
SSM = dict(d_state=4, kernel_size=3)


def _gated(mixer, mixer_kwargs=None, **kw):
    return gated_net(DEPTHS, DIMS, mixer=mixer, mixer_kwargs=mixer_kwargs, num_classes=0, in_chans=1, **kw)


MODELS = {  # one per mixer type; a 16 px image is a 4x4 grid of 4 px patches
    "dwconv": lambda: _gated("dwconv", stem_stride=1),
    "conv_ssm raster": lambda: _gated("conv_ssm", dict(scan="raster", **SSM), stem_stride=1),
    "cross-scan (VMamba v0, patch macro)": lambda: _gated(
        "conv_ssm", dict(scan="cross", out_norm=True, **SSM), **PATCH_MACRO, stem_stride=1
    ),
    "cross-scan (VMamba v2 block)": lambda: HierarchicalNet(
        DEPTHS, DIMS, 0, 1, block=VSSBlock, block_kwargs=dict(d_state=2), stem_stride=1, head="linear"
    ),
    "windowed (LocalMamba multiscan)": lambda: HierarchicalNet(
        DEPTHS,
        DIMS,
        0,
        1,
        block=GatedBlock,
        block_kwargs=dict(mixer="multiscan", mixer_kwargs=dict(scan=("h", "w2", "w3_flip", "v"), d_state=4)),
        stem_stride=1,
    ),
}


def _stages(model, x, mask, noise_hidden=False):
    """Every stage's output under the sparse encoder; ``noise_hidden``: garbage written at the hidden positions
    after the stem and after every block (a sparse network must not care what is there)."""
    hooks = []
    if noise_hidden:
        gen = torch.Generator().manual_seed(7)

        def scribble(module, args, out):
            hidden = at(mask, out.shape[1], out.shape[2]).permute(0, 2, 3, 1)
            return torch.where(hidden, torch.randn(out.shape, generator=gen, dtype=out.dtype) * 100, out)

        mods = [model.stem] + [b for s in model.stages for b in s.blocks]
        hooks = [m.register_forward_hook(scribble) for m in mods]
    outs = []
    try:
        with sparse_encoder(model, mask):
            y = model.stem(x)
            for stage in model.stages:
                y = stage(y)
                outs.append(y)
    finally:
        for h in hooks:
            h.remove()
    return outs


def _visible_equal(a, b, mask):
    for ya, yb in zip(a, b):
        keep = ~at(mask, ya.shape[1], ya.shape[2]).permute(0, 2, 3, 1).expand_as(ya)
        if not torch.equal(ya[keep], yb[keep]):
            return False
    return True


@pytest.mark.parametrize("kind", list(MODELS))
def test_fcmae_encoder_reads_no_hidden_position(kind):
    torch.manual_seed(0)
    model = MODELS[kind]().double().eval()
    x = torch.randn(2, 1, 16, 16, dtype=torch.float64)
    mask = random_mask(2, (4, 4), 0.5, generator=torch.Generator().manual_seed(1))
    hidden_px = at(mask, 16, 16)
    x2 = torch.where(hidden_px, torch.randn_like(x) * 10, x)  # only hidden pixels change
    with torch.no_grad():
        ref = _stages(model, x, mask)
        assert _visible_equal(ref, _stages(model, x2, mask), mask)
        # stronger: anything at hidden positions inside the network, stage after stage
        assert _visible_equal(ref, _stages(model, x, mask, noise_hidden=True), mask)
        # the check can fail: without the sparse encoder the same garbage reaches visible tokens
        dense = [model.stem(x2)]
        for stage in model.stages:
            dense.append(stage(dense[-1]))
        dense_ref = [model.stem(x)]
        for stage in model.stages:
            dense_ref.append(stage(dense_ref[-1]))
    assert not _visible_equal(dense_ref[1:], dense[1:], mask)
    # the hooks are gone afterwards: the model is dense again
    assert not any(m._forward_pre_hooks for m in model.modules())
    assert not any("forward" in m.__dict__ for m in model.modules())


def test_ssm_skips_hidden_steps_exactly():
    """Delta = 0 and u = 0 at hidden steps: the scan equals the scan of the visible steps alone."""
    from mambaout.models.ssm import SelectiveSSM
    from mambaout.tasks.pretrain.masking import _skip_ssm

    torch.manual_seed(0)
    ssm = SelectiveSSM(4, d_state=3).double()
    xs = torch.randn(1, 1, 4, 12, dtype=torch.float64)
    keep = torch.tensor([1, 0, 0, 1, 1, 0, 1, 0, 0, 0, 1, 1], dtype=torch.float64)
    with torch.no_grad():
        skipped = _skip_ssm(ssm, keep.view(1, 1, 1, 12))(xs)
        alone = ssm(xs[..., keep.bool()])
    torch.testing.assert_close(skipped[..., keep.bool()], alone, rtol=1e-12, atol=1e-12)


def test_simmim_loss_reads_hidden_pixels_only():
    torch.manual_seed(0)
    model = MaskedImageModel(_gated("dwconv", stem_stride=1), "simmim").double()
    x = torch.randn(2, 1, 16, 16, dtype=torch.float64)
    mask = random_mask(2, (4, 4), 0.5, generator=torch.Generator().manual_seed(3))
    pred = model(x, mask).detach()
    err, count = masked_loss(model, x, mask)
    hidden = at(mask, 16, 16)
    assert count.item() == hidden.sum().item()  # one channel
    assert err.item() == pytest.approx((pred - x).abs()[hidden].sum().item(), rel=1e-12)
    # changing the target at visible pixels only (the prediction is kept fixed) changes nothing
    model.forward = lambda images, m: pred
    y = torch.where(hidden, x, x + 5.0)
    assert masked_loss(model, y, mask)[0].item() == pytest.approx(err.item(), rel=1e-12)
    assert masked_loss(model, torch.where(hidden, x + 5.0, x), mask)[0].item() != pytest.approx(err.item())


def test_mask_counts_and_grid():
    m = random_mask(3, (4, 4), 0.6, generator=torch.Generator().manual_seed(0))
    assert m.shape == (3, 1, 4, 4) and m.dtype == torch.bool
    assert m.flatten(1).sum(1).tolist() == [10, 10, 10]  # round(0.6 * 16)
    assert at(m, 16, 16).shape == (3, 1, 16, 16)


def test_families_fcmae_cannot_mask_are_refused():
    with pytest.raises(UsageError, match="not a hierarchical model"), torch.device("meta"):
        MaskedImageModel(create_model("vit_tiny", num_classes=0), "fcmae")
    attn = _gated(["dwconv", "dwconv", dict(type="attention", head_dim=8)], stem_stride=1)
    with pytest.raises(UsageError, match="AttentionMixer.*--method simmim"):
        MaskedImageModel(attn, "fcmae")
    MaskedImageModel(attn, "simmim")  # SimMIM's encoder is dense: any hierarchical model
