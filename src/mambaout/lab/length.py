"""Experiment 5, length: measured cost of one block vs token count L, beside the paper's L = 6D.

One block each of depthwise conv (MambaOut's GatedBlock, ``dwconv`` mixer), conv + SSM (the Mamba
GatedBlock, ``conv_ssm`` mixer, raster scan) and attention (a pre-norm SDPA transformer block, 64 channels
per head, MLP ratio 4) at each width D, on an s x s token map (L = s²). Forward (inference) and a training
step (forward, mean-square loss, backward, AdamW step) are timed and their peak memory measured with the
benchmark's timing core (:mod:`mambaout.bench.timing`): warm-up call(s), one call under the memory probe,
then the timed calls. A series (block, D, phase) stops before the next L when its last call, scaled by
(L_next / L)^order (order 2 for attention, 1 for the conv and the scan), would pass ``max_call_s``, when the
device runs out of memory, or when the sweep has used ``budget_s`` (every series advances one L at a time,
so the budget cuts them all at about the same L); the report names where each series stopped.

Crossovers: the L where attention's time (or memory) first exceeds the other block's, interpolated
log-log between the two measured lengths around it; and, from a least-squares fit t = c + aL + bL² of
attention's own times, the L = a / b where its quadratic part equals its linear part: the measured
counterpart of the paper's tau = 6D (Eq. 6-7, FLOPs).
"""

from __future__ import annotations

import math
import os
import time

import torch

from ..analysis.long_sequence import threshold
from ..bench.timing import make_step, peak_memory, time_calls
from ..models.blocks import GatedBlock
from ..models.vit import TransformerBlock
from ..utils.table import markdown_table
from .report import _plt, write_csv, write_json, write_report

BLOCKS = ("dwconv", "conv_ssm", "attention")
PHASES = ("infer", "train")
ORDER = {"dwconv": 1, "conv_ssm": 1, "attention": 2}  # growth of a block's cost in L (for the stop rule)
LABELS = {"dwconv": "dwconv (MambaOut)", "conv_ssm": "conv+SSM (Mamba)", "attention": "attention (SDPA)"}


