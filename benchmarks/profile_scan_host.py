"""Host (CPU) cost of one selective-scan forward+backward through the Triton path, next to its GPU time.

  PYTHONPATH=src python benchmarks/profile_scan_host.py [--shapes vmamba1,vim] [--cprofile]

Host times: medians of 20 synchronised calls (the launch returns before the GPU finishes, so this is the time
the Python side needs to issue the work). GPU times: CUDA events around the same calls. With --cprofile, the
Python functions that take the host time (top 25 by own time).
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
from bench_scan import SHAPES, make_inputs  # noqa: E402

from mambaout.ops.scan_triton import selective_scan_triton as tri  # noqa: E402


def one(leaves, dout):
    out = tri(**leaves, delta_softplus=True)
    out.backward(dout)
    for v in leaves.values():
        v.grad = None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", default="vmamba1,vim")
    ap.add_argument("--cprofile", action="store_true")
    args = ap.parse_args()
    for name in args.shapes.split(","):
        inp = make_inputs(SHAPES[name], torch.float32, "cuda")
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
        print(f"{name}: host fwd {statistics.median(host_f):.3f} ms, host bwd {statistics.median(host_b):.3f} ms, "
              f"GPU f+b {statistics.median(gpu):.3f} ms (synchronised calls)")
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
