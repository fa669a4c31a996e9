"""The zoo report: every registered model with measured params/MACs beside its paper's figures."""

from __future__ import annotations

from ..registry import match_models, model_info
from ..utils.table import markdown_table
from .complexity import complexity


def _delta(measured: float, reported: float | None) -> str | None:
    if not reported:
        return None
    return f"{100 * (measured - reported) / reported:+.1f}%"


def zoo_rows(pattern: str | None = None, img_size=(224, 224)) -> list[dict]:
    rows = []
    for name in match_models(pattern):
        info = model_info(name)
        c = complexity(name, img_size)
        paper = info.paper
        rows.append(
            dict(
                model=name,
                family=info.family,
                params_m=round(c["params_m"], 3),
                macs_g=round(c["macs_g"], 3),
                paper_params_m=paper.get("params"),
                paper_macs_g=paper.get("macs"),
                paper_top1=paper.get("top1"),
                params_delta=_delta(c["params_m"], paper.get("params")),
                macs_delta=_delta(c["macs_g"], paper.get("macs_fvcore", paper.get("macs"))),
                source=paper.get("source"),
            )
        )
    return rows


ZOO_COLUMNS = [
    "model",
    "family",
    "params_m",
    "macs_g",
    "paper_params_m",
    "paper_macs_g",
    "paper_top1",
    "params_delta",
    "macs_delta",
]
ZOO_HEADERS = [
    "model",
    "family",
    "params (M)",
    "MACs (G)",
    "paper params",
    "paper MACs",
    "paper top-1",
    "Δ params",
    "Δ MACs*",
]
ZOO_NOTE = (
    "* Δ MACs is against fvcore's unrounded total where the reference has it (the paper prints one decimal: "
    "femto 1.16 -> 1.2), else against the printed figure."
)


def zoo_table(rows: list[dict]) -> str:
    return markdown_table(rows, ZOO_COLUMNS, ZOO_HEADERS, digits=3) + "\n\n" + ZOO_NOTE
