"""Scan orders, the selective-SSM core and the SSM / attention token mixers (CPU, small shapes)."""

import math

import pytest
import torch
import torch.nn.functional as F

from mambaout.models import scans
from mambaout.models.mixers import build_mixer, causal_kernel_mask, list_mixers
from mambaout.models.ssm import SelectiveSSM
from mambaout.ops import selective_scan_reference

pytestmark = pytest.mark.usefixtures("one_thread")

SSM_MIXERS = ["conv_ssm", "mamba1d", "bimamba", "multiscan", "attention"]


# --- scan orders -------------------------------------------------------------------------------
@pytest.mark.parametrize("H,W", [(4, 4), (5, 7), (14, 14), (1, 3)])
@pytest.mark.parametrize("name", ["h", "v", "w2", "w7", "zz_h", "zz_v", "h_flip", "w2_flip", "zz_v_flip"])
def test_direction_is_permutation(name, H, W):
    idx = scans.direction_indices(name, H, W)
    assert torch.equal(torch.sort(idx).values, torch.arange(H * W))


def test_known_orders():
    # 3 x 4 map, positions r*4+c
    assert scans.direction_indices("h", 3, 4).tolist() == list(range(12))
    assert scans.direction_indices("v", 3, 4).tolist() == [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]
    assert scans.direction_indices("zz_h", 3, 4).tolist() == [0, 1, 2, 3, 7, 6, 5, 4, 8, 9, 10, 11]
    assert scans.direction_indices("zz_v", 3, 4).tolist() == [0, 4, 8, 9, 5, 1, 2, 6, 10, 11, 7, 3]
    assert scans.direction_indices("h_flip", 3, 4).tolist() == list(range(11, -1, -1))
    # 2x2 windows on 4x4, row-major inside and across windows
    assert scans.direction_indices("w2", 4, 4).tolist()[:8] == [0, 1, 4, 5, 2, 3, 6, 7]
    # partial windows on a 3x3 map (w2): the padded slots are dropped
    assert scans.direction_indices("w2", 3, 3).tolist() == [0, 1, 3, 4, 2, 5, 6, 7, 8]
    # atrous sub-grids on 4x4: (even, even) row-major, (odd, even) column-major, ...
    assert scans.direction_indices("a2_0", 4, 4).tolist() == [0, 2, 8, 10]
    assert scans.direction_indices("a2_1", 4, 4).tolist() == [4, 12, 6, 14]
    assert scans.direction_indices("a2_2", 4, 4).tolist() == [1, 3, 9, 11]
    assert scans.direction_indices("a2_3", 4, 4).tolist() == [5, 13, 7, 15]


def test_zigzag_flip_is_rows_from_bottom():
    # PlainMamba's second path starts in the bottom row; it is the reverse of the first snake
    idx = scans.direction_indices("zz_h_flip", 3, 4).tolist()
    assert idx[0] // 4 == 2 and idx[-1] == 0


@pytest.mark.parametrize(
    "spec,H,W,factor",
    [
        ("cross", 5, 6, 4),
        ("local", 9, 9, 4),
        ("atrous", 6, 8, 1),
        ("atrous", 5, 7, 1),
        ("zigzag", 3, 5, 4),
        ("raster", 4, 4, 1),
    ],
)
def test_scan_merge_roundtrip(spec, H, W, factor):
    x = torch.randn(2, 3, H, W)
    dirs = scans.resolve(spec)
    xs, ctx = scans.cross_scan(x, dirs)
    assert xs.shape[:3] == (2, len(dirs), 3)
    torch.testing.assert_close(scans.cross_merge(xs, ctx), factor * x)


def test_unknown_direction():
    with pytest.raises(ValueError, match="unknown scan direction"):
        scans.resolve("diagonal")


def test_move_codes_snake():
    _, ctx = scans.cross_scan(torch.zeros(1, 1, 2, 3), ("zz_h",))
    # 0 1 2 / 5 4 3: start, right, right, down, left, left
    assert scans.move_codes(ctx, "cpu").tolist() == [[0, 1, 1, 4, 2, 2]]


