"""The benchmark's result: rows of dicts (one per measured model) with its settings and notes, and a plot of
measured throughput against the paper's ImageNet top-1 (the paper's Fig. 1, measured here)."""

from __future__ import annotations

import json

from ..utils.table import Table

COLUMNS = [
    "model",
    "source",
    "params_m",
    "images_per_s",
    "step_ms",
    "latency_p50_ms",
    "latency_p95_ms",
    "peak_mem_mib",
    "compile_s",
    "vs_timm",
    "paper_top1",
]
HEADERS = [
    "model",
    "built by",
    "params (M)",
    "images/s",
    "step (ms)",
    "b1 p50 (ms)",
    "b1 p95 (ms)",
    "peak mem (MiB)",
    "compile (s)",
    "ours/timm",
    "paper top-1",
]
VISUAL_MAMBA = ("vmamba", "vim", "localmamba", "plainmamba", "efficientvmamba")


class BenchTable(Table):
    def __init__(self, rows, settings: dict | None = None, notes=None):
        super().__init__(rows, COLUMNS, HEADERS, digits=2, notes=notes)
        self.settings = dict(settings or {})

    def settings_line(self) -> str:
        s = self.settings
        extra = [k for k in ("channels_last", "cuda_graphs") if s.get(k)]
        return (
            f"{s.get('mode', '')} on {s.get('device', '')}"
            + (f" ({s['threads']} threads)" if s.get("device") == "cpu" and s.get("threads") else "")
            + f", batch {s.get('batch')}, {s.get('img')}, amp "
            f"{s.get('amp')}, compile {s.get('compile')}{''.join(', ' + e for e in extra)}; median of "
            f"{s.get('repeats')} timed calls after {s.get('warmup')} warm-up"
        )

    def to_markdown(self) -> str:
        return self.settings_line() + "\n\n" + super().to_markdown()

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(dict(settings=self.settings, rows=self.rows, notes=self.notes), indent=indent, default=str)

    def plot(self, path: str, title: str | None = None) -> str:
        """images/s (log x) vs the paper's top-1: MambaOut, the visual-Mamba families and timm's references;
        models without a published top-1 (this project's MambaOut + SSM pairs) are named in a footnote."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker

        from ..registry import list_models, model_info

        known = set(list_models())
        groups: dict[str, list[dict]] = {}
        missing = []
        for r in self.rows:
            if r.get("paper_top1") is None:
                missing.append(r["model"])
                continue
            if r["source"] != "mambaout":
                group = "timm references" if "(" in r["source"] else "timm (same name)"
            elif r["model"] in known and model_info(r["model"]).family == "mambaout":
                group = "MambaOut"
            elif r["model"] in known and model_info(r["model"]).family in VISUAL_MAMBA:
                group = "visual Mamba"
            else:
                group = "other"
            groups.setdefault(group, []).append(r)
        style = {
            "MambaOut": dict(marker="o", color="tab:red", s=50),
            "visual Mamba": dict(marker="^", color="tab:blue", s=50),
            "timm (same name)": dict(marker="x", color="tab:orange", s=40),
            "timm references": dict(marker="s", color="grey", s=35),
            "other": dict(marker="D", color="tab:green", s=35),
        }
        fig, ax = plt.subplots(figsize=(7.5, 5))
        for group, rows in groups.items():
            ax.scatter([r["images_per_s"] for r in rows], [r["paper_top1"] for r in rows], label=group, **style[group])
            for r in rows:
                same = group == "timm (same name)"  # drawn on top of ours: label it below
                ax.annotate(
                    r["model"] + (" (timm)" if same else ""),
                    (r["images_per_s"], r["paper_top1"]),
                    fontsize=7,
                    xytext=(4, -10 if same else 3),
                    textcoords="offset points",
                )
        ax.set_xscale("log")
        ax.margins(x=0.25, y=0.1)  # room for the labels
        ticks = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")
        ax.xaxis.set_major_formatter(ticks)
        ax.xaxis.set_minor_formatter(ticks)
        ax.tick_params(axis="x", which="minor", labelsize=7)
        ax.set_xlabel("measured images/s (log)")
        ax.set_ylabel("ImageNet-1K top-1 (%, as published)")
        ax.set_title(title or self.settings_line(), fontsize=8)
        ax.grid(alpha=0.3, which="both")
        if groups:
            ax.legend(fontsize=8, loc="lower left")
        if missing:
            fig.text(0.01, 0.01, "no published top-1, not plotted: " + ", ".join(missing), fontsize=7)
        fig.tight_layout(rect=(0, 0.03 if missing else 0, 1, 1))
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return path
