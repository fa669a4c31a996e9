"""One image through one model: top-5, forward latency and a class-activation overlay (explain.cam)."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from ..analysis.complexity import stage_tokens
from ..explain.cam import cam
from ..explain.inputs import prepare_image
from . import render
from .checkpoints import Loaded

TIMED_RUNS = 3  # latency: the median of this many forward passes after one warm-up
MIN_CAM_SIDE = 4  # a CAM of a 1x1 or 2x2 map says nothing about where the model looks


@dataclass
class Prediction:
    model: str
    top: dict[str, float]  # class -> probability, the 5 most likely
    latency_ms: float
    overlay: np.ndarray  # (H, W, 3) uint8: the CAM over the input
    img_size: int
    trained: bool
    cam_stage: int  # 0-based
    cam_side: int  # the cells along each side of that stage's map


def cam_stage(model, size: int) -> tuple[int, int]:
    """(deepest stage whose map has at least MIN_CAM_SIDE cells a side, that side); stage 0 if none has. An
    isotropic model (one token grid) is explained at its last feature block (-1)."""
    sides = [row["height"] for row in stage_tokens(model, size, size)] or [size]
    if len(sides) == 1:
        return -1, sides[0]
    stage = max([i for i, h in enumerate(sides) if h >= MIN_CAM_SIDE], default=0)
    return stage, sides[stage]


def classify(loaded: Loaded, image: Image.Image, method: str = "eigencam") -> Prediction:
    x = prepare_image(image, loaded.img_size, loaded.in_chans)
    model = loaded.model
    stage, side = cam_stage(model, loaded.img_size)
    with loaded.lock:  # cam() hooks the model: one request per model at a time
        with torch.no_grad():
            model(x)
            times = []
            for _ in range(TIMED_RUNS):
                start = time.perf_counter()
                logits = model(x)
                times.append(time.perf_counter() - start)
        result = cam(model, x, stage=stage, method=method)
    probs = logits.float().softmax(-1)[0]
    values, indices = probs.topk(min(5, probs.numel()))
    top = {loaded.classes[i]: float(v) for v, i in zip(values.tolist(), indices.tolist())}
    rgb, _ = render.enlarge(render.overlay(render.picture(x), result.maps[0], "jet"))
    return Prediction(
        loaded.name,
        top,
        1000 * statistics.median(times),
        render.to_uint8(rgb),
        loaded.img_size,
        loaded.trained,
        result.stage,
        side,
    )
