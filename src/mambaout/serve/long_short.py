"""The paper's long-sequence calculator (Sec. 3.2, Eq. 6-7) and the zoo table, from ``analysis``.

``calculator``: an input of H x W cut by a patch stride into tokens, width D; ``stages=1`` is an isotropic
network (ViT: one token grid), ``stages=4`` a hierarchical one whose stages halve the grid and double the
width (Swin, VMamba, MambaOut). Per stage: L, tau = 6D, r = L / 6D, the share of the quadratic term in a
Transformer block's FLOPs and the paper's verdict. ``model_stages``: the same for a zoo model's own stages.
"""

from __future__ import annotations

import functools

from ..analysis.complexity import build_meta, stage_tokens
from ..analysis.long_sequence import threshold, tokens_for, transformer_block_flops, verdict
from ..analysis.zoo import zoo_rows
from ..errors import InputError

COLUMNS = ["stage", "height", "width", "tokens", "dim", "tau", "ratio", "quadratic_share", "verdict"]
HEADERS = ["stage", "H", "W", "tokens L", "width D", "tau = 6D", "r = L/6D", "quadratic share", "verdict"]
ZOO_COLUMNS = ["model", "family", "params_m", "macs_g", "paper_params_m", "paper_macs_g", "paper_top1"]
ZOO_HEADERS = ["model", "family", "params (M)", "MACs (G)", "paper params", "paper MACs", "paper top-1"]
MAX_SIDE = 16384


def _row(stage: int, h: int, w: int, dim: int) -> dict:
    L = h * w
    f = transformer_block_flops(L, dim)
    return dict(
        stage=stage,
        height=h,
        width=w,
        tokens=L,
        dim=dim,
        tau=threshold(dim),
        ratio=f["ratio"],
        quadratic_share=f["quadratic"] / f["total"],
        verdict=verdict(f["ratio"]),
    )


def _check(height, width, dim) -> tuple[int, int, int]:
    try:
        h, w, d = int(height), int(width), int(dim)
    except (TypeError, ValueError):
        raise InputError("height, width, patch stride and width D must be whole numbers") from None
    if not (0 < h <= MAX_SIDE and 0 < w <= MAX_SIDE and 0 < d <= 65536):
        raise InputError(f"height and width must be in 1..{MAX_SIDE} and width D in 1..65536")
    return h, w, d


def calculator(height, width, patch, dim, stages: int = 1) -> list[dict]:
    """One row per stage (see the module docstring)."""
    h, w, d = _check(height, width, dim)
    tokens_for(h, w, int(patch))  # checks the patch stride
    if stages not in (1, 4):
        raise InputError(f"stages must be 1 (isotropic) or 4 (hierarchical), got {stages}")
    rows, stride = [], int(patch)
    for i in range(stages):
        gh, gw = h // (stride * 2**i), w // (stride * 2**i)
        if gh * gw == 0:
            break
        rows.append(_row(i + 1, gh, gw, d * 2**i))
    if not rows:
        raise InputError(f"a {h}x{w} input has no whole {stride}x{stride} patch")
    return rows


def model_stages(name: str, height, width) -> list[dict]:
    """The rows of a zoo model's stages at H x W (analysis.complexity.stage_tokens on the meta device)."""
    h, w, _ = _check(height, width, 1)
    return [_row(s["stage"], s["height"], s["width"], s["dim"]) for s in stage_tokens(build_meta(name), h, w)]


@functools.lru_cache(maxsize=4)
def zoo(pattern: str | None = None) -> tuple[dict, ...]:
    """The zoo at 224x224 (params and MACs measured on the meta device; seconds for the whole zoo), cached."""
    return tuple(zoo_rows(pattern, (224, 224)))
