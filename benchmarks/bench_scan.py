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
import functools
import json
import os
import statistics
import sys
import time

import torch

from mambaout.ops import scan_triton
from mambaout.ops.scan_reference import selective_scan_reference
from mambaout.ops.scan_torch import selective_scan_torch
from mambaout.ops.scan_triton import TileConfig

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


def _tiles(*tuples) -> list[TileConfig]:
    return [TileConfig.from_tuple(t) for t in tuples]


# Candidate tiles for --sweep, written as sweep tuples (block_d, block_t, warps, layout[, n_lanes][, flags];
# TileConfig.from_tuple): "tmw" time-major warp-local tiles (n_lanes lanes over n, the rest of n in-thread), "tm"
# time-major tiles (forward only), "sn" small-d_state 2-D tiles (d_state <= 2; an sn backward makes the autograd
# forward sn with its tile).  Flags: "prefetch" (the next tile's loads issued early), "partials" (dB/dC as
# deterministic per-program partials instead of atomic adds), "fast" (tmw backward: MUFU softplus and sigmoids).
# Tiles measured slower and dropped (tmw with n_lanes 1-2 at d_state 16, the removed layouts) are in the notes.
SWEEP_FWD = {
    1: _tiles((128, 16, 4, "tm"), (4, 128, 1, "sn"), (2, 256, 1, "sn"), (8, 128, 4, "sn")),
    16: _tiles(
        (8, 16, 4, "tm"), (16, 16, 8, "tm"), (8, 32, 4, "tm"), (4, 32, 2, "tm"),
        (8, 8, 1, "tmw", 4), (4, 16, 1, "tmw", 8), (4, 8, 1, "tmw", 8), (32, 8, 4, "tmw", 4),
        (16, 8, 1, "tmw", 2), (8, 16, 1, "tmw", 4),
        (4, 16, 1, "tmw", 8, "prefetch"), (8, 8, 1, "tmw", 4, "prefetch"), (4, 8, 1, "tmw", 8, "prefetch"),
        (8, 16, 1, "tmw", 4, "prefetch"), (32, 8, 4, "tmw", 4, "prefetch"), (16, 8, 1, "tmw", 2, "prefetch"),
        (16, 8, 2, "tmw", 4, "prefetch"), (8, 16, 2, "tmw", 8, "prefetch"), (16, 4, 1, "tmw", 2, "prefetch"),
        (64, 8, 8, "tmw", 4, "prefetch"), (32, 8, 2, "tmw", 2, "prefetch"),
    ),
}  # fmt: skip
SWEEP_BWD = {
    1: _tiles(
        (32, 8, 1, "tmw", 1), (32, 32, 1, "tmw", 1), (128, 8, 4, "tmw", 1), (64, 16, 2, "tmw", 1),
        (4, 128, 1, "sn"), (2, 256, 1, "sn"), (2, 128, 1, "sn"), (8, 128, 4, "sn"), (4, 256, 4, "sn"),
        (1, 128, 1, "sn"), (2, 64, 1, "sn"), (2, 128, 2, "sn"), (4, 128, 2, "sn"), (1, 256, 1, "sn"),
        (2, 128, 1, "sn", "partials"), (2, 256, 1, "sn", "partials"),
    ),
    16: _tiles(
        (8, 4, 1, "tmw", 4), (4, 8, 1, "tmw", 8), (16, 4, 2, "tmw", 4), (32, 4, 4, "tmw", 4), (8, 8, 2, "tmw", 8),
        (2, 8, 1, "tmw", 16), (8, 8, 1, "tmw", 4),
        (8, 4, 1, "tmw", 4, "prefetch"), (16, 4, 2, "tmw", 4, "prefetch"), (4, 8, 1, "tmw", 8, "prefetch"),
        (8, 8, 2, "tmw", 8, "prefetch"),
        (4, 8, 1, "tmw", 8, "prefetch", "partials"), (16, 4, 2, "tmw", 4, "partials"),
        (4, 8, 1, "tmw", 8, "fast"), (4, 8, 1, "tmw", 8, "prefetch", "fast"), (8, 4, 1, "tmw", 4, "prefetch", "fast"),
    ),
}  # fmt: skip


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
                fn,
                warmup=10 if quick else 25,
                rep=40 if quick else 100,
                grad_to_none=grad_to_none,
                return_mode="median",
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
    ms = bench_ms(functools.partial(y.copy_, x))
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


def parse_tile(s: str | None) -> TileConfig | None:
    """A sweep tuple literal, e.g. "(8, 16, 1, 'tmw', 4, 'prefetch')" (see SWEEP_FWD); None or "": the default."""
    return TileConfig.from_tuple(ast.literal_eval(s)) if s and s.strip() else None


