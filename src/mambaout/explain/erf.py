"""Effective receptive field (ERF): how strongly each input pixel moves the centre of a stage's output.

The method of Ding et al. (RepLKNet, CVPR 2022), as VMamba uses it: for each image, the stage output at its
centre position (h // 2, w // 2) is summed over channels and back-propagated to the input; |gradient| summed
over the input channels is averaged over the images. (RepLKNet applies a ReLU to the centre before summing;
here the plain sum is taken, so negative and positive responses both count.)

The quantitative measure is RepLKNet's: for each threshold t, the side of the smallest square centred on the
input pixel (H // 2, W // 2) that holds at least t of the map's total. Squares grow by one pixel on each side
(odd sides 1, 3, 5, ...) and are clipped at the border, so on an even-sized image the last square is the whole
image (side H, not H + 1). The side is given as a fraction of the image side (the longer one if not square).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .inputs import resolve_stage, stage_output

THRESHOLDS = (0.2, 0.3, 0.5, 0.99)


def side_table(erf_map: np.ndarray, thresholds=THRESHOLDS) -> dict[float, float | None]:
    """{t: side of the smallest centred square holding >= t of the total, / image side}; None for an all-zero
    map (nothing moves the output)."""
    m = np.asarray(erf_map, dtype=np.float64)
    h, w = m.shape
    total = m.sum()
    if total <= 0:
        return {t: None for t in thresholds}
    ch, cw, longest = h // 2, w // 2, max(h, w)
    # the mass inside the clipped square of half-side r, for every r until it covers the image
    mass, sides = [], []
    for r in range(longest):
        rows, cols = slice(max(ch - r, 0), min(ch + r + 1, h)), slice(max(cw - r, 0), min(cw + r + 1, w))
        mass.append(m[rows, cols].sum() / total)
        side = max(rows.stop - rows.start, cols.stop - cols.start)
        sides.append(side)
        if rows.start == 0 and cols.start == 0 and rows.stop == h and cols.stop == w:
            break
    mass[-1] = 1.0  # the whole image: exactly all of it, whatever the rounding
    out = {}
    for t in thresholds:
        r = next(i for i, f in enumerate(mass) if f >= t - 1e-12)
        out[t] = sides[r] / longest
    return out


def log_scaled(erf_map: np.ndarray) -> np.ndarray:
    """log10(1 + 1000 map / max) / 3 in [0, 1]: three decades below the peak stay visible (a linear scale shows
    only the centre)."""
    peak = float(erf_map.max())
    return np.log10(1 + 1000 * erf_map / peak) / 3 if peak > 0 else np.zeros_like(erf_map)


@dataclass
class ERFResult:
    map: np.ndarray  # (H, W): mean over images of |d centre / d input| summed over input channels
    table: dict  # {threshold: side fraction}
    model: str
    stage: int  # 0-based
    num_images: int

    def to_dict(self) -> dict:
        h, w = self.map.shape
        return dict(
            model=self.model,
            stage=self.stage,
            num_images=self.num_images,
            height=h,
            width=w,
            table={str(t): s for t, s in self.table.items()},
        )

    def save_png(self, path: str) -> None:
        """The map on a log scale (:func:`log_scaled`), a colour bar, the model, stage and image count."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 4.4))
        im = ax.imshow(log_scaled(self.map), cmap="RdYlGn", vmin=0, vmax=1)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="log10(1 + 1000 ERF / max) / 3")
        ax.set_title(f"ERF: {self.model}, stage {self.stage}, N={self.num_images}")
        ax.set_xticks([])
        ax.set_yticks([])
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)


def erf(model: nn.Module, images: torch.Tensor, stage: int = -1) -> ERFResult:
    """The ERF of ``stage`` (negative counts from the end) of ``model`` over ``images`` (N, C, H, W)."""
    index = resolve_stage(model, stage)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    total, was_training = None, model.training
    model.eval()  # dropout and drop-path would make the map random
    try:
        for image in images:  # one at a time: a batch's memory for the backward pass is N times larger
            x = image.unsqueeze(0).to(device).requires_grad_(True)
            with torch.enable_grad():
                out = stage_output(model, x, index)  # (1, h, w, C)
                h, w = out.shape[1:3]
                centre = out[:, h // 2, w // 2, :].sum()
                (grad,) = torch.autograd.grad(centre, x)
            g = grad.abs().sum(1)[0].double().cpu()
            total = g if total is None else total + g
    finally:
        model.train(was_training)
    erf_map = (total / len(images)).numpy()
    name = getattr(model, "model_name", type(model).__name__)
    return ERFResult(erf_map, side_table(erf_map), name, index, len(images))
