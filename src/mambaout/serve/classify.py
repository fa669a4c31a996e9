"""One image through one model: top-5, forward latency and a class-activation overlay (explain.cam)."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from ..explain.cam import cam
from ..explain.inputs import prepare_image
from . import render
from .checkpoints import Loaded

TIMED_RUNS = 3  # latency: the median of this many forward passes after one warm-up


@dataclass
class Prediction:
    model: str
    top: dict[str, float]  # class -> probability, the 5 most likely
    latency_ms: float
    overlay: np.ndarray  # (H, W, 3) uint8: the CAM over the input
    img_size: int
    trained: bool


def classify(loaded: Loaded, image: Image.Image, method: str = "eigencam", stage: int = -1) -> Prediction:
    x = prepare_image(image, loaded.img_size, loaded.in_chans)
    model = loaded.model
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
        loaded.name, top, 1000 * statistics.median(times), render.to_uint8(rgb), loaded.img_size, loaded.trained
    )
