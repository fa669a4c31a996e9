"""One forward+backward of the Triton scan at a benchmark shape, for Nsight Compute.

    ncu --kernel-name regex:_scan_bwd --launch-skip 1 --launch-count 1 --section SpeedOfLight \
        --section Occupancy --section LaunchStats --section WarpStateStats \
        python benchmarks/ncu_scan.py --shape vmamba16 --dtype fp32 --bwd 2,32,4,dm

Runs twice (the first call compiles); profile the second with ``--launch-skip 1``.
"""
from __future__ import annotations

import argparse

import torch

from mambaout.ops.scan_triton import selective_scan_triton

SHAPES = {"vmamba16": (32, 192, 3136, 16), "vmamba1": (32, 192, 3136, 1), "vim": (64, 768, 197, 16)}


def parse_cfg(s):
    if not s:
        return None
    bd, bt, nw, layout = s.split(",")
    return {"BLOCK_D": int(bd), "BLOCK_T": int(bt), "num_warps": int(nw), "layout": layout}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="vmamba16", choices=sorted(SHAPES))
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--fwd")
    ap.add_argument("--bwd")
    a = ap.parse_args()
    b, d, L, n = SHAPES[a.shape]
    dt = torch.float32 if a.dtype == "fp32" else torch.bfloat16
    g = torch.Generator(device="cuda").manual_seed(0)
    kw = dict(device="cuda", dtype=dt)
    u = torch.randn(b, d, L, generator=g, **kw).requires_grad_()
    delta = (0.5 * torch.randn(b, d, L, generator=g, **kw)).requires_grad_()
    A = (-torch.rand(d, n, generator=g, device="cuda") - 0.5).requires_grad_()
    B = torch.randn(b, 1, n, L, generator=g, **kw).requires_grad_()
    C = torch.randn(b, 1, n, L, generator=g, **kw).requires_grad_()
    D = torch.randn(d, device="cuda").requires_grad_()
    z = torch.randn(b, d, L, generator=g, **kw).requires_grad_()
    bias = torch.randn(d, device="cuda").requires_grad_()
    for _ in range(2):
        y = selective_scan_triton(u, delta, A, B, C, D, z, bias, True, fwd_config=parse_cfg(a.fwd),
                                  bwd_config=parse_cfg(a.bwd))
        y.float().sum().backward()
    torch.cuda.synchronize()
    print("ok")


if __name__ == "__main__":
    main()
