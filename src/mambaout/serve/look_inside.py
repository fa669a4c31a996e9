"""Where one model looks for one image: the effective receptive field of a stage's centre (explain.erf) and
what one block mixes into a query pixel (explain.hidden_attention.mixing_map: the SSM's hidden attention,
or the conv kernel's footprint for MambaOut)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..explain.erf import erf, log_scaled
from ..explain.hidden_attention import mixing_map
from ..explain.inputs import prepare_image
from . import render
from .checkpoints import Loaded


@dataclass
class Inside:
    model: str
    erf: np.ndarray  # (H, W, 3) uint8, log-scaled ERF
    erf_sides: dict  # {threshold: centred-square side / image side}
    mixing: np.ndarray  # (H, W, 3) uint8, the map over the input, query marked
    kind: str  # "ssm", "conv" or "attention"
    query: tuple[int, int]
    stage: int


def look_inside(loaded: Loaded, image: Image.Image, query: tuple[float, float], stage: int) -> Inside:
    """``query``: (row, column) as fractions of the image side in [0, 1]."""
    size = loaded.img_size
    x = prepare_image(image, size, loaded.in_chans)
    qy, qx = (min(size - 1, max(0, int(q * size))) for q in query)
    with loaded.lock:
        field = erf(loaded.model, x, stage)
        mixed = mixing_map(loaded.model, x, (qy, qx), stage)
    erf_rgb, _ = render.enlarge(render.coloured(log_scaled(field.map), "RdYlGn"))
    base = render.picture(x) * 0.6
    rgb, k = render.enlarge(render.overlay(base, mixed.maps["sum"], "magma", alpha=0.7))
    rgb = render.mark(rgb, qy * k + k // 2, qx * k + k // 2)
    return Inside(
        loaded.name,
        render.to_uint8(erf_rgb),
        field.table,
        render.to_uint8(rgb),
        mixed.kind,
        (qy, qx),
        field.stage,
    )
