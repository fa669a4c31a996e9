"""The tmw backward with and without register double-buffering of the next tile's loads (``prefetch``), checked
against the sequential reference in the Triton interpreter (CPU, TRITON_INTERPRET=1)."""

import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    from scan_interp_check import compare_to_reference
    from mambaout.ops.scan_triton import TileConfig
    # (b, d, L, n, groups, softplus, (has_D, has_z, has_bias)); L never a multiple of block_t
    cases = [(2, 8, 37, 16, None, True, (1, 1, 1)), (2, 8, 42, 5, 2, False, (0, 0, 0)),
             (1, 16, 23, 16, 2, True, (1, 0, 1)), (2, 4, 1, 16, None, True, (0, 1, 0)),
             (1, 8, 9, 5, None, False, (1, 1, 0))]
    tiles = ((8, 4, 4, 1), (4, 8, 8, 1), (16, 4, 4, 2), (4, 2, 2, 1))  # (block_d, block_t, n_lanes, warps)
    # each case runs two tile shapes (so each shape meets two or three cases), each with and without prefetch
    for i, case in enumerate(cases):
        cfgs = [TileConfig("tmw", bd, bt, nw, n_lanes=nl, prefetch=pf)
                for bd, bt, nl, nw in (tiles[i % 4], tiles[(i + 1) % 4]) for pf in (True, False)]
        compare_to_reference([case], lambda n: [dict(bwd_config=c) for c in cfgs])
    """
)


@pytest.mark.slow
def test_tmw_prefetch_backward_in_interpreter(run_triton_interpreted):
    run_triton_interpreted(SCRIPT)
