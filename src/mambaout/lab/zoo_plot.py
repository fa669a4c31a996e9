"""Experiment 4, zoo: top-1 vs MACs of the paper's ImageNet rows, with this project's measured MACs.

Published rows: :mod:`.paper_rows`. Measured rows: every registered model of the MambaOut and visual
Mamba families whose registry entry has a paper top-1, placed at the MACs (and params) this project's
counter measures at 224² (``analysis.zoo``), so the gap to the published MACs is visible.
"""

from __future__ import annotations

import os

from ..analysis.zoo import zoo_rows
from ..utils.table import markdown_table
from .paper_rows import SOURCE, VISUAL_MAMBA_FAMILIES
from .paper_rows import rows as paper_rows
from .report import _plt, write_csv, write_json, write_report


def _figure(published, measured, path):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 5.5))
    fams = ["MambaOut"] + list(VISUAL_MAMBA_FAMILIES)
    markers = "o^sDvP*Xh"
    for k, fam in enumerate(fams):
        pts = sorted([r for r in published if r["family"] == fam and r["macs_g"]], key=lambda r: r["macs_g"])
        if not pts:
            continue
        ax.plot(
            [r["macs_g"] for r in pts],
            [r["top1"] for r in pts],
            marker=markers[k % len(markers)],
            lw=2.5 if fam == "MambaOut" else 1,
            ms=7 if fam == "MambaOut" else 5,
            label=fam,
        )
        for r in pts:
            ax.annotate(r["model"], (r["macs_g"], r["top1"]), fontsize=6, xytext=(3, -3), textcoords="offset points")
    other = [r for r in published if r["family"] == "other" and r["macs_g"]]
    if other:
        ax.scatter(
            [r["macs_g"] for r in other],
            [r["top1"] for r in other],
            color="lightgrey",
            s=14,
            label="other (DeiT, ConvNeXt, Swin, ...)",
            zorder=0,
        )
    if measured:
        ax.scatter(
            [r["macs_g"] for r in measured],
            [r["paper_top1"] for r in measured],
            facecolors="none",
            edgecolors="k",
            s=45,
            label="measured MACs here (paper top-1)",
            zorder=4,
        )
    ax.set_xlabel("MACs (G) at 224²")
    ax.set_ylabel("ImageNet-1K top-1 (%)")
    ax.set_title("Published ImageNet rows (MambaOut paper) and this project's MAC counts", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(ctx, cfg: dict) -> dict:
    out = ctx.folder("zoo")
    published = paper_rows()
    measured = []
    for pat in cfg.get("models", []):
        for r in zoo_rows(pat):
            if r.get("paper_top1") is not None and r["family"] not in ("vit",):
                measured.append(r)
    measured = list({r["model"]: r for r in measured}.values())
    _figure(published, measured, os.path.join(out, "top1_vs_macs.png"))
    write_csv(published, os.path.join(out, "paper_imagenet_rows.csv"))
    write_csv(measured, os.path.join(out, "measured_rows.csv"))
    write_json(
        dict(config=cfg, source=SOURCE, published=published, measured=measured), os.path.join(out, "results.json")
    )
    body = [
        f"## Published ImageNet-1K rows\n\nSource: {SOURCE}. Figure: `top1_vs_macs.png`.\n\n"
        + markdown_table(
            [r for r in published if r["family"] != "other"],
            ["model", "family", "params_m", "macs_g", "top1"],
            ["model", "family", "params (M)", "MACs (G)", "top-1 (%)"],
            digits=1,
        ),
        "## Measured here (params/MACs at 224², this project's counter; top-1 is the paper's)\n\n"
        + (
            markdown_table(
                measured,
                ["model", "family", "params_m", "macs_g", "paper_params_m", "paper_macs_g", "paper_top1", "macs_delta"],
                ["model", "family", "params (M)", "MACs (G)", "paper params", "paper MACs", "paper top-1", "Δ MACs"],
                digits=3,
            )
            if measured
            else "(no registered models matched)"
        ),
    ]
    mo = [r for r in published if r["family"] == "MambaOut"]
    vm = [r for r in published if r["family"] in VISUAL_MAMBA_FAMILIES and r["macs_g"]]
    beaten = sum(1 for v in vm if any(m["macs_g"] <= v["macs_g"] and m["top1"] >= v["top1"] for m in mo))
    summary = (
        f"{beaten} of {len(vm)} published visual-Mamba rows with MACs are matched or beaten by a MambaOut "
        "model with no more MACs (published numbers, not re-measured accuracy)."
    )
    write_report(os.path.join(out, "report.md"), "Lab: ImageNet top-1 vs MACs", body + ["## Note\n\n" + summary])
    return dict(
        name="zoo",
        title="Zoo plot: top-1 vs MACs",
        sections=body,
        summary=summary,
        verdicts=[],
        figures=["top1_vs_macs.png"],
    )
