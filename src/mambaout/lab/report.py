"""Run-folder writers: JSON (NaN -> null), CSV, Markdown sections and the lab's figures."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence


def _clean(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and getattr(obj, "ndim", 1) == 0:
        return _clean(obj.item())
    return obj


def write_json(obj, path: str) -> str:
    with open(path, "w") as f:
        json.dump(_clean(obj), f, indent=2, default=str)
    return path


def write_csv(rows: list[dict], path: str, columns: Sequence[str] | None = None) -> str:
    columns = list(columns or ([] if not rows else list(rows[0].keys())))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if v is None else v) for k, v in _clean(r).items()})
    return path


def pm(stats: dict, digits: int = 2) -> str:
    """'mean ± std (n)' for a mean_std dict; '-' when empty."""
    if not stats or not stats.get("n"):
        return "-"
    return f"{stats['mean']:.{digits}f} ± {stats['std']:.{digits}f}"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def bar_groups(
    groups: dict[str, dict[str, list[float]]],
    path: str,
    ylabel: str,
    title: str = "",
    panel_titles: Sequence[str] | None = None,
    panels: list[dict] | None = None,
) -> str:
    """Grouped bars (mean ± std) with per-seed dots. ``groups``: {group: {variant: [values per seed]}}.
    ``panels``: several such dicts side by side (one subplot each) instead of one."""
    plt = _plt()
    panels = panels or [groups]
    fig, axes = plt.subplots(
        1, len(panels), figsize=(max(4.5, 2.2 * max(len(p) for p in panels)) * len(panels) ** 0.8, 4), squeeze=False
    )
    for k, (ax, grp) in enumerate(zip(axes[0], panels)):
        variants = []
        for g in grp.values():
            for v in g:
                if v not in variants:
                    variants.append(v)
        width = 0.8 / max(1, len(variants))
        for j, var in enumerate(variants):
            xs, means, stds = [], [], []
            for i, g in enumerate(grp.values()):
                vals = [x for x in g.get(var, []) if x is not None and math.isfinite(x)]
                if not vals:
                    continue
                m = sum(vals) / len(vals)
                sd = (sum((x - m) ** 2 for x in vals) / (len(vals) - 1)) ** 0.5 if len(vals) > 1 else 0.0
                x = i + (j - (len(variants) - 1) / 2) * width
                xs.append(x), means.append(m), stds.append(sd)
                ax.scatter([x] * len(vals), vals, s=10, color="k", zorder=3)
            ax.bar(xs, means, width * 0.95, yerr=stds, capsize=3, label=var, alpha=0.8)
        ax.set_xticks(range(len(grp)))
        ax.set_xticklabels(list(grp.keys()), fontsize=8)
        ax.set_ylabel(ylabel if not isinstance(ylabel, (list, tuple)) else ylabel[k])
        finite = [x for g in grp.values() for vs in g.values() for x in vs if x is not None and math.isfinite(x)]
        if finite:
            lo, hi = min(finite), max(finite)
            pad = max(1.0 if hi > 10 else 0.05 * hi, 0.15 * (hi - lo))  # percent vs small values (bits)
            ax.set_ylim(max(0.0, lo - 3 * pad), min(100.0, hi + pad) if hi <= 100 else hi + pad)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
        if panel_titles:
            ax.set_title(panel_titles[k], fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def curves(runs: dict[str, list[dict]], path: str, title: str = "") -> str:
    """Mean training-loss curves per model (the engine's plotting helper)."""
    from ..engine.plots import plot_curves

    return plot_curves(runs, path, panels=(("train_loss",),), x="step", title=title)


def mean_curve(curves_per_seed: list[list[dict]]) -> list[dict]:
    if not curves_per_seed:
        return []
    n = min(len(c) for c in curves_per_seed)
    return [
        dict(
            step=curves_per_seed[0][i]["step"],
            train_loss=sum(c[i]["train_loss"] for c in curves_per_seed) / len(curves_per_seed),
        )
        for i in range(n)
    ]


def write_report(path: str, title: str, sections: list[str]) -> str:
    with open(path, "w") as f:
        f.write(f"# {title}\n\n" + "\n\n".join(s.strip() for s in sections if s) + "\n")
    return path
