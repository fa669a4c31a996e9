"""Compile the fused gate's kernels offline for a GPU target and report registers, spills, occupancy, vector widths.

No GPU needed: ``triton.compile`` for the target (default sm_90a, H100/H200), ``cuobjdump -res-usage`` from
Triton's bundled CUDA tools.  Each mambaout_tiny stage's default tile (``default_config``), bf16, GELU, K = 7, with
the argument specialisation Triton applies at launch for those shapes (pointers 16-byte aligned; HD, N_ID and NC
divisible by 16).  ``--tile bh,bw,bc,warps`` adds tiles to compare.

  PYTHONPATH=src python benchmarks/inspect_gated_kernels.py [--arch 90] [--tile 8,16,32,8 ...]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import tempfile
from collections import Counter

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from mambaout.ops import gated_kernels as gk
from mambaout.ops.gated_triton import GateConfig, default_config
from mambaout.utils.table import markdown_table

STAGES = ((56, 96), (28, 192), (14, 384), (7, 576))
GATE_ARGS = "h_ptr w_ptr b_ptr y_ptr dy_ptr dh_ptr e_ptr H W HD N_ID NC N_WT N_HT".split()
DCONV_ARGS = "e_ptr h_ptr w_ptr dh_ptr part_ptr H W HD N_ID NC N_WT N_HT".split()
DIVISIBLE = {"HD", "N_ID", "NC"}  # true for every mambaout_tiny stage
TOOLS = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin")


def _signature(names, fp32_ptrs):
    sig = {n: ("*fp32" if n in fp32_ptrs else "*bf16") if n.endswith("_ptr") else "i32" for n in names}
    attrs = {(i,): [["tt.divisibility", 16]] for i, n in enumerate(names) if n.endswith("_ptr") or n in DIVISIBLE}
    return sig, attrs


def compile_kernel(which: str, cfg: GateConfig, target):
    if which == "dconv":
        sig, attrs = _signature(DCONV_ARGS, {"w_ptr", "part_ptr"})
        const = dict(K=7, EVEN_C=True)
        fn = gk._dconv_kernel
    else:
        sig, attrs = _signature(GATE_ARGS, {"w_ptr", "b_ptr"})
        const = dict(K=7, ACT=gk.GELU, BACKWARD=which == "bwd", EVEN_C=True)
        fn = gk._gate_kernel
    const.update(BLOCK_H=cfg.block_h, BLOCK_W=cfg.block_w, BLOCK_C=cfg.block_c)
    sig.update({k: "constexpr" for k in const})
    return triton.compile(ASTSource(fn, sig, const, attrs), target=target, options={"num_warps": cfg.num_warps})


def facts(kernel, num_warps: int) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(kernel.asm["cubin"])
        f.flush()
        res = subprocess.run([os.path.join(TOOLS, "cuobjdump"), "-res-usage", f.name], capture_output=True, text=True)
    regs = int(re.search(r"REG:(\d+)", res.stdout).group(1))
    stack = int(re.search(r"STACK:(\d+)", res.stdout).group(1))
    ptx = kernel.asm["ptx"]
    alloc = (regs + 7) // 8 * 8 * 32 * num_warps  # registers per block, allocated per warp in units of 8 per thread
    warps = min(65536 // alloc, 64 // num_warps) * num_warps
    ld = Counter(re.findall(r"ld\.global((?:\.v\d)?)\.b(\d+)", ptx))
    st = Counter(re.findall(r"st\.global((?:\.v\d)?)\.b(\d+)", ptx))

    def widths(c):
        return " ".join(f"{n}x{(int(v[2:]) if v else 1) * int(b) // 8}B" for (v, b), n in sorted(c.items()))

    return dict(regs=regs, stack_B=stack, warps_per_SM=warps, loads=widths(ld), stores=widths(st))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", type=int, default=90)
    ap.add_argument("--tile", action="append", default=[], help="bh,bw,bc,warps (repeatable)")
    args = ap.parse_args()
    target = GPUTarget("cuda", args.arch, 32)
    tiles = {}
    for s, _ in STAGES:
        t = tuple(default_config(s, s))
        tiles[t] = (tiles[t] + "," if t in tiles else "default ") + str(s)
    for t in args.tile:
        tiles.setdefault(tuple(int(x) for x in t.split(",")), "--tile")
    rows = []
    for t, why in tiles.items():
        cfg = GateConfig(*t)
        for which in ("fwd", "bwd", "dconv"):
            rows.append(
                dict(tile=str(t), of=why, kernel=which, **facts(compile_kernel(which, cfg, target), cfg.num_warps))
            )
    print(f"## fused gate kernels, sm_{args.arch}, triton {triton.__version__} (bf16, GELU, K = 7)\n")
    cols = ["tile", "of", "kernel", "regs", "stack_B", "warps_per_SM", "loads", "stores"]
    print(markdown_table(rows, cols))


if __name__ == "__main__":
    main()
