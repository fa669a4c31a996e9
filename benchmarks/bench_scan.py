"""Benchmark the selective scan backends: Triton (fused), PyTorch (chunked), sequential reference.

Times forward alone (inference: no grad, no saved states) and forward+backward at
  * VMamba-T stage 1, one SS2D scan:  B=32, D=192, L=3136, N=16 and N=1
  * a Vim-S layer:                    B=64, D=768, L=197,  N=16
in fp32 and bf16 (u, delta, B, C, z in that dtype; A, D, delta_bias fp32; delta_softplus, D, z on).
Medians of CUDA-event timings (triton.testing.do_bench, return_mode="median") after warm-up.  The
sequential reference is slow: it is timed with few iterations (``--ref-iters``, host clock around
synchronised calls), at full batch, fp32 only, and labelled as such.

Also measures the card's device-to-device copy bandwidth (1 GiB fp32 copy; bytes read + written) and
reports each Triton forward's minimal-bytes bandwidth: u, delta, B, C, z read once, y written once.

  PYTHONPATH=src python benchmarks/bench_scan.py [--sweep] [--shapes vmamba16,vmamba1,vim] [--dtypes fp32,bf16]
  TRITON_INTERPRET=1 PYTHONPATH=src python benchmarks/bench_scan.py --tiny   # CPU smoke test of this script

Prints a markdown table last; writes JSON to $OUT/bench_scan.json when $OUT is set (or --json PATH).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import statistics
import sys
import time

import torch

from mambaout.ops import scan_triton
from mambaout.ops.scan_reference import selective_scan_reference
from mambaout.ops.scan_torch import selective_scan_torch

SHAPES = {
    "vmamba16": (32, 192, 3136, 16),
    "vmamba1": (32, 192, 3136, 1),
    "vmamba2": (32, 192, 3136, 2),
    "vim": (64, 768, 197, 16),
    # vmamba_tiny (v0, d_state 16) stages 2-4 at batch 32 (stage 1 is "vmamba16"): expand 2, one direction a call
    "v0s2": (32, 384, 784, 16),
    "v0s3": (32, 768, 196, 16),
    "v0s4": (32, 1536, 49, 16),
    # vmamba_tiny_s2l5's four stages at batch 64: 4 scan directions as groups (B, 4 * 2 * dim, L, 1, G = 4)
    "v2s1": (64, 768, 3136, 1, 4),
    "v2s2": (64, 1536, 784, 1, 4),
    "v2s3": (64, 3072, 196, 1, 4),
    "v2s4": (64, 6144, 49, 1, 4),
    # --tiny (CPU smoke test)
    "tiny16": (2, 8, 70, 16),
    "tiny1": (2, 16, 50, 1),
}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

# candidate tile configs for --sweep (BLOCK_D, BLOCK_T, num_warps, layout[, N_LANES]); "tm" = time-major
# tiles; "tmw" = v4 backward (time-major, warp-local; N_LANES lanes over n, the rest of N in-thread);
# "sn" = v5 small-N 2-D tiles (N <= 2; a backward "sn" makes the autograd forward "sn" with its tile)
SWEEP_FWD = {
    1: [(32, 128, 4, "dm"), (32, 64, 4, "dm"), (64, 128, 8, "dm"), (128, 16, 4, "tm"),
        (4, 128, 1, "sn"), (2, 256, 1, "sn"), (8, 128, 4, "sn")],
    16: [(8, 16, 4, "tm"), (16, 16, 8, "tm"), (8, 32, 4, "tm"), (4, 32, 2, "tm"), (4, 32, 4, "dm"),
         # v6a: warp-local forward tmw (BLOCK_D, BLOCK_T, warps, "tmw", N_LANES)
         (8, 8, 1, "tmw", 4), (4, 16, 1, "tmw", 8), (4, 8, 1, "tmw", 8), (32, 8, 4, "tmw", 4),
         (16, 8, 1, "tmw", 2), (8, 16, 1, "tmw", 4),  # (v7d's N_LANES 1/2 tiles: 1.1-3.4x slower, notes)
         # v8: the next tile's loads issued early (the v8 Gluon forward, explicit layouts, measured slower in
         # every tile and was removed: notes "v8")
         (4, 16, 1, "tmw", 8, "prefetch"), (8, 8, 1, "tmw", 4, "prefetch"), (4, 8, 1, "tmw", 8, "prefetch"),
         (8, 16, 1, "tmw", 4, "prefetch"), (32, 8, 4, "tmw", 4, "prefetch"), (16, 8, 1, "tmw", 2, "prefetch"),
         (16, 8, 2, "tmw", 4, "prefetch"), (8, 16, 2, "tmw", 8, "prefetch"), (16, 4, 1, "tmw", 2, "prefetch"),
         (64, 8, 8, "tmw", 4, "prefetch"), (32, 8, 2, "tmw", 2, "prefetch")],
}
SWEEP_BWD = {
    1: [(32, 64, 4, "dm"), (16, 64, 4, "dm"), (128, 16, 4, "tm"),
        (32, 8, 1, "tmw", 1), (32, 32, 1, "tmw", 1), (128, 8, 4, "tmw", 1), (64, 16, 2, "tmw", 1),
        (4, 128, 1, "sn"), (2, 256, 1, "sn"), (2, 128, 1, "sn"), (8, 128, 4, "sn"), (4, 256, 4, "sn"),
        (1, 128, 1, "sn"), (2, 64, 1, "sn"), (2, 128, 2, "sn"), (4, 128, 2, "sn"), (1, 256, 1, "sn"),
        (2, 128, 1, "sn", "partials"), (2, 256, 1, "sn", "partials")],
    # (tm/dm backwards, 2.5-5x slower than tmw on H100, were dropped from this list in v7: notes, "v6 outcome")
    16: [(8, 4, 1, "tmw", 4), (4, 8, 1, "tmw", 8), (16, 4, 2, "tmw", 4), (32, 4, 4, "tmw", 4), (8, 8, 2, "tmw", 8),
         (2, 8, 1, "tmw", 16), (8, 8, 1, "tmw", 4),
         # v6b: tmw with the next tile's loads prefetched
         (8, 4, 1, "tmw", 4, "prefetch"), (16, 4, 2, "tmw", 4, "prefetch"), (4, 8, 1, "tmw", 8, "prefetch"),
         (8, 8, 2, "tmw", 8, "prefetch"),
         # v7: dB/dC as per-program partials (the deterministic path) instead of atomic adds
         (4, 8, 1, "tmw", 8, "prefetch", "partials"), (16, 4, 2, "tmw", 4, "partials"),
         # v9: softplus and the sigmoids by MUFU approximations (default at L >= 1024)
         (4, 8, 1, "tmw", 8, "fast"), (4, 8, 1, "tmw", 8, "prefetch", "fast"), (8, 4, 1, "tmw", 4, "prefetch", "fast")],
}


def cuda() -> bool:
    return torch.cuda.is_available()


def sync():
    if cuda():
        torch.cuda.synchronize()


GRAPH = False  # --graph


def bench_ms(fn, grad_to_none=None, quick=False) -> float:
    """Median milliseconds of fn()."""
    if cuda():
        import triton.testing

        if GRAPH:  # replay a CUDA graph of many calls: GPU time alone, no host (autograd, launch) overhead
            try:
                return float(
                    triton.testing.do_bench_cudagraph(
                        fn, rep=40 if quick else 100, grad_to_none=grad_to_none, return_mode="median"
                    )
                )
            except RuntimeError as e:  # a path that cannot be captured is timed the usual way, and says so
                log(f"   (not capturable, timed with host launches: {str(e)[:80]})")
        return float(
            triton.testing.do_bench(
                fn, warmup=10 if quick else 25, rep=40 if quick else 100, grad_to_none=grad_to_none, return_mode="median"
            )
        )
    fn()
    ts = []
    for _ in range(3):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e3


def host_ms(fn, iters: int) -> float:
    """For slow functions: median of a few synchronised host-clock timings (after one warm-up)."""
    fn()
    sync()
    ts = []
    for _ in range(iters):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e3


def copy_bandwidth_gbs() -> float:
    if not cuda():
        return float("nan")
    n = 1 << 28  # 1 GiB fp32
    x = torch.randn(n, device="cuda")
    y = torch.empty_like(x)
    ms = bench_ms(lambda: y.copy_(x))
    del x, y
    torch.cuda.empty_cache()
    return 2 * n * 4 / (ms * 1e-3) / 1e9


def make_inputs(shape, dtype, device, seed=0):
    b, d, L, n = shape[:4]
    bc = (b, n, L) if len(shape) < 5 else (b, shape[4], n, L)  # optional 5th element: groups of B/C
    g = torch.Generator(device=device).manual_seed(seed)
    kw = dict(device=device, generator=g)
    inp = {
        "u": torch.randn(b, d, L, **kw).to(dtype),
        "delta": (torch.randn(b, d, L, **kw) * 0.5 - 1.0).to(dtype),
        "A": -torch.exp(torch.randn(d, n, **kw)),
        "B": torch.randn(*bc, **kw).to(dtype),
        "C": torch.randn(*bc, **kw).to(dtype),
        "D": torch.randn(d, **kw),
        "z": torch.randn(b, d, L, **kw).to(dtype),
        "delta_bias": torch.rand(d, **kw),
    }
    return inp


def min_bytes(shape, dtype) -> int:
    b, d, L, n = shape[:4]
    n = n * (shape[4] if len(shape) > 4 else 1)  # B, C hold G * N rows
    es = torch.tensor([], dtype=dtype).element_size()
    return es * (4 * b * d * L + 2 * b * n * L) + 4 * (d * n + 2 * d)


def rel(x, y):
    x, y = x.double(), y.double()
    return ((x - y).norm() / y.norm()).item()


def time_fwd(fn, inp, quick=False):
    with torch.no_grad():
        return bench_ms(lambda: fn(**inp, delta_softplus=True), quick=quick)


def time_fwd_bwd(fn, inp, quick=False, iters=None):
    leaves = {k: v.clone().requires_grad_(True) for k, v in inp.items()}
    dout = torch.randn_like(inp["u"])

    def step():
        out = fn(**leaves, delta_softplus=True)
        out.backward(dout)

    if iters is not None:
        return host_ms(lambda: (step(), [setattr(v, "grad", None) for v in leaves.values()]), iters)
    return bench_ms(step, grad_to_none=list(leaves.values()), quick=quick)


def tri(fwd_cfg=None, bwd_cfg=None):
    def f(**kw):
        return scan_triton.selective_scan_triton(**kw, fwd_config=fwd_cfg, bwd_config=bwd_cfg)

    return f


def cfgd(c):
    """Sweep tuple -> config: (BLOCK_D, BLOCK_T, num_warps[, layout[, N_LANES]][, flags...]); flags "prefetch"
    (tmw: the next tile's loads issued early), "partials" (dB/dC as deterministic per-program partials instead of
    atomic adds), "fast" (tmw backward: softplus and the sigmoids by MUFU approximations, v9)."""
    d = {"BLOCK_D": c[0], "BLOCK_T": c[1], "num_warps": c[2], "layout": c[3] if len(c) > 3 else "tm"}
    for x in c[4:]:
        if isinstance(x, int):
            d["N_LANES"] = x
        elif x == "prefetch":
            d["PREFETCH"] = True
        elif x == "partials":
            d["ATOMIC_BC"] = False
        elif x == "fast":
            d["FAST_EW"] = True
        else:
            raise ValueError(f"unknown sweep flag {x!r}")
    return d


def log(*a):
    print(*a, flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", default="vmamba16,vmamba1,vim")
    ap.add_argument("--dtypes", default="fp32,bf16")
    ap.add_argument("--sweep", action="store_true", help="try several Triton tile configs, keep the fastest")
    ap.add_argument("--graph", action="store_true",
                    help="time CUDA-graph replays (GPU time without host overhead; the sequential reference stays host-timed)")
    ap.add_argument("--bwd-only", action="store_true", help="--sweep: backward tiles only (the default forward)")
    ap.add_argument("--fwd-only", action="store_true", help="--sweep: forward tiles only (f+b with the best forward)")
    ap.add_argument("--fwd-fb", action="store_true",
                    help="--sweep: also time f+b (default backward) with every forward candidate, not only the best")
    ap.add_argument("--fwd-cands", default=None,
                    help="--sweep: these forward candidates instead of the built-in list, ';'-separated sweep "
                         "tuples (as ncu_scan.py's --fwd), e.g. \"(8, 16, 1, 'tmw', 4, 'prefetch'); (16, 8, 1, 'tmw', 2)\"")
    ap.add_argument("--bwd-cands", default=None, help="--sweep: these backward candidates (as --fwd-cands)")
    ap.add_argument("--full", action="store_true", help="time every sweep candidate at full repetition (slower, less noise)")
    ap.add_argument("--deterministic", action="store_true",
                    help="torch.use_deterministic_algorithms (the Triton backward then sums dB/dC from partials, no atomics)")
    ap.add_argument("--no-torch", action="store_true", help="skip the PyTorch path")
    ap.add_argument("--no-ref", action="store_true", help="skip the sequential reference")
    ap.add_argument("--ref-iters", type=int, default=2)
    ap.add_argument("--tiny", action="store_true", help="tiny shapes (CPU smoke test; set TRITON_INTERPRET=1)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if args.tiny:
        args.shapes = "tiny16,tiny1"
    device = "cuda" if cuda() else "cpu"
    if args.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.utils.deterministic.fill_uninitialized_memory = False  # else every torch.empty is a NaN fill
    have_triton = scan_triton.available() or (scan_triton._HAVE_TRITON and os.environ.get("TRITON_INTERPRET") == "1")
    info = {
        "device": torch.cuda.get_device_name() if cuda() else "cpu",
        "torch": torch.__version__,
        "triton": getattr(scan_triton.triton, "__version__", None),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "deterministic": bool(args.deterministic),
        "command": " ".join([os.path.basename(sys.argv[0])] + (argv if argv is not None else sys.argv[1:])),
    }
    log("#", info)
    copy_bw = copy_bandwidth_gbs()
    info["copy_GBps"] = copy_bw
    log(f"# device-to-device copy: {copy_bw:.1f} GB/s (read + written, 1 GiB fp32)")
    global GRAPH
    GRAPH = bool(args.graph and cuda())
    info["timing"] = "cuda-graph replay" if GRAPH else "do_bench (host launches)"
    rows = []
    for sname in args.shapes.split(","):
        shape = SHAPES[sname]
        n = shape[3]
        for dname in args.dtypes.split(","):
            dtype = DTYPES[dname]
            inp = make_inputs(shape, dtype, device, seed=len(rows) + 1)
            r = {"shape": sname, "B,D,L,N": shape, "dtype": dname, "min_bytes": min_bytes(shape, dtype)}
            if have_triton:
                # correctness against the PyTorch path (fp32 state both)
                with torch.no_grad():
                    o_t = tri()(**inp, delta_softplus=True)
                    o_p = selective_scan_torch(**inp, delta_softplus=True)
                r["fwd_rel_err_vs_torch"] = rel(o_t, o_p)
                del o_t, o_p
                cands = SWEEP_FWD[1 if n <= 2 else 16] if args.sweep and not args.bwd_only else []
                if args.fwd_cands and args.sweep and not args.bwd_only:
                    cands = [ast.literal_eval(c) for c in args.fwd_cands.split(";") if c.strip()]
                fwd = {"default": time_fwd(tri(), inp)}
                log(f"   fwd default: {fwd['default']:.4f} ms {scan_triton.last_kernel_info.get('fwd')}")
                for c in cands:
                    try:
                        fwd[str(c)] = time_fwd(tri(fwd_cfg=cfgd(c)), inp, quick=not args.full)
                        log(f"   fwd {c}: {fwd[str(c)]:.4f} ms {scan_triton.last_kernel_info.get('fwd')}")
                        if args.fwd_fb:
                            t = time_fwd_bwd(tri(fwd_cfg=cfgd(c)), inp, quick=not args.full)
                            r.setdefault("fwd_cand_fb_ms", {})[str(c)] = t
                            log(f"   f+b with fwd {c}: {t:.4f} ms (autograd fwd {scan_triton.last_kernel_info.get('fwd')})")
                    except Exception as e:  # e.g. out of resources
                        log(f"  fwd cfg {c} failed: {type(e).__name__}: {str(e)[:120]}")
                best_f = min(fwd, key=fwd.get)
                if best_f != "default":  # re-time the winner at full repetition
                    fwd[best_f] = time_fwd(tri(fwd_cfg=cfgd(ast.literal_eval(best_f))), inp)
                    best_f = min(fwd, key=fwd.get)
                r["triton_fwd_ms"] = fwd[best_f]
                r["triton_fwd_cfg"] = best_f
                r["triton_fwd_sweep"] = fwd
                fb_cfg = cfgd(ast.literal_eval(best_f)) if best_f != "default" else None
                cands = SWEEP_BWD[1 if n <= 2 else 16] if args.sweep and not args.fwd_only else []
                if args.bwd_cands and args.sweep and not args.fwd_only:
                    cands = [ast.literal_eval(c) for c in args.bwd_cands.split(";") if c.strip()]
                fb = {"default": time_fwd_bwd(tri(fwd_cfg=fb_cfg), inp)}
                log(f"   f+b default: {fb['default']:.4f} ms {scan_triton.last_kernel_info.get('bwd')}")
                for c in cands:
                    try:
                        fb[str(c)] = time_fwd_bwd(tri(fwd_cfg=fb_cfg, bwd_cfg=cfgd(c)), inp, quick=not args.full)
                        log(f"   f+b {c}: {fb[str(c)]:.4f} ms {scan_triton.last_kernel_info.get('bwd')}")
                    except Exception as e:
                        log(f"  bwd cfg {c} failed: {type(e).__name__}: {str(e)[:120]}")
                best_b = min(fb, key=fb.get)
                if best_b != "default":
                    fb[best_b] = time_fwd_bwd(tri(fwd_cfg=fb_cfg, bwd_cfg=cfgd(ast.literal_eval(best_b))), inp)
                    best_b = min(fb, key=fb.get)
                r["triton_fwdbwd_ms"] = fb[best_b]
                r["triton_bwd_cfg"] = best_b
                r["triton_fwdbwd_sweep"] = fb
                gbs = r["min_bytes"] / (r["triton_fwd_ms"] * 1e-3) / 1e9
                r["triton_fwd_GBps"] = gbs
                r["triton_fwd_pct_copy"] = 100 * gbs / copy_bw if copy_bw == copy_bw else None
                log(f"{sname} {dname} triton fwd {r['triton_fwd_ms']:.4f} ms ({best_f}), fwd+bwd "
                    f"{r['triton_fwdbwd_ms']:.4f} ms ({best_b}); {gbs:.0f} GB/s; err vs torch {r['fwd_rel_err_vs_torch']:.1e}")
                log(f"   fwd sweep {json.dumps({k: round(v, 4) for k, v in fwd.items()})}")
                log(f"   f+b sweep {json.dumps({k: round(v, 4) for k, v in fb.items()})}")
            if not args.no_torch:
                r["torch_fwd_ms"] = time_fwd(selective_scan_torch, inp)
                r["torch_fwdbwd_ms"] = time_fwd_bwd(selective_scan_torch, inp)
                log(f"{sname} {dname} torch fwd {r['torch_fwd_ms']:.3f} ms, fwd+bwd {r['torch_fwdbwd_ms']:.3f} ms")
                if cuda():
                    torch.cuda.empty_cache()
            if not args.no_ref and dname == "fp32":
                with torch.no_grad():
                    r["ref_fwd_ms"] = host_ms(lambda: selective_scan_reference(**inp, delta_softplus=True), args.ref_iters)
                r["ref_fwdbwd_ms"] = time_fwd_bwd(selective_scan_reference, inp, iters=args.ref_iters)
                r["ref_iters"] = args.ref_iters
                log(f"{sname} {dname} reference fwd {r['ref_fwd_ms']:.1f} ms, fwd+bwd {r['ref_fwdbwd_ms']:.1f} ms "
                    f"({args.ref_iters} iters, host clock)")
                if cuda():
                    torch.cuda.empty_cache()
            rows.append(r)
            del inp
    out = {"info": info, "rows": rows}
    path = args.json or (os.path.join(os.environ["OUT"], "bench_scan.json") if os.environ.get("OUT") else None)
    if path:
        with open(path, "w") as f:
            json.dump(out, f, indent=1, default=str)

    def f(v, p=3):
        return "-" if v is None else f"{v:.{p}f}"

    log("")
    log(f"Card: {info['device']}; copy {copy_bw:.0f} GB/s; torch {info['torch']}; triton {info['triton']}; {info['date']}; "
        f"timing: {info['timing']}" + ("; deterministic" if args.deterministic else ""))
    log("| shape (B,D,L,N) | dtype | Triton fwd ms | Triton f+b ms | torch fwd ms | torch f+b ms | ref fwd ms* | ref f+b ms* "
        "| Triton/torch fwd | Triton/torch f+b | Triton fwd GB/s | % of copy |")
    log("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        tf, tfb = r.get("triton_fwd_ms"), r.get("triton_fwdbwd_ms")
        pf, pfb = r.get("torch_fwd_ms"), r.get("torch_fwdbwd_ms")
        sp_f = f"{pf / tf:.1f}x" if tf and pf else "-"
        sp_fb = f"{pfb / tfb:.1f}x" if tfb and pfb else "-"
        log(f"| {r['shape']} {tuple(r['B,D,L,N'])} | {r['dtype']} | {f(tf, 4)} | {f(tfb, 4)} | {f(pf, 2)} | {f(pfb, 2)} | "
            f"{f(r.get('ref_fwd_ms'), 1)} | {f(r.get('ref_fwdbwd_ms'), 1)} | {sp_f} | {sp_fb} | "
            f"{f(r.get('triton_fwd_GBps'), 0)} | {f(r.get('triton_fwd_pct_copy'), 1)} |")
    log("* sequential reference: fp32 only, full batch, median of --ref-iters host-clock timings after one warm-up.")
    return out


if __name__ == "__main__":
    main()
