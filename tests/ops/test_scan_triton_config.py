"""The Triton scan's typed tile configuration: defaults per shape, validation, the fit to a call's shape (no GPU)."""

import pytest
import torch

from mambaout.ops.scan_triton import BWD_LAYOUTS, FWD_LAYOUTS, TileConfig, default_config, fit_config


@pytest.mark.parametrize(
    "d_state,length,itemsize,backward,expected",
    [
        # VMamba stage 1 (L = 3136) and Vim (L = 197) at d_state 16
        (16, 3136, 4, False, TileConfig("tmw", 16, 16, 2, n_lanes=4, prefetch=True)),
        (16, 197, 4, False, TileConfig("tmw", 16, 8, 1, n_lanes=2, prefetch=True)),
        (16, 3136, 4, True, TileConfig("tmw", 4, 8, 1, n_lanes=8, prefetch=False, fast_ew=True)),
        (16, 3136, 2, True, TileConfig("tmw", 4, 8, 1, n_lanes=8, prefetch=True, fast_ew=True)),
        (16, 197, 2, True, TileConfig("tmw", 8, 4, 1, n_lanes=4, prefetch=True)),
        (3, 3136, 4, False, TileConfig("tmw", 16, 16, 2, n_lanes=4, prefetch=True)),
        (3, 197, 4, True, TileConfig("tmw", 8, 4, 1, n_lanes=4)),
        # d_state <= 2: sn, tiles clamped to short sequences
        (1, 3136, 4, False, TileConfig("sn", 2, 256, 1)),
        (2, 3136, 2, False, TileConfig("sn", 4, 128, 1)),
        (1, 3136, 4, True, TileConfig("sn", 2, 128, 1)),
        (1, 3136, 2, True, TileConfig("sn", 2, 256, 1)),
        (1, 50, 4, False, TileConfig("sn", 2, 64, 1)),
        (2, 5, 2, True, TileConfig("sn", 2, 16, 1)),
        # d_state > 16: tm forward, tmw backward
        (64, 197, 4, False, TileConfig("tm", 2, 16, 4)),
        (17, 3136, 2, False, TileConfig("tm", 4, 16, 4)),
        (64, 3136, 4, True, TileConfig("tmw", 4, 8, 1, n_lanes=8, fast_ew=True)),
    ],
)
def test_default_config_is_typed(d_state, length, itemsize, backward, expected):
    cfg = default_config(d_state, length, backward=backward, itemsize=itemsize)
    assert isinstance(cfg, TileConfig) and cfg == expected
    assert cfg.layout in (BWD_LAYOUTS if backward else FWD_LAYOUTS)


def test_every_default_layout_has_its_kernels():
    picked = {
        (backward, default_config(n, L, backward=backward, itemsize=es).layout)
        for n in range(1, 257)
        for L in (1, 197, 1023, 1024, 3136)
        for es in (2, 4)
        for backward in (False, True)
    }
    assert {lay for bwd, lay in picked if not bwd} == set(FWD_LAYOUTS)
    assert {lay for bwd, lay in picked if bwd} == set(BWD_LAYOUTS)


@pytest.mark.parametrize("layout", ["dm", "TMW", "", None])
def test_unknown_layout_raises(layout):
    with pytest.raises(ValueError, match="unknown layout"):
        TileConfig(layout, 8, 16, 1)
    with pytest.raises(ValueError, match="unknown layout"):
        TileConfig.from_tuple((8, 16, 1, layout))


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(layout="tmw", block_d=0, block_t=8, warps=1), "block_d"),
        (dict(layout="sn", block_d=2, block_t=8, warps=1, n_lanes=2), "belong to layout 'tmw'"),
        (dict(layout="tm", block_d=2, block_t=8, warps=1, prefetch=True), "belong to layout 'tmw'"),
        (dict(layout="tmw", block_d=2, block_t=8, warps=1, n_lanes=0), "n_lanes"),
    ],
)
def test_invalid_fields_raise(kw, match):
    with pytest.raises(ValueError, match=match):
        TileConfig(**kw)


def test_config_is_frozen_and_round_trips_sweep_tuples():
    cfg = TileConfig("tmw", 8, 4, 1, n_lanes=4, prefetch=True, fast_ew=True, atomic_bc=False)
    with pytest.raises(AttributeError):
        cfg.block_d = 4
    assert cfg.to_tuple() == (8, 4, 1, "tmw", 4, "prefetch", "fast", "partials")
    assert TileConfig.from_tuple(cfg.to_tuple()) == cfg
    assert TileConfig.from_tuple((8, 16, 4)) == TileConfig("tm", 8, 16, 4)
    with pytest.raises(ValueError, match="unknown flag"):
        TileConfig.from_tuple((8, 4, 1, "tmw", "zearly"))


def test_fit_config():
    # power-of-two tiles, a channel block inside one group and no wider than dim
    assert fit_config(TileConfig("tm", 12, 20, 4), dim=64, groups=1) == TileConfig("tm", 8, 16, 4)
    assert fit_config(TileConfig("sn", 8, 100, 1), dim=24, groups=3) == TileConfig("sn", 8, 64, 1)
    assert fit_config(TileConfig("sn", 8, 128, 1), dim=12, groups=3).block_d == 4
    assert fit_config(TileConfig("tmw", 16, 3, 1, n_lanes=2), dim=4, groups=1).block_t == 2
    # a narrowed tmw channel block drops the warps it would leave idle
    assert fit_config(TileConfig("tmw", 16, 16, 2, n_lanes=4), dim=24, groups=3).warps == 1
    assert fit_config(TileConfig("tmw", 16, 16, 2, n_lanes=4), dim=48, groups=3).warps == 2


def test_selective_scan_triton_rejects_bad_configs():
    pytest.importorskip("triton")
    from mambaout.ops.scan_triton import selective_scan_triton

    u = torch.randn(1, 4, 8)
    A = -torch.rand(4, 2)
    B = torch.randn(1, 2, 8)
    with pytest.raises(ValueError, match="no backward kernel"):
        selective_scan_triton(u, u.abs(), A, B, B, bwd_config=TileConfig("tm", 4, 16, 4))
    with pytest.raises(TypeError, match="TileConfig"):
        selective_scan_triton(u, u.abs(), A, B, B, fwd_config={"BLOCK_D": 4, "BLOCK_T": 16, "layout": "tm"})
