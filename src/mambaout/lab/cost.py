"""What a model costs: parameters, MACs per sample (the paper's fvcore convention, analysis.macs) and the
measured training step time, reported beside every matched pair (issue #17)."""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..analysis.macs import MacCounter


def macs_per_sample(model: nn.Module, sample: torch.Tensor) -> int:
    """MACs of one forward pass on ``sample`` (a batch of one), counted on the meta device."""
    m = copy.deepcopy(model).to("meta").eval()
    x = sample[:1].to("meta")
    with torch.no_grad(), MacCounter() as counter:
        m(x)
    return counter.total


def cell_costs(cells: list[dict], sample: torch.Tensor) -> None:
    """Add ``macs`` to every cell (dict with 'build'); built on the meta device."""
    for c in cells:
        with torch.device("meta"):
            model = c["build"]()
        c["macs"] = macs_per_sample(model, sample)


def step_ms(rows: list[dict], label: str) -> float | None:
    """Mean measured training step time (ms) of a cell over its finished runs."""
    ts = [r["train_s"] / r["steps"] for r in rows if r["label"] == label and "error" not in r and r.get("steps")]
    return 1000.0 * sum(ts) / len(ts) if ts else None


def fmt_macs(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n / 1e3:.1f}k"