def parse_tiles(s: str | None) -> list[TileConfig]:
    """';'-separated sweep tuples, e.g. "(8, 16, 1, 'tmw', 4, 'prefetch'); (2, 256, 1, 'sn')"."""
    return [parse_tile(c) for c in (s or "").split(";") if c.strip()]


def label(cfg: TileConfig | None) -> str:
    # results and logs name a tile by its sweep tuple, as before the configs were typed
    return "default" if cfg is None else str(cfg.to_tuple())


def log(*a):
    print(*a, flush=True)


def sweep(kind, timer, cands, full, after=None):
    """``timer(cfg, quick)`` for the default tile (None) and each candidate (quick unless ``full``), the winner
    re-timed at full repetition; ``after(cfg)`` runs after each candidate.  Returns (ms by label, best label, best
    config)."""
    key = "fwd" if kind == "fwd" else "bwd"
    times, cfgs = {"default": timer(None, False)}, {"default": None}
    log(f"   {kind} default: {times['default']:.4f} ms {scan_triton.last_kernel_info.get(key)}")
    for c in cands:
        name = label(c)
        try:
            times[name], cfgs[name] = timer(c, not full), c
            log(f"   {kind} {name}: {times[name]:.4f} ms {scan_triton.last_kernel_info.get(key)}")
            if after is not None:
                after(c)
        except Exception as e:  # e.g. out of resources
            log(f"  {kind} cfg {name} failed: {type(e).__name__}: {str(e)[:120]}")
    best = min(times, key=times.get)
    if best != "default":  # re-time the winner at full repetition
        times[best] = timer(cfgs[best], False)
        best = min(times, key=times.get)
    return times, best, cfgs[best]


def triton_version():
    try:
        import triton

        return triton.__version__
    except Exception:
        return None