# --- SSM core ------------------------------------------------------------------------------------
def test_ssm_init_and_no_weight_decay():
    ssm = SelectiveSSM(32, d_state=8, num_dirs=2)
    torch.testing.assert_close(ssm.A_log, torch.log(torch.arange(1, 9.0)).expand(64, 8))
    assert torch.all(ssm.D == 1)
    dt = F.softplus(ssm.dt_proj_bias)
    assert dt.min() >= 1e-4 - 1e-7 and dt.max() <= 0.1 + 1e-6
    assert ssm.dt_rank == 2 and ssm.dt_proj_weight.abs().max() <= 2**-0.5
    assert ssm.A_log._no_weight_decay and ssm.D._no_weight_decay


def test_model_post_init_survives_generic_init():
    from mambaout.registry import create_model

    m = create_model("mamba_femto")
    ssm = m.stages[0].blocks[0].conv.ssm
    torch.testing.assert_close(ssm.A_log[0], torch.log(torch.arange(1, 17.0)))
    assert torch.all(ssm.D == 1) and F.softplus(ssm.dt_proj_bias).max() <= 0.1 + 1e-6


def _direction_reference(mixer, x):
    """conv_ssm computed direction by direction with the sequential reference scan."""
    ssm = mixer.ssm
    xc = mixer.ssm_act(mixer._conv_forward(x.permute(0, 3, 1, 2), mixer.weight, mixer.bias))
    Bsz, C, H, W = xc.shape
    flat = xc.flatten(2)
    out = torch.zeros_like(flat)
    R, N = ssm.dt_rank, ssm.d_state
    for k, d in enumerate(mixer.directions):
        idx = scans.direction_indices(d, H, W)
        u = flat[..., idx]
        x_dbl = torch.einsum("bdl,cd->bcl", u, ssm.x_proj_weight[k])
        dt, Bm, Cm = torch.split(x_dbl, [R, N, N], 1)
        dt = torch.einsum("brl,dr->bdl", dt, ssm.dt_proj_weight[k])
        sl = slice(k * C, (k + 1) * C)
        y = selective_scan_reference(
            u, dt, -torch.exp(ssm.A_log[sl]), Bm, Cm, ssm.D[sl], delta_bias=ssm.dt_proj_bias[k], delta_softplus=True
        )
        out[..., idx] += y
    return out.view(Bsz, C, H, W).permute(0, 2, 3, 1)


@pytest.mark.parametrize("scan", ["raster", "cross", "local2"])
def test_grouped_scan_matches_per_direction_reference(scan):
    torch.manual_seed(0)
    mixer = build_mixer("conv_ssm", 8, kernel_size=3, scan=scan, d_state=4).double()
    x = torch.randn(2, 5, 6, 8, dtype=torch.float64)
    torch.testing.assert_close(mixer(x), _direction_reference(mixer, x))


# --- mixers --------------------------------------------------------------------------------------
def test_mixers_registered():
    assert set(SSM_MIXERS) <= set(list_mixers())


