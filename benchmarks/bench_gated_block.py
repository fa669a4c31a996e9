"""Fused gated-CNN gate vs the reference ops, per mambaout_tiny stage and for the whole model against timm (CUDA).

  PYTHONPATH=src python benchmarks/bench_gated_block.py [--parts check,gate,block,model] [--model-modes infer]
      [--full] [--sweep] [--stages 56,14] [--batch 256] [--train-batch 128] [--compile-mode default]

Two calls cover the issue's targets, each meant to take at most about 3 minutes on one H100/H200 (most of it cold
torch.compile):

  PYTHONPATH=src python benchmarks/bench_gated_block.py                                  # inference
  PYTHONPATH=src python benchmarks/bench_gated_block.py --parts model --model-modes train   # training step

Parts (bf16 autocast, 224 px, channels-last input, cudnn.benchmark, as the issue's timm anchors):

* check  fused vs reference ops on the GPU in fp32 and bf16 at each stage's shape (relative max error of y and of
         every gradient; all four stages); the run fails (exit 1) if fp32 is off by more than 1e-4.
* gate   the op alone, fc1's output -> fc2's input: reference ops eager / compiled vs the fused op, inference
         (--batch) and forward+backward (--train-batch); "GB/s" is the fused kernels' ideal traffic over the time
         (forward 3*HD elements per pixel, backward 5*HD + 3*NC), against the card's HBM bandwidth.
         gate and block time the stages of --stages (default 56 and 14: the largest map, the deepest stage).
* block  the whole GatedBlock (LN, fc1, gate, fc2, residual): reference vs fused eager; --full adds both compiled.
* model  mambaout_tiny images/s: timm eager / compiled, ours reference eager, ours fused eager / compiled, inference
         (--batch) and/or a training step (--train-batch, AdamW fused, cross-entropy) as --model-modes says (default
         infer: each mode costs two cold whole-model compiles); --full adds ours reference compiled (one more
         compile per mode) and, in the block part, both compiled blocks (four small compiles per stage and mode).

Timing: warm-up (the first call also compiles; its time is reported), then ``--repeats`` runs of ``--iters`` calls
between two CUDA events; the median per call.  Prints Markdown tables and writes
$OUT/bench_gated_block.<parts>[.<modes>].json when OUT is set.  --sweep adds a tile sweep of the fused op (about
30 s more).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from functools import partial

import torch

import mambaout.models  # noqa: F401  (registers the models)
from mambaout.models.blocks import GatedBlock, set_fused
from mambaout.ops import gated_triton
from mambaout.ops.gated_triton import GateConfig, gated_dwconv
from mambaout.registry import create_model
from mambaout.utils.table import markdown_table

STAGES = ((56, 96), (28, 192), (14, 384), (7, 576))  # mambaout_tiny at 224 px: (side, dim)
BLOCK_VARIANTS = (
    ("ref", False, False),
    ("fused", True, False),
    ("ref_compiled", False, True),
    ("fused_compiled", True, True),
)
SWEEP = [(8, 16, 32, 16), (8, 8, 32, 8), (4, 16, 32, 8), (4, 8, 32, 4), (2, 16, 32, 4), (8, 16, 32, 8), (8, 8, 64, 8)]


def stages(args):
    sides = {int(x) for x in args.stages.split(",")}
    return [s for s in STAGES if s[0] in sides]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def timed(fn, iters, repeats, warmup=3):
    """(median ms per call, seconds of the first call: compile + autotune + first run)."""
    t0 = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    first = time.perf_counter() - t0
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(repeats):
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record()
        for _ in range(iters):
            fn()
        e1.record()
        torch.cuda.synchronize()
        ts.append(e0.elapsed_time(e1) / iters)
    return statistics.median(ts), first


def autocast():
    return torch.autocast("cuda", dtype=torch.bfloat16)


def stage_block(side, dim, fused):
    torch.manual_seed(0)
    blk = GatedBlock(dim).cuda()
    blk.fused = fused
    return blk


def rel(a, b):
    return ((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-30)).item()


def part_check(args, rows):
    worst = 0.0
    for side, dim in STAGES:
        blk = stage_block(side, dim, False)
        hd, n_id = blk.split_indices[:2]
        for dtype in (torch.float32, torch.bfloat16):
            h = torch.randn(8, side, side, 2 * hd, device="cuda")
            dy = torch.randn(8, side, side, hd, device="cuda")
            res = []
            for fused in (False, True):
                blk.fused = fused
                ins = [h.to(dtype).requires_grad_(), blk.conv.weight, blk.conv.bias]
                with torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
                    y = blk.gate(ins[0])
                res.append([y] + list(torch.autograd.grad(y, ins, dy.to(y.dtype))))
            errs = [rel(a, b) for a, b in zip(res[1], res[0])]
            rows.append(
                dict(stage=f"{side}x{side}x{dim}", dtype=str(dtype)[6:], y=errs[0], dh=errs[1], dw=errs[2], db=errs[3])
            )
            if dtype == torch.float32:
                worst = max(worst, *errs)
    print("\n## fused vs reference ops on this GPU (relative max error, batch 8)\n")
    print(markdown_table(rows, ["stage", "dtype", "y", "dh", "dw", "db"], digits=7))
    return worst


def backward_of(op, dy):
    torch.autograd.backward(op(), dy)


def block_call(mod, x, gy):
    with autocast():
        y = mod(x)
    if gy is not None:
        y.backward(gy)


def train_step(model, opt, x, target):
    with autocast():
        loss = torch.nn.functional.cross_entropy(model(x), target)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


def infer(model, x):
    with torch.no_grad(), autocast():
        model(x)


def gate_fn(gate, h, train, dy=None):
    def fwd():
        with autocast():
            return gate(h)

    if not train:
        return fwd

    def step():
        torch.autograd.backward(fwd(), dy)

    return step


def part_gate(args, rows, bw_gbs):
    for side, dim in stages(args):
        for train in (False, True):
            b = args.train_batch if train else args.batch
            blk = stage_block(side, dim, False)
            hd, _, nc = blk.split_indices
            h = torch.randn(b, side, side, 2 * hd, device="cuda", dtype=torch.bfloat16, requires_grad=train)
            dy = torch.randn(b, side, side, hd, device="cuda", dtype=torch.bfloat16) if train else None
            elems = b * side * side * (3 * hd + ((5 * hd + 3 * nc) if train else 0))
            row = dict(stage=f"{side}x{side}x{dim}", mode="train" if train else "infer", batch=b)
            for name, fused, comp in (("ref", False, False), ("ref_compiled", False, True), ("fused", True, False)):
                blk.fused = fused
                fn = gate_fn(torch.compile(blk.gate, mode=args.compile_mode) if comp else blk.gate, h, train, dy)
                with torch.no_grad() if not train else torch.enable_grad():
                    row[name], _ = timed(fn, args.iters, args.repeats)
                torch._dynamo.reset()
            row["fused_GBps"] = 2 * elems / row["fused"] / 1e6
            row["of_HBM"] = f"{100 * row['fused_GBps'] / bw_gbs:.0f}%" if bw_gbs else "-"
            row["x_vs_ref"] = row["ref"] / row["fused"]
            row["x_vs_compiled"] = row["ref_compiled"] / row["fused"]
            rows.append(row)
            log(f"gate {row}")
    print("\n## the gate op alone (ms per call; GB/s of the fused kernels' ideal traffic)\n")
    cols = [
        "stage",
        "mode",
        "batch",
        "ref",
        "ref_compiled",
        "fused",
        "x_vs_ref",
        "x_vs_compiled",
        "fused_GBps",
        "of_HBM",
    ]
    print(markdown_table(rows, cols, digits=3))


def part_sweep(args, rows):
    for side, dim in STAGES:
        blk = stage_block(side, dim, True)
        hd, n_id, _ = blk.split_indices
        h = torch.randn(args.train_batch, side, side, 2 * hd, device="cuda", dtype=torch.bfloat16, requires_grad=True)
        dy = torch.randn(*h.shape[:3], hd, device="cuda", dtype=torch.bfloat16)
        w, bias = blk.conv.weight, blk.conv.bias
        default = gated_triton.default_config(side, side)
        for t in dict.fromkeys([tuple(default)] + SWEEP):
            cfg = GateConfig(*t)
            if cfg.block_w > 2 * side or cfg.block_h > 2 * side:
                continue
            op = partial(gated_dwconv, h, w, bias, n_id, "gelu", cfg)
            ms, _ = timed(partial(backward_of, op, dy), 10, 3)
            with torch.no_grad():
                ms_f, _ = timed(op, 10, 3)
            rows.append(
                dict(stage=f"{side}x{side}x{dim}", tile=str(t), default=t == tuple(default), fwd=ms_f, train=ms)
            )
    print(f"\n## tile sweep of the fused op (batch {args.train_batch}; ms; tile = block_h, block_w, block_c, warps)\n")
    print(markdown_table(rows, ["stage", "tile", "default", "fwd", "train"], digits=3))


def part_block(args, rows):
    for side, dim in stages(args):
        for train in (False, True):
            b = args.train_batch if train else args.batch
            x = torch.randn(b, side, side, dim, device="cuda", requires_grad=train)
            gy = torch.randn(b, side, side, dim, device="cuda") if train else None
            row = dict(stage=f"{side}x{side}x{dim}", mode="train" if train else "infer", batch=b)
            for name, fused, comp in BLOCK_VARIANTS[: 4 if args.full else 2]:
                blk = stage_block(side, dim, fused)
                mod = torch.compile(blk, mode=args.compile_mode) if comp else blk

                fn = partial(block_call, mod, x, gy)
                with torch.no_grad() if not train else torch.enable_grad():
                    row[name], row[f"{name}_first_s"] = timed(fn, args.iters, args.repeats)
                torch._dynamo.reset()
            row["fused_x_vs_ref"] = row["ref"] / row["fused"]
            if args.full:
                row["best_x_vs_ref_compiled"] = row["ref_compiled"] / min(row["fused"], row["fused_compiled"])
            rows.append(row)
            log(f"block {row}")
    print("\n## GatedBlock (ms per call)\n")
    cols = ["stage", "mode", "batch"] + [v[0] for v in BLOCK_VARIANTS[: 4 if args.full else 2]] + ["fused_x_vs_ref"]
    print(markdown_table(rows, cols + (["best_x_vs_ref_compiled"] if args.full else []), digits=3))


def model_variants(args):
    import timm

    def timm_model():
        return timm.create_model(args.timm_model or args.model, num_classes=1000)

    def ours(fused):
        return lambda: set_fused(create_model(args.model, num_classes=1000), fused)

    v = [
        ("timm", timm_model, False),
        ("timm_compiled", timm_model, True),
        ("ours_ref", ours(False), False),
        ("ours_fused", ours(True), False),
        ("ours_fused_compiled", ours(True), True),
    ]
    return v + ([("ours_ref_compiled", ours(False), True)] if args.full else [])


def part_model(args, rows):
    for train in [m == "train" for m in args.model_modes.split(",")]:
        b = args.train_batch if train else args.batch
        x = torch.randn(b, 3, args.img_size, args.img_size, device="cuda").to(memory_format=torch.channels_last)
        target = torch.randint(0, 1000, (b,), device="cuda")
        for name, make, comp in model_variants(args):
            torch.manual_seed(0)
            model = make().cuda().to(memory_format=torch.channels_last).train(train)
            mod = torch.compile(model, mode=args.compile_mode) if comp else model
            if train:
                opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
                fn = partial(train_step, mod, opt, x, target)
            else:
                fn = partial(infer, mod, x)
            iters = max(2, args.iters // 4)
            ms, first = timed(fn, iters, args.repeats, warmup=2)
            rows.append(
                dict(
                    mode="train" if train else "infer", batch=b, variant=name, ms=ms, img_s=b / ms * 1e3, first_s=first
                )
            )
            log(f"model {rows[-1]}")
            del model, mod, fn
            torch._dynamo.reset()
            torch.cuda.empty_cache()
    for r in rows:
        base = next(x for x in rows if x["mode"] == r["mode"] and x["variant"] == "timm_compiled")
        r["x_vs_timm_compiled"] = r["img_s"] / base["img_s"]
    print(f"\n## {args.model} ({args.img_size} px, bf16 autocast, channels-last input)\n")
    print(markdown_table(rows, ["mode", "batch", "variant", "ms", "img_s", "x_vs_timm_compiled", "first_s"], digits=2))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default="check,gate,block,model")
    ap.add_argument("--batch", type=int, default=256, help="inference batch")
    ap.add_argument("--train-batch", type=int, default=128)
    ap.add_argument("--iters", type=int, default=20, help="calls per timed run (the model part uses a quarter)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--compile-mode", default="default")
    ap.add_argument("--model", default="mambaout_tiny", help="model part: our registry's name")
    ap.add_argument("--timm-model", default=None, help="model part: timm's name (default: --model)")
    ap.add_argument("--img-size", type=int, default=224, help="model part")
    ap.add_argument("--model-modes", default="infer", help="model part: infer, train or infer,train")
    ap.add_argument("--stages", default="56,14", help="map sides of the stages the gate and block parts time")
    ap.add_argument("--full", action="store_true", help="block part: compiled variants; model: ours ref compiled")
    ap.add_argument("--sweep", action="store_true", help="also sweep the fused op's tiles")
    ap.add_argument("--hbm-gbps", type=float, default=None, help="card HBM bandwidth (default: H200 4800, H100 3350)")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("error: bench_gated_block needs a CUDA GPU (the fused kernels are Triton on CUDA); nothing was timed")
        sys.exit(2)
    if not gated_triton.HAVE_TRITON:
        print("error: bench_gated_block needs triton (pip install triton); nothing was timed")
        sys.exit(2)
    parts = args.parts.split(",")
    unknown = set(parts) - {"check", "gate", "block", "model"}
    if unknown:
        print(f"error: unknown part(s) {', '.join(sorted(unknown))}; choose from check, gate, block, model")
        sys.exit(2)
    if not args.model_modes or set(args.model_modes.split(",")) - {"infer", "train"}:
        print(f"error: --model-modes {args.model_modes!r}: give infer, train or infer,train")
        sys.exit(2)
    torch.backends.cudnn.benchmark = True
    name = torch.cuda.get_device_name()
    bw = args.hbm_gbps or (4800.0 if "H200" in name else 3350.0 if "H100" in name else None)
    meta = dict(device=name, torch=torch.__version__, date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    meta.update(vars(args), hbm_gbps=bw)
    print(f"# bench_gated_block on {name}, torch {torch.__version__}, {meta['date']}")
    t0 = time.perf_counter()
    out = dict(meta=meta)
    worst = 0.0
    if "check" in parts:
        out["check"] = []
        with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):  # the reference conv in true fp32
            worst = part_check(args, out["check"])
    if "gate" in parts:
        out["gate"] = []
        part_gate(args, out["gate"], bw)
    if args.sweep:
        out["sweep"] = []
        part_sweep(args, out["sweep"])
    if "block" in parts:
        out["block"] = []
        part_block(args, out["block"])
    if "model" in parts:
        out["model"] = []
        part_model(args, out["model"])
    out["meta"]["wall_s"] = time.perf_counter() - t0
    print(f"\nwall {out['meta']['wall_s']:.0f} s")
    if os.environ.get("OUT"):
        tag = "-".join(parts) + ("." + args.model_modes.replace(",", "-") if "model" in parts else "")
        path = os.path.join(os.environ["OUT"], f"bench_gated_block.{tag}.json")
        with open(path, "w") as f:
            json.dump(out, f, indent=1)
        print(f"wrote {path}")
    if worst > 1e-4:
        print(f"error: the fused op is off the reference by {worst:.2e} (relative, fp32) on this GPU")
        sys.exit(1)


if __name__ == "__main__":
    main()
