"""Training curves as a PNG (matplotlib with the Agg backend; no display needed)."""

from __future__ import annotations

from collections.abc import Sequence


def plot_curves(
    runs: dict[str, list[dict]],
    path: str,
    panels: Sequence[Sequence[str]] = (("train_loss", "val_loss"), ("val_top1",)),
    x: str = "epoch",
    title: str | None = None,
) -> str:
    """One subplot per panel; each panel draws the listed metric keys for every run.

    runs: {label: [row, ...]} where rows are the dicts a RunLogger logged. Returns ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, keys in zip(axes[0], panels):
        for label, rows in runs.items():
            for key in keys:
                pts = [(r[x], r[key]) for r in rows if r.get(key) is not None and x in r]
                if pts:
                    xs, ys = zip(*pts)
                    name = f"{label} {key}" if len(runs) > 1 or len(keys) > 1 else key
                    ax.plot(xs, ys, marker="o", markersize=3, label=name)
        ax.set_xlabel(x)
        ax.set_ylabel(" / ".join(keys))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
