"""Host (CPU) cost of one selective-scan forward+backward through the Triton path, next to its GPU time.

  PYTHONPATH=src python benchmarks/profile_scan_host.py [--shapes vmamba1,vim] [--dtypes fp32,bf16] [--cprofile]
      [--kernels] [--bwd "(2, 128, 1, 'sn')"]

Host times: medians of 20 synchronised calls (the launch returns before the GPU finishes, so this is the time
the Python side needs to issue the work). GPU times: CUDA events around the same calls. With --cprofile, the
Python functions that take the host time (top 25 by own time). With --kernels, the GPU time of every kernel of
one call (torch.profiler, mean over 20 calls): which part of a forward+backward takes the time.
"""

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_scan import DTYPES, SHAPES, make_inputs, parse_tile  # noqa: E402

from mambaout.ops.scan_triton import selective_scan_triton  # noqa: E402

CFG = {}  # --fwd / --bwd tile overrides


def tri(**kw):
    return selective_scan_triton(**kw, fwd_config=CFG.get("fwd"), bwd_config=CFG.get("bwd"))


def kernel_table(leaves, dout, calls=20):
    """GPU time per kernel of one forward+backward call (mean over ``calls``), largest first."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            one(leaves, dout)
        torch.cuda.synchronize()
    rows = [
        (e.key, e.device_time_total / calls, e.count / calls) for e in prof.key_averages() if e.device_time_total > 0
    ]
    rows.sort(key=lambda r: -r[1])
    total = sum(r[1] for r in rows)
    lines = [f"   {'kernel':<60} {'us/call':>9} {'launches':>8}"]
    lines += [f"   {k[:60]:<60} {us:9.1f} {n:8.1f}" for k, us, n in rows]
    lines.append(f"   {'sum of kernel times':<60} {total:9.1f}")
    return "\n".join(lines)


def one(leaves, dout):
    out = tri(**leaves, delta_softplus=True)
    out.backward(dout)
    for v in leaves.values():
        v.grad = None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", default="vmamba1,vim")
    ap.add_argument("--dtypes", default="fp32")
    ap.add_argument("--cprofile", action="store_true")
    ap.add_argument("--kernels", action="store_true", help="GPU time of each kernel of one call (torch.profiler)")
    ap.add_argument("--fwd", help="forward tile, a bench_scan.py sweep tuple, e.g. \"(2, 256, 1, 'sn')\"")
    ap.add_argument("--bwd", help="backward tile, likewise")
    args = ap.parse_args()
    CFG.update(fwd=parse_tile(args.fwd), bwd=parse_tile(args.bwd))
    for name, dname in [(s, d) for s in args.shapes.split(",") for d in args.dtypes.split(",")]:
        inp = make_inputs(SHAPES[name], DTYPES[dname], "cuda")
        leaves = {k: v.clone().requires_grad_(True) for k, v in inp.items()}
        dout = torch.randn_like(inp["u"])
        for _ in range(5):
            one(leaves, dout)
        torch.cuda.synchronize()
        host_f, host_b, gpu = [], [], []
        for _ in range(20):
            torch.cuda.synchronize()
            e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            t0 = time.perf_counter()
            e0.record()
            out = tri(**leaves, delta_softplus=True)
            t1 = time.perf_counter()
            out.backward(dout)
            e1.record()
            t2 = time.perf_counter()
            torch.cuda.synchronize()
            host_f.append((t1 - t0) * 1e3)
            host_b.append((t2 - t1) * 1e3)
            gpu.append(e0.elapsed_time(e1))
            for v in leaves.values():
                v.grad = None
        print(
            f"{name} {dname}: host fwd {statistics.median(host_f):.3f} ms, host bwd {statistics.median(host_b):.3f} ms, "
            f"GPU f+b {statistics.median(gpu):.3f} ms (synchronised calls)"
        )
        if args.kernels:
            print(kernel_table(leaves, dout), flush=True)
        if args.cprofile:
            pr = cProfile.Profile()
            pr.enable()
            for _ in range(20):
                one(leaves, dout)
            torch.cuda.synchronize()
            pr.disable()
            pstats.Stats(pr).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