def build_block(kind: str, dim: int) -> torch.nn.Module:
    if kind == "dwconv":
        return GatedBlock(dim, "dwconv")
    if kind == "conv_ssm":
        return GatedBlock(dim, "conv_ssm", dict(scan="raster", d_state=16))
    if kind == "attention":
        return TransformerBlock(dim, num_heads=max(1, dim // 64))
    raise ValueError(f"unknown block {kind!r}; known: {', '.join(BLOCKS)}")


def _is_oom(e: BaseException) -> bool:
    return isinstance(e, torch.OutOfMemoryError) or "out of memory" in str(e).lower()


def sweep(cfg: dict, device) -> tuple[list[dict], list[str]]:
    """Measured rows (dim, block, phase, side, tokens, ms, mem_mib) and one note per series that stopped.
    All series advance together in L, so the sweep budget (``budget_s``) cuts them at similar lengths."""
    rows, stops = [], []
    cap_ms = 1e3 * float(cfg.get("max_call_s", 1e9))
    budget, t0 = float(cfg.get("budget_s", 1e9)), time.perf_counter()
    series = [(d, k, p) for d in cfg["dims"] for k in cfg.get("blocks", BLOCKS) for p in cfg.get("phases", PHASES)]
    last: dict[tuple, tuple[int, float]] = {}
    live = list(series)
    for side in cfg["sides"]:
        L = side * side
        for key in list(live):
            dim, kind, phase = key
            name = f"{LABELS[kind]}, D={dim}, {phase}"
            if time.perf_counter() - t0 > budget:
                stops += [
                    f"{LABELS[k]}, D={d}, {p}: stopped before L={L} (sweep budget {budget:g} s used)"
                    for d, k, p in live
                ]
                return rows, stops
            prev = last.get(key)
            if prev and prev[1] * (L / prev[0]) ** ORDER[kind] > cap_ms:
                stops.append(
                    f"{name}: stopped before L={L} (L={prev[0]} took {prev[1] / 1e3:.2f} s; x (L ratio)^{ORDER[kind]} "
                    f"> max_call_s={cap_ms / 1e3:g} s)"
                )
                live.remove(key)
                continue
            torch.manual_seed(0)
            block = build_block(kind, dim).to(device)
            x = torch.randn(int(cfg.get("batch", 1)), side, side, dim, device=device)
            step = make_step(block, x, phase, amp=cfg.get("amp", "none"))
            try:
                for _ in range(int(cfg.get("warmup", 1))):
                    step()
                mem = peak_memory(step, device)
                t = time_calls(step, device, 0, int(cfg.get("repeats", 3)))
            except (RuntimeError, torch.OutOfMemoryError) as e:
                if not _is_oom(e):
                    raise
                stops.append(f"{name}: out of memory at L={L}")
                live.remove(key)
                continue
            finally:
                del step
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            rows.append(
                dict(dim=dim, block=kind, phase=phase, side=side, tokens=L, ms=t.median_ms, mem_mib=mem / 2**20)
            )
            last[key] = (L, t.median_ms)
    return rows, stops


def crossover(a: list[tuple[int, float]], b: list[tuple[int, float]]) -> float | None | str:
    """First L where series ``a`` (tokens, value) exceeds ``b``, interpolated log-log; '<Lmin' or '>Lmax'."""
    common = sorted(set(dict(a)) & set(dict(b)))
    da, db = ({k: max(v, 1e-9) for k, v in s} for s in (a, b))  # a 0-byte peak stays comparable
    if not common:
        return None
    if da[common[0]] > db[common[0]]:
        return f"< {common[0]}"
    for lo, hi in zip(common, common[1:]):
        if da[hi] > db[hi]:
            g_lo, g_hi = math.log(da[lo] / db[lo]), math.log(da[hi] / db[hi])  # log ratio crosses 0
            f = g_lo / (g_lo - g_hi)
            return math.exp(math.log(lo) + f * (math.log(hi) - math.log(lo)))
    return f"> {common[-1]}"


def quadratic_linear_point(series: list[tuple[int, float]]) -> float | None:
    """L = a / b of the least-squares fit t = c + aL + bL² (weights 1/t: relative errors); None if a or b <= 0."""
    import numpy as np

    if len(series) < 4:
        return None
    L = np.array([s[0] for s in series], dtype=float)
    t = np.array([s[1] for s in series], dtype=float)
    A = np.stack([np.ones_like(L), L, L * L], 1) / t[:, None]
    c, a, b = np.linalg.lstsq(A, np.ones_like(t), rcond=None)[0]
    return float(a / b) if a > 0 and b > 0 else None


def crossovers(rows: list[dict]) -> list[dict]:
    out = []
    for dim in sorted({r["dim"] for r in rows}):
        for phase in ("infer", "train"):
            sel = [r for r in rows if r["dim"] == dim and r["phase"] == phase]
            if not sel:
                continue

            def series(kind, key, sel=sel):
                return [(r["tokens"], r[key]) for r in sel if r["block"] == kind]

            row = dict(dim=dim, phase=phase, tau=threshold(dim))
            for other in ("dwconv", "conv_ssm"):
                row[f"time_vs_{other}"] = crossover(series("attention", "ms"), series(other, "ms"))
                row[f"mem_vs_{other}"] = crossover(series("attention", "mem_mib"), series(other, "mem_mib"))
            row["attn_quad_eq_lin"] = quadratic_linear_point(series("attention", "ms"))
            out.append(row)
    return out


def _figure(rows, dims, path):
    plt = _plt()
    fig, axes = plt.subplots(2, len(dims), figsize=(6 * len(dims), 8), squeeze=False)
    colors = {"dwconv": "tab:red", "conv_ssm": "tab:blue", "attention": "tab:green"}
    for j, dim in enumerate(dims):
        for i, (key, label) in enumerate((("ms", "time per call (ms)"), ("mem_mib", "peak memory (MiB)"))):
            ax = axes[i][j]
            for kind in BLOCKS:
                for phase, ls in (("infer", "-"), ("train", "--")):
                    pts = [
                        (r["tokens"], r[key]) for r in rows if (r["dim"], r["block"], r["phase"]) == (dim, kind, phase)
                    ]
                    if pts:
                        xs, ys = zip(*pts)
                        ax.plot(xs, ys, ls, marker="o", ms=3, color=colors[kind], label=f"{LABELS[kind]}, {phase}")
            ax.axvline(threshold(dim), color="k", lw=0.8, ls=":")
            ax.text(threshold(dim), 0.98, " L = 6D", transform=ax.get_xaxis_transform(), fontsize=8, va="top")
            ax.set_xscale("log"), ax.set_yscale("log")
            ax.set_xlabel("tokens L"), ax.set_ylabel(label)
            ax.set_title(f"one block, D = {dim}: {label.split(' (')[0]}", fontsize=9)
            ax.grid(alpha=0.3, which="both")
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt_l(v) -> str:
    return v if isinstance(v, str) else ("-" if v is None else f"{v:.0f}")


def run(ctx, cfg: dict) -> dict:
    out = ctx.folder("length")
    rows, stops = sweep(cfg, ctx.device)
    dims = list(cfg["dims"])
    cross = crossovers(rows)
    _figure(rows, dims, os.path.join(out, "length_sweep.png"))
    write_csv(rows, os.path.join(out, "length_sweep.csv"))
    write_json(dict(config=cfg, rows=rows, stops=stops, crossovers=cross), os.path.join(out, "results.json"))
    wide = {}
    for r in rows:
        k = (r["dim"], r["phase"], r["tokens"])
        wide.setdefault(k, dict(dim=r["dim"], phase=r["phase"], tokens=r["tokens"]))
        wide[k][f"{r['block']}_ms"] = r["ms"]
        wide[k][f"{r['block']}_mib"] = r["mem_mib"]
    table_rows = [wide[k] for k in sorted(wide)]
    cross_rows = [{k: (_fmt_l(v) if k not in ("dim", "phase", "tau") else v) for k, v in r.items()} for r in cross]
    body = [
        "## Time and peak memory per block vs L\n\n"
        f"Batch {cfg.get('batch', 1)}, amp {cfg.get('amp', 'none')}, median of {cfg.get('repeats', 3)} calls after "
        f"{cfg.get('warmup', 1)} warm-up; memory: the allocation peak of one call above what was live before it "
        "(activations, gradients, optimizer state on the first step are counted there). Figure: `length_sweep.png`.\n\n"
        + markdown_table(
            table_rows,
            ["dim", "phase", "tokens"] + [f"{b}_ms" for b in BLOCKS] + [f"{b}_mib" for b in BLOCKS],
            [
                "D",
                "phase",
                "L",
                "dwconv ms",
                "conv+SSM ms",
                "attention ms",
                "dwconv MiB",
                "conv+SSM MiB",
                "attention MiB",
            ],
            digits=1,
        ),
        "## Crossovers beside the paper's L = 6D\n\n"
        "L where attention first costs more than the Gated CNN block (time / memory), and the L where the fit "
        "of attention's own times has its quadratic part equal to its linear part.\n\n"
        + markdown_table(
            cross_rows,
            [
                "dim",
                "phase",
                "tau",
                "time_vs_dwconv",
                "time_vs_conv_ssm",
                "mem_vs_dwconv",
                "mem_vs_conv_ssm",
                "attn_quad_eq_lin",
            ],
            [
                "D",
                "phase",
                "6D",
                "time > dwconv",
                "time > conv+SSM",
                "mem > dwconv",
                "mem > conv+SSM",
                "attn quad = lin (fit)",
            ],
        ),
        "## Where each series stopped\n\n"
        + ("\n".join(f"- {s}" for s in stops) if stops else "Every series reached the last L."),
    ]
    lmax = max((r["tokens"] for r in rows), default=0)
    summary = (
        f"Measured up to L = {lmax} on {ctx.device} ({len(rows)} points; {len(stops)} series stopped early). "
        "The paper's tau = 6D is a FLOP ratio inside attention; the measured crossovers above are where the "
        "blocks' costs actually cross on this device."
    )
    write_report(os.path.join(out, "report.md"), "Lab: block cost vs token length", body + ["## Note\n\n" + summary])
    return dict(
        name="length",
        title="Token-length sweep: dwconv vs conv+SSM vs attention",
        sections=body,
        summary=summary,
        verdicts=[],
        figures=["length_sweep.png"],
    )
