"""Hidden attention of selective SSMs, conv/attention footprints: exact against the scan, per scan order."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mambaout.errors import UsageError
from mambaout.explain.hidden_attention import (
    capture_ssm,
    footprint,
    hidden_attention_matrix,
    pixel_attention,
    ssm_attention,
)
from mambaout.models import scans
from mambaout.models.blocks import GatedBlock
from mambaout.models.efficientvmamba import efficientvmamba
from mambaout.models.isotropic import IsotropicNet
from mambaout.models.mamba_pairs import mamba_net
from mambaout.models.mixers import build_mixer
from mambaout.models.plainmamba import plainmamba
from mambaout.models.vit import vit
from mambaout.models.vmamba import vmamba_v0
from mambaout.ops import selective_scan_reference
from mambaout.registry import create_model

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(depths=(1, 1, 1, 1), dims=(8, 8, 8, 8), num_classes=3)


def _vim_like(mixer="bimamba", **mixer_kwargs):
    """Vim's block (bimamba, expansion 2, SiLU) on a small isotropic net: patch 4, 32x32 -> 8x8 tokens."""
    bk = dict(mixer=mixer, mixer_kwargs=dict(d_state=4, **mixer_kwargs), expansion_ratio=2, conv_ratio=2)
    return IsotropicNet(4, 8, GatedBlock, dict(bk, act_layer="silu"), patch_size=4, img_size=32, num_classes=3)


def _models():
    return {
        "vim": _vim_like(),
        "localvim": _vim_like("multiscan", scan="local"),
        "vmamba": vmamba_v0(TINY["depths"], TINY["dims"], d_state=4, num_classes=3),
        "mamba_pair": mamba_net(TINY["depths"], TINY["dims"], d_state=4, num_classes=3),
        "mamba_pair_cross": mamba_net(TINY["depths"], TINY["dims"], scan="cross", d_state=4, num_classes=3),
        "plainmamba": plainmamba(8, 4, 1, d_state=4, img_size=32, num_classes=3),
        "efficientvmamba": efficientvmamba(TINY["depths"], TINY["dims"], d_state=4, num_classes=3),
    }


# --- the matrix against the reference scan -----------------------------------------------------------


@pytest.mark.parametrize("groups", [None, 2])
def test_matrix_reproduces_the_reference_scan_fp64(groups):
    b, d, L, N = 2, 4, 11, 3
    g = torch.Generator().manual_seed(1)
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)  # noqa: E731
    u, delta_raw, bias, D = r(b, d, L), r(b, d, L), r(d), r(d)
    A = -torch.exp(r(d, N))
    shape = (b, N, L) if groups is None else (b, groups, N, L)
    B, C = r(*shape), r(*shape)
    y = selective_scan_reference(u, delta_raw, A, B, C, D, delta_bias=bias, delta_softplus=True)
    alpha = hidden_attention_matrix(F.softplus(delta_raw + bias[:, None]), A, B, C)
    assert alpha.shape == (b, d, L, L) and alpha.dtype == torch.float64
    recon = torch.einsum("bdts,bds->bdt", alpha, u) + D[:, None] * u
    torch.testing.assert_close(recon, y, rtol=0, atol=1e-5)
    # causal: zero above the diagonal, not below it
    assert torch.all(alpha.triu(1) == 0)
    assert torch.all(alpha.tril().abs().sum((0, 1)) + torch.ones(L, L).triu(1) > 0)
    rows = hidden_attention_matrix(F.softplus(delta_raw + bias[:, None]), A, B, C, rows=[7, 0])
    torch.testing.assert_close(rows, alpha[:, :, [7, 0]])


# every scan order the project has, on the mixers that use them; odd maps test the atrous padding and
# partial local windows
MIXERS = {
    "raster": ("conv_ssm", dict(kernel_size=3, scan="raster")),
    "column": ("conv_ssm", dict(kernel_size=3, scan="column")),
    "cross (VMamba)": ("conv_ssm", dict(kernel_size=3, scan="cross", out_norm=True)),
    "zigzag (PlainMamba, shared + dir bias)": ("conv_ssm", dict(scan="zigzag", share_ssm=True, dir_bias=True)),
    "atrous (EfficientVMamba)": ("conv_ssm", dict(kernel_size=3, scan="atrous")),
    "local windows": ("conv_ssm", dict(kernel_size=3, scan=["w2", "w3_flip", "zz_v"], merge="mean")),
    "bidirectional (Vim)": ("bimamba", {}),
    "multiscan (LocalMamba)": ("multiscan", dict(scan="local2")),
    "mamba1d": ("mamba1d", {}),
}


