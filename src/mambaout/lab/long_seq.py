"""Experiment 1, long-seq: the paper's Eq. 6-7 as figures, plus per-stage token counts of the zoo.

Figures: Transformer-block FLOPs vs L (linear 24 D^2 L, quadratic 4 D L^2) with tau = 6D marked for
common widths; the quadratic share vs L; per-stage L / 6D of the zoo's models at 224^2, 800x1280 and
512x2048 (the paper's ImageNet, COCO and ADE20K resolutions).
"""

from __future__ import annotations

import os

from ..analysis.complexity import build_meta, stage_tokens
from ..analysis.long_sequence import (
    PAPER_TASKS,
    long_seq_table,
    rows_as_dicts,
    threshold,
    tokens_for,
    transformer_block_flops,
)
from ..registry import match_models, model_info
from ..utils.table import markdown_table
from .report import _plt, write_csv, write_json, write_report


def _flops_figure(widths, lengths, tasks, patch, path):
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (name, d) in enumerate(widths):
        c = colors[k % len(colors)]
        f = [transformer_block_flops(L, d) for L in lengths]
        ax1.loglog(lengths, [x["total"] for x in f], color=c, label=f"{name} (D={d}) total")
        ax1.loglog(lengths, [x["linear"] for x in f], color=c, ls=":", lw=1)
        ax1.loglog(lengths, [x["quadratic"] for x in f], color=c, ls="--", lw=1)
        ax1.axvline(threshold(d), color=c, alpha=0.4)
        ax2.semilogx(lengths, [x["quadratic"] / x["total"] for x in f], color=c, label=f"{name}: tau={threshold(d)}")
        ax2.axvline(threshold(d), color=c, alpha=0.4)
    for k, (task, h, w) in enumerate(tasks):
        L = tokens_for(h, w, patch)
        for ax in (ax1, ax2):
            ax.axvline(L, color="k", ls="-.", lw=0.8)
        ax2.text(L, 0.02 + 0.3 * k, f" {task.split()[0]} L={L}", rotation=90, fontsize=7, va="bottom")
    ax1.set_xlabel("tokens L"), ax1.set_ylabel("FLOPs of one block (2 per MAC)")
    ax1.set_title("24D²L (dotted) + 4DL² (dashed); vertical: tau = 6D", fontsize=9)
    ax1.legend(fontsize=7), ax1.grid(alpha=0.3, which="both")
    ax2.axhline(0.5, color="grey", lw=0.8)
    ax2.set_xlabel("tokens L"), ax2.set_ylabel("quadratic share 4DL² / total")
    ax2.set_title(f"share passes 1/2 at L = 6D; dash-dot: paper tasks at patch {patch}", fontsize=9)
    ax2.legend(fontsize=7), ax2.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _stage_figure(rows, models, resolutions, path):
    plt = _plt()
    fig, axes = plt.subplots(1, len(resolutions), figsize=(5 * len(resolutions), 4), squeeze=False, sharey=True)
    for ax, (res, h, w) in zip(axes[0], resolutions):
        for m in models:
            pts = [(r["stage"], r["ratio"]) for r in rows if r["model"] == m and r["resolution"] == res]
            if pts:
                xs, ys = zip(*pts)
                ax.semilogy(xs, ys, marker="o", label=m)
        ax.axhline(1.0, color="k", ls="--", lw=0.8)
        ax.set_title(f"{res} ({h}x{w})", fontsize=9)
        ax.set_xlabel("stage (isotropic: feature taps)")
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel("L / 6D (long when > 1)")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(ctx, cfg: dict) -> dict:
    out = ctx.folder("long-seq")
    patch = int(cfg.get("patch", 16))
    widths = [(str(n), int(d)) for n, d in cfg["widths"]]
    lmax = int(cfg.get("max_tokens", 65536))
    lengths = sorted({int(round(10 ** (k / 20))) for k in range(0, 200) if 10 ** (k / 20) <= lmax} | {lmax})
    tasks = [(t, h, w) for t, h, w in PAPER_TASKS]
    table = rows_as_dicts(long_seq_table(tasks, widths, patch))
    thresholds = [dict(model=n, dim=d, tau=threshold(d)) for n, d in widths]
    _flops_figure(widths, lengths, tasks, patch, os.path.join(out, "flops_vs_tokens.png"))

    names = match_models(cfg.get("models", ["*"]))
    resolutions = [("ImageNet", 224, 224), ("COCO", 800, 1280), ("ADE20K", 512, 2048)]
    stage_rows = []
    for name in names:
        model = build_meta(name)
        for res, h, w in resolutions:
            for r in stage_tokens(model, h, w):
                stage_rows.append(dict(model=name, family=model_info(name).family, resolution=res, **r))
    plot_models = cfg.get("plot_models") or names[:6]
    plot_models = [m for m in plot_models if m in names]
    _stage_figure(stage_rows, plot_models, resolutions, os.path.join(out, "stage_tokens.png"))

    write_csv(table, os.path.join(out, "long_seq_table.csv"))
    write_csv(stage_rows, os.path.join(out, "stage_tokens.csv"))
    write_json(
        dict(config=cfg, table=table, thresholds=thresholds, stage_tokens=stage_rows), os.path.join(out, "results.json")
    )
    first = [r for r in stage_rows if r["stage"] == 1]
    body = [
        "## Eq. 6-7: when is a sequence long?\n\n"
        "One Transformer block (MLP ratio 4) costs 24D²L + 4DL² FLOPs; the quadratic share passes one half at "
        "L = tau = 6D. Figure: `flops_vs_tokens.png`.\n\n"
        + markdown_table(thresholds, ["model", "dim", "tau"], ["width", "D", "tau = 6D"])
        + "\n\n"
        + markdown_table(
            table,
            ["task", "height", "width", "tokens", "model", "dim", "tau", "ratio", "quadratic_share", "verdict"],
            ["task", "H", "W", "tokens L", "model", "D", "tau", "L/6D", "quadratic share", "verdict"],
            digits=3,
        ),
        "## Per-stage tokens of the zoo's models\n\n"
        f"{len(names)} registered models at 224², 800×1280 and 512×2048 (`stage_tokens.csv`, figure "
        "`stage_tokens.png`). Stage-1 rows (the longest sequences):\n\n"
        + markdown_table(
            first,
            ["model", "resolution", "height", "width", "tokens", "dim", "tau", "ratio"],
            ["model", "resolution", "H", "W", "tokens L", "D", "tau", "L/6D"],
            digits=2,
        ),
    ]
    long_224 = sorted({r["model"] for r in first if r["resolution"] == "ImageNet" and r["ratio"] > 1})
    summary = (
        f"Patch-16 ViT at 224²: L=196 ≪ tau (ViT-S 2304, ViT-B 4608); at 800×1280 / 512×2048 L≈4K, past or "
        f"near tau. But {len(long_224)} of {len(names)} zoo models already have L/6D > 1 in stage 1 at 224² "
        "(high-resolution early stages with narrow widths)."
    )
    write_report(os.path.join(out, "report.md"), "Lab: the long-sequence analysis", body + ["## Note\n\n" + summary])
    return dict(
        name="long-seq",
        title="Long-sequence analysis (Eq. 6-7)",
        sections=body,
        summary=summary,
        verdicts=[],
        figures=["flops_vs_tokens.png", "stage_tokens.png"],
    )
