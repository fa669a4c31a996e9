"""One forward+backward of the Triton scan at a benchmark shape, for Nsight Compute.

    ncu --kernel-name regex:_scan_bwd --launch-skip 1 --launch-count 1 --section SpeedOfLight \
        --section Occupancy --section LaunchStats --section WarpStateStats \
        python benchmarks/ncu_scan.py --shape vmamba16 --dtype fp32 --bwd "(16, 4, 2, 'tmw', 4)"

Runs twice (the first call compiles); profile the second with ``--launch-skip 1``.
"""
from __future__ import annotations

import argparse
import ast
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_scan import DTYPES, SHAPES, cfgd, make_inputs  # noqa: E402

from mambaout.ops.scan_triton import selective_scan_triton  # noqa: E402


def parse_cfg(s):
    """A bench_scan.py sweep tuple, e.g. "(2, 128, 1, 'sn')" (None: the default tile)."""
    return cfgd(ast.literal_eval(s)) if s else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="vmamba16", choices=sorted(SHAPES))
    ap.add_argument("--dtype", default="fp32", choices=sorted(DTYPES))
    ap.add_argument("--calls", type=int, default=2, help="forward+backward calls (the first compiles)")
    ap.add_argument("--no-grad", action="store_true", help="forward only (inference: no saved states)")
    ap.add_argument("--fwd")
    ap.add_argument("--bwd")
    a = ap.parse_args()
    inp = {k: v.requires_grad_() for k, v in make_inputs(SHAPES[a.shape], DTYPES[a.dtype], "cuda").items()}
    for _ in range(a.calls):
        with torch.set_grad_enabled(not a.no_grad):
            y = selective_scan_triton(**inp, delta_softplus=True, fwd_config=parse_cfg(a.fwd), bwd_config=parse_cfg(a.bwd))
        if not a.no_grad:
            y.float().sum().backward()
    torch.cuda.synchronize()
    print("ok")


if __name__ == "__main__":
    main()