@pytest.mark.parametrize("name", list(MIXERS))
def test_pixel_attention_reproduces_each_scan_family(name):
    """Σ_dirs Σ_pixels α[q, p] u[p] + D u[q] is the merged SSM output (before norm/gate) at every cell q."""
    mixer_name, kw = MIXERS[name]
    H, W, d = 5, 7, 8
    mixer = build_mixer(mixer_name, d, d_state=3, **kw).double().eval()
    x = torch.randn(1, H, W, d, dtype=torch.float64)  # the mixer is the whole "model" here
    cap = capture_ssm(mixer, x, mixer)
    assert (cap.H, cap.W) == (H, W)
    alpha = pixel_attention(cap)
    assert list(alpha) == list(cap.directions)
    Hp, Wp = cap.padded_size()
    scale = 1 / len(cap.directions) if mixer.merge == "mean" else 1.0
    recon = torch.zeros(1, d, H * W, dtype=torch.float64)
    for k, direction in enumerate(cap.directions):
        s = cap.direction(k)
        u = torch.zeros(1, d, Hp * Wp, dtype=torch.float64)
        u[..., scans.direction_indices(direction, Hp, Wp)] = s["u"]
        u = u.view(1, d, Hp, Wp)[..., :H, :W].reshape(1, d, H * W)
        recon += torch.einsum("bdqp,bdp->bdq", alpha[direction], u) + scale * s["D"][:, None] * u
    ctx = scans.cross_scan(torch.zeros(1, 1, H, W), cap.directions)[1]
    expected = scans.cross_merge(cap.output, ctx).reshape(1, d, H * W) * scale
    torch.testing.assert_close(recon, expected, rtol=0, atol=1e-5)


# --- maps of whole models -------------------------------------------------------------------------------


