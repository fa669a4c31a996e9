"""Maps and images as the RGB arrays the page shows (numpy and matplotlib's colour maps; no figures)."""

from __future__ import annotations

import numpy as np
import torch

DISPLAY = 256  # shortest side shown: a 32x32 input is enlarged with visible pixels (nearest)


def picture(batch: torch.Tensor) -> np.ndarray:
    """A normalised (1, C, H, W) batch -> (H, W, 3) in [0, 1], min-max stretched (undoes the normalisation
    well enough to see the picture)."""
    x = batch[0].detach().float().cpu()
    x = (x - x.min()) / (x.max() - x.min()).clamp_min(1e-12)
    x = x.expand(3, -1, -1) if x.shape[0] == 1 else x[:3]
    return x.permute(1, 2, 0).numpy()


def coloured(values: np.ndarray, cmap: str) -> np.ndarray:
    """(H, W) in [0, 1] -> (H, W, 3) in [0, 1]."""
    import matplotlib

    return matplotlib.colormaps[cmap](np.clip(values, 0, 1))[..., :3]


def overlay(base: np.ndarray, values: np.ndarray, cmap: str, alpha: float = 0.5) -> np.ndarray:
    """``values`` (H, W), scaled by their maximum, coloured and blended over ``base`` (H, W, 3)."""
    peak = float(np.max(values)) if values.size else 0.0
    scaled = values / peak if peak > 0 else np.zeros_like(values)
    return (1 - alpha) * base + alpha * coloured(scaled, cmap)


def mark(rgb: np.ndarray, y: int, x: int, colour=(0.0, 1.0, 1.0)) -> np.ndarray:
    """A plus sign at pixel (y, x), drawn after enlarging so it stays one display pixel thick."""
    out = rgb.copy()
    h, w = out.shape[:2]
    arm = max(2, min(h, w) // 24)
    out[max(y - arm, 0) : y + arm + 1, x] = colour
    out[y, max(x - arm, 0) : x + arm + 1] = colour
    return out


def factor(side: int, target: int = DISPLAY) -> int:
    """How many display pixels :func:`enlarge` gives one pixel of an image whose shorter side is ``side``."""
    return max(1, target // side)


def enlarge(rgb: np.ndarray, target: int = DISPLAY) -> tuple[np.ndarray, int]:
    """(image repeated k times along each axis, k) so the shorter side reaches about ``target``."""
    k = factor(min(rgb.shape[:2]), target)
    return np.repeat(np.repeat(rgb, k, 0), k, 1), k


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    return (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)