@pytest.mark.parametrize(
    "name,kw",
    [
        ("conv_ssm", {}),
        ("conv_ssm", dict(scan="cross", out_norm=True)),
        ("conv_ssm", dict(scan="atrous")),
        ("conv_ssm", dict(scan="zigzag", share_ssm=True, dir_bias=True)),
        ("conv_ssm", dict(scan="local", d_state=1)),
        ("mamba1d", {}),
        ("bimamba", {}),
        ("multiscan", {}),
        ("multiscan", dict(scan="local2")),
        ("attention", {}),
        ("attention", dict(causal=True)),
    ],
)
@pytest.mark.parametrize("H,W", [(6, 6), (5, 7)])
def test_mixer_shape_and_grad(name, kw, H, W):
    mixer = build_mixer(name, 32, **kw)
    x = torch.randn(2, H, W, 32, requires_grad=True)
    y = mixer(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    y.square().mean().backward()
    assert x.grad is not None and all(p.grad is not None for p in mixer.parameters())


def _first_changed(mixer, H=4, W=5, C=16, t=7):
    """Change every raster position after t; return whether outputs at positions <= t changed."""
    torch.manual_seed(0)
    x = torch.randn(1, H, W, C, dtype=torch.float64)
    x2 = x.clone().view(1, H * W, C)
    x2[:, t + 1 :] = torch.randn_like(x2[:, t + 1 :])
    y1 = mixer(x).reshape(1, H * W, C)
    y2 = mixer(x2.view(1, H, W, C)).reshape(1, H * W, C)
    return not torch.allclose(y1[:, : t + 1], y2[:, : t + 1]), not torch.allclose(y1[:, t + 1 :], y2[:, t + 1 :])


@pytest.mark.parametrize(
    "name,kw",
    [
        ("mamba1d", {}),
        ("attention", dict(causal=True)),
        ("dwconv", dict(causal=True)),
        ("conv_ssm", dict(causal=True)),
        ("conv_ssm", dict(causal=True, kernel_size=3, d_state=4)),
    ],
)
def test_causal_mixers_are_causal(name, kw):
    mixer = build_mixer(name, 16, **kw).double()
    past_changed, future_changed = _first_changed(mixer)
    assert not past_changed and future_changed


@pytest.mark.parametrize("name,kw", [("bimamba", {}), ("conv_ssm", {}), ("attention", {})])
def test_non_causal_mixers_see_the_future(name, kw):
    mixer = build_mixer(name, 16, **kw).double()
    assert _first_changed(mixer)[0]


def test_causal_kernel_mask():
    assert causal_kernel_mask(3).tolist() == [[1, 1, 1], [1, 1, 0], [0, 0, 0]]
    m = causal_kernel_mask(7)
    assert m.sum() == 7 * 3 + 4 and m[3, :4].all() and not m[3, 4:].any() and not m[4:].any()


@pytest.mark.parametrize("name", ["dwconv", "conv_ssm"])
@pytest.mark.parametrize("k", [3, 7])
def test_causal_output_ignores_each_later_pixel(name, k):
    """Perturb one pixel p at a time: outputs at every raster position before p stay the same, the
    output at p changes (a token sees itself)."""
    torch.manual_seed(0)
    H, W, C = 5, 6, 8
    mixer = build_mixer(name, C, kernel_size=k, causal=True).double()
    x = torch.randn(1, H, W, C, dtype=torch.float64)
    y = mixer(x).reshape(H * W, C)
    for p in (1, W - 1, W, 2 * W + 3, H * W - 1):
        x2 = x.clone()
        x2[0, p // W, p % W] += 1.0
        y2 = mixer(x2).reshape(H * W, C)
        torch.testing.assert_close(y2[:p], y[:p], rtol=0, atol=1e-12)
        assert not torch.allclose(y2[p], y[p])


def test_causal_conv_ssm_shares_the_dwconv_mask_and_layout():
    causal, full = build_mixer("conv_ssm", 16, causal=True), build_mixer("conv_ssm", 16)
    assert torch.equal(causal.causal_mask, causal_kernel_mask(7))
    assert torch.equal(causal.causal_mask, build_mixer("dwconv", 16, causal=True).causal_mask)
    assert {k: v.shape for k, v in causal.state_dict().items()} == {k: v.shape for k, v in full.state_dict().items()}
    causal.load_state_dict(full.state_dict())  # the mask is not persistent
    assert "causal" in repr(causal) and "causal" not in repr(full)


def test_causal_conv_ssm_needs_a_raster_scan():
    build_mixer("conv_ssm", 8, causal=True, scan=("h", "h"))  # two forward raster branches: still causal
    for scan in ("cross", "bidirectional", "reversed", "zigzag"):
        with pytest.raises(ValueError, match="raster scan"):
            build_mixer("conv_ssm", 8, causal=True, scan=scan)


def test_conv_ssm_keeps_dwconv_layout():
    m = build_mixer("conv_ssm", 16)
    keys = {k for k in m.state_dict() if not k.startswith("ssm.")}
    assert keys == set(build_mixer("dwconv", 16).state_dict())


def test_meta_forward():
    mixer = build_mixer("conv_ssm", 16, scan="zigzag", share_ssm=True, dir_bias=True).to("meta")
    assert mixer(torch.empty(2, 5, 5, 16, device="meta")).shape == (2, 5, 5, 16)


def test_dt_rank_fraction():
    assert SelectiveSSM(384, dt_rank=1 / 32).dt_rank == math.ceil(192 / 16)