def test_raster_map_is_zero_after_the_query():
    model = mamba_net(TINY["depths"], TINY["dims"], scan="raster", d_state=4, num_classes=3).eval()
    image, q = torch.randn(3, 32, 32), (13, 18)  # stage 0: 8x8 map, the query in cell (3, 4)
    res = ssm_attention(model, image, q, stage=0, block=0)
    assert res.cell == (3, 4) and list(res.maps) == ["h", "sum"]
    flat = res.feature_maps["h"].ravel()
    t = 3 * 8 + 4
    assert np.all(flat[t + 1 :] == 0) and np.all(flat[: t + 1] > 0)
    cell_index = (np.arange(32)[:, None] // 4) * 8 + np.arange(32)[None, :] // 4  # raster cell of each pixel
    assert np.all(res.maps["h"][cell_index > t] == 0) and np.all(res.maps["h"][cell_index <= t] > 0)


@pytest.mark.parametrize(
    "family, stage, directions",
    [
        ("vim", 0, ["h", "h_flip"]),
        ("localvim", 0, ["h", "h_flip", "w7", "w7_flip"]),
        ("vmamba", 1, ["h", "v", "h_flip", "v_flip"]),
        ("mamba_pair", -1, ["h"]),
        ("mamba_pair_cross", 0, ["h", "v", "h_flip", "v_flip"]),
        ("plainmamba", 0, ["zz_h", "zz_h_flip", "zz_v", "zz_v_flip"]),
        ("efficientvmamba", 1, ["a2_0", "a2_1", "a2_2", "a2_3"]),
    ],
)
def test_ssm_attention_on_tiny_models(family, stage, directions):
    model = _models()[family].eval()
    image = torch.randn(3, 32, 32)
    res = ssm_attention(model, image, (20, 9), stage=stage, block=0)
    assert list(res.maps) == directions + ["sum"]
    for m in res.maps.values():
        assert m.shape == (32, 32) and np.all(np.isfinite(m)) and np.all(m >= 0)
    np.testing.assert_allclose(res.maps["sum"], sum(res.maps[d] for d in directions))
    assert res.maps["sum"].max() > 0
    fh, fw = res.info["feature_size"]
    assert res.cell == (20 * fh // 32, 9 * fw // 32)
    if family == "efficientvmamba":  # the four sub-grids partition the map: one direction sees the query
        assert sum(res.maps[d].max() > 0 for d in directions) == 1
    signed = ssm_attention(model, image, (20, 9), stage=stage, block=0, signed=True)
    assert signed.signed and np.all(np.abs(signed.maps["sum"]) <= res.maps["sum"] + 1e-12)


def test_errors_are_one_line_usage_errors():
    mambaout = create_model("mambaout_test", num_classes=3).eval()
    pair = _models()["mamba_pair"].eval()
    evm = _models()["efficientvmamba"].eval()
    image = torch.randn(3, 32, 32)
    cases = [
        (lambda: ssm_attention(mambaout, torch.randn(3, 64, 64), (1, 1)), "no SSM layers"),
        (lambda: ssm_attention(pair, image, (32, 0)), "outside the 32x32 image"),
        (lambda: ssm_attention(pair, image, (0, -1)), "outside"),
        (lambda: ssm_attention(pair, image, (1, 1), stage=4), "stage 4 out of range"),
        (lambda: ssm_attention(pair, image, (1, 1), stage=0, block=-2), "block -2 out of range"),
        (lambda: ssm_attention(evm, image, (1, 1), stage=2), "stages with SSM layers: 0, 1"),
        (lambda: ssm_attention(pair, torch.randn(2, 3, 32, 32), (1, 1)), "one image at a time"),
        (lambda: footprint(mambaout, torch.randn(3, 64, 64), (64, 1)), "outside"),
        (lambda: footprint(mambaout, torch.randn(3, 64, 64), (1, 1), stage=-5), "out of range"),
        (lambda: footprint(evm, image, (1, 1), stage=3), "neither a depthwise-conv nor an attention mixer"),
    ]
    for call, words in cases:
        with pytest.raises(UsageError) as e:
            call()
        assert words in str(e.value) and "\n" not in str(e.value)


# --- footprints -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("query, cell", [((30, 33), (7, 8)), ((2, 61), (0, 15))])
def test_dwconv_footprint_is_the_kernel_window(query, cell):
    model = create_model("mambaout_test", num_classes=3).eval()
    res = footprint(model, torch.randn(3, 64, 64), query, stage=0, block=0)  # stage 0: 16x16, 7x7 kernel
    assert res.kind == "conv" and res.cell == cell and list(res.maps) == ["kernel", "sum"]
    grid = res.feature_maps["kernel"]
    inside = np.zeros((16, 16), bool)
    inside[max(cell[0] - 3, 0) : cell[0] + 4, max(cell[1] - 3, 0) : cell[1] + 4] = True
    assert np.all(grid[~inside] == 0) and np.all(grid[inside] > 0)
    taps = model.stages[0].blocks[0].conv.weight.detach().abs().sum((0, 1)).double().numpy()
    assert grid[cell] == pytest.approx(taps[3, 3])
    pixel_inside = inside.repeat(4, 0).repeat(4, 1)
    assert np.all(res.maps["kernel"][~pixel_inside] == 0)


@pytest.mark.parametrize("causal", [False, True])
def test_vit_footprint_is_the_attention_row(causal):
    model = vit(4, 16, 2, causal=causal, patch_size=8, img_size=32, num_classes=3).eval()
    res = footprint(model, torch.randn(3, 32, 32), (12, 20), stage=0, block=1)
    assert res.kind == "attention" and res.cell == (1, 2)
    row = res.feature_maps["attention"].ravel()
    assert row.sum() == pytest.approx(1.0) and np.all(row[: 1 * 4 + 2 + 1] > 0)
    assert np.all(row[1 * 4 + 2 + 1 :] == 0) if causal else np.all(row > 0)


def test_save_png(tmp_path):
    model = _models()["vim"].eval()
    image = torch.randn(3, 32, 32)
    res = ssm_attention(model, image, (5, 5))
    path = tmp_path / "attention.png"
    res.save_png(str(path), image)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(UsageError, match="32x32 image"):
        res.save_png(str(tmp_path / "x.png"), torch.randn(3, 16, 16))
