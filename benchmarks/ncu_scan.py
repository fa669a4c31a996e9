"""One forward+backward of the Triton scan at a benchmark shape, for Nsight Compute.

    ncu --kernel-name regex:_scan_bwd --launch-skip 1 --launch-count 1 --section SpeedOfLight \
        --section Occupancy --section LaunchStats --section WarpStateStats \
        python benchmarks/ncu_scan.py --shape vmamba16 --dtype fp32 --bwd "(16, 4, 2, 'tmw', 4)"

Runs twice (the first call compiles); profile the second with ``--launch-skip 1``.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_scan import DTYPES, SHAPES, make_inputs, parse_tile  # noqa: E402

from mambaout.ops.scan_triton import selective_scan_triton  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="vmamba16", choices=sorted(SHAPES))
    ap.add_argument("--dtype", default="fp32", choices=sorted(DTYPES))
    ap.add_argument("--calls", type=int, default=2, help="forward+backward calls (the first compiles)")
    ap.add_argument("--no-grad", action="store_true", help="forward only (inference: no saved states)")
    ap.add_argument(
        "--fwd", help="forward tile, a bench_scan.py sweep tuple, e.g. \"(16, 16, 2, 'tmw', 4, 'prefetch')\""
    )
    ap.add_argument("--bwd", help="backward tile, likewise (layouts 'tmw' and 'sn')")
    a = ap.parse_args()
    inp = {k: v.requires_grad_() for k, v in make_inputs(SHAPES[a.shape], DTYPES[a.dtype], "cuda").items()}
    for _ in range(a.calls):
        with torch.set_grad_enabled(not a.no_grad):
            y = selective_scan_triton(
                **inp, delta_softplus=True, fwd_config=parse_tile(a.fwd), bwd_config=parse_tile(a.bwd)
            )
        if not a.no_grad:
            y.float().sum().backward()
    torch.cuda.synchronize()
    print("ok")


if __name__ == "__main__":
    main()