def bench_row(args, sname: str, dname: str, seed: int, device: str, have_triton: bool, copy_bw: float) -> dict:
    """Every timing of one (shape, dtype) row of the table."""
    shape, dtype = SHAPES[sname], DTYPES[dname]
    n = shape[3]
    inp = make_inputs(shape, dtype, device, seed=seed)
    r = {"shape": sname, "B,D,L,N": shape, "dtype": dname, "min_bytes": min_bytes(shape, dtype)}
    if have_triton:
        # correctness against the PyTorch path (fp32 state both)
        with torch.no_grad():
            o_t = tri()(**inp, delta_softplus=True)
            o_p = selective_scan_torch(**inp, delta_softplus=True)
        r["fwd_rel_err_vs_torch"] = rel(o_t, o_p)
        del o_t, o_p
        cands = []
        if args.sweep and not args.bwd_only:
            cands = parse_tiles(args.fwd_cands) or SWEEP_FWD[1 if n <= 2 else 16]

        def fwd_fb(c):  # --fwd-fb: f+b (default backward) with this forward candidate too
            t = time_fwd_bwd(tri(fwd_cfg=c), inp, quick=not args.full)
            r.setdefault("fwd_cand_fb_ms", {})[label(c)] = t
            log(f"   f+b with fwd {label(c)}: {t:.4f} ms (autograd fwd {scan_triton.last_kernel_info.get('fwd')})")

        fwd, best_f, fb_cfg = sweep(
            "fwd",
            lambda c, quick: time_fwd(tri(fwd_cfg=c), inp, quick=quick),
            cands,
            args.full,
            fwd_fb if args.fwd_fb else None,
        )
        r["triton_fwd_ms"] = fwd[best_f]
        r["triton_fwd_cfg"] = best_f
        r["triton_fwd_sweep"] = fwd
        cands = []
        if args.sweep and not args.fwd_only:
            cands = parse_tiles(args.bwd_cands) or SWEEP_BWD[1 if n <= 2 else 16]
        fb, best_b, _ = sweep(
            "f+b",
            lambda c, quick: time_fwd_bwd(tri(fwd_cfg=fb_cfg, bwd_cfg=c), inp, quick=quick),
            cands,
            args.full,
        )
        r["triton_fwdbwd_ms"] = fb[best_b]
        r["triton_bwd_cfg"] = best_b
        r["triton_fwdbwd_sweep"] = fb
        gbs = r["min_bytes"] / (r["triton_fwd_ms"] * 1e-3) / 1e9
        r["triton_fwd_GBps"] = gbs
        r["triton_fwd_pct_copy"] = 100 * gbs / copy_bw if copy_bw == copy_bw else None
        log(
            f"{sname} {dname} triton fwd {r['triton_fwd_ms']:.4f} ms ({best_f}), fwd+bwd "
            f"{r['triton_fwdbwd_ms']:.4f} ms ({best_b}); {gbs:.0f} GB/s; err vs torch {r['fwd_rel_err_vs_torch']:.1e}"
        )
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
        log(
            f"{sname} {dname} reference fwd {r['ref_fwd_ms']:.1f} ms, fwd+bwd {r['ref_fwdbwd_ms']:.1f} ms "
            f"({args.ref_iters} iters, host clock)"
        )
        if cuda():
            torch.cuda.empty_cache()
    return r


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", default="vmamba16,vmamba1,vim")
    ap.add_argument("--dtypes", default="fp32,bf16")
    ap.add_argument("--sweep", action="store_true", help="try several Triton tile configs, keep the fastest")
    ap.add_argument(
        "--graph",
        action="store_true",
        help="time CUDA-graph replays (GPU time without host overhead; the sequential reference stays host-timed)",
    )
    ap.add_argument("--bwd-only", action="store_true", help="--sweep: backward tiles only (the default forward)")
    ap.add_argument("--fwd-only", action="store_true", help="--sweep: forward tiles only (f+b with the best forward)")
    ap.add_argument(
        "--fwd-fb",
        action="store_true",
        help="--sweep: also time f+b (default backward) with every forward candidate, not only the best",
    )
    ap.add_argument(
        "--fwd-cands",
        default=None,
        help="--sweep: these forward candidates instead of the built-in list, ';'-separated sweep "
        "tuples (as ncu_scan.py's --fwd), e.g. \"(8, 16, 1, 'tmw', 4, 'prefetch'); (16, 8, 1, 'tmw', 2)\"",
    )
    ap.add_argument("--bwd-cands", default=None, help="--sweep: these backward candidates (as --fwd-cands)")
    ap.add_argument(
        "--full", action="store_true", help="time every sweep candidate at full repetition (slower, less noise)"
    )
    ap.add_argument(
        "--deterministic",
        action="store_true",
        help="torch.use_deterministic_algorithms (the Triton backward then sums dB/dC from partials, no atomics)",
    )
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
    have_triton = scan_triton.available() or (scan_triton.HAVE_TRITON and os.environ.get("TRITON_INTERPRET") == "1")
    info = {
        "device": torch.cuda.get_device_name() if cuda() else "cpu",
        "torch": torch.__version__,
        "triton": triton_version(),
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
        for dname in args.dtypes.split(","):
            rows.append(bench_row(args, sname, dname, len(rows) + 1, device, have_triton, copy_bw))
    out = {"info": info, "rows": rows}
    path = args.json or (os.path.join(os.environ["OUT"], "bench_scan.json") if os.environ.get("OUT") else None)
    if path:
        with open(path, "w") as f:
            json.dump(out, f, indent=1, default=str)

    def f(v, p=3):
        return "-" if v is None else f"{v:.{p}f}"

    log("")
    log(
        f"Card: {info['device']}; copy {copy_bw:.0f} GB/s; torch {info['torch']}; triton {info['triton']}; {info['date']}; "
        f"timing: {info['timing']}" + ("; deterministic" if args.deterministic else "")
    )
    log(
        "| shape (B,D,L,N) | dtype | Triton fwd ms | Triton f+b ms | torch fwd ms | torch f+b ms | ref fwd ms* | ref f+b ms* "
        "| Triton/torch fwd | Triton/torch f+b | Triton fwd GB/s | % of copy |"
    )
    log("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        tf, tfb = r.get("triton_fwd_ms"), r.get("triton_fwdbwd_ms")
        pf, pfb = r.get("torch_fwd_ms"), r.get("torch_fwdbwd_ms")
        sp_f = f"{pf / tf:.1f}x" if tf and pf else "-"
        sp_fb = f"{pfb / tfb:.1f}x" if tfb and pfb else "-"
        log(
            f"| {r['shape']} {tuple(r['B,D,L,N'])} | {r['dtype']} | {f(tf, 4)} | {f(tfb, 4)} | {f(pf, 2)} | {f(pfb, 2)} | "
            f"{f(r.get('ref_fwd_ms'), 1)} | {f(r.get('ref_fwdbwd_ms'), 1)} | {sp_f} | {sp_fb} | "
            f"{f(r.get('triton_fwd_GBps'), 0)} | {f(r.get('triton_fwd_pct_copy'), 1)} |"
        )
    log("* sequential reference: fp32 only, full batch, median of --ref-iters host-clock timings after one warm-up.")
    return out


if __name__ == "__main__":
    main()
